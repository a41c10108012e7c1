//! The phi accrual failure detector (Hayashibara, Défago, Yared and Katayama, "The φ accrual
//! failure detector", SRDS 2004), in Akka's formulation (`akka.remote.PhiAccrualFailureDetector`).
//!
//! Instead of a yes/no verdict the detector gives a suspicion level φ: with the intervals between
//! a downstream's past successes modelled as a normal distribution (mean and standard deviation
//! of the last `window` intervals), φ = −log10(P(the next success comes later than `elapsed`)).
//! φ = 8 (the cluster design's threshold) means the silence so far would be seen by chance about
//! once in 10⁸. Akka approximates the normal tail with the logistic function
//! `1 / (1 + e^(y · (1.5976 + 0.070566 y²)))`, `y = (elapsed − mean) / stddev`, whose error is
//! below 0.01%; φ is then `log10(1 + e^(y · (1.5976 + 0.070566 y²)))`, increasing in `elapsed`
//! (the exponent's derivative in `y` is `1.5976 + 0.211698 y² > 0`), computed here without
//! overflow. Until `min_samples` intervals are known φ is 0: there is nothing to be surprised by.
//! Like Akka, the standard deviation is at least `min_std_deviation_ms` (100 ms), so a very regular
//! history does not make a few milliseconds of delay look like a failure.

use std::collections::VecDeque;

/// Suspicion level above which a downstream is taken as failed (the cluster design's, Akka's).
pub const DEFAULT_THRESHOLD: f64 = 8.0;
/// Intervals kept (the cluster design's window).
pub const DEFAULT_WINDOW: usize = 100;
/// Intervals needed before φ says anything.
pub const DEFAULT_MIN_SAMPLES: usize = 5;
/// Least standard deviation of the interval model (Akka's `min-std-deviation`).
pub const DEFAULT_MIN_STD_DEVIATION_MS: f64 = 100.0;

/// The detector's parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiConfig {
    pub threshold: f64,
    pub window: usize,
    pub min_samples: usize,
    pub min_std_deviation_ms: f64,
}

impl Default for PhiConfig {
    fn default() -> Self {
        PhiConfig {
            threshold: DEFAULT_THRESHOLD,
            window: DEFAULT_WINDOW,
            min_samples: DEFAULT_MIN_SAMPLES,
            min_std_deviation_ms: DEFAULT_MIN_STD_DEVIATION_MS,
        }
    }
}

/// One downstream's detector: the last `window` intervals between its successes.
#[derive(Clone, Debug)]
pub struct PhiAccrual {
    config: PhiConfig,
    intervals: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    last_ms: Option<u64>,
}

impl PhiAccrual {
    pub fn new(config: PhiConfig) -> Self {
        PhiAccrual {
            config,
            intervals: VecDeque::with_capacity(config.window.min(1024)),
            sum: 0.0,
            sum_sq: 0.0,
            last_ms: None,
        }
    }

    /// A success ("heartbeat") at `now_ms`.
    pub fn heartbeat(&mut self, now_ms: u64) {
        if let Some(last) = self.last_ms {
            let interval = now_ms.saturating_sub(last) as f64;
            if self.intervals.len() >= self.config.window.max(1) {
                if let Some(old) = self.intervals.pop_front() {
                    self.sum -= old;
                    self.sum_sq -= old * old;
                }
            }
            self.intervals.push_back(interval);
            self.sum += interval;
            self.sum_sq += interval * interval;
        }
        self.last_ms = Some(self.last_ms.map_or(now_ms, |last| last.max(now_ms)));
    }

    /// Starts the silence anew at `now_ms` without adding an interval (a downstream readmitted
    /// after an ejection: the time it spent ejected says nothing about its rhythm).
    pub fn restart(&mut self, now_ms: u64) {
        self.last_ms = Some(now_ms);
    }

    /// Intervals known.
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    /// Mean and standard deviation (at least the configured minimum) of the intervals, ms.
    pub fn model(&self) -> Option<(f64, f64)> {
        let n = self.intervals.len();
        if n == 0 {
            return None;
        }
        let mean = self.sum / n as f64;
        let variance = (self.sum_sq / n as f64 - mean * mean).max(0.0);
        Some((mean, variance.sqrt().max(self.config.min_std_deviation_ms)))
    }

    /// The suspicion level at `now_ms` (0 before the first success or with too few intervals).
    pub fn phi(&self, now_ms: u64) -> f64 {
        let (Some(last), Some((mean, std))) = (self.last_ms, self.model()) else { return 0.0 };
        if self.intervals.len() < self.config.min_samples {
            return 0.0;
        }
        phi(now_ms.saturating_sub(last) as f64, mean, std)
    }

