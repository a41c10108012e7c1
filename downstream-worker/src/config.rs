//! The downstream's configuration for one request: the Worker variables, then (when
//! `ALLOW_OVERRIDES` is true) the `x-flaky-config` header, then the body's `"flaky"` field.
//! Parsing and merging are [`magnetar_flaky`]'s; this module only fetches the raw text.

use magnetar_flaky::{FlakyConfigError, FlakyOverride, OVERRIDE_HEADER, OriginConfig};
use wasm_bindgen::JsValue;
use worker::{Env, Headers, Method, Request};

/// A variable or secret as text. Wrangler passes `[vars]` given as TOML numbers or booleans as
/// JSON values, which `Env::var` would read as empty; they are rendered as text here.
pub fn read_var(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env, &JsValue::from_str(name)).ok()?;
    if let Some(text) = value.as_string() {
        Some(text)
    } else if let Some(number) = value.as_f64() {
        Some(number.to_string())
    } else {
        value.as_bool().map(|b| b.to_string())
    }
}

/// `WORKER_NAME`, or the default name.
pub fn worker_name(env: &Env) -> String {
    OriginConfig::worker_name(|name| read_var(env, name))
}

/// The configuration from the variables alone.
pub fn from_vars(env: &Env) -> Result<OriginConfig, FlakyConfigError> {
    OriginConfig::from_lookup(|name| read_var(env, name))
}

/// The part of the `x-flaky-config` header meant for `worker`; nothing when absent.
pub fn header_override(headers: &Headers, worker: &str) -> Result<FlakyOverride, FlakyConfigError> {
    match headers.get(OVERRIDE_HEADER).ok().flatten() {
        Some(value) => FlakyOverride::from_header(&value, worker),
        None => Ok(FlakyOverride::default()),
    }
}

/// The configuration for this request. Reads (consumes) the body of requests other than
/// GET and HEAD when overrides are allowed.
pub async fn effective(req: &mut Request, env: &Env) -> Result<OriginConfig, FlakyConfigError> {
    let mut cfg = from_vars(env)?;
    if !cfg.allow_overrides {
        return Ok(cfg);
    }
    let mut over = header_override(req.headers(), &cfg.worker)?;
    if !matches!(req.method(), Method::Get | Method::Head) {
        // An unreadable body carries no override; the work request still gets an answer.
        let body = req.text().await.unwrap_or_default();
        over = over.merge(FlakyOverride::from_body(&body, &cfg.worker)?);
    }
    if !over.is_empty() {
        cfg.flaky = cfg.flaky.with(&over, |field| format!("override.{}", field.key()))?;
    }
    Ok(cfg)
}
