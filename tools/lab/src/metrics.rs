//! What a lane measured, computed with the core's [`magnetar_sim::metrics::Metrics`] so that the
//! lab, the simulator and the learner share one set of definitions. The test-bed page computes the
//! same figures in JavaScript (`test-bed/metrics.js`); the e2e lab test feeds the lab's samples to
//! that file and checks that both agree.
//!
//! - **success**: the router's definition ([`magnetar_core::Outcome::is_success`]): the final
//!   attempt answered with a status below 500 other than 429. For Magnetar the router reports it
//!   (`x-magnetar-outcome`); for HAProxy and nginx the lab classifies the status they return with
//!   the same function. A request that got no answer at all is a failure (and counted as an error).
//! - **first-attempt success**: the request succeeded with a single attempt.
//! - **attempts per request**: attempts over requests. The router reports each request's count
//!   (`x-magnetar-attempts`), nginx its `$upstream_status`, HAProxy its log; the downstreams'
//!   own counters check the total.
//! - **best-guess score**: successes minus every attempt beyond the third of a request.
//! - **p50 / p99**: client-observed latency of every request, from the core's log-bucketed
//!   histogram (1% precision).
//! - **realized regret**: `Σ (oracle's request success probability − 1 if the request
//!   succeeded)`, where the oracle sends each request to the best downstreams of the scenario in
//!   force, one distinct downstream per attempt within the same budget
//!   ([`crate::scenario::Scenario::oracle_for_phase`]). Noisy; can be negative.
//! - **traffic share** and **per-downstream success**: attempts (and successful attempts) each
//!   downstream counted itself during the lane (`GET /stats` before and after), over all
//!   attempts. When the counters cannot be read, the share of final attempts instead.
//! - **repeat tries** (peers): tries of a request that went to a downstream this request had
//!   already tried, over all retries (tries after the first). Measured per request from the
//!   downstreams each try reached (nginx's `$upstream_addr`, HAProxy's per-try log); the router
//!   never repeats (magnetar-core's attempt plan vetoes tried downstreams) and names only the
//!   final downstream, so Magnetar lanes report none.
//! - **rolling success** (charts only): success rate over the last [`ROLLING_WINDOW`] requests.
//!
//! The core's pseudo-regret (which needs the downstream of every attempt) is not reported: the
//! router names only a request's final downstream.

use std::collections::BTreeMap;

use magnetar_core::Outcome;
use magnetar_sim::metrics::{Metrics, RequestRecord};
use serde::{Deserialize, Serialize};

/// Attempts per request that cost nothing in the best-guess score.
pub const FREE_ATTEMPTS: u32 = magnetar_core::retry::DEFAULT_MAX_ATTEMPTS;
/// Window of the rolling success rate, in requests.
pub const ROLLING_WINDOW: usize = 50;
/// Arm index given to [`Metrics::record_attempt`] for attempts whose downstream is unknown;
/// out of range, so only the totals count it.
const UNKNOWN_ARM: usize = usize::MAX;

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
    /// The oracle's probability of serving this request successfully, under the scenario in force
    /// when it was sent and the same attempt budget.
    pub oracle: f64,
    /// Transport error, when no answer arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The downstream each try reached, in order, when the lane reports it (peers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tried: Option<Vec<String>>,
}

impl Sample {
    /// Whether the request succeeded on its first attempt.
    pub fn first_attempt_success(&self) -> bool {
        self.success && self.attempts == 1
    }

    /// Tries that reached a downstream this request had already tried (`None` when unknown).
    pub fn repeat_tries(&self) -> Option<u64> {
        let tried = self.tried.as_ref()?;
        let repeats = tried.iter().enumerate().filter(|(i, d)| tried[..*i].contains(d)).count();
        Some(repeats as u64)
    }
}

/// Work requests one downstream counted during a lane.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DownstreamCount {
    pub name: String,
    pub requests: u64,
    pub successes: u64,
    /// Requests whose override it rejected (400): must be 0, or the lane is invalid.
    pub invalid: u64,
}

