//! The learner's configuration: flags and environment variables (clap), parsed once into a typed
//! [`LearnerConfig`]. Every default is a named constant below; every error names the flag and the
//! environment variable it came from.
//!
//! | flag | environment | default |
//! | --- | --- | --- |
//! | `--mode` | `LEARNER_MODE` | `embedded` (`kafka`, `bridge`, `combined`) |
//! | `--http-addr` | `LEARNER_HTTP_ADDR` | [`DEFAULT_HTTP_ADDR`] (see [`parse_http_addr`]) |
//! | `--kafka-brokers` | `LEARNER_KAFKA_BROKERS` | none; required unless `embedded` |
//! | `--kafka-topic` | `LEARNER_KAFKA_TOPIC` | [`DEFAULT_TOPIC`] (also the embedded topic) |
//! | `--kafka-group` | `LEARNER_KAFKA_GROUP` | [`DEFAULT_GROUP`] |
//! | `--kafka-partitions` | `LEARNER_KAFKA_PARTITIONS` | [`DEFAULT_PARTITIONS`] (when creating the topic) |
//! | `--half-life-ms` | `LEARNER_HALF_LIFE_MS` | [`DEFAULT_HALF_LIFE_MS`] |
//! | `--body-limit-bytes` | `LEARNER_BODY_LIMIT_BYTES` | [`DEFAULT_BODY_LIMIT_BYTES`] |
//! | `--max-batch-records` | `LEARNER_MAX_BATCH_RECORDS` | [`DEFAULT_MAX_BATCH_RECORDS`] |
//! | `--dedupe-window` | `LEARNER_DEDUPE_WINDOW` | [`DEFAULT_DEDUPE_WINDOW`] request ids (0 = off) |
//! | `--commit-interval-ms` | `LEARNER_COMMIT_INTERVAL_MS` | [`DEFAULT_COMMIT_INTERVAL_MS`] |
//! | `--state-file` | `LEARNER_STATE_FILE` | none (state lives in memory only) |
//! | `--seed` | `LEARNER_SEED` | none (seeded from the OS) |
//! | `--cluster-id` | `LEARNER_CLUSTER_ID` | [`DEFAULT_CLUSTER_ID`] (the v3 produce API's cluster) |
//! | `--token` | `MAGNETAR_LEARNER_TOKEN` | none; required unless `--open` (bearer token of every protected endpoint, see [`crate::auth`]) |
//! | `--open` | none | off: serve without credentials, loopback addresses only |
//! | `--rest-basic-auth` | `LEARNER_REST_BASIC_AUTH` | none (`user:password` also accepted by the produce APIs) |
//! | `--fleet` | `LEARNER_FLEET` | none (any downstream name); see [`parse_fleet`] |
//! | `--reset-state` | none | off: start empty even if the state file exists (it is replaced at the next checkpoint) |
//! | `--header-read-timeout-ms` | `LEARNER_HEADER_READ_TIMEOUT_MS` | [`DEFAULT_HEADER_READ_TIMEOUT_MS`] |
//! | `--request-timeout-ms` | `LEARNER_REQUEST_TIMEOUT_MS` | [`DEFAULT_REQUEST_TIMEOUT_MS`] (408 after it) |
//! | `--max-concurrent-requests` | `LEARNER_MAX_CONCURRENT_REQUESTS` | [`DEFAULT_MAX_CONCURRENT_REQUESTS`] (503 + `Retry-After` above) |
//! | `--max-connections` | `LEARNER_MAX_CONNECTIONS` | [`DEFAULT_MAX_CONNECTIONS`] |
//! | `--shutdown-timeout-ms` | `LEARNER_SHUTDOWN_TIMEOUT_MS` | [`DEFAULT_SHUTDOWN_TIMEOUT_MS`] |
//! | `--metrics-max-series` | `LEARNER_METRICS_MAX_SERIES` | [`DEFAULT_METRICS_MAX_SERIES`] route/downstream series in `/metrics` and `/stats` |
//! | `--max-routes` | `LEARNER_MAX_ROUTES` | [`DEFAULT_MAX_ROUTES`] |
//! | `--max-downstreams-per-route` | `LEARNER_MAX_DOWNSTREAMS` | [`DEFAULT_MAX_DOWNSTREAMS_PER_ROUTE`] |
//! | `--database-url` | `LEARNER_DATABASE_URL` | the admin store ([`crate::admin`]): `postgres://...`, `sqlite://PATH`; unset, SQLite beside `--state-file`, else in memory |
//!
//! `--print-config` (no variable) prints the validated configuration as JSON, the token and the
//! basic-auth password left out, and exits.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
pub use magnetar_core::posterior::DEFAULT_HALF_LIFE_MS;
use magnetar_core::posterior::Decay;
pub use magnetar_core::telemetry::DEFAULT_TOPIC;
use serde_json::{Value, json};

