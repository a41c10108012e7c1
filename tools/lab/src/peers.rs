//! Real load balancers to measure Magnetar against: HAProxy and nginx (the Debian packages),
//! started by the lab on loopback in front of the same downstream fleet, each with the settings
//! that suit this job best:
//!
//! - **retry on failure, at most `max_attempts` tries in all** (3 unless the run lowers it,
//!   exactly the router's budget), on connection errors, timeouts and 5xx; nginx also retries 429,
//!   which HAProxy's `retry-on` cannot express. POSTs are retried (the downstreams are idempotent
//!   test origins), as the router does. Unlike the router, neither guarantees a different
//!   downstream on every try: HAProxy's `option redispatch 1` moves each retry away from the
//!   server of the previous try only, so a third try may go back to the first; nginx skips the
//!   servers it already tried, but the backup copies below are other entries of the same
//!   downstreams. The lab records the downstream of every try and reports how many retries went
//!   back to a downstream the request had already tried (`repeat_tries`).
//! - **passive failure detection**: a server that keeps failing real requests is taken out for a
//!   while. HAProxy: `observe layer7` with `error-limit` consecutive errors and `on-error
//!   mark-down`; health checks on `/ping` (never flaky) bring it back after `rise` checks. nginx:
//!   `max_fails` failures within `fail_timeout` take a server out for `fail_timeout`.
//! - **backups so that ejection never refuses a request**: on a fleet where every server fails
//!   now and then, passive detection soon ejects all of them, and both then answer 502/503
//!   without trying anyone. Each downstream is therefore also listed as a `backup` server without
//!   failure detection; backups take the traffic only while every observed server is out. (With
//!   `--no-peer-backups` the lab measures the plain configuration.)
//! - **the router's timeouts**: each attempt gets the router's `attempt_timeout_ms`, the whole
//!   request its `request_deadline_ms`.
//! - round robin as the base balancing algorithm (the default of both).
//!
//! Both forward the client's headers, `x-flaky-config` and `x-flaky-tag` included, so the scenario
//! reaches the downstreams unchanged and they count the lane's attempts. Which downstream each try
//! reached: nginx reports every tried server in `$upstream_addr` (returned in a response header);
//! HAProxy has no sample fetch for it, so each of its servers points at a "tap", a `listen`
//! section of the same HAProxy on an abstract unix socket that forwards to the downstream and logs
//! one line per try (request id, downstream, status); the lab reads that log from HAProxy's
//! stdout. The tap is an in-process hop without retries or checks of its own; it adds well under a
//! millisecond per try.
//!
//! The tuning values ([`PeerTuning`]) are defaults of the command line and are written into the
//! results, so that anyone can check whether other values do better. How long a passive ejection
//! lasts is a time, so the best values depend on the request rate. The defaults won a sweep on the
//! ten-downstream tiers with three attempts at 7 requests per second per lane, about the pace of
//! the README's interleaved runs of every strategy (1,000 requests, success rate; one run each,
//! sd about 1 point): HAProxy `error-limit`/`rise`/`fastinter` 1/3/10 s: 90.3%, 1/5/10 s: 91.0%,
//! 2/3/10 s: 89.8%, 1/2/5 s: 89.2%, 1/2/1 s: 86.4%, 1/3/30 s: 85.6%, 3/2/5 s: 80.5% (round robin's
//! figure: three consecutive errors hardly ever happen with retries in between); the shorter of
//! the two best (a server that recovers is back sooner). nginx `max_fails`/`fail_timeout` 10/5 s:
//! 93.7%, 10/30 s: 92.7%, 3/30 s: 88.5%, 1/30 s: 87.3%. An earlier sweep with lanes one after
//! another at concurrency 8 (hundreds of requests per second) had HAProxy 1/2/1 s at 96.0%: at that
//! pace a one-second ejection spans hundreds of requests. With single attempts nginx detects
//! nothing at all: it does not count the 5xx of a request's last try as a failure, so with one try
//! it is round robin whatever `max_fails` says.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::process::{self, Group};

/// How the peers detect failures; see the module docs. Written into results.json.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PeerTuning {
    /// HAProxy: consecutive failed requests that take a server out.
    pub haproxy_error_limit: u32,
    /// HAProxy: successful `/ping` checks that bring a server back.
    pub haproxy_rise: u32,
    /// HAProxy: check interval while a server is down or changing state, ms.
    pub haproxy_fastinter_ms: u64,
    /// nginx: failures within `fail_timeout` that take a server out (for that long).
    pub nginx_max_fails: u32,
    /// nginx: the window and the time out, seconds.
    pub nginx_fail_timeout_s: u64,
    /// Whether every downstream is also listed as an undetected backup.
    pub backups: bool,
}

