//! The mechanism shared by the linear contextual strategies ([`lin_ucb`](super::lin_ucb),
//! [`lin_thompson`](super::lin_thompson)): one ridge regression per downstream over the request's
//! feature vector ([`crate::context`], dimension [`DIM`] = 16), apart from their index rules.
//!
//! Each downstream `a` keeps `A_a = λ I + Σ x xᵀ` and `b_a = Σ r x` over the requests it served
//! (`x` the request's features, `r` = 1 for a success and 0 otherwise), so that
//! `θ_a = A_a⁻¹ b_a` is the ridge estimate of its success as a linear function of the features.
//! For a request `x` a [`LinearRule`] turns the estimate `xᵀθ_a` and its variance `xᵀ A_a⁻¹ x` into
//! a score, and the allowed downstream with the highest score is chosen (exact ties at random).
//!
//! `A⁻¹` is kept instead of `A`, updated by Sherman and Morrison's rank-one formula
//! `A⁻¹ ← A⁻¹ - (A⁻¹x)(A⁻¹x)ᵀ / (1 + xᵀA⁻¹x)`: `O(d²)` per outcome and per estimate, no
//! factorisation. It is written by hand rather than with a linear algebra crate because it needs
//! only that update and a matrix-vector product, and a crate (nalgebra, with its generic
//! dimensions) would add to the router's wasm, which every request pays to load; the features
//! are 0/1 and sparse (at most 7 of 16 set), so the product skips the zero columns.
//!
//! Memory: a 16 × 16 matrix and a vector per downstream, 2,176 bytes (about 2 KiB per
//! downstream per route). No forgetting: a downstream whose behaviour changes is relearned as
//! slowly as a stationary one is learned.
//!
//! A request the caller says nothing about ([`SelectContext::request`] `None`, or
//! [`Strategy::update`] without a context) reads as the bias feature alone.
//!
//! Snapshot: the success and failure counts per downstream, kept alongside the models.
//! **Lossy**: the counts say nothing of the features, so a restore rebuilds each model as the
//! counts with no context would have made it (`n` observations of the bias feature alone, `s` of
//! them successes): a restored instance knows each downstream's overall rate and relearns which
//! requests it serves.

use rand::RngCore;
use rand::rngs::SmallRng;

use super::counts::ArmCounts;
use super::{
    ArmId, ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, SnapshotError, Strategy,
    StrategyKind, argmax_allowed, beta,
};
use crate::context::{DIM, Features, RequestContext, features_of};

/// Ridge penalty `λ` (`A = λ I` before any observation).
pub const DEFAULT_LAMBDA: f64 = 1.0;

/// One downstream's ridge regression: `A⁻¹` and `b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ridge {
    a_inv: [[f64; DIM]; DIM],
    b: [f64; DIM],
}

impl Ridge {
    /// No observation: `A = λ I`, `b = 0`.
    pub fn new(lambda: f64) -> Ridge {
        let mut a_inv = [[0.0; DIM]; DIM];
        for (i, row) in a_inv.iter_mut().enumerate() {
            row[i] = 1.0 / lambda;
        }
        Ridge { a_inv, b: [0.0; DIM] }
    }

    /// The model `counts` make with no context: `n` observations of the bias feature alone, `s`
    /// of them successes.
    pub fn from_counts(lambda: f64, counts: &ArmPosterior) -> Ridge {
        let mut r = Ridge::new(lambda);
        r.a_inv[0][0] = 1.0 / (lambda + counts.pulls());
        r.b[0] = counts.successes;
        r
    }

    /// `A⁻¹ x`, over the non-zero entries of `x` (`A⁻¹` is symmetric: a sum of its rows).
    fn times(&self, x: &Features) -> [f64; DIM] {
        let mut v = [0.0; DIM];
        for (j, xj) in x.iter().enumerate() {
            if *xj != 0.0 {
                for (vi, aij) in v.iter_mut().zip(&self.a_inv[j]) {
                    *vi += aij * xj;
                }
            }
        }
        v
    }

    /// The estimate `xᵀθ` and its variance factor `xᵀA⁻¹x` for a request `x`.
    pub fn estimate(&self, x: &Features) -> (f64, f64) {
        let v = self.times(x);
        let mean = v.iter().zip(&self.b).map(|(v, b)| v * b).sum();
        let variance = v.iter().zip(x).map(|(v, x)| v * x).sum::<f64>();
        (mean, variance.max(0.0))
    }

    /// Adds the observation of reward `r` for a request `x` (Sherman–Morrison).
    pub fn observe(&mut self, x: &Features, r: f64) {
        let v = self.times(x);
        let denominator = 1.0 + v.iter().zip(x).map(|(v, x)| v * x).sum::<f64>();
        if !(denominator.is_finite() && denominator > 0.0) {
            return;
        }
        for (row, vi) in self.a_inv.iter_mut().zip(&v) {
            let scaled = vi / denominator;
            for (aij, vj) in row.iter_mut().zip(&v) {
                *aij -= scaled * vj;
            }
        }
        for (bi, xi) in self.b.iter_mut().zip(x) {
            *bi += r * xi;
        }
    }
}

/// The index rule of a linear contextual strategy.
pub trait LinearRule: Send {
    /// The strategy this rule is.
    const KIND: StrategyKind;

