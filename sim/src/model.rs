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

use magnetar_core::Outcome;
use magnetar_flaky::{OutageCycle, RATE_WINDOW_MS, RateWindow};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::oracle::HostOdds;

/// Latency of an immediate rejection (429 or an outage's 503).
pub const REJECT_LATENCY_MS: f64 = 1.0;
/// Log-normal spread of latencies (sigma of the log).
pub const DEFAULT_LATENCY_SIGMA: f64 = 0.25;

fn default_sigma() -> f64 {
    DEFAULT_LATENCY_SIGMA
}

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
    /// Piecewise linear through the points (in time order): the first point's value before it,
    /// the last one's after it, and a straight line between two neighbours (two points at the
    /// same time make a jump).
    Linear(Vec<SuccessPoint>),
}

/// A point of a piecewise-linear success curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessPoint {
    pub at_ms: u64,
    pub success: f64,
}

/// A point of a piecewise-linear latency curve: the median latency at `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyPoint {
    pub at_ms: u64,
    pub latency_ms: f64,
}

/// The piecewise-linear interpolation of `(at_ms, value)` points at `t_ms` (see
/// [`SuccessCurve::Linear`]); `None` without points.
pub fn interpolate(points: impl IntoIterator<Item = (u64, f64)>, t_ms: f64) -> Option<f64> {
    let mut before: Option<(f64, f64)> = None;
    for (at, value) in points {
        let at = at as f64;
        if t_ms < at {
            return Some(match before {
                // Strictly after the previous point's time, so `at > t0`.
                Some((t0, v0)) => v0 + (value - v0) * (t_ms - t0) / (at - t0),
                None => value,
            });
        }
        before = Some((at, value));
    }
    before.map(|(_, v)| v)
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
            SuccessCurve::Linear(ref points) => {
                interpolate(points.iter().map(|p| (p.at_ms, p.success)), t_ms).unwrap_or(0.0)
            }
        };
        p.clamp(0.0, 1.0)
    }
}

/// A slow tail: with probability `share`, an attempt's latency is `factor` times its draw.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowTail {
    pub share: f64,
    pub factor: f64,
}

/// From `at_ms` on, the median latency is `latency_ms` (until the next step).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyStep {
    pub at_ms: u64,
    pub latency_ms: f64,
}

/// One state of a Markov-modulated downstream.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkovState {
    /// Success probability of an attempt answered in this state.
    pub success: f64,
    /// Median latency in this state; the downstream's `latency_ms` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Mean time spent in the state (dwell times are exponential).
    pub mean_dwell_ms: f64,
}

/// One simulated downstream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDownstream {
    pub name: String,
    /// Success probability of an answered attempt (unless `markov` is set).
    pub success: SuccessCurve,
    /// Median latency of an answered attempt.
    pub latency_ms: f64,
    /// Sigma of the log of the latency.
    #[serde(default = "default_sigma")]
    pub latency_sigma: f64,
    /// Accepted attempts per sliding second; above it, 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_rps: Option<u32>,
    /// The flaky origin's outage cycle, in simulated milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<OutageCycle>,
    /// Share of failures that are timeouts rather than 5xx.
    #[serde(default)]
    pub timeout_share: f64,
    /// An optional slow-tail mixture on top of the log-normal latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_tail: Option<SlowTail>,
    /// Changes of the median latency over time, by `at_ms`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_steps: Vec<LatencyStep>,
    /// The median latency over time as a piecewise-linear curve (instead of `latency_steps`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_curve: Vec<LatencyPoint>,
    /// States visited in order, cyclically, each for an exponential dwell time; each replaces
    /// `success` (and `latency_ms` when it has one) while it lasts. The run starts in the first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub markov: Vec<MarkovState>,
    /// Probability that a retry on this downstream, after it already failed the same request,
    /// fails too whatever its success probability (0: independent attempts, 1: a host that
    /// failed a request always fails it again). Failures that last in time, across requests,
    /// are Markov states' business.
    #[serde(default)]
    pub stickiness: f64,
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
            slow_tail: None,
            latency_steps: Vec::new(),
            latency_curve: Vec::new(),
            markov: Vec::new(),
            stickiness: 0.0,
        }
    }

    /// The median latency at `t_ms` outside Markov states.
    fn median_at(&self, t_ms: f64) -> f64 {
        if let Some(ms) =
            interpolate(self.latency_curve.iter().map(|p| (p.at_ms, p.latency_ms)), t_ms)
        {
            return ms;
        }
        self.latency_steps
            .iter()
            .rev()
            .find(|s| s.at_ms as f64 <= t_ms)
            .map_or(self.latency_ms, |s| s.latency_ms)
    }
}