use crate::auth::{Access, BasicAuth, BearerToken};
pub use crate::serve::{
    DEFAULT_HEADER_READ_TIMEOUT_MS, DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_SHUTDOWN_TIMEOUT_MS, ServerLimits,
};
pub use crate::state::{DEFAULT_MAX_DOWNSTREAMS_PER_ROUTE, DEFAULT_MAX_ROUTES};

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8090";
pub const DEFAULT_GROUP: &str = "magnetar-learner";
pub const DEFAULT_PARTITIONS: i32 = 3;
/// 1 MiB: a router posts one record of a few hundred bytes per request.
pub const DEFAULT_BODY_LIMIT_BYTES: usize = 1 << 20;
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 10_000;
pub const DEFAULT_DEDUPE_WINDOW: usize = 65_536;
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 1_000;
/// The cluster id the v3 produce API answers for (`/v3/clusters/{cluster_id}/...`).
pub const DEFAULT_CLUSTER_ID: &str = "magnetar-local";
/// Route/downstream series in one `/metrics` page or `/stats` document; further ones are
/// counted (`magnetar_learner_metrics_series_omitted_total`), not shown.
pub const DEFAULT_METRICS_MAX_SERIES: usize = 10_000;

/// Where telemetry comes from and which endpoints this process serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Answers the Kafka REST v2 produce API itself and learns from what is posted. No Kafka.
    Embedded,
    /// Learns from a Kafka consumer group; no produce API.
    Kafka,
    /// Only the produce API, forwarding every record to Kafka; no learning endpoints.
    Bridge,
    /// `bridge` and `kafka` in one process: REST -> Kafka -> this learner.
    Combined,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Kafka => "kafka",
            Mode::Bridge => "bridge",
            Mode::Combined => "combined",
        }
    }

    /// Whether this process keeps posteriors and serves `/recommendation` and `/params`.
    pub fn learns(self) -> bool {
        !matches!(self, Mode::Bridge)
    }

    /// Whether this process reads telemetry from a Kafka consumer group.
    pub fn consumes(self) -> bool {
        matches!(self, Mode::Kafka | Mode::Combined)
    }

    /// Whether `POST /topics/{topic}` forwards to Kafka (else it is applied here, or refused).
    pub fn bridges(self) -> bool {
        matches!(self, Mode::Bridge | Mode::Combined)
    }
}

