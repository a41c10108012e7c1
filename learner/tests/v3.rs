//! The Confluent v3 produce API, basic auth and the state caps, against the real app on
//! 127.0.0.1:0 (embedded mode).

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use magnetar_core::Outcome;
use magnetar_core::telemetry::{V3ProduceResponse, v3_record};
use magnetar_learner::LearnerConfig;
use magnetar_learner::auth::BasicAuth;
use serde_json::{Value, json};

const JSON: &str = "application/json";

fn v3_url(base: &str, cluster: &str, topic: &str) -> String {
    format!("{base}/v3/clusters/{cluster}/topics/{topic}/records")
}

/// The body the router posts in v3 mode (`KAFKA_REST_API=v3`).
fn router_body(id: &str, route: &str) -> Vec<u8> {
    serde_json::to_vec(&v3_record(record(id, route, &[("a", Outcome::Success)]))).unwrap()
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn one_record_is_stored_and_answered_like_confluent() {
    let learner = InProcess::start(config()).await;
    let client = client();
    let url = v3_url(&learner.url, "magnetar-local", "magnetar-telemetry");
    for (i, id) in ["v3-1", "v3-2"].iter().enumerate() {
        let body = router_body(id, "/service");
        let value_size = serde_json::to_vec(&record(id, "/service", &[])).unwrap().len();
        let (status, headers, text) = post_raw(&client, &url, JSON, None, body).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(headers["content-type"], JSON);
        let answer = parse(&text);
        assert_eq!(answer["error_code"], 200, "{answer}");
        assert_eq!(answer["cluster_id"], "magnetar-local");
        assert_eq!(answer["topic_name"], "magnetar-telemetry");
        assert_eq!(answer["partition_id"], 0);
        assert_eq!(answer["offset"], i as u64);
        assert_eq!(answer["key"], json!({"type": "JSON", "size": "\"/service\"".len()}));
        assert_eq!(answer["value"]["type"], "JSON");
        // The record as stored is the one posted (one attempt more than the sizing record).
        assert!(answer["value"]["size"].as_u64().unwrap() > value_size as u64, "{answer}");
        let timestamp = answer["timestamp"].as_str().unwrap();
        assert!(timestamp.len() == 24 && timestamp.ends_with('Z') && timestamp.starts_with("20"));
        assert_eq!(&timestamp[10..11], "T", "{timestamp}");
        // What the router's v3 mode reads: stored.
        let seen: V3ProduceResponse = serde_json::from_str(&text).unwrap();
        assert_eq!((seen.error_code, seen.offset), (200, Some(i as i64)));
    }
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["records_applied"], 2, "{stats}");
    assert_eq!(stats["records_accepted"], 2, "{stats}");
    // v2 and v3 share the embedded topic's offsets.
    let v2 = serde_json::to_vec(&batch(&[record("v2-1", "/service", &[("a", Outcome::Success)])]))
        .unwrap();
    let (_, _, body) =
        post(&client, &format!("{}/topics/magnetar-telemetry", learner.url), V2_JSON, v2).await;
    assert_eq!(body["offsets"][0]["offset"], 2, "{body}");
    learner.stop().await;
}

