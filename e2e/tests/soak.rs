//! Soak: the whole local stack (router and downstreams in `wrangler dev`, the learner in its
//! default embedded mode with a state file) under steady load for a few minutes while faults are
//! injected one after the other:
//!
//! 1. warm-up;
//! 2. the learner is SIGKILLed and restarted on its port a few seconds later (from its state
//!    file and state log);
//! 3. the telemetry path (the REST endpoint the router posts to, through a relay the test
//!    controls) is cut: connections dropped and refused; restored at the end of the phase;
//! 4. a downstream hangs: it accepts requests and never answers; it recovers at the end;
//! 5. recovery, nothing injected.
//!
//! Checked: no client sees an error caused by those faults (every answer is 200: two of the three
//! downstreams are healthy throughout and the router has three attempts); no record the learner
//! acknowledged is lost and none is counted twice (the router's acknowledged batches equal the
//! learner's applied records at the end); the memory of the router's processes and of the
//! learner is flat. A report with the figures is written to `results/e2e/soak/report.md`.
//!
//! `MAGNETAR_SOAK_PHASE_SECS` sets the length of a phase (default 20 s: five phases, close to two minutes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use magnetar_e2e::{DownstreamSpec, Learner, Stack, artifacts_dir, counter, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Requests in flight, all the time.
const CONCURRENCY: usize = 4;

