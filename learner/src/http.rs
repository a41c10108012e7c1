//! The HTTP face of the learner: `app(state) -> Router`.
//!
//! - `POST /topics/{topic}`: the Kafka REST proxy v2 produce API (embedded, bridge, combined);
//! - `GET /recommendation?route=&candidates=&exclude=`: one Thompson draw per candidate;
//! - `GET /params?route=`: decayed counts per downstream, for the router to import;
//! - `GET /stats`, `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! GET endpoints allow any origin (CORS), so the test-bed page on another port can read them.
//! Errors are JSON `{"error_code": N, "message": "..."}`, saying what was wrong with the request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use magnetar_core::telemetry::{CONTENT_TYPE_V2, ProduceOffset, ProduceResponse};
use rand::rngs::SmallRng;
use serde::Deserialize;
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};
use tracing::{debug, warn};

use crate::config::Mode;
use crate::ingest::{self, BatchEntry, RecordError};
use crate::kafka::Bridge;
use crate::metrics::{self, Counters};
use crate::state::{Applied, LearnerState, RecommendError};

/// The learned state and the RNG that samples it, behind one lock.
#[derive(Debug)]
pub struct Learner {
    pub state: LearnerState,
    pub rng: SmallRng,
}

/// Shared handle to the [`Learner`].
#[derive(Debug, Clone)]
pub struct SharedLearner(Arc<Mutex<Learner>>);

impl SharedLearner {
    pub fn new(state: LearnerState, rng: SmallRng) -> Self {
        SharedLearner(Arc::new(Mutex::new(Learner { state, rng })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Learner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

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
    pub body_limit_bytes: usize,
    pub max_batch_records: usize,
    pub learner: Option<SharedLearner>,
    pub ingest: Ingest,
    pub counters: Arc<Counters>,
    /// Next offset of the embedded topic's single partition.
    pub next_offset: Arc<AtomicI64>,
}

/// The learner's clock.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Builds the router for `state.mode`: learning endpoints only when the mode learns.
pub fn app(state: AppState) -> Router {
    let mut reads = Router::new()
        .route("/healthz", get(healthz))
        .route("/stats", get(stats))
        .route("/metrics", get(prometheus));
    if state.learner.is_some() {
        reads = reads.route("/recommendation", get(recommendation)).route("/params", get(params));
    }
    let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::GET]);
    reads.layer(cors).route("/topics/{topic}", post(produce)).fallback(not_found).with_state(state)
}

/// A JSON error answer.
fn error(status: StatusCode, error_code: u32, message: impl Into<String>) -> Response {
    let body = json!({"error_code": error_code, "message": message.into()});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn v2_error(status: StatusCode, error_code: u32, message: impl Into<String>) -> Response {
    let body = json!({"error_code": error_code, "message": message.into()});
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE_V2)], body.to_string()).into_response()
}

async fn not_found(
    State(state): State<AppState>,
    method: Method,
    uri: axum::http::Uri,
) -> Response {
    error(
        StatusCode::NOT_FOUND,
        40400,
        format!("no endpoint {method} {} in {} mode", uri.path(), state.mode.as_str()),
    )
}

async fn healthz(State(state): State<AppState>) -> Response {
    axum::Json(json!({"status": "ok", "mode": state.mode.as_str()})).into_response()
}

async fn stats(State(state): State<AppState>) -> Response {
    let guard = state.learner.as_ref().map(SharedLearner::lock);
    let doc = metrics::stats_json(
        state.mode,
        &state.counters,
        guard.as_ref().map(|l| &l.state),
        now_ms(),
    );
    drop(guard);
    axum::Json(doc).into_response()
}

