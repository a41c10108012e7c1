//! MOSS: "minimax optimal strategy in the stochastic case", in its anytime form.
//!
//! Audibert and Bubeck, "Minimax policies for adversarial and stochastic bandits" (COLT 2009):
//! the index is `mean + sqrt(max(0, ln(T / (K n))) / n)` for horizon `T` and `K` arms, which
//! removes UCB1's extra `sqrt(ln T)` from the worst-case regret. A router has no horizon, so `T`
//! is replaced by the number of observations so far, `t` (the anytime variant analysed by Degenne
//! and Perchet, "Anytime optimal algorithms in stochastic multi-armed bandits", ICML 2016). An arm
//! pulled more than `t / K` times gets no bonus at all, so MOSS exploits harder than UCB1 once
//! every arm has its share. Untried arms have index `+inf`. No parameters.
//!
//! Snapshot: the counts (see [`ArmCounts`]).

use super::counts::{CountRule, Counted, Pick};
use super::{ArmId, ArmPosterior, StrategyKind, argmax_allowed};

/// The MOSS index with `t` observations over `k` arms, `+inf` when untried.
pub fn moss_index(c: &ArmPosterior, t: f64, k: f64) -> f64 {
    let Some(mean) = c.empirical_mean() else { return f64::INFINITY };
    let n = c.pulls();
    mean + ((t / (k * n)).ln().max(0.0) / n).sqrt()
}

/// Anytime MOSS's rule: the highest MOSS index.
#[derive(Debug, Clone)]
pub struct Moss;

impl Moss {
    /// Anytime MOSS over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<Moss> {
        Counted::new(arms, Moss)
    }
}

impl CountRule for Moss {
    const KIND: StrategyKind = StrategyKind::Moss;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let t = counts.total().max(1.0);
        let k = counts.len().max(1) as f64;
        argmax_allowed(ctx, counts.len(), rng, |a| moss_index(&counts[a], t, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_beyond_their_share_get_no_bonus() {
        let heavy = ArmPosterior { successes: 600.0, failures: 400.0 };
        assert_eq!(moss_index(&heavy, 1_000.0, 2.0), 0.6);
        let light = ArmPosterior { successes: 6.0, failures: 4.0 };
        assert!(moss_index(&light, 1_000.0, 2.0) > 0.6 + 0.5);
        assert_eq!(moss_index(&ArmPosterior::default(), 10.0, 2.0), f64::INFINITY);
    }
}