#[tokio::test]
async fn a_stream_gets_one_result_per_record_in_order() {
    let learner = InProcess::start(config()).await;
    let client = client();
    let url = v3_url(&learner.url, "magnetar-local", "magnetar-telemetry");
    let mut bad = serde_json::to_value(v3_record(record("bad", "/s", &[]))).unwrap();
    bad["value"]["data"]["finished_ms"] = json!("late");
    let mut body = router_body("s-1", "/s");
    body.extend_from_slice(b"\n");
    body.extend(serde_json::to_vec(&bad).unwrap());
    body.extend(router_body("s-2", "/s"));
    body.extend_from_slice(br#" {"value": {"type": "BINARY", "data": "e30="}}"#);
    body.extend_from_slice(br#"{"partition_id": 4, "value": {"type": "JSON", "data": "#);
    body.extend(serde_json::to_vec(&record("s-3", "/s", &[("a", Outcome::Success)])).unwrap());
    body.extend_from_slice(b"}}\n{\"value\": ");
    let (status, _, text) = post_raw(&client, &url, JSON, None, body).await;
    assert_eq!(status, 200, "{text}");
    let results: Vec<Value> = text.lines().map(parse).collect();
    let codes: Vec<u64> = results.iter().map(|r| r["error_code"].as_u64().unwrap()).collect();
    assert_eq!(codes, [200, 422, 200, 422, 404, 400], "{text}");
    assert_eq!((results[0]["offset"].clone(), results[2]["offset"].clone()), (json!(0), json!(1)));
    assert!(
        results[1]["message"]
            .as_str()
            .unwrap()
            .contains("value.data: not a telemetry record: finished_ms"),
        "{text}"
    );
    assert!(results[3]["message"].as_str().unwrap().contains("BINARY"), "{text}");
    assert!(results[4]["message"].as_str().unwrap().contains("partition 4"), "{text}");
    assert!(results[1].get("offset").is_none());
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["records_applied"], 2, "{stats}");
    assert_eq!(stats["rejected"]["records"], 4, "{stats}");
    assert_eq!(stats["rejected"]["by_kind"]["unknown_partition"], 1, "{stats}");
    learner.stop().await;
}

#[tokio::test]
async fn whole_request_errors_have_confluent_statuses_and_the_learner_keeps_serving() {
    let learner = InProcess::start(config()).await;
    let client = client();
    let base = &learner.url;
    let url = v3_url(base, "magnetar-local", "magnetar-telemetry");
    let good = router_body("ok", "/service");
    let check = |(status, headers, text): (u16, reqwest::header::HeaderMap, String),
                 want: u16,
                 says: &str| {
        assert_eq!(status, want, "{text}");
        assert_eq!(headers["content-type"], JSON, "{text}");
        let body = parse(&text);
        assert_eq!(body["error_code"], want, "{body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    };
    let other_cluster = v3_url(base, "lkc-other", "magnetar-telemetry");
    check(post_raw(&client, &other_cluster, JSON, None, good.clone()).await, 404, "lkc-other");
    let other_topic = v3_url(base, "magnetar-local", "elsewhere");
    check(post_raw(&client, &other_topic, JSON, None, good.clone()).await, 404, "elsewhere");
    check(post_raw(&client, &url, V2_JSON, None, good.clone()).await, 415, "application/json");
    check(post_raw(&client, &url, "text/plain", None, good.clone()).await, 415, "text/plain");
    let mut huge = Vec::new();
    while huge.len() <= 64 * 1024 {
        huge.extend(router_body(&format!("big-{}", huge.len()), "/service"));
    }
    check(post_raw(&client, &url, JSON, None, huge).await, 413, "larger than");
    check(post_raw(&client, &url, JSON, None, b"{\"value\": ".to_vec()).await, 400, "JSON");
    check(post_raw(&client, &url, JSON, None, b" \n".to_vec()).await, 400, "no record");
    check(post_raw(&client, &url, JSON, None, b"[1]".to_vec()).await, 400, "object");
    let mut wrong = serde_json::to_value(v3_record(record("w", "/s", &[]))).unwrap();
    wrong["value"]["data"]["attempts"] = json!("none");
    let wrong = serde_json::to_vec(&wrong).unwrap();
    check(
        post_raw(&client, &url, JSON, None, wrong).await,
        422,
        "value.data: not a telemetry record: attempts",
    );
    let mut future = serde_json::to_value(v3_record(record("f", "/s", &[]))).unwrap();
    future["value"]["data"]["schema"] = json!(9);
    let future = serde_json::to_vec(&future).unwrap();
    check(post_raw(&client, &url, JSON, None, future).await, 422, "schema 9");
    let many: Vec<u8> = (0..101).flat_map(|i| router_body(&format!("m-{i}"), "/s")).collect();
    check(post_raw(&client, &url, JSON, None, many).await, 422, "more than 100");

    // Still serving.
    let (status, _, text) =
        post_raw(&client, &url, "application/json; charset=utf-8", None, good).await;
    assert_eq!((status, parse(&text)["error_code"].clone()), (200, json!(200)), "{text}");
    let (_, stats) = get_json(&client, &format!("{base}/stats")).await;
    assert_eq!(stats["records_applied"], 1, "{stats}");
    assert_eq!(stats["rejected"]["batches"], 11, "{stats}");
    for (kind, n) in [
        ("unknown_cluster", 1),
        ("unknown_topic", 1),
        ("unsupported_media_type", 2),
        ("body_too_large", 1),
        ("invalid_json", 1),
        ("empty_batch", 1),
        ("not_a_record", 1),
        ("invalid_record", 1),
        ("unsupported_schema", 1),
        ("too_many_records", 1),
    ] {
        assert_eq!(stats["rejected"]["by_kind"][kind], n, "{kind}: {stats}");
    }
    learner.stop().await;
}

#[tokio::test]
async fn produce_takes_the_token_or_basic_auth_and_reads_take_the_token() {
    let config = LearnerConfig { basic_auth: Some(BasicAuth::new("router", "s3cret")), ..config() };
    let learner = InProcess::start(config).await;
    // No default credentials: each request says what it presents.
    let client = reqwest::Client::new();
    let base = &learner.url;
    let v3 = v3_url(base, "magnetar-local", "magnetar-telemetry");
    let v2 = format!("{base}/topics/magnetar-telemetry");
    let v2_body =
        serde_json::to_vec(&batch(&[record("b-1", "/s", &[("a", Outcome::Success)])])).unwrap();
    let denied = [None, Some(("router", "wrong")), Some(("other", "s3cret")), Some(("router", ""))];
    for auth in denied {
        for (url, content_type, body) in
            [(&v3, JSON, router_body("a-1", "/s")), (&v2, V2_JSON, v2_body.clone())]
        {
            let (status, headers, text) = post_raw(&client, url, content_type, auth, body).await;
            assert_eq!(status, 401, "{auth:?} {url}: {text}");
            assert_eq!(headers["www-authenticate"], "Basic realm=\"magnetar\"");
            let body = parse(&text);
            assert_eq!(body["error_code"], 401, "{body}");
            assert!(!text.contains("s3cret"), "{text}");
        }
    }
    // A bearer token that is not the learner's is refused too.
    let response = client
        .post(&v3)
        .header("content-type", JSON)
        .bearer_auth("s3cret")
        .body(router_body("a-2", "/s"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let ok = Some(("router", "s3cret"));
    let (status, _, text) = post_raw(&client, &v3, JSON, ok, router_body("a-3", "/s")).await;
    assert_eq!((status, parse(&text)["error_code"].clone()), (200, json!(200)), "{text}");
    let (status, _, text) = post_raw(&client, &v2, V2_JSON, ok, v2_body).await;
    assert_eq!(status, 200, "{text}");
    // The learner's token is accepted by the produce APIs as well.
    let response = client
        .post(&v3)
        .header("content-type", JSON)
        .bearer_auth(TOKEN)
        .body(router_body("a-4", "/s"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Reads need the token (basic auth is for produce only); /healthz and /metrics are public.
    for path in ["/stats", "/params?route=/s", "/recommendation?route=/s"] {
        let url = format!("{base}{path}");
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"magnetar\"");
        let response = client.get(&url).basic_auth("router", Some("s3cret")).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let response = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    for path in ["/healthz", "/metrics"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let (_, stats) = get_json(&common::client(), &format!("{base}/stats")).await;
    assert_eq!(stats["records_applied"], 3, "{stats}");
    assert_eq!(stats["rejected"]["by_kind"]["unauthorized"], 9, "{stats}");
    learner.stop().await;
}

#[tokio::test]
async fn routes_and_downstreams_beyond_the_caps_are_counted_not_learned() {
    let config = LearnerConfig { max_routes: 2, max_downstreams_per_route: 2, ..config() };
    let learner = InProcess::start(config).await;
    let client = client();
    let base = &learner.url;
    let records = [
        record("c-1", "/a", &[("d1", Outcome::Success)]),
        record("c-2", "/b", &[("d1", Outcome::Success)]),
        record("c-3", "/spam-1", &[("d1", Outcome::Success)]),
        record("c-4", "/spam-2", &[("d1", Outcome::Success)]),
        record("c-5", "/a", &[("d2", Outcome::ServerError), ("d3", Outcome::Success)]),
    ];
    let body = serde_json::to_vec(&batch(&records)).unwrap();
    let (status, _, answer) =
        post(&client, &format!("{base}/topics/magnetar-telemetry"), V2_JSON, body).await;
    // Acknowledged: the records are in the log; not learning them is the learner's policy.
    assert_eq!(status, 200, "{answer}");
    assert!(answer["offsets"].as_array().unwrap().iter().all(|o| o["error_code"].is_null()));
    let (_, stats) = get_json(&client, &format!("{base}/stats")).await;
    let caps = &stats["caps"];
    assert_eq!(caps["routes"], 2, "{stats}");
    assert_eq!(caps["records_refused"], 2, "{stats}");
    assert_eq!(caps["observations_refused"], 1, "{stats}");
    assert_eq!(caps["max_routes"], 2, "{stats}");
    assert_eq!(stats["records_applied"], 3, "{stats}");
    let downstreams = stats["routes"]["/a"]["downstreams"].as_object().unwrap();
    assert_eq!(downstreams.keys().collect::<Vec<_>>(), ["d1", "d2"], "{stats}");
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    for line in [
        "magnetar_learner_capped_records_total 2",
        "magnetar_learner_capped_observations_total 1",
        "magnetar_learner_routes 2",
        "magnetar_learner_max_routes 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    assert!(!metrics.contains("spam"), "capped routes must not become label values");
    learner.stop().await;
}

#[tokio::test]
async fn metrics_export_summaries_with_sum_and_count_and_checkpoint_failures() {
    let learner = InProcess::start(config()).await;
    let client = client();
    let records: Vec<_> =
        (0..4).map(|i| record(&format!("m-{i}"), "/m", &[("a", Outcome::Success)])).collect();
    let body = serde_json::to_vec(&batch(&records)).unwrap();
    post(&client, &format!("{}/topics/magnetar-telemetry", learner.url), V2_JSON, body).await;
    let metrics =
        client.get(format!("{}/metrics", learner.url)).send().await.unwrap().text().await.unwrap();
    let labels = "route=\"/m\",downstream=\"a\"";
    for line in [
        "# TYPE magnetar_learner_latency_ms summary".to_owned(),
        format!("magnetar_learner_latency_ms_sum{{{labels}}} 12"),
        format!("magnetar_learner_latency_ms_count{{{labels}}} 4"),
        format!("magnetar_learner_latency_ms{{{labels},quantile=\"0.5\"}} 3"),
        "# TYPE magnetar_learner_checkpoint_failures_total counter".to_owned(),
        "magnetar_learner_checkpoint_failures_total 0".to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
    }
    // Embedded mode has no consumer: no consumer gauges, and /healthz is plain.
    assert!(!metrics.contains("kafka_consumer_up"));
    let (status, health) = get_json(&client, &format!("{}/healthz", learner.url)).await;
    assert_eq!((status, health), (200, json!({"status": "ok", "mode": "embedded"})));
    learner.stop().await;
}
