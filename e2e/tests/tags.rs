//! Tags end to end: `x-magnetar-tags` and `ROUTE_TAGS` restrict every attempt to the downstreams
//! that carry the tags (counted by the downstreams themselves), a malformed header is a 400
//! naming it, tags no downstream carries a 503 naming them, and learning is kept per (route,
//! tag set).

use magnetar_e2e::{DownstreamSpec, Observed, Stack};
use serde_json::{Value, json};
use std::time::Duration;

fn tagged(name: &str, pct: u32, tags: &[&str]) -> DownstreamSpec {
    let mut spec = DownstreamSpec::failing(name, pct);
    spec.behaviour["tags"] = json!(tags);
    spec
}

/// `downstream-2` fails half its requests, so requests are retried: retries must stay on the
/// matching downstreams too. 300 requests with `region=eu` (3 attempts each allowed): the
/// downstream outside the tags counts no request at all, the two inside count exactly the
/// attempts the router reports; each gets some (round robin alternates them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_restrict_every_attempt_and_unmatched_tags_get_503() {
    let fleet = [
        tagged("downstream-1", 0, &["region=eu", "tier=gold"]),
        tagged("downstream-2", 50, &["region=eu"]),
        tagged("downstream-3", 0, &["region=us", "tier=gold"]),
    ];
    let vars = [
        ("DEFAULT_ALGO", "round_robin".to_owned()),
        ("RETRY_BUDGET_PERCENT", "off".to_owned()),
        ("ROUTE_TAGS", r#"{"/gold": "tier=gold"}"#.to_owned()),
    ];
    let stack = Stack::start("tags", &fleet, &vars);
    let client = reqwest::Client::new();
    stack.reset_counters(&client).await;

    let mut attempts = 0u64;
    let mut workers = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..300 {
        let response = client
            .get(format!("{}/service", stack.router_url))
            .header("x-magnetar-tags", "region=eu")
            .send()
            .await
            .expect("router answered");
        let o = Observed::of(&response, Duration::ZERO);
        assert!(o.status == 200 || o.status == 502, "{o:?}");
        attempts += u64::from(o.attempts);
        *workers.entry(o.worker).or_default() += 1;
    }
    let hits = stack.downstream_hits(&client).await;
    assert_eq!(hits[2], 0, "the downstream outside region=eu got requests: {hits:?}");
    assert_eq!(hits[0] + hits[1], attempts, "every attempt landed on a matching one: {hits:?}");
    assert!(hits[0] >= 100 && hits[1] >= 100, "both matching ones served: {hits:?}");
    assert!(attempts > 300, "downstream-2's failures were retried: {attempts} attempts");
    assert!(!workers.contains_key("downstream-3"), "{workers:?}");

    // The route's rule and the header together: only downstream-1 is gold and in the EU.
    stack.reset_counters(&client).await;
    for _ in 0..50 {
        let response = client
            .get(format!("{}/gold", stack.router_url))
            .header("x-magnetar-tags", "region=eu")
            .send()
            .await
            .expect("router answered");
        assert_eq!(response.status(), 200);
        assert_eq!(Observed::of(&response, Duration::ZERO).worker, "downstream-1");
    }
    assert_eq!(stack.downstream_hits(&client).await, [50, 0, 0]);

    // Tags nobody carries: 503 naming them; nothing is sent.
    let response = client
        .get(format!("{}/gold", stack.router_url))
        .header("x-magnetar-tags", "region=us,tier=silver")
        .send()
        .await
        .expect("router answered");
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "no_matching_downstream", "{body}");
    assert_eq!(body["tags"], "region=us,tier=gold,tier=silver", "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("region=us,tier=gold,tier=silver"));

    // A malformed header: 400 naming the header.
    for bad in ["region eu", "region=eu,,tier=gold", "=eu"] {
        let response = client
            .get(format!("{}/service", stack.router_url))
            .header("x-magnetar-tags", bad)
            .send()
            .await
            .expect("router answered");
        assert_eq!(response.status(), 400, "{bad:?}");
        let body: Value = response.json().await.expect("json");
        let message = body["message"].as_str().unwrap_or("");
        assert!(message.starts_with("x-magnetar-tags: tag"), "{bad:?}: {body}");
    }
    assert_eq!(stack.downstream_hits(&client).await, [50, 0, 0], "refused requests sent nothing");

    // Learning per (route, tag set): the restricted requests learned under their own routes.
    let state = stack.router_state(&client).await;
    let routes: Vec<&String> =
        state["strategies"].as_object().map(|o| o.keys().collect()).unwrap_or_default();
    assert!(routes.iter().any(|r| *r == "/service#region=eu"), "{routes:?}");
    assert!(routes.iter().any(|r| *r == "/gold#region=eu,tier=gold"), "{routes:?}");
    println!("tags: 300 region=eu requests, {attempts} attempts, hits {hits:?}; routes {routes:?}");
}