    /// The score of a downstream whose estimate for the request is `mean` with variance factor
    /// `variance`; `rng` is a generator for this selection's draws.
    fn score(&self, mean: f64, variance: f64, rng: &mut SmallRng) -> f64;
}

/// A linear contextual strategy: a ridge regression per downstream, the counts (for the
/// snapshot) and an index rule.
#[derive(Debug, Clone)]
pub struct Linear<R> {
    counts: ArmCounts,
    models: Vec<Ridge>,
    lambda: f64,
    pub(super) rule: R,
}

impl<R: LinearRule> Linear<R> {
    /// `rule` over `arms` downstreams, none observed, with ridge penalty [`DEFAULT_LAMBDA`].
    pub fn new(arms: usize, rule: R) -> Self {
        Linear {
            counts: ArmCounts::new(arms),
            models: vec![Ridge::new(DEFAULT_LAMBDA); arms],
            lambda: DEFAULT_LAMBDA,
            rule,
        }
    }

    /// The ridge regression of `arm`.
    pub fn model(&self, arm: ArmId) -> Option<&Ridge> {
        self.models.get(arm)
    }

    /// The rule.
    pub fn rule(&self) -> &R {
        &self.rule
    }
}

impl<R: LinearRule> Strategy for Linear<R> {
    fn kind(&self) -> StrategyKind {
        R::KIND
    }

    fn arms(&self) -> usize {
        self.models.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        let x = features_of(ctx.request);
        let mut draws = beta::local_rng(rng);
        argmax_allowed(ctx, self.models.len(), rng, |arm| {
            let (mean, variance) = self.models[arm].estimate(x);
            self.rule.score(mean, variance, &mut draws)
        })
    }

    fn update(&mut self, arm: ArmId, feedback: &Feedback) {
        self.update_in_context(arm, feedback, None);
    }

    fn update_in_context(
        &mut self,
        arm: ArmId,
        feedback: &Feedback,
        request: Option<&RequestContext>,
    ) {
        let success = feedback.outcome.is_success();
        if let (Some(model), Some(_)) =
            (self.models.get_mut(arm), self.counts.observe(arm, success))
        {
            model.observe(features_of(request), f64::from(u8::from(success)));
        }
    }

    fn snapshot(&self, now_ms: u64) -> PosteriorSnapshot {
        self.counts.snapshot(now_ms)
    }

    fn restore(&mut self, snapshot: &PosteriorSnapshot) -> Result<(), SnapshotError> {
        self.counts.restore(snapshot)?;
        self.models = self.counts.iter().map(|c| Ridge::from_counts(self.lambda, c)).collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::UNKNOWN;

    fn x(ones: &[usize]) -> Features {
        let mut x = [0.0; DIM];
        for i in ones {
            x[*i] = 1.0;
        }
        x
    }

    /// `A⁻¹` kept by Sherman–Morrison equals the inverse of `A` built directly.
    #[test]
    fn sherman_morrison_keeps_the_inverse() {
        let mut r = Ridge::new(1.0);
        let mut a = [[0.0; DIM]; DIM];
        for (i, row) in a.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        let xs = [x(&[0, 1, 5]), x(&[0, 2, 6, 11]), x(&[0, 5]), x(&[0, 1, 5, 14]), x(&[0, 3])];
        for (k, xv) in xs.iter().cycle().take(40).enumerate() {
            r.observe(xv, f64::from(u8::from(k.is_multiple_of(3))));
            for (row, xi) in a.iter_mut().zip(xv) {
                for (aij, xj) in row.iter_mut().zip(xv) {
                    *aij += xi * xj;
                }
            }
        }
        for (i, row) in a.iter().enumerate() {
            for j in 0..DIM {
                let product: f64 = row.iter().zip(&r.a_inv).map(|(aik, inv)| aik * inv[j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((product - want).abs() < 1e-9, "({i},{j}): {product}");
            }
        }
    }

    #[test]
    fn the_estimate_learns_a_rate_per_feature() {
        // Requests of class 5 always succeed, of class 6 never: the estimates part, and the
        // variance shrinks like 1 / n.
        let mut r = Ridge::new(1.0);
        for _ in 0..200 {
            r.observe(&x(&[0, 5]), 1.0);
            r.observe(&x(&[0, 6]), 0.0);
        }
        let (yes, v_yes) = r.estimate(&x(&[0, 5]));
        let (no, _) = r.estimate(&x(&[0, 6]));
        assert!(yes > 0.97 && no < 0.03, "{yes} {no}");
        assert!(v_yes < 0.01, "{v_yes}");
        let (_, v_new) = r.estimate(&x(&[0, 7]));
        assert!(v_new > 0.5, "an unseen class stays uncertain: {v_new}");
    }

    #[test]
    fn a_model_from_counts_is_the_bias_alone() {
        let r = Ridge::from_counts(1.0, &ArmPosterior { successes: 30.0, failures: 9.0 });
        let (mean, variance) = r.estimate(&UNKNOWN);
        assert!((mean - 30.0 / 40.0).abs() < 1e-12 && (variance - 1.0 / 40.0).abs() < 1e-12);
        let mut direct = Ridge::new(1.0);
        for k in 0..39 {
            direct.observe(&UNKNOWN, f64::from(u8::from(k < 30)));
        }
        let (m2, v2) = direct.estimate(&UNKNOWN);
        assert!((mean - m2).abs() < 1e-9 && (variance - v2).abs() < 1e-9);
    }
}
