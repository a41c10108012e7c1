//! State that lives as long as one Worker isolate: the parsed configuration, one strategy
//! instance per (route, strategy), the RNG, and counters.
//!
//! Workers run one isolate per thread, so the state sits in a `thread_local` `RefCell`. It is
//! never borrowed across an `.await`: callers borrow, decide, release, then do I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use magnetar_core::config::{ConfigError, RouterConfig};
use magnetar_core::retry::{AttemptPlan, AttemptRecord, Next, RetryBudget};
use magnetar_core::strategy::{
    ArmId, Feedback, PosteriorSnapshot, SelectContext, Strategy, StrategyKind,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Serialize;
use worker::Env;

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
}

struct Isolate {
    config: Rc<RouterConfig>,
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

/// Parses the configuration on the first request of the isolate and returns it afterwards.
/// An invalid configuration is reported on every request (it is not cached).
pub fn config(env: &Env) -> Result<Rc<RouterConfig>, ConfigError> {
    if let Some(config) = ISOLATE.with_borrow(|i| i.as_ref().map(|i| i.config.clone())) {
        return Ok(config);
    }
    let config = Rc::new(RouterConfig::from_lookup(|name| {
        VARS.contains(&name).then(|| read_var(env, name)).flatten()
    })?);
    let seed = (js_sys::Math::random() * (u64::MAX as f64)) as u64 ^ crate::proxy::now_ms();
    let instance_id = format!("router-{:012x}", seed & 0xffff_ffff_ffff);
    ISOLATE.with_borrow_mut(|slot| {
        *slot = Some(Isolate {
            config: config.clone(),
            instance_id,
            rng: SmallRng::seed_from_u64(seed),
            strategies: HashMap::new(),
            routes: HashMap::new(),
            tick: 0,
            learned: HashMap::new(),
            last_params_refresh_ms: HashMap::new(),
            retry_budget: config.retry_budget.map(RetryBudget::new),
            counters: Counters::default(),
        })
    });
    Ok(config)
}

/// Runs `f` on the isolate's state. [`config`] creates that state before any handler calls
/// this; should it be missing anyway, `f` is skipped and the default returned (no panic).
fn with<R: Default>(f: impl FnOnce(&mut Isolate) -> R) -> R {
    ISOLATE.with_borrow_mut(|slot| slot.as_mut().map(f).unwrap_or_default())
}

/// Marks `route` as used now, making room for it when it is new by evicting the route used
/// least recently.
fn touch_route(isolate: &mut Isolate, route: &str) {
    isolate.tick += 1;
    if let Some(last_used) = isolate.routes.get_mut(route) {
        *last_used = isolate.tick;
        return;
    }
    if isolate.routes.len() >= MAX_ROUTES {
        let oldest = isolate.routes.iter().min_by_key(|(_, t)| **t).map(|(r, _)| r.clone());
        if let Some(oldest) = oldest {
            isolate.routes.remove(&oldest);
            isolate.strategies.retain(|(r, _), _| *r != oldest);
            isolate.learned.remove(&oldest);
            isolate.last_params_refresh_ms.remove(&oldest);
            isolate.counters.routes_evicted += 1;
        }
    }
    isolate.routes.insert(route.to_owned(), isolate.tick);
}

fn strategy<'a>(isolate: &'a mut Isolate, route: &str, kind: StrategyKind) -> &'a mut dyn Strategy {
    touch_route(isolate, route);
    let key = (route.to_owned(), kind);
    let arms = isolate.config.fleet.len();
    let learned = isolate.learned.get(&key.0).cloned();
    isolate
        .strategies
        .entry(key)
        .or_insert_with(|| {
            let mut s = kind.build(arms);
            if let Some(snapshot) = learned.filter(|_| follows_learner(kind)) {
                // A snapshot that does not fit this fleet is ignored: the strategy starts fresh.
                let _ = s.restore(&snapshot);
            }
            s
        })
        .as_mut()
}

