//! Property tests of the scenario file format (`sim/src/file.rs`): any valid scenario
//! round-trips through TOML and JSON; one value out of range anywhere is reported by its field's
//! path; text of any shape is refused or accepted without a panic; piecewise-linear curves stay
//! between their points.

use magnetar_flaky::OutageCycle;
use magnetar_sim::model::{
    LatencyPoint, LatencyStep, MarkovState, SimDownstream, SlowTail, SuccessCurve, SuccessPoint,
    interpolate,
};
use magnetar_sim::scenario::{Brownout, Poison};
use magnetar_sim::{Arrivals, Format, Scenario};
use proptest::prelude::*;

fn probability() -> impl Strategy<Value = f64> {
    0.0f64..=1.0
}

fn sorted_times(n: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0u64..1_000_000, n).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn success_curve() -> impl Strategy<Value = SuccessCurve> {
    prop_oneof![
        probability().prop_map(SuccessCurve::Constant),
        (probability(), probability(), 0u64..1_000_000)
            .prop_map(|(before, after, at_ms)| SuccessCurve::Step { before, after, at_ms }),
        (probability(), 0.0f64..1.0, 1u64..1_000_000, -7.0f64..7.0).prop_map(
            |(mean, amplitude, period_ms, phase)| SuccessCurve::Sine {
                mean,
                amplitude,
                period_ms,
                phase
            }
        ),
        (sorted_times(1..=5), prop::collection::vec(probability(), 5)).prop_map(|(t, p)| {
            SuccessCurve::Linear(
                t.iter().zip(p).map(|(&at_ms, success)| SuccessPoint { at_ms, success }).collect(),
            )
        }),
    ]
}

/// Latency steps or a latency curve (a downstream may not have both), or neither.
fn latency_changes() -> impl Strategy<Value = (Vec<LatencyStep>, Vec<LatencyPoint>)> {
    let ms = || 0.1f64..5_000.0;
    prop_oneof![
        Just((Vec::new(), Vec::new())),
        prop::collection::vec((0u64..1_000_000, ms()), 1..4).prop_map(|v| (
            v.into_iter().map(|(at_ms, latency_ms)| LatencyStep { at_ms, latency_ms }).collect(),
            Vec::new()
        )),
        (sorted_times(1..=4), prop::collection::vec(ms(), 4)).prop_map(|(t, l)| (
            Vec::new(),
            t.iter()
                .zip(l)
                .map(|(&at_ms, latency_ms)| LatencyPoint { at_ms, latency_ms })
                .collect()
        )),
    ]
}

fn markov_state() -> impl Strategy<Value = MarkovState> {
    (probability(), prop::option::of(0.1f64..5_000.0), 0.1f64..100_000.0).prop_map(
        |(success, latency_ms, mean_dwell_ms)| MarkovState { success, latency_ms, mean_dwell_ms },
    )
}

fn downstream() -> impl Strategy<Value = SimDownstream> {
    (
        ("[a-z][a-z0-9-]{0,8}", success_curve(), 0.1f64..5_000.0, 0.0f64..2.0),
        (
            prop::option::of(1u32..10_000),
            prop::option::of((1u64..100_000, 0u64..100_000, 0u64..100_000)),
            probability(),
            prop::option::of((probability(), 0.1f64..100.0)),
        ),
        (latency_changes(), prop::collection::vec(markov_state(), 0..4), probability()),
    )
        .prop_map(
            |(
                (name, success, latency_ms, latency_sigma),
                (capacity_rps, outage, timeout_share, slow_tail),
                ((latency_steps, latency_curve), markov, stickiness),
            )| SimDownstream {
                name,
                success,
                latency_ms,
                latency_sigma,
                capacity_rps,
                outage: outage.map(|(up_ms, down_ms, offset_ms)| OutageCycle {
                    up_ms,
                    down_ms,
                    offset_ms,
                }),
                timeout_share,
                slow_tail: slow_tail.map(|(share, factor)| SlowTail { share, factor }),
                latency_steps,
                latency_curve,
                markov,
                stickiness,
            },
        )
}

