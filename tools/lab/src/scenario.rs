//! Scenarios: how each downstream of the fleet behaves over the course of a run.
//!
//! A scenario is a list of phases; a phase starts at a fraction of the run (request index divided
//! by the number of requests) and gives every downstream a [`Behaviour`]. Every request carries the
//! behaviour of the whole fleet in one `x-flaky-config` header (a map keyed by downstream name);
//! the router, HAProxy and nginx all forward it, and each downstream picks its own entry. So a
//! phase switch takes effect on the very next request, at the same request index for every
//! strategy and every peer: all of them see the same load shape.
//!
//! Built-in scenarios ([`Scenario::builtin`]):
//! - `prototype`: the prototype's profile, 100% / 100% / 90% failures;
//! - `tiers`: ten downstreams in four tiers of quality (one good, two fair, three poor, four
//!   broken), after the flaky-load-balancer harness's ten-downstream setup;
//! - `nonstationary`: three downstreams whose best and worst swap halfway through the run.
//!
//! The same definitions are served to the test-bed page (`/scenarios.json`), so the page's presets
//! and the lab's runs cannot drift apart.

use std::str::FromStr;

use magnetar_flaky::{FlakyOverride, Mode, OVERRIDE_HEADER};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Assumed success probability of a `cyclic_outage` downstream with the default 20 s up, 10 s down.
const CYCLIC_UP_FRACTION: f64 = 20.0 / 30.0;

/// How one downstream behaves: the override fields the lab and the page set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Behaviour {
    /// A flaky mode name (`All_Success`, `All_fail`, `percentage_fail`, `rate_limited`,
    /// `cyclic_outage`).
    pub mode: String,
    /// Failure probability in percent; only `percentage_fail` reads it.
    pub percentage_fail: f64,
    /// Processing delay before answering, milliseconds.
    pub delay_ms: u64,
}

impl Behaviour {
    /// A downstream failing `pct` percent of requests: `All_fail` at 100, `All_Success` at 0.
    pub fn failing(pct: f64) -> Behaviour {
        let mode = if pct >= 100.0 {
            Mode::AllFail
        } else if pct <= 0.0 {
            Mode::AllSuccess
        } else {
            Mode::PercentageFail
        };
        Behaviour { mode: mode.as_str().to_owned(), percentage_fail: pct, delay_ms: 0 }
    }

    /// The mode, parsed.
    pub fn mode(&self) -> Result<Mode, ScenarioError> {
        Mode::from_str(&self.mode).map_err(|e| ScenarioError::Invalid(e.to_string()))
    }

    /// Probability that one attempt on this downstream succeeds, as far as the lab knows it:
    /// exact for `All_Success`, `All_fail` and `percentage_fail`; `rate_limited` is assumed under
    /// its limit (1) and `cyclic_outage` up two thirds of the time (its default 20 s / 10 s cycle).
    pub fn success_probability(&self) -> f64 {
        match self.mode() {
            Ok(Mode::AllSuccess) | Ok(Mode::RateLimited) => 1.0,
            Ok(Mode::AllFail) => 0.0,
            Ok(Mode::PercentageFail) => (1.0 - self.percentage_fail / 100.0).clamp(0.0, 1.0),
            Ok(Mode::CyclicOutage) => CYCLIC_UP_FRACTION,
            Err(_) => 0.0,
        }
    }

    fn to_override(&self) -> Value {
        json!({ "mode": self.mode, "percentage_fail": self.percentage_fail, "delay_ms": self.delay_ms })
    }
}

/// The fleet's behaviour from a point of the run onwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Fraction of the run (`0.0..1.0`) at which this phase starts.
    pub from: f64,
    /// One behaviour per downstream, in fleet order.
    pub downstreams: Vec<Behaviour>,
}

/// A named, reproducible fleet behaviour over a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Phases in order of `from`; the first starts at 0.
    pub phases: Vec<Phase>,
}