/// What a request is, fleet-wide: normal, or poison that fails on every host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RequestKind {
    #[default]
    Normal,
    /// Every attempt answers 5xx (retried, never succeeds).
    ServerPoison,
    /// Every attempt answers 4xx (answered at once, not retried).
    ClientPoison,
}

/// The request an attempt belongs to, as far as the downstream can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Attempted {
    pub kind: RequestKind,
    /// This downstream already failed the request.
    pub retry_of_failed: bool,
}

/// The conditions an attempt meets besides its downstream's own state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conditions {
    /// Deadline of one attempt.
    pub attempt_timeout_ms: f64,
    /// Upper bound of every success probability (below 1 during a brownout).
    pub success_cap: f64,
}

/// Where a Markov-modulated downstream stands.
#[derive(Clone, Debug)]
struct MarkovClock {
    state: usize,
    until_us: u64,
    rng: SmallRng,
}

fn exponential_us(mean_ms: f64, rng: &mut SmallRng) -> u64 {
    let u: f64 = rng.random();
    (-(1.0 - u).ln() * mean_ms.max(0.0) * 1_000.0).round() as u64
}

/// A downstream's state during a run.
#[derive(Clone, Debug)]
pub struct DownstreamState {
    /// Attempts accepted in the last second, in microseconds.
    accepted: RateWindow,
    markov: Option<MarkovClock>,
}

impl Default for DownstreamState {
    fn default() -> Self {
        DownstreamState { accepted: RateWindow::with_window(RATE_WINDOW_MS * 1_000), markov: None }
    }
}

/// Simulated microseconds as the milliseconds the curves read.
fn ms(t_us: u64) -> f64 {
    t_us as f64 / 1_000.0
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 { 1.0 - 0.5 * erfc } else { 0.5 * erfc }
}

/// Probability that a log-normal latency of median `median` and spread `sigma` is below `t`.
fn below(t: f64, median: f64, sigma: f64) -> f64 {
    if median <= 0.0 {
        return 1.0;
    }
    if sigma <= 0.0 {
        return f64::from(u8::from(median < t));
    }
    normal_cdf((t / median).ln() / sigma)
}

impl DownstreamState {
    /// The state of `d` at the start of a run; `seed` drives its Markov dwell times, apart from
    /// the attempts' draws.
    pub fn new(d: &SimDownstream, seed: u64) -> Self {
        let markov = (!d.markov.is_empty()).then(|| {
            let mut rng = SmallRng::seed_from_u64(seed);
            let until_us = exponential_us(d.markov[0].mean_dwell_ms, &mut rng);
            MarkovClock { state: 0, until_us, rng }
        });
        DownstreamState { markov, ..DownstreamState::default() }
    }

    /// The Markov state at `t_us` (advancing the clock), if `d` has states.
    fn markov_state(&mut self, d: &SimDownstream, t_us: u64) -> Option<MarkovState> {
        let clock = self.markov.as_mut()?;
        while t_us >= clock.until_us {
            clock.state = (clock.state + 1) % d.markov.len();
            let dwell = exponential_us(d.markov[clock.state].mean_dwell_ms, &mut clock.rng);
            clock.until_us = clock.until_us.saturating_add(dwell.max(1));
        }
        d.markov.get(clock.state).copied()
    }

    /// Index of the current Markov state (for tests and reports).
    pub fn markov_index(&mut self, d: &SimDownstream, t_us: u64) -> Option<usize> {
        self.markov_state(d, t_us)?;
        self.markov.as_ref().map(|c| c.state)
    }

    /// Success probability of an answered attempt and median latency at `t_us`.
    fn answer(&mut self, d: &SimDownstream, t_us: u64, cond: &Conditions) -> (f64, f64) {
        let t_ms = ms(t_us);
        let (p, median) = match self.markov_state(d, t_us) {
            Some(s) => (s.success, s.latency_ms.unwrap_or_else(|| d.median_at(t_ms))),
            None => (d.success.at(t_ms), d.median_at(t_ms)),
        };
        (p.clamp(0.0, 1.0).min(cond.success_cap), median)
    }

