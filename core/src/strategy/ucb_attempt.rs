//! V3: UCB with an attempt-aware exploration constant.
//!
//! From the flaky-load-balancer design (V3, "UCB modified"): the first attempts of a request are
//! free (the penalty-free budget, 3 by default), so UCB may explore harder there. The index is
//! UCB1's `mean + c * sqrt(ln t / n)` (see [`ucb1`](super::ucb1)) with `c` =
//! [`DEFAULT_C_FREE`] = 3 on attempts `1..=penalty_free` and [`DEFAULT_C_PENALISED`] = 1 after.
//!
//! Parameters: the penalty-free budget (default [`crate::retry::DEFAULT_MAX_ATTEMPTS`] = 3) and
//! the two constants. Snapshot: the counts (see [`ArmCounts`]).

use super::counts::{CountRule, Counted, Pick};
use super::ucb1::ucb_index;
use super::{ArmId, StrategyKind, argmax_allowed};
use crate::retry::DEFAULT_MAX_ATTEMPTS;

/// Exploration constant during the penalty-free attempts.
pub const DEFAULT_C_FREE: f64 = 3.0;
/// Exploration constant once attempts cost something.
pub const DEFAULT_C_PENALISED: f64 = 1.0;

/// UCB's rule, exploring harder while attempts are free.
#[derive(Debug, Clone)]
pub struct UcbAttempt {
    penalty_free: u32,
    c_free: f64,
    c_penalised: f64,
}

impl UcbAttempt {
    /// Attempt-aware UCB over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<UcbAttempt> {
        let rule = UcbAttempt {
            penalty_free: DEFAULT_MAX_ATTEMPTS,
            c_free: DEFAULT_C_FREE,
            c_penalised: DEFAULT_C_PENALISED,
        };
        Counted::new(arms, rule)
    }

    /// The exploration constant used for a 1-based attempt number.
    pub fn exploration_for(&self, attempt: u32) -> f64 {
        if attempt <= self.penalty_free { self.c_free } else { self.c_penalised }
    }
}

impl Counted<UcbAttempt> {
    /// Overrides the number of penalty-free attempts.
    pub fn penalty_free(mut self, attempts: u32) -> Self {
        self.rule.penalty_free = attempts;
        self
    }

    /// The exploration constant used for a 1-based attempt number.
    pub fn exploration_for(&self, attempt: u32) -> f64 {
        self.rule.exploration_for(attempt)
    }
}

impl CountRule for UcbAttempt {
    const KIND: StrategyKind = StrategyKind::UcbAttempt;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let ln_t = counts.ln_total();
        let c = self.exploration_for(ctx.attempt);
        argmax_allowed(ctx, counts.len(), rng, |a| ucb_index(&counts[a], ln_t, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{ArmPosterior, PosteriorSnapshot, SelectContext, Strategy};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn explores_harder_while_attempts_are_free() {
        let s = UcbAttempt::new(2);
        assert_eq!(s.exploration_for(1), DEFAULT_C_FREE);
        assert_eq!(s.exploration_for(3), DEFAULT_C_FREE);
        assert_eq!(s.exploration_for(4), DEFAULT_C_PENALISED);
        assert_eq!(UcbAttempt::new(2).penalty_free(1).exploration_for(2), DEFAULT_C_PENALISED);
    }

    #[test]
    fn a_free_attempt_picks_the_uncertain_arm_a_penalised_one_the_sure_one() {
        let mut s = UcbAttempt::new(2);
        let arms = vec![
            ArmPosterior { successes: 900.0, failures: 100.0 }, // 0.90, well known
            ArmPosterior { successes: 20.0, failures: 20.0 },   // 0.50, barely known
        ];
        s.restore(&PosteriorSnapshot::of(&arms, 0)).unwrap();
        let mut rng = SmallRng::seed_from_u64(0);
        let at = |attempt| SelectContext::new(&[], attempt, 0);
        // ln(1040) = 6.95. Free (c = 3): 0.90 + 0.25 vs 0.50 + 1.25. Penalised (c = 1):
        // 0.90 + 0.08 vs 0.50 + 0.42.
        assert_eq!(s.select(&at(1), &mut rng), Some(1));
        assert_eq!(s.select(&at(3), &mut rng), Some(1));
        assert_eq!(s.select(&at(4), &mut rng), Some(0));
    }
}
