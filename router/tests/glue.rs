//! Tests of the router's JS glue, run in a JS engine:
//! `cargo test -p magnetar-router --target wasm32-unknown-unknown` (wasm-bindgen-test-runner
//! under Node, set by scripts/env.sh).
#![cfg(target_arch = "wasm32")]
// clippy does not see #[wasm_bindgen_test] functions as tests.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use magnetar_router::attempt::end_to_end_headers;
use magnetar_router::deadline::{Deadline, race};
use magnetar_router::learner::encode_query_value;
use wasm_bindgen_test::wasm_bindgen_test;
use worker::{Delay, Headers, Method, Request};

#[wasm_bindgen_test]
fn query_values_are_percent_encoded() {
    assert_eq!(encode_query_value("/service a&b"), "%2Fservice%20a%26b");
    assert_eq!(encode_query_value("downstream-1"), "downstream-1");
}

#[wasm_bindgen_test]
fn copied_headers_are_independent_and_complete_without_hop_by_hop_ones() {
    let original = Headers::new();
    original.set("x-a", "1").unwrap();
    original.append("set-cookie", "a=1").unwrap();
    original.append("set-cookie", "b=2").unwrap();
    original.set("connection", "x-hop").unwrap();
    original.set("x-hop", "1").unwrap();
    original.set("proxy-authenticate", "Basic").unwrap();
    let copy = end_to_end_headers(&original);
    copy.set("x-magnetar-worker", "w").unwrap();
    assert_eq!(copy.get("x-a").unwrap().as_deref(), Some("1"));
    assert_eq!(copy.get("set-cookie").unwrap().as_deref(), Some("a=1, b=2"));
    assert_eq!(original.get("x-magnetar-worker").unwrap(), None);
    for hop in ["connection", "x-hop", "proxy-authenticate"] {
        assert_eq!(copy.get(hop).unwrap(), None, "{hop}");
    }
}

/// `worker::Delay` expects the numeric timer ids workerd returns; Node returns `Timeout`
/// objects. Make Node's ids numbers (idempotent).
fn numeric_timer_ids() {
    js_sys::Function::new_no_args(
        "if (!globalThis.__numericTimers) {
           const set = globalThis.setTimeout;
           globalThis.setTimeout = (...args) => Number(set(...args));
           globalThis.__numericTimers = true;
         }",
    )
    .call0(&wasm_bindgen::JsValue::UNDEFINED)
    .unwrap();
}

#[wasm_bindgen_test]
async fn deadline_cuts_slow_futures_and_passes_fast_ones() {
    numeric_timer_ids();
    let slow = async {
        Delay::from(Duration::from_millis(200)).await;
        1
    };
    assert_eq!(race(slow, 20).await, None);
    let fast = async { 2 };
    assert_eq!(race(fast, 20).await, Some(2));
}

fn request_to_nowhere() -> Request {
    Request::new("http://127.0.0.1:9/service", Method::Post).unwrap()
}

#[wasm_bindgen_test]
async fn a_deadline_aborts_the_requests_it_carries_when_it_passes() {
    numeric_timer_ids();
    let deadline = Deadline::new(20);
    let request = deadline.attach(&request_to_nowhere()).unwrap();
    assert_eq!(request.method(), Method::Post, "attaching keeps the request as it was");
    assert!(!request.inner().signal().aborted());
    let slow = async {
        Delay::from(Duration::from_millis(200)).await;
        1
    };
    assert_eq!(deadline.run(slow).await, None);
    assert!(request.inner().signal().aborted(), "timed out: the subrequest is cut off");

    let deadline = Deadline::new(200);
    let request = deadline.attach(&request_to_nowhere()).unwrap();
    assert_eq!(deadline.run(async { 2 }).await, Some(2));
    assert!(!request.inner().signal().aborted(), "in time: nothing is aborted");
}

#[wasm_bindgen_test]
fn failures_of_a_kind_are_logged_at_powers_of_two() {
    let logged: Vec<u64> = (0..=40).filter(|n| magnetar_router::log::is_logged(*n)).collect();
    assert_eq!(logged, [1, 2, 4, 8, 16, 32]);
}
