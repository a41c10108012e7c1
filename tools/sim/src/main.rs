//! `magnetar-sim`: runs any set of strategies over any set of simulated scenarios for many
//! seeds, prints a comparison table per scenario, and writes JSON, CSV and an SVG chart
//! (cumulative regret and success over time) per scenario.
//!
//! ```text
//! magnetar-sim --scenarios all --strategies all --seeds 20 --requests 20000 --out target/sim
//! magnetar-sim --scenarios abrupt --strategies thompson,thompson_discounted,thompson_window
//! magnetar-sim --scenarios retries --max-attempts 3 --strategies thompson,round_robin
//! magnetar-sim --list                                  # the built-in scenarios and their files
//! magnetar-sim --scenario-file my-fleet.toml --strategies thompson,least_outstanding
//! magnetar-sim --export-scenarios sim/scenarios        # every built-in scenario as a file
//! ```
//!
//! Runs are spread over the machine's cores; every run is a pure function of its seed, so the
//! output does not depend on the thread count.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::Parser;
use magnetar_core::retry::{RetryBudgetConfig, RetryMode};
use magnetar_core::strategy::{StrategyKind, StrategyParams};
use magnetar_sim::{self as sim, Aggregate, Format, RunResult, SCENARIOS, Scenario, SimConfig};

mod chart;
mod table;

