//! Slow start for a downstream coming back (Envoy's `slow_start_config`, HAProxy's `slowstart`):
//! over a window after its readmission a downstream gets a growing share of the traffic it would
//! otherwise get. Envoy's factor is `max(min_weight_percent, (t / window)^(1 / aggression))`;
//! here aggression is 1 (a linear ramp, HAProxy's) and the floor Envoy's default 10%.
//!
//! The strategies take no weights per request, so the ramp reaches them through the veto: each
//! attempt excludes the ramping downstream with probability `1 − factor`, which scales whatever
//! share the strategy would give it by the factor.

/// Least share factor while ramping (Envoy's `min_weight_percent` default, 10%).
pub const MIN_FACTOR: f64 = 0.1;

/// The share factor `elapsed_ms` into a ramp of `window_ms` (1 once the window is over, or with
/// no window).
pub fn factor(elapsed_ms: u64, window_ms: u64) -> f64 {
    if window_ms == 0 || elapsed_ms >= window_ms {
        return 1.0;
    }
    (elapsed_ms as f64 / window_ms as f64).max(MIN_FACTOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_linearly_from_the_floor_to_one() {
        assert_eq!(factor(0, 10_000), MIN_FACTOR);
        assert_eq!(factor(500, 10_000), MIN_FACTOR);
        assert!((factor(5_000, 10_000) - 0.5).abs() < 1e-12);
        assert_eq!(factor(10_000, 10_000), 1.0);
        assert_eq!(factor(3, 0), 1.0);
        let steps: Vec<f64> = (0..=10).map(|i| factor(i * 1_000, 10_000)).collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    }
}
