//! Parsing telemetry: Kafka REST v2 produce batches (embedded ingest and the bridge) and single
//! Kafka message values (the consumer). Sans-io and total: any input gives a value or a typed
//! error, never a panic.
//!
//! A batch is checked as a whole before anything is applied: invalid JSON, a body that is not
//! `{"records": [...]}`, an empty or oversized batch, or a record whose value is not a
//! [`TelemetryRecord`] within the bounds of [`crate::validate`] (finite latencies up to a day,
//! statuses 100 to 599, short non-empty names, a request id, at least one attempt) rejects the
//! batch with a [`BatchError`] (HTTP 422, with a Confluent-style
//! `error_code` and a message naming the record and field). A record of a schema version this
//! learner does not know, or for a partition that does not exist, only gets a per-record
//! [`RecordError`] in the answer's `offsets`; the rest of the batch is accepted.
//!
//! Error codes (`error_code` in bodies and offsets):
//!
//! | code | meaning |
//! | --- | --- |
//! | 40401 | unknown topic |
//! | 40402 | unknown partition (per record) |
//! | 41300 | body larger than the limit |
//! | 41500 | content type not accepted |
//! | 42201 | body is not valid JSON |
//! | 42202 | body is not a v2 produce batch |
//! | 42203 | batch has no records |
//! | 42204 | batch has more records than allowed |
//! | 42205 | a record's value is not a telemetry record |
//! | 42206 | a record's schema version is not supported (per record) |
//! | 50002 | Kafka refused or lost the record (bridge, per record) |

use magnetar_core::telemetry::{ProduceRequest, TELEMETRY_SCHEMA, TelemetryRecord};
use serde_json::Value;

pub const CODE_UNKNOWN_TOPIC: u32 = 40401;
pub const CODE_UNKNOWN_PARTITION: u32 = 40402;
pub const CODE_BODY_TOO_LARGE: u32 = 41300;
pub const CODE_UNSUPPORTED_MEDIA_TYPE: u32 = 41500;
pub const CODE_KAFKA: u32 = 50002;

/// The only partition of the embedded topic.
pub const EMBEDDED_PARTITION: i32 = 0;

/// A problem with one record that does not fail its batch.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("not a telemetry record: {0}")]
    Invalid(String),
    #[error("telemetry schema {got} is not supported (supported: {TELEMETRY_SCHEMA})")]
    UnsupportedSchema { got: u64 },
    #[error("partition {0} does not exist")]
    UnknownPartition(i32),
    #[error("kafka did not take the record: {0}")]
    Kafka(String),
    /// Embedded mode with a state file: the record could not be made durable (the state log
    /// could not be written, or the learner is stopping). Not learned; post it again.
    #[error("the record was not stored: {0}")]
    NotStored(String),
}

impl RecordError {
    pub fn error_code(&self) -> u32 {
        match self {
            RecordError::InvalidJson(_) => 42201,
            RecordError::Invalid(_) => 42205,
            RecordError::UnsupportedSchema { .. } => 42206,
            RecordError::UnknownPartition(_) => CODE_UNKNOWN_PARTITION,
            RecordError::Kafka(_) | RecordError::NotStored(_) => CODE_KAFKA,
        }
    }

    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordError::InvalidJson(_) => "invalid_json",
            RecordError::Invalid(_) => "invalid_record",
            RecordError::UnsupportedSchema { .. } => "unsupported_schema",
            RecordError::UnknownPartition(_) => "unknown_partition",
            RecordError::Kafka(_) => "kafka",
            RecordError::NotStored(_) => "not_stored",
        }
    }
}

/// Why a whole produce batch was rejected (HTTP 422).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body is not a v2 produce batch ({{\"records\": [...]}}): {0}")]
    NotABatch(String),
    #[error("batch has no records")]
    Empty,
    #[error("batch has {count} records, at most {max} are accepted")]
    TooManyRecords { count: usize, max: usize },
    #[error("records[{index}].value: {detail}")]
    InvalidRecord { index: usize, detail: String },
}

