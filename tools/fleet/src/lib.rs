//! `config/workers.json`, read once: the fleet, the router's settings, and the ports of the local
//! stack.
//!
//! [`FleetFile::parse`] checks everything with the parsers the running code uses, so a mistake
//! is reported before anything starts and in the same words the Worker would use:
//! - each downstream's behaviour (`mode`, `percentage_fail`, ...) with
//!   [`magnetar_flaky`], as the downstream Worker reads its variables;
//! - the fleet and the router section with [`RouterConfig::from_lookup`], as the router reads
//!   `FLEET` and its other variables.
//!
//! Errors name the field in the file (`downstreams[2].percentage_fail: 150 is outside 0..=100`).
//! [`gen_local`] then writes one wrangler configuration per downstream and one for the router,
//! for `scripts/stack.sh`, the end-to-end tests and the lab alike.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use magnetar_core::config::{ConfigError, RouterConfig};
use magnetar_core::posterior::Decay;
use magnetar_flaky::{Field, FlakyConfig, FlakyConfigError, FlakyOverride};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The fleet file of the repository, relative to its root.
pub const DEFAULT_FILE: &str = "config/workers.json";
/// `compatibility_date` of the generated wrangler configurations.
pub const COMPATIBILITY_DATE: &str = "2025-09-01";
/// A Worker's inspector listens on its port plus this.
pub const INSPECTOR_OFFSET: u16 = 10_000;
/// Local ports of the stack when the file gives none.
pub const DEFAULT_ROUTER_PORT: u16 = 8787;
pub const DEFAULT_LEARNER_PORT: u16 = 8090;
pub const DEFAULT_TEST_BED_PORT: u16 = 8080;
pub const DEFAULT_KAFKA_PORT: u16 = 19092;
pub const DEFAULT_BRIDGE_PORT: u16 = 8091;
/// The learner's half-life when the file gives none: the learner's own default.
pub use magnetar_core::posterior::DEFAULT_HALF_LIFE_MS;

/// Keys of the `router` section (besides `port`) and the router variable each sets.
pub const ROUTER_KEYS: &[(&str, &str)] = &[
    ("default_algo", "DEFAULT_ALGO"),
    ("max_attempts", "MAX_ATTEMPTS"),
    ("distinct_downstreams", "DISTINCT_DOWNSTREAMS"),
    ("attempt_timeout_ms", "ATTEMPT_TIMEOUT_MS"),
    ("request_deadline_ms", "REQUEST_DEADLINE_MS"),
    ("telemetry_timeout_ms", "TELEMETRY_TIMEOUT_MS"),
    ("learner_timeout_ms", "LEARNER_TIMEOUT_MS"),
    ("params_refresh_ms", "PARAMS_REFRESH_MS"),
    ("retry_budget_percent", "RETRY_BUDGET_PERCENT"),
    ("retry_budget_min_per_sec", "RETRY_BUDGET_MIN_PER_SEC"),
    ("retry_budget_ttl_ms", "RETRY_BUDGET_TTL_MS"),
    ("hedge", "HEDGE"),
];

/// Keys of a downstream entry that are not behaviour.
const PLACEMENT_KEYS: &[&str] = &["name", "port", "url", "service", "weight", "tags"];

