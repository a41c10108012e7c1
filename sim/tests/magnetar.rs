//! Acceptance tests of the `magnetar` strategy on the seeded simulator: every built-in scenario,
//! single attempt and three attempts, against the oracle and against every other strategy.
//!
//! The runs are seeded, so each test is a deterministic function of the code and cannot flake;
//! the bands are still argued as if the seeds were random (next to each assertion).

use std::thread;

use magnetar_core::retry::RetryMode;
use magnetar_core::strategy::{StrategyKind, StrategyParams};
use magnetar_sim::{self as sim, Aggregate, SCENARIOS, Scenario, SimConfig};

const SEEDS: u64 = 10;
const REQUESTS: u64 = 20_000;

fn config(max_attempts: u32, retry_mode: RetryMode) -> SimConfig {
    SimConfig {
        requests: REQUESTS,
        max_attempts,
        retry_mode,
        series_points: 20,
        ..SimConfig::default()
    }
}

/// What the router builds its strategies with for this run (see `RouterConfig::strategy_params`).
fn params(scenario: &Scenario, config: &SimConfig) -> StrategyParams {
    let mut p = StrategyParams { penalty_free_attempts: config.max_attempts, ..Default::default() };
    p.magnetar.repeats = config.retry_mode != RetryMode::Distinct;
    p.magnetar.attempt_timeout_ms = scenario.configure(config).attempt_timeout_ms as f64;
    p
}

fn mean(scenario: &Scenario, kind: StrategyKind, config: &SimConfig) -> Aggregate {
    let params = params(scenario, config);
    let runs: Vec<_> =
        (1..=SEEDS).map(|seed| sim::run_kind(scenario, kind, &params, config, seed)).collect();
    sim::aggregate(&runs).expect("runs")
}

/// Every strategy's mean success on `scenario`, computed on two threads.
fn table(scenario: &Scenario, config: &SimConfig) -> Vec<(StrategyKind, f64, f64)> {
    let kinds = StrategyKind::ALL;
    let half = kinds.len().div_ceil(2);
    thread::scope(|s| {
        let parts: Vec<_> = kinds
            .chunks(half)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|k| {
                            let a = mean(scenario, *k, config);
                            (*k, 100.0 * a.success_rate.mean, 100.0 * a.oracle_success_rate.mean)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|h| h.join().expect("thread")).collect()
    })
}

/// Magnetar against the oracle and the best other strategy on every scenario.
fn near_the_oracle_and_the_best(max_attempts: u32) {
    let config = config(max_attempts, RetryMode::Distinct);
    let mut failures = Vec::new();
    for name in SCENARIOS {
        let scenario = Scenario::builtin(name, &config).expect("built-in scenario");
        let rows = table(&scenario, &config);
        let (_, ours, oracle) =
            *rows.iter().find(|r| r.0 == StrategyKind::Magnetar).expect("magnetar row");
        let (best_kind, best, _) = rows
            .iter()
            .filter(|r| r.0 != StrategyKind::Magnetar)
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .expect("other strategies");
        // The outcome noise of the mean of 10 runs of 20,000 requests is at most
        // sqrt(0.25 / 200,000) = 0.11 points, and it is shared between strategies run with the
        // same seeds as far as their choices agree: 0.5 points is more than 4 sd of a difference.
        let line = format!(
            "{name}: magnetar {ours:.2}% ({:.1}% of the oracle's {oracle:.2}%), best other \
             {best_kind} {best:.2}%",
            100.0 * ours / oracle
        );
        println!("{line}");
        if ours < 0.97 * oracle || ours < best - 0.5 {
            failures.push(line);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn single_attempt_near_the_oracle_and_the_best_other_strategy() {
    near_the_oracle_and_the_best(1);
}

#[test]
fn three_attempts_near_the_oracle_and_the_best_other_strategy() {
    near_the_oracle_and_the_best(3);
}

#[test]
fn prototype_fleet_three_repeatable_attempts_pass_a_quarter() {
    // 90%-failing best downstream, three attempts, repeats allowed, no retry budget: three
    // independent tries on it succeed 1 - 0.9^3 = 27.1% of the time. Magnetar loses a little to
    // learning the fleet and to probing the dead downstreams; 25% leaves 2 points, against an
    // outcome noise of sqrt(0.27 * 0.73 / 200,000) = 0.1 points.
    let config = SimConfig { retry_budget: None, ..config(3, RetryMode::Auto) };
    let scenario = Scenario::builtin("prototype", &config).unwrap();
    let a = mean(&scenario, StrategyKind::Magnetar, &config);
    let rate = 100.0 * a.success_rate.mean;
    assert!(rate >= 25.0, "magnetar {rate:.2}%");
    let distinct = mean(
        &scenario,
        StrategyKind::Thompson,
        &SimConfig { retry_mode: RetryMode::Distinct, ..config.clone() },
    );
    assert!(100.0 * distinct.success_rate.mean < 10.5, "distinct retries are capped at 10%");
}
