//! Fast draws from a Beta distribution, for the Thompson family.
//!
//! `Beta(a, b) = X / (X + Y)` with `X ~ Gamma(a)`, `Y ~ Gamma(b)`, and each gamma drawn by
//! Marsaglia and Tsang's method ("A simple method for generating gamma variables", ACM TOMS 26(3),
//! 2000): one standard normal (ziggurat) and one uniform per try, a squeeze that avoids the
//! logarithm almost always, and an acceptance rate above 95% for every shape `>= 1`. Shapes below
//! 1 (never produced by `1 + counts`, but accepted) use the boost `Gamma(a) = Gamma(a + 1) *
//! U^(1/a)`.
//!
//! A gamma of shape at least [`PROPOSAL_MIN`] (10) is drawn from Marsaglia and Tsang's proposal
//! `d (1 + c Z)^3` alone, without the rejection step (a uniform draw and a comparison). In an
//! accept-reject sampler the proposal differs from the target by at most the rejection rate in
//! total variation, and Marsaglia–Tsang rejects about `0.03 / shape` of its proposals (measured:
//! 0.30% at shape 10, 0.09% at 30, 0.03% at 100), so such a draw is off by at most 0.3% in total
//! variation; the Beta built from two of them by at most 0.6%.
//!
//! When both parameters reach [`NORMAL_MIN`] the draw is a single normal with the Beta's mean and
//! variance instead. This is the coarser approximation: the Beta's skewness is at most
//! `2 / sqrt(min(a, b))` (0.2 at the threshold), which by the Edgeworth expansion puts it about
//! 0.15 × skewness (3% at the threshold, less beyond) from the normal in total variation, and
//! moves quantiles within the central 99.9% by a fraction of one posterior standard deviation. By
//! then an arm has at least a hundred successes *and* failures, and Thompson sampling's choice
//! between such arms hardly depends on the tails. It halves the cost of a draw where a router
//! spends most of its time: on arms it knows well. Parameters that are
//! not finite and positive read as 1 (the uniform prior), so a draw is always in `[0, 1]`.
//!
//! A selection compares draws and needs no division: [`BetaSampler::draw`] returns the draw as a
//! fraction `X / (X + Y)` ([`Draw`]) and [`Draw::beats`] compares two by cross-multiplication,
//! which saves a division per downstream on the Thompson family's hot path (about a tenth of a
//! 10-downstream selection). [`BetaSampler::sample`] divides.
//!
//! The samplers are generic over the RNG. A strategy drawing once per downstream should not pay
//! a virtual call per random number through `&mut dyn RngCore`: [`local_rng`] takes one number
//! from the caller's RNG and seeds a statically dispatched [`SmallRng`] with it for the draws of
//! one selection, so everything stays a function of the caller's RNG (and so reproducible).

use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// Both parameters at least this large: the normal approximation is used.
pub const NORMAL_MIN: f64 = 100.0;
/// Gamma shapes at least this large skip Marsaglia–Tsang's rejection step.
pub const PROPOSAL_MIN: f64 = 10.0;

/// A fast generator for the draws of one selection, seeded from one number of `rng`.
pub fn local_rng(rng: &mut dyn RngCore) -> SmallRng {
    SmallRng::seed_from_u64(rng.next_u64())
}

/// A draw in `[0, 1]` kept as the fraction `num / den` (`0 <= num <= den`, `den > 0`), so that
/// comparing two draws needs no division.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Draw {
    num: f64,
    den: f64,
}

impl Draw {
    /// `value` clamped to `[0, 1]` (NaN reads as 0).
    pub fn of(value: f64) -> Draw {
        let v = if value.is_nan() { 0.0 } else { value.clamp(0.0, 1.0) };
        Draw { num: v, den: 1.0 }
    }

    /// The draw's value, in `[0, 1]`.
    #[inline]
    pub fn value(self) -> f64 {
        (self.num / self.den).clamp(0.0, 1.0)
    }

    /// Whether `self > other`: `num / den > other.num / other.den`, with both denominators
    /// positive.
    #[inline(always)]
    pub fn beats(self, other: Draw) -> bool {
        self.num * other.den > other.num * self.den
    }
}

/// One draw from `Beta(a, b)`, in `[0, 1]`.
pub fn sample<R: Rng + ?Sized>(a: f64, b: f64, rng: &mut R) -> f64 {
    BetaSampler::new(a, b).sample(rng)
}

/// One draw from `Beta(1 + successes, 1 + failures)` (the uniform prior plus the evidence).
pub fn sample_counts<R: Rng + ?Sized>(successes: f64, failures: f64, rng: &mut R) -> f64 {
    let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
    sample(1.0 + clean(successes), 1.0 + clean(failures), rng)
}

