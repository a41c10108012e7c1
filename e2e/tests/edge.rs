//! The edge path end to end: client → router (workerd) → downstream Workers (workerd).
//!
//! Statistical bands are stated with the arithmetic that keeps them from flaking.

use std::time::{Duration, Instant};

use magnetar_e2e::{
    DownstreamSpec, Observed, Stack, baseline, counter, drive, fleet_failing, latency_bound,
    shares, success_rate,
};
use serde_json::{Value, json};

const NAMES: [&str; 3] = ["downstream-1", "downstream-2", "downstream-3"];

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(16).build().expect("client")
}

/// Single attempts over 100%/100%/90%: only the 90% worker ever succeeds, so success is
/// (its share) × 10%. With round robin, 333 requests reach it: successes ~ Binomial(333, 0.1),
/// mean 33.3, sd 5.5, so the rate is 3.33% ± 0.55; the band ±2 points is 3.6 sd.
/// With random, success per request is 1/30: Binomial(1000, 1/30), sd 0.57 points; same band.
/// Shares: random's share sd is 1.5 points, so ±5 points is 3.3 sd per worker; round robin is
/// exact within one isolate (`wrangler dev` runs one), so its counts differ by at most one.
///
/// Nothing here trusts the router's word alone: the hits each downstream Worker counted itself
/// must equal the router's `x-magnetar-worker` headers, worker by worker, and the status the
/// client got must agree with `x-magnetar-outcome`.
async fn single_attempt_baseline(algo: &str) {
    let stack =
        Stack::start(algo, &fleet_failing(&[100, 100, 90]), &[("DEFAULT_ALGO", "random".into())]);
    let client = client();
    stack.reset_counters(&client).await;
    let observed =
        drive(&client, &stack.router_url, &format!("algo={algo}&max_attempts=1"), 1000, 8).await;
    assert!(observed.iter().all(|o| o.attempts == 1), "single attempt only");
    for o in &observed {
        assert_eq!(o.status == 200, o.success, "status {} vs outcome header: {o:?}", o.status);
        assert!(o.status == 200 || o.status == 502, "status {}: {o:?}", o.status);
    }
    let rate = success_rate(&observed);
    assert!(
        (rate - 1.0 / 30.0).abs() <= 0.02,
        "{algo}: success {rate:.4} outside 3.33% ± 2\n{}",
        stack.logs()
    );
    let hits = stack.downstream_hits(&client).await;
    let per_worker: Vec<u64> =
        NAMES.iter().map(|n| observed.iter().filter(|o| o.worker == *n).count() as u64).collect();
    assert_eq!(hits, per_worker, "{algo}: downstream-counted hits vs the router's headers");
    for (name, share) in NAMES.iter().zip(shares(&observed, &NAMES)) {
        assert!((share - 1.0 / 3.0).abs() <= 0.05, "{algo}: {name} share {share:.3}");
    }
    if algo == "round_robin" {
        let (lo, hi) = (hits.iter().min().copied(), hits.iter().max().copied());
        assert!(hi.zip(lo).is_some_and(|(hi, lo)| hi - lo <= 1), "round robin counts {hits:?}");
    }
    println!(
        "{algo}: success {:.2}% over 1000 single-attempt requests, hits {hits:?}",
        rate * 100.0
    );
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
    // Without the retry budget: this measures what three attempts achieve, not the budget.
    let stack = Stack::start(
        "retries",
        &fleet_failing(&[50, 20, 5]),
        &[("DEFAULT_ALGO", "round_robin".into()), ("RETRY_BUDGET_PERCENT", "off".into())],
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

/// One request through the router, with the headers and body given; returns what the answer
/// says (its latency including the body) and its JSON body (`Null` when it is not JSON).
async fn send(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Option<Value>,
) -> (Observed, Value) {
    let mut request = match &body {
        Some(b) => client.post(url).header("content-type", "application/json").body(b.to_string()),
        None => client.get(url),
    };
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let started = Instant::now();
    let response = request.send().await.expect("router answered");
    let mut observed = Observed::of(&response, Duration::ZERO);
    let text = response.text().await.unwrap_or_default();
    observed.latency = started.elapsed();
    (observed, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The outcomes a 502 body lists, in attempt order.
fn outcomes(body: &Value) -> Vec<String> {
    body["attempts"]
        .as_array()
        .map(|a| a.iter().map(|x| x["outcome"].as_str().unwrap_or("").to_owned()).collect())
        .unwrap_or_default()
}

/// The retry paths one by one, on three healthy Workers shaped per request with the
/// `x-flaky-config` header (or the body's `flaky` field): a slow downstream is cut off at the
/// attempt timeout (500 ms) and the request retried elsewhere; a 429 is retried; the overall
/// deadline (1,200 ms) ends a request whose every attempt hangs; and the buffered body is replayed
/// on every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_cover_timeouts_429s_and_the_deadline_and_replay_the_body() {
    let stack = Stack::start(
        "retry-paths",
        &fleet_failing(&[0, 0, 0]),
        &[
            ("DEFAULT_ALGO", "round_robin".into()),
            ("ATTEMPT_TIMEOUT_MS", "500".into()),
            ("REQUEST_DEADLINE_MS", "1200".into()),
        ],
    );
    let client = client();
    let url = format!("{}/service?algo=round_robin", stack.router_url);
    let flaky = |v: Value| vec![("x-flaky-config", v.to_string())];
    let base = baseline(&client, &url, 9).await;
    let timeout = Duration::from_millis(500);

    // A downstream that takes 3 s: cut off at 500 ms, the retry succeeds elsewhere.
    let slow = flaky(json!({ "downstream-1": { "delay_ms": 3000 } }));
    let mut retried = 0;
    for _ in 0..9 {
        let (a, reply) = send(&client, &url, &slow, None).await;
        assert_eq!(a.status, 200, "{:?}", reply);
        assert_ne!(a.worker, "downstream-1");
        let bound = latency_bound(timeout, base);
        assert!(a.latency < bound, "latency {:?} (bound {bound:?})", a.latency);
        if a.attempts == 2 {
            retried += 1;
            assert!(
                a.latency >= Duration::from_millis(450),
                "a timed-out attempt took {:?}",
                a.latency
            );
        }
    }
    assert!(retried >= 1, "round robin over three downstreams starts on the slow one in nine");
    // The same with a single attempt: a 502 whose attempt timed out.
    let one = format!("{url}&max_attempts=1");
    let all_slow = flaky(json!({ "*": { "delay_ms": 3000 } }));
    let (a, reply) = send(&client, &one, &all_slow, None).await;
    assert_eq!((a.status, outcomes(&reply)), (502, vec!["timeout".to_owned()]), "{:?}", reply);

    // Every downstream hangs: attempts of 500, 500 and the 200 ms left, then the deadline.
    let (a, reply) = send(&client, &url, &all_slow, None).await;
    assert_eq!(a.status, 502, "{:?}", reply);
    assert_eq!(outcomes(&reply), vec!["timeout"; 3], "{:?}", reply);
    let bound = latency_bound(Duration::from_millis(1200), base);
    assert!(
        a.latency >= Duration::from_millis(1150) && a.latency < bound,
        "the request deadline is 1,200 ms; took {:?} (bound {bound:?})",
        a.latency
    );

    // 429 is retried (and is not a success): rate_limited mode admitting 0 requests a second.
    let limited = flaky(json!({ "downstream-2": { "mode": "rate_limited", "rate_limit_rps": 0 } }));
    let mut saw_429 = false;
    for _ in 0..9 {
        let (a, reply) = send(&client, &url, &limited, None).await;
        assert_eq!(a.status, 200, "{:?}", reply);
        assert_ne!(a.worker, "downstream-2");
        saw_429 |= a.attempts == 2;
    }
    assert!(saw_429, "round robin starts on the rate-limited downstream in nine");
    let only_429 = flaky(json!({ "*": { "mode": "rate_limited", "rate_limit_rps": 0 } }));
    let (a, reply) = send(&client, &url, &only_429, None).await;
    assert_eq!((a.status, outcomes(&reply)), (502, vec!["rate_limited".to_owned(); 3]));

    // Body replay: the override travels in the body, so only a replayed body makes the second
    // and third attempts fail as well; without it downstream-2 would answer the second attempt.
    let body = json!({
        "payload": "x".repeat(2048),
        "flaky": { "downstream-1": { "mode": "All_fail" }, "downstream-2": { "mode": "All_fail" } }
    });
    let mut three = 0;
    let key = [("idempotency-key", "replay-test".to_owned())];
    for _ in 0..9 {
        let (a, reply) = send(&client, &url, &key, Some(body.clone())).await;
        assert_eq!((a.status, a.worker.as_str()), (200, "downstream-3"), "{:?}", reply);
        three += usize::from(a.attempts == 3);
    }
    assert!(three >= 1, "a request starting on downstream-1 needs all three attempts");
}

/// A stack of an always-failing and a healthy downstream, round robin, no retry budget; its
/// downstream counters reset; a client and the `/service` URL.
async fn failing_and_healthy(label: &str) -> (Stack, reqwest::Client, String) {
    let stack = Stack::start(
        label,
        &fleet_failing(&[100, 0]),
        &[("DEFAULT_ALGO", "round_robin".into()), ("RETRY_BUDGET_PERCENT", "off".into())],
    );
    let client = client();
    let url = format!("{}/service?algo=round_robin", stack.router_url);
    stack.reset_counters(&client).await;
    (stack, client, url)
}

/// Bodies are bounded: a 10 MB body declared in `Content-Length` gets 413 before the router
/// reads it, and the next request is served normally; a body over the 64 KiB replay limit is sent
/// once and not retried, even with an idempotent method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_and_large_ones_are_not_replayed() {
    let (stack, client, url) = failing_and_healthy("bodies").await;
    let big = vec![b'x'; 10_000_000];
    let r = client.post(&url).body(big).send().await.expect("the router answers a 10 MB body");
    assert_eq!(r.status().as_u16(), 413);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "body_too_large", "{body}");
    assert!(body["message"].as_str().unwrap_or("").contains("1048576"), "{body}");
    assert_eq!(stack.downstream_hits(&client).await, vec![0, 0], "nothing was forwarded");
    let state = stack.router_state(&client).await;
    assert_eq!(counter(&state, "bodies_too_large"), 1, "{state}");
    for _ in 0..4 {
        let r = client.put(&url).body("{}").send().await.expect("answered");
        let o = Observed::of(&r, Duration::ZERO);
        assert!(o.success, "served normally after the 413: {o:?}");
    }

    // 100 KB: over the replay limit, so a PUT that fails on downstream-1 is not retried.
    let large = vec![b'y'; 100_000];
    let mut failed = 0;
    for _ in 0..4 {
        let r = client.put(&url).body(large.clone()).send().await.expect("answered");
        let o = Observed::of(&r, Duration::ZERO);
        assert_eq!(o.attempts, 1, "a large body is sent once: {o:?}");
        failed += usize::from(o.status == 502);
    }
    assert_eq!(failed, 2, "round robin starts two of four on the failing downstream");
}

/// POST is not retried after a 5xx (the origin may have acted on it), unless the client sends
/// an `Idempotency-Key`; GET is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_not_retried_after_a_5xx_unless_it_carries_an_idempotency_key() {
    let (stack, client, url) = failing_and_healthy("post-retries").await;
    let mut observed = Vec::new();
    for _ in 0..10 {
        let r = client.post(&url).body("order=1").send().await.expect("answered");
        observed.push(Observed::of(&r, Duration::ZERO));
    }
    assert!(observed.iter().all(|o| o.attempts == 1), "POST sent once: {observed:?}");
    assert_eq!(observed.iter().filter(|o| o.status == 502).count(), 5, "{observed:?}");
    assert_eq!(stack.downstream_hits(&client).await, vec![5, 5], "each POST reached one origin");

    for (method, key) in [("POST", Some("k-1")), ("GET", None)] {
        let mut retried = 0;
        for i in 0..6 {
            let mut request = client.request(method.parse().expect("method"), &url);
            if let Some(key) = key {
                request = request.header("idempotency-key", format!("{key}-{i}"));
            }
            let o = Observed::of(&request.send().await.expect("answered"), Duration::ZERO);
            assert!(o.success, "{method} {key:?}: {o:?}");
            retried += usize::from(o.attempts == 2);
        }
        assert!(retried >= 2, "{method} {key:?} is retried after a 5xx: {retried} of 6");
    }
}

