//! `magnetar`: Magnetar's own strategy. Thompson sampling that forgets only when a downstream
//! changes, plans the request's whole attempt chain for success first and latency second,
//! retries the same downstream when its failures are independent, notices a stalling downstream
//! before its attempts time out, and paces rate-limited downstreams.
//!
//! Per downstream it keeps:
//!
//! - a **change-point posterior** ([`change`]): the success evidence since the last detected
//!   change (long memory: nothing is forgotten while the downstream behaves the same) and a
//!   candidate "it changed" hypothesis whose weight grows with time without observations
//!   (hazard [`MagnetarConfig::hazard_per_s`]). Each selection draws the downstream's success
//!   probability from the mixture (Mellor and Shapiro's change-point Thompson sampling);
//! - a **latency model** ([`latency`]): a log-normal fit with a peak-sensitive update, and the
//!   attempts still in flight. An attempt outstanding for more than
//!   [`MagnetarConfig::stall_factor`] times the downstream's 99th percentile (and at least
//!   [`MagnetarConfig::stall_min_ms`]) counts as a failure when the downstream is drawn, so a
//!   downstream that stalls loses its traffic within a fraction of the attempt timeout;
//! - a **repeat rate**: how often an attempt right after a failure on the same downstream
//!   succeeded (`Beta` with a prior of [`REPEAT_PRIOR`] pseudo-attempts at the downstream's drawn
//!   rate, so with no evidence a repeat is taken to be as good as a first try). Sticky failures
//!   drive it down and the chain moves on; independent ones keep it at the downstream's rate and
//!   the chain may retry the best downstream rather than a worse one;
//! - what its **429s** taught ([`rate_limit`](super::rate_limit)): paced to the learned limit and
//!   rested after each 429, which is not counted as a failure (as V6 does).
//!
//! - **hedging** ([`crate::hedge`], `HEDGE=auto`): an attempt outstanding longer than the
//!   downstream's latency 95th percentile ([`HEDGE_Z`], once [`DEADLINE_MIN_SAMPLES`] answers
//!   are known) is hedged by one to another downstream. An attempt abandoned after its p99
//!   (it lost the race) is learned as a slow failure, as its cut-off at the deadline would be;
//!   one abandoned sooner (usually the hedge, cut short by the first answer) only leaves
//!   [`Pending`].
//!
//! A selection then asks [`chain`] for the first downstream of the best chain of the request's
//! remaining attempts ([`SelectContext::remaining`]): the most probable slots, ordered by success
//! per unit of expected cost (expected latency plus [`MagnetarConfig::attempt_cost_ms`]). With one
//! attempt left that is the most probable downstream. Repeats are considered only when the
//! router allows them ([`MagnetarConfig::repeats`], `DISTINCT_DOWNSTREAMS=auto`): then the
//! previous attempt's downstream is not vetoed ([`SelectContext::previous`]) and its slot is its
//! repeat rate.
//!
//! Parameters and why ([`MagnetarConfig`]):
//! - `hazard_per_s` = [`DEFAULT_HAZARD_PER_S`] (0.03: a change somewhere in the fleet every
//!   half minute or so, shared among its downstreams; a prior belief, not a forgetting rate):
//!   sets how often an unused downstream is probed again. The simulator's `recovery`, `abrupt`,
//!   `cyclic` and `random_outages` scenarios want it high, the stationary ones (`many` above all:
//!   39 downstreams to probe) low. Swept over every built-in scenario at 0.02, 0.03 and 0.05
//!   (10 seeds, one attempt): 0.03 is the value at which no scenario falls more than 0.5 points
//!   behind the best other strategy (`many` -0.43, `drift` -0.40), while it leads by 0.7 to 1.6
//!   points on the changing fleets; with 0 the strategy is exactly Thompson sampling;
//! - `attempt_cost_ms` = [`DEFAULT_ATTEMPT_COST_MS`] (50 ms): what one more attempt costs besides
//!   its latency (load on the fleet, the retry budget), so that a bad but fast downstream is not
//!   tried first merely because it is fast. At 10 ms the `reliable_slow` fleet's 70% host at
//!   10 ms went first, its failures spent the retry budget and success fell to 99.48%; at 50 ms
//!   the 97% host at 20 ms goes first: 100.00% with a p50 of 20 ms, where Thompson sampling's
//!   is 200 ms;
//! - `stall_factor` = [`DEFAULT_STALL_FACTOR`] and `stall_min_ms` = [`DEFAULT_STALL_MIN_MS`]:
//!   about one attempt in a hundred passes the 99th percentile, several times it almost never.
//!
//! Shared with the learner: the settled success evidence ([`Strategy::snapshot`]); an import
//! replaces it and restarts the candidate. Local to the instance: the candidate, the latency
//! model, the in-flight attempts, the repeat rates and the rate limits.
//!
//! Memory per route: about 200 bytes per downstream plus 16 bytes per attempt in flight (at most
//! [`latency::PENDING_CAP`] per downstream).

