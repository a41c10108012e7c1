//! State that lives as long as one Worker isolate: the parsed configuration, one strategy
//! instance per (route, strategy), the RNG, and counters.
//!
//! A handler obtains the state once per request with [`Isolate::get`] and passes the handle to
//! whatever touches it, so a signature shows what reads or changes isolate state. The handle only
//! exists once the configuration parsed, so no code path runs on a missing or default state.
//! Workers run one isolate per thread: the handle is an `Rc` around a `RefCell`, kept in a
//! `thread_local` between requests. Its methods borrow, decide and release; none holds the
//! borrow across an `.await` (a nested borrow would be a bug, and panics as one).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use magnetar_core::config::{ConfigError, RouterConfig};
use magnetar_core::context::RequestContext;
use magnetar_core::health::{self, FleetHealth, HealthView};
use magnetar_core::retry::{AttemptPlan, AttemptRecord, Next, RetryBudget};
use magnetar_core::retry_after::Vetoes;
use magnetar_core::strategy::{
    ArmId, Feedback, PosteriorSnapshot, SelectContext, Strategy, StrategyKind, StrategyParams,
};
use magnetar_core::tags;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use serde::Serialize;
use worker::Env;

use crate::clock;

/// Routes with learning state in one isolate. A new route beyond this evicts the route used
/// least recently (its strategies and the learner's posterior for it): every route that is in
/// use learns on its own, and memory stays bounded whatever paths clients send.
pub const MAX_ROUTES: usize = 256;

/// Variables the router reads (wrangler `[vars]` and secrets).
const VARS: &[&str] = &[
    "FLEET",
    "DEFAULT_ALGO",
    "MAX_ATTEMPTS",
    "DISTINCT_DOWNSTREAMS",
    "ATTEMPT_TIMEOUT_MS",
    "REQUEST_DEADLINE_MS",
    "KAFKA_REST_URL",
    "KAFKA_TOPIC",
    "KAFKA_REST_API",
    "KAFKA_CLUSTER_ID",
    "KAFKA_REST_USERNAME",
    "KAFKA_REST_PASSWORD",
    "TELEMETRY_TIMEOUT_MS",
    "LEARNER_URL",
    "LEARNER_TIMEOUT_MS",
    "PARAMS_REFRESH_MS",
    "CORS_ALLOW_ORIGIN",
    "RETRY_BUDGET_PERCENT",
    "RETRY_BUDGET_MIN_PER_SEC",
    "RETRY_BUDGET_TTL_MS",
    "MAX_BODY_BYTES",
    "ADMIN_TOKEN",
    "LEARNER_TOKEN",
    "ROUTES",
    "FORWARDED_TRUST",
    "HEDGE",
];

/// Counters of one isolate, exposed by `/_magnetar/state`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    pub requests: u64,
    pub attempts: u64,
    pub telemetry_batches_sent: u64,
    pub telemetry_batches_failed: u64,
    pub telemetry_records_rejected: u64,
    pub learner_recommendations: u64,
    pub learner_fallbacks: u64,
    pub params_refreshes: u64,
    pub params_refresh_failures: u64,
    pub routes_evicted: u64,
    pub retries_denied: u64,
    /// Requests refused with 413: their body was over `MAX_BODY_BYTES`.
    pub bodies_too_large: u64,
    /// Hedges sent (`HEDGE=auto`).
    pub hedges: u64,
    /// Hedges due that the retry budget refused.
    pub hedges_denied: u64,
    /// Attempts aborted because another attempt of their request answered first.
    pub attempts_abandoned: u64,
    /// 429/503 answers whose `Retry-After` vetoed their downstream.
    pub retry_after_vetoes: u64,
}

