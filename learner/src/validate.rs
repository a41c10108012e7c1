//! Bounds on what telemetry may say, checked on every record that comes in (v2 and v3 bodies,
//! Kafka messages) before anything is learned from it. A record outside them is refused with a
//! message naming the field and the bound (`attempts[0].latency_ms: must be a finite number from
//! 0 to 86400000 (one day in ms), got 1e308`), which the produce APIs answer as 422
//! (v2 `error_code` 42205) and the consumer counts as `invalid_record`.
//!
//! Why each bound: every number the state sums (latencies into the histogram's sum, the time an
//! attempt ended) is finite and bounded, so no sum can overflow and no checkpoint can hold a
//! value JSON cannot carry; every name the state keeps is short, so memory follows the caps;
//! an empty request id would bypass deduplication; an empty attempt list teaches nothing. `pool`,
//! `experiment` and `variant` are optional names like the route's (non-empty, bounded); a
//! variant belongs to an experiment, so the two come together.

use magnetar_core::telemetry::TelemetryRecord;

/// Largest latency of one attempt: one day, in milliseconds.
pub const MAX_LATENCY_MS: f64 = 86_400_000.0;
/// Largest timestamp: 9999-12-31T23:59:59.999Z, in milliseconds since the Unix epoch.
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;
/// Longest route, in bytes.
pub const MAX_ROUTE_LEN: usize = 256;
/// Longest downstream name, request id, caller id, strategy or router instance, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Most attempts in one record (the router's budget is a handful).
pub const MAX_ATTEMPTS: usize = 32;
/// HTTP statuses a downstream or the router can answer with.
pub const STATUS_RANGE: std::ops::RangeInclusive<u16> = 100..=599;

/// Checks `record`; the error is `field: what is wrong`.
pub fn check(record: &TelemetryRecord) -> Result<(), String> {
    name("request_id", &record.request_id, MAX_NAME_LEN)?;
    name("route", &record.route, MAX_ROUTE_LEN)?;
    if let Some(caller) = &record.caller_id {
        bounded("caller_id", caller, MAX_NAME_LEN)?;
    }
    bounded("strategy", &record.strategy, MAX_NAME_LEN)?;
    bounded("router_instance", &record.router_instance, MAX_NAME_LEN)?;
    timestamp("started_ms", record.started_ms)?;
    timestamp("finished_ms", record.finished_ms)?;
    status("final_status", record.final_status)?;
    for (field, value) in
        [("pool", &record.pool), ("experiment", &record.experiment), ("variant", &record.variant)]
    {
        if let Some(value) = value {
            name(field, value, MAX_NAME_LEN)?;
        }
    }
    if record.experiment.is_some() != record.variant.is_some() {
        return Err("variant: experiment and variant come together (both or neither)".into());
    }
    if record.attempts.is_empty() {
        return Err("attempts: must not be empty".into());
    }
    if record.attempts.len() > MAX_ATTEMPTS {
        return Err(format!(
            "attempts: at most {MAX_ATTEMPTS} attempts, got {}",
            record.attempts.len()
        ));
    }
    for (i, attempt) in record.attempts.iter().enumerate() {
        name(&format!("attempts[{i}].downstream"), &attempt.downstream, MAX_NAME_LEN)?;
        if let Some(s) = attempt.status {
            status(&format!("attempts[{i}].status"), s)?;
        }
        let ms = attempt.latency_ms;
        if !(ms.is_finite() && (0.0..=MAX_LATENCY_MS).contains(&ms)) {
            return Err(format!(
                "attempts[{i}].latency_ms: must be a finite number from 0 to {MAX_LATENCY_MS} \
                 (one day in ms), got {ms}"
            ));
        }
    }
    Ok(())
}

/// A non-empty name of at most `max` bytes.
fn name(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    bounded(field, value, max)
}

fn bounded(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field}: at most {max} bytes, got {}", value.len()));
    }
    Ok(())
}

fn timestamp(field: &str, ms: u64) -> Result<(), String> {
    if ms > MAX_TIMESTAMP_MS {
        return Err(format!("{field}: at most {MAX_TIMESTAMP_MS} (year 9999), got {ms}"));
    }
    Ok(())
}

