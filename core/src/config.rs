//! The router's configuration, parsed once from its environment (wrangler `[vars]` and secrets).
//!
//! [`RouterConfig::from_lookup`] takes a lookup function instead of reading an environment, so
//! the same parser serves the Worker (backed by `worker::Env`) and native tests. Every default is
//! a named constant; every error names the variable.

use crate::fleet::{Fleet, FleetError};
use crate::forward::ForwardTrust;
use crate::health::HealthConfig;
use crate::hedge::HedgeMode;
use crate::retry::budget::{DEFAULT_MIN_PER_SEC, DEFAULT_RETRY_PERCENT, DEFAULT_TTL_MS};
use crate::retry::{DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS_CAP, RetryBudgetConfig, RetryMode};
use crate::route::Routes;
use crate::strategy::magnetar::{MagnetarConfig, Objective};
use crate::strategy::{StrategyKind, StrategyParams, UnknownStrategy};
use crate::tags::RouteTags;
use crate::telemetry::DEFAULT_TOPIC;

/// Strategy used when a request names none.
pub const DEFAULT_ALGO: &str = "magnetar";
pub use crate::retry::DEFAULT_ATTEMPT_TIMEOUT_MS;
/// Deadline of the whole client request, all attempts included.
pub const DEFAULT_REQUEST_DEADLINE_MS: u64 = 6_000;
/// Deadline of one telemetry post (it runs after the response, in `wait_until`).
pub const DEFAULT_TELEMETRY_TIMEOUT_MS: u64 = 1_000;
/// Deadline of one `/recommendation` call on the request path.
pub const DEFAULT_LEARNER_TIMEOUT_MS: u64 = 100;
/// Least time between two `/params` refreshes of one isolate.
pub const DEFAULT_PARAMS_REFRESH_MS: u64 = 5_000;

/// Largest request body the router accepts by default (`MAX_BODY_BYTES`).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
/// Largest `MAX_BODY_BYTES` accepted: Cloudflare's request body limit on the free and pro plans.
pub const MAX_BODY_BYTES_CAP: u64 = 100 * 1024 * 1024;
/// The value of `RETRY_BUDGET_PERCENT` that turns the retry budget off.
pub const RETRY_BUDGET_OFF: &str = "off";

/// Which strategy a request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// A strategy of the core, run in the router isolate.
    Local(StrategyKind),
    /// Ask the learner's `/recommendation` per attempt; Thompson sampling locally when the
    /// learner does not answer in time.
    Learner,
}

/// Wire name of [`Algo::Learner`].
pub const LEARNER_ALGO: &str = "learner";

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Local(kind) => kind.name(),
            Algo::Learner => LEARNER_ALGO,
        }
    }

    /// Every valid name, comma-separated.
    pub fn names() -> String {
        format!("{}, {LEARNER_ALGO}", StrategyKind::names())
    }
}

impl std::str::FromStr for Algo {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case(LEARNER_ALGO) {
            return Ok(Algo::Learner);
        }
        s.parse::<StrategyKind>()
            .map(Algo::Local)
            .map_err(|e| UnknownStrategy { given: e.given, valid: Algo::names() })
    }
}

/// The REST proxy API flavour telemetry is posted with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestApi {
    /// Confluent REST Proxy v2: `POST {base}/topics/{topic}`.
    V2,
    /// Confluent v3 (Confluent Cloud): `POST {base}/v3/clusters/{cluster}/topics/{topic}/records`.
    V3 { cluster_id: String },
}

/// Where and how telemetry is posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryConfig {
    pub rest_url: String,
    pub topic: String,
    pub api: RestApi,
    /// Basic auth (`KAFKA_REST_USERNAME` / `KAFKA_REST_PASSWORD`, set as Worker secrets).
    pub basic_auth: Option<(String, String)>,
    pub timeout_ms: u64,
}

impl TelemetryConfig {
    /// The URL one batch is posted to.
    pub fn endpoint(&self) -> String {
        match &self.api {
            RestApi::V2 => format!("{}/topics/{}", self.rest_url, self.topic),
            RestApi::V3 { cluster_id } => {
                format!("{}/v3/clusters/{cluster_id}/topics/{}/records", self.rest_url, self.topic)
            }
        }
    }
}

/// How the router reaches the learner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LearnerConfig {
    pub url: String,
    /// Bearer token sent on `/recommendation` and `/params` (`LEARNER_TOKEN`, a secret).
    pub token: Option<String>,
    pub timeout_ms: u64,
    pub params_refresh_ms: u64,
}

