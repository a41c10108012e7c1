//! Telemetry: what a router reports about each client request, and the Kafka REST proxy v2
//! envelope it travels in.
//!
//! One client request produces one [`TelemetryRecord`] (schema [`TELEMETRY_SCHEMA`]) holding every
//! attempt. The router posts it as a one-record batch to `POST /topics/{topic}` with
//! `Content-Type: application/vnd.kafka.json.v2+json`, the Confluent REST Proxy v2 produce API
//! (also spoken by Karapace, Redpanda's HTTP proxy and the learner's embedded ingest):
//!
//! ```json
//! {"records": [{"key": "/service", "value": { ...TelemetryRecord... }}]}
//! ```
//!
//! The proxy answers `{"key_schema_id": null, "value_schema_id": null, "offsets":
//! [{"partition": 0, "offset": 42, "error_code": null, "error": null}]}`; a record whose
//! `error_code` is set was not stored. The record key is the route, so one route's records keep
//! their order within a partition.

use serde::{Deserialize, Serialize};

use crate::Outcome;

/// Version of [`TelemetryRecord`]'s layout. Bumped on any incompatible change; readers reject
/// versions they do not know.
pub const TELEMETRY_SCHEMA: u32 = 1;
/// The v2 JSON embedded-format content type.
pub const CONTENT_TYPE_V2_JSON: &str = "application/vnd.kafka.json.v2+json";
/// The v2 response content type.
pub const CONTENT_TYPE_V2: &str = "application/vnd.kafka.v2+json";
/// Default topic for telemetry.
pub const DEFAULT_TOPIC: &str = "magnetar-telemetry";

/// One attempt of a request, as reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptTelemetry {
    /// Downstream name (from the fleet).
    pub downstream: String,
    /// HTTP status, when the downstream answered.
    pub status: Option<u16>,
    pub outcome: Outcome,
    pub latency_ms: f64,
    /// Whether the attempt was a hedge, sent while another attempt of the request was in flight
    /// (absent in records of routers that do not hedge: false).
    #[serde(default)]
    pub hedged: bool,
}

/// Everything the router reports about one client request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TelemetryRecord {
    /// Always [`TELEMETRY_SCHEMA`] when written by this version.
    pub schema: u32,
    /// Unique per request (the router's `x-magnetar-request-id`).
    pub request_id: String,
    /// From `x-magnetar-client-id` or `X-Caller-ID`, when the client sent one.
    pub caller_id: Option<String>,
    /// The learning route: the configured route the path belongs to (`ROUTES`), else the path
    /// itself, e.g. `/service`.
    pub route: String,
    /// Wire name of the strategy that chose the downstreams.
    pub strategy: String,
    /// Identifies the router isolate that served the request.
    pub router_instance: String,
    /// Router clock (ms since the Unix epoch) when the request arrived.
    pub started_ms: u64,
    /// Router clock when the answer was ready.
    pub finished_ms: u64,
    /// Attempts in order; never empty for a request that reached the fleet.
    pub attempts: Vec<AttemptTelemetry>,
    /// Outcome of the final attempt (what the client got).
    pub final_outcome: Outcome,
    /// Status the client got.
    pub final_status: u16,
    /// The pool that served the request, when the router's configuration has pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The experiment the request took part in (its id), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// The experiment's variant that served the request (with `experiment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Standard base64 with padding (RFC 4648 section 4), by the `base64` crate.
pub fn base64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// The credentials part of an HTTP basic `Authorization` header (RFC 7617): what the router
/// sends to the REST proxy and what the learner's produce API expects.
pub fn basic_auth_token(user: &str, password: &str) -> String {
    base64(format!("{user}:{password}").as_bytes())
}

/// One record of a v2 produce request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProduceRecord<V> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<serde_json::Value>,
    pub value: V,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
}

/// The body of `POST /topics/{topic}` in the v2 JSON embedded format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProduceRequest<V> {
    pub records: Vec<ProduceRecord<V>>,
}

/// Per-record result in a v2 produce response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProduceOffset {
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub error_code: Option<i32>,
    pub error: Option<String>,
}

/// The answer to a v2 produce request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProduceResponse {
    pub key_schema_id: Option<i32>,
    pub value_schema_id: Option<i32>,
    pub offsets: Vec<ProduceOffset>,
}

impl ProduceResponse {
    /// Number of the `sent` records the proxy did not confirm: those it answered with an
    /// `error_code`, plus any it did not answer for at all (a reply with fewer offsets than
    /// records sent has not stored the missing ones as far as the sender can tell).
    pub fn failed_records(&self, sent: usize) -> usize {
        let refused = self.offsets.iter().filter(|o| o.error_code.is_some()).count();
        refused + sent.saturating_sub(self.offsets.len())
    }
}

impl TelemetryRecord {
    /// Wraps this record as a one-record v2 produce batch keyed by route.
    pub fn into_batch(self) -> ProduceRequest<TelemetryRecord> {
        let key = Some(serde_json::Value::String(self.route.clone()));
        ProduceRequest { records: vec![ProduceRecord { key, value: self, partition: None }] }
    }
}

