//! The edge path end to end: client → router (workerd) → downstream Workers (workerd).
//!
//! Statistical bands are stated with the arithmetic that keeps them from flaking.

use magnetar_e2e::{Stack, drive, fleet_failing, shares, success_rate};
use serde_json::Value;

const NAMES: [&str; 3] = ["downstream-1", "downstream-2", "downstream-3"];

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(16).build().expect("client")
}

/// Single attempts over 100%/100%/90%: only the 90% worker ever succeeds, so success is
/// (its share) × 10%. With round robin, 333 requests reach it: successes ~ Binomial(333, 0.1),
/// mean 33.3, sd 5.5, so the rate is 3.33% ± 0.55; the band ±2 points is 3.6 sd.
/// With random, success per request is 1/30: Binomial(1000, 1/30), sd 0.57 points; same band.
/// Shares: round robin is exact within one isolate; random's share sd is 1.5 points, so ±5
/// points is 3.3 sd per worker.
async fn single_attempt_baseline(algo: &str) {
    let stack =
        Stack::start(algo, &fleet_failing(&[100, 100, 90]), &[("DEFAULT_ALGO", "random".into())]);
    let client = client();
    let observed =
        drive(&client, &stack.router_url, &format!("algo={algo}&max_attempts=1"), 1000, 8).await;
    assert!(observed.iter().all(|o| o.attempts == 1), "single attempt only");
    assert!(
        observed.iter().all(|o| o.status == 200 || o.status == 502),
        "statuses: {:?}",
        &observed[..5]
    );
    let rate = success_rate(&observed);
    assert!(
        (rate - 1.0 / 30.0).abs() <= 0.02,
        "{algo}: success {rate:.4} outside 3.33% ± 2\n{}",
        stack.logs()
    );
    for (name, share) in NAMES.iter().zip(shares(&observed, &NAMES)) {
        assert!((share - 1.0 / 3.0).abs() <= 0.05, "{algo}: {name} share {share:.3}");
    }
    println!("{algo}: success {:.2}% over 1000 single-attempt requests", rate * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_single_attempt_matches_the_prototype_profile() {
    single_attempt_baseline("round_robin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_single_attempt_matches_the_prototype_profile() {
    single_attempt_baseline("random").await;
}

/// Three distinct attempts over 50%/20%/5%: a request fails only if all three fail,
/// probability 0.5 × 0.2 × 0.05 = 0.5%. Over 2,000 requests failures ~ Poisson(10); the bound
/// "at least 99%" allows 20 (P(X > 20) ≈ 0.16%).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_reach_99_percent_and_attempts_match_downstream_hits() {
    let stack = Stack::start(
        "retries",
        &fleet_failing(&[50, 20, 5]),
        &[("DEFAULT_ALGO", "round_robin".into())],
    );
    let client = client();
    stack.reset_counters(&client).await;
    for algo in ["round_robin", "random", "thompson"] {
        let before: u64 = stack.downstream_hits(&client).await.iter().sum();
        let observed = drive(&client, &stack.router_url, &format!("algo={algo}"), 2000, 8).await;
        let rate = success_rate(&observed);
        assert!(rate >= 0.99, "{algo}: success {rate:.4} < 99%\n{}", stack.logs());
        assert!(
            observed.iter().all(|o| (1..=3).contains(&o.attempts)),
            "{algo}: attempts beyond 3"
        );
        let attempts: u64 = observed.iter().map(|o| u64::from(o.attempts)).sum();
        let hits: u64 = stack.downstream_hits(&client).await.iter().sum::<u64>() - before;
        assert_eq!(attempts, hits, "{algo}: router attempts vs downstream-counted hits");
        println!(
            "{algo}: success {:.2}%, {:.3} attempts/request",
            rate * 100.0,
            attempts as f64 / 2000.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_4xx_and_exhaustion_a_502_listing_attempts() {
    let stack = Stack::start(
        "malformed",
        &fleet_failing(&[100, 100, 0]),
        &[("DEFAULT_ALGO", "round_robin".into())],
    );
    let client = client();
    let url = format!("{}/service", stack.router_url);

    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("not valid JSON"), "{body}");

    let r = client.get(format!("{url}?algo=best_one")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("best_one")
            && message.contains("round_robin")
            && message.contains("learner"),
        "{message}"
    );

    let r = client.get(format!("{url}?max_attempts=9")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Header and body selection work too.
    let r = client.get(&url).header("x-magnetar-algo", "random").send().await.unwrap();
    assert_eq!(r.headers()["x-magnetar-algo"], "random");
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"algo":"round_robin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-magnetar-algo"], "round_robin");

    // Two attempts on the two always-failing workers: a 502 listing both.
    let healthy = stack.downstreams[2].0.clone();
    let mut saw_exhaustion = false;
    for _ in 0..6 {
        let r = client.get(format!("{url}?algo=round_robin&max_attempts=2")).send().await.unwrap();
        if r.status().as_u16() == 502 {
            let body: Value = r.json().await.unwrap();
            let attempts = body["attempts"].as_array().unwrap();
            assert_eq!(attempts.len(), 2, "{body}");
            assert!(
                attempts
                    .iter()
                    .all(|a| a["outcome"] == "server_error" && a["downstream"] != healthy.as_str())
            );
            saw_exhaustion = true;
        }
    }
    assert!(saw_exhaustion, "round robin over two dead workers must exhaust at least once in six");
}