/// Everything the router needs, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RouterConfig {
    pub fleet: Fleet,
    pub default_algo: Algo,
    pub max_attempts: u32,
    /// Which downstreams a retry may go to (`DISTINCT_DOWNSTREAMS`: `true`, `false` or `auto`,
    /// the default: strategies that plan repeats decide, the others retry distinct downstreams).
    pub retry_mode: RetryMode,
    pub attempt_timeout_ms: u64,
    /// Whether a slow attempt is hedged by one to another downstream (`HEDGE`: `auto`, the
    /// default, or `off`; see [`crate::hedge`]).
    pub hedge: HedgeMode,
    /// The `magnetar` strategy's parameters (`OBJECTIVE`, `CHANGE_HAZARD_PER_S`,
    /// `ATTEMPT_COST_MS`).
    pub magnetar: MagnetarConfig,
    pub request_deadline_ms: u64,
    pub telemetry: Option<TelemetryConfig>,
    pub learner: Option<LearnerConfig>,
    /// `Access-Control-Allow-Origin` for browser clients such as the test-bed page.
    pub cors_allow_origin: Option<String>,
    /// Retries across requests capped by a token bucket (`RETRY_BUDGET_PERCENT`, ...; on by
    /// default at 20% + 10/s over 10 s); `None` (`RETRY_BUDGET_PERCENT=off`) lets every request
    /// use its whole attempt budget.
    pub retry_budget: Option<RetryBudgetConfig>,
    /// Largest request body accepted (`MAX_BODY_BYTES`); larger ones get 413.
    pub max_body_bytes: u64,
    /// Bearer token of `/_magnetar/fleet` and `/_magnetar/state` (`ADMIN_TOKEN`, a secret);
    /// unset, those endpoints are refused.
    pub admin_token: Option<String>,
    /// Route patterns (`ROUTES`); `None`: the request path is the route.
    pub routes: Option<Routes>,
    /// Whether the client's `X-Forwarded-For` / `Forwarded` are extended or replaced
    /// (`FORWARDED_TRUST=append|replace`, default append; see [`crate::forward`]).
    pub forward_trust: ForwardTrust,
    /// Passive health: ejection, panic threshold, probes, slow start (`HEALTH_*`).
    pub health: HealthConfig,
    /// Tags each route requires (`ROUTE_TAGS`).
    pub route_tags: RouteTags,
}

impl RouterConfig {
    /// How retries of a request served by `kind` may choose: `auto` is `true` for strategies
    /// that do not plan repeats themselves (their registry row says which do).
    pub fn retry_mode_for(&self, kind: StrategyKind) -> RetryMode {
        match self.retry_mode {
            RetryMode::Auto if !kind.plans_repeats() => RetryMode::Distinct,
            mode => mode,
        }
    }

    /// The parameters every local strategy of this router is built with: the fleet's weights,
    /// the attempt budget as the penalty-free attempts, and `magnetar`'s variables (repeats
    /// allowed unless `DISTINCT_DOWNSTREAMS` says `true`).
    pub fn strategy_params(&self) -> StrategyParams {
        StrategyParams {
            penalty_free_attempts: self.max_attempts,
            magnetar: MagnetarConfig {
                repeats: self.retry_mode != RetryMode::Distinct,
                ..self.magnetar
            },
            ..StrategyParams::from_fleet(&self.fleet)
        }
    }

    /// The learning route of a request for `path` (no query string).
    pub fn route_of<'a>(&'a self, path: &'a str) -> &'a str {
        match &self.routes {
            Some(routes) => routes.resolve(path),
            None => path,
        }
    }
}

/// A variable of the router's environment was missing or invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("FLEET: {0}")]
    Fleet(#[from] FleetError),
    #[error("{var}: {problem}")]
    Invalid { var: &'static str, problem: String },
}

fn invalid(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, problem: problem.into() }
}

