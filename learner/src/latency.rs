//! A bounded latency histogram with logarithmic buckets (HdrHistogram's idea, in miniature).
//!
//! Bucket `i >= 1` holds latencies in `[MIN_MS * GROWTH^(i-1), MIN_MS * GROWTH^i)`, bucket 0
//! everything below [`MIN_MS`], the last bucket everything above. A quantile is read as its
//! bucket's geometric midpoint, clamped to the observed minimum and maximum, so it is within
//! about 4 % of the exact value. At most [`BUCKETS`] counters (under 2 KiB) per downstream,
//! whatever the traffic; the vector only grows as far as the largest bucket used. The count and
//! the sum of the recorded latencies are kept exactly (Prometheus' `_count` and `_sum`).

use serde::{Deserialize, Serialize};

/// Lower edge of bucket 1.
pub const MIN_MS: f64 = 0.05;
/// Ratio between consecutive bucket edges.
pub const GROWTH: f64 = 1.08;
/// Number of buckets: bucket edges reach `0.05 * 1.08^230` ms, about 40 minutes.
pub const BUCKETS: usize = 232;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    min_ms: f64,
    max_ms: f64,
    /// Absent from checkpoints written before it existed: it then counts from the load on.
    #[serde(default)]
    sum_ms: f64,
}

impl LatencyHistogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency. Negative or non-finite values are ignored.
    pub fn record(&mut self, ms: f64) {
        if !ms.is_finite() || ms < 0.0 {
            return;
        }
        let i = bucket_of(ms);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] = self.counts[i].saturating_add(1);
        if self.total == 0 {
            self.min_ms = ms;
            self.max_ms = ms;
        } else {
            self.min_ms = self.min_ms.min(ms);
            self.max_ms = self.max_ms.max(ms);
        }
        self.total = self.total.saturating_add(1);
        self.sum_ms += ms;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Sum of every recorded latency, milliseconds.
    pub fn sum_ms(&self) -> f64 {
        self.sum_ms
    }

    pub fn max_ms(&self) -> Option<f64> {
        (self.total > 0).then_some(self.max_ms)
    }

    /// The `q`-quantile (`q` in `[0, 1]`), or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 || q.is_nan() {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return Some(self.max_ms);
        }
        if rank == 1 {
            return Some(self.min_ms);
        }
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(midpoint(i).clamp(self.min_ms, self.max_ms));
            }
        }
        Some(self.max_ms)
    }
}

fn bucket_of(ms: f64) -> usize {
    if ms < MIN_MS {
        return 0;
    }
    let i = 1.0 + ((ms / MIN_MS).ln() / GROWTH.ln()).floor();
    (i as usize).min(BUCKETS - 1)
}

fn midpoint(i: usize) -> f64 {
    if i == 0 {
        return MIN_MS / 2.0;
    }
    MIN_MS * GROWTH.powi(i as i32 - 1) * GROWTH.sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_has_no_quantiles() {
        assert_eq!(LatencyHistogram::new().quantile(0.5), None);
    }

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let mut h = LatencyHistogram::new();
        for ms in 1..=1000 {
            h.record(ms as f64);
        }
        let p50 = h.quantile(0.5).unwrap();
        let p99 = h.quantile(0.99).unwrap();
        assert!((p50 / 500.0 - 1.0).abs() < 0.05, "{p50}");
        assert!((p99 / 990.0 - 1.0).abs() < 0.05, "{p99}");
        assert_eq!(h.quantile(1.0), Some(1000.0));
        assert_eq!(h.quantile(0.0), Some(1.0));
        assert_eq!(h.count(), 1000);
        assert_eq!(h.sum_ms(), 500_500.0);
    }

    #[test]
    fn storage_is_bounded() {
        let mut h = LatencyHistogram::new();
        for ms in [0.0, 1e-9, 1e12, f64::MAX, -1.0, f64::NAN, f64::INFINITY] {
            h.record(ms);
        }
        assert!(h.counts.len() <= BUCKETS);
        assert_eq!(h.count(), 4);
        assert_eq!(h.max_ms(), Some(f64::MAX));
    }

    #[test]
    fn checkpoints_without_a_sum_still_load() {
        let old = r#"{"counts": [0, 2], "total": 2, "min_ms": 0.05, "max_ms": 0.06}"#;
        let mut h: LatencyHistogram = serde_json::from_str(old).unwrap();
        assert_eq!((h.count(), h.sum_ms()), (2, 0.0));
        h.record(2.0);
        assert_eq!((h.count(), h.sum_ms()), (3, 2.0));
    }

    proptest! {
        #[test]
        fn quantiles_lie_between_min_and_max(values in proptest::collection::vec(0.0..1e7f64, 1..200), q in 0.0..=1.0f64) {
            let mut h = LatencyHistogram::new();
            for v in &values {
                h.record(*v);
            }
            let x = h.quantile(q).unwrap();
            let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = values.iter().cloned().fold(0.0, f64::max);
            prop_assert!(x >= lo && x <= hi, "{} not in [{}, {}]", x, lo, hi);
        }
    }
}