async fn prometheus(State(state): State<AppState>) -> Response {
    let guard = state.learner.as_ref().map(SharedLearner::lock);
    let text = metrics::prometheus(
        state.mode,
        &state.counters,
        guard.as_ref().map(|l| &l.state),
        now_ms(),
    );
    drop(guard);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[derive(Debug, Deserialize)]
struct RouteQuery {
    route: Option<String>,
    candidates: Option<String>,
    exclude: Option<String>,
}

/// Comma-separated names, trimmed, empty items dropped, first occurrence kept.
fn names(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// A request error of a GET endpoint, answered as JSON.
#[derive(Debug)]
struct BadQuery {
    status: StatusCode,
    code: u32,
    message: String,
}

impl IntoResponse for BadQuery {
    fn into_response(self) -> Response {
        error(self.status, self.code, self.message)
    }
}

fn route_of(query: Result<Query<RouteQuery>, QueryRejection>) -> Result<RouteQuery, BadQuery> {
    let Query(q) = query.map_err(|e| BadQuery {
        status: StatusCode::BAD_REQUEST,
        code: 40001,
        message: format!("bad query string: {e}"),
    })?;
    match q.route.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => Ok(q),
        _ => Err(BadQuery {
            status: StatusCode::BAD_REQUEST,
            code: 40002,
            message: "missing query parameter route (e.g. route=/service)".into(),
        }),
    }
}

async fn recommendation(
    State(state): State<AppState>,
    query: Result<Query<RouteQuery>, QueryRejection>,
) -> Response {
    let q = match route_of(query) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let route = q.route.as_deref().unwrap_or_default().trim();
    let candidates = q.candidates.as_deref().map(names).filter(|c| !c.is_empty());
    let exclude = q.exclude.as_deref().map(names).unwrap_or_default();
    let Some(learner) = &state.learner else {
        return error(StatusCode::NOT_FOUND, 40400, "this process does not learn");
    };
    let result = {
        let mut guard = learner.lock();
        let Learner { state, rng } = &mut *guard;
        state.recommend(route, candidates.as_deref(), &exclude, now_ms(), rng)
    };
    match result {
        Ok(rec) => axum::Json(rec).into_response(),
        Err(e @ RecommendError::UnknownRoute(_)) => {
            error(StatusCode::NOT_FOUND, 40403, e.to_string())
        }
        Err(e @ RecommendError::AllExcluded) => error(StatusCode::NOT_FOUND, 40404, e.to_string()),
    }
}

async fn params(
    State(state): State<AppState>,
    query: Result<Query<RouteQuery>, QueryRejection>,
) -> Response {
    let q = match route_of(query) {
        Ok(q) => q,
        Err(bad) => return bad.into_response(),
    };
    let Some(learner) = &state.learner else {
        return error(StatusCode::NOT_FOUND, 40400, "this process does not learn");
    };
    let params =
        learner.lock().state.params(q.route.as_deref().unwrap_or_default().trim(), now_ms());
    axum::Json(params).into_response()
}

/// Rejects a whole produce request: counted, logged, answered with a v2 error body.
fn reject(
    state: &AppState,
    status: StatusCode,
    kind: &'static str,
    code: u32,
    message: String,
) -> Response {
    state.counters.rejected_batches.fetch_add(1, Ordering::Relaxed);
    state.counters.error(kind);
    debug!(kind, code, %message, "produce request rejected");
    v2_error(status, code, message)
}

async fn produce(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    if matches!(state.ingest, Ingest::Refuse) {
        return reject(
            &state,
            StatusCode::NOT_FOUND,
            "unknown_topic",
            ingest::CODE_UNKNOWN_TOPIC,
            format!(
                "this learner runs in {} mode and reads telemetry from Kafka; post it to the bridge",
                state.mode.as_str()
            ),
        );
    }
    if topic != *state.topic {
        return reject(
            &state,
            StatusCode::NOT_FOUND,
            "unknown_topic",
            ingest::CODE_UNKNOWN_TOPIC,
            format!("topic {topic:?} not found (this endpoint serves {:?})", &*state.topic),
        );
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !ingest::accepts_content_type(content_type) {
        return reject(
            &state,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            ingest::CODE_UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type {:?} is not accepted; use {} (or application/json)",
                content_type.unwrap_or(""),
                magnetar_core::telemetry::CONTENT_TYPE_V2_JSON
            ),
        );
    }
    let limit = state.body_limit_bytes;
    let too_large = |state: &AppState| {
        reject(
            state,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            ingest::CODE_BODY_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(&state);
    }
    let body = match axum::body::to_bytes(Body::new(request.into_body()), limit).await {
        Ok(b) => b,
        Err(e) => {
            let is_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if is_limit {
                return too_large(&state);
            }
            return reject(
                &state,
                StatusCode::BAD_REQUEST,
                "body_read",
                40003,
                format!("could not read the request body: {e}"),
            );
        }
    };
    let entries = match ingest::parse_batch(&body, state.max_batch_records) {
        Ok(entries) => entries,
        Err(e) => {
            return reject(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                e.kind(),
                e.error_code(),
                e.to_string(),
            );
        }
    };
    let offsets = match &state.ingest {
        Ingest::Apply => apply_here(&state, entries),
        Ingest::Forward(bridge) => {
            let offsets = bridge.forward(entries).await;
            let ok = offsets.iter().filter(|o| o.error_code.is_none()).count() as u64;
            state.counters.records_forwarded.fetch_add(ok, Ordering::Relaxed);
            offsets
        }
        Ingest::Refuse => Vec::new(),
    };
    let accepted = offsets.iter().filter(|o| o.error_code.is_none()).count() as u64;
    let refused = offsets.len() as u64 - accepted;
    state.counters.batches.fetch_add(1, Ordering::Relaxed);
    state.counters.records_accepted.fetch_add(accepted, Ordering::Relaxed);
    state.counters.rejected_records.fetch_add(refused, Ordering::Relaxed);
    if refused > 0 {
        warn!(topic = %topic, accepted, refused, "produce request partly refused");
    }
    let response = ProduceResponse { key_schema_id: None, value_schema_id: None, offsets };
    let body = serde_json::to_string(&response).unwrap_or_default();
    ([(header::CONTENT_TYPE, CONTENT_TYPE_V2)], body).into_response()
}

/// A per-record error in the v2 answer.
pub fn record_error(e: &RecordError) -> ProduceOffset {
    ProduceOffset {
        partition: None,
        offset: None,
        error_code: Some(e.error_code() as i32),
        error: Some(e.to_string()),
    }
}

fn apply_here(state: &AppState, entries: Vec<BatchEntry>) -> Vec<ProduceOffset> {
    let Some(learner) = &state.learner else { return Vec::new() };
    let now = now_ms();
    let mut guard = learner.lock();
    let mut offsets = Vec::with_capacity(entries.len());
    let mut applied = BTreeMap::<&str, u64>::new();
    for entry in entries {
        let record = match entry.partition {
            Some(p) if p != ingest::EMBEDDED_PARTITION => Err(RecordError::UnknownPartition(p)),
            _ => entry.record,
        };
        match record {
            Ok(record) => {
                let outcome = guard.state.apply(&record, now);
                *applied
                    .entry(if outcome == Applied::Duplicate { "duplicate" } else { "new" })
                    .or_default() += 1;
                offsets.push(ProduceOffset {
                    partition: Some(ingest::EMBEDDED_PARTITION),
                    offset: Some(state.next_offset.fetch_add(1, Ordering::Relaxed)),
                    error_code: None,
                    error: None,
                });
            }
            Err(e) => {
                state.counters.error(e.kind());
                offsets.push(record_error(&e));
            }
        }
    }
    drop(guard);
    debug!(
        new = applied.get("new").copied().unwrap_or(0),
        duplicates = applied.get("duplicate").copied().unwrap_or(0),
        "batch applied"
    );
    offsets
}
