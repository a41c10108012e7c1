//! Round robin: cycle through the downstreams in order, skipping vetoed ones.
//!
//! The baseline the prototype measured (~3.3% success on a 100%/100%/90% fleet with single
//! attempts). No parameters, no learning. Source: the prototype's `round_robin` strategy.

use rand::RngCore;

use super::{ArmId, Feedback, SelectContext, Strategy, StrategyKind};

/// Cycles through `0..arms`.
#[derive(Debug, Clone)]
pub struct RoundRobin {
    arms: usize,
    next: usize,
}

impl RoundRobin {
    pub fn new(arms: usize) -> Self {
        RoundRobin { arms, next: 0 }
    }
}

impl Strategy for RoundRobin {
    fn kind(&self) -> StrategyKind {
        StrategyKind::RoundRobin
    }

    fn arms(&self) -> usize {
        self.arms
    }

    fn select(&mut self, ctx: &SelectContext<'_>, _rng: &mut dyn RngCore) -> Option<ArmId> {
        for offset in 0..self.arms {
            let arm = (self.next + offset) % self.arms;
            if !ctx.is_excluded(arm) {
                self.next = (arm + 1) % self.arms;
                return Some(arm);
            }
        }
        None
    }

    fn update(&mut self, _arm: ArmId, _feedback: &Feedback) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn cycles_in_order_and_skips_excluded() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut rr = RoundRobin::new(3);
        let picks: Vec<_> =
            (0..6).map(|t| rr.select(&SelectContext::first(t), &mut rng).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let ctx = SelectContext::new(&[0], 2, 0);
        assert_eq!(rr.select(&ctx, &mut rng), Some(1));
        assert_eq!(rr.select(&ctx, &mut rng), Some(2));
        assert_eq!(rr.select(&ctx, &mut rng), Some(1));
    }

    #[test]
    fn empty_fleet_selects_nothing() {
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(RoundRobin::new(0).select(&SelectContext::first(0), &mut rng), None);
    }
}
