//! What a run measured, and the one set of definitions the lab and the test-bed page share.
//!
//! The page computes the same figures in JavaScript (`test-bed/metrics.js`); the e2e lab test
//! feeds the lab's samples to that file and checks that both agree. The definitions:
//!
//! - **success**: the router's definition ([`magnetar_core::Outcome::is_success`]): the final
//!   attempt answered with a status below 500 other than 429. For Magnetar the router reports it
//!   (`x-magnetar-outcome`); for HAProxy and nginx the lab classifies the status they return with
//!   the same function. A request that got no answer at all counts as a failure (and as an error).
//! - **first-attempt success**: the request succeeded with one attempt.
//! - **attempts per request**: attempts the downstreams saw, divided by requests.
//! - **best-guess score**: successes minus every attempt beyond the third
//!   ([`FREE_ATTEMPTS`]); with at most three attempts it equals the successes.
//! - **p50 / p99**: nearest-rank percentiles of the client-observed latency of every answered
//!   request, successful or not.
//! - **regret**: for each request, the oracle's first-attempt success probability (the best
//!   downstream's, from the scenario in force when it was sent) minus 1 if the first attempt
//!   succeeded, else 0; summed. Its expectation is the bandit pseudo-regret of first picks.
//! - **traffic share**: fraction of requests whose final attempt went to each downstream.
//! - **rolling success**: success rate over the last [`ROLLING_WINDOW`] requests, by request index.
//!
//! Computed here rather than in `magnetar-core` because the core had no metrics module when the
//! lab was written; the definitions are the ones the core's documentation states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Attempts per request that cost nothing in the best-guess score.
pub const FREE_ATTEMPTS: u32 = magnetar_core::retry::DEFAULT_MAX_ATTEMPTS;
/// Window of the rolling success rate, in requests.
pub const ROLLING_WINDOW: usize = 50;
/// Share key of requests that reached no downstream.
pub const NO_DOWNSTREAM: &str = "(none)";

/// What one request produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Request number within the run, from 0.
    pub index: usize,
    /// When it was sent, milliseconds after the lane started.
    pub sent_ms: f64,
    /// Client-observed latency, milliseconds.
    pub latency_ms: f64,
    /// Final HTTP status; 0 when no answer arrived.
    pub status: u16,
    /// The router's definition of success.
    pub success: bool,
    /// Attempts the request took (0 when it reached no downstream).
    pub attempts: u32,
    /// Downstream of the final attempt, empty when unknown.
    pub worker: String,
    /// Oracle's first-attempt success probability when the request was sent.
    pub oracle: f64,
    /// Transport error, when no answer arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Sample {
    /// Whether the request succeeded on its first attempt.
    pub fn first_attempt_success(&self) -> bool {
        self.success && self.attempts == 1
    }
}

/// The summary of one lane (a strategy or a peer) of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub requests: usize,
    pub successes: usize,
    pub success_rate: f64,
    pub first_attempt_successes: usize,
    pub first_attempt_success_rate: f64,
    pub attempts: u64,
    pub attempts_per_request: f64,
    pub score: i64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub regret: f64,
    /// Requests that got no answer.
    pub errors: usize,
    /// Downstream name → share of requests whose final attempt it served.
    pub share: BTreeMap<String, f64>,
    /// Wall time of the lane, seconds.
    pub duration_s: f64,
    /// Requests per second achieved.
    pub throughput_rps: f64,
}

