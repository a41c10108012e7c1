//! The health variables of the router (wrangler `[vars]`), parsed once with the rest of its
//! configuration. Every default is a named constant; every error names the variable.

use super::phi::{self, PhiConfig};

/// Consecutive failed attempts that eject a downstream (Envoy's `consecutive_5xx` default).
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
/// First ejection time; the n-th ejection in a row lasts n times this (Envoy's default, 30 s).
pub const DEFAULT_EJECTION_BASE_MS: u64 = 30_000;
/// Longest ejection (Envoy's `max_ejection_time` default, 300 s).
pub const DEFAULT_EJECTION_MAX_MS: u64 = 300_000;
/// Share of the fleet never ejected (Envoy's `healthy_panic_threshold` default, 50%).
pub const DEFAULT_PANIC_PERCENT: f64 = 50.0;
/// Slow-start window of a readmitted downstream.
pub const DEFAULT_SLOW_START_MS: u64 = 30_000;
/// Path of the synthetic request that must succeed before an ejected downstream is readmitted.
pub const DEFAULT_PROBE_PATH: &str = "/";
/// Status that probe must answer with.
pub const DEFAULT_PROBE_STATUS: u16 = 200;
/// Deadline of one probe.
pub const DEFAULT_PROBE_TIMEOUT_MS: u64 = 1_000;

/// The variables this module reads.
pub const VARS: &[&str] = &[
    "HEALTH_EJECTION",
    "HEALTH_CONSECUTIVE_FAILURES",
    "HEALTH_PHI_THRESHOLD",
    "HEALTH_PHI_WINDOW",
    "HEALTH_PHI_MIN_SAMPLES",
    "HEALTH_EJECTION_BASE_MS",
    "HEALTH_EJECTION_MAX_MS",
    "HEALTH_PANIC_PERCENT",
    "HEALTH_SLOW_START_MS",
    "HEALTH_PROBE",
    "HEALTH_PROBE_PATH",
    "HEALTH_PROBE_STATUS",
    "HEALTH_PROBE_TIMEOUT_MS",
];

/// Passive failure detection, ejection, panic threshold, slow start and readmission probes.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    /// Whether failing downstreams are ejected at all (`HEALTH_EJECTION`, `off` by default).
    pub ejection: bool,
    pub consecutive_failures: u32,
    pub phi: PhiConfig,
    pub ejection_base_ms: u64,
    pub ejection_max_ms: u64,
    /// Share of the fleet (0..=1) that is never ejected.
    pub panic_share: f64,
    pub slow_start_ms: u64,
    /// Whether an ejected downstream must answer a probe before it is readmitted
    /// (`HEALTH_PROBE`, on by default); off, it is readmitted when its ejection time is over.
    pub probe: bool,
    pub probe_path: String,
    pub probe_status: u16,
    pub probe_timeout_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            ejection: false,
            consecutive_failures: DEFAULT_CONSECUTIVE_FAILURES,
            phi: PhiConfig::default(),
            ejection_base_ms: DEFAULT_EJECTION_BASE_MS,
            ejection_max_ms: DEFAULT_EJECTION_MAX_MS,
            panic_share: DEFAULT_PANIC_PERCENT / 100.0,
            slow_start_ms: DEFAULT_SLOW_START_MS,
            probe: true,
            probe_path: DEFAULT_PROBE_PATH.to_owned(),
            probe_status: DEFAULT_PROBE_STATUS,
            probe_timeout_ms: DEFAULT_PROBE_TIMEOUT_MS,
        }
    }
}

/// A health variable was invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct HealthConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> HealthConfigError {
    HealthConfigError { var, problem: problem.into() }
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn switch(lookup: Lookup<'_>, var: &'static str, default: bool) -> Result<bool, HealthConfigError> {
    match lookup(var).as_deref().map(str::trim) {
        None => Ok(default),
        Some("on" | "true" | "1" | "yes") => Ok(true),
        Some("off" | "false" | "0" | "no") => Ok(false),
        Some(other) => Err(err(var, format!("expected on or off, got {other:?}"))),
    }
}

fn whole(
    lookup: Lookup<'_>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, HealthConfigError> {
    let Some(raw) = lookup(var) else { return Ok(default) };
    let value: u64 = raw
        .trim()
        .parse()
        .map_err(|_| err(var, format!("expected a whole number, got {raw:?}")))?;
    if !range.contains(&value) {
        return Err(err(var, format!("{value} is outside {}..={}", range.start(), range.end())));
    }
    Ok(value)
}

fn number(
    lookup: Lookup<'_>,
    var: &'static str,
    default: f64,
    range: std::ops::RangeInclusive<f64>,
) -> Result<f64, HealthConfigError> {
    let Some(raw) = lookup(var) else { return Ok(default) };
    match raw.trim().trim_end_matches('%').parse::<f64>() {
        Ok(x) if x.is_finite() && range.contains(&x) => Ok(x),
        _ => Err(err(
            var,
            format!("expected a number from {} to {}, got {raw:?}", range.start(), range.end()),
        )),
    }
}

