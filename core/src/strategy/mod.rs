//! Downstream selection: one trait, one file per algorithm.
//!
//! A [`Strategy`] ranks the fleet's arms (downstreams, by index `0..n`) for one attempt of one
//! request. The caller may veto candidates through [`SelectContext::excluded`] (by default the
//! downstreams already tried for this request); a strategy must never return an excluded or
//! unknown arm, and returns `None` only when every arm is excluded.
//!
//! After the attempt the caller reports a [`Feedback`] (classified outcome, latency, time) with
//! [`Strategy::update`]. Learned state can be exported to and imported from a
//! [`PosteriorSnapshot`], so a router isolate can start from the learner's fleet-wide view and keep
//! learning locally.
//!
//! Strategies are built by name through [`StrategyKind`]; the names are the wire names used by
//! `?algo=`, `x-magnetar-algo`, the learner and the lab.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::Outcome;

pub mod random;
pub mod round_robin;

/// Index of a downstream in the fleet, `0..fleet_len`.
pub type ArmId = usize;

/// Everything a strategy may look at to choose one attempt's downstream.
#[derive(Clone, Copy, Debug)]
pub struct SelectContext<'a> {
    /// Arms the caller vetoes for this attempt (already tried, ejected, ...).
    pub excluded: &'a [ArmId],
    /// 1-based attempt number within the request.
    pub attempt: u32,
    /// Caller's clock, milliseconds.
    pub now_ms: u64,
}

impl<'a> SelectContext<'a> {
    /// First attempt at `now_ms`, nothing excluded.
    pub fn first(now_ms: u64) -> Self {
        SelectContext { excluded: &[], attempt: 1, now_ms }
    }

    /// Whether `arm` is vetoed.
    pub fn is_excluded(&self, arm: ArmId) -> bool {
        self.excluded.contains(&arm)
    }
}

/// What the caller learned from one attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Feedback {
    pub outcome: Outcome,
    /// Time from sending the attempt to its outcome.
    pub latency_ms: f64,
    /// Caller's clock when the outcome was known, milliseconds.
    pub now_ms: u64,
    /// 1-based attempt number this feedback belongs to.
    pub attempt: u32,
}

impl Feedback {
    /// Feedback for a first attempt with no latency information (tests, simulator).
    pub fn at(outcome: Outcome, now_ms: u64) -> Self {
        Feedback { outcome, latency_ms: 0.0, now_ms, attempt: 1 }
    }
}

/// Per-arm learned state in a strategy-neutral form: (possibly discounted) success and failure
/// counts, as a Beta posterior `Beta(1 + successes, 1 + failures)` reads them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ArmPosterior {
    /// Effective successes (may be fractional after decay).
    pub successes: f64,
    /// Effective failures (may be fractional after decay).
    pub failures: f64,
}

/// A versioned, strategy-neutral export of what a strategy has learned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PosteriorSnapshot {
    /// Schema version of this structure ([`PosteriorSnapshot::SCHEMA`]).
    pub schema: u32,
    /// Caller's clock when taken.
    pub taken_ms: u64,
    /// One entry per arm, by arm index.
    pub arms: Vec<ArmPosterior>,
}

impl PosteriorSnapshot {
    pub const SCHEMA: u32 = 1;
}

/// A snapshot could not be applied to a strategy.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot has {got} arms, the strategy has {expected}")]
    ArmCount { expected: usize, got: usize },
    #[error("snapshot schema {0} is not supported")]
    Schema(u32),
    #[error("arm {arm}: counts must be finite and non-negative")]
    InvalidCounts { arm: usize },
}

/// Checks a snapshot's schema, length and counts before a strategy imports it.
pub fn validate_snapshot(snapshot: &PosteriorSnapshot, arms: usize) -> Result<(), SnapshotError> {
    if snapshot.schema != PosteriorSnapshot::SCHEMA {
        return Err(SnapshotError::Schema(snapshot.schema));
    }
    if snapshot.arms.len() != arms {
        return Err(SnapshotError::ArmCount { expected: arms, got: snapshot.arms.len() });
    }
    for (arm, p) in snapshot.arms.iter().enumerate() {
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if !ok(p.successes) || !ok(p.failures) {
            return Err(SnapshotError::InvalidCounts { arm });
        }
    }
    Ok(())
}

/// A downstream-selection algorithm.
pub trait Strategy: Send {
    /// The wire name of the algorithm.
    fn kind(&self) -> StrategyKind;

    /// Number of arms this instance was built for.
    fn arms(&self) -> usize;

    /// Chooses the downstream for one attempt. Never returns an excluded or out-of-range arm;
    /// `None` only when every arm is excluded.
    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId>;

    /// Learns from one attempt's outcome on `arm`. Out-of-range arms are ignored.
    fn update(&mut self, arm: ArmId, feedback: &Feedback);

