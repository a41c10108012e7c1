//! The command line: `run` (headless comparison), `serve` (the test-bed page), `scenarios`.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};

use crate::load::LoadShape;
use crate::peers::{PeerKind, PeerTuning};
use crate::run::{RunOptions, StartStack};
use crate::scenario::Scenario;
use crate::serve::ServeConfig;
use crate::{latency, report, run, serve, stack};

/// Default concurrency of `run`, requests in flight per lane: what the test-bed page does with its
/// default two strategies, whose requests share the browser's 6 connections to the router (3 per
/// lane). The lab has no such limit: with more lanes it keeps 3 per lane, where the page would
/// have to queue.
pub const BROWSER_CONNECTIONS_PER_HOST: usize = 6;
pub const DEFAULT_CONCURRENCY: usize = BROWSER_CONNECTIONS_PER_HOST / 2;
/// Default requests per lane.
pub const DEFAULT_REQUESTS: usize = 1000;

#[derive(Debug, Parser)]
#[command(
    name = "magnetar-lab",
    version,
    about = "Magnetar's lab: stress comparisons of routing strategies against HAProxy and nginx on the same flaky fleet, and the test-bed page's server."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a headless comparison against the running stack (started when none runs) and writes
    /// results.json, summary.csv, samples.csv, table.md, statistics.md and chart.svg. With no
    /// arguments in a terminal it first asks for the strategy, the configurations and the
    /// requests per configuration.
    Run(RunArgs),
    /// Serves the test-bed page.
    Serve(ServeArgs),
    /// Prints the built-in scenarios as JSON.
    Scenarios,
    /// Measures the router's added latency: the same requests to a 0%-fail downstream directly
    /// and through the router (started when none runs).
    Latency(LatencyArgs),
}

