//! The fleet-scale model: many router isolates in front of one fleet, syncing through the learner.
//!
//! Cloudflare runs a Worker in many isolates at once (one or more per colo and machine), and each
//! isolate learns on its own from the sliver of traffic it serves. [`run_fleet`] simulates `K`
//! isolates ([`FleetConfig::isolates`]) with the same engine, fleet and oracle as [`crate::run`]:
//!
//! - **Spread.** Each arriving request goes to one isolate, uniformly at random
//!   ([`Spread::Even`]) or with Zipf weights `1 / (i + 1)^s` ([`Spread::Skewed`]: a few big colos
//!   and a long tail of small ones). Every attempt of the request, and its feedback, goes to that
//!   isolate's strategy (built with the real strategy code, [`StrategyKind::build_with`]), which
//!   draws from its own RNG.
//! - **The learner** ([`LearnerSync`], optional). Every finished request is posted as the
//!   router's [`TelemetryRecord`] and reaches the learner `telemetry_lag_ms` later; the learner
//!   is the learner's own state code ([`LearnerState`]: decayed Beta posteriors with its
//!   half-life). As the router does (`router/src/isolate.rs`, `claim_params_refresh` and
//!   `apply_learned`), an isolate whose strategy imports the learner's parameters
//!   ([`StrategyKind::imports_params`], the registry row) fetches `/params` on a request that
//!   arrives when its last fetch is `PARAMS_REFRESH_MS` old or it has none (a fresh isolate), and
//!   the strategy [restores](magnetar_core::strategy::Strategy::restore) the learner's decayed
//!   counts: what each strategy keeps or replaces is its own `restore`. The fetch is modelled as
//!   instantaneous (the router runs it in the background, a few ms against the refresh interval).
//!   Strategies that do not import (their row says so) learn locally only, with or without a
//!   learner.
//! - **Recycling** (optional). An isolate lives an exponential lifetime of mean
//!   `mean_lifetime_ms`; the first request after it ends meets a new isolate: a fresh strategy,
//!   no parameters fetched yet, a new lifetime from that request on. A request in flight when
//!   its isolate is replaced reports its attempts to the new one (the state it would have taught
//!   is gone either way).
//!
//! With one isolate, no learner and no recycling, [`run_fleet`] is [`crate::run`] to the bit:
//! isolate 0 draws from the engine's strategy stream and the spread draws nothing for `K = 1`
//! (`tests::one_isolate_is_the_single_router_run`).
//!
//! **What to expect without the learner.** With `K` isolates sharing `N` requests evenly, each
//! isolate serves about `N / K` of them, `K` times further apart, and learns from those alone. So
//! the fleet's success is that of one router serving `N / K` requests at a `K` times lower rate,
//! averaged over isolates: `sim/tests/fleet.rs` checks a 1,000-isolate run against exactly that.

use std::collections::VecDeque;

use magnetar_core::posterior::{DEFAULT_HALF_LIFE_MS, Decay};
use magnetar_core::strategy::{
    ArmPosterior, PosteriorSnapshot, Strategy, StrategyKind, StrategyParams,
};
use magnetar_core::telemetry::{AttemptTelemetry, TELEMETRY_SCHEMA, TelemetryRecord};
use magnetar_learner::state::LearnerState;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use serde::Serialize;

pub use crate::routers::FleetStats;
use crate::routers::{Finished, Routers};
use crate::{Engine, RunResult, Scenario, SimConfig, strategy_seed, stream};

pub use magnetar_core::config::DEFAULT_PARAMS_REFRESH_MS;

/// Assumed time from a request's answer to its telemetry being in the learner's posterior
/// (the router's post in `wait_until`, the REST proxy, Kafka, the consumer).
pub const DEFAULT_TELEMETRY_LAG_MS: u64 = 1_000;
/// The route every simulated request belongs to.
pub const ROUTE: &str = "/sim";

/// How arrivals are shared among isolates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// Uniformly at random.
    #[default]
    Even,
    /// Isolate `i` with weight `1 / (i + 1)^exponent` (Zipf; 0 is even).
    Skewed { exponent: f64 },
}

