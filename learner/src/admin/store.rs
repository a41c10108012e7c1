//! The store seam: what the admin API asks of its database, as one small trait
//! ([`AdminStore`]), so the HTTP layer does not know whether SQLite or PostgreSQL answers
//! ([`crate::admin::sql`] implements it for both).
//!
//! Every change of a pool, experiment or gate bumps the configuration version in the same
//! transaction, so a router that saw version `v` has seen every change up to `v`, whichever
//! learner instance made it. Integrity rules live here too, inside those transactions: an
//! experiment names an existing pool, and a pool with experiments cannot be deleted.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::admin::model::{Experiment, Gate, Kind, Pool, Resource, Scope};

/// A resource with its timestamps (ms since the Unix epoch, the learner's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub resource: Resource,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// An API key as stored: never its secret, only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    pub scope: Scope,
    pub label: String,
    /// Who created it (the audit actor of the call).
    pub created_by: String,
    pub created_ms: u64,
    pub revoked_ms: Option<u64>,
}

/// One line of the audit log: who called what, when, and with which answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub at_ms: u64,
    /// `learner-token`, `key:<id>`, or `open` (an `--open` learner).
    pub actor: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// What routers read (`GET /v1/config`): everything as of one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigSnapshot {
    pub version: u64,
    pub pools: Vec<Pool>,
    /// Running experiments only.
    pub experiments: Vec<Experiment>,
    pub gates: Vec<Gate>,
}

/// Why a store call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("a {} named {id:?} already exists", kind.noun())]
    Exists { kind: Kind, id: String },
    #[error("no {} named {id:?}", kind.noun())]
    NotFound { kind: Kind, id: String },
    #[error("no API key {0:?}")]
    NoKey(String),
    /// The change would break a reference: `field` names what refers or is referred to.
    #[error("{field}: {problem}")]
    Conflict { field: &'static str, problem: String },
    /// The database failed (connection, I/O, a row it should not hold). Logged, answered as 503.
    #[error("database: {0}")]
    Database(String),
}

pub type StoreResult<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// The admin API's database (see the module docs).
pub trait AdminStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Adds a resource; [`StoreError::Exists`] when its id is taken.
    fn create<'a>(&'a self, resource: &'a Resource, now_ms: u64) -> StoreResult<'a, Stored>;

    /// Replaces a resource; [`StoreError::NotFound`] when there is none with its id.
    fn replace<'a>(&'a self, resource: &'a Resource, now_ms: u64) -> StoreResult<'a, Stored>;

    fn get<'a>(&'a self, kind: Kind, id: &'a str) -> StoreResult<'a, Option<Stored>>;

    /// Every resource of `kind`, by id.
    fn list(&self, kind: Kind) -> StoreResult<'_, Vec<Stored>>;

    /// Deletes a resource; [`StoreError::NotFound`] when there is none.
    fn delete<'a>(&'a self, kind: Kind, id: &'a str) -> StoreResult<'a, ()>;

    /// The routers' configuration, read in one transaction.
    fn snapshot(&self) -> StoreResult<'_, ConfigSnapshot>;

    /// Stores a new key under the SHA-256 (hex) of its secret.
    fn insert_key<'a>(&'a self, key: &'a ApiKey, secret_sha256: &'a str) -> StoreResult<'a, ()>;

    /// The key whose secret has this SHA-256, revoked or not.
    fn key_by_hash<'a>(&'a self, secret_sha256: &'a str) -> StoreResult<'a, Option<ApiKey>>;

    fn list_keys(&self) -> StoreResult<'_, Vec<ApiKey>>;

    /// Marks a key revoked (once: a second revocation keeps the first time).
    fn revoke_key<'a>(&'a self, id: &'a str, now_ms: u64) -> StoreResult<'a, ApiKey>;

    fn record_audit<'a>(&'a self, entry: &'a AuditEntry) -> StoreResult<'a, ()>;

    /// The newest `limit` audit entries, newest first.
    fn audit_log(&self, limit: u32) -> StoreResult<'_, Vec<AuditEntry>>;
}