use rand::{Rng, RngCore};

use super::beta::{self, BetaSampler};
use super::rate_limit::RateLimits;
use super::{
    ArmId, ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, SnapshotError, Strategy,
    StrategyKind, validate_snapshot,
};
use crate::Outcome;

pub mod chain;
pub mod change;
pub mod latency;

use chain::Candidate;
use change::ChangePoint;
use latency::{LatencyModel, Pending};

/// Prior belief in a change of a downstream's success rate, per second.
pub const DEFAULT_HAZARD_PER_S: f64 = 0.03;
/// Cost of one attempt beyond its latency, ms.
pub const DEFAULT_ATTEMPT_COST_MS: f64 = 50.0;
/// An attempt outstanding this many times the downstream's p99 is overdue.
pub const DEFAULT_STALL_FACTOR: f64 = 3.0;
/// ... and for at least this long.
pub const DEFAULT_STALL_MIN_MS: f64 = 20.0;
/// Pseudo-attempts of the repeat rate's prior.
pub const REPEAT_PRIOR: f64 = 2.0;
/// How long a 429 rests a downstream, on top of pacing it (V6's default).
pub const DEFAULT_COOLDOWN_MS: u64 = super::thompson_masked::DEFAULT_COOLDOWN_MS;

/// What a request's attempt chain is chosen for (`OBJECTIVE`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Objective {
    /// The request's success within its deadline; among equally likely chains, the one with the
    /// lower expected latency (`success`, the default).
    #[default]
    Success,
    /// The request's success within this many ms of its arrival (`latency_slo:N`): an answer
    /// later than that counts as a failure when choosing.
    LatencySlo { ms: u64 },
}

/// `OBJECTIVE` is not `success` or `latency_slo:N` with N a whole number of ms >= 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid objective {0:?}; valid objectives: success, latency_slo:N (N in ms, >= 1)")]
pub struct InvalidObjective(pub String);

impl std::str::FromStr for Objective {
    type Err = InvalidObjective;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("success") {
            return Ok(Objective::Success);
        }
        let ms = t
            .strip_prefix("latency_slo:")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .filter(|ms| *ms >= 1)
            .ok_or_else(|| InvalidObjective(s.to_owned()))?;
        Ok(Objective::LatencySlo { ms })
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Objective::Success => f.write_str("success"),
            Objective::LatencySlo { ms } => write!(f, "latency_slo:{ms}"),
        }
    }
}

/// An attempt is cut off after this many times the downstream's 99th percentile when a retry
/// can follow (see [`Strategy::attempt_deadline_ms`]).
pub const DEADLINE_P99_FACTOR: f64 = 5.0;
/// ... and never before this many ms.
pub const DEADLINE_MIN_MS: f64 = 50.0;
/// Latencies a downstream's model must have seen before it shortens its attempts.
pub const DEADLINE_MIN_SAMPLES: u64 = 20;
/// The standard normal quantile of a hedge's delay: the 95th percentile.
pub const HEDGE_Z: f64 = 1.645;
/// A hedge is never sent sooner than this after its attempt, ms.
pub const HEDGE_MIN_DELAY_MS: f64 = 5.0;

/// The strategy's parameters (see the module documentation for why these defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MagnetarConfig {
    pub objective: Objective,
    pub hazard_per_s: f64,
    pub attempt_cost_ms: f64,
    pub stall_factor: f64,
    pub stall_min_ms: f64,
    /// Whether a retry may repeat the previous attempt's downstream.
    pub repeats: bool,
    /// Latencies are capped at this (the attempt timeout), ms.
    pub attempt_timeout_ms: f64,
}

