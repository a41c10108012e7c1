//! Process counters (ingest, bridge, consumer) and their rendering as `/stats` JSON and
//! Prometheus text (`/metrics`, exposition format 0.0.4, by the `prometheus-client` crate).
//!
//! Learned quantities (records applied, posteriors, latencies) come from a [`StateSummary`]
//! taken under the state's lock; both documents are rendered from it after the lock is
//! released. The counters here are what happened at this process's edges and restart from
//! zero with it.
//!
//! Every scrape builds a [`Registry`] from the current values (the counters live in atomics the
//! handlers already share, the learned numbers in the summary), so nothing here keeps a second
//! copy of the state. `prometheus-client` has no summary type (its `MetricType` knows counter,
//! gauge, histogram, info and unknown), so `magnetar_learner_latency_ms`, a summary since the
//! first release, is appended in the same text format by [`latency_summary`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use crate::config::Mode;
use crate::health::ConsumerReport;
use crate::state::StateSummary;

/// `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

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
    /// Route/downstream series left out of `/metrics` pages and `/stats` documents by
    /// `--metrics-max-series`, summed over every page and document rendered.
    pub series_omitted: AtomicU64,
    /// Syncs of the embedded state log (one per group of batches).
    pub journal_syncs: AtomicU64,
    /// State log writes or syncs that failed (their batches answered as not stored).
    pub journal_failures: AtomicU64,
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
    state: Option<&StateSummary>,
    consumer: Option<&ConsumerReport>,
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
            .routes
            .iter()
            .map(|r| {
                let downstreams: BTreeMap<&String, Value> = r
                    .downstreams
                    .iter()
                    .map(|d| {
                        let outcomes: BTreeMap<&str, u64> = magnetar_core::Outcome::ALL
                            .iter()
                            .zip(d.outcomes)
                            .filter(|(_, n)| *n > 0)
                            .map(|(o, n)| (o.as_str(), n))
                            .collect();
                        let value = json!({
                            "attempts": d.attempts,
                            "successes": d.successes,
                            "failures": d.attempts.saturating_sub(d.successes),
                            "success_rate": (d.attempts > 0)
                                .then(|| round(d.successes as f64 / d.attempts as f64, 4)),
                            "outcomes": outcomes,
                            "posterior": {
                                "successes": round(d.counts.successes, 3),
                                "failures": round(d.counts.failures, 3),
                                "mean": round(d.mean, 4),
                            },
                            "latency_ms": {
                                "p50": d.p50_ms.map(|x| round(x, 2)),
                                "p99": d.p99_ms.map(|x| round(x, 2)),
                                "max": d.max_ms.map(|x| round(x, 2)),
                            },
                        });
                        (&d.name, value)
                    })
                    .collect();
                (&r.route, json!({"records": r.records, "downstreams": downstreams}))
            })
            .collect();
        doc["version"] = json!(state.version);
        doc["records_applied"] = json!(state.records_applied);
        doc["duplicates"] = json!(state.duplicates);
        doc["observations"] = json!(state.observations);
        doc["half_life_ms"] = json!(state.half_life_ms);
        doc["dedupe_window_used"] = json!(state.recent_ids);
        doc["caps"] = json!({
            "max_routes": state.limits.max_routes,
            "max_downstreams_per_route": state.limits.max_downstreams_per_route,
            "routes": state.routes.len(),
            "records_refused": state.capped_records,
            "observations_refused": state.capped_observations,
            "observations_unknown_downstream": state.unknown_observations,
            "series_omitted": state.omitted_series,
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
        "state_log_syncs": get(&counters.journal_syncs),
        "state_log_failures": get(&counters.journal_failures),
    });
    doc
}

