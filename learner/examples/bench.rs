//! Learner figures: ingest throughput (REST embedded, REST bridge -> Kafka, Kafka consumer),
//! `/recommendation` and `/params` latency under concurrent load, and resident memory at 10 and
//! 1,000 downstreams. A measurement, not a test: it prints numbers and asserts nothing.
//!
//!     cargo run --release -p magnetar-learner --example bench
//!
//! The learner under test runs as a child process (this binary re-executed with `--serve`), so
//! its RSS is the learner's alone; the load generator shares the machine's cores with it. The
//! Kafka figures need tansu (`PATH`, `~/.cargo/bin` or `TANSU_BIN`) and are skipped without it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use magnetar_core::Outcome;
use magnetar_core::telemetry::{AttemptTelemetry, TELEMETRY_SCHEMA, TelemetryRecord};
use magnetar_learner::config::{Args, LearnerConfig};
use serde_json::{Value, json};

const V2_JSON: &str = "application/vnd.kafka.json.v2+json";
const CLIENTS: usize = 8;
/// The bearer token the learners under test ask for (the routers' `LEARNER_TOKEN`).
const TOKEN: &str = "bench-token-0123456789";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if args.get(1).map(String::as_str) == Some("--serve") {
        let mut learner_args = vec!["magnetar-learner".to_owned()];
        learner_args.extend(args[2..].iter().cloned());
        runtime.block_on(serve(learner_args));
    } else if args.get(1).map(String::as_str) == Some("--durable") {
        runtime.block_on(durable());
    } else {
        runtime.block_on(bench());
    }
}

/// The child: a plain learner, announcing its address on stdout.
async fn serve(args: Vec<String>) {
    use clap::Parser;
    let config = LearnerConfig::try_from(Args::parse_from(args)).expect("learner config");
    let listener = tokio::net::TcpListener::bind(config.http_addr).await.expect("bind");
    println!("listening {}", listener.local_addr().expect("addr"));
    magnetar_learner::run(listener, config, std::future::pending()).await.expect("learner");
}

struct Learner {
    child: Child,
    url: String,
}

