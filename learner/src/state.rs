//! What the learner knows: per route and downstream, a decayed Beta posterior
//! ([`DecayedBeta`]), outcome counts and a latency histogram; plus a bounded window of recent
//! request ids so a replayed record is not counted twice.
//!
//! Sans-io: every method takes the learner's clock as `now_ms` and randomness as
//! `&mut dyn RngCore`. Each attempt of a [`TelemetryRecord`] is one observation for its
//! downstream on the record's route, with [`Outcome::reward`] (the one definition of success)
//! and the time the attempt ended: `started_ms` plus the latencies of the attempts so far,
//! capped at `finished_ms` and at `now_ms` (telemetry from a router clock ahead of ours is
//! treated as current, so it cannot freeze the decay of an arm).
//!
//! The whole state serializes to a checkpoint (see [`crate::checkpoint`]).
//!
//! **Bounds.** Routes and downstream names come from whatever telemetry is posted, so the state
//! is capped ([`Limits`]): a record for a *new* route once [`Limits::max_routes`] routes are
//! known is refused whole ([`Applied::Refused`], counted in [`LearnerState::capped_records`]),
//! and an attempt on a *new* downstream once its route has
//! [`Limits::max_downstreams_per_route`] is skipped while the record's other attempts are learned
//! ([`LearnerState::capped_observations`]). Known routes and downstreams always keep learning.
//! Refusing rather than evicting the least recently updated entry is deliberate: with eviction,
//! a flood of made-up route names would push out the real routes and their posteriors, while a
//! refusal costs only the made-up names. The price is that a genuinely new route is not learned
//! once the table is full, which the counters (`/stats` `caps`, `/metrics`
//! `magnetar_learner_capped_*_total`) make visible; raise the cap or restart without the state
//! file to make room. A checkpoint holding more than the caps is loaded whole; the caps then
//! only stop further growth. Memory: a downstream costs about 2.7 KiB with latencies of a
//! few seconds and at most about 4.6 KiB (the latency histogram dominates, see
//! [`crate::latency`]), so the defaults bound the state at roughly 4.8 GB in the worst case;
//! size the caps to the fleet.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use magnetar_core::Outcome;
use magnetar_core::posterior::{Decay, DecayedBeta};
use magnetar_core::strategy::{ArmPosterior, PosteriorSnapshot};
use magnetar_core::telemetry::TelemetryRecord;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::latency::LatencyHistogram;

/// Learned state of one downstream on one route.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DownstreamState {
    pub posterior: DecayedBeta,
    /// Attempts per outcome, in [`Outcome::ALL`] order (not decayed).
    pub outcomes: [u64; 6],
    pub latency: LatencyHistogram,
}

impl DownstreamState {
    pub fn attempts(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    pub fn successes(&self) -> u64 {
        Outcome::ALL.iter().zip(self.outcomes).filter(|(o, _)| o.is_success()).map(|(_, n)| n).sum()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouteState {
    pub records: u64,
    pub downstreams: BTreeMap<String, DownstreamState>,
}

/// The last `capacity` request ids seen, by 64-bit FNV-1a hash (stable across processes, so the
/// window survives a checkpoint). A capacity of 0 remembers nothing.
#[derive(Debug, Clone, Default)]
pub struct RecentIds {
    capacity: usize,
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

impl RecentIds {
    pub fn new(capacity: usize) -> Self {
        RecentIds { capacity, order: VecDeque::new(), set: HashSet::new() }
    }

    /// Remembers `id`; false when it was already in the window.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        let h = fnv1a(id.as_bytes());
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn from_hashes(capacity: usize, hashes: Vec<u64>) -> Self {
        let mut ids = RecentIds::new(capacity);
        let skip = hashes.len().saturating_sub(capacity);
        for h in hashes.into_iter().skip(skip) {
            if ids.set.insert(h) {
                ids.order.push_back(h);
            }
        }
        ids
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// Routes the learner keeps state for; records of further routes are counted and dropped.
pub const DEFAULT_MAX_ROUTES: usize = 1024;
/// Downstreams kept per route; attempts on further downstreams are counted and dropped.
pub const DEFAULT_MAX_DOWNSTREAMS_PER_ROUTE: usize = 1024;

/// How much state telemetry may create (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_routes: usize,
    pub max_downstreams_per_route: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_routes: DEFAULT_MAX_ROUTES,
            max_downstreams_per_route: DEFAULT_MAX_DOWNSTREAMS_PER_ROUTE,
        }
    }
}

/// What [`LearnerState::apply`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Counted: `observations` attempts are now in the posteriors, `capped` attempts on new
    /// downstreams beyond the per-route cap were skipped.
    New { observations: usize, capped: usize },
    /// Its request id was in the recent window: ignored.
    Duplicate,
    /// Its route is new and the route table is full: not learned, not remembered.
    Refused,
}

/// Why there is no recommendation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecommendError {
    #[error("no downstream has been seen on route {0:?}; pass candidates=a,b,c")]
    UnknownRoute(String),
    #[error("every candidate is excluded")]
    AllExcluded,
}

/// The answer of `GET /recommendation`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub worker: String,
    pub score: f64,
    pub scores: BTreeMap<String, f64>,
    pub route: String,
}

