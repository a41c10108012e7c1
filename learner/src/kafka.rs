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
//! A message that is not a telemetry record is counted (`ingest_errors_total{kind=...}`),
//! logged, and its offset committed like any other: a poison message does not stall the group.
//!
//! The bridge produces each record keyed by its v2 key (the router sends the route, so a route's
//! records stay ordered in one partition) and answers with the partition and offset Kafka
//! assigned, or a per-record `error_code` 50002 when Kafka did not take it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use magnetar_core::telemetry::ProduceOffset;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::checkpoint;
use crate::config::KafkaConfig;
use crate::http::{SharedLearner, now_ms, record_error};
use crate::ingest::{self, BatchEntry};
use crate::metrics::Counters;

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

    /// Produces every valid entry, concurrently; one [`ProduceOffset`] per entry, in order.
    pub async fn forward(&self, entries: Vec<BatchEntry>) -> Vec<ProduceOffset> {
        let sends = entries.into_iter().map(|entry| async move {
            let record = match entry.record {
                Ok(record) => record,
                Err(e) => return record_error(&e),
            };
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
                Ok(delivery) => ProduceOffset {
                    partition: Some(delivery.partition),
                    offset: Some(delivery.offset),
                    error_code: None,
                    error: None,
                },
                Err((e, _)) => {
                    warn!(topic = %self.topic, error = %e, "kafka did not take a record");
                    ProduceOffset {
                        partition: None,
                        offset: None,
                        error_code: Some(ingest::CODE_KAFKA as i32),
                        error: Some(format!("kafka: {e}")),
                    }
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

/// Joins the consumer group and subscribes to `topic`.
pub fn consumer(kafka: &KafkaConfig, topic: &str) -> Result<StreamConsumer, KafkaError> {
    let consumer: StreamConsumer = client_config(kafka)
        .set("group.id", &kafka.group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("heartbeat.interval.ms", "1000")
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// Everything the consumer loop needs.
pub struct ConsumerTask {
    pub consumer: StreamConsumer,
    pub topic: String,
    pub learner: SharedLearner,
    pub counters: Arc<Counters>,
    pub state_file: Option<PathBuf>,
    pub commit_interval: Duration,
}

impl ConsumerTask {
    /// Reads, applies, checkpoints and commits until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut pending = BTreeMap::<i32, i64>::new();
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(topic = %self.topic, "consumer started");
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = tick.tick() => self.commit(&mut pending, CommitMode::Async),
                message = self.consumer.recv() => match message {
                    Ok(m) => {
                        let (partition, offset) = (m.partition(), m.offset());
                        self.counters.consumed(partition, offset);
                        self.apply(m.payload(), partition, offset);
                        pending.insert(partition, offset + 1);
                    }
                    Err(e) => {
                        self.counters.kafka_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        warn!(error = %e, "kafka consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        self.commit(&mut pending, CommitMode::Sync);
        info!(topic = %self.topic, "consumer stopped");
    }

    fn apply(&self, payload: Option<&[u8]>, partition: i32, offset: i64) {
        match ingest::parse_record(payload.unwrap_or_default()) {
            Ok(record) => {
                self.learner.lock().state.apply(&record, now_ms());
            }
            Err(e) => {
                self.counters.error(e.kind());
                self.counters.rejected_records.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                warn!(partition, offset, error = %e, "skipping a message that is not telemetry");
            }
        }
    }

    /// Checkpoints (when configured) and then commits the offsets after the applied records.
    /// A failed checkpoint holds the commit back, so a commit never gets ahead of the state file.
    fn commit(&self, pending: &mut BTreeMap<i32, i64>, mode: CommitMode) {
        if pending.is_empty() {
            return;
        }
        if let Some(path) = &self.state_file {
            if !write_checkpoint(path, &self.learner, &self.counters) {
                return;
            }
        }
        let mut list = TopicPartitionList::new();
        for (partition, next) in pending.iter() {
            if let Err(e) =
                list.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))
            {
                warn!(partition, error = %e, "cannot build offset list");
                return;
            }
        }
        match self.consumer.commit(&list, mode) {
            Ok(()) => {
                self.counters.committed(pending);
                debug!(offsets = ?pending, "offsets committed");
                pending.clear();
            }
            Err(e) => {
                self.counters.kafka_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                warn!(error = %e, "offset commit failed, will retry");
            }
        }
    }
}

/// Writes the state file; false (logged, counted) when it could not.
pub fn write_checkpoint(
    path: &std::path::Path,
    learner: &SharedLearner,
    counters: &Counters,
) -> bool {
    let saved = learner.lock().state.to_saved();
    match checkpoint::save(path, &saved) {
        Ok(()) => {
            counters.checkpoints.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            true
        }
        Err(e) => {
            counters.checkpoint_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            warn!(error = %e, "checkpoint failed");
            false
        }
    }
}
