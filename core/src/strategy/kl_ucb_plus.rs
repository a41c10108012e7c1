//! KL-UCB+: KL-UCB with the exploration rate `ln(t / N)` of each arm instead of `ln t`.
//!
//! The variant appears in the experiments of Garivier and Cappé, "The KL-UCB algorithm for
//! bounded stochastic bandits and beyond" (COLT 2011), and is analysed by Kaufmann, "On Bayesian
//! index policies for sequential resource allocation" (Annals of Statistics 46(2), 2018), who
//! proves it asymptotically optimal for Bernoulli rewards. An arm pulled `N` times out of `t`
//! with empirical rate `p̂` has index the largest `q >= p̂` with `N * kl(p̂, q) <= ln(t / N)`
//! (`kl` the Bernoulli divergence, [`kl_bernoulli`](super::kl_ucb::kl_bernoulli)). Dividing by
//! `N` shrinks the bonus of arms already pulled often (as MOSS does for UCB1): the bonus of an
//! arm holding most of the pulls vanishes as `N` approaches `t`, so KL-UCB+ exploits harder than
//! [`kl_ucb`](super::kl_ucb) and explores rarely tried arms as much. Untried arms have index
//! `+inf`; an arm with `N >= t` gets no bonus.
//!
//! No parameters. The index is solved by [`kl_index`](super::kl_ucb::kl_index), shared with
//! KL-UCB, and arms whose Pinsker bound `p̂ + sqrt(ln(t/N) / 2N)` cannot beat the best index so
//! far are skipped.
//!
//! Snapshot: the counts, exactly (see [`ArmCounts`](super::counts::ArmCounts)).

use super::counts::{CountRule, Counted, Pick};
use super::kl_ucb::kl_index;
use super::{ArmId, ArmPosterior, StrategyKind, argmax_allowed};

/// The KL-UCB+ index of an arm after `t` observations over the fleet; `+inf` when untried.
pub fn kl_ucb_plus_index(c: &ArmPosterior, t: f64) -> f64 {
    let Some(p) = c.empirical_mean() else { return f64::INFINITY };
    let n = c.pulls();
    let rhs = (t / n).ln().max(0.0);
    kl_index(p, n, rhs)
}

/// KL-UCB+'s rule: the highest KL-UCB+ index.
#[derive(Debug, Clone)]
pub struct KlUcbPlus;

impl KlUcbPlus {
    /// KL-UCB+ over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<KlUcbPlus> {
        Counted::new(arms, KlUcbPlus)
    }
}

impl CountRule for KlUcbPlus {
    const KIND: StrategyKind = StrategyKind::KlUcbPlus;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let t = counts.total().max(1.0);
        // Pinsker's bound is an upper bound of the index: an arm whose bound is below the best
        // index seen so far cannot win and costs no Newton iterations. Ties stay uniform: the
        // pruned arms are strictly below the best.
        let mut best = f64::NEG_INFINITY;
        argmax_allowed(ctx, counts.len(), rng, |a| {
            let c = &counts[a];
            let index = match c.empirical_mean() {
                None => f64::INFINITY,
                Some(p) => {
                    let n = c.pulls();
                    let pinsker = p + ((t / n).ln().max(0.0) / (2.0 * n)).sqrt();
                    if pinsker < best { f64::NEG_INFINITY } else { kl_ucb_plus_index(c, t) }
                }
            };
            best = best.max(index);
            index
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::kl_ucb::kl_bernoulli;

    #[test]
    fn the_index_solves_the_kl_constraint_with_ln_t_over_n() {
        let c = ArmPosterior { successes: 45.0, failures: 5.0 };
        let t = 1_000.0;
        let q = kl_ucb_plus_index(&c, t);
        let gap = (50.0 * kl_bernoulli(0.9, q) - (t / 50.0f64).ln()).abs();
        assert!(q > 0.9 && q < 1.0 && gap < 1e-4, "q={q}, gap {gap}");
        assert_eq!(kl_ucb_plus_index(&ArmPosterior::default(), t), f64::INFINITY);
    }

    #[test]
    fn an_arm_with_every_pull_gets_no_bonus_and_kl_ucb_gives_more() {
        let c = ArmPosterior { successes: 90.0, failures: 10.0 };
        assert_eq!(kl_ucb_plus_index(&c, 100.0), 0.9);
        let plus = kl_ucb_plus_index(&c, 400.0);
        let kl_ucb = kl_index(0.9, 100.0, 400f64.ln());
        assert!(plus > 0.9 && plus < kl_ucb, "{plus} vs {kl_ucb}");
    }
}