impl HealthConfig {
    /// Parses the health variables; `lookup` returns a variable, `None` when unset or empty.
    pub fn from_lookup(lookup: Lookup<'_>) -> Result<HealthConfig, HealthConfigError> {
        let d = HealthConfig::default();
        let window = whole(lookup, "HEALTH_PHI_WINDOW", phi::DEFAULT_WINDOW as u64, 1..=10_000)?;
        let min_samples =
            whole(lookup, "HEALTH_PHI_MIN_SAMPLES", phi::DEFAULT_MIN_SAMPLES as u64, 1..=10_000)?;
        if min_samples > window {
            return Err(err(
                "HEALTH_PHI_MIN_SAMPLES",
                format!("{min_samples} is more than HEALTH_PHI_WINDOW ({window})"),
            ));
        }
        let ejection_base_ms =
            whole(lookup, "HEALTH_EJECTION_BASE_MS", d.ejection_base_ms, 1..=86_400_000)?;
        let ejection_max_ms = whole(
            lookup,
            "HEALTH_EJECTION_MAX_MS",
            d.ejection_max_ms.max(ejection_base_ms),
            1..=86_400_000,
        )?;
        if ejection_max_ms < ejection_base_ms {
            return Err(err(
                "HEALTH_EJECTION_MAX_MS",
                format!("{ejection_max_ms} is below HEALTH_EJECTION_BASE_MS ({ejection_base_ms})"),
            ));
        }
        let probe_path = lookup("HEALTH_PROBE_PATH").map_or(d.probe_path, |p| p.trim().to_owned());
        if !probe_path.starts_with('/') || probe_path.chars().any(|c| c.is_whitespace()) {
            return Err(err("HEALTH_PROBE_PATH", "must be a path starting with / (no spaces)"));
        }
        Ok(HealthConfig {
            ejection: switch(lookup, "HEALTH_EJECTION", d.ejection)?,
            consecutive_failures: whole(
                lookup,
                "HEALTH_CONSECUTIVE_FAILURES",
                d.consecutive_failures.into(),
                1..=10_000,
            )? as u32,
            phi: PhiConfig {
                threshold: number(lookup, "HEALTH_PHI_THRESHOLD", d.phi.threshold, 0.1..=1_000.0)?,
                window: window as usize,
                min_samples: min_samples as usize,
                ..d.phi
            },
            ejection_base_ms,
            ejection_max_ms,
            panic_share: number(
                lookup,
                "HEALTH_PANIC_PERCENT",
                DEFAULT_PANIC_PERCENT,
                0.0..=100.0,
            )? / 100.0,
            slow_start_ms: whole(lookup, "HEALTH_SLOW_START_MS", d.slow_start_ms, 0..=3_600_000)?,
            probe: switch(lookup, "HEALTH_PROBE", d.probe)?,
            probe_path,
            probe_status: whole(lookup, "HEALTH_PROBE_STATUS", d.probe_status.into(), 100..=599)?
                as u16,
            probe_timeout_ms: whole(
                lookup,
                "HEALTH_PROBE_TIMEOUT_MS",
                d.probe_timeout_ms,
                1..=60_000,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<HealthConfig, HealthConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        HealthConfig::from_lookup(&|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_are_the_cluster_designs_and_envoys() {
        let c = parse(&[]).unwrap();
        assert_eq!(c, HealthConfig::default());
        assert!(!c.ejection);
        assert_eq!((c.phi.threshold, c.phi.window, c.phi.min_samples), (8.0, 100, 5));
        assert_eq!(c.panic_share, 0.5);
        assert_eq!(c.consecutive_failures, 5);
    }

    #[test]
    fn values_are_read() {
        let c = parse(&[
            ("HEALTH_EJECTION", "on"),
            ("HEALTH_PANIC_PERCENT", "25%"),
            ("HEALTH_EJECTION_BASE_MS", "2000"),
            ("HEALTH_SLOW_START_MS", "0"),
            ("HEALTH_PROBE_PATH", "/ping"),
        ])
        .unwrap();
        assert!(c.ejection);
        assert_eq!(c.panic_share, 0.25);
        assert_eq!(c.ejection_base_ms, 2_000);
        assert_eq!(c.ejection_max_ms, DEFAULT_EJECTION_MAX_MS);
        assert_eq!(c.slow_start_ms, 0);
        assert_eq!(c.probe_path, "/ping");
    }

    #[test]
    fn errors_name_the_variable() {
        let cases = [
            (("HEALTH_EJECTION", "maybe"), "HEALTH_EJECTION: expected on or off"),
            (("HEALTH_PANIC_PERCENT", "150"), "HEALTH_PANIC_PERCENT: expected a number"),
            (("HEALTH_PHI_THRESHOLD", "nan"), "HEALTH_PHI_THRESHOLD"),
            (("HEALTH_PHI_MIN_SAMPLES", "200"), "HEALTH_PHI_MIN_SAMPLES: 200 is more than"),
            (("HEALTH_EJECTION_MAX_MS", "10"), "HEALTH_EJECTION_MAX_MS: 10 is below"),
            (("HEALTH_PROBE_PATH", "ping"), "HEALTH_PROBE_PATH: must be a path"),
            (("HEALTH_PROBE_STATUS", "700"), "HEALTH_PROBE_STATUS: 700 is outside"),
            (("HEALTH_CONSECUTIVE_FAILURES", "0"), "HEALTH_CONSECUTIVE_FAILURES"),
        ];
        for ((var, value), expected) in cases {
            let e = parse(&[(var, value)]).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{var}={value}: {e}");
        }
    }

    proptest! {
        /// Whatever a variable holds, parsing answers, and an error names that variable.
        #[test]
        fn any_value_parses_or_names_its_variable(
            index in 0..VARS.len(),
            value in "\\PC{0,12}",
        ) {
            let var = VARS[index];
            match parse(&[(var, value.as_str())]) {
                Ok(c) => {
                    prop_assert!((0.0..=1.0).contains(&c.panic_share));
                    prop_assert!(c.ejection_max_ms >= c.ejection_base_ms);
                    prop_assert!(c.phi.min_samples <= c.phi.window);
                }
                Err(e) => prop_assert_eq!(e.var, var),
            }
        }
    }
}
