//! The router's added latency: the same requests straight to a downstream and through the router.
//!
//! `magnetar-lab latency` sends `n` requests one at a time to a 0%-fail downstream, alternating
//! between the downstream itself and the router (`round_robin`, one attempt), after a warm-up of
//! each. Alternating keeps both series under the same machine conditions. The difference of the
//! two latency distributions is what the router adds: its own work (config, strategy, headers,
//! body buffering) and one more loopback hop through workerd. A third series, the router's
//! `GET /_magnetar/health` (no subrequest, no strategy), is the cost of that hop alone under
//! `wrangler dev`, whose local proxy sits in front of every Worker; subtracting it leaves the
//! router's own work.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::scenario;
use crate::stack::{FleetInfo, LocalStack, repo_root};

/// Requests to each target before measuring (workerd compiles and warms the isolate).
const WARM_UP: usize = 50;
/// Every downstream succeeds at once for the measurement.
const ALL_SUCCESS: &str = r#"{"*":{"mode":"All_Success","delay_ms":0,"latency_jitter_ms":0}}"#;

/// Latency of one target, milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    pub target: String,
    pub requests: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

impl Series {
    fn of(target: &str, latencies: &mut [f64]) -> Series {
        latencies.sort_by(f64::total_cmp);
        let n = latencies.len();
        let at = |q: f64| latencies[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Series {
            target: target.to_owned(),
            requests: n,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            mean_ms: latencies.iter().sum::<f64>() / n as f64,
            max_ms: latencies[n - 1],
        }
    }
}

/// What `magnetar-lab latency` reports.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyReport {
    pub direct: Series,
    pub router: Series,
    /// `GET /_magnetar/health` on the router: one `wrangler dev` hop and a trivial Worker.
    pub hop: Series,
    pub added_p50_ms: f64,
    pub added_p99_ms: f64,
    /// Added p50 minus the hop's p50: the router's own work per request.
    pub own_work_p50_ms: f64,
}

impl LatencyReport {
    /// A Markdown table of the two series and the difference.
    pub fn table(&self) -> String {
        let row = |s: &Series| {
            format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                s.target, s.requests, s.p50_ms, s.p90_ms, s.p99_ms, s.mean_ms, s.max_ms
            )
        };
        format!(
            "| target | requests | p50 ms | p90 ms | p99 ms | mean ms | max ms |\n|---|---|---|---|---|---|---|\n{}{}| **added by the router** | | **{:.2}** | | **{:.2}** | | |\n{}| **router's own work** (added − hop) | | **{:.2}** | | | | |\n",
            row(&self.direct),
            row(&self.router),
            self.added_p50_ms,
            self.added_p99_ms,
            row(&self.hop),
            self.own_work_p50_ms,
        )
    }
}

async fn timed(client: &reqwest::Client, url: &str) -> Result<f64> {
    let started = Instant::now();
    let request =
        if url.ends_with("/_magnetar/health") { client.get(url) } else { client.post(url) };
    let response = request
        .header(scenario::HEADER, ALL_SUCCESS)
        .header("content-type", "application/json")
        .body("{}")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    response.bytes().await.with_context(|| format!("POST {url}: body"))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() {
        bail!("POST {url} answered {status}: the latency run needs every request to succeed");
    }
    Ok(ms)
}

/// Measures `requests` requests per target against the router at `router` (started when none
/// answers there).
pub async fn measure(router: &str, requests: usize) -> Result<LatencyReport> {
    if requests == 0 {
        bail!("--requests must be at least 1");
    }
    // One connection reused, as a client in front of an edge would.
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
    let mut _own_stack = None;
    let (router, fleet) = match FleetInfo::fetch(&client, router, None).await? {
        Some(fleet) => (router.to_owned(), fleet),
        None => {
            eprintln!("no router answers at {router}: starting a local stack with 1 downstream...");
            let stack = LocalStack::start(&client, &repo_root(), 1).await?;
            let fleet = FleetInfo::fetch(&client, &stack.router_url, Some(&stack.admin_token))
                .await?
                .context("the stack the lab started does not answer")?;
            let url = stack.router_url.clone();
            _own_stack = Some(stack);
            (url, fleet)
        }
    };
    let downstream = fleet.downstreams.iter().find_map(|d| d.url.clone()).context(
        "the router lists no downstream with a URL (service bindings cannot be measured directly)",
    )?;
    let direct_url = format!("{}/service", downstream.trim_end_matches('/'));
    let router_url = format!("{router}/service?algo=round_robin&max_attempts=1");

    let hop_url = format!("{router}/_magnetar/health");

    for _ in 0..WARM_UP {
        timed(&client, &direct_url).await?;
        timed(&client, &router_url).await?;
        timed(&client, &hop_url).await?;
    }
    let mut direct = Vec::with_capacity(requests);
    let mut routed = Vec::with_capacity(requests);
    let mut hop = Vec::with_capacity(requests);
    for _ in 0..requests {
        direct.push(timed(&client, &direct_url).await?);
        routed.push(timed(&client, &router_url).await?);
        hop.push(timed(&client, &hop_url).await?);
    }
    let direct = Series::of("straight to the downstream", &mut direct);
    let router = Series::of("through the router", &mut routed);
    let hop = Series::of("router's /_magnetar/health (the wrangler dev hop)", &mut hop);
    let added_p50_ms = router.p50_ms - direct.p50_ms;
    Ok(LatencyReport {
        added_p50_ms,
        added_p99_ms: router.p99_ms - direct.p99_ms,
        own_work_p50_ms: added_p50_ms - hop.p50_ms,
        direct,
        router,
        hop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Series::of("x", &mut v);
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms), (50.0, 90.0, 99.0, 100.0));
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        let mut one = vec![3.0];
        let s = Series::of("x", &mut one);
        assert_eq!((s.p50_ms, s.p99_ms), (3.0, 3.0));
    }
}