/// A Beta distribution prepared for repeated draws: the square roots and divisions that depend
/// only on the parameters are done once, in [`BetaSampler::new`], so that a strategy whose
/// posterior changes on one arm per update pays them at update time and a selection only draws.
/// [`BetaSampler::sample`] gives exactly the same draws as [`sample`] for the same RNG state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BetaSampler {
    /// Normal approximation (both parameters at least [`NORMAL_MIN`]).
    Normal { mean: f64, sd: f64 },
    /// Ratio of two Marsaglia–Tsang gammas.
    Gammas { a: GammaSampler, b: GammaSampler, mean: f64 },
}

impl BetaSampler {
    /// Prepares `Beta(a, b)`; parameters that are not finite and positive read as 1.
    pub fn new(a: f64, b: f64) -> BetaSampler {
        let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 1.0 };
        let (a, b) = (clean(a), clean(b));
        if a >= NORMAL_MIN && b >= NORMAL_MIN {
            let mean = a / (a + b);
            let sd = (mean * (1.0 - mean) / (a + b + 1.0)).sqrt();
            BetaSampler::Normal { mean, sd }
        } else {
            BetaSampler::Gammas {
                a: GammaSampler::new(a),
                b: GammaSampler::new(b),
                mean: a / (a + b),
            }
        }
    }

    /// Prepares `Beta(1 + successes, 1 + failures)`; bad counts read as zero.
    pub fn for_counts(successes: f64, failures: f64) -> BetaSampler {
        let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        BetaSampler::new(1.0 + clean(successes), 1.0 + clean(failures))
    }

    /// One draw, in `[0, 1]`.
    #[inline(always)]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.draw(rng).value()
    }

    /// One draw as a fraction, for comparisons without a division. Same random numbers, same
    /// value as [`BetaSampler::sample`].
    #[inline(always)]
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Draw {
        match *self {
            BetaSampler::Normal { mean, sd } => {
                let z: f64 = StandardNormal.sample(rng);
                Draw { num: (mean + sd * z).clamp(0.0, 1.0), den: 1.0 }
            }
            BetaSampler::Gammas { a, b, mean } => {
                // Both gammas are non-negative, so `x <= sum`.
                let x = a.sample(rng);
                let y = b.sample(rng);
                let sum = x + y;
                if sum > 0.0 && sum.is_finite() {
                    Draw { num: x, den: sum }
                } else {
                    Draw { num: mean, den: 1.0 }
                }
            }
        }
    }
}

/// `Gamma(shape, 1)` prepared for Marsaglia and Tsang's method.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GammaSampler {
    /// `shape - 1/3` of the (boosted) shape.
    d: f64,
    /// `1 / sqrt(9 d)`.
    c: f64,
    /// For shapes below 1: `1 / shape` (the boost exponent), else 0.
    boost: f64,
    /// Whether the rejection step runs (shape below [`PROPOSAL_MIN`]).
    exact: bool,
}

impl GammaSampler {
    /// `shape > 0` and finite.
    pub fn new(shape: f64) -> GammaSampler {
        let (shape, boost) = if shape < 1.0 { (shape + 1.0, 1.0 / shape) } else { (shape, 0.0) };
        let d = shape - 1.0 / 3.0;
        GammaSampler { d, c: 1.0 / (9.0 * d).sqrt(), boost, exact: shape < PROPOSAL_MIN }
    }

    /// One draw.
    #[inline(always)]
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let (d, c) = (self.d, self.c);
        if !self.exact {
            loop {
                let x: f64 = StandardNormal.sample(rng);
                let v = 1.0 + c * x;
                if v > 0.0 {
                    return d * v * v * v;
                }
            }
        }
        let g = loop {
            let x: f64 = StandardNormal.sample(rng);
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u: f64 = rng.random();
            let x2 = x * x;
            if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + d * (1.0 - v + v.ln()) {
                break d * v;
            }
        };
        if self.boost > 0.0 {
            let u: f64 = rng.random();
            g * u.powf(self.boost)
        } else {
            g
        }
    }
}