/// Chooses a downstream for one attempt with a local strategy.
pub fn select(route: &str, kind: StrategyKind, ctx: &SelectContext<'_>) -> Option<ArmId> {
    with(|isolate| {
        let mut rng = isolate.rng.clone();
        let pick = strategy(isolate, route, kind).select(ctx, &mut rng);
        isolate.rng = rng;
        pick
    })
}

/// Reports one attempt's outcome to a local strategy.
pub fn update(route: &str, kind: StrategyKind, arm: ArmId, feedback: &Feedback) {
    with(|isolate| strategy(isolate, route, kind).update(arm, feedback));
}

/// A client request arrived: it pays into the retry budget (when there is one).
pub fn deposit_retry_budget(now_ms: u64) {
    with(|isolate| {
        if let Some(budget) = isolate.retry_budget.as_mut() {
            budget.deposit(now_ms);
        }
    });
}

/// Records an attempt in `plan` and says what to do next; a retry must be paid for from the
/// retry budget when there is one.
pub fn record_attempt(plan: &mut AttemptPlan, attempt: AttemptRecord, now_ms: u64) -> Next {
    ISOLATE.with_borrow_mut(|slot| match slot {
        Some(Isolate { retry_budget: Some(budget), counters, .. }) => {
            let next = plan.record_budgeted(attempt, now_ms, budget);
            if plan.budget_denied() {
                counters.retries_denied += 1;
            }
            next
        }
        _ => plan.record(attempt, now_ms),
    })
}

/// The isolate's identifier (stable for its lifetime), used in telemetry.
pub fn instance_id() -> String {
    with(|isolate| isolate.instance_id.clone())
}

/// Updates the counters; returns what `f` returns.
pub fn count<R: Default>(f: impl FnOnce(&mut Counters) -> R) -> R {
    with(|isolate| f(&mut isolate.counters))
}

/// Adds one to the counter `field` picks and returns its new value (for [`crate::log`]).
pub fn tally(field: fn(&mut Counters) -> &mut u64) -> u64 {
    count(|c| {
        let counter = field(c);
        *counter += 1;
        *counter
    })
}

/// Whether `route`'s params are due for a refresh at `now_ms`; if so, marks them refreshed so
/// concurrent requests do not all fetch.
pub fn claim_params_refresh(route: &str, now_ms: u64, interval_ms: u64) -> bool {
    with(|isolate| {
        touch_route(isolate, route);
        let last = isolate.last_params_refresh_ms.get(route).copied();
        let due = last.is_none_or(|last| now_ms.saturating_sub(last) >= interval_ms);
        if due {
            isolate.last_params_refresh_ms.insert(route.to_owned(), now_ms);
        }
        due
    })
}

/// Applies the learner's posterior for `route` to every Thompson-family strategy of the route,
/// and remembers it for strategies created later. Returns how many strategies took it.
pub fn apply_learned(route: &str, snapshot: PosteriorSnapshot) -> usize {
    with(|isolate| {
        touch_route(isolate, route);
        let mut applied = 0;
        for ((r, kind), s) in isolate.strategies.iter_mut() {
            if r == route && follows_learner(*kind) && s.restore(&snapshot).is_ok() {
                applied += 1;
            }
        }
        isolate.learned.insert(route.to_owned(), snapshot);
        applied
    })
}

/// What `/_magnetar/state` shows.
#[derive(Default, Serialize)]
pub struct StateView {
    pub instance: String,
    pub counters: Counters,
    /// route → strategy → per-arm posterior.
    pub strategies: HashMap<String, HashMap<String, PosteriorSnapshot>>,
}

/// A snapshot of this isolate's state.
pub fn view(now_ms: u64) -> StateView {
    with(|isolate| {
        let mut strategies: HashMap<String, HashMap<String, PosteriorSnapshot>> = HashMap::new();
        for ((route, kind), s) in &isolate.strategies {
            strategies
                .entry(route.clone())
                .or_default()
                .insert(kind.name().to_owned(), s.snapshot(now_ms));
        }
        StateView {
            instance: isolate.instance_id.clone(),
            counters: isolate.counters.clone(),
            strategies,
        }
    })
}
