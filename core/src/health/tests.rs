use super::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn on() -> HealthConfig {
    HealthConfig {
        ejection: true,
        ejection_base_ms: 1_000,
        ejection_max_ms: 5_000,
        slow_start_ms: 10_000,
        ..HealthConfig::default()
    }
}

fn fail(h: &mut FleetHealth, arm: ArmId, times: u32, now_ms: u64) {
    for _ in 0..times {
        h.observe(arm, Outcome::ConnectError, now_ms);
    }
}

#[test]
fn five_consecutive_failures_eject_for_a_growing_time() {
    let mut h = FleetHealth::new(on(), 4);
    fail(&mut h, 0, 4, 10);
    assert_eq!(h.phase(0), Some(Phase::Healthy));
    h.observe(0, Outcome::Success, 11);
    fail(&mut h, 0, 4, 12);
    assert_eq!(h.phase(0), Some(Phase::Healthy), "a success restarts the count");
    h.observe(0, Outcome::RateLimited, 13);
    h.observe(0, Outcome::ClientError, 13);
    fail(&mut h, 0, 4, 14);
    assert_eq!(h.phase(0), Some(Phase::Healthy), "a 4xx is a success");
    fail(&mut h, 0, 1, 15);
    assert_eq!(h.phase(0), Some(Phase::Ejected { until_ms: 1_015 }));
    let mut rng = SmallRng::seed_from_u64(1);
    assert_eq!(h.veto(500, &mut rng), [0]);
    assert!(h.advance(1_014).is_empty());
    assert_eq!(h.advance(1_015), [0], "probed when the ejection is over");
    assert_eq!(h.veto(1_015, &mut rng), [0], "no user request before the probe answers");
    h.probed(0, false, 1_100);
    assert_eq!(h.phase(0), Some(Phase::Ejected { until_ms: 3_100 }), "second time: 2 x base");
    assert_eq!(h.advance(3_100), [0]);
    h.probed(0, false, 3_100);
    assert_eq!(h.advance(6_100), [0]);
    h.probed(0, false, 6_100);
    assert_eq!(h.phase(0), Some(Phase::Ejected { until_ms: 10_100 }), "n-th time: n x base");
    assert_eq!(h.advance(10_100), [0]);
    h.probed(0, false, 10_100);
    assert_eq!(h.phase(0), Some(Phase::Ejected { until_ms: 15_100 }));
    assert_eq!(h.advance(15_100), [0]);
    h.probed(0, false, 15_100);
    assert_eq!(h.phase(0), Some(Phase::Ejected { until_ms: 20_100 }), "capped at the max");
    assert_eq!(h.advance(20_100), [0]);
    h.probed(0, true, 20_200);
    assert_eq!(h.phase(0), Some(Phase::Ramping { since_ms: 20_200 }));
    let c = h.view(20_200, &["a", "b", "c", "d"]).downstreams[0].counters;
    assert_eq!((c.ejections, c.probes, c.probe_failures, c.readmissions), (6, 6, 5, 1));
}

#[test]
fn failures_of_attempts_sent_before_the_ejection_do_not_extend_it() {
    let mut h = FleetHealth::new(on(), 2);
    fail(&mut h, 1, 5, 0);
    fail(&mut h, 1, 7, 10);
    assert_eq!(h.phase(1), Some(Phase::Ejected { until_ms: 1_000 }));
    let c = h.view(10, &[]).downstreams[1].counters;
    assert_eq!((c.failures, c.failures_while_out, c.ejections), (12, 7, 1));
}

#[test]
fn phi_ejects_a_downstream_whose_successes_stopped_before_five_failures() {
    let mut h = FleetHealth::new(on(), 2);
    for i in 0..50 {
        h.observe(0, Outcome::Success, i * 20);
    }
    // Last success at 980 ms; every 20 ms before. A failure 2 s later is no surprise alone...
    fail(&mut h, 0, 1, 3_000);
    assert_eq!(h.phase(0), Some(Phase::Healthy));
    // ...but a second one in a row, with phi far above 8, is.
    fail(&mut h, 0, 1, 3_010);
    assert!(matches!(h.phase(0), Some(Phase::Ejected { .. })));
    assert_eq!(h.view(3_010, &[]).downstreams[0].last_reason, Some(EjectReason::Phi));
}

#[test]
fn the_panic_threshold_keeps_half_the_fleet_in() {
    let mut h = FleetHealth::new(on(), 4);
    assert_eq!(h.max_ejected(), 2);
    for arm in 0..3 {
        fail(&mut h, arm, 5, 100);
    }
    let view = h.view(100, &["a", "b", "c", "d"]);
    assert_eq!(view.ejected, ["a", "b"]);
    assert_eq!(h.phase(2), Some(Phase::Suspect));
    assert!(view.panic_mode);
    let mut rng = SmallRng::seed_from_u64(2);
    assert_eq!(h.veto(200, &mut rng), [0, 1]);
    // A suspect that succeeds is healthy again, and panic mode ends.
    h.observe(2, Outcome::Success, 300);
    assert!(!h.panic_mode());
    for (n, max) in [(1, 0), (2, 1), (3, 1), (5, 2), (10, 5)] {
        assert_eq!(FleetHealth::new(on(), n).max_ejected(), max, "{n} downstreams");
    }
    let none = HealthConfig { panic_share: 0.0, ..on() };
    assert_eq!(FleetHealth::new(none, 3).max_ejected(), 3);
}

