//! The load generator: the same load shape for every lane, lanes interleaved.
//!
//! A lane is one thing measured: a Magnetar strategy (through the router) or a peer load balancer.
//! [`drive`] sends requests `0..n` of every lane in rounds: request `i` of every lane leaves at the
//! same moment, carrying the same scenario header, so a scenario phase (or, on the page, a change
//! of the controls) applies to every lane from the same request index, and every lane sees the
//! fleet at the same time (a `cyclic_outage` is down for all of them at once). Two shapes:
//!
//! - [`LoadShape::Concurrency`] `c`: `c` rounds in flight, so at most `c` requests per lane. A new
//!   round leaves when one has been answered by every lane: a slow lane sets the pace of all of
//!   them (the same load shape for everyone), not only its own.
//! - [`LoadShape::Rate`] `r`: round `i` leaves at `i / r` seconds whatever the answers (open loop),
//!   so every lane gets `r` requests per second.
//!
//! Every request also carries its lane's `x-flaky-tag`, so each downstream counts the attempts of
//! every lane separately although all lanes share the fleet at once.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use magnetar_core::Outcome;
use magnetar_core::retry::IDEMPOTENCY_KEY_HEADER;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

use magnetar_flaky::TAG_HEADER;

use crate::metrics::Sample;
use crate::peers::{self, NGINX_ADDR_HEADER, PeerKind, REQUEST_ID_HEADER};
use crate::scenario::{self, Scenario};

/// Most rounds in flight in rate mode (lanes slower than the rate fall behind, visibly).
pub const MAX_IN_FLIGHT: usize = 512;
/// Client-side timeout of one request: well beyond the router's request deadline.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How requests are sent.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadShape {
    /// This many requests in flight at all times.
    Concurrency(usize),
    /// Requests per second, open loop.
    Rate(f64),
}

impl LoadShape {
    /// Requests per second per lane, when fixed.
    pub fn rate(&self) -> Option<f64> {
        match self {
            LoadShape::Rate(r) => Some(*r),
            LoadShape::Concurrency(_) => None,
        }
    }
}

impl std::fmt::Display for LoadShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadShape::Concurrency(c) => write!(f, "concurrency {c}"),
            LoadShape::Rate(r) => write!(f, "{r} requests/s"),
        }
    }
}

/// What a lane sends its requests to.
#[derive(Clone, Debug)]
pub enum LaneKind {
    /// A Magnetar strategy: `POST {router}{route}?algo=..&max_attempts=..`.
    Magnetar { algo: String },
    /// A peer load balancer.
    Peer(PeerKind),
}

/// Everything needed to send one lane's requests.
#[derive(Clone, Debug)]
pub struct LaneTarget {
    pub label: String,
    pub kind: LaneKind,
    /// Full URL every request is POSTed to.
    pub url: String,
    /// The `x-flaky-tag` the downstreams count this lane's attempts under.
    pub tag: String,
    /// Downstream names in fleet order (for the scenario header).
    pub names: Vec<String>,
    /// `host:port` → downstream name (peers).
    pub addr_names: std::collections::HashMap<String, String>,
    /// Attempt budget of each request (for the oracle).
    pub max_attempts: u32,
    /// Requests per second of the lane when the load has a fixed rate (for the oracle).
    pub rate: Option<f64>,
}

/// A lane cannot go on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LaneError {
    /// A downstream answered 400 to the lab's override: the scenario header is wrong, and every
    /// "success" would be a lie (4xx counts as success).
    #[error("a downstream rejected the x-flaky-config override: {0}")]
    OverrideRejected(String),
}

/// The request id the lab sends (HAProxy logs it).
pub fn request_id(label: &str, index: usize) -> String {
    format!("{label}-{index}")
}