struct State {
    instance_id: String,
    rng: SmallRng,
    strategies: HashMap<(String, StrategyKind), Box<dyn Strategy>>,
    /// Routes with learning state (at most [`MAX_ROUTES`]), with the tick of their last use.
    routes: HashMap<String, u64>,
    /// Increases on every use of a route; orders routes for eviction.
    tick: u64,
    /// The learner's latest posterior per route, applied to Thompson-family strategies.
    learned: HashMap<String, PosteriorSnapshot>,
    last_params_refresh_ms: HashMap<String, u64>,
    /// Caps retries across this isolate's requests when the deployment configures it.
    retry_budget: Option<RetryBudget>,
    counters: Counters,
    /// What every local strategy is built with (the configuration's, computed once).
    params: StrategyParams,
    /// Passive health of the fleet (ejections, probes, slow start), shared by all routes.
    health: FleetHealth,
    /// Downstreams that asked, with `Retry-After`, to be left alone until a time.
    vetoes: Vetoes,
}

/// The isolate's state: a cheap handle (clone it into background work such as `wait_until`).
#[derive(Clone)]
pub struct Isolate {
    config: Rc<RouterConfig>,
    state: Rc<RefCell<State>>,
}

thread_local! {
    static ISOLATE: RefCell<Option<Isolate>> = const { RefCell::new(None) };
}

fn read_var(env: &Env, name: &str) -> Option<String> {
    if let Ok(secret) = env.secret(name) {
        return Some(secret.to_string());
    }
    env.var(name).ok().map(|v| v.to_string())
}

/// Whether a strategy starts from (and is refreshed with) the learner's posterior.
pub fn follows_learner(kind: StrategyKind) -> bool {
    kind.imports_params()
}

impl Isolate {
    /// The isolate's state. The first request of the isolate parses the configuration and
    /// creates the state; later requests get the same handle. An invalid configuration is
    /// reported on every request (it is not cached).
    pub fn get(env: &Env) -> Result<Isolate, ConfigError> {
        if let Some(isolate) = ISOLATE.with_borrow(Clone::clone) {
            return Ok(isolate);
        }
        let config = Rc::new(RouterConfig::from_lookup(|name| {
            (VARS.contains(&name) || health::VARS.contains(&name) || tags::VARS.contains(&name))
                .then(|| read_var(env, name))
                .flatten()
        })?);
        let seed = (js_sys::Math::random() * (u64::MAX as f64)) as u64 ^ clock::now_ms();
        let state = State {
            instance_id: format!("router-{:012x}", seed & 0xffff_ffff_ffff),
            rng: SmallRng::seed_from_u64(seed),
            strategies: HashMap::new(),
            routes: HashMap::new(),
            tick: 0,
            learned: HashMap::new(),
            last_params_refresh_ms: HashMap::new(),
            retry_budget: config.retry_budget.map(RetryBudget::new),
            counters: Counters::default(),
            params: config.strategy_params(),
            health: FleetHealth::new(config.health.clone(), config.fleet.len()),
            vetoes: Vetoes::new(config.fleet.len()),
        };
        let isolate = Isolate { config, state: Rc::new(RefCell::new(state)) };
        ISOLATE.with_borrow_mut(|slot| *slot = Some(isolate.clone()));
        Ok(isolate)
    }

