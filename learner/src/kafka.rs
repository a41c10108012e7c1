//! Kafka I/O: topic creation, the bridge's producer, and the consumer group that feeds the
//! learner (rdkafka, with its bundled librdkafka).
//!
//! **Delivery guarantee of the consumer: at-least-once, deduplicated.** Offsets are committed
//! manually, only for records already applied to the state (`enable.auto.commit=false`), every
//! commit interval and once more on shutdown. A restarted learner (same group) resumes from the
//! committed offsets, so the records applied after the last commit are read again:
//!
//! - without a state file the crashed process's state is gone anyway, so the replay lands in a
//!   fresh state and nothing is counted twice within one process (the request-id window drops
//!   replays the broker itself delivers twice);
//! - with `--state-file`, the checkpoint is written *before* each commit and holds the recent
//!   request ids, so the replayed records are recognised as duplicates and every record is
//!   counted exactly once, provided the replay (at most one commit interval of traffic) is
//!   shorter than the dedupe window.
//!
//! Which offsets are committed is kept in a [`CommitLedger`]: every commit interval, the
//! offsets covered by the state file that the broker has not *confirmed* are committed. Commits
//! are synchronous (see [`ConsumerCallbacks`] for why) and run, with the checkpoint, on a
//! blocking thread while the loop keeps consuming; an offset is confirmed only when the broker
//! acknowledged it, so a commit that fails is retried at the next interval even if its
//! partition has gone quiet. Shutdown waits for a last commit, at most
//! [`SHUTDOWN_COMMIT_TIMEOUT`].
//!
//! **Rebalances.** When the group takes partitions away (another member joined, or this one is
//! leaving), the revoke callback checkpoints and synchronously commits what was applied to them,
//! then forgets them, so a stale offset never overwrites the new owner's commits. Several
//! learners in one group therefore stay correct about offsets, but each learns only the routes
//! of its own partitions (records are keyed by route): run one learner per group, and give
//! replicas that should each see everything their own groups.
//!
//! A message that is not a telemetry record is counted (`ingest_errors_total{kind=...}`),
//! logged, and its offset committed like any other: a poison message does not stall the group.
//!
//! The consumer's liveness is reported by `/healthz` ([`crate::health`]).
//!
//! The bridge produces each record keyed by its v2 key (the router sends the route, so a route's
//! records stay ordered in one partition) and answers with the partition and offset Kafka
//! assigned, or a per-record `error_code` 50002 (v3: 500) when Kafka did not take it. The v3 API's
//! key (`key.data`) is used the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
    StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::checkpoint::write_checkpoint;
use crate::clock::now_ms;
use crate::config::KafkaConfig;
use crate::health::ConsumerHealth;
use crate::ingest::{self, BatchEntry, RecordError, Stored};
use crate::metrics::Counters;
use crate::offsets::CommitLedger;
use crate::shared::SharedLearner;
use crate::state::KafkaOffsets;

/// How long the learner keeps trying to reach the brokers when it creates the topic.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(30);
/// A produced record not acknowledged within this time is reported as failed.
pub const PRODUCE_TIMEOUT_MS: &str = "10000";
/// The group forgets a consumer that stopped heartbeating after this long (the broker's usual
/// minimum), so a killed learner's partitions come back quickly on restart.
pub const SESSION_TIMEOUT_MS: &str = "6000";

fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &kafka.brokers).set("client.id", "magnetar-learner");
    config
}

/// Creates `topic` with `kafka.partitions` partitions unless it exists, retrying while the
/// brokers are not reachable yet.
pub async fn ensure_topic(kafka: &KafkaConfig, topic: &str) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    let new = NewTopic::new(topic, kafka.partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let deadline = tokio::time::Instant::now() + CONNECT_DEADLINE;
    loop {
        let outcome: Result<(), KafkaError> = match admin.create_topics([&new], &options).await {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) => {
                    info!(topic, partitions = kafka.partitions, "topic created");
                    return Ok(());
                }
                Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) | None => {
                    debug!(topic, "topic exists");
                    return Ok(());
                }
                Some(Err((_, code))) => Err(KafkaError::AdminOp(code)),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            if tokio::time::Instant::now() >= deadline {
                return Err(e);
            }
            warn!(topic, error = %e, "cannot create topic yet, retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The REST -> Kafka side: one producer shared by every request.
pub struct Bridge {
    producer: FutureProducer,
    topic: String,
}

impl Bridge {
    pub fn new(kafka: &KafkaConfig, topic: &str) -> Result<Self, KafkaError> {
        let producer = client_config(kafka)
            .set("message.timeout.ms", PRODUCE_TIMEOUT_MS)
            .set("linger.ms", "2")
            .create()?;
        Ok(Bridge { producer, topic: topic.to_owned() })
    }

    /// Produces every valid entry, concurrently; one result per entry, in order.
    pub async fn forward(&self, entries: Vec<BatchEntry>) -> Vec<Result<Stored, RecordError>> {
        let sends = entries.into_iter().map(|entry| async move {
            let record = entry.record?;
            let key = entry.key.as_ref().map(|k| serde_json::to_vec(k).unwrap_or_default());
            let payload = serde_json::to_vec(&record).unwrap_or_default();
            let mut message = FutureRecord::to(&self.topic).payload(&payload);
            if let Some(key) = &key {
                message = message.key(key);
            }
            if let Some(p) = entry.partition {
                message = message.partition(p);
            }
            match self.producer.send(message, Duration::from_secs(5)).await {
                Ok(delivery) => {
                    Ok(Stored { partition: delivery.partition, offset: delivery.offset })
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::UnknownPartition), _)) => {
                    Err(RecordError::UnknownPartition(entry.partition.unwrap_or(-1)))
                }
                Err((e, _)) => {
                    warn!(topic = %self.topic, error = %e, "kafka did not take a record");
                    Err(RecordError::Kafka(e.to_string()))
                }
            }
        });
        join_all(sends).await
    }

    /// Waits for in-flight records (shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            warn!(error = %e, "producer flush incomplete");
        }
    }
}

