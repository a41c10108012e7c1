//! The produce APIs of the HTTP face: Kafka REST v2 `POST /topics/{topic}` and Confluent v3
//! `POST /v3/clusters/{cluster_id}/topics/{topic}/records` ([`crate::v3`]), both applied here
//! (embedded) or forwarded to Kafka (bridge, combined), both behind the learner's credentials
//! ([`crate::auth`]).
//!
//! Whole-request errors, in the order they are checked: 401 credentials (unless `--open`), 404
//! unknown cluster (v3) or topic, or no produce API in this mode, 415 content type, 413 body
//! size; then the body's own errors (v2: 422 with a five-digit `error_code`, see
//! [`crate::ingest`]; v3: see [`crate::v3`]). Each is counted in `rejected.by_kind`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use magnetar_core::telemetry::{CONTENT_TYPE_V2, ProduceOffset, ProduceResponse, TelemetryRecord};
use tracing::{debug, warn};

use crate::app_state::{AppState, Ingest};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::ingest::{self, BatchEntry, RecordError, Stored};
use crate::state::Applied;
use crate::v3::{self, Delivery, PayloadSize, V3Record, V3RecordError, V3Result};

/// A request refused as a whole: counted, logged (without secrets) and answered as JSON with
/// `content_type`.
fn refuse(state: &AppState, refusal: ApiError, content_type: &'static str) -> Response {
    state.counters.rejected_batches.fetch_add(1, Ordering::Relaxed);
    state.counters.error(refusal.kind());
    debug!(
        kind = refusal.kind(),
        code = refusal.error_code(),
        message = refusal.message(),
        "produce request rejected"
    );
    refusal.with_content_type(content_type).into_response()
}

/// Middleware on the produce routes: 401 unless the bearer token (or the configured basic-auth
/// credentials) is presented; nothing is asked in `--open` mode.
pub async fn require_credentials(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    if state.access.may_produce(state.basic_auth.as_deref(), presented) {
        return next.run(request).await;
    }
    let (message, challenge) = if state.basic_auth.is_some() {
        (
            "this produce API needs Authorization: Bearer <token> or HTTP basic auth with the configured credentials",
            "Basic realm=\"magnetar\"",
        )
    } else {
        ("this produce API needs Authorization: Bearer <token>", "Bearer realm=\"magnetar\"")
    };
    let refusal = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", 401, message)
        .with_challenge(challenge);
    refuse(&state, refusal, v3::CONTENT_TYPE)
}

/// Checked first by both APIs: this mode has a produce API.
fn check_ingest(state: &AppState, code: u32) -> Result<(), ApiError> {
    if matches!(state.ingest, Ingest::Refuse) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_topic",
            code,
            format!(
                "this learner runs in {} mode and reads telemetry from Kafka; post it to the bridge",
                state.mode.as_str()
            ),
        ));
    }
    Ok(())
}

/// Checked by both APIs: the topic is the one this learner serves.
fn check_topic(state: &AppState, topic: &str, code: u32) -> Result<(), ApiError> {
    if topic != &*state.topic {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_topic",
            code,
            format!("topic {topic:?} not found (this endpoint serves {:?})", &*state.topic),
        ));
    }
    Ok(())
}

/// Reads the body under the size limit (413 codes: `too_large_code`, read errors 400).
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    request: Request,
    too_large_code: u32,
    read_error_code: u32,
) -> Result<Bytes, ApiError> {
    let limit = state.body_limit_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            too_large_code,
            format!("request body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(Body::new(request.into_body()), limit).await.map_err(|e| {
        let is_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if is_limit {
            too_large()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "body_read",
                read_error_code,
                format!("could not read the request body: {e}"),
            )
        }
    })
}

/// `POST /topics/{topic}`: the Kafka REST v2 produce API.
pub async fn v2(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    match v2_records(&state, &topic, &headers, request).await {
        Ok(offsets) => {
            let response = ProduceResponse { key_schema_id: None, value_schema_id: None, offsets };
            let body = serde_json::to_string(&response).unwrap_or_default();
            ([(header::CONTENT_TYPE, CONTENT_TYPE_V2)], body).into_response()
        }
        Err(refusal) => refuse(&state, refusal, CONTENT_TYPE_V2),
    }
}

