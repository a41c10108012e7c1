//! `#[wasm_bindgen_test]` tests of the Worker glue, run under Node by wasm-bindgen-test-runner.
//! Node provides `Request`, `Response`, `Headers` and `crypto.getRandomValues`, so the whole
//! [`handle`] path runs here against an `Env` built from a plain object. The per-isolate state
//! is shared by these tests (they run one at a time); tests that count reset it first.
#![cfg(target_arch = "wasm32")]

use magnetar_flaky::{FlakyOverride, Mode, Verdict};
use serde_json::Value;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;
use worker::{Date, Env, Headers, Method, Request, RequestInit, Response};

use crate::{config, handle, reply};

fn env(vars: &[(&str, JsValue)]) -> Env {
    let object = js_sys::Object::new();
    for (name, value) in vars {
        js_sys::Reflect::set(&object, &JsValue::from_str(name), value).unwrap();
    }
    object.unchecked_into::<Env>()
}

fn text_vars(vars: &[(&str, &str)]) -> Env {
    let vars: Vec<(&str, JsValue)> = vars.iter().map(|(k, v)| (*k, JsValue::from_str(v))).collect();
    env(&vars)
}

fn request(method: Method, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Request {
    let h = Headers::new();
    for (name, value) in headers {
        h.set(name, value).unwrap();
    }
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(h);
    if let Some(body) = body {
        init.with_body(Some(JsValue::from_str(body)));
    }
    Request::new_with_init(&format!("https://downstream.test{path}"), &init).unwrap()
}

/// Status, body (`null` when not JSON, as in the Router's own 404/405) and the response.
async fn send(env: &Env, req: Request) -> (u16, Value, Response) {
    let mut response = handle(req, env.clone()).await.unwrap();
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    (response.status_code(), body, response)
}

async fn status_of(env: &Env, method: Method, path: &str) -> u16 {
    send(env, request(method, path, &[], None)).await.0
}

#[wasm_bindgen_test]
fn variables_given_as_numbers_and_booleans_are_read_as_text() {
    let env = env(&[
        ("PERCENTAGE_FAIL", JsValue::from_f64(12.5)),
        ("RATE_LIMIT_RPS", JsValue::from_f64(30.0)),
        ("ALLOW_OVERRIDES", JsValue::TRUE),
        ("WORKER_NAME", JsValue::from_str("downstream-7")),
    ]);
    assert_eq!(config::read_var(&env, "PERCENTAGE_FAIL").as_deref(), Some("12.5"));
    assert_eq!(config::read_var(&env, "RATE_LIMIT_RPS").as_deref(), Some("30"));
    assert_eq!(config::read_var(&env, "MODE"), None);
    let cfg = config::from_vars(&env).unwrap();
    assert!(cfg.allow_overrides);
    assert_eq!((cfg.worker.as_str(), cfg.flaky.rate_limit_rps), ("downstream-7", 30));
}

#[wasm_bindgen_test]
fn the_header_override_for_this_worker_is_picked() {
    let headers = Headers::new();
    assert!(config::header_override(&headers, "a").unwrap().is_empty());
    headers.set("x-flaky-config", r#"{"a":{"mode":"all_fail"},"b":{"mode":"x"}}"#).unwrap();
    let over = config::header_override(&headers, "a").unwrap();
    assert_eq!(over, FlakyOverride { mode: Some(Mode::AllFail), ..FlakyOverride::default() });
    let err = config::header_override(&headers, "b").unwrap_err().to_string();
    assert!(err.starts_with("x-flaky-config.b.mode: unknown mode"), "{err}");
}

#[wasm_bindgen_test]
async fn responses_carry_status_worker_and_retry_after() {
    let mut r =
        reply::verdict("w1", Mode::RateLimited, &Verdict::RateLimited { retry_after_secs: 2 })
            .unwrap();
    assert_eq!(r.status_code(), 429);
    assert_eq!(r.headers().get("retry-after").unwrap().as_deref(), Some("2"));
    assert_eq!(r.headers().get(reply::WORKER_HEADER).unwrap().as_deref(), Some("w1"));
    assert_eq!(r.headers().get("content-type").unwrap().as_deref(), Some("application/json"));
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!((body["worker"].as_str(), body["ok"].as_bool()), (Some("w1"), Some(false)));

    let r = reply::verdict("w1", Mode::AllFail, &Verdict::Failure { status: 502, delay_ms: 0 })
        .unwrap();
    assert_eq!((r.status_code(), r.headers().get("retry-after").unwrap()), (502, None));
}

#[wasm_bindgen_test]
async fn ping_is_always_ok_even_with_bad_variables() {
    let env = text_vars(&[("MODE", "sometimes"), ("WORKER_NAME", "w1")]);
    let (status, body, _) = send(&env, request(Method::Get, "/ping", &[], None)).await;
    assert_eq!((status, body["worker"].as_str()), (200, Some("w1")));
    assert_eq!(status_of(&env, Method::Post, "/ping").await, 200);
    let (status, body, _) = send(&env, request(Method::Post, "/service", &[], None)).await;
    assert_eq!(status, 400);
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("MODE: unknown mode \"sometimes\""), "{error}");
}

#[wasm_bindgen_test]
async fn work_follows_the_configured_mode() {
    let failing = text_vars(&[("MODE", "ALL_FAIL"), ("FAIL_STATUS", "503"), ("WORKER_NAME", "w1")]);
    let (status, body, _) = send(&failing, request(Method::Post, "/service", &[], Some("x"))).await;
    assert_eq!(
        (status, body["worker"].as_str(), body["ok"].as_bool()),
        (503, Some("w1"), Some(false))
    );
    assert_eq!(status_of(&failing, Method::Put, "/any/other/path").await, 503);
    // `POST /` is work too; only `GET /` shows the configuration.
    assert_eq!(status_of(&failing, Method::Post, "/").await, 503);
    let (status, body, _) = send(&failing, request(Method::Get, "/", &[], None)).await;
    assert_eq!(
        (status, body["mode"].as_str(), body["fail_status"].as_u64()),
        (200, Some("All_fail"), Some(503))
    );

    let healthy = text_vars(&[("MODE", "all_success")]);
    let (status, body, _) = send(&healthy, request(Method::Post, "/service", &[], None)).await;
    assert_eq!(
        (status, body["worker"].as_str(), body["ok"].as_bool()),
        (200, Some("downstream"), Some(true))
    );
}

#[wasm_bindgen_test]
async fn overrides_apply_only_when_allowed() {
    let header = [("x-flaky-config", r#"{"w1":{"mode":"All_fail"},"w2":{"mode":"All_Success"}}"#)];
    let locked = text_vars(&[("WORKER_NAME", "w1")]);
    assert_eq!(send(&locked, request(Method::Post, "/service", &header, None)).await.0, 200);

    let open = text_vars(&[("WORKER_NAME", "w1"), ("ALLOW_OVERRIDES", "true")]);
    assert_eq!(send(&open, request(Method::Post, "/service", &header, None)).await.0, 500);
    let (status, body, _) = send(&open, request(Method::Get, "/", &header, None)).await;
    assert_eq!((status, body["mode"].as_str()), (200, Some("All_fail")));

    let body = r#"{"payload": 1, "flaky": {"mode": "all_fail", "fail_status": 504}}"#;
    assert_eq!(send(&open, request(Method::Post, "/service", &[], Some(body))).await.0, 504);
    // The body's override lies on top of the header's.
    let (status, _, _) = send(&open, request(Method::Post, "/service", &header, Some(body))).await;
    assert_eq!(status, 504);

    let bad = [("x-flaky-config", r#"{"percentage_fail": 150}"#)];
    let (status, body, _) = send(&open, request(Method::Post, "/service", &bad, None)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"].as_str(),
        Some("x-flaky-config.percentage_fail: 150 is outside 0..=100")
    );
}

#[wasm_bindgen_test]
async fn stats_count_work_requests_only() {
    let env =
        text_vars(&[("WORKER_NAME", "w1"), ("MODE", "rate_limited"), ("RATE_LIMIT_RPS", "2")]);
    assert_eq!(status_of(&env, Method::Delete, "/stats").await, 200);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(status_of(&env, Method::Post, "/service").await);
    }
    assert_eq!(statuses, [200, 200, 429]);
    let (_, _, limited) = send(&env, request(Method::Post, "/service", &[], None)).await;
    assert_eq!(limited.headers().get("retry-after").unwrap().as_deref(), Some("1"));
    for (method, path) in [(Method::Get, "/ping"), (Method::Get, "/"), (Method::Get, "/stats")] {
        assert_eq!(status_of(&env, method, path).await, 200);
    }
    assert_eq!(status_of(&env, Method::Post, "/stats").await, 405);
    let (_, stats, _) = send(&env, request(Method::Get, "/stats", &[], None)).await;
    assert_eq!(
        stats,
        serde_json::json!({"worker": "w1", "requests": 4, "successes": 2, "failures": 0,
                           "rate_limited": 2, "invalid": 0, "tags": {}})
    );
    let (_, stats, _) = send(&env, request(Method::Delete, "/stats", &[], None)).await;
    assert_eq!(stats["requests"].as_u64(), Some(0));
    // The rate window was emptied too.
    assert_eq!(status_of(&env, Method::Post, "/service").await, 200);
    // Work requests with an x-flaky-tag are counted under it as well.
    let tagged = [("x-flaky-tag", "lab-1-thompson")];
    assert_eq!(send(&env, request(Method::Post, "/service", &tagged, None)).await.0, 200);
    assert_eq!(send(&env, request(Method::Post, "/service", &tagged, None)).await.0, 429);
    let (_, stats, _) = send(&env, request(Method::Get, "/stats", &[], None)).await;
    assert_eq!(stats["requests"].as_u64(), Some(3));
    assert_eq!(
        stats["tags"],
        serde_json::json!({"lab-1-thompson": {"requests": 2, "successes": 1, "failures": 0,
                                              "rate_limited": 1, "invalid": 0}})
    );
    let (_, stats, _) = send(&env, request(Method::Delete, "/stats", &[], None)).await;
    assert_eq!(stats["tags"], serde_json::json!({}));
}

/// `worker::Delay` calls `setTimeout` and expects the numeric id workerd returns; Node returns a
/// `Timeout` object, which the debug glue rejects. Make Node's ids numbers (idempotent).
fn numeric_timer_ids() {
    js_sys::Function::new_no_args(
        "if (!globalThis.__numericTimers) {
           const set = globalThis.setTimeout;
           globalThis.setTimeout = (...args) => Number(set(...args));
           globalThis.__numericTimers = true;
         }",
    )
    .call0(&JsValue::UNDEFINED)
    .unwrap();
}

#[wasm_bindgen_test]
async fn processing_delay_is_waited() {
    numeric_timer_ids();
    let env = text_vars(&[("PROCESSING_DELAY_MS", "40")]);
    let start = Date::now().as_millis();
    let (status, body, _) = send(&env, request(Method::Post, "/service", &[], None)).await;
    let elapsed = Date::now().as_millis() - start;
    assert_eq!((status, body["delay_ms"].as_u64()), (200, Some(40)));
    assert!(elapsed >= 35, "answered after {elapsed} ms");
}
