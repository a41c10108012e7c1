//! Posting one telemetry batch per client request to a Kafka REST proxy.
//!
//! Runs inside `ctx.wait_until`, after the response has gone to the client, under the
//! configured deadline. The proxy's per-record `error_code` is checked. Failures are counted in
//! the isolate's counters and never reach the client.

use magnetar_core::config::{RestApi, TelemetryConfig};
use magnetar_core::telemetry::{
    CONTENT_TYPE_V2, CONTENT_TYPE_V2_JSON, ProduceResponse, TelemetryRecord, V3ProduceResponse,
    basic_auth_token, v3_record,
};
use worker::{Fetch, Headers, Method, Request, RequestInit};

use crate::deadline::Deadline;
use crate::isolate;

/// Outcome of one post, for the counters.
enum Delivery {
    Stored,
    Rejected(u64),
    Failed,
}

async fn send(config: &TelemetryConfig, record: TelemetryRecord) -> Delivery {
    let (body, content_type) = match &config.api {
        RestApi::V2 => (serde_json::to_string(&record.into_batch()), CONTENT_TYPE_V2_JSON),
        RestApi::V3 { .. } => (serde_json::to_string(&v3_record(record)), "application/json"),
    };
    let Ok(body) = body else { return Delivery::Failed };
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    let accept = match config.api {
        RestApi::V2 => CONTENT_TYPE_V2,
        RestApi::V3 { .. } => "application/json",
    };
    let _ = headers.set("accept", accept);
    if let Some((user, password)) = &config.basic_auth {
        let token = basic_auth_token(user, password);
        let _ = headers.set("authorization", &format!("Basic {token}"));
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
    let deadline = Deadline::new(config.timeout_ms);
    let request =
        Request::new_with_init(&config.endpoint(), &init).and_then(|r| deadline.attach(&r));
    let Ok(request) = request else {
        return Delivery::Failed;
    };
    let api = config.api.clone();
    let post = async move {
        let mut response = Fetch::Request(request).send().await.ok()?;
        if response.status_code() != 200 {
            return None;
        }
        let text = response.text().await.ok()?;
        let rejected = match api {
            RestApi::V2 => serde_json::from_str::<ProduceResponse>(&text).ok()?.failed_records(1),
            RestApi::V3 { .. } => usize::from(
                serde_json::from_str::<V3ProduceResponse>(&text).ok()?.error_code != 200,
            ),
        };
        Some(rejected as u64)
    };
    match deadline.run(post).await.flatten() {
        Some(0) => Delivery::Stored,
        Some(n) => Delivery::Rejected(n),
        None => Delivery::Failed,
    }
}

/// Posts `record` and counts the result; never fails.
pub async fn post(config: TelemetryConfig, record: TelemetryRecord) {
    let delivery = send(&config, record).await;
    isolate::count(|c| match delivery {
        Delivery::Stored => c.telemetry_batches_sent += 1,
        Delivery::Rejected(n) => {
            c.telemetry_batches_sent += 1;
            c.telemetry_records_rejected += n;
        }
        Delivery::Failed => c.telemetry_batches_failed += 1,
    });
}