    /// Exports the learned state. Stateless strategies export zero counts.
    fn snapshot(&self, now_ms: u64) -> PosteriorSnapshot {
        PosteriorSnapshot {
            schema: PosteriorSnapshot::SCHEMA,
            taken_ms: now_ms,
            arms: vec![ArmPosterior::default(); self.arms()],
        }
    }

    /// Replaces the learned state with a snapshot. Stateless strategies only validate it.
    fn restore(&mut self, snapshot: &PosteriorSnapshot) -> Result<(), SnapshotError> {
        validate_snapshot(snapshot, self.arms())
    }
}

/// Picks uniformly among the arms that are not excluded, with one RNG draw.
pub fn uniform_allowed(
    ctx: &SelectContext<'_>,
    arms: usize,
    rng: &mut dyn RngCore,
) -> Option<ArmId> {
    let allowed = (0..arms).filter(|a| !ctx.is_excluded(*a)).count();
    if allowed == 0 {
        return None;
    }
    let nth = (rng.next_u64() % allowed as u64) as usize;
    (0..arms).filter(|a| !ctx.is_excluded(*a)).nth(nth)
}

macro_rules! strategy_kinds {
    ($($variant:ident => $name:literal : $doc:literal),+ $(,)?) => {
        /// Every selectable algorithm, by wire name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum StrategyKind {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)+
        }

        impl StrategyKind {
            /// Every kind, in documentation order.
            pub const ALL: &'static [StrategyKind] = &[$(StrategyKind::$variant,)+];

            /// The wire name (`?algo=`).
            pub fn name(self) -> &'static str {
                match self { $(StrategyKind::$variant => $name,)+ }
            }

            /// One-line description.
            pub fn describe(self) -> &'static str {
                match self { $(StrategyKind::$variant => $doc,)+ }
            }
        }
    };
}

strategy_kinds! {
    RoundRobin => "round_robin": "cycle through the downstreams in order",
    Random => "random": "uniformly random downstream",
}

impl StrategyKind {
    /// Comma-separated list of every wire name, for error messages.
    pub fn names() -> String {
        StrategyKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }

    /// Builds a fresh instance for a fleet of `arms` downstreams with default parameters.
    pub fn build(self, arms: usize) -> Box<dyn Strategy> {
        match self {
            StrategyKind::RoundRobin => Box::new(round_robin::RoundRobin::new(arms)),
            StrategyKind::Random => Box::new(random::Random::new(arms)),
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name did not match any strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy {given:?}; valid strategies: {valid}")]
pub struct UnknownStrategy {
    pub given: String,
    pub valid: String,
}

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        StrategyKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| UnknownStrategy { given: s.to_owned(), valid: StrategyKind::names() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn names_round_trip_and_unknown_lists_valid_ones() {
        for kind in StrategyKind::ALL {
            assert_eq!(kind.name().parse::<StrategyKind>().unwrap(), *kind);
        }
        assert_eq!("Round-Robin".parse::<StrategyKind>().unwrap(), StrategyKind::RoundRobin);
        let err = "nope".parse::<StrategyKind>().unwrap_err();
        assert!(err.to_string().contains("round_robin"), "{err}");
    }

    #[test]
    fn every_kind_respects_exclusions() {
        let mut rng = SmallRng::seed_from_u64(7);
        for kind in StrategyKind::ALL {
            let mut s = kind.build(4);
            for step in 0..200u64 {
                let excluded = [(step % 4) as usize, ((step + 1) % 4) as usize];
                let ctx = SelectContext { excluded: &excluded, attempt: 2, now_ms: step };
                let arm = s.select(&ctx, &mut rng).unwrap();
                assert!(arm < 4 && !excluded.contains(&arm), "{kind} picked {arm}");
                s.update(arm, &Feedback::at(Outcome::ServerError, step));
            }
            let all = [0, 1, 2, 3];
            let ctx = SelectContext { excluded: &all, attempt: 3, now_ms: 0 };
            assert_eq!(s.select(&ctx, &mut rng), None, "{kind}");
        }
    }

    #[test]
    fn snapshots_are_validated() {
        let snap =
            PosteriorSnapshot { schema: 1, taken_ms: 0, arms: vec![ArmPosterior::default(); 2] };
        assert_eq!(validate_snapshot(&snap, 2), Ok(()));
        assert_eq!(
            validate_snapshot(&snap, 3),
            Err(SnapshotError::ArmCount { expected: 3, got: 2 })
        );
        let mut bad = snap.clone();
        bad.arms[1].failures = f64::NAN;
        assert_eq!(validate_snapshot(&bad, 2), Err(SnapshotError::InvalidCounts { arm: 1 }));
    }
}
