//! The named fleets the simulator runs strategies over.
//!
//! Each scenario is built for a run length (`duration_ms`), so that changes happen at the same
//! point of any run. Success rates are per attempt; "failure rate" in a description is
//! `1 - success`.
//!
//! | name           | fleet                                                                     |
//! |----------------|---------------------------------------------------------------------------|
//! | `constant`     | five downstreams failing 5%, 10%, 20%, 30%, 50% of attempts               |
//! | `prototype`    | the prototype's profile: failing 100%, 100%, 90% (oracle 10%)             |
//! | `spread`       | ten downstreams with success rates 50% to 95% in 5-point steps, shuffled  |
//! | `abrupt`       | five at 95/85/75/65/55%; halfway through the best drops to 20%, the worst |
//! | `drift`        | four whose rates drift as slow sines (one period per run), out of phase   |
//! | `cyclic`       | two good downstreams with cyclic outages (503), two steady worse ones      |
//! | `rate_limited` | two excellent downstreams capped at 40 req/s each (429 above), one fair   |
//! | `latency`      | four equally reliable downstreams with 10, 30, 100 and 400 ms latencies   |
//! | `retries`      | failing 50%, 20%, 5%: the fleet of the 3-attempt acceptance test          |
//! | `slow_host`    | Linkerd's benchmark: 11 hosts at 1,000 req/s, one answers in 2 s for 30 s (from a quarter of the run), 1 s attempt timeout |
//! | `reliable_slow`| 99.9% at 200 ms, 97% at 20 ms, 70% at 10 ms                               |
//! | `random_outages`| the best (98%) goes down at random (Markov: up 20 s, down 5 s on average); 90%, 85% steady |
//! | `recovery`     | a dead host comes back as the best (98%) halfway; 90/85/80% steady        |
//! | `many`         | 40 hosts, one at 97%, the others 60..85%                                  |
//! | `independent`  | 90/60/50%, failures independent: retrying the good host pays              |
//! | `sticky`       | the same fleet, failures sticky (0.5): a retry on a host that failed the request fails again half the time on top |
//! | `poison`       | 97/92/85%, 2% of requests fail on every host (5xx), 1% get a 4xx (a success by the project's definition, not retried) |
//! | `brownout`     | 99/97/95%, every host at 20% success for 60 s from a third of the run     |
//! | `degrading`    | Poisson arrivals; the best (98%, 20 ms) degrades linearly to 60% and 200 ms over the middle half of the run; 93/90/85% steady |
//! | `contextual`   | 97/90/80/75%, but half the requests (path class `/eu/orders`) succeed only on the last two: the best host depends on the request |
//!
//! A scenario may carry its own arrival rate and attempt timeout (`slow_host` does);
//! [`Scenario::configure`] applies them to a run's [`SimConfig`] and the engine always runs with
//! it. [`Scenario::builtin`] builds a named scenario for a run of a given configuration.

use std::f64::consts::FRAC_PI_2;

use magnetar_flaky::OutageCycle;
use serde::{Deserialize, Serialize};

use super::SimConfig;
use super::arrivals::Arrivals;
use super::context::ContextSplit;
use super::model::{
    LatencyPoint, LatencyStep, MarkovState, SimDownstream, SuccessCurve, SuccessPoint,
};

/// A share of requests that fail on every host.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poison {
    /// Share of requests every host answers with a 5xx (retried, never served).
    pub server_error_share: f64,
    /// Share of requests every host answers with a 4xx (answered at once, not retried).
    pub client_error_share: f64,
}

/// Every host degrading at once: success at most `success` from `from_ms` until `until_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brownout {
    pub from_ms: u64,
    pub until_ms: u64,
    pub success: f64,
}

/// A fleet to simulate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub downstreams: Vec<SimDownstream>,
    /// When the fleet changes abruptly, if it does (for recovery measurements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_at_ms: Option<u64>,
    /// Time between two arrivals, replacing the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interarrival_ms: Option<f64>,
    /// Deadline of one attempt, replacing the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_timeout_ms: Option<u64>,
    /// How arrivals are spaced, replacing the run's ([`Arrivals`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<Arrivals>,
    /// The latency objective the tables report success within, replacing the run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_objective_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poison: Option<Poison>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brownout: Option<Brownout>,
    /// Requests of two kinds, one served only by some downstreams ([`ContextSplit`]): every
    /// request then carries a context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextSplit>,
}