impl LaneTarget {
    /// Sends request `index` of `total`, `sent_ms` after the lane started.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        scenario: &Scenario,
        headers: &[String],
        index: usize,
        total: usize,
        sent_ms: f64,
    ) -> Result<Sample, LaneError> {
        let phase = scenario.phase_index(index, total);
        let started = Instant::now();
        let response = client
            .post(&self.url)
            .header(scenario::HEADER, &headers[phase])
            .header(REQUEST_ID_HEADER, request_id(&self.label, index))
            // The lab's requests are safe to repeat; saying so lets the router (and the peers)
            // retry a POST after a 5xx, as it does a GET.
            .header(IDEMPOTENCY_KEY_HEADER, request_id(&self.label, index))
            .header(TAG_HEADER, &self.tag)
            .header("content-type", "application/json")
            .body("{}")
            .timeout(CLIENT_TIMEOUT)
            .send()
            .await;
        let mut sample = Sample {
            index,
            sent_ms,
            latency_ms: 0.0,
            status: 0,
            success: false,
            attempts: 0,
            worker: String::new(),
            oracle: scenario.oracle_at_rate(phase, self.max_attempts, self.rate),
            error: None,
            tried: None,
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                sample.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                sample.error = Some(error_text(&e));
                return Ok(sample);
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
        };
        sample.status = status;
        let flaky_worker = header("x-flaky-worker");
        match &self.kind {
            LaneKind::Magnetar { .. } => {
                sample.success = header("x-magnetar-outcome") == "success";
                sample.attempts = header("x-magnetar-attempts").parse().unwrap_or(0);
                sample.worker = header("x-magnetar-worker");
            }
            LaneKind::Peer(kind) => {
                sample.success = Outcome::from_status(status).is_success();
                sample.worker = flaky_worker.clone();
                if *kind == PeerKind::Nginx {
                    let addrs = header(NGINX_ADDR_HEADER);
                    let tried: Vec<String> = peers::nginx_addrs(&addrs)
                        .into_iter()
                        .map(|a| self.addr_names.get(a).cloned().unwrap_or_else(|| a.to_owned()))
                        .collect();
                    sample.attempts = tried.len() as u32;
                    if sample.worker.is_empty() {
                        sample.worker = tried.last().cloned().unwrap_or_default();
                    }
                    sample.tried = Some(tried);
                }
                // HAProxy: attempts and tries come from its log once the run is over.
            }
        }
        let body = response.bytes().await.unwrap_or_default();
        sample.latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status == 400 && !flaky_worker.is_empty() {
            return Err(LaneError::OverrideRejected(String::from_utf8_lossy(&body).into_owned()));
        }
        Ok(sample)
    }
}

fn error_text(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else {
        e.to_string()
    }
}