/// The answer of `GET /params`: decayed counts per downstream name, as of `taken_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub schema: u32,
    pub version: u64,
    pub taken_ms: u64,
    pub route: String,
    pub half_life_ms: u64,
    pub downstreams: BTreeMap<String, ArmPosterior>,
}

/// The learner's whole state.
#[derive(Debug, Clone)]
pub struct LearnerState {
    decay: Decay,
    limits: Limits,
    routes: BTreeMap<String, RouteState>,
    recent: RecentIds,
    version: u64,
    records_applied: u64,
    duplicates: u64,
    observations: u64,
    capped_records: u64,
    capped_observations: u64,
    /// The downstreams that exist, when a fleet is configured.
    fleet: Option<Arc<BTreeSet<String>>>,
    unknown_observations: u64,
    /// Next offset of the embedded topic's partition (kept in the checkpoint).
    next_offset: i64,
    /// Kafka mode: the offsets the loaded checkpoint covers (where the consumer resumes).
    kafka: Option<KafkaOffsets>,
}

impl LearnerState {
    pub fn new(decay: Decay, dedupe_window: usize) -> Self {
        LearnerState {
            decay,
            limits: Limits::default(),
            routes: BTreeMap::new(),
            recent: RecentIds::new(dedupe_window),
            version: 0,
            records_applied: 0,
            duplicates: 0,
            observations: 0,
            capped_records: 0,
            capped_observations: 0,
            fleet: None,
            unknown_observations: 0,
            next_offset: 0,
            kafka: None,
        }
    }

    /// Reserves `n` offsets of the embedded topic; returns the first.
    pub fn take_offsets(&mut self, n: usize) -> i64 {
        let first = self.next_offset;
        self.next_offset = self.next_offset.saturating_add(n as i64);
        first
    }

    /// The next offset of the embedded topic.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Moves the next offset past `offset` (replaying the state log).
    pub fn offset_seen(&mut self, offset: i64) {
        self.next_offset = self.next_offset.max(offset.saturating_add(1));
    }

    /// The same state learning only about the downstreams of `fleet`: an attempt on any other
    /// is counted ([`unknown_observations`](Self::unknown_observations)) and not stored.
    pub fn with_fleet(mut self, fleet: Option<Arc<BTreeSet<String>>>) -> Self {
        self.fleet = fleet;
        self
    }