/// Compare Magnetar's strategies on seeded simulated fleets.
#[derive(Parser, Debug)]
#[command(name = "magnetar-sim", version)]
struct Args {
    /// Built-in scenarios, comma-separated, or `all` (`--list` shows them).
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// A fleet described in a TOML (or `.json`) file, instead of the built-in scenarios;
    /// may be given more than once. `sim/scenarios/` has every built-in one as a file.
    #[arg(long)]
    scenario_file: Vec<PathBuf>,
    /// List the built-in scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Write every built-in scenario (for this run's configuration) as `<name>.toml` into this
    /// directory and exit.
    #[arg(long)]
    export_scenarios: Option<PathBuf>,
    /// Strategies by wire name, comma-separated, or `all`.
    #[arg(long, default_value = "all")]
    strategies: String,
    /// Seeds per strategy and scenario (seeds are `seed_base..seed_base + seeds`).
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    #[arg(long, default_value_t = 1)]
    seed_base: u64,
    /// Client requests per run.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Time between requests, ms (10 = 100 requests/s).
    #[arg(long, default_value_t = sim::DEFAULT_INTERARRIVAL_MS)]
    interarrival_ms: f64,
    /// Attempts per request (1 = single attempt, 3 = the penalty-free budget).
    #[arg(long, default_value_t = 1)]
    max_attempts: u32,
    /// Allow retrying the same downstream.
    #[arg(long)]
    same_downstream: bool,
    /// Let strategies that plan repeats (magnetar) retry the previous downstream
    /// (DISTINCT_DOWNSTREAMS=auto).
    #[arg(long, conflicts_with = "same_downstream")]
    auto_repeat: bool,
    /// magnetar: prior rate of change of a downstream, per second.
    #[arg(long)]
    change_hazard: Option<f64>,
    /// magnetar: cost of one attempt beyond its latency, ms.
    #[arg(long)]
    attempt_cost_ms: Option<f64>,
    /// Disable the retry budget (20% of requests + 10/s, 10 s ttl).
    #[arg(long)]
    no_retry_budget: bool,
    /// Discount of thompson_discounted.
    #[arg(long)]
    discount: Option<f64>,
    /// Window of thompson_window.
    #[arg(long)]
    window: Option<usize>,
    /// Policy envoy_outlier balances with among the hosts it has not ejected: round_robin
    /// (Envoy's default) or random.
    #[arg(long)]
    envoy_lb: Option<String>,
    /// Points per time series.
    #[arg(long, default_value_t = sim::DEFAULT_SERIES_POINTS)]
    points: usize,
    /// Directory for results.json, results.csv and one SVG per scenario.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

fn parse_list<T>(spec: &str, all: &[T], parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>>
where
    T: Clone,
{
    if spec.trim().eq_ignore_ascii_case("all") {
        return Ok(all.to_vec());
    }
    spec.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse).collect()
}

/// The results of one scenario.
#[derive(serde::Serialize)]
struct ScenarioReport {
    scenario: Scenario,
    config: SimConfig,
    results: Vec<Aggregate>,
}

/// Reads and checks a scenario file (TOML, or JSON for `.json`).
fn read_scenario(path: &std::path::Path) -> Result<Scenario> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let format = Format::of_path(&path.to_string_lossy());
    Scenario::parse(&text, format).with_context(|| format!("{}", path.display()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.list {
        for s in Scenario::builtins(&SimConfig::default()) {
            println!("{:<15} {} (sim/scenarios/{}.toml)", s.name, s.description, s.name);
        }
        return Ok(());
    }
    let scenario_names: Vec<String> = parse_list(
        &args.scenarios,
        &SCENARIOS.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        |s| {
            if SCENARIOS.contains(&s) {
                Ok(s.to_owned())
            } else {
                bail!("unknown scenario {s:?}; valid: {}", SCENARIOS.join(", "))
            }
        },
    )?;
    let kinds =
        parse_list(&args.strategies, StrategyKind::ALL, |s| Ok(s.parse::<StrategyKind>()?))?;
    if args.seeds == 0 || args.requests == 0 {
        bail!("--seeds and --requests must be at least 1");
    }
    let config = SimConfig {
        requests: args.requests,
        interarrival_ms: args.interarrival_ms,
        max_attempts: args.max_attempts,
        retry_mode: if args.same_downstream {
            RetryMode::Repeat
        } else if args.auto_repeat {
            RetryMode::Auto
        } else {
            RetryMode::Distinct
        },
        retry_budget: (!args.no_retry_budget).then(RetryBudgetConfig::default),
        series_points: args.points,
        ..SimConfig::default()
    };
    let mut params = StrategyParams::default();
    params.magnetar.repeats = config.retry_mode == RetryMode::Auto;
    params.magnetar.attempt_timeout_ms = config.attempt_timeout_ms as f64;
    if let Some(h) = args.change_hazard {
        params.magnetar.hazard_per_s = h;
    }
    if let Some(c) = args.attempt_cost_ms {
        params.magnetar.attempt_cost_ms = c;
    }
    params.magnetar.check()?;
    if let Some(d) = args.discount {
        params.discount = d;
    }
    if let Some(w) = args.window {
        params.window = w;
    }
    if let Some(lb) = &args.envoy_lb {
        params.envoy_lb = lb.parse()?;
    }
    // No weights are given here, so the fleet size does not matter to the check.
    params.check(0)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);

    if let Some(dir) = &args.export_scenarios {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for s in Scenario::builtins(&config) {
            std::fs::write(dir.join(format!("{}.toml", s.name)), s.to_toml()?)?;
        }
        eprintln!("wrote {} scenario files to {}", SCENARIOS.len(), dir.display());
        return Ok(());
    }
    let scenarios: Vec<Scenario> = if args.scenario_file.is_empty() {
        scenario_names.iter().map(|n| Scenario::builtin(n, &config)).collect::<Result<_, _>>()?
    } else {
        args.scenario_file.iter().map(|p| read_scenario(p)).collect::<Result<_>>()?
    };

    let mut reports = Vec::new();
    for scenario in scenarios {
        let name = scenario.name.clone();
        // The scenario's own arrival rate and attempt timeout, as the engine runs it.
        let run_config = scenario.configure(&config);
        let started = std::time::Instant::now();
        let runs =
            run_all(&scenario, &kinds, &params, &config, args.seed_base, args.seeds, threads);
        let mut results: Vec<Aggregate> = kinds
            .iter()
            .filter_map(|k| {
                let mine: Vec<RunResult> =
                    runs.iter().filter(|r| r.strategy == *k).cloned().collect();
                sim::aggregate(&mine)
            })
            .collect();
        results.sort_by(|a, b| a.regret.mean.total_cmp(&b.regret.mean));
        println!("{}", table::markdown(&scenario, &run_config, args.seeds, &results));
        eprintln!("{name}: {} runs in {:.1?}", runs.len(), started.elapsed());
        reports.push(ScenarioReport { scenario, config: run_config, results });
    }

    if let Some(dir) = &args.out {
        write_outputs(dir, &reports)?;
        eprintln!("wrote results.json, results.csv and charts to {}", dir.display());
    }
    Ok(())
}

/// Writes `results.json`, `results.csv` and one `<scenario>.svg` per scenario into `dir`.
fn write_outputs(dir: &std::path::Path, reports: &[ScenarioReport]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(&reports)?;
    std::fs::write(dir.join("results.json"), json)?;
    let rows: Vec<_> =
        reports.iter().map(|r| (&r.scenario, &r.config, r.results.as_slice())).collect();
    std::fs::write(dir.join("results.csv"), table::csv(&rows))?;
    for r in reports {
        let svg = chart::svg(&r.scenario, &r.results);
        std::fs::write(dir.join(format!("{}.svg", r.scenario.name)), svg)?;
    }
    Ok(())
}

/// Runs every (strategy, seed) pair of a scenario on `threads` threads.
fn run_all(
    scenario: &Scenario,
    kinds: &[StrategyKind],
    params: &StrategyParams,
    config: &SimConfig,
    seed_base: u64,
    seeds: u64,
    threads: usize,
) -> Vec<RunResult> {
    let jobs: Vec<(StrategyKind, u64)> =
        kinds.iter().flat_map(|k| (0..seeds).map(move |s| (*k, seed_base + s))).collect();
    let next = Mutex::new(0usize);
    let results = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let job = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let job = jobs.get(*n).copied();
                        *n += 1;
                        job
                    };
                    let Some((kind, seed)) = job else { break };
                    let r = sim::run_kind(scenario, kind, params, config, seed);
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|r| (r.strategy as usize, r.seed));
    results
}
