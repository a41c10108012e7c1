//! Benchmark (not a test): the router's added latency on loopback.
//!
//! Starts one always-succeeding downstream Worker and the router (both real `wrangler dev`),
//! then sends N sequential requests straight to the downstream and N through the router
//! (single attempt, round robin, no telemetry), and prints p50/p90/p99 of each and the difference.
//!
//!   cargo run --release -p magnetar-e2e --example edge_bench -- [N=1000]

use std::time::{Duration, Instant};

use magnetar_e2e::{Stack, fleet_failing};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e3
}

async fn measure(client: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    // Warm up connections and the isolate.
    for _ in 0..50 {
        let _ = client.post(url).body("{}").send().await.and_then(|r| r.error_for_status());
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client.post(url).body("{}").send().await.expect("request");
        let _ = response.bytes().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let stack =
        Stack::start("bench", &fleet_failing(&[0]), &[("DEFAULT_ALGO", "round_robin".into())]);
    let client = reqwest::Client::new();
    let direct = measure(&client, &format!("{}/service", stack.downstreams[0].1), n).await;
    let routed = measure(&client, &format!("{}/service?max_attempts=1", stack.router_url), n).await;
    println!("{n} sequential requests on loopback, 0%-fail downstream (wrangler dev / workerd)");
    println!("| path | p50 ms | p90 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (label, s) in [("direct to downstream", &direct), ("through router", &routed)] {
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} |",
            percentile(s, 0.5),
            percentile(s, 0.9),
            percentile(s, 0.99)
        );
    }
    println!(
        "| router adds | {:.2} | {:.2} | {:.2} |",
        percentile(&routed, 0.5) - percentile(&direct, 0.5),
        percentile(&routed, 0.9) - percentile(&direct, 0.9),
        percentile(&routed, 0.99) - percentile(&direct, 0.99)
    );
}
