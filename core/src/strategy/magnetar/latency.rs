//! Per-downstream latency: a log-normal model of answered attempts, and the attempts still in
//! flight.
//!
//! The model is the exponentially weighted mean and variance of `ln(latency)` (West, "Updating
//! mean and variance estimates", 1979, in its exponentially weighted form), so it describes a
//! distribution, not only a mean: [`LatencyModel::quantile`] gives any quantile of the fitted
//! log-normal and [`LatencyModel::expected_ms`] its mean capped at the attempt timeout. Like
//! Finagle's and Linkerd's peak EWMA it reacts faster to a slowdown than to a recovery: an
//! observation above the model's 99th percentile is weighted [`ALPHA_PEAK`] instead of
//! [`ALPHA`]. The first observations are averaged plainly (weight `1/n`) until `1/n` reaches
//! the smoothing weight, so the model starts from what it saw rather than from a made-up prior.
//!
//! [`Pending`] keeps the send time of every attempt still outstanding on the downstream. An
//! attempt outstanding well past the downstream's usual latency is evidence that the downstream
//! turned slow before any timeout says so (what peak EWMA and Prequal use in-flight load for):
//! [`Pending::overdue`] counts the attempts older than a threshold.

/// Smoothing weight of an ordinary observation (an effective memory of about 50 attempts).
pub const ALPHA: f64 = 0.02;
/// Smoothing weight of an observation above the model's 99th percentile.
pub const ALPHA_PEAK: f64 = 0.25;
/// Attempts kept per downstream in [`Pending`]; older ones are dropped first.
pub const PENDING_CAP: usize = 64;
/// A pending attempt older than this is forgotten (its answer was lost).
pub const PENDING_MAX_AGE_MS: u64 = 120_000;
/// The normal quantile of 99%.
const Z99: f64 = 2.326;
/// Latencies are floored at this many ms before their logarithm is taken.
const FLOOR_MS: f64 = 0.1;

/// Log-normal latency model of one downstream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyModel {
    mean_ln: f64,
    var_ln: f64,
    n: u64,
}

impl LatencyModel {
    /// Learns one answered attempt's latency (a timeout's latency is the timeout: a lower bound).
    pub fn observe(&mut self, latency_ms: f64) {
        if !latency_ms.is_finite() || latency_ms < 0.0 {
            return;
        }
        let x = latency_ms.max(FLOOR_MS).ln();
        self.n = self.n.saturating_add(1);
        let base = if self.n > 1 && x > self.mean_ln + Z99 * self.var_ln.sqrt() {
            ALPHA_PEAK
        } else {
            ALPHA
        };
        let alpha = base.max(1.0 / self.n as f64);
        let diff = x - self.mean_ln;
        let incr = alpha * diff;
        self.mean_ln += incr;
        self.var_ln = (1.0 - alpha) * (self.var_ln + diff * incr);
    }

    /// Latencies observed.
    pub fn samples(&self) -> u64 {
        self.n
    }

    /// Whether any latency was observed.
    pub fn known(&self) -> bool {
        self.n > 0
    }

    /// The `z`-quantile of the fitted log-normal (`z` a standard normal quantile), ms.
    pub fn quantile(&self, z: f64) -> f64 {
        (self.mean_ln + z * self.var_ln.sqrt()).exp()
    }

    /// The 99th percentile, ms.
    pub fn p99(&self) -> f64 {
        self.quantile(Z99)
    }

    /// Probability that an answer comes within `ms` under the fitted log-normal (1 before any
    /// observation: nothing says it will not).
    pub fn within(&self, ms: f64) -> f64 {
        if !self.known() {
            return 1.0;
        }
        if ms <= 0.0 {
            return 0.0;
        }
        let sd = self.var_ln.sqrt();
        if sd < 1e-9 {
            return if ms.ln() >= self.mean_ln { 1.0 } else { 0.0 };
        }
        normal_cdf((ms.ln() - self.mean_ln) / sd)
    }

    /// Mean of the fitted log-normal capped at `cap_ms`; `None` before any observation.
    pub fn expected_ms(&self, cap_ms: f64) -> Option<f64> {
        self.known().then(|| (self.mean_ln + self.var_ln / 2.0).exp().min(cap_ms))
    }
}

/// The standard normal distribution function, from the complementary error function of
/// Numerical Recipes (`erfcc`, fractional error below 1.2e-7 everywhere).
pub fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    0.5 * erfc
}