    /// The same state with other caps on routes and downstreams.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Learns from one record (see the module docs for timing and caps).
    pub fn apply(&mut self, record: &TelemetryRecord, now_ms: u64) -> Applied {
        let route_is_new = !self.routes.contains_key(&record.route);
        if route_is_new && self.routes.len() >= self.limits.max_routes {
            self.capped_records = self.capped_records.saturating_add(1);
            return Applied::Refused;
        }
        if !record.request_id.is_empty() && !self.recent.insert(&record.request_id) {
            self.duplicates = self.duplicates.saturating_add(1);
            return Applied::Duplicate;
        }
        let (decay, max_downstreams) = (self.decay, self.limits.max_downstreams_per_route);
        let route = self.routes.entry(record.route.clone()).or_default();
        route.records = route.records.saturating_add(1);
        let end_ms = record.finished_ms.max(record.started_ms).min(now_ms);
        let mut elapsed_ms = 0.0;
        let (mut capped, mut unknown) = (0, 0);
        for attempt in &record.attempts {
            if attempt.latency_ms.is_finite() && attempt.latency_ms > 0.0 {
                // Validated latencies are at most a day each: this sum stays finite.
                elapsed_ms += attempt.latency_ms;
            }
            if self.fleet.as_ref().is_some_and(|f| !f.contains(&attempt.downstream)) {
                unknown += 1;
                continue;
            }
            let at_ms = (record.started_ms as f64 + elapsed_ms).min(end_ms as f64) as u64;
            let full = route.downstreams.len() >= max_downstreams;
            let downstream = match route.downstreams.get_mut(&attempt.downstream) {
                Some(d) => d,
                None if full => {
                    capped += 1;
                    continue;
                }
                None => route.downstreams.entry(attempt.downstream.clone()).or_default(),
            };
            downstream.posterior.observe(attempt.outcome.reward(), at_ms, decay);
            if let Some(i) = Outcome::ALL.iter().position(|o| *o == attempt.outcome) {
                downstream.outcomes[i] = downstream.outcomes[i].saturating_add(1);
            }
            downstream.latency.record(attempt.latency_ms);
        }
        let observations = record.attempts.len() - capped - unknown;
        self.records_applied = self.records_applied.saturating_add(1);
        self.observations = self.observations.saturating_add(observations as u64);
        self.capped_observations = self.capped_observations.saturating_add(capped as u64);
        self.unknown_observations = self.unknown_observations.saturating_add(unknown as u64);
        self.version = self.version.saturating_add(1);
        Applied::New { observations, capped }
    }

    /// Thompson sampling over `candidates` (default: every downstream seen on `route`) minus
    /// `exclude`; a candidate never seen gets the `Beta(1, 1)` prior.
    pub fn recommend(
        &self,
        route: &str,
        candidates: Option<&[String]>,
        exclude: &[String],
        now_ms: u64,
        rng: &mut dyn RngCore,
    ) -> Result<Recommendation, RecommendError> {
        let known = self.routes.get(route);
        let names: Vec<&String> = match candidates {
            Some(c) => c.iter().collect(),
            None => match known {
                Some(r) if !r.downstreams.is_empty() => r.downstreams.keys().collect(),
                _ => return Err(RecommendError::UnknownRoute(route.to_owned())),
            },
        };
        let prior = DecayedBeta::new();
        let mut scores = BTreeMap::new();
        let mut best: Option<(&String, f64)> = None;
        for name in names.into_iter().filter(|n| !exclude.contains(n)) {
            let posterior =
                known.and_then(|r| r.downstreams.get(name)).map_or(&prior, |d| &d.posterior);
            let score = posterior.sample(now_ms, self.decay, rng);
            scores.insert(name.clone(), score);
            if best.is_none_or(|(_, s)| score > s) {
                best = Some((name, score));
            }
        }
        let (worker, score) = best.ok_or(RecommendError::AllExcluded)?;
        Ok(Recommendation { worker: worker.clone(), score, scores, route: route.to_owned() })
    }

    /// Decayed counts of every downstream seen on `route`, as of `now_ms`.
    pub fn params(&self, route: &str, now_ms: u64) -> Params {
        let downstreams = self
            .routes
            .get(route)
            .map(|r| {
                r.downstreams
                    .iter()
                    .map(|(name, d)| (name.clone(), d.posterior.counts_at(now_ms, self.decay)))
                    .collect()
            })
            .unwrap_or_default();
        Params {
            schema: PosteriorSnapshot::SCHEMA,
            version: self.version,
            taken_ms: now_ms,
            route: route.to_owned(),
            half_life_ms: self.decay.half_life_ms(),
            downstreams,
        }
    }