/// A raw HTTP/1.1 origin on loopback: records the head of every request it gets and answers
/// each with `answer(head)`, sent in the given chunks with a pause between them.
fn raw_origin(
    answer: fn(&str) -> (Vec<&'static str>, Duration),
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::AsyncWriteExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind origin");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Some(head) = magnetar_e2e::read_request_head(&mut socket).await else { return };
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let (chunks, pause) = answer(&head);
                seen.lock().expect("heads").push(head);
                for chunk in chunks {
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
            });
        }
    });
    (url, heads)
}

/// The edges of an attempt: hop-by-hop headers (`Proxy-Authorization` among them) do not reach
/// the origin, nor those the origin's `Connection` names the client; `X-Forwarded-For` is extended, `Forwarded` and `X-Forwarded-Proto` set. An
/// origin that sends its headers at once and then trickles its body is cut off at the attempt
/// deadline like one that never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_dropped_forwarding_headers_set_and_bodies_bounded_in_time() {
    let (echo, heads) = raw_origin(|_| {
        let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: x-origin-hop\r\n\
                      x-origin-hop: 1\r\nx-origin-kept: 1\r\n\r\nok";
        (vec![answer], Duration::ZERO)
    });
    let (trickle, _) = raw_origin(|_| {
        let mut chunks = vec!["HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"];
        chunks.extend(["x"; 10]);
        (chunks, Duration::from_millis(300))
    });
    let fleet =
        [DownstreamSpec::external("echo", &echo), DownstreamSpec::external("trickle", &trickle)];
    let vars = [("DEFAULT_ALGO", "round_robin".into()), ("ATTEMPT_TIMEOUT_MS", "500".into())];
    let stack = Stack::start("edges", &fleet, &vars);
    let client = client();
    let url = format!("{}/service?algo=round_robin&max_attempts=1", stack.router_url);

    let mut outcomes_seen = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let r = client
            .get(&url)
            .header("connection", "x-client-hop")
            .header("x-client-hop", "1")
            .header("proxy-authorization", "Basic c2VjcmV0")
            .header("x-forwarded-for", "10.9.9.9")
            .header("x-kept", "1")
            .send()
            .await
            .expect("answered");
        let o = Observed::of(&r, Duration::ZERO);
        let headers = r.headers().clone();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let latency = started.elapsed();
        if o.worker == "echo" {
            assert_eq!(o.status, 200, "{body}");
            assert!(
                headers.get("x-origin-hop").is_none(),
                "origin's hop header passed: {headers:?}"
            );
            assert!(headers.get("x-origin-kept").is_some(), "{headers:?}");
        } else {
            // 10 bytes 300 ms apart: the 500 ms deadline ends the attempt mid-body.
            assert_eq!((o.status, outcomes(&body)), (502, vec!["timeout".to_owned()]), "{body}");
            assert!(latency < Duration::from_millis(2500), "cut off at the deadline: {latency:?}");
        }
        outcomes_seen.push(o.worker);
    }
    outcomes_seen.sort();
    assert_eq!(outcomes_seen, ["echo", "trickle"], "round robin tried both");

    let heads = heads.lock().expect("heads").clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = &heads[0];
    // workerd consumes the client's `Connection` header before the Worker sees it, so the
    // headers it names cannot be told apart here (core's `forward` tests cover them); the fixed
    // hop-by-hop list, `Proxy-Authorization` included, is the router's to drop.
    assert!(
        !head.contains("proxy-authorization:"),
        "proxy credentials reached the origin:\n{head}"
    );
    assert!(head.contains("x-kept: 1"), "{head}");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            .unwrap_or_default()
    };
    // The client's list, then the address workerd reports for the client (CF-Connecting-IP).
    assert_eq!(header("x-forwarded-for"), "10.9.9.9, 127.0.0.1", "{head}");
    assert_eq!(header("x-forwarded-proto"), "http", "{head}");
    assert_eq!(header("forwarded"), "for=127.0.0.1;proto=http", "{head}");
    println!(
        "forwarding headers at the origin: xff={:?} forwarded={:?}",
        header("x-forwarded-for"),
        header("forwarded")
    );
}