/// What is wrong with the file. The message names the field.
#[derive(Debug, thiserror::Error)]
pub enum FleetFileError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("{field}: {problem}")]
    Field { field: String, problem: String },
    #[error("{0}")]
    Behaviour(#[from] FlakyConfigError),
    #[error("router.{key} ({var}): {problem}")]
    Router { key: String, var: String, problem: String },
    #[error("{0}")]
    Fleet(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

fn field(field: impl Into<String>, problem: impl Into<String>) -> FleetFileError {
    FleetFileError::Field { field: field.into(), problem: problem.into() }
}

/// How the router reaches a downstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A downstream Worker the local stack runs on this loopback port.
    Local { port: u16 },
    /// An origin at this URL.
    Url(String),
    /// A Worker on the same account, through the service binding of this name.
    Service(String),
}

/// One downstream of the file.
#[derive(Clone, Debug)]
pub struct DownstreamEntry {
    pub name: String,
    pub placement: Placement,
    pub weight: Option<f64>,
    pub tags: Vec<String>,
    /// The behaviour fields as given (the downstream Worker's variables).
    pub behaviour: FlakyOverride,
    /// The behaviour with the Worker's defaults filled in.
    pub effective: FlakyConfig,
}

/// The whole file, validated.
#[derive(Clone, Debug)]
pub struct FleetFile {
    pub downstreams: Vec<DownstreamEntry>,
    pub router_port: u16,
    /// Router variables set by the `router` section (variable name → value).
    pub router_vars: BTreeMap<String, String>,
    pub learner_port: u16,
    pub half_life_ms: u64,
    pub test_bed_port: u16,
    pub kafka_port: u16,
    pub bridge_port: u16,
}

/// A value of the file as a Worker variable (strings unquoted).
fn var_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn object(doc: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, FleetFileError> {
    match doc.get(key) {
        None => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(field(key, "must be an object")),
    }
}

fn port(value: Option<&Value>, path: &str, default: u16) -> Result<u16, FleetFileError> {
    let Some(value) = value else { return Ok(default) };
    let max = u16::MAX - INSPECTOR_OFFSET;
    match value.as_u64() {
        Some(p) if (1024..=u64::from(max)).contains(&p) => Ok(p as u16),
        _ => Err(field(path, format!("must be a port from 1024 to {max}, got {value}"))),
    }
}

fn known_keys(
    section: &Map<String, Value>,
    path: &str,
    keys: &[&str],
) -> Result<(), FleetFileError> {
    match section.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(field(
            format!("{path}.{k}"),
            format!("unknown key, expected one of {}", keys.join(", ")),
        )),
        None => Ok(()),
    }
}

impl FleetFile {
    /// Reads and validates a fleet file.
    pub fn load(path: &Path) -> Result<FleetFile, FleetFileError> {
        let text = fs::read_to_string(path)
            .map_err(|source| FleetFileError::Read { path: path.to_owned(), source })?;
        FleetFile::parse(&text)
    }

    /// Parses and validates the text of a fleet file.
    pub fn parse(text: &str) -> Result<FleetFile, FleetFileError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| FleetFileError::Json(e.to_string()))?;
        let Value::Object(doc) = doc else { return Err(field("(top level)", "must be an object")) };
        known_keys(
            &doc,
            "(top level)",
            &["$comment", "router", "learner", "test_bed", "kafka", "downstreams"],
        )?;
        let Some(Value::Array(list)) = doc.get("downstreams") else {
            return Err(field("downstreams", "must be a non-empty list"));
        };
        if list.is_empty() {
            return Err(field("downstreams", "must be a non-empty list"));
        }
        let downstreams = list
            .iter()
            .enumerate()
            .map(|(i, d)| downstream(i, d))
            .collect::<Result<Vec<_>, _>>()?;

        let router = object(&doc, "router")?;
        let router_keys: Vec<&str> =
            std::iter::once("port").chain(ROUTER_KEYS.iter().map(|(k, _)| *k)).collect();
        known_keys(&router, "router", &router_keys)?;
        let router_vars = ROUTER_KEYS
            .iter()
            .filter_map(|(key, var)| router.get(*key).map(|v| ((*var).to_owned(), var_text(v))))
            .collect();
        let learner = object(&doc, "learner")?;
        known_keys(&learner, "learner", &["port", "half_life_ms"])?;
        let half_life_ms = match learner.get("half_life_ms") {
            None => DEFAULT_HALF_LIFE_MS,
            Some(v) => v.as_u64().filter(|h| Decay::new(*h).is_ok()).ok_or_else(|| {
                field(
                    "learner.half_life_ms",
                    format!("must be a whole number of ms, at least 1, got {v}"),
                )
            })?,
        };
        let test_bed = object(&doc, "test_bed")?;
        known_keys(&test_bed, "test_bed", &["port"])?;
        let kafka = object(&doc, "kafka")?;
        known_keys(&kafka, "kafka", &["port", "bridge_port"])?;
        let file = FleetFile {
            downstreams,
            router_port: port(router.get("port"), "router.port", DEFAULT_ROUTER_PORT)?,
            router_vars,
            learner_port: port(learner.get("port"), "learner.port", DEFAULT_LEARNER_PORT)?,
            half_life_ms,
            test_bed_port: port(test_bed.get("port"), "test_bed.port", DEFAULT_TEST_BED_PORT)?,
            kafka_port: port(kafka.get("port"), "kafka.port", DEFAULT_KAFKA_PORT)?,
            bridge_port: port(kafka.get("bridge_port"), "kafka.bridge_port", DEFAULT_BRIDGE_PORT)?,
        };
        file.check_local_ports()?;
        // The router's own parser, on what the local stack gives it.
        file.router_config(&file.router_fleet(Reach::LoopbackUrls)?, &BTreeMap::new())?;
        Ok(file)
    }

    fn check_local_ports(&self) -> Result<(), FleetFileError> {
        let mut seen = BTreeMap::<u16, String>::new();
        let mut claim = |port: u16, what: String| match seen.insert(port, what.clone()) {
            Some(other) => Err(field(what, format!("port {port} is also {other}'s"))),
            None => Ok(()),
        };
        for (i, d) in self.downstreams.iter().enumerate() {
            if let Placement::Local { port } = d.placement {
                claim(port, format!("downstreams[{i}].port"))?;
            }
        }
        claim(self.router_port, "router.port".into())?;
        claim(self.learner_port, "learner.port".into())?;
        claim(self.test_bed_port, "test_bed.port".into())?;
        Ok(())
    }

    /// The router's `FLEET` variable, with downstreams the local stack runs reached as `reach`
    /// says. [`Reach::Deployed`]: every downstream must give a `url` or a `service`.
    pub fn router_fleet(&self, reach: Reach) -> Result<String, FleetFileError> {
        let mut fleet = Vec::with_capacity(self.downstreams.len());
        for (i, d) in self.downstreams.iter().enumerate() {
            let mut entry = json!({ "name": d.name });
            match &d.placement {
                Placement::Local { port } if reach == Reach::LoopbackUrls => {
                    entry["url"] = json!(format!("http://127.0.0.1:{port}"))
                }
                Placement::Local { .. } if reach == Reach::ServiceBindings => {
                    entry["service"] = json!(binding_name(&d.name))
                }
                Placement::Local { .. } => {
                    return Err(field(
                        format!("downstreams[{i}]"),
                        "give a url or a service to deploy (a port only works locally)",
                    ));
                }
                Placement::Url(url) => entry["url"] = json!(url),
                Placement::Service(binding) => entry["service"] = json!(binding),
            }
            if let Some(weight) = d.weight {
                entry["weight"] = json!(weight);
            }
            if !d.tags.is_empty() {
                entry["tags"] = json!(d.tags);
            }
            fleet.push(entry);
        }
        let fleet = Value::Array(fleet).to_string();
        // The router's parser has the last word on the fleet (names, URLs, weights).
        magnetar_core::fleet::Fleet::from_json(&fleet)
            .map_err(|e| FleetFileError::Fleet(e.to_string()))?;
        Ok(fleet)
    }

    /// Every variable of the router for `fleet`, with `overrides` on top, checked by the router's
    /// own parser.
    pub fn router_config(
        &self,
        fleet: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, FleetFileError> {
        let mut vars = self.router_vars.clone();
        vars.insert("FLEET".into(), fleet.to_owned());
        vars.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars.retain(|_, v| !v.is_empty());
        match RouterConfig::from_lookup(|name| vars.get(name).cloned()) {
            Ok(_) => Ok(vars),
            Err(ConfigError::Fleet(e)) => Err(FleetFileError::Fleet(e.to_string())),
            Err(ConfigError::Invalid { var, problem }) => {
                let key = ROUTER_KEYS.iter().find(|(_, v)| *v == var).map(|(k, _)| *k);
                match key.filter(|_| !overrides.contains_key(var)) {
                    Some(key) => {
                        Err(FleetFileError::Router { key: key.into(), var: var.into(), problem })
                    }
                    None => Err(field(var, problem)),
                }
            }
        }
    }
}