#[test]
fn with_probes_off_an_ejection_that_ends_readmits() {
    let mut h = FleetHealth::new(HealthConfig { probe: false, ..on() }, 2);
    fail(&mut h, 0, 5, 0);
    assert!(h.advance(1_000).is_empty());
    assert_eq!(h.phase(0), Some(Phase::Ramping { since_ms: 1_000 }));
    assert_eq!(h.advance(11_000), Vec::<ArmId>::new());
    assert_eq!(h.phase(0), Some(Phase::Healthy), "the ramp ends with the window");
}

#[test]
fn an_unanswered_probe_is_sent_again() {
    let mut h = FleetHealth::new(on(), 2);
    fail(&mut h, 0, 5, 0);
    assert_eq!(h.advance(1_000), [0]);
    assert!(h.advance(3_999).is_empty());
    assert_eq!(h.advance(4_000), [0], "2 x probe timeout + 1 s without an answer");
}

#[test]
fn ejection_off_changes_nothing() {
    let mut h = FleetHealth::new(HealthConfig::default(), 3);
    fail(&mut h, 0, 100, 0);
    let mut rng = SmallRng::seed_from_u64(3);
    assert!(h.veto(0, &mut rng).is_empty());
    assert!(h.advance(1_000_000).is_empty());
    assert_eq!(h.phase(0), Some(Phase::Healthy));
}

/// The ramp's veto, seeded: over 20 seeds × 10,000 draws at each point of a 10 s window, the
/// share of attempts a readmitted downstream may take is its slow-start factor ± 0.025 (at
/// least 5 standard deviations of a binomial share of 10,000).
#[test]
fn slow_start_scales_the_share_by_its_factor() {
    for seed in 0..20 {
        let mut h = FleetHealth::new(on(), 2);
        fail(&mut h, 0, 5, 0);
        h.advance(1_000);
        h.probed(0, true, 1_000);
        let mut rng = SmallRng::seed_from_u64(seed);
        for (at, expected) in [(0, 0.1), (2_500, 0.25), (5_000, 0.5), (7_500, 0.75)] {
            let allowed = (0..10_000).filter(|_| h.veto(1_000 + at, &mut rng).is_empty()).count();
            let share = allowed as f64 / 10_000.0;
            assert!((share - expected).abs() < 0.025, "seed {seed} at {at}: {share}");
        }
        h.advance(11_000);
        assert!(h.veto(11_000, &mut rng).is_empty());
    }
}

#[test]
fn the_health_veto_never_leaves_a_request_without_a_downstream() {
    assert_eq!(combine(&[0], &[1, 0], 3), [0, 1]);
    assert_eq!(combine(&[0], &[1, 2], 3), [0], "nothing left: the plan's veto alone");
    assert_eq!(combine(&[], &[], 2), Vec::<ArmId>::new());
    let vetoed = [2];
    let ctx = with_veto(SelectContext::new(&[], 2, 5).previous(Some(2)), &vetoed);
    assert_eq!((ctx.excluded, ctx.previous, ctx.attempt), (&[2][..], None, 2));
    let ctx = with_veto(SelectContext::new(&[], 2, 5).previous(Some(1)), &vetoed);
    assert_eq!(ctx.previous, Some(1));
}

proptest! {
    /// Whatever happens, the veto never holds more than the panic threshold allows out for
    /// good (ramping arms aside), never names an arm outside the fleet, and panic mode means a
    /// suspect exists.
    #[test]
    fn never_more_ejected_than_the_panic_threshold_allows(
        arms in 1usize..8,
        events in proptest::collection::vec((0usize..8, 0u8..6, 0u64..3_000), 0..300),
        seed in any::<u64>(),
    ) {
        let mut h = FleetHealth::new(on(), arms);
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut now = 0;
        for (arm, kind, dt) in events {
            now += dt;
            let arm = arm % arms;
            match kind {
                0 => h.observe(arm, Outcome::Success, now),
                1..=3 => h.observe(arm, Outcome::ServerError, now),
                4 => {
                    for probed in h.advance(now) {
                        h.probed(probed, rng.random::<bool>(), now);
                    }
                }
                _ => h.observe(arm, Outcome::Timeout, now),
            }
            let out = (0..arms)
                .filter(|a| matches!(h.phase(*a), Some(Phase::Ejected { .. } | Phase::Probing { .. })))
                .count();
            prop_assert!(out <= h.max_ejected(), "{out} out of {arms}");
            prop_assert!(h.veto(now, &mut rng).iter().all(|a| *a < arms));
            let view = h.view(now, &[]);
            prop_assert_eq!(view.ejected.len(), out);
        }
    }
}