/// `FORWARDED_TRUST=replace`: what a client claims in `X-Forwarded-For` / `Forwarded` does not
/// reach the origin; the lists hold only the address the router saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_trust_replace_drops_what_the_client_claimed() {
    let (echo, heads) =
        raw_origin(|_| (vec!["HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"], Duration::ZERO));
    let fleet = [DownstreamSpec::external("echo", &echo)];
    let vars = [("FORWARDED_TRUST", "replace".into())];
    let stack = Stack::start("fwd-replace", &fleet, &vars);
    let r = client()
        .get(format!("{}/service", stack.router_url))
        .header("x-forwarded-for", "198.51.100.1")
        .header("forwarded", "for=198.51.100.1")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let heads = heads.lock().expect("heads").clone();
    let head = heads.first().expect("the origin was reached");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            .unwrap_or_default()
    };
    assert_eq!(header("x-forwarded-for"), "127.0.0.1", "{head}");
    assert_eq!(header("forwarded"), "for=127.0.0.1;proto=http", "{head}");
}

/// `/_magnetar/fleet` and `/_magnetar/state` answer only with the admin token and list no
/// credentials (the learner's URL, the REST endpoint); `/_magnetar/health` is public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_the_admin_token_and_list_no_credentials() {
    let learner = "http://127.0.0.1:9/learner-secret-path";
    let vars = [("KAFKA_REST_URL", learner.into()), ("LEARNER_URL", learner.into())];
    let stack = Stack::start("admin", &fleet_failing(&[0]), &vars);
    let client = client();
    for path in ["/_magnetar/fleet", "/_magnetar/state"] {
        let url = format!("{}{path}", stack.router_url);
        let anonymous = client.get(&url).send().await.expect("answered");
        assert_eq!(anonymous.status().as_u16(), 401, "{path} without a token");
        assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
        let wrong = client.get(&url).bearer_auth("guess").send().await.expect("answered");
        assert_eq!(wrong.status().as_u16(), 401, "{path} with a wrong token");
        let admin = stack.admin(&client, path).send().await.expect("answered");
        assert_eq!(admin.status().as_u16(), 200, "{path} with the admin token");
        let text = admin.text().await.expect("body");
        assert!(!text.contains("learner-secret-path"), "{path} lists the learner/REST URL: {text}");
    }
    let fleet: Value =
        stack.admin(&client, "/_magnetar/fleet").send().await.unwrap().json().await.unwrap();
    let configured =
        (fleet["learner_configured"].as_bool(), fleet["telemetry_configured"].as_bool());
    assert_eq!(configured, (Some(true), Some(true)), "{fleet}");
    assert!(fleet.get("learner").is_none() && fleet.get("telemetry").is_none(), "{fleet}");
    let health = client.get(format!("{}/_magnetar/health", stack.router_url)).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "health is public");
}

