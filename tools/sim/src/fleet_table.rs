//! The fleet-scale table: per strategy and number of isolates, success and % of oracle without
//! and with the learner.

use std::fmt::Write;

use magnetar_core::strategy::StrategyKind;
use magnetar_sim::{self as sim, FleetConfig, RunResult, Scenario, SimConfig, Spread};

/// One row: a strategy on a fleet of isolates, over every seed.
pub struct Job {
    pub kind: StrategyKind,
    pub fleet: FleetConfig,
}

/// The table for one scenario; `runs[i]` are the seeds of `jobs[i]`.
pub fn markdown(
    scenario: &Scenario,
    config: &SimConfig,
    seeds: u64,
    jobs: &[Job],
    runs: &[Vec<RunResult>],
) -> String {
    let mut out = String::new();
    let first = jobs.first().map(|j| j.fleet);
    let spread = match first.map(|f| f.spread) {
        Some(Spread::Skewed { exponent }) => format!("Zipf {exponent}"),
        _ => "even".to_owned(),
    };
    let learner = first.and_then(|f| f.learner).map_or(String::new(), |l| {
        format!(
            "; the learner: telemetry {} ms late, PARAMS_REFRESH_MS {}, half-life {} ms",
            l.telemetry_lag_ms, l.params_refresh_ms, l.half_life_ms
        )
    });
    let lifetime = first
        .and_then(|f| f.mean_lifetime_ms)
        .map_or(String::new(), |ms| format!("; isolates recycled after {ms:.0} ms on average"));
    let _ = writeln!(
        out,
        "### `{}` across isolates: {}\n\n{} seeds × {} requests, {} attempt(s) per request, arrivals spread {}{}{}\n",
        scenario.name,
        scenario.description,
        seeds,
        config.requests,
        config.max_attempts,
        spread,
        learner,
        lifetime,
    );
    let objective = config.latency_objective_ms;
    let slo = objective.map_or(String::new(), |ms| format!(" within {ms} ms % |"));
    let _ = writeln!(
        out,
        "| strategy | isolates | learner | success % |{slo} % of oracle | p99 ms | imports/request | recycles |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---|---:|{}---:|---:|---:|---:|",
        if slo.is_empty() { "" } else { "---:|" }
    );
    for (job, runs) in jobs.iter().zip(runs) {
        let Some(agg) = sim::aggregate(runs) else { continue };
        let n = runs.len().max(1) as f64;
        let stats = || runs.iter().filter_map(|r| r.fleet.as_ref());
        let imports: f64 = stats().map(|f| f.imports as f64).sum::<f64>() / n;
        let recycles: f64 = stats().map(|f| f.recycles as f64).sum::<f64>() / n;
        let within = agg
            .success_within_objective_rate
            .map_or(String::new(), |s| format!(" {:.2} |", 100.0 * s.mean));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} |{} {:.2} | {:.1} | {:.3} | {:.0} |",
            job.kind,
            job.fleet.isolates,
            if job.fleet.learner.is_some() { "yes" } else { "no" },
            100.0 * agg.success_rate.mean,
            within,
            agg.percent_of_oracle.mean,
            agg.latency_p99_ms.mean,
            imports / config.requests.max(1) as f64,
            recycles,
        );
    }
    out
}