    /// Whether φ at `now_ms` is above the threshold.
    pub fn suspects(&self, now_ms: u64) -> bool {
        self.phi(now_ms) > self.config.threshold
    }
}

/// φ of a silence of `elapsed_ms` under a normal model with `mean` and `std` (ms).
pub fn phi(elapsed_ms: f64, mean: f64, std: f64) -> f64 {
    let y = (elapsed_ms - mean) / std;
    let z = y * (1.5976 + 0.070566 * y * y);
    // log10(1 + e^z) without overflow: e^z dwarfs 1 long before it overflows.
    let softplus = if z > 30.0 { z } else { z.exp().ln_1p() };
    softplus / std::f64::consts::LN_10
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn regular(every_ms: u64, beats: u64) -> PhiAccrual {
        let mut d = PhiAccrual::new(PhiConfig::default());
        for i in 0..beats {
            d.heartbeat(i * every_ms);
        }
        d
    }

    #[test]
    fn phi_is_zero_until_the_minimum_of_samples() {
        // 5 heartbeats give 4 intervals: below the cluster design's minimum of 5.
        let d = regular(100, 5);
        assert_eq!(d.samples(), 4);
        assert_eq!(d.phi(1_000_000), 0.0);
        let d = regular(100, 6);
        assert_eq!(d.samples(), 5);
        assert!(d.phi(1_000_000) > DEFAULT_THRESHOLD);
    }

    #[test]
    fn the_window_keeps_the_last_100_intervals() {
        let mut d = regular(1_000, 150);
        assert_eq!(d.samples(), DEFAULT_WINDOW);
        // The slow history is forgotten once 100 fast intervals have come (the first of 101
        // fast heartbeats still ends a slow interval).
        let start = 150 * 1_000;
        for i in 0..101 {
            d.heartbeat(start + i * 10);
        }
        let (mean, std) = d.model().unwrap();
        assert!((mean - 10.0).abs() < 1e-6, "{mean}");
        assert_eq!(std, DEFAULT_MIN_STD_DEVIATION_MS);
    }

    #[test]
    fn the_cluster_designs_threshold_is_crossed_where_the_normal_tail_says() {
        // Heartbeats every 1 s, std at its 100 ms floor: phi = 8 at about mean + 5.6 sd.
        let d = regular(1_000, 101);
        let last = 100 * 1_000;
        assert!(d.phi(last + 1_000) < 0.5, "on time: {}", d.phi(last + 1_000));
        assert!(!d.suspects(last + 1_500), "{}", d.phi(last + 1_500));
        assert!(d.suspects(last + 1_600), "{}", d.phi(last + 1_600));
        // Akka's reference values for its formula: phi(mean) = log10(2).
        assert!((phi(1_000.0, 1_000.0, 100.0) - 2f64.log10()).abs() < 1e-12);
        // One sd late: P(later) ~ 0.159 for a normal, phi ~ 0.80.
        assert!((phi(1_100.0, 1_000.0, 100.0) - 0.80).abs() < 0.01);
    }

    #[test]
    fn a_restart_forgets_the_silence_not_the_rhythm() {
        let mut d = regular(100, 20);
        assert!(d.suspects(60_000));
        d.restart(60_000);
        assert!(!d.suspects(60_050));
        assert_eq!(d.samples(), 19);
    }

    #[test]
    fn phi_stays_finite_far_out() {
        let d = regular(10, 50);
        let p = d.phi(u64::MAX / 2);
        assert!(p.is_finite() && p > 1e6, "{p}");
    }

    proptest! {
        /// Over seeded random histories, phi never falls as the silence grows.
        #[test]
        fn phi_is_monotone_in_elapsed_time(seed in any::<u64>(), beats in 0usize..150) {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut d = PhiAccrual::new(PhiConfig::default());
            let mut now = 0u64;
            for _ in 0..beats {
                now += rng.random_range(0..5_000);
                d.heartbeat(now);
            }
            let mut previous = d.phi(now);
            prop_assert!(previous >= 0.0);
            let mut elapsed = 0u64;
            for _ in 0..200 {
                elapsed += rng.random_range(0..2_000);
                let p = d.phi(now + elapsed);
                prop_assert!(p.is_finite());
                prop_assert!(p >= previous, "phi fell from {previous} to {p} at {elapsed} ms");
                previous = p;
            }
        }
    }
}
