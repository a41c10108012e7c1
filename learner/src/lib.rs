//! Magnetar's learner: router telemetry in, routing decisions out.
//!
//! Routers post one [`TelemetryRecord`](magnetar_core::telemetry::TelemetryRecord) per client
//! request to a Kafka REST proxy (the v2 produce API, or Confluent's v3 with basic auth). The learner turns every attempt in them into an
//! observation of a decayed Beta posterior per route and downstream
//! ([`magnetar_core::posterior`]), and answers `GET /recommendation` by Thompson sampling and
//! `GET /params` with the decayed counts the routers import.
//!
//! Modes ([`Mode`]), all in this one binary:
//!
//! | mode | produce APIs (v2 `POST /topics/{topic}`, v3 [`v3`]) | learns from | serves `/recommendation`, `/params` |
//! | --- | --- | --- | --- |
//! | `embedded` (default) | applied here | the produce API | yes |
//! | `kafka` | no (404) | a Kafka consumer group | yes |
//! | `bridge` | forwarded to Kafka | nothing | no |
//! | `combined` | forwarded to Kafka | a Kafka consumer group | yes |
//!
//! So the local stack needs no Kafka (`embedded`), and router -> REST -> Kafka -> learner runs
//! either as two processes (`bridge` + `kafka`, the way `scripts/stack.sh --kafka` runs it) or
//! as one (`combined`). Delivery guarantees are in [`kafka`].
//!
//! Map: [`config`] (flags, environment), [`ingest`] (v2 parsing, error codes), [`v3`] (v3
//! parsing and answers), [`auth`] (basic auth), [`state`] (what is learned, caps), [`latency`],
//! [`checkpoint`] (state file and the embedded checkpoint loop), [`metrics`] (`/stats`,
//! `/metrics`), [`health`] (consumer liveness), [`shared`] (the learned state behind its lock),
//! [`clock`], [`error`] (HTTP error answers), [`app_state`] (what handlers share), [`http`]
//! (`app(state) -> Router`), [`produce`] (the produce handlers), [`kafka`] (consumer, bridge,
//! topic), [`offsets`] (which offsets may be committed).

use std::future::Future;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

pub mod admin;
pub mod app_state;
pub mod auth;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod error;
pub mod health;
pub mod http;
pub mod ingest;
pub mod journal;
pub mod kafka;
pub mod latency;
pub mod metrics;
pub mod offsets;
pub mod produce;
pub mod serve;
pub mod shared;
pub mod state;
pub mod v3;
pub mod validate;

pub use app_state::{AppState, Ingest};
pub use config::{LearnerConfig, Mode};
pub use http::app;
pub use shared::SharedLearner;

use crate::clock::now_ms;
use crate::health::ConsumerHealth;
use crate::metrics::Counters;
use crate::state::LearnerState;

