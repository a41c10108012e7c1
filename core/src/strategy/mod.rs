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
//! learning locally. Each count-based strategy is a [`Counted`](counts::Counted): the counts
//! ([`ArmCounts`](counts::ArmCounts), which count, export and import the same way for all of
//! them) and a [`CountRule`](counts::CountRule), only the algorithm's index or choice rule. For
//! the count-based strategies a restored instance chooses exactly as the original; the
//! snapshots of [`discover_exploit`], [`exp3`], [`fpl`], [`thompson_window`] and the linear
//! contextual strategies ([`linear`]) are lossy (their modules
//! say what is lost, their registry rows that they are), and local state is never exported:
//! what 429s taught ([`rate_limit`]), round robin's rotation, in-flight counts, Envoy-style
//! ejections.
//!
//! Strategies are built by name through [`StrategyKind`]; the names are the wire names used by
//! `?algo=`, `x-magnetar-algo`, the learner and the lab. [`StrategyKind::build`] uses every
//! default; [`StrategyKind::build_with`] takes [`StrategyParams`] (fleet weights, the
//! penalty-free budget, forgetting rates).
//!
//! The registry: everything the project knows about a strategy (wire name, description, what it
//! learns, whether it imports the learner's `/params`, what a restore keeps, how to build it) is
//! its one row of `strategy_registry!` at the end of this file, which declares its
//! [`StrategyKind`] variant and its [`StrategySpec`] ([`StrategyKind::spec`],
//! [`StrategyKind::REGISTRY`]). Adding a strategy is its file plus that row.
//!
//! Families:
//! - baselines: [`round_robin`], [`random`], [`weighted_random`], [`least_outstanding`];
//! - the flaky-load-balancer design (V1 to V8): [`discover_exploit`], [`ucb1`], [`ucb_attempt`],
//!   [`thompson`], [`thompson_attempt`], [`thompson_masked`], [`thompson_window`],
//!   [`blocking_bandit`];
//! - the bandit literature: [`thompson_discounted`], [`kl_ucb`], [`kl_ucb_plus`], [`ucb1_tuned`],
//!   [`moss`] (already the anytime MOSS), [`gaussian_thompson`], [`epsilon_greedy`], [`exp3`],
//!   [`fpl`];
//! - contextual (the request's features, [`crate::context`]): [`lin_ucb`], [`lin_thompson`], over
//!   the per-downstream ridge regressions of [`linear`];
//! - a peer baseline: [`envoy_outlier`] (what Envoy's outlier detection would do).
//!
//! Every learning strategy reads an outcome the same way unless its module says otherwise: a
//! success ([`Outcome::is_success`]) is a reward of 1, anything else (5xx, timeout, connection
//! error, 429) a reward of 0. The rate-limit-aware ones ([`thompson_masked`], [`thompson_window`],
//! [`blocking_bandit`]) do not count a 429 as a failure: they pace the downstream to the limit it
//! showed and rest it (see [`rate_limit`]).

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::Outcome;

pub mod beta;
pub mod blocking_bandit;
pub mod counts;
pub mod discover_exploit;
pub mod envoy_outlier;
pub mod epsilon_greedy;
pub mod exp3;
pub mod fpl;
pub mod gaussian_thompson;
pub mod kl_ucb;
pub mod kl_ucb_plus;
pub mod least_outstanding;
pub mod lin_thompson;
pub mod lin_ucb;
pub mod linear;
pub mod magnetar;
pub mod moss;
pub mod random;
pub mod rate_limit;
pub mod round_robin;
pub mod thompson;
pub mod thompson_attempt;
pub mod thompson_discounted;
pub mod thompson_masked;
pub mod thompson_window;
pub mod ucb1;
pub mod ucb1_tuned;
pub mod ucb_attempt;
pub mod weighted_random;

pub use crate::arm::ArmId;
pub use crate::select::SelectContext;

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
///
/// What the counts mean, for every strategy that exports them: `successes` is the (possibly
/// discounted or windowed) number of attempts on the arm that succeeded, `failures` the number
/// that failed, *as the strategy counted them* (the rate-limit-aware strategies do not count a
/// 429). The uniform prior `Beta(1, 1)` is not included: a fresh arm is `{0, 0}`. A count-based
/// strategy (UCB family, epsilon-greedy, V1) reads `successes + failures` as its pull count and
/// `successes / (successes + failures)` as its empirical mean, so a router can start any of them
/// from the learner's counts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ArmPosterior {
    /// Effective successes (may be fractional after decay).
    pub successes: f64,
    /// Effective failures (may be fractional after decay).
    pub failures: f64,
}

