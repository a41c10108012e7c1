//! The learner's shared state: the [`LearnerState`] and the RNG that samples it, behind one
//! lock that only this module sees (the shape of mini-redis's `Db`). Handlers, the consumer and
//! the checkpoint ask for what they need (`recommend`, `params`, `apply`, `summary`, `saved`),
//! each method holds the lock for its own work only, and what is heavy to produce (JSON,
//! Prometheus text, the state file's bytes) is rendered by the caller after the lock is released.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use magnetar_core::telemetry::TelemetryRecord;
use rand::rngs::SmallRng;

use crate::admin::report::{ExperimentTallies, VariantTally};

use crate::state::{
    Applied, KafkaOffsets, LearnerState, Params, RecommendError, Recommendation, SavedState,
    StateSummary,
};

#[derive(Debug)]
struct Learner {
    state: LearnerState,
    rng: SmallRng,
    /// Per experiment variant, what the applied records did (`/v1/experiments/{id}/report`).
    experiments: ExperimentTallies,
}

impl Learner {
    fn apply(&mut self, record: &TelemetryRecord, now_ms: u64) -> Applied {
        let applied = self.state.apply(record, now_ms);
        if matches!(applied, Applied::New { .. }) {
            self.experiments.record(record);
        }
        applied
    }
}

/// Shared handle to the learned state; cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedLearner(Arc<Mutex<Learner>>);

impl SharedLearner {
    pub fn new(state: LearnerState, rng: SmallRng) -> Self {
        let experiments = ExperimentTallies::default();
        SharedLearner(Arc::new(Mutex::new(Learner { state, rng, experiments })))
    }

    /// A panic while the lock was held leaves the state as the last completed method left it
    /// (every method finishes its writes before it can panic), so the lock is taken anyway.
    fn lock(&self) -> MutexGuard<'_, Learner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Thompson sampling (see [`LearnerState::recommend`]).
    pub fn recommend(
        &self,
        route: &str,
        candidates: Option<&[String]>,
        exclude: &[String],
        now_ms: u64,
    ) -> Result<Recommendation, RecommendError> {
        let mut guard = self.lock();
        let Learner { state, rng, .. } = &mut *guard;
        state.recommend(route, candidates, exclude, now_ms, rng)
    }

    /// Decayed counts of `route` (see [`LearnerState::params`]).
    pub fn params(&self, route: &str, now_ms: u64) -> Params {
        self.lock().state.params(route, now_ms)
    }

    /// Learns from one record.
    pub fn apply(&self, record: &TelemetryRecord, now_ms: u64) -> Applied {
        self.lock().apply(record, now_ms)
    }

    /// Learns from every record in order under one lock, giving them consecutive offsets of
    /// the embedded topic; returns the first offset and one answer per record.
    pub fn apply_all<'a>(
        &self,
        records: impl ExactSizeIterator<Item = &'a TelemetryRecord>,
        now_ms: u64,
    ) -> (i64, Vec<Applied>) {
        let mut guard = self.lock();
        let first = guard.state.take_offsets(records.len());
        (first, records.map(|r| guard.apply(r, now_ms)).collect())
    }

    /// Learns from records the state log holds at `offset`s (replay at start, or a batch the
    /// journal made durable); offsets already covered are skipped.
    pub fn apply_logged<'a>(
        &self,
        records: impl IntoIterator<Item = (i64, &'a TelemetryRecord)>,
        now_ms: u64,
    ) -> Vec<Applied> {
        let mut guard = self.lock();
        let mut out = Vec::new();
        for (offset, record) in records {
            if offset >= guard.state.next_offset() {
                out.push(guard.apply(record, now_ms));
                guard.state.offset_seen(offset);
            }
        }
        out
    }

    /// The next offset of the embedded topic.
    pub fn next_offset(&self) -> i64 {
        self.lock().state.next_offset()
    }

    /// Increases with every applied record.
    pub fn version(&self) -> u64 {
        self.lock().state.version()
    }

    /// The numbers `/stats` and `/metrics` show, as of `now_ms`, at most `max_series`
    /// route/downstream series of them.
    pub fn summary(&self, now_ms: u64, max_series: usize) -> StateSummary {
        self.lock().state.summary(now_ms, max_series)
    }

    /// The tallies of one experiment's variants since this learner started.
    pub fn experiment_tallies(&self, experiment: &str) -> BTreeMap<String, VariantTally> {
        self.lock().experiments.of(experiment)
    }

    /// The checkpoint's content (serialized by the caller, outside the lock).
    pub fn saved(&self) -> SavedState {
        self.lock().state.to_saved()
    }

    /// Kafka mode: the consumer offsets of the checkpoint the learner started from.
    pub fn kafka_offsets(&self) -> Option<KafkaOffsets> {
        self.lock().state.kafka_offsets().cloned()
    }
}