/// Every scenario name, in table order.
pub const SCENARIOS: &[&str] = &[
    "constant",
    "prototype",
    "spread",
    "abrupt",
    "drift",
    "cyclic",
    "rate_limited",
    "latency",
    "retries",
    "slow_host",
    "reliable_slow",
    "random_outages",
    "recovery",
    "many",
    "independent",
    "sticky",
    "poison",
    "brownout",
    "degrading",
    "contextual",
];

/// Linkerd's slow-host benchmark: arrivals every millisecond (1,000 requests/s).
pub const SLOW_HOST_INTERARRIVAL_MS: f64 = 1.0;
/// Linkerd's slow-host benchmark: 1 s attempt timeout.
pub const SLOW_HOST_ATTEMPT_TIMEOUT_MS: u64 = 1_000;
/// How long the slow host stays slow.
pub const SLOW_HOST_SLOW_MS: u64 = 30_000;

/// The name is not a scenario.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario {0:?}; valid scenarios: {valid}", valid = SCENARIOS.join(", "))]
pub struct UnknownScenario(pub String);

fn fleet(rates: &[f64]) -> Vec<SimDownstream> {
    rates
        .iter()
        .enumerate()
        .map(|(i, p)| SimDownstream::constant(format!("downstream-{}", i + 1), *p))
        .collect()
}

impl Scenario {
    /// Builds the built-in scenario `name` for a run of `config` (its requests at the
    /// scenario's own arrival rate, or the config's).
    pub fn builtin(name: &str, config: &SimConfig) -> Result<Scenario, UnknownScenario> {
        let probe = Scenario::named(name, 0)?;
        Scenario::named(name, probe.configure(config).duration_ms())
    }

    /// Every built-in scenario for a run of `config`, in table order.
    pub fn builtins(config: &SimConfig) -> Vec<Scenario> {
        SCENARIOS.iter().filter_map(|n| Scenario::builtin(n, config).ok()).collect()
    }

    /// `config` with this scenario's own arrival rate and process, attempt timeout and latency
    /// objective, where it has them.
    pub fn configure(&self, config: &SimConfig) -> SimConfig {
        SimConfig {
            interarrival_ms: self.interarrival_ms.unwrap_or(config.interarrival_ms),
            attempt_timeout_ms: self.attempt_timeout_ms.unwrap_or(config.attempt_timeout_ms),
            arrivals: self.arrivals.clone().unwrap_or_else(|| config.arrivals.clone()),
            latency_objective_ms: self.latency_objective_ms.or(config.latency_objective_ms),
            ..config.clone()
        }
    }

