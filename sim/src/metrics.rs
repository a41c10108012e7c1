//! What a run of a strategy achieved: the figures the simulator, the lab and the learner report.
//!
//! A [`Metrics`] collects attempts and finished requests and summarises them as a
//! [`MetricsSummary`]:
//!
//! - `success_rate`: requests whose final attempt succeeded ([`Outcome::is_success`]), over
//!   requests;
//! - `first_attempt_success_rate`: requests whose first attempt succeeded;
//! - `attempts_per_request`, and `max_attempts` seen on one request;
//! - `regret`: the global regret against the oracle, `Σ (oracle success probability − the chosen
//!   downstream's success probability)` over attempts, as supplied by whoever knows the truth
//!   (the simulator; see [`Metrics::add_regret`]). This is the pseudo-regret of the bandit
//!   literature: it measures choices, not luck, so it is the figure to compare strategies on;
//! - `realized_regret`: `Σ (oracle request success probability − 1 if the request succeeded)`,
//!   the same idea per request and with the noise of the outcomes, which can be negative;
//! - `best_guess_score`: successes minus every attempt beyond the penalty-free budget (the
//!   flaky-load-balancer scoring: "successes minus every attempt beyond the third");
//! - `latency_p50_ms`, `latency_p99_ms`, `latency_p999_ms`: client-perceived request latency (all attempts), from an
//!   HDR histogram with [`LATENCY_SIGNIFICANT_DIGITS`] significant digits and bounded memory;
//! - `traffic_share`: attempts per downstream over all attempts, and `arm_success_rate`;
//! - `success_within_objective_rate`, when a latency objective is set
//!   ([`Metrics::with_objective`]): requests that succeeded with a client-perceived latency of at
//!   most the objective, over requests (`OBJECTIVE=latency_slo:N` counts a later answer as a
//!   failure, and so does this figure).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use magnetar_core::Outcome;
use magnetar_core::retry::DEFAULT_MAX_ATTEMPTS;
use magnetar_core::strategy::ArmId;

/// Significant decimal digits the latency histogram keeps (0.1% relative precision).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Latencies are recorded in microseconds, from 1 µs to this (about 28 hours); anything outside
/// reads as the nearer bound.
const LATENCY_MAX_US: u64 = 100_000_000_000;

/// Request latencies: an HDR histogram (`hdrhistogram`) of microseconds, bounded memory.
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    us: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        let us = Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGNIFICANT_DIGITS)
            .expect("constant bounds are valid");
        LatencyHistogram { us }
    }
}

impl LatencyHistogram {
    /// Records one latency (NaN and negative values read as the minimum).
    pub fn record(&mut self, ms: f64) {
        // `as` saturates: NaN and negatives become 0, huge values u64::MAX.
        let us = ((ms * 1_000.0).round() as u64).max(1);
        self.us.saturating_record(us);
    }

    /// Number of latencies recorded.
    pub fn count(&self) -> u64 {
        self.us.len()
    }

    /// The `q`-quantile (`0..=1`) in ms, as the middle of its bucket; 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.us.is_empty() {
            return 0.0;
        }
        let at = self.us.value_at_quantile(q.clamp(0.0, 1.0));
        self.us.median_equivalent(at) as f64 / 1_000.0
    }
}

/// One finished client request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequestRecord {
    pub succeeded: bool,
    pub first_attempt_succeeded: bool,
    pub attempts: u32,
    /// Client-perceived latency, all attempts included.
    pub latency_ms: f64,
    /// Probability that the oracle would have served this request successfully, when known.
    pub oracle_success: Option<f64>,
}

/// Running totals of one strategy on one fleet.
#[derive(Clone, Debug)]
pub struct Metrics {
    penalty_free: u32,
    requests: u64,
    successes: u64,
    first_successes: u64,
    attempts: u64,
    penalised_attempts: u64,
    max_attempts: u32,
    regret: f64,
    realized_regret: f64,
    arm_attempts: Vec<u64>,
    arm_successes: Vec<u64>,
    latency: LatencyHistogram,
    objective_ms: Option<u64>,
    within_objective: u64,
}

/// A serialisable summary of [`Metrics`]; see the module docs for each figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsSummary {
    pub requests: u64,
    pub successes: u64,
    pub success_rate: f64,
    pub first_attempt_success_rate: f64,
    pub attempts: u64,
    pub attempts_per_request: f64,
    pub max_attempts: u32,
    pub regret: f64,
    pub realized_regret: f64,
    pub best_guess_score: i64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    #[serde(default)]
    pub latency_p999_ms: f64,
    pub traffic_share: Vec<f64>,
    pub arm_success_rate: Vec<f64>,
    /// Requests that succeeded within the latency objective, when one is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_within_objective_rate: Option<f64>,
}

impl Metrics {
    /// Metrics for `arms` downstreams with the default penalty-free budget (3 attempts).
    pub fn new(arms: usize) -> Self {
        Metrics::with_penalty_free(arms, DEFAULT_MAX_ATTEMPTS)
    }

    /// Metrics where attempts beyond `penalty_free` per request cost a point.
    pub fn with_penalty_free(arms: usize, penalty_free: u32) -> Self {
        Metrics {
            penalty_free,
            requests: 0,
            successes: 0,
            first_successes: 0,
            attempts: 0,
            penalised_attempts: 0,
            max_attempts: 0,
            regret: 0.0,
            realized_regret: 0.0,
            arm_attempts: vec![0; arms],
            arm_successes: vec![0; arms],
            latency: LatencyHistogram::default(),
            objective_ms: None,
            within_objective: 0,
        }
    }

    /// The same metrics also counting the requests that succeed within `objective_ms` of their
    /// arrival (`None`: no objective).
    pub fn with_objective(mut self, objective_ms: Option<u64>) -> Self {
        self.objective_ms = objective_ms;
        self
    }