impl Default for PeerTuning {
    fn default() -> Self {
        PeerTuning {
            haproxy_error_limit: 1,
            haproxy_rise: 3,
            haproxy_fastinter_ms: 10_000,
            nginx_max_fails: 10,
            nginx_fail_timeout_s: 5,
            backups: true,
        }
    }
}

/// Connect timeout of both (loopback; also HAProxy's pause before a same-server retry).
const CONNECT_TIMEOUT_MS: u64 = 500;

/// Response headers nginx adds.
pub const NGINX_ADDR_HEADER: &str = "x-lab-upstream-addr";
pub const NGINX_STATUS_HEADER: &str = "x-lab-upstream-status";
/// Request header carrying the lab's request id (HAProxy logs it).
pub const REQUEST_ID_HEADER: &str = "x-lab-request-id";
/// Health endpoint both answer themselves.
pub const HEALTH_PATH: &str = "/_lab/health";

/// Which load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKind {
    Haproxy,
    Nginx,
}

impl PeerKind {
    pub const ALL: [PeerKind; 2] = [PeerKind::Haproxy, PeerKind::Nginx];

    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Haproxy => "haproxy",
            PeerKind::Nginx => "nginx",
        }
    }

    /// The binary the Debian package installs.
    pub fn binary(self) -> &'static str {
        match self {
            PeerKind::Haproxy => "/usr/sbin/haproxy",
            PeerKind::Nginx => "/usr/sbin/nginx",
        }
    }
}

impl fmt::Display for PeerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PeerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PeerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown peer {s:?}, expected haproxy or nginx"))
    }
}

/// How a peer must behave: the fleet and the router's budget and timeouts.
#[derive(Clone, Debug)]
pub struct PeerSettings {
    /// (name, `host:port`) per downstream.
    pub downstreams: Vec<(String, String)>,
    pub max_attempts: u32,
    pub attempt_timeout_ms: u64,
    pub request_deadline_ms: u64,
    pub tuning: PeerTuning,
}

/// A line of HAProxy's log, in the formats the lab configures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaproxyLogLine {
    /// `lab <id> <[+]retries> <server> <status>`: a request is over.
    Request { id: String, retries: u32, server: String, status: u16 },
    /// `tap <downstream> <status> <id>`: one try reached a downstream.
    Try { id: String, downstream: String, status: u16 },
}

/// Parses one line of HAProxy's log; `None` for anything else (warnings, health checks).
pub fn parse_haproxy_log(line: &str) -> Option<HaproxyLogLine> {
    let mut parts = line.split_whitespace();
    match parts.next()? {
        "lab" => {
            // Requests without a lab request id (the readiness probe) are not a lane's.
            let id = parts.next().filter(|id| *id != "-")?.to_owned();
            let retries = parts.next()?.trim_start_matches('+').parse().ok()?;
            let server = parts.next()?.to_owned();
            let status = parts.next()?.parse().unwrap_or(0);
            Some(HaproxyLogLine::Request { id, retries, server, status })
        }
        "tap" => {
            let downstream = parts.next()?.to_owned();
            let status = parts.next()?.parse().unwrap_or(0);
            let id = parts.next().filter(|id| *id != "-")?.to_owned();
            Some(HaproxyLogLine::Try { id, downstream, status })
        }
        _ => None,
    }
}

/// What HAProxy logged about one request: its tries in order, and the final line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HaproxyRequest {
    /// Downstream of each try, in order.
    pub tried: Vec<String>,
    /// Retries HAProxy counted (`%rc`), once the request is over.
    pub retries: Option<u32>,
}

/// Attempts nginx made, from `$upstream_addr` (`"127.0.0.1:8801, 127.0.0.1:8803"`; ` : `
/// separates internal redirects). Only `host:port` entries count: when no server is live, nginx
/// names the upstream group instead (and tried nobody).
pub fn nginx_attempts(upstream_addr: &str) -> u32 {
    nginx_addrs(upstream_addr).len() as u32
}

/// The `host:port` entries of `$upstream_addr`, in order.
pub fn nginx_addrs(upstream_addr: &str) -> Vec<&str> {
    upstream_addr
        .split(", ")
        .flat_map(|part| part.split(" : "))
        .map(str::trim)
        .filter(|a| a.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()))
        .collect()
}

