//! The flaky downstream's configuration: defaults, the Worker variables, validation.
//!
//! [`OriginConfig::from_lookup`] takes a lookup function instead of an environment, like the
//! router's `RouterConfig`, so the Worker and native tests share one parser. Values are validated
//! by the same code whether they come from a variable (text) or an override (JSON), see
//! [`FlakyOverride`].

use serde::Serialize;

use super::overrides::{FlakyOverride, Raw};
use super::{Field, FlakyConfigError, Mode};

/// Name reported when `WORKER_NAME` is unset.
pub const DEFAULT_WORKER_NAME: &str = "downstream";
/// `MODE` when unset.
pub const DEFAULT_MODE: Mode = Mode::AllSuccess;
/// `PERCENTAGE_FAIL` when unset (only `percentage_fail` mode reads it).
pub const DEFAULT_PERCENTAGE_FAIL: f64 = 50.0;
/// `PROCESSING_DELAY_MS` when unset.
pub const DEFAULT_DELAY_MS: u64 = 0;
/// `LATENCY_JITTER_MS` when unset.
pub const DEFAULT_JITTER_MS: u64 = 0;
/// `FAIL_STATUS` when unset: the status of injected failures.
pub const DEFAULT_FAIL_STATUS: u16 = 500;
/// `RATE_LIMIT_RPS` when unset (only `rate_limited` mode reads it).
pub const DEFAULT_RATE_LIMIT_RPS: u32 = 10;
/// `OUTAGE_UP_SECS` when unset (only `cyclic_outage` mode reads it).
pub const DEFAULT_OUTAGE_UP_SECS: u64 = 20;
/// `OUTAGE_DOWN_SECS` when unset.
pub const DEFAULT_OUTAGE_DOWN_SECS: u64 = 10;
/// `OUTAGE_OFFSET_SECS` when unset: shifts the cycle so a fleet need not fail in lockstep.
pub const DEFAULT_OUTAGE_OFFSET_SECS: u64 = 0;

/// Largest processing delay and largest jitter, each.
pub const MAX_DELAY_MS: u64 = 60_000;
/// Largest configurable request rate.
pub const MAX_RATE_LIMIT_RPS: u32 = 100_000;
/// Largest up, down or offset duration of the outage cycle.
pub const MAX_OUTAGE_SECS: u64 = 86_400;

/// How the downstream behaves, validated. Serialized with the override keys (`GET /`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlakyConfig {
    pub mode: Mode,
    /// Probability of failure in percent, `0..=100` (fractions allowed).
    pub percentage_fail: f64,
    pub delay_ms: u64,
    /// Extra delay drawn uniformly from `0..=latency_jitter_ms` per request.
    pub latency_jitter_ms: u64,
    /// Status of injected failures, `500..=599`.
    pub fail_status: u16,
    /// Requests admitted per sliding second in `rate_limited` mode.
    pub rate_limit_rps: u32,
    pub outage_up_secs: u64,
    pub outage_down_secs: u64,
    pub outage_offset_secs: u64,
}

impl Default for FlakyConfig {
    fn default() -> Self {
        FlakyConfig {
            mode: DEFAULT_MODE,
            percentage_fail: DEFAULT_PERCENTAGE_FAIL,
            delay_ms: DEFAULT_DELAY_MS,
            latency_jitter_ms: DEFAULT_JITTER_MS,
            fail_status: DEFAULT_FAIL_STATUS,
            rate_limit_rps: DEFAULT_RATE_LIMIT_RPS,
            outage_up_secs: DEFAULT_OUTAGE_UP_SECS,
            outage_down_secs: DEFAULT_OUTAGE_DOWN_SECS,
            outage_offset_secs: DEFAULT_OUTAGE_OFFSET_SECS,
        }
    }
}

impl FlakyConfig {
    /// This configuration with the fields `over` gives replaced. `label` turns a field into the
    /// name an error should use for it (a variable, or an override path).
    pub fn with(
        &self,
        over: &FlakyOverride,
        label: impl Fn(Field) -> String,
    ) -> Result<FlakyConfig, FlakyConfigError> {
        let cfg = FlakyConfig {
            mode: over.mode.unwrap_or(self.mode),
            percentage_fail: over.percentage_fail.unwrap_or(self.percentage_fail),
            delay_ms: over.delay_ms.unwrap_or(self.delay_ms),
            latency_jitter_ms: over.latency_jitter_ms.unwrap_or(self.latency_jitter_ms),
            fail_status: over.fail_status.unwrap_or(self.fail_status),
            rate_limit_rps: over.rate_limit_rps.unwrap_or(self.rate_limit_rps),
            outage_up_secs: over.outage_up_secs.unwrap_or(self.outage_up_secs),
            outage_down_secs: over.outage_down_secs.unwrap_or(self.outage_down_secs),
            outage_offset_secs: over.outage_offset_secs.unwrap_or(self.outage_offset_secs),
        };
        if cfg.outage_up_secs + cfg.outage_down_secs == 0 {
            let field = if over.outage_down_secs.is_some() {
                Field::OutageDownSecs
            } else {
                Field::OutageUpSecs
            };
            return Err(FlakyConfigError::Inconsistent {
                field: label(field),
                problem: "outage up and down durations must not both be 0",
            });
        }
        Ok(cfg)
    }
}

/// Everything the downstream Worker reads from its variables.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OriginConfig {
    /// `WORKER_NAME`: how this downstream names itself in bodies, stats and override maps.
    pub worker: String,
    /// `ALLOW_OVERRIDES`: whether per-request overrides are honoured.
    pub allow_overrides: bool,
    #[serde(flatten)]
    pub flaky: FlakyConfig,
}