/// Nearest-rank percentile of sorted values: the value at rank `ceil(p / 100 * n)`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Summarises the samples of one lane.
pub fn summarize(samples: &[Sample]) -> Summary {
    let requests = samples.len();
    let successes = samples.iter().filter(|s| s.success).count();
    let first = samples.iter().filter(|s| s.first_attempt_success()).count();
    let attempts: u64 = samples.iter().map(|s| u64::from(s.attempts)).sum();
    let beyond: i64 =
        samples.iter().map(|s| i64::from(s.attempts.saturating_sub(FREE_ATTEMPTS))).sum();
    let mut latencies: Vec<f64> =
        samples.iter().filter(|s| s.error.is_none()).map(|s| s.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    let regret = cumulative_regret(samples).last().copied().unwrap_or(0.0);
    let mut share: BTreeMap<String, f64> = BTreeMap::new();
    for s in samples {
        let key = if s.worker.is_empty() { NO_DOWNSTREAM } else { s.worker.as_str() };
        *share.entry(key.to_owned()).or_default() += 1.0;
    }
    let n = requests.max(1) as f64;
    share.values_mut().for_each(|v| *v /= n);
    let duration_ms = samples.iter().map(|s| s.sent_ms + s.latency_ms).fold(0.0, f64::max);
    Summary {
        requests,
        successes,
        success_rate: successes as f64 / n,
        first_attempt_successes: first,
        first_attempt_success_rate: first as f64 / n,
        attempts,
        attempts_per_request: attempts as f64 / n,
        score: successes as i64 - beyond,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        regret,
        errors: samples.iter().filter(|s| s.error.is_some()).count(),
        share,
        duration_s: duration_ms / 1000.0,
        throughput_rps: if duration_ms > 0.0 {
            requests as f64 / (duration_ms / 1000.0)
        } else {
            0.0
        },
    }
}

/// Samples in request-index order (lanes record them in completion order).
pub fn by_index(samples: &[Sample]) -> Vec<&Sample> {
    let mut ordered: Vec<&Sample> = samples.iter().collect();
    ordered.sort_by_key(|s| s.index);
    ordered
}

/// Cumulative regret after each request, in request-index order.
pub fn cumulative_regret(samples: &[Sample]) -> Vec<f64> {
    let mut total = 0.0;
    by_index(samples)
        .into_iter()
        .map(|s| {
            total += s.oracle - if s.first_attempt_success() { 1.0 } else { 0.0 };
            total
        })
        .collect()
}

/// Success rate over the last `window` requests after each request, in request-index order.
pub fn rolling_success(samples: &[Sample], window: usize) -> Vec<f64> {
    let ordered = by_index(samples);
    let window = window.max(1);
    let mut in_window = 0usize;
    let mut out = Vec::with_capacity(ordered.len());
    for (i, s) in ordered.iter().enumerate() {
        in_window += usize::from(s.success);
        if i >= window {
            in_window -= usize::from(ordered[i - window].success);
        }
        out.push(in_window as f64 / (i + 1).min(window) as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(index: usize, success: bool, attempts: u32, latency_ms: f64) -> Sample {
        Sample {
            index,
            sent_ms: index as f64,
            latency_ms,
            status: if success { 200 } else { 502 },
            success,
            attempts,
            worker: format!("downstream-{}", 1 + index % 2),
            oracle: 0.5,
            error: None,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
    }

    #[test]
    fn summary_follows_the_definitions() {
        let samples = vec![
            sample(0, true, 1, 10.0),
            sample(1, true, 3, 30.0),
            sample(2, false, 3, 20.0),
            sample(3, true, 5, 40.0),
        ];
        let s = summarize(&samples);
        assert_eq!(s.successes, 3);
        assert_eq!(s.first_attempt_successes, 1);
        assert_eq!(s.attempts, 12);
        assert_eq!(s.attempts_per_request, 3.0);
        // 3 successes minus the 2 attempts beyond the third of request 3.
        assert_eq!(s.score, 1);
        assert_eq!(s.p50_ms, 20.0);
        assert_eq!(s.p99_ms, 40.0);
        // 4 × 0.5 oracle minus 1 first-attempt success.
        assert!((s.regret - 1.0).abs() < 1e-12);
        assert_eq!(s.share["downstream-1"], 0.5);
    }

    #[test]
    fn rolling_success_uses_a_sliding_window_in_index_order() {
        let samples: Vec<Sample> = [true, false, true, true]
            .iter()
            .enumerate()
            .map(|(i, ok)| sample(3 - i, *ok, 1, 1.0))
            .collect();
        // In index order the successes are true, true, false, true.
        assert_eq!(rolling_success(&samples, 2), vec![1.0, 1.0, 0.5, 0.5]);
    }

    #[test]
    fn unanswered_requests_count_as_failed_errors_without_latency() {
        let mut lost = sample(1, false, 0, 9999.0);
        lost.error = Some("connection refused".into());
        lost.worker.clear();
        let s = summarize(&[sample(0, true, 1, 5.0), lost]);
        assert_eq!(s.errors, 1);
        assert_eq!(s.p99_ms, 5.0);
        assert_eq!(s.share[NO_DOWNSTREAM], 0.5);
    }
}
