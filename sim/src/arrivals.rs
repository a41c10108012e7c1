//! When client requests arrive: evenly spaced, as a Poisson process, or in bursts.
//!
//! Every process keeps the run's mean rate, one request per `interarrival_ms` on average, so a
//! scenario built for a run of `requests × interarrival_ms` sees its changes at the same point
//! whatever the process:
//!
//! - [`Arrivals::Constant`]: request `i` arrives at `i × interarrival_ms` (the engine's classic
//!   schedule, to the microsecond);
//! - [`Arrivals::Poisson`]: independent exponential gaps of mean `interarrival_ms` (a Poisson
//!   process, the usual model of many independent clients);
//! - [`Arrivals::Bursts`]: `size` requests at a time, `gap_ms` apart within a burst; bursts
//!   start as a Poisson process of mean gap `size × interarrival_ms` (a batch Poisson
//!   process: same mean rate, far more requests in flight at a burst's start).
//!
//! The gaps come from their own RNG stream of the run's seed, drawn only by the random
//! processes, so a constant schedule leaves every other stream as it was.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::SimConfig;

/// An arrival process (see the module docs). In a file:
/// `arrivals = "constant"`, `arrivals = "poisson"` or `arrivals = { bursts = { size = 20, gap_ms = 0.5 } }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    #[default]
    Constant,
    Poisson,
    Bursts {
        /// Requests per burst (at least 1).
        size: u32,
        /// Time between two requests of a burst, ms (0: all at once).
        gap_ms: f64,
    },
}

/// An arrival process given as text is not `constant`, `poisson` or `bursts:SIZE:GAP_MS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid arrival process {0:?}; valid: constant, poisson, bursts:SIZE:GAP_MS (SIZE >= 1, GAP_MS >= 0)"
)]
pub struct InvalidArrivals(pub String);

impl std::str::FromStr for Arrivals {
    type Err = InvalidArrivals;

    /// `constant`, `poisson`, or `bursts:SIZE:GAP_MS` (the command line's form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidArrivals(s.to_owned());
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "constant" => return Ok(Arrivals::Constant),
            "poisson" => return Ok(Arrivals::Poisson),
            _ => {}
        }
        let rest = t.strip_prefix("bursts:").ok_or_else(bad)?;
        let (size, gap) = rest.split_once(':').ok_or_else(bad)?;
        let size: u32 = size.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(bad)?;
        let gap_ms: f64 =
            gap.trim().parse().ok().filter(|g: &f64| g.is_finite() && *g >= 0.0).ok_or_else(bad)?;
        Ok(Arrivals::Bursts { size, gap_ms })
    }
}

/// Exponential draw of mean `mean_us`, in microseconds.
fn exponential_us(mean_us: f64, rng: &mut SmallRng) -> f64 {
    let u: f64 = rng.random();
    -(1.0 - u).ln() * mean_us
}

/// The arrival times of one run, in order.
#[derive(Clone, Debug)]
pub struct ArrivalClock {
    process: Arrivals,
    step_us: f64,
    index: u64,
    /// Arrival of request `index`.
    next_us: u64,
    /// Random processes: the exact time of `next_us` and, for bursts, the start of the
    /// current burst.
    exact_us: f64,
    burst_start_us: f64,
    rng: SmallRng,
}

impl ArrivalClock {
    /// The clock of a run of `config`; `seed` drives the random gaps.
    pub fn new(config: &SimConfig, seed: u64) -> ArrivalClock {
        let step_us = (config.interarrival_ms * 1_000.0).max(0.0);
        let mut clock = ArrivalClock {
            process: config.arrivals.clone(),
            step_us,
            index: 0,
            next_us: 0,
            exact_us: 0.0,
            burst_start_us: 0.0,
            rng: SmallRng::seed_from_u64(seed),
        };
        // A Poisson process's first arrival is one gap after the start, like every other.
        if clock.process == Arrivals::Poisson {
            clock.exact_us = exponential_us(step_us, &mut clock.rng);
            clock.next_us = clock.exact_us as u64;
        }
        clock
    }

    /// When the next request arrives, in simulated microseconds.
    pub fn peek(&self) -> u64 {
        self.next_us
    }

