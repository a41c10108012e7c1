//! The micro-benchmark workload shared by the native criterion benchmark
//! (`core/benches/strategies.rs`) and the wasm32 one under Node (`tools/wasm-bench`), so that
//! their figures compare: a fleet whose success rates are spread from 50% to 95%, and one step
//! = one `select`, one uniform draw for the outcome, one `update`.

use rand::rngs::SmallRng;
use rand::{Rng, RngCore};

use crate::Outcome;
use crate::context::{RequestContext, RequestFacts};
use crate::strategy::{Feedback, SelectContext, Strategy};

/// Attempts a strategy serves before it is measured (the state of a router after its first
/// seconds).
pub const WARM_UP_ATTEMPTS: u64 = 20_000;

/// Success rates of an `arms`-downstream fleet, evenly spread over 50%..=95%.
pub fn spread_rates(arms: usize) -> Vec<f64> {
    (0..arms).map(|i| 0.5 + 0.45 * i as f64 / (arms - 1).max(1) as f64).collect()
}

/// One select + update of `s` at `now_ms` (first attempt, 20 ms latency).
pub fn step(s: &mut dyn Strategy, rates: &[f64], now_ms: u64, rng: &mut SmallRng) {
    let ctx = SelectContext::first(now_ms);
    let rng_dyn: &mut dyn RngCore = rng;
    let Some(arm) = s.select(&ctx, rng_dyn) else { return };
    let outcome =
        if rng.random::<f64>() < rates[arm] { Outcome::Success } else { Outcome::ServerError };
    s.update(arm, &Feedback { outcome, latency_ms: 20.0, now_ms, attempt: 1 });
}

/// `s` after [`WARM_UP_ATTEMPTS`] steps from time 0; returns the next time.
pub fn warm_up(s: &mut dyn Strategy, rates: &[f64], rng: &mut SmallRng) -> u64 {
    for t in 0..WARM_UP_ATTEMPTS {
        step(s, rates, t, rng);
    }
    WARM_UP_ATTEMPTS
}

/// The contextual workload's requests: 16 contexts, 4 path classes × GET or POST × 2 callers (each in its own hashed bucket),
/// all from one colo and country (one isolate's view).
pub fn contextual_requests() -> Vec<RequestContext> {
    let mut out = Vec::with_capacity(16);
    for class in ["/api/users", "/api/orders", "/upload", "/video"] {
        for (method, body_bytes) in [("GET", 0), ("POST", 2_048)] {
            for caller in ["web", "ios"] {
                out.push(RequestContext::new(RequestFacts {
                    colo: Some("FRA".into()),
                    country: Some("DE".into()),
                    method: method.into(),
                    path_class: class.into(),
                    body_bytes,
                    caller: Some(caller.into()),
                }));
            }
        }
    }
    out
}

/// One contextual select + update of `s` at `now_ms` for request `now_ms % requests.len()`:
/// downstream `a` succeeds with `rates[(a + k) % n]` for a request of the `k`-th path class, so
/// the best downstream depends on the request.
pub fn contextual_step(
    s: &mut dyn Strategy,
    rates: &[f64],
    requests: &[RequestContext],
    now_ms: u64,
    rng: &mut SmallRng,
) {
    let i = (now_ms % requests.len() as u64) as usize;
    let request = &requests[i];
    let ctx = SelectContext::first(now_ms).request(Some(request));
    let rng_dyn: &mut dyn RngCore = rng;
    let Some(arm) = s.select(&ctx, rng_dyn) else { return };
    let rate = rates[(arm + i / 4) % rates.len()];
    let outcome = if rng.random::<f64>() < rate { Outcome::Success } else { Outcome::ServerError };
    let feedback = Feedback { outcome, latency_ms: 20.0, now_ms, attempt: 1 };
    s.update_in_context(arm, &feedback, Some(request));
}

/// `s` after [`WARM_UP_ATTEMPTS`] contextual steps from time 0; returns the next time.
pub fn contextual_warm_up(
    s: &mut dyn Strategy,
    rates: &[f64],
    requests: &[RequestContext],
    rng: &mut SmallRng,
) -> u64 {
    for t in 0..WARM_UP_ATTEMPTS {
        contextual_step(s, rates, requests, t, rng);
    }
    WARM_UP_ATTEMPTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::StrategyKind;
    use rand::SeedableRng;

    #[test]
    fn rates_are_spread_and_warm_up_feeds_the_strategy() {
        assert_eq!(spread_rates(1), vec![0.5]);
        let r = spread_rates(10);
        assert!((r[0] - 0.5).abs() < 1e-12 && (r[9] - 0.95).abs() < 1e-12);
        let mut s = StrategyKind::Thompson.build(3);
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(warm_up(s.as_mut(), &spread_rates(3), &mut rng), WARM_UP_ATTEMPTS);
        // After 20,000 attempts Thompson sampling prefers the 95% downstream.
        let picks = (0..100)
            .filter(|t| s.select(&SelectContext::first(WARM_UP_ATTEMPTS + t), &mut rng) == Some(2))
            .count();
        assert!(picks > 80, "{picks}");
    }

    #[test]
    fn the_contextual_workload_has_distinct_requests_and_feeds_lin_ucb() {
        let requests = contextual_requests();
        for (i, a) in requests.iter().enumerate() {
            assert!(requests[..i].iter().all(|b| b.features() != a.features()), "{i}");
        }
        let mut s = StrategyKind::LinUcb.build(4);
        let mut rng = SmallRng::seed_from_u64(2);
        let rates = spread_rates(4);
        assert_eq!(contextual_warm_up(s.as_mut(), &rates, &requests, &mut rng), WARM_UP_ATTEMPTS);
        // Class k's best downstream is (3 - k) mod 4 (rate 95%): LinUCB sends most of each
        // class's requests there.
        let mut right = 0;
        for t in 0..160u64 {
            let i = (t % 16) as usize;
            let ctx = SelectContext::first(WARM_UP_ATTEMPTS + t).request(Some(&requests[i]));
            let best = (3 + 4 - i / 4) % 4;
            right += usize::from(s.select(&ctx, &mut rng) == Some(best));
        }
        assert!(right > 120, "{right} of 160");
    }
}
