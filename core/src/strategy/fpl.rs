//! Follow the Perturbed Leader (FPL) for adversarial bandits, with geometric resampling.
//!
//! Kalai and Vempala, "Efficient algorithms for online decision problems" (J. Computer and
//! System Sciences 71(3), 2005): play the arm whose cumulative loss, minus a random perturbation,
//! is smallest. With only the chosen arm's loss observed (bandit feedback), the losses are
//! estimated by importance weighting, and FPL's choice probabilities have no closed form; Neu and
//! Bartók, "An efficient algorithm for learning with semi-bandit feedback" (ALT 2013; JMLR 17,
//! 2016) estimate `1 / p` by **geometric resampling**: redraw the perturbations until the same
//! arm leads again, and count the draws `M_t` (at most [`MAX_RESAMPLES`]); `ℓ * M_t` is then an
//! (almost) unbiased estimate of the loss divided by its probability. Like [`exp3`](super::exp3)
//! it assumes nothing about how losses are generated, so it holds against a fleet that changes
//! adversarially; unlike EXP3 it needs no probabilities, only argmins.
//!
//! Here: the loss of an attempt is 1 for a failure, 0 for a success; each allowed arm's
//! perturbation is an exponential of mean `1 / η_t` with the anytime rate
//! `η_t = sqrt(ln K / (K t))` (`K` arms, `t` observations so far, Neu and Bartók's tuning for a
//! known horizon with `T` replaced by `t`); the resampling runs over the same allowed arms as the
//! choice. A router has several attempts in flight, so each choice's `M_t` is remembered until its
//! feedback arrives, matched by send time as in EXP3 (at most [`MAX_PENDING`] per downstream);
//! feedback for an attempt this instance did not choose counts with `M_t = 1`. A select draws
//! `K` exponentials per resampling round; the expected number of rounds is at most `K` and
//! close to 1 once one arm leads.
//!
//! Parameters: [`MAX_RESAMPLES`] = 32 (the cap on `M_t`, which bounds both the cost of a select
//! and the estimate's variance; it biases the estimate of an arm chosen with probability below
//! 1/32 downwards, which only makes FPL explore it more).
//!
//! Snapshot: the success and failure counts, kept alongside the loss estimates. **Lossy**:
//! restoring sets the counts and rebuilds each arm's estimated cumulative loss as its expectation
//! under the counts, `t × failures / pulls` (`t / 2` for an arm never tried).

use std::collections::VecDeque;

use rand::Rng;
use rand::rngs::SmallRng;

use super::counts::{ArmCounts, CountRule, Counted, Pick};
use super::{ArmId, Feedback, SelectContext, StrategyKind, beta};

/// Cap on the geometric resampling count.
pub const MAX_RESAMPLES: u32 = 32;
/// Choices remembered per downstream while their feedback is awaited; older ones are dropped.
pub const MAX_PENDING: usize = 256;

/// One choice awaiting its feedback: when it was sent and its resampling count.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pending {
    sent_ms: u64,
    resamples: u32,
}

/// FPL's rule: estimated cumulative losses and the choices awaiting their feedback. The counts
/// are kept alongside for the snapshot and for `t`.
#[derive(Debug, Clone)]
pub struct Fpl {
    losses: Vec<f64>,
    pending: Vec<VecDeque<Pending>>,
}

impl Fpl {
    /// FPL over `arms` downstreams, no loss seen.
    pub fn new(arms: usize) -> Counted<Fpl> {
        Counted::new(arms, Fpl { losses: vec![0.0; arms], pending: vec![VecDeque::new(); arms] })
    }

    /// The perturbation rate `η_t` for `arms` arms after `t` observations.
    pub fn eta(arms: usize, t: f64) -> f64 {
        let k = arms.max(2) as f64;
        (k.ln() / (k * t.max(1.0))).sqrt()
    }

    /// The perturbed leader among the allowed arms: `argmin L̂_i - Z_i`, `Z_i ~ Exp(η)`.
    fn leader(&self, ctx: &SelectContext<'_>, eta: f64, rng: &mut SmallRng) -> Option<ArmId> {
        let mut best: Option<(ArmId, f64)> = None;
        for arm in (0..self.losses.len()).filter(|a| !ctx.is_excluded(*a)) {
            let u: f64 = rng.random();
            let z = -(1.0 - u).ln() / eta;
            let score = self.losses[arm] - z;
            if best.is_none_or(|(_, b)| score < b) {
                best = Some((arm, score));
            }
        }
        best.map(|(arm, _)| arm)
    }

    /// The resampling count of the choice `feedback` answers on `arm` (1 when none is pending).
    fn resamples_answered(&mut self, arm: ArmId, feedback: &Feedback) -> u32 {
        let latency = feedback.latency_ms;
        let latency = if latency.is_finite() && latency > 0.0 { latency as u64 } else { 0 };
        let sent = feedback.now_ms.saturating_sub(latency);
        let queue = &mut self.pending[arm];
        let closest = (0..queue.len()).min_by_key(|i| queue[*i].sent_ms.abs_diff(sent));
        closest.and_then(|i| queue.remove(i)).map_or(1, |p| p.resamples)
    }

