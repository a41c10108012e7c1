//! V4: Beta-Bernoulli Thompson sampling.
//!
//! Each downstream's success probability has a `Beta(1 + s, 1 + f)` posterior (uniform prior,
//! `s` successes and `f` failures seen). To choose, draw once from every allowed downstream's
//! posterior and take the highest draw: a downstream is chosen with the probability that it is the
//! best, so exploration fades exactly as fast as the evidence allows. Thompson, "On the likelihood
//! that one unknown probability exceeds another" (Biometrika 25, 1933); optimal regret for
//! Bernoulli rewards: Kaufmann, Korda and Munos, "Thompson sampling: an asymptotically optimal
//! finite-time analysis" (ALT 2012). The flaky-load-balancer design's V4.
//!
//! No parameters (the prior is `Beta(1, 1)`). Any non-success (5xx, timeout, connection error,
//! 429) is a failure. Draws come from [`beta::sample`]. It never forgets:
//! see [`thompson_discounted`](super::thompson_discounted) and
//! [`thompson_window`](super::thompson_window) for fleets that change.
//!
//! Snapshot: the counts, exactly (see [`ArmCounts`]); the router imports the learner's
//! posterior into this strategy.

use super::beta::{BetaSampler, Draw};
use super::counts::{ArmCounts, CountRule, Counted, Pick};
use super::{ArmId, ArmPosterior, Feedback, SelectContext, StrategyKind, beta};

/// The allowed arm with the highest draw; `draw` returns `None` for an arm to skip. Draws are
/// continuous, so ties (to the lower index) have probability zero.
#[inline(always)]
pub fn best_draw(
    ctx: &SelectContext<'_>,
    arms: usize,
    mut draw: impl FnMut(ArmId) -> Option<Draw>,
) -> Option<ArmId> {
    let mut best: Option<(ArmId, Draw)> = None;
    for arm in 0..arms {
        if ctx.is_excluded(arm) {
            continue;
        }
        if let Some(x) = draw(arm) {
            if best.is_none_or(|(_, b)| x.beats(b)) {
                best = Some((arm, x));
            }
        }
    }
    best.map(|(arm, _)| arm)
}

/// One prepared sampler per arm, drawing from `Beta(1 + s, 1 + f)` of its counts; whoever
/// changes the counts refreshes it ([`Samplers::observe`], [`Samplers::of`]).
#[derive(Debug, Clone)]
pub struct Samplers(Vec<BetaSampler>);

impl Samplers {
    /// A sampler per arm, none observed.
    pub fn new(arms: usize) -> Samplers {
        Samplers(vec![BetaSampler::for_counts(0.0, 0.0); arms])
    }

    /// A sampler per arm of `counts`.
    pub fn of(counts: &[ArmPosterior]) -> Samplers {
        Samplers(counts.iter().map(|c| BetaSampler::for_counts(c.successes, c.failures)).collect())
    }

    /// Counts one outcome on `arm` as plain Thompson sampling does (anything but a success is a
    /// failure) and refreshes its sampler.
    pub fn observe(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        if let Some(c) = counts.observe(arm, feedback.outcome.is_success()) {
            self.0[arm] = BetaSampler::for_counts(c.successes, c.failures);
        }
    }

    /// One draw from `arm`'s posterior.
    pub fn draw<R: rand::Rng + ?Sized>(&self, arm: ArmId, rng: &mut R) -> Draw {
        self.0[arm].draw(rng)
    }
}

/// Thompson sampling's rule: the highest draw, from samplers kept in step with the counts.
#[derive(Debug, Clone)]
pub struct Thompson {
    samplers: Samplers,
}

impl Thompson {
    /// Thompson sampling over `arms` untried downstreams.
    pub fn new(arms: usize) -> Counted<Thompson> {
        Counted::new(arms, Thompson { samplers: Samplers::new(arms) })
    }
}

impl CountRule for Thompson {
    const KIND: StrategyKind = StrategyKind::Thompson;

    fn choose(&mut self, Pick { counts, ctx, rng }: Pick<'_>) -> Option<ArmId> {
        let mut rng = beta::local_rng(rng);
        best_draw(ctx, counts.len(), |a| Some(self.samplers.draw(a, &mut rng)))
    }

    fn learn(&mut self, counts: &mut ArmCounts, arm: ArmId, feedback: &Feedback) {
        self.samplers.observe(counts, arm, feedback);
    }

    fn restored(&mut self, counts: &ArmCounts) {
        self.samplers = Samplers::of(counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use crate::strategy::{PosteriorSnapshot, Strategy};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn picks_each_arm_with_the_probability_it_is_best() {
        // Beta(11, 1) vs Beta(1, 11): P(second beats first) is about 1e-6; 5,000 draws see none.
        let mut s = Thompson::new(2);
        let arms = vec![
            ArmPosterior { successes: 10.0, failures: 0.0 },
            ArmPosterior { successes: 0.0, failures: 10.0 },
        ];
        s.restore(&PosteriorSnapshot::of(&arms, 0)).unwrap();
        let mut rng = SmallRng::seed_from_u64(6);
        assert!((0..5_000).all(|t| s.select(&SelectContext::first(t), &mut rng) == Some(0)));
        // Two fresh arms: each is best half the time. 20,000 draws: ±2 points is 5.6 sigma.
        let mut s = Thompson::new(2);
        let ones = (0..20_000)
            .filter(|t| s.select(&SelectContext::first(*t), &mut rng) == Some(1))
            .count();
        assert!((ones as f64 / 20_000.0 - 0.5).abs() < 0.02, "{ones}");
    }

    #[test]
    fn counts_every_non_success_as_a_failure() {
        let mut s = Thompson::new(1);
        for o in Outcome::ALL {
            s.update(0, &Feedback::at(o, 0));
        }
        s.update(3, &Feedback::at(Outcome::Success, 0));
        assert_eq!(s.counts()[0], ArmPosterior { successes: 2.0, failures: 4.0 });
    }
}