/// A scenario could not be found or is not valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    #[error("unknown scenario {0:?}, expected one of {1}")]
    Unknown(String, String),
    #[error("scenario is not valid: {0}")]
    Invalid(String),
    #[error("scenario {scenario} needs {needed} downstreams, the fleet has {fleet}")]
    FleetSize { scenario: String, needed: usize, fleet: usize },
}

fn phase(from: f64, pcts: &[f64]) -> Phase {
    Phase { from, downstreams: pcts.iter().map(|p| Behaviour::failing(*p)).collect() }
}

impl Scenario {
    /// The built-in scenarios.
    pub fn builtin() -> Vec<Scenario> {
        vec![
            Scenario {
                name: "prototype".into(),
                description: "the prototype's profile: downstream-1 and downstream-2 always fail, \
                              downstream-3 fails 90% of requests"
                    .into(),
                phases: vec![phase(0.0, &[100.0, 100.0, 90.0])],
            },
            Scenario {
                name: "tiers".into(),
                description: "ten downstreams in four tiers: one good (5% failures), two fair \
                              (20%), three poor (50%), four broken (90%, 90%, 100%, 100%)"
                    .into(),
                phases: vec![phase(
                    0.0,
                    &[5.0, 20.0, 20.0, 50.0, 50.0, 50.0, 90.0, 90.0, 100.0, 100.0],
                )],
            },
            Scenario {
                name: "nonstationary".into(),
                description: "failures 10% / 50% / 90% for the first half of the run, then the \
                              best and the worst swap: 90% / 50% / 10%"
                    .into(),
                phases: vec![phase(0.0, &[10.0, 50.0, 90.0]), phase(0.5, &[90.0, 50.0, 10.0])],
            },
        ]
    }

    /// A built-in scenario by name.
    pub fn by_name(name: &str) -> Result<Scenario, ScenarioError> {
        let all = Scenario::builtin();
        let names = all.iter().map(|s| s.name.clone()).collect::<Vec<_>>().join(", ");
        all.into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ScenarioError::Unknown(name.to_owned(), names))
    }

    /// Number of downstreams the scenario describes.
    pub fn fleet_size(&self) -> usize {
        self.phases.first().map_or(0, |p| p.downstreams.len())
    }

    /// Checks phase order, fleet size consistency and every mode and number.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |m: String| Err(ScenarioError::Invalid(format!("{}: {m}", self.name)));
        let Some(first) = self.phases.first() else { return invalid("no phases".into()) };
        if first.from != 0.0 {
            return invalid("the first phase must start at 0".into());
        }
        for pair in self.phases.windows(2) {
            if pair[1].from <= pair[0].from || pair[1].from >= 1.0 {
                return invalid("phases must start in increasing order below 1".into());
            }
        }
        let size = self.fleet_size();
        if size == 0 || self.phases.iter().any(|p| p.downstreams.len() != size) {
            return invalid("every phase must describe the same, non-empty fleet".into());
        }
        let names: Vec<String> = (1..=size).map(|i| format!("downstream-{i}")).collect();
        for (i, _) in self.phases.iter().enumerate() {
            let header = self.header_for_phase(i, &names);
            for name in &names {
                FlakyOverride::from_header(&header, name)
                    .map_err(|e| ScenarioError::Invalid(format!("{}: {e}", self.name)))?;
            }
        }
        Ok(())
    }

    /// Checks that the scenario fits a fleet of `fleet` downstreams.
    pub fn check_fleet(&self, fleet: usize) -> Result<(), ScenarioError> {
        if fleet == self.fleet_size() {
            Ok(())
        } else {
            Err(ScenarioError::FleetSize {
                scenario: self.name.clone(),
                needed: self.fleet_size(),
                fleet,
            })
        }
    }

    /// Index of the phase request `index` of `total` falls in.
    pub fn phase_index(&self, index: usize, total: usize) -> usize {
        let at = index as f64 / total.max(1) as f64;
        self.phases.iter().rposition(|p| p.from <= at).unwrap_or(0)
    }

    /// The `x-flaky-config` value (a map keyed by downstream name) of phase `phase`.
    pub fn header_for_phase(&self, phase: usize, names: &[String]) -> String {
        let mut map = Map::new();
        if let Some(p) = self.phases.get(phase) {
            for (name, behaviour) in names.iter().zip(&p.downstreams) {
                map.insert(name.clone(), behaviour.to_override());
            }
        }
        Value::Object(map).to_string()
    }

    /// Probability that an oracle serves a request successfully in phase `phase` with
    /// `max_attempts` attempts on distinct downstreams (the router's rule): it tries the best
    /// downstreams first, so it fails only if the best `max_attempts` all fail.
    pub fn oracle_for_phase(&self, phase: usize, max_attempts: u32) -> f64 {
        let Some(p) = self.phases.get(phase) else { return 0.0 };
        let mut success: Vec<f64> =
            p.downstreams.iter().map(Behaviour::success_probability).collect();
        success.sort_by(|a, b| b.total_cmp(a));
        let all_fail: f64 =
            success.iter().take(max_attempts.max(1) as usize).map(|s| 1.0 - s).product();
        1.0 - all_fail
    }

    /// Request index at which each phase starts in a run of `total` requests.
    pub fn phase_starts(&self, total: usize) -> Vec<usize> {
        self.phases.iter().map(|p| (p.from * total as f64).ceil() as usize).collect()
    }
}