impl Learner {
    fn start(args: &[&str]) -> Learner {
        let exe = std::env::current_exe().expect("current exe");
        let mut child = Command::new(exe)
            .arg("--serve")
            .args(["--http-addr", "127.0.0.1:0", "--token", TOKEN])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn learner");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("learner address");
        let addr = line.trim().strip_prefix("listening ").expect("announce").to_owned();
        Learner { child, url: format!("http://{addr}") }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn record(i: usize, route: &str, downstreams: usize) -> TelemetryRecord {
    let now = now_ms();
    let d = i % downstreams;
    let outcome = if (i / downstreams) % 10 == 0 { Outcome::ServerError } else { Outcome::Success };
    TelemetryRecord {
        schema: TELEMETRY_SCHEMA,
        request_id: format!("bench-{route}-{i}"),
        caller_id: None,
        route: route.to_owned(),
        strategy: "learner".into(),
        router_instance: "bench".into(),
        started_ms: now - 5,
        finished_ms: now,
        attempts: vec![AttemptTelemetry {
            downstream: format!("downstream-{d}"),
            status: Some(if outcome.is_success() { 200 } else { 500 }),
            outcome,
            latency_ms: 1.0 + (i % 50) as f64,
            hedged: false,
        }],
        final_outcome: outcome,
        final_status: if outcome.is_success() { 200 } else { 500 },
        pool: None,
        experiment: None,
        variant: None,
    }
}

fn body(records: &[TelemetryRecord]) -> Vec<u8> {
    let records: Vec<Value> = records.iter().map(|r| json!({"key": r.route, "value": r})).collect();
    serde_json::to_vec(&json!({ "records": records })).unwrap_or_default()
}

/// Posts `total` records in batches of `per_batch` from `CLIENTS` concurrent clients; records/s.
async fn post_all(
    client: &reqwest::Client,
    url: &str,
    route: &str,
    total: usize,
    per_batch: usize,
    downstreams: usize,
) -> f64 {
    post_from(client, CLIENTS, url, route, total, per_batch, downstreams).await
}

/// [`post_all`] from `clients` concurrent clients.
async fn post_from(
    client: &reqwest::Client,
    clients: usize,
    url: &str,
    route: &str,
    total: usize,
    per_batch: usize,
    downstreams: usize,
) -> f64 {
    let bodies: Vec<Vec<u8>> = (0..total)
        .step_by(per_batch)
        .map(|s| {
            body(
                &(s..(s + per_batch).min(total))
                    .map(|i| record(i, route, downstreams))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = format!("{url}/topics/magnetar-telemetry");
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, bodies, next, url) =
                (client.clone(), bodies.clone(), next.clone(), url.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(b) = bodies.get(i) else { break };
                    let r = client
                        .post(&url)
                        .header("content-type", V2_JSON)
                        .body(b.clone())
                        .send()
                        .await
                        .expect("post");
                    assert!(r.status().is_success(), "produce failed: {}", r.status());
                    let _ = r.bytes().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

async fn stats(client: &reqwest::Client, url: &str) -> Value {
    let r = client.get(format!("{url}/stats")).send().await.expect("stats");
    r.json().await.expect("stats json")
}

/// `requests` GETs of `path` from `CLIENTS` concurrent clients: (p50 ms, p99 ms, req/s).
async fn latency(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    requests: usize,
) -> (f64, f64, f64) {
    let per_client = requests / CLIENTS;
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, target) = (client.clone(), format!("{url}{path}"));
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let t = Instant::now();
                    let r = client.get(&target).send().await.expect("get");
                    assert!(r.status().is_success(), "{target}: {}", r.status());
                    let _ = r.bytes().await;
                    samples.push(t.elapsed().as_secs_f64() * 1e3);
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let q = |p: f64| all[((p * all.len() as f64) as usize).min(all.len() - 1)];
    (q(0.5), q(0.99), rate)
}

fn tansu_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join("tansu")).find(|p| p.is_file())
}

/// `--durable`: embedded ingest with a state file (every batch synced before its 200) as the
/// number of concurrent clients grows: group commit shares one sync among the batches waiting.
async fn durable() {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .default_headers(auth_headers())
        .build()
        .expect("client");
    println!("durable ingest (embedded, --state-file), 100-record batches, {} cores", cores());
    let dir = std::env::temp_dir().join(format!("learner-bench-durable-{}", std::process::id()));
    println!("  (beside it, the same load on a learner without a state file, in the same run)");
    for clients in [8usize, 32, 64] {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let state = dir.join("state.json");
        let learner =
            Learner::start(&["--mode", "embedded", "--state-file", state.to_str().expect("utf-8")]);
        let durable = post_from(&client, clients, &learner.url, "/durable", 200_000, 100, 10).await;
        drop(learner);
        let learner = Learner::start(&["--mode", "embedded"]);
        let memory = post_from(&client, clients, &learner.url, "/memory", 200_000, 100, 10).await;
        drop(learner);
        println!(
            "  {clients:>3} clients: {durable:>9.0} records/s durable, {memory:>9.0} without a state file ({:.0}%)",
            100.0 * durable / memory
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn auth_headers() -> reqwest::header::HeaderMap {
    let mut auth = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {TOKEN}").parse().expect("header value");
    auth.insert(reqwest::header::AUTHORIZATION, bearer);
    auth
}

async fn bench() {
    let mut auth = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {TOKEN}").parse().expect("header value");
    auth.insert(reqwest::header::AUTHORIZATION, bearer);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .default_headers(auth)
        .build()
        .expect("client");
    println!("learner bench: {CLIENTS} concurrent clients on the same {}-core machine", cores());
    println!();

    // REST ingest, embedded mode.
    let learner = Learner::start(&["--mode", "embedded", "--dedupe-window", "65536"]);
    let single = post_all(&client, &learner.url, "/single", 20_000, 1, 10).await;
    let batched = post_all(&client, &learner.url, "/batched", 200_000, 100, 10).await;
    println!("REST ingest (embedded), 1-record batches (router style): {single:>9.0} records/s");
    println!("REST ingest (embedded), 100-record batches:              {batched:>9.0} records/s");
    drop(learner);

    // The same with a state file (embedded mode's durability: see the learner's journal).
    let dir = std::env::temp_dir().join(format!("learner-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let state = dir.join("state.json");
    let state = state.to_str().expect("utf-8 path");
    let learner = Learner::start(&["--mode", "embedded", "--state-file", state]);
    let single = post_all(&client, &learner.url, "/single", 20_000, 1, 10).await;
    let batched = post_all(&client, &learner.url, "/batched", 200_000, 100, 10).await;
    println!("REST ingest (embedded, --state-file), 1-record batches:  {single:>9.0} records/s");
    println!("REST ingest (embedded, --state-file), 100-record batches:{batched:>9.0} records/s");
    drop(learner);
    let _ = std::fs::remove_dir_all(&dir);

    // Latency and memory at 10 and 1,000 downstreams.
    for downstreams in [10usize, 1_000] {
        let learner = Learner::start(&["--mode", "embedded"]);
        let idle = learner.rss_kib();
        post_all(&client, &learner.url, "/service", downstreams * 200, 100, downstreams).await;
        let rss = learner.rss_kib();
        let candidates: Vec<String> = (0..downstreams).map(|d| format!("downstream-{d}")).collect();
        let rec_path = if downstreams <= 10 {
            format!(
                "/recommendation?route=/service&candidates={}&exclude=downstream-0",
                candidates.join(",")
            )
        } else {
            "/recommendation?route=/service&exclude=downstream-0".to_owned()
        };
        let (r50, r99, rrate) = latency(&client, &learner.url, &rec_path, 20_000).await;
        let (p50, p99, prate) =
            latency(&client, &learner.url, "/params?route=/service", 20_000).await;
        println!();
        println!("{downstreams} downstreams on one route ({} observations):", downstreams * 200);
        println!("  RSS: {:.1} MiB (idle {:.1} MiB)", rss as f64 / 1024.0, idle as f64 / 1024.0);
        println!("  /recommendation: p50 {r50:.3} ms, p99 {r99:.3} ms, {rrate:.0} req/s");
        println!("  /params:         p50 {p50:.3} ms, p99 {p99:.3} ms, {prate:.0} req/s");
    }

    // Kafka: bridge ingest, then a fresh consumer draining the topic.
    println!();
    let Some(tansu) = tansu_bin() else {
        println!("Kafka figures skipped: tansu not found");
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let listen = format!("tcp://127.0.0.1:{port}");
    let mut broker = Command::new(tansu)
        .args(["broker", "--listener-url", &listen, "--advertised-listener-url", &listen])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let brokers = format!("127.0.0.1:{port}");
    let total = 100_000;
    let bridge = Learner::start(&["--mode", "bridge", "--kafka-brokers", &brokers]);
    let bridged = post_all(&client, &bridge.url, "/kafka", total, 100, 10).await;
    println!("REST ingest (bridge -> Kafka), 100-record batches:       {bridged:>9.0} records/s");
    let consumer = Learner::start(&["--mode", "kafka", "--kafka-brokers", &brokers]);
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut first, mut consumed) = (None, 0);
    while consumed < total as u64 {
        let s = stats(&client, &consumer.url).await;
        consumed = s["records_applied"].as_u64().unwrap_or(0);
        if consumed > 0 && first.is_none() {
            first = Some((Instant::now(), consumed));
        }
        assert!(Instant::now() < deadline, "consumer stalled at {consumed}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some((t0, c0)) = first {
        let rate = (total as u64 - c0) as f64 / t0.elapsed().as_secs_f64().max(1e-6);
        println!("Kafka consumer (fresh group, {total} records backlog):    {rate:>9.0} records/s");
    }
    drop(consumer);
    drop(bridge);
    let _ = broker.kill();
    let _ = broker.wait();
    println!("\ndone");
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
