//! What the HTTP handlers share ([`AppState`]), apart from the handlers themselves so that the
//! read API ([`crate::http`]) and the produce APIs ([`crate::produce`]) both depend on it and
//! not on each other.

use std::sync::Arc;

use crate::auth::{Access, BasicAuth};
use crate::config::Mode;
use crate::health::ConsumerHealth;
use crate::journal::Journal;
use crate::kafka::Bridge;
use crate::metrics::Counters;
use crate::shared::SharedLearner;

/// What the produce API does with accepted records.
#[derive(Clone)]
pub enum Ingest {
    /// Apply them to this learner (embedded mode).
    Apply,
    /// Forward them to Kafka (bridge, combined).
    Forward(Arc<Bridge>),
    /// No produce API (kafka mode).
    Refuse,
}

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub mode: Mode,
    pub topic: Arc<str>,
    /// The cluster id the v3 produce API answers for.
    pub cluster_id: Arc<str>,
    /// Who may call the protected endpoints ([`crate::auth`]).
    pub access: Arc<Access>,
    /// Basic-auth credentials the produce APIs also accept, when configured.
    pub basic_auth: Option<Arc<BasicAuth>>,
    /// The Kafka consumer's liveness (consuming modes).
    pub consumer: Option<Arc<ConsumerHealth>>,
    pub body_limit_bytes: usize,
    /// Route/downstream series shown by one `/metrics` page or `/stats` document.
    pub metrics_max_series: usize,
    pub max_batch_records: usize,
    pub learner: Option<SharedLearner>,
    pub ingest: Ingest,
    pub counters: Arc<Counters>,
    /// Embedded mode with a state file: the state log every batch goes through before it is
    /// answered ([`crate::journal`]).
    pub journal: Option<Arc<Journal>>,
    /// The admin API's store (`/v1`, [`crate::admin`]); `None` serves no `/v1` routes.
    pub admin: Option<crate::admin::Admin>,
}
