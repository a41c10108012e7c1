//! `magnetar-sim`: the seeded fleet simulator: any strategy, any scenario, reproducible to the bit.
//!
//! A discrete-event simulation of one router in front of a [`Scenario`]'s downstreams. Client
//! requests arrive every `interarrival_ms`; each gets an [`AttemptPlan`] (the penalty-free
//! budget, a different downstream per attempt) and, when configured, must pay for retries from a
//! [`RetryBudget`]. An attempt is chosen by the strategy at the simulated time, answered by the
//! downstream model ([`model`]) after its latency, and only then reported to the strategy, so
//! strategies see the feedback delay and the concurrency a real router sees (at the default 100
//! requests/s and 20 ms latency, about two attempts are in flight at any time).
//!
//! In a scenario where context matters (a [`context::ContextSplit`]) every request carries a
//! [`RequestContext`], drawn at arrival from a stream of its own: the strategy sees it in its
//! `SelectContext` and with its feedback (`Strategy::update_in_context`), and the downstreams'
//! odds for the request (so the oracle and the regret) depend on it.
//!
//! Randomness: the downstreams draw from one RNG and the strategy from another, both derived
//! from the seed, so two strategies run with the same seed face the same luck as far as their
//! choices allow, and a run is a pure function of (scenario, strategy, config, seed).
//!
//! Regret is measured against an oracle that knows every downstream's success probability at
//! every moment (0 while it is down or saturated): each attempt adds the best probability among
//! the downstreams it was allowed to choose minus the chosen one's (see [`metrics`]). Each
//! request's *oracle success* is that of the best attempt chain the run's options allow
//! ([`oracle`]: attempt budget, distinct or repeat retries, deadline), and a run reports its
//! success as a percentage of it ([`RunResult::percent_of_oracle`]).
//!
//! Hedging ([`SimConfig::hedge`], off by default so the tables of runs without it stand) is the
//! router's: [`magnetar_core::hedge::due_ms`] says when a request's next hedge is due, the
//! budget pays for it, the first good answer wins and the attempts still in flight are
//! abandoned ([`Strategy::abandoned`]); [`RunResult::hedges`] and [`RunResult::abandoned`]
//! count what it cost.
//!
//! Public API in brief: [`Scenario::builtin`] / [`Scenario::builtins`] (names in [`SCENARIOS`]),
//! [`SimConfig`], [`run_kind`] / [`run`] for one seeded run, [`aggregate`] over seeds, and
//! [`oracle::best_chain`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::metrics::{Metrics, MetricsSummary, RequestRecord};
use magnetar_core::Outcome;
use magnetar_core::config::{DEFAULT_ATTEMPT_TIMEOUT_MS, DEFAULT_REQUEST_DEADLINE_MS};
use magnetar_core::context::RequestContext;
use magnetar_core::hedge::{self, HedgeMode, InFlight};
use magnetar_core::retry::{
    AttemptPlan, AttemptRecord, Next, RetryBudget, RetryBudgetConfig, RetryMode,
};
use magnetar_core::strategy::{ArmId, Feedback, Strategy, StrategyKind, StrategyParams};

pub mod arrivals;
pub mod context;
pub mod file;
pub mod fleet;
pub mod metrics;
pub mod model;
pub mod oracle;
pub mod report;
pub mod routers;
pub mod scenario;

pub use arrivals::Arrivals;
pub use file::{Format, ScenarioError};
pub use fleet::{FleetConfig, FleetStats, LearnerSync, Spread, run_fleet};
pub use report::{Aggregate, Stat, aggregate};
pub use scenario::{SCENARIOS, Scenario, UnknownScenario};

use arrivals::ArrivalClock;
use model::{Attempted, Conditions, DownstreamState, RequestKind};
use oracle::RetryOptions;
use routers::{Finished, Routers, Single};

/// Default time between two client requests (100 requests/s).
pub const DEFAULT_INTERARRIVAL_MS: f64 = 10.0;
/// Default number of points in a run's time series.
pub const DEFAULT_SERIES_POINTS: usize = 200;

