//! `magnetar-lab run`: one headless comparison.
//!
//! Lanes run interleaved ([`crate::load::drive`]): request `i` of every lane (the chosen Magnetar
//! strategies, then the peers) leaves at the same moment with the same scenario header, with the
//! same concurrency or rate per lane, as the test-bed page does. Each strategy learns on a route of
//! its own (`/service/lab-<run>-<algo>`): the router keeps learned state per route and the learner
//! keeps posteriors per route, so no strategy starts from what another lane (or an earlier run)
//! taught the router. Every request carries its lane's `x-flaky-tag` (`lab-<run>-<lane>`), and the
//! downstreams count each lane's attempts under it: an independent count of the attempts each
//! lane cost, read once the run is over.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::load::{self, LaneError, LaneKind, LaneTarget, LoadShape};
use crate::metrics::{self, DownstreamCount, Sample};
use crate::peers::{self, Peer, PeerKind, PeerSettings, PeerTuning};
use crate::report::{self, LaneReport, PooledReport, RESULTS_SCHEMA, RunReport};
use crate::scenario::Scenario;
use crate::stack::{FleetInfo, LocalStack};
use crate::stats::Statistics;

// Attempt timeout and request deadline when the router does not say: its defaults.
use magnetar_core::config::{DEFAULT_ATTEMPT_TIMEOUT_MS, DEFAULT_REQUEST_DEADLINE_MS};

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
    /// The router's `ADMIN_TOKEN` (`/_magnetar/fleet`).
    pub admin_token: Option<String>,
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
    /// Whole comparisons to run and pool ([`run_repeated`]); 1 = a single run ([`run`]).
    pub repeats: usize,
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

/// Each lane's counts from the downstreams' per-tag counters (`GET /stats` → `tags`), in lane
/// order, each in fleet order; `None` when a downstream could not be read.
async fn read_tag_counts(
    client: &reqwest::Client,
    names: &[String],
    urls: &[String],
    tags: &[String],
) -> Option<Vec<Vec<DownstreamCount>>> {
    let mut per_lane: Vec<Vec<DownstreamCount>> = tags.iter().map(|_| Vec::new()).collect();
    for (name, url) in names.iter().zip(urls) {
        let stats: Value =
            client.get(format!("{url}/stats")).send().await.ok()?.json().await.ok()?;
        let by_tag = stats.get("tags")?;
        for (lane, tag) in tags.iter().enumerate() {
            let count = |k: &str| by_tag[tag.as_str()][k].as_u64().unwrap_or(0);
            per_lane[lane].push(DownstreamCount {
                name: name.clone(),
                requests: count("requests"),
                successes: count("successes"),
                invalid: count("invalid"),
            });
        }
    }
    (names.len() == urls.len()).then_some(per_lane)
}

/// The stack a run measures: the router's URL and fleet, and the stack the lab started, if it
/// did (stopped when this is dropped).
pub struct Stack {
    pub router: String,
    pub fleet: FleetInfo,
    _own: Option<LocalStack>,
}

/// Finds the running stack for `scenario`, or starts one (see [`StartStack`]).
pub async fn stack_for(
    opts: &RunOptions,
    scenario: &Scenario,
    client: &reqwest::Client,
) -> Result<Stack> {
    let root = crate::stack::repo_root();
    let running = if opts.start_stack == StartStack::Always {
        None
    } else {
        FleetInfo::fetch(client, &opts.router, opts.admin_token.as_deref()).await?
    };
    let fits = running.as_ref().is_some_and(|f| f.downstreams.len() == scenario.fleet_size());
    let mut own = None;
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
            let stack = LocalStack::start(client, &root, scenario.fleet_size()).await?;
            let fleet = FleetInfo::fetch(client, &stack.router_url, Some(&stack.admin_token))
                .await?
                .context("the stack the lab started does not answer")?;
            eprintln!(
                "local stack up: router {}, learner {}",
                stack.router_url,
                stack.learner_url.as_deref().unwrap_or("(not built: learner algo falls back)")
            );
            let url = stack.router_url.clone();
            own = Some(stack);
            (url, fleet)
        }
    };
    Ok(Stack { router, fleet, _own: own })
}

