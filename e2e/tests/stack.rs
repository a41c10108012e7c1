//! The one-command local stack: `scripts/stack.sh` (embedded mode, then `--kafka`) brings up every
//! downstream of config/workers.json, the router, the learner and the test-bed page on the
//! configured ports, prints where they are, serves traffic end to end, and on Ctrl-C (SIGINT to
//! its process group, as a terminal sends it) stops every process it started: afterwards nothing
//! listens on any of the stack's ports.
//!
//! The stack uses the fixed ports of config/workers.json, so this file holds one test that runs
//! the two modes one after the other.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use magnetar_e2e::{Service, learner_token, repo_root};
use serde_json::Value;

/// First start may build the Workers; the learner and the page server are built already.
const UP_TIMEOUT: Duration = Duration::from_secs(600);
const DOWN_TIMEOUT: Duration = Duration::from_secs(30);

fn config() -> Value {
    let text = std::fs::read_to_string(repo_root().join("config/workers.json")).expect("config");
    serde_json::from_str(&text).expect("config/workers.json is JSON")
}

fn port(v: &Value, default: u64) -> u16 {
    u16::try_from(v.as_u64().unwrap_or(default)).expect("port")
}

/// Every port the stack serves on, by name.
fn ports(config: &Value, kafka: bool) -> Vec<(String, u16)> {
    let mut out = vec![
        ("router".to_owned(), port(&config["router"]["port"], 8787)),
        ("learner".to_owned(), port(&config["learner"]["port"], 8090)),
        ("test-bed".to_owned(), port(&config["test_bed"]["port"], 8080)),
    ];
    for d in config["downstreams"].as_array().expect("downstreams") {
        out.push((d["name"].as_str().expect("name").to_owned(), port(&d["port"], 0)));
    }
    if kafka {
        out.push(("kafka".to_owned(), port(&config["kafka"]["port"], 19092)));
        out.push(("bridge".to_owned(), port(&config["kafka"]["bridge_port"], 8091)));
    }
    out
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

async fn run_stack(args: &[&str]) {
    let kafka = args.contains(&"--kafka");
    let config = config();
    let ports = ports(&config, kafka);
    for (name, p) in &ports {
        assert!(!listening(*p), "port {p} ({name}) is taken before the stack starts");
    }
    let log = std::env::temp_dir().join(format!(
        "magnetar-e2e-stack-{}-{}.log",
        std::process::id(),
        args.len()
    ));
    // As from a terminal, SIGINT must reach stack.sh's trap: a shell that starts a command in
    // the background (`cmd &`, as CI runners and nohup-style launchers may) has it ignored, and
    // a signal ignored when bash starts cannot be trapped. `env --default-signal` restores it.
    let mut command = Command::new("env");
    command
        .args(["--default-signal=INT", "bash"])
        .arg(repo_root().join("scripts/stack.sh"))
        .args(args)
        .env("MAGNETAR_PROFILE", "debug")
        .env("MAGNETAR_LEARNER_TOKEN", learner_token())
        .current_dir(repo_root());
    let mut stack = Service::spawn("stack", command, log.clone());

    let started = Instant::now();
    let printed = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Press Ctrl-C to stop everything.") {
            break text;
        }
        if started.elapsed() > UP_TIMEOUT || stack.exited() {
            stack.stop();
            panic!("stack.sh did not come up:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let (router, learner, page) = (ports[0].1, ports[1].1, ports[2].1);
    for url in [
        format!("http://127.0.0.1:{page}/"),
        format!("http://127.0.0.1:{router}/service"),
        format!("http://127.0.0.1:{learner}/recommendation"),
    ] {
        assert!(printed.contains(&url), "stack.sh does not print {url}:\n{printed}");
    }

    let client = reqwest::Client::new();
    let page_status = client.get(format!("http://127.0.0.1:{page}/")).send().await;
    assert_eq!(page_status.map(|r| r.status().as_u16()).ok(), Some(200), "test-bed page");
    // Every request is answered by the router, which names the downstream it ended on.
    for _ in 0..30 {
        let response = client
            .post(format!("http://127.0.0.1:{router}/service?algo=thompson"))
            .send()
            .await
            .expect("router answers");
        let status = response.status().as_u16();
        assert!(status == 200 || status == 502, "router answered {status}");
        assert!(response.headers().contains_key("x-magnetar-worker"));
        assert_eq!(response.headers()["x-magnetar-algo"], "thompson");
    }
    // ... and its telemetry reaches the learner (through tansu in Kafka mode).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stats: Value = client
            .get(format!("http://127.0.0.1:{learner}/stats"))
            .bearer_auth(learner_token())
            .send()
            .await
            .expect("learner answers")
            .json()
            .await
            .expect("stats JSON");
        if stats["records_applied"].as_u64().unwrap_or(0) >= 30 {
            break;
        }
        assert!(Instant::now() < deadline, "telemetry did not reach the learner: {stats}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Ctrl-C: the terminal signals the foreground process group.
    stack.signal_group("INT");
    let deadline = Instant::now() + DOWN_TIMEOUT;
    while !stack.exited() {
        assert!(Instant::now() < deadline, "stack.sh did not exit after SIGINT");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    loop {
        let left: Vec<_> = ports.iter().filter(|(_, p)| listening(*p)).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still listening after Ctrl-C: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ... and no process it started is left, workerd included: everything stack.sh starts runs
    // in the repository (wrangler, its workerd and esbuild, the learner, tansu, the page server).
    loop {
        let left = stack_processes_left();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left running after Ctrl-C: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("stopping"), "stack.sh did not report stopping:\n{text}");
}

/// Programs the stack starts that still run with the repository as working directory.
fn stack_processes_left() -> Vec<String> {
    const PROGRAMS: [&str; 6] =
        ["workerd", "node", "esbuild", "tansu", "magnetar-learner", "magnetar-lab"];
    let root = repo_root().canonicalize().unwrap_or_else(|_| repo_root());
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == root))
        .filter_map(|e| {
            let exe = std::fs::read_link(e.path().join("exe")).ok()?;
            let name = exe.file_name()?.to_string_lossy().into_owned();
            PROGRAMS
                .contains(&name.as_str())
                .then(|| format!("{} {name}", e.file_name().to_string_lossy()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_starts_the_stack_and_ctrl_c_stops_all_of_it() {
    run_stack(&[]).await;
    run_stack(&["--kafka"]).await;
}