    pub fn decay(&self) -> Decay {
        self.decay
    }

    /// Increases by one with every applied record.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn records_applied(&self) -> u64 {
        self.records_applied
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn observations(&self) -> u64 {
        self.observations
    }

    pub fn routes(&self) -> &BTreeMap<String, RouteState> {
        &self.routes
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Records refused since start because their route was new and the route table full.
    pub fn capped_records(&self) -> u64 {
        self.capped_records
    }

    /// Attempts skipped since start because their downstream was new and its route full.
    pub fn capped_observations(&self) -> u64 {
        self.capped_observations
    }

    /// Attempts skipped since start because their downstream is not in the configured fleet.
    pub fn unknown_observations(&self) -> u64 {
        self.unknown_observations
    }

    pub fn recent_ids(&self) -> usize {
        self.recent.len()
    }

    /// The numbers `/stats` and `/metrics` render, as of `now_ms`, with at most `max_series`
    /// route/downstream series (in route and name order; the others are counted in
    /// [`StateSummary::omitted_series`]), so neither the copy made under the lock nor the page
    /// rendered from it grows past that.
    pub fn summary(&self, now_ms: u64, max_series: usize) -> StateSummary {
        let mut budget = max_series;
        let mut omitted = 0u64;
        let routes = self
            .routes
            .iter()
            .map(|(route, r)| {
                let shown = r.downstreams.len().min(budget);
                budget -= shown;
                omitted += (r.downstreams.len() - shown) as u64;
                (route, r, shown)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|(route, r, shown)| RouteSummary {
                route: route.clone(),
                records: r.records,
                downstreams: r
                    .downstreams
                    .iter()
                    .take(shown)
                    .map(|(name, d)| DownstreamSummary {
                        name: name.clone(),
                        attempts: d.attempts(),
                        successes: d.successes(),
                        outcomes: d.outcomes,
                        counts: d.posterior.counts_at(now_ms, self.decay),
                        mean: d.posterior.mean_at(now_ms, self.decay),
                        p50_ms: d.latency.quantile(0.5),
                        p99_ms: d.latency.quantile(0.99),
                        max_ms: d.latency.max_ms(),
                        latency_sum_ms: d.latency.sum_ms(),
                        latency_count: d.latency.count(),
                    })
                    .collect(),
            })
            .collect();
        StateSummary {
            version: self.version,
            records_applied: self.records_applied,
            duplicates: self.duplicates,
            observations: self.observations,
            half_life_ms: self.decay.half_life_ms(),
            recent_ids: self.recent.len(),
            limits: self.limits,
            capped_records: self.capped_records,
            capped_observations: self.capped_observations,
            unknown_observations: self.unknown_observations,
            omitted_series: omitted,
            routes,
        }
    }

    /// The serializable form (for the checkpoint file).
    pub fn to_saved(&self) -> SavedState {
        SavedState {
            format: SavedState::FORMAT,
            version: self.version,
            records_applied: self.records_applied,
            duplicates: self.duplicates,
            observations: self.observations,
            routes: self.routes.clone(),
            recent_ids: self.recent.order.iter().copied().collect(),
            next_offset: self.next_offset,
            kafka: None,
        }
    }

    /// Kafka mode: the offsets of the loaded checkpoint, per partition the next one to read.
    pub fn kafka_offsets(&self) -> Option<&KafkaOffsets> {
        self.kafka.as_ref()
    }

    /// Rebuilds a state from a checkpoint, with this process's decay and window size.
    pub fn from_saved(saved: SavedState, decay: Decay, dedupe_window: usize) -> Self {
        LearnerState {
            decay,
            limits: Limits::default(),
            routes: saved.routes,
            recent: RecentIds::from_hashes(dedupe_window, saved.recent_ids),
            version: saved.version,
            records_applied: saved.records_applied,
            duplicates: saved.duplicates,
            observations: saved.observations,
            capped_records: 0,
            capped_observations: 0,
            fleet: None,
            unknown_observations: 0,
            next_offset: saved.next_offset,
            kafka: saved.kafka,
        }
    }
}

/// What `/stats` and `/metrics` show of one downstream: computed under the lock
/// ([`LearnerState::summary`]), rendered after it is released.
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamSummary {
    pub name: String,
    pub attempts: u64,
    pub successes: u64,
    /// Attempts per outcome, in [`Outcome::ALL`] order.
    pub outcomes: [u64; 6],
    /// Decayed counts as of the summary's time.
    pub counts: ArmPosterior,
    pub mean: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub latency_sum_ms: f64,
    pub latency_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteSummary {
    pub route: String,
    pub records: u64,
    pub downstreams: Vec<DownstreamSummary>,
}

/// A copy of what the learner knows, small enough to take under the lock: numbers only, no
/// histogram buckets, no rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSummary {
    pub version: u64,
    pub records_applied: u64,
    pub duplicates: u64,
    pub observations: u64,
    pub half_life_ms: u64,
    pub recent_ids: usize,
    pub limits: Limits,
    pub capped_records: u64,
    pub capped_observations: u64,
    pub unknown_observations: u64,
    /// Route/downstream series left out of this summary by its cap.
    pub omitted_series: u64,
    pub routes: Vec<RouteSummary>,
}

/// Checkpoint layout of [`LearnerState`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedState {
    pub format: u32,
    pub version: u64,
    pub records_applied: u64,
    pub duplicates: u64,
    pub observations: u64,
    pub routes: BTreeMap<String, RouteState>,
    pub recent_ids: Vec<u64>,
    /// Next offset of the embedded topic; absent from checkpoints written before it existed.
    #[serde(default)]
    pub next_offset: i64,
    /// Kafka mode: the consumer offsets this state covers (absent in embedded mode and from
    /// older checkpoints). The consumer seeks to them on assignment, so a replay after a crash
    /// starts where the state ends, however far the broker's committed offsets lag behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaOffsets>,
}

/// Consumer offsets of one topic: per partition, the next offset to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaOffsets {
    pub topic: String,
    pub next: BTreeMap<i32, i64>,
}