/// Name of the header that carries the fleet's behaviour.
pub const HEADER: &str = OVERRIDE_HEADER;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenarios_are_valid_and_parse_with_the_downstreams_parser() {
        for s in Scenario::builtin() {
            s.validate().unwrap();
        }
        assert_eq!(Scenario::by_name("tiers").unwrap().fleet_size(), 10);
        assert!(matches!(Scenario::by_name("nope"), Err(ScenarioError::Unknown(..))));
    }

    #[test]
    fn each_downstream_reads_its_own_entry() {
        let s = Scenario::by_name("prototype").unwrap();
        let names: Vec<String> = (1..=3).map(|i| format!("downstream-{i}")).collect();
        let header = s.header_for_phase(0, &names);
        let d1 = FlakyOverride::from_header(&header, "downstream-1").unwrap();
        let d3 = FlakyOverride::from_header(&header, "downstream-3").unwrap();
        assert_eq!(d1.mode, Some(Mode::AllFail));
        assert_eq!(d3.mode, Some(Mode::PercentageFail));
        assert_eq!(d3.percentage_fail, Some(90.0));
    }

    #[test]
    fn phases_switch_at_the_same_request_index_for_everyone() {
        let s = Scenario::by_name("nonstationary").unwrap();
        assert_eq!(s.phase_index(0, 1000), 0);
        assert_eq!(s.phase_index(499, 1000), 0);
        assert_eq!(s.phase_index(500, 1000), 1);
        assert_eq!(s.phase_index(999, 1000), 1);
        assert_eq!(s.phase_starts(1000), vec![0, 500]);
        assert!((s.oracle_for_phase(0, 1) - 0.9).abs() < 1e-12);
        assert!((s.oracle_for_phase(1, 1) - 0.9).abs() < 1e-12);
        // Best two of 10% / 50% failures: both fail with probability 0.05.
        assert!((s.oracle_for_phase(1, 2) - 0.95).abs() < 1e-12);
    }

    #[test]
    fn oracle_of_the_prototype_is_ten_percent() {
        let s = Scenario::by_name("prototype").unwrap();
        assert!((s.oracle_for_phase(0, 1) - 0.1).abs() < 1e-12);
        // Distinct downstreams: only downstream-3 can succeed, whatever the budget.
        assert!((s.oracle_for_phase(0, 3) - 0.1).abs() < 1e-12);
        assert_eq!(s.check_fleet(3), Ok(()));
        assert!(s.check_fleet(10).is_err());
    }
}
