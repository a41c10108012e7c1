//! V5: Thompson sampling with attempt-dependent variance scaling.
//!
//! From the flaky-load-balancer design (V5, "Thompson modified"): during the penalty-free
//! attempts the posterior is widened so that free attempts explore more. For attempt `k`
//! (1-based) the scale is `s = C * d^(k - 1)` while `k <= penalty_free` (4, 2, 1 with the
//! defaults) and no scaling afterwards. A posterior `Beta(a, b)` with `a + b = n > 2` is drawn as
//! `Beta(max(1, a r), max(1, b r))` with `r = max(2, n / s) / n`: the same mean, about `s` times
//! the variance. At `s = 1` nothing changes.
//!
//! Parameters: [`DEFAULT_SCALE`] `C` = 4, [`DEFAULT_SCALE_DECAY`] `d` = 0.5 (the seed's), and the
//! penalty-free budget (default 3). Counting is plain Thompson sampling's (a 429 is a failure).
//!
//! Snapshot: the counts, exactly (see [`ArmCounts`]).

use super::beta::BetaSampler;
use super::counts::{CountRule, Counted, Pick};
use super::thompson::best_draw;
use super::{ArmId, ArmPosterior, StrategyKind, beta};
use crate::retry::DEFAULT_MAX_ATTEMPTS;

/// Variance scale of the first attempt.
pub const DEFAULT_SCALE: f64 = 4.0;
/// Factor applied to the scale on each further attempt.
pub const DEFAULT_SCALE_DECAY: f64 = 0.5;

/// Thompson sampling's rule, exploring harder while attempts are free.
#[derive(Debug, Clone)]
pub struct ThompsonAttempt {
    penalty_free: u32,
    scale: f64,
    decay: f64,
}

impl ThompsonAttempt {
    /// Attempt-aware Thompson sampling over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<ThompsonAttempt> {
        let rule = ThompsonAttempt {
            penalty_free: DEFAULT_MAX_ATTEMPTS,
            scale: DEFAULT_SCALE,
            decay: DEFAULT_SCALE_DECAY,
        };
        Counted::new(arms, rule)
    }

    /// The variance scale for a 1-based attempt number; 0 means no scaling.
    pub fn scale_for(&self, attempt: u32) -> f64 {
        if attempt == 0 || attempt > self.penalty_free {
            return 0.0;
        }
        self.scale * self.decay.powi(attempt as i32 - 1)
    }
}

impl Counted<ThompsonAttempt> {
    /// Overrides the number of penalty-free attempts.
    pub fn penalty_free(mut self, attempts: u32) -> Self {
        self.rule.penalty_free = attempts;
        self
    }

    /// The variance scale for a 1-based attempt number; 0 means no scaling.
    pub fn scale_for(&self, attempt: u32) -> f64 {
        self.rule.scale_for(attempt)
    }
}

/// The Beta parameters drawn from for counts `c` under variance scale `s`.
pub fn scaled_params(c: &ArmPosterior, s: f64) -> (f64, f64) {
    let c = c.sanitized();
    let (a, b) = (1.0 + c.successes, 1.0 + c.failures);
    let n = a + b;
    if s > 0.0 && n > 2.0 {
        let r = (n / s).max(2.0) / n;
        ((a * r).max(1.0), (b * r).max(1.0))
    } else {
        (a, b)
    }
}

impl CountRule for ThompsonAttempt {
    const KIND: StrategyKind = StrategyKind::ThompsonAttempt;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let s = self.scale_for(ctx.attempt);
        let mut rng = beta::local_rng(rng);
        best_draw(ctx, counts.len(), |arm| {
            let (a, b) = scaled_params(&counts[arm], s);
            Some(BetaSampler::new(a, b).draw(&mut rng))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_halves_per_attempt_and_stops_after_the_free_budget() {
        let s = ThompsonAttempt::new(2);
        assert_eq!([1, 2, 3, 4].map(|k| s.scale_for(k)), [4.0, 2.0, 1.0, 0.0]);
        assert_eq!(ThompsonAttempt::new(2).penalty_free(1).scale_for(2), 0.0);
    }

    #[test]
    fn scaling_keeps_the_mean_and_widens_the_posterior() {
        let c = ArmPosterior { successes: 79.0, failures: 19.0 }; // Beta(80, 20)
        let (a, b) = scaled_params(&c, 4.0);
        assert!((a - 20.0).abs() < 1e-9 && (b - 5.0).abs() < 1e-9, "{a} {b}");
        assert_eq!(scaled_params(&c, 1.0), (80.0, 20.0));
        assert_eq!(scaled_params(&c, 0.0), (80.0, 20.0));
        // Little evidence: never below the uniform prior's parameters.
        let (a, b) = scaled_params(&ArmPosterior { successes: 1.0, failures: 0.0 }, 4.0);
        assert!(a >= 1.0 && b >= 1.0);
    }
}
