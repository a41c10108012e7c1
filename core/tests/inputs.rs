//! Property tests of what the router reads from outside: a client's request options (query,
//! override headers, JSON body), its body limit, and the router's configuration (Worker variables
//! and secrets, which an operator types). Whatever arrives, the parsers never panic, what they
//! accept is within the documented bounds, and what they refuse names what was wrong.

use std::collections::HashMap;

use magnetar_core::config::{Algo, ConfigError, RouterConfig};
use magnetar_core::request::{
    ALGO_HEADER, ALGO_SCAN_LIMIT_BYTES, BodyError, BodyLimit, MAX_ATTEMPTS_HEADER, RequestError,
    parse_request_options,
};
use magnetar_core::strategy::StrategyKind;
use proptest::prelude::*;

const FLEET: &str =
    r#"[{"name":"a","url":"http://127.0.0.1:1"},{"name":"b","url":"http://127.0.0.1:2"}]"#;

/// Every variable the router reads besides `FLEET`.
const VARS: [&str; 28] = [
    "ADMIN_TOKEN",
    "ATTEMPT_COST_MS",
    "ATTEMPT_TIMEOUT_MS",
    "CHANGE_HAZARD_PER_S",
    "CORS_ALLOW_ORIGIN",
    "DEFAULT_ALGO",
    "DISTINCT_DOWNSTREAMS",
    "KAFKA_CLUSTER_ID",
    "KAFKA_REST_API",
    "KAFKA_REST_PASSWORD",
    "KAFKA_REST_URL",
    "KAFKA_REST_USERNAME",
    "KAFKA_TOPIC",
    "LEARNER_TIMEOUT_MS",
    "LEARNER_TOKEN",
    "LEARNER_URL",
    "MAX_ATTEMPTS",
    "MAX_BODY_BYTES",
    "OBJECTIVE",
    "PARAMS_REFRESH_MS",
    "REQUEST_DEADLINE_MS",
    "RETRY_BUDGET_MIN_PER_SEC",
    "RETRY_BUDGET_PERCENT",
    "RETRY_BUDGET_TTL_MS",
    "ROUTES",
    "TELEMETRY_TIMEOUT_MS",
    "FORWARDED_TRUST",
    "FLEET",
];

/// Values an operator might type, right or wrong: numbers in and out of range, words the
/// parsers know, URLs, JSON, and anything at all.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        proptest::sample::select(vec![
            "off", "auto", "true", "false", "20%", "-1", "1e308", "NaN", "inf", "magnetar",
            "thompson", "nope", "success", "latency", "append", "replace",
        ])
        .prop_map(str::to_owned),
        "https?://[a-z0-9.:/]{0,20}",
        Just(r#"[{"pattern": "/api/:id", "route": "api"}]"#.to_owned()),
        Just(FLEET.to_owned()),
        ".{0,24}",
    ]
}

fn config(vars: &HashMap<String, String>) -> Result<RouterConfig, ConfigError> {
    RouterConfig::from_lookup(|name| vars.get(name).cloned())
}