#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Router base URL (default: the port in config/workers.json on 127.0.0.1).
    #[arg(long, env = "MAGNETAR_ROUTER")]
    pub router: Option<String>,
    /// Requests to each target (after a warm-up).
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Router base URL (default: the port in config/workers.json on 127.0.0.1).
    #[arg(long, env = "MAGNETAR_ROUTER")]
    pub router: Option<String>,
    /// The running router's ADMIN_TOKEN, to read its fleet (`scripts/stack.sh` prints it); a
    /// stack the lab starts itself makes up its own.
    #[arg(long, env = "MAGNETAR_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Scenarios, comma-separated, run one after the other: prototype, t1 (alias tiers), t2, t3,
    /// nonstationary, slowhost (see `magnetar-lab scenarios`).
    #[arg(long, default_value = "prototype", value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Strategies, comma-separated wire names, `all` (every strategy the router offers) or `none`.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    pub algos: Vec<String>,
    /// Peer load balancers on the same fleet: haproxy, nginx, or none.
    #[arg(long, default_value = "haproxy,nginx", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Requests per lane.
    #[arg(long, default_value_t = DEFAULT_REQUESTS)]
    pub requests: usize,
    /// Whole comparisons to run per scenario, each with fresh routes, peers and tags; their
    /// counts are pooled for the 95% intervals (`<dir>/repeat-<k>/`, `<dir>/pooled.json`).
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Requests in flight per lane (as fast as the lanes answer; lanes run interleaved, a new
    /// round leaves when every lane answered one) [default: 3, as the page's two strategies].
    #[arg(long, conflicts_with = "rate")]
    pub concurrency: Option<usize>,
    /// Fixed request rate per lane, requests per second, open loop (the flaky-load-balancer
    /// harness: 10).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Attempts per request, 1 = single attempt (default: the router's budget, 3).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Results root: each run writes `<out>/<scenario>-<id>/`.
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Write into exactly this directory instead.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Let every strategy learn on `/service` instead of a fresh route of its own (then earlier
    /// runs' learning carries over).
    #[arg(long)]
    pub shared_route: bool,
    /// When to start a local stack.
    #[arg(long, value_enum, default_value = "auto")]
    pub start_stack: StartStack,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
    /// HAProxy: consecutive failed requests that take a server out [default: 1].
    #[arg(long)]
    pub haproxy_error_limit: Option<u32>,
    /// HAProxy: successful `/ping` checks that bring a server back [default: 3].
    #[arg(long)]
    pub haproxy_rise: Option<u32>,
    /// HAProxy: check interval while a server is down or changing state, ms [default: 10000].
    #[arg(long)]
    pub haproxy_fastinter_ms: Option<u64>,
    /// nginx: failures within the fail timeout that take a server out [default: 10].
    #[arg(long)]
    pub nginx_max_fails: Option<u32>,
    /// nginx: fail timeout, seconds [default: 5].
    #[arg(long)]
    pub nginx_fail_timeout: Option<u64>,
    /// Do not list every downstream again as an undetected backup server in HAProxy and nginx.
    #[arg(long)]
    pub no_peer_backups: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Router base URL the page talks to.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    pub router: String,
    /// Learner base URL the page talks to.
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    pub learner: String,
    /// The page's directory (default: test-bed/ of the repository).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Chart.js UMD build (default: node_modules/chart.js/dist/chart.umd.js of the repository).
    #[arg(long)]
    pub chart_js: Option<PathBuf>,
    /// The router's ADMIN_TOKEN: the page reads the fleet through this server, which sends it.
    #[arg(long, env = "MAGNETAR_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The learner's token: the page reads /params through this server, which sends it.
    #[arg(long, env = "MAGNETAR_LEARNER_TOKEN", hide_env_values = true)]
    pub learner_token: Option<String>,
}

fn default_router() -> String {
    let root = stack::repo_root();
    let port = std::fs::read_to_string(root.join("config/workers.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["router"]["port"].as_u64())
        .unwrap_or(magnetar_fleet::DEFAULT_ROUTER_PORT.into());
    format!("http://127.0.0.1:{port}")
}

impl RunArgs {
    /// The options of each scenario's run, in order.
    pub fn plan(&self) -> Result<Vec<RunOptions>> {
        let first = self.options()?;
        let scenarios: Vec<&String> = self.scenario.iter().filter(|s| !s.is_empty()).collect();
        scenarios
            .into_iter()
            .map(|name| {
                Scenario::by_name(name)?;
                Ok(RunOptions { scenario: name.clone(), ..first.clone() })
            })
            .collect()
    }

    /// The options `run::run` takes, for the first scenario.
    pub fn options(&self) -> Result<RunOptions> {
        let Some(scenario) = self.scenario.iter().find(|s| !s.is_empty()) else {
            bail!("give a --scenario")
        };
        Scenario::by_name(scenario)?;
        if self.repeats == 0 {
            bail!("--repeats must be at least 1");
        }
        let shape = match (self.rate, self.concurrency) {
            (Some(r), _) if !(r > 0.0 && r.is_finite()) => bail!("--rate must be positive"),
            (Some(r), _) => LoadShape::Rate(r),
            (None, Some(0)) => bail!("--concurrency must be at least 1"),
            (None, c) => LoadShape::Concurrency(c.unwrap_or(DEFAULT_CONCURRENCY)),
        };
        let peers = self
            .peers
            .iter()
            .filter(|p| !p.is_empty() && p.as_str() != "none")
            .map(|p| p.parse::<PeerKind>().map_err(anyhow::Error::msg))
            .collect::<Result<Vec<_>>>()?;
        let algos: Vec<String> =
            self.algos.iter().filter(|a| !a.is_empty() && a.as_str() != "none").cloned().collect();
        if algos.is_empty() && peers.is_empty() {
            bail!("nothing to measure: give --algos or --peers");
        }
        let defaults = PeerTuning::default();
        let peer_tuning = PeerTuning {
            haproxy_error_limit: self.haproxy_error_limit.unwrap_or(defaults.haproxy_error_limit),
            haproxy_rise: self.haproxy_rise.unwrap_or(defaults.haproxy_rise),
            haproxy_fastinter_ms: self
                .haproxy_fastinter_ms
                .unwrap_or(defaults.haproxy_fastinter_ms),
            nginx_max_fails: self.nginx_max_fails.unwrap_or(defaults.nginx_max_fails),
            nginx_fail_timeout_s: self.nginx_fail_timeout.unwrap_or(defaults.nginx_fail_timeout_s),
            backups: !self.no_peer_backups,
        };
        if peer_tuning.haproxy_rise == 0 || peer_tuning.haproxy_fastinter_ms == 0 {
            bail!("--haproxy-rise and --haproxy-fastinter-ms must be at least 1");
        }
        if peer_tuning.haproxy_error_limit == 0 || peer_tuning.nginx_max_fails == 0 {
            bail!(
                "passive failure detection needs --haproxy-error-limit and --nginx-max-fails of at least 1"
            );
        }
        Ok(RunOptions {
            router: self
                .router
                .clone()
                .unwrap_or_else(default_router)
                .trim_end_matches('/')
                .to_owned(),
            admin_token: self.admin_token.clone(),
            scenario: scenario.clone(),
            algos,
            peers,
            peer_tuning,
            requests: self.requests,
            shape,
            max_attempts: self.max_attempts,
            out: self.out.clone(),
            out_dir: self.out_dir.clone(),
            fresh_routes: !self.shared_route,
            start_stack: self.start_stack,
            progress: !self.no_progress,
            repeats: self.repeats,
        })
    }
}

/// Parses `magnetar-lab run ...` arguments (the first item is the program name).
pub fn run_options_from<I, T>(args: I) -> Result<RunOptions>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    match Cli::try_parse_from(args)?.command {
        Command::Run(run) => run.options(),
        _ => bail!("not a run command"),
    }
}

/// Prints a finished run: heading, table, files.
pub fn print_run(output: &run::RunOutput) {
    println!("\n{}\n", report::heading(&output.report));
    println!("{}", report::table(&output.report));
    println!("{}", report::statistics_table(&output.report.statistics));
    println!("results in {}:", output.dir.display());
    for file in &output.files {
        println!("  {}", file.display());
    }
}

/// Prints repeated runs: each repeat's table, then the pooled intervals.
pub fn print_repeated(output: &run::RepeatedOutput) {
    for run in &output.runs {
        print_run(run);
    }
    println!("\n{}\n", report::pooled_heading(&output.pooled));
    println!("{}", report::statistics_table(&output.pooled.statistics));
    println!("pooled results in {}:", output.dir.display());
    for file in &output.files {
        println!("  {}", file.display());
    }
}

/// Runs a parsed command line until it finishes or Ctrl-C (everything the lab started stops).
pub async fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Scenarios => {
            println!("{}", serde_json::to_string_pretty(&Scenario::builtin())?);
            Ok(())
        }
        Command::Run(args) => {
            let plan = args.plan()?;
            let mut verdicts = Vec::new();
            for options in &plan {
                let finished = async {
                    if options.repeats > 1 {
                        let output = run::run_repeated(options).await?;
                        print_repeated(&output);
                        Ok::<_, anyhow::Error>(output.pooled.statistics)
                    } else {
                        let output = run::run(options).await?;
                        print_run(&output);
                        Ok(output.report.statistics)
                    }
                };
                let statistics = tokio::select! {
                    finished = finished => finished?,
                    _ = tokio::signal::ctrl_c() => bail!("interrupted: stopped everything the lab started"),
                };
                verdicts.push((options.scenario.clone(), statistics));
            }
            if verdicts.len() > 1 {
                println!("\nsuccess against each peer, every scenario (points, 95% interval):\n");
                println!("{}", report::verdicts_table(&verdicts));
            }
            Ok(())
        }
        Command::Latency(args) => {
            let router = args.router.unwrap_or_else(default_router);
            let report = tokio::select! {
                report = latency::measure(router.trim_end_matches('/'), args.requests) => report?,
                _ = tokio::signal::ctrl_c() => bail!("interrupted: stopped everything the lab started"),
            };
            println!("{}", report.table());
            if let Some(path) = args.json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("write {}", path.display()))?;
            }
            Ok(())
        }
        Command::Serve(args) => {
            let root = stack::repo_root();
            let config = ServeConfig {
                dir: args.dir.unwrap_or_else(|| root.join("test-bed")),
                chart_js: args
                    .chart_js
                    .unwrap_or_else(|| root.join("node_modules/chart.js/dist/chart.umd.js")),
                router: args.router.trim_end_matches('/').to_owned(),
                learner: args.learner.trim_end_matches('/').to_owned(),
                admin_token: args.admin_token,
                learner_token: args.learner_token,
            };
            if !config.dir.join("index.html").exists() {
                bail!("{} has no index.html (give --dir)", config.dir.display());
            }
            let listener = tokio::net::TcpListener::bind((args.bind.as_str(), args.port))
                .await
                .with_context(|| format!("bind {}:{}", args.bind, args.port))?;
            println!("test-bed page on http://{}/", listener.local_addr()?);
            serve::serve(listener, config, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_arguments_become_options() {
        let o = run_options_from([
            "magnetar-lab",
            "run",
            "--router",
            "http://127.0.0.1:1/",
            "--algos",
            "round_robin,thompson",
            "--peers",
            "none",
            "--rate",
            "10",
            "--max-attempts",
            "1",
        ])
        .unwrap();
        assert_eq!(o.router, "http://127.0.0.1:1");
        assert_eq!(o.algos, ["round_robin", "thompson"]);
        assert!(o.peers.is_empty());
        assert_eq!(o.shape, LoadShape::Rate(10.0));
        assert_eq!(o.max_attempts, Some(1));
        assert!(o.fresh_routes);
        let o = run_options_from(["magnetar-lab", "run", "--router", "http://x"]).unwrap();
        assert_eq!(o.shape, LoadShape::Concurrency(DEFAULT_CONCURRENCY));
        assert_eq!(o.peers, [PeerKind::Haproxy, PeerKind::Nginx]);
    }

    #[test]
    fn magnetar_is_a_lane_scenarios_run_in_turn_and_repeats_are_kept() {
        let cli = Cli::try_parse_from([
            "magnetar-lab",
            "run",
            "--router",
            "http://x",
            "--algos",
            "magnetar",
            "--scenario",
            "t1,t2,t3,slowhost,tiers",
            "--repeats",
            "3",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else { panic!("not run") };
        let plan = args.plan().unwrap();
        let scenarios: Vec<&str> = plan.iter().map(|o| o.scenario.as_str()).collect();
        assert_eq!(scenarios, ["t1", "t2", "t3", "slowhost", "tiers"]);
        assert!(plan.iter().all(|o| o.algos == ["magnetar"] && o.repeats == 3));
        // The router offers every strategy of the core: magnetar is among them.
        assert!(magnetar_core::strategy::StrategyKind::ALL.iter().any(|k| k.name() == "magnetar"));
        let o = run_options_from(["magnetar-lab", "run", "--router", "http://x"]).unwrap();
        assert_eq!((o.scenario.as_str(), o.repeats), ("prototype", 1));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(run_options_from(["magnetar-lab", "run", "--repeats", "0"]).is_err());
        let cli = Cli::try_parse_from(["magnetar-lab", "run", "--scenario", "t1,nope"]).unwrap();
        let Command::Run(args) = cli.command else { panic!("not run") };
        assert!(args.plan().is_err(), "every scenario is checked before any runs");
        assert!(run_options_from(["magnetar-lab", "run", "--scenario", "x"]).is_err());
        assert!(run_options_from(["magnetar-lab", "run", "--peers", "envoy"]).is_err());
        assert!(
            run_options_from(["magnetar-lab", "run", "--rate", "1", "--concurrency", "2"]).is_err()
        );
        assert!(run_options_from(["magnetar-lab", "run", "--concurrency", "0"]).is_err());
    }
}
