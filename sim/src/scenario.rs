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

use std::f64::consts::FRAC_PI_2;

use serde::Serialize;

use magnetar_flaky::OutageCycle;

use super::model::{SimDownstream, SuccessCurve};

/// A fleet to simulate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub downstreams: Vec<SimDownstream>,
    /// When the fleet changes abruptly, if it does (for recovery measurements).
    pub change_at_ms: Option<u64>,
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
];

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
    /// Builds the scenario `name` for a run of `duration_ms`.
    pub fn named(name: &str, duration_ms: u64) -> Result<Scenario, UnknownScenario> {
        let half = duration_ms / 2;
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
            other => return Err(UnknownScenario(other.to_owned())),
        };
        Ok(Scenario {
            name: name.to_owned(),
            description: description.to_owned(),
            downstreams,
            change_at_ms,
        })
    }

    /// A custom fleet of constant success rates.
    pub fn constant(name: &str, rates: &[f64]) -> Scenario {
        Scenario {
            name: name.to_owned(),
            description: format!("constant success rates {rates:?}"),
            downstreams: fleet(rates),
            change_at_ms: None,
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