/// Joins the consumer group and subscribes to `topic`; `committer` serves the group's
/// rebalance and commit callbacks.
pub fn consumer(
    kafka: &KafkaConfig,
    topic: &str,
    committer: Arc<Committer>,
) -> Result<LearnerConsumer, KafkaError> {
    let consumer: LearnerConsumer = client_config(kafka)
        .set("group.id", &kafka.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(ConsumerCallbacks { committer })?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// The consumer the learner runs.
pub type LearnerConsumer = StreamConsumer<ConsumerCallbacks>;

/// Commits offsets only for records applied and, with a state file, checkpointed
/// ([`CommitLedger`]); shared by the consumer loop and the group's callbacks.
pub struct Committer {
    pub topic: String,
    pub learner: SharedLearner,
    pub counters: Arc<Counters>,
    pub state_file: Option<PathBuf>,
    ledger: Mutex<CommitLedger>,
    /// Per partition, the next offset the state file covers: where the consumer resumes when
    /// the partition is assigned (unless the group's committed offset is further on).
    checkpointed: Mutex<BTreeMap<i32, i64>>,
}

/// How long an assignment waits for the group's committed offsets before it resumes from the
/// state file's.
const COMMITTED_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where each assigned partition resumes: the state file's offset `covered` when the group's
/// committed offset is behind it (commits failed while checkpoints went on) or unknown, and the
/// committed one (`None`: librdkafka's default) when another member already went further.
pub fn resume_offsets(
    assigned: &[i32],
    covered: &BTreeMap<i32, i64>,
    committed: Option<&BTreeMap<i32, i64>>,
) -> BTreeMap<i32, i64> {
    assigned
        .iter()
        .filter_map(|p| {
            let ours = *covered.get(p)?;
            let theirs = committed.and_then(|c| c.get(p)).copied();
            match theirs {
                Some(c) if c >= ours => None,
                _ => Some((*p, ours)),
            }
        })
        .collect()
}

impl Committer {
    pub fn new(
        topic: &str,
        learner: SharedLearner,
        counters: Arc<Counters>,
        state_file: Option<PathBuf>,
    ) -> Self {
        let checkpointed = learner
            .kafka_offsets()
            .filter(|k| k.topic == topic)
            .map(|k| k.next)
            .unwrap_or_default();
        Committer {
            topic: topic.to_owned(),
            learner,
            counters,
            checkpointed: Mutex::new(checkpointed),
            state_file,
            ledger: Mutex::new(CommitLedger::default()),
        }
    }

    fn checkpointed(&self) -> MutexGuard<'_, BTreeMap<i32, i64>> {
        self.checkpointed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the offsets of the partitions in `tpl` (an assignment) that must resume from the
    /// state file rather than from the group's committed offsets ([`resume_offsets`]).
    fn resume_from_checkpoint(
        &self,
        consumer: &BaseConsumer<ConsumerCallbacks>,
        tpl: &mut TopicPartitionList,
    ) {
        let assigned: Vec<i32> =
            tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
        let covered = self.checkpointed().clone();
        if assigned.iter().all(|p| !covered.contains_key(p)) {
            return;
        }
        let committed = match consumer.committed_offsets(tpl.clone(), COMMITTED_LOOKUP_TIMEOUT) {
            Ok(list) => Some(
                list.elements_for_topic(&self.topic)
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect::<BTreeMap<_, _>>(),
            ),
            Err(e) => {
                warn!(error = %e, "committed offsets unknown; resuming from the state file's");
                None
            }
        };
        for (partition, offset) in resume_offsets(&assigned, &covered, committed.as_ref()) {
            match tpl.set_partition_offset(&self.topic, partition, Offset::Offset(offset)) {
                Ok(()) => {
                    info!(partition, offset, "resuming from the state file's offset");
                }
                Err(e) => warn!(partition, error = %e, "cannot set the resume offset"),
            }
        }
    }

    fn ledger(&self) -> MutexGuard<'_, CommitLedger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The record before `next_offset` on `partition` is applied.
    pub fn applied(&self, partition: i32, next_offset: i64) {
        self.ledger().applied(partition, next_offset);
    }

    /// Writes the state file when records were applied since the last one; false when that
    /// failed (the offsets it would cover are then held back).
    fn checkpoint(&self) -> bool {
        let snapshot = {
            let ledger = self.ledger();
            if !ledger.needs_checkpoint() {
                return true;
            }
            ledger.applied_offsets().clone()
        };
        if let Some(path) = &self.state_file {
            let mut next = self.checkpointed().clone();
            next.extend(snapshot.iter().map(|(p, o)| (*p, *o)));
            let offsets = KafkaOffsets { topic: self.topic.clone(), next: next.clone() };
            if !write_checkpoint(path, &self.learner, &self.counters, Some(offsets)) {
                return false;
            }
            *self.checkpointed() = next;
        }
        self.ledger().cover(&snapshot);
        true
    }

    /// Checkpoints, then commits every covered offset the broker has not confirmed (of
    /// `only` these partitions, when given), synchronously: blocks until the broker answers, so
    /// call it off the async threads ([`ConsumerTask`] does). Offsets are confirmed when the
    /// broker acknowledged them; until then they are offered again at the next call.
    pub fn commit(&self, consumer: &impl Consumer<ConsumerCallbacks>, only: Option<&[i32]>) {
        if !self.checkpoint() {
            return;
        }
        let mut due = self.ledger().to_commit();
        if let Some(only) = only {
            due.retain(|p, _| only.contains(p));
        }
        if due.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (partition, next) in &due {
            if let Err(e) =
                list.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))
            {
                warn!(partition, error = %e, "cannot build offset list");
                return;
            }
        }
        // No lock is held while the broker answers.
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                self.counters.kafka_commits.fetch_add(1, Ordering::Relaxed);
                debug!(offsets = ?due, "offsets committed");
                self.confirmed(&due);
            }
            Err(e) => {
                self.counters.kafka_errors.fetch_add(1, Ordering::Relaxed);
                self.counters.commit_failures.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "offset commit failed, will retry");
            }
        }
    }

    fn confirmed(&self, offsets: &BTreeMap<i32, i64>) {
        let confirmed = {
            let mut ledger = self.ledger();
            for (p, o) in offsets {
                ledger.confirm(*p, *o);
            }
            ledger.confirmed().clone()
        };
        self.counters.committed(&confirmed);
    }

    /// Partitions leave this consumer: commit what was applied to them, then forget them.
    fn revoke(&self, consumer: &BaseConsumer<ConsumerCallbacks>, list: &TopicPartitionList) {
        let partitions: Vec<i32> =
            list.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
        if partitions.is_empty() {
            return;
        }
        info!(topic = %self.topic, ?partitions, "partitions revoked, committing");
        self.commit(consumer, Some(&partitions));
        self.ledger().revoke(&partitions);
    }
}