impl BatchError {
    pub fn error_code(&self) -> u32 {
        match self {
            BatchError::InvalidJson(_) => 42201,
            BatchError::NotABatch(_) => 42202,
            BatchError::Empty => 42203,
            BatchError::TooManyRecords { .. } => 42204,
            BatchError::InvalidRecord { .. } => 42205,
        }
    }

    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            BatchError::InvalidJson(_) => "invalid_json",
            BatchError::NotABatch(_) => "not_a_batch",
            BatchError::Empty => "empty_batch",
            BatchError::TooManyRecords { .. } => "too_many_records",
            BatchError::InvalidRecord { .. } => "invalid_record",
        }
    }
}

/// Where a record was stored: its partition and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub partition: i32,
    pub offset: i64,
}

/// One record of an accepted batch: the parsed telemetry, or why this record alone is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchEntry {
    /// The record's key as posted (the router uses the route).
    pub key: Option<Value>,
    /// Partition the producer asked for, if any.
    pub partition: Option<i32>,
    pub record: Result<TelemetryRecord, RecordError>,
}

/// Parses a v2 produce body. `max_records` bounds the batch.
pub fn parse_batch(body: &[u8], max_records: usize) -> Result<Vec<BatchEntry>, BatchError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| BatchError::InvalidJson(e.to_string()))?;
    let batch: ProduceRequest<Value> =
        serde_path_to_error::deserialize(value).map_err(|e| BatchError::NotABatch(describe(&e)))?;
    if batch.records.is_empty() {
        return Err(BatchError::Empty);
    }
    if batch.records.len() > max_records {
        return Err(BatchError::TooManyRecords { count: batch.records.len(), max: max_records });
    }
    batch
        .records
        .into_iter()
        .enumerate()
        .map(|(index, r)| {
            let record = match telemetry_from_value(r.value) {
                Err(RecordError::Invalid(detail)) => {
                    return Err(BatchError::InvalidRecord { index, detail });
                }
                other => other,
            };
            Ok(BatchEntry { key: r.key, partition: r.partition, record })
        })
        .collect()
}

/// Parses one Kafka message value (a bare [`TelemetryRecord`] in JSON).
pub fn parse_record(bytes: &[u8]) -> Result<TelemetryRecord, RecordError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| RecordError::InvalidJson(e.to_string()))?;
    telemetry_from_value(value)
}

/// Checks the schema version first, so a record from a newer router is reported as such rather
/// than as a shape mismatch.
pub(crate) fn telemetry_from_value(value: Value) -> Result<TelemetryRecord, RecordError> {
    let Some(object) = value.as_object() else {
        return Err(RecordError::Invalid("must be a JSON object".into()));
    };
    match object.get("schema") {
        None => return Err(RecordError::Invalid("missing field `schema`".into())),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v == u64::from(TELEMETRY_SCHEMA) => {}
            Some(got) => return Err(RecordError::UnsupportedSchema { got }),
            None => {
                return Err(RecordError::Invalid("schema: must be a non-negative integer".into()));
            }
        },
        Some(_) => {
            return Err(RecordError::Invalid("schema: must be a non-negative integer".into()));
        }
    }
    let record: TelemetryRecord =
        serde_path_to_error::deserialize(value).map_err(|e| RecordError::Invalid(describe(&e)))?;
    crate::validate::check(&record).map_err(RecordError::Invalid)?;
    Ok(record)
}

fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path == "." { e.inner().to_string() } else { format!("{path}: {}", e.inner()) }
}

/// Whether a `Content-Type` value is one the produce API accepts: the v2 JSON embedded format
/// or plain JSON, with any parameters (`; charset=utf-8`).
pub fn accepts_content_type(value: Option<&str>) -> bool {
    content_type_is(value, &[magnetar_core::telemetry::CONTENT_TYPE_V2_JSON, "application/json"])
}

