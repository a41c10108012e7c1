//! Contextual routing end to end: client → router (workerd) → downstream Workers (workerd).
//!
//! One route (`ROUTES` sends every `/ctx/...` path to the route `ctx`, so every request shares
//! one learning state) and three downstreams that succeed unless told otherwise. Requests of the
//! path class `/ctx/media` tell downstreams 1 and 2 to fail (the flaky origin's `x-flaky-config`
//! header, which the router forwards to every attempt), so they succeed only on downstream 3;
//! requests of `/ctx/api` succeed only on downstream 1. A strategy that does not read the
//! request can at best pick one downstream for all: 50% success. `lin_ucb` reads the path class
//! from the request's context and learns to send each class to its downstream.
//!
//! Statistical bands are stated with the arithmetic that keeps them from flaking.

use magnetar_core::context::path_bucket;
use magnetar_e2e::{Observed, Stack, fleet_failing};
use serde_json::{Value, json};

const WARM_UP: usize = 300;
const MEASURED: usize = 200;

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(8).build().expect("client")
}

/// The path class of request `i`, its `x-flaky-config` and the downstream that serves it.
fn request_of(i: usize) -> (&'static str, Value, &'static str) {
    let fail = json!({ "mode": "All_fail" });
    if i.is_multiple_of(2) {
        let only_3 = json!({ "downstream-1": fail, "downstream-2": fail });
        ("media", only_3, "downstream-3")
    } else {
        let only_1 = json!({ "downstream-2": fail, "downstream-3": fail });
        ("api", only_1, "downstream-1")
    }
}

/// Sends request `i` (one attempt) with `algo`; returns what it produced and the downstream that
/// serves its class.
async fn send(
    client: &reqwest::Client,
    url: &str,
    algo: &str,
    i: usize,
) -> (Observed, &'static str) {
    let (class, flaky, serves) = request_of(i);
    let response = client
        .get(format!("{url}/ctx/{class}/{i}?algo={algo}&max_attempts=1"))
        .header("x-flaky-config", flaky.to_string())
        // Noise the strategy must learn to ignore: the caller, independent of the class.
        .header("x-caller-id", format!("caller-{}", i % 3))
        .send()
        .await
        .expect("router answered");
    (Observed::of(&response, std::time::Duration::ZERO), serves)
}

/// `WARM_UP` requests, then `MEASURED` more; (success, share sent to the serving downstream)
/// over the measured ones.
async fn run(stack: &Stack, client: &reqwest::Client, algo: &str) -> (f64, f64) {
    for i in 0..WARM_UP {
        send(client, &stack.router_url, algo, i).await;
    }
    let (mut successes, mut right) = (0, 0);
    for i in WARM_UP..WARM_UP + MEASURED {
        let (o, serves) = send(client, &stack.router_url, algo, i).await;
        assert!(o.attempts == 1 && (o.status == 200 || o.status == 502), "{algo}: {o:?}");
        successes += usize::from(o.success);
        right += usize::from(o.worker == serves);
        assert_eq!(o.success, o.worker == serves, "{algo}: {o:?}");
    }
    (successes as f64 / MEASURED as f64, right as f64 / MEASURED as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lin_ucb_learns_which_downstream_serves_which_path_class() {
    assert_ne!(path_bucket("/ctx/media"), path_bucket("/ctx/api"), "the classes must be apart");
    let routes = json!([{ "pattern": "/ctx/*", "route": "ctx" }]).to_string();
    let stack = Stack::start(
        "contextual",
        &fleet_failing(&[0, 0, 0]),
        &[("DEFAULT_ALGO", "round_robin".into()), ("ROUTES", routes)],
    );
    let client = client();

    // A malformed caller header is refused, naming the header.
    let r = client
        .get(format!("{}/ctx/api/0", stack.router_url))
        .header("x-caller-id", "has space")
        .send()
        .await
        .expect("router answered");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("json");
    assert!(body["message"].as_str().unwrap_or("").starts_with("header x-caller-id: "), "{body}");

    // lin_ucb: after 300 requests, each class goes to its downstream. Its choice is wrong only
    // while its confidence bonus outweighs a class's record (a few dozen requests in); if it
    // were still wrong 5% of the time, 200 requests would see 10 ± 3 misses: 90% is 3 sd below.
    let (lin_success, lin_right) = run(&stack, &client, "lin_ucb").await;
    // Thompson sampling on the same stream cannot tell the classes apart: every downstream
    // serves half the requests, so its success is 50% whatever it learns: 200 requests give
    // sd 3.5 points, and 65% is more than 4 sd above.
    let (ts_success, _) = run(&stack, &client, "thompson").await;
    println!(
        "contextual e2e: lin_ucb {:.1}% success ({:.1}% to the serving downstream), thompson {:.1}% over {MEASURED} requests after {WARM_UP}",
        lin_success * 100.0,
        lin_right * 100.0,
        ts_success * 100.0
    );
    assert!(lin_success >= 0.9, "lin_ucb: {lin_success:.3}\n{}", stack.logs());
    assert!(ts_success <= 0.65, "thompson: {ts_success:.3}");
    assert!(
        lin_success >= ts_success + 0.25,
        "lin_ucb {lin_success:.3} vs thompson {ts_success:.3}"
    );
}
