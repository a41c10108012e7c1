//! Per-request overrides of the flaky configuration.
//!
//! An override arrives in the `x-flaky-config` header (JSON) or as the `"flaky"` field of a JSON
//! request body, in one of two shapes:
//!
//! ```json
//! {"mode": "percentage_fail", "percentage_fail": 90, "delay_ms": 0}
//! {"downstream-1": {"mode": "All_fail"}, "downstream-2": {"delay_ms": 250}, "*": {"latency_jitter_ms": 5}}
//! ```
//!
//! The first applies to whoever receives it. The second is keyed by worker name: the router sends
//! the client's headers unchanged to every downstream, so one header can describe the whole fleet
//! and each worker picks its own entry. Entries for other names are ignored (not even validated);
//! `"*"` applies to every worker, under its own entry. An object holding any known key
//! ([`Field::key`]) is the first shape, and then every key must be known.
//!
//! A body that is not a JSON object, or has no `"flaky"` field, carries no override: the router
//! forwards arbitrary client payloads, and those must not turn into 400s.

use serde_json::{Map, Value};

use super::{Field, FlakyConfigError, Mode};

/// Header holding an override.
pub const OVERRIDE_HEADER: &str = "x-flaky-config";
/// Field of a JSON request body holding an override.
pub const BODY_FIELD: &str = "flaky";
/// Entry of a per-worker map that applies to every worker.
pub const WILDCARD_ENTRY: &str = "*";

/// Longest excerpt of a bad value quoted back in an error.
const MAX_QUOTE: usize = 40;

/// Fields an override (or the variables) give; `None` keeps the base value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlakyOverride {
    pub mode: Option<Mode>,
    pub percentage_fail: Option<f64>,
    pub delay_ms: Option<u64>,
    pub latency_jitter_ms: Option<u64>,
    pub fail_status: Option<u16>,
    pub rate_limit_rps: Option<u32>,
    pub outage_up_secs: Option<u64>,
    pub outage_down_secs: Option<u64>,
    pub outage_offset_secs: Option<u64>,
}

/// A value before validation: text from a variable, or JSON from an override.
pub(super) enum Raw<'a> {
    Text(&'a str),
    Json(&'a Value),
}

impl Raw<'_> {
    fn quote(&self) -> String {
        let text = match self {
            Raw::Text(s) => format!("{s:?}"),
            Raw::Json(v) => v.to_string(),
        };
        if text.chars().count() > MAX_QUOTE {
            format!("{}...", text.chars().take(MAX_QUOTE).collect::<String>())
        } else {
            text
        }
    }
}

