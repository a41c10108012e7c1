//! Gaussian Thompson sampling over a continuous reward: success weighted by latency.
//!
//! Agrawal and Goyal, "Further optimal regret bounds for Thompson sampling" (AISTATS 2013),
//! Algorithm 2 (Thompson sampling with Gaussian priors): an arm observed `k` times with reward sum
//! `S` draws `θ ~ N(S / (k + 1), 1 / (k + 1))`, and the allowed arm with the highest draw is chosen.
//! The paper proves `O(sqrt(N T ln N))` regret for any rewards in `[0, 1]`, not only Bernoulli
//! ones, which is what makes it fit a continuous reward.
//!
//! The reward of one attempt is its **success-weighted latency utility**
//! `u = success × max(0, 1 - latency / LATENCY_SCALE_MS)`, with [`LATENCY_SCALE_MS`] = 2,000 ms
//! (the router's default attempt timeout): a failure is worth 0, a success answered at once 1, a
//! success in 200 ms 0.9. A fleet of equally reliable hosts is thus ranked by latency, and a fast
//! host that fails more loses to a slower reliable one as soon as `Δsuccess > Δlatency / 2 s`.
//! A latency that is not a finite non-negative number is read as 0 (unknown). Any non-success
//! (5xx, timeout, connection error, 429) is worth 0, as for every learning strategy.
//!
//! No parameters besides the latency scale. The posterior variance `1 / (k + 1)` is the paper's
//! (unit-variance Gaussian likelihood): wider than a `[0, 1]` reward needs, so it explores more
//! than Beta-Bernoulli Thompson sampling on success alone, and gains its latency ranking for it.
//!
//! Snapshot: **exact**. The state is two sums per arm, kept as the counts' `successes = Σ u` and
//! `failures = Σ (1 - u)` (so `k = successes + failures`); a restored instance draws exactly as
//! the original. They are utilities, not success counts, so the router does not import the
//! learner's success counts into it (`imports_params: false` on its registry row).

use rand_distr::{Distribution, StandardNormal};

use super::counts::{ArmCounts, CountRule, Counted, Pick};
use super::{ArmId, ArmPosterior, Feedback, StrategyKind, beta};

/// Latency at which a success is worth nothing, ms (the default attempt timeout).
pub const LATENCY_SCALE_MS: f64 = 2_000.0;

/// The utility of one attempt: `success × max(0, 1 - latency / scale)`, in `[0, 1]`.
pub fn utility(feedback: &Feedback, scale_ms: f64) -> f64 {
    if !feedback.outcome.is_success() {
        return 0.0;
    }
    let latency = feedback.latency_ms;
    let latency = if latency.is_finite() && latency > 0.0 { latency } else { 0.0 };
    (1.0 - latency / scale_ms).clamp(0.0, 1.0)
}

/// The posterior `N(mean, variance)` of an arm's mean reward: `(S / (k + 1), 1 / (k + 1))`.
pub fn posterior(c: &ArmPosterior) -> (f64, f64) {
    let k1 = c.pulls() + 1.0;
    (c.successes / k1, 1.0 / k1)
}

/// Gaussian Thompson sampling's rule: the highest Gaussian draw.
#[derive(Debug, Clone)]
pub struct GaussianThompson {
    scale_ms: f64,
}

impl GaussianThompson {
    /// Gaussian Thompson sampling over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<GaussianThompson> {
        Counted::new(arms, GaussianThompson { scale_ms: LATENCY_SCALE_MS })
    }
}

impl Counted<GaussianThompson> {
    /// Overrides the latency scale (a value that is not finite and positive keeps the default).
    pub fn latency_scale(mut self, scale_ms: f64) -> Self {
        if scale_ms.is_finite() && scale_ms > 0.0 {
            self.rule.scale_ms = scale_ms;
        }
        self
    }
}

impl CountRule for GaussianThompson {
    const KIND: StrategyKind = StrategyKind::GaussianThompson;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let mut rng = beta::local_rng(rng);
        let mut best: Option<(ArmId, f64)> = None;
        for arm in (0..counts.len()).filter(|a| !ctx.is_excluded(*a)) {
            let (mean, variance) = posterior(&counts[arm]);
            let z: f64 = StandardNormal.sample(&mut rng);
            let draw = mean + variance.sqrt() * z;
            if best.is_none_or(|(_, b)| draw > b) {
                best = Some((arm, draw));
            }
        }
        best.map(|(arm, _)| arm)
    }

    fn learn(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        let u = utility(feedback, self.scale_ms);
        if let Some(c) = counts.iter_mut().nth(arm) {
            c.successes += u;
            c.failures += 1.0 - u;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::strategy::{SelectContext, Strategy};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn feedback(outcome: Outcome, latency_ms: f64) -> Feedback {
        Feedback { outcome, latency_ms, now_ms: 0, attempt: 1 }
    }

    #[test]
    fn utility_weights_success_by_latency() {
        assert_eq!(utility(&feedback(Outcome::Success, 0.0), 2_000.0), 1.0);
        assert_eq!(utility(&feedback(Outcome::Success, 200.0), 2_000.0), 0.9);
        assert_eq!(utility(&feedback(Outcome::Success, 5_000.0), 2_000.0), 0.0);
        assert_eq!(utility(&feedback(Outcome::Success, f64::NAN), 2_000.0), 1.0);
        assert_eq!(utility(&feedback(Outcome::ClientError, -3.0), 2_000.0), 1.0);
        for o in [Outcome::ServerError, Outcome::Timeout, Outcome::RateLimited] {
            assert_eq!(utility(&feedback(o, 10.0), 2_000.0), 0.0, "{o}");
        }
    }

    #[test]
    fn the_state_is_the_two_sums_of_the_paper() {
        let mut s = GaussianThompson::new(2);
        s.update(0, &feedback(Outcome::Success, 200.0));
        s.update(0, &feedback(Outcome::ServerError, 10.0));
        let c = &s.counts()[0];
        assert!((c.successes - 0.9).abs() < 1e-12 && (c.failures - 1.1).abs() < 1e-12);
        let (mean, variance) = posterior(c);
        assert!((mean - 0.3).abs() < 1e-12 && (variance - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn prefers_the_faster_of_two_equally_reliable_hosts() {
        // Both succeed 95% of the time; arm 1 answers in 40 ms, arm 0 in 600 ms: utilities 0.931
        // and 0.665. After 4,000 attempts the fast one has most of the traffic.
        let mut rng = SmallRng::seed_from_u64(3);
        let mut s = GaussianThompson::new(2);
        let mut late = [0u32; 2];
        for t in 0..4_000u64 {
            let arm = s.select(&SelectContext::first(t), &mut rng).unwrap();
            let ok = rng.random::<f64>() < 0.95;
            let o = if ok { Outcome::Success } else { Outcome::ServerError };
            s.update(arm, &feedback(o, [600.0, 40.0][arm]));
            if t >= 3_000 {
                late[arm] += 1;
            }
        }
        assert!(late[1] > 900, "{late:?}");
    }
}