/// Why the learner could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("http server: {0}")]
    Serve(#[from] std::io::Error),
    #[error("{mode} mode needs --kafka-brokers")]
    NoKafka { mode: &'static str },
    #[error("an open learner (--open) listens on loopback only, not on {0}")]
    OpenNotLoopback(std::net::SocketAddr),
    #[error("admin store: {0}")]
    Store(#[from] admin::store::StoreError),
}

/// Loads the state file when configured and present, else starts empty.
pub fn initial_state(config: &LearnerConfig) -> Result<LearnerState, LearnerError> {
    let saved = match &config.state_file {
        Some(path) if config.reset_state => {
            warn!(path = %path.display(), "--reset-state: starting empty; the state file is replaced at the next checkpoint");
            None
        }
        Some(path) => checkpoint::load(path)?,
        None => None,
    };
    let limits = state::Limits {
        max_routes: config.max_routes,
        max_downstreams_per_route: config.max_downstreams_per_route,
    };
    let state = match saved {
        Some(saved) => {
            let state = LearnerState::from_saved(saved, config.decay, config.dedupe_window);
            info!(
                records_applied = state.records_applied(),
                version = state.version(),
                "state file loaded"
            );
            state
        }
        None => LearnerState::new(config.decay, config.dedupe_window),
    };
    Ok(state.with_limits(limits).with_fleet(config.fleet.clone()))
}

/// Runs the learner on `listener` in `config.mode` until `shutdown` resolves, then stops the
/// HTTP server gracefully, commits what the consumer applied, writes the state file and flushes
/// the bridge.
pub async fn run(
    listener: TcpListener,
    config: LearnerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), LearnerError> {
    let mode = config.mode;
    let addr = listener.local_addr()?;
    if config.access.is_open() && !addr.ip().is_loopback() {
        return Err(LearnerError::OpenNotLoopback(addr));
    }
    let counters = Arc::new(Counters::default());
    // Before any task starts: a database that cannot be opened stops the start here.
    if config.database == admin::Database::Memory {
        warn!(
            "admin store in memory: pools, experiments, gates and keys are gone at exit; \
             give --state-file or --database-url"
        );
    }
    let store = admin::SqlStore::open(&config.database).await?;
    let learner = if mode.learns() {
        let rng = match config.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        Some(SharedLearner::new(initial_state(&config)?, rng))
    } else {
        None
    };
    let kafka = match (&config.kafka, mode) {
        (Some(k), _) => Some(k.clone()),
        (None, Mode::Embedded) => None,
        (None, _) => return Err(LearnerError::NoKafka { mode: mode.as_str() }),
    };
    if let Some(k) = &kafka {
        kafka::ensure_topic(k, &config.topic).await?;
    }
    let bridge = match (&kafka, mode.bridges()) {
        (Some(k), true) => Some(Arc::new(kafka::Bridge::new(k, &config.topic)?)),
        _ => None,
    };
    let ingest = match (&bridge, mode) {
        (Some(b), _) => Ingest::Forward(b.clone()),
        (None, Mode::Embedded) => Ingest::Apply,
        (None, _) => Ingest::Refuse,
    };

    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut consumer_health = None;
    if let (Some(k), Some(learner), true) = (&kafka, &learner, mode.consumes()) {
        let committer = Arc::new(kafka::Committer::new(
            &config.topic,
            learner.clone(),
            counters.clone(),
            config.state_file.clone(),
        ));
        let health = Arc::new(ConsumerHealth::for_commit_interval(config.commit_interval));
        // Up from here, so /healthz does not flicker 503 before the task's first turn.
        health.started(now_ms());
        let task = kafka::ConsumerTask {
            consumer: Arc::new(kafka::consumer(k, &config.topic, committer.clone())?),
            committer,
            health: health.clone(),
            commit_interval: config.commit_interval,
        };
        consumer_health = Some(health);
        tasks.push(tokio::spawn(task.run(stopped.clone())));
    }
    let journal = match (&config.state_file, &learner, mode) {
        (Some(path), Some(learner), Mode::Embedded) => {
            let io = |source| checkpoint::CheckpointError::Io { path: path.clone(), source };
            if config.reset_state {
                journal::discard(path).map_err(io)?;
            }
            let covered = learner.next_offset();
            let replayed = journal::replay(path, learner).map_err(io)?;
            if replayed > 0 {
                info!(replayed, "state log replayed");
            }
            let journal = journal::Journal::start(
                path.clone(),
                learner.clone(),
                counters.clone(),
                config.commit_interval,
                covered,
            )
            .map_err(io)?;
            Some(Arc::new(journal))
        }
        _ => None,
    };

    let state = AppState {
        admin: Some(admin::Admin { store: Arc::new(store) }),
        mode,
        topic: config.topic.clone().into(),
        cluster_id: config.cluster_id.clone().into(),
        access: Arc::new(config.access.clone()),
        basic_auth: config.basic_auth.clone().map(Arc::new),
        consumer: consumer_health,
        body_limit_bytes: config.body_limit_bytes,
        metrics_max_series: config.metrics_max_series,
        max_batch_records: config.max_batch_records,
        learner,
        ingest,
        counters,
        journal: journal.clone(),
    };
    info!(
        %addr,
        mode = mode.as_str(),
        topic = %config.topic,
        cluster_id = %config.cluster_id,
        access = if config.access.is_open() { "open" } else { "token" },
        basic_auth = config.basic_auth.is_some(),
        "learner listening"
    );
    if config.access.is_open() {
        warn!(
            %addr,
            "learner is open: ingest, /recommendation, /params and /stats answer without credentials (loopback only)"
        );
    }
    serve::serve(listener, app(state), config.server, async move {
        shutdown.await;
        info!("shutting down");
    })
    .await;
    // Only now, with every connection drained: the consumer's last commit and the final
    // checkpoint then hold every batch that was answered.
    let _ = stop.send(true);
    if let Some(journal) = journal {
        // Writes what is queued and takes the final checkpoint.
        let _ = tokio::task::spawn_blocking(move || journal.stop()).await;
    }
    for task in tasks {
        let _ = task.await;
    }
    if let Some(bridge) = bridge {
        bridge.flush(std::time::Duration::from_secs(5));
    }
    info!("learner stopped");
    Ok(())
}
