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
//! magnetar-sim --scenarios constant --strategies thompson,magnetar --isolates 1,10,100,1000
//! magnetar-sim --scenarios latency --objective latency_slo:50 --arrivals poisson
//! ```
//!
//! `--isolates` prints the fleet-scale table instead ([`magnetar_sim::fleet`]): each number of
//! router isolates, without and with the learner. Every run's stderr line ends with the
//! simulator's throughput, simulated attempts per second of wall time.
//!
//! Runs are spread over the machine's cores; every run is a pure function of its seed, so the
//! output does not depend on the thread count.

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use clap::Parser;
use magnetar_core::posterior::DEFAULT_HALF_LIFE_MS;
use magnetar_core::retry::{RetryBudgetConfig, RetryMode};
use magnetar_core::strategy::magnetar::Objective;
use magnetar_core::strategy::{StrategyKind, StrategyParams};
use magnetar_sim::fleet::{DEFAULT_PARAMS_REFRESH_MS, DEFAULT_TELEMETRY_LAG_MS};
use magnetar_sim::{
    self as sim, Aggregate, Arrivals, FleetConfig, Format, LearnerSync, RunResult, SCENARIOS,
    Scenario, SimConfig, Spread,
};

mod chart;
mod fleet_table;
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
    /// Mean time between requests, ms (10 = 100 requests/s).
    #[arg(long, default_value_t = sim::DEFAULT_INTERARRIVAL_MS)]
    interarrival_ms: f64,
    /// Arrival process: constant, poisson, or bursts:SIZE:GAP_MS (a scenario file's `arrivals`
    /// wins).
    #[arg(long, default_value = "constant")]
    arrivals: String,
    /// magnetar's OBJECTIVE (success, or latency_slo:N); with latency_slo:N every table also
    /// reports the share of requests that succeeded within N ms. A scenario file's
    /// `latency_objective_ms` sets it for that scenario when this is not given.
    #[arg(long)]
    objective: Option<String>,
    /// Router isolates, comma-separated (e.g. 1,10,100,1000): print the fleet-scale table, each
    /// number of isolates without and with the learner, instead of the strategy tables.
    #[arg(long)]
    isolates: Option<String>,
    /// Fleet table: PARAMS_REFRESH_MS of every isolate.
    #[arg(long, default_value_t = DEFAULT_PARAMS_REFRESH_MS)]
    params_refresh_ms: u64,
    /// Fleet table: time from a request's answer to its telemetry in the learner, ms.
    #[arg(long, default_value_t = DEFAULT_TELEMETRY_LAG_MS)]
    telemetry_lag_ms: u64,
    /// Fleet table: the learner's half-life (LEARNER_HALF_LIFE_MS).
    #[arg(long, default_value_t = DEFAULT_HALF_LIFE_MS)]
    half_life_ms: u64,
    /// Fleet table: mean lifetime of an isolate, ms (default: isolates live the whole run).
    #[arg(long)]
    isolate_lifetime_ms: Option<f64>,
    /// Fleet table: Zipf exponent of the arrivals' spread over isolates (0: even).
    #[arg(long, default_value_t = 0.0)]
    skew: f64,
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
    let arrivals: Arrivals =
        args.arrivals.parse().map_err(|e| anyhow::anyhow!("--arrivals: {e}"))?;
    let objective: Option<Objective> = args
        .objective
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--objective: {e}"))?;
    let latency_objective_ms = match objective {
        Some(Objective::LatencySlo { ms }) => Some(ms),
        _ => None,
    };
    let config = SimConfig {
        requests: args.requests,
        interarrival_ms: args.interarrival_ms,
        arrivals,
        latency_objective_ms,
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
    if let Some(objective) = objective {
        params.magnetar.objective = objective;
    }
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

    let fleet = match &args.isolates {
        Some(list) => Some(fleet_options(&args, list)?),
        None => None,
    };
    let mut reports = Vec::new();
    let (mut attempts, started_all) = (0u64, std::time::Instant::now());
    for scenario in scenarios {
        let name = scenario.name.clone();
        // The scenario's own arrival rate, attempt timeout and objective, as the engine runs it.
        let run_config = scenario.configure(&config);
        let params = scenario_params(&params, &run_config, objective.is_some());
        let started = std::time::Instant::now();
        if let Some((counts, learner, base)) = &fleet {
            let jobs: Vec<fleet_table::Job> = kinds
                .iter()
                .flat_map(|k| counts.iter().map(move |n| (*k, *n)))
                .flat_map(|(kind, isolates)| {
                    [None, Some(*learner)].map(|learner| fleet_table::Job {
                        kind,
                        fleet: FleetConfig { isolates, learner, ..*base },
                    })
                })
                .collect();
            let runs: Vec<Vec<RunResult>> = parallel(&jobs, threads, |job| {
                (0..args.seeds)
                    .map(|s| {
                        let seed = args.seed_base + s;
                        sim::run_fleet(&scenario, job.kind, &params, &config, &job.fleet, seed)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .into_iter()
            .collect::<Result<_, _>>()?;
            let n: u64 = runs.iter().flatten().map(|r| r.summary.attempts).sum();
            attempts += n;
            println!("{}", fleet_table::markdown(&scenario, &run_config, args.seeds, &jobs, &runs));
            eprintln!(
                "{name}: {} fleet runs in {}",
                jobs.len() * args.seeds as usize,
                rate(n, started, threads)
            );
            continue;
        }
        let runs =
            run_all(&scenario, &kinds, &params, &config, args.seed_base, args.seeds, threads);
        let n: u64 = runs.iter().map(|r| r.summary.attempts).sum();
        attempts += n;
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
        eprintln!("{name}: {} runs in {}", runs.len(), rate(n, started, threads));
        reports.push(ScenarioReport { scenario, config: run_config, results });
    }

    eprintln!("all scenarios: {}", rate(attempts, started_all, threads));
    if let Some(dir) = &args.out
        && !reports.is_empty()
    {
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

/// `N simulated attempts in T s (A attempts/s on P threads)`.
fn rate(attempts: u64, started: std::time::Instant, threads: usize) -> String {
    let secs = started.elapsed().as_secs_f64();
    format!(
        "{secs:.1}s, {attempts} simulated attempts ({:.0} attempts/s on {threads} threads)",
        attempts as f64 / secs.max(1e-9)
    )
}

/// The fleet table's isolate counts, learner and the rest of its fleet configuration.
fn fleet_options(args: &Args, list: &str) -> Result<(Vec<usize>, LearnerSync, FleetConfig)> {
    let counts = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => bail!("--isolates: {s:?} is not a whole number >= 1"),
        })
        .collect::<Result<Vec<_>>>()?;
    if counts.is_empty() {
        bail!("--isolates: give at least one number of isolates");
    }
    let learner = LearnerSync {
        params_refresh_ms: args.params_refresh_ms,
        telemetry_lag_ms: args.telemetry_lag_ms,
        half_life_ms: args.half_life_ms,
    };
    let spread =
        if args.skew == 0.0 { Spread::Even } else { Spread::Skewed { exponent: args.skew } };
    let base = FleetConfig {
        isolates: 1,
        spread,
        learner: Some(learner),
        mean_lifetime_ms: args.isolate_lifetime_ms,
    };
    base.check().map_err(|e| anyhow::anyhow!("fleet: {e}"))?;
    Ok((counts, learner, base))
}

/// The strategy parameters of one scenario's runs: a scenario's own latency objective becomes
/// magnetar's `OBJECTIVE` unless the command line gave one.
fn scenario_params(params: &StrategyParams, run: &SimConfig, given: bool) -> StrategyParams {
    let mut params = params.clone();
    if let (false, Some(ms)) = (given, run.latency_objective_ms) {
        params.magnetar.objective = Objective::LatencySlo { ms };
    }
    params
}

/// Runs `f` over every job on `threads` threads; the results in the jobs' order.
fn parallel<J: Sync, R: Send>(jobs: &[J], threads: usize, f: impl Fn(&J) -> R + Sync) -> Vec<R> {
    let next = Mutex::new(0usize);
    let results = Mutex::new(Vec::with_capacity(jobs.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(job) = jobs.get(i) else { break };
                    let r = f(job);
                    results.lock().unwrap_or_else(|e| e.into_inner()).push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
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
    parallel(&jobs, threads, |(kind, seed)| sim::run_kind(scenario, *kind, params, config, *seed))
}