    /// Builds the scenario `name` for a run of `duration_ms`.
    pub fn named(name: &str, duration_ms: u64) -> Result<Scenario, UnknownScenario> {
        let half = duration_ms / 2;
        let mut extra = Scenario::constant(name, &[]);
        let (description, downstreams, change_at_ms) = match name {
            "constant" => {
                ("constant failure rates 5/10/20/30/50%", fleet(&[0.95, 0.9, 0.8, 0.7, 0.5]), None)
            }
            "prototype" => ("the prototype's 100/100/90% failures", fleet(&[0.0, 0.0, 0.1]), None),
            "spread" => (
                "ten downstreams, success 50..95%",
                fleet(&[0.7, 0.55, 0.9, 0.6, 0.95, 0.5, 0.8, 0.65, 0.85, 0.75]),
                None,
            ),
            "abrupt" => {
                let mut f = fleet(&[0.95, 0.85, 0.75, 0.65, 0.55]);
                f[0].success = SuccessCurve::Step { before: 0.95, after: 0.2, at_ms: half };
                ("the best (95%) becomes the worst (20%) halfway", f, Some(half))
            }
            "drift" => {
                let mut f = fleet(&[0.0; 4]);
                for (i, d) in f.iter_mut().enumerate() {
                    d.success = SuccessCurve::Sine {
                        mean: 0.75,
                        amplitude: 0.2,
                        period_ms: duration_ms.max(1),
                        phase: i as f64 * FRAC_PI_2,
                    };
                }
                ("success 55..95% drifting as slow sines, out of phase", f, None)
            }
            "cyclic" => {
                let mut f = fleet(&[0.98, 0.97, 0.9, 0.85]);
                f[0].outage = Some(OutageCycle { up_ms: 20_000, down_ms: 10_000, offset_ms: 0 });
                // Starts 10 s into its cycle: down from 20 s to 35 s, then every 45 s.
                f[1].outage =
                    Some(OutageCycle { up_ms: 30_000, down_ms: 15_000, offset_ms: 35_000 });
                ("98% and 97% with cyclic 503 outages, 90% and 85% steady", f, None)
            }
            "rate_limited" => {
                let mut f = fleet(&[0.99, 0.97, 0.85]);
                f[0].capacity_rps = Some(40);
                f[1].capacity_rps = Some(40);
                ("99% and 97% capped at 40 req/s each (429 above), 85% uncapped", f, None)
            }
            "latency" => {
                let mut f = fleet(&[0.95; 4]);
                for (d, ms) in f.iter_mut().zip([10.0, 30.0, 100.0, 400.0]) {
                    d.latency_ms = ms;
                }
                ("all 95%, latencies 10/30/100/400 ms", f, None)
            }
            "retries" => ("failure rates 50/20/5%", fleet(&[0.5, 0.8, 0.95]), None),
            "slow_host" => {
                let mut f = fleet(&[1.0; 11]);
                let from = duration_ms / 4;
                f[5].latency_steps = vec![
                    LatencyStep { at_ms: from, latency_ms: 2_000.0 },
                    LatencyStep { at_ms: from + SLOW_HOST_SLOW_MS, latency_ms: 20.0 },
                ];
                extra.interarrival_ms = Some(SLOW_HOST_INTERARRIVAL_MS);
                extra.attempt_timeout_ms = Some(SLOW_HOST_ATTEMPT_TIMEOUT_MS);
                (
                    "11 hosts at 1,000 req/s, one answering in 2 s for 30 s, 1 s timeout",
                    f,
                    Some(from),
                )
            }
            "reliable_slow" => {
                let mut f = fleet(&[0.999, 0.97, 0.7]);
                for (d, ms) in f.iter_mut().zip([200.0, 20.0, 10.0]) {
                    d.latency_ms = ms;
                }
                ("99.9% at 200 ms, 97% at 20 ms, 70% at 10 ms", f, None)
            }
            "random_outages" => {
                let mut f = fleet(&[0.98, 0.9, 0.85]);
                f[0].markov = vec![
                    MarkovState { success: 0.98, latency_ms: None, mean_dwell_ms: 20_000.0 },
                    MarkovState { success: 0.0, latency_ms: None, mean_dwell_ms: 5_000.0 },
                ];
                ("98% with random outages (up 20 s, down 5 s on average), 90%, 85%", f, None)
            }
            "recovery" => {
                let mut f = fleet(&[0.0, 0.9, 0.85, 0.8]);
                f[0].success = SuccessCurve::Step { before: 0.0, after: 0.98, at_ms: half };
                ("a dead host comes back as the best (98%) halfway; 90/85/80%", f, Some(half))
            }
            "many" => {
                let rates: Vec<f64> = (0..40)
                    .map(|i| if i == 17 { 0.97 } else { 0.6 + 0.25 * ((i * 7) % 39) as f64 / 38.0 })
                    .collect();
                ("40 hosts, one at 97%, the others 60..85%", fleet(&rates), None)
            }
            "independent" => ("90/60/50%, independent failures", fleet(&[0.9, 0.6, 0.5]), None),
            "sticky" => {
                let mut f = fleet(&[0.9, 0.6, 0.5]);
                for d in &mut f {
                    d.stickiness = 0.5;
                }
                ("90/60/50%, sticky failures (0.5)", f, None)
            }
            "poison" => {
                extra.poison = Some(Poison { server_error_share: 0.02, client_error_share: 0.01 });
                ("97/92/85%, 2% poison (5xx everywhere), 1% 4xx", fleet(&[0.97, 0.92, 0.85]), None)
            }
            "brownout" => {
                let from = duration_ms / 3;
                extra.brownout =
                    Some(Brownout { from_ms: from, until_ms: from + 60_000, success: 0.2 });
                ("99/97/95%, all at 20% success for 60 s", fleet(&[0.99, 0.97, 0.95]), Some(from))
            }
            "degrading" => {
                let mut f = fleet(&[0.98, 0.93, 0.9, 0.85]);
                let (from, until) = (duration_ms / 4, duration_ms - duration_ms / 4);
                f[0].success = SuccessCurve::Linear(vec![
                    SuccessPoint { at_ms: from, success: 0.98 },
                    SuccessPoint { at_ms: until, success: 0.6 },
                ]);
                f[0].latency_curve = vec![
                    LatencyPoint { at_ms: from, latency_ms: 20.0 },
                    LatencyPoint { at_ms: until, latency_ms: 200.0 },
                ];
                extra.arrivals = Some(Arrivals::Poisson);
                (
                    "Poisson arrivals; the best (98%, 20 ms) degrades linearly to 60% and 200 ms over the middle half; 93/90/85%",
                    f,
                    Some(from),
                )
            }
            "contextual" => {
                extra.context = Some(ContextSplit {
                    share: 0.5,
                    path_class: "/eu/orders".to_owned(),
                    other_path_class: "/us/orders".to_owned(),
                    served_by: vec![2, 3],
                    elsewhere: 0.0,
                });
                (
                    "97/90/80/75%; half the requests (/eu/orders) succeed only on the 80% and 75% hosts",
                    fleet(&[0.97, 0.9, 0.8, 0.75]),
                    None,
                )
            }
            other => return Err(UnknownScenario(other.to_owned())),
        };
        Ok(Scenario {
            name: name.to_owned(),
            description: description.to_owned(),
            downstreams,
            change_at_ms,
            ..extra
        })
    }

