//! The latency histogram of one downstream: an [HdrHistogram](https://hdrhistogram.org)
//! (`hdrhistogram` crate) of microseconds, with one significant digit, and the exact count,
//! sum, minimum and maximum beside it (Prometheus' `_count` and `_sum`, `/stats` `max`).
//!
//! Precision: with one significant digit a bucket spans at most 1/16 of its values, and a
//! quantile is read as its bucket's middle ([`Histogram::median_equivalent`]), clamped to the
//! observed minimum and maximum, so it is within about 3 % of the exact value (the hand-written
//! log-bucket histogram this replaces was within 4 %). Storage: the histogram grows only as far
//! as the largest latency recorded, at most [`MAX_US`] (one day), which takes 544 counters
//! (about 4.3 KiB); latencies up to a few seconds take about 300 (2.4 KiB).
//!
//! In the checkpoint it is its recorded values (`[[microseconds, count], ...]`) with the exact
//! figures; the state files of the earlier histogram (`counts` per 8 % bucket) still load, each
//! bucket as its geometric middle.

use hdrhistogram::Histogram;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Significant digits of the histogram (see the module docs for what they give).
pub const SIGNIFICANT_DIGITS: u8 = 1;
/// The largest latency the histogram resolves: one day in microseconds. Larger values are
/// counted in its top bucket (their exact values still go to the sum and the maximum).
pub const MAX_US: u64 = 86_400_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
    total: u64,
    min_ms: f64,
    max_ms: f64,
    sum_ms: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

fn empty_histogram() -> Histogram<u64> {
    // One significant digit is within the crate's range (0 to 5), so this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new(SIGNIFICANT_DIGITS).expect("1 significant digit is valid")
}

impl LatencyHistogram {
    pub fn new() -> Self {
        LatencyHistogram {
            hist: empty_histogram(),
            total: 0,
            min_ms: 0.0,
            max_ms: 0.0,
            sum_ms: 0.0,
        }
    }

    /// Records one latency. Negative or non-finite values are ignored.
    pub fn record(&mut self, ms: f64) {
        if !ms.is_finite() || ms < 0.0 {
            return;
        }
        record_n(&mut self.hist, to_us(ms), 1);
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
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        if rank >= self.total {
            return Some(self.max_ms);
        }
        if rank == 1 {
            return Some(self.min_ms);
        }
        let us = self.hist.median_equivalent(self.hist.value_at_quantile(q));
        Some((us as f64 / 1000.0).clamp(self.min_ms, self.max_ms))
    }

    /// Counters the histogram holds (what its memory grows with).
    pub fn buckets(&self) -> usize {
        self.hist.distinct_values()
    }
}

/// Records `n` times `us` (at most [`MAX_US`]), growing the histogram as needed. Growing can
/// only fail where `usize` cannot index the counters of one day (not on 64-bit targets); the
/// value is then clamped into the current range rather than lost.
fn record_n(hist: &mut Histogram<u64>, us: u64, n: u64) {
    if hist.record_n(us, n).is_err() {
        hist.saturating_record_n(us, n);
    }
}

/// Milliseconds to whole microseconds, capped at [`MAX_US`].
fn to_us(ms: f64) -> u64 {
    ((ms * 1000.0).round() as u64).min(MAX_US)
}

/// The checkpoint form: `recorded` values, or the earlier histogram's `counts` per 8 % bucket
/// from 0.05 ms. A plain struct (not an untagged enum) so that a bad field is named when a state
/// file does not load.
#[derive(Serialize, Deserialize)]
struct Saved {
    /// `[microseconds, count]` for every value with a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recorded: Option<Vec<(u64, u64)>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counts: Option<Vec<u64>>,
    total: u64,
    min_ms: f64,
    max_ms: f64,
    /// Absent from checkpoints written before it existed: it then counts from the load on.
    #[serde(default)]
    sum_ms: f64,
}

/// Lower edge of bucket 1 and the ratio between bucket edges of the earlier histogram.
const LEGACY_MIN_MS: f64 = 0.05;
const LEGACY_GROWTH: f64 = 1.08;

fn legacy_midpoint(i: usize) -> f64 {
    if i == 0 {
        return LEGACY_MIN_MS / 2.0;
    }
    LEGACY_MIN_MS * LEGACY_GROWTH.powi(i.min(i32::MAX as usize) as i32 - 1) * LEGACY_GROWTH.sqrt()
}

impl Serialize for LatencyHistogram {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let recorded = self
            .hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        Saved {
            recorded: Some(recorded),
            counts: None,
            total: self.total,
            min_ms: self.min_ms,
            max_ms: self.max_ms,
            sum_ms: self.sum_ms,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LatencyHistogram {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut hist = empty_histogram();
        let Saved { recorded, counts, total, min_ms, max_ms, sum_ms } =
            Saved::deserialize(deserializer)?;
        for (us, n) in recorded.unwrap_or_default() {
            record_n(&mut hist, us.min(MAX_US), n);
        }
        for (i, n) in counts.unwrap_or_default().into_iter().enumerate().filter(|(_, n)| *n > 0) {
            record_n(&mut hist, to_us(legacy_midpoint(i)), n);
        }
        Ok(LatencyHistogram { hist, total, min_ms, max_ms, sum_ms })
    }
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
        // 544 counters reach one day at one significant digit; nothing grows past them.
        assert!(h.buckets() <= 544, "{}", h.buckets());
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

    #[test]
    fn checkpoints_round_trip() {
        let mut h = LatencyHistogram::new();
        for ms in [0.2, 3.0, 3.0, 250.0, 1e9] {
            h.record(ms);
        }
        let back: LatencyHistogram =
            serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        let p50 = back.quantile(0.5).unwrap();
        assert!((p50 / 3.0 - 1.0).abs() < 0.03, "{p50}");
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
