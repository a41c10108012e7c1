//! Statistical acceptance tests of the strategy core, on the seeded simulator.
//!
//! Every test runs fixed seeds, so its outcome is a deterministic function of the code: it cannot
//! flake. The bands are still chosen as if the seeds were random, with the reasoning next to each
//! one, so that a change of seeds or of an RNG stream would not turn a sound strategy red.

use magnetar_core::strategy::{StrategyKind, StrategyParams};
use magnetar_sim::{self as sim, Aggregate, RunResult, Scenario, SimConfig, Stat};

const SEEDS: u64 = 20;
const REQUESTS: u64 = 20_000;

fn config(max_attempts: u32, points: usize) -> SimConfig {
    SimConfig { requests: REQUESTS, max_attempts, series_points: points, ..SimConfig::default() }
}

/// One run of `kind` per seed.
fn per_seed(scenario: &Scenario, kind: StrategyKind, config: &SimConfig) -> Vec<RunResult> {
    let params = StrategyParams::default();
    (1..=SEEDS).map(|seed| sim::run_kind(scenario, kind, &params, config, seed)).collect()
}

/// Means over `runs` (one per seed).
fn mean_of(runs: &[RunResult]) -> Aggregate {
    sim::aggregate(runs).expect("at least one run")
}

fn runs(scenario: &Scenario, kind: StrategyKind, config: &SimConfig) -> Aggregate {
    mean_of(&per_seed(scenario, kind, config))
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
        let (early, late) = (r.series.regret_at(2_000), r.series.regret_at(20_000));
        eprintln!(
            "{kind}: regret {early:.1} at 2,000, {late:.1} at 20,000; ucb1 {:.1}",
            ucb1.regret.mean
        );
        assert!(late < 3.0 * early, "{kind}: {early:.1} at 2,000 but {late:.1} at 20,000");
        assert!(late < ucb1.regret.mean, "{kind} {late:.1} vs ucb1 {:.1}", ucb1.regret.mean);
    }
}

/// One run's recovery from the change at request `change`: how many requests after it the first
/// window of 100 requests ends whose first choices had a mean success probability of at least
/// `threshold` (`None` if none does before the run ends), and that mean over requests 400..500
/// after the change.
fn recovery(r: &RunResult, change: u64, threshold: f64) -> (Option<u64>, f64) {
    let b = r.series.bucket;
    assert_eq!(100 % b, 0, "windows of 100 requests need buckets that divide 100");
    let window = |from: u64| r.series.expected_first_between(from, from + 100);
    let at = (change..REQUESTS - 100)
        .step_by(b as usize)
        .find(|from| window(*from) >= threshold)
        .map(|from| from + 100 - change);
    (at, window(change + 400))
}

#[test]
fn abrupt_change_forgetting_strategies_recover_within_500_requests() {
    // Downstreams at 95/85/75/65/55%; at the scenario's change point the 95% one drops to 20%.
    // "Recovered" is a first-choice success probability of at least 90% of the new oracle over
    // a window of 100 requests (the probability of the downstreams chosen, not the outcomes, so
    // the only noise is the strategy's own choices).
    let config = config(1, 400); // 50-request buckets
    let scenario = Scenario::named("abrupt", config.duration_ms()).unwrap();
    let change_ms = scenario.change_at_ms.expect("the abrupt scenario changes");
    let change = (change_ms as f64 / config.interarrival_ms).ceil() as u64;
    let new_oracle =
        scenario.downstreams.iter().map(|d| d.success.at(change_ms as f64)).fold(0.0, f64::max);
    assert!((new_oracle - 0.85).abs() < 1e-12);
    let threshold = 0.9 * new_oracle;
    let recoveries = |kind| -> Vec<(Option<u64>, f64)> {
        per_seed(&scenario, kind, &config).iter().map(|r| recovery(r, change, threshold)).collect()
    };
    let plain = recoveries(StrategyKind::Thompson);
    eprintln!("thompson: recovered after {:?}", plain.iter().map(|r| r.0).collect::<Vec<_>>());
    for kind in [StrategyKind::ThompsonDiscounted, StrategyKind::ThompsonWindow] {
        let runs = recoveries(kind);
        eprintln!("{kind}: recovered after {:?}", runs.iter().map(|r| r.0).collect::<Vec<_>>());
        // Per run: at least 19 of 20 seeds are back within 500 requests. Measured: all 20
        // (discounted after 200 to 450 requests, sliding window 100 to 250). One seed in twenty
        // may miss, so that a change of random streams moving one borderline seed past 500 does
        // not turn a sound strategy red; two would mean it no longer recovers in 95% of runs.
        let recovered = runs.iter().filter(|r| r.0.is_some_and(|n| n <= 500)).count();
        assert!(recovered >= 19, "{kind}: {recovered} of 20 seeds recovered within 500");
        // And stays recovered: over requests 400..500 after the change, the mean over seeds is
        // still above the threshold (measured: 81% discounted, 83% sliding window; one seed of
        // discounted dips to 75.9% while it re-explores the fallen downstream).
        let late = Stat::of(runs.iter().map(|r| r.1)).mean;
        assert!(late >= threshold, "{kind}: {late:.3} over requests 400..500 after the change");
        // Plain Thompson sampling is slower in every seed: its 9,500 observations of a 95%
        // downstream take well over 500 requests of 20% to outweigh (measured: 1,950 to 3,350).
        for ((r, p), seed) in runs.iter().zip(&plain).zip(1..) {
            let (mine, theirs) = (r.0.unwrap_or(u64::MAX), p.0.unwrap_or(u64::MAX));
            assert!(theirs > mine, "seed {seed}: plain thompson {:?} vs {kind} {:?}", p.0, r.0);
        }
    }
    // At least 19 of 20 seeds of plain Thompson have not recovered within 500 requests (measured:
    // none has), and on the mean it is still far below the threshold over requests 400..500.
    let quick = plain.iter().filter(|r| r.0.is_some_and(|n| n <= 500)).count();
    assert!(quick <= 1, "plain thompson recovered within 500 requests in {quick} seeds");
    let plain_late = Stat::of(plain.iter().map(|r| r.1)).mean;
    assert!(plain_late < threshold, "plain thompson already at {plain_late:.3}");
}

