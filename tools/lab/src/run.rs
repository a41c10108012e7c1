//! `magnetar-lab run`: one headless comparison.
//!
//! Lanes run one after another, each with the same requests, load shape and scenario timeline:
//! first the chosen Magnetar strategies, then the peers. Each strategy learns on a route of its
//! own (`/service/lab-<run>-<algo>`): the router keeps learned state per route and the learner
//! keeps posteriors per route, so no strategy starts from what an earlier lane (or an earlier run)
//! taught the router. Before and after each lane the downstreams' counters are read, an
//! independent count of the attempts the lane cost.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::load::{self, LaneError, LaneKind, LaneTarget, LoadShape};
use crate::metrics::{self, DownstreamCount, Sample};
use crate::peers::{self, Peer, PeerKind, PeerSettings, PeerTuning};
use crate::report::{self, LaneReport, RESULTS_SCHEMA, RunReport};
use crate::scenario::Scenario;
use crate::stack::{FleetInfo, LocalStack};

/// Attempt timeout and request deadline when the router does not say (its defaults).
const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 2000;
const DEFAULT_REQUEST_DEADLINE_MS: u64 = 6000;

/// When the lab may start a stack of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StartStack {
    /// When no router answers, or its fleet does not fit the scenario.
    Auto,
    /// Never: fail instead.
    Never,
    /// Always, even when a router answers.
    Always,
}

/// Everything `run` needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub router: String,
    pub scenario: String,
    /// Strategy wire names, or `["all"]` for every strategy the router offers.
    pub algos: Vec<String>,
    pub peers: Vec<PeerKind>,
    /// How the peers detect failures.
    pub peer_tuning: PeerTuning,
    pub requests: usize,
    pub shape: LoadShape,
    /// Attempts per request; `None` = the router's configured budget.
    pub max_attempts: Option<u32>,
    /// Results root; the run writes into `<out>/<scenario>-<time>/`.
    pub out: PathBuf,
    /// Exact results directory (overrides `out`).
    pub out_dir: Option<PathBuf>,
    /// Whether each strategy learns on a fresh route (default) or on `/service`.
    pub fresh_routes: bool,
    pub start_stack: StartStack,
    /// Draw progress bars (stderr).
    pub progress: bool,
}

/// The outcome of `run`: the report and where its files went.
pub struct RunOutput {
    pub report: RunReport,
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A client for the load: enough idle connections for the highest concurrency.
pub fn load_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(load::CLIENT_TIMEOUT)
        .build()?)
}

/// Zeroes every downstream's counters; false when one could not be reset.
async fn reset_counts(client: &reqwest::Client, urls: &[String]) -> bool {
    let mut all = true;
    for url in urls {
        let reset = client.delete(format!("{url}/stats")).send().await;
        all &= reset.is_ok_and(|r| r.status().is_success());
    }
    all
}

/// Every downstream's counters, in fleet order.
async fn read_counts(
    client: &reqwest::Client,
    names: &[String],
    urls: &[String],
) -> Option<Vec<DownstreamCount>> {
    let mut counts = Vec::new();
    for (name, url) in names.iter().zip(urls) {
        let stats: Value =
            client.get(format!("{url}/stats")).send().await.ok()?.json().await.ok()?;
        counts.push(DownstreamCount {
            name: name.clone(),
            requests: stats["requests"].as_u64()?,
            successes: stats["successes"].as_u64().unwrap_or(0),
            invalid: stats["invalid"].as_u64().unwrap_or(0),
        });
    }
    (counts.len() == names.len()).then_some(counts)
}

