//! The test-bed page in real Chromium (the Debian package), driven by playwright-core from
//! `test-bed/tests/page.mjs`, against real workerd processes, the learner and the lab's server.
//! Screenshots and the page's exports land in `results/e2e/browser/` (or `$MAGNETAR_ARTIFACTS`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use magnetar_e2e::{
    DownstreamSpec, Learner, Stack, TestBed, artifacts_dir, fleet_failing, free_port, node_bin,
    repo_root,
};
use serde_json::{Value, json};

/// How long one page script may run.
const PAGE_TIMEOUT: Duration = Duration::from_secs(600);

/// Kills the page script if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn learner_vars(learner: &Learner) -> Vec<(&'static str, String)> {
    vec![
        ("DEFAULT_ALGO", "round_robin".into()),
        ("KAFKA_REST_URL", learner.url.clone()),
        ("LEARNER_URL", learner.url.clone()),
    ]
}

fn page_script(config: &Value) -> Command {
    let mut command = Command::new(node_bin());
    command.arg(repo_root().join("test-bed/tests/page.mjs")).arg(config.to_string());
    command.current_dir(repo_root());
    command
}

/// How the compare test's downstreams are configured on their own (their Worker variables): the
/// page's controls must start from exactly this.
fn configured() -> Vec<Value> {
    vec![
        json!({ "mode": "All_fail", "percentage_fail": 100, "delay_ms": 0 }),
        json!({ "mode": "percentage_fail", "percentage_fail": 35, "delay_ms": 20 }),
        json!({ "mode": "percentage_fail", "percentage_fail": 90, "delay_ms": 0 }),
    ]
}

/// The controls show each downstream's own configuration on load; then the prototype's profile
/// set with the sliders, round robin against Thompson sampling interleaved with single attempts,
/// 1,500 requests each; then a change of the controls applies to the next requests of both. The
/// band arithmetic is in page.mjs, which checks it (round robin 3.33% ± 1.5 points, Thompson at
/// least 6% and 2.5 points above), with the charts, the posteriors and the interleaving; this test
/// checks the figures it reports once more and that the screenshot exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_thompson_sampling_beating_round_robin_on_the_prototype_profile() {
    let learner = Learner::start("browser-learner", &["--mode", "embedded"]);
    let fleet: Vec<DownstreamSpec> = configured()
        .into_iter()
        .enumerate()
        .map(|(i, behaviour)| DownstreamSpec {
            name: format!("downstream-{}", i + 1),
            behaviour,
            external_url: None,
        })
        .collect();
    let stack = Stack::start("browser", &fleet, &learner_vars(&learner));
    let bed = TestBed::start(&stack, &learner.url);
    let artifacts = artifacts_dir("browser");
    let config = json!({
        "mode": "compare",
        "url": bed.url,
        "artifacts": artifacts,
        "requests": 1500,
        "learner": learner.url,
        "configured": configured(),
    });
    let output = tokio::task::spawn_blocking(move || page_script(&config).output())
        .await
        .expect("join")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "page test failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        stack.logs()
    );
    let figures: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the page script prints its figures");
    let rr = figures["round_robin"].as_f64().expect("round robin rate");
    let ts = figures["thompson"].as_f64().expect("thompson rate");
    println!(
        "page: round robin {:.2}%, thompson {:.2}% (interleaved, 3 in flight each); \
         fixed rate 8/s achieved {:.2}/s per strategy; All_fail applied from request {}",
        rr * 100.0,
        ts * 100.0,
        figures["achieved_rps"].as_f64().unwrap_or(0.0),
        figures["fail_from"]
    );
    assert!((rr - 1.0 / 30.0).abs() <= 0.015, "round robin {rr}");
    assert!(ts >= 0.06 && ts >= rr + 0.025, "thompson {ts} vs round robin {rr}");
    assert!(artifacts.join("test-bed.png").is_file(), "screenshot saved");
    let exported: Value = serde_json::from_str(
        &std::fs::read_to_string(artifacts.join("test-bed-export.json")).expect("export"),
    )
    .expect("exported JSON parses");
    assert_eq!(exported["lanes"].as_array().map(Vec::len), Some(2));
    assert_eq!(exported["settings"]["interleaved"], true);
    assert_eq!(exported["settings"]["shape"]["concurrency"], 3);
    drop(bed);
    drop(stack);
    drop(learner);
}

/// A downstream whose configuration cannot be read gets a visible fallback note; a running
/// comparison loses its learner (the router still up: the run goes on, the posteriors are marked
/// stale), then its router (the run stops); a page opened with the router down says so. The page
/// must say each visibly rather than leave a chart that silently stops moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_reports_a_stopped_router_and_learner() {
    let mut learner = Learner::start("outage-learner", &["--mode", "embedded"]);
    let mut fleet = fleet_failing(&[0, 0]);
    let nobody = format!("http://127.0.0.1:{}", free_port());
    fleet.push(DownstreamSpec::external("downstream-3", &nobody));
    let mut stack = Stack::start("outage", &fleet, &learner_vars(&learner));
    let bed = TestBed::start(&stack, &learner.url);
    let artifacts = artifacts_dir("browser");
    let config = json!({
        "mode": "outage",
        "url": bed.url,
        "artifacts": artifacts,
        "unreachable": "downstream-3",
    });
    let stderr_log = artifacts.join("page-outage.stderr");
    let stderr = std::fs::File::create(&stderr_log).expect("stderr log");
    let child = page_script(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("run node");
    let mut page = KillOnDrop(child);
    let mut stdin = page.0.stdin.take().expect("stdin");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = page.0.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + PAGE_TIMEOUT;
    let wait_for = |marker: &str| {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.trim() == marker => return,
                Ok(line) => println!("page: {line}"),
                Err(_) => panic!(
                    "the page script never printed {marker}:\n{}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                ),
            }
        }
    };

    wait_for("READY_FOR_OUTAGE");
    learner.service.stop();
    writeln!(stdin, "learner-stopped").expect("write to page script");
    wait_for("LEARNER_MESSAGE_OK");
    stack.stop_router();
    writeln!(stdin, "router-stopped").expect("write to page script");
    wait_for("ROUTER_MESSAGE_OK");
    wait_for("LOAD_MESSAGE_OK");
    drop(stdin);
    let status = page.0.wait().expect("page script exit");
    assert!(
        status.success(),
        "page script failed:\n{}",
        std::fs::read_to_string(&stderr_log).unwrap_or_default()
    );
    assert!(artifacts.join("test-bed-router-stopped.png").is_file());
    assert!(artifacts.join("test-bed-router-down-at-load.png").is_file());
    drop(bed);
}
