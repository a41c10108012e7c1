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
//! Snapshot: the counts (see [`ArmPosterior`]).

use rand::RngCore;

use super::{
    ArmId, ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, SnapshotError, Strategy,
    StrategyKind, argmax_allowed, restore_counts,
};

/// The MOSS index with `t` observations over `k` arms, `+inf` when untried.
pub fn moss_index(c: &ArmPosterior, t: f64, k: f64) -> f64 {
    let Some(mean) = c.empirical_mean() else { return f64::INFINITY };
    let n = c.pulls();
    mean + ((t / (k * n)).ln().max(0.0) / n).sqrt()
}

/// Anytime MOSS.
#[derive(Debug, Clone)]
pub struct Moss {
    counts: Vec<ArmPosterior>,
}

impl Moss {
    pub fn new(arms: usize) -> Self {
        Moss { counts: vec![ArmPosterior::default(); arms] }
    }
}

impl Strategy for Moss {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Moss
    }

    fn arms(&self) -> usize {
        self.counts.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        let t = self.counts.iter().map(ArmPosterior::pulls).sum::<f64>().max(1.0);
        let k = self.counts.len().max(1) as f64;
        let counts = &self.counts;
        argmax_allowed(ctx, counts.len(), rng, |a| moss_index(&counts[a], t, k))
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

    #[test]
    fn arms_beyond_their_share_get_no_bonus() {
        let heavy = ArmPosterior { successes: 600.0, failures: 400.0 };
        assert_eq!(moss_index(&heavy, 1_000.0, 2.0), 0.6);
        let light = ArmPosterior { successes: 6.0, failures: 4.0 };
        assert!(moss_index(&light, 1_000.0, 2.0) > 0.6 + 0.5);
        assert_eq!(moss_index(&ArmPosterior::default(), 10.0, 2.0), f64::INFINITY);
    }
}
