//! The router's own endpoints under `/_magnetar/`, JSON error responses and CORS.
//!
//! Error bodies say what was wrong with the request (or the deployment), never internal detail:
//! `{"error": "<kind>", "message": "<what to fix>"}`.
//!
//! `/_magnetar/health` is public. `/_magnetar/fleet` and `/_magnetar/state` need
//! `Authorization: Bearer <ADMIN_TOKEN>` (a Worker secret; without one they are refused), and
//! list no credentials: whether telemetry and the learner are configured, not where they are.

use magnetar_core::config::{Algo, RouterConfig};
use magnetar_core::fleet::Target;
use magnetar_core::request::bearer_matches;
use magnetar_core::strategy::StrategyKind;
use serde_json::json;
use worker::{Context, Request, Response, Result, RouteContext};

use crate::clock::now_ms;
use crate::isolate::Isolate;

/// Response headers a browser may read (the test-bed page reads them).
pub const EXPOSED_HEADERS: &str = "x-magnetar-worker, x-magnetar-attempts, x-magnetar-algo, \
     x-magnetar-request-id, x-magnetar-outcome, x-magnetar-fallback, x-magnetar-hedged";

/// A JSON error response.
pub fn error(status: u16, kind: &str, message: impl Into<String>) -> Result<Response> {
    let body = json!({ "error": kind, "message": message.into() });
    Ok(Response::from_json(&body)?.with_status(status))
}

/// Adds CORS headers when the deployment allows a browser origin.
pub fn with_cors(mut response: Response, config: &RouterConfig) -> Response {
    if let Some(origin) = &config.cors_allow_origin {
        let headers = response.headers_mut();
        let _ = headers.set("access-control-allow-origin", origin);
        let _ = headers.set("access-control-expose-headers", EXPOSED_HEADERS);
    }
    response
}

/// Answers a CORS preflight.
pub fn preflight(config: &RouterConfig) -> Result<Response> {
    let mut response = Response::empty()?.with_status(204);
    let headers = response.headers_mut();
    headers.set("access-control-allow-methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")?;
    // `*` does not cover Authorization (Fetch standard): it is named.
    headers.set("access-control-allow-headers", "*, authorization")?;
    headers.set("access-control-max-age", "600")?;
    Ok(with_cors(response, config))
}

fn configured(ctx: &RouteContext<Context>) -> std::result::Result<Isolate, Result<Response>> {
    Isolate::get(&ctx.env).map_err(|e| error(500, "router_misconfigured", e.to_string()))
}

/// The isolate, when `req` carries the admin token; otherwise the refusal to answer.
fn admin(
    req: &Request,
    ctx: &RouteContext<Context>,
) -> std::result::Result<Isolate, Result<Response>> {
    let isolate = configured(ctx)?;
    let Some(token) = isolate.config().admin_token.as_deref() else {
        let message = "the admin endpoints are disabled: set the ADMIN_TOKEN secret";
        return Err(error(403, "admin_disabled", message));
    };
    let authorization = req.headers().get("authorization").ok().flatten();
    if !bearer_matches(authorization.as_deref(), token) {
        let refused = error(401, "unauthorized", "send Authorization: Bearer <ADMIN_TOKEN>");
        return Err(refused.and_then(|mut r| {
            r.headers_mut().set("www-authenticate", "Bearer")?;
            Ok(with_cors(r, isolate.config()))
        }));
    }
    Ok(isolate)
}

/// `GET /_magnetar/health`: liveness, and whether the configuration is valid.
pub fn health(_req: Request, ctx: RouteContext<Context>) -> Result<Response> {
    match configured(&ctx) {
        Ok(isolate) => {
            Ok(with_cors(Response::from_json(&json!({ "ok": true }))?, isolate.config()))
        }
        Err(response) => response,
    }
}

/// `GET /_magnetar/fleet`: the fleet, the strategies and the defaults.
pub fn fleet(req: Request, ctx: RouteContext<Context>) -> Result<Response> {
    let isolate = match admin(&req, &ctx) {
        Ok(isolate) => isolate,
        Err(response) => return response,
    };
    let config = isolate.config();
    let downstreams: Vec<_> = config
        .fleet
        .downstreams()
        .iter()
        .map(|d| {
            let (kind, target) = match &d.target {
                Target::Url(u) => ("url", u.as_str()),
                Target::Service(s) => ("service", s.as_str()),
            };
            json!({ "name": d.name, kind: target, "weight": d.weight, "tags": d.tags })
        })
        .collect();
    let mut algos: Vec<_> = StrategyKind::ALL
        .iter()
        .map(|k| json!({ "name": k.name(), "description": k.describe() }))
        .collect();
    algos.push(json!({
        "name": Algo::Learner.name(),
        "description": "ask the learner's /recommendation per attempt; local Thompson sampling when it does not answer in time",
    }));
    let body = json!({
        "downstreams": downstreams,
        "algos": algos,
        "default_algo": config.default_algo.name(),
        "max_attempts": config.max_attempts,
        "distinct_downstreams": config.retry_mode.name(),
        "objective": config.magnetar.objective.to_string(),
        "attempt_timeout_ms": config.attempt_timeout_ms,
        "request_deadline_ms": config.request_deadline_ms,
        // Whether they are configured, not where (their URLs are for the deployment only).
        "telemetry_configured": config.telemetry.is_some(),
        "learner_configured": config.learner.is_some(),
        "success_definition": "an attempt succeeds when the downstream answers with a status below 500 other than 429; a request succeeds when its final attempt does",
    });
    Ok(with_cors(Response::from_json(&body)?, config))
}

/// `GET /_magnetar/state`: this isolate's counters and learned posteriors.
pub fn state(req: Request, ctx: RouteContext<Context>) -> Result<Response> {
    let isolate = match admin(&req, &ctx) {
        Ok(isolate) => isolate,
        Err(response) => return response,
    };
    Ok(with_cors(Response::from_json(&isolate.view(now_ms()))?, isolate.config()))
}
