//! JSON responses. Every one names the worker, in the body and in [`WORKER_HEADER`].

use magnetar_flaky::{FlakyConfigError, Mode, Verdict};
use serde::Serialize;
use worker::{Response, Result};

/// Response header naming the downstream that answered.
pub const WORKER_HEADER: &str = "x-flaky-worker";

/// A JSON response with `status`.
pub fn json<B: Serialize>(status: u16, body: &B, worker: &str) -> Result<Response> {
    let response = Response::from_json(body)?.with_status(status);
    response.headers().set(WORKER_HEADER, worker)?;
    response.headers().set("cache-control", "no-store")?;
    Ok(response)
}

/// The answer to a decided work request, with `Retry-After` on 429 and 503.
pub fn verdict(worker: &str, mode: Mode, verdict: &Verdict) -> Result<Response> {
    let response = json(verdict.status(), &verdict.body(worker, mode), worker)?;
    if let Some(secs) = verdict.retry_after_secs() {
        response.headers().set("retry-after", &secs.to_string())?;
    }
    Ok(response)
}

/// 400: the variables or this request's override are not valid; the message names the field.
pub fn config_error(worker: &str, err: &FlakyConfigError) -> Result<Response> {
    let body = serde_json::json!({"worker": worker, "ok": false, "error": err.to_string()});
    json(400, &body, worker)
}
