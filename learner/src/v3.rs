//! The Confluent REST v3 produce API (`POST /v3/clusters/{cluster_id}/topics/{topic}/records`,
//! what Confluent Cloud offers and the router speaks with `KAFKA_REST_API=v3`): parsing the
//! request body and the shapes of the answer. Sans-io and total, like [`crate::ingest`].
//!
//! A body (`Content-Type: application/json`) holds one record, or several records as a JSON
//! stream (concatenated, whitespace between them allowed: Confluent's streaming mode):
//!
//! ```json
//! {"key": {"type": "JSON", "data": "/service"},
//!  "value": {"type": "JSON", "data": { ...TelemetryRecord... }},
//!  "partition_id": 0}
//! ```
//!
//! `key` and `partition_id` are optional; `headers` and `timestamp` are accepted and ignored.
//! Only the `JSON` embedded format is supported. Every record gets one result, in order:
//!
//! ```json
//! {"error_code": 200, "cluster_id": "magnetar-local", "topic_name": "magnetar-telemetry",
//!  "partition_id": 0, "offset": 42, "timestamp": "2025-01-31T12:00:00.123Z",
//!  "key": {"type": "JSON", "size": 10}, "value": {"type": "JSON", "size": 312}}
//! ```
//!
//! or `{"error_code": N, "message": "..."}` where `N` is the HTTP status Confluent would use:
//!
//! | `error_code` | record |
//! | --- | --- |
//! | 400 | not valid JSON (the stream stops there), or not a v3 record object |
//! | 404 | `partition_id` does not exist |
//! | 422 | `type` other than `JSON`, or `value.data` not a telemetry record (or of a newer schema) |
//! | 500 | Kafka did not take it (bridge) |
//!
//! A body of one record is answered like a plain request: HTTP 200 with the result, or the
//! error's status with the error. A stream is answered 200 with one result per record,
//! newline-separated, each to be checked (Confluent's streaming contract).

use magnetar_core::telemetry::TelemetryRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ingest::{self, RecordError};

/// The only content type the v3 produce API accepts and answers with.
pub const CONTENT_TYPE: &str = "application/json";

/// Why one v3 record was not stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum V3RecordError {
    #[error("not valid JSON: {0}")]
    Syntax(String),
    #[error("not a v3 produce record: {0}")]
    Envelope(String),
    #[error("{0}")]
    Format(String),
    #[error("value.data: {0}")]
    Telemetry(RecordError),
    /// Refused where it was to be stored (unknown partition, Kafka).
    #[error("{0}")]
    Store(RecordError),
}

impl V3RecordError {
    /// The `error_code` (and HTTP status when the record was posted alone).
    pub fn error_code(&self) -> u16 {
        match self {
            V3RecordError::Syntax(_) | V3RecordError::Envelope(_) => 400,
            V3RecordError::Format(_) | V3RecordError::Telemetry(_) => 422,
            V3RecordError::Store(RecordError::UnknownPartition(_)) => 404,
            V3RecordError::Store(RecordError::Kafka(_) | RecordError::NotStored(_)) => 500,
            V3RecordError::Store(RecordError::InvalidJson(_)) => 400,
            V3RecordError::Store(_) => 422,
        }
    }

    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            V3RecordError::Syntax(_) => "invalid_json",
            V3RecordError::Envelope(_) => "not_a_record",
            V3RecordError::Format(_) => "unsupported_format",
            V3RecordError::Telemetry(e) | V3RecordError::Store(e) => e.kind(),
        }
    }
}

/// Why a whole v3 request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum V3BodyError {
    #[error("request body holds no record")]
    Empty,
    #[error("request holds more than {max} records")]
    TooManyRecords { max: usize },
}

impl V3BodyError {
    pub fn error_code(&self) -> u16 {
        match self {
            V3BodyError::Empty => 400,
            V3BodyError::TooManyRecords { .. } => 422,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            V3BodyError::Empty => "empty_batch",
            V3BodyError::TooManyRecords { .. } => "too_many_records",
        }
    }
}

/// A record ready to store, with the sizes the answer reports.
#[derive(Debug, Clone, PartialEq)]
pub struct V3Record {
    pub key: Option<Value>,
    pub partition: Option<i32>,
    pub record: TelemetryRecord,
    /// Bytes of the key as stored (its JSON), when there is one.
    pub key_size: Option<usize>,
    /// Bytes of the value as stored (the record's JSON).
    pub value_size: usize,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    partition_id: Option<i32>,
    #[serde(default)]
    key: Option<Payload>,
    #[serde(default)]
    value: Option<Payload>,
}

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    data: Value,
}