/// The abstract unix socket of HAProxy's tap for downstream `i` (unique per HAProxy port).
fn tap_socket(port: u16, i: usize) -> String {
    format!("abns@magnetar-lab-{port}-tap-{i}")
}

/// HAProxy's configuration.
pub fn haproxy_config(port: u16, s: &PeerSettings) -> String {
    let t = &s.tuning;
    let mut servers: String = s
        .downstreams
        .iter()
        .enumerate()
        .map(|(i, (name, _))| format!("  server {name} {}\n", tap_socket(port, i)))
        .collect();
    if t.backups {
        servers.push_str("  # the same downstreams, undetected, while every server above is out\n");
        for (i, (name, _)) in s.downstreams.iter().enumerate() {
            servers.push_str(&format!(
                "  server {name}-backup {} backup no-check\n",
                tap_socket(port, i)
            ));
        }
    }
    let mut taps = String::new();
    for (i, (name, addr)) in s.downstreams.iter().enumerate() {
        taps.push_str(&format!(
            "
# tap: one log line per try that reaches {name}; no retries, no checks of its own
listen tap-{i}
  bind {socket}
  retries 0
  retry-on none
  no option redispatch
  timeout server {tap_timeout}ms
  unique-id-format %[req.hdr({REQUEST_ID_HEADER})]
  http-request set-log-level silent unless {{ req.hdr({REQUEST_ID_HEADER}) -m found }}
  log-format \"tap {name} %ST %ID\"
  server {name} {addr}
",
            socket = tap_socket(port, i),
            tap_timeout = s.attempt_timeout_ms + 1000,
        ));
    }
    format!(
        "# Generated by magnetar-lab: HAProxy in front of the lab's flaky fleet.
global
  log stdout format raw local0 info
  maxconn 4096
  # one thread, like nginx's one worker; with several, contended log writes can be dropped
  nbthread 1

defaults
  mode http
  log global
  option http-keep-alive
  timeout connect {CONNECT_TIMEOUT_MS}ms
  timeout client 60s
  timeout http-request 10s
  timeout server {attempt}ms
  # at most {max} tries: the first plus {retries} retries; each retry avoids the previous try's
  # server only (redispatch), so a third try may go back to the first
  retries {retries}
  option redispatch 1
  retry-on conn-failure empty-response response-timeout 500 502 503 504

frontend lab
  bind 127.0.0.1:{port}
  monitor-uri {HEALTH_PATH}
  unique-id-format %[req.hdr({REQUEST_ID_HEADER})]
  log-format \"lab %ID %rc %s %ST\"
  default_backend fleet

backend fleet
  balance roundrobin
  option allbackups
  option httpchk
  http-check send meth GET uri /ping ver HTTP/1.1 hdr host localhost
  # passive failure detection on real traffic; /ping (never flaky) brings a server back
  default-server check inter 2s fastinter {fastinter}ms downinter {fastinter}ms rise {rise} fall 3 observe layer7 error-limit {limit} on-error mark-down
{servers}{taps}",
        attempt = s.attempt_timeout_ms,
        max = s.max_attempts,
        retries = s.max_attempts.saturating_sub(1),
        fastinter = t.haproxy_fastinter_ms,
        rise = t.haproxy_rise,
        limit = t.haproxy_error_limit,
    )
}

/// nginx's configuration (`dir` holds its pid, logs and temp paths).
pub fn nginx_config(port: u16, s: &PeerSettings, dir: &Path) -> String {
    let t = &s.tuning;
    let mut servers: String = s
        .downstreams
        .iter()
        .map(|(_, addr)| {
            format!(
                "    server {addr} max_fails={} fail_timeout={}s;\n",
                t.nginx_max_fails, t.nginx_fail_timeout_s
            )
        })
        .collect();
    if t.backups {
        servers
            .push_str("    # the same downstreams, undetected, while every server above is out\n");
        for (_, addr) in &s.downstreams {
            servers.push_str(&format!("    server {addr} max_fails=0 backup;\n"));
        }
    }
    let d = dir.display();
    format!(
        "# Generated by magnetar-lab: nginx in front of the lab's flaky fleet.
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream fleet {{
    # passive failure detection: max_fails failures within fail_timeout take a server out
{servers}    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location = {HEALTH_PATH} {{ return 200 \"ok\"; }}
    location / {{
      proxy_pass http://fleet;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_connect_timeout {CONNECT_TIMEOUT_MS}ms;
      proxy_send_timeout {attempt}ms;
      proxy_read_timeout {attempt}ms;
      # at most {max} tries, also for POST; nginx skips servers already tried, but a backup
      # entry is another server with the same address
      proxy_next_upstream error timeout http_500 http_502 http_503 http_504 http_429 non_idempotent;
      proxy_next_upstream_tries {max};
      proxy_next_upstream_timeout {deadline}ms;
      add_header {NGINX_ADDR_HEADER} $upstream_addr always;
      add_header {NGINX_STATUS_HEADER} $upstream_status always;
    }}
  }}
}}
",
        attempt = s.attempt_timeout_ms,
        max = s.max_attempts,
        deadline = s.request_deadline_ms,
    )
}

