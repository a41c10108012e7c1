//! Least outstanding requests by the power of two choices.
//!
//! Draw two distinct allowed downstreams uniformly at random and send the attempt to the one
//! with fewer attempts in flight (ties go to the first draw). Mitzenmacher, "The power of two
//! choices in randomized load balancing" (IEEE TPDS 12(10), 2001); the same policy as tower's
//! `balance::p2c` and Envoy's `LEAST_REQUEST` with `choice_count: 2`. It learns nothing about
//! failures: it only steers away from slow or stuck downstreams, whose attempts pile up.
//!
//! The in-flight count of an arm goes up on [`select`](Strategy::select) and down on
//! [`update`](Strategy::update), so the caller must report every attempt it started (the router
//! and the simulator do). No parameters.

use rand::RngCore;

use super::{ArmId, Feedback, SelectContext, Strategy, StrategyKind};

/// Power of two choices on in-flight attempts.
#[derive(Debug, Clone)]
pub struct LeastOutstanding {
    in_flight: Vec<u32>,
}

impl LeastOutstanding {
    pub fn new(arms: usize) -> Self {
        LeastOutstanding { in_flight: vec![0; arms] }
    }

    /// Attempts started on `arm` and not yet reported.
    pub fn in_flight(&self, arm: ArmId) -> u32 {
        self.in_flight.get(arm).copied().unwrap_or(0)
    }
}

impl Strategy for LeastOutstanding {
    fn kind(&self) -> StrategyKind {
        StrategyKind::LeastOutstanding
    }

    fn arms(&self) -> usize {
        self.in_flight.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        let arms = self.arms();
        let allowed = (0..arms).filter(|a| !ctx.is_excluded(*a)).count();
        let nth = |n: usize| (0..arms).filter(|a| !ctx.is_excluded(*a)).nth(n);
        let arm = match allowed {
            0 => return None,
            1 => nth(0)?,
            _ => {
                let i = (rng.next_u64() % allowed as u64) as usize;
                let mut j = (rng.next_u64() % (allowed as u64 - 1)) as usize;
                if j >= i {
                    j += 1;
                }
                let (a, b) = (nth(i)?, nth(j)?);
                if self.in_flight[b] < self.in_flight[a] { b } else { a }
            }
        };
        self.in_flight[arm] = self.in_flight[arm].saturating_add(1);
        Some(arm)
    }

    fn update(&mut self, arm: ArmId, _feedback: &Feedback) {
        if let Some(n) = self.in_flight.get_mut(arm) {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn avoids_the_arm_with_attempts_piling_up() {
        let mut rng = SmallRng::seed_from_u64(4);
        let mut s = LeastOutstanding::new(2);
        // Arm 0 never answers; arm 1 answers at once. After the first few picks arm 0 is
        // always the busier of the two.
        let mut picks = [0u32; 2];
        for t in 0..1_000 {
            let arm = s.select(&SelectContext::first(t), &mut rng).unwrap();
            picks[arm] += 1;
            if arm == 1 {
                s.update(1, &Feedback::at(Outcome::Success, t));
            }
        }
        assert!(picks[0] <= 2, "{picks:?}");
        assert_eq!(s.in_flight(0), picks[0]);
        assert_eq!(s.in_flight(1), 0);
    }

    #[test]
    fn in_flight_never_underflows_and_unknown_arms_are_ignored() {
        let mut s = LeastOutstanding::new(2);
        s.update(0, &Feedback::at(Outcome::Success, 0));
        s.update(7, &Feedback::at(Outcome::Success, 0));
        assert_eq!(s.in_flight(0), 0);
    }

    #[test]
    fn two_choices_spread_an_idle_fleet_evenly() {
        // Every attempt completes before the next: all counts are 0 and the choice is uniform.
        // 30,000 draws over 3 arms: ±1.5 points is over 5 sigma.
        let mut rng = SmallRng::seed_from_u64(12);
        let mut s = LeastOutstanding::new(3);
        let mut counts = [0u32; 3];
        for t in 0..30_000 {
            let arm = s.select(&SelectContext::first(t), &mut rng).unwrap();
            counts[arm] += 1;
            s.update(arm, &Feedback::at(Outcome::Success, t));
        }
        for c in counts {
            assert!((f64::from(c) / 30_000.0 - 1.0 / 3.0).abs() < 0.015, "{counts:?}");
        }
    }
}