    fn down(d: &SimDownstream, t_us: u64) -> bool {
        d.outage.is_some_and(|o| o.is_down(t_us / 1_000))
    }

    fn saturated(&mut self, d: &SimDownstream, t_us: u64) -> bool {
        d.capacity_rps.is_some_and(|cap| self.accepted.is_full(t_us, cap))
    }

    /// Whether an attempt sent at `t_us` is answered at all (not down, not over capacity).
    pub fn answers(&mut self, d: &SimDownstream, t_us: u64) -> bool {
        !Self::down(d, t_us) && !self.saturated(d, t_us)
    }

    /// What the oracle knows of this downstream at `t_us` (see [`crate::oracle`]): the odds of
    /// an attempt (0 while down or saturated; an answer slower than the attempt timeout is a
    /// timeout), on a retry after it failed the request (stickiness), and the median durations of a success and
    /// of a failure.
    pub fn odds(&mut self, d: &SimDownstream, t_us: u64, cond: &Conditions) -> HostOdds {
        if Self::down(d, t_us) || self.saturated(d, t_us) {
            return HostOdds::independent(0.0, REJECT_LATENCY_MS);
        }
        let (p, median) = self.answer(d, t_us, cond);
        let timeout = cond.attempt_timeout_ms;
        let fast = match d.slow_tail {
            Some(tail) => {
                (1.0 - tail.share) * below(timeout, median, d.latency_sigma)
                    + tail.share * below(timeout, median * tail.factor, d.latency_sigma)
            }
            None => below(timeout, median, d.latency_sigma),
        };
        let q = p * fast;
        let answered = median.min(timeout);
        let failure_ms = if q < 1.0 {
            let refused =
                (1.0 - p) * (d.timeout_share * timeout + (1.0 - d.timeout_share) * answered);
            (refused + p * (1.0 - fast) * timeout) / (1.0 - q)
        } else {
            timeout
        };
        let repeat = (1.0 - d.stickiness) * q;
        HostOdds { success: q, repeat_success: repeat, success_ms: answered, failure_ms }
    }

    /// The probability that an attempt sent at `t_us` succeeds (0 while down or saturated): the
    /// truth the regret is measured against.
    pub fn success_probability(&mut self, d: &SimDownstream, t_us: u64, cond: &Conditions) -> f64 {
        self.odds(d, t_us, cond).success
    }