fn arrivals() -> impl Strategy<Value = Arrivals> {
    prop_oneof![
        Just(Arrivals::Constant),
        Just(Arrivals::Poisson),
        (1u32..100, 0.0f64..50.0).prop_map(|(size, gap_ms)| Arrivals::Bursts { size, gap_ms }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        ("[a-z_]{1,12}", ".{0,30}", prop::collection::vec(downstream(), 1..5)),
        (
            prop::option::of(0u64..1_000_000),
            prop::option::of(0.01f64..1_000.0),
            prop::option::of(1u64..100_000),
            prop::option::of(arrivals()),
            prop::option::of(1u64..100_000),
        ),
        (
            prop::option::of((0.0f64..0.5, 0.0f64..0.5)),
            prop::option::of((0u64..1_000_000, 0u64..1_000_000, probability())),
        ),
    )
        .prop_map(
            |(
                (name, description, downstreams),
                (change_at_ms, interarrival_ms, attempt_timeout_ms, arrivals, objective),
                (poison, brownout),
            )| Scenario {
                name,
                description,
                downstreams,
                change_at_ms,
                interarrival_ms,
                attempt_timeout_ms,
                arrivals,
                latency_objective_ms: objective,
                context: None,
                poison: poison.map(|(server_error_share, client_error_share)| Poison {
                    server_error_share,
                    client_error_share,
                }),
                brownout: brownout.map(|(a, b, success)| Brownout {
                    from_ms: a.min(b),
                    until_ms: a.max(b),
                    success,
                }),
            },
        )
}

/// One value made invalid, and the field the error must name.
#[derive(Clone, Debug)]
enum Break {
    Stickiness(f64),
    Latency(f64),
    Dwell(f64),
    CurveOrder,
    CurvePoint(f64),
    LatencyCurvePoint(f64),
    BothLatencyChanges,
    BurstSize,
    Objective,
    EmptyFleet,
}

fn a_break() -> impl Strategy<Value = Break> {
    prop_oneof![
        prop_oneof![1.0001f64..100.0, -100.0f64..-0.0001].prop_map(Break::Stickiness),
        (-1e6f64..=0.0).prop_map(Break::Latency),
        (-1e6f64..=0.0).prop_map(Break::Dwell),
        Just(Break::CurveOrder),
        prop_oneof![1.0001f64..100.0, -100.0f64..-0.0001].prop_map(Break::CurvePoint),
        (-1e6f64..=0.0).prop_map(Break::LatencyCurvePoint),
        Just(Break::BothLatencyChanges),
        Just(Break::BurstSize),
        Just(Break::Objective),
        Just(Break::EmptyFleet),
    ]
}

/// Applies `b` to downstream `i` (or to the scenario) and returns the field it broke.
fn apply(s: &mut Scenario, i: usize, b: &Break) -> String {
    let d = &mut s.downstreams[i];
    let at = |f: &str| format!("downstreams[{i}].{f}");
    match *b {
        Break::Stickiness(x) => {
            d.stickiness = x;
            at("stickiness")
        }
        Break::Latency(x) => {
            d.latency_ms = x;
            at("latency_ms")
        }
        Break::Dwell(x) => {
            d.markov.push(MarkovState { success: 0.5, latency_ms: None, mean_dwell_ms: x });
            at(&format!("markov[{}].mean_dwell_ms", d.markov.len() - 1))
        }
        Break::CurveOrder => {
            d.success = SuccessCurve::Linear(vec![
                SuccessPoint { at_ms: 10, success: 0.5 },
                SuccessPoint { at_ms: 9, success: 0.5 },
            ]);
            at("success.linear[1].at_ms")
        }
        Break::CurvePoint(x) => {
            d.success = SuccessCurve::Linear(vec![
                SuccessPoint { at_ms: 0, success: 0.5 },
                SuccessPoint { at_ms: 9, success: x },
            ]);
            at("success.linear[1].success")
        }
        Break::LatencyCurvePoint(x) => {
            d.latency_steps.clear();
            d.latency_curve = vec![LatencyPoint { at_ms: 0, latency_ms: x }];
            at("latency_curve[0].latency_ms")
        }
        Break::BothLatencyChanges => {
            d.latency_steps = vec![LatencyStep { at_ms: 0, latency_ms: 5.0 }];
            d.latency_curve = vec![LatencyPoint { at_ms: 0, latency_ms: 5.0 }];
            at("latency_curve")
        }
        Break::BurstSize => {
            s.arrivals = Some(Arrivals::Bursts { size: 0, gap_ms: 1.0 });
            "arrivals.bursts.size".to_owned()
        }
        Break::Objective => {
            s.latency_objective_ms = Some(0);
            "latency_objective_ms".to_owned()
        }
        Break::EmptyFleet => {
            s.downstreams.clear();
            "downstreams".to_owned()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn valid_scenarios_round_trip_through_toml_and_json(s in scenario()) {
        prop_assert_eq!(s.check(), Ok(()));
        let toml = s.to_toml().expect("a valid scenario writes as TOML");
        prop_assert_eq!(&Scenario::parse(&toml, Format::Toml).expect("reads back"), &s);
        let json = serde_json::to_string(&s).expect("writes as JSON");
        prop_assert_eq!(&Scenario::parse(&json, Format::Json).expect("reads back"), &s);
    }

    #[test]
    fn one_value_out_of_range_is_named_by_its_field(
        s in scenario(),
        i in any::<prop::sample::Index>(),
        b in a_break(),
    ) {
        let mut s = s;
        let i = i.index(s.downstreams.len());
        let field = apply(&mut s, i, &b);
        // Through the file, as a user meets it: TOML (with the negative values it allows).
        let toml = s.to_toml().expect("still writes as TOML");
        let err = Scenario::parse(&toml, Format::Toml).expect_err("an invalid value").to_string();
        prop_assert!(err.starts_with(&format!("{field}: ")), "{:?}: {}", b, err);
        let json = serde_json::to_string(&s).expect("writes as JSON");
        let err = Scenario::parse(&json, Format::Json).expect_err("an invalid value").to_string();
        prop_assert!(err.starts_with(&format!("{field}: ")), "{:?}: {}", b, err);
    }

    #[test]
    fn an_unknown_key_anywhere_in_a_downstream_is_refused(
        s in scenario(),
        i in any::<prop::sample::Index>(),
        key in "[a-z]{3,10}_x",
    ) {
        let i = i.index(s.downstreams.len());
        let mut value = serde_json::to_value(&s).expect("a JSON value");
        value["downstreams"][i][&key] = serde_json::json!(1);
        let err = Scenario::parse(&value.to_string(), Format::Json).expect_err("unknown").to_string();
        prop_assert!(err.contains(&format!("unknown field `{key}`")), "{}", err);
        prop_assert!(err.starts_with(&format!("downstreams[{i}]")), "{}", err);
    }

    #[test]
    fn any_text_is_refused_or_read_as_a_checked_scenario(text in ".{0,200}") {
        for format in [Format::Toml, Format::Json] {
            if let Ok(s) = Scenario::parse(&text, format) {
                prop_assert_eq!(s.check(), Ok(()));
            }
        }
    }

    #[test]
    fn linear_curves_stay_between_their_points_and_pass_through_them(
        times in sorted_times(1..=6),
        values in prop::collection::vec(probability(), 6),
        t in 0u64..1_100_000,
    ) {
        let points: Vec<(u64, f64)> = times.iter().copied().zip(values).collect();
        let v = interpolate(points.iter().copied(), t as f64).expect("a point");
        let (lo, hi) = points.iter().fold((1.0f64, 0.0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        prop_assert!((lo - 1e-12..=hi + 1e-12).contains(&v), "{} not in {}..{}", v, lo, hi);
        // At a point's time the curve has the value of the last point at that time.
        for (j, &(at, value)) in points.iter().enumerate() {
            let last_at_that_time = points.get(j + 1).is_none_or(|next| next.0 > at);
            if last_at_that_time {
                prop_assert_eq!(interpolate(points.iter().copied(), at as f64), Some(value));
            }
        }
        let curve = SuccessCurve::Linear(
            points.iter().map(|&(at_ms, success)| SuccessPoint { at_ms, success }).collect(),
        );
        prop_assert_eq!(curve.at(t as f64), v);
    }
}
