//! The admin API's resources and the one place their bodies are validated: pools, experiments,
//! gates and API-key requests. Sans-io and total: any JSON gives a resource or a
//! [`Invalid`] naming the field (`variants[1].percent: ...`), never a panic.
//!
//! | resource | body |
//! | --- | --- |
//! | pool | `{name, routes: [pattern], downstreams: [name], algo, max_attempts}` |
//! | experiment | `{id, pool, state: running\|stopped, sticky: bool, variants: [{name, algo, percent}]}` |
//! | gate | `{id, feature, percent, rules: [{caller} \| {header, equals} \| {colo}]}` |
//! | key request | `{scope: read\|write, label?}` |
//!
//! Bounds: names and ids are 1 to [`MAX_ID_LEN`] characters of letters, digits, `-`, `_` and
//! `.`, starting with a letter or digit (they appear in paths and in telemetry); route patterns
//! are the router's own `ROUTES` patterns, checked by its parser ([`magnetar_core::route`]);
//! strategies are names of the registry ([`StrategyKind`]), stored under their wire name;
//! `max_attempts` is 1 to [`MAX_ATTEMPTS_CAP`] like the router's `MAX_ATTEMPTS`; an
//! experiment has 2 to [`MAX_VARIANTS`] variants with distinct names and whole percentages of at
//! least 1 that sum to 100; a gate's percentage is a whole 0 to 100 and it has at most
//! [`MAX_RULES`] rules. Unknown fields are refused, so a misspelt field is not silently ignored.

use std::collections::BTreeSet;

use magnetar_core::retry::MAX_ATTEMPTS_CAP;
use magnetar_core::route::Routes;
use magnetar_core::strategy::StrategyKind;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Longest name or id.
pub const MAX_ID_LEN: usize = 64;
/// Most route patterns of one pool.
pub const MAX_POOL_ROUTES: usize = 64;
/// Most downstreams of one pool.
pub const MAX_POOL_DOWNSTREAMS: usize = 256;
/// Most variants of one experiment.
pub const MAX_VARIANTS: usize = 16;
/// Most targeting rules of one gate.
pub const MAX_RULES: usize = 32;
/// Longest caller id, header name or header value a rule may hold.
pub const MAX_RULE_VALUE_LEN: usize = 128;
/// Longest key label.
pub const MAX_LABEL_LEN: usize = 128;

/// A body was not acceptable: `field` names where (`variants[1].percent`, or `body`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct Invalid {
    pub field: String,
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid { field: field.into(), problem: problem.into() }
}

/// Which table a resource lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pool,
    Experiment,
    Gate,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Pool, Kind::Experiment, Kind::Gate];

    /// The singular name in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Pool => "pool",
            Kind::Experiment => "experiment",
            Kind::Gate => "gate",
        }
    }

    /// The field that identifies a resource of this kind.
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Pool => "name",
            Kind::Experiment | Kind::Gate => "id",
        }
    }
}

/// A pool of downstreams behind routes, with its strategy and attempt budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    pub routes: Vec<String>,
    pub downstreams: Vec<String>,
    pub algo: String,
    pub max_attempts: u32,
}

/// Whether an experiment's traffic split is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExperimentState {
    Running,
    Stopped,
}

impl ExperimentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentState::Running => "running",
            ExperimentState::Stopped => "stopped",
        }
    }
}

/// One arm of an experiment: a strategy and its share of the pool's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    pub algo: String,
    pub percent: u32,
}

/// A split of a pool's traffic between strategies. The first variant is the control the
/// others are compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub id: String,
    pub pool: String,
    #[serde(default = "running")]
    pub state: ExperimentState,
    #[serde(default)]
    pub sticky: bool,
    pub variants: Vec<Variant>,
}

fn running() -> ExperimentState {
    ExperimentState::Running
}

/// Who a gate is on for, besides its rollout percentage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Rule {
    /// The caller (`x-magnetar-client-id` / `X-Caller-ID`) is this one.
    Caller { caller: String },
    /// The request carries header `header` (lowercase) with exactly this value.
    Header { header: String, equals: String },
    /// The request arrived at this Cloudflare colo (IATA code, uppercase).
    Colo { colo: String },
}

