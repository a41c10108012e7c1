//! The learner's HTTP API against the real app on 127.0.0.1:0 (embedded mode).

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use magnetar_core::Outcome;
use magnetar_learner::LearnerConfig;
use magnetar_learner::auth::Access;
use serde_json::{Value, json};

#[tokio::test]
async fn malformed_telemetry_gets_documented_4xx_and_the_learner_keeps_serving() {
    let learner = InProcess::start(config()).await;
    let client = client();
    let topic_url = format!("{}/topics/magnetar-telemetry", learner.url);
    let good =
        serde_json::to_vec(&batch(&[record("ok-1", "/service", &[("a", Outcome::Success)])]))
            .unwrap();

    // Bad JSON.
    let (status, ct, body) = post(&client, &topic_url, V2_JSON, b"{\"records\": [".to_vec()).await;
    assert_eq!((status, ct.as_str()), (422, "application/vnd.kafka.v2+json"));
    assert_eq!(body["error_code"], 42201, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not valid JSON"), "{body}");

    // Not a batch.
    let (status, _, body) =
        post(&client, &topic_url, V2_JSON, br#"{"value": {"schema": 1}}"#.to_vec()).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42202)), "{body}");

    // Wrong types inside a record: the message names the record and the field.
    let mut wrong =
        serde_json::to_value(record("w", "/service", &[("a", Outcome::Success)])).unwrap();
    wrong["attempts"][0]["latency_ms"] = json!("fast");
    let (status, _, body) = post(
        &client,
        &topic_url,
        V2_JSON,
        serde_json::to_vec(&json!({"records": [{"value": wrong}]})).unwrap(),
    )
    .await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42205)), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("records[0].value: attempts[0].latency_ms"), "{message}");

    // Empty batch, and more records than allowed.
    let (status, _, body) =
        post(&client, &topic_url, V2_JSON, br#"{"records": []}"#.to_vec()).await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42203)));
    let many: Vec<_> = (0..101).map(|_| json!({"value": null})).collect();
    let (status, _, body) =
        post(&client, &topic_url, V2_JSON, serde_json::to_vec(&json!({"records": many})).unwrap())
            .await;
    assert_eq!((status, body["error_code"].clone()), (422, json!(42204)), "{body}");

    // A body above the limit.
    let records: Vec<_> = (0..400)
        .map(|i| record(&format!("big-{i}"), "/service", &[("a", Outcome::Success)]))
        .collect();
    let huge = serde_json::to_vec(&batch(&records)).unwrap();
    assert!(huge.len() > 64 * 1024);
    let (status, _, body) = post(&client, &topic_url, V2_JSON, huge).await;
    assert_eq!((status, body["error_code"].clone()), (413, json!(41300)), "{body}");

    // Wrong content type, unknown topic.
    let (status, _, body) = post(&client, &topic_url, "text/plain", good.clone()).await;
    assert_eq!((status, body["error_code"].clone()), (415, json!(41500)), "{body}");
    let (status, _, body) =
        post(&client, &format!("{}/topics/somewhere-else", learner.url), V2_JSON, good.clone())
            .await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40401)), "{body}");

    // An unknown schema version fails only its own record.
    let mut future =
        serde_json::to_value(record("f-1", "/service", &[("a", Outcome::Success)])).unwrap();
    future["schema"] = json!(99);
    let ok = record("ok-2", "/service", &[("a", Outcome::Success)]);
    let (status, ct, body) = post(
        &client,
        &topic_url,
        "application/json; charset=utf-8",
        serde_json::to_vec(
            &json!({"records": [{"value": future}, {"key": "/service", "value": ok}]}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/vnd.kafka.v2+json"), "{body}");
    assert_eq!(body["offsets"][0]["error_code"], 42206, "{body}");
    assert!(body["offsets"][0]["error"].as_str().unwrap().contains("schema 99"), "{body}");
    assert_eq!(body["offsets"][1]["error_code"], Value::Null);
    assert_eq!(body["offsets"][1]["partition"], 0);

    // Still serving: a good batch is accepted with offsets, and the rejections were counted.
    let (status, _, body) = post(&client, &topic_url, V2_JSON, good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key_schema_id"], Value::Null);
    assert!(body["offsets"][0]["offset"].as_i64().unwrap() >= 1, "{body}");
    let (status, health) = get_json(&client, &format!("{}/healthz", learner.url)).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["records_applied"], 2, "{stats}");
    assert_eq!(stats["batches"], 2, "{stats}");
    assert_eq!(stats["rejected"]["batches"], 8, "{stats}");
    assert_eq!(stats["rejected"]["records"], 1, "{stats}");
    for kind in [
        "invalid_json",
        "not_a_batch",
        "invalid_record",
        "empty_batch",
        "too_many_records",
        "body_too_large",
        "unsupported_media_type",
        "unknown_topic",
        "unsupported_schema",
    ] {
        assert_eq!(stats["rejected"]["by_kind"][kind], 1, "{kind}: {stats}");
    }
    let metrics = client.get(format!("{}/metrics", learner.url)).send().await.unwrap();
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains("magnetar_learner_records_applied_total 2"), "{text}");
    assert!(text.contains("magnetar_learner_ingest_errors_total{kind=\"body_too_large\"} 1"));
    assert!(text.contains("magnetar_learner_posterior_mean{route=\"/service\",downstream=\"a\"}"));
    learner.stop().await;
}

#[tokio::test]
async fn records_without_credentials_are_refused_and_do_not_move_the_recommendation() {
    let learner = InProcess::start(config()).await;
    let topic_url = format!("{}/topics/magnetar-telemetry", learner.url);
    let honest: Vec<_> = (0..300)
        .map(|i| {
            let (ok, bad) = (("ds-1", Outcome::Success), ("ds-2", Outcome::ServerError));
            record(&format!("h-{i}"), "/service", &[if i % 2 == 0 { ok } else { bad }])
        })
        .collect();
    for chunk in honest.chunks(100) {
        let body = serde_json::to_vec(&batch(chunk)).unwrap();
        assert_eq!(post(&client(), &topic_url, V2_JSON, body).await.0, 200);
    }
    let recommend = format!("{}/recommendation?route=/service", learner.url);
    let picks = |client: reqwest::Client| {
        let recommend = recommend.clone();
        async move {
            let mut ds1 = 0;
            for _ in 0..200 {
                let (status, rec) = get_json(&client, &recommend).await;
                assert_eq!(status, 200, "{rec}");
                ds1 += usize::from(rec["worker"] == "ds-1");
            }
            ds1
        }
    };
    assert_eq!(picks(client()).await, 200);
    // 1,500 fake records saying the opposite, without credentials.
    let bare = reqwest::Client::new();
    for b in 0..15 {
        let fake: Vec<_> = (0..100)
            .map(|i| {
                let (ok, bad) = (("ds-2", Outcome::Success), ("ds-1", Outcome::ServerError));
                record(&format!("f-{b}-{i}"), "/service", &[ok, bad][i % 2..=i % 2])
            })
            .collect();
        let body = serde_json::to_vec(&batch(&fake)).unwrap();
        let (status, _, answer) = post(&bare, &topic_url, V2_JSON, body).await;
        assert_eq!((status, answer["error_code"].clone()), (401, json!(401)), "{answer}");
    }
    // Reads without the token are refused too; with it the recommendation has not moved.
    let (status, body) = get_json(&bare, &recommend).await;
    assert_eq!((status, body["error_code"].clone()), (401, json!(40100)), "{body}");
    assert_eq!(picks(client()).await, 200);
    let (_, stats) = get_json(&client(), &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["records_applied"], 300, "{stats}");
    assert_eq!(stats["rejected"]["by_kind"]["unauthorized"], 15, "{stats}");
    learner.stop().await;
}

#[tokio::test]
async fn an_open_learner_binds_loopback_only() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let open = LearnerConfig { access: Access::Open, ..config() };
    let err = magnetar_learner::run(listener, open, async {}).await.unwrap_err();
    assert!(err.to_string().contains("loopback only"), "{err}");
}

