//! Helpers shared by the learner's integration tests: an in-process learner on 127.0.0.1:0,
//! the built binary as a child process, telemetry fixtures, and a simulated flaky fleet.

// Test support: a failed unwrap is a failed test.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use magnetar_core::Outcome;
use magnetar_core::telemetry::{AttemptTelemetry, TELEMETRY_SCHEMA, TelemetryRecord};
use magnetar_learner::LearnerConfig;
use magnetar_learner::auth::{Access, BearerToken};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const V2_JSON: &str = "application/vnd.kafka.json.v2+json";

/// The bearer token of the tests' learners.
pub const TOKEN: &str = "test-token-0123456789";

/// The in-process learner of the HTTP tests: a 64 KiB body limit, 100 records per batch, seeded,
/// asking for [`TOKEN`].
pub fn config() -> LearnerConfig {
    let token = BearerToken::parse(TOKEN).unwrap();
    LearnerConfig {
        body_limit_bytes: 64 * 1024,
        max_batch_records: 100,
        seed: Some(7),
        ..LearnerConfig::with_access(Access::Token(token))
    }
}

/// A client that sends `Authorization: Bearer TOKEN` unless a request sets its own.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {TOKEN}").parse().unwrap();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A learner running inside the test process.
pub struct InProcess {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), magnetar_learner::LearnerError>>,
}

impl InProcess {
    pub async fn start(config: LearnerConfig) -> InProcess {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(magnetar_learner::run(listener, config, async {
            let _ = stopped.await;
        }));
        InProcess { url, stop: Some(stop), task }
    }

    /// Graceful shutdown; fails the test if `run` returned an error.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("learner did not stop within 20 s")
            .unwrap();
        result.unwrap();
    }
}

pub fn record(request_id: &str, route: &str, attempts: &[(&str, Outcome)]) -> TelemetryRecord {
    let now = now_ms();
    let attempts: Vec<AttemptTelemetry> = attempts
        .iter()
        .map(|(d, o)| AttemptTelemetry {
            downstream: (*d).into(),
            status: None,
            outcome: *o,
            latency_ms: 3.0,
            hedged: false,
        })
        .collect();
    let final_outcome = attempts.last().map_or(Outcome::ConnectError, |a| a.outcome);
    TelemetryRecord {
        schema: TELEMETRY_SCHEMA,
        request_id: request_id.into(),
        caller_id: None,
        route: route.into(),
        strategy: "learner".into(),
        router_instance: "test".into(),
        started_ms: now.saturating_sub(10),
        finished_ms: now,
        attempts,
        final_outcome,
        final_status: if final_outcome.is_success() { 200 } else { 502 },
        pool: None,
        experiment: None,
        variant: None,
    }
}

/// `{"records": [{"key": route, "value": record}, ...]}`.
pub fn batch(records: &[TelemetryRecord]) -> Value {
    json!({"records": records.iter().map(|r| json!({"key": r.route, "value": r})).collect::<Vec<_>>()})
}

/// The learner binary cargo built for these tests.
pub fn learner_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_magnetar-learner"))
}

/// POSTs `body` with optional basic-auth credentials; returns (status, headers, body text).
pub async fn post_raw(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    auth: Option<(&str, &str)>,
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = client.post(url).header("content-type", content_type).body(body);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// POSTs a produce body; returns (status, content type, JSON body or Null).
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String, Value) {
    let response =
        client.post(url).header("content-type", content_type).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (status, ct, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn get_json(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A flaky downstream: fails with probability `fail`.
pub struct FlakyFleet {
    pub names: Vec<String>,
    pub fail: Vec<f64>,
    state: u64,
}

impl FlakyFleet {
    /// The 100 % / 100 % / 90 %-failing fleet of `config/workers.json`.
    pub fn standard(seed: u64) -> FlakyFleet {
        FlakyFleet {
            names: vec!["downstream-1".into(), "downstream-2".into(), "downstream-3".into()],
            fail: vec![1.0, 1.0, 0.9],
            state: seed | 1,
        }
    }

    /// xorshift64*: a deterministic uniform draw in [0, 1).
    fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn attempt(&mut self, downstream: &str) -> Outcome {
        let i = self.names.iter().position(|n| n == downstream).unwrap();
        if self.uniform() < self.fail[i] { Outcome::ServerError } else { Outcome::Success }
    }
}

/// Where to find tansu: `$TANSU_BIN`, then `PATH`, then `~/.cargo/bin/tansu`. Panics with the
/// install command when it is missing: the Kafka tests must not pass without a broker.
pub fn tansu_bin() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU_BIN") {
        return PathBuf::from(path);
    }
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("tansu")).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "tansu (a Kafka-protocol broker) is not installed, and the Kafka tests need a real \
             broker: run scripts/setup.sh, or `cargo install tansu --version 0.6.0 --features \
             dynostore --locked`, or set TANSU_BIN"
        )
    })
}

/// A free loopback port (bound, then released: good enough on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child process that is killed (SIGKILL) when dropped, with its stderr captured.
pub struct ChildProcess {
    pub name: String,
    pub child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ChildProcess {
    /// Spawns `program args`, draining stdout and stderr into `log`; when `announce` is set,
    /// waits for a line containing it and returns the `addr=` it carries.
    pub fn spawn(
        name: &str,
        program: &std::path::Path,
        args: &[&str],
        announce: Option<&str>,
    ) -> (ChildProcess, Option<SocketAddr>) {
        ChildProcess::spawn_with_env(name, program, args, &[], announce)
    }

    /// [`spawn`](Self::spawn) with extra environment variables.
    pub fn spawn_with_env(
        name: &str,
        program: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
        announce: Option<&str>,
    ) -> (ChildProcess, Option<SocketAddr>) {
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<SocketAddr>();
        let wanted = announce.map(str::to_owned);
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (log, tx, wanted) = (log.clone(), tx.clone(), wanted.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(w) = &wanted {
                        if line.contains(w.as_str()) {
                            if let Some(addr) = addr_in(&line) {
                                let _ = tx.send(addr);
                            }
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let mut process = ChildProcess { name: name.to_owned(), child, log };
        let addr = announce.map(|_| match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = process.child.kill();
                panic!("{name} did not announce its address; log:\n{}", process.log_text());
            }
        });
        (process, addr)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by pid (only to this child).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.pid().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -s {signal} {} failed", self.name);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("{} did not exit within {timeout:?}; log:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addr_in(line: &str) -> Option<SocketAddr> {
    let start = line.find("addr=")? + "addr=".len();
    let rest = &line[start..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    rest[..end].trim_matches('"').parse().ok()
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