fn checked_scenario(opts: &RunOptions) -> Result<Scenario> {
    let scenario = Scenario::by_name(&opts.scenario)?;
    scenario.validate()?;
    if opts.requests == 0 {
        bail!("--requests must be at least 1");
    }
    Ok(scenario)
}

/// Runs the comparison and writes its files.
pub async fn run(opts: &RunOptions) -> Result<RunOutput> {
    let scenario = checked_scenario(opts)?;
    let client = load_client()?;
    let stack = stack_for(opts, &scenario, &client).await?;
    run_on(opts, &scenario, &client, &stack).await
}

/// Runs `opts.repeats` whole comparisons one after the other on one stack, each with fresh
/// routes, peers and tags, each writing its files into `<dir>/repeat-<k>/`, and pools their
/// counts per lane into `<dir>/pooled.json` and `<dir>/statistics.md`.
pub async fn run_repeated(opts: &RunOptions) -> Result<RepeatedOutput> {
    let scenario = checked_scenario(opts)?;
    if opts.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let client = load_client()?;
    let stack = stack_for(opts, &scenario, &client).await?;
    let dir = match &opts.out_dir {
        Some(d) => d.clone(),
        None => opts.out.join(format!("{}-{:x}-pooled", scenario.name, unix_ms())),
    };
    let mut runs = Vec::new();
    for k in 1..=opts.repeats {
        eprintln!("repeat {k} of {} ({})", opts.repeats, scenario.name);
        let once = RunOptions { out_dir: Some(dir.join(format!("repeat-{k}"))), ..opts.clone() };
        runs.push(run_on(&once, &scenario, &client, &stack).await?);
    }
    let reports: Vec<&RunReport> = runs.iter().map(|r| &r.report).collect();
    let mut pooled = report::pool(&reports)?;
    pooled.runs = runs.iter().map(|r| r.dir.display().to_string()).collect();
    let files = report::write_pooled(&pooled, &dir)?;
    Ok(RepeatedOutput { pooled, runs, dir, files })
}

/// The outcome of [`run_repeated`]: the pooled report, every repeat, and where the pooled files
/// went.
pub struct RepeatedOutput {
    pub pooled: PooledReport,
    pub runs: Vec<RunOutput>,
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

/// One comparison on `stack`.
async fn run_on(
    opts: &RunOptions,
    scenario: &Scenario,
    client: &reqwest::Client,
    stack: &Stack,
) -> Result<RunOutput> {
    let (router, fleet) = (stack.router.clone(), &stack.fleet);
    let scenario = scenario.clone();
    let client = client.clone();
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
    let headers: Vec<String> = (0..scenario.phases.len())
        .map(|p| scenario.header_for_phase(p, &names, lanes.len()))
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

    // Every peer runs for the whole run, since every lane does.
    let mut peers: Vec<Option<Peer>> = Vec::new();
    let mut targets = Vec::new();
    for (lane, bar) in lanes.iter().zip(&lane_bars) {
        let (label, url, route, peer) = match lane {
            LaneKind::Magnetar { algo } => {
                let route = if opts.fresh_routes {
                    format!("/service/lab-{run_id}-{algo}")
                } else {
                    "/service".to_owned()
                };
                let url = format!("{router}{route}?algo={algo}&max_attempts={max_attempts}");
                (algo.clone(), url, Some(route), None)
            }
            LaneKind::Peer(kind) => {
                bar.set_message("starting");
                let p = Peer::start(&client, *kind, &peer_settings).await?;
                let url = format!("{}/service", p.url);
                (kind.name().to_owned(), url, None, Some(p))
            }
        };
        targets.push((
            LaneTarget {
                tag: format!("lab-{run_id}-{label}"),
                label,
                kind: lane.clone(),
                url,
                names: names.clone(),
                addr_names: peer.as_ref().map(|p| p.addr_names.clone()).unwrap_or_default(),
                max_attempts,
                rate: opts.shape.rate(),
            },
            route,
        ));
        peers.push(peer);
    }

    let lane_targets: Vec<LaneTarget> = targets.iter().map(|(t, _)| t.clone()).collect();
    let samples =
        match run_lanes(&client, &lane_targets, &scenario, &headers, opts, &lane_bars).await {
            Ok(s) => s,
            Err(e) => {
                for (bar, peer) in lane_bars.iter().zip(&peers) {
                    bar.abandon_with_message("stopped");
                    if let Some(p) = peer {
                        eprintln!("{} log:\n{}", p.kind, p.log_tail());
                    }
                }
                return Err(e.into());
            }
        };
    let tags: Vec<String> = lane_targets.iter().map(|t| t.tag.clone()).collect();
    let counts =
        if all_local { read_tag_counts(&client, &names, &urls, &tags).await } else { None };
    if counts.is_none() && all_local {
        bars.suspend(|| {
            eprintln!(
                "warning: the downstreams' counters could not be read; traffic share from final \
                 attempts"
            )
        });
    }

    let mut reports = Vec::new();
    for (i, ((target, route), mut samples)) in targets.into_iter().zip(samples).enumerate() {
        let label = target.label.clone();
        let bar = &lane_bars[i];
        if let Some(p) = peers[i].as_mut().filter(|p| p.kind == PeerKind::Haproxy) {
            fill_from_haproxy_log(p, &label, &mut samples);
        }
        let counts = counts.as_ref().map(|c| c[i].clone());
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
            kind: if peers[i].is_some() { "peer".into() } else { "magnetar".into() },
            route,
            tag: target.tag,
            summary,
            downstream_counts: counts,
            samples,
        });
    }
    drop(peers);

    let statistics = Statistics::of(&reports.iter().map(LaneReport::counts).collect::<Vec<_>>(), 1);
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
        statistics,
    };
    let dir = match &opts.out_dir {
        Some(d) => d.clone(),
        None => opts.out.join(format!("{}-{}", scenario.name, run_id)),
    };
    let files = report::write_all(&report, &dir)?;
    Ok(RunOutput { report, dir, files })
}