async fn v2_records(
    state: &AppState,
    topic: &str,
    headers: &HeaderMap,
    request: Request,
) -> Result<Vec<ProduceOffset>, ApiError> {
    check_ingest(state, ingest::CODE_UNKNOWN_TOPIC)?;
    check_topic(state, topic, ingest::CODE_UNKNOWN_TOPIC)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !ingest::accepts_content_type(content_type) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            ingest::CODE_UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type {:?} is not accepted; use {} (or application/json)",
                content_type.unwrap_or(""),
                magnetar_core::telemetry::CONTENT_TYPE_V2_JSON
            ),
        ));
    }
    let body = read_body(state, headers, request, ingest::CODE_BODY_TOO_LARGE, 40003).await?;
    let entries = ingest::parse_batch(&body, state.max_batch_records).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.kind(), e.error_code(), e.to_string())
    })?;
    let results = store(state, entries).await;
    count_records(state, topic, results.iter().map(|r| r.as_ref().err().map(RecordError::kind)));
    Ok(results.iter().map(v2_offset).collect())
}

/// A record's place in the v2 answer.
fn v2_offset(result: &Result<Stored, RecordError>) -> ProduceOffset {
    match result {
        Ok(at) => ProduceOffset {
            partition: Some(at.partition),
            offset: Some(at.offset),
            error_code: None,
            error: None,
        },
        Err(e) => ProduceOffset {
            partition: None,
            offset: None,
            error_code: Some(e.error_code() as i32),
            error: Some(e.to_string()),
        },
    }
}

/// `POST /v3/clusters/{cluster_id}/topics/{topic}/records`: the Confluent v3 produce API.
pub async fn v3(
    State(state): State<AppState>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let json = [(header::CONTENT_TYPE, v3::CONTENT_TYPE)];
    let results = match v3_records(&state, &cluster_id, &topic, &headers, request).await {
        Ok(results) => results,
        Err(refusal) => return refuse(&state, refusal, v3::CONTENT_TYPE),
    };
    if let [Err(e)] = results.as_slice() {
        // One record posted alone: its failure is the request's.
        let code = e.error_code();
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        let refusal = ApiError::new(status, e.kind(), u32::from(code), e.to_string());
        return refuse(&state, refusal, v3::CONTENT_TYPE);
    }
    count_records(
        &state,
        &topic,
        results.iter().map(|r| r.as_ref().err().map(V3RecordError::kind)),
    );
    let lines: Vec<String> = results
        .into_iter()
        .map(|r| {
            let result = r.map_or_else(|e| V3Result::failed(&e), V3Result::Delivered);
            serde_json::to_string(&result).unwrap_or_default()
        })
        .collect();
    (json, lines.join("\n")).into_response()
}

async fn v3_records(
    state: &AppState,
    cluster_id: &str,
    topic: &str,
    headers: &HeaderMap,
    request: Request,
) -> Result<Vec<Result<Delivery, V3RecordError>>, ApiError> {
    check_ingest(state, 404)?;
    if cluster_id != &*state.cluster_id {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_cluster",
            404,
            format!(
                "cluster {cluster_id:?} not found (this endpoint serves {:?})",
                &*state.cluster_id
            ),
        ));
    }
    check_topic(state, topic, 404)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !ingest::content_type_is(content_type, &[v3::CONTENT_TYPE]) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            415,
            format!(
                "content type {:?} is not accepted; use {}",
                content_type.unwrap_or(""),
                v3::CONTENT_TYPE
            ),
        ));
    }
    let body = read_body(state, headers, request, 413, 400).await?;
    let entries = v3::parse_records(&body, state.max_batch_records).map_err(|e| {
        let status = StatusCode::from_u16(e.error_code()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.kind(), u32::from(e.error_code()), e.to_string())
    })?;
    // The valid records go to the store; each slot keeps what its delivery report needs.
    let mut batch = Vec::with_capacity(entries.len());
    let slots: Vec<Result<(Option<usize>, usize), V3RecordError>> = entries
        .into_iter()
        .map(|entry| {
            let V3Record { key, partition, record, key_size, value_size } = entry?;
            batch.push(BatchEntry { key, partition, record: Ok(record) });
            Ok((key_size, value_size))
        })
        .collect();
    let mut stored = store(state, batch).await.into_iter();
    let timestamp = v3::rfc3339(now_ms());
    let delivery = |(key_size, value_size): (Option<usize>, usize), at: Stored| Delivery {
        error_code: 200,
        cluster_id: state.cluster_id.to_string(),
        topic_name: topic.to_owned(),
        partition_id: at.partition,
        offset: at.offset,
        timestamp: timestamp.clone(),
        key: key_size.map(PayloadSize::json),
        value: PayloadSize::json(value_size),
    };
    Ok(slots
        .into_iter()
        .map(|slot| {
            let sizes = slot?;
            let at = stored.next().unwrap_or_else(|| Err(RecordError::Kafka("no result".into())));
            at.map(|at| delivery(sizes, at)).map_err(V3RecordError::Store)
        })
        .collect())
}