impl SavedState {
    pub const FORMAT: u32 = 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnetar_core::telemetry::{AttemptTelemetry, TELEMETRY_SCHEMA};
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    const NOW: u64 = 1_000_000;

    fn attempt(downstream: &str, outcome: Outcome) -> AttemptTelemetry {
        AttemptTelemetry {
            downstream: downstream.into(),
            status: None,
            outcome,
            latency_ms: 5.0,
            hedged: false,
        }
    }

    fn record(id: &str, attempts: Vec<AttemptTelemetry>) -> TelemetryRecord {
        let final_outcome = attempts.last().map_or(Outcome::ConnectError, |a| a.outcome);
        TelemetryRecord {
            schema: TELEMETRY_SCHEMA,
            request_id: id.into(),
            caller_id: None,
            route: "/service".into(),
            strategy: "thompson".into(),
            router_instance: "iso".into(),
            started_ms: NOW - 20,
            finished_ms: NOW - 5,
            attempts,
            final_outcome,
            final_status: 200,
            pool: None,
            experiment: None,
            variant: None,
        }
    }

    fn state() -> LearnerState {
        LearnerState::new(Decay::new(60_000).unwrap(), 100)
    }

    #[test]
    fn each_attempt_is_one_observation() {
        let mut s = state();
        let r = record(
            "r1",
            vec![
                attempt("a", Outcome::ServerError),
                attempt("b", Outcome::Timeout),
                attempt("c", Outcome::ClientError),
            ],
        );
        assert_eq!(s.apply(&r, NOW), Applied::New { observations: 3, capped: 0 });
        let params = s.params("/service", NOW);
        assert_eq!(params.version, 1);
        assert_eq!(params.downstreams.len(), 3);
        let c = &params.downstreams["c"];
        assert!(c.successes > 0.99 && c.failures == 0.0, "{c:?}");
        let a = &params.downstreams["a"];
        assert!(a.failures > 0.99 && a.successes == 0.0, "{a:?}");
        let route = &s.routes()["/service"];
        assert_eq!(route.downstreams["c"].successes(), 1);
        assert_eq!(route.downstreams["b"].outcomes[4], 1);
        assert_eq!(s.observations(), 3);
    }

