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
//! - `t1` (alias `tiers`): ten downstreams in four tiers of quality (one good, two fair, three
//!   poor, four broken), the flaky-load-balancer harness's first ten-downstream configuration;
//! - `t2`: the harness's second: `t1` with the good downstream and one fair one rate limited
//!   instead (`rate_limited` mode: 429 above the limit, and no other failure, since the mode
//!   injects none), at a fixed limit;
//! - `t3`: the harness's third: `t2` with limits that change by phases (tight, then very tight,
//!   then loose);
//! - `nonstationary`: three downstreams whose best and worst swap halfway through the run;
//! - `slowhost`: five fast, reliable downstreams, one of which answers in 2 s from halfway
//!   through the run (Linkerd's slow-host benchmark, scaled to the lab).
//!
//! **Rate limits are per lane.** A downstream keeps one rate window for everything it serves, and
//! every lane of a run reaches it at once; so the header carries the scenario's limit times the
//! number of lanes ([`Scenario::header_for_phase`]), and each lane's fair share is the scenario's
//! figure whatever the number of lanes. A lane that goes over its share takes capacity from the
//! others, as tenants of one origin do; the lanes run at the same pace (see [`crate::load`]).
//!
//! **The oracle** ([`Scenario::oracle_for_phase`]) is exact for `All_Success`, `All_fail` and
//! `percentage_fail`, and for delays as long as the best downstreams answer within the attempt
//! timeout (true of every built-in scenario: in `slowhost` four fast downstreams remain). It is an
//! estimate, an upper bound, when a downstream among the best is `rate_limited` (assumed under its
//! limit) unless the load has a fixed rate (`--rate`), where [`crate::oracle`] gives the bound the
//! limits set; and an estimate when one is in `cyclic_outage` (assumed up two thirds of the time):
//! [`Scenario::oracle_is_estimate`] says so and the report labels it.
//!
//! The same definitions are served to the test-bed page (`/scenarios.json`), so the page's presets
//! and the lab's runs cannot drift apart.

use std::str::FromStr;