/// Command line and environment, as clap reads them.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "magnetar-learner",
    version,
    about = "Magnetar's learner: telemetry in, routing decisions out."
)]
pub struct Args {
    /// Where telemetry comes from.
    #[arg(long, env = "LEARNER_MODE", value_enum, default_value = "embedded")]
    pub mode: Mode,
    /// HTTP listen address: ip:port, host:port (resolved, IPv4 preferred), or Go-style :port
    /// (all IPv4 interfaces, 0.0.0.0).
    #[arg(long, env = "LEARNER_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: String,
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(long, env = "LEARNER_KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Telemetry topic (Kafka topic, and the topic the produce API accepts).
    #[arg(long, env = "LEARNER_KAFKA_TOPIC", default_value = DEFAULT_TOPIC)]
    pub kafka_topic: String,
    /// Consumer group id.
    #[arg(long, env = "LEARNER_KAFKA_GROUP", default_value = DEFAULT_GROUP)]
    pub kafka_group: String,
    /// Partitions of the topic when the learner has to create it.
    #[arg(long, env = "LEARNER_KAFKA_PARTITIONS", default_value_t = DEFAULT_PARTITIONS)]
    pub kafka_partitions: i32,
    /// Half-life of an observation's weight in the posteriors, milliseconds.
    #[arg(long, env = "LEARNER_HALF_LIFE_MS", default_value_t = DEFAULT_HALF_LIFE_MS)]
    pub half_life_ms: u64,
    /// Largest produce request body accepted (413 above).
    #[arg(long, env = "LEARNER_BODY_LIMIT_BYTES", default_value_t = DEFAULT_BODY_LIMIT_BYTES)]
    pub body_limit_bytes: usize,
    /// Most records in one produce request (422 above).
    #[arg(long, env = "LEARNER_MAX_BATCH_RECORDS", default_value_t = DEFAULT_MAX_BATCH_RECORDS)]
    pub max_batch_records: usize,
    /// How many recent request ids are remembered to drop replays (0 disables).
    #[arg(long, env = "LEARNER_DEDUPE_WINDOW", default_value_t = DEFAULT_DEDUPE_WINDOW)]
    pub dedupe_window: usize,
    /// How often consumed offsets are committed (and the state file written), milliseconds.
    #[arg(long, env = "LEARNER_COMMIT_INTERVAL_MS", default_value_t = DEFAULT_COMMIT_INTERVAL_MS)]
    pub commit_interval_ms: u64,
    /// Checkpoint file for the learned state; loaded at start, rewritten every commit interval.
    #[arg(long, env = "LEARNER_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Seed for Thompson sampling (reproducible runs).
    #[arg(long, env = "LEARNER_SEED")]
    pub seed: Option<u64>,
    /// Cluster id of the v3 produce API: POST /v3/clusters/{cluster_id}/topics/{topic}/records.
    #[arg(long, env = "LEARNER_CLUSTER_ID", default_value = DEFAULT_CLUSTER_ID)]
    pub cluster_id: String,
    /// Bearer token required on the produce APIs, /recommendation, /params and /stats
    /// (Authorization: Bearer <token>); /healthz and /metrics stay public. Required unless --open.
    #[arg(long, env = "MAGNETAR_LEARNER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Serve every endpoint without credentials; only on a loopback --http-addr.
    #[arg(long, conflicts_with_all = ["token", "rest_basic_auth"])]
    pub open: bool,
    /// user:password (HTTP basic auth) also accepted by the produce APIs, besides the token.
    #[arg(long, env = "LEARNER_REST_BASIC_AUTH", hide_env_values = true)]
    pub rest_basic_auth: Option<String>,
    /// The downstreams that exist: a JSON list of names or of {"name": ...} objects (the
    /// router's FLEET), an object with such a "downstreams" list (config/workers.json), or a
    /// path to a file holding one. Attempts on other names are counted, not learned.
    #[arg(long, env = "LEARNER_FLEET")]
    pub fleet: Option<String>,
    /// Start with an empty state even if --state-file exists (say, one that does not load).
    #[arg(long)]
    pub reset_state: bool,
    /// A connection that has not sent a whole request head within this time is closed (ms).
    #[arg(long, env = "LEARNER_HEADER_READ_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_MS)]
    pub header_read_timeout_ms: u64,
    /// A request not answered within this time, its body included, gets 408 (ms).
    #[arg(long, env = "LEARNER_REQUEST_TIMEOUT_MS", default_value_t = DEFAULT_REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,
    /// Requests in flight at once; further ones get 503 with Retry-After.
    #[arg(long, env = "LEARNER_MAX_CONCURRENT_REQUESTS", default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Open connections at once; further ones are closed on accept.
    #[arg(long, env = "LEARNER_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// How long shutdown waits for open connections before dropping them (ms).
    #[arg(long, env = "LEARNER_SHUTDOWN_TIMEOUT_MS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_MS)]
    pub shutdown_timeout_ms: u64,
    /// Route/downstream series shown in one /metrics page or /stats document.
    #[arg(long, env = "LEARNER_METRICS_MAX_SERIES", default_value_t = DEFAULT_METRICS_MAX_SERIES)]
    pub metrics_max_series: usize,
    /// Most routes kept in the learned state; records of further routes are counted, not learned.
    #[arg(long, env = "LEARNER_MAX_ROUTES", default_value_t = DEFAULT_MAX_ROUTES)]
    pub max_routes: usize,
    /// Most downstreams kept per route; attempts on further ones are counted, not learned.
    #[arg(
        long,
        env = "LEARNER_MAX_DOWNSTREAMS",
        default_value_t = DEFAULT_MAX_DOWNSTREAMS_PER_ROUTE
    )]
    pub max_downstreams_per_route: usize,
    /// The admin API's database: postgres://... (several learners), sqlite://PATH; unset, an
    /// SQLite file beside --state-file (STATE.admin.sqlite3), else SQLite in memory.
    #[arg(long, env = "LEARNER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Print the validated configuration as JSON (password left out) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Kafka settings, present in every mode but `embedded`.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaConfig {
    pub brokers: String,
    pub group: String,
    pub partitions: i32,
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnerConfig {
    pub mode: Mode,
    pub http_addr: SocketAddr,
    pub topic: String,
    pub kafka: Option<KafkaConfig>,
    pub decay: Decay,
    pub body_limit_bytes: usize,
    pub max_batch_records: usize,
    pub dedupe_window: usize,
    pub commit_interval: Duration,
    pub state_file: Option<PathBuf>,
    /// Start empty, ignoring the state file.
    pub reset_state: bool,
    /// The downstream names that may be learned, when configured.
    pub fleet: Option<Arc<BTreeSet<String>>>,
    pub seed: Option<u64>,
    pub cluster_id: String,
    pub access: Access,
    pub basic_auth: Option<BasicAuth>,
    pub server: ServerLimits,
    pub metrics_max_series: usize,
    pub max_routes: usize,
    pub max_downstreams_per_route: usize,
    /// Where the admin API keeps pools, experiments, gates and keys.
    pub database: crate::admin::Database,
}