#[tokio::test]
async fn out_of_bounds_telemetry_is_refused_naming_the_field_and_the_state_file_reloads() {
    let dir = std::env::temp_dir().join(format!("learner-bounds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let fleet: std::collections::BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
    let config = LearnerConfig {
        state_file: Some(path.clone()),
        commit_interval: Duration::from_millis(50),
        fleet: Some(std::sync::Arc::new(fleet)),
        ..config()
    };
    let learner = InProcess::start(config.clone()).await;
    let client = client();
    let topic_url = format!("{}/topics/magnetar-telemetry", learner.url);
    let v3_url =
        format!("{}/v3/clusters/magnetar-local/topics/magnetar-telemetry/records", learner.url);
    let base = serde_json::to_value(record("x", "/b", &[("a", Outcome::Success)])).unwrap();
    let spoiled = |field: &str, value: Value| {
        let mut r = base.clone();
        match field.split_once('.') {
            Some((_, f)) => r["attempts"][0][f] = value,
            None => r[field] = value,
        }
        r
    };
    let cases = [
        ("attempts.latency_ms", json!(1e308), "attempts[0].latency_ms: must be a finite number"),
        ("attempts.latency_ms", json!(-3.0), "attempts[0].latency_ms: must be a finite number"),
        ("attempts.latency_ms", json!(90_000_000.0), "attempts[0].latency_ms"),
        ("attempts.status", json!(700), "attempts[0].status: must be an HTTP status"),
        ("attempts.downstream", json!("d".repeat(129)), "attempts[0].downstream: at most 128"),
        ("final_status", json!(42), "final_status"),
        ("request_id", json!(""), "request_id: must not be empty"),
        ("route", json!("/".repeat(300)), "route: at most 256 bytes"),
        ("attempts", json!([]), "attempts: must not be empty"),
        ("started_ms", json!(u64::MAX), "started_ms: at most"),
    ];
    for (field, value, says) in cases {
        let bad = spoiled(field, value);
        let v3 = json!({"value": {"type": "JSON", "data": bad.clone()}});
        let body = serde_json::to_vec(&json!({"records": [{"value": bad}]})).unwrap();
        let (status, _, answer) = post(&client, &topic_url, V2_JSON, body).await;
        assert_eq!((status, answer["error_code"].clone()), (422, json!(42205)), "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("records[0].value: {says}")), "{field}: {message}");
        let (status, _, text) =
            post_raw(&client, &v3_url, "application/json", None, serde_json::to_vec(&v3).unwrap())
                .await;
        assert_eq!(status, 422, "{field}: {text}");
    }
    // Not even JSON can say more than f64: 1e999 is refused as well.
    let body = format!(
        r#"{{"records": [{{"value": {}}}]}}"#,
        serde_json::to_string(&base).unwrap().replace("3.0", "1e999")
    );
    let (status, _, answer) = post(&client, &topic_url, V2_JSON, body.into_bytes()).await;
    assert_eq!((status, answer["error_code"].clone()), (422, json!(42201)), "{answer}");
    // In bounds and learned; a downstream outside the fleet is counted, not stored.
    let good = record("ok", "/b", &[("evil", Outcome::Success), ("b", Outcome::Success)]);
    let (status, _, _) =
        post(&client, &topic_url, V2_JSON, serde_json::to_vec(&batch(&[good])).unwrap()).await;
    assert_eq!(status, 200);
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["records_applied"], 1, "{stats}");
    assert_eq!(stats["caps"]["observations_unknown_downstream"], 1, "{stats}");
    let downstreams = stats["routes"]["/b"]["downstreams"].as_object().unwrap();
    assert_eq!(downstreams.keys().collect::<Vec<_>>(), ["b"], "{stats}");
    learner.stop().await;

    // The state file reads back: a learner restarted from it comes back with what it learned.
    let learner = InProcess::start(config.clone()).await;
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["records_applied"], 1, "{stats}");
    learner.stop().await;

    // A state file that does not load names the field; --reset-state starts empty.
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"records_applied\":1", "\"records_applied\":null", 1))
        .unwrap();
    let err = magnetar_learner::initial_state(&config).unwrap_err().to_string();
    assert!(err.contains("records_applied: invalid type: null"), "{err}");
    assert!(err.contains("--reset-state"), "{err}");
    let reset = LearnerConfig { reset_state: true, ..config };
    let learner = InProcess::start(reset).await;
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["records_applied"], 0, "{stats}");
    learner.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn replayed_records_are_acknowledged_but_counted_once() {
    let learner = InProcess::start(config()).await;
    let client = client();
    let topic_url = format!("{}/topics/magnetar-telemetry", learner.url);
    let body =
        serde_json::to_vec(&batch(&[record("same", "/r", &[("a", Outcome::Success)])])).unwrap();
    for _ in 0..3 {
        let (status, _, _) = post(&client, &topic_url, V2_JSON, body.clone()).await;
        assert_eq!(status, 200);
    }
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(
        (stats["records_applied"].clone(), stats["duplicates"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(stats["version"], 1);
    learner.stop().await;
}

/// Plays the router against the learner: each request asks `/recommendation` per attempt
/// (excluding downstreams already tried, at most 3 attempts) and posts its telemetry.
async fn route_requests(
    client: &reqwest::Client,
    url: &str,
    fleet: &mut FlakyFleet,
    requests: usize,
    first_choices: &mut Vec<String>,
) {
    let candidates = fleet.names.join(",");
    for i in 0..requests {
        let mut attempts: Vec<(String, Outcome)> = Vec::new();
        while attempts.len() < 3 {
            let exclude: Vec<&str> = attempts.iter().map(|(d, _)| d.as_str()).collect();
            let (status, rec) = get_json(
                client,
                &format!(
                    "{url}/recommendation?route=/service&candidates={candidates}&exclude={}",
                    exclude.join(",")
                ),
            )
            .await;
            assert_eq!(status, 200, "{rec}");
            let worker = rec["worker"].as_str().unwrap().to_owned();
            assert!(!exclude.contains(&worker.as_str()), "recommended an excluded downstream");
            if attempts.is_empty() {
                first_choices.push(worker.clone());
            }
            let outcome = fleet.attempt(&worker);
            attempts.push((worker, outcome));
            if outcome.is_success() {
                break;
            }
        }
        let attempts: Vec<(&str, Outcome)> =
            attempts.iter().map(|(d, o)| (d.as_str(), *o)).collect();
        let body =
            serde_json::to_vec(&batch(&[record(&format!("req-{i}"), "/service", &attempts)]))
                .unwrap();
        let (status, _, answer) =
            post(client, &format!("{url}/topics/magnetar-telemetry"), V2_JSON, body).await;
        assert_eq!(status, 200, "{answer}");
    }
}

#[tokio::test]
async fn recommendation_converges_to_the_best_downstream() {
    let learner = InProcess::start(config()).await;
    let client = client();
    let mut fleet = FlakyFleet::standard(42);
    let mut first = Vec::new();
    route_requests(&client, &learner.url, &mut fleet, 300, &mut first).await;

    let late = &first[200..];
    let late_best = late.iter().filter(|w| *w == "downstream-3").count();
    // downstream-1 and -2 never succeed: after ~30 failures each their Beta(1, 1 + n) draws
    // rarely beat downstream-3's ~Beta(1 + 0.1 n, 1 + 0.9 n). Expected share well above 90 %.
    assert!(late_best >= 85, "downstream-3 was the first choice {late_best}/100 times late on");

    let mut picks: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..200 {
        let (_, rec) =
            get_json(&client, &format!("{}/recommendation?route=/service", learner.url)).await;
        *picks.entry(rec["worker"].as_str().unwrap().to_owned()).or_default() += 1;
        assert_eq!(rec["route"], "/service");
        assert_eq!(rec["scores"].as_object().unwrap().len(), 3);
        assert_eq!(rec["score"], rec["scores"][rec["worker"].as_str().unwrap()]);
    }
    assert!(picks.get("downstream-3").copied().unwrap_or(0) >= 190, "{picks:?}");

    let (status, params) =
        get_json(&client, &format!("{}/params?route=/service", learner.url)).await;
    assert_eq!(status, 200);
    assert_eq!(params["schema"], 1);
    assert_eq!(params["route"], "/service");
    assert_eq!(params["half_life_ms"], 60_000);
    assert_eq!(params["version"], 300);
    assert!(params["taken_ms"].as_u64().unwrap() >= now_ms() - 60_000);
    let d1 = &params["downstreams"]["downstream-1"];
    let d3 = &params["downstreams"]["downstream-3"];
    assert!(d1["successes"].as_f64().unwrap() == 0.0 && d1["failures"].as_f64().unwrap() > 5.0);
    assert!(d3["successes"].as_f64().unwrap() > 5.0, "{params}");

    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    let s3 = &stats["routes"]["/service"]["downstreams"]["downstream-3"];
    let rate = s3["success_rate"].as_f64().unwrap();
    assert!((0.03..0.2).contains(&rate), "downstream-3 success rate {rate}");
    assert_eq!(s3["latency_ms"]["p50"], 3.0);
    assert_eq!(stats["routes"]["/service"]["downstreams"]["downstream-1"]["success_rate"], 0.0);
    learner.stop().await;
}

#[tokio::test]
async fn recommendation_and_params_errors_are_clear() {
    let learner = InProcess::start(config()).await;
    let client = client();
    let u = &learner.url;
    let (status, body) = get_json(&client, &format!("{u}/recommendation?candidates=a")).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("route"), "{body}");
    let (status, body) = get_json(&client, &format!("{u}/recommendation?route=/nothing")).await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("candidates"), "{body}");
    let (status, body) =
        get_json(&client, &format!("{u}/recommendation?route=/x&candidates=a,b&exclude=b,a")).await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("excluded"), "{body}");
    // Unknown candidates get the prior; empty list items are ignored.
    let (status, body) =
        get_json(&client, &format!("{u}/recommendation?route=/x&candidates=a,,b&exclude=")).await;
    assert_eq!(status, 200);
    assert_eq!(body["scores"].as_object().unwrap().len(), 2, "{body}");
    let (status, body) = get_json(&client, &format!("{u}/params?route=/x")).await;
    assert_eq!(status, 200);
    assert_eq!(body["downstreams"], json!({}));
    assert_eq!(body["version"], 0);
    let (status, _) = get_json(&client, &format!("{u}/params")).await;
    assert_eq!(status, 400);
    let long = "/".repeat(300);
    let (status, body) = get_json(&client, &format!("{u}/params?route={long}")).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("route: at most 256"), "{body}");
    let many = vec!["a"; 1025].join(",");
    let (status, body) =
        get_json(&client, &format!("{u}/recommendation?route=/x&candidates={many}")).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().starts_with("candidates: at most 1024"), "{body}");
    let (status, body) = get_json(&client, &format!("{u}/nowhere")).await;
    assert_eq!((status, body["error_code"].clone()), (404, json!(40400)));
    learner.stop().await;
}

