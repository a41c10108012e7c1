//! The simulated downstreams: how each one answers an attempt at a given time.
//!
//! A [`SimDownstream`] answers like the flaky test origin (`crate::flaky`) does: an outage
//! answers 503 at once, a downstream over its capacity answers 429 at once, otherwise the attempt
//! succeeds with the downstream's current success probability after a log-normal latency; a
//! failure is a 5xx, or with probability `timeout_share` a timeout that costs the whole attempt
//! deadline. Capacity counts accepted attempts in the last second (a sliding window), like the
//! flaky origin's `rate_limited` mode.

use std::collections::VecDeque;
use std::f64::consts::TAU;

use rand::{Rng, RngCore};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::Outcome;

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

/// A periodic outage: up for `up_ms`, then down (503) for `down_ms`, shifted by `offset_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub up_ms: u64,
    pub down_ms: u64,
    pub offset_ms: u64,
}

impl Outage {
    /// Whether the downstream is down at `t_ms`.
    pub fn down_at(&self, t_ms: f64) -> bool {
        let period = (self.up_ms + self.down_ms).max(1) as f64;
        let phase = (t_ms + self.offset_ms as f64).rem_euclid(period);
        phase >= self.up_ms as f64
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
    pub outage: Option<Outage>,
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
#[derive(Clone, Debug, Default)]
pub struct DownstreamState {
    /// Times of the attempts accepted in the last second.
    accepted: VecDeque<f64>,
}

impl DownstreamState {
    fn trim(&mut self, t_ms: f64) {
        while self.accepted.front().is_some_and(|t| *t <= t_ms - 1_000.0) {
            self.accepted.pop_front();
        }
    }

    fn saturated(&mut self, d: &SimDownstream, t_ms: f64) -> bool {
        self.trim(t_ms);
        d.capacity_rps.is_some_and(|cap| self.accepted.len() >= cap as usize)
    }

    /// The probability that an attempt sent now succeeds (0 while down or saturated): the truth
    /// the oracle and the regret are measured against.
    pub fn success_probability(&mut self, d: &SimDownstream, t_ms: f64) -> f64 {
        if d.outage.is_some_and(|o| o.down_at(t_ms)) || self.saturated(d, t_ms) {
            0.0
        } else {
            d.success.at(t_ms)
        }
    }

    /// Answers one attempt sent at `t_ms`: its outcome and latency.
    pub fn attempt(
        &mut self,
        d: &SimDownstream,
        t_ms: f64,
        attempt_timeout_ms: f64,
        rng: &mut dyn RngCore,
    ) -> (Outcome, f64) {
        if d.outage.is_some_and(|o| o.down_at(t_ms)) {
            return (Outcome::ServerError, REJECT_LATENCY_MS);
        }
        if self.saturated(d, t_ms) {
            return (Outcome::RateLimited, REJECT_LATENCY_MS);
        }
        self.accepted.push_back(t_ms);
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
        let o = Outage { up_ms: 20, down_ms: 10, offset_ms: 0 };
        assert!(!o.down_at(19.0) && o.down_at(20.0) && o.down_at(29.0) && !o.down_at(30.0));
    }

    #[test]
    fn capacity_answers_429_above_the_rate() {
        let d = SimDownstream { capacity_rps: Some(2), ..SimDownstream::constant("a", 1.0) };
        let mut s = DownstreamState::default();
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(s.attempt(&d, 0.0, 2_000.0, &mut rng).0, Outcome::Success);
        assert_eq!(s.attempt(&d, 10.0, 2_000.0, &mut rng).0, Outcome::Success);
        assert_eq!(s.success_probability(&d, 20.0), 0.0);
        assert_eq!(s.attempt(&d, 20.0, 2_000.0, &mut rng).0, Outcome::RateLimited);
        assert_eq!(s.attempt(&d, 1_000.0, 2_000.0, &mut rng).0, Outcome::Success);
    }
}