fn downstream(i: usize, value: &Value) -> Result<DownstreamEntry, FleetFileError> {
    let at = format!("downstreams[{i}]");
    let Value::Object(map) = value else { return Err(field(at, "must be an object")) };
    let name = match map.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => return Err(field(format!("{at}.name"), "missing")),
    };
    let text = |key: &str| -> Result<Option<String>, FleetFileError> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => {
                Err(field(format!("{at}.{key}"), format!("must be a string, got {other}")))
            }
        }
    };
    let placement = match (map.contains_key("port"), text("url")?, text("service")?) {
        (true, None, None) => {
            Placement::Local { port: port(map.get("port"), &format!("{at}.port"), 0)? }
        }
        (false, Some(url), None) => Placement::Url(url),
        (false, None, Some(binding)) => Placement::Service(binding),
        (false, None, None) => {
            return Err(field(at, "give a local port, a url or a service binding"));
        }
        _ => return Err(field(at, "give only one of port, url and service")),
    };
    let weight = match map.get("weight") {
        None => None,
        Some(w) => {
            Some(w.as_f64().ok_or_else(|| field(format!("{at}.weight"), "must be a number"))?)
        }
    };
    let tags = match map.get("tags") {
        None => Vec::new(),
        Some(t) => serde_json::from_value(t.clone())
            .map_err(|_| field(format!("{at}.tags"), "must be a list of strings"))?,
    };
    let mut behaviour = Map::new();
    for (key, value) in map {
        if PLACEMENT_KEYS.contains(&key.as_str()) {
            continue;
        }
        if Field::from_key(key).is_none() {
            return Err(field(
                format!("{at}.{key}"),
                format!(
                    "unknown key, expected {} or one of {}",
                    PLACEMENT_KEYS.join(", "),
                    Field::keys()
                ),
            ));
        }
        behaviour.insert(key.clone(), value.clone());
    }
    // The downstream Worker's own parser: the fields as it reads them, then its consistency checks.
    let behaviour = FlakyOverride::from_value(&at, &Value::Object(behaviour), &name)?;
    let effective = FlakyConfig::default().with(&behaviour, |f| format!("{at}.{}", f.key()))?;
    Ok(DownstreamEntry { name, placement, weight, tags, behaviour, effective })
}

