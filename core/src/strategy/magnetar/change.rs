//! Per-downstream change detection: a two-hypothesis Bayesian change-point model of one
//! downstream's success rate.
//!
//! Method: Bayesian online change-point detection (Adams and MacKay, "Bayesian Online Changepoint
//! Detection", 2007) pruned to two run lengths, as in change-point Thompson sampling (Mellor and
//! Shapiro, "Thompson Sampling in Switching Environments with Bayesian Online Change Point
//! Detection", AISTATS 2013). Two hypotheses are kept:
//!
//! - *settled*: the rate has not changed since the last accepted change; its evidence is every
//!   outcome since then (`Beta(1 + s, 1 + f)`, no forgetting: a stationary downstream keeps its
//!   whole memory);
//! - *candidate*: the rate changed at the candidate point; its evidence is the outcomes since then.
//!
//! `w` is the posterior probability of the candidate. Time makes a change more plausible: with a
//! hazard `h` per millisecond, an interval `dt` carries the mass `1 - e^(-h dt)` of a change. An
//! outcome `x` weighs the two by their predictive probabilities
//! (`w' = w L1 / (w L1 + (1 - w) L0)`, `L = (1 + s) / (2 + s + f)` for a success) and is added to
//! both. When `w` passes [`ACCEPT`] the change is accepted: the candidate's evidence becomes the
//! settled evidence and a new candidate starts. Between outcomes a third hypothesis, "it changed
//! just now", has the interval's hazard mass; the less probable of it and the current candidate is
//! dropped (BOCPD pruned to two run lengths). So while nothing happens the candidate is always
//! fresh, a detection needs only the outcomes after the change, and a candidate that the outcomes
//! made less likely than a fresh one gives way to it. A candidate that has seen
//! [`STALE_AFTER`] outcomes and explains them no better than the settled evidence, or that holds
//! half of the settled evidence (it is no longer a recent change), is merged back (its weight
//! returns to the settled hypothesis), so a candidate that merely repeats the settled evidence
//! cannot block a fresh one.
//!
//! Why this and not a sliding window or discounting: those forget at a fixed rate whether or not
//! the world changed, which costs regret on a stationary fleet (the simulator's `retries` and
//! `spread` rows of discounted and windowed Thompson). Here the memory is lost only when the
//! outcomes say so: a 95% downstream that drops to 20% is detected after about six outcomes; a
//! run of four failures on it is not enough, and on a 50% downstream a run of ten is not either
//! (the candidate must explain the outcomes better than the settled rate, with its own prior's
//! Occam penalty). And the hazard is what lets an unused downstream come back: the longer it goes
//! unobserved, the more weight the candidate (the uniform prior) gets when the strategy samples,
//! so a dead downstream is probed again at a rate set by `h` alone, however long it was dead.
//!
//! Sampling ([`ChangePoint::sampler`]) is from the mixture: with probability `w` from the
//! candidate, otherwise from the settled posterior.

use crate::strategy::ArmPosterior;

/// Candidate probability above which a change is accepted.
pub const ACCEPT: f64 = 0.5;
/// A candidate that has seen this many outcomes and explains them no better than the settled
/// evidence is merged back into it.
pub const STALE_AFTER: f64 = 16.0;

/// Predictive probability of `success` under `Beta(1 + s, 1 + f)`.
fn predictive(c: &ArmPosterior, success: bool) -> f64 {
    let p = (1.0 + c.successes) / (2.0 + c.pulls());
    if success { p } else { 1.0 - p }
}

/// One downstream's change-point state.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangePoint {
    /// Evidence since the last accepted change.
    pub settled: ArmPosterior,
    /// Evidence since the candidate point.
    pub candidate: ArmPosterior,
    /// Probability that the rate changed at the candidate point.
    pub w: f64,
    /// Log likelihood ratio of the candidate's outcomes, candidate against settled.
    llr: f64,
    /// Caller's clock at the last update of `w` by time.
    at_ms: u64,
    /// Changes accepted so far.
    pub changes: u64,
}

impl Default for ChangePoint {
    fn default() -> Self {
        ChangePoint {
            settled: ArmPosterior::default(),
            candidate: ArmPosterior::default(),
            w: 0.0,
            llr: 0.0,
            at_ms: 0,
            changes: 0,
        }
    }
}

impl ChangePoint {
    /// The candidate's weight at `now_ms`, and whether by then a fresh candidate ("it changed
    /// just now", the uniform prior) has replaced the current one: the hazard mass
    /// `m = 1 - e^(-h dt)` of the interval is a third hypothesis, and of it and the current
    /// candidate the less probable is dropped (two run lengths kept, as in the pruned BOCPD).
    pub fn w_at(&self, now_ms: u64, hazard_per_ms: f64) -> (f64, bool) {
        let dt = now_ms.saturating_sub(self.at_ms) as f64;
        let m = 1.0 - (-hazard_per_ms * dt).exp();
        if m > self.w * (1.0 - m) {
            (m / ((1.0 - self.w) * (1.0 - m) + m), true)
        } else {
            (self.w, false)
        }
    }

    /// Brings the state to `now_ms`.
    pub fn elapse(&mut self, now_ms: u64, hazard_per_ms: f64) {
        if now_ms > self.at_ms {
            let (w, fresh) = self.w_at(now_ms, hazard_per_ms);
            if fresh {
                self.candidate = ArmPosterior::default();
                self.llr = 0.0;
            }
            self.w = w;
            self.at_ms = now_ms;
        }
    }

