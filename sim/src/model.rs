//! The simulated downstreams: how each one answers an attempt at a given time.
//!
//! A [`SimDownstream`] answers like the flaky test origin (`magnetar-flaky`) does, with its own
//! code: an outage ([`OutageCycle`], the origin's `cyclic_outage` cycle) answers 503 at once, a
//! downstream over its capacity answers 429 at once, otherwise the attempt succeeds with the
//! downstream's current success probability after a log-normal latency; a failure is a 5xx, or
//! with probability `timeout_share` a timeout that costs the whole attempt deadline. Capacity
//! counts accepted attempts in the last second with the origin's [`RateWindow`] (its
//! `rate_limited` mode), kept in microseconds of simulated time.

use std::f64::consts::TAU;

use rand::{Rng, RngCore};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use magnetar_core::Outcome;
use magnetar_flaky::{OutageCycle, RATE_WINDOW_MS, RateWindow};

/// Latency of an immediate rejection (429 or an outage's 503).
pub const REJECT_LATENCY_MS: f64 = 1.0;
/// Log-normal spread of latencies (sigma of the log).
pub const DEFAULT_LATENCY_SIGMA: f64 = 0.25;

/// A success probability that may change with time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuccessCurve {
    Constant(f64),
    /// `before` until `at_ms`, then `after`.
    Step {
        before: f64,
        after: f64,
        at_ms: u64,
    },
    /// `mean + amplitude * sin(2π t / period + phase)`.
    Sine {
        mean: f64,
        amplitude: f64,
        period_ms: u64,
        phase: f64,
    },
}

impl SuccessCurve {
    /// The probability at `t_ms`, clamped to `[0, 1]`.
    pub fn at(&self, t_ms: f64) -> f64 {
        let p = match *self {
            SuccessCurve::Constant(p) => p,
            SuccessCurve::Step { before, after, at_ms } => {
                if t_ms < at_ms as f64 {
                    before
                } else {
                    after
                }
            }
            SuccessCurve::Sine { mean, amplitude, period_ms, phase } => {
                mean + amplitude * (TAU * t_ms / period_ms.max(1) as f64 + phase).sin()
            }
        };
        p.clamp(0.0, 1.0)
    }
}

/// One simulated downstream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimDownstream {
    pub name: String,
    pub success: SuccessCurve,
    /// Median latency of an answered attempt.
    pub latency_ms: f64,
    /// Sigma of the log of the latency.
    pub latency_sigma: f64,
    /// Accepted attempts per sliding second; above it, 429.
    pub capacity_rps: Option<u32>,
    /// The flaky origin's outage cycle, in simulated milliseconds.
    pub outage: Option<OutageCycle>,
    /// Share of failures that are timeouts rather than 5xx.
    pub timeout_share: f64,
}

impl SimDownstream {
    /// A downstream with a constant success probability and a 20 ms median latency.
    pub fn constant(name: impl Into<String>, success: f64) -> Self {
        SimDownstream {
            name: name.into(),
            success: SuccessCurve::Constant(success),
            latency_ms: 20.0,
            latency_sigma: DEFAULT_LATENCY_SIGMA,
            capacity_rps: None,
            outage: None,
            timeout_share: 0.0,
        }
    }
}

/// A downstream's state during a run.
#[derive(Clone, Debug)]
pub struct DownstreamState {
    /// Attempts accepted in the last second, in microseconds.
    accepted: RateWindow,
}

impl Default for DownstreamState {
    fn default() -> Self {
        DownstreamState { accepted: RateWindow::with_window(RATE_WINDOW_MS * 1_000) }
    }
}

/// Simulated microseconds as the milliseconds the curves read.
fn ms(t_us: u64) -> f64 {
    t_us as f64 / 1_000.0
}

impl DownstreamState {
    fn down(d: &SimDownstream, t_us: u64) -> bool {
        d.outage.is_some_and(|o| o.is_down(t_us / 1_000))
    }

    fn saturated(&mut self, d: &SimDownstream, t_us: u64) -> bool {
        d.capacity_rps.is_some_and(|cap| self.accepted.is_full(t_us, cap))
    }

    /// The probability that an attempt sent at `t_us` succeeds (0 while down or saturated): the
    /// truth the oracle and the regret are measured against.
    pub fn success_probability(&mut self, d: &SimDownstream, t_us: u64) -> f64 {
        if Self::down(d, t_us) || self.saturated(d, t_us) { 0.0 } else { d.success.at(ms(t_us)) }
    }

    /// Answers one attempt sent at `t_us`: its outcome and latency.
    pub fn attempt(
        &mut self,
        d: &SimDownstream,
        t_us: u64,
        attempt_timeout_ms: f64,
        rng: &mut dyn RngCore,
    ) -> (Outcome, f64) {
        if Self::down(d, t_us) {
            return (Outcome::ServerError, REJECT_LATENCY_MS);
        }
        if let Some(cap) = d.capacity_rps
            && self.accepted.admit(t_us, cap).is_err()
        {
            return (Outcome::RateLimited, REJECT_LATENCY_MS);
        }
        let t_ms = ms(t_us);
        let z: f64 = StandardNormal.sample(rng);
        let latency = (d.latency_ms * (d.latency_sigma * z).exp()).min(attempt_timeout_ms);
        if rng.random::<f64>() < d.success.at(t_ms) {
            if latency >= attempt_timeout_ms {
                return (Outcome::Timeout, attempt_timeout_ms);
            }
            (Outcome::Success, latency)
        } else if rng.random::<f64>() < d.timeout_share {
            (Outcome::Timeout, attempt_timeout_ms)
        } else {
            (Outcome::ServerError, latency)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn curves_and_outages_follow_the_clock() {
        let step = SuccessCurve::Step { before: 0.9, after: 0.1, at_ms: 1_000 };
        assert_eq!((step.at(999.0), step.at(1_000.0)), (0.9, 0.1));
        let sine = SuccessCurve::Sine { mean: 0.5, amplitude: 0.9, period_ms: 4_000, phase: 0.0 };
        assert_eq!(sine.at(1_000.0), 1.0); // clamped
        let o = OutageCycle { up_ms: 20, down_ms: 10, offset_ms: 0 };
        assert!(!o.is_down(19) && o.is_down(20) && o.is_down(29) && !o.is_down(30));
    }

    #[test]
    fn capacity_answers_429_above_the_rate() {
        let d = SimDownstream { capacity_rps: Some(2), ..SimDownstream::constant("a", 1.0) };
        let mut s = DownstreamState::default();
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(s.attempt(&d, 0, 2_000.0, &mut rng).0, Outcome::Success);
        assert_eq!(s.attempt(&d, 10_000, 2_000.0, &mut rng).0, Outcome::Success);
        assert_eq!(s.success_probability(&d, 20_000), 0.0);
        assert_eq!(s.attempt(&d, 20_000, 2_000.0, &mut rng).0, Outcome::RateLimited);
        assert_eq!(s.attempt(&d, 1_000_000, 2_000.0, &mut rng).0, Outcome::Success);
    }
}