/// A running peer; stopped on drop.
pub struct Peer {
    pub kind: PeerKind,
    pub url: String,
    pub dir: PathBuf,
    group: Group,
    /// HAProxy's log lines (HAProxy only).
    log_lines: Option<mpsc::Receiver<String>>,
    /// What HAProxy logged so far, per request id.
    requests: HashMap<String, HaproxyRequest>,
    /// `host:port` → downstream name.
    pub addr_names: HashMap<String, String>,
}

impl Peer {
    /// Writes the configuration, starts the peer on a free loopback port and waits until it
    /// answers.
    pub async fn start(client: &reqwest::Client, kind: PeerKind, s: &PeerSettings) -> Result<Peer> {
        if !process::is_executable(Path::new(kind.binary())) {
            bail!("{} is not installed (apt-get install {})", kind.binary(), kind.name());
        }
        let dir = process::scratch_dir(kind.name())?;
        let port = process::free_port(46000, 0)?;
        let config = dir.join(format!("{}.conf", kind.name()));
        let (mut group, log_lines) = match kind {
            PeerKind::Haproxy => {
                fs::write(&config, haproxy_config(port, s))?;
                let mut command = Command::new(kind.binary());
                command.arg("-db").arg("-f").arg(&config);
                let (group, rx) = Group::spawn_piped("haproxy", command, dir.join("haproxy.log"))?;
                (group, Some(rx))
            }
            PeerKind::Nginx => {
                fs::write(&config, nginx_config(port, s, &dir))?;
                let mut command = Command::new(kind.binary());
                command.arg("-p").arg(&dir).arg("-e").arg(dir.join("error.log"));
                command.arg("-c").arg(&config);
                (Group::spawn("nginx", command, dir.join("nginx.log"))?, None)
            }
        };
        let url = format!("http://127.0.0.1:{port}");
        group
            .wait_ready(client, &format!("{url}{HEALTH_PATH}"))
            .await
            .with_context(|| format!("{} (config {})", kind, config.display()))?;
        let addr_names = s.downstreams.iter().map(|(n, a)| (a.clone(), n.clone())).collect();
        Ok(Peer { kind, url, dir, group, log_lines, requests: HashMap::new(), addr_names })
    }

    /// What HAProxy logged per request id, once `expected` requests are over (or `wait` has
    /// passed: requests whose line is missing then have what arrived so far).
    pub fn haproxy_requests(
        &mut self,
        expected: usize,
        wait: Duration,
    ) -> &HashMap<String, HaproxyRequest> {
        let deadline = Instant::now() + wait;
        let over = |r: &HashMap<String, HaproxyRequest>| {
            r.values().filter(|q| q.retries.is_some()).count()
        };
        while over(&self.requests) < expected {
            let Some(rx) = self.log_lines.as_ref() else { break };
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(text) = rx.recv_timeout(left) else { break };
            match parse_haproxy_log(&text) {
                Some(HaproxyLogLine::Try { id, downstream, .. }) => {
                    self.requests.entry(id).or_default().tried.push(downstream);
                }
                Some(HaproxyLogLine::Request { id, retries, .. }) => {
                    self.requests.entry(id).or_default().retries = Some(retries);
                }
                None => {}
            }
        }
        &self.requests
    }

    /// The peer's log tail (for error messages).
    pub fn log_tail(&self) -> String {
        let own = self.group.log_tail();
        let errors = fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        format!("{own}\n{errors}")
    }
}

