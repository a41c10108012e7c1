//! V6: masked Thompson sampling. A 429 is not a failure: the downstream rests for a cooldown.
//!
//! From the flaky-load-balancer design (V6, "Thompson masked"): a downstream answering 429 Too
//! Many Requests is healthy but saturated, and counting that as a failure would push traffic
//! towards worse downstreams that merely have spare capacity. So a 429 leaves the posterior
//! alone and masks the downstream for [`DEFAULT_COOLDOWN_MS`] (1 s); selection is plain Thompson
//! sampling (see [`thompson`](super::thompson)) among the allowed downstreams that are not
//! resting. When every allowed downstream rests, the one whose rest ends first is chosen (the
//! seed's "least recently rate-limited").
//!
//! Parameter: the cooldown ([`StrategyParams::rate_limit_cooldown_ms`](super::StrategyParams)).
//!
//! Snapshot: the counts, exactly (see [`ArmPosterior`]); rests are local and not exported.

use rand::RngCore;

use super::beta::BetaSampler;
use super::thompson::{best_draw, prepare};
use super::{
    ArmId, ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, SnapshotError, Strategy,
    StrategyKind, beta, restore_counts,
};
use crate::Outcome;

/// How long a 429 rests a downstream.
pub const DEFAULT_COOLDOWN_MS: u64 = 1_000;

/// Picks, among the allowed arms, the one whose rest ends first (ties to the lower index).
pub fn soonest_available(ctx: &SelectContext<'_>, until: &[u64]) -> Option<ArmId> {
    (0..until.len()).filter(|a| !ctx.is_excluded(*a)).min_by_key(|a| until[*a])
}

/// Thompson sampling that rests rate-limited downstreams.
#[derive(Debug, Clone)]
pub struct ThompsonMasked {
    counts: Vec<ArmPosterior>,
    samplers: Vec<BetaSampler>,
    resting_until: Vec<u64>,
    cooldown_ms: u64,
}

impl ThompsonMasked {
    pub fn new(arms: usize) -> Self {
        ThompsonMasked {
            counts: vec![ArmPosterior::default(); arms],
            samplers: vec![BetaSampler::for_counts(0.0, 0.0); arms],
            resting_until: vec![0; arms],
            cooldown_ms: DEFAULT_COOLDOWN_MS,
        }
    }

    /// Overrides the cooldown.
    pub fn cooldown(mut self, cooldown_ms: u64) -> Self {
        self.cooldown_ms = cooldown_ms;
        self
    }

    /// Whether `arm` is resting at `now_ms`.
    pub fn resting(&self, arm: ArmId, now_ms: u64) -> bool {
        self.resting_until.get(arm).is_some_and(|until| now_ms < *until)
    }
}

impl Strategy for ThompsonMasked {
    fn kind(&self) -> StrategyKind {
        StrategyKind::ThompsonMasked
    }

    fn arms(&self) -> usize {
        self.counts.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        let (samplers, until) = (&self.samplers, &self.resting_until);
        let mut rng = beta::local_rng(rng);
        best_draw(ctx, samplers.len(), |a| {
            (ctx.now_ms >= until[a]).then(|| samplers[a].draw(&mut rng))
        })
        .or_else(|| soonest_available(ctx, until))
    }

    fn update(&mut self, arm: ArmId, feedback: &Feedback) {
        let Some(c) = self.counts.get_mut(arm) else { return };
        if feedback.outcome == Outcome::RateLimited {
            self.resting_until[arm] = feedback.now_ms.saturating_add(self.cooldown_ms);
        } else {
            c.observe(feedback.outcome.is_success());
            self.samplers[arm] = BetaSampler::for_counts(c.successes, c.failures);
        }
    }

    fn snapshot(&self, now_ms: u64) -> PosteriorSnapshot {
        PosteriorSnapshot::of(&self.counts, now_ms)
    }

    fn restore(&mut self, snapshot: &PosteriorSnapshot) -> Result<(), SnapshotError> {
        restore_counts(&mut self.counts, snapshot)?;
        self.samplers = prepare(&self.counts);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn a_429_rests_the_arm_without_counting_a_failure() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut s = ThompsonMasked::new(2).cooldown(500);
        let arms = vec![
            ArmPosterior { successes: 50.0, failures: 0.0 },
            ArmPosterior { successes: 0.0, failures: 50.0 },
        ];
        s.restore(&PosteriorSnapshot::of(&arms, 0)).unwrap();
        s.update(0, &Feedback::at(Outcome::RateLimited, 1_000));
        assert_eq!(s.snapshot(0).arms, arms);
        assert!(s.resting(0, 1_499) && !s.resting(0, 1_500));
        assert_eq!(s.select(&SelectContext::first(1_200), &mut rng), Some(1));
        assert_eq!(s.select(&SelectContext::first(1_500), &mut rng), Some(0));
    }

    #[test]
    fn when_everything_rests_the_first_to_wake_is_chosen() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut s = ThompsonMasked::new(3);
        s.update(0, &Feedback::at(Outcome::RateLimited, 300));
        s.update(1, &Feedback::at(Outcome::RateLimited, 100));
        s.update(2, &Feedback::at(Outcome::RateLimited, 200));
        assert_eq!(s.select(&SelectContext::first(400), &mut rng), Some(1));
        let ctx = SelectContext { excluded: &[1], attempt: 2, now_ms: 400 };
        assert_eq!(s.select(&ctx, &mut rng), Some(2));
    }
}