impl ArmPosterior {
    /// Adds one observation.
    pub fn observe(&mut self, success: bool) {
        if success {
            self.successes += 1.0;
        } else {
            self.failures += 1.0;
        }
    }

    /// Effective number of observations.
    pub fn pulls(&self) -> f64 {
        self.successes + self.failures
    }

    /// Empirical success rate `s / (s + f)`; `None` before any observation.
    pub fn empirical_mean(&self) -> Option<f64> {
        let n = self.pulls();
        (n > 0.0).then(|| self.successes / n)
    }

    /// Posterior mean `(1 + s) / (2 + s + f)` under the uniform prior.
    pub fn posterior_mean(&self) -> f64 {
        (1.0 + self.successes) / (2.0 + self.pulls())
    }

    /// The same counts with anything not finite and non-negative read as zero.
    pub fn sanitized(&self) -> ArmPosterior {
        let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        ArmPosterior { successes: clean(self.successes), failures: clean(self.failures) }
    }
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

    /// A snapshot of these counts taken at `now_ms`.
    pub fn of(arms: &[ArmPosterior], now_ms: u64) -> PosteriorSnapshot {
        PosteriorSnapshot {
            schema: PosteriorSnapshot::SCHEMA,
            taken_ms: now_ms,
            arms: arms.to_vec(),
        }
    }
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

    /// Learns from one attempt's outcome on `arm` for a request with this context (the one its
    /// [`SelectContext::request`] carried; `None` when unknown). Only contextual strategies read
    /// it; by default this is [`update`](Self::update).
    fn update_in_context(
        &mut self,
        arm: ArmId,
        feedback: &Feedback,
        _request: Option<&crate::context::RequestContext>,
    ) {
        self.update(arm, feedback);
    }

    /// A deadline for an attempt on `arm` shorter than the configured attempt timeout, when the
    /// strategy's latency model says an answer later than that is unlikely to come at all. The
    /// caller uses it only when a retry could follow (never for a request's last attempt) and
    /// never beyond its own attempt timeout. `None` (the default): the configured timeout.
    fn attempt_deadline_ms(&self, _arm: ArmId) -> Option<f64> {
        None
    }

    /// How long an attempt on `arm` may be outstanding before a hedge is sent to another
    /// downstream ([`crate::hedge`]), ms; `None` (the default): never hedge it.
    fn hedge_delay_ms(&self, _arm: ArmId) -> Option<f64> {
        None
    }

    /// The caller gave up on the attempt on `arm` sent at `sent_ms` without an outcome (a hedge
    /// of it answered first, and it was aborted at `now_ms`). The default learns nothing.
    fn abandoned(&mut self, _arm: ArmId, _sent_ms: u64, _now_ms: u64) {}

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

/// Picks the allowed arm with the highest score, breaking exact ties uniformly at random (the
/// RNG is only drawn on a tie). A NaN score counts as `-inf`. `None` only when every arm is
/// excluded.
pub fn argmax_allowed(
    ctx: &SelectContext<'_>,
    arms: usize,
    rng: &mut dyn RngCore,
    mut score: impl FnMut(ArmId) -> f64,
) -> Option<ArmId> {
    let mut best: Option<(ArmId, f64)> = None;
    let mut ties = 1u64;
    for arm in 0..arms {
        if ctx.is_excluded(arm) {
            continue;
        }
        let s = score(arm);
        let s = if s.is_nan() { f64::NEG_INFINITY } else { s };
        match best {
            Some((_, b)) if s < b => {}
            Some((_, b)) if s == b => {
                ties += 1;
                if rng.next_u64() % ties == 0 {
                    best = Some((arm, s));
                }
            }
            _ => {
                best = Some((arm, s));
                ties = 1;
            }
        }
    }
    best.map(|(arm, _)| arm)
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

/// Tunable parameters shared by [`StrategyKind::build_with`]. Each strategy reads only the
/// fields it needs and ignores the rest; `Default` gives every strategy's documented defaults.
/// Values out of range are sanitized by the strategies (see each field); use
/// [`StrategyParams::check`] to report them instead.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyParams {
    /// Relative weight per arm (`weighted_random`), e.g. from [`crate::fleet::Downstream::weight`].
    /// Empty means equal weights; a list of the wrong length is ignored.
    pub weights: Vec<f64>,
    /// Attempts per request that carry no penalty (`ucb_attempt`, `thompson_attempt`).
    pub penalty_free_attempts: u32,
    /// Per-step discount factor of `thompson_discounted`, in `(0, 1]`.
    pub discount: f64,
    /// Outcomes kept per arm by `thompson_window` (at least 1).
    pub window: usize,
    /// How long a 429 rests a downstream in `thompson_masked` and `thompson_window`, ms, on top
    /// of pacing it to its learned limit ([`rate_limit`]).
    pub rate_limit_cooldown_ms: u64,
    /// The policy `envoy_outlier` balances with among the hosts it has not ejected (Envoy's
    /// default, round robin, or random).
    pub envoy_lb: envoy_outlier::EnvoyLb,
    /// The parameters of `magnetar`.
    pub magnetar: magnetar::MagnetarConfig,
}

impl Default for StrategyParams {
    fn default() -> Self {
        StrategyParams {
            weights: Vec::new(),
            penalty_free_attempts: crate::retry::DEFAULT_MAX_ATTEMPTS,
            discount: thompson_discounted::DEFAULT_DISCOUNT,
            window: thompson_window::DEFAULT_WINDOW,
            rate_limit_cooldown_ms: thompson_masked::DEFAULT_COOLDOWN_MS,
            envoy_lb: envoy_outlier::EnvoyLb::default(),
            magnetar: magnetar::MagnetarConfig::default(),
        }
    }
}

/// A [`StrategyParams`] field is out of range. The message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamsError {
    #[error("weights: {got} weights given for {arms} downstreams")]
    WeightCount { arms: usize, got: usize },
    #[error("weights[{0}]: must be a finite number >= 0")]
    Weight(usize),
    #[error("discount: must be in (0, 1], got {0}")]
    Discount(f64),
    #[error("window: must be at least 1")]
    Window,
}

