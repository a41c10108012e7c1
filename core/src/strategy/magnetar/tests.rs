//! Unit tests of the strategy as a whole; its parts are tested in their own modules.

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

fn fb(outcome: Outcome, latency_ms: f64, now_ms: u64) -> Feedback {
    Feedback { outcome, latency_ms, now_ms, attempt: 1 }
}

/// Sends `n` first attempts, one every 10 ms from `t0`, answered after `latency(arm)` ms with
/// `outcome(arm, i)`; returns the picks.
fn drive(
    s: &mut Magnetar,
    n: u64,
    t0: u64,
    rng: &mut SmallRng,
    mut outcome: impl FnMut(ArmId, u64) -> Outcome,
    latency: impl Fn(ArmId) -> f64,
) -> Vec<ArmId> {
    let mut picks = Vec::new();
    for i in 0..n {
        let now = t0 + i * 10;
        let arm = s.select(&SelectContext::first(now), rng).unwrap();
        let lat = latency(arm);
        s.update(arm, &fb(outcome(arm, i), lat, now + lat as u64));
        picks.push(arm);
    }
    picks
}

#[test]
fn never_picks_an_excluded_arm_and_none_only_when_all_are() {
    let mut s = Magnetar::new(3);
    let mut rng = SmallRng::seed_from_u64(1);
    for t in 0..500 {
        let ctx = SelectContext::new(&[1], 2, t).remaining(2);
        let arm = s.select(&ctx, &mut rng).unwrap();
        assert_ne!(arm, 1);
        s.update(arm, &fb(Outcome::ServerError, 5.0, t));
    }
    assert_eq!(s.select(&SelectContext::new(&[0, 1, 2], 3, 0), &mut rng), None);
}

#[test]
fn learns_the_best_downstream() {
    let mut s = Magnetar::new(3);
    let mut rng = SmallRng::seed_from_u64(2);
    let rates = [0.5, 0.8, 0.95];
    let mut env = SmallRng::seed_from_u64(3);
    let picks = drive(
        &mut s,
        5_000,
        0,
        &mut rng,
        |arm, _| {
            if rand::Rng::random_bool(&mut env, rates[arm]) {
                Outcome::Success
            } else {
                Outcome::ServerError
            }
        },
        |_| 20.0,
    );
    let late = &picks[4_000..];
    let best = late.iter().filter(|a| **a == 2).count();
    assert!(best > 950, "best arm took {best} of the last 1,000");
}

#[test]
fn a_dead_downstream_that_recovers_wins_its_traffic_back() {
    // Arm 0 dead for 20 s, then perfect; arm 1 at 80% throughout. 100 requests/s.
    let mut s = Magnetar::new(2);
    let mut rng = SmallRng::seed_from_u64(4);
    let mut env = SmallRng::seed_from_u64(5);
    let picks = drive(
        &mut s,
        4_000,
        0,
        &mut rng,
        |arm, i| match (arm, i < 2_000) {
            (0, true) => Outcome::ServerError,
            (0, false) => Outcome::Success,
            _ if rand::Rng::random_bool(&mut env, 0.8) => Outcome::Success,
            _ => Outcome::ServerError,
        },
        |_| 20.0,
    );
    let share = |r: std::ops::Range<usize>| {
        picks[r.clone()].iter().filter(|a| **a == 0).count() as f64 / r.len() as f64
    };
    assert!(share(1_000..2_000) < 0.05, "dead share {}", share(1_000..2_000));
    assert!(share(3_000..4_000) > 0.9, "recovered share {}", share(3_000..4_000));
    assert!(s.changes(0) >= 1);
}

#[test]
fn a_stalling_downstream_loses_its_traffic_before_any_timeout() {
    // Two equal downstreams answering in 20 ms; from t = 10 s arm 0 stops answering. Attempts
    // sent to it stay pending; within 200 ms (well under a 1 s timeout) it gets no new ones.
    let mut s = Magnetar::new(2);
    let mut rng = SmallRng::seed_from_u64(6);
    for i in 0..1_000u64 {
        let now = i * 10;
        let arm = s.select(&SelectContext::first(now), &mut rng).unwrap();
        s.update(arm, &fb(Outcome::Success, 20.0, now + 20));
    }
    let mut to_zero = Vec::new();
    for i in 0..100u64 {
        let now = 10_000 + i * 10;
        let arm = s.select(&SelectContext::first(now), &mut rng).unwrap();
        if arm == 0 {
            to_zero.push(now); // never answered
        } else {
            s.update(arm, &fb(Outcome::Success, 20.0, now + 20));
        }
    }
    let after = to_zero.iter().filter(|t| **t >= 10_200).count();
    assert!(
        after <= 1,
        "sent {after} attempts to the stalled downstream after 200 ms: {to_zero:?}"
    );
}

