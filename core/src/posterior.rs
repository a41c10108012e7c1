//! A Beta posterior over a downstream's success probability that forgets exponentially.
//!
//! Each observation adds its reward to the success count and `1 - reward` to the failure count,
//! like a Beta-Bernoulli update, but every count then loses weight with age: an observation made
//! `dt` milliseconds ago weighs `2^(-dt / half_life_ms)`. A downstream that failed for a while and
//! then recovered is therefore found again within a few half-lives, instead of being buried under
//! its old failures (discounted Thompson sampling; Raj & Kalyani, "Taming non-stationary bandits:
//! a Bayesian approach", 2017). Reading the posterior at time `now_ms` applies the same decay, so
//! `Beta(1 + successes, 1 + failures)` at `now_ms` is the uniform prior plus the discounted
//! evidence.
//!
//! Sans-io like the rest of the core: time is passed in (`at_ms`, `now_ms`, caller's clock in
//! milliseconds), randomness as `&mut dyn RngCore`. Observations may arrive out of order: one
//! older than the last update is added with its age's weight, and a read before the last update
//! sees no decay (never growth). Counts stay finite and non-negative under any sequence of calls.
//!
//! Parameter: the half-life ([`Decay`]), [`DEFAULT_HALF_LIFE_MS`] (60 s) unless configured.

use rand::RngCore;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

use crate::strategy::ArmPosterior;

/// Default half-life of an observation's weight.
pub const DEFAULT_HALF_LIFE_MS: u64 = 60_000;

/// The half-life was zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("half-life must be at least 1 ms")]
pub struct ZeroHalfLife;

/// How fast evidence fades: the weight of an observation halves every `half_life_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decay {
    half_life_ms: u64,
}

impl Decay {
    /// A decay with the given half-life (at least 1 ms).
    pub fn new(half_life_ms: u64) -> Result<Decay, ZeroHalfLife> {
        if half_life_ms == 0 { Err(ZeroHalfLife) } else { Ok(Decay { half_life_ms }) }
    }

    pub fn half_life_ms(self) -> u64 {
        self.half_life_ms
    }

    /// The weight left after `elapsed_ms`: `2^(-elapsed / half_life)`, in `(0, 1]`, or 0 once it
    /// underflows.
    pub fn factor(self, elapsed_ms: u64) -> f64 {
        (-(elapsed_ms as f64) / self.half_life_ms as f64).exp2()
    }
}

impl Default for Decay {
    fn default() -> Self {
        Decay { half_life_ms: DEFAULT_HALF_LIFE_MS }
    }
}

/// Discounted success/failure counts of one arm, valid as of `updated_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DecayedBeta {
    successes: f64,
    failures: f64,
    updated_ms: u64,
}

impl DecayedBeta {
    /// No evidence yet: reads as the uniform prior `Beta(1, 1)`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one observation with `reward` in `[0, 1]` (1 = success) made at `at_ms`.
    /// A reward outside `[0, 1]` is clamped; a NaN reward is ignored.
    pub fn observe(&mut self, reward: f64, at_ms: u64, decay: Decay) {
        if reward.is_nan() {
            return;
        }
        let reward = reward.clamp(0.0, 1.0);
        let weight = if at_ms >= self.updated_ms {
            let keep = decay.factor(at_ms - self.updated_ms);
            self.successes *= keep;
            self.failures *= keep;
            self.updated_ms = at_ms;
            1.0
        } else {
            decay.factor(self.updated_ms - at_ms)
        };
        self.successes += weight * reward;
        self.failures += weight * (1.0 - reward);
    }

    /// The discounted counts as seen at `now_ms` (no decay when `now_ms` is before the last
    /// update).
    pub fn counts_at(&self, now_ms: u64, decay: Decay) -> ArmPosterior {
        let keep = decay.factor(now_ms.saturating_sub(self.updated_ms));
        ArmPosterior { successes: self.successes * keep, failures: self.failures * keep }
    }

    /// Posterior mean `(1 + s) / (2 + s + f)` at `now_ms`.
    pub fn mean_at(&self, now_ms: u64, decay: Decay) -> f64 {
        let c = self.counts_at(now_ms, decay);
        (1.0 + c.successes) / (2.0 + c.successes + c.failures)
    }

    /// One Thompson draw from `Beta(1 + s, 1 + f)` at `now_ms`.
    pub fn sample(&self, now_ms: u64, decay: Decay, rng: &mut dyn RngCore) -> f64 {
        sample_beta(&self.counts_at(now_ms, decay), rng)
    }

    /// Clock of the last observation that moved the reference time.
    pub fn updated_ms(&self) -> u64 {
        self.updated_ms
    }
}

