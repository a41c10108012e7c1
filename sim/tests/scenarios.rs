//! The new built-in scenarios behave as their descriptions say, on fixed seeds, with the
//! reasoning for each band next to it.

use magnetar_core::retry::RetryMode;
use magnetar_core::strategy::{StrategyKind, StrategyParams};
use magnetar_sim::oracle::{self, HostOdds, RetryOptions};
use magnetar_sim::{self as sim, Aggregate, SCENARIOS, Scenario, SimConfig};

fn runs(scenario: &Scenario, kind: StrategyKind, config: &SimConfig, seeds: u64) -> Aggregate {
    let params = StrategyParams::default();
    let runs: Vec<_> =
        (1..=seeds).map(|seed| sim::run_kind(scenario, kind, &params, config, seed)).collect();
    sim::aggregate(&runs).expect("at least one run")
}

#[test]
fn slow_host_matches_linkerds_published_figures() {
    // 11 hosts at 1,000 req/s for 60 s; one answers in 2 s (the attempt timeout is 1 s) for 30 s.
    // Round robin sends it exactly 1/11 of the requests, so it loses 30,000 / 11 of 60,000
    // requests (4.5%): 95.5%, inside Linkerd's 93-97% with no randomness in the share. Least
    // outstanding sees the slow host's requests pile up (about 90 in flight against 2) and avoids
    // it; it measured 99.8%, and 98% leaves it over 3 points of room.
    let config = SimConfig { requests: 60_000, ..SimConfig::default() };
    let scenario = Scenario::builtin("slow_host", &config).unwrap();
    let run_config = scenario.configure(&config);
    assert_eq!((run_config.interarrival_ms, run_config.attempt_timeout_ms), (1.0, 1_000));
    assert_eq!(run_config.duration_ms(), 60_000);
    let rr = runs(&scenario, StrategyKind::RoundRobin, &config, 4);
    let rr_rate = 100.0 * rr.success_rate.mean;
    assert!((93.0..=97.0).contains(&rr_rate), "round robin {rr_rate:.2}%");
    let lo = runs(&scenario, StrategyKind::LeastOutstanding, &config, 4);
    let lo_rate = 100.0 * lo.success_rate.mean;
    assert!(lo_rate >= 98.0, "least outstanding {lo_rate:.2}%");
    // The oracle serves everything (ten fast hosts): % of oracle is the success rate.
    assert!((rr.percent_of_oracle.mean - rr_rate).abs() < 0.01);
    // The slow host's requests wait for the whole attempt timeout: round robin's p99 is 1 s.
    assert!((rr.latency_p99_ms.mean - 1_000.0).abs() < 2.0, "{}", rr.latency_p99_ms.mean);
}

#[test]
fn retrying_the_same_host_pays_only_when_failures_are_independent() {
    let config = SimConfig { max_attempts: 3, ..SimConfig::default() };
    let options = |distinct| RetryOptions {
        max_attempts: 3,
        distinct,
        attempt_timeout_ms: config.attempt_timeout_ms,
        request_deadline_ms: config.request_deadline_ms,
    };
    // Independent 90/60/50%: three tries of the 90% host fail with 0.1^3, moving on with
    // 0.1 x 0.4 x 0.5. Sticky (0.5): right after a failure the 90% host succeeds 45% of the
    // time, less than the 60% host, so the oracle moves on.
    let independent = [0.9, 0.6, 0.5].map(|p| HostOdds::independent(p, 20.0));
    let repeat = oracle::best_chain(&independent, &options(false));
    let distinct = oracle::best_chain(&independent, &options(true));
    assert!((repeat.success - 0.999).abs() < 1e-12 && (distinct.success - 0.98).abs() < 1e-12);
    let sticky = Scenario::builtin("sticky", &config).unwrap();
    assert!(sticky.downstreams.iter().all(|d| d.stickiness == 0.5));
    let sticky_odds = independent.map(|o| HostOdds { repeat_success: 0.5 * o.success, ..o });
    assert_eq!(oracle::best_chain(&sticky_odds, &options(false)).hosts, [0, 1, 2]);

    // In the simulator, with repeats allowed: the oracle of the independent fleet is 99.9%, of
    // the sticky one 98% (it moves on). Thompson sampling, which retries the host it believes
    // best, measured 99.9% and 97.0%: 5 seeds x 20,000 requests give each rate an sd under
    // 0.06 points, so a 1.5-point gap is over 15 sd, and it stays below the sticky oracle.
    let same_host =
        SimConfig { retry_mode: RetryMode::Repeat, retry_budget: None, ..config.clone() };
    let ind = Scenario::builtin("independent", &same_host).unwrap();
    let a = runs(&ind, StrategyKind::Thompson, &same_host, 5);
    let b = runs(&sticky, StrategyKind::Thompson, &same_host, 5);
    assert!((a.oracle_success_rate.mean - 0.999).abs() < 1e-9, "{}", a.oracle_success_rate.mean);
    assert!((b.oracle_success_rate.mean - 0.98).abs() < 1e-9, "{}", b.oracle_success_rate.mean);
    assert!(b.success_rate.mean < a.success_rate.mean - 0.015, "{a:?} {b:?}");
    assert!(b.success_rate.mean < b.oracle_success_rate.mean + 0.002, "{b:?}");
}