    /// Answers one attempt of a `kind` request sent at `t_us`: its outcome and latency.
    /// `retry_of_failed` says whether this downstream already failed the request (stickiness).
    pub fn attempt(
        &mut self,
        d: &SimDownstream,
        t_us: u64,
        cond: &Conditions,
        request: Attempted,
        rng: &mut dyn RngCore,
    ) -> (Outcome, f64) {
        let Attempted { kind, retry_of_failed } = request;
        if Self::down(d, t_us) {
            return (Outcome::ServerError, REJECT_LATENCY_MS);
        }
        if let Some(cap) = d.capacity_rps
            && self.accepted.admit(t_us, cap).is_err()
        {
            return (Outcome::RateLimited, REJECT_LATENCY_MS);
        }
        let (p, median) = self.answer(d, t_us, cond);
        let timeout = cond.attempt_timeout_ms;
        let z: f64 = StandardNormal.sample(rng);
        let mut latency = median * (d.latency_sigma * z).exp();
        if let Some(tail) = d.slow_tail
            && rng.random::<f64>() < tail.share
        {
            latency *= tail.factor;
        }
        let latency = latency.min(timeout);
        let sticky = retry_of_failed && d.stickiness > 0.0 && rng.random::<f64>() < d.stickiness;
        match kind {
            RequestKind::ServerPoison => (Outcome::ServerError, latency),
            RequestKind::ClientPoison => (Outcome::ClientError, latency),
            RequestKind::Normal if sticky => (Outcome::ServerError, latency),
            RequestKind::Normal => {
                if rng.random::<f64>() < p {
                    if latency >= timeout {
                        (Outcome::Timeout, timeout)
                    } else {
                        (Outcome::Success, latency)
                    }
                } else if rng.random::<f64>() < d.timeout_share {
                    (Outcome::Timeout, timeout)
                } else {
                    (Outcome::ServerError, latency)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COND: Conditions = Conditions { attempt_timeout_ms: 2_000.0, success_cap: 1.0 };

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
    fn linear_curves_interpolate_between_their_points() {
        let points = |v: &[(u64, f64)]| {
            SuccessCurve::Linear(
                v.iter().map(|&(at_ms, success)| SuccessPoint { at_ms, success }).collect(),
            )
        };
        let ramp = points(&[(1_000, 0.9), (3_000, 0.1), (3_000, 0.5)]);
        assert_eq!((ramp.at(0.0), ramp.at(1_000.0)), (0.9, 0.9));
        assert!((ramp.at(2_000.0) - 0.5).abs() < 1e-12);
        assert!((ramp.at(2_999.0) - 0.1004).abs() < 1e-12);
        assert_eq!((ramp.at(3_000.0), ramp.at(1e9)), (0.5, 0.5), "a jump at 3 s");
        let d = SimDownstream {
            latency_sigma: 0.0,
            latency_curve: vec![
                LatencyPoint { at_ms: 0, latency_ms: 20.0 },
                LatencyPoint { at_ms: 10_000, latency_ms: 220.0 },
            ],
            ..SimDownstream::constant("slowing", 1.0)
        };
        let mut s = DownstreamState::default();
        let mut rng = SmallRng::seed_from_u64(1);
        let (_, ms) = s.attempt(&d, 5_000_000, &COND, Attempted::default(), &mut rng);
        assert!((ms - 120.0).abs() < 1e-9, "{ms}");
        assert_eq!(s.odds(&d, 20_000_000, &COND).success_ms, 220.0);
    }

    #[test]
    fn capacity_answers_429_above_the_rate() {
        let d = SimDownstream { capacity_rps: Some(2), ..SimDownstream::constant("a", 1.0) };
        let mut s = DownstreamState::default();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut at =
            |s: &mut DownstreamState, t| s.attempt(&d, t, &COND, Attempted::default(), &mut rng).0;
        assert_eq!(at(&mut s, 0), Outcome::Success);
        assert_eq!(at(&mut s, 10_000), Outcome::Success);
        assert_eq!(s.success_probability(&d, 20_000, &COND), 0.0);
        assert_eq!(at(&mut s, 20_000), Outcome::RateLimited);
        assert_eq!(at(&mut s, 1_000_000), Outcome::Success);
    }

    #[test]
    fn the_odds_count_answers_slower_than_the_timeout_as_failures() {
        let slow = SimDownstream { latency_ms: 2_000.0, ..SimDownstream::constant("slow", 1.0) };
        let cond = Conditions { attempt_timeout_ms: 1_000.0, ..COND };
        let mut s = DownstreamState::default();
        let odds = s.odds(&slow, 0, &cond);
        // ln(1/2) / 0.25 = -2.77 sd: 0.28% of answers beat the timeout.
        assert!((odds.success - 0.0028).abs() < 0.0002, "{odds:?}");
        assert!((odds.failure_ms - 1_000.0).abs() < 1e-9);
        let fast = SimDownstream::constant("fast", 0.9);
        let odds = s.odds(&fast, 0, &COND);
        assert_eq!((odds.success, odds.success_ms, odds.failure_ms), (0.9, 20.0, 20.0));
        let brownout = Conditions { success_cap: 0.2, ..COND };
        assert_eq!(s.odds(&fast, 0, &brownout).success, 0.2);
    }

    #[test]
    fn markov_dwell_times_match_their_means() {
        // Up for 2 s on average, down for 0.5 s. 5,000 cycles: the mean of 5,000 exponential
        // dwell times has a relative sd of 1/sqrt(5,000) = 1.4%, so a 6% band is over 4 sd; the
        // share of time up, 0.8, has an sd well under 0.01.
        let d = SimDownstream {
            markov: vec![
                MarkovState { success: 0.99, latency_ms: None, mean_dwell_ms: 2_000.0 },
                MarkovState { success: 0.0, latency_ms: Some(5.0), mean_dwell_ms: 500.0 },
            ],
            ..SimDownstream::constant("m", 0.5)
        };
        let mut s = DownstreamState::new(&d, 7);
        let (step_us, mut t, mut up_us) = (1_000u64, 0u64, 0u64);
        let (mut dwell, mut last, mut entered) = ([0u64; 2], 0usize, 0u64);
        let mut visits = [0u64; 2];
        while visits[1] < 5_000 {
            let state = s.markov_index(&d, t).unwrap();
            if state != last {
                dwell[last] += t - entered;
                visits[last] += 1;
                (last, entered) = (state, t);
            }
            if state == 0 {
                up_us += step_us;
                assert_eq!(s.odds(&d, t, &COND).success, 0.99);
            } else {
                assert_eq!(s.odds(&d, t, &COND).success, 0.0);
            }
            t += step_us;
        }
        let mean_up = dwell[0] as f64 / visits[0] as f64 / 1_000.0;
        let mean_down = dwell[1] as f64 / visits[1] as f64 / 1_000.0;
        assert!((mean_up / 2_000.0 - 1.0).abs() < 0.06, "{mean_up}");
        assert!((mean_down / 500.0 - 1.0).abs() < 0.06, "{mean_down}");
        let share = up_us as f64 / t as f64;
        assert!((share - 0.8).abs() < 0.02, "{share}");
    }

    /// Share of retries that fail after a failure of the same request, over `n` attempts on
    /// one host (each attempt after a failure is that request's retry).
    fn failure_after_failure(stickiness: f64, p: f64, n: u32) -> f64 {
        let d = SimDownstream { stickiness, ..SimDownstream::constant("s", p) };
        let mut s = DownstreamState::default();
        let mut rng = SmallRng::seed_from_u64(3);
        let (mut after, mut both, mut previous) = (0u32, 0u32, false);
        for i in 0..n {
            let request = Attempted { kind: RequestKind::Normal, retry_of_failed: previous };
            let o = s.attempt(&d, u64::from(i) * 1_000, &COND, request, &mut rng).0;
            if previous {
                after += 1;
                both += u32::from(!o.is_success());
            }
            previous = !o.is_success();
        }
        f64::from(both) / f64::from(after)
    }

    #[test]
    fn stickiness_is_the_chance_a_failure_repeats() {
        // p = 0.7: independent failures follow a failure 30% of the time; with stickiness 0.6,
        // 0.6 + 0.4 * 0.3 = 72%. 100,000 attempts give ~30,000 and ~52,000 failures to follow:
        // an sd under 0.3 points, so a 1.5-point band is 5 sd.
        let independent = failure_after_failure(0.0, 0.7, 100_000);
        assert!((independent - 0.30).abs() < 0.015, "{independent}");
        let sticky = failure_after_failure(0.6, 0.7, 100_000);
        assert!((sticky - 0.72).abs() < 0.015, "{sticky}");
        let mut s = DownstreamState::default();
        let d = SimDownstream { stickiness: 0.6, ..SimDownstream::constant("s", 0.7) };
        let odds = s.odds(&d, 0, &COND);
        assert!((odds.repeat_success - 0.28).abs() < 1e-12 && odds.success == 0.7);
    }

    #[test]
    fn poison_requests_fail_everywhere() {
        let d = SimDownstream::constant("a", 1.0);
        let mut s = DownstreamState::default();
        let mut rng = SmallRng::seed_from_u64(1);
        let kinds = [RequestKind::ServerPoison, RequestKind::ClientPoison, RequestKind::Normal];
        let outcomes: Vec<Outcome> = kinds
            .iter()
            .map(|&kind| {
                s.attempt(&d, 0, &COND, Attempted { kind, retry_of_failed: false }, &mut rng).0
            })
            .collect();
        assert_eq!(outcomes, [Outcome::ServerError, Outcome::ClientError, Outcome::Success]);
    }

    #[test]
    fn slow_tails_and_latency_steps_change_the_latency() {
        let d = SimDownstream {
            latency_sigma: 0.0,
            slow_tail: Some(SlowTail { share: 0.1, factor: 10.0 }),
            latency_steps: vec![LatencyStep { at_ms: 1_000, latency_ms: 50.0 }],
            ..SimDownstream::constant("t", 1.0)
        };
        let mut s = DownstreamState::default();
        let mut rng = SmallRng::seed_from_u64(5);
        let mut latencies = |t_us| -> Vec<f64> {
            (0..10_000)
                .map(|_| s.attempt(&d, t_us, &COND, Attempted::default(), &mut rng).1)
                .collect()
        };
        let early = latencies(0);
        assert!(early.iter().all(|l| *l == 20.0 || *l == 200.0));
        // 10% slow: 1,000 of 10,000 with an sd of 30.
        let slow = early.iter().filter(|l| **l == 200.0).count();
        assert!((850..1_150).contains(&slow), "{slow}");
        let late = latencies(1_000_000);
        assert!(late.iter().all(|l| *l == 50.0 || *l == 500.0));
    }
}