/// A feature turned on for a rollout percentage of callers and for those its rules match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gate {
    pub id: String,
    pub feature: String,
    pub percent: u32,
    pub rules: Vec<Rule>,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `GET` on every `/v1` resource and `/v1/config`.
    Read,
    /// Also create, change, stop and delete pools, experiments and gates.
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            _ => None,
        }
    }
}

/// The body of `POST /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    pub scope: Scope,
    #[serde(default)]
    pub label: String,
}

/// A validated pool, experiment or gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Pool(Pool),
    Experiment(Experiment),
    Gate(Gate),
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Pool(_) => Kind::Pool,
            Resource::Experiment(_) => Kind::Experiment,
            Resource::Gate(_) => Kind::Gate,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Resource::Pool(p) => &p.name,
            Resource::Experiment(e) => &e.id,
            Resource::Gate(g) => &g.id,
        }
    }

    /// The resource as the API shows it (and the store keeps it).
    pub fn to_json(&self) -> Value {
        let value = match self {
            Resource::Pool(p) => serde_json::to_value(p),
            Resource::Experiment(e) => serde_json::to_value(e),
            Resource::Gate(g) => serde_json::to_value(g),
        };
        // Plain structs of strings and integers: serializing them cannot fail.
        value.unwrap_or(Value::Null)
    }

    /// Validates `body` as a resource of `kind`.
    pub fn parse(kind: Kind, body: &Value) -> Result<Resource, Invalid> {
        match kind {
            Kind::Pool => parse_pool(body).map(Resource::Pool),
            Kind::Experiment => parse_experiment(body).map(Resource::Experiment),
            Kind::Gate => parse_gate(body).map(Resource::Gate),
        }
    }
}

/// Reads `body` as `T`, the error naming the field serde stopped at.
fn typed<T: DeserializeOwned>(body: &Value) -> Result<T, Invalid> {
    if !body.is_object() {
        return Err(invalid("body", format!("must be a JSON object, got {}", kind_of(body))));
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        invalid(field, e.into_inner().to_string())
    })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A name or id: 1 to [`MAX_ID_LEN`] of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn check_id(field: &str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters, got {}", value.len()),
        ));
    }
    let first_ok = value.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(invalid(
            field,
            format!(
                "may hold only letters, digits, - _ . and must start with a letter or digit, got {value:?}"
            ),
        ));
    }
    Ok(())
}

/// A registry strategy's wire name, from any spelling `?algo=` accepts.
fn check_algo(field: &str, value: &str) -> Result<String, Invalid> {
    value
        .parse::<StrategyKind>()
        .map(|k| k.name().to_owned())
        .map_err(|e| invalid(field, e.to_string()))
}

