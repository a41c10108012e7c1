//! V8: blocking bandit: Thompson sampling where 429s block a downstream with exponential backoff.
//!
//! From the flaky-load-balancer design (V8), after "blocking bandits" (Basu, Sen, Sanghavi and
//! Shakkottai, NeurIPS 2019), where an arm once played is unavailable for a while: a 429 blocks
//! the downstream for `base * m`, where the multiplier `m` doubles on every 429 up to
//! [`MAX_BACKOFF_MULTIPLIER`] (so with the default base of 5 s: 10 s, 20 s, 20 s, ...), and a
//! success resets `m` to 1. This models fixed-window rate limits ("N per minute"), where waiting
//! for the window to reset is the right move. A 429 is not counted in the posterior; 5xx,
//! timeouts and connection errors are failures. Selection is Thompson sampling (see
//! [`thompson`](super::thompson)) among the allowed downstreams that are not blocked; when all
//! are blocked, the one unblocked soonest.
//!
//! Parameters: [`DEFAULT_BLOCK_MS`] (5 s) and [`MAX_BACKOFF_MULTIPLIER`] (4), the seed's.
//!
//! Snapshot: the counts, exactly (see [`ArmPosterior`]); blocks are local and not exported.

use rand::RngCore;

use super::beta::BetaSampler;
use super::thompson::{best_draw, prepare};
use super::thompson_masked::soonest_available;
use super::{
    ArmId, ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, SnapshotError, Strategy,
    StrategyKind, beta, restore_counts,
};
use crate::Outcome;

/// Base block after a 429.
pub const DEFAULT_BLOCK_MS: u64 = 5_000;
/// Largest backoff multiplier.
pub const MAX_BACKOFF_MULTIPLIER: u64 = 4;

/// Thompson sampling with exponential-backoff blocking after 429s.
#[derive(Debug, Clone)]
pub struct BlockingBandit {
    counts: Vec<ArmPosterior>,
    samplers: Vec<BetaSampler>,
    blocked_until: Vec<u64>,
    multiplier: Vec<u64>,
    block_ms: u64,
}

impl BlockingBandit {
    pub fn new(arms: usize) -> Self {
        BlockingBandit {
            counts: vec![ArmPosterior::default(); arms],
            samplers: vec![BetaSampler::for_counts(0.0, 0.0); arms],
            blocked_until: vec![0; arms],
            multiplier: vec![1; arms],
            block_ms: DEFAULT_BLOCK_MS,
        }
    }

    /// Overrides the base block.
    pub fn block(mut self, block_ms: u64) -> Self {
        self.block_ms = block_ms;
        self
    }

    /// When `arm`'s block ends (0 if never blocked).
    pub fn blocked_until(&self, arm: ArmId) -> u64 {
        self.blocked_until.get(arm).copied().unwrap_or(0)
    }
}

impl Strategy for BlockingBandit {
    fn kind(&self) -> StrategyKind {
        StrategyKind::BlockingBandit
    }

    fn arms(&self) -> usize {
        self.counts.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        let (samplers, until) = (&self.samplers, &self.blocked_until);
        let mut rng = beta::local_rng(rng);
        best_draw(ctx, samplers.len(), |a| {
            (ctx.now_ms >= until[a]).then(|| samplers[a].draw(&mut rng))
        })
        .or_else(|| soonest_available(ctx, until))
    }

    fn update(&mut self, arm: ArmId, feedback: &Feedback) {
        let Some(c) = self.counts.get_mut(arm) else { return };
        match feedback.outcome {
            Outcome::RateLimited => {
                let m = (self.multiplier[arm] * 2).min(MAX_BACKOFF_MULTIPLIER);
                self.multiplier[arm] = m;
                self.blocked_until[arm] = feedback.now_ms.saturating_add(self.block_ms * m);
            }
            o => {
                c.observe(o.is_success());
                if o.is_success() {
                    self.multiplier[arm] = 1;
                }
                self.samplers[arm] = BetaSampler::for_counts(c.successes, c.failures);
            }
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
    fn backoff_doubles_caps_and_resets_on_success() {
        let mut s = BlockingBandit::new(2).block(100);
        s.update(0, &Feedback::at(Outcome::RateLimited, 1_000));
        assert_eq!(s.blocked_until(0), 1_200);
        s.update(0, &Feedback::at(Outcome::RateLimited, 1_200));
        assert_eq!(s.blocked_until(0), 1_600);
        s.update(0, &Feedback::at(Outcome::RateLimited, 1_600));
        assert_eq!(s.blocked_until(0), 2_000);
        s.update(0, &Feedback::at(Outcome::Success, 2_000));
        s.update(0, &Feedback::at(Outcome::RateLimited, 2_100));
        assert_eq!(s.blocked_until(0), 2_300);
        assert_eq!(s.snapshot(0).arms[0], ArmPosterior { successes: 1.0, failures: 0.0 });
    }

    #[test]
    fn blocked_arms_are_skipped_until_all_are_blocked() {
        let mut rng = SmallRng::seed_from_u64(5);
        let mut s = BlockingBandit::new(2).block(100);
        s.update(0, &Feedback::at(Outcome::RateLimited, 0));
        assert!((0..50).all(|t| s.select(&SelectContext::first(t), &mut rng) == Some(1)));
        s.update(1, &Feedback::at(Outcome::RateLimited, 50));
        assert_eq!(s.select(&SelectContext::first(60), &mut rng), Some(0));
    }
}
