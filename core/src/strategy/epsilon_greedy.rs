//! Epsilon-greedy with a decaying exploration rate.
//!
//! With probability `ε_t` choose an allowed downstream uniformly at random, otherwise the one
//! with the highest empirical success rate (untried ones first, ties at random). The rate follows
//! the `ε_n`-greedy schedule of Auer, Cesa-Bianchi and Fischer ("Finite-time analysis of the
//! multiarmed bandit problem", Machine Learning 47, 2002), `ε_t = min(1, c K / t)` with `t` the
//! observations so far and `K` the arms, floored at `ε_min` so that it keeps noticing change
//! (Sutton and Barto's constant-`ε` advice for non-stationary problems).
//!
//! Parameters: [`DEFAULT_C`] = 5 and [`DEFAULT_MIN_EPSILON`] = 0.01.
//!
//! Snapshot: the counts (see [`ArmPosterior`]).

use rand::{Rng, RngCore};

use super::{
    ArmId, ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, SnapshotError, Strategy,
    StrategyKind, argmax_allowed, restore_counts, uniform_allowed,
};

/// Scale of the decaying exploration rate.
pub const DEFAULT_C: f64 = 5.0;
/// Exploration rate floor.
pub const DEFAULT_MIN_EPSILON: f64 = 0.01;

/// Epsilon-greedy.
#[derive(Debug, Clone)]
pub struct EpsilonGreedy {
    counts: Vec<ArmPosterior>,
    c: f64,
    min_epsilon: f64,
}

impl EpsilonGreedy {
    pub fn new(arms: usize) -> Self {
        EpsilonGreedy {
            counts: vec![ArmPosterior::default(); arms],
            c: DEFAULT_C,
            min_epsilon: DEFAULT_MIN_EPSILON,
        }
    }

    /// The exploration rate for the next choice.
    pub fn epsilon(&self) -> f64 {
        let t = self.counts.iter().map(ArmPosterior::pulls).sum::<f64>().max(1.0);
        (self.c * self.counts.len() as f64 / t).clamp(self.min_epsilon, 1.0)
    }
}

impl Strategy for EpsilonGreedy {
    fn kind(&self) -> StrategyKind {
        StrategyKind::EpsilonGreedy
    }

    fn arms(&self) -> usize {
        self.counts.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        if rng.random::<f64>() < self.epsilon() {
            return uniform_allowed(ctx, self.counts.len(), rng);
        }
        let counts = &self.counts;
        argmax_allowed(ctx, counts.len(), rng, |a| {
            counts[a].empirical_mean().unwrap_or(f64::INFINITY)
        })
    }

    fn update(&mut self, arm: ArmId, feedback: &Feedback) {
        if let Some(c) = self.counts.get_mut(arm) {
            c.observe(feedback.outcome.is_success());
        }
    }

    fn snapshot(&self, now_ms: u64) -> PosteriorSnapshot {
        PosteriorSnapshot::of(&self.counts, now_ms)
    }

    fn restore(&mut self, snapshot: &PosteriorSnapshot) -> Result<(), SnapshotError> {
        restore_counts(&mut self.counts, snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn exploration_decays_to_its_floor() {
        let mut s = EpsilonGreedy::new(2);
        assert_eq!(s.epsilon(), 1.0);
        let arms = vec![
            ArmPosterior { successes: 4_000.0, failures: 1_000.0 },
            ArmPosterior { successes: 2_500.0, failures: 2_500.0 },
        ];
        s.restore(&PosteriorSnapshot::of(&arms, 0)).unwrap();
        assert_eq!(s.epsilon(), DEFAULT_MIN_EPSILON);
        // 10,000 choices: the worse arm gets ε/2 = 0.5% (sd 0.07 points); below 1% is 7 sigma.
        let mut rng = SmallRng::seed_from_u64(3);
        let worse = (0..10_000)
            .filter(|t| s.select(&SelectContext::first(*t), &mut rng) == Some(1))
            .count();
        assert!(worse < 100, "{worse}");
    }
}