/// The group's callbacks: commit on revoke.
///
/// No `commit_callback`: rdkafka 0.39 enables librdkafka's offset-commit *event* but sets no
/// `offset_commit_cb`, and librdkafka only reports the result of a manual asynchronous commit to
/// the latter, so such a result never arrives. Commits are therefore synchronous, and run on a
/// blocking thread.
pub struct ConsumerCallbacks {
    committer: Arc<Committer>,
}

impl ClientContext for ConsumerCallbacks {}

impl ConsumerContext for ConsumerCallbacks {
    /// librdkafka's rebalance, as rdkafka's default does it, except that an assignment first
    /// gets the offsets the state file covers ([`Committer::resume_from_checkpoint`]).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.committer.resume_from_checkpoint(consumer, tpl);
                self.pre_rebalance(consumer, &Rebalance::Assign(tpl));
                if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(tpl));
                if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                self.pre_rebalance(consumer, &Rebalance::Error(KafkaError::Rebalance(code)));
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            warn!(error = %e, "applying the rebalance failed");
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => self.committer.revoke(consumer, list),
            Rebalance::Assign(list) => {
                let partitions: Vec<i32> = list
                    .elements_for_topic(&self.committer.topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                info!(topic = %self.committer.topic, ?partitions, "partitions assigned");
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
        }
    }
}