#[test]
fn plans_for_latency_when_success_is_equal() {
    // Both always succeed; arm 0 answers in 200 ms, arm 1 in 20 ms. With two attempts left the
    // fast one goes first; with one left, too (equal success, lower cost breaks the tie only in
    // the chain): most first picks go to arm 1.
    let mut s = Magnetar::new(2);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut fast = 0;
    for i in 0..2_000u64 {
        let now = i * 10;
        let arm = s.select(&SelectContext::first(now).remaining(2), &mut rng).unwrap();
        let lat = if arm == 0 { 200.0 } else { 20.0 };
        s.update(arm, &fb(Outcome::Success, lat, now + lat as u64));
        if i >= 1_000 && arm == 1 {
            fast += 1;
        }
    }
    assert!(fast > 900, "fast host took {fast} of the last 1,000");
}

#[test]
fn repeats_a_downstream_whose_failures_are_independent() {
    // The prototype's fleet: 100%, 100%, 90% failing, independent. With repeats allowed, a retry
    // after a failure on arm 2 goes to arm 2 again once the strategy has learned the fleet.
    let mut s = Magnetar::with_config(3, MagnetarConfig { repeats: true, ..Default::default() });
    let mut rng = SmallRng::seed_from_u64(8);
    let mut env = SmallRng::seed_from_u64(9);
    let mut repeats_late = 0;
    for i in 0..3_000u64 {
        let now = i * 10;
        let mut plan =
            crate::retry::AttemptPlan::new(3, 3, now + 6_000).mode(crate::retry::RetryMode::Auto);
        loop {
            let ctx = plan.select_context(now);
            let arm = s.select(&ctx, &mut rng).unwrap();
            if i >= 2_000 && ctx.previous == Some(2) && arm == 2 {
                repeats_late += 1;
            }
            let ok = arm == 2 && rand::Rng::random_bool(&mut env, 0.1);
            let outcome = if ok { Outcome::Success } else { Outcome::ServerError };
            s.update(
                arm,
                &Feedback { outcome, latency_ms: 1.0, now_ms: now, attempt: ctx.attempt },
            );
            let rec = crate::retry::AttemptRecord {
                arm,
                outcome,
                status: None,
                latency_ms: 1.0,
                hedged: false,
            };
            if plan.record(rec, now) != crate::retry::Next::Retry {
                break;
            }
        }
    }
    // 1,000 requests, ~90% fail their first attempt on arm 2, and most of those repeat it.
    assert!(repeats_late > 1_200, "{repeats_late} repeats of arm 2");
    assert!(s.repeats(2).unwrap().pulls() > 1_000.0);
}

#[test]
fn a_429_paces_instead_of_counting_as_a_failure() {
    let mut s = Magnetar::new(2);
    s.update(0, &fb(Outcome::RateLimited, 5.0, 10));
    assert_eq!(s.settled(0).unwrap().pulls(), 0.0);
    let mut rng = SmallRng::seed_from_u64(10);
    // Resting: the next picks within the cooldown go to arm 1.
    for t in 11..200 {
        assert_eq!(s.select(&SelectContext::first(t), &mut rng), Some(1));
    }
}

#[test]
fn snapshot_exports_the_settled_evidence_and_restore_replaces_it() {
    let mut s = Magnetar::new(2);
    for t in 0..10 {
        s.update(1, &fb(Outcome::Success, 5.0, t));
    }
    let snap = s.snapshot(100);
    assert_eq!(snap.arms[1].successes, 10.0);
    let mut t = Magnetar::new(2);
    t.restore(&snap).unwrap();
    assert_eq!(t.settled(1), s.settled(1));
    assert!(t.restore(&PosteriorSnapshot::of(&[ArmPosterior::default()], 0)).is_err());
}

#[test]
fn config_errors_name_the_parameter() {
    let bad = MagnetarConfig { hazard_per_s: f64::NAN, ..Default::default() };
    assert!(bad.check().unwrap_err().to_string().contains("hazard"));
    let bad = MagnetarConfig { stall_factor: 0.5, ..Default::default() };
    assert!(bad.check().unwrap_err().to_string().contains("stall factor"));
    assert_eq!(MagnetarConfig::default().check(), Ok(()));
    // Each bad field falls back to its own default; the good ones are kept.
    let mixed = MagnetarConfig { hazard_per_s: 0.5, attempt_cost_ms: -1.0, ..Default::default() };
    let s = Magnetar::with_config(2, mixed);
    assert_eq!(s.config().hazard_per_s, 0.5);
    assert_eq!(s.config().attempt_cost_ms, DEFAULT_ATTEMPT_COST_MS);
}