impl Default for MagnetarConfig {
    fn default() -> Self {
        MagnetarConfig {
            objective: Objective::Success,
            hazard_per_s: DEFAULT_HAZARD_PER_S,
            attempt_cost_ms: DEFAULT_ATTEMPT_COST_MS,
            stall_factor: DEFAULT_STALL_FACTOR,
            stall_min_ms: DEFAULT_STALL_MIN_MS,
            repeats: false,
            attempt_timeout_ms: crate::retry::DEFAULT_ATTEMPT_TIMEOUT_MS as f64,
        }
    }
}

/// A [`MagnetarConfig`] field out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MagnetarConfigError {
    #[error("change hazard: must be a finite number >= 0 per second, got {0}")]
    Hazard(f64),
    #[error("attempt cost: must be a finite number >= 0 ms, got {0}")]
    AttemptCost(f64),
    #[error("stall factor: must be a finite number >= 1, got {0}")]
    StallFactor(f64),
}

/// A finite number of at least `min`: the rule of every numeric field.
fn in_range(x: f64, min: f64) -> bool {
    x.is_finite() && x >= min
}

impl MagnetarConfig {
    /// Reports the first field out of range.
    pub fn check(&self) -> Result<(), MagnetarConfigError> {
        if !in_range(self.hazard_per_s, 0.0) {
            return Err(MagnetarConfigError::Hazard(self.hazard_per_s));
        }
        if !in_range(self.attempt_cost_ms, 0.0) {
            return Err(MagnetarConfigError::AttemptCost(self.attempt_cost_ms));
        }
        if !in_range(self.stall_factor, 1.0) {
            return Err(MagnetarConfigError::StallFactor(self.stall_factor));
        }
        Ok(())
    }

    /// The same parameters with each field out of range replaced by its default.
    pub fn sanitized(self) -> MagnetarConfig {
        let d = MagnetarConfig::default();
        let pick = |x: f64, min: f64, default: f64| if in_range(x, min) { x } else { default };
        MagnetarConfig {
            hazard_per_s: pick(self.hazard_per_s, 0.0, d.hazard_per_s),
            attempt_cost_ms: pick(self.attempt_cost_ms, 0.0, d.attempt_cost_ms),
            stall_factor: pick(self.stall_factor, 1.0, d.stall_factor),
            ..self
        }
    }
}

/// What the strategy knows about one downstream.
#[derive(Clone, Debug)]
struct ArmState {
    change: ChangePoint,
    settled: BetaSampler,
    candidate: BetaSampler,
    repeat: ArmPosterior,
    latency: LatencyModel,
    pending: Pending,
}

impl ArmState {
    fn new() -> ArmState {
        ArmState {
            change: ChangePoint::default(),
            settled: BetaSampler::for_counts(0.0, 0.0),
            candidate: BetaSampler::for_counts(0.0, 0.0),
            repeat: ArmPosterior::default(),
            latency: LatencyModel::default(),
            pending: Pending::default(),
        }
    }

    fn refresh(&mut self) {
        let (s, c) = (&self.change.settled, &self.change.candidate);
        self.settled = BetaSampler::for_counts(s.successes, s.failures);
        self.candidate = BetaSampler::for_counts(c.successes, c.failures);
    }

    /// A draw of the success probability of an attempt sent now.
    fn draw(&self, now_ms: u64, hazard: f64, cfg: &MagnetarConfig, rng: &mut impl Rng) -> f64 {
        let (mut w, fresh) = self.change.w_at(now_ms, hazard);
        let overdue = if self.latency.known() {
            let threshold = (self.latency.p99() * cfg.stall_factor).max(cfg.stall_min_ms);
            self.pending.overdue(now_ms, threshold)
        } else {
            0
        };
        if overdue > 0 {
            w = self.change.w_with_failures(w, fresh, overdue);
        }
        let from_candidate = w > 0.0 && rng.random::<f64>() < w;
        if overdue == 0 {
            return match (from_candidate, fresh) {
                (false, _) => self.settled.sample(rng),
                (true, false) => self.candidate.sample(rng),
                (true, true) => rng.random::<f64>(),
            };
        }
        let empty = ArmPosterior::default();
        let c = match (from_candidate, fresh) {
            (false, _) => &self.change.settled,
            (true, false) => &self.change.candidate,
            (true, true) => &empty,
        };
        BetaSampler::for_counts(c.successes, c.failures + f64::from(overdue)).sample(rng)
    }