impl StrategyParams {
    /// Defaults, with the fleet's weights.
    pub fn from_fleet(fleet: &crate::fleet::Fleet) -> StrategyParams {
        StrategyParams {
            weights: fleet.downstreams().iter().map(|d| d.weight).collect(),
            ..StrategyParams::default()
        }
    }

    /// Reports the first field that a strategy would have to sanitize for a fleet of `arms`.
    pub fn check(&self, arms: usize) -> Result<(), ParamsError> {
        if !self.weights.is_empty() && self.weights.len() != arms {
            return Err(ParamsError::WeightCount { arms, got: self.weights.len() });
        }
        if let Some(i) = self.weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(ParamsError::Weight(i));
        }
        if !(self.discount > 0.0 && self.discount <= 1.0) {
            return Err(ParamsError::Discount(self.discount));
        }
        if self.window == 0 {
            return Err(ParamsError::Window);
        }
        Ok(())
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

/// What a strategy learns that a snapshot can carry, and so what importing the learner's
/// posterior gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learns {
    /// Nothing a snapshot carries: it exports zero counts and a restore only validates. What it
    /// keeps, if anything (a rotation, in-flight counts, ejections), is local.
    Nothing,
    /// The (possibly discounted) counts of every outcome it counted; an import is kept exactly.
    Counts,
    /// The counts of each arm's recent outcomes only; an import is scaled down to the window
    /// ([`StrategyParams::window`]).
    Window,
}

/// What an instance restored from a strategy's snapshot keeps of the original's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restores {
    /// Everything: it makes the same choices from the same random numbers.
    Exactly,
    /// Everything but what 429s taught: pacing, rests and backoff are local to one router
    /// instance by design (another instance's 429s say nothing about this one's share of a
    /// limit), so it chooses as the original as long as no 429 was seen.
    ExceptRateLimits,
    /// Not the choices, as the strategy's module documents.
    Lossy,
}

/// Everything the project knows about one strategy: its row in [`StrategyKind::REGISTRY`].
/// Nothing else decides by a strategy's name or variant.
#[derive(Clone, Copy, Debug)]
pub struct StrategySpec {
    pub kind: StrategyKind,
    /// The wire name (`?algo=`, `x-magnetar-algo`, the learner, the lab, serde).
    pub name: &'static str,
    /// One-line description (`GET /_magnetar/fleet`, the lab).
    pub describe: &'static str,
    pub learns: Learns,
    /// Whether a router starts it from, and refreshes it with, the learner's `/params`
    /// posterior.
    pub imports_params: bool,
    pub restores: Restores,
    /// Whether it decides for itself when a retry should repeat the previous attempt's
    /// downstream (`DISTINCT_DOWNSTREAMS=auto` lets it; for the others `auto` means `true`).
    pub plans_repeats: bool,
    /// A fresh instance for a fleet of `arms` downstreams.
    pub build: fn(usize, &StrategyParams) -> Box<dyn Strategy>,
}