/// Label pairs of a series, in the order they are written.
type Labels = Vec<(&'static str, String)>;

/// Registers a counter named `name` (the crate appends `_total`) holding `value`.
fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// Registers a gauge holding `value`.
fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

fn float_gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let g: Gauge<f64, AtomicU64> = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// The `/metrics` page.
pub fn prometheus(
    mode: Mode,
    counters: &Counters,
    state: Option<&StateSummary>,
    consumer: Option<&ConsumerReport>,
) -> String {
    let mut registry = Registry::default();
    let simple = [
        ("magnetar_learner_batches", "produce requests accepted", &counters.batches),
        (
            "magnetar_learner_records_accepted",
            "records accepted by the produce API",
            &counters.records_accepted,
        ),
        (
            "magnetar_learner_records_forwarded",
            "records the bridge had acknowledged by Kafka",
            &counters.records_forwarded,
        ),
        (
            "magnetar_learner_rejected_batches",
            "produce requests refused as a whole",
            &counters.rejected_batches,
        ),
        (
            "magnetar_learner_rejected_records",
            "records refused one by one",
            &counters.rejected_records,
        ),
        ("magnetar_learner_kafka_consumed", "Kafka messages received", &counters.kafka_consumed),
        (
            "magnetar_learner_kafka_commits",
            "offset commits the broker acknowledged",
            &counters.kafka_commits,
        ),
        (
            "magnetar_learner_kafka_commit_failures",
            "offset commits that failed (retried at the next commit interval)",
            &counters.commit_failures,
        ),
        ("magnetar_learner_kafka_errors", "Kafka client errors", &counters.kafka_errors),
        ("magnetar_learner_checkpoints", "state files written", &counters.checkpoints),
        (
            "magnetar_learner_checkpoint_failures",
            "state files that could not be written (offset commits held back)",
            &counters.checkpoint_failures,
        ),
        (
            "magnetar_learner_state_log_syncs",
            "syncs of the embedded state log, one per group of batches",
            &counters.journal_syncs,
        ),
        (
            "magnetar_learner_state_log_failures",
            "state log writes that failed (their batches answered as not stored)",
            &counters.journal_failures,
        ),
        (
            "magnetar_learner_metrics_series_omitted",
            "route/downstream series left out of /metrics and /stats by --metrics-max-series",
            &counters.series_omitted,
        ),
    ];
    for (name, help, value) in simple {
        counter(&mut registry, name, help, get(value));
    }
    let errors = Family::<Labels, Counter>::default();
    for (kind, n) in counters.errors() {
        errors.get_or_create(&vec![("kind", kind.to_owned())]).inc_by(n);
    }
    registry.register("magnetar_learner_ingest_errors", "ingest errors by kind", errors);
    let info = Family::<Labels, Gauge>::default();
    info.get_or_create(&vec![("mode", mode.as_str().to_owned())]).set(1);
    registry.register("magnetar_learner_info", "mode of this process", info);
    if let Some(consumer) = consumer {
        consumer_metrics(&mut registry, consumer);
    }
    if let Some(state) = state {
        learned_metrics(&mut registry, state);
    }
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    if let Some(state) = state {
        latency_summary(&mut out, state);
    }
    out
}

fn learned_metrics(registry: &mut Registry, state: &StateSummary) {
    let learned = [
        ("magnetar_learner_records_applied", "records learned from", state.records_applied),
        ("magnetar_learner_duplicates", "records dropped as replays", state.duplicates),
        ("magnetar_learner_observations", "attempts learned from", state.observations),
        (
            "magnetar_learner_capped_records",
            "records of new routes refused because --max-routes routes are known",
            state.capped_records,
        ),
        (
            "magnetar_learner_capped_observations",
            "attempts on new downstreams skipped because their route has --max-downstreams-per-route",
            state.capped_observations,
        ),
        (
            "magnetar_learner_unknown_downstream_observations",
            "attempts on downstreams outside the configured --fleet, not learned",
            state.unknown_observations,
        ),
    ];
    for (name, help, value) in learned {
        counter(registry, name, help, value);
    }
    let limits = state.limits;
    let gauges = [
        ("magnetar_learner_routes", "routes in the learned state", state.routes.len() as u64),
        ("magnetar_learner_max_routes", "cap on routes", limits.max_routes as u64),
        (
            "magnetar_learner_max_downstreams_per_route",
            "cap on downstreams per route",
            limits.max_downstreams_per_route as u64,
        ),
        ("magnetar_learner_state_version", "learned state version", state.version),
    ];
    for (name, help, value) in gauges {
        gauge(registry, name, help, value);
    }
    let means = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let attempts = Family::<Labels, Counter>::default();
    for r in &state.routes {
        for d in &r.downstreams {
            let series = vec![("route", r.route.clone()), ("downstream", d.name.clone())];
            means.get_or_create(&series).set(d.mean);
            for (o, n) in magnetar_core::Outcome::ALL.iter().zip(d.outcomes) {
                let mut labels = series.clone();
                labels.push(("outcome", o.as_str().to_owned()));
                attempts.get_or_create(&labels).inc_by(n);
            }
        }
    }
    registry.register("magnetar_learner_posterior_mean", "decayed Beta posterior mean", means);
    registry.register("magnetar_learner_attempts", "attempts by outcome", attempts);
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value in the exposition format (`+Inf`, `-Inf`, `NaN` spelled as Prometheus does;
/// integral values without a fraction, as this summary has always written them).
fn float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        x.to_string()
    }
}

/// `magnetar_learner_latency_ms` as a Prometheus summary (quantiles, `_sum`, `_count`), which
/// `prometheus-client` cannot express (see the module docs).
fn latency_summary(out: &mut String, state: &StateSummary) {
    let name = "magnetar_learner_latency_ms";
    let _ = writeln!(out, "# HELP {name} attempt latency in milliseconds (since the state began)");
    let _ = writeln!(out, "# TYPE {name} summary");
    for r in &state.routes {
        for d in &r.downstreams {
            let labels = format!("route=\"{}\",downstream=\"{}\"", label(&r.route), label(&d.name));
            for (q, v) in [(0.5, d.p50_ms), (0.99, d.p99_ms)] {
                if let Some(v) = v {
                    let _ = writeln!(out, "{name}{{{labels},quantile=\"{q}\"}} {}", float(v));
                }
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", float(d.latency_sum_ms));
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", d.latency_count);
        }
    }
}

/// The consumer's liveness as gauges (ages in seconds; absent until the event happened).
fn consumer_metrics(registry: &mut Registry, consumer: &ConsumerReport) {
    gauge(
        registry,
        "magnetar_learner_kafka_consumer_up",
        "1 unless /healthz reports the consumer down",
        u64::from(consumer.is_up()),
    );
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
            float_gauge(registry, name, help, ms as f64 / 1000.0);
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
        let text = prometheus(Mode::Bridge, &counters, None, None);
        assert!(text.contains("magnetar_learner_ingest_errors_total{kind=\"invalid_json\"} 2"));
        assert!(text.contains("magnetar_learner_info{mode=\"bridge\"} 1"));
        let stats = stats_json(Mode::Kafka, &counters, None, None);
        assert_eq!(stats["rejected"]["by_kind"]["invalid_json"], 2);
        assert_eq!(stats["kafka"]["resumed_from"]["1"], 40);
    }
}