fn header_name(err: &RequestError) -> &'static str {
    match err {
        RequestError::BadMaxAttempts { .. } => "max_attempts",
        RequestError::UnknownAlgo(_) | RequestError::AlgoNotString => "algo",
        RequestError::BadJson(_) => "body",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any set of variables: no panic; a refusal names one of the variables that was set; an
    /// accepted configuration is within its documented bounds.
    #[test]
    fn router_configuration_is_accepted_within_bounds_or_refused_by_name(
        set in proptest::collection::vec((proptest::sample::select(VARS.to_vec()), value()), 0..8),
    ) {
        let mut vars: HashMap<String, String> = set.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        vars.entry("FLEET".to_owned()).or_insert_with(|| FLEET.to_owned());
        match config(&vars) {
            Ok(cfg) => {
                prop_assert!(cfg.max_attempts >= 1);
                prop_assert!(cfg.attempt_timeout_ms >= 1);
                prop_assert!(cfg.request_deadline_ms >= 1);
                prop_assert!(cfg.max_body_bytes >= 1);
                prop_assert!(cfg.magnetar.hazard_per_s.is_finite() && cfg.magnetar.hazard_per_s >= 0.0);
                prop_assert!(cfg.magnetar.attempt_cost_ms.is_finite() && cfg.magnetar.attempt_cost_ms >= 0.0);
            }
            Err(ConfigError::Invalid { var, problem }) => {
                // The variable named was set, or it is the missing half of a pair whose other
                // half was set (the message then names that one too).
                let named = vars.contains_key(var) || vars.keys().any(|k| problem.contains(k.as_str()));
                prop_assert!(named, "{var} was not set: {problem}");
                prop_assert!(!problem.is_empty());
            }
            Err(ConfigError::Fleet(e)) => {
                prop_assert!(vars["FLEET"] != FLEET, "the good fleet was refused: {e}");
            }
        }
    }

    /// A whole-number variable alone: accepted exactly when it parses, and then it is used.
    #[test]
    fn max_attempts_is_taken_or_refused_by_name(raw in prop_oneof![
        (0u64..20).prop_map(|n| n.to_string()),
        ".{0,6}",
    ]) {
        let vars = HashMap::from([
            ("FLEET".to_owned(), FLEET.to_owned()),
            ("MAX_ATTEMPTS".to_owned(), raw.clone()),
        ]);
        match config(&vars) {
            Ok(cfg) => {
                if !raw.trim().is_empty() {
                    prop_assert_eq!(Some(cfg.max_attempts), raw.trim().parse::<u32>().ok());
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("MAX_ATTEMPTS: "), "{e}"),
        }
    }

    /// Any query, override headers and JSON body: no panic; what is accepted is a registered
    /// strategy and an attempt budget the configuration allows; a refusal says which option.
    #[test]
    fn request_options_are_bounded_or_refused_with_the_option_named(
        query in prop_oneof![".{0,40}", "(algo|max_attempts)=[a-z0-9_%]{0,12}(&[a-z_]{1,6}=[a-z0-9]{0,4}){0,2}"],
        algo_header in proptest::option::of(prop_oneof![
            proptest::sample::select(StrategyKind::ALL.iter().map(|k| k.name().to_owned()).collect::<Vec<_>>()),
            ".{0,12}",
        ]),
        attempts_header in proptest::option::of(prop_oneof![(0u32..10).prop_map(|n| n.to_string()), ".{0,6}"]),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..48),
            "\\{\"algo\": ?(\"[a-z_]{0,14}\"|[0-9]{1,3}|null|\\[\\])\\}".prop_map(String::into_bytes),
        ],
        max_allowed in 1u32..6,
    ) {
        let header = |name: &str| match name {
            ALGO_HEADER => algo_header.clone(),
            MAX_ATTEMPTS_HEADER => attempts_header.clone(),
            _ => None,
        };
        match parse_request_options(&query, header, Some("application/json"), &body, max_allowed) {
            Ok(options) => {
                if let Some(n) = options.max_attempts {
                    prop_assert!((1..=max_allowed).contains(&n));
                }
                if let Some(algo) = options.algo {
                    let known = algo == Algo::Learner || StrategyKind::ALL.iter().any(|k| k.name() == algo.name());
                    prop_assert!(known, "{algo:?}");
                }
            }
            Err(e) => {
                let named = header_name(&e);
                prop_assert!(e.to_string().contains(named) || matches!(e, RequestError::UnknownAlgo(_)), "{e}");
            }
        }
    }

    /// Every registered strategy is reachable by every route in, and the query beats the header
    /// beats the body.
    #[test]
    fn every_strategy_is_chosen_by_query_header_or_body_in_that_order(
        a in proptest::sample::select(StrategyKind::ALL.to_vec()),
        b in proptest::sample::select(StrategyKind::ALL.to_vec()),
        c in proptest::sample::select(StrategyKind::ALL.to_vec()),
    ) {
        let body = format!("{{\"algo\": \"{}\"}}", c.name()).into_bytes();
        let with_header = |h: &str| (h == ALGO_HEADER).then(|| b.name().to_owned());
        let q = format!("algo={}", a.name());
        let pick = |query: &str, header: &dyn Fn(&str) -> Option<String>| {
            parse_request_options(query, header, Some("application/json"), &body, 3)
                .expect("registered names are accepted")
                .algo
                .expect("an algo was given")
                .name()
        };
        prop_assert_eq!(pick(&q, &with_header), a.name());
        prop_assert_eq!(pick("", &with_header), b.name());
        prop_assert_eq!(pick("", &|_: &str| None), c.name());
    }

    /// A body over the scan limit is never parsed, whatever it holds.
    #[test]
    fn large_bodies_are_not_parsed(garbage in proptest::collection::vec(any::<u8>(), 1..64)) {
        let mut body = garbage.repeat(ALGO_SCAN_LIMIT_BYTES / garbage.len() + 1);
        body.truncate(ALGO_SCAN_LIMIT_BYTES + 1);
        let options = parse_request_options("", |_: &str| None, Some("application/json"), &body, 3);
        prop_assert_eq!(options.map(|o| o.algo), Ok(None));
    }

    /// The body limit: a declared length over the limit is refused before reading; while reading,
    /// the first chunk that takes the total over the limit is refused, and nothing before it.
    #[test]
    fn body_limit_refuses_exactly_what_passes_it(
        limit in 0u64..10_000,
        declared in proptest::option::of(prop_oneof![(0u64..20_000).prop_map(|n| n.to_string()), ".{0,8}"]),
        chunks in proptest::collection::vec(0usize..3_000, 0..12),
    ) {
        match BodyLimit::new(limit, declared.as_deref()) {
            Err(BodyError::DeclaredTooLarge { declared: d, limit: l }) => prop_assert!(d > l && l == limit),
            Err(BodyError::BadContentLength(raw)) => {
                prop_assert!(raw.trim().parse::<u64>().is_err());
            }
            Err(BodyError::TooLarge { .. }) => prop_assert!(false, "nothing was read yet"),
            Ok(mut body) => {
                let mut total = 0u64;
                for chunk in chunks {
                    total += chunk as u64;
                    let taken = body.take(chunk);
                    prop_assert_eq!(taken.is_err(), total > limit);
                    if taken.is_err() {
                        break;
                    }
                    prop_assert_eq!(body.read(), total);
                }
            }
        }
    }
}