/// A fleet member nobody listens on: connection errors are classified as such and retried on
/// the other downstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_are_retried_on_another_downstream() {
    let dead = format!("http://127.0.0.1:{}", magnetar_e2e::free_port());
    let fleet = [DownstreamSpec::external("dead", &dead), DownstreamSpec::failing("alive", 0)];
    let vars = [("DEFAULT_ALGO", "round_robin".into()), ("RETRY_BUDGET_PERCENT", "off".into())];
    let stack = Stack::start("connect-error", &fleet, &vars);
    let client = client();
    // One at a time: round robin's pointer moves on every selection, retries included, so on
    // [dead, alive] each request starts on the dead one and retries on the live one.
    let observed = drive(&client, &stack.router_url, "algo=round_robin", 100, 1).await;
    assert!(observed.iter().all(|o| o.success && o.worker == "alive"), "{:?}", &observed[..4]);
    assert!(observed.iter().all(|o| o.attempts == 2), "{:?}", &observed[..4]);
    assert_eq!(stack.downstream_hits(&client).await, vec![100], "the live one served each once");
    let url = format!("{}/service?algo=round_robin&max_attempts=1", stack.router_url);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (a, reply) = send(&client, &url, &[], None).await;
        seen.push((a.status, outcomes(&reply)));
    }
    assert!(seen.contains(&(502, vec!["connect_error".to_owned()])), "{seen:?}");
}

