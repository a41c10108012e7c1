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
        // `magnetar` does not read the request's context: where the best downstream depends on
        // the request, neither the per-request oracle nor the contextual strategies are its
        // yardstick (sim/tests/contextual.rs measures those).
        if scenario.context.is_some() {
            continue;
        }
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
        // The oracle does not model the retry budget (sim/src/oracle.rs): in `brownout` with
        // retries it is an upper bound no budgeted router reaches, so there only the comparison
        // with the other strategies applies.
        let oracle_applies = !(*name == "brownout" && max_attempts > 1);
        if (oracle_applies && ours < 0.97 * oracle) || ours < best - 0.5 {
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

#[test]
fn slow_host_single_attempt_keeps_three_nines() {
    // Linkerd's benchmark: peak EWMA kept 99.9%. 10 seeds x 20,000 requests; the host is slow for
    // 15 of the 20 s. Magnetar measured 99.94%: the stall is seen long before the 1 s timeout.
    let config = config(1, RetryMode::Distinct);
    let scenario = Scenario::builtin("slow_host", &config).expect("built-in scenario");
    let a = mean(&scenario, StrategyKind::Magnetar, &config);
    let rate = 100.0 * a.success_rate.mean;
    assert!(rate >= 99.9, "magnetar {rate:.3}%");
}

#[test]
fn reliable_but_slow_keeps_the_success_at_a_tenth_of_the_latency() {
    // 99.9% at 200 ms, 97% at 20 ms, 70% at 10 ms; three attempts. The success-only strategies
    // send nearly everything to the 200 ms host; Magnetar tries the 20 ms host first and falls
    // back, at the same success. Bands: success within 0.2 points of the best success-only
    // strategy, p50 at most 1.5x the 20 ms host's median.
    let config = config(3, RetryMode::Distinct);
    let scenario = Scenario::builtin("reliable_slow", &config).expect("built-in scenario");
    let ours = mean(&scenario, StrategyKind::Magnetar, &config);
    let best = [StrategyKind::Thompson, StrategyKind::KlUcb, StrategyKind::Ucb1Tuned]
        .iter()
        .map(|k| mean(&scenario, *k, &config).success_rate.mean)
        .fold(0.0, f64::max);
    let (rate, p50) = (100.0 * ours.success_rate.mean, ours.latency_p50_ms.mean);
    assert!(rate >= 100.0 * best - 0.2, "magnetar {rate:.3}% against {:.3}%", 100.0 * best);
    assert!(p50 <= 1.5 * 20.0, "magnetar p50 {p50:.1} ms");
}

#[test]
fn a_dead_fleet_gets_few_retries() {
    // Every downstream fails, 100 requests/s, three attempts, the default retry budget: the budget
    // pays for 20% of requests plus 10 retries a second, so at most 1.3 attempts per request.
    let config = config(3, RetryMode::Auto);
    let scenario = Scenario::constant("dead", &[0.0, 0.0, 0.0]);
    let a = mean(&scenario, StrategyKind::Magnetar, &config);
    let attempts = a.attempts_per_request.mean;
    assert!(attempts <= 1.3 + 1e-9, "{attempts:.3} attempts per request");
    assert_eq!(a.success_rate.mean, 0.0);
}
