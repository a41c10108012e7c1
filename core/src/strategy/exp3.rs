//! EXP3: exponential weights for exploration and exploitation.
//!
//! Auer, Cesa-Bianchi, Freund and Schapire, "The nonstochastic multiarmed bandit problem" (SIAM
//! J. Computing 32(1), 2002). Each arm has a weight `w_i`; an attempt goes to arm `i` with
//! probability `p_i = (1 - γ) w_i / Σ w + γ / K`, and a reward `x` on the chosen arm multiplies
//! its weight by `exp(γ x / (p_i K))` (the importance-weighted estimate keeps the update unbiased).
//! It assumes nothing about how rewards are generated, so it also holds against a fleet that
//! changes adversarially, at the price of never exploring less than `γ`. Here `K` and the sums run
//! over the allowed arms of each choice; the probability used in an update is the one the arm had
//! when it was last chosen. Weights are kept as logarithms, so they never overflow.
//!
//! Parameter: `γ` = [`DEFAULT_GAMMA`] = 0.05 (about the paper's `sqrt(K ln K / ((e - 1) T))` for a
//! few downstreams and tens of thousands of requests).
//!
//! Snapshot: the success and failure counts, kept alongside the weights. Restoring sets the
//! counts and rebuilds the weights from them as the expected log-weights, `γ / K * t * mean_i`
//! (mean 1/2 for an arm never tried): an approximation, since weights carry more history than
//! counts.

use rand::{Rng, RngCore};

use super::{
    ArmId, ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, SnapshotError, Strategy,
    StrategyKind, restore_counts,
};

/// Exploration share.
pub const DEFAULT_GAMMA: f64 = 0.05;

/// EXP3.
#[derive(Debug, Clone)]
pub struct Exp3 {
    log_weights: Vec<f64>,
    last_prob: Vec<f64>,
    counts: Vec<ArmPosterior>,
    gamma: f64,
}

impl Exp3 {
    pub fn new(arms: usize) -> Self {
        let uniform = 1.0 / arms.max(1) as f64;
        Exp3 {
            log_weights: vec![0.0; arms],
            last_prob: vec![uniform; arms],
            counts: vec![ArmPosterior::default(); arms],
            gamma: DEFAULT_GAMMA,
        }
    }

    /// Overrides `γ` (clamped into `(0, 1]`).
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.gamma = if gamma > 0.0 { gamma.min(1.0) } else { DEFAULT_GAMMA };
        self
    }

    /// The choice probabilities over the allowed arms of `ctx` (0 for excluded ones).
    pub fn probabilities(&self, ctx: &SelectContext<'_>) -> Vec<f64> {
        let arms = self.log_weights.len();
        let allowed = |a: &usize| !ctx.is_excluded(*a);
        let k = (0..arms).filter(allowed).count();
        let mut p = vec![0.0; arms];
        if k == 0 {
            return p;
        }
        let max = (0..arms).filter(allowed).map(|a| self.log_weights[a]).fold(f64::MIN, f64::max);
        let total: f64 = (0..arms).filter(allowed).map(|a| (self.log_weights[a] - max).exp()).sum();
        for a in (0..arms).filter(allowed) {
            let w = (self.log_weights[a] - max).exp() / total;
            p[a] = (1.0 - self.gamma) * w + self.gamma / k as f64;
        }
        p
    }
}

impl Strategy for Exp3 {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Exp3
    }

    fn arms(&self) -> usize {
        self.log_weights.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        let p = self.probabilities(ctx);
        let mut point = rng.random::<f64>();
        let mut last = None;
        for (arm, &pa) in p.iter().enumerate() {
            if pa > 0.0 {
                last = Some(arm);
                point -= pa;
                if point < 0.0 {
                    break;
                }
            }
        }
        let arm = last?;
        self.last_prob[arm] = p[arm];
        Some(arm)
    }

    fn update(&mut self, arm: ArmId, feedback: &Feedback) {
        let Some(c) = self.counts.get_mut(arm) else { return };
        let success = feedback.outcome.is_success();
        c.observe(success);
        if success {
            let k = self.log_weights.len() as f64;
            let p = self.last_prob[arm].max(1e-12);
            self.log_weights[arm] += self.gamma / (p * k);
            // Only differences matter: keep the largest log-weight at 0.
            let max = self.log_weights.iter().copied().fold(f64::MIN, f64::max);
            for w in &mut self.log_weights {
                *w -= max;
            }
        }
    }

    fn snapshot(&self, now_ms: u64) -> PosteriorSnapshot {
        PosteriorSnapshot::of(&self.counts, now_ms)
    }

    fn restore(&mut self, snapshot: &PosteriorSnapshot) -> Result<(), SnapshotError> {
        restore_counts(&mut self.counts, snapshot)?;
        let k = self.counts.len().max(1) as f64;
        let t: f64 = self.counts.iter().map(ArmPosterior::pulls).sum();
        for (w, c) in self.log_weights.iter_mut().zip(&self.counts) {
            *w = self.gamma / k * t * c.empirical_mean().unwrap_or(0.5);
        }
        let max = self.log_weights.iter().copied().fold(f64::MIN, f64::max);
        for w in &mut self.log_weights {
            *w -= max;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn probabilities_are_a_distribution_with_a_gamma_floor() {
        let mut s = Exp3::new(4);
        s.log_weights = vec![0.0, -50.0, -1.0, 3.0];
        let ctx = SelectContext { excluded: &[2], attempt: 2, now_ms: 0 };
        let p = s.probabilities(&ctx);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(p[2], 0.0);
        assert!(p[1] >= DEFAULT_GAMMA / 3.0 - 1e-12);
    }

    #[test]
    fn learns_to_prefer_the_rewarding_arm() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut s = Exp3::new(3).gamma(0.1);
        let mut late = [0u32; 3];
        for t in 0..5_000 {
            let arm = s.select(&SelectContext::first(t), &mut rng).unwrap();
            let ok = arm == 2 || rng.random::<f64>() < 0.3;
            let outcome = if ok { Outcome::Success } else { Outcome::ServerError };
            s.update(arm, &Feedback::at(outcome, t));
            if t >= 4_000 {
                late[arm] += 1;
            }
        }
        // γ = 0.1 keeps about 3.3% on each other arm; the rewarding one takes most of the rest.
        assert!(late[2] > 800, "{late:?}");
    }
}