fn parse_pool(body: &Value) -> Result<Pool, Invalid> {
    let mut pool: Pool = typed(body)?;
    check_id("name", &pool.name)?;
    if pool.routes.is_empty() || pool.routes.len() > MAX_POOL_ROUTES {
        return Err(invalid(
            "routes",
            format!("must hold 1 to {MAX_POOL_ROUTES} patterns, got {}", pool.routes.len()),
        ));
    }
    for (i, pattern) in pool.routes.iter().enumerate() {
        // The router's own parser, so a pool the API accepts is a pool the router can serve.
        let entry = json!([{"pattern": pattern, "route": pool.name}]).to_string();
        if let Err(e) = Routes::from_json(&entry) {
            let problem = e.to_string();
            let problem = problem.strip_prefix("[0].pattern: ").unwrap_or(&problem).to_owned();
            return Err(invalid(format!("routes[{i}]"), problem));
        }
        if pattern.len() > crate::validate::MAX_ROUTE_LEN {
            return Err(invalid(
                format!("routes[{i}]"),
                format!("at most {} bytes, got {}", crate::validate::MAX_ROUTE_LEN, pattern.len()),
            ));
        }
    }
    if pool.downstreams.is_empty() || pool.downstreams.len() > MAX_POOL_DOWNSTREAMS {
        return Err(invalid(
            "downstreams",
            format!("must hold 1 to {MAX_POOL_DOWNSTREAMS} names, got {}", pool.downstreams.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, d) in pool.downstreams.iter().enumerate() {
        let field = format!("downstreams[{i}]");
        if d.is_empty() || d.len() > crate::validate::MAX_NAME_LEN {
            return Err(invalid(
                field,
                format!("must be 1 to {} bytes, got {}", crate::validate::MAX_NAME_LEN, d.len()),
            ));
        }
        if !seen.insert(d.as_str()) {
            return Err(invalid(field, format!("{d:?} is listed twice")));
        }
    }
    pool.algo = check_algo("algo", &pool.algo)?;
    if !(1..=MAX_ATTEMPTS_CAP).contains(&pool.max_attempts) {
        return Err(invalid(
            "max_attempts",
            format!("must be 1 to {MAX_ATTEMPTS_CAP}, got {}", pool.max_attempts),
        ));
    }
    Ok(pool)
}

fn parse_experiment(body: &Value) -> Result<Experiment, Invalid> {
    let mut experiment: Experiment = typed(body)?;
    check_id("id", &experiment.id)?;
    check_id("pool", &experiment.pool)?;
    let n = experiment.variants.len();
    if !(2..=MAX_VARIANTS).contains(&n) {
        return Err(invalid(
            "variants",
            format!("must hold 2 to {MAX_VARIANTS} variants, got {n}"),
        ));
    }
    let mut names = BTreeSet::new();
    let mut total = 0u32;
    for (i, variant) in experiment.variants.iter_mut().enumerate() {
        check_id(&format!("variants[{i}].name"), &variant.name)?;
        if !names.insert(variant.name.clone()) {
            return Err(invalid(
                format!("variants[{i}].name"),
                format!("{:?} is used by an earlier variant", variant.name),
            ));
        }
        variant.algo = check_algo(&format!("variants[{i}].algo"), &variant.algo)?;
        if !(1..=100).contains(&variant.percent) {
            return Err(invalid(
                format!("variants[{i}].percent"),
                format!("must be a whole number from 1 to 100, got {}", variant.percent),
            ));
        }
        total += variant.percent;
    }
    if total != 100 {
        return Err(invalid("variants", format!("percents must sum to 100, got {total}")));
    }
    Ok(experiment)
}

fn parse_gate(body: &Value) -> Result<Gate, Invalid> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        id: String,
        feature: String,
        percent: u32,
        #[serde(default)]
        rules: Vec<Value>,
    }
    let raw: Body = typed(body)?;
    check_id("id", &raw.id)?;
    check_id("feature", &raw.feature)?;
    if raw.percent > 100 {
        return Err(invalid(
            "percent",
            format!("must be a whole number from 0 to 100, got {}", raw.percent),
        ));
    }
    if raw.rules.len() > MAX_RULES {
        return Err(invalid(
            "rules",
            format!("at most {MAX_RULES} rules, got {}", raw.rules.len()),
        ));
    }
    let rules = raw
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| parse_rule(&format!("rules[{i}]"), r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Gate { id: raw.id, feature: raw.feature, percent: raw.percent, rules })
}

fn rule_string(field: &str, value: &Value, max: usize) -> Result<String, Invalid> {
    let Some(s) = value.as_str() else {
        return Err(invalid(field, format!("must be a string, got {}", kind_of(value))));
    };
    if s.is_empty() || s.len() > max {
        return Err(invalid(field, format!("must be 1 to {max} bytes, got {}", s.len())));
    }
    Ok(s.to_owned())
}

fn parse_rule(field: &str, rule: &Value) -> Result<Rule, Invalid> {
    const SHAPES: &str =
        r#"must be {"caller": ".."}, {"header": "x", "equals": "v"} or {"colo": "AMS"}"#;
    let Some(map) = rule.as_object() else {
        return Err(invalid(field, SHAPES));
    };
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    match keys.as_slice() {
        ["caller"] => Ok(Rule::Caller {
            caller: rule_string(&format!("{field}.caller"), &map["caller"], MAX_RULE_VALUE_LEN)?,
        }),
        ["colo"] => {
            let colo = rule_string(&format!("{field}.colo"), &map["colo"], 3)?;
            if colo.len() != 3 || !colo.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(invalid(
                    format!("{field}.colo"),
                    format!("must be a three-letter uppercase IATA code like AMS, got {colo:?}"),
                ));
            }
            Ok(Rule::Colo { colo })
        }
        ["equals", "header"] => {
            let header =
                rule_string(&format!("{field}.header"), &map["header"], MAX_RULE_VALUE_LEN)?;
            // RFC 9110 token characters; stored lowercase, as HTTP compares names.
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if !header.chars().all(token) {
                return Err(invalid(
                    format!("{field}.header"),
                    format!("must be an HTTP header name, got {header:?}"),
                ));
            }
            let equals =
                rule_string(&format!("{field}.equals"), &map["equals"], MAX_RULE_VALUE_LEN)?;
            if equals.chars().any(|c| c.is_ascii_control()) {
                return Err(invalid(format!("{field}.equals"), "must not hold control characters"));
            }
            Ok(Rule::Header { header: header.to_ascii_lowercase(), equals })
        }
        _ => Err(invalid(field, SHAPES)),
    }
}