#[test]
fn objectives_parse_and_name_what_is_wrong() {
    assert_eq!("success".parse::<Objective>(), Ok(Objective::Success));
    assert_eq!("latency_slo:250".parse::<Objective>(), Ok(Objective::LatencySlo { ms: 250 }));
    for bad in ["latency_slo:0", "latency_slo:", "fast", "latency_slo:-3"] {
        let err = bad.parse::<Objective>().unwrap_err().to_string();
        assert!(err.contains(bad) && err.contains("latency_slo:N"), "{err}");
    }
    assert_eq!(Objective::LatencySlo { ms: 9 }.to_string(), "latency_slo:9");
}

#[test]
fn a_latency_objective_prefers_the_host_that_answers_in_time() {
    // Arm 0: 99.9% but 300 ms; arm 1: 97% in 20 ms. For success alone arm 0 wins a single
    // attempt; with a 100 ms objective arm 1 does.
    let learn = |objective| {
        let config = MagnetarConfig { objective, ..Default::default() };
        let mut s = Magnetar::with_config(2, config);
        for t in 0..1_000u64 {
            s.update(
                0,
                &fb(if t % 1000 == 0 { Outcome::ServerError } else { Outcome::Success }, 300.0, t),
            );
            s.update(
                1,
                &fb(if t % 33 == 0 { Outcome::ServerError } else { Outcome::Success }, 20.0, t),
            );
        }
        let mut rng = SmallRng::seed_from_u64(11);
        (0..1_000)
            .filter(|t| s.select(&SelectContext::first(2_000 + t), &mut rng) == Some(1))
            .count()
    };
    assert!(learn(Objective::Success) < 100);
    assert!(learn(Objective::LatencySlo { ms: 100 }) > 990);
}

#[test]
fn attempts_are_cut_short_only_once_the_latency_is_known() {
    let mut s = Magnetar::new(1);
    assert_eq!(s.attempt_deadline_ms(0), None);
    for t in 0..50 {
        s.update(0, &fb(Outcome::Success, 20.0, t));
    }
    let d = s.attempt_deadline_ms(0).unwrap();
    assert!((50.0..=200.0).contains(&d), "{d}");
    assert_eq!(s.attempt_deadline_ms(3), None);
}

#[test]
fn the_hedge_delay_is_the_latency_p95_and_only_a_slow_abandoned_attempt_is_a_failure() {
    let mut s = Magnetar::new(1);
    let mut rng = SmallRng::seed_from_u64(11);
    assert_eq!(s.hedge_delay_ms(0), None, "nothing learned");
    for i in 0..DEADLINE_MIN_SAMPLES {
        let now = i * 10;
        if i == DEADLINE_MIN_SAMPLES - 1 {
            assert_eq!(s.hedge_delay_ms(0), None, "too few samples");
        }
        assert_eq!(s.select(&SelectContext::first(now).remaining(3), &mut rng), Some(0));
        s.update(0, &fb(Outcome::Success, 20.0 + (i % 5) as f64, now + 20));
    }
    let p95 = s.latency(0).unwrap().quantile(HEDGE_Z);
    assert_eq!(s.hedge_delay_ms(0), Some(p95));
    assert!((22.0..30.0).contains(&p95), "p95 of 20-24 ms answers: {p95}");
    let before = s.settled(0).unwrap().clone();
    // A hedge cut short after 3 ms teaches nothing, and is no longer in flight.
    assert_eq!(s.select(&SelectContext::first(2_000), &mut rng), Some(0));
    s.abandoned(0, 2_000, 2_003);
    assert_eq!(s.settled(0).unwrap(), &before);
    assert!(s.arms[0].pending.is_empty());
    // An attempt abandoned beyond its p99 is a failure, and its slowness is learned.
    assert_eq!(s.select(&SelectContext::first(3_000), &mut rng), Some(0));
    s.abandoned(0, 3_000, 3_400);
    assert_eq!(s.settled(0).unwrap().failures, before.failures + 1.0);
    assert!(s.latency(0).unwrap().quantile(0.0) > 30.0, "the slow answer was learned");
    assert!(s.arms[0].pending.is_empty());
}