/// A setting was missing or out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {field}: {value:?} {reason}")]
    Invalid { field: &'static str, value: String, reason: &'static str },
    #[error("{field} is required in {mode} mode")]
    Missing { field: &'static str, mode: &'static str },
    /// Says what is wrong without echoing the value (it holds a password).
    #[error("invalid {field}: {reason}")]
    Secret { field: &'static str, reason: &'static str },
    #[error(
        "--token (MAGNETAR_LEARNER_TOKEN) is required: the learner refuses ingest and reads \
         without credentials; pass --open to serve without them on loopback"
    )]
    NoCredentials,
    #[error("invalid {field}: {reason}")]
    Fleet { field: &'static str, reason: String },
}

fn invalid(field: &'static str, value: impl ToString, reason: &'static str) -> ConfigError {
    ConfigError::Invalid { field, value: value.to_string(), reason }
}

impl TryFrom<Args> for LearnerConfig {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, ConfigError> {
        let http_addr = parse_http_addr(&args.http_addr).map_err(|reason| {
            invalid("--http-addr (LEARNER_HTTP_ADDR)", &args.http_addr, reason)
        })?;
        let topic = args.kafka_topic.trim().to_owned();
        if topic.is_empty() || topic.contains('/') {
            return Err(invalid(
                "--kafka-topic (LEARNER_KAFKA_TOPIC)",
                &args.kafka_topic,
                "must be a non-empty topic name without '/'",
            ));
        }
        let decay = Decay::new(args.half_life_ms).map_err(|_| {
            invalid(
                "--half-life-ms (LEARNER_HALF_LIFE_MS)",
                args.half_life_ms,
                "must be at least 1",
            )
        })?;
        if args.body_limit_bytes < 64 {
            return Err(invalid(
                "--body-limit-bytes (LEARNER_BODY_LIMIT_BYTES)",
                args.body_limit_bytes,
                "must be at least 64",
            ));
        }
        if args.max_batch_records == 0 {
            return Err(invalid(
                "--max-batch-records (LEARNER_MAX_BATCH_RECORDS)",
                0,
                "must be at least 1",
            ));
        }
        if args.commit_interval_ms == 0 {
            return Err(invalid(
                "--commit-interval-ms (LEARNER_COMMIT_INTERVAL_MS)",
                0,
                "must be at least 1",
            ));
        }
        let cluster_id = args.cluster_id.trim().to_owned();
        if cluster_id.is_empty() || cluster_id.contains('/') {
            return Err(invalid(
                "--cluster-id (LEARNER_CLUSTER_ID)",
                &args.cluster_id,
                "must be a non-empty id without '/'",
            ));
        }
        let basic_auth = match args.rest_basic_auth.as_deref() {
            None => None,
            Some(value) => Some(BasicAuth::parse(value).map_err(|reason| ConfigError::Secret {
                field: "--rest-basic-auth (LEARNER_REST_BASIC_AUTH)",
                reason,
            })?),
        };
        let access = match (args.token.as_deref(), args.open) {
            (Some(token), _) => Access::Token(BearerToken::parse(token).map_err(|reason| {
                ConfigError::Secret { field: "--token (MAGNETAR_LEARNER_TOKEN)", reason }
            })?),
            (None, true) if http_addr.ip().is_loopback() => Access::Open,
            (None, true) => {
                return Err(invalid(
                    "--http-addr (LEARNER_HTTP_ADDR)",
                    &args.http_addr,
                    "must be a loopback address with --open",
                ));
            }
            (None, false) => return Err(ConfigError::NoCredentials),
        };
        let fleet = match args.fleet.as_deref() {
            None => None,
            Some(value) => Some(Arc::new(parse_fleet(value).map_err(|reason| {
                ConfigError::Fleet { field: "--fleet (LEARNER_FLEET)", reason }
            })?)),
        };
        let at_least_one = [
            (
                "--header-read-timeout-ms (LEARNER_HEADER_READ_TIMEOUT_MS)",
                args.header_read_timeout_ms,
            ),
            ("--request-timeout-ms (LEARNER_REQUEST_TIMEOUT_MS)", args.request_timeout_ms),
            (
                "--max-concurrent-requests (LEARNER_MAX_CONCURRENT_REQUESTS)",
                args.max_concurrent_requests as u64,
            ),
            ("--max-connections (LEARNER_MAX_CONNECTIONS)", args.max_connections as u64),
        ];
        if let Some((field, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(invalid(field, 0, "must be at least 1"));
        }
        let server = ServerLimits {
            header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
            request_timeout: Duration::from_millis(args.request_timeout_ms),
            max_concurrent_requests: args.max_concurrent_requests,
            max_connections: args.max_connections,
            shutdown_timeout: Duration::from_millis(args.shutdown_timeout_ms),
        };
        if args.max_routes == 0 {
            return Err(invalid("--max-routes (LEARNER_MAX_ROUTES)", 0, "must be at least 1"));
        }
        if args.max_downstreams_per_route == 0 {
            return Err(invalid(
                "--max-downstreams-per-route (LEARNER_MAX_DOWNSTREAMS)",
                0,
                "must be at least 1",
            ));
        }
        let kafka = if args.mode == Mode::Embedded {
            None
        } else {
            let brokers = args.kafka_brokers.as_deref().map(str::trim).unwrap_or_default();
            if brokers.is_empty() {
                return Err(ConfigError::Missing {
                    field: "--kafka-brokers (LEARNER_KAFKA_BROKERS)",
                    mode: args.mode.as_str(),
                });
            }
            if args.kafka_group.trim().is_empty() {
                return Err(invalid(
                    "--kafka-group (LEARNER_KAFKA_GROUP)",
                    &args.kafka_group,
                    "must not be empty",
                ));
            }
            if args.kafka_partitions < 1 {
                return Err(invalid(
                    "--kafka-partitions (LEARNER_KAFKA_PARTITIONS)",
                    args.kafka_partitions,
                    "must be at least 1",
                ));
            }
            Some(KafkaConfig {
                brokers: brokers.to_owned(),
                group: args.kafka_group.trim().to_owned(),
                partitions: args.kafka_partitions,
            })
        };
        let database =
            crate::admin::database_for(args.database_url.as_deref(), args.state_file.as_deref())
                .map_err(|reason| ConfigError::Secret {
                    field: "--database-url (LEARNER_DATABASE_URL)",
                    reason,
                })?;
        Ok(LearnerConfig {
            database,
            mode: args.mode,
            http_addr,
            topic,
            kafka,
            decay,
            body_limit_bytes: args.body_limit_bytes,
            max_batch_records: args.max_batch_records,
            dedupe_window: args.dedupe_window,
            commit_interval: Duration::from_millis(args.commit_interval_ms),
            state_file: args.state_file,
            reset_state: args.reset_state,
            fleet,
            seed: args.seed,
            cluster_id,
            access,
            basic_auth,
            server,
            metrics_max_series: args.metrics_max_series,
            max_routes: args.max_routes,
            max_downstreams_per_route: args.max_downstreams_per_route,
        })
    }
}

/// Parses a listen address: `ip:port` (`127.0.0.1:8090`, `[::1]:8090`), Go's `:port` (every
/// IPv4 interface, `0.0.0.0:port`, as the prototype's Go server bound it), or `host:port`
/// (resolved once at start; the first IPv4 address wins, else the first address).
pub fn parse_http_addr(value: &str) -> Result<SocketAddr, &'static str> {
    let value = value.trim();
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = value.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| "has no valid port after ':'")?;
        return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)));
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err("is not ip:port, host:port or :port");
    };
    if host.is_empty() || host.contains(':') {
        return Err("is not ip:port, host:port or :port");
    }
    let port: u16 = port.parse().map_err(|_| "has no valid port (0 to 65535)")?;
    let resolved: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|_| "names a host that does not resolve")?.collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or("names a host that does not resolve")
}

