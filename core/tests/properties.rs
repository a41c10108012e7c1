//! Property tests of every strategy: whatever the caller does (any exclusions, attempt numbers,
//! clocks, outcomes, latencies, arms out of range), a strategy never picks an excluded or unknown
//! downstream, its exported posterior stays valid, and a snapshot survives export and import.

use magnetar_core::Outcome;
use magnetar_core::strategy::{
    ArmPosterior, Feedback, PosteriorSnapshot, SelectContext, StrategyKind, StrategyParams,
    validate_snapshot,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

#[derive(Debug, Clone)]
enum Op {
    Select { excluded: Vec<usize>, attempt: u32, now_ms: u64 },
    Update { arm: usize, outcome: Outcome, latency_ms: f64, now_ms: u64, attempt: u32 },
}

fn kind() -> impl Strategy<Value = StrategyKind> {
    proptest::sample::select(StrategyKind::ALL.to_vec())
}

fn time() -> impl Strategy<Value = u64> {
    prop_oneof![0..100_000u64, Just(0u64), Just(u64::MAX), any::<u64>()]
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = proptest::sample::select(Outcome::ALL.to_vec());
    let latency = prop_oneof![0.0..5_000.0f64, Just(f64::NAN), Just(-1.0), Just(f64::INFINITY)];
    prop_oneof![
        (proptest::collection::vec(0..10usize, 0..6), 0..6u32, time())
            .prop_map(|(excluded, attempt, now_ms)| Op::Select { excluded, attempt, now_ms }),
        (0..10usize, outcome, latency, time(), 0..6u32).prop_map(
            |(arm, outcome, latency_ms, now_ms, attempt)| Op::Update {
                arm,
                outcome,
                latency_ms,
                now_ms,
                attempt
            }
        ),
    ]
}

fn counts() -> impl Strategy<Value = ArmPosterior> {
    let c = prop_oneof![Just(0.0), 0.0..50.0f64, 0.0..1e6f64, (0..40u32).prop_map(f64::from)];
    (c.clone(), c).prop_map(|(successes, failures)| ArmPosterior { successes, failures })
}

fn assert_valid(snapshot: &PosteriorSnapshot, arms: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(validate_snapshot(snapshot, arms), Ok(()));
    for p in &snapshot.arms {
        prop_assert!(p.successes.is_finite() && p.successes >= 0.0, "{:?}", p);
        prop_assert!(p.failures.is_finite() && p.failures >= 0.0, "{:?}", p);
    }
    Ok(())
}

proptest! {
    // Integration tests have no lib.rs beside them for proptest to persist failures next to.
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn never_selects_an_excluded_or_unknown_arm_and_posteriors_stay_valid(
        kind in kind(),
        arms in 1..8usize,
        ops in proptest::collection::vec(op(), 0..120),
        seed in any::<u64>(),
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut s = kind.build(arms);
        prop_assert_eq!(s.arms(), arms);
        prop_assert_eq!(s.kind(), kind);
        for op in ops {
            match op {
                Op::Select { excluded, attempt, now_ms } => {
                    let ctx = SelectContext { excluded: &excluded, attempt, now_ms };
                    let all_excluded = (0..arms).all(|a| excluded.contains(&a));
                    match s.select(&ctx, &mut rng) {
                        Some(arm) => {
                            prop_assert!(arm < arms, "{} picked unknown arm {}", kind, arm);
                            prop_assert!(!excluded.contains(&arm), "{} picked excluded {}", kind, arm);
                        }
                        None => prop_assert!(all_excluded, "{} gave up with arms left", kind),
                    }
                }
                Op::Update { arm, outcome, latency_ms, now_ms, attempt } => {
                    s.update(arm, &Feedback { outcome, latency_ms, now_ms, attempt });
                }
            }
            assert_valid(&s.snapshot(0), arms)?;
        }
    }

    #[test]
    fn snapshot_export_then_import_is_lossless(
        kind in kind(),
        arms in 1..8usize,
        ops in proptest::collection::vec(op(), 0..120),
        seed in any::<u64>(),
        taken_ms in any::<u64>(),
    ) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut s = kind.build(arms);
        for op in ops {
            match op {
                Op::Select { excluded, attempt, now_ms } => {
                    let _ = s.select(&SelectContext { excluded: &excluded, attempt, now_ms }, &mut rng);
                }
                Op::Update { arm, outcome, latency_ms, now_ms, attempt } => {
                    s.update(arm, &Feedback { outcome, latency_ms, now_ms, attempt });
                }
            }
        }
        let exported = s.snapshot(taken_ms);
        prop_assert_eq!(exported.taken_ms, taken_ms);
        let mut fresh = kind.build(arms);
        prop_assert_eq!(fresh.restore(&exported), Ok(()));
        prop_assert_eq!(fresh.snapshot(taken_ms), exported.clone());
        // Over JSON (how the learner ships it) the counts survive to within serde_json's float
        // parsing, which may be one unit in the last place off without `float_roundtrip`.
        let json = serde_json::to_string(&exported).unwrap();
        let parsed: PosteriorSnapshot = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(parsed.arms.len(), exported.arms.len());
        for (p, e) in parsed.arms.iter().zip(&exported.arms) {
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
            prop_assert!(close(p.successes, e.successes) && close(p.failures, e.failures));
        }
    }

    #[test]
    fn imported_learner_posteriors_are_kept_exactly_or_fitted_to_the_window(
        kind in kind(),
        arms_counts in proptest::collection::vec(counts(), 1..8),
    ) {
        let arms = arms_counts.len();
        let snapshot = PosteriorSnapshot::of(&arms_counts, 42);
        let mut s = kind.build(arms);
        prop_assert_eq!(s.restore(&snapshot), Ok(()));
        let back = s.snapshot(42);
        assert_valid(&back, arms)?;
        if !kind.learns() {
            return Ok(());
        }
        if kind == StrategyKind::ThompsonWindow {
            let window = StrategyParams::default().window as f64;
            for (got, want) in back.arms.iter().zip(&arms_counts) {
                let scale = (window / want.pulls()).min(1.0);
                prop_assert!((got.successes - want.successes * scale).abs() < 1e-9);
                prop_assert!((got.failures - want.failures * scale).abs() < 1e-9);
            }
        } else {
            prop_assert_eq!(back.arms, arms_counts);
        }
    }

    #[test]
    fn mismatched_snapshots_are_refused_and_change_nothing(
        kind in kind(),
        arms in 1..6usize,
        extra in 1..3usize,
    ) {
        let mut s = kind.build(arms);
        let before = s.snapshot(0);
        let wrong = PosteriorSnapshot::of(&vec![ArmPosterior { successes: 3.0, failures: 1.0 }; arms + extra], 0);
        prop_assert!(s.restore(&wrong).is_err());
        let mut bad = PosteriorSnapshot::of(&vec![ArmPosterior::default(); arms], 0);
        bad.arms[0].successes = -1.0;
        prop_assert!(s.restore(&bad).is_err());
        prop_assert_eq!(s.snapshot(0), before);
    }

    #[test]
    fn strategy_names_never_panic(name in ".{0,40}") {
        if let Ok(kind) = name.parse::<StrategyKind>() {
            prop_assert!(StrategyKind::ALL.contains(&kind));
        }
    }
}

#[test]
fn every_kind_is_registered_once_with_its_wire_name() {
    let names: Vec<_> = StrategyKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(
        names,
        [
            "round_robin",
            "random",
            "weighted_random",
            "least_outstanding",
            "discover_exploit",
            "ucb1",
            "ucb_attempt",
            "thompson",
            "thompson_attempt",
            "thompson_masked",
            "thompson_window",
            "blocking_bandit",
            "thompson_discounted",
            "kl_ucb",
            "ucb1_tuned",
            "moss",
            "epsilon_greedy",
            "exp3",
            "envoy_outlier",
        ]
    );
    for kind in StrategyKind::ALL {
        assert_eq!(kind.build(3).kind(), *kind);
        assert_eq!(kind.build_with(3, &StrategyParams::default()).kind(), *kind);
    }
}
