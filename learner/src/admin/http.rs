//! The `/v1` endpoints: routes, credentials, validation and the audit log around the store.
//!
//! | method and path | needs | answer |
//! | --- | --- | --- |
//! | `POST /v1/keys` `{scope, label?}` | learner token | 201, the key with its `secret` (shown this once) |
//! | `GET /v1/keys` | learner token | `{"keys": [...]}` (no secrets) |
//! | `DELETE /v1/keys/{id}` | learner token | 200, the key with `revoked_ms` |
//! | `GET /v1/audit?limit=N` | learner token | `{"entries": [...]}`, newest first (N 1 to 1000, default 100) |
//! | `POST /v1/{pools,experiments,gates}` | write | 201, the resource |
//! | `GET /v1/{pools,experiments,gates}` | read | `{"pools": [...]}` etc. |
//! | `GET /v1/{kind}/{id}` | read | the resource |
//! | `PUT /v1/{kind}/{id}` | write | 200, the resource replaced by the body |
//! | `PATCH /v1/{kind}/{id}` | write | 200, the body's fields merged over the resource |
//! | `DELETE /v1/{kind}/{id}` | write | 204 |
//! | `POST /v1/experiments/{id}/stop` | write | 200, the experiment with `state: stopped` |
//! | `GET /v1/experiments/{id}/report` | read | per variant success, intervals, latency, verdict ([`crate::admin::report`]) |
//! | `GET /v1/config` | read (the routers' learner token, or a key) | `{"version", "pools", "experiments" (running), "gates"}` |
//!
//! Credentials are `Authorization: Bearer <learner token or key secret>` ([`crate::admin::keys`]
//! for who may do what): 401 (with `WWW-Authenticate`) when missing, unknown or revoked, 403
//! for a read key on a write or a key on key management. Bodies are JSON objects of at most
//! [`BODY_LIMIT_BYTES`]; a body that is not JSON is 400, one that does not validate is 422 with
//! `field` naming what is wrong; `created_ms` and `updated_ms` in a body are ignored (they are
//! the store's). A missing resource is 404; a taken id, or a change that would break a reference
//! (an experiment on a missing pool, deleting a pool with experiments), 409. Errors are
//! `{"error_code": N, "message": "...", "field": "..."?}`.
//!
//! Audit: every authenticated call is a row of the audit table (actor, method, path, status,
//! time) once answered, except `GET /v1/config` answered 200: that is the routers' poll, every
//! few seconds per router, which would drown the log. Refused credentials (401) are logged as
//! warnings only, so an unauthenticated flood cannot fill the database.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use rand::TryRngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{error, warn};

use crate::admin::keys::{self, Need, Principal, SECRET_PREFIX};
use crate::admin::model::{ExperimentState, Invalid, Kind, Resource, check_id, parse_key_request};
use crate::admin::report;
use crate::admin::store::{AdminStore, AuditEntry, StoreError, Stored};
use crate::app_state::AppState;
use crate::clock::now_ms;

/// Largest `/v1` request body.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// Most audit entries one `GET /v1/audit` returns.
pub const MAX_AUDIT_LIMIT: u32 = 1000;

/// The admin API of one learner: its store.
#[derive(Clone)]
pub struct Admin {
    pub store: Arc<dyn AdminStore>,
}

/// An answer other than success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    status: StatusCode,
    error_code: u32,
    message: String,
    field: Option<String>,
    challenge: bool,
}

impl AdminError {
    fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        AdminError { status, error_code, message: message.into(), field: None, challenge: false }
    }

    fn unauthorized(error_code: u32, message: &str) -> Self {
        AdminError {
            challenge: true,
            ..AdminError::new(StatusCode::UNAUTHORIZED, error_code, message)
        }
    }

    fn invalid(e: Invalid) -> Self {
        AdminError {
            field: Some(e.field.clone()),
            ..AdminError::new(StatusCode::UNPROCESSABLE_ENTITY, 42210, e.to_string())
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut body = json!({"error_code": self.error_code, "message": self.message});
        if let Some(field) = self.field {
            body["field"] = Value::String(field);
        }
        let mut response = (self.status, Json(body)).into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"magnetar\""),
            );
        }
        response
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Exists { kind, .. } => AdminError {
                field: Some(kind.id_field().into()),
                ..AdminError::new(StatusCode::CONFLICT, 40910, e.to_string())
            },
            StoreError::NotFound { .. } | StoreError::NoKey(_) => {
                AdminError::new(StatusCode::NOT_FOUND, 40410, e.to_string())
            }
            StoreError::Conflict { field, .. } => AdminError {
                field: Some((*field).into()),
                ..AdminError::new(StatusCode::CONFLICT, 40911, e.to_string())
            },
            StoreError::Database(detail) => {
                error!(error = %detail, "admin store failed");
                AdminError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    50310,
                    "the admin database is not available; try again",
                )
            }
        }
    }
}