/// Parses `--fleet`: JSON (a list of names or of objects with a `name`, or an object whose
/// `downstreams` is such a list), or else a path to a file holding that JSON. Names are
/// non-empty, at most [`crate::validate::MAX_NAME_LEN`] bytes, and not repeated.
pub fn parse_fleet(value: &str) -> Result<BTreeSet<String>, String> {
    let trimmed = value.trim();
    let text = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        trimmed.to_owned()
    } else {
        std::fs::read_to_string(trimmed).map_err(|e| format!("cannot read {trimmed:?}: {e}"))?
    };
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let list = match &json {
        Value::Array(items) => items,
        Value::Object(o) => match o.get("downstreams") {
            Some(Value::Array(items)) => items,
            _ => return Err("an object must have a \"downstreams\" list".into()),
        },
        _ => return Err("must be a JSON list of downstream names".into()),
    };
    let mut names = BTreeSet::new();
    for (i, item) in list.iter().enumerate() {
        let name = match item {
            Value::String(s) => s.as_str(),
            Value::Object(o) => match o.get("name") {
                Some(Value::String(s)) => s.as_str(),
                _ => return Err(format!("[{i}].name: must be a string")),
            },
            _ => return Err(format!("[{i}]: must be a name or an object with a name")),
        };
        if name.is_empty() || name.len() > crate::validate::MAX_NAME_LEN {
            return Err(format!(
                "[{i}]: a name is 1 to {} bytes long",
                crate::validate::MAX_NAME_LEN
            ));
        }
        if !names.insert(name.to_owned()) {
            return Err(format!("[{i}]: {name:?} is listed twice"));
        }
    }
    if names.is_empty() {
        return Err("lists no downstream".into());
    }
    Ok(names)
}

