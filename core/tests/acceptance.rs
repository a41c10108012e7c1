//! Statistical acceptance tests of the strategy core, on the seeded simulator.
//!
//! Every test runs fixed seeds, so its outcome is a deterministic function of the code: it cannot
//! flake. The bands are still chosen as if the seeds were random, with the reasoning next to each
//! one, so that a change of seeds or of an RNG stream would not turn a sound strategy red.

use magnetar_core::sim::{self, Aggregate, RunResult, Scenario, SimConfig};
use magnetar_core::strategy::{StrategyKind, StrategyParams};

const SEEDS: u64 = 20;
const REQUESTS: u64 = 20_000;

fn config(max_attempts: u32, points: usize) -> SimConfig {
    SimConfig { requests: REQUESTS, max_attempts, series_points: points, ..SimConfig::default() }
}

fn runs(scenario: &Scenario, kind: StrategyKind, config: &SimConfig) -> Aggregate {
    let params = StrategyParams::default();
    let runs: Vec<_> =
        (1..=SEEDS).map(|seed| sim::run_kind(scenario, kind, &params, config, seed)).collect();
    sim::aggregate(&runs).expect("at least one run")
}

#[test]
fn prototype_profile_round_robin_and_thompson() {
    // The prototype's fleet fails 100%, 100% and 90% of attempts: the oracle serves 10%.
    let config = config(1, 200);
    let scenario = Scenario::named("prototype", config.duration_ms()).unwrap();

    // Round robin sends exactly a third of the requests to the 10% downstream: its success rate
    // is 3.33% with a per-run sd of sqrt(0.1 * 0.9 / 6,667) = 0.37 points, 0.08 points for the
    // mean of 20 runs. ±0.3 points is almost 4 sd of that mean.
    let rr = runs(&scenario, StrategyKind::RoundRobin, &config);
    let rr_rate = 100.0 * rr.success_rate.mean;
    assert!((rr_rate - 10.0 / 3.0).abs() < 0.3, "round robin {rr_rate:.3}%");

    // Thompson sampling loses a few dozen requests to the dead downstreams (regret ~15 of
    // 20,000, 0.07 points); the outcome noise of 20 x 20,000 requests at 10% is 0.05 points sd.
    // 9.6% leaves 0.4 points, 8 sd, for both.
    let ts = runs(&scenario, StrategyKind::Thompson, &config);
    let ts_rate = 100.0 * ts.success_rate.mean;
    assert!(ts_rate >= 9.6, "thompson {ts_rate:.3}%");
    assert!((ts.oracle_success_rate.mean - 0.1).abs() < 1e-12);
}

#[test]
fn spread_fleet_regret_is_sublinear_and_below_ucb1() {
    // Ten downstreams, 50% to 95%. Linear regret would grow 10x from 2,000 to 20,000 requests,
    // logarithmic regret about 1.3x; 3x separates the two with room for the early exploration
    // phase. Regret is the mean pseudo-regret over 20 seeds, whose sd is about 25/sqrt(20) = 6
    // for Thompson sampling, small against the margins measured (TS: 49 at 20,000 vs 3 x 33;
    // KL-UCB: 139 vs 3 x 60; UCB1: 657).
    let config = config(1, 200);
    let scenario = Scenario::named("spread", config.duration_ms()).unwrap();
    let ucb1 = runs(&scenario, StrategyKind::Ucb1, &config);
    for kind in [StrategyKind::Thompson, StrategyKind::KlUcb] {
        let r = runs(&scenario, kind, &config);
        let (early, late) = (r.regret_at(2_000), r.regret_at(20_000));
        eprintln!(
            "{kind}: regret {early:.1} at 2,000, {late:.1} at 20,000; ucb1 {:.1}",
            ucb1.regret.mean
        );
        assert!(late < 3.0 * early, "{kind}: {early:.1} at 2,000 but {late:.1} at 20,000");
        assert!(late < ucb1.regret.mean, "{kind} {late:.1} vs ucb1 {:.1}", ucb1.regret.mean);
    }
}

/// Requests after the change until the mean success probability of first choices, over a
/// 100-request window averaged over seeds, reaches `threshold` (None if it never does).
fn recovery(r: &Aggregate, change: u64, threshold: f64) -> Option<u64> {
    let b = r.series.bucket;
    (change..REQUESTS - 100)
        .step_by(b as usize)
        .find(|from| r.expected_first_between(*from, from + 100) >= threshold)
        .map(|from| from + 100 - change)
}

#[test]
fn abrupt_change_forgetting_strategies_recover_within_500_requests() {
    // Downstreams at 95/85/75/65/55%; halfway through the 95% one drops to 20%. The new oracle
    // is 85%, so "recovered" is a first-choice success probability of at least 76.5% over a
    // window of 100 requests (mean over 20 seeds, so 2,000 choices: sd under 1 point).
    let config = config(1, 400); // 50-request buckets
    let scenario = Scenario::named("abrupt", config.duration_ms()).unwrap();
    let change = REQUESTS / 2;
    let threshold = 0.9 * 0.85;
    let plain = runs(&scenario, StrategyKind::Thompson, &config);
    let plain_at = recovery(&plain, change, threshold);
    for kind in [StrategyKind::ThompsonDiscounted, StrategyKind::ThompsonWindow] {
        let r = runs(&scenario, kind, &config);
        let at = recovery(&r, change, threshold);
        eprintln!("{kind}: recovered after {at:?} requests; plain thompson {plain_at:?}");
        assert!(at.is_some_and(|n| n <= 500), "{kind} recovered after {at:?}");
        // Still recovered at the end of the window of the claim.
        let window = r.expected_first_between(change + 400, change + 500);
        assert!(window >= threshold, "{kind}: {window:.3} over requests 400..500 after");
        // Plain Thompson sampling is slower: its 9,500 observations of a 95% downstream take
        // well over 500 requests of 20% to outweigh.
        assert!(plain_at.is_none_or(|p| p > at.unwrap_or(0)), "plain {plain_at:?} vs {at:?}");
    }
    let plain_window = plain.expected_first_between(change + 400, change + 500);
    assert!(plain_window < threshold, "plain thompson already at {plain_window:.3}");
}

