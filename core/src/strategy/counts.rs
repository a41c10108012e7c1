//! The mechanism shared by the count-based strategies, apart from their policies.
//!
//! [`ArmCounts`] holds every arm's success and failure counts ([`ArmPosterior`]) and does what
//! every count-based strategy does with them the same way: counts an outcome, exports a
//! snapshot, validates and imports one. A [`CountRule`] is only the policy: the index or choice
//! rule that picks an arm from the counts (UCB1's index, a Thompson draw, epsilon-greedy's coin),
//! plus whatever the rule keeps of its own (Thompson's prepared samplers, EXP3's weights, the
//! rate-limit state). [`Counted`] joins the two into a [`Strategy`]; it checks the arm range once,
//! for every rule. (pingora-load-balancing keeps its selection algorithms apart from the weighted
//! container they select from, and tower's p2c its policy apart from the service, the same way.)

use std::ops::Deref;

use rand::RngCore;

use super::{
    ArmId, ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, SnapshotError, Strategy,
    StrategyKind, validate_snapshot,
};

/// Success and failure counts per arm, by arm index. Reads as a slice of [`ArmPosterior`].
#[derive(Debug, Clone, PartialEq)]
pub struct ArmCounts {
    arms: Vec<ArmPosterior>,
}

impl ArmCounts {
    /// `arms` arms, none observed.
    pub fn new(arms: usize) -> Self {
        ArmCounts { arms: vec![ArmPosterior::default(); arms] }
    }

    /// Counts one outcome on `arm` (success or not) and returns the arm's new counts; `None`,
    /// counting nothing, when `arm` is out of range.
    pub fn observe(&mut self, arm: ArmId, success: bool) -> Option<&ArmPosterior> {
        let c = self.arms.get_mut(arm)?;
        c.observe(success);
        Some(c)
    }

    /// Every arm's counts, to change in place (discounting, for instance).
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, ArmPosterior> {
        self.arms.iter_mut()
    }

    /// Observations over every arm, `Σ (s + f)`.
    pub fn total(&self) -> f64 {
        self.arms.iter().map(ArmPosterior::pulls).sum()
    }

    /// `ln` of the total observations, at least `ln 1 = 0`.
    pub fn ln_total(&self) -> f64 {
        self.total().max(1.0).ln()
    }

    /// The counts, as a snapshot taken at `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> PosteriorSnapshot {
        PosteriorSnapshot::of(&self.arms, now_ms)
    }

    /// Validates `snapshot` and replaces the counts with its own; on error nothing changes.
    pub fn restore(&mut self, snapshot: &PosteriorSnapshot) -> Result<(), SnapshotError> {
        validate_snapshot(snapshot, self.arms.len())?;
        self.arms.clone_from_slice(&snapshot.arms);
        Ok(())
    }
}

impl Deref for ArmCounts {
    type Target = [ArmPosterior];

    fn deref(&self) -> &[ArmPosterior] {
        &self.arms
    }
}

/// What a [`CountRule`] chooses from: the counts, the caller's context and its randomness.
pub struct Pick<'a> {
    pub counts: &'a ArmCounts,
    pub ctx: &'a SelectContext<'a>,
    pub rng: &'a mut dyn RngCore,
}

/// The policy of a count-based strategy: how it chooses from the counts, and anything it learns
/// beyond them.
pub trait CountRule: Send {
    /// The strategy this rule is.
    const KIND: StrategyKind;

    /// Chooses the arm for one attempt: never an excluded or out-of-range one; `None` only when
    /// every arm is excluded.
    fn choose(&mut self, pick: Pick<'_>) -> Option<ArmId>;

    /// Learns one outcome on `arm`, which is in range. By default a success counts as a reward
    /// of 1 and anything else as 0.
    fn learn(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        counts.observe(arm, feedback.outcome.is_success());
    }

    /// Brings what the rule derives from the counts up to date after they were restored.
    fn restored(&mut self, _counts: &ArmCounts) {}
}

/// A count-based strategy: the counts (mechanism) and a rule (policy).
#[derive(Debug, Clone)]
pub struct Counted<R> {
    pub(super) counts: ArmCounts,
    pub(super) rule: R,
}

impl<R: CountRule> Counted<R> {
    /// `rule` over `arms` arms, none observed.
    pub fn new(arms: usize, rule: R) -> Self {
        Counted { counts: ArmCounts::new(arms), rule }
    }

    /// The counts per arm.
    pub fn counts(&self) -> &ArmCounts {
        &self.counts
    }

    /// The rule and its own state.
    pub fn rule(&self) -> &R {
        &self.rule
    }
}

impl<R: CountRule> Strategy for Counted<R> {
    fn kind(&self) -> StrategyKind {
        R::KIND
    }

    fn arms(&self) -> usize {
        self.counts.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        self.rule.choose(Pick { counts: &self.counts, ctx, rng })
    }

    fn update(&mut self, arm: ArmId, feedback: &Feedback) {
        if arm < self.counts.len() {
            self.rule.learn(&mut self.counts, arm, feedback);
        }
    }

    fn snapshot(&self, now_ms: u64) -> PosteriorSnapshot {
        self.counts.snapshot(now_ms)
    }

    fn restore(&mut self, snapshot: &PosteriorSnapshot) -> Result<(), SnapshotError> {
        self.counts.restore(snapshot)?;
        self.rule.restored(&self.counts);
        Ok(())
    }
}