/// How a run is driven.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimConfig {
    /// Client requests in the run.
    pub requests: u64,
    /// Mean time between two arrivals.
    pub interarrival_ms: f64,
    /// How arrivals are spaced around that mean (evenly by default).
    pub arrivals: Arrivals,
    /// Attempt budget per request (1 = no retry).
    pub max_attempts: u32,
    /// Which downstreams a retry may go to.
    pub retry_mode: RetryMode,
    /// Retry budget across requests; `None` (`null` in JSON) for unlimited retries within
    /// `max_attempts`.
    pub retry_budget: Option<RetryBudgetConfig>,
    /// Deadline of one attempt (a slower answer is a timeout).
    pub attempt_timeout_ms: u64,
    /// Deadline of a whole request.
    pub request_deadline_ms: u64,
    /// Points in the time series.
    pub series_points: usize,
    /// Report the share of requests that succeeded within this many ms of their arrival
    /// (`OBJECTIVE=latency_slo:N`'s objective); `None` (`null`): no objective.
    pub latency_objective_ms: Option<u64>,
    /// Whether slow attempts are hedged (the router's `HEDGE`; off by default here).
    pub hedge: HedgeMode,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            requests: 20_000,
            interarrival_ms: DEFAULT_INTERARRIVAL_MS,
            arrivals: Arrivals::Constant,
            max_attempts: 1,
            retry_mode: RetryMode::Distinct,
            retry_budget: Some(RetryBudgetConfig::default()),
            attempt_timeout_ms: DEFAULT_ATTEMPT_TIMEOUT_MS,
            request_deadline_ms: DEFAULT_REQUEST_DEADLINE_MS,
            series_points: DEFAULT_SERIES_POINTS,
            latency_objective_ms: None,
            hedge: HedgeMode::Off,
        }
    }
}

impl SimConfig {
    /// The simulated time the arrivals span.
    pub fn duration_ms(&self) -> u64 {
        (self.requests as f64 * self.interarrival_ms).ceil() as u64
    }

    /// Requests per point of the time series.
    pub fn bucket(&self) -> u64 {
        self.requests.div_ceil(self.series_points.max(1) as u64).max(1)
    }
}

/// Per-bucket sums over the requests of each bucket (by arrival order).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Series {
    /// Requests per bucket.
    pub bucket: u64,
    /// Pseudo-regret of all attempts of the bucket's requests.
    pub regret: Vec<f64>,
    /// Requests that succeeded.
    pub successes: Vec<f64>,
    /// Success probability of the first attempt's choice (success without the outcome noise).
    pub expected_first: Vec<f64>,
    /// The oracle's request success probability.
    pub oracle: Vec<f64>,
    /// Attempts made.
    pub attempts: Vec<f64>,
}

impl Series {
    fn new(config: &SimConfig) -> Series {
        let bucket = config.bucket();
        let n = config.requests.div_ceil(bucket) as usize;
        Series {
            bucket,
            regret: vec![0.0; n],
            successes: vec![0.0; n],
            expected_first: vec![0.0; n],
            oracle: vec![0.0; n],
            attempts: vec![0.0; n],
        }
    }
}

/// What one seeded run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub strategy: StrategyKind,
    pub seed: u64,
    pub summary: MetricsSummary,
    /// Mean of the oracle's request success probability.
    pub oracle_success_rate: f64,
    /// Mean of the oracle chain's expected latency.
    pub oracle_latency_ms: f64,
    /// Retries the retry budget refused.
    pub retries_denied: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Attempts abandoned without an outcome (another attempt of their request answered
    /// first); they are not in `summary.attempts`.
    pub abandoned: u64,
    pub series: Series,
    /// What the isolates did, for a fleet run ([`run_fleet`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetStats>,
}

impl RunResult {
    /// Attempts sent per request, abandoned ones included.
    pub fn sent_per_request(&self) -> f64 {
        (self.summary.attempts + self.abandoned) as f64 / self.summary.requests.max(1) as f64
    }

    /// Success rate as a percentage of the oracle's (100 when the oracle serves nothing).
    pub fn percent_of_oracle(&self) -> f64 {
        if self.oracle_success_rate > 0.0 {
            100.0 * self.summary.success_rate / self.oracle_success_rate
        } else {
            100.0
        }
    }
}