/// Validates a key request body.
pub fn parse_key_request(body: &Value) -> Result<KeyRequest, Invalid> {
    let request: KeyRequest = typed(body)?;
    if request.label.len() > MAX_LABEL_LEN {
        return Err(invalid(
            "label",
            format!("at most {MAX_LABEL_LEN} bytes, got {}", request.label.len()),
        ));
    }
    if request.label.chars().any(char::is_control) {
        return Err(invalid("label", "must not hold control characters"));
    }
    Ok(request)
}

/// A stored resource's JSON back as the resource (the store only keeps what [`Resource::parse`]
/// accepted, so an error here means the database was changed by hand).
pub fn from_stored(kind: Kind, spec: &str) -> Result<Resource, Invalid> {
    let value: Value = serde_json::from_str(spec).map_err(|e| invalid("spec", e.to_string()))?;
    Resource::parse(kind, &value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn pool() -> Value {
        json!({"name": "api", "routes": ["/api/*", "/users/:id"], "downstreams": ["d1", "d2"],
               "algo": "thompson", "max_attempts": 2})
    }

    pub(crate) fn experiment() -> Value {
        json!({"id": "exp-1", "pool": "api", "sticky": true, "variants": [
            {"name": "control", "algo": "round_robin", "percent": 50},
            {"name": "treatment", "algo": "thompson", "percent": 50}]})
    }

    pub(crate) fn gate() -> Value {
        json!({"id": "g1", "feature": "contextual", "percent": 10, "rules": [
            {"caller": "client-a"}, {"header": "X-Beta", "equals": "1"}, {"colo": "AMS"}]})
    }

    fn field_of(kind: Kind, body: Value) -> String {
        Resource::parse(kind, &body).expect_err("must be refused").field
    }

    #[test]
    fn valid_bodies_parse_and_are_normalised() {
        let Resource::Pool(p) = Resource::parse(Kind::Pool, &pool()).unwrap() else { panic!() };
        assert_eq!((p.algo.as_str(), p.max_attempts), ("thompson", 2));
        let mut body = pool();
        body["algo"] = json!("Round-Robin");
        let Resource::Pool(p) = Resource::parse(Kind::Pool, &body).unwrap() else { panic!() };
        assert_eq!(p.algo, "round_robin", "stored under the wire name");
        let Resource::Experiment(e) = Resource::parse(Kind::Experiment, &experiment()).unwrap()
        else {
            panic!()
        };
        assert_eq!(e.state, ExperimentState::Running, "running unless said otherwise");
        let Resource::Gate(g) = Resource::parse(Kind::Gate, &gate()).unwrap() else { panic!() };
        assert_eq!(g.rules[1], Rule::Header { header: "x-beta".into(), equals: "1".into() });
        // What the API shows parses back to the same resource.
        for (kind, body) in
            [(Kind::Pool, pool()), (Kind::Experiment, experiment()), (Kind::Gate, gate())]
        {
            let r = Resource::parse(kind, &body).unwrap();
            assert_eq!(from_stored(kind, &r.to_json().to_string()).unwrap(), r);
        }
    }

    #[test]
    fn every_refusal_names_its_field() {
        type Spoil = fn(&mut Value);
        let pools: Vec<(Spoil, &str)> = vec![
            (|b| b["name"] = json!(""), "name"),
            (|b| b["name"] = json!("a b"), "name"),
            (|b| b["name"] = json!("-x"), "name"),
            (|b| b["name"] = json!("n".repeat(65)), "name"),
            (|b| b["routes"] = json!([]), "routes"),
            (|b| b["routes"] = json!(["/a", "api"]), "routes[1]"),
            (|b| b["routes"] = json!(["/a/*/b"]), "routes[0]"),
            (|b| b["routes"] = json!([format!("/{}", "a".repeat(300))]), "routes[0]"),
            (|b| b["downstreams"] = json!([]), "downstreams"),
            (|b| b["downstreams"] = json!(["d1", "d1"]), "downstreams[1]"),
            (|b| b["downstreams"] = json!(["d1", ""]), "downstreams[1]"),
            (|b| b["downstreams"] = json!(["d1", 3]), "downstreams[1]"),
            (|b| b["algo"] = json!("thompsn"), "algo"),
            (|b| b["max_attempts"] = json!(0), "max_attempts"),
            (|b| b["max_attempts"] = json!(11), "max_attempts"),
            (|b| b["max_attempts"] = json!(-1), "max_attempts"),
            (|b| b["max_attempts"] = json!("2"), "max_attempts"),
            (|b| b["extra"] = json!(1), "extra"),
            (|b| *b = json!([1]), "body"),
        ];
        for (spoil, field) in pools {
            let mut body = pool();
            spoil(&mut body);
            assert_eq!(field_of(Kind::Pool, body.clone()), field, "{body}");
        }
        let missing = Resource::parse(Kind::Pool, &json!({"name": "a"})).unwrap_err();
        assert!(missing.problem.contains("routes"), "{missing}");
        let experiments: Vec<(Spoil, &str)> = vec![
            (|b| b["id"] = json!("a/b"), "id"),
            (|b| b["pool"] = json!(""), "pool"),
            (|b| b["state"] = json!("paused"), "state"),
            (|b| b["sticky"] = json!("yes"), "sticky"),
            (
                |b| b["variants"] = json!([{"name": "a", "algo": "thompson", "percent": 100}]),
                "variants",
            ),
            (|b| b["variants"][1]["percent"] = json!(40), "variants"),
            (|b| b["variants"][1]["percent"] = json!(0), "variants[1].percent"),
            (|b| b["variants"][1]["percent"] = json!(50.5), "variants[1].percent"),
            (|b| b["variants"][1]["name"] = json!("control"), "variants[1].name"),
            (|b| b["variants"][0]["algo"] = json!("nope"), "variants[0].algo"),
            (|b| b["variants"][0]["weight"] = json!(1), "variants[0].weight"),
        ];
        for (spoil, field) in experiments {
            let mut body = experiment();
            spoil(&mut body);
            assert_eq!(field_of(Kind::Experiment, body.clone()), field, "{body}");
        }
        let gates: Vec<(Spoil, &str)> = vec![
            (|b| b["feature"] = json!(""), "feature"),
            (|b| b["percent"] = json!(101), "percent"),
            (|b| b["rules"][0] = json!({"caller": ""}), "rules[0].caller"),
            (|b| b["rules"][0] = json!({"caller": "a", "colo": "AMS"}), "rules[0]"),
            (|b| b["rules"][1] = json!({"header": "x beta", "equals": "1"}), "rules[1].header"),
            (|b| b["rules"][1] = json!({"header": "x"}), "rules[1]"),
            (|b| b["rules"][1] = json!({"header": "x", "equals": "a\nb"}), "rules[1].equals"),
            (|b| b["rules"][2] = json!({"colo": "ams"}), "rules[2].colo"),
            (|b| b["rules"][2] = json!({"colo": 7}), "rules[2].colo"),
            (|b| b["rules"][2] = json!("AMS"), "rules[2]"),
            (|b| b["rules"] = json!(vec![json!({"colo": "AMS"}); 33]), "rules"),
        ];
        for (spoil, field) in gates {
            let mut body = gate();
            spoil(&mut body);
            assert_eq!(field_of(Kind::Gate, body.clone()), field, "{body}");
        }
        let key = |b: Value| parse_key_request(&b).map_err(|e| e.field);
        assert_eq!(key(json!({"scope": "read"})).unwrap().scope, Scope::Read);
        assert_eq!(key(json!({"scope": "admin"})), Err("scope".into()));
        assert_eq!(key(json!({"scope": "read", "label": "x".repeat(129)})), Err("label".into()));
        assert_eq!(key(json!({"label": "x"})), Err("body".into()));
    }

    /// Arbitrary JSON, nested a little.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            "[ -~]{0,12}".prop_map(Value::String),
            prop_oneof![Just("name"), Just("id"), Just("routes"), Just("percent")]
                .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("name".to_owned()),
                        Just("id".to_owned()),
                        Just("routes".to_owned()),
                        Just("downstreams".to_owned()),
                        Just("algo".to_owned()),
                        Just("max_attempts".to_owned()),
                        Just("pool".to_owned()),
                        Just("variants".to_owned()),
                        Just("percent".to_owned()),
                        Just("rules".to_owned()),
                        Just("feature".to_owned()),
                        Just("caller".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..8,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Any JSON is accepted or refused with a field, never a panic; what is accepted
        /// keeps every bound and shows itself back as the same resource.
        #[test]
        fn any_body_is_validated(kind in prop_oneof![Just(Kind::Pool), Just(Kind::Experiment), Just(Kind::Gate)],
                                 body in json_value()) {
            match Resource::parse(kind, &body) {
                Ok(r) => {
                    prop_assert_eq!(from_stored(kind, &r.to_json().to_string()).unwrap(), r.clone());
                    prop_assert!(check_id("id", r.id()).is_ok());
                }
                Err(e) => prop_assert!(!e.field.is_empty() && !e.problem.is_empty()),
            }
        }

        /// Splits: accepted exactly when 2 to 16 distinct variants of 1 to 100 percent sum to 100.
        #[test]
        fn experiment_percents_must_sum_to_100(percents in proptest::collection::vec(0u32..120, 0..20)) {
            let variants: Vec<Value> = percents.iter().enumerate()
                .map(|(i, p)| json!({"name": format!("v{i}"), "algo": "thompson", "percent": p}))
                .collect();
            let body = json!({"id": "e", "pool": "p", "variants": variants});
            let ok = (2..=MAX_VARIANTS).contains(&percents.len())
                && percents.iter().all(|p| (1..=100).contains(p))
                && percents.iter().sum::<u32>() == 100;
            let parsed = Resource::parse(Kind::Experiment, &body);
            prop_assert_eq!(parsed.is_ok(), ok, "{:?}", parsed);
            if let Err(e) = parsed {
                prop_assert!(e.field.starts_with("variants"), "{}", e);
            }
        }

        /// Gate percentages and rule shapes.
        #[test]
        fn gate_percent_and_colo_bounds(percent in 0u32..200, colo in "[A-Za-z0-9]{0,5}") {
            let body = json!({"id": "g", "feature": "f", "percent": percent, "rules": [{"colo": colo}]});
            let ok = percent <= 100 && colo.len() == 3 && colo.chars().all(|c| c.is_ascii_uppercase());
            let parsed = Resource::parse(Kind::Gate, &body);
            prop_assert_eq!(parsed.is_ok(), ok, "{:?}", parsed);
        }

        /// Ids: accepted exactly when they fit the documented alphabet and length.
        #[test]
        fn ids_follow_the_documented_alphabet(id in "[ -~]{0,70}") {
            let ok = !id.is_empty() && id.len() <= MAX_ID_LEN
                && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            prop_assert_eq!(check_id("id", &id).is_ok(), ok);
        }
    }
}