/// Send times of the attempts outstanding on one downstream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pending {
    /// `(sent_ms, repeat)`: `repeat` when the attempt repeated the previous attempt's downstream.
    sent: Vec<(u64, bool)>,
}

impl Pending {
    /// Notes an attempt sent at `now_ms`.
    pub fn sent(&mut self, now_ms: u64, repeat: bool) {
        self.sent.retain(|(t, _)| now_ms.saturating_sub(*t) < PENDING_MAX_AGE_MS);
        if self.sent.len() >= PENDING_CAP {
            self.sent.remove(0);
        }
        self.sent.push((now_ms, repeat));
    }

    /// Removes the attempt answered at `now_ms` after `latency_ms` (the one sent closest to
    /// `now_ms - latency_ms`) and returns whether it was a repeat.
    pub fn answered(&mut self, now_ms: u64, latency_ms: f64) -> bool {
        let latency =
            if latency_ms.is_finite() && latency_ms > 0.0 { latency_ms as u64 } else { 0 };
        let sent_at = now_ms.saturating_sub(latency);
        let nearest = self
            .sent
            .iter()
            .enumerate()
            .min_by_key(|(_, (t, _))| t.abs_diff(sent_at))
            .map(|(i, _)| i);
        nearest.is_some_and(|i| self.sent.remove(i).1)
    }

    /// Attempts outstanding for longer than `threshold_ms` at `now_ms`.
    pub fn overdue(&self, now_ms: u64, threshold_ms: f64) -> u32 {
        self.sent.iter().filter(|(t, _)| now_ms.saturating_sub(*t) as f64 > threshold_ms).count()
            as u32
    }

    /// Attempts outstanding.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;
    use rand_distr::{Distribution, LogNormal};

    #[test]
    fn fits_a_log_normal() {
        // ln-latency ~ N(ln 20, 0.5^2): median 20 ms, p99 20 e^(2.326 * 0.5) = 64 ms.
        let d = LogNormal::new(20f64.ln(), 0.5).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut m = LatencyModel::default();
        for _ in 0..5_000 {
            m.observe(d.sample(&mut rng));
        }
        // EW estimates over ~50 effective samples: within 25% of the true quantiles.
        let (median, p99) = (m.quantile(0.0), m.p99());
        assert!((median / 20.0 - 1.0).abs() < 0.25, "median {median}");
        assert!((p99 / 64.0 - 1.0).abs() < 0.35, "p99 {p99}");
        let mean = m.expected_ms(1_000.0).unwrap();
        assert!((mean / (20.0 * (0.125f64).exp()) - 1.0).abs() < 0.3, "mean {mean}");
        assert_eq!(m.expected_ms(5.0), Some(5.0));
    }

    #[test]
    fn the_normal_distribution_function_matches_its_tables() {
        for (z, p) in [(0.0, 0.5), (1.0, 0.841_344_7), (-1.959_964, 0.025), (2.326_348, 0.99)] {
            assert!((normal_cdf(z) - p).abs() < 1e-6, "{z}: {}", normal_cdf(z));
        }
        let mut m = LatencyModel::default();
        assert_eq!(m.within(1.0), 1.0);
        for x in [10.0, 20.0, 40.0, 20.0] {
            m.observe(x);
        }
        assert!(m.within(1_000.0) > 0.999 && m.within(1.0) < 0.001);
        assert!((m.within(m.quantile(0.0)) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn reacts_to_a_slowdown_within_a_few_attempts() {
        let mut m = LatencyModel::default();
        for _ in 0..1_000 {
            m.observe(20.0);
        }
        for _ in 0..4 {
            m.observe(1_000.0);
        }
        assert!(m.quantile(0.0) > 60.0, "median after 4 slow answers {}", m.quantile(0.0));
        assert_eq!(LatencyModel::default().expected_ms(100.0), None);
    }

    #[test]
    fn pending_attempts_are_matched_and_counted() {
        let mut p = Pending::default();
        p.sent(100, false);
        p.sent(105, true);
        p.sent(300, false);
        assert_eq!(p.overdue(400, 150.0), 2);
        assert!(p.answered(125, 20.0), "sent at 105: the repeat");
        assert!(!p.answered(400, 300.0));
        assert_eq!(p.len(), 1);
        assert_eq!(p.overdue(1_000, 150.0), 1);
        p.sent(200_000, false);
        assert_eq!(p.len(), 1, "the lost answer was forgotten");
    }
}