/// One draw from `Gamma(shape, 1)`, `shape > 0` and finite.
pub fn gamma<R: Rng + ?Sized>(shape: f64, rng: &mut R) -> f64 {
    GammaSampler::new(shape).sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn moments(a: f64, b: f64, n: usize, seed: u64) -> (f64, f64) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let xs: Vec<f64> = (0..n).map(|_| sample(a, b, &mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        (mean, var)
    }

    #[test]
    fn moments_match_the_beta_on_both_paths() {
        // 40,000 draws: the sample mean's standard error is sd / 200, so 6 standard errors is a
        // band the seeded draws cannot leave by chance; the variance gets 10%.
        for (a, b) in
            [(1.0, 1.0), (1.0, 30.0), (2.5, 7.0), (40.0, 400.0), (150.0, 900.0), (35.0, 80.0)]
        {
            let (mean, var) = moments(a, b, 40_000, 5);
            let n = a + b;
            let (m, v) = (a / n, a * b / (n * n * (n + 1.0)));
            assert!((mean - m).abs() < 6.0 * v.sqrt() / 200.0, "Beta({a},{b}) mean {mean} vs {m}");
            assert!((var / v - 1.0).abs() < 0.1, "Beta({a},{b}) var {var} vs {v}");
        }
    }

    #[test]
    fn gamma_mean_is_the_shape() {
        let mut rng = SmallRng::seed_from_u64(9);
        for shape in [0.3, 1.0, 4.0, 50.0] {
            let mean = (0..40_000).map(|_| gamma(shape, &mut rng)).sum::<f64>() / 40_000.0;
            // Gamma(k) has sd sqrt(k); 6 standard errors of the mean of 40,000 draws.
            assert!((mean - shape).abs() < 6.0 * shape.sqrt() / 200.0, "{shape}: {mean}");
        }
    }

    #[test]
    fn prepared_samplers_draw_exactly_what_the_functions_draw() {
        for (a, b) in [(1.0, 1.0), (0.5, 3.0), (40.0, 400.0), (150.0, 900.0)] {
            let mut r1 = SmallRng::seed_from_u64(4);
            let mut r2 = SmallRng::seed_from_u64(4);
            let prepared = BetaSampler::new(a, b);
            for _ in 0..100 {
                assert_eq!(prepared.sample(&mut r1), sample(a, b, &mut r2));
            }
        }
        assert_eq!(BetaSampler::for_counts(2.0, f64::NAN), BetaSampler::new(3.0, 1.0));
    }

    #[test]
    fn draws_compare_like_their_values() {
        let mut rng = SmallRng::seed_from_u64(8);
        let samplers = [BetaSampler::new(2.0, 5.0), BetaSampler::new(300.0, 30.0)];
        let draws: Vec<Draw> = (0..2_000).map(|i| samplers[i % 2].draw(&mut rng)).collect();
        for pair in draws.windows(2) {
            let (x, y) = (pair[0], pair[1]);
            assert_eq!(x.beats(y), x.value() > y.value(), "{x:?} vs {y:?}");
            assert!((0.0..=1.0).contains(&x.value()));
        }
        assert_eq!(Draw::of(f64::NAN).value(), 0.0);
        assert_eq!(Draw::of(7.0).value(), 1.0);
        assert!(Draw::of(0.6).beats(Draw::of(0.5)) && !Draw::of(0.5).beats(Draw::of(0.5)));
    }

    /// Two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs.
    fn ks(mut xs: Vec<f64>, mut ys: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        ys.sort_by(f64::total_cmp);
        let (n, m) = (xs.len() as f64, ys.len() as f64);
        let (mut i, mut j, mut d) = (0, 0, 0.0f64);
        while i < xs.len() && j < ys.len() {
            let x = xs[i].min(ys[j]);
            while i < xs.len() && xs[i] <= x {
                i += 1;
            }
            while j < ys.len() && ys[j] <= x {
                j += 1;
            }
            d = d.max((i as f64 / n - j as f64 / m).abs());
        }
        d
    }

    /// Draws per sample of the KS tests.
    const KS_DRAWS: usize = 40_000;
    /// The two-sample KS critical value at α = 0.001 for two samples of [`KS_DRAWS`]:
    /// `sqrt(-ln(α / 2) / 2) * sqrt(2 / n)` = 1.9495 * 0.00707 = 0.0138. With fixed seeds the
    /// test is deterministic; the level says how unlucky a seed would have to be to fail a correct
    /// sampler.
    fn ks_critical() -> f64 {
        (-(0.001f64 / 2.0).ln() / 2.0).sqrt() * (2.0 / KS_DRAWS as f64).sqrt()
    }

    /// KS distance between our draws of `Beta(a, b)` and `rand_distr::Beta`'s.
    fn ks_against_rand_distr(a: f64, b: f64, seed: u64) -> f64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let ours: Vec<f64> = (0..KS_DRAWS).map(|_| sample(a, b, &mut rng)).collect();
        let reference = rand_distr::Beta::new(a, b).unwrap();
        let theirs: Vec<f64> = (0..KS_DRAWS).map(|_| reference.sample(&mut rng)).collect();
        ks(ours, theirs)
    }

    /// Which of the sampler's paths `Beta(a, b)` takes.
    fn path(a: f64, b: f64) -> &'static str {
        match BetaSampler::new(a, b) {
            BetaSampler::Normal { .. } => "normal",
            BetaSampler::Gammas { a: ga, b: gb, .. } => match (ga.exact, gb.exact) {
                (true, true) if ga.boost > 0.0 || gb.boost > 0.0 => "boosted",
                (true, true) => "exact",
                _ => "proposal",
            },
        }
    }

    #[test]
    fn every_path_passes_kolmogorov_smirnov_against_rand_distr() {
        let critical = ks_critical();
        // Exact paths (Marsaglia–Tsang with its rejection step, and the boost for shapes below
        // 1): only sampling noise is allowed.
        for (a, b) in [(1.0, 1.0), (2.5, 7.0), (9.9, 3.0), (0.5, 3.0), (0.3, 0.7)] {
            let d = ks_against_rand_distr(a, b, 21);
            eprintln!("Beta({a},{b}) {}: D = {d:.4} < {critical:.4}", path(a, b));
            assert!(path(a, b) == "exact" || path(a, b) == "boosted", "Beta({a},{b})");
            assert!(d < critical, "Beta({a},{b}) on the {} path: D = {d:.4}", path(a, b));
        }
        // Gammas of shape >= 10 drawn from the proposal without the rejection step: off by at most
        // the rejection rate in total variation (about 0.03 / shape per gamma), which bounds the
        // KS distance too.
        for (a, b) in [(10.0, 10.0), (30.0, 5.0), (40.0, 80.0), (12.0, 99.0)] {
            assert_eq!(path(a, b), "proposal", "Beta({a},{b})");
            let bias = [a, b].iter().filter(|s| **s >= PROPOSAL_MIN).map(|s| 0.03 / s).sum::<f64>();
            let d = ks_against_rand_distr(a, b, 22);
            eprintln!("Beta({a},{b}) proposal: D = {d:.4} < {:.4}", critical + bias);
            assert!(d < critical + bias, "Beta({a},{b}): D = {d:.4}, bound {:.4}", critical + bias);
        }
        // The normal approximation: its own KS distance to the Beta is, by the first Edgeworth
        // term, max |φ(x) (x² - 1)| × skewness / 6 = skewness / (6 sqrt(2π)) ≈ 0.0665 × skewness
        // (0 for a symmetric Beta, 0.011 for Beta(150, 900)).
        for (a, b) in [(100.0, 100.0), (150.0, 900.0), (100.0, 1_000.0), (700.0, 300.0)] {
            assert_eq!(path(a, b), "normal", "Beta({a},{b})");
            let n = a + b;
            let skew: f64 = 2.0 * (b - a) * (n + 1.0).sqrt() / ((n + 2.0) * (a * b).sqrt());
            let bias = skew.abs() / (6.0 * (2.0 * std::f64::consts::PI).sqrt());
            let d = ks_against_rand_distr(a, b, 23);
            eprintln!("Beta({a},{b}) normal: D = {d:.4} < {:.4}", critical + bias);
            assert!(d < critical + bias, "Beta({a},{b}): D = {d:.4}, bound {:.4}", critical + bias);
        }
    }

    #[test]
    fn the_kolmogorov_smirnov_check_sees_a_small_error() {
        // Power: draws of Beta(150, 900) against a reference of Beta(150, 870) (mean 14.3% vs
        // 14.7%, a third of a posterior sd apart) must fail the bound the normal path is held to.
        let mut rng = SmallRng::seed_from_u64(24);
        let ours: Vec<f64> = (0..KS_DRAWS).map(|_| sample(150.0, 900.0, &mut rng)).collect();
        let reference = rand_distr::Beta::new(150.0, 870.0).unwrap();
        let theirs: Vec<f64> = (0..KS_DRAWS).map(|_| reference.sample(&mut rng)).collect();
        let d = ks(ours, theirs);
        assert!(d > ks_critical() + 0.012, "D = {d:.4}");
        assert_eq!(ks(vec![0.1, 0.2], vec![0.3, 0.4]), 1.0);
        assert_eq!(ks(vec![0.1, 0.3], vec![0.1, 0.3]), 0.0);
    }

    #[test]
    fn bad_parameters_read_as_the_prior() {
        let mut rng = SmallRng::seed_from_u64(1);
        for (a, b) in [(f64::NAN, 2.0), (f64::INFINITY, 0.0), (-3.0, 1e300), (1e300, 1e300)] {
            let x = sample(a, b, &mut rng);
            assert!((0.0..=1.0).contains(&x), "Beta({a},{b}) gave {x}");
        }
        let x = sample_counts(f64::NAN, -1.0, &mut rng);
        assert!((0.0..=1.0).contains(&x));
    }
}