    /// Records one attempt (1-based `attempt` within its request) on `arm`.
    pub fn record_attempt(&mut self, arm: ArmId, outcome: Outcome, attempt: u32) {
        self.attempts += 1;
        if attempt > self.penalty_free {
            self.penalised_attempts += 1;
        }
        if let Some(n) = self.arm_attempts.get_mut(arm) {
            *n += 1;
            if outcome.is_success() {
                self.arm_successes[arm] += 1;
            }
        }
    }

    /// Adds one attempt's pseudo-regret: the oracle's success probability minus the chosen
    /// downstream's, both at the time of the choice.
    pub fn add_regret(&mut self, regret: f64) {
        if regret.is_finite() {
            self.regret += regret;
        }
    }

    /// Records one finished request.
    pub fn record_request(&mut self, r: &RequestRecord) {
        self.requests += 1;
        self.successes += u64::from(r.succeeded);
        self.first_successes += u64::from(r.first_attempt_succeeded);
        self.max_attempts = self.max_attempts.max(r.attempts);
        self.latency.record(r.latency_ms);
        if let Some(ms) = self.objective_ms
            && r.succeeded
            && r.latency_ms <= ms as f64
        {
            self.within_objective += 1;
        }
        if let Some(p) = r.oracle_success.filter(|p| p.is_finite()) {
            self.realized_regret += p - f64::from(u8::from(r.succeeded));
        }
    }

    /// The pseudo-regret so far.
    pub fn regret(&self) -> f64 {
        self.regret
    }

    /// The figures so far.
    pub fn summary(&self) -> MetricsSummary {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        MetricsSummary {
            requests: self.requests,
            successes: self.successes,
            success_rate: ratio(self.successes, self.requests),
            first_attempt_success_rate: ratio(self.first_successes, self.requests),
            attempts: self.attempts,
            attempts_per_request: ratio(self.attempts, self.requests),
            max_attempts: self.max_attempts,
            regret: self.regret,
            realized_regret: self.realized_regret,
            best_guess_score: self.successes as i64 - self.penalised_attempts as i64,
            latency_p50_ms: self.latency.quantile(0.5),
            latency_p99_ms: self.latency.quantile(0.99),
            latency_p999_ms: self.latency.quantile(0.999),
            traffic_share: self.arm_attempts.iter().map(|n| ratio(*n, self.attempts)).collect(),
            arm_success_rate: self
                .arm_attempts
                .iter()
                .zip(&self.arm_successes)
                .map(|(n, s)| ratio(*s, *n))
                .collect(),
            success_within_objective_rate: self
                .objective_ms
                .map(|_| ratio(self.within_objective, self.requests)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rates_score_and_shares() {
        let mut m = Metrics::new(2);
        // Request 1: fails three times then succeeds on the fourth attempt (one penalised).
        for (k, (arm, o)) in [
            (0, Outcome::ServerError),
            (1, Outcome::Timeout),
            (0, Outcome::RateLimited),
            (1, Outcome::Success),
        ]
        .into_iter()
        .enumerate()
        {
            m.record_attempt(arm, o, k as u32 + 1);
        }
        let rec = |succeeded, first, attempts, latency_ms| RequestRecord {
            succeeded,
            first_attempt_succeeded: first,
            attempts,
            latency_ms,
            oracle_success: Some(0.9),
        };
        m.record_request(&rec(true, false, 4, 40.0));
        m.record_attempt(1, Outcome::Success, 1);
        m.record_request(&rec(true, true, 1, 10.0));
        m.add_regret(0.25);
        m.add_regret(f64::NAN);
        let s = m.summary();
        assert_eq!((s.requests, s.successes, s.attempts, s.max_attempts), (2, 2, 5, 4));
        assert_eq!(s.first_attempt_success_rate, 0.5);
        assert_eq!(s.attempts_per_request, 2.5);
        assert_eq!(s.best_guess_score, 1);
        assert_eq!(s.regret, 0.25);
        assert!((s.realized_regret - -0.2).abs() < 1e-12);
        assert_eq!(s.traffic_share, [0.4, 0.6]);
        assert_eq!(s.arm_success_rate, [0.0, 2.0 / 3.0]);
        assert_eq!(s.success_within_objective_rate, None);
    }

    #[test]
    fn success_within_the_objective_counts_successes_no_later_than_it() {
        let mut m = Metrics::new(1).with_objective(Some(100));
        let rec = |succeeded, latency_ms| RequestRecord {
            succeeded,
            first_attempt_succeeded: succeeded,
            attempts: 1,
            latency_ms,
            oracle_success: None,
        };
        // In time, exactly on it, late, and a fast failure: two of four within the objective.
        for (ok, ms) in [(true, 20.0), (true, 100.0), (true, 100.5), (false, 5.0)] {
            m.record_request(&rec(ok, ms));
        }
        let s = m.summary();
        assert_eq!((s.success_rate, s.success_within_objective_rate), (0.75, Some(0.5)));
    }

    #[test]
    fn latency_quantiles_are_within_the_bucket_precision() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=1_000 {
            h.record(f64::from(ms));
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((p50 / 500.0 - 1.0).abs() < 0.011, "{p50}");
        assert!((p99 / 990.0 - 1.0).abs() < 0.011, "{p99}");
        // Three significant digits: 0.1% precision, ten times finer than the band above.
        assert!((p50 / 500.0 - 1.0).abs() < 0.001, "{p50}");
        h.record(f64::NAN);
        h.record(-1.0);
        h.record(1e300);
        assert_eq!(h.count(), 1_003);
        assert_eq!(LatencyHistogram::default().quantile(0.5), 0.0);
    }
}