/// Applies or forwards the entries: one result per entry, in order.
async fn store(state: &AppState, entries: Vec<BatchEntry>) -> Vec<Result<Stored, RecordError>> {
    match &state.ingest {
        Ingest::Apply => apply_here(state, entries).await,
        Ingest::Forward(bridge) => {
            let results = bridge.forward(entries).await;
            let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
            state.counters.records_forwarded.fetch_add(ok, Ordering::Relaxed);
            results
        }
        Ingest::Refuse => Vec::new(),
    }
}

/// Counts an answered request's records: `None` accepted, `Some(kind)` refused.
fn count_records(
    state: &AppState,
    topic: &str,
    outcomes: impl Iterator<Item = Option<&'static str>>,
) {
    let (mut accepted, mut refused) = (0u64, 0u64);
    for outcome in outcomes {
        match outcome {
            None => accepted += 1,
            Some(kind) => {
                refused += 1;
                state.counters.error(kind);
            }
        }
    }
    state.counters.batches.fetch_add(1, Ordering::Relaxed);
    state.counters.records_accepted.fetch_add(accepted, Ordering::Relaxed);
    state.counters.rejected_records.fetch_add(refused, Ordering::Relaxed);
    if refused > 0 {
        warn!(topic = %topic, accepted, refused, "produce request partly refused");
    }
}

/// Embedded mode: applies every valid entry to this learner, offsets from one partition; with
/// a state file, only once the state log holds them ([`crate::journal`]).
/// A record over the state's caps is acknowledged like any other (it is in the log; the caps are
/// the learner's policy, counted in `/stats`), exactly as the Kafka path treats it.
async fn apply_here(
    state: &AppState,
    entries: Vec<BatchEntry>,
) -> Vec<Result<Stored, RecordError>> {
    let Some(learner) = &state.learner else { return Vec::new() };
    let checked: Vec<Result<TelemetryRecord, RecordError>> = entries
        .into_iter()
        .map(|entry| match entry.partition {
            Some(p) if p != ingest::EMBEDDED_PARTITION => Err(RecordError::UnknownPartition(p)),
            _ => entry.record,
        })
        .collect();
    let (first, applied) = match &state.journal {
        None => {
            let valid: Vec<&TelemetryRecord> =
                checked.iter().filter_map(|r| r.as_ref().ok()).collect();
            learner.apply_all(valid.into_iter(), now_ms())
        }
        Some(journal) => {
            let valid: Vec<TelemetryRecord> =
                checked.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
            if valid.is_empty() {
                (0, Vec::new())
            } else {
                match journal.append(valid).await {
                    Some(done) => done,
                    None => {
                        let why = "the learner could not make it durable (stopping, or its state log failed)";
                        return checked
                            .into_iter()
                            .map(|r| r.and(Err(RecordError::NotStored(why.into()))))
                            .collect();
                    }
                }
            }
        }
    };
    let mut labels = BTreeMap::<&str, u64>::new();
    for a in &applied {
        let label = match a {
            Applied::New { .. } => "new",
            Applied::Duplicate => "duplicate",
            Applied::Refused => "capped",
        };
        *labels.entry(label).or_default() += 1;
    }
    debug!(
        new = labels.get("new").copied().unwrap_or(0),
        duplicates = labels.get("duplicate").copied().unwrap_or(0),
        capped = labels.get("capped").copied().unwrap_or(0),
        "batch applied"
    );
    let mut offset = first;
    checked
        .into_iter()
        .map(|r| {
            r.map(|_| {
                let at = Stored { partition: ingest::EMBEDDED_PARTITION, offset };
                offset += 1;
                at
            })
        })
        .collect()
}