impl StrategyKind {
    /// This strategy's registry row.
    pub fn spec(self) -> &'static StrategySpec {
        // The enum and the table are generated from the same rows, in the same order.
        &StrategyKind::REGISTRY[self as usize]
    }

    /// The wire name (`?algo=`).
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// One-line description.
    pub fn describe(self) -> &'static str {
        self.spec().describe
    }

    /// Whether the strategy learns something a snapshot carries (and so exports meaningful
    /// snapshots).
    pub fn learns(self) -> bool {
        self.spec().learns != Learns::Nothing
    }

    /// Whether a router starts it from, and refreshes it with, the learner's `/params`.
    pub fn imports_params(self) -> bool {
        self.spec().imports_params
    }

    /// What a restored instance keeps of the original's behaviour.
    pub fn restores(self) -> Restores {
        self.spec().restores
    }

    /// Whether it decides for itself when a retry repeats the previous downstream.
    pub fn plans_repeats(self) -> bool {
        self.spec().plans_repeats
    }

    /// Whether an instance restored from its snapshot chooses exactly as the original.
    pub fn lossless_snapshot(self) -> bool {
        self.spec().restores == Restores::Exactly
    }

    /// Comma-separated list of every wire name, for error messages.
    pub fn names() -> String {
        StrategyKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }

    /// Builds a fresh instance for a fleet of `arms` downstreams with default parameters.
    pub fn build(self, arms: usize) -> Box<dyn Strategy> {
        self.build_with(arms, &StrategyParams::default())
    }

    /// Builds a fresh instance for a fleet of `arms` downstreams with `params`.
    pub fn build_with(self, arms: usize, params: &StrategyParams) -> Box<dyn Strategy> {
        (self.spec().build)(arms, params)
    }
}

