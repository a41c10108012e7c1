//! Discounted Thompson sampling: every downstream's evidence fades by a factor `γ` each step.
//!
//! Raj and Kalyani, "Taming non-stationary bandits: a Bayesian approach" (arXiv:1707.09727, 2017).
//! After every observation, *all* arms' counts are multiplied by `γ` and the observed arm's count
//! gains the reward, so `Beta(1 + s, 1 + f)` holds roughly the last `1 / (1 - γ)` observations of
//! the fleet. An arm that is not chosen drifts back towards the uniform prior and is sampled
//! again, which is what lets this strategy notice a downstream that recovered while unused.
//!
//! One public implementation decays only the pulled arm, once per pull. That is a different
//! algorithm: an unused arm never forgets, and a busy arm forgets faster than its neighbours. Here
//! one step is one [`update`](super::Strategy::update) (one observed attempt), and every arm decays
//! exactly once per step.
//!
//! Parameter: `γ` = [`DEFAULT_DISCOUNT`] = 0.998, an effective memory of about 500 attempts
//! ([`StrategyParams::discount`](super::StrategyParams), sanitized into `(0, 1]`). Chosen on the
//! simulator: on the abrupt-change fleet it is back near the new oracle about 350 requests after
//! the change, while 0.99 and 0.995 pay 2-3 times its regret on stationary fleets by re-exploring
//! arms whose evidence faded; 0.999 does better on stationary fleets but recovers more slowly. Counts below
//! [`FLUSH_BELOW`] are flushed to zero so that long-idle arms cost no subnormal arithmetic.
//!
//! Snapshot: the discounted counts, exactly (see [`ArmCounts`]).

use super::beta::BetaSampler;
use super::counts::{ArmCounts, CountRule, Counted, Pick};
use super::thompson::best_draw;
use super::{ArmId, Feedback, StrategyKind, beta};

/// Per-step discount factor.
pub const DEFAULT_DISCOUNT: f64 = 0.998;
/// Counts smaller than this are set to zero.
pub const FLUSH_BELOW: f64 = 1e-9;

/// Discounted Thompson sampling's rule: the highest draw, and every arm's counts discounted
/// once per observation.
#[derive(Debug, Clone)]
pub struct ThompsonDiscounted {
    discount: f64,
}

impl ThompsonDiscounted {
    /// Discounted Thompson sampling over `arms` untried downstreams. `discount` outside `(0, 1]`
    /// (or NaN) falls back to [`DEFAULT_DISCOUNT`].
    pub fn new(arms: usize, discount: f64) -> Counted<ThompsonDiscounted> {
        let discount = if discount > 0.0 && discount <= 1.0 { discount } else { DEFAULT_DISCOUNT };
        Counted::new(arms, ThompsonDiscounted { discount })
    }
}

impl Counted<ThompsonDiscounted> {
    /// The discount in use.
    pub fn discount(&self) -> f64 {
        self.rule.discount
    }
}

impl CountRule for ThompsonDiscounted {
    const KIND: StrategyKind = StrategyKind::ThompsonDiscounted;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let mut rng = beta::local_rng(rng);
        best_draw(ctx, counts.len(), |a| {
            Some(BetaSampler::for_counts(counts[a].successes, counts[a].failures).draw(&mut rng))
        })
    }

    fn learn(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        let g = self.discount;
        for c in counts.iter_mut() {
            c.successes *= g;
            c.failures *= g;
            if c.successes < FLUSH_BELOW {
                c.successes = 0.0;
            }
            if c.failures < FLUSH_BELOW {
                c.failures = 0.0;
            }
        }
        counts.observe(arm, feedback.outcome.is_success());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::strategy::{ArmPosterior, Strategy};

    #[test]
    fn every_arm_decays_once_per_step() {
        let mut s = ThompsonDiscounted::new(3, 0.5);
        s.update(0, &Feedback::at(Outcome::Success, 0)); // [1,0] [0,0] [0,0]
        s.update(1, &Feedback::at(Outcome::ServerError, 0)); // [.5,0] [0,1] [0,0]
        s.update(1, &Feedback::at(Outcome::Success, 0)); // [.25,0] [1,.5] [0,0]
        let arms = s.snapshot(0).arms;
        assert_eq!(arms[0], ArmPosterior { successes: 0.25, failures: 0.0 });
        assert_eq!(arms[1], ArmPosterior { successes: 1.0, failures: 0.5 });
        assert_eq!(arms[2], ArmPosterior::default());
    }

    #[test]
    fn memory_is_bounded_by_one_over_one_minus_gamma() {
        let mut s = ThompsonDiscounted::new(2, 0.99);
        for t in 0..10_000 {
            s.update(0, &Feedback::at(Outcome::Success, t));
        }
        let c = &s.snapshot(0).arms[0];
        assert!((c.successes - 100.0).abs() < 1e-6, "{c:?}");
        assert_eq!(ThompsonDiscounted::new(1, 1.5).discount(), DEFAULT_DISCOUNT);
        assert_eq!(ThompsonDiscounted::new(1, f64::NAN).discount(), DEFAULT_DISCOUNT);
    }
}