/// Whether a `Content-Type` value is one of `accepted`, ignoring case and parameters.
pub fn content_type_is(value: Option<&str>, accepted: &[&str]) -> bool {
    let Some(value) = value else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim();
    accepted.iter().any(|a| essence.eq_ignore_ascii_case(a))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use magnetar_core::Outcome;
    use magnetar_core::telemetry::AttemptTelemetry;
    use proptest::prelude::*;
    use serde_json::json;

    pub(crate) fn record(request_id: &str) -> TelemetryRecord {
        TelemetryRecord {
            schema: TELEMETRY_SCHEMA,
            request_id: request_id.into(),
            caller_id: None,
            route: "/service".into(),
            strategy: "thompson".into(),
            router_instance: "iso-1".into(),
            started_ms: 1_000,
            finished_ms: 1_010,
            attempts: vec![AttemptTelemetry {
                downstream: "downstream-3".into(),
                status: Some(200),
                outcome: Outcome::Success,
                latency_ms: 10.0,
                hedged: false,
            }],
            final_outcome: Outcome::Success,
            final_status: 200,
            pool: None,
            experiment: None,
            variant: None,
        }
    }

    fn body(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn router_batches_parse() {
        let bytes = serde_json::to_vec(&record("r-1").into_batch()).unwrap();
        let entries = parse_batch(&bytes, 10).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].key, Some(json!("/service")));
        assert_eq!(entries[0].record, Ok(record("r-1")));
    }

    #[test]
    fn batch_errors_name_what_was_wrong() {
        let err = parse_batch(b"{not json", 10).unwrap_err();
        assert_eq!(err.error_code(), 42201);
        let err = parse_batch(&body(json!({"records": "nope"})), 10).unwrap_err();
        assert_eq!(err.error_code(), 42202);
        assert!(err.to_string().contains("records"), "{err}");
        let err = parse_batch(&body(json!({"records": []})), 10).unwrap_err();
        assert_eq!(err, BatchError::Empty);
        let one = json!({"value": record("x")});
        let err =
            parse_batch(&body(json!({"records": [one.clone(), one.clone(), one]})), 2).unwrap_err();
        assert_eq!(err, BatchError::TooManyRecords { count: 3, max: 2 });

        let mut bad = serde_json::to_value(record("x")).unwrap();
        bad["finished_ms"] = json!("late");
        let err =
            parse_batch(&body(json!({"records": [{"value": record("ok")}, {"value": bad}]})), 10)
                .unwrap_err();
        assert_eq!(err.error_code(), 42205);
        let message = err.to_string();
        assert!(message.starts_with("records[1].value: finished_ms: invalid type"), "{message}");

        let mut bad = serde_json::to_value(record("x")).unwrap();
        bad["attempts"][0]["outcome"] = json!("exploded");
        let err = parse_batch(&body(json!({"records": [{"value": bad}]})), 10).unwrap_err();
        assert!(err.to_string().contains("attempts[0].outcome"), "{err}");
    }

    #[test]
    fn unknown_schema_fails_only_its_record() {
        let mut future = serde_json::to_value(record("x")).unwrap();
        future["schema"] = json!(2);
        future["something_new"] = json!(true);
        let entries =
            parse_batch(&body(json!({"records": [{"value": future}, {"value": record("y")}]})), 10)
                .unwrap();
        assert_eq!(entries[0].record, Err(RecordError::UnsupportedSchema { got: 2 }));
        assert_eq!(entries[0].record.as_ref().unwrap_err().error_code(), 42206);
        assert!(entries[1].record.is_ok());
        let err =
            parse_batch(&body(json!({"records": [{"value": {"schema": "1"}}]})), 10).unwrap_err();
        assert_eq!(err.error_code(), 42205);
    }

    #[test]
    fn kafka_values_parse_alone() {
        let bytes = serde_json::to_vec(&record("r-9")).unwrap();
        assert_eq!(parse_record(&bytes), Ok(record("r-9")));
        assert_eq!(parse_record(b"\xff").unwrap_err().kind(), "invalid_json");
        assert_eq!(parse_record(b"[]").unwrap_err().kind(), "invalid_record");
    }

    #[test]
    fn content_types() {
        assert!(accepts_content_type(Some("application/vnd.kafka.json.v2+json")));
        assert!(accepts_content_type(Some("Application/JSON; charset=utf-8")));
        assert!(!accepts_content_type(Some("text/plain")));
        assert!(!accepts_content_type(Some("application/vnd.kafka.avro.v2+json")));
        assert!(!accepts_content_type(None));
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            Just(json!("success")),
            Just(json!(1)),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            let keys = prop_oneof![
                Just("records".to_owned()),
                Just("value".to_owned()),
                Just("schema".to_owned()),
                Just("attempts".to_owned()),
                Just("partition".to_owned()),
                "[a-z_]{1,10}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(keys, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A record whose bounded fields come from the arguments (latency, status, request id
    /// length, attempt count), everything else as the router writes it.
    pub(crate) fn shaped(
        latency_ms: f64,
        status: u16,
        id_len: usize,
        attempts: usize,
    ) -> TelemetryRecord {
        let mut r = record(&"i".repeat(id_len));
        let one = r.attempts[0].clone();
        r.attempts = (0..attempts)
            .map(|i| AttemptTelemetry {
                downstream: format!("downstream-{i}"),
                status: Some(status),
                latency_ms,
                ..one.clone()
            })
            .collect();
        r
    }

    /// Latencies around the bounds. Valid ones are whole microseconds, as routers send them
    /// (serde_json without its `float_roundtrip` feature may read a 17-digit float back one
    /// ulp off, which would make the equality below about JSON rather than about the parser).
    pub(crate) fn latency() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u64..=86_400_000_000).prop_map(|us| us as f64 / 1000.0),
            -1e6..0.0f64,
            crate::validate::MAX_LATENCY_MS..1e308f64,
            Just(0.0),
            Just(crate::validate::MAX_LATENCY_MS),
        ]
    }

    proptest! {
        /// What the v2 parser computed: the posted records exactly when every bound holds, else
        /// a 42205 naming a field that is out of bounds.
        #[test]
        fn v2_batches_parse_to_the_posted_records_or_name_a_bad_field(
            shapes in proptest::collection::vec(
                (latency(), 0u16..1000, 0usize..200, 0usize..40), 1..6),
        ) {
            let records: Vec<TelemetryRecord> =
                shapes.iter().map(|&(l, s, i, a)| shaped(l, s, i, a)).collect();
            let valid = |&(l, s, i, a): &(f64, u16, usize, usize)| {
                (0.0..=crate::validate::MAX_LATENCY_MS).contains(&l)
                    && (100..=599).contains(&s)
                    && (1..=128).contains(&i)
                    && (1..=32).contains(&a)
            };
            let bytes = body(json!({"records": records.iter().map(|r| json!({"value": r})).collect::<Vec<_>>()}));
            match parse_batch(&bytes, 100) {
                Ok(entries) => {
                    prop_assert!(shapes.iter().all(valid));
                    let parsed: Vec<_> = entries.into_iter().map(|e| e.record.unwrap()).collect();
                    prop_assert_eq!(parsed, records);
                }
                Err(e) => {
                    let index = shapes.iter().position(|s| !valid(s));
                    prop_assert!(index.is_some(), "refused a valid batch: {}", e);
                    prop_assert_eq!(e.error_code(), 42205);
                    let message = e.to_string();
                    let prefix = format!("records[{}].value: ", index.unwrap_or_default());
                    prop_assert!(message.starts_with(&prefix), "{}", message);
                    let named = ["latency_ms", "status", "request_id", "attempts"]
                        .iter()
                        .any(|f| message.contains(f));
                    prop_assert!(named, "{}", message);
                }
            }
        }

        #[test]
        fn parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_batch(&bytes, 100);
            let _ = parse_record(&bytes);
        }

        #[test]
        fn parser_never_panics_on_json(value in arbitrary_json()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            let _ = parse_batch(&bytes, 100);
            let _ = parse_record(&bytes);
            let wrapped = body(json!({"records": [{"value": value}]}));
            if let Ok(entries) = parse_batch(&wrapped, 100) {
                prop_assert_eq!(entries.len(), 1);
            }
        }

        #[test]
        fn mutated_records_never_panic(field in 0usize..11, replacement in arbitrary_json()) {
            let mut value = serde_json::to_value(record("m")).unwrap();
            let keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
            value[&keys[field % keys.len()]] = replacement;
            let wrapped = body(json!({"records": [{"value": value}]}));
            match parse_batch(&wrapped, 100) {
                Ok(entries) => prop_assert_eq!(entries.len(), 1),
                Err(e) => prop_assert!((42201..=42205).contains(&e.error_code())),
            }
        }
    }
}