    /// Moves on to the following request.
    pub fn advance(&mut self) {
        self.index += 1;
        self.next_us = match self.process {
            Arrivals::Constant => (self.index as f64 * self.step_us) as u64,
            Arrivals::Poisson => {
                self.exact_us += exponential_us(self.step_us, &mut self.rng);
                self.exact_us as u64
            }
            Arrivals::Bursts { size, gap_ms } => {
                let size = u64::from(size.max(1));
                let within = self.index % size;
                if within == 0 {
                    let mean = self.step_us * size as f64;
                    self.burst_start_us += exponential_us(mean, &mut self.rng);
                }
                // A burst longer than the gap to the next one overlaps it: arrivals stay in
                // order because each is at least the previous one.
                let at = self.burst_start_us + within as f64 * gap_ms.max(0.0) * 1_000.0;
                self.exact_us = at.max(self.exact_us);
                self.exact_us as u64
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(arrivals: Arrivals, n: usize, seed: u64) -> Vec<u64> {
        let config = SimConfig { arrivals, interarrival_ms: 10.0, ..SimConfig::default() };
        let mut clock = ArrivalClock::new(&config, seed);
        (0..n)
            .map(|_| {
                let t = clock.peek();
                clock.advance();
                t
            })
            .collect()
    }

    #[test]
    fn the_command_lines_form_parses_and_names_what_is_wrong() {
        assert_eq!("Poisson".parse(), Ok(Arrivals::Poisson));
        assert_eq!("constant".parse(), Ok(Arrivals::Constant));
        assert_eq!("bursts:20:0.5".parse(), Ok(Arrivals::Bursts { size: 20, gap_ms: 0.5 }));
        for bad in ["", "bursty", "bursts:0:1", "bursts:5", "bursts:5:-1", "bursts:5:nan"] {
            let err = bad.parse::<Arrivals>().unwrap_err().to_string();
            assert!(
                err.contains("bursts:SIZE:GAP_MS") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn constant_arrivals_are_the_classic_schedule() {
        let t = times(Arrivals::Constant, 5, 1);
        assert_eq!(t, [0, 10_000, 20_000, 30_000, 40_000]);
    }

    #[test]
    fn poisson_gaps_are_exponential_with_the_mean_rate() {
        // 100,000 gaps of mean 10 ms: the mean has a relative sd of 1/sqrt(100,000) = 0.3%, so
        // a 1.5% band is 5 sd. The share of gaps above the mean is e^-1 = 36.8% (sd 0.15
        // points), and an exponential's sd equals its mean (within 2%).
        let t = times(Arrivals::Poisson, 100_001, 3);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        let gaps: Vec<f64> = t.windows(2).map(|w| (w[1] - w[0]) as f64 / 1_000.0).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean / 10.0 - 1.0).abs() < 0.015, "{mean}");
        let above = gaps.iter().filter(|g| **g > 10.0).count() as f64 / gaps.len() as f64;
        assert!((above - (-1.0f64).exp()).abs() < 0.008, "{above}");
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!((var.sqrt() / mean - 1.0).abs() < 0.02, "{}", var.sqrt());
        assert_ne!(t, times(Arrivals::Poisson, 100_001, 4), "seeds differ");
        assert_eq!(t, times(Arrivals::Poisson, 100_001, 3), "a seed reproduces");
    }

    #[test]
    fn bursts_keep_the_mean_rate_and_come_in_groups() {
        let bursts = Arrivals::Bursts { size: 20, gap_ms: 0.5 };
        let t = times(bursts, 200_000, 5);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        // 10,000 bursts of mean gap 200 ms: the mean rate within 3% (over 3 sd of 1%).
        let mean_ms = t[t.len() - 1] as f64 / 1_000.0 / (t.len() - 1) as f64;
        assert!((mean_ms / 10.0 - 1.0).abs() < 0.03, "{mean_ms}");
        // Within a burst the requests are 0.5 ms apart, unless the next burst started early.
        let within = t.windows(2).filter(|w| w[1] - w[0] == 500).count();
        assert!(within as f64 > 0.9 * 19.0 * 10_000.0, "{within}");
    }
}