/// With a retry budget configured (10% of requests, no per-second minimum), a fleet where half
/// the first attempts fail gets only the retries the budget pays for; without one every request
/// would be retried and succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_retry_budget_caps_retries() {
    let stack = Stack::start(
        "retry-budget",
        &fleet_failing(&[100, 0]),
        &[
            ("DEFAULT_ALGO", "round_robin".into()),
            ("RETRY_BUDGET_PERCENT", "10".into()),
            ("RETRY_BUDGET_MIN_PER_SEC", "0".into()),
            ("RETRY_BUDGET_TTL_MS", "60000".into()),
        ],
    );
    let client = client();
    let observed = drive(&client, &stack.router_url, "algo=round_robin", 400, 1).await;
    let retries: u32 = observed.iter().map(|o| o.attempts.saturating_sub(1)).sum();
    // 400 requests deposit 40 retries' worth in total (all within the 60 s window); at least 200
    // first attempts fail (round robin alternates, and a retry moves its pointer on too). Retries
    // are paid for only as deposits arrive, so at most 40 happen, and nearly all 40 do.
    assert!((20..=40).contains(&retries), "retries {retries}");
    let rate = success_rate(&observed);
    assert!(rate < 0.65, "success {rate:.3}: most failed first attempts were not retried");
    let state = stack.router_state(&client).await;
    let denied = counter(&state, "retries_denied");
    assert!(denied >= 150, "retries denied {denied}: {state}");
}