#[test]
fn three_attempts_on_a_50_20_5_fleet_succeed_at_least_99_4_percent() {
    // With three distinct downstreams failing 50%, 20% and 5%, a request fails only if all three
    // fail: 0.5 * 0.2 * 0.05 = 0.5%, so the oracle serves 99.5%. 20 x 20,000 requests give an sd
    // of sqrt(0.005 * 0.995 / 400,000) = 0.011 points on the mean: 99.4% is 9 sd below 99.5%.
    // The retry budget (20% + 10/s) is on, as in production; Thompson sampling puts the first
    // attempt on the 95% downstream, so about 5.5% of requests retry.
    let config = config(3, 200);
    let scenario = Scenario::named("retries", config.duration_ms()).unwrap();
    let r = runs(&scenario, StrategyKind::Thompson, &config);
    let rate = 100.0 * r.success_rate.mean;
    eprintln!(
        "thompson with 3 attempts: {rate:.3}%, {:.3} attempts/request",
        r.attempts_per_request.mean
    );
    assert!(rate >= 99.4, "{rate:.3}%");
    assert!(r.max_attempts <= 3, "{} attempts", r.max_attempts);
    assert_eq!(r.retries_denied.mean, 0.0);
}

#[test]
fn rate_limit_aware_strategies_beat_thompson_and_round_robin_on_rate_limited() {
    // Two excellent downstreams (99%, 97%) accept 40 attempts in any second and answer 429 above;
    // a third (85%) has no limit; 100 requests/s. The best split is 40/40/20 (95.4% success with
    // one attempt). Round robin stays under both limits by luck (33/s each: 93.6%, regret 1,067);
    // plain Thompson sampling counts 429s as failures and keeps hitting the limits (85%, 2,700).
    // V6 (thompson_masked) and V8 (blocking_bandit) learn each limit from its first 429 and pace
    // the downstream to it (measured: 95.3%, regret 14-36 in every seed).
    let scenario = Scenario::named("rate_limited", config(1, 200).duration_ms()).unwrap();
    let params = StrategyParams::default();
    for max_attempts in [1, 3] {
        let config = config(max_attempts, 200);
        let per_seed = |kind| -> Vec<RunResult> {
            (1..=SEEDS).map(|seed| sim::run_kind(&scenario, kind, &params, &config, seed)).collect()
        };
        let rr = per_seed(StrategyKind::RoundRobin);
        let ts = per_seed(StrategyKind::Thompson);
        let mean = |runs: &[RunResult], f: fn(&RunResult) -> f64| {
            runs.iter().map(f).sum::<f64>() / runs.len() as f64
        };
        let regret = |r: &RunResult| r.summary.regret;
        let success = |r: &RunResult| r.summary.success_rate;
        for kind in [StrategyKind::ThompsonMasked, StrategyKind::BlockingBandit] {
            let runs = per_seed(kind);
            eprintln!(
                "{kind}, {max_attempts} attempt(s): regret {:.1} (round robin {:.1}, thompson \
                 {:.1}), success {:.4}% ({:.4}%, {:.4}%)",
                mean(&runs, regret),
                mean(&rr, regret),
                mean(&ts, regret),
                100.0 * mean(&runs, success),
                100.0 * mean(&rr, success),
                100.0 * mean(&ts, success),
            );
            // Against plain Thompson sampling, in every seed: at most half its regret and at
            // least 0.1 point more success (measured: a third of its regret or less, +0.2 point
            // with three attempts, +10 points with one).
            for ((r, t), seed) in runs.iter().zip(&ts).zip(1..) {
                assert!(
                    regret(r) < 0.5 * regret(t),
                    "{kind} seed {seed}: {} vs thompson {}",
                    regret(r),
                    regret(t)
                );
                assert!(success(r) > success(t) + 0.001, "{kind} seed {seed}: success vs thompson");
            }
            if max_attempts == 1 {
                // One attempt: in every seed, regret below a tenth of round robin's and at least
                // one point more success (measured: regret under 40 against 1,067; 95.1-95.7%
                // against 93.4-93.9%).
                for ((r, rr), seed) in runs.iter().zip(&rr).zip(1..) {
                    assert!(
                        regret(r) < 0.1 * regret(rr),
                        "{kind} seed {seed}: regret {}",
                        regret(r)
                    );
                    assert!(success(r) > success(rr) + 0.01, "{kind} seed {seed}: success");
                }
            } else {
                // Three attempts: every strategy but plain Thompson serves about 99.98%, and
                // keeping headroom for retries on the limited downstreams is regret by the
                // oracle's per-attempt measure, so the margins are thin. On the mean over 20
                // seeds, regret at least 1% below round robin's (measured 2-3% below; the sd of
                // the per-seed difference is about 15, so the mean's is under 4 and 1% (11) is
                // about 4 sd inside the measured gap), and success no more than 0.01 point
                // (2 requests in 20,000) below round robin's (measured within 0.003 point either
                // way; the sd of the mean difference is about 0.002 point).
                assert!(
                    mean(&runs, regret) < 0.99 * mean(&rr, regret),
                    "{kind}: regret vs round robin"
                );
                assert!(
                    mean(&runs, success) > mean(&rr, success) - 0.0001,
                    "{kind}: success vs round robin"
                );
            }
        }
    }
}