/// `host:port` of a downstream URL (`http://127.0.0.1:8801` → `127.0.0.1:8801`).
pub fn host_port(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let host = rest.split('/').next()?;
    host.contains(':').then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PeerSettings {
        PeerSettings {
            downstreams: vec![
                ("downstream-1".into(), "127.0.0.1:8801".into()),
                ("downstream-2".into(), "127.0.0.1:8802".into()),
            ],
            max_attempts: 3,
            attempt_timeout_ms: 2000,
            request_deadline_ms: 6000,
            tuning: PeerTuning::default(),
        }
    }

    #[test]
    fn haproxy_log_lines_parse() {
        assert_eq!(
            parse_haproxy_log("lab thompson-12 +2 downstream-3 200"),
            Some(HaproxyLogLine::Request {
                id: "thompson-12".into(),
                retries: 2,
                server: "downstream-3".into(),
                status: 200
            })
        );
        assert!(matches!(
            parse_haproxy_log("lab x 0 fleet/<NOSRV> 503"),
            Some(HaproxyLogLine::Request { retries: 0, .. })
        ));
        // The readiness probe has no request id: it must not count as a lane's request.
        assert!(parse_haproxy_log("lab - 0 fleet/<NOSRV> 200").is_none());
        assert_eq!(
            parse_haproxy_log("tap downstream-2 500 haproxy-7"),
            Some(HaproxyLogLine::Try {
                id: "haproxy-7".into(),
                downstream: "downstream-2".into(),
                status: 500
            })
        );
        // A try without a request id (a health check) is not a lane's.
        assert!(parse_haproxy_log("tap downstream-2 200 -").is_none());
        assert!(parse_haproxy_log("tap downstream-2 200").is_none());
        assert!(parse_haproxy_log("[WARNING] something").is_none());
    }

    #[test]
    fn nginx_upstream_status_counts_attempts() {
        assert_eq!(nginx_attempts("127.0.0.1:8801, 127.0.0.1:8802, 127.0.0.1:8803"), 3);
        assert_eq!(nginx_attempts("127.0.0.1:8801"), 1);
        assert_eq!(nginx_attempts(""), 0);
        assert_eq!(nginx_attempts("fleet"), 0);
        assert_eq!(nginx_attempts("127.0.0.1:8801 : 127.0.0.1:8802"), 2);
        assert_eq!(nginx_addrs("127.0.0.1:1, 127.0.0.1:2").last(), Some(&"127.0.0.1:2"));
    }

    #[test]
    fn configs_carry_the_budget_and_every_server() {
        let h = haproxy_config(9000, &settings());
        assert!(h.contains("retries 2\n"));
        // Every server goes through its downstream's tap, which logs each try.
        assert!(h.contains("server downstream-2 abns@magnetar-lab-9000-tap-1\n"));
        assert!(h.contains("listen tap-1\n  bind abns@magnetar-lab-9000-tap-1\n  retries 0\n"));
        assert!(h.contains("  server downstream-2 127.0.0.1:8802\n"));
        assert!(h.contains("log-format \"tap downstream-2 %ST %ID\""));
        assert!(h.contains("timeout server 2000ms"));
        let n = nginx_config(9001, &settings(), Path::new("/tmp/x"));
        assert!(n.contains("proxy_next_upstream_tries 3;"));
        assert!(n.contains("server 127.0.0.1:8801 max_fails=10 fail_timeout=5s;"));
        assert!(n.contains("server 127.0.0.1:8801 max_fails=0 backup;"));
        assert!(
            h.contains("server downstream-1-backup abns@magnetar-lab-9000-tap-0 backup no-check")
        );
        assert!(n.contains("listen 127.0.0.1:9001;"));
    }

    /// The generated files pass the installed HAProxy's and nginx's own checks (skipped where
    /// they are not installed; the e2e lab test runs them for real).
    #[test]
    fn generated_configs_pass_the_installed_checkers() {
        let dir = process::scratch_dir("config-check").unwrap();
        if process::is_executable(Path::new(PeerKind::Haproxy.binary())) {
            let file = dir.join("haproxy.conf");
            fs::write(&file, haproxy_config(46999, &settings())).unwrap();
            let out = Command::new(PeerKind::Haproxy.binary())
                .arg("-c")
                .arg("-f")
                .arg(&file)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        if process::is_executable(Path::new(PeerKind::Nginx.binary())) {
            let file = dir.join("nginx.conf");
            fs::write(&file, nginx_config(46998, &settings(), &dir)).unwrap();
            let out = Command::new(PeerKind::Nginx.binary())
                .arg("-t")
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&file)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn host_port_of_loopback_urls() {
        assert_eq!(host_port("http://127.0.0.1:8801").as_deref(), Some("127.0.0.1:8801"));
        assert_eq!(host_port("http://127.0.0.1:8801/x").as_deref(), Some("127.0.0.1:8801"));
        assert_eq!(host_port("https://a.example"), None);
    }
}
