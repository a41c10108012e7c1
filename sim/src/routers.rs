//! The seam between the engine and the routers it simulates: one router ([`Single`], the
//! engine's classic run) or a fleet of isolates ([`crate::fleet`]).
//!
//! The engine asks [`Routers::assign`] which isolate serves a request when it arrives, runs every
//! attempt of the request with that isolate's strategy and RNG ([`Routers::strategy`]), and
//! reports the finished request ([`Routers::finished`]) so that a fleet can post its telemetry
//! to a learner.

use magnetar_core::Outcome;
use magnetar_core::retry::AttemptRecord;
use magnetar_core::strategy::{Strategy, StrategyKind};
use rand::RngCore;
use rand::rngs::SmallRng;

use serde::Serialize;

/// A finished request, as its isolate reports it.
#[derive(Clone, Copy, Debug)]
pub struct Finished<'r> {
    pub isolate: usize,
    pub started_us: u64,
    pub finished_us: u64,
    pub attempts: &'r [AttemptRecord],
    pub final_outcome: Outcome,
}

/// The routers a run drives.
pub trait Routers {
    /// The strategy every isolate runs.
    fn kind(&self) -> StrategyKind;

    /// The isolate that serves a request arriving at `t_us` (after any recycling or import of
    /// the learner's parameters that the arrival triggers).
    fn assign(&mut self, t_us: u64) -> usize;

    /// The strategy of `isolate` and the RNG it draws from.
    fn strategy(&mut self, isolate: usize) -> (&mut dyn Strategy, &mut dyn RngCore);

    /// A request finished.
    fn finished(&mut self, request: Finished<'_>);

    /// What the fleet did (imports, recycles), when this is a fleet.
    fn stats(&self) -> Option<FleetStats> {
        None
    }
}

/// One router: the strategy the caller passed, and the engine's strategy RNG.
pub struct Single<'a> {
    pub strategy: &'a mut dyn Strategy,
    pub rng: SmallRng,
}

impl Routers for Single<'_> {
    fn kind(&self) -> StrategyKind {
        self.strategy.kind()
    }

    fn assign(&mut self, _t_us: u64) -> usize {
        0
    }

    fn strategy(&mut self, _isolate: usize) -> (&mut dyn Strategy, &mut dyn RngCore) {
        (&mut *self.strategy, &mut self.rng)
    }

    fn finished(&mut self, _request: Finished<'_>) {}
}

/// What the isolates of one run did (a fleet run, [`crate::fleet`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FleetStats {
    pub isolates: usize,
    /// Isolates that served at least one request.
    pub isolates_used: usize,
    /// `/params` imports applied.
    pub imports: u64,
    /// Isolates replaced by fresh ones.
    pub recycles: u64,
    /// Telemetry records the learner learned from.
    pub records_learned: u64,
}
