//! The test-bed page in real Chromium (the Debian package), driven by playwright-core from
//! `test-bed/tests/page.mjs`, against real workerd processes, the learner and the lab's server.
//! Screenshots and the page's exports land in `results/e2e/browser/` (or `$MAGNETAR_ARTIFACTS`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use magnetar_e2e::{Learner, Stack, TestBed, artifacts_dir, fleet_failing, node_bin, repo_root};
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

/// The prototype's profile set with the sliders, round robin against Thompson sampling with
/// single attempts, 1,500 requests each. The band arithmetic is in page.mjs, which checks it
/// (round robin 3.33% ± 1.5 points, Thompson at least 6% and 2.5 points above); this test checks
/// the figures it reports once more and that the screenshot exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_thompson_sampling_beating_round_robin_on_the_prototype_profile() {
    let learner = Learner::start("browser-learner", &["--mode", "embedded"]);
    let stack = Stack::start("browser", &fleet_failing(&[0, 0, 0]), &learner_vars(&learner));
    let bed = TestBed::start(&stack.router_url, &learner.url);
    let artifacts = artifacts_dir("browser");
    let config =
        json!({ "mode": "compare", "url": bed.url, "artifacts": artifacts, "requests": 1500 });
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
    println!("page: round robin {:.2}%, thompson {:.2}%", rr * 100.0, ts * 100.0);
    assert!((rr - 1.0 / 30.0).abs() <= 0.015, "round robin {rr}");
    assert!(ts >= 0.06 && ts >= rr + 0.025, "thompson {ts} vs round robin {rr}");
    assert!(artifacts.join("test-bed.png").is_file(), "screenshot saved");
    let exported: Value = serde_json::from_str(
        &std::fs::read_to_string(artifacts.join("test-bed-export.json")).expect("export"),
    )
    .expect("exported JSON parses");
    assert_eq!(exported["lanes"].as_array().map(Vec::len), Some(2));
    drop(bed);
    drop(stack);
    drop(learner);
}

/// A running comparison loses its router, then the learner: the page must say so visibly (and
/// stop the run) rather than leave a chart that silently stops moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_reports_a_stopped_router_and_learner() {
    let mut learner = Learner::start("outage-learner", &["--mode", "embedded"]);
    let mut stack = Stack::start("outage", &fleet_failing(&[0, 0, 0]), &learner_vars(&learner));
    let bed = TestBed::start(&stack.router_url, &learner.url);
    let artifacts = artifacts_dir("browser");
    let config = json!({ "mode": "outage", "url": bed.url, "artifacts": artifacts });
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
    stack.stop_router();
    writeln!(stdin, "router-stopped").expect("write to page script");
    wait_for("ROUTER_MESSAGE_OK");
    learner.service.stop();
    writeln!(stdin, "learner-stopped").expect("write to page script");
    wait_for("LEARNER_MESSAGE_OK");
    drop(stdin);
    let status = page.0.wait().expect("page script exit");
    assert!(
        status.success(),
        "page script failed:\n{}",
        std::fs::read_to_string(&stderr_log).unwrap_or_default()
    );
    assert!(artifacts.join("test-bed-router-stopped.png").is_file());
    drop(bed);
}