type Answer = Result<Response, AdminError>;

/// The `/v1` routes (empty when the learner has no admin store).
pub fn routes(state: &AppState) -> Router<AppState> {
    if state.admin.is_none() {
        return Router::new();
    }
    let mut router = Router::new()
        .route("/v1/keys", post(create_key).get(list_keys))
        .route("/v1/keys/{id}", axum::routing::delete(revoke_key))
        .route("/v1/audit", get(audit_log))
        .route("/v1/config", get(config))
        .route("/v1/experiments/{id}/stop", post(stop_experiment))
        .route("/v1/experiments/{id}/report", get(experiment_report));
    for (path, kind) in
        [("pools", Kind::Pool), ("experiments", Kind::Experiment), ("gates", Kind::Gate)]
    {
        router = router
            .route(
                &format!("/v1/{path}"),
                post(move |s: State<AppState>, b: Bytes| create(s, kind, b))
                    .get(move |s: State<AppState>| list(s, kind)),
            )
            .route(
                &format!("/v1/{path}/{{id}}"),
                get(move |s: State<AppState>, p: Path<String>| fetch(s, kind, p))
                    .put(move |s: State<AppState>, p: Path<String>, b: Bytes| {
                        replace(s, kind, p, b, false)
                    })
                    .patch(move |s: State<AppState>, p: Path<String>, b: Bytes| {
                        replace(s, kind, p, b, true)
                    })
                    .delete(move |s: State<AppState>, p: Path<String>| remove(s, kind, p)),
            );
    }
    router
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
}

fn admin(state: &AppState) -> Result<&Admin, AdminError> {
    // `routes` adds no route without an admin store, so this is a bug if it fails.
    state
        .admin
        .as_ref()
        .ok_or_else(|| AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, 50010, "no admin store"))
}

/// What a call needs, from its method and path.
fn need(method: &Method, path: &str) -> Need {
    if path == "/v1/keys" || path.starts_with("/v1/keys/") || path == "/v1/audit" {
        Need::Admin
    } else if method == Method::GET || method == Method::HEAD {
        Need::Read
    } else {
        Need::Write
    }
}

/// Who presented `authorization`, or why nobody.
async fn principal(
    state: &AppState,
    store: &dyn AdminStore,
    authorization: Option<&[u8]>,
) -> Result<Principal, AdminError> {
    if state.access.is_open() {
        return Ok(Principal::Open);
    }
    let Some(value) = authorization else {
        return Err(AdminError::unauthorized(
            40110,
            "this endpoint needs Authorization: Bearer <learner token or API key>",
        ));
    };
    if state.access.may_read(Some(value)) {
        return Ok(Principal::LearnerToken);
    }
    let token = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| t.starts_with(SECRET_PREFIX));
    let Some(token) = token else {
        return Err(AdminError::unauthorized(40111, "unknown credentials"));
    };
    match store.key_by_hash(&keys::sha256_hex(token)).await? {
        None => Err(AdminError::unauthorized(40111, "unknown API key")),
        Some(key) if key.revoked_ms.is_some() => {
            Err(AdminError::unauthorized(40112, &format!("API key {} is revoked", key.id)))
        }
        Some(key) => Ok(Principal::Key { id: key.id, scope: key.scope }),
    }
}

