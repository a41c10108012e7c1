//! The HTTP face of the learner: `app(state) -> Router`.
//!
//! - `POST /topics/{topic}` (Kafka REST v2) and `POST /v3/clusters/{cluster_id}/topics/{topic}/records`
//!   (Confluent v3): the produce APIs (embedded, bridge, combined), see [`crate::produce`];
//! - `GET /recommendation?route=&candidates=&exclude=`: one Thompson draw per candidate;
//! - `GET /params?route=`: decayed counts per downstream, for the router to import;
//! - `GET /stats`, `GET /healthz`, `GET /metrics` (Prometheus text);
//! - `/v1/...`: the admin API (pools, experiments, gates, keys, `/v1/config`), [`crate::admin`].
//!
//! Credentials ([`crate::auth`]): every endpoint but `/healthz` and `/metrics` asks for
//! `Authorization: Bearer <token>` (401 with `WWW-Authenticate: Bearer realm="magnetar"`); the
//! produce APIs also take `--rest-basic-auth`; `--open` asks for nothing. GET endpoints allow
//! any origin (CORS, `Authorization` among the allowed headers), so the test-bed page on another
//! port can read them.
//! `/healthz` answers 200 `{"status": "ok", "mode": ...}`, and in the consuming modes adds the
//! consumer's health ([`crate::health`]), answering 503 when the consumer is down.
//! Errors are JSON `{"error_code": N, "message": "..."}`, saying what was wrong with the request.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};

pub use crate::app_state::{AppState, Ingest};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::metrics;
use crate::produce;
use crate::shared::SharedLearner;
use crate::validate::{MAX_NAME_LEN, MAX_ROUTE_LEN};

/// Builds the router for `state.mode`: learning endpoints only when the mode learns.
pub fn app(state: AppState) -> Router {
    let public = Router::new().route("/healthz", get(healthz)).route("/metrics", get(prometheus));
    let mut reads = Router::new().route("/stats", get(stats));
    if state.learner.is_some() {
        reads = reads.route("/recommendation", get(recommendation)).route("/params", get(params));
    }
    let reads = reads
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .merge(public);
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([header::AUTHORIZATION]);
    let produce = Router::new()
        .route("/topics/{topic}", post(produce::v2))
        .route("/v3/clusters/{cluster_id}/topics/{topic}/records", post(produce::v3))
        .route_layer(middleware::from_fn_with_state(state.clone(), produce::require_credentials));
    let admin = crate::admin::http::routes(&state);
    reads.layer(cors).merge(produce).merge(admin).fallback(not_found).with_state(state)
}

/// Middleware on `/recommendation`, `/params` and `/stats`: 401 without the bearer token.
async fn require_token(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let presented = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes());
    if state.access.may_read(presented) {
        return next.run(request).await;
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        40100,
        "this endpoint needs Authorization: Bearer <token>",
    )
    .with_challenge("Bearer realm=\"magnetar\"")
    .into_response()
}