/// One attempt in flight: what its downstream will answer and when it was sent.
struct Flight {
    /// The sequence number of its completion event.
    id: u64,
    at: InFlight,
    attempt: u32,
    outcome: Outcome,
    latency_ms: f64,
}

struct Request {
    index: u64,
    isolate: usize,
    plan: AttemptPlan,
    started_us: u64,
    oracle: f64,
    kind: RequestKind,
    first_success: Option<bool>,
    flights: Vec<Flight>,
    /// The sequence number of the pending hedge timer, if any.
    hedge_timer: Option<u64>,
    /// The request's context and whether it is of the scenario's special class (scenarios with
    /// a [`context::ContextSplit`] only).
    context: Option<(bool, RequestContext)>,
}

/// What a queued event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// The attempt with this sequence number answers.
    Answer,
    /// The request's hedge timer with this sequence number fires.
    Hedge,
}

/// Derives an independent stream seed.
pub(crate) fn stream(seed: u64, salt: u64) -> u64 {
    // splitmix64 finaliser
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs a freshly built `kind` over `scenario`.
pub fn run_kind(
    scenario: &Scenario,
    kind: StrategyKind,
    params: &StrategyParams,
    config: &SimConfig,
    seed: u64,
) -> RunResult {
    let mut strategy = kind.build_with(scenario.arms(), params);
    run(scenario, strategy.as_mut(), config, seed)
}

/// Runs `strategy` over `scenario`. The strategy should be fresh (or restored on purpose).
pub fn run(
    scenario: &Scenario,
    strategy: &mut dyn Strategy,
    config: &SimConfig,
    seed: u64,
) -> RunResult {
    let routers = Single { strategy, rng: SmallRng::seed_from_u64(stream(seed, 2)) };
    Engine::new(scenario, routers, config, seed).run(seed)
}

/// The seed of the strategy RNG of a run (isolate 0's in a fleet).
pub(crate) fn strategy_seed(seed: u64) -> u64 {
    stream(seed, 2)
}

pub(crate) struct Engine<'a, R: Routers> {
    scenario: &'a Scenario,
    routers: R,
    arrivals: ArrivalClock,
    /// The caller's configuration with the scenario's own arrival rate and attempt timeout.
    config: SimConfig,
    env_rng: SmallRng,
    request_rng: SmallRng,
    context_rng: SmallRng,
    states: Vec<DownstreamState>,
    budget: Option<RetryBudget>,
    metrics: Metrics,
    series: Series,
    slots: Vec<Option<Request>>,
    free: Vec<usize>,
    events: BinaryHeap<Reverse<(u64, u64, usize, Event)>>,
    seq: u64,
    oracle_sum: f64,
    oracle_latency_sum: f64,
    retries_denied: u64,
    hedges: u64,
    abandoned: u64,
    probabilities: Vec<f64>,
    odds: Vec<oracle::HostOdds>,
}

impl<'a, R: Routers> Engine<'a, R> {
    pub(crate) fn new(scenario: &'a Scenario, routers: R, config: &SimConfig, seed: u64) -> Self {
        let arms = scenario.arms();
        let config = scenario.configure(config);
        Engine {
            scenario,
            routers,
            arrivals: ArrivalClock::new(&config, stream(seed, 6)),
            env_rng: SmallRng::seed_from_u64(stream(seed, 1)),
            request_rng: SmallRng::seed_from_u64(stream(seed, 3)),
            context_rng: SmallRng::seed_from_u64(stream(seed, 4)),
            states: (0..arms)
                .map(|i| {
                    DownstreamState::new(&scenario.downstreams[i], stream(seed, 100 + i as u64))
                })
                .collect(),
            budget: config.retry_budget.map(RetryBudget::new),
            metrics: Metrics::new(arms).with_objective(config.latency_objective_ms),
            series: Series::new(&config),
            config,
            slots: Vec::new(),
            free: Vec::new(),
            events: BinaryHeap::new(),
            seq: 0,
            oracle_sum: 0.0,
            oracle_latency_sum: 0.0,
            retries_denied: 0,
            hedges: 0,
            abandoned: 0,
            probabilities: vec![0.0; arms],
            odds: Vec::with_capacity(arms),
        }
    }