fn parse_u64(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = lookup(var) else { return Ok(default) };
    let value: u64 = raw
        .trim()
        .parse()
        .map_err(|_| invalid(var, format!("expected a whole number, got {raw:?}")))?;
    if !range.contains(&value) {
        return Err(invalid(
            var,
            format!("{value} is outside {}..={}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

/// A percentage (`20` or `20%`) as a fraction; `default` when unset, `None` when `off`.
fn parse_percent(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: f64,
) -> Result<Option<f64>, ConfigError> {
    let Some(raw) = lookup(var) else { return Ok(Some(default)) };
    if raw.trim().eq_ignore_ascii_case(RETRY_BUDGET_OFF) {
        return Ok(None);
    }
    match raw.trim().trim_end_matches('%').parse::<f64>() {
        Ok(p) if (0.0..=1000.0).contains(&p) => Ok(Some(p / 100.0)),
        _ => Err(invalid(
            var,
            format!("expected a percentage from 0 to 1000 or {RETRY_BUDGET_OFF:?}, got {raw:?}"),
        )),
    }
}

/// A finite number of at least `min`, or `default` when unset.
fn parse_f64(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
    default: f64,
    min: f64,
) -> Result<f64, ConfigError> {
    let Some(raw) = lookup(var) else { return Ok(default) };
    match raw.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= min => Ok(x),
        _ => Err(invalid(var, format!("expected a finite number >= {min}, got {raw:?}"))),
    }
}

/// The `magnetar` strategy's variables.
fn parse_magnetar(
    lookup: &dyn Fn(&str) -> Option<String>,
    attempt_timeout_ms: u64,
) -> Result<MagnetarConfig, ConfigError> {
    let d = MagnetarConfig::default();
    let objective = match lookup("OBJECTIVE") {
        None => Objective::Success,
        Some(raw) => raw.parse::<Objective>().map_err(|e| invalid("OBJECTIVE", e.to_string()))?,
    };
    Ok(MagnetarConfig {
        objective,
        hazard_per_s: parse_f64(lookup, "CHANGE_HAZARD_PER_S", d.hazard_per_s, 0.0)?,
        attempt_cost_ms: parse_f64(lookup, "ATTEMPT_COST_MS", d.attempt_cost_ms, 0.0)?,
        attempt_timeout_ms: attempt_timeout_ms as f64,
        ..d
    })
}

fn parse_base_url(var: &'static str, raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim().trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_owned())
    } else {
        Err(invalid(var, format!("must start with http:// or https://, got {raw:?}")))
    }
}

impl RouterConfig {
    /// Parses the configuration; `lookup(name)` returns a variable or secret, `None` if unset.
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let lookup = move |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let lookup: &dyn Fn(&str) -> Option<String> = &lookup;

        let fleet_json = lookup("FLEET").ok_or_else(|| invalid("FLEET", "missing"))?;
        let fleet = Fleet::from_json(&fleet_json)?;
        let default_algo = lookup("DEFAULT_ALGO")
            .unwrap_or_else(|| DEFAULT_ALGO.to_owned())
            .parse::<Algo>()
            .map_err(|e| invalid("DEFAULT_ALGO", e.to_string()))?;
        let max_attempts = parse_u64(
            lookup,
            "MAX_ATTEMPTS",
            DEFAULT_MAX_ATTEMPTS.into(),
            1..=MAX_ATTEMPTS_CAP.into(),
        )? as u32;
        let retry_mode = match lookup("DISTINCT_DOWNSTREAMS").as_deref().map(str::trim) {
            None | Some("auto") => RetryMode::Auto,
            Some("true" | "1" | "yes") => RetryMode::Distinct,
            Some("false" | "0" | "no") => RetryMode::Repeat,
            Some(other) => {
                return Err(invalid(
                    "DISTINCT_DOWNSTREAMS",
                    format!("expected true, false or auto, got {other:?}"),
                ));
            }
        };
        let attempt_timeout_ms =
            parse_u64(lookup, "ATTEMPT_TIMEOUT_MS", DEFAULT_ATTEMPT_TIMEOUT_MS, 1..=300_000)?;
        let request_deadline_ms =
            parse_u64(lookup, "REQUEST_DEADLINE_MS", DEFAULT_REQUEST_DEADLINE_MS, 1..=900_000)?;

        let telemetry = match lookup("KAFKA_REST_URL") {
            None => None,
            Some(raw) => {
                let rest_url = parse_base_url("KAFKA_REST_URL", &raw)?;
                let topic = lookup("KAFKA_TOPIC").unwrap_or_else(|| DEFAULT_TOPIC.to_owned());
                if !topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                    return Err(invalid("KAFKA_TOPIC", "may hold only letters, digits, . _ -"));
                }
                let api = match lookup("KAFKA_REST_API").as_deref().map(str::trim) {
                    None | Some("v2") => RestApi::V2,
                    Some("v3") => RestApi::V3 {
                        cluster_id: lookup("KAFKA_CLUSTER_ID").ok_or_else(|| {
                            invalid("KAFKA_CLUSTER_ID", "required when KAFKA_REST_API is v3")
                        })?,
                    },
                    Some(other) => {
                        return Err(invalid("KAFKA_REST_API", format!("v2 or v3, got {other:?}")));
                    }
                };
                let basic_auth =
                    match (lookup("KAFKA_REST_USERNAME"), lookup("KAFKA_REST_PASSWORD")) {
                        (Some(u), Some(p)) => Some((u, p)),
                        (None, None) => None,
                        _ => {
                            return Err(invalid(
                                "KAFKA_REST_PASSWORD",
                                "set both KAFKA_REST_USERNAME and KAFKA_REST_PASSWORD, or neither",
                            ));
                        }
                    };
                let timeout_ms = parse_u64(
                    lookup,
                    "TELEMETRY_TIMEOUT_MS",
                    DEFAULT_TELEMETRY_TIMEOUT_MS,
                    1..=30_000,
                )?;
                Some(TelemetryConfig { rest_url, topic, api, basic_auth, timeout_ms })
            }
        };

        let learner = match lookup("LEARNER_URL") {
            None => None,
            Some(raw) => Some(LearnerConfig {
                url: parse_base_url("LEARNER_URL", &raw)?,
                token: lookup("LEARNER_TOKEN").map(|t| t.trim().to_owned()),
                timeout_ms: parse_u64(
                    lookup,
                    "LEARNER_TIMEOUT_MS",
                    DEFAULT_LEARNER_TIMEOUT_MS,
                    1..=10_000,
                )?,
                params_refresh_ms: parse_u64(
                    lookup,
                    "PARAMS_REFRESH_MS",
                    DEFAULT_PARAMS_REFRESH_MS,
                    100..=3_600_000,
                )?,
            }),
        };

        let retry_budget =
            match parse_percent(lookup, "RETRY_BUDGET_PERCENT", DEFAULT_RETRY_PERCENT)? {
                None => None,
                Some(retry_percent) => Some(RetryBudgetConfig {
                    retry_percent,
                    min_per_sec: parse_u64(
                        lookup,
                        "RETRY_BUDGET_MIN_PER_SEC",
                        DEFAULT_MIN_PER_SEC.into(),
                        0..=100_000,
                    )? as u32,
                    ttl_ms: parse_u64(
                        lookup,
                        "RETRY_BUDGET_TTL_MS",
                        DEFAULT_TTL_MS,
                        1_000..=60_000,
                    )?,
                }),
            };

        let magnetar = parse_magnetar(lookup, attempt_timeout_ms)?;
        let hedge = match lookup("HEDGE") {
            None => HedgeMode::default(),
            Some(raw) => raw.parse::<HedgeMode>().map_err(|e| invalid("HEDGE", e.to_string()))?,
        };

        Ok(RouterConfig {
            fleet,
            default_algo,
            max_attempts,
            retry_mode,
            attempt_timeout_ms,
            hedge,
            magnetar,
            request_deadline_ms,
            telemetry,
            learner,
            cors_allow_origin: lookup("CORS_ALLOW_ORIGIN"),
            retry_budget,
            max_body_bytes: parse_u64(
                lookup,
                "MAX_BODY_BYTES",
                DEFAULT_MAX_BODY_BYTES,
                1..=MAX_BODY_BYTES_CAP,
            )?,
            admin_token: lookup("ADMIN_TOKEN").map(|t| t.trim().to_owned()),
            forward_trust: lookup("FORWARDED_TRUST")
                .map(|raw| raw.parse::<ForwardTrust>())
                .transpose()
                .map_err(|e| invalid("FORWARDED_TRUST", e.to_string()))?
                .unwrap_or_default(),
            routes: lookup("ROUTES")
                .map(|json| Routes::from_json(&json))
                .transpose()
                .map_err(|e| invalid("ROUTES", e.to_string()))?,
            health: HealthConfig::from_lookup(lookup).map_err(|e| invalid(e.var, e.problem))?,
            route_tags: lookup("ROUTE_TAGS")
                .map(|json| RouteTags::from_json(&json))
                .transpose()
                .map_err(|e| invalid("ROUTE_TAGS", e.to_string()))?
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const FLEET: &str =
        r#"[{"name":"a","url":"http://127.0.0.1:1"},{"name":"b","url":"http://127.0.0.1:2"}]"#;

    fn parse(vars: &[(&str, &str)]) -> Result<RouterConfig, ConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        RouterConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_fleet_is_given() {
        let cfg = parse(&[("FLEET", FLEET), ("DEFAULT_ALGO", "round_robin")]).unwrap();
        assert_eq!(cfg.fleet.len(), 2);
        assert_eq!(cfg.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(cfg.retry_mode, RetryMode::Auto);
        assert_eq!(cfg.retry_mode_for(StrategyKind::Thompson), RetryMode::Distinct);
        assert_eq!(cfg.retry_mode_for(StrategyKind::Magnetar), RetryMode::Auto);
        assert!(cfg.strategy_params().magnetar.repeats);
        assert_eq!(cfg.attempt_timeout_ms, DEFAULT_ATTEMPT_TIMEOUT_MS);
        assert_eq!(cfg.telemetry, None);
        assert_eq!(cfg.learner, None);
        assert_eq!(cfg.retry_budget, Some(RetryBudgetConfig::default()));
        assert_eq!(cfg.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(cfg.admin_token, None);
        assert_eq!(cfg.hedge, HedgeMode::Auto);
        let off = parse(&[("FLEET", FLEET), ("HEDGE", " Off ")]).unwrap();
        assert_eq!(off.hedge, HedgeMode::Off);
    }

    #[test]
    fn routes_come_from_configuration_or_are_the_path() {
        let cfg = parse(&[("FLEET", FLEET)]).unwrap();
        assert_eq!(cfg.route_of("/anything/7"), "/anything/7");
        let routes = r#"[{"pattern": "/api/users/:id", "route": "users"}]"#;
        let cfg = parse(&[("FLEET", FLEET), ("ROUTES", routes)]).unwrap();
        assert_eq!(cfg.route_of("/api/users/7"), "users");
        assert_eq!(cfg.route_of("/anything/7"), crate::route::DEFAULT_ROUTE);
        let err = parse(&[("FLEET", FLEET), ("ROUTES", r#"[{"pattern": "x", "route": "y"}]"#)])
            .unwrap_err();
        assert!(err.to_string().starts_with("ROUTES: [0].pattern"), "{err}");
    }

    #[test]
    fn tokens_are_read_and_trimmed() {
        let cfg = parse(&[
            ("FLEET", FLEET),
            ("ADMIN_TOKEN", " adm "),
            ("LEARNER_URL", "http://127.0.0.1:8090"),
            ("LEARNER_TOKEN", "lrn\n"),
        ])
        .unwrap();
        assert_eq!(cfg.admin_token.as_deref(), Some("adm"));
        assert_eq!(cfg.learner.unwrap().token.as_deref(), Some("lrn"));
    }

    #[test]
    fn max_body_bytes_is_bounded() {
        let cfg = parse(&[("FLEET", FLEET), ("MAX_BODY_BYTES", "4096")]).unwrap();
        assert_eq!(cfg.max_body_bytes, 4096);
        for bad in ["0", "104857601", "1MB"] {
            let err = parse(&[("FLEET", FLEET), ("MAX_BODY_BYTES", bad)]).unwrap_err();
            assert!(err.to_string().starts_with("MAX_BODY_BYTES:"), "{err}");
        }
    }

    #[test]
    fn retry_budget_is_on_by_default_and_off_when_asked() {
        let budget = parse(&[("FLEET", FLEET)]).unwrap().retry_budget.unwrap();
        assert!((budget.retry_percent - 0.2).abs() < 1e-12);
        assert_eq!(budget.min_per_sec, DEFAULT_MIN_PER_SEC);
        assert_eq!(budget.ttl_ms, DEFAULT_TTL_MS);
        for off in ["off", " OFF "] {
            let cfg = parse(&[("FLEET", FLEET), ("RETRY_BUDGET_PERCENT", off)]).unwrap();
            assert_eq!(cfg.retry_budget, None, "{off:?}");
        }
        let cfg = parse(&[("FLEET", FLEET), ("RETRY_BUDGET_PERCENT", "20")]).unwrap();
        assert_eq!(cfg.retry_budget, Some(RetryBudgetConfig::default()));
        let cfg = parse(&[
            ("FLEET", FLEET),
            ("RETRY_BUDGET_PERCENT", "5%"),
            ("RETRY_BUDGET_MIN_PER_SEC", "0"),
            ("RETRY_BUDGET_TTL_MS", "2000"),
        ])
        .unwrap();
        let budget = cfg.retry_budget.unwrap();
        assert!((budget.retry_percent - 0.05).abs() < 1e-12);
        assert_eq!((budget.min_per_sec, budget.ttl_ms), (0, 2000));
        for bad in ["-1", "lots", "1001"] {
            let err = parse(&[("FLEET", FLEET), ("RETRY_BUDGET_PERCENT", bad)]).unwrap_err();
            assert!(err.to_string().starts_with("RETRY_BUDGET_PERCENT:"), "{err}");
        }
        let err = parse(&[
            ("FLEET", FLEET),
            ("RETRY_BUDGET_PERCENT", "20"),
            ("RETRY_BUDGET_TTL_MS", "10"),
        ])
        .unwrap_err();
        assert!(err.to_string().starts_with("RETRY_BUDGET_TTL_MS:"), "{err}");
    }

    #[test]
    fn telemetry_endpoints_for_v2_and_v3() {
        let cfg = parse(&[
            ("FLEET", FLEET),
            ("DEFAULT_ALGO", "learner"),
            ("KAFKA_REST_URL", "http://127.0.0.1:8090/"),
        ])
        .unwrap();
        assert_eq!(cfg.default_algo, Algo::Learner);
        let t = cfg.telemetry.unwrap();
        assert_eq!(t.endpoint(), "http://127.0.0.1:8090/topics/magnetar-telemetry");

        let cfg = parse(&[
            ("FLEET", FLEET),
            ("DEFAULT_ALGO", "random"),
            ("KAFKA_REST_URL", "https://pkc.example"),
            ("KAFKA_REST_API", "v3"),
            ("KAFKA_CLUSTER_ID", "lkc-1"),
            ("KAFKA_REST_USERNAME", "key"),
            ("KAFKA_REST_PASSWORD", "secret"),
        ])
        .unwrap();
        let t = cfg.telemetry.unwrap();
        assert_eq!(
            t.endpoint(),
            "https://pkc.example/v3/clusters/lkc-1/topics/magnetar-telemetry/records"
        );
        assert_eq!(t.basic_auth, Some(("key".into(), "secret".into())));
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "FLEET: missing"),
            (&[("FLEET", "[]")], "FLEET: fleet is empty"),
            (&[("FLEET", FLEET), ("DEFAULT_ALGO", "best")], "DEFAULT_ALGO: unknown strategy"),
            (&[("FLEET", FLEET), ("MAX_ATTEMPTS", "0")], "MAX_ATTEMPTS: 0 is outside"),
            (&[("FLEET", FLEET), ("MAX_ATTEMPTS", "three")], "MAX_ATTEMPTS: expected a whole"),
            (&[("FLEET", FLEET), ("DISTINCT_DOWNSTREAMS", "maybe")], "DISTINCT_DOWNSTREAMS"),
            (&[("FLEET", FLEET), ("OBJECTIVE", "fastest")], "OBJECTIVE: invalid objective"),
            (&[("FLEET", FLEET), ("OBJECTIVE", "latency_slo:0")], "valid objectives"),
            (&[("FLEET", FLEET), ("CHANGE_HAZARD_PER_S", "-1")], "CHANGE_HAZARD_PER_S"),
            (&[("FLEET", FLEET), ("ATTEMPT_COST_MS", "NaN")], "ATTEMPT_COST_MS"),
            (&[("FLEET", FLEET), ("HEDGE", "always")], "HEDGE: invalid hedge mode \"always\""),
            (&[("FLEET", FLEET), ("KAFKA_REST_URL", "kafka:9092")], "KAFKA_REST_URL: must start"),
            (
                &[("FLEET", FLEET), ("KAFKA_REST_URL", "http://x"), ("KAFKA_REST_API", "v3")],
                "KAFKA_CLUSTER_ID",
            ),
            (&[("FLEET", FLEET), ("LEARNER_URL", "x")], "LEARNER_URL"),
        ];
        for (vars, expected) in cases {
            let err = parse(vars).unwrap_err().to_string();
            assert!(err.contains(expected), "{vars:?}: {err}");
        }
    }

    #[test]
    fn learner_is_a_valid_algo_and_listed() {
        assert_eq!("learner".parse::<Algo>().unwrap(), Algo::Learner);
        let err = "nope".parse::<Algo>().unwrap_err().to_string();
        assert!(err.contains("learner") && err.contains("round_robin"), "{err}");
    }
}