    /// A custom fleet of constant success rates.
    pub fn constant(name: &str, rates: &[f64]) -> Scenario {
        Scenario {
            name: name.to_owned(),
            description: format!("constant success rates {rates:?}"),
            downstreams: fleet(rates),
            change_at_ms: None,
            interarrival_ms: None,
            attempt_timeout_ms: None,
            arrivals: None,
            latency_objective_ms: None,
            poison: None,
            brownout: None,
            context: None,
        }
    }

    /// Number of downstreams.
    pub fn arms(&self) -> usize {
        self.downstreams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_scenario_builds() {
        for name in SCENARIOS {
            let s = Scenario::named(name, 200_000).unwrap();
            assert!(s.arms() >= 3, "{name}");
            assert_eq!(s.name, *name);
        }
        let err = Scenario::named("nope", 1).unwrap_err().to_string();
        assert!(err.contains("prototype"), "{err}");
    }

    #[test]
    fn abrupt_change_happens_halfway() {
        let s = Scenario::named("abrupt", 10_000).unwrap();
        assert_eq!(s.change_at_ms, Some(5_000));
        assert_eq!(s.downstreams[0].success.at(4_999.0), 0.95);
        assert_eq!(s.downstreams[0].success.at(5_000.0), 0.2);
    }

    #[test]
    fn cyclic_outages_are_the_flaky_origins_cycle() {
        let s = Scenario::named("cyclic", 200_000).unwrap();
        let first = s.downstreams[0].outage.unwrap();
        assert!(!first.is_down(19_999) && first.is_down(20_000) && !first.is_down(30_000));
        // The second starts 10 s into its 45 s cycle: down from 20 s to 35 s, then at 65 s.
        let second = s.downstreams[1].outage.unwrap();
        assert!(!second.is_down(19_999) && second.is_down(20_000) && second.is_down(34_999));
        assert!(!second.is_down(35_000) && second.is_down(65_000));
    }
}