    #[test]
    fn replays_within_the_window_are_ignored() {
        let mut s = state();
        let r = record("same", vec![attempt("a", Outcome::Success)]);
        assert!(matches!(s.apply(&r, NOW), Applied::New { .. }));
        assert_eq!(s.apply(&r, NOW), Applied::Duplicate);
        assert_eq!((s.records_applied(), s.duplicates(), s.version()), (1, 1, 1));
        // Empty ids are never deduplicated.
        let anon = record("", vec![attempt("a", Outcome::Success)]);
        s.apply(&anon, NOW);
        s.apply(&anon, NOW);
        assert_eq!(s.records_applied(), 3);
    }

    #[test]
    fn the_window_is_bounded() {
        let mut ids = RecentIds::new(3);
        for id in ["a", "b", "c", "d"] {
            assert!(ids.insert(id));
        }
        assert_eq!(ids.len(), 3);
        assert!(ids.insert("a"), "a fell out of the window");
        assert!(!ids.insert("d"));
        let mut off = RecentIds::new(0);
        assert!(off.insert("x") && off.insert("x"));
    }

    #[test]
    fn new_routes_and_downstreams_beyond_the_caps_are_counted_not_stored() {
        let limits = Limits { max_routes: 2, max_downstreams_per_route: 2 };
        let mut s = state().with_limits(limits);
        let on = |route: &str, id: &str, downstreams: &[&str]| {
            let mut r =
                record(id, downstreams.iter().map(|d| attempt(d, Outcome::Success)).collect());
            r.route = route.into();
            r
        };
        assert!(matches!(s.apply(&on("/a", "1", &["x"]), NOW), Applied::New { .. }));
        assert!(matches!(s.apply(&on("/b", "2", &["x"]), NOW), Applied::New { .. }));
        // A third route is refused whole, and its id is not remembered.
        assert_eq!(s.apply(&on("/c", "3", &["x"]), NOW), Applied::Refused);
        assert_eq!(s.apply(&on("/c", "3", &["x"]), NOW), Applied::Refused);
        assert_eq!((s.routes().len(), s.capped_records(), s.version()), (2, 2, 2));
        // Known routes keep learning.
        assert!(matches!(s.apply(&on("/a", "4", &["x"]), NOW), Applied::New { .. }));
        // Per route, a third downstream is skipped; the record's known ones are still learned.
        assert_eq!(
            s.apply(&on("/a", "5", &["y", "z", "x"]), NOW),
            Applied::New { observations: 2, capped: 1 }
        );
        let a = &s.routes()["/a"];
        assert_eq!(a.downstreams.keys().collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(a.downstreams["x"].attempts(), 3);
        assert_eq!((s.capped_observations(), s.observations()), (1, 5));
        // The caps survive as the process's, not the checkpoint's.
        let back = LearnerState::from_saved(s.to_saved(), s.decay(), 100).with_limits(limits);
        assert_eq!((back.routes().len(), back.capped_records()), (2, 0));
        assert_eq!(back.limits(), limits);
    }

    #[test]
    fn downstreams_outside_the_fleet_are_counted_not_stored() {
        let fleet: BTreeSet<String> = ["a".to_owned()].into();
        let mut s = state().with_fleet(Some(Arc::new(fleet)));
        let r =
            record("f1", vec![attempt("evil", Outcome::Success), attempt("a", Outcome::Success)]);
        assert_eq!(s.apply(&r, NOW), Applied::New { observations: 1, capped: 0 });
        let route = &s.routes()["/service"];
        assert_eq!(route.downstreams.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!((s.unknown_observations(), s.observations()), (1, 1));
        assert_eq!(s.summary(NOW, 10).unknown_observations, 1);
    }

    #[test]
    fn summaries_show_at_most_max_series() {
        let mut s = state();
        for (i, route) in ["/a", "/b"].iter().enumerate() {
            let attempts = (0..3).map(|d| attempt(&format!("d{d}"), Outcome::Success)).collect();
            let mut r = record(&format!("s{i}"), attempts);
            r.route = (*route).into();
            s.apply(&r, NOW);
        }
        let summary = s.summary(NOW, 4);
        let shown: Vec<usize> = summary.routes.iter().map(|r| r.downstreams.len()).collect();
        assert_eq!((shown, summary.omitted_series), (vec![3, 1], 2));
        assert_eq!(s.summary(NOW, 100).omitted_series, 0);
    }

    #[test]
    fn future_timestamps_are_treated_as_now() {
        let mut s = state();
        let mut r = record("f", vec![attempt("a", Outcome::ServerError)]);
        r.started_ms = u64::MAX - 10;
        r.finished_ms = u64::MAX;
        s.apply(&r, NOW);
        assert_eq!(s.routes()["/service"].downstreams["a"].posterior.updated_ms(), NOW);
    }

    #[test]
    fn recommendation_respects_candidates_and_exclusions() {
        let mut s = state();
        let mut rng = SmallRng::seed_from_u64(1);
        for i in 0..50 {
            let r = record(&format!("r{i}"), vec![attempt("bad", Outcome::ServerError)]);
            s.apply(&r, NOW);
        }
        let err = s.recommend("/other", None, &[], NOW, &mut rng).unwrap_err();
        assert_eq!(err, RecommendError::UnknownRoute("/other".into()));
        let rec = s.recommend("/service", None, &[], NOW, &mut rng).unwrap();
        assert_eq!(rec.worker, "bad");
        let candidates = vec!["bad".to_owned(), "new".to_owned()];
        let mut picked_new = 0;
        for _ in 0..100 {
            let rec = s.recommend("/service", Some(&candidates), &[], NOW, &mut rng).unwrap();
            assert_eq!(rec.scores.len(), 2);
            picked_new += usize::from(rec.worker == "new");
        }
        // Beta(1, 1) against Beta(1, 51): "new" wins unless its draw is below ~1/52.
        assert!(picked_new >= 90, "{picked_new}");
        let rec =
            s.recommend("/service", Some(&candidates), &["new".into()], NOW, &mut rng).unwrap();
        assert_eq!(rec.worker, "bad");
        assert!(!rec.scores.contains_key("new"));
        let err =
            s.recommend("/service", Some(&candidates), &candidates, NOW, &mut rng).unwrap_err();
        assert_eq!(err, RecommendError::AllExcluded);
    }

    #[test]
    fn params_decay_to_taken_ms() {
        let mut s = state();
        s.apply(&record("x", vec![attempt("a", Outcome::Success)]), NOW);
        // The attempt ended at started_ms + latency = NOW - 15.
        let later = s.params("/service", NOW - 15 + 60_000);
        assert!((later.downstreams["a"].successes - 0.5).abs() < 1e-9);
        assert_eq!(later.half_life_ms, 60_000);
        assert!(s.params("/nothing", NOW).downstreams.is_empty());
    }

    #[test]
    fn checkpoint_round_trips() {
        let mut s = state();
        s.apply(&record("x", vec![attempt("a", Outcome::Success)]), NOW);
        let json = serde_json::to_string(&s.to_saved()).unwrap();
        let saved: SavedState = serde_json::from_str(&json).unwrap();
        let mut back = LearnerState::from_saved(saved, s.decay(), 100);
        assert_eq!(back.params("/service", NOW), s.params("/service", NOW));
        assert_eq!(back.records_applied(), 1);
        assert_eq!(
            back.apply(&record("x", vec![attempt("a", Outcome::Success)]), NOW),
            Applied::Duplicate
        );
    }
}
