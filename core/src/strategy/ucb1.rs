//! V2: UCB1, the upper confidence bound of Auer, Cesa-Bianchi and Fischer ("Finite-time analysis
//! of the multiarmed bandit problem", Machine Learning 47, 2002).
//!
//! Each downstream's index is its empirical success rate plus an exploration bonus,
//! `mean + c * sqrt(ln t / n)`, with `t` the total observations and `n` the arm's; an arm never
//! tried has an infinite index, so every arm is tried once first. The downstream with the highest
//! index is chosen, ties at random. Logarithmic regret, but the bonus is the same for every mean,
//! so it explores near-certain arms as much as uncertain ones (UCB1-Tuned and KL-UCB fix that).
//!
//! Parameter: `c` = [`DEFAULT_C`] = `sqrt(2)` (the paper's `sqrt(2 ln t / n)`, and the
//! flaky-load-balancer design's V2 default).
//!
//! Snapshot: the counts (see [`ArmCounts`]).

use super::counts::{CountRule, Counted, Pick};
use super::{ArmId, ArmPosterior, StrategyKind, argmax_allowed};

/// UCB1's exploration constant.
pub const DEFAULT_C: f64 = std::f64::consts::SQRT_2;

/// `mean + c * sqrt(ln_t / n)`, infinite for an untried arm.
pub fn ucb_index(counts: &ArmPosterior, ln_t: f64, c: f64) -> f64 {
    match counts.empirical_mean() {
        Some(mean) => mean + c * (ln_t.max(0.0) / counts.pulls()).sqrt(),
        None => f64::INFINITY,
    }
}

/// UCB1's rule: the highest index.
#[derive(Debug, Clone)]
pub struct Ucb1 {
    c: f64,
}

impl Ucb1 {
    /// UCB1 over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<Ucb1> {
        Counted::new(arms, Ucb1 { c: DEFAULT_C })
    }
}

impl Counted<Ucb1> {
    /// Overrides the exploration constant.
    pub fn exploration(mut self, c: f64) -> Self {
        self.rule.c = c;
        self
    }
}

impl CountRule for Ucb1 {
    const KIND: StrategyKind = StrategyKind::Ucb1;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let ln_t = counts.ln_total();
        argmax_allowed(ctx, counts.len(), rng, |a| ucb_index(&counts[a], ln_t, self.c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::strategy::{Feedback, SelectContext, Strategy};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn tries_every_arm_then_prefers_the_best() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = Ucb1::new(3);
        let mut seen = [false; 3];
        for t in 0..3 {
            let arm = s.select(&SelectContext::first(t), &mut rng).unwrap();
            seen[arm] = true;
            s.update(arm, &Feedback::at(Outcome::ServerError, t));
        }
        assert_eq!(seen, [true; 3]);
        // Arm 1 now succeeds every time, the others never: it takes most of the traffic.
        let mut picks = [0u32; 3];
        for t in 3..500 {
            let arm = s.select(&SelectContext::first(t), &mut rng).unwrap();
            picks[arm] += 1;
            let ok = arm == 1;
            s.update(arm, &Feedback::at(if ok { Outcome::Success } else { Outcome::Timeout }, t));
        }
        assert!(picks[1] > 450, "{picks:?}");
    }

    #[test]
    fn index_grows_with_uncertainty() {
        let few = ArmPosterior { successes: 5.0, failures: 5.0 };
        let many = ArmPosterior { successes: 500.0, failures: 500.0 };
        let ln_t = 1000f64.ln();
        assert!(ucb_index(&few, ln_t, DEFAULT_C) > ucb_index(&many, ln_t, DEFAULT_C));
        assert_eq!(ucb_index(&ArmPosterior::default(), ln_t, DEFAULT_C), f64::INFINITY);
    }
}