/// Runs the comparison and writes its files.
pub async fn run(opts: &RunOptions) -> Result<RunOutput> {
    let scenario = Scenario::by_name(&opts.scenario)?;
    scenario.validate()?;
    if opts.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let client = load_client()?;
    let root = crate::stack::repo_root();

    let running = if opts.start_stack == StartStack::Always {
        None
    } else {
        FleetInfo::fetch(&client, &opts.router).await?
    };
    let fits = running.as_ref().is_some_and(|f| f.downstreams.len() == scenario.fleet_size());
    let mut _own_stack = None;
    let (router, fleet) = match running {
        Some(fleet) if fits => (opts.router.clone(), fleet),
        other => {
            if opts.start_stack == StartStack::Never {
                match &other {
                    Some(f) => scenario.check_fleet(f.downstreams.len())?,
                    None => bail!("no router answers at {} (and --start-stack never)", opts.router),
                }
            }
            let why = match &other {
                Some(f) => format!(
                    "the router at {} has {} downstreams, scenario {} needs {}",
                    opts.router,
                    f.downstreams.len(),
                    scenario.name,
                    scenario.fleet_size()
                ),
                None if opts.start_stack == StartStack::Always => "--start-stack always".into(),
                None => format!("no router answers at {}", opts.router),
            };
            eprintln!(
                "{why}: starting a local stack with {} downstreams...",
                scenario.fleet_size()
            );
            let stack = LocalStack::start(&client, &root, scenario.fleet_size()).await?;
            let fleet = FleetInfo::fetch(&client, &stack.router_url)
                .await?
                .context("the stack the lab started does not answer")?;
            eprintln!(
                "local stack up: router {}, learner {}",
                stack.router_url,
                stack.learner_url.as_deref().unwrap_or("(not built: learner algo falls back)")
            );
            let url = stack.router_url.clone();
            _own_stack = Some(stack);
            (url, fleet)
        }
    };
    scenario.check_fleet(fleet.downstreams.len())?;
    let names = fleet.names();

    let offered: Vec<String> = fleet.algos.iter().map(|a| a.name.clone()).collect();
    let algos: Vec<String> =
        if opts.algos.iter().any(|a| a == "all") { offered.clone() } else { opts.algos.clone() };
    for algo in &algos {
        if !offered.contains(algo) {
            bail!("the router offers no strategy {algo:?}; it offers: {}", offered.join(", "));
        }
    }
    let router_budget = if fleet.max_attempts > 0 { fleet.max_attempts } else { 3 };
    let max_attempts = opts.max_attempts.unwrap_or(router_budget);
    if max_attempts == 0 || max_attempts > router_budget {
        bail!("--max-attempts must be from 1 to the router's budget {router_budget}");
    }

    let urls: Vec<String> = fleet.downstreams.iter().filter_map(|d| d.url.clone()).collect();
    let all_local = urls.len() == names.len();
    if !opts.peers.is_empty() && !all_local {
        bail!("peers need every downstream's URL; this router's fleet uses service bindings");
    }
    let mut down = Vec::new();
    for (name, url) in names.iter().zip(&urls) {
        let ping = client.get(format!("{url}/ping")).timeout(Duration::from_secs(3)).send().await;
        if !ping.is_ok_and(|r| r.status().is_success()) {
            down.push(format!("{name} ({url})"));
        }
    }
    if !down.is_empty() {
        bail!("downstreams not answering /ping: {}; restart the stack", down.join(", "));
    }

    let run_id = format!("{:x}", unix_ms());
    let headers: Vec<String> =
        (0..scenario.phases.len()).map(|p| scenario.header_for_phase(p, &names)).collect();
    let started_at = unix_ms();
    let peer_settings = PeerSettings {
        downstreams: names
            .iter()
            .zip(&urls)
            .filter_map(|(n, u)| peers::host_port(u).map(|a| (n.clone(), a)))
            .collect(),
        max_attempts,
        attempt_timeout_ms: fleet.attempt_timeout_ms.unwrap_or(DEFAULT_ATTEMPT_TIMEOUT_MS),
        request_deadline_ms: fleet.request_deadline_ms.unwrap_or(DEFAULT_REQUEST_DEADLINE_MS),
        tuning: opts.peer_tuning.clone(),
    };

    let lanes: Vec<LaneKind> = algos
        .iter()
        .map(|a| LaneKind::Magnetar { algo: a.clone() })
        .chain(opts.peers.iter().map(|p| LaneKind::Peer(*p)))
        .collect();
    let bars = MultiProgress::with_draw_target(if opts.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template(
        "{prefix:>20} [{bar:32.cyan/blue}] {pos:>5}/{len} {elapsed:>4} {msg}",
    )?
    .progress_chars("=> ");
    let lane_bars: Vec<ProgressBar> = lanes
        .iter()
        .map(|lane| {
            let bar = bars.add(ProgressBar::new(opts.requests as u64));
            bar.set_style(style.clone());
            bar.set_prefix(match lane {
                LaneKind::Magnetar { algo } => algo.clone(),
                LaneKind::Peer(p) => format!("{p} (peer)"),
            });
            bar.set_message("waiting");
            bar
        })
        .collect();

    let mut reports = Vec::new();
    for (lane, bar) in lanes.iter().zip(&lane_bars) {
        let mut peer = None;
        let (label, url, route) = match lane {
            LaneKind::Magnetar { algo } => {
                let route = if opts.fresh_routes {
                    format!("/service/lab-{run_id}-{algo}")
                } else {
                    "/service".to_owned()
                };
                let url = format!("{router}{route}?algo={algo}&max_attempts={max_attempts}");
                (algo.clone(), url, Some(route))
            }
            LaneKind::Peer(kind) => {
                bar.set_message("starting");
                let p = Peer::start(&client, *kind, &peer_settings).await?;
                let url = format!("{}/service", p.url);
                peer = Some(p);
                (kind.name().to_owned(), url, None)
            }
        };
        let target = LaneTarget {
            label: label.clone(),
            kind: lane.clone(),
            url,
            names: names.clone(),
            addr_names: peer.as_ref().map(|p| p.addr_names.clone()).unwrap_or_default(),
            max_attempts,
        };
        let counted = reset_counts(&client, &urls).await;
        let samples = run_lane(&client, &target, &scenario, &headers, opts, bar).await;
        let mut samples = match samples {
            Ok(s) => s,
            Err(e) => {
                bar.abandon_with_message("stopped");
                if let Some(p) = &peer {
                    eprintln!("{} log:\n{}", p.kind, p.log_tail());
                }
                return Err(e.into());
            }
        };
        let counts = if counted { read_counts(&client, &names, &urls).await } else { None };
        if counts.is_none() && all_local {
            bars.suspend(|| {
                eprintln!(
                    "warning: {label}: the downstreams' counters could not be read; \
                     traffic share from final attempts"
                )
            });
        }
        if let Some(p) = peer.as_mut().filter(|p| p.kind == PeerKind::Haproxy) {
            fill_from_haproxy_log(p, &label, &mut samples);
        }
        let invalid: u64 = counts.iter().flatten().map(|c| c.invalid).sum();
        if invalid > 0 {
            bar.abandon_with_message("invalid");
            bail!("{label}: the downstreams rejected {invalid} x-flaky-config overrides");
        }
        let summary = metrics::summarize(&samples, &names, counts.as_deref());
        bar.finish_with_message(format!(
            "success {:.1}%  attempts/req {:.2}",
            summary.success_rate * 100.0,
            summary.attempts_per_request
        ));
        let hits: Option<u64> = counts.as_ref().map(|c| c.iter().map(|c| c.requests).sum());
        if let Some(hits) = hits.filter(|h| *h != summary.attempts) {
            bars.suspend(|| {
                eprintln!(
                    "note: {label}: the downstreams counted {hits} work requests, the lane {} attempts",
                    summary.attempts
                )
            });
        }
        reports.push(LaneReport {
            label,
            kind: if peer.is_some() { "peer".into() } else { "magnetar".into() },
            route,
            summary,
            downstream_counts: counts,
            samples,
        });
        drop(peer);
    }

    let report = RunReport {
        schema: RESULTS_SCHEMA,
        tool: format!("magnetar-lab {}", env!("CARGO_PKG_VERSION")),
        started_at_unix_ms: started_at,
        scenario: scenario.clone(),
        requests: opts.requests,
        load: opts.shape,
        max_attempts,
        router,
        learner: fleet.learner.clone(),
        fleet: names,
        phase_starts: scenario.phase_starts(opts.requests),
        definitions: report::definitions(&fleet.success_definition),
        peer_tuning: (!opts.peers.is_empty()).then(|| opts.peer_tuning.clone()),
        lanes: reports,
    };
    let dir = match &opts.out_dir {
        Some(d) => d.clone(),
        None => opts.out.join(format!("{}-{}", scenario.name, run_id)),
    };
    let files = report::write_all(&report, &dir)?;
    Ok(RunOutput { report, dir, files })
}

async fn run_lane(
    client: &reqwest::Client,
    target: &LaneTarget,
    scenario: &Scenario,
    headers: &[String],
    opts: &RunOptions,
    bar: &ProgressBar,
) -> Result<Vec<Sample>, LaneError> {
    bar.reset_elapsed();
    bar.set_message("");
    let total = opts.requests;
    let (client, target, scenario, headers) =
        (client.clone(), target.clone(), scenario.clone(), headers.to_vec());
    let send = move |index: usize, sent_ms: f64| {
        let (client, target, scenario, headers) =
            (client.clone(), target.clone(), scenario.clone(), headers.clone());
        async move { target.send(&client, &scenario, &headers, index, total, sent_ms).await }
    };
    let mut done = 0usize;
    let mut ok = 0usize;
    load::drive(total, opts.shape, send, |s| {
        done += 1;
        ok += usize::from(s.success);
        bar.inc(1);
        if done % 10 == 0 || done == total {
            bar.set_message(format!("success {:.1}%", ok as f64 * 100.0 / done as f64));
        }
    })
    .await
}

/// Fills attempts (and the server, when the response did not name it) from HAProxy's log.
fn fill_from_haproxy_log(peer: &mut Peer, label: &str, samples: &mut [Sample]) {
    let mut missing = 0;
    for s in samples.iter_mut().filter(|s| s.error.is_none()) {
        let wait = if missing > 3 { Duration::ZERO } else { Duration::from_secs(3) };
        match peer.haproxy_log(&load::request_id(label, s.index), wait) {
            Some(line) => {
                let served = !line.server.contains("<NOSRV>");
                s.attempts = if served { line.retries + 1 } else { 0 };
                if s.worker.is_empty() && served {
                    s.worker = line.server;
                }
            }
            None => missing += 1,
        }
    }
    if missing > 0 {
        eprintln!("warning: haproxy logged no line for {missing} requests; their attempts are 0");
    }
}
