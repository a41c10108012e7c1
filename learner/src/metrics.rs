//! Process counters (ingest, bridge, consumer) and their rendering as `/stats` JSON and
//! Prometheus text (`/metrics`, exposition format 0.0.4).
//!
//! Learned quantities (records applied, posteriors, latencies) come from the
//! [`LearnerState`]; the counters here are what happened at this process's edges and restart
//! from zero with it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};

use crate::config::Mode;
use crate::health::ConsumerReport;
use crate::state::LearnerState;

/// Counters shared by the HTTP handlers and the Kafka tasks.
#[derive(Debug, Default)]
pub struct Counters {
    /// Produce requests answered 200.
    pub batches: AtomicU64,
    /// Records accepted by the produce API (applied here or forwarded).
    pub records_accepted: AtomicU64,
    /// Records the bridge had acknowledged by Kafka.
    pub records_forwarded: AtomicU64,
    /// Produce requests refused as a whole (4xx).
    pub rejected_batches: AtomicU64,
    /// Records refused one by one (per-record `error_code`, or a bad Kafka message).
    pub rejected_records: AtomicU64,
    /// Kafka messages received by the consumer.
    pub kafka_consumed: AtomicU64,
    /// Offset commits the broker acknowledged.
    pub kafka_commits: AtomicU64,
    /// Offset commits that failed (retried at the next commit interval).
    pub commit_failures: AtomicU64,
    pub kafka_errors: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_failures: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    positions: Mutex<KafkaPositions>,
}

/// Per-partition offsets of this consumer: where it started and what it last committed.
#[derive(Debug, Default, Clone)]
pub struct KafkaPositions {
    /// Offset of the first message this process received, per partition.
    pub resumed_from: BTreeMap<i32, i64>,
    /// Next offset whose commit the broker confirmed, per partition.
    pub committed: BTreeMap<i32, i64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Counters {
    /// Counts one ingest error of `kind` (a metrics label).
    pub fn error(&self, kind: &'static str) {
        *lock(&self.errors).entry(kind).or_default() += 1;
    }

    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.errors).clone()
    }

    pub fn consumed(&self, partition: i32, offset: i64) {
        self.kafka_consumed.fetch_add(1, Ordering::Relaxed);
        lock(&self.positions).resumed_from.entry(partition).or_insert(offset);
    }

    /// The broker confirmed these offsets (the whole confirmed map of the owned partitions).
    pub fn committed(&self, confirmed: &BTreeMap<i32, i64>) {
        lock(&self.positions).committed.extend(confirmed);
    }

    pub fn positions(&self) -> KafkaPositions {
        lock(&self.positions).clone()
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// The `/stats` document.
pub fn stats_json(
    mode: Mode,
    counters: &Counters,
    state: Option<&LearnerState>,
    consumer: Option<&ConsumerReport>,
    now_ms: u64,
) -> Value {
    let mut doc = json!({
        "mode": mode.as_str(),
        "batches": get(&counters.batches),
        "records_accepted": get(&counters.records_accepted),
        "rejected": {
            "batches": get(&counters.rejected_batches),
            "records": get(&counters.rejected_records),
            "by_kind": counters.errors(),
        },
    });
    if let Some(state) = state {
        let routes: BTreeMap<&String, Value> = state
            .routes()
            .iter()
            .map(|(route, r)| {
                let downstreams: BTreeMap<&String, Value> = r
                    .downstreams
                    .iter()
                    .map(|(name, d)| {
                        let attempts = d.attempts();
                        let successes = d.successes();
                        let outcomes: BTreeMap<&str, u64> = magnetar_core::Outcome::ALL
                            .iter()
                            .zip(d.outcomes)
                            .filter(|(_, n)| *n > 0)
                            .map(|(o, n)| (o.as_str(), n))
                            .collect();
                        let counts = d.posterior.counts_at(now_ms, state.decay());
                        let value = json!({
                            "attempts": attempts,
                            "successes": successes,
                            "failures": attempts - successes,
                            "success_rate": (attempts > 0)
                                .then(|| round(successes as f64 / attempts as f64, 4)),
                            "outcomes": outcomes,
                            "posterior": {
                                "successes": round(counts.successes, 3),
                                "failures": round(counts.failures, 3),
                                "mean": round(d.posterior.mean_at(now_ms, state.decay()), 4),
                            },
                            "latency_ms": {
                                "p50": d.latency.quantile(0.5).map(|x| round(x, 2)),
                                "p99": d.latency.quantile(0.99).map(|x| round(x, 2)),
                                "max": d.latency.max_ms().map(|x| round(x, 2)),
                            },
                        });
                        (name, value)
                    })
                    .collect();
                (route, json!({"records": r.records, "downstreams": downstreams}))
            })
            .collect();
        doc["version"] = json!(state.version());
        doc["records_applied"] = json!(state.records_applied());
        doc["duplicates"] = json!(state.duplicates());
        doc["observations"] = json!(state.observations());
        doc["half_life_ms"] = json!(state.decay().half_life_ms());
        doc["dedupe_window_used"] = json!(state.recent_ids());
        let limits = state.limits();
        doc["caps"] = json!({
            "max_routes": limits.max_routes,
            "max_downstreams_per_route": limits.max_downstreams_per_route,
            "routes": state.routes().len(),
            "records_refused": state.capped_records(),
            "observations_refused": state.capped_observations(),
        });
        doc["routes"] = json!(routes);
    }
    if mode.bridges() {
        doc["records_forwarded"] = json!(get(&counters.records_forwarded));
    }
    if mode.consumes() {
        let positions = counters.positions();
        doc["kafka"] = json!({
            "consumed": get(&counters.kafka_consumed),
            "commits": get(&counters.kafka_commits),
            "commit_failures": get(&counters.commit_failures),
            "errors": get(&counters.kafka_errors),
            "consumer": consumer,
            "resumed_from": positions.resumed_from,
            "committed": positions.committed,
        });
    }
    doc["checkpoints"] = json!({
        "written": get(&counters.checkpoints),
        "failed": get(&counters.checkpoint_failures),
    });
    doc
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A sample value in the exposition format (`+Inf`, `-Inf`, `NaN` spelled as Prometheus does).
fn float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        x.to_string()
    }
}

