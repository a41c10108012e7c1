//! EXP3: exponential weights for exploration and exploitation.
//!
//! Auer, Cesa-Bianchi, Freund and Schapire, "The nonstochastic multiarmed bandit problem" (SIAM
//! J. Computing 32(1), 2002). Each arm has a weight `w_i`; an attempt goes to arm `i` with
//! probability `p_i = (1 - γ) w_i / Σ w + γ / K`, and a reward `x` on the chosen arm multiplies
//! its weight by `exp(γ x / (p_i K))` (the importance-weighted estimate keeps the update unbiased).
//! It assumes nothing about how rewards are generated, so it also holds against a fleet that
//! changes adversarially, at the price of never exploring less than `γ`. Here `K` and the sums run
//! over the allowed arms of each choice, and an update uses the `p_i` and the `K` of the choice
//! that sent the attempt it answers: a router has several attempts in flight, possibly on the
//! same downstream and under different exclusions, so each choice is remembered until its
//! feedback arrives (matched by send time, `now_ms - latency_ms`, since answers may come back out
//! of order; at most [`MAX_PENDING`] per downstream). Feedback for an attempt this instance did not
//! choose uses the arm's current probability over the whole fleet. Weights are kept as
//! logarithms, so they never overflow.
//!
//! Parameter: `γ` = [`DEFAULT_GAMMA`] = 0.05 (about the paper's `sqrt(K ln K / ((e - 1) T))` for a
//! few downstreams and tens of thousands of requests).
//!
//! Snapshot: the success and failure counts, kept alongside the weights. **Lossy**: restoring
//! sets the counts and rebuilds the weights from them as the expected log-weights,
//! `γ / K * t * mean_i` (mean 1/2 for an arm never tried), an approximation, since the weights
//! depend on the probability of every choice that led to them and the counts do not record it. A
//! restored instance therefore chooses differently from the original.

use std::collections::VecDeque;

use rand::Rng;

use super::counts::{ArmCounts, CountRule, Counted, Pick};
use super::{ArmId, Feedback, SelectContext, StrategyKind};

/// Exploration share.
pub const DEFAULT_GAMMA: f64 = 0.05;
/// Choices remembered per downstream while their feedback is awaited; older ones are dropped.
pub const MAX_PENDING: usize = 256;

/// One choice awaiting its feedback.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pending {
    sent_ms: u64,
    /// The arm's probability in that choice.
    prob: f64,
    /// Allowed arms in that choice.
    k: usize,
}

/// EXP3's rule: exponential weights, and the choices awaiting their feedback. The counts are
/// kept alongside for the snapshot only.
#[derive(Debug, Clone)]
pub struct Exp3 {
    log_weights: Vec<f64>,
    pending: Vec<VecDeque<Pending>>,
    gamma: f64,
}

impl Exp3 {
    /// EXP3 over `arms` downstreams of equal weight.
    pub fn new(arms: usize) -> Counted<Exp3> {
        let rule = Exp3 {
            log_weights: vec![0.0; arms],
            pending: vec![VecDeque::new(); arms],
            gamma: DEFAULT_GAMMA,
        };
        Counted::new(arms, rule)
    }

    /// The choice that sent the attempt `feedback` answers on `arm`: its probability and `K`.
    fn choice_answered(&mut self, arm: ArmId, feedback: &Feedback) -> (f64, usize) {
        let latency = feedback.latency_ms;
        let latency = if latency.is_finite() && latency > 0.0 { latency as u64 } else { 0 };
        let sent = feedback.now_ms.saturating_sub(latency);
        let queue = &mut self.pending[arm];
        let closest = (0..queue.len()).min_by_key(|i| queue[*i].sent_ms.abs_diff(sent));
        match closest.and_then(|i| queue.remove(i)) {
            Some(choice) => (choice.prob, choice.k),
            None => {
                let all = SelectContext::first(feedback.now_ms);
                (self.probabilities(&all)[arm], self.log_weights.len())
            }
        }
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

    /// Keeps the largest log-weight at 0: only differences matter.
    fn normalise(&mut self) {
        let max = self.log_weights.iter().copied().fold(f64::MIN, f64::max);
        for w in &mut self.log_weights {
            *w -= max;
        }
    }
}

impl Counted<Exp3> {
    /// Overrides `γ` (clamped into `(0, 1]`).
    pub fn gamma(mut self, gamma: f64) -> Self {
        self.rule.gamma = if gamma > 0.0 { gamma.min(1.0) } else { DEFAULT_GAMMA };
        self
    }

