//! How sure a success rate is, and whether two rates differ beyond the noise: shared by the lab
//! (lanes of a comparison) and the learner (variants of an experiment).
//!
//! - **One proportion**: the Wilson score interval (Wilson, "Probable inference, the law of
//!   succession, and statistical inference", JASA 1927). For `k` successes in `n` requests,
//!   `p = k / n` and `z` the normal quantile of the confidence level (1.96 for 95%):
//!   `(p + z²/2n ± z √(p(1−p)/n + z²/4n²)) / (1 + z²/n)`. Unlike the textbook `p ± z √(p(1−p)/n)`
//!   it stays inside `[0, 1]` and keeps its coverage near 0% and 100% success, where the lab's
//!   lanes often are.
//! - **Difference of two proportions** (a lane's or a variant's success minus another's): Newcombe's
//!   hybrid score interval, his method 10 (Newcombe, "Interval estimation for the difference
//!   between independent proportions: comparison of eleven methods", Statistics in Medicine
//!   1998), built from the two Wilson intervals `[l₁, u₁]` and `[l₂, u₂]`:
//!   `d − √((p₁−l₁)² + (u₂−p₂)²)` to `d + √((u₁−p₁)² + (p₂−l₂)²)` with `d = p₁ − p₂`.
//!   The two samples are treated as independent: they share the fleet's behaviour request by
//!   request, but each request's outcome is drawn by the downstreams on its own.
//! - **Verdict**: `better` when the interval of the difference lies above 0, `worse` when below,
//!   `not distinguishable` when it contains 0.
//! - **Requests to tell apart** ([`requests_to_distinguish`]): how many requests per lane a
//!   difference of the size observed needs before its interval excludes 0, from the normal
//!   approximation `n = z² (p₁(1−p₁) + p₂(1−p₂)) / d²`: a guide (the lab's `--requests` and
//!   `--repeats`), not a power calculation. Newcombe's interval is a little wider near 100%, so it
//!   needs somewhat more; and with the true rates that close, about half of the runs of that
//!   size would still not tell them apart (for 80% of them, about twice as many requests).

use serde::Serialize;

/// The normal quantile for a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;
/// The normal quantile for a two-sided 99% interval.
pub const Z_99: f64 = 2.575_829_303_548_901;
/// The confidence level of the lab's intervals and of the learner's success-rate intervals (the
/// learner reads its experiment verdicts from 99% intervals, [`Z_99`]).
pub const CONFIDENCE: f64 = 0.95;

/// A closed interval of proportions (or of differences of proportions).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// The Wilson score interval of `successes` in `n` trials at normal quantile `z`; `[0, 1]` when
/// there are no trials.
pub fn wilson(successes: u64, n: u64, z: f64) -> Interval {
    if n == 0 {
        return Interval { low: 0.0, high: 1.0 };
    }
    let n = n as f64;
    let p = successes.min(n as u64) as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Interval { low: (centre - half).max(0.0), high: (centre + half).min(1.0) }
}

/// A count of successes among trials, with its rate and Wilson interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Proportion {
    pub successes: u64,
    pub n: u64,
    pub rate: f64,
    pub interval: Interval,
}

impl Proportion {
    /// `successes` of `n`, with the 95% Wilson interval.
    pub fn new(successes: u64, n: u64) -> Proportion {
        Proportion::at(successes, n, Z_95)
    }

    /// `successes` of `n`, with the Wilson interval at normal quantile `z`.
    pub fn at(successes: u64, n: u64, z: f64) -> Proportion {
        let rate = if n == 0 { 0.0 } else { successes as f64 / n as f64 };
        Proportion { successes, n, rate, interval: wilson(successes, n, z) }
    }
}

/// Newcombe's hybrid score interval (method 10) of `a.rate − b.rate`.
pub fn newcombe_difference(a: &Proportion, b: &Proportion) -> Interval {
    let d = a.rate - b.rate;
    let below = ((a.rate - a.interval.low).powi(2) + (b.interval.high - b.rate).powi(2)).sqrt();
    let above = ((a.interval.high - a.rate).powi(2) + (b.rate - b.interval.low).powi(2)).sqrt();
    Interval { low: d - below, high: d + above }
}