/// The learner the isolates sync through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LearnerSync {
    /// `PARAMS_REFRESH_MS`: how old an isolate's last `/params` may be before a request fetches
    /// them again.
    pub params_refresh_ms: u64,
    /// Time from a request's answer to its telemetry being learned.
    pub telemetry_lag_ms: u64,
    /// The learner's half-life (`LEARNER_HALF_LIFE_MS`).
    pub half_life_ms: u64,
}

impl Default for LearnerSync {
    fn default() -> Self {
        LearnerSync {
            params_refresh_ms: DEFAULT_PARAMS_REFRESH_MS,
            telemetry_lag_ms: DEFAULT_TELEMETRY_LAG_MS,
            half_life_ms: DEFAULT_HALF_LIFE_MS,
        }
    }
}

/// The isolates of a fleet run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FleetConfig {
    /// `K`, at least 1.
    pub isolates: usize,
    pub spread: Spread,
    /// `None`: every isolate learns on its own.
    pub learner: Option<LearnerSync>,
    /// Mean lifetime of an isolate; `None`: isolates live the whole run.
    pub mean_lifetime_ms: Option<f64>,
}

impl FleetConfig {
    /// `isolates` isolates sharing arrivals evenly, no learner, no recycling.
    pub fn isolated(isolates: usize) -> FleetConfig {
        FleetConfig { isolates, spread: Spread::Even, learner: None, mean_lifetime_ms: None }
    }
}

/// A fleet configuration value is out of range; the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetError {
    #[error("isolates: must be at least 1")]
    NoIsolates,
    #[error("spread.exponent: must be finite and at least 0, got {0}")]
    Exponent(f64),
    #[error("learner.half_life_ms: must be at least 1 ms")]
    HalfLife,
    #[error("mean_lifetime_ms: must be positive, got {0}")]
    Lifetime(f64),
}

impl FleetConfig {
    /// Checks every field.
    pub fn check(&self) -> Result<(), FleetError> {
        if self.isolates == 0 {
            return Err(FleetError::NoIsolates);
        }
        if let Spread::Skewed { exponent } = self.spread
            && !(exponent.is_finite() && exponent >= 0.0)
        {
            return Err(FleetError::Exponent(exponent));
        }
        if self.learner.is_some_and(|l| l.half_life_ms == 0) {
            return Err(FleetError::HalfLife);
        }
        if let Some(ms) = self.mean_lifetime_ms
            && !(ms.is_finite() && ms > 0.0)
        {
            return Err(FleetError::Lifetime(ms));
        }
        Ok(())
    }
}

struct Isolate {
    strategy: Box<dyn Strategy>,
    rng: SmallRng,
    last_import_ms: Option<u64>,
    dies_at_us: u64,
    served: u64,
}

struct Learner {
    sync: LearnerSync,
    state: LearnerState,
    /// Telemetry on its way: (when it is learned, the record), in that order.
    in_transit: VecDeque<(u64, TelemetryRecord)>,
}

impl Learner {
    /// Learns every record that has arrived by `t_us`.
    fn catch_up(&mut self, t_us: u64, stats: &mut FleetStats) {
        while let Some((at_us, _)) = self.in_transit.front() {
            if *at_us > t_us {
                break;
            }
            let Some((at_us, record)) = self.in_transit.pop_front() else { break };
            self.state.apply(&record, at_us / 1_000);
            stats.records_learned += 1;
        }
    }
}

struct Isolates<'a> {
    kind: StrategyKind,
    params: &'a StrategyParams,
    arms: usize,
    names: Vec<String>,
    isolates: Vec<Isolate>,
    /// Cumulative spread weights (skewed spread only).
    cumulative: Vec<f64>,
    spread_rng: SmallRng,
    life_rng: SmallRng,
    mean_lifetime_us: Option<f64>,
    learner: Option<Learner>,
    stats: FleetStats,
}

fn lifetime_us(mean_us: Option<f64>, rng: &mut SmallRng) -> u64 {
    match mean_us {
        Some(mean) => {
            let u: f64 = rng.random();
            (-(1.0 - u).ln() * mean) as u64
        }
        None => u64::MAX,
    }
}