fn phase_length() -> Duration {
    let secs = std::env::var("MAGNETAR_SOAK_PHASE_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(20);
    Duration::from_secs(secs.max(5))
}

/// An origin that answers `200 ok`, or, while `hang` is set, reads the request and never
/// answers (it holds the connection until the client gives up).
fn hanging_origin(hang: Arc<AtomicBool>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind origin");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        while let Ok((mut socket, _)) = listener.accept().await {
            let hang = hang.clone();
            tokio::spawn(async move {
                if magnetar_e2e::read_request_head(&mut socket).await.is_none() {
                    return;
                }
                if hang.load(Ordering::Relaxed) {
                    // Never answers: the router's attempt deadline has to end this.
                    let _ = socket.read(&mut [0u8; 1]).await;
                    return;
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

/// A TCP relay from a new loopback port to `target`; while `cut` is true it drops the
/// connections it holds and closes new ones at once.
fn relay(target: u16, cut: watch::Receiver<bool>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind relay");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        while let Ok((mut client, _)) = listener.accept().await {
            if *cut.borrow() {
                drop(client);
                continue;
            }
            let mut cut = cut.clone();
            tokio::spawn(async move {
                let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                    _ = cut.wait_for(|c| *c) => {}
                }
            });
        }
    });
    url
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    slowest_ms: AtomicU64,
}

/// Keeps [`CONCURRENCY`] requests in flight until `stop` turns true.
fn load(
    url: String,
    tally: Arc<Tally>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    (0..CONCURRENCY)
        .map(|_| {
            let (client, url, tally, stop) =
                (client.clone(), url.clone(), tally.clone(), stop.clone());
            tokio::spawn(async move {
                while !*stop.borrow() {
                    let started = Instant::now();
                    let status = client.get(&url).send().await.map(|r| r.status().as_u16());
                    let ms = started.elapsed().as_millis() as u64;
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                    tally.slowest_ms.fetch_max(ms, Ordering::Relaxed);
                    match status {
                        Ok(200) => tally.ok.fetch_add(1, Ordering::Relaxed),
                        other => {
                            eprintln!("client error: {other:?}");
                            tally.errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_holds_steady_load_through_faults_and_loses_no_record() {
    let phase = phase_length();
    let admin = reqwest::Client::new();
    let state_dir = std::env::temp_dir().join(format!("magnetar-soak-{}", std::process::id()));
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let state_file = state_dir.join("learner-state.json");
    let state_arg = state_file.to_string_lossy().into_owned();
    let learner_args = ["--mode", "embedded", "--state-file", &state_arg];
    let learner_port = free_port();
    let learner = Learner::start_on("soak-learner", learner_port, &learner_args);

    let (cut_tx, cut_rx) = watch::channel(false);
    let rest_url = relay(learner_port, cut_rx);
    let hang = Arc::new(AtomicBool::new(false));
    let hanger = hanging_origin(hang.clone());
    let fleet = [
        DownstreamSpec::failing("downstream-1", 0),
        DownstreamSpec::failing("downstream-2", 0),
        DownstreamSpec::external("hanger", &hanger),
    ];
    let vars = [
        ("KAFKA_REST_URL", rest_url),
        ("LEARNER_URL", learner.url.clone()),
        ("LEARNER_TIMEOUT_MS", "200".into()),
        ("PARAMS_REFRESH_MS", "1000".into()),
        ("ATTEMPT_TIMEOUT_MS", "1000".into()),
        ("MAX_ATTEMPTS", "3".into()),
    ];
    let stack = Stack::start("soak", &fleet, &vars);

    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = load(format!("{}/service", stack.router_url), tally.clone(), stop_rx);
    let mut report = vec![
        "| phase | requests | client errors | slowest (ms) | router RSS (MiB) | learner RSS (MiB) |"
            .to_owned(),
        "|---|---:|---:|---:|---:|---:|".to_owned(),
    ];
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut done = 0u64;
    let mut errors_before = 0u64;
    let mut row = |name: &str, stack: &Stack, learner: &Learner| {
        let requests = tally.requests.load(Ordering::Relaxed);
        let errors = tally.errors.load(Ordering::Relaxed);
        let slowest = tally.slowest_ms.swap(0, Ordering::Relaxed);
        report.push(format!(
            "| {name} | {} | {} | {slowest} | {:.1} | {:.1} |",
            requests - done,
            errors - errors_before,
            mib(stack.rss_kib()),
            mib(learner.service.rss_kib())
        ));
        done = requests;
        errors_before = errors;
    };

    tokio::time::sleep(phase).await;
    row("warm-up", &stack, &learner);
    let router_rss_warm = stack.rss_kib();
    let by_service_warm = stack.rss_by_service();
    let learner_rss_warm = learner.service.rss_kib();

    learner.service.signal_group("KILL");
    drop(learner);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let learner = Learner::start_on("soak-learner-restarted", learner_port, &learner_args);
    tokio::time::sleep(phase.saturating_sub(Duration::from_secs(3))).await;
    row("learner SIGKILLed, restarted after 3 s", &stack, &learner);
    let learner_rss_restarted = learner.service.rss_kib();

    cut_tx.send_replace(true);
    tokio::time::sleep(phase).await;
    cut_tx.send_replace(false);
    row("telemetry path cut", &stack, &learner);

    hang.store(true, Ordering::Relaxed);
    tokio::time::sleep(phase).await;
    hang.store(false, Ordering::Relaxed);
    row("a downstream hangs", &stack, &learner);

    tokio::time::sleep(phase).await;
    row("recovery", &stack, &learner);
    stop_tx.send_replace(true);
    for w in workers {
        w.await.expect("load task");
    }

    let requests = tally.requests.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    let state = stack.router_state_settled(&admin, requests).await;
    let (sent, failed) =
        (counter(&state, "telemetry_batches_sent"), counter(&state, "telemetry_batches_failed"));
    // Not a wait for a condition: a quiet period in which a record counted twice would show.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let stats = learner.stats(&admin).await;
    let applied = stats["records_applied"].as_u64().unwrap_or(0);
    let router_rss_end = stack.rss_kib();
    let learner_rss_end = learner.service.rss_kib();

    report.push(String::new());
    report.push(format!(
        "{requests} requests at {CONCURRENCY} in flight over {} s ({:.0} requests/s), {errors} client errors; \
         telemetry: {sent} batches acknowledged, {failed} refused while the learner or the path was down, \
         {applied} records applied by the learner at the end ({} stored though their answer was lost); \
         router RSS {:.1} -> {:.1} MiB, learner RSS {:.1} MiB (first process after warm-up), \
         {:.1} -> {:.1} MiB (restarted process).",
        phase.as_secs() * 5,
        requests as f64 / (phase.as_secs_f64() * 5.0),
        applied.saturating_sub(sent),
        mib(router_rss_warm),
        mib(router_rss_end),
        mib(learner_rss_warm),
        mib(learner_rss_restarted),
        mib(learner_rss_end),
    ));
    for ((name, warm), (_, end)) in by_service_warm.iter().zip(stack.rss_by_service()) {
        report.push(format!("- `wrangler dev` {name}: {:.1} -> {:.1} MiB", mib(*warm), mib(end)));
    }
    let text = report.join("\n");
    println!("{text}");
    std::fs::write(artifacts_dir("soak").join("report.md"), format!("{text}\n")).expect("report");

    assert_eq!(errors, 0, "client errors during the soak:\n{text}");
    assert!(
        failed > 0,
        "the faults did refuse telemetry (else the test injected nothing):\n{text}"
    );
    assert_eq!(sent + failed, requests, "one batch per request: {state}");
    // Nothing acknowledged is lost: every acknowledged record is applied. A batch whose answer
    // was lost (the learner killed between its sync and its answer, or the path cut mid-answer)
    // is stored though the router counted it failed, so `applied` may exceed `sent` by those; it
    // cannot exceed the records posted (the router posts each batch once), so nothing is
    // counted twice.
    assert!(applied >= sent, "acknowledged records lost:\n{text}\n{stats}");
    assert!(applied <= sent + failed, "records counted twice:\n{text}\n{stats}");
    assert_eq!(stats["duplicates"].as_u64(), Some(0), "{stats}");
    // Flat: the end within 50% (plus 32 MiB of allocator slack) of what the process held after
    // its warm-up; a leak of a few KiB per request would pass that many times over.
    assert!(router_rss_end <= router_rss_warm * 3 / 2 + 32 * 1024, "router memory grew:\n{text}");
    assert!(
        learner_rss_end <= learner_rss_restarted * 3 / 2 + 32 * 1024,
        "learner memory grew:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&state_dir);
}