/// The `/metrics` page.
pub fn prometheus(
    mode: Mode,
    counters: &Counters,
    state: Option<&LearnerState>,
    consumer: Option<&ConsumerReport>,
    now_ms: u64,
) -> String {
    let mut out = String::new();
    let simple = [
        ("magnetar_learner_batches_total", "produce requests accepted", get(&counters.batches)),
        (
            "magnetar_learner_records_accepted_total",
            "records accepted by the produce API",
            get(&counters.records_accepted),
        ),
        (
            "magnetar_learner_records_forwarded_total",
            "records the bridge had acknowledged by Kafka",
            get(&counters.records_forwarded),
        ),
        (
            "magnetar_learner_rejected_batches_total",
            "produce requests refused as a whole",
            get(&counters.rejected_batches),
        ),
        (
            "magnetar_learner_rejected_records_total",
            "records refused one by one",
            get(&counters.rejected_records),
        ),
        (
            "magnetar_learner_kafka_consumed_total",
            "Kafka messages received",
            get(&counters.kafka_consumed),
        ),
        (
            "magnetar_learner_kafka_commits_total",
            "offset commits the broker acknowledged",
            get(&counters.kafka_commits),
        ),
        (
            "magnetar_learner_kafka_commit_failures_total",
            "offset commits that failed (retried at the next commit interval)",
            get(&counters.commit_failures),
        ),
        ("magnetar_learner_kafka_errors_total", "Kafka client errors", get(&counters.kafka_errors)),
        ("magnetar_learner_checkpoints_total", "state files written", get(&counters.checkpoints)),
        (
            "magnetar_learner_checkpoint_failures_total",
            "state files that could not be written (offset commits held back)",
            get(&counters.checkpoint_failures),
        ),
    ];
    for (name, help, value) in simple {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(&mut out, "magnetar_learner_ingest_errors_total", "counter", "ingest errors by kind");
    for (kind, n) in counters.errors() {
        let _ = writeln!(out, "magnetar_learner_ingest_errors_total{{kind=\"{kind}\"}} {n}");
    }
    family(&mut out, "magnetar_learner_info", "gauge", "mode of this process");
    let _ = writeln!(out, "magnetar_learner_info{{mode=\"{}\"}} 1", mode.as_str());
    if let Some(consumer) = consumer {
        consumer_metrics(&mut out, consumer);
    }
    let Some(state) = state else { return out };
    let limits = state.limits();
    let learned = [
        (
            "magnetar_learner_records_applied_total",
            "counter",
            "records learned from",
            state.records_applied(),
        ),
        (
            "magnetar_learner_duplicates_total",
            "counter",
            "records dropped as replays",
            state.duplicates(),
        ),
        (
            "magnetar_learner_observations_total",
            "counter",
            "attempts learned from",
            state.observations(),
        ),
        (
            "magnetar_learner_capped_records_total",
            "counter",
            "records of new routes refused because --max-routes routes are known",
            state.capped_records(),
        ),
        (
            "magnetar_learner_capped_observations_total",
            "counter",
            "attempts on new downstreams skipped because their route has --max-downstreams-per-route",
            state.capped_observations(),
        ),
        (
            "magnetar_learner_routes",
            "gauge",
            "routes in the learned state",
            state.routes().len() as u64,
        ),
        ("magnetar_learner_max_routes", "gauge", "cap on routes", limits.max_routes as u64),
        (
            "magnetar_learner_max_downstreams_per_route",
            "gauge",
            "cap on downstreams per route",
            limits.max_downstreams_per_route as u64,
        ),
        ("magnetar_learner_state_version", "gauge", "learned state version", state.version()),
    ];
    for (name, kind, help, value) in learned {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(&mut out, "magnetar_learner_posterior_mean", "gauge", "decayed Beta posterior mean");
    for (route, r) in state.routes() {
        for (name, d) in &r.downstreams {
            let mean = d.posterior.mean_at(now_ms, state.decay());
            let _ = writeln!(
                out,
                "magnetar_learner_posterior_mean{{route=\"{}\",downstream=\"{}\"}} {mean}",
                label(route),
                label(name)
            );
        }
    }
    family(&mut out, "magnetar_learner_attempts_total", "counter", "attempts by outcome");
    for (route, r) in state.routes() {
        for (name, d) in &r.downstreams {
            for (o, n) in magnetar_core::Outcome::ALL.iter().zip(d.outcomes) {
                let _ = writeln!(
                    out,
                    "magnetar_learner_attempts_total{{route=\"{}\",downstream=\"{}\",outcome=\"{o}\"}} {n}",
                    label(route),
                    label(name)
                );
            }
        }
    }
    family(
        &mut out,
        "magnetar_learner_latency_ms",
        "summary",
        "attempt latency in milliseconds (since the state began)",
    );
    for (route, r) in state.routes() {
        for (name, d) in &r.downstreams {
            let labels = format!("route=\"{}\",downstream=\"{}\"", label(route), label(name));
            for q in [0.5, 0.99] {
                if let Some(v) = d.latency.quantile(q) {
                    let _ = writeln!(
                        out,
                        "magnetar_learner_latency_ms{{{labels},quantile=\"{q}\"}} {}",
                        float(v)
                    );
                }
            }
            let _ = writeln!(
                out,
                "magnetar_learner_latency_ms_sum{{{labels}}} {}",
                float(d.latency.sum_ms())
            );
            let _ = writeln!(
                out,
                "magnetar_learner_latency_ms_count{{{labels}}} {}",
                d.latency.count()
            );
        }
    }
    out
}

/// The consumer's liveness as gauges (ages in seconds; absent until the event happened).
fn consumer_metrics(out: &mut String, consumer: &ConsumerReport) {
    family(
        out,
        "magnetar_learner_kafka_consumer_up",
        "gauge",
        "1 unless /healthz reports the consumer down",
    );
    let _ = writeln!(out, "magnetar_learner_kafka_consumer_up {}", u8::from(consumer.is_up()));
    let ages = [
        (
            "magnetar_learner_kafka_last_poll_age_seconds",
            "time since the consumer loop last turned",
            consumer.last_poll_age_ms,
        ),
        (
            "magnetar_learner_kafka_last_message_age_seconds",
            "time since the last message",
            consumer.last_message_age_ms,
        ),
    ];
    for (name, help, age) in ages {
        if let Some(ms) = age {
            family(out, name, "gauge", help);
            let _ = writeln!(out, "{name} {}", ms as f64 / 1000.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn counters_render_in_both_formats() {
        let counters = Counters::default();
        counters.error("invalid_json");
        counters.error("invalid_json");
        counters.consumed(1, 40);
        counters.consumed(1, 41);
        let text = prometheus(Mode::Bridge, &counters, None, None, 0);
        assert!(text.contains("magnetar_learner_ingest_errors_total{kind=\"invalid_json\"} 2"));
        assert!(text.contains("magnetar_learner_info{mode=\"bridge\"} 1"));
        let stats = stats_json(Mode::Kafka, &counters, None, None, 0);
        assert_eq!(stats["rejected"]["by_kind"]["invalid_json"], 2);
        assert_eq!(stats["kafka"]["resumed_from"]["1"], 40);
    }
}
