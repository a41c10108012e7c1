//! Real load balancers to measure Magnetar against: HAProxy and nginx (the Debian packages),
//! started by the lab on loopback in front of the same downstream fleet, each with the settings
//! that suit this job best:
//!
//! - **retry on failure to another server, at most `max_attempts` tries in all** (3 unless the run
//!   lowers it, exactly the router's budget), on connection errors, timeouts and 5xx; nginx also
//!   retries 429, which HAProxy's `retry-on` cannot express. POSTs are retried (the downstreams are
//!   idempotent test origins), as the router does.
//! - **passive failure detection**: a server that keeps failing real requests is taken out for a
//!   while. HAProxy: `observe layer7` with `error-limit` consecutive errors and `on-error
//!   mark-down`; health checks on `/ping` (never flaky) bring it back after `rise` checks. nginx:
//!   `max_fails` failures within `fail_timeout` take a server out for `fail_timeout`.
//! - **the router's timeouts**: each attempt gets the router's `attempt_timeout_ms`, the whole
//!   request its `request_deadline_ms`.
//! - round robin as the base balancing algorithm (the default of both).
//!
//! Both forward the client's headers, `x-flaky-config` included, so the scenario reaches the
//! downstreams unchanged. How many attempts each request took: nginx reports every tried server's
//! status in `$upstream_status` (returned in a response header); HAProxy has no sample fetch for
//! it, so the lab reads its log (`%rc` retries per request id) from HAProxy's stdout.

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

/// HAProxy: consecutive failed requests that take a server out.
pub const HAPROXY_ERROR_LIMIT: u32 = 3;
/// HAProxy: successful checks (every [`HAPROXY_FASTINTER_MS`]) that bring a server back.
pub const HAPROXY_RISE: u32 = 2;
/// HAProxy: check interval while a server is changing state or down.
pub const HAPROXY_FASTINTER_MS: u64 = 1000;
/// nginx: failures within [`NGINX_FAIL_TIMEOUT_S`] that take a server out (for that long).
pub const NGINX_MAX_FAILS: u32 = 1;
/// nginx: the window and the time out, seconds.
pub const NGINX_FAIL_TIMEOUT_S: u64 = 5;
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
}

/// What HAProxy logged about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaproxyLogLine {
    pub id: String,
    /// Retries (the first attempt not counted).
    pub retries: u32,
    pub server: String,
    pub status: u16,
}

/// Parses `lab <id> <[+]retries> <server> <status>` (the log format the lab configures).
pub fn parse_haproxy_log(line: &str) -> Option<HaproxyLogLine> {
    let mut parts = line.split_whitespace();
    if parts.next()? != "lab" {
        return None;
    }
    let id = parts.next()?.to_owned();
    let retries = parts.next()?.trim_start_matches('+').parse().ok()?;
    let server = parts.next()?.to_owned();
    let status = parts.next()?.parse().unwrap_or(0);
    Some(HaproxyLogLine { id, retries, server, status })
}

/// Attempts nginx made, from `$upstream_status` (`"500, 500, 200"`; `:` separates internal
/// redirects). Empty (no server tried) is 0.
pub fn nginx_attempts(upstream_status: &str) -> u32 {
    upstream_status.split([',', ':']).filter(|s| !s.trim().is_empty() && s.trim() != "-").count()
        as u32
}

/// HAProxy's configuration.
pub fn haproxy_config(port: u16, s: &PeerSettings) -> String {
    // Every downstream twice: observed, and as an unobserved backup that takes the traffic when
    // passive detection has marked every observed server down (instead of answering 503).
    let servers: String = s
        .downstreams
        .iter()
        .map(|(name, addr)| format!("  server {name} {addr}\n"))
        .chain(
            s.downstreams
                .iter()
                .map(|(name, addr)| format!("  server {name}-backup {addr} backup no-check\n")),
        )
        .collect();
    format!(
        "# Generated by magnetar-lab: HAProxy in front of the lab's flaky fleet.
global
  log stdout format raw local0 info
  maxconn 4096

defaults
  mode http
  log global
  option http-keep-alive
  timeout connect {CONNECT_TIMEOUT_MS}ms
  timeout client 60s
  timeout http-request 10s
  timeout server {attempt}ms
  # at most {max} tries: the first plus {retries} retries, each on another server
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
{servers}",
        attempt = s.attempt_timeout_ms,
        max = s.max_attempts,
        retries = s.max_attempts.saturating_sub(1),
        fastinter = HAPROXY_FASTINTER_MS,
        rise = HAPROXY_RISE,
        limit = HAPROXY_ERROR_LIMIT,
    )
}

/// nginx's configuration (`dir` holds its pid, logs and temp paths).
pub fn nginx_config(port: u16, s: &PeerSettings, dir: &Path) -> String {
    let servers: String = s
        .downstreams
        .iter()
        .map(|(_, addr)| {
            format!(
                "    server {addr} max_fails={NGINX_MAX_FAILS} fail_timeout={NGINX_FAIL_TIMEOUT_S}s;\n"
            )
        })
        .collect();
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
      # at most {max} tries, each on another server, also for POST
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
    log: HashMap<String, HaproxyLogLine>,
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
        Ok(Peer { kind, url, dir, group, log_lines, log: HashMap::new(), addr_names })
    }

    /// HAProxy's log line for request `id`, waiting up to `wait` for it to arrive.
    pub fn haproxy_log(&mut self, id: &str, wait: Duration) -> Option<HaproxyLogLine> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(line) = self.log.remove(id) {
                return Some(line);
            }
            let rx = self.log_lines.as_ref()?;
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(text) => {
                    if let Some(line) = parse_haproxy_log(&text) {
                        self.log.insert(line.id.clone(), line);
                    }
                }
                Err(_) => return None,
            }
        }
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
        }
    }

    #[test]
    fn haproxy_log_lines_parse() {
        let line = parse_haproxy_log("lab thompson-12 +2 downstream-3 200").unwrap();
        assert_eq!(line.retries, 2);
        assert_eq!(line.server, "downstream-3");
        assert_eq!(line.status, 200);
        assert_eq!(parse_haproxy_log("lab x 0 fleet/<NOSRV> 503").unwrap().retries, 0);
        assert!(parse_haproxy_log("[WARNING] something").is_none());
    }

    #[test]
    fn nginx_upstream_status_counts_attempts() {
        assert_eq!(nginx_attempts("500, 500, 200"), 3);
        assert_eq!(nginx_attempts("200"), 1);
        assert_eq!(nginx_attempts(""), 0);
        assert_eq!(nginx_attempts("502 : 200"), 2);
    }

    #[test]
    fn configs_carry_the_budget_and_every_server() {
        let h = haproxy_config(9000, &settings());
        assert!(h.contains("retries 2\n"));
        assert!(h.contains("server downstream-2 127.0.0.1:8802"));
        assert!(h.contains("timeout server 2000ms"));
        let n = nginx_config(9001, &settings(), Path::new("/tmp/x"));
        assert!(n.contains("proxy_next_upstream_tries 3;"));
        assert!(n.contains("server 127.0.0.1:8801 max_fails=1"));
        assert!(n.contains("listen 127.0.0.1:9001;"));
    }

    #[test]
    fn host_port_of_loopback_urls() {
        assert_eq!(host_port("http://127.0.0.1:8801").as_deref(), Some("127.0.0.1:8801"));
        assert_eq!(host_port("http://127.0.0.1:8801/x").as_deref(), Some("127.0.0.1:8801"));
        assert_eq!(host_port("https://a.example"), None);
    }
}
