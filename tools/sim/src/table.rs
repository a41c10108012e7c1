//! The comparison table (markdown) and the CSV export.

use std::fmt::Write;

use magnetar_sim::{Aggregate, Scenario, SimConfig};

/// How retries were limited, for the table and the CSV: `20%+10/s,ttl=10s`, or `none`.
pub fn retry_budget(config: &SimConfig) -> String {
    match config.retry_budget {
        Some(b) => format!(
            "{}%+{}/s,ttl={}s",
            (1_000.0 * b.retry_percent).round() / 10.0,
            b.min_per_sec,
            b.ttl_ms as f64 / 1_000.0
        ),
        None => "none".to_owned(),
    }
}

/// One markdown table for a scenario, best (lowest regret) first.
pub fn markdown(
    scenario: &Scenario,
    config: &SimConfig,
    seeds: u64,
    results: &[Aggregate],
) -> String {
    let mut out = String::new();
    let oracle = results.first().map_or(0.0, |r| r.oracle_success_rate.mean);
    let oracle_latency = results.first().map_or(0.0, |r| r.oracle_latency_ms.mean);
    let budget = if config.max_attempts > 1 {
        format!(" (retry budget {})", retry_budget(config))
    } else {
        String::new()
    };
    let objective = config
        .latency_objective_ms
        .map_or(String::new(), |ms| format!(", latency objective {ms} ms"));
    let _ = writeln!(
        out,
        "### `{}`: {}\n\n{} seeds × {} requests, {} attempt(s) per request{}{}, oracle success {:.2}% (expected latency {:.1} ms)\n",
        scenario.name,
        scenario.description,
        seeds,
        config.requests,
        config.max_attempts,
        budget,
        objective,
        100.0 * oracle,
        oracle_latency
    );
    // The objective's column, only when the run has one.
    let (slo, slo_rule) = match config.latency_objective_ms {
        Some(ms) => (format!(" within {ms} ms % |"), "---:|"),
        None => (String::new(), ""),
    };
    let _ = writeln!(
        out,
        "| strategy | success % |{slo} % of oracle | 1st-attempt % | attempts/req | regret (± sd) | realized regret | score | p50 ms | p99 ms | p99.9 ms | traffic share % |"
    );
    let _ = writeln!(out, "|---|---:|{slo_rule}---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in results {
        let share: Vec<String> =
            r.traffic_share.iter().map(|s| format!("{:.0}", 100.0 * s)).collect();
        let within = r
            .success_within_objective_rate
            .map_or(String::new(), |s| format!(" {:.2} |", 100.0 * s.mean));
        let _ = writeln!(
            out,
            "| {} | {:.2} |{} {:.2} | {:.2} | {:.3} | {:.1} ± {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
            r.strategy,
            100.0 * r.success_rate.mean,
            within,
            r.percent_of_oracle.mean,
            100.0 * r.first_attempt_success_rate.mean,
            r.attempts_per_request.mean,
            r.regret.mean,
            r.regret.sd,
            r.realized_regret.mean,
            r.best_guess_score.mean,
            r.latency_p50_ms.mean,
            r.latency_p99_ms.mean,
            r.latency_p999_ms.mean,
            share.join("/"),
        );
    }
    out
}

/// The CSV's columns.
pub const CSV_HEADER: &str = "scenario,strategy,runs,success_rate,success_rate_sd,first_attempt_success_rate,attempts_per_request,max_attempts,regret,regret_sd,realized_regret,best_guess_score,latency_p50_ms,latency_p99_ms,latency_p999_ms,oracle_success_rate,percent_of_oracle,oracle_latency_ms,retries_denied,latency_objective_ms,success_within_objective_rate,traffic_share,attempt_budget,retry_budget";

/// One CSV row per (scenario, strategy). Traffic shares are `;`-separated, as is the retry
/// budget, so that no field needs quoting; the objective's two fields are empty without one.
pub fn csv(reports: &[(&Scenario, &SimConfig, &[Aggregate])]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for (scenario, config, results) in reports {
        let budget = retry_budget(config).replace(',', ";");
        let objective = config.latency_objective_ms.map_or(String::new(), |ms| ms.to_string());
        for r in *results {
            let within =
                r.success_within_objective_rate.map_or(String::new(), |s| format!("{:.6}", s.mean));
            let share: Vec<String> = r.traffic_share.iter().map(|s| format!("{s:.4}")).collect();
            let _ = writeln!(
                out,
                "{},{},{},{:.6},{:.6},{:.6},{:.4},{},{:.3},{:.3},{:.3},{:.1},{:.3},{:.3},{:.3},{:.6},{:.3},{:.3},{:.1},{},{},{},{},{}",
                scenario.name,
                r.strategy,
                r.runs,
                r.success_rate.mean,
                r.success_rate.sd,
                r.first_attempt_success_rate.mean,
                r.attempts_per_request.mean,
                r.max_attempts,
                r.regret.mean,
                r.regret.sd,
                r.realized_regret.mean,
                r.best_guess_score.mean,
                r.latency_p50_ms.mean,
                r.latency_p99_ms.mean,
                r.latency_p999_ms.mean,
                r.oracle_success_rate.mean,
                r.percent_of_oracle.mean,
                r.oracle_latency_ms.mean,
                r.retries_denied.mean,
                objective,
                within,
                share.join(";"),
                config.max_attempts,
                budget,
            );
        }
    }
    out
}
