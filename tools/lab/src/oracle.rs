//! The oracle of a phase whose fleet has rate-limited downstreams, at a known request rate.
//!
//! A `rate_limited` downstream answers every request under its limit and 429 above it. When each
//! lane sends a fixed `r` requests per second (`--rate`), an oracle that knows the limits can do no
//! better than this fluid bound, and can reach it with fixed-rate arrivals:
//!
//! - the limited downstreams together admit `C` requests per second per lane (their limits
//!   summed: a request never needs two of them, the first one it reaches succeeds);
//! - a request that gets a limited downstream succeeds, one that does not tries the `k` best other
//!   downstreams and fails with probability `F_k`, the product of their failure probabilities;
//! - a limited downstream is worth most as the last of the `k` attempts: there it is reached by
//!   the `F_{k-1}` share of its requests only, and turns each into a success. So a share
//!   `x = min(1, C / (r · F_{k-1}))` of the requests gets one as its last attempt, the rest keep
//!   `k` attempts on the others: success `x + (1 − x)(1 − F_k)`.
//!
//! Without a known rate (the closed-loop `--concurrency`), the lab counts limited downstreams as
//! under their limit: an upper bound, labelled an estimate.

/// Success probability of the oracle with `max_attempts` attempts on distinct downstreams when
/// `others` are the success probabilities of the downstreams without a limit, `capacity` the
/// requests per second per lane the limited ones admit together, and `rate` the requests per
/// second per lane.
pub fn with_rate_limits(others: &[f64], capacity: f64, rate: f64, max_attempts: u32) -> f64 {
    let mut others = others.to_vec();
    others.sort_by(|a, b| b.total_cmp(a));
    let failing = |m: usize| others.iter().take(m).map(|p| 1.0 - p).product::<f64>();
    let k = max_attempts.max(1) as usize;
    let (before_last, all) = (failing(k - 1), failing(k));
    let x = if rate <= 0.0 || before_last * rate <= capacity {
        1.0
    } else {
        capacity / (rate * before_last)
    };
    x + (1.0 - x) * (1.0 - all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn a_single_attempt_shares_the_capacity_and_sends_the_rest_to_the_best_other() {
        // 6 of 10 requests per second go to the limited downstreams, 4 to an 80% one.
        assert!(close(with_rate_limits(&[0.5, 0.8], 6.0, 10.0, 1), 0.6 + 0.4 * 0.8));
        // Under the capacity every request succeeds.
        assert!(close(with_rate_limits(&[0.8], 6.0, 5.0, 1), 1.0));
        // No capacity: the plain oracle of the others.
        assert!(close(with_rate_limits(&[0.8, 0.5], 0.0, 10.0, 2), 1.0 - 0.2 * 0.5));
    }

    #[test]
    fn with_more_attempts_the_limited_downstreams_are_the_last_resort() {
        // Three attempts, others 80% and 80%: only 4% of requests reach the third attempt, so
        // 0.4 requests/s of capacity is enough for all of them.
        assert!(close(with_rate_limits(&[0.8, 0.8, 0.5], 0.4, 10.0, 3), 1.0));
        // With 0.2 requests/s, half of them: 1 − 0.5 × 0.04 × 0.5.
        assert!(close(with_rate_limits(&[0.8, 0.8, 0.5], 0.2, 10.0, 3), 1.0 - 0.5 * 0.04 * 0.5));
    }
}
