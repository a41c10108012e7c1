//! KL-UCB: the upper confidence bound from the Bernoulli Kullback–Leibler divergence.
//!
//! Garivier and Cappé, "The KL-UCB algorithm for bounded stochastic bandits and beyond" (COLT
//! 2011). An arm's index is the largest `q >= p̂` with `n * kl(p̂, q) <= ln t + c ln ln t`, where
//! `kl(p, q) = p ln(p/q) + (1-p) ln((1-p)/(1-q))`. For Bernoulli rewards this matches the
//! Lai–Robbins lower bound: near-certain arms (rates close to 0 or 1, common in a fleet) get far
//! tighter bounds than UCB1's. Untried arms have index `+inf`.
//!
//! Parameter: `c` = [`DEFAULT_C`] = 0, the value the paper recommends in practice (its proof
//! needs `c = 3`). The index is found by Newton's method from Pinsker's upper bound
//! `p̂ + sqrt(rhs / 2n)`, which converges monotonically because `kl(p̂, ·)` is convex and
//! increasing on `[p̂, 1)`; arms whose Pinsker bound cannot beat the best index so far are
//! skipped, so a select costs a few logarithms per competitive arm only.
//!
//! Snapshot: the counts (see [`ArmCounts`]).

use super::counts::{CountRule, Counted, Pick};
use super::{ArmId, StrategyKind};

/// Weight of the `ln ln t` term.
pub const DEFAULT_C: f64 = 0.0;
/// Precision of the index.
pub const PRECISION: f64 = 1e-7;

/// Bernoulli KL divergence `kl(p, q)`, with `0 ln 0 = 0`.
pub fn kl_bernoulli(p: f64, q: f64) -> f64 {
    let eps = 1e-15;
    let q = q.clamp(eps, 1.0 - eps);
    let term = |x: f64, y: f64| if x <= 0.0 { 0.0 } else { x * (x / y).ln() };
    term(p, q) + term(1.0 - p, 1.0 - q)
}

/// The largest `q` in `[p, 1]` with `n * kl(p, q) <= rhs`.
pub fn kl_index(p: f64, n: f64, rhs: f64) -> f64 {
    if rhs <= 0.0 || n <= 0.0 {
        return p;
    }
    let bound = rhs / n;
    let top = 1.0 - 1e-12;
    let mut q = (p + (bound / 2.0).sqrt()).min(top);
    if kl_bernoulli(p, q) <= bound {
        return q.max(p);
    }
    // From the right of the root Newton's steps stay right of it (kl(p, ·) is convex and
    // increasing there), so it stops on the constraint's slack, not on the step: started near 1
    // the steps are tiny at first although the root may be far below (the slope is huge there).
    for _ in 0..100 {
        let f = kl_bernoulli(p, q) - bound;
        if f <= 1e-10 * (1.0 + bound) {
            return q.max(p);
        }
        let slope = (q - p) / (q * (1.0 - q));
        if slope <= 0.0 {
            break;
        }
        let next = (q - f / slope).max(p);
        if next >= q {
            break;
        }
        q = next;
    }
    q
}

/// KL-UCB's rule: the highest KL index.
#[derive(Debug, Clone)]
pub struct KlUcb {
    c: f64,
}

impl KlUcb {
    /// KL-UCB over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<KlUcb> {
        Counted::new(arms, KlUcb { c: DEFAULT_C })
    }
}

impl Counted<KlUcb> {
    /// Overrides the `ln ln t` weight.
    pub fn exploration(mut self, c: f64) -> Self {
        self.rule.c = c;
        self
    }
}

impl CountRule for KlUcb {
    const KIND: StrategyKind = StrategyKind::KlUcb;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let t = counts.total().max(1.0);
        let ln_t = t.ln();
        let rhs = ln_t + if ln_t > 1.0 { self.c * ln_t.ln() } else { 0.0 };
        let mut best: Option<(ArmId, f64)> = None;
        let mut ties = 1u64;
        for arm in 0..counts.len() {
            if ctx.is_excluded(arm) {
                continue;
            }
            let c = &counts[arm];
            let index = match c.empirical_mean() {
                None => f64::INFINITY,
                Some(p) => {
                    let n = c.pulls();
                    let pinsker = p + (rhs.max(0.0) / (2.0 * n)).sqrt();
                    if best.is_some_and(|(_, b)| pinsker < b) {
                        continue;
                    }
                    kl_index(p, n, rhs)
                }
            };
            match best {
                Some((_, b)) if index < b => {}
                Some((_, b)) if index == b => {
                    ties += 1;
                    if rng.next_u64() % ties == 0 {
                        best = Some((arm, index));
                    }
                }
                _ => {
                    best = Some((arm, index));
                    ties = 1;
                }
            }
        }
        best.map(|(arm, _)| arm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_is_zero_on_the_diagonal_and_grows_away_from_it() {
        assert_eq!(kl_bernoulli(0.3, 0.3), 0.0);
        assert!(kl_bernoulli(0.3, 0.5) > kl_bernoulli(0.3, 0.4));
        assert!(kl_bernoulli(0.0, 0.5).is_finite() && kl_bernoulli(1.0, 0.5).is_finite());
    }

    #[test]
    fn index_solves_the_kl_constraint() {
        // (0.9, 50, 3): Pinsker's start is above 1, where the first Newton steps are tiny.
        for (p, n, rhs) in [
            (0.5, 10.0, 2.0),
            (0.9, 1000.0, 7.0),
            (0.0, 5.0, 3.0),
            (1.0, 3.0, 1.0),
            (0.9, 50.0, 3.0),
        ] {
            let q = kl_index(p, n, rhs);
            assert!(q >= p && q <= 1.0, "{p} {n} {rhs}: {q}");
            if q < 1.0 - 1e-9 {
                let gap = (n * kl_bernoulli(p, q) - rhs).abs();
                assert!(gap < 1e-4, "{p} {n} {rhs}: q={q}, gap {gap}");
            }
        }
    }

    #[test]
    fn near_certain_arms_get_tight_bounds() {
        // Same pulls, same ln t: UCB1 gives both the same bonus, KL-UCB a much smaller one to
        // the arm near 1.
        let (n, rhs) = (100.0, 9.0);
        let high = kl_index(0.98, n, rhs) - 0.98;
        let mid = kl_index(0.5, n, rhs) - 0.5;
        assert!(high < mid / 3.0, "{high} vs {mid}");
    }
}
