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
use crate::isolate::Isolate;
use crate::log;

/// Outcome of one post, for the counters.
enum Delivery {
    Stored,
    Rejected(u64),
    Failed(String),
}

async fn send(config: &TelemetryConfig, record: TelemetryRecord) -> Delivery {
    let (body, content_type) = match &config.api {
        RestApi::V2 => (serde_json::to_string(&record.into_batch()), CONTENT_TYPE_V2_JSON),
        RestApi::V3 { .. } => (serde_json::to_string(&v3_record(record)), "application/json"),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => return Delivery::Failed(format!("cannot serialize the record: {e}")),
    };
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
    let request = match request {
        Ok(r) => r,
        Err(e) => return Delivery::Failed(format!("bad request: {e}")),
    };
    let api = config.api.clone();
    let post = async move {
        let mut response =
            Fetch::Request(request).send().await.map_err(|e| format!("no answer: {e}"))?;
        let status = response.status_code();
        if status != 200 {
            return Err(format!("answered {status}"));
        }
        let text = response.text().await.map_err(|e| format!("unreadable answer: {e}"))?;
        let garbled = |e: serde_json::Error| format!("not a produce answer: {e}");
        let rejected = match api {
            RestApi::V2 => {
                serde_json::from_str::<ProduceResponse>(&text).map_err(garbled)?.failed_records(1)
            }
            RestApi::V3 { .. } => usize::from(
                serde_json::from_str::<V3ProduceResponse>(&text).map_err(garbled)?.error_code
                    != 200,
            ),
        };
        Ok(rejected as u64)
    };
    match deadline.run(post).await {
        Some(Ok(0)) => Delivery::Stored,
        Some(Ok(n)) => Delivery::Rejected(n),
        Some(Err(reason)) => Delivery::Failed(reason),
        None => Delivery::Failed(format!("no answer within {} ms", config.timeout_ms)),
    }
}

/// Posts `record` and counts the result (logging failures sparsely); never fails.
pub async fn post(isolate: Isolate, config: TelemetryConfig, record: TelemetryRecord) {
    match send(&config, record).await {
        Delivery::Stored => isolate.count(|c| c.telemetry_batches_sent += 1),
        Delivery::Rejected(n) => {
            let rejected = isolate.count(|c| {
                c.telemetry_batches_sent += 1;
                c.telemetry_records_rejected += n;
                c.telemetry_records_rejected
            });
            log::sparse_warn("telemetry records rejected by the rest proxy", rejected, "");
        }
        Delivery::Failed(reason) => {
            let failed = isolate.tally(|c| &mut c.telemetry_batches_failed);
            log::sparse_warn("telemetry post failed", failed, &reason);
        }
    }
}