#[test]
fn poison_requests_fail_on_every_host_in_their_share() {
    // 2% of requests fail everywhere. 5 x 20,000 requests: the share's sd is
    // sqrt(0.02 x 0.98 / 100,000) = 0.044 points; 0.3 points is about 7 sd.
    let config = SimConfig { max_attempts: 3, retry_budget: None, ..SimConfig::default() };
    let scenario = Scenario::builtin("poison", &config).unwrap();
    let rr = runs(&scenario, StrategyKind::RoundRobin, &config, 5);
    // Without poison, 3 distinct attempts on 97/92/85% fail 0.03 x 0.08 x 0.15 = 0.036%.
    let clean = 1.0 - 0.03 * 0.08 * 0.15;
    assert!((rr.oracle_success_rate.mean - 0.98 * clean).abs() < 0.003, "{rr:?}");
    assert!((rr.success_rate.mean - 0.98 * clean).abs() < 0.003, "{}", rr.success_rate.mean);
    // Poison requests use the whole budget: attempts per request exceed the clean fleet's.
    assert!(rr.attempts_per_request.mean > 1.0 + 2.0 * 0.02, "{}", rr.attempts_per_request.mean);
}

#[test]
fn the_retry_budget_binds_during_a_brownout() {
    // 60 s at 20% success for every host: three attempts would serve 1 - 0.8^3 = 49% of those
    // requests, but the budget allows 20% of requests plus 10/s as retries.
    let config = SimConfig { max_attempts: 3, ..SimConfig::default() };
    let scenario = Scenario::builtin("brownout", &config).unwrap();
    let b = scenario.brownout.expect("a brownout");
    assert_eq!(b.until_ms - b.from_ms, 60_000);
    let with = runs(&scenario, StrategyKind::RoundRobin, &config, 3);
    let free = SimConfig { retry_budget: None, ..config.clone() };
    let without = runs(&scenario, StrategyKind::RoundRobin, &free, 3);
    assert!(with.retries_denied.mean > 1_000.0, "{}", with.retries_denied.mean);
    assert!(without.success_rate.mean > with.success_rate.mean + 0.02);
    assert!(without.attempts_per_request.mean > with.attempts_per_request.mean + 0.1);
}

#[test]
fn every_builtin_has_a_fleet_and_the_special_ones_their_shape() {
    let config = SimConfig::default();
    let all = Scenario::builtins(&config);
    assert_eq!(all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), SCENARIOS);
    let many = Scenario::builtin("many", &config).unwrap();
    let best = many.downstreams.iter().map(|d| d.success.at(0.0)).fold(0.0, f64::max);
    let second = many
        .downstreams
        .iter()
        .map(|d| d.success.at(0.0))
        .filter(|p| *p < best)
        .fold(0.0, f64::max);
    assert_eq!((many.arms(), best), (40, 0.97));
    assert!(second <= 0.85 + 1e-12, "{second}");
    let recovery = Scenario::builtin("recovery", &config).unwrap();
    let half = config.duration_ms() as f64 / 2.0;
    assert_eq!(recovery.downstreams[0].success.at(half - 1.0), 0.0);
    assert_eq!(recovery.downstreams[0].success.at(half), 0.98);
    let outages = Scenario::builtin("random_outages", &config).unwrap();
    assert_eq!(outages.downstreams[0].markov.len(), 2);
    let slow = Scenario::builtin("reliable_slow", &config).unwrap();
    let latencies: Vec<f64> = slow.downstreams.iter().map(|d| d.latency_ms).collect();
    assert_eq!(latencies, [200.0, 20.0, 10.0]);
}
