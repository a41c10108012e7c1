//! The binary's configuration from environment variables (clap `env`), the prototype's names
//! included, checked through `--print-config` and a real start; no Kafka needed.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use magnetar_core::Outcome;
use serde_json::Value;

/// Runs the binary with only `env` (and `args`) and returns its output.
fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(learner_bin()).env_clear().envs(env.iter().copied()).args(args).output().unwrap()
}

fn printed(env: &[(&str, &str)], args: &[&str]) -> Value {
    let output = run(env, args);
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_prototypes_variables_configure_the_learner() {
    let env = [
        ("LEARNER_MODE", "kafka"),
        ("LEARNER_KAFKA_BROKERS", "127.0.0.1:19092,127.0.0.1:19093"),
        ("LEARNER_KAFKA_TOPIC", "telemetry-env"),
        ("LEARNER_KAFKA_GROUP", "group-env"),
        ("LEARNER_HTTP_ADDR", ":8090"),
        ("LEARNER_CLUSTER_ID", "lkc-env"),
        ("LEARNER_REST_BASIC_AUTH", "router:pw-from-env"),
        ("LEARNER_MAX_ROUTES", "7"),
        ("LEARNER_MAX_DOWNSTREAMS", "3"),
        ("MAGNETAR_LEARNER_TOKEN", "token-from-env-0123"),
    ];
    let output = run(&env, &["--print-config"]);
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("pw-from-env"), "the password was printed: {text}");
    assert!(!text.contains("token-from-env"), "the token was printed: {text}");
    let config: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["mode"], "kafka");
    assert_eq!(config["kafka"]["brokers"], "127.0.0.1:19092,127.0.0.1:19093");
    assert_eq!(config["topic"], "telemetry-env");
    assert_eq!(config["kafka"]["group"], "group-env");
    assert_eq!(config["http_addr"], "0.0.0.0:8090", "Go-style :port binds every interface");
    assert_eq!(config["cluster_id"], "lkc-env");
    assert_eq!(config["rest_basic_auth"]["user"], "router");
    assert_eq!(
        (config["max_routes"].as_u64(), config["max_downstreams_per_route"].as_u64()),
        (Some(7), Some(3))
    );

    // Flags win over the environment; host names resolve.
    let config =
        printed(&env, &["--print-config", "--http-addr", "localhost:9001", "--kafka-group", "g2"]);
    assert_eq!(config["kafka"]["group"], "g2");
    let addr: std::net::SocketAddr = config["http_addr"].as_str().unwrap().parse().unwrap();
    assert!(addr.ip().is_loopback() && addr.port() == 9001, "{addr}");

    // Without any variable but the token: the documented defaults.
    let config = printed(&[("MAGNETAR_LEARNER_TOKEN", TOKEN)], &["--print-config"]);
    assert_eq!(config["access"], "token");
    assert_eq!(config["mode"], "embedded");
    assert_eq!(config["http_addr"], "127.0.0.1:8090");
    assert_eq!(config["topic"], "magnetar-telemetry");
    assert_eq!(config["cluster_id"], "magnetar-local");
    assert_eq!(config["rest_basic_auth"], Value::Null);
    assert_eq!(config["max_routes"], 1024);
}

#[test]
fn bad_variables_are_named_and_secrets_are_not_echoed() {
    let output = run(&[("LEARNER_HTTP_ADDR", "localhost")], &["--print-config"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("LEARNER_HTTP_ADDR"), "{stderr}");

    let output = run(&[("LEARNER_REST_BASIC_AUTH", "no-colon-secret")], &["--print-config"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("LEARNER_REST_BASIC_AUTH"), "{stderr}");
    assert!(!stderr.contains("no-colon-secret"), "{stderr}");

    let output =
        run(&[("LEARNER_MODE", "kafka"), ("MAGNETAR_LEARNER_TOKEN", TOKEN)], &["--print-config"]);
    assert!(!output.status.success());
    assert!(String::from_utf8(output.stderr).unwrap().contains("LEARNER_KAFKA_BROKERS"));

    // --help shows the variable names but not a password or token set in the environment.
    let output = run(
        &[("LEARNER_REST_BASIC_AUTH", "u:help-secret"), ("MAGNETAR_LEARNER_TOKEN", TOKEN)],
        &["--help"],
    );
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("LEARNER_REST_BASIC_AUTH") && help.contains("LEARNER_MAX_DOWNSTREAMS"));
    assert!(help.contains("MAGNETAR_LEARNER_TOKEN") && help.contains("--open"), "{help}");
    assert!(!help.contains("help-secret") && !help.contains(TOKEN), "{help}");
}

#[test]
fn without_credentials_the_learner_does_not_start_unless_open_on_loopback() {
    let output = run(&[], &["--print-config"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("MAGNETAR_LEARNER_TOKEN") && stderr.contains("--open"), "{stderr}");
    let output = run(&[("LEARNER_HTTP_ADDR", ":8090")], &["--open", "--print-config"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("loopback"), "{stderr}");
    let output = run(&[("MAGNETAR_LEARNER_TOKEN", "short")], &["--print-config"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("--token") && !stderr.contains("short\""), "{stderr}");
}

#[tokio::test]
async fn an_open_learner_says_so_and_serves_without_credentials() {
    let (process, addr) = ChildProcess::spawn(
        "learner-open",
        &learner_bin(),
        &["--open", "--http-addr", "127.0.0.1:0"],
        Some("learner listening"),
    );
    let base = format!("http://{}", addr.unwrap());
    let bare = reqwest::Client::new();
    let body =
        serde_json::to_vec(&batch(&[record("o-1", "/o", &[("a", Outcome::Success)])])).unwrap();
    let (status, _, _) =
        post(&bare, &format!("{base}/topics/magnetar-telemetry"), V2_JSON, body).await;
    assert_eq!(status, 200);
    let (status, _) = get_json(&bare, &format!("{base}/params?route=/o")).await;
    assert_eq!(status, 200);
    let log = process.log_text();
    assert!(log.contains("learner is open"), "{log}");
    process.signal("TERM");
    let mut process = process;
    assert!(process.wait_exit(Duration::from_secs(20)).success(), "{}", process.log_text());
}

#[tokio::test]
async fn a_go_style_port_from_the_environment_serves() {
    let (process, addr) = ChildProcess::spawn_with_env(
        "learner-env",
        &learner_bin(),
        &[],
        &[
            ("LEARNER_HTTP_ADDR", ":0"),
            ("LEARNER_KAFKA_TOPIC", "env-topic"),
            ("MAGNETAR_LEARNER_TOKEN", TOKEN),
        ],
        Some("learner listening"),
    );
    let addr = addr.unwrap();
    assert!(addr.ip().is_unspecified(), "{addr}");
    let base = format!("http://127.0.0.1:{}", addr.port());
    let client = client();
    let (status, _) = get_json(&client, &format!("{base}/healthz")).await;
    assert_eq!(status, 200);
    // The topic from LEARNER_KAFKA_TOPIC is the one the embedded produce API serves.
    let body =
        serde_json::to_vec(&batch(&[record("e-1", "/e", &[("a", Outcome::Success)])])).unwrap();
    let (status, _, _) = post(&client, &format!("{base}/topics/env-topic"), V2_JSON, body).await;
    assert_eq!(status, 200);
    process.signal("TERM");
    let mut process = process;
    assert!(process.wait_exit(Duration::from_secs(20)).success(), "{}", process.log_text());
}