/// Parses a v3 body: one entry per record, in order; a syntax error ends the stream with an
/// entry for it. At most `max_records` records.
pub fn parse_records(
    body: &[u8],
    max_records: usize,
) -> Result<Vec<Result<V3Record, V3RecordError>>, V3BodyError> {
    let mut entries = Vec::new();
    for value in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        if entries.len() == max_records {
            return Err(V3BodyError::TooManyRecords { max: max_records });
        }
        match value {
            Ok(value) => entries.push(record_from_value(value)),
            Err(e) => {
                entries.push(Err(V3RecordError::Syntax(e.to_string())));
                break;
            }
        }
    }
    if entries.is_empty() {
        return Err(V3BodyError::Empty);
    }
    Ok(entries)
}

fn record_from_value(value: Value) -> Result<V3Record, V3RecordError> {
    if !value.is_object() {
        return Err(V3RecordError::Envelope("a record must be a JSON object".into()));
    }
    let envelope: Envelope = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        V3RecordError::Envelope(format!("{path}: {}", e.inner()))
    })?;
    let key = match envelope.key {
        Some(payload) => json_data("key", payload)?,
        None => Value::Null,
    };
    let Some(value) = envelope.value else {
        return Err(V3RecordError::Telemetry(RecordError::Invalid("is required".into())));
    };
    let data = json_data("value", value)?;
    let record = ingest::telemetry_from_value(data).map_err(V3RecordError::Telemetry)?;
    let key = (!key.is_null()).then_some(key);
    Ok(V3Record {
        key_size: key.as_ref().map(json_size),
        value_size: json_size(&record),
        key,
        partition: envelope.partition_id,
        record,
    })
}

/// The data of a `JSON` payload; other embedded formats are not supported.
fn json_data(field: &str, payload: Payload) -> Result<Value, V3RecordError> {
    match payload.kind.as_deref() {
        Some(kind) if kind.eq_ignore_ascii_case("JSON") => Ok(payload.data),
        Some(kind) => Err(V3RecordError::Format(format!(
            "{field}.type {kind:?} is not supported: this endpoint takes JSON"
        ))),
        None => Err(V3RecordError::Format(format!("{field}.type is required (JSON)"))),
    }
}

fn json_size(value: &impl Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |b| b.len())
}

/// `{"type": "JSON", "size": n}` in a delivery report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PayloadSize {
    #[serde(rename = "type")]
    pub kind: String,
    pub size: usize,
}

impl PayloadSize {
    pub fn json(size: usize) -> Self {
        PayloadSize { kind: "JSON".into(), size }
    }
}

/// A stored record's delivery report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub error_code: u16,
    pub cluster_id: String,
    pub topic_name: String,
    pub partition_id: i32,
    pub offset: i64,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PayloadSize>,
    pub value: PayloadSize,
}

/// One record's answer: a delivery report or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum V3Result {
    Delivered(Delivery),
    Failed { error_code: u16, message: String },
}

impl V3Result {
    pub fn failed(e: &V3RecordError) -> Self {
        V3Result::Failed { error_code: e.error_code(), message: e.to_string() }
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2025-01-31T12:00:00.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnetar_core::telemetry::v3_record;
    use proptest::prelude::*;
    use serde_json::json;

    fn router_body(id: &str) -> Vec<u8> {
        serde_json::to_vec(&v3_record(crate::ingest::tests::record(id))).unwrap()
    }

    #[test]
    fn the_routers_v3_record_parses() {
        let entries = parse_records(&router_body("r-1"), 10).unwrap();
        assert_eq!(entries.len(), 1);
        let r = entries[0].as_ref().unwrap();
        assert_eq!(r.record, crate::ingest::tests::record("r-1"));
        assert_eq!(r.key, Some(json!("/service")));
        assert_eq!(r.key_size, Some("\"/service\"".len()));
        assert_eq!(r.value_size, serde_json::to_vec(&r.record).unwrap().len());
        assert_eq!(r.partition, None);
    }

    #[test]
    fn streams_give_one_entry_per_record_and_stop_at_a_syntax_error() {
        let mut body = router_body("a");
        body.extend_from_slice(b"\n");
        body.extend(router_body("b"));
        body.extend(router_body("c"));
        assert_eq!(parse_records(&body, 10).unwrap().len(), 3);
        assert_eq!(parse_records(&body, 2).unwrap_err(), V3BodyError::TooManyRecords { max: 2 });
        body.extend_from_slice(b" {\"value\": ");
        body.extend(router_body("never"));
        let entries = parse_records(&body, 10).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[3].as_ref().unwrap_err().error_code(), 400);
        assert_eq!(parse_records(b"  \n", 10).unwrap_err(), V3BodyError::Empty);
    }