impl LearnerConfig {
    /// Parses flags (the first item is the program name) and the environment.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, Box<dyn std::error::Error + Send + Sync>>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Ok(LearnerConfig::try_from(Args::try_parse_from(args)?)?)
    }

    /// The configuration as JSON for `--print-config`: the token and the basic-auth password
    /// are left out.
    pub fn summary(&self) -> Value {
        json!({
            "mode": self.mode.as_str(),
            "http_addr": self.http_addr.to_string(),
            "topic": self.topic,
            "cluster_id": self.cluster_id,
            "kafka": self.kafka.as_ref().map(|k| json!({
                "brokers": k.brokers,
                "group": k.group,
                "partitions": k.partitions,
            })),
            "half_life_ms": self.decay.half_life_ms(),
            "body_limit_bytes": self.body_limit_bytes,
            "max_batch_records": self.max_batch_records,
            "dedupe_window": self.dedupe_window,
            "commit_interval_ms": self.commit_interval.as_millis() as u64,
            "state_file": self.state_file,
            "reset_state": self.reset_state,
            "fleet": self.fleet.as_deref(),
            "seed": self.seed,
            "access": if self.access.is_open() { "open" } else { "token" },
            "rest_basic_auth": self.basic_auth.as_ref().map(|a| json!({"user": a.user()})),
            "max_routes": self.max_routes,
            "max_downstreams_per_route": self.max_downstreams_per_route,
            "header_read_timeout_ms": self.server.header_read_timeout.as_millis() as u64,
            "request_timeout_ms": self.server.request_timeout.as_millis() as u64,
            "max_concurrent_requests": self.server.max_concurrent_requests,
            "max_connections": self.server.max_connections,
            "shutdown_timeout_ms": self.server.shutdown_timeout.as_millis() as u64,
            "metrics_max_series": self.metrics_max_series,
            "database": self.database.describe(),
        })
    }
}

