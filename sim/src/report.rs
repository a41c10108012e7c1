//! Aggregating seeded runs: means (and spreads) over seeds, per strategy.

use serde::Serialize;

use super::{RunResult, Series};
use magnetar_core::strategy::StrategyKind;

/// Mean and sample standard deviation over runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
}

impl Stat {
    pub fn of(xs: impl IntoIterator<Item = f64>) -> Stat {
        let xs: Vec<f64> = xs.into_iter().collect();
        if xs.is_empty() {
            return Stat::default();
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = if xs.len() > 1 {
            xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Stat { mean, sd: var.sqrt() }
    }
}

/// One strategy's results on one scenario, over every seed.
#[derive(Clone, Debug, Serialize)]
pub struct Aggregate {
    pub strategy: StrategyKind,
    pub runs: usize,
    pub success_rate: Stat,
    /// Success within the latency objective, when the runs had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_within_objective_rate: Option<Stat>,
    pub first_attempt_success_rate: Stat,
    pub attempts_per_request: Stat,
    /// Most attempts any request of any run made.
    pub max_attempts: u32,
    pub regret: Stat,
    pub realized_regret: Stat,
    pub best_guess_score: Stat,
    pub latency_p50_ms: Stat,
    pub latency_p99_ms: Stat,
    pub latency_p999_ms: Stat,
    /// Mean traffic share per downstream.
    pub traffic_share: Vec<f64>,
    pub oracle_success_rate: Stat,
    /// Success rate over the oracle's, in percent, per run.
    pub percent_of_oracle: Stat,
    /// Expected latency of the oracle's chains.
    pub oracle_latency_ms: Stat,
    pub retries_denied: Stat,
    /// Per-bucket means over runs.
    pub series: Series,
}

/// Aggregates runs of one strategy (on one scenario and config). `None` for no runs.
pub fn aggregate(runs: &[RunResult]) -> Option<Aggregate> {
    let first = runs.first()?;
    let stat = |f: &dyn Fn(&RunResult) -> f64| Stat::of(runs.iter().map(f));
    let n = runs.len() as f64;
    let mean_vec = |f: &dyn Fn(&RunResult) -> &Vec<f64>| {
        let mut out = vec![0.0; f(first).len()];
        for r in runs {
            for (o, x) in out.iter_mut().zip(f(r)) {
                *o += x / n;
            }
        }
        out
    };
    Some(Aggregate {
        strategy: first.strategy,
        runs: runs.len(),
        success_rate: stat(&|r| r.summary.success_rate),
        success_within_objective_rate: first
            .summary
            .success_within_objective_rate
            .map(|_| stat(&|r| r.summary.success_within_objective_rate.unwrap_or(0.0))),
        first_attempt_success_rate: stat(&|r| r.summary.first_attempt_success_rate),
        attempts_per_request: stat(&|r| r.summary.attempts_per_request),
        max_attempts: runs.iter().map(|r| r.summary.max_attempts).max().unwrap_or(0),
        regret: stat(&|r| r.summary.regret),
        realized_regret: stat(&|r| r.summary.realized_regret),
        best_guess_score: stat(&|r| r.summary.best_guess_score as f64),
        latency_p50_ms: stat(&|r| r.summary.latency_p50_ms),
        latency_p99_ms: stat(&|r| r.summary.latency_p99_ms),
        latency_p999_ms: stat(&|r| r.summary.latency_p999_ms),
        traffic_share: mean_vec(&|r| &r.summary.traffic_share),
        oracle_success_rate: stat(&|r| r.oracle_success_rate),
        percent_of_oracle: stat(&|r| r.percent_of_oracle()),
        oracle_latency_ms: stat(&|r| r.oracle_latency_ms),
        retries_denied: stat(&|r| r.retries_denied as f64),
        series: Series {
            bucket: first.series.bucket,
            regret: mean_vec(&|r| &r.series.regret),
            successes: mean_vec(&|r| &r.series.successes),
            expected_first: mean_vec(&|r| &r.series.expected_first),
            oracle: mean_vec(&|r| &r.series.oracle),
            attempts: mean_vec(&|r| &r.series.attempts),
        },
    })
}

impl Aggregate {
    /// Cumulative mean regret at the end of each bucket.
    pub fn cumulative_regret(&self) -> Vec<f64> {
        cumulative(&self.series.regret)
    }
}

impl Series {
    /// Cumulative regret after the first `requests` requests (rounded down to a bucket).
    pub fn regret_at(&self, requests: u64) -> f64 {
        let buckets = (requests / self.bucket.max(1)) as usize;
        self.regret.iter().take(buckets).sum()
    }

    /// Mean success probability of first choices over requests `from..to` (bucket-aligned).
    pub fn expected_first_between(&self, from: u64, to: u64) -> f64 {
        let b = self.bucket.max(1);
        let (i, j) = ((from / b) as usize, (to / b) as usize);
        let sum: f64 = self.expected_first.iter().take(j).skip(i).sum();
        sum / ((j.saturating_sub(i)) as u64 * b).max(1) as f64
    }
}

/// Running sums.
pub fn cumulative(xs: &[f64]) -> Vec<f64> {
    xs.iter()
        .scan(0.0, |acc, x| {
            *acc += x;
            Some(*acc)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_mean_and_sample_sd() {
        let s = Stat::of([1.0, 2.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        assert!((s.sd - 1.0).abs() < 1e-12);
        assert_eq!(Stat::of([]), Stat::default());
        assert_eq!(cumulative(&[1.0, 2.0, 3.0]), [1.0, 3.0, 6.0]);
    }
}