impl FlakyOverride {
    /// Whether the override changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == FlakyOverride::default()
    }

    /// The fields this override gives, each as the text of the downstream Worker's variable
    /// ([`Field::var`]) that would set it.
    pub fn fields(&self) -> Vec<(Field, String)> {
        let text = |v: Option<u64>| v.map(|v| v.to_string());
        [
            (Field::Mode, self.mode.map(|m| m.as_str().to_owned())),
            (Field::PercentageFail, self.percentage_fail.map(|p| p.to_string())),
            (Field::DelayMs, text(self.delay_ms)),
            (Field::LatencyJitterMs, text(self.latency_jitter_ms)),
            (Field::FailStatus, self.fail_status.map(|s| s.to_string())),
            (Field::RateLimitRps, self.rate_limit_rps.map(|r| r.to_string())),
            (Field::OutageUpSecs, text(self.outage_up_secs)),
            (Field::OutageDownSecs, text(self.outage_down_secs)),
            (Field::OutageOffsetSecs, text(self.outage_offset_secs)),
        ]
        .into_iter()
        .filter_map(|(f, v)| v.map(|v| (f, v)))
        .collect()
    }

    /// `self` with every field `over` gives replaced.
    pub fn merge(self, over: FlakyOverride) -> FlakyOverride {
        FlakyOverride {
            mode: over.mode.or(self.mode),
            percentage_fail: over.percentage_fail.or(self.percentage_fail),
            delay_ms: over.delay_ms.or(self.delay_ms),
            latency_jitter_ms: over.latency_jitter_ms.or(self.latency_jitter_ms),
            fail_status: over.fail_status.or(self.fail_status),
            rate_limit_rps: over.rate_limit_rps.or(self.rate_limit_rps),
            outage_up_secs: over.outage_up_secs.or(self.outage_up_secs),
            outage_down_secs: over.outage_down_secs.or(self.outage_down_secs),
            outage_offset_secs: over.outage_offset_secs.or(self.outage_offset_secs),
        }
    }

    /// The part of an `x-flaky-config` header value that applies to `worker`.
    pub fn from_header(value: &str, worker: &str) -> Result<FlakyOverride, FlakyConfigError> {
        let json: Value = serde_json::from_str(value).map_err(|e| FlakyConfigError::Json {
            origin: OVERRIDE_HEADER.to_owned(),
            message: e.to_string(),
        })?;
        FlakyOverride::from_value(OVERRIDE_HEADER, &json, worker)
    }

    /// The part of a request body's `"flaky"` field that applies to `worker`; nothing when the
    /// body is not a JSON object with that field.
    pub fn from_body(body: &str, worker: &str) -> Result<FlakyOverride, FlakyConfigError> {
        if !body.trim_start().starts_with('{') {
            return Ok(FlakyOverride::default());
        }
        match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(map)) => match map.get(BODY_FIELD) {
                None => Ok(FlakyOverride::default()),
                Some(value) => FlakyOverride::from_value("body.flaky", value, worker),
            },
            _ => Ok(FlakyOverride::default()),
        }
    }

    /// The part of an override (either shape) that applies to `worker`. `origin` prefixes the
    /// field names in errors. `null` means no override.
    pub fn from_value(
        origin: &str,
        value: &Value,
        worker: &str,
    ) -> Result<FlakyOverride, FlakyConfigError> {
        let map = match value {
            Value::Null => return Ok(FlakyOverride::default()),
            Value::Object(map) => map,
            other => {
                return Err(FlakyConfigError::WrongType {
                    field: origin.to_owned(),
                    expected: "a JSON object",
                    given: Raw::Json(other).quote(),
                });
            }
        };
        if map.keys().any(|k| field_of(k).is_some()) {
            return FlakyOverride::from_object(origin, map);
        }
        let mut picked = FlakyOverride::default();
        for (key, entry) in map {
            let Value::Object(entry) = entry else {
                return Err(FlakyConfigError::UnknownField { field: format!("{origin}.{key}") });
            };
            if key == WILDCARD_ENTRY {
                let all = FlakyOverride::from_object(&format!("{origin}.{key}"), entry)?;
                picked = all.merge(picked);
            } else if key == worker {
                let own = FlakyOverride::from_object(&format!("{origin}.{key}"), entry)?;
                picked = picked.merge(own);
            }
        }
        Ok(picked)
    }

    fn from_object(path: &str, map: &Map<String, Value>) -> Result<Self, FlakyConfigError> {
        let mut over = FlakyOverride::default();
        for (key, value) in map {
            let field = format!("{path}.{key}");
            let Some(f) = field_of(key) else {
                return Err(FlakyConfigError::UnknownField { field });
            };
            if !value.is_null() {
                over.set(f, Raw::Json(value), &field)?;
            }
        }
        Ok(over)
    }

    /// Validates one value and stores it; `label` names it in errors.
    pub(super) fn set(
        &mut self,
        field: Field,
        raw: Raw<'_>,
        label: &str,
    ) -> Result<(), FlakyConfigError> {
        if field == Field::Mode {
            let text = match raw {
                Raw::Text(s) => s,
                Raw::Json(Value::String(s)) => s.as_str(),
                Raw::Json(_) => {
                    return Err(FlakyConfigError::WrongType {
                        field: label.to_owned(),
                        expected: "a mode name",
                        given: raw.quote(),
                    });
                }
            };
            let mode = text.parse::<Mode>().map_err(|source| FlakyConfigError::UnknownMode {
                field: label.to_owned(),
                source,
            })?;
            self.mode = Some(mode);
            return Ok(());
        }
        let (min, max, whole) = field.range();
        let number = match raw {
            Raw::Text(s) => s.trim().parse::<f64>().ok(),
            Raw::Json(Value::Number(n)) => n.as_f64(),
            Raw::Json(_) => None,
        };
        let number = number.filter(|x| x.is_finite() && (!whole || x.fract() == 0.0));
        let Some(x) = number else {
            return Err(FlakyConfigError::WrongType {
                field: label.to_owned(),
                expected: if whole { "a whole number" } else { "a number" },
                given: raw.quote(),
            });
        };
        if !(min..=max).contains(&x) {
            return Err(FlakyConfigError::OutOfRange {
                field: label.to_owned(),
                value: x,
                min,
                max,
            });
        }
        // In range and whole (where required), so the casts below are exact.
        match field {
            Field::Mode => {}
            Field::PercentageFail => self.percentage_fail = Some(x),
            Field::DelayMs => self.delay_ms = Some(x as u64),
            Field::LatencyJitterMs => self.latency_jitter_ms = Some(x as u64),
            Field::FailStatus => self.fail_status = Some(x as u16),
            Field::RateLimitRps => self.rate_limit_rps = Some(x as u32),
            Field::OutageUpSecs => self.outage_up_secs = Some(x as u64),
            Field::OutageDownSecs => self.outage_down_secs = Some(x as u64),
            Field::OutageOffsetSecs => self.outage_offset_secs = Some(x as u64),
        }
        Ok(())
    }
}