/// A typed payload of a Confluent v3 produce request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct V3Data<V> {
    /// Always `"JSON"` here.
    #[serde(rename = "type")]
    pub kind: String,
    pub data: V,
}

/// The body of `POST /v3/clusters/{cluster}/topics/{topic}/records` (Confluent Cloud).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct V3ProduceRecord<V> {
    pub key: V3Data<String>,
    pub value: V3Data<V>,
}

/// The part of a v3 produce answer that says whether the record was stored (`error_code` 200).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct V3ProduceResponse {
    pub error_code: i32,
    #[serde(default)]
    pub partition_id: Option<i32>,
    #[serde(default)]
    pub offset: Option<i64>,
}

/// Wraps a record for the v3 API, keyed by route like the v2 batch.
pub fn v3_record(record: TelemetryRecord) -> V3ProduceRecord<TelemetryRecord> {
    V3ProduceRecord {
        key: V3Data { kind: "JSON".into(), data: record.route.clone() },
        value: V3Data { kind: "JSON".into(), data: record },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> TelemetryRecord {
        TelemetryRecord {
            schema: TELEMETRY_SCHEMA,
            request_id: "r-1".into(),
            caller_id: Some("client-a".into()),
            route: "/service".into(),
            strategy: "round_robin".into(),
            router_instance: "iso-1".into(),
            started_ms: 1_000,
            finished_ms: 1_012,
            attempts: vec![
                AttemptTelemetry {
                    downstream: "downstream-1".into(),
                    status: Some(500),
                    outcome: Outcome::ServerError,
                    latency_ms: 4.5,
                    hedged: false,
                },
                AttemptTelemetry {
                    downstream: "downstream-3".into(),
                    status: Some(200),
                    outcome: Outcome::Success,
                    latency_ms: 6.0,
                    hedged: true,
                },
            ],
            final_outcome: Outcome::Success,
            final_status: 200,
            pool: None,
            experiment: None,
            variant: None,
        }
    }

    #[test]
    fn batch_matches_the_rest_proxy_v2_shape() {
        let json = serde_json::to_value(sample().into_batch()).unwrap();
        assert_eq!(json["records"][0]["key"], "/service");
        assert_eq!(json["records"][0]["value"]["attempts"][0]["outcome"], "server_error");
        assert!(json["records"][0].get("partition").is_none());
        assert_eq!(json["records"][0]["value"]["attempts"][1]["hedged"], true);
        let back: ProduceRequest<TelemetryRecord> = serde_json::from_value(json).unwrap();
        assert_eq!(back.records[0].value, sample());
    }

    #[test]
    fn pool_experiment_and_variant_are_optional_and_round_trip() {
        let plain = serde_json::to_value(sample()).unwrap();
        assert!(plain.get("pool").is_none() && plain.get("experiment").is_none(), "{plain}");
        let tagged = TelemetryRecord {
            pool: Some("api".into()),
            experiment: Some("exp-1".into()),
            variant: Some("control".into()),
            ..sample()
        };
        let json = serde_json::to_value(&tagged).unwrap();
        assert_eq!(
            (json["pool"].as_str(), json["variant"].as_str()),
            (Some("api"), Some("control"))
        );
        let back: TelemetryRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, tagged);
        // Records of routers that do not know these fields still parse.
        let old: TelemetryRecord = serde_json::from_value(plain).unwrap();
        assert_eq!(old.experiment, None);
    }

    #[test]
    fn v3_record_uses_typed_json_payloads() {
        let json = serde_json::to_value(v3_record(sample())).unwrap();
        assert_eq!(json["key"], serde_json::json!({"type": "JSON", "data": "/service"}));
        assert_eq!(json["value"]["type"], "JSON");
        assert_eq!(json["value"]["data"]["request_id"], "r-1");
        let resp: V3ProduceResponse = serde_json::from_str(
            r#"{"error_code":200,"cluster_id":"c","partition_id":0,"offset":7}"#,
        )
        .unwrap();
        assert_eq!(resp.offset, Some(7));
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain:?}");
        }
        // RFC 7617's example.
        assert_eq!(basic_auth_token("Aladdin", "open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn produce_response_counts_failed_records() {
        let resp: ProduceResponse = serde_json::from_str(
            r#"{"key_schema_id":null,"value_schema_id":null,"offsets":[
                {"partition":0,"offset":1,"error_code":null,"error":null},
                {"partition":null,"offset":null,"error_code":50002,"error":"broker down"}]}"#,
        )
        .unwrap();
        assert_eq!(resp.failed_records(2), 1);
        // Records the reply does not mention were not confirmed either.
        assert_eq!(resp.failed_records(3), 2);
        let empty: ProduceResponse =
            serde_json::from_str(r#"{"key_schema_id":null,"value_schema_id":null,"offsets":[]}"#)
                .unwrap();
        assert_eq!(empty.failed_records(1), 1);
    }
}