/// Requests per lane at which a difference of `a.rate − b.rate` would have a 95% interval that
/// just excludes 0 (normal approximation, see the module docs); `None` for no difference.
pub fn requests_to_distinguish(a: &Proportion, b: &Proportion) -> Option<u64> {
    let d = a.rate - b.rate;
    if d == 0.0 {
        return None;
    }
    let variance = a.rate * (1.0 - a.rate) + b.rate * (1.0 - b.rate);
    Some(((Z_95 * Z_95 * variance / (d * d)).ceil() as u64).max(1))
}

/// What the interval of a difference says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Better,
    Worse,
    NotDistinguishable,
}

impl Verdict {
    /// `Better` when the whole interval is above 0, `Worse` when below, else not distinguishable.
    pub fn of(difference: &Interval) -> Verdict {
        if difference.low > 0.0 {
            Verdict::Better
        } else if difference.high < 0.0 {
            Verdict::Worse
        } else {
            Verdict::NotDistinguishable
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NotDistinguishable => "not distinguishable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998), table I: 81/263, 15/148, 0/20 and 1/29.
        let cases = [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ];
        for (k, n, low, high) in cases {
            let i = wilson(k, n, Z_95);
            assert!(close(i.low, low) && close(i.high, high), "{k}/{n}: {i:?}");
        }
        assert_eq!(wilson(5, 0, Z_95), Interval { low: 0.0, high: 1.0 });
        let all = wilson(20, 20, Z_95);
        assert!(close(all.low, 0.8389) && all.high == 1.0, "{all:?}");
        // At 99% the same counts give a wider interval around the same rate.
        let (i95, i99) = (Proportion::new(81, 263), Proportion::at(81, 263, Z_99));
        assert_eq!(i95.rate, i99.rate);
        assert!(i99.interval.low < i95.interval.low && i99.interval.high > i95.interval.high);
    }

    #[test]
    fn newcombe_matches_published_values() {
        // Newcombe (1998), table II, method 10: 56/70 − 48/80 = 0.2, [0.0524, 0.3339];
        // 9/10 − 3/10 = 0.6, [0.1705, 0.8090].
        let cases = [((56, 70), (48, 80), 0.0524, 0.3339), ((9, 10), (3, 10), 0.1705, 0.8090)];
        for ((k1, n1), (k2, n2), low, high) in cases {
            let i = newcombe_difference(&Proportion::new(k1, n1), &Proportion::new(k2, n2));
            assert!(close(i.low, low) && close(i.high, high), "{k1}/{n1} - {k2}/{n2}: {i:?}");
        }
    }

    #[test]
    fn requests_to_distinguish_follow_the_normal_approximation() {
        // 97.5% against 95%: 1.96² × (0.024375 + 0.0475) / 0.025² = 441.8.
        let n = requests_to_distinguish(&Proportion::new(975, 1000), &Proportion::new(950, 1000));
        assert_eq!(n, Some(442));
        // A guide, not the threshold of Newcombe's interval, which is wider near 100%: the same
        // rates over 442 requests are not told apart yet, over 1,000 they are, over 200 far from.
        let at = |k1, k2, n| newcombe_difference(&Proportion::new(k1, n), &Proportion::new(k2, n));
        assert!(at(431, 420, 442).low < 0.0 && at(431, 420, 442).low > -0.001);
        assert!(at(975, 950, 1000).low > 0.0 && at(195, 190, 200).low < -0.01);
        assert_eq!(requests_to_distinguish(&Proportion::new(5, 10), &Proportion::new(5, 10)), None);
    }

    #[test]
    fn the_verdict_follows_whether_the_interval_excludes_zero() {
        assert_eq!(Verdict::of(&Interval { low: 0.001, high: 0.2 }), Verdict::Better);
        assert_eq!(Verdict::of(&Interval { low: -0.2, high: -0.001 }), Verdict::Worse);
        assert_eq!(Verdict::of(&Interval { low: -0.01, high: 0.2 }), Verdict::NotDistinguishable);
        assert_eq!(Verdict::of(&Interval { low: 0.0, high: 0.2 }), Verdict::NotDistinguishable);
    }
}
