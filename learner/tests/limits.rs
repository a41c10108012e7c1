//! What keeps a client from holding the learner: header-read and request timeouts, the
//! concurrency limit, the shutdown deadline and the bounded /metrics page, against the real app
//! on 127.0.0.1:0.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use magnetar_core::Outcome;
use magnetar_learner::LearnerConfig;
use magnetar_learner::serve::ServerLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limited(limits: ServerLimits) -> LearnerConfig {
    LearnerConfig { server: limits, ..config() }
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// p99 of `n` sequential `/recommendation` calls, in milliseconds.
async fn recommendation_p99(client: &reqwest::Client, url: &str, n: usize) -> f64 {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let (status, body) = get_json(client, url).await;
        assert_eq!(status, 200, "{body}");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[(n * 99).div_ceil(100) - 1]
}

/// Whether the server closed `stream` (a read gives end of file or an error).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_millis(10), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        // Bytes (an error answer) then, at the next read, the close.
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_time_out_while_recommendation_keeps_answering() {
    let limits =
        ServerLimits { header_read_timeout: Duration::from_millis(800), ..Default::default() };
    let learner = InProcess::start(limited(limits)).await;
    let client = client();
    let url = format!("{}/recommendation?route=/s&candidates=a,b,c", learner.url);
    let baseline = recommendation_p99(&client, &url, 100).await;

    // 300 connections that send half a request head and then nothing.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(addr(&learner.url)).await.unwrap();
        stream
            .write_all(b"GET /recommendation?route=/s HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    let during = recommendation_p99(&client, &url, 100).await;
    // A ratio against the baseline of this same run, with a floor for a tiny baseline.
    assert!(
        during <= (baseline * 20.0).max(50.0),
        "p99 {during:.2} ms with slowloris, {baseline:.2} ms before"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut open = slow.len();
    while open > 0 {
        assert!(Instant::now() < deadline, "{open} half-sent connections still open after 10 s");
        open = 0;
        for stream in &mut slow {
            if !closed(stream).await {
                open += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recommendation_p99(&client, &url, 10).await.is_finite());
    learner.stop().await;
}

/// A produce request whose body never finishes: it holds a request slot.
async fn stalled_upload(base: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr(base)).await.unwrap();
    let head = format!(
        "POST /topics/magnetar-telemetry HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: {V2_JSON}\r\nContent-Length: 1000\r\n\r\n{{\"records\": ["
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_learner_answers_503_with_retry_after_and_a_stalled_request_gets_408() {
    let limits = ServerLimits {
        max_concurrent_requests: 1,
        request_timeout: Duration::from_millis(700),
        ..Default::default()
    };
    let learner = InProcess::start(limited(limits)).await;
    let client = client();
    let mut stalled = stalled_upload(&learner.url).await;
    let healthz = format!("{}/healthz", learner.url);
    let response = eventually(Duration::from_secs(5), "a 503 while the slot is taken", || {
        let (client, healthz) = (client.clone(), healthz.clone());
        async move {
            let r = client.get(&healthz).send().await.unwrap();
            (r.status() == 503).then_some(r)
        }
    })
    .await;
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], 50300, "{body}");

    // The stalled upload is cut at the request timeout with 408, which frees the slot.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the stalled request was not cut");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (status, _) = get_json(&client, &healthz).await;
    assert_eq!(status, 200);
    learner.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_cannot_hold_shutdown_past_its_deadline() {
    let limits = ServerLimits {
        request_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let learner = InProcess::start(limited(limits)).await;
    let _stalled = stalled_upload(&learner.url).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    learner.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?} with a stalled client");
}

#[tokio::test]
async fn metrics_show_at_most_max_series_and_count_the_rest() {
    let learner = InProcess::start(LearnerConfig { metrics_max_series: 2, ..config() }).await;
    let client = client();
    let attempts =
        [("a", Outcome::ServerError), ("b", Outcome::ServerError), ("c", Outcome::Success)];
    let body = serde_json::to_vec(&batch(&[record("m-1", "/m", &attempts)])).unwrap();
    let (status, _, _) =
        post(&client, &format!("{}/topics/magnetar-telemetry", learner.url), V2_JSON, body).await;
    assert_eq!(status, 200);
    let metrics =
        client.get(format!("{}/metrics", learner.url)).send().await.unwrap().text().await.unwrap();
    let means =
        metrics.lines().filter(|l| l.starts_with("magnetar_learner_posterior_mean{")).count();
    assert_eq!(means, 2, "{metrics}");
    assert!(!metrics.contains("downstream=\"c\""), "{metrics}");
    assert!(
        metrics.lines().any(|l| l == "magnetar_learner_metrics_series_omitted_total 1"),
        "{metrics}"
    );
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["caps"]["series_omitted"], 1, "{stats}");
    assert_eq!(stats["routes"]["/m"]["downstreams"].as_object().unwrap().len(), 2, "{stats}");
    // Learning is not capped by what is shown.
    assert_eq!(stats["observations"], 3, "{stats}");
    learner.stop().await;
}