    pub(crate) fn run(mut self, seed: u64) -> RunResult {
        let mut next = 0u64;
        loop {
            let arrival = (next < self.config.requests).then(|| self.arrivals.peek());
            let completion = self.events.peek().map(|Reverse((t, _, _, _))| *t);
            // A completion at the same time as an arrival is handled first.
            match (arrival, completion) {
                (None, None) => break,
                (Some(a), c) if c.is_none_or(|c| a < c) => {
                    self.arrive(next, a);
                    self.arrivals.advance();
                    next += 1;
                }
                _ => self.complete(),
            }
        }
        let requests = self.config.requests.max(1) as f64;
        RunResult {
            strategy: self.routers.kind(),
            seed,
            summary: self.metrics.summary(),
            oracle_success_rate: self.oracle_sum / requests,
            oracle_latency_ms: self.oracle_latency_sum / requests,
            retries_denied: self.retries_denied,
            hedges: self.hedges,
            abandoned: self.abandoned,
            series: self.series,
            fleet: self.routers.stats(),
        }
    }

    /// What an attempt meets at `t_us` besides its downstream (a brownout's cap).
    fn conditions(&self, t_us: u64) -> Conditions {
        let t_ms = t_us / 1_000;
        let success_cap = match self.scenario.brownout {
            Some(b) if (b.from_ms..b.until_ms).contains(&t_ms) => b.success,
            _ => 1.0,
        };
        Conditions { attempt_timeout_ms: self.config.attempt_timeout_ms as f64, success_cap }
    }

    /// Refreshes `self.odds` and `self.probabilities` at `t_us` for a request of the scenario's
    /// special class or not (see [`context::ContextSplit::cap`]).
    fn refresh_probabilities(&mut self, t_us: u64, special: bool) {
        let base = self.conditions(t_us);
        self.odds.clear();
        for (i, d) in self.scenario.downstreams.iter().enumerate() {
            let mut cond = base;
            if let Some(split) = &self.scenario.context {
                cond.success_cap = cond.success_cap.min(split.cap(special, i));
            }
            let odds = self.states[i].odds(d, t_us, &cond);
            self.probabilities[i] = odds.success;
            self.odds.push(odds);
        }
    }

    fn retry_options(&self) -> RetryOptions {
        RetryOptions {
            max_attempts: self.config.max_attempts,
            distinct: self.config.retry_mode == RetryMode::Distinct,
            attempt_timeout_ms: self.config.attempt_timeout_ms,
            request_deadline_ms: self.config.request_deadline_ms,
        }
    }

    /// The kind of the next request (poison shares), drawn only when the scenario has poison.
    fn draw_kind(&mut self) -> RequestKind {
        let Some(p) = self.scenario.poison else { return RequestKind::Normal };
        let u: f64 = self.request_rng.random();
        if u < p.server_error_share {
            RequestKind::ServerPoison
        } else if u < p.server_error_share + p.client_error_share {
            RequestKind::ClientPoison
        } else {
            RequestKind::Normal
        }
    }