    /// The choice probabilities over the allowed arms of `ctx` (0 for excluded ones).
    pub fn probabilities(&self, ctx: &SelectContext<'_>) -> Vec<f64> {
        self.rule.probabilities(ctx)
    }
}

impl CountRule for Exp3 {
    const KIND: StrategyKind = StrategyKind::Exp3;

    fn choose(&mut self, Pick { ctx, rng, .. }: Pick<'_>) -> Option<ArmId> {
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
        let k = p.iter().filter(|pa| **pa > 0.0).count();
        let queue = &mut self.pending[arm];
        if queue.len() >= MAX_PENDING {
            queue.pop_front();
        }
        queue.push_back(Pending { sent_ms: ctx.now_ms, prob: p[arm], k });
        Some(arm)
    }

    fn learn(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        let (p, k) = self.choice_answered(arm, feedback);
        let success = feedback.outcome.is_success();
        counts.observe(arm, success);
        if success {
            self.log_weights[arm] += self.gamma / (p.max(1e-12) * k.max(1) as f64);
            self.normalise();
        }
    }

    fn restored(&mut self, counts: &ArmCounts) {
        let k = counts.len().max(1) as f64;
        let t = counts.total();
        for (w, c) in self.log_weights.iter_mut().zip(counts.iter()) {
            *w = self.gamma / k * t * c.empirical_mean().unwrap_or(0.5);
        }
        self.normalise();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::strategy::Strategy;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn probabilities_are_a_distribution_with_a_gamma_floor() {
        let mut s = Exp3::new(4);
        s.rule.log_weights = vec![0.0, -50.0, -1.0, 3.0];
        let ctx = SelectContext::new(&[2], 2, 0);
        let p = s.probabilities(&ctx);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(p[2], 0.0);
        assert!(p[1] >= DEFAULT_GAMMA / 3.0 - 1e-12);
    }

    /// How much `arm`'s log-weight gained on the others' (the update renormalises).
    fn gain(before: &[f64], after: &[f64], arm: ArmId, other: ArmId) -> f64 {
        (after[arm] - after[other]) - (before[arm] - before[other])
    }

    fn success(now_ms: u64, latency_ms: f64) -> Feedback {
        Feedback { outcome: Outcome::Success, latency_ms, now_ms, attempt: 1 }
    }

    #[test]
    fn an_update_uses_the_probability_and_k_of_its_own_choice() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = Exp3::new(4);
        // Arm 0 is so heavy that it is chosen whatever the exclusions of the others.
        s.rule.log_weights = vec![0.0, -40.0, -40.0, -40.0];
        let all = SelectContext::first(0);
        let two = SelectContext::new(&[2, 3], 2, 10);
        let (p_all, p_two) = (s.probabilities(&all)[0], s.probabilities(&two)[0]);
        assert!(
            (p_all - (0.95 + 0.05 / 4.0)).abs() < 1e-9
                && (p_two - (0.95 + 0.05 / 2.0)).abs() < 1e-9
        );
        assert_eq!(s.select(&all, &mut rng), Some(0));
        assert_eq!(s.select(&two, &mut rng), Some(0));
        // Both attempts are in flight on arm 0; the second (sent at 10) answers first.
        let before = s.rule.log_weights.clone();
        s.update(0, &success(30, 20.0));
        let g = gain(&before, &s.rule.log_weights, 0, 1);
        assert!((g - DEFAULT_GAMMA / (p_two * 2.0)).abs() < 1e-9, "{g}");
        let before = s.rule.log_weights.clone();
        s.update(0, &success(45, 45.0));
        let g = gain(&before, &s.rule.log_weights, 0, 1);
        assert!((g - DEFAULT_GAMMA / (p_all * 4.0)).abs() < 1e-9, "{g}");
        // Feedback for a choice this instance did not make: the current probability, K = 4.
        let p_now = s.probabilities(&all)[0];
        let before = s.rule.log_weights.clone();
        s.update(0, &success(50, 1.0));
        let g = gain(&before, &s.rule.log_weights, 0, 1);
        assert!((g - DEFAULT_GAMMA / (p_now * 4.0)).abs() < 1e-9, "{g}");
    }

    #[test]
    fn pending_choices_are_bounded() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut s = Exp3::new(1);
        for t in 0..(MAX_PENDING as u64 + 50) {
            s.select(&SelectContext::first(t), &mut rng);
        }
        assert_eq!(s.rule.pending[0].len(), MAX_PENDING);
        assert_eq!(s.rule.pending[0].front().map(|p| p.sent_ms), Some(50));
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
