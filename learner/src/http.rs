//! The HTTP face of the learner: `app(state) -> Router`.
//!
//! - `POST /topics/{topic}` (Kafka REST v2) and `POST /v3/clusters/{cluster_id}/topics/{topic}/records`
//!   (Confluent v3): the produce APIs (embedded, bridge, combined), see [`crate::produce`];
//! - `GET /recommendation?route=&candidates=&exclude=`: one Thompson draw per candidate;
//! - `GET /params?route=`: decayed counts per downstream, for the router to import;
//! - `GET /stats`, `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! GET endpoints allow any origin (CORS), so the test-bed page on another port can read them,
//! and never ask for credentials; `--rest-basic-auth` guards only the produce APIs.
//! `/healthz` answers 200 `{"status": "ok", "mode": ...}`, and in the consuming modes adds the
//! consumer's health ([`crate::health`]), answering 503 when the consumer is down.
//! Errors are JSON `{"error_code": N, "message": "..."}`, saying what was wrong with the request.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::rngs::SmallRng;
use serde::Deserialize;
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};

use crate::auth::BasicAuth;
use crate::config::Mode;
use crate::health::ConsumerHealth;
use crate::kafka::Bridge;
use crate::metrics::{self, Counters};
use crate::produce;
use crate::state::{LearnerState, RecommendError};

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
    /// The cluster id the v3 produce API answers for.
    pub cluster_id: Arc<str>,
    /// Credentials the produce APIs require, when configured.
    pub basic_auth: Option<Arc<BasicAuth>>,
    /// The Kafka consumer's liveness (consuming modes).
    pub consumer: Option<Arc<ConsumerHealth>>,
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
    let produce = Router::new()
        .route("/topics/{topic}", post(produce::v2))
        .route("/v3/clusters/{cluster_id}/topics/{topic}/records", post(produce::v3))
        .route_layer(middleware::from_fn_with_state(state.clone(), produce::require_basic_auth));
    reads.layer(cors).merge(produce).fallback(not_found).with_state(state)
}

/// A JSON error answer.
fn error(status: StatusCode, error_code: u32, message: impl Into<String>) -> Response {
    error_as(status, "application/json", error_code, message)
}

/// A JSON error answer (`{"error_code", "message"}`) with `content_type`, as the produce APIs
/// give theirs.
pub(crate) fn error_as(
    status: StatusCode,
    content_type: &'static str,
    error_code: u32,
    message: impl Into<String>,
) -> Response {
    let body = json!({"error_code": error_code, "message": message.into()});
    (status, [(header::CONTENT_TYPE, content_type)], body.to_string()).into_response()
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
    let Some(consumer) = &state.consumer else {
        return axum::Json(json!({"status": "ok", "mode": state.mode.as_str()})).into_response();
    };
    let report = consumer.report(now_ms());
    let status = if report.is_up() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": report.status,
        "mode": state.mode.as_str(),
        "consumer": report,
    });
    (status, axum::Json(body)).into_response()
}

async fn stats(State(state): State<AppState>) -> Response {
    let now = now_ms();
    let consumer = state.consumer.as_ref().map(|c| c.report(now));
    let guard = state.learner.as_ref().map(SharedLearner::lock);
    let doc = metrics::stats_json(
        state.mode,
        &state.counters,
        guard.as_ref().map(|l| &l.state),
        consumer.as_ref(),
        now,
    );
    drop(guard);
    axum::Json(doc).into_response()
}

async fn prometheus(State(state): State<AppState>) -> Response {
    let now = now_ms();
    let consumer = state.consumer.as_ref().map(|c| c.report(now));
    let guard = state.learner.as_ref().map(SharedLearner::lock);
    let text = metrics::prometheus(
        state.mode,
        &state.counters,
        guard.as_ref().map(|l| &l.state),
        consumer.as_ref(),
        now,
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

#[cfg(test)]
mod tests {
    // A failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::health::ConsumerHealth;
    use rand::SeedableRng;
    use std::time::Duration;

    /// A kafka-mode app (no Kafka behind it) whose consumer health the test drives.
    async fn serve(health: Arc<ConsumerHealth>) -> String {
        let state = AppState {
            mode: Mode::Kafka,
            topic: "t".into(),
            cluster_id: "c".into(),
            basic_auth: None,
            consumer: Some(health),
            body_limit_bytes: 1024,
            max_batch_records: 10,
            learner: Some(SharedLearner::new(
                LearnerState::new(magnetar_core::posterior::Decay::default(), 10),
                SmallRng::seed_from_u64(1),
            )),
            ingest: Ingest::Refuse,
            counters: Arc::new(Counters::default()),
            next_offset: Arc::new(AtomicI64::new(0)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app(state)).await });
        url
    }

    async fn get(url: &str) -> (u16, serde_json::Value) {
        let response = reqwest::get(url).await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    #[tokio::test]
    async fn healthz_is_503_while_the_consumer_is_down() {
        let health = Arc::new(ConsumerHealth::new(Duration::from_secs(30)));
        let url = serve(health.clone()).await;
        let (status, body) = get(&format!("{url}/healthz")).await;
        assert_eq!((status, body["status"].as_str()), (503, Some("down")), "{body}");
        assert_eq!(body["consumer"]["running"], false);

        health.started(now_ms());
        let (status, body) = get(&format!("{url}/healthz")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");
        assert_eq!(body["mode"], "kafka");
        assert!(body["consumer"]["last_poll_age_ms"].as_u64().unwrap() < 10_000, "{body}");
        let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("magnetar_learner_kafka_consumer_up 1"), "{metrics}");

        health.error(now_ms());
        let (status, body) = get(&format!("{url}/healthz")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("degraded")), "{body}");

        // The consumer task ended (or panicked) before shutdown.
        health.stopped();
        let (status, body) = get(&format!("{url}/healthz")).await;
        assert_eq!((status, body["status"].as_str()), (503, Some("down")), "{body}");
        let (_, stats) = get(&format!("{url}/stats")).await;
        assert_eq!(stats["kafka"]["consumer"]["status"], "down", "{stats}");
        let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
        assert!(metrics.contains("magnetar_learner_kafka_consumer_up 0"), "{metrics}");
    }
}