impl Isolates<'_> {
    fn pick(&mut self) -> usize {
        let k = self.isolates.len();
        if k == 1 {
            return 0;
        }
        if self.cumulative.is_empty() {
            return self.spread_rng.random_range(0..k);
        }
        let total = self.cumulative[k - 1];
        let u = self.spread_rng.random::<f64>() * total;
        self.cumulative.partition_point(|c| *c <= u).min(k - 1)
    }

    /// The learner's parameters for this fleet's arms, as the router maps them
    /// (`router/src/learner.rs`, `to_snapshot`): a downstream the learner has not seen gets
    /// zero counts.
    fn snapshot(&mut self, t_us: u64) -> Option<PosteriorSnapshot> {
        let learner = self.learner.as_mut()?;
        learner.catch_up(t_us, &mut self.stats);
        let params = learner.state.params(ROUTE, t_us / 1_000);
        let arms = self
            .names
            .iter()
            .map(|n| params.downstreams.get(n).cloned().unwrap_or_else(ArmPosterior::default))
            .collect();
        Some(PosteriorSnapshot { schema: params.schema, taken_ms: params.taken_ms, arms })
    }
}

impl Routers for Isolates<'_> {
    fn kind(&self) -> StrategyKind {
        self.kind
    }

    fn assign(&mut self, t_us: u64) -> usize {
        let i = self.pick();
        if t_us >= self.isolates[i].dies_at_us {
            let isolate = &mut self.isolates[i];
            isolate.strategy = self.kind.build_with(self.arms, self.params);
            isolate.last_import_ms = None;
            isolate.dies_at_us =
                t_us.saturating_add(lifetime_us(self.mean_lifetime_us, &mut self.life_rng));
            self.stats.recycles += 1;
        }
        let now_ms = t_us / 1_000;
        if let Some(refresh_ms) = self.learner.as_ref().map(|l| l.sync.params_refresh_ms)
            && self.kind.imports_params()
        {
            let last = self.isolates[i].last_import_ms;
            if last.is_none_or(|last| now_ms.saturating_sub(last) >= refresh_ms) {
                self.isolates[i].last_import_ms = Some(now_ms);
                if let Some(snapshot) = self.snapshot(t_us) {
                    // A snapshot that does not fit is ignored, as the router ignores it.
                    if self.isolates[i].strategy.restore(&snapshot).is_ok() {
                        self.stats.imports += 1;
                    }
                }
            }
        }
        self.isolates[i].served += 1;
        i
    }

    fn strategy(&mut self, isolate: usize) -> (&mut dyn Strategy, &mut dyn RngCore) {
        let isolate = &mut self.isolates[isolate];
        (isolate.strategy.as_mut(), &mut isolate.rng)
    }

    fn finished(&mut self, request: Finished<'_>) {
        let Some(learner) = self.learner.as_mut() else { return };
        let attempts = request
            .attempts
            .iter()
            .map(|a| AttemptTelemetry {
                downstream: self.names[a.arm].clone(),
                status: a.status,
                outcome: a.outcome,
                latency_ms: a.latency_ms,
                hedged: a.hedged,
            })
            .collect();
        let record = TelemetryRecord {
            schema: TELEMETRY_SCHEMA,
            // No id: the learner's duplicate window is not what is simulated.
            request_id: String::new(),
            caller_id: None,
            route: ROUTE.to_owned(),
            strategy: self.kind.name().to_owned(),
            router_instance: format!("isolate-{}", request.isolate),
            started_ms: request.started_us / 1_000,
            finished_ms: request.finished_us / 1_000,
            attempts,
            final_outcome: request.final_outcome,
            final_status: 0,
            pool: None,
            experiment: None,
            variant: None,
        };
        let lag_us = learner.sync.telemetry_lag_ms.saturating_mul(1_000);
        learner.in_transit.push_back((request.finished_us.saturating_add(lag_us), record));
    }

    fn stats(&self) -> Option<FleetStats> {
        let used = self.isolates.iter().filter(|i| i.served > 0).count();
        Some(FleetStats { isolates_used: used, ..self.stats.clone() })
    }
}

