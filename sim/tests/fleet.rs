//! The fleet-scale model against what it must reproduce: 1,000 isolates that learn alone do as
//! well as one router that sees a thousandth of the traffic, and the learner gives them back
//! most of what one router learns from all of it.

use magnetar_core::strategy::{StrategyKind, StrategyParams};
use magnetar_sim::{self as sim, FleetConfig, LearnerSync, Scenario, SimConfig};

const REQUESTS: u64 = 20_000;
const K: usize = 1_000;

fn config(requests: u64, interarrival_ms: f64) -> SimConfig {
    SimConfig { requests, interarrival_ms, ..SimConfig::default() }
}

/// Mean success rate of `kind` on `fleet` isolates over `seeds` seeds.
fn fleet_success(kind: StrategyKind, fleet: &FleetConfig, seeds: u64) -> f64 {
    let c = config(REQUESTS, sim::DEFAULT_INTERARRIVAL_MS);
    let s = Scenario::builtin("constant", &c).expect("built-in");
    let p = StrategyParams::default();
    let total: f64 = (1..=seeds)
        .map(|seed| sim::run_fleet(&s, kind, &p, &c, fleet, seed).expect("valid fleet"))
        .map(|r| r.summary.success_rate)
        .sum();
    total / seeds as f64
}

/// Mean success rate of one router serving `REQUESTS / K` requests `K` times further apart
/// (what one isolate of an even spread sees), over `runs` seeds.
fn one_isolates_share(kind: StrategyKind, runs: u64) -> f64 {
    let c = config(REQUESTS / K as u64, sim::DEFAULT_INTERARRIVAL_MS * K as f64);
    let s = Scenario::builtin("constant", &c).expect("built-in");
    let p = StrategyParams::default();
    let total: f64 =
        (1..=runs).map(|seed| sim::run_kind(&s, kind, &p, &c, seed).summary.success_rate).sum();
    total / runs as f64
}

#[test]
fn a_thousand_isolates_alone_learn_what_one_learns_from_a_thousandth_of_the_traffic() {
    // The expectation: each of 1,000 isolates serves about 20 of the 20,000 requests (a Poisson
    // number of mean 20, the even spread being random), so the fleet succeeds as one router
    // serving 20 requests does, averaged over isolates. The fleet's figure averages 5 x 20,000
    // requests and the expectation 5,000 runs x 20 requests: both have an sd of about 0.13
    // points (success varies 0.2 per request at most), so their difference has one of 0.2; the
    // random request counts per isolate move it by about 0.3 points more (success grows with
    // the requests an isolate has seen, so isolates that see more do a little better). A 1.5
    // point band is over 5 sd beyond that. One router serving everything does far better: on
    // this fleet (95/90/80/70/50%) Thompson sampling reaches 94.9%, the 20-request share about
    // 83%, random 77%.
    for kind in [StrategyKind::Thompson, StrategyKind::Magnetar] {
        let alone = fleet_success(kind, &FleetConfig::isolated(K), 5);
        let expected = one_isolates_share(kind, 5_000);
        let one = fleet_success(kind, &FleetConfig::isolated(1), 5);
        eprintln!("{kind}: K=1 {one:.4}, K=1000 {alone:.4}, one isolate's share {expected:.4}");
        assert!((alone - expected).abs() < 0.015, "{kind}: {alone} against {expected}");
        assert!(one - alone > 0.05, "{kind}: K=1 {one} against K=1000 {alone}");
    }
}

#[test]
fn the_learner_gives_a_thousand_isolates_back_most_of_what_one_router_learns() {
    // With the learner (1 s telemetry lag, 5 s refresh, 60 s half-life), every isolate starts
    // from the fleet-wide posterior on each request (it sees one every 10 s on average, more
    // than the refresh interval), so it chooses like one router that learns from every request a
    // second late and forgets with a 60 s half-life: within 1.5 points of the single router,
    // and far above the isolates alone (the test above: over 5 points below it).
    let synced = FleetConfig { learner: Some(LearnerSync::default()), ..FleetConfig::isolated(K) };
    for kind in [StrategyKind::Thompson, StrategyKind::Magnetar] {
        let with_learner = fleet_success(kind, &synced, 5);
        let alone = fleet_success(kind, &FleetConfig::isolated(K), 5);
        let one = fleet_success(kind, &FleetConfig::isolated(1), 5);
        eprintln!(
            "{kind}: K=1 {one:.4}, K=1000 with the learner {with_learner:.4}, alone {alone:.4}"
        );
        assert!(one - with_learner < 0.015, "{kind}: {with_learner} against {one}");
        assert!(with_learner - alone > 0.04, "{kind}: {with_learner} against {alone}");
    }
    // A strategy that does not import the learner's parameters gets nothing from it.
    let rr_synced = fleet_success(StrategyKind::RoundRobin, &synced, 2);
    let rr_alone = fleet_success(StrategyKind::RoundRobin, &FleetConfig::isolated(K), 2);
    assert_eq!(rr_synced, rr_alone);
}
