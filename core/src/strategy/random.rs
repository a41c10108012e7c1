//! Uniform random selection among the downstreams that are not vetoed.
//!
//! A baseline: no parameters, no learning. Its expected success rate is the mean of the fleet's
//! success rates. Weighted random lives in `weighted_random.rs`.

use rand::RngCore;

use super::{ArmId, Feedback, SelectContext, Strategy, StrategyKind, uniform_allowed};

/// Uniform over the allowed arms.
#[derive(Debug, Clone)]
pub struct Random {
    arms: usize,
}

impl Random {
    pub fn new(arms: usize) -> Self {
        Random { arms }
    }
}

impl Strategy for Random {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Random
    }

    fn arms(&self) -> usize {
        self.arms
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        uniform_allowed(ctx, self.arms, rng)
    }

    fn update(&mut self, _arm: ArmId, _feedback: &Feedback) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn spreads_evenly_within_a_band() {
        // 30,000 draws over 3 arms: each share's standard deviation is ~0.27 points,
        // so ±1.5 points is over 5 sigma.
        let mut rng = SmallRng::seed_from_u64(42);
        let mut r = Random::new(3);
        let mut counts = [0u32; 3];
        for t in 0..30_000 {
            counts[r.select(&SelectContext::first(t), &mut rng).unwrap()] += 1;
        }
        for c in counts {
            let share = f64::from(c) / 30_000.0;
            assert!((share - 1.0 / 3.0).abs() < 0.015, "{counts:?}");
        }
    }
}