async fn not_found(
    State(state): State<AppState>,
    method: Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::no_endpoint(format!(
        "no endpoint {method} {} in {} mode",
        uri.path(),
        state.mode.as_str()
    ))
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

fn count_omitted(state: &AppState, summary: Option<&crate::state::StateSummary>) {
    if let Some(s) = summary.filter(|s| s.omitted_series > 0) {
        state
            .counters
            .series_omitted
            .fetch_add(s.omitted_series, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn stats(State(state): State<AppState>) -> Response {
    let now = now_ms();
    let consumer = state.consumer.as_ref().map(|c| c.report(now));
    let summary = state.learner.as_ref().map(|l| l.summary(now, state.metrics_max_series));
    count_omitted(&state, summary.as_ref());
    let doc = metrics::stats_json(state.mode, &state.counters, summary.as_ref(), consumer.as_ref());
    axum::Json(doc).into_response()
}

async fn prometheus(State(state): State<AppState>) -> Response {
    let now = now_ms();
    let consumer = state.consumer.as_ref().map(|c| c.report(now));
    let summary = state.learner.as_ref().map(|l| l.summary(now, state.metrics_max_series));
    count_omitted(&state, summary.as_ref());
    let text =
        metrics::prometheus(state.mode, &state.counters, summary.as_ref(), consumer.as_ref());
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
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

fn route_of(query: Result<Query<RouteQuery>, QueryRejection>) -> Result<RouteQuery, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_query", 40001, format!("bad query string: {e}"))
    })?;
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", 40002, message);
    match q.route.as_deref().map(str::trim) {
        Some(r) if r.len() > MAX_ROUTE_LEN => {
            return Err(bad(format!("route: at most {MAX_ROUTE_LEN} bytes, got {}", r.len())));
        }
        Some(r) if !r.is_empty() => {}
        _ => return Err(bad("missing query parameter route (e.g. route=/service)".into())),
    }
    for (field, list) in [("candidates", &q.candidates), ("exclude", &q.exclude)] {
        let Some(list) = list else { continue };
        let count = list.split(',').count();
        if count > MAX_QUERY_NAMES {
            return Err(bad(format!("{field}: at most {MAX_QUERY_NAMES} names, got {count}")));
        }
        if let Some(long) = list.split(',').find(|n| n.trim().len() > MAX_NAME_LEN) {
            return Err(bad(format!(
                "{field}: a name is at most {MAX_NAME_LEN} bytes, got {}",
                long.trim().len()
            )));
        }
    }
    Ok(q)
}

/// Most names in `candidates` or `exclude` (a route's downstreams are capped the same way).
pub const MAX_QUERY_NAMES: usize = crate::config::DEFAULT_MAX_DOWNSTREAMS_PER_ROUTE;

/// The learner of a mode that learns; a 404 in bridge mode (the routes are not even mounted
/// there, so this is only reached if that changes).
fn learner_of(state: &AppState) -> Result<&SharedLearner, ApiError> {
    state.learner.as_ref().ok_or_else(|| ApiError::no_endpoint("this process does not learn"))
}

async fn recommendation(
    State(state): State<AppState>,
    query: Result<Query<RouteQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = route_of(query)?;
    let route = q.route.as_deref().unwrap_or_default().trim();
    let candidates = q.candidates.as_deref().map(names).filter(|c| !c.is_empty());
    let exclude = q.exclude.as_deref().map(names).unwrap_or_default();
    let rec = learner_of(&state)?.recommend(route, candidates.as_deref(), &exclude, now_ms())?;
    Ok(axum::Json(rec).into_response())
}

async fn params(
    State(state): State<AppState>,
    query: Result<Query<RouteQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = route_of(query)?;
    let route = q.route.as_deref().unwrap_or_default().trim();
    let params = learner_of(&state)?.params(route, now_ms());
    Ok(axum::Json(params).into_response())
}

#[cfg(test)]
mod tests {
    // A failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::config::Mode;
    use crate::health::ConsumerHealth;
    use crate::metrics::Counters;
    use crate::state::LearnerState;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use std::sync::Arc;
    use std::time::Duration;

    /// A kafka-mode app (no Kafka behind it) whose consumer health the test drives.
    async fn serve(health: Arc<ConsumerHealth>) -> String {
        let state = AppState {
            mode: Mode::Kafka,
            topic: "t".into(),
            cluster_id: "c".into(),
            access: Arc::new(crate::auth::Access::Open),
            basic_auth: None,
            consumer: Some(health),
            body_limit_bytes: 1024,
            metrics_max_series: 100,
            max_batch_records: 10,
            learner: Some(SharedLearner::new(
                LearnerState::new(magnetar_core::posterior::Decay::default(), 10),
                SmallRng::seed_from_u64(1),
            )),
            ingest: Ingest::Refuse,
            counters: Arc::new(Counters::default()),
            journal: None,
            admin: None,
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