#[test]
fn three_attempts_on_a_50_20_5_fleet_succeed_at_least_99_4_percent() {
    // With three distinct downstreams failing 50%, 20% and 5%, a request fails only if all three
    // fail: 0.5 * 0.2 * 0.05 = 0.5%, so the oracle serves 99.5%. 20 x 20,000 requests give an sd
    // of sqrt(0.005 * 0.995 / 400,000) = 0.011 points on the mean: 99.4% is 9 sd below 99.5%.
    // The retry budget (20% + 10/s) is on, as in production.
    let config = config(3, 200);
    let scenario = Scenario::named("retries", config.duration_ms()).unwrap();
    let ts = per_seed(&scenario, StrategyKind::Thompson, &config);
    let rr = per_seed(&scenario, StrategyKind::RoundRobin, &config);
    let (ts_mean, rr_mean) = (mean_of(&ts), mean_of(&rr));
    let (ts_rate, rr_rate) = (100.0 * ts_mean.success_rate.mean, 100.0 * rr_mean.success_rate.mean);
    let (ts_attempts, rr_attempts) =
        (ts_mean.attempts_per_request.mean, rr_mean.attempts_per_request.mean);
    eprintln!(
        "3 attempts: thompson {ts_rate:.3}%, {ts_attempts:.3} attempts/request; round robin \
         {rr_rate:.3}%, {rr_attempts:.3}"
    );
    assert!(ts_rate >= 99.4, "{ts_rate:.3}%");
    for r in ts.iter().chain(&rr) {
        let s = &r.summary;
        assert!(s.max_attempts <= 3, "{} attempts", s.max_attempts);
        // No attempt is penalised, so the score is exactly the successes.
        assert_eq!(s.best_guess_score, s.successes as i64, "{} seed {}", r.strategy, r.seed);
    }
    // Thompson sampling's 6% of retries stay well inside the retry budget.
    assert!(ts.iter().all(|r| r.retries_denied == 0));
    // Thompson sampling puts the first attempt on the 95% downstream, so a request needs
    // 1 + 0.05 + 0.05 x 0.2 = 1.06 attempts on average (measured 1.061): at most 1.1 per run
    // leaves room for the exploration of the first seconds.
    for r in &ts {
        let a = r.summary.attempts_per_request;
        assert!(a <= 1.1, "thompson seed {}: {a:.3} attempts per request", r.seed);
    }
    // Round robin, the contrast: its first attempts spread evenly, so it needs about
    // 1 + 0.25 + 0.04 = 1.29 attempts (measured 1.290), runs into the retry budget (about 200
    // retries refused per run) and sends a third of its retries to the 50% downstream: it
    // succeeds less (measured 98.5% against Thompson's 99.5%, per-run sd about 0.1 point), so
    // half a point below Thompson's mean holds in every seed with room to spare.
    assert!(rr_attempts > 1.2, "round robin {rr_attempts:.3} attempts per request");
    for r in &rr {
        let rate = 100.0 * r.summary.success_rate;
        assert!(
            rate < ts_rate - 0.5,
            "round robin seed {}: {rate:.3}% vs thompson {ts_rate:.3}%",
            r.seed
        );
    }
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
    for max_attempts in [1, 3] {
        let config = config(max_attempts, 200);
        let rr = per_seed(&scenario, StrategyKind::RoundRobin, &config);
        let ts = per_seed(&scenario, StrategyKind::Thompson, &config);
        let (rr_mean, ts_mean) = (mean_of(&rr), mean_of(&ts));
        let regret = |r: &RunResult| r.summary.regret;
        let success = |r: &RunResult| r.summary.success_rate;
        for kind in [StrategyKind::ThompsonMasked, StrategyKind::BlockingBandit] {
            let runs = per_seed(&scenario, kind, &config);
            let runs_mean = mean_of(&runs);
            eprintln!(
                "{kind}, {max_attempts} attempt(s): regret {:.1} (round robin {:.1}, thompson \
                 {:.1}), success {:.4}% ({:.4}%, {:.4}%)",
                runs_mean.regret.mean,
                rr_mean.regret.mean,
                ts_mean.regret.mean,
                100.0 * runs_mean.success_rate.mean,
                100.0 * rr_mean.success_rate.mean,
                100.0 * ts_mean.success_rate.mean,
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
                    runs_mean.regret.mean < 0.99 * rr_mean.regret.mean,
                    "{kind}: regret vs round robin"
                );
                assert!(
                    runs_mean.success_rate.mean > rr_mean.success_rate.mean - 0.0001,
                    "{kind}: success vs round robin"
                );
            }
        }
    }
}