    /// The repeat rate given a drawn rate `p`.
    fn repeat_rate(&self, p: f64) -> f64 {
        let r = &self.repeat;
        (REPEAT_PRIOR * p + r.successes) / (REPEAT_PRIOR + r.pulls())
    }
}

/// Magnetar's strategy.
#[derive(Debug, Clone)]
pub struct Magnetar {
    arms: Vec<ArmState>,
    limits: RateLimits,
    config: MagnetarConfig,
    cooldown_ms: u64,
    /// Reused buffer of the candidates of one selection.
    candidates: Vec<Candidate>,
}

impl Magnetar {
    pub fn new(arms: usize) -> Self {
        Magnetar::with_config(arms, MagnetarConfig::default())
    }

    /// Out-of-range parameters are replaced by their defaults (check them with
    /// [`MagnetarConfig::check`] to report them instead).
    pub fn with_config(arms: usize, config: MagnetarConfig) -> Self {
        let config = config.sanitized();
        Magnetar {
            arms: (0..arms).map(|_| ArmState::new()).collect(),
            limits: RateLimits::new(arms),
            config,
            cooldown_ms: DEFAULT_COOLDOWN_MS,
            candidates: Vec::with_capacity(arms),
        }
    }

    /// Overrides the 429 cooldown.
    pub fn cooldown(mut self, cooldown_ms: u64) -> Self {
        self.cooldown_ms = cooldown_ms;
        self
    }

    /// The change hazard of one downstream, per ms: the fleet's shared among its downstreams.
    fn hazard_per_ms(&self) -> f64 {
        self.config.hazard_per_s / 1_000.0 / self.arms.len().max(1) as f64
    }

    /// The parameters in force.
    pub fn config(&self) -> &MagnetarConfig {
        &self.config
    }

    /// Changes detected on `arm` so far.
    pub fn changes(&self, arm: ArmId) -> u64 {
        self.arms.get(arm).map_or(0, |a| a.change.changes)
    }

    /// The settled success evidence of `arm`.
    pub fn settled(&self, arm: ArmId) -> Option<&ArmPosterior> {
        self.arms.get(arm).map(|a| &a.change.settled)
    }

    /// The repeat evidence of `arm` (attempts right after a failure there).
    pub fn repeats(&self, arm: ArmId) -> Option<&ArmPosterior> {
        self.arms.get(arm).map(|a| &a.repeat)
    }

    /// The latency model of `arm`.
    pub fn latency(&self, arm: ArmId) -> Option<&LatencyModel> {
        self.arms.get(arm).map(|a| &a.latency)
    }
}

impl Strategy for Magnetar {
    fn kind(&self) -> StrategyKind {
        StrategyKind::Magnetar
    }

    fn arms(&self) -> usize {
        self.arms.len()
    }