    /// The estimated cumulative loss of every arm.
    pub fn losses(&self) -> &[f64] {
        &self.losses
    }
}

impl CountRule for Fpl {
    const KIND: StrategyKind = StrategyKind::Fpl;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let mut rng = beta::local_rng(rng);
        let eta = Fpl::eta(counts.len(), counts.total());
        let arm = self.leader(ctx, eta, &mut rng)?;
        let mut resamples = 1;
        while resamples < MAX_RESAMPLES && self.leader(ctx, eta, &mut rng) != Some(arm) {
            resamples += 1;
        }
        let queue = &mut self.pending[arm];
        if queue.len() >= MAX_PENDING {
            queue.pop_front();
        }
        queue.push_back(Pending { sent_ms: ctx.now_ms, resamples });
        Some(arm)
    }

    fn learn(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        let resamples = self.resamples_answered(arm, feedback);
        let success = feedback.outcome.is_success();
        counts.observe(arm, success);
        if !success {
            self.losses[arm] += f64::from(resamples);
        }
    }

    fn restored(&mut self, counts: &ArmCounts) {
        let t = counts.total();
        for (loss, c) in self.losses.iter_mut().zip(counts.iter()) {
            *loss = t * c.empirical_mean().map_or(0.5, |mean| 1.0 - mean);
        }
        for queue in &mut self.pending {
            queue.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::strategy::{ArmPosterior, PosteriorSnapshot, Strategy};
    use rand::SeedableRng;

    #[test]
    fn a_loss_counts_its_resampling_count() {
        let mut rng = SmallRng::seed_from_u64(4);
        let mut s = Fpl::new(3);
        let arm = s.select(&SelectContext::first(100), &mut rng).unwrap();
        let resamples = s.rule.pending[arm][0].resamples;
        assert!((1..=MAX_RESAMPLES).contains(&resamples));
        let failure =
            Feedback { outcome: Outcome::ServerError, latency_ms: 20.0, now_ms: 120, attempt: 1 };
        s.update(arm, &failure);
        assert_eq!(s.rule.losses()[arm], f64::from(resamples));
        assert!(s.rule.pending[arm].is_empty());
        // Feedback no choice is waiting for counts once; a success adds no loss.
        s.update(arm, &failure);
        assert_eq!(s.rule.losses()[arm], f64::from(resamples) + 1.0);
        s.update(arm, &Feedback::at(Outcome::Success, 130));
        assert_eq!(s.rule.losses()[arm], f64::from(resamples) + 1.0);
        assert_eq!(s.counts()[arm], ArmPosterior { successes: 1.0, failures: 2.0 });
    }

    #[test]
    fn geometric_resampling_estimates_one_over_the_probability() {
        // Two arms, one far ahead: the leader is chosen with p close to 1 (count 1), the other
        // rarely, and then with a count near 1 / p, capped.
        let mut rng = SmallRng::seed_from_u64(5);
        let mut s = Fpl::new(2);
        let counts = vec![ArmPosterior { successes: 900.0, failures: 100.0 }; 2];
        s.restore(&PosteriorSnapshot::of(&counts, 0)).unwrap();
        s.rule.losses = vec![0.0, 60.0];
        let (mut lagger, mut big) = (0u32, 0u32);
        for t in 0..4_000 {
            let arm = s.select(&SelectContext::first(t), &mut rng).unwrap();
            let r = s.rule.pending[arm].pop_back().unwrap().resamples;
            if arm == 1 {
                lagger += 1;
                big += u32::from(r > 2);
            }
        }
        // η = sqrt(ln 2 / 4000) ≈ 0.0132: P(Z_1 - Z_0 > 60) = e^{-0.79} / 2 ≈ 0.23 (about 900
        // of 4,000, sd 27), and a count above 2 has probability (1 - 0.23)^2 ≈ 0.59 (sd 0.016).
        assert!((750..1_050).contains(&lagger), "{lagger}");
        assert!(big * 2 > lagger, "{big} of {lagger}");
    }

    #[test]
    fn learns_to_prefer_the_rewarding_arm() {
        let mut rng = SmallRng::seed_from_u64(7);
        let mut s = Fpl::new(3);
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
        assert!(late[2] > 850, "{late:?}");
    }

    #[test]
    fn a_restore_rebuilds_the_expected_losses() {
        let mut s = Fpl::new(3);
        let arms = [
            ArmPosterior { successes: 90.0, failures: 10.0 },
            ArmPosterior { successes: 50.0, failures: 50.0 },
            ArmPosterior::default(),
        ];
        s.restore(&PosteriorSnapshot::of(&arms, 0)).unwrap();
        let l = s.rule.losses();
        assert!(
            (l[0] - 20.0).abs() < 1e-9
                && (l[1] - 100.0).abs() < 1e-9
                && (l[2] - 100.0).abs() < 1e-9
        );
    }
}
