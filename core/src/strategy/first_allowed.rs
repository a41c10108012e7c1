//! Test only: the lowest-numbered allowed downstream, always.
//!
//! The smallest strategy there is, compiled into the unit tests only. It is added to the
//! registry the way any strategy is, by this file and one row of `strategy_registry!` in
//! `mod.rs`, which shows that nothing else needs an edit.

use rand::RngCore;

use super::{ArmId, Feedback, SelectContext, Strategy, StrategyKind};

/// Always the first arm that is not excluded.
#[derive(Debug, Clone)]
pub struct FirstAllowed {
    arms: usize,
}

impl FirstAllowed {
    pub fn new(arms: usize) -> Self {
        FirstAllowed { arms }
    }
}

impl Strategy for FirstAllowed {
    fn kind(&self) -> StrategyKind {
        StrategyKind::FirstAllowed
    }

    fn arms(&self) -> usize {
        self.arms
    }

    fn select(&mut self, ctx: &SelectContext<'_>, _rng: &mut dyn RngCore) -> Option<ArmId> {
        (0..self.arms).find(|a| !ctx.is_excluded(*a))
    }

    fn update(&mut self, _arm: ArmId, _feedback: &Feedback) {}
}
