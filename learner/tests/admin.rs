//! Property tests of the admin API's HTTP boundary, on an in-process learner (SQLite in memory):
//! any body posted to a resource, any `Authorization` header, any audit `limit` is answered
//! with a success or a 4xx that says what was wrong, never a 5xx or a dropped connection; and a
//! body the API accepted is served back as the same resource.

// Test support: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{InProcess, TOKEN, config};
use proptest::prelude::*;
use serde_json::{Value, json};

struct Harness {
    runtime: tokio::runtime::Runtime,
    learner: InProcess,
    client: reqwest::Client,
    write_key: String,
}

fn harness() -> Harness {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let learner = runtime.block_on(InProcess::start(config()));
    let client = reqwest::Client::new();
    let write_key = runtime.block_on(async {
        let url = format!("{}/v1/keys", learner.url);
        let response = client
            .post(url)
            .bearer_auth(TOKEN)
            .json(&json!({"scope": "write"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["secret"].as_str().unwrap().to_owned()
    });
    Harness { runtime, learner, client, write_key }
}

impl Harness {
    fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        self.runtime.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }
}

/// JSON resembling the resources: the right field names with arbitrary values.
fn body() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..200).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "[ -~]{0,10}".prop_map(Value::String),
        prop_oneof![Just("/api/*"), Just("thompson"), Just("AMS"), Just("running"), Just("p1")]
            .prop_map(|s| json!(s)),
    ];
    let value = leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("name".to_owned()),
                    Just("algo".to_owned()),
                    Just("percent".to_owned()),
                    Just("caller".to_owned()),
                    Just("colo".to_owned()),
                ],
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map(
        prop_oneof![
            Just("name"),
            Just("id"),
            Just("routes"),
            Just("downstreams"),
            Just("algo"),
            Just("max_attempts"),
            Just("pool"),
            Just("state"),
            Just("sticky"),
            Just("variants"),
            Just("feature"),
            Just("percent"),
            Just("rules"),
            Just("extra"),
        ]
        .prop_map(str::to_owned),
        value,
        0..8,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Every answer to a body is 201, or a 4xx whose `field` and message say what was wrong; an
/// accepted body is served back as the resource it validated to.
#[test]
fn any_body_is_answered_with_a_resource_or_a_4xx_naming_its_field() {
    let h = harness();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 192,
        ..Default::default()
    });
    let kinds = prop_oneof![Just("pools"), Just("experiments"), Just("gates")];
    runner
        .run(&(kinds, body()), |(kind, body)| {
            let url = format!("{}/v1/{kind}", h.learner.url);
            let (status, answer) =
                h.send(h.client.post(&url).bearer_auth(&h.write_key).json(&body));
            match status {
                201 => {
                    let id = answer[if kind == "pools" { "name" } else { "id" }].as_str().unwrap();
                    let (status, again) =
                        h.send(h.client.get(format!("{url}/{id}")).bearer_auth(&h.write_key));
                    prop_assert_eq!(status, 200);
                    prop_assert_eq!(&again, &answer);
                }
                400 | 409 | 422 => {
                    let field = answer["field"].as_str().unwrap_or_default();
                    let message = answer["message"].as_str().unwrap_or_default();
                    prop_assert!(!field.is_empty() && message.starts_with(field), "{}", answer);
                }
                other => prop_assert!(false, "{kind}: {other} for {body}: {answer}"),
            }
            Ok(())
        })
        .unwrap();
    h.runtime.block_on(h.learner.stop());
}

/// Any `Authorization` value is 401 unless it is `Bearer` and the learner token; any `limit`
/// is a page of the audit log or a 422 naming `limit`.
#[test]
fn credentials_and_queries_are_checked() {
    let h = harness();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 128,
        ..Default::default()
    });
    let header = prop_oneof![
        "[ -~]{0,40}",
        "mgk_[0-9a-f]{64}".prop_map(|s| format!("Bearer {s}")),
        Just(format!("Bearer {TOKEN}")),
        Just(format!("bearer   {TOKEN} ")),
    ];
    runner
        .run(&(header, "[ -~]{0,6}"), |(header, limit)| {
            let url = format!("{}/v1/audit", h.learner.url);
            let request =
                h.client.get(&url).header("authorization", &header).query(&[("limit", &limit)]);
            let (status, answer) = h.send(request);
            let trimmed = header.trim();
            let authorized = trimmed.len() > 7
                && trimmed[..7].eq_ignore_ascii_case("bearer ")
                && trimmed[7..].trim() == TOKEN;
            if !authorized {
                prop_assert_eq!(status, 401, "{:?}: {}", header, answer);
                return Ok(());
            }
            let valid = limit.parse::<u32>().is_ok_and(|n| (1..=1000).contains(&n));
            if valid {
                prop_assert_eq!(status, 200, "{}", answer);
                prop_assert!(
                    answer["entries"].as_array().unwrap().len() <= limit.parse::<usize>().unwrap()
                );
            } else {
                prop_assert_eq!(
                    (status, answer["field"].as_str()),
                    (422, Some("limit")),
                    "{:?}",
                    limit
                );
            }
            Ok(())
        })
        .unwrap();
    h.runtime.block_on(h.learner.stop());
}