#[tokio::test]
async fn get_endpoints_allow_any_origin() {
    let learner = InProcess::start(config()).await;
    let client = client();
    for path in ["/stats", "/params?route=/service", "/healthz"] {
        let response = client
            .get(format!("{}{path}", learner.url))
            .header("origin", "http://127.0.0.1:8080")
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["access-control-allow-origin"], "*", "{path}");
    }
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{}/stats", learner.url))
        .header("origin", "http://127.0.0.1:8080")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    learner.stop().await;
}

#[tokio::test]
async fn the_state_file_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("learner-http-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.json");
    let _ = std::fs::remove_file(&path);
    let config = LearnerConfig {
        state_file: Some(path.clone()),
        commit_interval: Duration::from_millis(50),
        ..config()
    };
    let client = client();
    let learner = InProcess::start(config.clone()).await;
    let records: Vec<_> =
        (0..5).map(|i| record(&format!("s-{i}"), "/s", &[("a", Outcome::Success)])).collect();
    let (status, _, _) = post(
        &client,
        &format!("{}/topics/magnetar-telemetry", learner.url),
        V2_JSON,
        serde_json::to_vec(&batch(&records)).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    learner.stop().await;
    assert!(path.exists());

    let learner = InProcess::start(config).await;
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(stats["records_applied"], 5, "{stats}");
    // The request ids came back with the state: a replay is a duplicate.
    let (status, _, _) = post(
        &client,
        &format!("{}/topics/magnetar-telemetry", learner.url),
        V2_JSON,
        serde_json::to_vec(&batch(&records[..1])).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (_, stats) = get_json(&client, &format!("{}/stats", learner.url)).await;
    assert_eq!(
        (stats["records_applied"].clone(), stats["duplicates"].clone()),
        (json!(5), json!(1))
    );
    learner.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGKILL right after a 200: the batch is in the state log, and the restarted learner has it,
/// with the embedded topic's offsets going on where they were.
#[tokio::test]
async fn an_embedded_learner_killed_right_after_a_200_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("learner-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let state_arg = state.to_str().unwrap().to_owned();
    // No checkpoint in the test's lifetime: only the state log can hold the batch.
    let args = [
        "--http-addr",
        "127.0.0.1:0",
        "--token",
        TOKEN,
        "--state-file",
        &state_arg,
        "--commit-interval-ms",
        "600000",
    ];
    let client = client();
    let (mut first, addr) =
        ChildProcess::spawn("learner-kill", &learner_bin(), &args, Some("learner listening"));
    let base = format!("http://{}", addr.unwrap());
    let records: Vec<_> =
        (0..100).map(|i| record(&format!("k-{i}"), "/k", &[("a", Outcome::Success)])).collect();
    let body = serde_json::to_vec(&batch(&records)).unwrap();
    let (status, _, answer) =
        post(&client, &format!("{base}/topics/magnetar-telemetry"), V2_JSON, body).await;
    assert_eq!(status, 200, "{answer}");
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert!(!state.exists(), "a checkpoint was written: the test would not show the log");

    let (second, addr) =
        ChildProcess::spawn("learner-kill-2", &learner_bin(), &args, Some("learner listening"));
    let base = format!("http://{}", addr.unwrap());
    let (_, stats) = get_json(&client, &format!("{base}/stats")).await;
    assert_eq!(stats["records_applied"], 100, "{stats}\n{}", second.log_text());
    // Offsets survive the restart; the same batch again is a duplicate, not new learning.
    let body = serde_json::to_vec(&batch(&records[..1])).unwrap();
    let (status, _, answer) =
        post(&client, &format!("{base}/topics/magnetar-telemetry"), V2_JSON, body).await;
    assert_eq!((status, answer["offsets"][0]["offset"].clone()), (200, json!(100)), "{answer}");
    let (_, stats) = get_json(&client, &format!("{base}/stats")).await;
    assert_eq!(
        (stats["records_applied"].clone(), stats["duplicates"].clone()),
        (json!(100), json!(1))
    );
    // A graceful stop checkpoints, and the next start comes back from the checkpoint alone.
    second.signal("TERM");
    let mut second = second;
    assert!(second.wait_exit(Duration::from_secs(20)).success(), "{}", second.log_text());
    assert!(state.exists());
    let (third, addr) =
        ChildProcess::spawn("learner-kill-3", &learner_bin(), &args, Some("learner listening"));
    let base = format!("http://{}", addr.unwrap());
    let (_, stats) = get_json(&client, &format!("{base}/stats")).await;
    assert_eq!(stats["records_applied"], 100, "{stats}\n{}", third.log_text());
    drop(third);
    std::fs::remove_dir_all(&dir).unwrap();
}