use magnetar_flaky::{FlakyOverride, MAX_RATE_LIMIT_RPS, Mode, OVERRIDE_HEADER};
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
    /// Requests per second admitted per lane; only `rate_limited` reads it (the header carries it
    /// times the number of lanes, see the module docs). `None`: the downstream's own setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_rps: Option<u32>,
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
        Behaviour {
            mode: mode.as_str().to_owned(),
            percentage_fail: pct,
            delay_ms: 0,
            rate_limit_rps: None,
        }
    }

    /// A downstream that answers every request after `delay_ms`.
    pub fn slow(delay_ms: u64) -> Behaviour {
        Behaviour { delay_ms, ..Behaviour::failing(0.0) }
    }

    /// A downstream admitting `rps` requests per second per lane (429 above), failing no other.
    pub fn rate_limited(rps: u32) -> Behaviour {
        Behaviour {
            mode: Mode::RateLimited.as_str().to_owned(),
            rate_limit_rps: Some(rps),
            ..Behaviour::failing(0.0)
        }
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

    /// Whether [`Behaviour::success_probability`] is an estimate (`rate_limited`, `cyclic_outage`).
    pub fn is_estimate(&self) -> bool {
        matches!(self.mode(), Ok(Mode::RateLimited) | Ok(Mode::CyclicOutage))
    }

    /// The override this downstream gets when `lanes` lanes share it.
    fn to_override(&self, lanes: usize) -> Value {
        let mut o = json!({ "mode": self.mode, "percentage_fail": self.percentage_fail, "delay_ms": self.delay_ms });
        if let Some(rps) = self.rate_limit_rps {
            let shared = u64::from(rps).saturating_mul(lanes.max(1) as u64);
            o["rate_limit_rps"] = json!(shared.min(u64::from(MAX_RATE_LIMIT_RPS)));
        }
        o
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

impl Phase {
    /// Whether every rate-limited downstream of the phase has its limit from the scenario.
    fn limits_known(&self) -> bool {
        self.downstreams
            .iter()
            .all(|b| b.mode() != Ok(Mode::RateLimited) || b.rate_limit_rps.is_some())
    }
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

/// Failure percentages of the harness's ten downstreams in four tiers (`t1`).
const TIERS: [f64; 10] = [5.0, 20.0, 20.0, 50.0, 50.0, 50.0, 90.0, 90.0, 100.0, 100.0];
/// `t2`'s limits, requests per second per lane, of downstream-1 and downstream-2: below the pace
/// a lane keeps (about 7 per second at the default concurrency on the reference machine; 10 at the
/// harness's `--rate 10`), so an oracle-like router must spill over.
const T2_LIMITS: [u32; 2] = [4, 2];
/// `t3`'s limits by phase: `t2`'s, then very tight from a third of the run, then loose from two
/// thirds (above the pace, so the limits stop binding).
const T3_LIMITS: [(f64, [u32; 2]); 3] =
    [(0.0, T2_LIMITS), (1.0 / 3.0, [1, 1]), (2.0 / 3.0, [12, 8])];
/// `slowhost`: downstreams, the slow one's delay, and when it turns slow.
const SLOWHOST_FLEET: usize = 5;
const SLOWHOST_DELAY_MS: u64 = 2_000;
const SLOWHOST_FROM: f64 = 0.5;

/// The tiers with downstream-1 and downstream-2 rate limited at `limits` instead.
fn limited_tiers(from: f64, limits: [u32; 2]) -> Phase {
    let mut p = phase(from, &TIERS);
    for (b, rps) in p.downstreams.iter_mut().zip(limits) {
        *b = Behaviour::rate_limited(rps);
    }
    p
}

/// Other names a built-in scenario answers to.
const ALIASES: [(&str, &str); 1] = [("tiers", "t1")];

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
                name: "t1".into(),
                description:
                    "ten downstreams in four tiers (the flaky-load-balancer harness's T1, \
                              alias tiers): one good (5% failures), two fair (20%), three poor \
                              (50%), four broken (90%, 90%, 100%, 100%)"
                        .into(),
                phases: vec![phase(0.0, &TIERS)],
            },
            Scenario {
                name: "t2".into(),
                description: format!(
                    "t1 with a fixed rate limit (the harness's T2): downstream-1 and downstream-2 \
                     rate limited at {} and {} requests/s per lane (429 above, no other failures), \
                     the rest as in t1",
                    T2_LIMITS[0], T2_LIMITS[1]
                ),
                phases: vec![limited_tiers(0.0, T2_LIMITS)],
            },
            Scenario {
                name: "t3".into(),
                description: format!(
                    "t2 with rate limits that change (the harness's T3): downstream-1 and \
                     downstream-2 at {:?} requests/s per lane, then {:?} from a third of the run, \
                     then {:?} from two thirds",
                    T3_LIMITS[0].1, T3_LIMITS[1].1, T3_LIMITS[2].1
                ),
                phases: T3_LIMITS.iter().map(|(from, l)| limited_tiers(*from, *l)).collect(),
            },
            Scenario {
                name: "nonstationary".into(),
                description: "failures 10% / 50% / 90% for the first half of the run, then the \
                              best and the worst swap: 90% / 50% / 10%"
                    .into(),
                phases: vec![phase(0.0, &[10.0, 50.0, 90.0]), phase(0.5, &[90.0, 50.0, 10.0])],
            },
            Scenario {
                name: "slowhost".into(),
                description: format!(
                    "{SLOWHOST_FLEET} fast downstreams that never fail; from half the run \
                     downstream-1 answers in {} s (the attempt timeout's default)",
                    SLOWHOST_DELAY_MS / 1000
                ),
                phases: vec![phase(0.0, &[0.0; SLOWHOST_FLEET]), {
                    let mut slow = phase(SLOWHOST_FROM, &[0.0; SLOWHOST_FLEET]);
                    slow.downstreams[0] = Behaviour::slow(SLOWHOST_DELAY_MS);
                    slow
                }],
            },
        ]
    }

    /// A built-in scenario by name or alias.
    pub fn by_name(name: &str) -> Result<Scenario, ScenarioError> {
        let all = Scenario::builtin();
        let names = all.iter().map(|s| s.name.clone()).collect::<Vec<_>>().join(", ");
        let name = ALIASES.iter().find(|(alias, _)| *alias == name).map_or(name, |(_, n)| n);
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
            let header = self.header_for_phase(i, &names, 1);
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

    /// The `x-flaky-config` value (a map keyed by downstream name) of phase `phase` when `lanes`
    /// lanes share the fleet (rate limits are multiplied by it: see the module docs).
    pub fn header_for_phase(&self, phase: usize, names: &[String], lanes: usize) -> String {
        let mut map = Map::new();
        if let Some(p) = self.phases.get(phase) {
            for (name, behaviour) in names.iter().zip(&p.downstreams) {
                map.insert(name.clone(), behaviour.to_override(lanes));
            }
        }
        Value::Object(map).to_string()
    }

    /// Probability that an oracle serves a request successfully in phase `phase` with
    /// `max_attempts` attempts on distinct downstreams (the router's rule): it tries the best
    /// downstreams first, so it fails only if the best `max_attempts` all fail. Rate-limited
    /// downstreams count as under their limit; see [`Scenario::oracle_at_rate`] and the module
    /// docs for when it is exact.
    pub fn oracle_for_phase(&self, phase: usize, max_attempts: u32) -> f64 {
        let all_fail: f64 =
            self.best(phase, max_attempts).iter().map(|b| 1.0 - b.success_probability()).product();
        1.0 - all_fail
    }

    /// The oracle of phase `phase` when every lane sends `rate` requests per second: rate limits
    /// given by the scenario bind ([`crate::oracle::with_rate_limits`]). Without a rate, or with
    /// a limited downstream whose limit the scenario leaves to the downstream, as
    /// [`Scenario::oracle_for_phase`].
    pub fn oracle_at_rate(&self, phase: usize, max_attempts: u32, rate: Option<f64>) -> f64 {
        match (self.phases.get(phase), rate) {
            (Some(p), Some(rate)) if p.limits_known() => {
                let (limited, others): (Vec<&Behaviour>, Vec<&Behaviour>) =
                    p.downstreams.iter().partition(|b| b.mode() == Ok(Mode::RateLimited));
                let capacity: f64 =
                    limited.iter().filter_map(|b| b.rate_limit_rps).map(f64::from).sum();
                let others: Vec<f64> = others.iter().map(|b| b.success_probability()).collect();
                crate::oracle::with_rate_limits(&others, capacity, rate, max_attempts)
            }
            _ => self.oracle_for_phase(phase, max_attempts),
        }
    }

    /// The `max_attempts` downstreams the oracle tries in phase `phase`, best first.
    fn best(&self, phase: usize, max_attempts: u32) -> Vec<&Behaviour> {
        let Some(p) = self.phases.get(phase) else { return Vec::new() };
        let mut ranked: Vec<&Behaviour> = p.downstreams.iter().collect();
        ranked.sort_by(|a, b| b.success_probability().total_cmp(&a.success_probability()));
        ranked.truncate(max_attempts.max(1) as usize);
        ranked
    }

    /// Whether the oracle of some phase rests on an estimated downstream among those it tries,
    /// at `rate` requests per second per lane when the load has a fixed rate: rate limits are
    /// then exact when the scenario gives them, outages never are.
    pub fn oracle_is_estimate(&self, max_attempts: u32, rate: Option<f64>) -> bool {
        (0..self.phases.len()).any(|i| {
            let exact_limits = rate.is_some() && self.phases[i].limits_known();
            self.best(i, max_attempts).iter().any(|b| match b.mode() {
                Ok(Mode::RateLimited) => !exact_limits,
                _ => b.is_estimate(),
            })
        })
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
        assert_eq!(Scenario::by_name("t1").unwrap().fleet_size(), 10);
        // The old name still works, and is the same scenario.
        assert_eq!(Scenario::by_name("tiers"), Scenario::by_name("t1"));
        for name in ["t2", "t3"] {
            assert_eq!(Scenario::by_name(name).unwrap().fleet_size(), 10, "{name}");
        }
        assert_eq!(Scenario::by_name("slowhost").unwrap().fleet_size(), 5);
        assert!(matches!(Scenario::by_name("nope"), Err(ScenarioError::Unknown(..))));
    }

    #[test]
    fn each_downstream_reads_its_own_entry() {
        let s = Scenario::by_name("prototype").unwrap();
        let names: Vec<String> = (1..=3).map(|i| format!("downstream-{i}")).collect();
        let header = s.header_for_phase(0, &names, 1);
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

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("downstream-{i}")).collect()
    }

    #[test]
    fn t1_is_exact_and_its_oracle_tries_the_best_tiers() {
        let s = Scenario::by_name("t1").unwrap();
        assert_eq!(s.phase_starts(1000), vec![0]);
        assert!((s.oracle_for_phase(0, 1) - 0.95).abs() < 1e-12);
        // 5%, 20% and 20% failing all fail with probability 0.05 × 0.2 × 0.2 = 0.002.
        assert!((s.oracle_for_phase(0, 3) - 0.998).abs() < 1e-12);
        assert!(!s.oracle_is_estimate(3, None));
    }

    #[test]
    fn t2_rate_limits_two_downstreams_and_scales_their_limit_with_the_lanes() {
        let s = Scenario::by_name("t2").unwrap();
        assert_eq!(s.phases.len(), 1);
        let header = s.header_for_phase(0, &names(10), 22);
        let d1 = FlakyOverride::from_header(&header, "downstream-1").unwrap();
        let d2 = FlakyOverride::from_header(&header, "downstream-2").unwrap();
        let d3 = FlakyOverride::from_header(&header, "downstream-3").unwrap();
        assert_eq!((d1.mode, d1.rate_limit_rps), (Some(Mode::RateLimited), Some(4 * 22)));
        assert_eq!((d2.mode, d2.rate_limit_rps), (Some(Mode::RateLimited), Some(2 * 22)));
        assert_eq!((d3.mode, d3.percentage_fail), (Some(Mode::PercentageFail), Some(20.0)));
        assert_eq!(d3.rate_limit_rps, None);
        // The oracle counts the limited downstreams as under their limit: an upper bound, and
        // labelled an estimate. Three attempts: both limited ones, then a 20% one.
        assert!((s.oracle_for_phase(0, 1) - 1.0).abs() < 1e-12);
        assert!((s.oracle_for_phase(0, 3) - 1.0).abs() < 1e-12);
        assert!(s.oracle_is_estimate(1, None));
        // At a fixed 10 requests/s per lane the limits (4 + 2 per second) bind: 60% of the
        // requests get a limited downstream, the rest a 20%-failing one.
        assert!((s.oracle_at_rate(0, 1, Some(10.0)) - (0.6 + 0.4 * 0.8)).abs() < 1e-12);
        assert!((s.oracle_at_rate(0, 3, Some(10.0)) - 1.0).abs() < 1e-12);
        assert_eq!(s.oracle_at_rate(0, 1, None), s.oracle_for_phase(0, 1));
        assert!(!s.oracle_is_estimate(1, Some(10.0)));
    }

    #[test]
    fn t3_changes_the_limits_at_a_third_and_two_thirds_of_the_run() {
        let s = Scenario::by_name("t3").unwrap();
        assert_eq!(s.phase_starts(900), vec![0, 300, 600]);
        assert_eq!((s.phase_index(299, 900), s.phase_index(300, 900)), (0, 1));
        assert_eq!((s.phase_index(599, 900), s.phase_index(600, 900)), (1, 2));
        let limit = |phase: usize| {
            let header = s.header_for_phase(phase, &names(10), 1);
            FlakyOverride::from_header(&header, "downstream-1").unwrap().rate_limit_rps
        };
        assert_eq!([limit(0), limit(1), limit(2)], [Some(4), Some(1), Some(12)]);
        // Outside the two limited downstreams every phase is t1.
        let t1 = Scenario::by_name("t1").unwrap();
        for p in &s.phases {
            assert_eq!(p.downstreams[2..], t1.phases[0].downstreams[2..]);
        }
        assert!(s.oracle_is_estimate(3, None));
        // At 10 requests/s per lane and one attempt: 6, then 2, then all 10 per second admitted.
        let single: Vec<f64> = (0..3).map(|p| s.oracle_at_rate(p, 1, Some(10.0))).collect();
        let expected = [0.6 + 0.4 * 0.8, 0.2 + 0.8 * 0.8, 1.0];
        for (got, want) in single.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{single:?}");
        }
    }

    #[test]
    fn slowhost_slows_one_downstream_at_half_time_and_its_oracle_stays_exact() {
        let s = Scenario::by_name("slowhost").unwrap();
        assert_eq!(s.phase_starts(1000), vec![0, 500]);
        let delay = |phase: usize, name: &str| {
            let header = s.header_for_phase(phase, &names(5), 3);
            FlakyOverride::from_header(&header, name).unwrap().delay_ms
        };
        assert_eq!(delay(0, "downstream-1"), Some(0));
        assert_eq!(delay(1, "downstream-1"), Some(2000));
        assert_eq!(delay(1, "downstream-5"), Some(0));
        for phase in 0..2 {
            assert_eq!(s.oracle_for_phase(phase, 1), 1.0);
        }
        assert!(!s.oracle_is_estimate(1, None));
    }
}