/// How the router reaches the downstream Workers the local stack runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reach {
    /// By `http://127.0.0.1:<port>`, each downstream its own `wrangler dev`.
    #[default]
    LoopbackUrls,
    /// Through service bindings, as Workers of one account are reached on Cloudflare: the
    /// router's `wrangler dev` hosts the downstream Workers too ([`Process::also_hosts`]).
    ServiceBindings,
    /// As deployed: only `url` and `service` entries, no local ports.
    Deployed,
}

/// The service binding name of a downstream Worker: `downstream-1` → `DOWNSTREAM_1`.
pub fn binding_name(worker: &str) -> String {
    worker
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
        .collect()
}

/// One process of the local stack.
#[derive(Clone, Debug, Serialize)]
pub struct Process {
    pub name: String,
    pub port: u16,
    pub inspector_port: u16,
    /// Its wrangler configuration.
    pub config: PathBuf,
    /// Further Workers this `wrangler dev` runs beside it (`-c` each), reached through service
    /// bindings ([`Reach::ServiceBindings`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_hosts: Vec<PathBuf>,
}

/// What [`gen_local`] wrote: the downstream Workers that run as processes of their own, then the
/// router (which hosts the downstreams itself with [`Reach::ServiceBindings`]).
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub downstreams: Vec<Process>,
    pub router: Process,
}

impl Manifest {
    /// Every process, downstreams first.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        self.downstreams.iter().chain(std::iter::once(&self.router))
    }
}

/// Settings of [`gen_local`] beyond the file.
#[derive(Clone, Debug, Default)]
pub struct LocalOptions {
    /// Router variables on top of the file's (e.g. `KAFKA_REST_URL`).
    pub router_vars: BTreeMap<String, String>,
    /// Router secrets, written to the `.dev.vars` file next to its configuration (how
    /// `wrangler dev` gives a Worker its secrets).
    pub router_secrets: BTreeMap<String, String>,
    /// How the router reaches the local downstreams.
    pub reach: Reach,
}

/// A TOML basic string (JSON's escapes are valid TOML).
fn toml_string(value: &str) -> String {
    Value::String(value.to_owned()).to_string()
}