/// One draw from `Beta(1 + successes, 1 + failures)`; counts that are not finite and
/// non-negative read as zero, so the result is always in `[0, 1]`.
pub fn sample_beta(counts: &ArmPosterior, rng: &mut dyn RngCore) -> f64 {
    let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
    let (a, b) = (1.0 + clean(counts.successes), 1.0 + clean(counts.failures));
    match Beta::new(a, b) {
        Ok(beta) => beta.sample(rng).clamp(0.0, 1.0),
        // Unreachable for a, b >= 1 finite; the mean is the honest fallback.
        Err(_) => a / (a + b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const H: u64 = 1_000;

    fn decay() -> Decay {
        Decay::new(H).unwrap()
    }

    #[test]
    fn zero_half_life_is_rejected() {
        assert_eq!(Decay::new(0), Err(ZeroHalfLife));
        assert_eq!(Decay::default().half_life_ms(), DEFAULT_HALF_LIFE_MS);
    }

    #[test]
    fn fresh_posterior_is_the_uniform_prior() {
        let p = DecayedBeta::new();
        assert_eq!(p.counts_at(5_000, decay()), ArmPosterior::default());
        assert_eq!(p.mean_at(5_000, decay()), 0.5);
    }

    #[test]
    fn weight_halves_every_half_life() {
        let mut p = DecayedBeta::new();
        p.observe(1.0, 10_000, decay());
        p.observe(0.0, 10_000, decay());
        let c = p.counts_at(10_000 + H, decay());
        assert!((c.successes - 0.5).abs() < 1e-12 && (c.failures - 0.5).abs() < 1e-12, "{c:?}");
        let c = p.counts_at(10_000 + 3 * H, decay());
        assert!((c.successes - 0.125).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn late_observations_weigh_by_their_age() {
        let mut p = DecayedBeta::new();
        p.observe(1.0, 10_000, decay());
        p.observe(0.0, 10_000 - H, decay());
        let c = p.counts_at(10_000, decay());
        assert!((c.successes - 1.0).abs() < 1e-12 && (c.failures - 0.5).abs() < 1e-12, "{c:?}");
        assert_eq!(p.updated_ms(), 10_000);
        // Reading before the last update neither decays nor grows.
        assert_eq!(p.counts_at(0, decay()), p.counts_at(10_000, decay()));
    }

    #[test]
    fn a_recovered_arm_is_found_again_within_a_few_half_lives() {
        let mut p = DecayedBeta::new();
        for t in 0..1_000 {
            p.observe(0.0, t * 10, decay());
        }
        assert!(p.mean_at(10_000, decay()) < 0.05);
        let start = 10_000;
        for t in 0..50 {
            p.observe(1.0, start + 4 * H + t * 10, decay());
        }
        assert!(p.mean_at(start + 4 * H + 500, decay()) > 0.8, "{p:?}");
    }

    #[test]
    fn thompson_draws_follow_the_posterior_mean() {
        let mut rng = SmallRng::seed_from_u64(11);
        let mut p = DecayedBeta::new();
        for _ in 0..90 {
            p.observe(1.0, 0, decay());
        }
        for _ in 0..10 {
            p.observe(0.0, 0, decay());
        }
        let n = 4_000;
        let mean = (0..n).map(|_| p.sample(0, decay(), &mut rng)).sum::<f64>() / n as f64;
        // Beta(91, 11): mean 0.892, sd 0.031; the sample mean of 4,000 draws is within 0.005.
        assert!((mean - 91.0 / 102.0).abs() < 0.005, "{mean}");
    }

    #[test]
    fn bad_counts_sample_as_the_prior() {
        let mut rng = SmallRng::seed_from_u64(3);
        let bad = ArmPosterior { successes: f64::NAN, failures: f64::INFINITY };
        let x = sample_beta(&bad, &mut rng);
        assert!((0.0..=1.0).contains(&x));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Observe { reward: f64, at_ms: u64 },
        Read { now_ms: u64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        let time = prop_oneof![0..100_000u64, Just(0u64), Just(u64::MAX), any::<u64>()];
        let reward = prop_oneof![Just(0.0), Just(1.0), any::<f64>(), -2.0..2.0f64];
        prop_oneof![
            (reward, time.clone()).prop_map(|(reward, at_ms)| Op::Observe { reward, at_ms }),
            time.prop_map(|now_ms| Op::Read { now_ms }),
        ]
    }

    proptest! {
        #[test]
        fn posterior_stays_valid_under_any_sequence(
            ops in proptest::collection::vec(op(), 0..200),
            half_life in 1u64..10_000_000,
            seed in any::<u64>(),
        ) {
            let decay = Decay::new(half_life).unwrap();
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut p = DecayedBeta::new();
            let mut observed = 0usize;
            for op in ops {
                match op {
                    Op::Observe { reward, at_ms } => {
                        p.observe(reward, at_ms, decay);
                        observed += usize::from(!reward.is_nan());
                    }
                    Op::Read { now_ms } => {
                        let c = p.counts_at(now_ms, decay);
                        prop_assert!(c.successes.is_finite() && c.successes >= 0.0);
                        prop_assert!(c.failures.is_finite() && c.failures >= 0.0);
                        // Each observation weighs at most 1.
                        prop_assert!(c.successes + c.failures <= observed as f64 + 1e-9);
                        let mean = p.mean_at(now_ms, decay);
                        prop_assert!(mean > 0.0 && mean < 1.0);
                        let x = p.sample(now_ms, decay, &mut rng);
                        prop_assert!((0.0..=1.0).contains(&x));
                    }
                }
            }
        }
    }
}