/// Declares the registry: one row per strategy gives its variant of [`StrategyKind`], its wire
/// name, its description and the rest of its [`StrategySpec`], so that adding a strategy is its
/// file plus one row. The enum stays an enum (exhaustive, `Copy`, serde names from the rows)
/// because the rest of the workspace holds and matches `StrategyKind` values.
macro_rules! strategy_registry {
    ($(
        $(#[$attr:meta])*
        $variant:ident => $name:literal : $describe:literal
            { $($field:ident : $value:expr),+ $(,)? }
    ),+ $(,)?) => {
        /// Every selectable algorithm, by wire name: one per row of [`StrategyKind::REGISTRY`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum StrategyKind {
            $($(#[$attr])* #[doc = $describe] #[serde(rename = $name)] $variant,)+
        }

        impl StrategyKind {
            /// Every kind, in documentation order.
            pub const ALL: &'static [StrategyKind] = &[$($(#[$attr])* StrategyKind::$variant,)+];

            /// Every strategy's row, in the order of [`StrategyKind::ALL`].
            pub const REGISTRY: &'static [StrategySpec] = &[$(
                $(#[$attr])*
                StrategySpec {
                    kind: StrategyKind::$variant,
                    name: $name,
                    describe: $describe,
                    $($field: $value,)+
                },
            )+];
        }
    };
}

strategy_registry! {
    RoundRobin => "round_robin": "cycle through the downstreams in order" {
        learns: Learns::Nothing, imports_params: false, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, _| Box::new(round_robin::RoundRobin::new(arms)),
    },
    Random => "random": "uniformly random downstream" {
        learns: Learns::Nothing, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(random::Random::new(arms)),
    },
    WeightedRandom => "weighted_random": "random downstream in proportion to its fleet weight" {
        learns: Learns::Nothing, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, p| Box::new(weighted_random::WeightedRandom::new(arms, &p.weights)),
    },
    LeastOutstanding => "least_outstanding":
        "power of two choices on in-flight requests (least outstanding requests)" {
        learns: Learns::Nothing, imports_params: false, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, _| Box::new(least_outstanding::LeastOutstanding::new(arms)),
    },
    DiscoverExploit => "discover_exploit":
        "V1: most uncertain downstream during discovery, then the best empirical rate" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, _| Box::new(discover_exploit::DiscoverExploit::new(arms)),
    },
    Ucb1 => "ucb1": "V2: UCB1 upper confidence bound" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(ucb1::Ucb1::new(arms)),
    },
    UcbAttempt => "ucb_attempt": "V3: UCB exploring harder during the penalty-free attempts" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, p| {
            Box::new(ucb_attempt::UcbAttempt::new(arms).penalty_free(p.penalty_free_attempts))
        },
    },
    Thompson => "thompson": "V4: Beta-Bernoulli Thompson sampling" {
        learns: Learns::Counts, imports_params: true, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(thompson::Thompson::new(arms)),
    },
    ThompsonAttempt => "thompson_attempt":
        "V5: Thompson sampling with wider draws during the penalty-free attempts" {
        learns: Learns::Counts, imports_params: true, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, p| {
            let s = thompson_attempt::ThompsonAttempt::new(arms);
            Box::new(s.penalty_free(p.penalty_free_attempts))
        },
    },
    ThompsonMasked => "thompson_masked":
        "V6: Thompson sampling; a 429 rests the downstream instead of counting as a failure" {
        learns: Learns::Counts, imports_params: true, restores: Restores::ExceptRateLimits, plans_repeats: false,
        build: |arms, p| {
            let s = thompson_masked::ThompsonMasked::new(arms);
            Box::new(s.cooldown(p.rate_limit_cooldown_ms))
        },
    },
    ThompsonWindow => "thompson_window":
        "V7: Thompson sampling over each downstream's recent outcomes only" {
        learns: Learns::Window, imports_params: true, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, p| {
            let s = thompson_window::ThompsonWindow::new(arms, p.window);
            Box::new(s.cooldown(p.rate_limit_cooldown_ms))
        },
    },
    BlockingBandit => "blocking_bandit":
        "V8: Thompson sampling; 429s block the downstream with exponential backoff" {
        learns: Learns::Counts, imports_params: false, restores: Restores::ExceptRateLimits, plans_repeats: false,
        build: |arms, _| Box::new(blocking_bandit::BlockingBandit::new(arms)),
    },
    ThompsonDiscounted => "thompson_discounted":
        "discounted Thompson sampling: every downstream's evidence fades each step" {
        learns: Learns::Counts, imports_params: true, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, p| {
            Box::new(thompson_discounted::ThompsonDiscounted::new(arms, p.discount))
        },
    },
    KlUcb => "kl_ucb": "KL-UCB: upper confidence bound from the Bernoulli KL divergence" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(kl_ucb::KlUcb::new(arms)),
    },
    Ucb1Tuned => "ucb1_tuned": "UCB1-Tuned: UCB1 with a variance-aware bonus" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(ucb1_tuned::Ucb1Tuned::new(arms)),
    },
    Moss => "moss": "MOSS: minimax-optimal UCB (anytime form)" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(moss::Moss::new(arms)),
    },
    EpsilonGreedy => "epsilon_greedy": "epsilon-greedy with a decaying exploration rate" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(epsilon_greedy::EpsilonGreedy::new(arms)),
    },
    Exp3 => "exp3": "EXP3: exponential weights for adversarial bandits" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, _| Box::new(exp3::Exp3::new(arms)),
    },
    GaussianThompson => "gaussian_thompson":
        "Gaussian Thompson sampling over success weighted by latency (1 - latency / 2 s)" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(gaussian_thompson::GaussianThompson::new(arms)),
    },
    KlUcbPlus => "kl_ucb_plus": "KL-UCB+: KL-UCB with each downstream's ln(t / N) exploration" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(kl_ucb_plus::KlUcbPlus::new(arms)),
    },
    Fpl => "fpl": "Follow the Perturbed Leader with geometric resampling (adversarial bandits)" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, _| Box::new(fpl::Fpl::new(arms)),
    },
    LinUcb => "lin_ucb":
        "LinUCB (disjoint): per-downstream ridge regression on the request's context, UCB" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, _| Box::new(lin_ucb::LinUcb::new(arms)),
    },
    LinThompson => "lin_thompson":
        "linear Thompson sampling: per-downstream ridge regression on the request's context" {
        learns: Learns::Counts, imports_params: false, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, _| Box::new(lin_thompson::LinThompson::new(arms)),
    },
    Magnetar => "magnetar":
        "Magnetar: change-point Thompson sampling, latency-aware attempt chains, same-host \
         retries when failures are independent, stall and rate-limit aware" {
        learns: Learns::Counts, imports_params: true, restores: Restores::Lossy,
        plans_repeats: true,
        build: |arms, p| {
            let s = magnetar::Magnetar::with_config(arms, p.magnetar);
            Box::new(s.cooldown(p.rate_limit_cooldown_ms))
        },
    },
    EnvoyOutlier => "envoy_outlier":
        "peer baseline: Envoy outlier detection (eject after consecutive 5xx) + round robin; \
         like Envoy, it can eject a downstream that is flaky but the best there is" {
        learns: Learns::Nothing, imports_params: false, restores: Restores::Lossy, plans_repeats: false,
        build: |arms, p| {
            let config = envoy_outlier::EnvoyConfig { lb: p.envoy_lb, ..Default::default() };
            Box::new(envoy_outlier::EnvoyOutlier::with_config(arms, config))
        },
    },
    // Test only: a trivial strategy added by its file and this row alone.
    #[cfg(test)]
    FirstAllowed => "first_allowed": "test only: the lowest-numbered allowed downstream" {
        learns: Learns::Nothing, imports_params: false, restores: Restores::Exactly, plans_repeats: false,
        build: |arms, _| Box::new(first_allowed::FirstAllowed::new(arms)),
    },
}

