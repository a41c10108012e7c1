//! The lab end to end: `magnetar-lab run` (driven through its own argument parser) against real
//! workerd processes, with HAProxy and nginx started by the lab on the same fleet; the table and
//! the files it writes; the page's metrics.js recomputing the lab's figures from its samples.

use std::fs;
use std::process::Command;

use magnetar_e2e::{Stack, artifacts_dir, fleet_failing, node_bin, repo_root};
use serde_json::Value;

const REQUESTS: usize = 300;
const LANES: [&str; 4] = ["round_robin", "thompson", "haproxy", "nginx"];

fn lane<'a>(report: &'a Value, label: &str) -> &'a Value {
    report["lanes"]
        .as_array()
        .and_then(|lanes| lanes.iter().find(|l| l["label"] == label))
        .unwrap_or_else(|| panic!("no lane {label} in results.json"))
}

fn copy_artifacts(from: &std::path::Path, name: &str) {
    let to = artifacts_dir(name);
    for entry in fs::read_dir(from).expect("results dir").flatten() {
        let _ = fs::copy(entry.path(), to.join(entry.file_name()));
    }
}

/// The prototype's profile (100% / 100% / 90% failures) with three attempts, the lanes interleaved
/// at the default concurrency (3 per lane, what the page does). Every request fails on
/// downstream-1 and downstream-2, so a lane that retries uses (nearly) all three tries: at least
/// 2.5 attempts per request for every lane, HAProxy and nginx included (a peer that does not retry
/// fails this), and a first-attempt success below 20% (at most 10% in expectation: only
/// downstream-3 succeeds; Binomial(300, 0.1) has sd 1.7 points). With distinct downstreams (the
/// router) a request succeeds exactly when its try on downstream-3 does: 10%, band 3% to 17%, 4 sd
/// on each side. The peers may try downstream-3 twice (HAProxy's redispatch avoids only the last
/// server; both list backup copies), up to 27%, so they get a wider band; how often they repeat a
/// downstream is measured per request and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_compares_strategies_with_haproxy_and_nginx_and_writes_its_files() {
    // The downstreams' own settings do not matter: every request carries the scenario's header.
    // Without the retry budget: the lanes are compared on what three attempts do.
    let vars = [("DEFAULT_ALGO", "round_robin".into()), ("RETRY_BUDGET_PERCENT", "off".into())];
    let stack = Stack::start("lab", &fleet_failing(&[0, 0, 0]), &vars);
    let out = stack.dir.join("lab-results");
    let requests = REQUESTS.to_string();
    let options = magnetar_lab::cli::run_options_from([
        "magnetar-lab",
        "run",
        "--router",
        stack.router_url.as_str(),
        "--scenario",
        "prototype",
        "--algos",
        "round_robin,thompson",
        "--peers",
        "haproxy,nginx",
        "--requests",
        requests.as_str(),
        "--start-stack",
        "never",
        "--admin-token",
        &stack.admin_token,
        "--no-progress",
        "--out-dir",
        out.to_str().expect("utf-8 path"),
    ])
    .expect("arguments");
    let output = magnetar_lab::run::run(&options)
        .await
        .unwrap_or_else(|e| panic!("lab run failed: {e:#}\n{}", stack.logs()));
    magnetar_lab::cli::print_run(&output);
    copy_artifacts(&out, "lab");

    for file in ["results.json", "summary.csv", "samples.csv", "table.md", "chart.svg"] {
        assert!(out.join(file).is_file(), "{file} not written");
    }

    let table = fs::read_to_string(out.join("table.md")).expect("table.md");
    assert!(
        table.contains(
            "scenario prototype (3 downstreams), 300 requests per lane, lanes interleaved, concurrency 3 per lane"
        ),
        "{table}"
    );
    assert!(table.contains("| repeat tries |"), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 1 + LANES.len(), "header and one row per lane:\n{table}");
    for (row, label) in
        rows[1..].iter().zip(["round_robin", "thompson", "haproxy (peer)", "nginx (peer)"])
    {
        assert!(row.starts_with(&format!("| {label} |")), "row {row:?} is not {label}");
        assert_eq!(row.matches('|').count(), 11, "ten columns: {row}");
    }

    let report: Value =
        serde_json::from_str(&fs::read_to_string(out.join("results.json")).expect("json"))
            .expect("results.json parses");
    assert_eq!(
        report["fleet"],
        serde_json::json!(["downstream-1", "downstream-2", "downstream-3"])
    );
    assert_eq!(report["max_attempts"], 3);
    assert_eq!(report["schema"], 2);
    assert_eq!(report["load"]["concurrency"], 3, "the page's concurrency per lane by default");
    // The peers' tuning is recorded with the results.
    let tuning = &report["peer_tuning"];
    assert_eq!(tuning["haproxy_error_limit"], 1, "{tuning}");
    assert_eq!(tuning["haproxy_rise"], 3, "{tuning}");
    assert_eq!(tuning["haproxy_fastinter_ms"], 10_000, "{tuning}");
    assert_eq!(tuning["nginx_max_fails"], 10, "{tuning}");
    assert_eq!(tuning["nginx_fail_timeout_s"], 5, "{tuning}");
    assert_eq!(tuning["backups"], true, "{tuning}");
    assert!(report["definitions"]["success"].as_str().is_some_and(|d| d.contains("below 500")));
    for label in LANES {
        let lane = lane(&report, label);
        let s = &lane["summary"];
        let samples = lane["samples"].as_array().expect("samples");
        assert_eq!(samples.len(), REQUESTS, "{label}: samples");
        assert_eq!(s["requests"], REQUESTS, "{label}");
        assert_eq!(s["errors"], 0, "{label}: every request answered");
        assert_eq!(s["traffic_share_source"], "downstream_counters", "{label}");
        // Attempts as the lane read them (router header, nginx $upstream_status, HAProxy log)
        // equal the work requests the downstreams counted themselves.
        let counted: u64 = lane["downstream_counts"]
            .as_array()
            .expect("downstream counts")
            .iter()
            .map(|c| c["requests"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(
            s["attempts"].as_u64(),
            Some(counted),
            "{label}: attempts vs downstream counters"
        );
        for sample in samples {
            let attempts = sample["attempts"].as_u64().unwrap_or(99);
            assert!((1..=3).contains(&attempts), "{label}: attempts {attempts} in {sample}");
        }
        let peer = lane["kind"] == "peer";
        let rate = s["success_rate"].as_f64().expect("success rate");
        let upper = if peer { 0.35 } else { 0.17 };
        assert!((0.03..=upper).contains(&rate), "{label}: success {rate:.3} outside 3%..{upper}");
        let per_request = s["attempts_per_request"].as_f64().expect("attempts per request");
        assert!(per_request >= 2.5, "{label}: {per_request:.2} attempts per request: no retries?");
        let first = s["first_attempt_success_rate"].as_f64().expect("first-attempt success");
        assert!(first < 0.2, "{label}: first-attempt success {first:.3}");
        // Peers report the downstream of every try, and how often a retry went back to one.
        if peer {
            for sample in samples {
                let tried = sample["tried"].as_array().expect("tries of a peer request");
                assert_eq!(
                    tried.len() as u64,
                    sample["attempts"].as_u64().unwrap_or(0),
                    "{sample}"
                );
            }
            assert!(s["repeat_try_rate"].as_f64().is_some(), "{label}: repeat tries measured");
        } else {
            assert!(s["repeat_try_rate"].is_null(), "{label}: the router does not report tries");
        }
        println!(
            "{label}: success {:.1}%, first-attempt {:.1}%, {per_request:.2} attempts/request, \
             repeat tries {}",
            rate * 100.0,
            first * 100.0,
            s["repeat_try_rate"]
                .as_f64()
                .map_or("–".to_owned(), |r| format!("{:.1}%", r * 100.0))
        );
    }

    // Interleaved: request i of every lane left at the same moment.
    let sent = |label: &str| -> Vec<f64> {
        let mut by_index: Vec<(u64, f64)> = lane(&report, label)["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .map(|x| (x["index"].as_u64().unwrap_or(0), x["sent_ms"].as_f64().unwrap_or(-1.0)))
            .collect();
        by_index.sort_by_key(|(i, _)| *i);
        by_index.into_iter().map(|(_, t)| t).collect()
    };
    let first_lane = sent(LANES[0]);
    for label in &LANES[1..] {
        assert_eq!(sent(label), first_lane, "{label}: request i left with round i of every lane");
    }

    let summary_csv = fs::read_to_string(out.join("summary.csv")).expect("summary.csv");
    assert_eq!(summary_csv.lines().count(), 1 + LANES.len());
    assert!(summary_csv.starts_with("lane,kind,requests,successes,success_rate"));
    let samples_csv = fs::read_to_string(out.join("samples.csv")).expect("samples.csv");
    assert_eq!(samples_csv.lines().count(), 1 + LANES.len() * REQUESTS);
    let svg = fs::read_to_string(out.join("chart.svg")).expect("chart.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), LANES.len(), "one line per lane");

    // The page's metrics.js computes the same figures from the same samples.
    let check = Command::new(node_bin())
        .arg(repo_root().join("test-bed/tests/metrics-check.mjs"))
        .arg(out.join("results.json"))
        .output()
        .expect("run node");
    assert!(
        check.status.success(),
        "metrics.js disagrees with the lab:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// With no router at the given address the lab starts a stack of its own (downstreams and router
/// from config/workers.json, on free ports), runs at a fixed rate, and stops it all afterwards.
/// The non-stationary scenario switches phases at request 50 of 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_starts_a_stack_when_none_runs() {
    let unused = format!("http://127.0.0.1:{}", magnetar_e2e::free_port());
    let out = std::env::temp_dir().join(format!("magnetar-e2e-lab-own-{}", std::process::id()));
    let options = magnetar_lab::cli::run_options_from([
        "magnetar-lab",
        "run",
        "--router",
        unused.as_str(),
        "--scenario",
        "nonstationary",
        "--algos",
        "round_robin",
        "--peers",
        "none",
        "--requests",
        "100",
        "--rate",
        "50",
        "--no-progress",
        "--out-dir",
        out.to_str().expect("utf-8 path"),
    ])
    .expect("arguments");
    let output = magnetar_lab::run::run(&options).await.expect("lab run with its own stack");
    magnetar_lab::cli::print_run(&output);
    let report = &output.report;
    assert_ne!(report.router, unused, "the lab used the stack it started");
    assert_eq!(report.phase_starts, vec![0, 50]);
    assert_eq!(report.lanes.len(), 1);
    let lane = &report.lanes[0];
    assert_eq!(lane.summary.requests, 100);
    assert_eq!(lane.summary.errors, 0);
    // 100 requests at 50/s: the last leaves at 1.98 s.
    let last = lane.samples.iter().map(|s| s.sent_ms).fold(0.0, f64::max);
    assert!((1900.0..3000.0).contains(&last), "last request sent at {last} ms");
    // The stack is gone with the run: its router no longer answers.
    let client = reqwest::Client::new();
    let gone = client.get(format!("{}/_magnetar/health", report.router)).send().await;
    assert!(gone.is_err(), "the lab's own stack is still running at {}", report.router);
    let _ = fs::remove_dir_all(&out);
}
