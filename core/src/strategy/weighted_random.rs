//! Weighted random: pick a downstream with probability proportional to its fleet weight.
//!
//! A baseline that needs no learning, as in pingora's `selection/weighted.rs` and Envoy's
//! weighted random policy: the weight of each downstream comes from the fleet configuration
//! (`weight`, default 1). Vetoed downstreams are left out and the rest renormalised.
//!
//! Parameters: the weights, through [`StrategyParams::weights`](super::StrategyParams). A list of
//! the wrong length is ignored (equal weights); a weight that is not finite or is negative counts
//! as 0. When every allowed downstream weighs 0 the choice is uniform among them.

use rand::{Rng, RngCore};

use super::{ArmId, Feedback, SelectContext, Strategy, StrategyKind, uniform_allowed};

/// Random in proportion to fixed weights.
#[derive(Debug, Clone)]
pub struct WeightedRandom {
    weights: Vec<f64>,
}

impl WeightedRandom {
    /// `weights[i]` is arm `i`'s weight; see the module docs for sanitizing.
    pub fn new(arms: usize, weights: &[f64]) -> Self {
        let weights = if weights.len() == arms {
            weights.iter().map(|w| if w.is_finite() && *w > 0.0 { *w } else { 0.0 }).collect()
        } else {
            vec![1.0; arms]
        };
        WeightedRandom { weights }
    }

    /// The sanitized weights in use.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
}

impl Strategy for WeightedRandom {
    fn kind(&self) -> StrategyKind {
        StrategyKind::WeightedRandom
    }

    fn arms(&self) -> usize {
        self.weights.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        let allowed = |a: &usize| !ctx.is_excluded(*a);
        let total: f64 = (0..self.arms()).filter(allowed).map(|a| self.weights[a]).sum();
        if !(total > 0.0 && total.is_finite()) {
            return uniform_allowed(ctx, self.arms(), rng);
        }
        let mut point = rng.random::<f64>() * total;
        let mut last = None;
        for arm in (0..self.arms()).filter(allowed) {
            if self.weights[arm] > 0.0 {
                last = Some(arm);
                point -= self.weights[arm];
                if point < 0.0 {
                    return Some(arm);
                }
            }
        }
        // Rounding left `point` a hair above zero: the last weighted arm takes it.
        last
    }

    fn update(&mut self, _arm: ArmId, _feedback: &Feedback) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn shares_follow_weights_within_a_band() {
        // 40,000 draws: a share p has standard deviation sqrt(p(1-p)/40000) <= 0.25 points,
        // so ±1.5 points is 6 sigma.
        let mut rng = SmallRng::seed_from_u64(8);
        let mut s = WeightedRandom::new(3, &[1.0, 2.0, 5.0]);
        let mut counts = [0u32; 3];
        for t in 0..40_000 {
            counts[s.select(&SelectContext::first(t), &mut rng).unwrap()] += 1;
        }
        for (c, want) in counts.iter().zip([1.0 / 8.0, 2.0 / 8.0, 5.0 / 8.0]) {
            let share = f64::from(*c) / 40_000.0;
            assert!((share - want).abs() < 0.015, "{counts:?}");
        }
    }

    #[test]
    fn excluded_weight_is_renormalised_and_zero_weights_fall_back() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut s = WeightedRandom::new(3, &[0.0, f64::NAN, 4.0]);
        assert_eq!(s.weights(), [0.0, 0.0, 4.0]);
        for t in 0..100 {
            assert_eq!(s.select(&SelectContext::first(t), &mut rng), Some(2));
        }
        let ctx = SelectContext::new(&[2], 2, 0);
        let picks: Vec<_> = (0..100).map(|_| s.select(&ctx, &mut rng).unwrap()).collect();
        assert!(picks.contains(&0) && picks.contains(&1));
        assert_eq!(WeightedRandom::new(2, &[1.0]).weights(), [1.0, 1.0]);
    }
}