/// Same-account Workers are reached through service bindings (a plain `fetch` between Workers of
/// one account fails on Cloudflare). Here the router and two downstream Workers run in one
/// `wrangler dev`, bound as on Cloudflare: requests reach both, and a bound downstream that
/// hangs is cut off at the attempt timeout and the request retried on the other, as with URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_bindings_reach_workers_and_time_out_like_urls() {
    let stack = Stack::start_bound(
        "bindings",
        &fleet_failing(&[0, 0]),
        &[("DEFAULT_ALGO", "round_robin".into()), ("ATTEMPT_TIMEOUT_MS", "500".into())],
    );
    let client = client();
    let fleet: Value = stack
        .admin(&client, "/_magnetar/fleet")
        .send()
        .await
        .expect("fleet")
        .json()
        .await
        .expect("json");
    assert_eq!(fleet["downstreams"][0]["service"], "DOWNSTREAM_1", "{fleet}");
    let url = format!("{}/service?algo=round_robin", stack.router_url);
    let bound = latency_bound(Duration::from_millis(500), baseline(&client, &url, 9).await);
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (a, reply) = send(&client, &url, &[], None).await;
        assert_eq!((a.status, a.attempts), (200, 1), "{:?}", reply);
        assert_eq!(reply["worker"], a.worker.as_str(), "the bound Worker answered itself");
        served.insert(a.worker);
    }
    assert_eq!(served.len(), 2, "both bound downstreams served: {served:?}");

    let slow =
        vec![("x-flaky-config", json!({ "downstream-1": { "delay_ms": 3000 } }).to_string())];
    let mut retried = 0;
    for _ in 0..6 {
        let (a, reply) = send(&client, &url, &slow, None).await;
        assert_eq!((a.status, a.worker.as_str()), (200, "downstream-2"), "{:?}", reply);
        assert!(a.latency < bound, "latency {:?} (bound {bound:?})", a.latency);
        if a.attempts == 2 {
            retried += 1;
            assert!(a.latency >= Duration::from_millis(450), "cut off early: {:?}", a.latency);
        }
    }
    assert!(retried >= 2, "round robin starts on the slow binding in some of six: {retried}");
}