    /// The configuration parsed when the isolate started.
    pub fn config(&self) -> &Rc<RouterConfig> {
        &self.config
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.borrow_mut())
    }

    /// Chooses a downstream for one attempt with a local strategy.
    pub fn select(
        &self,
        route: &str,
        kind: StrategyKind,
        ctx: &SelectContext<'_>,
    ) -> Option<ArmId> {
        let arms = self.config.fleet.len();
        self.with(|state| {
            let mut rng = state.rng.clone();
            let pick = state.strategy(route, kind, arms).select(ctx, &mut rng);
            state.rng = rng;
            pick
        })
    }

    /// Reports one attempt's outcome to a local strategy.
    pub fn update(&self, route: &str, kind: StrategyKind, arm: ArmId, feedback: &Feedback) {
        let arms = self.config.fleet.len();
        self.with(|state| state.strategy(route, kind, arms).update(arm, feedback));
    }

    /// Reports one attempt's outcome to a local strategy, with the request's context (see
    /// `Strategy::update_in_context`).
    pub fn update_in_context(
        &self,
        route: &str,
        kind: StrategyKind,
        arm: ArmId,
        feedback: &Feedback,
        request: Option<&RequestContext>,
    ) {
        let arms = self.config.fleet.len();
        self.with(|state| {
            state.strategy(route, kind, arms).update_in_context(arm, feedback, request)
        });
    }

    /// The attempt deadline a local strategy asks for `arm` (see
    /// [`Strategy::attempt_deadline_ms`]); `None` when it has none.
    pub fn attempt_deadline_ms(&self, route: &str, kind: StrategyKind, arm: ArmId) -> Option<f64> {
        let arms = self.config.fleet.len();
        self.with(|state| state.strategy(route, kind, arms).attempt_deadline_ms(arm))
    }

    /// The hedge delay a local strategy asks for an attempt on `arm` (see
    /// [`Strategy::hedge_delay_ms`](magnetar_core::strategy::Strategy::hedge_delay_ms)).
    pub fn hedge_delay_ms(&self, route: &str, kind: StrategyKind, arm: ArmId) -> Option<f64> {
        let arms = self.config.fleet.len();
        self.with(|state| state.strategy(route, kind, arms).hedge_delay_ms(arm))
    }

    /// Tells a local strategy that the attempt on `arm` sent at `sent_ms` was abandoned.
    pub fn abandoned(&self, route: &str, kind: StrategyKind, arm: ArmId, sent_ms: u64, now: u64) {
        let arms = self.config.fleet.len();
        self.with(|state| {
            state.counters.attempts_abandoned += 1;
            state.strategy(route, kind, arms).abandoned(arm, sent_ms, now);
        });
    }

    /// Pays for a hedge from the retry budget: whether it may be sent (always, without a
    /// budget). Counts the hedge, or its refusal.
    pub fn pay_for_hedge(&self, now_ms: u64) -> bool {
        self.with(|state| {
            let paid = state.retry_budget.as_mut().is_none_or(|b| b.try_withdraw(now_ms));
            if paid {
                state.counters.hedges += 1;
            } else {
                state.counters.hedges_denied += 1;
            }
            paid
        })
    }

    /// `arm` answered 429 or 503 with `Retry-After` asking to be left alone until `until_ms`.
    pub fn veto(&self, arm: ArmId, until_ms: u64) {
        self.with(|state| {
            state.counters.retry_after_vetoes += 1;
            state.vetoes.note(arm, until_ms);
        });
    }

    /// `excluded` plus the downstreams a `Retry-After` still vetoes at `now_ms` (unless that
    /// would exclude the whole fleet).
    pub fn exclusions(&self, excluded: &[ArmId], now_ms: u64) -> Vec<ArmId> {
        self.with(|state| state.vetoes.exclusions(excluded, now_ms))
    }

    /// A client request arrived: it pays into the retry budget (when there is one).
    pub fn deposit_retry_budget(&self, now_ms: u64) {
        self.with(|state| {
            if let Some(budget) = state.retry_budget.as_mut() {
                budget.deposit(now_ms);
            }
        });
    }

    /// Records an attempt in `plan` and says what to do next; a retry must be paid for from the
    /// retry budget when there is one.
    pub fn record_attempt(
        &self,
        plan: &mut AttemptPlan,
        attempt: AttemptRecord,
        now_ms: u64,
    ) -> Next {
        self.with(|state| match state.retry_budget.as_mut() {
            Some(budget) => {
                let next = plan.record_budgeted(attempt, now_ms, budget);
                if plan.budget_denied() {
                    state.counters.retries_denied += 1;
                }
                next
            }
            None => plan.record(attempt, now_ms),
        })
    }

    /// The isolate's identifier (stable for its lifetime), used in telemetry.
    pub fn instance_id(&self) -> String {
        self.with(|state| state.instance_id.clone())
    }

    /// Runs `f` on the fleet's health with the isolate's RNG; returns what `f` returns.
    pub fn health<R>(&self, f: impl FnOnce(&mut FleetHealth, &mut dyn RngCore) -> R) -> R {
        self.with(|state| f(&mut state.health, &mut state.rng))
    }

    /// Updates the counters; returns what `f` returns.
    pub fn count<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        self.with(|state| f(&mut state.counters))
    }

    /// Adds one to the counter `field` picks and returns its new value (for [`crate::log`]).
    pub fn tally(&self, field: fn(&mut Counters) -> &mut u64) -> u64 {
        self.count(|c| {
            let counter = field(c);
            *counter += 1;
            *counter
        })
    }

    /// Whether `route`'s params are due for a refresh at `now_ms`; if so, marks them refreshed
    /// so concurrent requests do not all fetch.
    pub fn claim_params_refresh(&self, route: &str, now_ms: u64, interval_ms: u64) -> bool {
        self.with(|state| {
            state.touch_route(route);
            let last = state.last_params_refresh_ms.get(route).copied();
            let due = last.is_none_or(|last| now_ms.saturating_sub(last) >= interval_ms);
            if due {
                state.last_params_refresh_ms.insert(route.to_owned(), now_ms);
            }
            due
        })
    }

    /// Applies the learner's posterior for `route` to every Thompson-family strategy of the
    /// route, and remembers it for strategies created later. Returns how many strategies took it.
    pub fn apply_learned(&self, route: &str, snapshot: PosteriorSnapshot) -> usize {
        self.with(|state| {
            state.touch_route(route);
            let mut applied = 0;
            for ((r, kind), s) in state.strategies.iter_mut() {
                if r == route && follows_learner(*kind) && s.restore(&snapshot).is_ok() {
                    applied += 1;
                }
            }
            state.learned.insert(route.to_owned(), snapshot);
            applied
        })
    }

    /// A snapshot of this isolate's state, for `/_magnetar/state`.
    pub fn view(&self, now_ms: u64) -> StateView {
        self.with(|state| {
            let mut strategies: HashMap<String, HashMap<String, PosteriorSnapshot>> =
                HashMap::new();
            for ((route, kind), s) in &state.strategies {
                strategies
                    .entry(route.clone())
                    .or_default()
                    .insert(kind.name().to_owned(), s.snapshot(now_ms));
            }
            StateView {
                instance: state.instance_id.clone(),
                counters: state.counters.clone(),
                strategies,
                health: state.health.view(now_ms, &self.config.fleet.names()),
            }
        })
    }
}