async fn run_lanes(
    client: &reqwest::Client,
    targets: &[LaneTarget],
    scenario: &Scenario,
    headers: &[String],
    opts: &RunOptions,
    bars: &[ProgressBar],
) -> Result<Vec<Vec<Sample>>, LaneError> {
    for bar in bars {
        bar.reset_elapsed();
        bar.set_message("");
    }
    let total = opts.requests;
    let (client, targets, scenario, headers) =
        (client.clone(), targets.to_vec(), scenario.clone(), headers.to_vec());
    let send = move |lane: usize, index: usize, sent_ms: f64| {
        let (client, target, scenario, headers) =
            (client.clone(), targets[lane].clone(), scenario.clone(), headers.clone());
        async move { target.send(&client, &scenario, &headers, index, total, sent_ms).await }
    };
    let mut done = vec![0usize; bars.len()];
    let mut ok = vec![0usize; bars.len()];
    load::drive(total, bars.len(), opts.shape, send, |lane, s| {
        done[lane] += 1;
        ok[lane] += usize::from(s.success);
        bars[lane].inc(1);
        if done[lane] % 10 == 0 || done[lane] == total {
            bars[lane].set_message(format!(
                "success {:.1}%",
                ok[lane] as f64 * 100.0 / done[lane] as f64
            ));
        }
    })
    .await
}

/// Fills each request's tries (and attempts, and the final server when the response did not name
/// it) from HAProxy's log: one `tap` line per try, one `lab` line per request.
fn fill_from_haproxy_log(peer: &mut Peer, label: &str, samples: &mut [Sample]) {
    let answered = samples.iter().filter(|s| s.error.is_none()).count();
    let log = peer.haproxy_requests(answered, Duration::from_secs(5));
    let mut missing = 0;
    for s in samples.iter_mut().filter(|s| s.error.is_none()) {
        match log.get(&load::request_id(label, s.index)) {
            Some(request) => {
                s.attempts = request.tried.len() as u32;
                if s.worker.is_empty() {
                    s.worker = request.tried.last().cloned().unwrap_or_default();
                }
                s.tried = Some(request.tried.clone());
                if request.retries.is_none() {
                    missing += 1;
                }
            }
            None => missing += 1,
        }
    }
    if missing > 0 {
        eprintln!("warning: haproxy's log is incomplete for {missing} requests of {label}");
    }
}