/// The summary of one lane (a strategy or a peer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub requests: u64,
    pub successes: u64,
    pub success_rate: f64,
    /// Requests that succeeded on their first attempt (the count behind the rate, for intervals).
    pub first_attempt_successes: u64,
    pub first_attempt_success_rate: f64,
    pub attempts: u64,
    pub attempts_per_request: f64,
    pub max_attempts: u32,
    pub best_guess_score: i64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub realized_regret: f64,
    /// Attempts per downstream over all attempts, in fleet order.
    pub traffic_share: Vec<f64>,
    /// `downstream_counters` or `final_attempts`: where `traffic_share` comes from.
    pub traffic_share_source: String,
    /// Successful attempts over attempts per downstream (from the counters; empty without them).
    pub arm_success_rate: Vec<f64>,
    /// Tries that went back to a downstream the request had already tried, and their share of
    /// all retries; `None` when the lane does not report the downstream of every try.
    pub repeat_tries: Option<u64>,
    pub repeat_try_rate: Option<f64>,
    /// Requests that got no answer.
    pub errors: u64,
    /// Wall time of the lane, seconds, and the request rate achieved.
    pub duration_s: f64,
    pub throughput_rps: f64,
}

/// Samples in request-index order (lanes record them in completion order).
pub fn by_index(samples: &[Sample]) -> Vec<&Sample> {
    let mut ordered: Vec<&Sample> = samples.iter().collect();
    ordered.sort_by_key(|s| s.index);
    ordered
}

/// Summarises one lane's samples; `counts` are the downstreams' own counters for the lane, in
/// fleet order, when they could be read.
pub fn summarize(
    samples: &[Sample],
    fleet: &[String],
    counts: Option<&[DownstreamCount]>,
) -> Summary {
    let mut m = Metrics::new(fleet.len());
    for s in by_index(samples) {
        for k in 1..=s.attempts {
            let last = k == s.attempts;
            let outcome = if last && s.success { Outcome::Success } else { Outcome::ServerError };
            m.record_attempt(UNKNOWN_ARM, outcome, k);
        }
        m.record_request(&RequestRecord {
            succeeded: s.success,
            first_attempt_succeeded: s.first_attempt_success(),
            attempts: s.attempts,
            latency_ms: s.latency_ms,
            oracle_success: Some(s.oracle),
        });
    }
    let core = m.summary();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (traffic_share, source, arm_success_rate) = match counts {
        Some(counts) if counts.len() == fleet.len() => {
            let total: u64 = counts.iter().map(|c| c.requests).sum();
            (
                counts.iter().map(|c| ratio(c.requests, total)).collect(),
                "downstream_counters",
                counts.iter().map(|c| ratio(c.successes, c.requests)).collect(),
            )
        }
        _ => {
            let finals: BTreeMap<&str, u64> = samples.iter().fold(BTreeMap::new(), |mut acc, s| {
                *acc.entry(s.worker.as_str()).or_default() += 1;
                acc
            });
            let n = samples.len() as u64;
            let share =
                fleet.iter().map(|f| ratio(finals.get(f.as_str()).copied().unwrap_or(0), n));
            (share.collect(), "final_attempts", Vec::new())
        }
    };
    let duration_ms = samples.iter().map(|s| s.sent_ms + s.latency_ms).fold(0.0, f64::max);
    let known: Vec<&Sample> = samples.iter().filter(|s| s.tried.is_some()).collect();
    let (repeat_tries, repeat_try_rate) = if known.is_empty() {
        (None, None)
    } else {
        let repeats: u64 = known.iter().filter_map(|s| s.repeat_tries()).sum();
        let retries: u64 = known
            .iter()
            .map(|s| s.tried.as_ref().map_or(0, |t| t.len() as u64).saturating_sub(1))
            .sum();
        (Some(repeats), Some(ratio(repeats, retries)))
    };
    Summary {
        requests: core.requests,
        successes: core.successes,
        success_rate: core.success_rate,
        first_attempt_successes: samples.iter().filter(|s| s.first_attempt_success()).count()
            as u64,
        first_attempt_success_rate: core.first_attempt_success_rate,
        attempts: core.attempts,
        attempts_per_request: core.attempts_per_request,
        max_attempts: core.max_attempts,
        best_guess_score: core.best_guess_score,
        latency_p50_ms: core.latency_p50_ms,
        latency_p99_ms: core.latency_p99_ms,
        realized_regret: core.realized_regret,
        traffic_share,
        traffic_share_source: source.to_owned(),
        arm_success_rate,
        repeat_tries,
        repeat_try_rate,
        errors: samples.iter().filter(|s| s.error.is_some()).count() as u64,
        duration_s: duration_ms / 1000.0,
        throughput_rps: if duration_ms > 0.0 {
            samples.len() as f64 / (duration_ms / 1000.0)
        } else {
            0.0
        },
    }
}