impl State {
    /// Marks `route` as used now, making room for it when it is new by evicting the route used
    /// least recently.
    fn touch_route(&mut self, route: &str) {
        self.tick += 1;
        if let Some(last_used) = self.routes.get_mut(route) {
            *last_used = self.tick;
            return;
        }
        if self.routes.len() >= MAX_ROUTES {
            let oldest = self.routes.iter().min_by_key(|(_, t)| **t).map(|(r, _)| r.clone());
            if let Some(oldest) = oldest {
                self.routes.remove(&oldest);
                self.strategies.retain(|(r, _), _| *r != oldest);
                self.learned.remove(&oldest);
                self.last_params_refresh_ms.remove(&oldest);
                self.counters.routes_evicted += 1;
            }
        }
        self.routes.insert(route.to_owned(), self.tick);
    }

    fn strategy(&mut self, route: &str, kind: StrategyKind, arms: usize) -> &mut dyn Strategy {
        self.touch_route(route);
        let key = (route.to_owned(), kind);
        let learned = self.learned.get(&key.0).cloned();
        let params = &self.params;
        self.strategies
            .entry(key)
            .or_insert_with(|| {
                let mut s = kind.build_with(arms, params);
                if let Some(snapshot) = learned.filter(|_| follows_learner(kind)) {
                    // A snapshot that does not fit this fleet is ignored: the strategy starts fresh.
                    let _ = s.restore(&snapshot);
                }
                s
            })
            .as_mut()
    }
}

/// What `/_magnetar/state` shows.
#[derive(Serialize)]
pub struct StateView {
    pub instance: String,
    pub counters: Counters,
    /// route → strategy → per-arm posterior.
    pub strategies: HashMap<String, HashMap<String, PosteriorSnapshot>>,
    /// Ejected downstreams, panic mode, per-downstream phase (`magnetar_core::health`).
    pub health: HealthView,
}