    #[test]
    fn record_errors_have_confluent_codes() {
        let code = |value: Value| {
            let body = serde_json::to_vec(&value).unwrap();
            let entries = parse_records(&body, 10).unwrap();
            entries[0].as_ref().map(|_| 200).unwrap_or_else(V3RecordError::error_code)
        };
        let good = serde_json::to_value(crate::ingest::tests::record("x")).unwrap();
        assert_eq!(code(json!({"value": {"type": "JSON", "data": good}})), 200);
        assert_eq!(code(json!([1, 2])), 400);
        assert_eq!(
            code(json!({"value": {"type": "JSON", "data": good}, "partition_id": "x"})),
            400
        );
        assert_eq!(code(json!({"value": {"type": "BINARY", "data": "eyJ9"}})), 422);
        assert_eq!(code(json!({"value": {"data": good}})), 422);
        assert_eq!(
            code(
                json!({"key": {"type": "STRING", "data": "k"}, "value": {"type": "JSON", "data": good}})
            ),
            422
        );
        assert_eq!(code(json!({"key": {"type": "JSON", "data": "k"}})), 422);
        assert_eq!(code(json!({"value": {"type": "JSON", "data": {"schema": 1}}})), 422);
        let mut future = good.clone();
        future["schema"] = json!(7);
        let body = serde_json::to_vec(&json!({"value": {"type": "json", "data": future}})).unwrap();
        let err = parse_records(&body, 10).unwrap().remove(0).unwrap_err();
        assert_eq!((err.error_code(), err.kind()), (422, "unsupported_schema"));
        assert!(err.to_string().starts_with("value.data: telemetry schema 7"), "{err}");
        let body = br#"{"value": {"type": "JSON", "data": {"schema": 1}}, "headers": [], "timestamp": "t"}"#;
        let err = parse_records(body, 10).unwrap().remove(0).unwrap_err();
        assert!(err.to_string().contains("value.data: not a telemetry record"), "{err}");
    }

    #[test]
    fn results_serialize_as_confluent_reports() {
        let delivered = V3Result::Delivered(Delivery {
            error_code: 200,
            cluster_id: "c".into(),
            topic_name: "t".into(),
            partition_id: 0,
            offset: 7,
            timestamp: rfc3339(0),
            key: None,
            value: PayloadSize::json(3),
        });
        let json = serde_json::to_value(&delivered).unwrap();
        assert_eq!(json["value"], json!({"type": "JSON", "size": 3}));
        assert!(json.get("key").is_none());
        // What the router reads back.
        let seen: magnetar_core::telemetry::V3ProduceResponse =
            serde_json::from_value(json).unwrap();
        assert_eq!((seen.error_code, seen.partition_id, seen.offset), (200, Some(0), Some(7)));
        let failed = V3Result::failed(&V3RecordError::Store(RecordError::UnknownPartition(3)));
        let json = serde_json::to_value(&failed).unwrap();
        assert_eq!(json, json!({"error_code": 404, "message": "partition 3 does not exist"}));
        let seen: magnetar_core::telemetry::V3ProduceResponse =
            serde_json::from_value(json).unwrap();
        assert_eq!(seen.error_code, 404);
    }

    #[test]
    fn store_errors_keep_their_status() {
        let kafka = V3RecordError::Store(RecordError::Kafka("timed out".into()));
        assert_eq!((kafka.error_code(), kafka.kind()), (500, "kafka"));
        let partition = V3RecordError::Store(RecordError::UnknownPartition(5));
        assert_eq!(partition.to_string(), "partition 5 does not exist");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    proptest! {
        /// What the v3 parser computed: one entry per record of the stream, in order, each the
        /// posted record when in bounds and a 422 naming the field when not.
        #[test]
        fn streams_parse_to_the_posted_records_in_order(
            shapes in proptest::collection::vec(
                (crate::ingest::tests::latency(), 0u16..1000, 0usize..200, 1usize..4), 1..6),
            separators in proptest::collection::vec("[ \n\t]{0,3}", 6),
        ) {
            let records: Vec<_> = shapes
                .iter()
                .map(|&(l, s, i, a)| crate::ingest::tests::shaped(l, s, i, a))
                .collect();
            let mut body = Vec::new();
            for (r, sep) in records.iter().zip(&separators) {
                body.extend(serde_json::to_vec(&v3_record(r.clone())).unwrap());
                body.extend(sep.as_bytes());
            }
            let entries = parse_records(&body, 8).unwrap();
            prop_assert_eq!(entries.len(), records.len());
            for ((entry, posted), &(l, s, i, _)) in entries.iter().zip(&records).zip(&shapes) {
                let valid = (0.0..=crate::validate::MAX_LATENCY_MS).contains(&l)
                    && (100..=599).contains(&s)
                    && (1..=128).contains(&i);
                match entry {
                    Ok(r) => {
                        prop_assert!(valid);
                        prop_assert_eq!(&r.record, posted);
                        prop_assert_eq!(r.key.clone(), Some(json!(posted.route)));
                    }
                    Err(e) => {
                        prop_assert!(!valid, "refused a valid record: {}", e);
                        prop_assert_eq!(e.error_code(), 422);
                        prop_assert!(e.to_string().starts_with("value.data: not a telemetry record: "), "{}", e);
                    }
                }
            }
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(entries) = parse_records(&bytes, 8) {
                prop_assert!(!entries.is_empty() && entries.len() <= 8);
            }
        }
    }
}