/// The field an override key names; keys are matched case-insensitively.
fn field_of(key: &str) -> Option<Field> {
    Field::ALL.into_iter().find(|f| f.key().eq_ignore_ascii_case(key))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::FlakyConfig;
    use super::*;

    fn header(json: &str, worker: &str) -> Result<FlakyOverride, FlakyConfigError> {
        FlakyOverride::from_header(json, worker)
    }

    #[test]
    fn one_object_applies_to_whoever_receives_it() {
        let over = header(r#"{"mode":"PERCENTAGE_FAIL","percentage_fail":90,"delay_ms":0}"#, "any")
            .unwrap();
        assert_eq!(over.mode, Some(Mode::PercentageFail));
        assert_eq!(over.percentage_fail, Some(90.0));
        assert_eq!(over.delay_ms, Some(0));
        assert_eq!(over.latency_jitter_ms, None);
    }

    #[test]
    fn a_map_gives_each_worker_its_own_entry() {
        let json = r#"{"downstream-1":{"mode":"All_fail"},
                       "downstream-2":{"delay_ms":250,"mode":"all_success"},
                       "*":{"delay_ms":5,"latency_jitter_ms":3}}"#;
        let one = header(json, "downstream-1").unwrap();
        assert_eq!(one.mode, Some(Mode::AllFail));
        assert_eq!((one.delay_ms, one.latency_jitter_ms), (Some(5), Some(3)));
        let two = header(json, "downstream-2").unwrap();
        assert_eq!(two.mode, Some(Mode::AllSuccess));
        assert_eq!((two.delay_ms, two.latency_jitter_ms), (Some(250), Some(3)));
        let three = header(r#"{"downstream-1":{"mode":"All_fail"}}"#, "downstream-3").unwrap();
        assert!(three.is_empty());
    }

    #[test]
    fn entries_for_other_workers_are_not_validated() {
        let json = r#"{"downstream-1":{"mode":"nonsense"},"downstream-2":{"delay_ms":1}}"#;
        assert_eq!(header(json, "downstream-2").unwrap().delay_ms, Some(1));
        let err = header(json, "downstream-1").unwrap_err().to_string();
        assert!(err.starts_with("x-flaky-config.downstream-1.mode: unknown mode"), "{err}");
    }

    #[test]
    fn overrides_replace_only_the_fields_they_give() {
        let base = FlakyConfig { delay_ms: 30, ..FlakyConfig::default() };
        let over = header(r#"{"mode":"All_fail","fail_status":503}"#, "w").unwrap();
        let cfg = base.with(&over, |f| f.key().to_owned()).unwrap();
        assert_eq!((cfg.mode, cfg.fail_status, cfg.delay_ms), (Mode::AllFail, 503, 30));
        let later = FlakyOverride { delay_ms: Some(7), ..FlakyOverride::default() };
        let merged = over.merge(later);
        assert_eq!((merged.mode, merged.delay_ms), (Some(Mode::AllFail), Some(7)));
    }

    #[test]
    fn bodies_carry_an_override_only_in_their_flaky_field() {
        let body = r#"{"order": 7, "flaky": {"w": {"mode": "cyclic_outage"}}}"#;
        assert_eq!(FlakyOverride::from_body(body, "w").unwrap().mode, Some(Mode::CyclicOutage));
        for body in ["", "hello", "{not json", "[1,2]", r#"{"order":7}"#, r#"{"flaky":null}"#] {
            assert!(FlakyOverride::from_body(body, "w").unwrap().is_empty(), "{body}");
        }
        let err = FlakyOverride::from_body(r#"{"flaky":{"delay_ms":-5}}"#, "w").unwrap_err();
        assert_eq!(err.to_string(), "body.flaky.delay_ms: -5 is outside 0..=60000");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("{", "x-flaky-config: not valid JSON"),
            ("90", "x-flaky-config: expected a JSON object, got 90"),
            (r#"{"mode":"sometimes"}"#, "x-flaky-config.mode: unknown mode \"sometimes\""),
            (r#"{"mode":3}"#, "x-flaky-config.mode: expected a mode name, got 3"),
            (
                r#"{"percentage_fail":150}"#,
                "x-flaky-config.percentage_fail: 150 is outside 0..=100",
            ),
            (r#"{"percentage_fail":"90"}"#, "x-flaky-config.percentage_fail: expected a number"),
            (r#"{"delay_ms":-1}"#, "x-flaky-config.delay_ms: -1 is outside 0..=60000"),
            (r#"{"delay_ms":2.5}"#, "x-flaky-config.delay_ms: expected a whole number, got 2.5"),
            (r#"{"fail_status":200}"#, "x-flaky-config.fail_status: 200 is outside 500..=599"),
            (r#"{"mode":"All_fail","colour":1}"#, "x-flaky-config.colour: unknown field"),
            (r#"{"w":{"delay":1}}"#, "x-flaky-config.w.delay: unknown field"),
            (r#"{"w":{"mode":"All_fail"},"typo":1}"#, "x-flaky-config.typo: unknown field"),
        ];
        for (json, expected) in cases {
            let err = header(json, "w").unwrap_err().to_string();
            assert!(err.starts_with(expected), "{json}: {err}");
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            proptest::sample::select(vec!["All_fail", "percentage_FAIL", "x", "*"])
                .prop_map(Value::from),
        ];
        let key = proptest::sample::select(
            [Field::ALL.map(Field::key).as_slice(), &["w", "*", "other", "MODE"]].concat(),
        );
        leaf.prop_recursive(3, 24, 6, move |inner| {
            proptest::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            })
        })
    }

    proptest! {
        #[test]
        fn header_parser_never_panics(text in ".{0,64}") {
            let _ = header(&text, "w");
            let _ = FlakyOverride::from_body(&text, "w");
        }

        #[test]
        fn accepted_overrides_give_valid_configs(json in arb_json()) {
            let Ok(over) = FlakyOverride::from_value("h", &json, "w") else { return Ok(()) };
            let Ok(cfg) = FlakyConfig::default().with(&over, |f| f.key().to_owned()) else {
                return Ok(());
            };
            prop_assert!((0.0..=100.0).contains(&cfg.percentage_fail));
            prop_assert!(cfg.delay_ms <= super::super::MAX_DELAY_MS);
            prop_assert!((500..=599).contains(&cfg.fail_status));
            prop_assert!(cfg.outage_up_secs + cfg.outage_down_secs > 0);
        }

        /// What [`FlakyOverride::fields`] renders, read back as the Worker reads its variables,
        /// is the same configuration (the fleet tool writes the variables this way).
        #[test]
        fn fields_read_back_as_variables_give_the_same_config(json in arb_json()) {
            let Ok(over) = FlakyOverride::from_value("h", &json, "w") else { return Ok(()) };
            let Ok(cfg) = FlakyConfig::default().with(&over, |f| f.key().to_owned()) else {
                return Ok(());
            };
            let vars: std::collections::HashMap<&str, String> =
                over.fields().into_iter().map(|(f, v)| (f.var(), v)).collect();
            let read = super::super::OriginConfig::from_lookup(|name| vars.get(name).cloned());
            prop_assert_eq!(read.map(|o| o.flaky), Ok(cfg));
        }
    }
}