/// Sends requests `0..total` of each of `lanes` lanes with `shape`, interleaved (see the module
/// docs), through `send(lane, index, sent_ms)`; calls `progress(lane, sample)` as each completes.
/// Returns every lane's samples, in lane order. Stops early on the first error `send` returns.
pub async fn drive<S, F>(
    total: usize,
    lanes: usize,
    shape: LoadShape,
    send: S,
    mut progress: impl FnMut(usize, &Sample),
) -> Result<Vec<Vec<Sample>>, LaneError>
where
    S: Fn(usize, usize, f64) -> F + Send + Sync + 'static,
    F: Future<Output = Result<Sample, LaneError>> + Send + 'static,
{
    let send = Arc::new(send);
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Result<Sample, LaneError>)>();
    let stop = Arc::new(AtomicBool::new(false));
    // tokio's clock, so that tests can pause it.
    let start = tokio::time::Instant::now();
    let elapsed_ms = move || start.elapsed().as_secs_f64() * 1000.0;
    // One round: request `index` of every lane, sent together; done when every lane answered.
    let round = {
        let (send, tx, stop) = (send.clone(), tx.clone(), stop.clone());
        move |index: usize| {
            let (send, tx, stop) = (send.clone(), tx.clone(), stop.clone());
            async move {
                let sent_ms = elapsed_ms();
                let mut requests = tokio::task::JoinSet::new();
                for lane in 0..lanes {
                    let (send, tx, stop) = (send.clone(), tx.clone(), stop.clone());
                    requests.spawn(async move {
                        let result = send(lane, index, sent_ms).await;
                        if result.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        let _ = tx.send((lane, result));
                    });
                }
                while requests.join_next().await.is_some() {}
            }
        }
    };
    match shape {
        LoadShape::Concurrency(c) => {
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..c.max(1) {
                let (round, next, stop) = (round.clone(), next.clone(), stop.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        round(i).await;
                    }
                });
            }
            // The tasks hold their own copies; this one would keep the channel open.
            drop(round);
        }
        LoadShape::Rate(rate) => {
            let stop = stop.clone();
            let interval = 1.0 / rate.max(1e-3);
            let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            tokio::spawn(async move {
                for i in 0..total {
                    let due = start + Duration::from_secs_f64(i as f64 * interval);
                    tokio::time::sleep_until(due).await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Ok(permit) = slots.clone().acquire_owned().await else { break };
                    let round = round.clone();
                    tokio::spawn(async move {
                        round(i).await;
                        drop(permit);
                    });
                }
            });
        }
    }
    drop(tx);
    let mut samples: Vec<Vec<Sample>> = (0..lanes).map(|_| Vec::with_capacity(total)).collect();
    let mut failure = None;
    while let Some((lane, result)) = rx.recv().await {
        match result {
            Ok(sample) => {
                progress(lane, &sample);
                samples[lane].push(sample);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(samples),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(index: usize, sent_ms: f64) -> Sample {
        Sample {
            index,
            sent_ms,
            latency_ms: 1.0,
            status: 200,
            success: true,
            attempts: 1,
            worker: "downstream-1".into(),
            oracle: 1.0,
            error: None,
            tried: None,
        }
    }

    #[tokio::test]
    async fn concurrency_sends_every_index_of_every_lane_once_and_never_more_in_flight() {
        let in_flight: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        let peak: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        let (f, p) = (in_flight.clone(), peak.clone());
        let lanes = drive(
            200,
            3,
            LoadShape::Concurrency(4),
            move |lane, i, t| {
                let (f, p) = (f.clone(), p.clone());
                async move {
                    let now = f[lane].fetch_add(1, Ordering::SeqCst) + 1;
                    p[lane].fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1 + lane as u64)).await;
                    f[lane].fetch_sub(1, Ordering::SeqCst);
                    Ok(ok(i, t))
                }
            },
            |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(lanes.len(), 3);
        for (lane, samples) in lanes.iter().enumerate() {
            let mut indices: Vec<usize> = samples.iter().map(|s| s.index).collect();
            indices.sort_unstable();
            assert_eq!(indices, (0..200).collect::<Vec<_>>());
            assert!(peak[lane].load(Ordering::SeqCst) <= 4, "lane {lane}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn request_i_of_every_lane_leaves_together_and_the_slowest_lane_sets_the_pace() {
        // Lane 0 answers in 100 ms, lane 1 in 1 ms; one round in flight.
        let lanes = drive(
            10,
            2,
            LoadShape::Concurrency(1),
            |lane, i, t| async move {
                tokio::time::sleep(Duration::from_millis(if lane == 0 { 100 } else { 1 })).await;
                Ok(ok(i, t))
            },
            |_, _| {},
        )
        .await
        .unwrap();
        let sent = |lane: usize, i: usize| {
            lanes[lane].iter().find(|s| s.index == i).map(|s| s.sent_ms).unwrap()
        };
        for i in 0..10 {
            assert_eq!(sent(0, i), sent(1, i), "request {i} left together");
        }
        // Lane 1 does not run ahead: its request 9 leaves after lane 0 answered request 8.
        assert!(sent(1, 9) >= 900.0 - 1.0, "{}", sent(1, 9));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_sends_on_schedule_whatever_the_latency() {
        let lanes = drive(
            20,
            2,
            LoadShape::Rate(10.0),
            |_, i, t| async move {
                tokio::time::sleep(Duration::from_millis(350)).await;
                Ok(ok(i, t))
            },
            |_, _| {},
        )
        .await
        .unwrap();
        for samples in &lanes {
            assert_eq!(samples.len(), 20);
            let last = samples.iter().find(|s| s.index == 19).unwrap();
            // Request 19 leaves at 1.9 s (paused clock: exact up to scheduling).
            assert!((last.sent_ms - 1900.0).abs() < 5.0, "{}", last.sent_ms);
        }
    }

    #[tokio::test]
    async fn a_rejected_override_stops_every_lane() {
        let result = drive(
            1000,
            2,
            LoadShape::Concurrency(2),
            |lane, i, t| async move {
                if lane == 1 && i == 5 {
                    Err(LaneError::OverrideRejected("bad".into()))
                } else {
                    Ok(ok(i, t))
                }
            },
            |_, _| {},
        )
        .await;
        assert!(matches!(result, Err(LaneError::OverrideRejected(_))));
    }
}