/// Runs `kind` on `fleet.isolates` isolates over `scenario` (see the module docs).
pub fn run_fleet(
    scenario: &Scenario,
    kind: StrategyKind,
    params: &StrategyParams,
    config: &SimConfig,
    fleet: &FleetConfig,
    seed: u64,
) -> Result<RunResult, FleetError> {
    fleet.check()?;
    let arms = scenario.arms();
    let mean_lifetime_us = fleet.mean_lifetime_ms.map(|ms| ms * 1_000.0);
    let mut life_rng = SmallRng::seed_from_u64(stream(seed, 5));
    let isolates = (0..fleet.isolates)
        .map(|i| {
            let rng_seed =
                if i == 0 { strategy_seed(seed) } else { stream(seed, 1_000_000 + i as u64) };
            Isolate {
                strategy: kind.build_with(arms, params),
                rng: SmallRng::seed_from_u64(rng_seed),
                last_import_ms: None,
                dies_at_us: lifetime_us(mean_lifetime_us, &mut life_rng),
                served: 0,
            }
        })
        .collect();
    let cumulative = match fleet.spread {
        Spread::Skewed { exponent } if fleet.isolates > 1 => (0..fleet.isolates)
            .scan(0.0, |acc, i| {
                *acc += ((i + 1) as f64).powf(-exponent);
                Some(*acc)
            })
            .collect(),
        _ => Vec::new(),
    };
    let learner = match fleet.learner {
        Some(sync) => {
            let decay = Decay::new(sync.half_life_ms).map_err(|_| FleetError::HalfLife)?;
            Some(Learner { sync, state: LearnerState::new(decay, 1), in_transit: VecDeque::new() })
        }
        None => None,
    };
    let routers = Isolates {
        kind,
        params,
        arms,
        names: scenario.downstreams.iter().map(|d| d.name.clone()).collect(),
        isolates,
        cumulative,
        spread_rng: SmallRng::seed_from_u64(stream(seed, 4)),
        life_rng,
        mean_lifetime_us,
        learner,
        stats: FleetStats { isolates: fleet.isolates, ..FleetStats::default() },
    };
    Ok(Engine::new(scenario, routers, config, seed).run(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(requests: u64) -> SimConfig {
        SimConfig { requests, max_attempts: 3, ..SimConfig::default() }
    }

    #[test]
    fn one_isolate_is_the_single_router_run() {
        let p = StrategyParams::default();
        for name in ["constant", "rate_limited", "poison", "random_outages"] {
            let c = config(3_000);
            let s = Scenario::builtin(name, &c).unwrap();
            for kind in [StrategyKind::Thompson, StrategyKind::Magnetar, StrategyKind::RoundRobin] {
                let single = crate::run_kind(&s, kind, &p, &c, 9);
                let fleet = run_fleet(&s, kind, &p, &c, &FleetConfig::isolated(1), 9).unwrap();
                assert_eq!(single.summary, fleet.summary, "{name} {kind}");
                assert_eq!(single.series, fleet.series, "{name} {kind}");
                assert_eq!(
                    (single.oracle_success_rate, single.oracle_latency_ms, single.retries_denied),
                    (fleet.oracle_success_rate, fleet.oracle_latency_ms, fleet.retries_denied),
                );
                assert!(single.fleet.is_none());
                assert_eq!(
                    fleet.fleet.map(|f| (f.isolates, f.imports, f.recycles)),
                    Some((1, 0, 0))
                );
            }
        }
    }

    #[test]
    fn requests_spread_evenly_or_skewed() {
        let p = StrategyParams::default();
        let c = config(20_000);
        let s = Scenario::builtin("constant", &c).unwrap();
        let even = run_fleet(&s, StrategyKind::Random, &p, &c, &FleetConfig::isolated(10), 2)
            .unwrap()
            .fleet
            .unwrap();
        assert_eq!((even.isolates, even.isolates_used), (10, 10));
        // Zipf with exponent 1.2 over 1,000 isolates: the top one alone takes 1/zeta-ish of the
        // traffic, so many of the tail's isolates never see one of 2,000 requests, while an even
        // spread leaves about 1000 e^-2 = 135 unused.
        let c = config(2_000);
        let s = Scenario::builtin("constant", &c).unwrap();
        let skewed = FleetConfig {
            spread: Spread::Skewed { exponent: 1.2 },
            ..FleetConfig::isolated(1_000)
        };
        let skewed =
            run_fleet(&s, StrategyKind::Random, &p, &c, &skewed, 2).unwrap().fleet.unwrap();
        let even = run_fleet(&s, StrategyKind::Random, &p, &c, &FleetConfig::isolated(1_000), 2)
            .unwrap()
            .fleet
            .unwrap();
        assert!((820..=910).contains(&even.isolates_used), "{even:?}");
        assert!(skewed.isolates_used < 600, "{skewed:?}");
    }

    #[test]
    fn isolates_import_the_learner_and_get_recycled() {
        let p = StrategyParams::default();
        // 100 req/s for 100 s over 10 isolates: each sees a request every 100 ms, so with a 5 s
        // refresh it imports about 20 times plus once when fresh.
        let c = config(10_000);
        let s = Scenario::builtin("constant", &c).unwrap();
        let sync =
            FleetConfig { learner: Some(LearnerSync::default()), ..FleetConfig::isolated(10) };
        let r = run_fleet(&s, StrategyKind::Thompson, &p, &c, &sync, 3).unwrap();
        let f = r.fleet.unwrap();
        assert!((200..=220).contains(&f.imports), "{f:?}");
        // The learner has learned what arrived by the last import, at most one refresh interval
        // plus the lag before the end: (100 - 5 - 1) s at 100 requests/s.
        assert!((9_400..10_000).contains(&f.records_learned), "{f:?}");
        // Imports change what Thompson sampling does, even for one isolate (it then counts what
        // the learner counted: a second late and decayed).
        let one = FleetConfig { learner: Some(LearnerSync::default()), ..FleetConfig::isolated(1) };
        let synced = run_fleet(&s, StrategyKind::Thompson, &p, &c, &one, 3).unwrap();
        let alone =
            run_fleet(&s, StrategyKind::Thompson, &p, &c, &FleetConfig::isolated(1), 3).unwrap();
        assert_ne!(synced.summary.regret, alone.summary.regret);
        // Round robin does not import (its row says so): a learner changes nothing for it.
        let rr = run_fleet(&s, StrategyKind::RoundRobin, &p, &c, &sync, 3).unwrap();
        let alone =
            run_fleet(&s, StrategyKind::RoundRobin, &p, &c, &FleetConfig::isolated(10), 3).unwrap();
        assert_eq!(rr.summary, alone.summary);
        assert_eq!(rr.fleet.unwrap().imports, 0);
        // Isolates living 10 s on average over 100 s: about 10 lives each, 100 recycles (sd 10).
        let short = FleetConfig { mean_lifetime_ms: Some(10_000.0), ..FleetConfig::isolated(10) };
        let f = run_fleet(&s, StrategyKind::Thompson, &p, &c, &short, 3).unwrap().fleet.unwrap();
        assert!((60..=140).contains(&f.recycles), "{f:?}");
    }

    #[test]
    fn fleet_configs_are_checked_naming_the_field() {
        let p = StrategyParams::default();
        let c = config(10);
        let s = Scenario::builtin("constant", &c).unwrap();
        let run = |f: FleetConfig| {
            run_fleet(&s, StrategyKind::Thompson, &p, &c, &f, 1).unwrap_err().to_string()
        };
        assert!(run(FleetConfig::isolated(0)).starts_with("isolates:"));
        let skew =
            FleetConfig { spread: Spread::Skewed { exponent: -1.0 }, ..FleetConfig::isolated(2) };
        assert!(run(skew).starts_with("spread.exponent:"));
        let life = FleetConfig { mean_lifetime_ms: Some(0.0), ..FleetConfig::isolated(2) };
        assert!(run(life).starts_with("mean_lifetime_ms:"));
        let sync = LearnerSync { half_life_ms: 0, ..LearnerSync::default() };
        let half = FleetConfig { learner: Some(sync), ..FleetConfig::isolated(2) };
        assert!(run(half).starts_with("learner.half_life_ms:"));
    }
}