/// A strategy added by its file and one registry row only (see the `FirstAllowed` row).
#[cfg(test)]
mod first_allowed;

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
    fn every_row_is_its_kinds_spec() {
        assert_eq!(StrategyKind::ALL.len(), StrategyKind::REGISTRY.len());
        for (kind, spec) in StrategyKind::ALL.iter().zip(StrategyKind::REGISTRY) {
            assert_eq!(spec.kind, *kind);
            assert_eq!(kind.spec().name, spec.name);
            assert_eq!(kind.build(2).kind(), *kind, "{kind}: its row builds another strategy");
        }
    }

    /// `FirstAllowed` exists only in this crate's unit tests, added by its file
    /// (`first_allowed.rs`) and its registry row and nothing else; every unit test that
    /// enumerates `StrategyKind::ALL` (such as `every_kind_respects_exclusions`) runs it too.
    #[test]
    fn a_strategy_added_by_its_file_and_one_row_is_complete() {
        let kind: StrategyKind = "first-allowed".parse().unwrap();
        assert_eq!(kind, StrategyKind::FirstAllowed);
        assert!(StrategyKind::ALL.contains(&kind));
        assert_eq!(kind.to_string(), "first_allowed");
        assert_eq!(serde_json::to_string(&kind).unwrap(), "\"first_allowed\"");
        assert_eq!(serde_json::from_str::<StrategyKind>("\"first_allowed\"").unwrap(), kind);
        assert!(StrategyKind::names().ends_with(", first_allowed"));
        assert!(kind.describe().starts_with("test only"));
        assert!(!kind.learns() && !kind.imports_params() && kind.lossless_snapshot());
        let mut s = kind.build_with(3, &StrategyParams::default());
        assert_eq!((s.kind(), s.arms()), (kind, 3));
        let mut rng = SmallRng::seed_from_u64(1);
        let ctx = SelectContext::new(&[0], 2, 0);
        assert_eq!(s.select(&ctx, &mut rng), Some(1));
    }

    #[test]
    fn every_kind_respects_exclusions() {
        let mut rng = SmallRng::seed_from_u64(7);
        for kind in StrategyKind::ALL {
            let mut s = kind.build(4);
            for step in 0..200u64 {
                let excluded = [(step % 4) as usize, ((step + 1) % 4) as usize];
                let ctx = SelectContext::new(&excluded, 2, step);
                let arm = s.select(&ctx, &mut rng).unwrap();
                assert!(arm < 4 && !excluded.contains(&arm), "{kind} picked {arm}");
                s.update(arm, &Feedback::at(Outcome::ServerError, step));
            }
            let all = [0, 1, 2, 3];
            let ctx = SelectContext::new(&all, 3, 0);
            assert_eq!(s.select(&ctx, &mut rng), None, "{kind}");
        }
    }

    #[test]
    fn envoy_outlier_balances_randomly_when_asked() {
        let params =
            StrategyParams { envoy_lb: envoy_outlier::EnvoyLb::Random, ..Default::default() };
        let picks = |params: &StrategyParams| {
            let mut s = StrategyKind::EnvoyOutlier.build_with(3, params);
            let mut rng = SmallRng::seed_from_u64(11);
            (0..30)
                .map(|t| s.select(&SelectContext::first(t), &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        let cycle: Vec<_> = (0..30).map(|t| t % 3).collect();
        assert_eq!(picks(&StrategyParams::default()), cycle, "default: Envoy's round robin");
        let random = picks(&params);
        assert_ne!(random, cycle);
        assert!((0..3).all(|a| random.contains(&a)), "{random:?}");
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