    fn select(&mut self, ctx: &SelectContext<'_>, rng: &mut dyn RngCore) -> Option<ArmId> {
        self.limits.prepare(ctx);
        let mut rng = beta::local_rng(rng);
        let now = ctx.now_ms;
        let cfg = self.config;
        let hazard = self.hazard_per_ms();
        let repeats = cfg.repeats;
        let cap = cfg.attempt_timeout_ms.max(1.0);
        // A downstream whose latency is not known yet costs what the known ones cost on average.
        let (known, sum) = self
            .arms
            .iter()
            .filter_map(|a| a.latency.expected_ms(cap))
            .fold((0usize, 0.0), |(n, s), x| (n + 1, s + x));
        let unknown_cost = if known > 0 { sum / known as f64 } else { 0.0 };
        self.candidates.clear();
        for (arm, a) in self.arms.iter().enumerate() {
            if ctx.is_excluded(arm) || !self.limits.available(arm, now) {
                continue;
            }
            let drawn = a.draw(now, hazard, &cfg, &mut rng);
            let repeat = a.repeat_rate(drawn);
            let mut p = if ctx.previous == Some(arm) { repeat } else { drawn };
            if let Objective::LatencySlo { ms } = cfg.objective {
                p *= a.latency.within(ms.saturating_sub(ctx.elapsed_ms) as f64);
            }
            let latency = a.latency.expected_ms(cap).unwrap_or(unknown_cost);
            self.candidates.push(Candidate {
                arm,
                p,
                repeat,
                cost: latency + cfg.attempt_cost_ms + f64::EPSILON,
            });
        }
        let arm = chain::first(&self.candidates, ctx.remaining, repeats)
            .or_else(|| self.limits.soonest(ctx))?;
        self.limits.sent(arm, now);
        if let Some(a) = self.arms.get_mut(arm) {
            a.pending.sent(now, ctx.previous == Some(arm));
        }
        Some(arm)
    }

    fn update(&mut self, arm: ArmId, feedback: &Feedback) {
        let hazard = self.hazard_per_ms();
        let Some(a) = self.arms.get_mut(arm) else { return };
        let repeat = a.pending.answered(feedback.now_ms, feedback.latency_ms);
        match feedback.outcome {
            Outcome::RateLimited => {
                self.limits.rate_limited(arm, feedback, self.cooldown_ms);
                return;
            }
            Outcome::ConnectError => {}
            _ => a.latency.observe(feedback.latency_ms),
        }
        let success = feedback.outcome.is_success();
        a.change.observe(success, feedback.now_ms, hazard);
        if repeat {
            a.repeat.observe(success);
        }
        a.refresh();
    }

    fn attempt_deadline_ms(&self, arm: ArmId) -> Option<f64> {
        let model = &self.arms.get(arm)?.latency;
        (model.samples() >= DEADLINE_MIN_SAMPLES)
            .then(|| (model.p99() * DEADLINE_P99_FACTOR).max(DEADLINE_MIN_MS))
    }

    /// The latency model's 95th percentile ("The Tail at Scale"), once it has seen
    /// [`DEADLINE_MIN_SAMPLES`] answers, and at least [`HEDGE_MIN_DELAY_MS`].
    fn hedge_delay_ms(&self, arm: ArmId) -> Option<f64> {
        let model = &self.arms.get(arm)?.latency;
        (model.samples() >= DEADLINE_MIN_SAMPLES)
            .then(|| model.quantile(HEDGE_Z).max(HEDGE_MIN_DELAY_MS))
    }

    /// The abandoned attempt is no longer in flight. What it took so far is only a lower bound of
    /// its latency. Beyond the downstream's 99th percentile it is what an attempt cut off at its
    /// deadline is: a slow answer (learned as a peak) and a failure, so a downstream whose
    /// attempts keep losing to hedges loses its traffic as it would to timeouts. Below, it says
    /// nothing (most abandoned attempts are hedges cut short by the first attempt's answer,
    /// after a few ms) and is only forgotten.
    fn abandoned(&mut self, arm: ArmId, sent_ms: u64, now_ms: u64) {
        let hazard = self.hazard_per_ms();
        let Some(a) = self.arms.get_mut(arm) else { return };
        let elapsed = now_ms.saturating_sub(sent_ms) as f64;
        a.pending.answered(now_ms, elapsed);
        if a.latency.known() && elapsed > a.latency.p99() {
            a.latency.observe(elapsed);
            a.change.observe(false, now_ms, hazard);
            a.refresh();
        }
    }

    fn snapshot(&self, now_ms: u64) -> PosteriorSnapshot {
        let settled: Vec<ArmPosterior> =
            self.arms.iter().map(|a| a.change.settled.clone()).collect();
        PosteriorSnapshot::of(&settled, now_ms)
    }

    fn restore(&mut self, snapshot: &PosteriorSnapshot) -> Result<(), SnapshotError> {
        validate_snapshot(snapshot, self.arms.len())?;
        for (a, p) in self.arms.iter_mut().zip(&snapshot.arms) {
            a.change.restore(p.clone(), snapshot.taken_ms);
            a.refresh();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