/// Middleware on every `/v1` route: credentials (401), scope (403), then the audit log.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Ok(admin) = admin(&state).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let presented = request.headers().get(header::AUTHORIZATION).map(|v| v.as_bytes().to_vec());
    let who = match principal(&state, admin.store.as_ref(), presented.as_deref()).await {
        Ok(who) => who,
        Err(e) => {
            warn!(%method, %path, code = e.error_code, "admin api refused credentials");
            return e.into_response();
        }
    };
    let response = if who.may(need(&method, &path)) {
        request.extensions_mut().insert(who.clone());
        next.run(request).await
    } else {
        let message = match need(&method, &path) {
            Need::Admin => "keys and the audit log need the learner token",
            _ => "this API key is read-only",
        };
        AdminError::new(StatusCode::FORBIDDEN, 40310, message).into_response()
    };
    let status = response.status().as_u16();
    if !(path == "/v1/config" && status == 200) {
        let entry = AuditEntry {
            at_ms: now_ms(),
            actor: who.actor(),
            method: method.to_string(),
            path,
            status,
        };
        if let Err(e) = admin.store.record_audit(&entry).await {
            error!(error = %e, "audit entry not written");
        }
    }
    response
}

/// The body as a JSON object, without the store's read-only fields.
fn json_body(body: &Bytes) -> Result<Value, AdminError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| AdminError {
        field: Some("body".into()),
        ..AdminError::new(StatusCode::BAD_REQUEST, 40001, format!("body: not valid JSON: {e}"))
    })?;
    if let Some(map) = value.as_object_mut() {
        map.remove("created_ms");
        map.remove("updated_ms");
    }
    Ok(value)
}

fn shown(stored: &Stored) -> Value {
    let mut value = stored.resource.to_json();
    value["created_ms"] = json!(stored.created_ms);
    value["updated_ms"] = json!(stored.updated_ms);
    value
}

fn path_id(kind: Kind, id: &str) -> Result<(), AdminError> {
    check_id(kind.id_field(), id).map_err(AdminError::invalid)
}

fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Pool => "pools",
        Kind::Experiment => "experiments",
        Kind::Gate => "gates",
    }
}

async fn create(State(state): State<AppState>, kind: Kind, body: Bytes) -> Answer {
    let resource = Resource::parse(kind, &json_body(&body)?).map_err(AdminError::invalid)?;
    let stored = admin(&state)?.store.create(&resource, now_ms()).await?;
    Ok((StatusCode::CREATED, Json(shown(&stored))).into_response())
}

async fn list(State(state): State<AppState>, kind: Kind) -> Answer {
    let all = admin(&state)?.store.list(kind).await?;
    Ok(Json(json!({ plural(kind): all.iter().map(shown).collect::<Vec<_>>() })).into_response())
}

async fn fetch(State(state): State<AppState>, kind: Kind, Path(id): Path<String>) -> Answer {
    path_id(kind, &id)?;
    match admin(&state)?.store.get(kind, &id).await? {
        Some(stored) => Ok(Json(shown(&stored)).into_response()),
        None => Err(StoreError::NotFound { kind, id }.into()),
    }
}

async fn replace(
    State(state): State<AppState>,
    kind: Kind,
    Path(id): Path<String>,
    body: Bytes,
    merge: bool,
) -> Answer {
    path_id(kind, &id)?;
    let store = &admin(&state)?.store;
    let mut value = json_body(&body)?;
    if !value.is_object() {
        return Err(AdminError::invalid(Invalid {
            field: "body".into(),
            problem: "must be a JSON object".into(),
        }));
    }
    let id_field = kind.id_field();
    match value.get(id_field) {
        Some(given) if given.as_str() != Some(id.as_str()) => {
            return Err(AdminError::invalid(Invalid {
                field: id_field.into(),
                problem: format!(
                    "must be the path's {id:?} (a resource is not renamed; create a new one)"
                ),
            }));
        }
        _ => value[id_field] = Value::String(id.clone()),
    }
    if merge {
        let Some(current) = store.get(kind, &id).await? else {
            return Err(StoreError::NotFound { kind, id }.into());
        };
        let mut merged = current.resource.to_json();
        if let (Some(target), Some(changes)) = (merged.as_object_mut(), value.as_object()) {
            for (k, v) in changes {
                target.insert(k.clone(), v.clone());
            }
        }
        value = merged;
    }
    let resource = Resource::parse(kind, &value).map_err(AdminError::invalid)?;
    let stored = store.replace(&resource, now_ms()).await?;
    Ok(Json(shown(&stored)).into_response())
}