    fn arrive(&mut self, index: u64, t_us: u64) {
        let now_ms = t_us / 1_000;
        if let Some(b) = &mut self.budget {
            b.deposit(now_ms);
        }
        let kind = self.draw_kind();
        let context = self.scenario.context.as_ref().map(|c| c.draw(&mut self.context_rng));
        self.refresh_probabilities(t_us, context.as_ref().is_some_and(|c| c.0));
        let isolate = self.routers.assign(t_us);
        let chain = oracle::best_chain(&self.odds, &self.retry_options());
        // A 5xx poison request fails on every host: the oracle cannot serve it either. A 4xx
        // one is answered (a success by the project's definition) by any host that answers.
        let oracle = match kind {
            RequestKind::Normal => chain.success,
            RequestKind::ServerPoison => 0.0,
            RequestKind::ClientPoison => {
                let answers = (0..self.states.len())
                    .any(|i| self.states[i].answers(&self.scenario.downstreams[i], t_us));
                f64::from(u8::from(answers))
            }
        };
        self.oracle_sum += oracle;
        self.oracle_latency_sum += chain.expected_latency_ms;
        let bucket = (index / self.series.bucket) as usize;
        self.series.oracle[bucket] += oracle;
        let plan = AttemptPlan::new(
            self.config.max_attempts,
            self.scenario.arms(),
            now_ms + self.config.request_deadline_ms,
        )
        .started_at(now_ms)
        .mode(self.config.retry_mode);
        let request = Request {
            index,
            isolate,
            plan,
            started_us: t_us,
            oracle,
            kind,
            first_success: None,
            flights: Vec::new(),
            hedge_timer: None,
            context,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(request);
                slot
            }
            None => {
                self.slots.push(Some(request));
                self.slots.len() - 1
            }
        };
        self.start_attempt(slot, t_us, false);
    }

    /// Sends the next attempt of the request in `slot`: a retry or first attempt when nothing is
    /// in flight, a hedge (`hedged`) beside the attempts in flight.
    fn start_attempt(&mut self, slot: usize, t_us: u64, hedged: bool) {
        let Some(req) = self.slots[slot].as_mut() else { return };
        let now_ms = t_us / 1_000;
        let in_flight: Vec<InFlight> = req.flights.iter().map(|f| f.at).collect();
        let attempt = req.plan.next_attempt() + in_flight.len() as u32;
        let excluded = if hedged {
            hedge::exclusions(&req.plan, &in_flight)
        } else {
            req.plan.excluded().to_vec()
        };
        let request = req.context.as_ref().map(|c| &c.1);
        let ctx = if hedged {
            hedge::select_context(&req.plan, &excluded, in_flight.len(), now_ms).request(request)
        } else {
            req.plan.select_context(now_ms).request(request)
        };
        let isolate = req.isolate;
        let (strategy, rng) = self.routers.strategy(isolate);
        let pick = strategy.select(&ctx, rng);
        let arm = match pick {
            Some(arm) if arm < self.scenario.arms() && !excluded.contains(&arm) => arm,
            Some(arm) => panic!("{} chose arm {arm}, excluded or unknown", strategy.kind()),
            None if hedged => return,
            None => return self.finish(slot, t_us),
        };
        let index = req.index;
        let special = req.context.as_ref().is_some_and(|c| c.0);
        self.refresh_probabilities(t_us, special);
        let mut cond = self.conditions(t_us);
        if let Some(split) = &self.scenario.context {
            cond.success_cap = cond.success_cap.min(split.cap(special, arm));
        }
        let Some(req) = self.slots[slot].as_mut() else { return };
        // The router's own rule for this attempt's deadline (shorter when the strategy asks and a
        // retry could follow).
        let hint = self.routers.strategy(isolate).0.attempt_deadline_ms(arm);
        cond.attempt_timeout_ms =
            req.plan.attempt_timeout_ms(t_us / 1_000, self.config.attempt_timeout_ms, hint) as f64;
        // A host that already failed this request answers a retry with its repeat odds.
        let failed =
            |h: ArmId| req.plan.attempts().iter().any(|a| a.arm == h && a.outcome.is_retryable());
        for h in 0..self.probabilities.len() {
            if failed(h) {
                self.probabilities[h] = self.odds[h].repeat_success;
            }
        }
        let retry_of_failed = failed(arm);
        let best = (0..self.probabilities.len())
            .filter(|a| !excluded.contains(a))
            .map(|a| self.probabilities[a])
            .fold(0.0, f64::max);
        let regret = best - self.probabilities[arm];
        self.metrics.add_regret(regret);
        let bucket = (index / self.series.bucket) as usize;
        self.series.regret[bucket] += regret;
        self.series.attempts[bucket] += 1.0;
        if attempt == 1 {
            self.series.expected_first[bucket] += self.probabilities[arm];
        }
        let (outcome, latency_ms) = self.states[arm].attempt(
            &self.scenario.downstreams[arm],
            t_us,
            &cond,
            Attempted { kind: req.kind, retry_of_failed },
            &mut self.env_rng,
        );
        let done = t_us + (latency_ms * 1_000.0).round().max(1.0) as u64;
        self.seq += 1;
        let at = InFlight {
            arm,
            sent_ms: now_ms,
            timeout_ms: now_ms + cond.attempt_timeout_ms as u64,
            hedged,
        };
        req.flights.push(Flight { id: self.seq, at, attempt, outcome, latency_ms });
        self.events.push(Reverse((done, self.seq, slot, Event::Answer)));
        if hedged {
            self.hedges += 1;
        }
        self.schedule_hedge(slot);
    }

    /// Sets the request's hedge timer when a hedge of its newest attempt may follow.
    fn schedule_hedge(&mut self, slot: usize) {
        let Some(req) = self.slots[slot].as_mut() else { return };
        req.hedge_timer = None;
        let in_flight: Vec<InFlight> = req.flights.iter().map(|f| f.at).collect();
        let Some(newest) = in_flight.iter().max_by_key(|f| f.sent_ms) else { return };
        let delay = self.routers.strategy(req.isolate).0.hedge_delay_ms(newest.arm);
        if let Some(due_ms) = hedge::due_ms(self.config.hedge, &req.plan, &in_flight, delay) {
            self.seq += 1;
            req.hedge_timer = Some(self.seq);
            self.events.push(Reverse((due_ms * 1_000, self.seq, slot, Event::Hedge)));
        }
    }

    fn complete(&mut self) {
        let Some(Reverse((t_us, id, slot, event))) = self.events.pop() else { return };
        let now_ms = t_us / 1_000;
        let Some(req) = self.slots[slot].as_mut() else { return };
        if event == Event::Hedge {
            if req.hedge_timer != Some(id) {
                return;
            }
            req.hedge_timer = None;
            // A hedge is a retry as far as the budget is concerned.
            if self.budget.as_mut().is_none_or(|b| b.try_withdraw(now_ms)) {
                self.start_attempt(slot, t_us, true);
            } else {
                self.retries_denied += 1;
            }
            return;
        }
        // An answer of an attempt already abandoned (its request is over) is ignored.
        let Some(i) = req.flights.iter().position(|f| f.id == id) else { return };
        let f = req.flights.remove(i);
        let (arm, outcome, latency_ms, attempt) = (f.at.arm, f.outcome, f.latency_ms, f.attempt);
        let (strategy, _) = self.routers.strategy(req.isolate);
        let feedback = Feedback { outcome, latency_ms, now_ms, attempt };
        strategy.update_in_context(arm, &feedback, req.context.as_ref().map(|c| &c.1));
        self.metrics.record_attempt(arm, outcome, attempt);
        if attempt == 1 {
            req.first_success = Some(outcome.is_success());
        }
        let record = AttemptRecord { arm, outcome, status: None, latency_ms, hedged: f.at.hedged };
        let others = req.flights.len();
        if others > 0 {
            if hedge::record_racing(&mut req.plan, record, now_ms, others).is_some() {
                self.finish(slot, t_us);
            }
            return;
        }
        let next = match &mut self.budget {
            Some(b) => req.plan.record_budgeted(record, now_ms, b),
            None => req.plan.record(record, now_ms),
        };
        if req.plan.budget_denied() {
            self.retries_denied += 1;
        }
        match next {
            Next::Retry => self.start_attempt(slot, t_us, false),
            Next::Answer | Next::GiveUp => self.finish(slot, t_us),
        }
    }

    fn finish(&mut self, slot: usize, t_us: u64) {
        let Some(req) = self.slots[slot].take() else { return };
        self.free.push(slot);
        for f in &req.flights {
            self.routers.strategy(req.isolate).0.abandoned(f.at.arm, f.at.sent_ms, t_us / 1_000);
            self.abandoned += 1;
        }
        let succeeded = req.plan.succeeded();
        self.metrics.record_request(&RequestRecord {
            succeeded,
            first_attempt_succeeded: req.first_success.unwrap_or(false),
            attempts: req.plan.attempts().len() as u32,
            latency_ms: t_us.saturating_sub(req.started_us) as f64 / 1_000.0,
            oracle_success: Some(req.oracle),
        });
        let bucket = (req.index / self.series.bucket) as usize;
        self.series.successes[bucket] += f64::from(u8::from(succeeded));
        let final_outcome = req.plan.attempts().last().map_or(Outcome::ServerError, |a| a.outcome);
        self.routers.finished(Finished {
            isolate: req.isolate,
            started_us: req.started_us,
            finished_us: t_us,
            attempts: req.plan.attempts(),
            final_outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick(requests: u64) -> SimConfig {
        SimConfig { requests, ..SimConfig::default() }
    }

    #[test]
    fn runs_are_reproducible_and_seeds_differ() {
        let s = Scenario::named("constant", quick(2_000).duration_ms()).unwrap();
        let p = StrategyParams::default();
        let a = run_kind(&s, StrategyKind::Thompson, &p, &quick(2_000), 7);
        let b = run_kind(&s, StrategyKind::Thompson, &p, &quick(2_000), 7);
        let c = run_kind(&s, StrategyKind::Thompson, &p, &quick(2_000), 8);
        assert_eq!(a.summary, b.summary);
        assert_eq!(a.series, b.series);
        assert_ne!(a.summary, c.summary);
        assert_eq!(a.summary.requests, 2_000);
        assert_eq!(a.series.successes.iter().sum::<f64>() as u64, a.summary.successes);
    }

    #[test]
    fn the_config_records_the_retry_budget() {
        let json = serde_json::to_value(SimConfig::default()).unwrap();
        assert_eq!(json["retry_budget"]["retry_percent"], 0.2);
        assert_eq!(json["retry_budget"]["min_per_sec"], 10);
        assert_eq!(json["retry_budget"]["ttl_ms"], 10_000);
        let off = SimConfig { retry_budget: None, ..SimConfig::default() };
        assert!(serde_json::to_value(off).unwrap()["retry_budget"].is_null());
    }

    #[test]
    fn oracle_strategy_has_no_regret_and_round_robin_has_the_mean() {
        let config = quick(3_000);
        let s = Scenario::constant("two", &[0.9, 0.3]);
        let rr = run_kind(&s, StrategyKind::RoundRobin, &StrategyParams::default(), &config, 1);
        // Round robin alternates: half its attempts lose 0.6 each.
        assert!((rr.summary.regret - 0.3 * 3_000.0).abs() < 1e-6, "{}", rr.summary.regret);
        assert!((rr.oracle_success_rate - 0.9).abs() < 1e-12);
        let weights = StrategyParams { weights: vec![1.0, 0.0], ..StrategyParams::default() };
        let best = run_kind(&s, StrategyKind::WeightedRandom, &weights, &config, 1);
        assert_eq!(best.summary.regret, 0.0);
        assert_eq!(best.summary.traffic_share, [1.0, 0.0]);
    }

    #[test]
    fn retries_stop_at_the_budget_and_distinct_downstreams() {
        let config = SimConfig { max_attempts: 3, retry_budget: None, ..quick(500) };
        let s = Scenario::constant("dead", &[0.0, 0.0]);
        let r = run_kind(&s, StrategyKind::Random, &StrategyParams::default(), &config, 3);
        assert_eq!(r.summary.max_attempts, 2, "only two distinct downstreams");
        assert_eq!(r.summary.success_rate, 0.0);
        let s = Scenario::constant("dead3", &[0.0, 0.0, 0.0, 0.0]);
        let r = run_kind(&s, StrategyKind::Random, &StrategyParams::default(), &config, 3);
        assert_eq!(r.summary.max_attempts, 3);
        assert_eq!(r.summary.attempts, 1_500);
    }

    #[test]
    fn the_retry_budget_caps_retries_on_a_dead_fleet() {
        // 100 req/s for 50 s, every attempt fails: 20% of requests plus 10/s of reserve.
        let config = SimConfig { max_attempts: 3, ..quick(5_000) };
        let s = Scenario::constant("dead", &[0.0, 0.0, 0.0]);
        let r = run_kind(&s, StrategyKind::RoundRobin, &StrategyParams::default(), &config, 3);
        let retries = r.summary.attempts - r.summary.requests;
        assert!(retries <= 5_000 / 5 + 10 * 60, "{retries}");
        assert!(r.retries_denied > 0);
    }
}