impl OriginConfig {
    /// `WORKER_NAME`, trimmed, or [`DEFAULT_WORKER_NAME`]. Never fails, so even a 400 for bad
    /// variables can name the worker.
    pub fn worker_name(lookup: impl Fn(&str) -> Option<String>) -> String {
        lookup("WORKER_NAME")
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| DEFAULT_WORKER_NAME.to_owned())
    }

    /// Parses the variables; `lookup(name)` returns one, `None` if unset. Empty counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, FlakyConfigError> {
        let lookup = move |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let worker = OriginConfig::worker_name(&lookup);
        let allow_overrides = match lookup("ALLOW_OVERRIDES") {
            None => false,
            Some(v) if v.trim().eq_ignore_ascii_case("true") => true,
            Some(v) if v.trim().eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(FlakyConfigError::WrongType {
                    field: "ALLOW_OVERRIDES".to_owned(),
                    expected: "true or false",
                    given: format!("{v:?}"),
                });
            }
        };
        let mut vars = FlakyOverride::default();
        for field in Field::ALL {
            if let Some(raw) = lookup(field.var()) {
                vars.set(field, Raw::Text(&raw), field.var())?;
            }
        }
        let flaky = FlakyConfig::default().with(&vars, |f| f.var().to_owned())?;
        Ok(OriginConfig { worker, allow_overrides, flaky })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<OriginConfig, FlakyConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        OriginConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.worker, DEFAULT_WORKER_NAME);
        assert!(!cfg.allow_overrides);
        assert_eq!(cfg.flaky, FlakyConfig::default());
    }

    #[test]
    fn every_variable_is_read() {
        let cfg = parse(&[
            ("WORKER_NAME", " downstream-2 "),
            ("ALLOW_OVERRIDES", "TRUE"),
            ("MODE", "PERCENTAGE_FAIL"),
            ("PERCENTAGE_FAIL", "12.5"),
            ("PROCESSING_DELAY_MS", "40"),
            ("LATENCY_JITTER_MS", "10"),
            ("FAIL_STATUS", "502"),
            ("RATE_LIMIT_RPS", "7"),
            ("OUTAGE_UP_SECS", "3"),
            ("OUTAGE_DOWN_SECS", "0"),
            ("OUTAGE_OFFSET_SECS", "1"),
        ])
        .unwrap();
        assert_eq!(cfg.worker, "downstream-2");
        assert!(cfg.allow_overrides);
        let expected = FlakyConfig {
            mode: Mode::PercentageFail,
            percentage_fail: 12.5,
            delay_ms: 40,
            latency_jitter_ms: 10,
            fail_status: 502,
            rate_limit_rps: 7,
            outage_up_secs: 3,
            outage_down_secs: 0,
            outage_offset_secs: 1,
        };
        assert_eq!(cfg.flaky, expected);
        let echo = serde_json::to_value(&cfg).unwrap();
        assert_eq!(echo["mode"], "percentage_fail");
        assert_eq!(echo["worker"], "downstream-2");
        assert_eq!(echo["delay_ms"], 40);
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("MODE", "flaky")], "MODE: unknown mode \"flaky\""),
            (&[("PERCENTAGE_FAIL", "101")], "PERCENTAGE_FAIL: 101 is outside 0..=100"),
            (&[("PERCENTAGE_FAIL", "-1")], "PERCENTAGE_FAIL: -1 is outside"),
            (&[("PERCENTAGE_FAIL", "lots")], "PERCENTAGE_FAIL: expected a number, got \"lots\""),
            (&[("PERCENTAGE_FAIL", "NaN")], "PERCENTAGE_FAIL: expected a number"),
            (&[("PROCESSING_DELAY_MS", "-5")], "PROCESSING_DELAY_MS: -5 is outside 0..=60000"),
            (&[("PROCESSING_DELAY_MS", "1.5")], "PROCESSING_DELAY_MS: expected a whole number"),
            (&[("LATENCY_JITTER_MS", "x")], "LATENCY_JITTER_MS: expected a whole number"),
            (&[("FAIL_STATUS", "404")], "FAIL_STATUS: 404 is outside 500..=599"),
            (&[("RATE_LIMIT_RPS", "1e9")], "RATE_LIMIT_RPS: 1000000000 is outside"),
            (&[("OUTAGE_UP_SECS", "0"), ("OUTAGE_DOWN_SECS", "0")], "OUTAGE_DOWN_SECS: outage"),
            (&[("ALLOW_OVERRIDES", "yes")], "ALLOW_OVERRIDES: expected true or false"),
        ];
        for (vars, expected) in cases {
            let err = parse(vars).unwrap_err().to_string();
            assert!(err.contains(expected), "{vars:?}: {err}");
        }
    }

    proptest! {
        #[test]
        fn variable_parser_never_panics(
            var in proptest::sample::select(Field::ALL.map(Field::var).to_vec()),
            value in ".{0,24}",
        ) {
            let _ = parse(&[(var, &value)]);
        }

        #[test]
        fn numeric_variables_within_range_are_accepted(pct in 0.0f64..=100.0, delay in 0u64..=MAX_DELAY_MS) {
            let cfg = parse(&[
                ("PERCENTAGE_FAIL", &pct.to_string()),
                ("PROCESSING_DELAY_MS", &delay.to_string()),
            ]).unwrap();
            prop_assert_eq!(cfg.flaky.percentage_fail, pct);
            prop_assert_eq!(cfg.flaky.delay_ms, delay);
        }
    }
}