/// Everything the consumer loop needs.
pub struct ConsumerTask {
    pub consumer: Arc<LearnerConsumer>,
    pub committer: Arc<Committer>,
    pub health: Arc<ConsumerHealth>,
    pub commit_interval: Duration,
}

/// How long shutdown waits for the last commit (a broker that does not answer must not keep
/// the process from exiting).
pub const SHUTDOWN_COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Marks the consumer stopped when the loop ends, however it ends (a panic included).
struct Running {
    health: Arc<ConsumerHealth>,
    clean: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.health.stopped();
        if !self.clean {
            error!("kafka consumer task ended unexpectedly; /healthz reports it down");
        }
    }
}

impl ConsumerTask {
    /// Reads, applies, checkpoints and commits until `shutdown` turns true.
    ///
    /// Every commit interval a checkpoint and a synchronous commit run on a blocking thread
    /// while the loop keeps consuming; a tick that finds the previous one still running skips.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut running = Running { health: self.health.clone(), clean: false };
        self.health.started(now_ms());
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut in_flight: Option<JoinHandle<()>> = None;
        let topic = self.committer.topic.clone();
        info!(topic = %topic, "consumer started");
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = tick.tick() => {
                    self.health.beat(now_ms());
                    if in_flight.as_ref().is_none_or(JoinHandle::is_finished) {
                        in_flight = Some(self.spawn_commit());
                    } else {
                        debug!("previous commit still running, skipping this one");
                    }
                }
                message = self.consumer.recv() => match message {
                    Ok(m) => {
                        let (partition, offset) = (m.partition(), m.offset());
                        self.health.message(now_ms());
                        self.committer.counters.consumed(partition, offset);
                        self.apply(m.payload(), partition, offset);
                        self.committer.applied(partition, offset + 1);
                    }
                    Err(e) => {
                        self.health.error(now_ms());
                        self.committer.counters.kafka_errors.fetch_add(1, Ordering::Relaxed);
                        warn!(error = %e, "kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        let last = async {
            if let Some(previous) = in_flight {
                let _ = previous.await;
            }
            let _ = self.spawn_commit().await;
        };
        if tokio::time::timeout(SHUTDOWN_COMMIT_TIMEOUT, last).await.is_err() {
            warn!(timeout = ?SHUTDOWN_COMMIT_TIMEOUT, "last offset commit did not finish");
        }
        running.clean = true;
        info!(topic = %topic, "consumer stopped");
    }

    /// Checkpoint and commit on a blocking thread (a state file write and a broker round trip).
    fn spawn_commit(&self) -> JoinHandle<()> {
        let (consumer, committer) = (self.consumer.clone(), self.committer.clone());
        tokio::task::spawn_blocking(move || committer.commit(&*consumer, None))
    }

    fn apply(&self, payload: Option<&[u8]>, partition: i32, offset: i64) {
        match ingest::parse_record(payload.unwrap_or_default()) {
            Ok(record) => {
                self.committer.learner.apply(&record, now_ms());
            }
            Err(e) => {
                let counters = &self.committer.counters;
                counters.error(e.kind());
                counters.rejected_records.fetch_add(1, Ordering::Relaxed);
                warn!(partition, offset, error = %e, "skipping a message that is not telemetry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resume_offsets;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn resumes_from_the_state_file_unless_the_group_went_further() {
        let covered = BTreeMap::from([(0, 100), (1, 50), (2, 70)]);
        let committed = BTreeMap::from([(0, 10), (1, 80)]);
        // 0: commits lagged, resume at 100; 1: another member went to 80, keep it;
        // 2: nothing committed, resume at 70; 3: not in the state file, librdkafka decides.
        assert_eq!(
            resume_offsets(&[0, 1, 2, 3], &covered, Some(&committed)),
            BTreeMap::from([(0, 100), (2, 70)])
        );
        // The committed offsets could not be read: the state file's.
        assert_eq!(resume_offsets(&[1], &covered, None), BTreeMap::from([(1, 50)]));
    }

    proptest! {
        /// Wherever it resumes, it is never behind the state file nor behind the group.
        #[test]
        fn never_resumes_behind_what_is_known(
            covered in proptest::collection::btree_map(0i32..8, 0i64..1_000, 0..8),
            committed in proptest::collection::btree_map(0i32..8, 0i64..1_000, 0..8),
        ) {
            let assigned: Vec<i32> = (0..8).collect();
            let resume = resume_offsets(&assigned, &covered, Some(&committed));
            for p in assigned {
                let start = resume.get(&p).or(committed.get(&p));
                if let Some(ours) = covered.get(&p) {
                    prop_assert!(start.is_some_and(|s| s >= ours));
                }
                if let (Some(theirs), Some(s)) = (committed.get(&p), start) {
                    prop_assert!(s >= theirs);
                }
            }
        }
    }
}