impl LearnerConfig {
    /// Embedded mode with every default and `access` (the command line has no default access:
    /// it asks for `--token` or `--open`).
    pub fn with_access(access: Access) -> Self {
        let addr = DEFAULT_HTTP_ADDR.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8090)));
        LearnerConfig {
            mode: Mode::Embedded,
            http_addr: addr,
            topic: DEFAULT_TOPIC.to_owned(),
            kafka: None,
            decay: Decay::default(),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            dedupe_window: DEFAULT_DEDUPE_WINDOW,
            commit_interval: Duration::from_millis(DEFAULT_COMMIT_INTERVAL_MS),
            state_file: None,
            reset_state: false,
            fleet: None,
            seed: None,
            cluster_id: DEFAULT_CLUSTER_ID.to_owned(),
            access,
            basic_auth: None,
            server: ServerLimits::default(),
            metrics_max_series: DEFAULT_METRICS_MAX_SERIES,
            max_routes: DEFAULT_MAX_ROUTES,
            max_downstreams_per_route: DEFAULT_MAX_DOWNSTREAMS_PER_ROUTE,
            database: crate::admin::Database::Memory,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "test-token-0123456789";

    fn token() -> Access {
        Access::Token(BearerToken::parse(TOKEN).unwrap())
    }

    /// Parses `args` with a token (the command line needs credentials).
    fn parse(args: &[&str]) -> Result<LearnerConfig, ConfigError> {
        let argv = ["magnetar-learner", "--token", TOKEN].into_iter().chain(args.iter().copied());
        LearnerConfig::try_from(Args::try_parse_from(argv).unwrap())
    }

    fn parse_bare(args: &[&str]) -> Result<LearnerConfig, ConfigError> {
        let argv = std::iter::once("magnetar-learner").chain(args.iter().copied());
        LearnerConfig::try_from(Args::try_parse_from(argv).map_err(|e| invalid("argv", e, "clap"))?)
    }

    #[test]
    fn the_database_url_is_parsed_and_never_echoed() {
        let config = parse(&["--database-url", "postgres://u:pw@127.0.0.1:5432/m"]).unwrap();
        assert_eq!(config.summary()["database"], "postgres://127.0.0.1:5432/m");
        let err = parse(&["--database-url", "mysql://u:pw@h/db"]).unwrap_err().to_string();
        assert!(
            err.contains("--database-url (LEARNER_DATABASE_URL)") && !err.contains("pw"),
            "{err}"
        );
        let beside = parse(&["--state-file", "/x/s.json"]).unwrap().database;
        assert_eq!(beside, crate::admin::Database::Sqlite("/x/s.admin.sqlite3".into()));
    }

    #[test]
    fn credentials_are_required_unless_open_on_loopback() {
        let err = parse_bare(&[]).unwrap_err();
        assert_eq!(err, ConfigError::NoCredentials);
        let message = err.to_string();
        assert!(message.contains("--token (MAGNETAR_LEARNER_TOKEN)") && message.contains("--open"));
        let open = parse_bare(&["--open"]).unwrap();
        assert_eq!(open, LearnerConfig::with_access(Access::Open));
        assert_eq!(open.summary()["access"], "open");
        let err = parse_bare(&["--open", "--http-addr", ":8090"]).unwrap_err();
        assert!(err.to_string().contains("loopback address with --open"), "{err}");
        assert!(parse_bare(&["--open", "--http-addr", "[::1]:0"]).is_ok());
        // --open and credentials contradict each other.
        assert!(parse_bare(&["--open", "--token", TOKEN]).is_err());
        assert!(parse_bare(&["--open", "--rest-basic-auth", "u:p"]).is_err());
        // A short token is refused without being echoed.
        let err = parse_bare(&["--token", "hunter2"]).unwrap_err();
        assert!(err.to_string().contains("--token") && !err.to_string().contains("hunter2"));
        let config = parse(&[]).unwrap();
        let summary = config.summary().to_string();
        assert!(summary.contains("\"token\"") && !summary.contains(TOKEN), "{summary}");
        assert!(!format!("{config:?}").contains(TOKEN));
    }

    #[test]
    fn defaults_are_embedded_on_8090() {
        let config = parse(&[]).unwrap();
        assert_eq!(config, LearnerConfig::with_access(token()));
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8090");
        assert_eq!(config.topic, "magnetar-telemetry");
        assert_eq!(config.decay.half_life_ms(), 60_000);
    }

    #[test]
    fn kafka_modes_need_brokers() {
        let err = parse(&["--mode", "kafka"]).unwrap_err();
        assert!(err.to_string().contains("--kafka-brokers (LEARNER_KAFKA_BROKERS)"), "{err}");
        let config =
            parse(&["--mode", "combined", "--kafka-brokers", "127.0.0.1:9092", "--seed", "4"])
                .unwrap();
        assert_eq!(config.kafka.unwrap().group, DEFAULT_GROUP);
        assert_eq!(config.seed, Some(4));
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse(&["--half-life-ms", "0"]).unwrap_err();
        assert!(err.to_string().contains("--half-life-ms (LEARNER_HALF_LIFE_MS)"), "{err}");
        let err = parse(&["--http-addr", "localhost"]).unwrap_err();
        assert!(err.to_string().contains("--http-addr"), "{err}");
        let err = parse(&["--kafka-topic", "a/b"]).unwrap_err();
        assert!(err.to_string().contains("--kafka-topic"), "{err}");
        let clap_err =
            Args::try_parse_from(["magnetar-learner", "--body-limit-bytes", "lots"]).unwrap_err();
        assert!(clap_err.to_string().contains("--body-limit-bytes"), "{clap_err}");
    }

    #[test]
    fn http_addr_accepts_go_style_and_host_names() {
        let at = |v: &str| parse(&["--http-addr", v]).map(|c| c.http_addr.to_string());
        assert_eq!(at(":8090").unwrap(), "0.0.0.0:8090");
        assert_eq!(at("127.0.0.1:0").unwrap(), "127.0.0.1:0");
        assert_eq!(at("[::1]:8090").unwrap(), "[::1]:8090");
        let localhost = parse(&["--http-addr", "localhost:8090"]).unwrap().http_addr;
        assert!(localhost.ip().is_loopback() && localhost.port() == 8090, "{localhost}");
        for bad in ["localhost", ":", ":http", "localhost:99999", "[::1", "a:b:c"] {
            let err = at(bad).unwrap_err();
            assert!(err.to_string().contains("--http-addr (LEARNER_HTTP_ADDR)"), "{bad}: {err}");
        }
    }

    #[test]
    fn v3_auth_and_caps() {
        let config = parse(&[
            "--cluster-id",
            " lkc-1 ",
            "--rest-basic-auth",
            "router:s3cr:et",
            "--max-routes",
            "8",
            "--max-downstreams-per-route",
            "4",
        ])
        .unwrap();
        assert_eq!(config.cluster_id, "lkc-1");
        assert_eq!(config.basic_auth.as_ref().unwrap().user(), "router");
        assert_eq!((config.max_routes, config.max_downstreams_per_route), (8, 4));
        let summary = config.summary().to_string();
        assert!(summary.contains("\"router\"") && !summary.contains("s3cr"), "{summary}");
        assert!(!format!("{config:?}").contains("s3cr"));
        assert_eq!(LearnerConfig::with_access(token()).cluster_id, DEFAULT_CLUSTER_ID);

        let err = parse(&["--rest-basic-auth", "hunter2"]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("--rest-basic-auth (LEARNER_REST_BASIC_AUTH)"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(parse(&["--cluster-id", "a/b"]).is_err());
        assert!(
            parse(&["--max-routes", "0"]).unwrap_err().to_string().contains("LEARNER_MAX_ROUTES")
        );
        let err = parse(&["--max-downstreams-per-route", "0"]).unwrap_err();
        assert!(err.to_string().contains("LEARNER_MAX_DOWNSTREAMS"), "{err}");
    }

    proptest::proptest! {
        /// What the configuration parser computed: the values given when each is in range, else
        /// an error naming the flag and its variable.
        #[test]
        fn numbers_and_tokens_parse_to_what_was_given_or_name_the_flag(
            half_life in 0u64..200_000,
            max_routes in 0usize..5_000,
            body_limit in 0usize..4_096,
            token in "[!-~]{0,24}",
        ) {
            let (h, r, b) = (half_life.to_string(), max_routes.to_string(), body_limit.to_string());
            let token_arg = format!("--token={token}");
            let argv = [
                "magnetar-learner", &token_arg, "--half-life-ms", &h,
                "--max-routes", &r, "--body-limit-bytes", &b,
            ];
            let parsed = LearnerConfig::try_from(Args::try_parse_from(argv).unwrap());
            let expected_error = if body_limit < 64 {
                Some("--body-limit-bytes (LEARNER_BODY_LIMIT_BYTES)")
            } else if half_life == 0 {
                Some("--half-life-ms (LEARNER_HALF_LIFE_MS)")
            } else if token.len() < BearerToken::MIN_LEN {
                Some("--token (MAGNETAR_LEARNER_TOKEN)")
            } else if max_routes == 0 {
                Some("--max-routes (LEARNER_MAX_ROUTES)")
            } else {
                None
            };
            match (parsed, expected_error) {
                (Ok(config), None) => {
                    proptest::prop_assert_eq!(config.decay.half_life_ms(), half_life);
                    proptest::prop_assert_eq!(config.max_routes, max_routes);
                    proptest::prop_assert_eq!(config.body_limit_bytes, body_limit);
                    proptest::prop_assert_eq!(
                        config.access,
                        Access::Token(BearerToken::parse(&token).unwrap())
                    );
                }
                (Err(e), Some(flag)) => {
                    let message = e.to_string();
                    proptest::prop_assert!(message.contains(flag), "{}", message);
                    proptest::prop_assert!(
                        token.len() < 3 || !message.contains(&token), "{}", message
                    );
                }
                (other, want) => proptest::prop_assert!(false, "{:?} but expected {:?}", other, want),
            }
        }

        /// `--fleet` gives back the names listed, in any of its accepted shapes.
        #[test]
        fn fleets_parse_to_their_names(names in proptest::collection::btree_set("[a-z0-9-]{1,20}", 1..8)) {
            let list: Vec<&String> = names.iter().collect();
            let objects: Vec<Value> = names.iter().map(|n| json!({"name": n, "url": "http://x"})).collect();
            for value in [
                json!(list).to_string(),
                json!(objects).to_string(),
                json!({"downstreams": objects}).to_string(),
            ] {
                proptest::prop_assert_eq!(&parse_fleet(&value).unwrap(), &names);
            }
        }
    }

    #[test]
    fn fleet_errors_name_the_item() {
        for (value, says) in [
            ("[]", "lists no downstream"),
            ("[\"a\", \"a\"]", "[1]: \"a\" is listed twice"),
            ("[{\"url\": \"x\"}]", "[0].name"),
            ("[\"\"]", "[0]: a name is 1 to 128"),
            ("{\"router\": {}}", "downstreams"),
            ("/nonexistent/fleet.json", "cannot read"),
        ] {
            let err = parse_fleet(value).unwrap_err();
            assert!(err.contains(says), "{value}: {err}");
        }
        let err = parse(&["--fleet", "[1]"]).unwrap_err();
        assert!(err.to_string().starts_with("invalid --fleet (LEARNER_FLEET): [0]"), "{err}");
        let workers = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/workers.json");
        let config = parse(&["--fleet", workers]).unwrap();
        assert!(config.fleet.unwrap().contains("downstream-3"));
    }

    #[test]
    fn mode_capabilities() {
        assert!(Mode::Embedded.learns() && !Mode::Embedded.consumes() && !Mode::Embedded.bridges());
        assert!(Mode::Kafka.learns() && Mode::Kafka.consumes() && !Mode::Kafka.bridges());
        assert!(!Mode::Bridge.learns() && !Mode::Bridge.consumes() && Mode::Bridge.bridges());
        assert!(Mode::Combined.learns() && Mode::Combined.consumes() && Mode::Combined.bridges());
    }
}