fn status(field: &str, value: u16) -> Result<(), String> {
    if !STATUS_RANGE.contains(&value) {
        return Err(format!("{field}: must be an HTTP status from 100 to 599, got {value}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use magnetar_core::telemetry::AttemptTelemetry;

    fn good() -> TelemetryRecord {
        crate::ingest::tests::record("r-1")
    }

    #[test]
    fn every_bound_names_its_field() {
        assert_eq!(check(&good()), Ok(()));
        type Spoil = fn(&mut TelemetryRecord);
        let cases: Vec<(Spoil, &str)> = vec![
            (|r| r.attempts[0].latency_ms = 1e308, "attempts[0].latency_ms"),
            (|r| r.attempts[0].latency_ms = -1.0, "attempts[0].latency_ms"),
            (|r| r.attempts[0].latency_ms = f64::NAN, "attempts[0].latency_ms"),
            (|r| r.attempts[0].latency_ms = MAX_LATENCY_MS + 1.0, "attempts[0].latency_ms"),
            (|r| r.attempts[0].status = Some(99), "attempts[0].status"),
            (|r| r.attempts[0].status = Some(600), "attempts[0].status"),
            (|r| r.attempts[0].downstream = String::new(), "attempts[0].downstream"),
            (|r| r.attempts[0].downstream = "d".repeat(129), "attempts[0].downstream"),
            (|r| r.attempts.clear(), "attempts: must not be empty"),
            (|r| r.attempts = vec![r.attempts[0].clone(); 33], "attempts: at most 32"),
            (|r| r.final_status = 0, "final_status"),
            (|r| r.request_id = String::new(), "request_id: must not be empty"),
            (|r| r.request_id = "i".repeat(129), "request_id"),
            (|r| r.route = "/".repeat(257), "route"),
            (|r| r.route = String::new(), "route"),
            (|r| r.caller_id = Some("c".repeat(129)), "caller_id"),
            (|r| r.strategy = "s".repeat(129), "strategy"),
            (|r| r.router_instance = "s".repeat(129), "router_instance"),
            (|r| r.started_ms = u64::MAX, "started_ms"),
            (|r| r.finished_ms = MAX_TIMESTAMP_MS + 1, "finished_ms"),
            (|r| r.pool = Some(String::new()), "pool: must not be empty"),
            (|r| r.pool = Some("p".repeat(129)), "pool"),
            (|r| r.experiment = Some("e".repeat(129)), "experiment"),
            (
                |r| {
                    r.experiment = Some("exp".into());
                    r.variant = Some(String::new());
                },
                "variant: must not be empty",
            ),
            (|r| r.variant = Some("control".into()), "variant: experiment and variant"),
            (|r| r.experiment = Some("exp".into()), "variant: experiment and variant"),
        ];
        for (spoil, field) in cases {
            let mut r = good();
            spoil(&mut r);
            let err = check(&r).unwrap_err();
            assert!(err.starts_with(field), "{field}: {err}");
        }
        // The bounds themselves are accepted.
        let mut r = good();
        r.attempts[0].latency_ms = MAX_LATENCY_MS;
        r.attempts[0].status = Some(599);
        r.route = "/".repeat(MAX_ROUTE_LEN);
        r.finished_ms = MAX_TIMESTAMP_MS;
        r.attempts = vec![r.attempts[0].clone(); MAX_ATTEMPTS];
        r.pool = Some("p".repeat(MAX_NAME_LEN));
        r.experiment = Some("e".repeat(MAX_NAME_LEN));
        r.variant = Some("v".repeat(MAX_NAME_LEN));
        assert_eq!(check(&r), Ok(()));
    }

    #[test]
    fn hedged_attempts_are_accepted_and_older_records_read_as_not_hedged() {
        let mut r = good();
        r.attempts.push(AttemptTelemetry { hedged: true, ..r.attempts[0].clone() });
        assert_eq!(check(&r), Ok(()));
        let mut json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["attempts"][1]["hedged"], true);
        json["attempts"][0].as_object_mut().expect("object").remove("hedged");
        let back: TelemetryRecord = serde_json::from_value(json).expect("an older record");
        assert!(!back.attempts[0].hedged && back.attempts[1].hedged);
        assert_eq!(check(&back), Ok(()));
    }
}