/// Realized regret after each request, in request-index order (the page's cumulative chart).
pub fn cumulative_regret(samples: &[Sample]) -> Vec<f64> {
    let mut total = 0.0;
    by_index(samples)
        .into_iter()
        .map(|s| {
            total += s.oracle - if s.success { 1.0 } else { 0.0 };
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

    fn fleet() -> Vec<String> {
        vec!["downstream-1".into(), "downstream-2".into()]
    }

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
            tried: None,
        }
    }

    #[test]
    fn summary_follows_the_core_definitions() {
        let samples = vec![
            sample(0, true, 1, 10.0),
            sample(1, true, 3, 30.0),
            sample(2, false, 3, 20.0),
            sample(3, true, 5, 40.0),
        ];
        let s = summarize(&samples, &fleet(), None);
        assert_eq!(s.successes, 3);
        assert_eq!(s.first_attempt_success_rate, 0.25);
        assert_eq!(s.first_attempt_successes, 1);
        assert_eq!(s.attempts, 12);
        assert_eq!(s.attempts_per_request, 3.0);
        assert_eq!(s.max_attempts, 5);
        // 3 successes minus the 2 attempts beyond the third of request 3.
        assert_eq!(s.best_guess_score, 1);
        assert!((s.latency_p50_ms / 20.0 - 1.0).abs() < 0.011);
        assert!((s.latency_p99_ms / 40.0 - 1.0).abs() < 0.011);
        // 4 × 0.5 oracle minus 3 successes.
        assert!((s.realized_regret - -1.0).abs() < 1e-12);
        assert_eq!(s.traffic_share, [0.5, 0.5]);
        assert_eq!(s.traffic_share_source, "final_attempts");
        assert_eq!(cumulative_regret(&samples).last().copied(), Some(-1.0));
    }

    #[test]
    fn downstream_counters_give_the_attempt_share() {
        let counts = [
            DownstreamCount { name: "downstream-1".into(), requests: 30, successes: 0, invalid: 0 },
            DownstreamCount { name: "downstream-2".into(), requests: 10, successes: 5, invalid: 0 },
        ];
        let s = summarize(&[sample(0, true, 1, 1.0)], &fleet(), Some(&counts));
        assert_eq!(s.traffic_share, [0.75, 0.25]);
        assert_eq!(s.arm_success_rate, [0.0, 0.5]);
        assert_eq!(s.traffic_share_source, "downstream_counters");
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
    fn repeat_tries_count_tries_that_went_back_to_a_tried_downstream() {
        let tried = |names: &[&str]| Some(names.iter().map(|n| (*n).to_owned()).collect());
        let mut a = sample(0, false, 3, 1.0);
        a.tried = tried(&["downstream-1", "downstream-2", "downstream-1"]);
        let mut b = sample(1, true, 2, 1.0);
        b.tried = tried(&["downstream-2", "downstream-1"]);
        let mut c = sample(2, true, 1, 1.0);
        c.tried = tried(&["downstream-2"]);
        assert_eq!(a.repeat_tries(), Some(1));
        let s = summarize(&[a, b, c], &fleet(), None);
        // One repeat among 3 retries (2 of request 0, 1 of request 1).
        assert_eq!(s.repeat_tries, Some(1));
        assert!((s.repeat_try_rate.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        let router = summarize(&[sample(0, true, 3, 1.0)], &fleet(), None);
        assert_eq!((router.repeat_tries, router.repeat_try_rate), (None, None));
    }

    #[test]
    fn unanswered_requests_are_failed_errors() {
        let mut lost = sample(1, false, 0, 3.0);
        lost.error = Some("connection refused".into());
        lost.worker.clear();
        let s = summarize(&[sample(0, true, 1, 5.0), lost], &fleet(), None);
        assert_eq!(s.errors, 1);
        assert_eq!(s.success_rate, 0.5);
        assert_eq!(s.attempts, 1);
    }
}