    /// `w` once `failures` more failures were seen (used for attempts that are overdue), from
    /// the weight `w` and candidate (`fresh` or the current one) of [`w_at`](Self::w_at).
    pub fn w_with_failures(&self, w: f64, fresh: bool, failures: u32) -> f64 {
        let mut cand = if fresh { ArmPosterior::default() } else { self.candidate.clone() };
        let (mut w, mut settled) = (w, self.settled.clone());
        for _ in 0..failures {
            let (l1, l0) = (predictive(&cand, false), predictive(&settled, false));
            w = w * l1 / (w * l1 + (1.0 - w) * l0);
            cand.observe(false);
            settled.observe(false);
        }
        w
    }

    /// Learns one outcome at `now_ms`. Returns true when a change was accepted.
    pub fn observe(&mut self, success: bool, now_ms: u64, hazard_per_ms: f64) -> bool {
        self.elapse(now_ms, hazard_per_ms);
        let l1 = predictive(&self.candidate, success);
        let l0 = predictive(&self.settled, success);
        let joint = self.w * l1 + (1.0 - self.w) * l0;
        self.w = if joint > 0.0 { self.w * l1 / joint } else { self.w };
        self.llr += (l1 / l0).ln();
        self.candidate.observe(success);
        self.settled.observe(success);
        if self.w > ACCEPT {
            self.settled = std::mem::take(&mut self.candidate);
            self.w = 0.0;
            self.llr = 0.0;
            self.changes += 1;
            true
        } else {
            let n = self.candidate.pulls();
            if n >= STALE_AFTER && (self.llr <= 0.0 || 2.0 * n >= self.settled.pulls()) {
                // Nothing changed at the candidate point: its weight returns to the settled
                // evidence, and the next interval starts a fresh candidate.
                self.candidate = ArmPosterior::default();
                self.w = 0.0;
                self.llr = 0.0;
            }
            false
        }
    }

    /// Replaces the settled evidence (an import of the learner's counts); the candidate restarts.
    pub fn restore(&mut self, settled: ArmPosterior, now_ms: u64) {
        self.settled = settled;
        self.candidate = ArmPosterior::default();
        self.w = 0.0;
        self.llr = 0.0;
        self.at_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    const H: f64 = 1e-5;

    fn feed(cp: &mut ChangePoint, p: f64, n: u64, t0: u64, rng: &mut SmallRng) -> Option<u64> {
        let mut first = None;
        for i in 0..n {
            if cp.observe(rng.random_bool(p), t0 + i * 10, H) && first.is_none() {
                first = Some(i);
            }
        }
        first
    }

    #[test]
    fn a_drop_from_95_to_20_percent_is_detected_within_a_few_dozen_outcomes() {
        // 200 seeds; the detection delay's 95th percentile must stay under 30 outcomes.
        let mut delays = Vec::new();
        for seed in 0..200 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut cp = ChangePoint::default();
            feed(&mut cp, 0.95, 5_000, 0, &mut rng);
            let changes_before = cp.changes;
            let d = feed(&mut cp, 0.2, 200, 50_000, &mut rng)
                .unwrap_or_else(|| panic!("seed {seed}: {cp:?}"));
            assert!(cp.changes > changes_before);
            delays.push(d);
        }
        delays.sort_unstable();
        assert!(delays[190] < 30, "95th percentile delay {}", delays[190]);
        // After the change the settled evidence is the post-change outcomes only.
    }

    #[test]
    fn a_stationary_downstream_keeps_its_memory() {
        // 20 seeds x 20,000 outcomes at 95%, 50% and 80%: at most a few false changes in all.
        for p in [0.95, 0.5, 0.8] {
            let mut false_changes = 0;
            for seed in 0..20 {
                let mut rng = SmallRng::seed_from_u64(seed);
                let mut cp = ChangePoint::default();
                feed(&mut cp, p, 20_000, 0, &mut rng);
                // The first few outcomes may be taken as a change from the empty prior.
                false_changes += cp.changes.saturating_sub(1);
            }
            assert!(false_changes <= 3, "p={p}: {false_changes} false changes in 400,000 outcomes");
        }
    }

    #[test]
    fn time_without_observations_raises_the_candidate() {
        let mut cp = ChangePoint::default();
        for i in 0..1_000 {
            cp.observe(false, i, H);
        }
        let w0 = cp.w_at(1_000, H).0;
        let w1 = cp.w_at(101_000, H).0;
        assert!(w0 < 0.01, "{w0}");
        // 100 s at 1e-5 per ms: 1 - e^-1.
        assert!((w1 - (1.0 - (-1.0f64).exp())).abs() < 0.01, "{w1}");
        // One success after that is strong evidence of a change on a dead downstream.
        cp.observe(true, 101_000, H);
        cp.observe(true, 101_010, H);
        assert!(cp.changes >= 1 && cp.settled.successes >= 1.0, "{cp:?}");
    }

    #[test]
    fn overdue_attempts_count_as_failures_for_the_candidate() {
        let mut cp = ChangePoint::default();
        for i in 0..2_000 {
            cp.observe(true, i, H);
        }
        let (w, fresh) = cp.w_at(2_000, H);
        assert!(cp.w_with_failures(w, fresh, 3) > 0.5, "{}", cp.w_with_failures(w, fresh, 3));
        assert_eq!(cp.w_with_failures(w, fresh, 0), w);
    }
}
