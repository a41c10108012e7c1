//! The core's strategies compiled to wasm32 and timed under Node: the same loop as the native
//! criterion benchmark (`core/benches/strategies.rs`), so the two figures compare.
//!
//! The workload is `magnetar_core::bench`: each strategy serves 20,000 warm-up attempts of a
//! fleet whose success rates are spread from 50% to 95%, then `iterations` more steps (select,
//! outcome draw, update) are timed with `performance.now()`.
//! `scripts/bench.sh` builds this with wasm-bindgen (`--target nodejs`) and runs
//! `tools/wasm-bench/run.mjs`. The contextual workload (`core/benches/contextual.rs`: 16 request
//! contexts in turn, the best downstream depending on the path class) is timed the same way by
//! [`time_contextual_select_update`].

use magnetar_core::bench::{
    contextual_requests, contextual_step, contextual_warm_up, spread_rates, step, warm_up,
};
use magnetar_core::strategy::StrategyKind;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use wasm_bindgen::prelude::*;

/// Runs `iterations` warm select + update steps of `strategy` over `arms` downstreams and returns
/// the time per step in nanoseconds, measured with `now_ms` (the host's `performance.now`).
pub fn time_select_update(
    strategy: &str,
    arms: usize,
    iterations: u64,
    now_ms: &dyn Fn() -> f64,
) -> Result<f64, String> {
    let kind: StrategyKind = strategy.parse().map_err(|e| format!("{e}"))?;
    if arms == 0 || iterations == 0 {
        return Err("arms and iterations must be at least 1".into());
    }
    let rates = spread_rates(arms);
    let mut rng = SmallRng::seed_from_u64(1);
    let mut s = kind.build(arms);
    let from = warm_up(s.as_mut(), &rates, &mut rng);
    let started = now_ms();
    for t in 0..iterations {
        step(s.as_mut(), &rates, from + t, &mut rng);
    }
    Ok((now_ms() - started) * 1e6 / iterations as f64)
}

/// [`time_select_update`] over the contextual workload: every select carries one of 16 request
/// contexts and every update its context.
pub fn time_contextual_select_update(
    strategy: &str,
    arms: usize,
    iterations: u64,
    now_ms: &dyn Fn() -> f64,
) -> Result<f64, String> {
    let kind: StrategyKind = strategy.parse().map_err(|e| format!("{e}"))?;
    if arms == 0 || iterations == 0 {
        return Err("arms and iterations must be at least 1".into());
    }
    let rates = spread_rates(arms);
    let requests = contextual_requests();
    let mut rng = SmallRng::seed_from_u64(1);
    let mut s = kind.build(arms);
    let from = contextual_warm_up(s.as_mut(), &rates, &requests, &mut rng);
    let started = now_ms();
    for t in 0..iterations {
        contextual_step(s.as_mut(), &rates, &requests, from + t, &mut rng);
    }
    Ok((now_ms() - started) * 1e6 / iterations as f64)
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// `benchSelectUpdate("thompson", 10, 200000)`: nanoseconds per select + update under this host.
#[wasm_bindgen(js_name = benchSelectUpdate)]
pub fn bench_select_update(strategy: &str, arms: usize, iterations: u64) -> Result<f64, JsError> {
    time_select_update(strategy, arms, iterations, &performance_now).map_err(|e| JsError::new(&e))
}

/// `benchContextualSelectUpdate("lin_ucb", 10, 200000)`: nanoseconds per contextual select +
/// update under this host.
#[wasm_bindgen(js_name = benchContextualSelectUpdate)]
pub fn bench_contextual_select_update(
    strategy: &str,
    arms: usize,
    iterations: u64,
) -> Result<f64, JsError> {
    time_contextual_select_update(strategy, arms, iterations, &performance_now)
        .map_err(|e| JsError::new(&e))
}

/// Wire names of every strategy the core offers.
#[wasm_bindgen(js_name = strategies)]
pub fn strategies() -> Vec<String> {
    StrategyKind::ALL.iter().map(|k| k.name().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn times_a_known_strategy_and_rejects_unknown_ones() {
        let start = Instant::now();
        let clock = move || start.elapsed().as_secs_f64() * 1000.0;
        let ns = time_select_update("thompson", 10, 1000, &clock).expect("thompson runs");
        assert!(ns > 0.0 && ns.is_finite());
        assert!(time_select_update("no_such_strategy", 10, 10, &clock).is_err());
        assert!(time_select_update("thompson", 0, 10, &clock).is_err());
        let ns = time_contextual_select_update("lin_ucb", 10, 1000, &clock).expect("lin_ucb runs");
        assert!(ns > 0.0 && ns.is_finite());
        assert!(time_contextual_select_update("no_such_strategy", 10, 10, &clock).is_err());
    }
}
