//! The contextual strategies on the scenario where context matters (`contextual`): half the
//! requests (path class `/eu/orders`) succeed only on the two weaker downstreams (80% and 75%),
//! the other half on every downstream at its rate (97/90/80/75%). The best a non-contextual
//! strategy can do is the 80% host for every request (80%; the 97% host serves only half the
//! requests: 48.5%); the per-request oracle sends `/us/orders` to the 97% host and `/eu/orders`
//! to the 80% one (88.5%). Every request also carries noise (method, body size, caller,
//! country, colo) the contextual strategies must learn to ignore.
//!
//! Seeded runs, so deterministic; the bands are argued as if the seeds were random.

use std::thread;

use magnetar_core::strategy::{StrategyKind, StrategyParams};
use magnetar_sim::{self as sim, Scenario, SimConfig};

const SEEDS: u64 = 10;
const REQUESTS: u64 = 20_000;
/// How far each contextual strategy must be above every other strategy, success points.
const MARGIN_POINTS: f64 = 5.0;

const CONTEXTUAL: [StrategyKind; 2] = [StrategyKind::LinUcb, StrategyKind::LinThompson];

fn config() -> SimConfig {
    SimConfig { requests: REQUESTS, series_points: 20, ..SimConfig::default() }
}

/// Mean success (percent) and mean oracle (percent) of `kind` over the seeds.
fn mean(scenario: &Scenario, kind: StrategyKind, config: &SimConfig) -> (f64, f64) {
    let params = StrategyParams::default();
    let runs: Vec<_> =
        (1..=SEEDS).map(|seed| sim::run_kind(scenario, kind, &params, config, seed)).collect();
    let a = sim::aggregate(&runs).expect("runs");
    (100.0 * a.success_rate.mean, 100.0 * a.oracle_success_rate.mean)
}

#[test]
fn lin_ucb_and_lin_thompson_beat_every_other_strategy_where_context_matters() {
    let config = config();
    let scenario = Scenario::builtin("contextual", &config).expect("built-in scenario");
    let kinds = StrategyKind::ALL;
    let half = kinds.len().div_ceil(2);
    let rows: Vec<(StrategyKind, f64, f64)> = thread::scope(|s| {
        let parts: Vec<_> = kinds
            .chunks(half)
            .map(|chunk| {
                let (scenario, config) = (&scenario, &config);
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|k| {
                            let (ours, oracle) = mean(scenario, *k, config);
                            (*k, ours, oracle)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|h| h.join().expect("thread")).collect()
    });
    for (kind, ours, oracle) in &rows {
        println!(
            "{:<22} {ours:6.2}%  ({:5.1}% of the oracle's {oracle:.2}%)",
            kind.name(),
            100.0 * ours / oracle
        );
    }
    let (best_kind, best, _) = rows
        .iter()
        .filter(|r| !CONTEXTUAL.contains(&r.0))
        .copied()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("other strategies");
    // No non-contextual strategy can pass 80% by more than the outcome noise: the mean of 10
    // runs of 20,000 requests has sd sqrt(0.16 / 200,000) = 0.09 points.
    assert!(best < 80.5, "{best_kind} reached {best:.2}%");
    for kind in CONTEXTUAL {
        let (_, ours, oracle) = *rows.iter().find(|r| r.0 == kind).expect("contextual row");
        // 5 points is more than 50 sd of the difference of two such means.
        assert!(
            ours >= best + MARGIN_POINTS,
            "{kind}: {ours:.2}% is not {MARGIN_POINTS} points above {best_kind}'s {best:.2}%"
        );
        assert!(ours <= oracle + 0.5, "{kind}: {ours:.2}% above the oracle's {oracle:.2}%");
    }
}