fn write(path: &Path, text: &str) -> Result<(), FleetFileError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|source| FleetFileError::Write { path: dir.to_owned(), source })?;
    }
    fs::write(path, text).map_err(|source| FleetFileError::Write { path: path.to_owned(), source })
}

fn wrangler_config(
    name: &str,
    main: &Path,
    vars: &BTreeMap<String, String>,
    services: &[(String, String)],
) -> String {
    let mut out = String::from(
        "# Generated by magnetar-fleet from config/workers.json; edit that file instead.\n",
    );
    let _ = writeln!(out, "name = {}", toml_string(name));
    let _ = writeln!(out, "main = {}", toml_string(&main.to_string_lossy()));
    let _ = writeln!(out, "compatibility_date = \"{COMPATIBILITY_DATE}\"\n\n[vars]");
    for (key, value) in vars {
        let _ = writeln!(out, "{key} = {}", toml_string(value));
    }
    for (binding, service) in services {
        let _ = write!(out, "\n[[services]]\nbinding = {}\n", toml_string(binding));
        let _ = writeln!(out, "service = {}", toml_string(service));
    }
    out
}

/// Writes, under `out`, one wrangler configuration per local downstream (`<name>/wrangler.toml`)
/// and the router's (`router/wrangler.toml`, plus `router/.dev.vars` for its secrets), reaching
/// the downstreams as `options.reach` says; `root` is the repository (where the built Workers
/// are).
pub fn gen_local(
    file: &FleetFile,
    root: &Path,
    out: &Path,
    options: &LocalOptions,
) -> Result<Manifest, FleetFileError> {
    let mut downstreams = Vec::new();
    for d in &file.downstreams {
        let Placement::Local { port } = d.placement else { continue };
        let mut vars = BTreeMap::from([
            ("WORKER_NAME".to_owned(), d.name.clone()),
            ("ALLOW_OVERRIDES".to_owned(), "true".to_owned()),
        ]);
        vars.extend(d.behaviour.fields().into_iter().map(|(f, v)| (f.var().to_owned(), v)));
        let config = out.join(&d.name).join("wrangler.toml");
        write(
            &config,
            &wrangler_config(&d.name, &root.join("downstream-worker/build/index.js"), &vars, &[]),
        )?;
        downstreams.push(Process {
            name: d.name.clone(),
            port,
            inspector_port: port + INSPECTOR_OFFSET,
            config,
            also_hosts: Vec::new(),
        });
    }
    let bound = options.reach == Reach::ServiceBindings;
    let services: Vec<(String, String)> = if bound {
        downstreams.iter().map(|d| (binding_name(&d.name), d.name.clone())).collect()
    } else {
        Vec::new()
    };
    let mut given = BTreeMap::from([("CORS_ALLOW_ORIGIN".to_owned(), "*".to_owned())]);
    given.extend(options.router_vars.clone());
    given.extend(options.router_secrets.clone());
    let reach = if bound { Reach::ServiceBindings } else { Reach::LoopbackUrls };
    let mut vars = file.router_config(&file.router_fleet(reach)?, &given)?;
    vars.retain(|k, _| !options.router_secrets.contains_key(k));
    let config = out.join("router").join("wrangler.toml");
    write(
        &config,
        &wrangler_config("magnetar-router", &root.join("router/build/index.js"), &vars, &services),
    )?;
    let secrets: String =
        options.router_secrets.iter().map(|(k, v)| format!("{k}={}\n", toml_string(v))).collect();
    write(&out.join("router").join(".dev.vars"), &secrets)?;
    let mut router = Process {
        name: "magnetar-router".into(),
        port: file.router_port,
        inspector_port: file.router_port + INSPECTOR_OFFSET,
        config,
        also_hosts: Vec::new(),
    };
    if bound {
        // The router's `wrangler dev` runs them: no process, port or inspector of their own.
        router.also_hosts = downstreams.drain(..).map(|d| d.config).collect();
    }
    Ok(Manifest { downstreams, router })
}

/// `KEY=VALUE` pairs (command-line options) as a map; `flag` names the option in errors.
pub fn parse_pairs(
    pairs: &[String],
    flag: &str,
) -> Result<BTreeMap<String, String>, FleetFileError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(field(flag, format!("expected KEY=VALUE, got {pair:?}"))),
        })
        .collect()
}

#[cfg(test)]
mod tests;
