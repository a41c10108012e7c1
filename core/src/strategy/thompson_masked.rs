//! V6: masked Thompson sampling. A 429 is not a failure: the downstream is paced to the limit it
//! showed and rests for a short cooldown.
//!
//! From the flaky-load-balancer design (V6, "Thompson masked"): a downstream answering 429 Too
//! Many Requests is healthy but saturated, and counting that as a failure would push traffic
//! towards worse downstreams that merely have spare capacity. So a 429 leaves the posterior
//! alone and masks the downstream; selection is plain Thompson sampling (see
//! [`thompson`](super::thompson)) among the allowed downstreams that are not masked. When every
//! allowed downstream is masked, the one unmasked first is chosen (the seed's "least recently
//! rate-limited").
//!
//! The seed masked for a fixed cooldown of 1 s. On a downstream limited to N attempts per second
//! that rest empties the window and the full traffic comes back to fill it again, so one attempt
//! per window is refused and the downstream idles for part of it (the simulator's `rate_limited`
//! fleet: 29% of traffic on each capped downstream instead of 40%, 91.1% success against round
//! robin's 93.6%). Here the mask is what [`rate_limit`](super::rate_limit) learns: a 429 teaches
//! the downstream's limit per 1 s window and the downstream is skipped while the router's own
//! attempts of the last second reach it, and also rests for [`DEFAULT_COOLDOWN_MS`] (250 ms)
//! after each 429, the guard for limits over longer windows. See that module for the retry
//! headroom and how limits are forgotten. On 429-free fleets V6 chooses exactly as
//! [`thompson`](super::thompson) with the same random numbers.
//!
//! Parameter: the cooldown ([`StrategyParams::rate_limit_cooldown_ms`](super::StrategyParams)).
//!
//! Snapshot: the counts, exactly (see [`ArmCounts`]). Rests and learned limits are local to
//! this instance and not exported; a restored instance starts with none.

use super::counts::{ArmCounts, CountRule, Counted, Pick};
use super::rate_limit::RateLimits;
use super::thompson::Samplers;
use super::{ArmId, Feedback, StrategyKind, beta};
use crate::Outcome;

/// How long a 429 rests a downstream, on top of pacing it to its learned limit.
pub const DEFAULT_COOLDOWN_MS: u64 = 250;

/// Thompson draws among the downstreams that are neither resting nor at their learned limit:
/// the choice of V6 and of the blocking bandit (V8), which differ only in how long a 429 rests
/// a downstream.
#[derive(Debug, Clone)]
pub struct PacedThompson {
    samplers: Samplers,
    /// What 429s taught: learned limits and rests.
    pub limits: RateLimits,
}

impl PacedThompson {
    /// `arms` untried downstreams, none limited.
    pub fn new(arms: usize) -> Self {
        PacedThompson { samplers: Samplers::new(arms), limits: RateLimits::new(arms) }
    }

    /// The paced choice ([`RateLimits::choose`]) of the highest draw.
    pub fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let samplers = &self.samplers;
        let mut rng = beta::local_rng(rng);
        self.limits.choose(ctx, counts.len(), |a| samplers.draw(a, &mut rng))
    }

    /// Counts an outcome that is not a 429 as plain Thompson sampling does.
    pub fn observe(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        self.samplers.observe(counts, arm, feedback);
    }

    /// Prepares the samplers for restored counts; rests and limits stay local.
    pub fn restored(&mut self, counts: &ArmCounts) {
        self.samplers = Samplers::of(counts);
    }
}

/// Masked Thompson sampling's rule: paced Thompson draws, and a fixed rest after each 429.
#[derive(Debug, Clone)]
pub struct ThompsonMasked {
    paced: PacedThompson,
    cooldown_ms: u64,
}

impl ThompsonMasked {
    /// Masked Thompson sampling over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<ThompsonMasked> {
        let rule =
            ThompsonMasked { paced: PacedThompson::new(arms), cooldown_ms: DEFAULT_COOLDOWN_MS };
        Counted::new(arms, rule)
    }
}

impl Counted<ThompsonMasked> {
    /// Overrides the cooldown.
    pub fn cooldown(mut self, cooldown_ms: u64) -> Self {
        self.rule.cooldown_ms = cooldown_ms;
        self
    }

    /// Whether `arm` is resting at `now_ms` (pacing aside).
    pub fn resting(&self, arm: ArmId, now_ms: u64) -> bool {
        self.rule.paced.limits.resting(arm, now_ms)
    }

    /// The rate-limit state (learned limits, rests).
    pub fn limits(&self) -> &RateLimits {
        &self.rule.paced.limits
    }
}

