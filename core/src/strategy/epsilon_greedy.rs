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
//! Snapshot: the counts (see [`ArmCounts`]).

use rand::Rng;

use super::counts::{ArmCounts, CountRule, Counted, Pick};
use super::{ArmId, StrategyKind, argmax_allowed, uniform_allowed};

/// Scale of the decaying exploration rate.
pub const DEFAULT_C: f64 = 5.0;
/// Exploration rate floor.
pub const DEFAULT_MIN_EPSILON: f64 = 0.01;

/// Epsilon-greedy's rule: a coin, then a uniform or a greedy choice.
#[derive(Debug, Clone)]
pub struct EpsilonGreedy {
    c: f64,
    min_epsilon: f64,
}

impl EpsilonGreedy {
    /// Epsilon-greedy over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<EpsilonGreedy> {
        Counted::new(arms, EpsilonGreedy { c: DEFAULT_C, min_epsilon: DEFAULT_MIN_EPSILON })
    }

    /// The exploration rate for the next choice from `counts`.
    pub fn epsilon(&self, counts: &ArmCounts) -> f64 {
        let t = counts.total().max(1.0);
        (self.c * counts.len() as f64 / t).clamp(self.min_epsilon, 1.0)
    }
}

impl Counted<EpsilonGreedy> {
    /// The exploration rate for the next choice.
    pub fn epsilon(&self) -> f64 {
        self.rule.epsilon(&self.counts)
    }
}

impl CountRule for EpsilonGreedy {
    const KIND: StrategyKind = StrategyKind::EpsilonGreedy;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        if rng.random::<f64>() < self.epsilon(counts) {
            return uniform_allowed(ctx, counts.len(), rng);
        }
        argmax_allowed(ctx, counts.len(), rng, |a| {
            counts[a].empirical_mean().unwrap_or(f64::INFINITY)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{ArmPosterior, PosteriorSnapshot, SelectContext, Strategy};
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