async fn remove(State(state): State<AppState>, kind: Kind, Path(id): Path<String>) -> Answer {
    path_id(kind, &id)?;
    admin(&state)?.store.delete(kind, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn stop_experiment(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    path_id(Kind::Experiment, &id)?;
    let store = &admin(&state)?.store;
    let Some(Stored { resource: Resource::Experiment(mut e), .. }) =
        store.get(Kind::Experiment, &id).await?
    else {
        return Err(StoreError::NotFound { kind: Kind::Experiment, id }.into());
    };
    e.state = ExperimentState::Stopped;
    let stored = store.replace(&Resource::Experiment(e), now_ms()).await?;
    Ok(Json(shown(&stored)).into_response())
}

async fn experiment_report(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    path_id(Kind::Experiment, &id)?;
    let Some(Stored { resource: Resource::Experiment(e), .. }) =
        admin(&state)?.store.get(Kind::Experiment, &id).await?
    else {
        return Err(StoreError::NotFound { kind: Kind::Experiment, id }.into());
    };
    let Some(learner) = &state.learner else {
        return Err(AdminError::new(
            StatusCode::NOT_FOUND,
            40412,
            format!("a {} learner applies no telemetry, so it has no report", state.mode.as_str()),
        ));
    };
    let tallies = learner.experiment_tallies(&e.id);
    Ok(Json(report::report(&e, tallies)).into_response())
}

async fn config(State(state): State<AppState>) -> Answer {
    let snapshot = admin(&state)?.store.snapshot().await?;
    Ok(Json(snapshot).into_response())
}

async fn create_key(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let request = parse_key_request(&json_body(&body)?).map_err(AdminError::invalid)?;
    let mut random = [0u8; keys::KEY_BYTES];
    rand::rngs::OsRng.try_fill_bytes(&mut random).map_err(|e| {
        error!(error = %e, "no randomness for a key");
        AdminError::new(StatusCode::SERVICE_UNAVAILABLE, 50311, "cannot draw a key; try again")
    })?;
    let minted = keys::mint(&random, request.scope, request.label, who.actor(), now_ms());
    admin(&state)?.store.insert_key(&minted.key, &minted.secret_sha256).await?;
    let mut body = serde_json::to_value(&minted.key).unwrap_or(Value::Null);
    body["secret"] = Value::String(minted.secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list_keys(State(state): State<AppState>) -> Answer {
    let keys = admin(&state)?.store.list_keys().await?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

async fn revoke_key(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let key = admin(&state)?.store.revoke_key(&id, now_ms()).await?;
    Ok(Json(key).into_response())
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<String>,
}

async fn audit_log(State(state): State<AppState>, Query(q): Query<AuditQuery>) -> Answer {
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(raw) => {
            raw.parse::<u32>().ok().filter(|n| (1..=MAX_AUDIT_LIMIT).contains(n)).ok_or_else(
                || {
                    AdminError::invalid(Invalid {
                        field: "limit".into(),
                        problem: format!(
                            "must be a whole number from 1 to {MAX_AUDIT_LIMIT}, got {raw:?}"
                        ),
                    })
                },
            )?
        }
    };
    let entries = admin(&state)?.store.audit_log(limit).await?;
    Ok(Json(json!({ "entries": entries })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_follow_method_and_path() {
        assert_eq!(need(&Method::GET, "/v1/pools"), Need::Read);
        assert_eq!(need(&Method::GET, "/v1/config"), Need::Read);
        assert_eq!(need(&Method::POST, "/v1/pools"), Need::Write);
        assert_eq!(need(&Method::PATCH, "/v1/gates/g"), Need::Write);
        assert_eq!(need(&Method::POST, "/v1/experiments/e/stop"), Need::Write);
        assert_eq!(need(&Method::GET, "/v1/keys"), Need::Admin);
        assert_eq!(need(&Method::DELETE, "/v1/keys/key_1"), Need::Admin);
        assert_eq!(need(&Method::GET, "/v1/audit"), Need::Admin);
    }
}