impl CountRule for ThompsonMasked {
    const KIND: StrategyKind = StrategyKind::ThompsonMasked;

    fn choose(&mut self, pick: Pick<'_>) -> Option<ArmId> {
        self.paced.choose(pick)
    }

    fn learn(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        if feedback.outcome == Outcome::RateLimited {
            self.paced.limits.rate_limited(arm, feedback, self.cooldown_ms);
        } else {
            self.paced.observe(counts, arm, feedback);
        }
    }

    fn restored(&mut self, counts: &ArmCounts) {
        self.paced.restored(counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{ArmPosterior, PosteriorSnapshot, SelectContext, Strategy};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn limited(now_ms: u64) -> Feedback {
        Feedback { outcome: Outcome::RateLimited, latency_ms: 1.0, now_ms, attempt: 1 }
    }

    #[test]
    fn a_429_rests_the_arm_without_counting_a_failure() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut s = ThompsonMasked::new(2).cooldown(500);
        let arms = vec![
            ArmPosterior { successes: 50.0, failures: 0.0 },
            ArmPosterior { successes: 0.0, failures: 50.0 },
        ];
        s.restore(&PosteriorSnapshot::of(&arms, 0)).unwrap();
        s.update(0, &limited(1_000));
        assert_eq!(s.snapshot(0).arms, arms);
        assert!(s.resting(0, 1_499) && !s.resting(0, 1_500));
        assert_eq!(s.select(&SelectContext::first(1_200), &mut rng), Some(1));
        assert_eq!(s.select(&SelectContext::first(1_500), &mut rng), Some(0));
    }

    #[test]
    fn a_rate_limited_arm_gets_its_learned_limit_per_second_and_no_more() {
        // Arm 0 is far better and accepts 5 attempts in any second. After its first 429 it gets
        // exactly 5 attempts per second and is never refused again.
        let mut rng = SmallRng::seed_from_u64(3);
        let mut s = ThompsonMasked::new(2).cooldown(0);
        let arms = vec![
            ArmPosterior { successes: 500.0, failures: 0.0 },
            ArmPosterior { successes: 0.0, failures: 500.0 },
        ];
        s.restore(&PosteriorSnapshot::of(&arms, 0)).unwrap();
        let mut accepted: Vec<u64> = Vec::new();
        let (mut refused, mut to_arm0) = (0, 0);
        for t in (0..10_000).step_by(20) {
            let arm = s.select(&SelectContext::first(t), &mut rng).unwrap();
            if arm == 0 {
                to_arm0 += 1;
                accepted.retain(|a| a + 1_000 > t);
                if accepted.len() >= 5 {
                    refused += 1;
                    s.update(0, &limited(t + 1));
                    continue;
                }
                accepted.push(t);
            }
            s.update(
                arm,
                &Feedback { outcome: Outcome::Success, latency_ms: 0.0, now_ms: t, attempt: 1 },
            );
        }
        assert_eq!(s.limits().limit(0), Some(5));
        assert_eq!(refused, 1, "only the 429 that taught the limit");
        // Ten seconds, five per second; the sixth attempt of the first second was refused.
        assert_eq!(to_arm0, 51);
    }

    #[test]
    fn when_everything_rests_the_first_to_wake_is_chosen() {
        let mut rng = SmallRng::seed_from_u64(2);
        let mut s = ThompsonMasked::new(3);
        s.update(0, &limited(300));
        s.update(1, &limited(100));
        s.update(2, &limited(200));
        assert_eq!(s.select(&SelectContext::first(320), &mut rng), Some(1));
        let ctx = SelectContext::new(&[1], 2, 320);
        assert_eq!(s.select(&ctx, &mut rng), Some(2));
    }

    #[test]
    fn without_429s_it_chooses_exactly_as_thompson() {
        use super::super::thompson::Thompson;
        let (mut a, mut b) = (SmallRng::seed_from_u64(4), SmallRng::seed_from_u64(4));
        let (mut masked, mut plain) = (ThompsonMasked::new(4), Thompson::new(4));
        for t in 0..2_000 {
            let x = masked.select(&SelectContext::first(t), &mut a).unwrap();
            let y = plain.select(&SelectContext::first(t), &mut b).unwrap();
            assert_eq!(x, y);
            let outcome =
                if (t * 7 + x as u64) % 5 < 2 { Outcome::Success } else { Outcome::ServerError };
            masked.update(x, &Feedback::at(outcome, t));
            plain.update(y, &Feedback::at(outcome, t));
        }
    }
}
