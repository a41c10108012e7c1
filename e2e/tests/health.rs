//! Passive health end to end (client → router in workerd → downstream Workers in workerd): a
//! downstream stopped under load is ejected and comes back through its readmission probe with
//! slow start; with 3 of 4 downstreams failing the panic threshold keeps half the fleet in.
//!
//! Every figure comes from the router's own `/_magnetar/state` (`health`) and the downstreams'
//! own counters, polled with deadlines; no sleep stands in for a condition.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use magnetar_e2e::{Observed, Stack, fleet_failing, poll};
use serde_json::Value;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Concurrent GETs in flight through the load of [`Load`].
const CONCURRENCY: usize = 8;

/// Closed-loop load on the router: [`CONCURRENCY`] clients, each sending its next GET when its
/// last one is answered, recording when each was sent and what it produced.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<(Instant, Observed)>>>,
}

impl Load {
    fn start(client: &reqwest::Client, url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..CONCURRENCY)
            .map(|_| {
                let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let response = client.get(&url).send().await.expect("router answered");
                        let observed = Observed::of(&response, sent.elapsed());
                        let _ = response.bytes().await;
                        seen.push((sent, observed));
                    }
                    seen
                })
            })
            .collect();
        Load { stop, tasks }
    }

    async fn finish(self) -> Vec<(Instant, Observed)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.expect("load task"));
        }
        all.sort_by_key(|(sent, _)| *sent);
        all
    }
}

/// The `health` entry of downstream `name` in a router state.
fn downstream<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["health"]["downstreams"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("no health entry for {name}: {state}"))
}

fn field(state: &Value, name: &str, key: &str) -> u64 {
    downstream(state, name)[key].as_u64().unwrap_or(0)
}

fn phase(state: &Value, name: &str) -> String {
    downstream(state, name)["phase"].as_str().unwrap_or("").to_owned()
}

/// Share of the responses in `seen` whose final attempt went to `name`.
fn share_of(seen: &[&(Instant, Observed)], name: &str) -> f64 {
    seen.iter().filter(|(_, o)| o.worker == name).count() as f64 / seen.len().max(1) as f64
}

const EJECTION_BASE_MS: u64 = 2_000;
const EJECTION_MAX_MS: u64 = 4_000;
const SLOW_START_MS: u64 = 20_000;

fn health_vars(probe: bool) -> Vec<(&'static str, String)> {
    vec![
        ("DEFAULT_ALGO", "round_robin".into()),
        ("RETRY_BUDGET_PERCENT", "off".into()),
        ("HEALTH_EJECTION", "on".into()),
        ("HEALTH_EJECTION_BASE_MS", EJECTION_BASE_MS.to_string()),
        ("HEALTH_EJECTION_MAX_MS", EJECTION_MAX_MS.to_string()),
        ("HEALTH_SLOW_START_MS", SLOW_START_MS.to_string()),
        ("HEALTH_PROBE", if probe { "on" } else { "off" }.into()),
        ("HEALTH_PROBE_PATH", "/ping".into()),
    ]
}

/// What one stop-and-restart run measured.
struct DeadRun {
    /// User attempts sent to the stopped downstream (all of them failed), over the whole time
    /// it was down.
    lost_attempts: u64,
    time_to_eject: Duration,
    ejections: u64,
}

/// Three healthy downstreams under closed-loop load; `downstream-2` is stopped and left down
/// for `down_for` after its ejection. The load keeps running (the caller finishes it).
async fn stop_under_load(
    stack: &mut Stack,
    client: &reqwest::Client,
    down_for: Duration,
) -> (DeadRun, Load) {
    let victim = "downstream-2";
    let load = Load::start(client, format!("{}/service", stack.router_url));
    // Warm up: the victim has served requests (its phi detector has its rhythm).
    let shared: &Stack = stack;
    let warm = Duration::from_secs(60);
    poll("warm-up traffic on the victim", warm, Duration::from_millis(200), || async move {
        let state = shared.router_state(client).await;
        (field(&state, victim, "attempts") >= 50).then_some(())
    })
    .await;
    let before = shared.router_state(client).await;
    assert_eq!(field(&before, victim, "failures"), 0, "a healthy victim before the stop");
    let stopped = Instant::now();
    stack.stop_downstream(victim);
    let shared: &Stack = stack;
    let within = Duration::from_secs(30);
    let ejected_at =
        poll("the stopped downstream ejected", within, Duration::from_millis(20), || async move {
            let state = shared.router_state(client).await;
            state["health"]["ejected"]
                .as_array()
                .is_some_and(|e| e.iter().any(|n| n == victim))
                .then(Instant::now)
        })
        .await;
    let time_to_eject = ejected_at.saturating_duration_since(stopped);
    let until = Instant::now() + down_for;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let state = stack.router_state(client).await;
    let run = DeadRun {
        lost_attempts: field(&state, victim, "failures"),
        time_to_eject,
        ejections: field(&state, victim, "ejections"),
    };
    (run, load)
}

/// A downstream stopped under load: the attempts it gets after it stopped are bounded by the
/// consecutive-failure threshold (5) plus the attempts in flight when it was ejected (at most
/// [`CONCURRENCY`]), for the whole time it is down: its probes fail, so no user request reaches
/// it again. Every request still succeeds (retries go to the live ones). Started again, its
/// probe readmits it within the longest ejection, the probe's timeout and the machine's slack
/// (6 s), and its share ramps up by slow start. Round robin gives it `f / (2 + f)` of the
/// responses for a slow-start factor `f` (a veto sends its turn to the next one): 0.068, 0.158,
/// 0.273 and 0.333 for the mean factors 0.145, 0.375, 0.75 and 1 of the window's first quarter,
/// second quarter, second half and the 10 s after it. Bands, with at least 30 responses per
/// stretch (a loaded machine serves ~8 requests/s here, an idle one ~60): the first quarter at
/// most 0.22 (3.3 sd of a share of 30 at 0.068), below the share after the window, which round
/// robin makes 1/3 within 0.08 (no veto: it alternates exactly, up to requests in flight at the
/// stretch's edges).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_downstream_is_ejected_then_readmitted_by_its_probe_with_slow_start() {
    let mut stack = Stack::start("health-eject", &fleet_failing(&[0, 0, 0]), &health_vars(true));
    let client = client();
    let victim = "downstream-2";
    let (run, load) = stop_under_load(&mut stack, &client, Duration::from_secs(8)).await;
    let bound = 5 + CONCURRENCY as u64;
    assert!(
        run.lost_attempts <= bound,
        "{} attempts went to the stopped downstream, bound {bound}\n{}",
        run.lost_attempts,
        stack.logs()
    );
    let state = stack.router_state(&client).await;
    assert!(field(&state, victim, "probe_failures") >= 1, "its probes failed: {state}");
    assert!(run.ejections >= 2, "a failed probe ejects it again: {state}");

    let restarted = Instant::now();
    stack.restart_downstream(victim);
    let up = Instant::now();
    let (shared, c) = (&stack, &client);
    let within = Duration::from_secs(30);
    let readmitted = poll("readmission", within, Duration::from_millis(20), || async move {
        let state = shared.router_state(c).await;
        (phase(&state, victim) == "ramping").then(Instant::now)
    })
    .await;
    let time_to_readmit = readmitted.saturating_duration_since(up);
    // The longest ejection, the probe, and the poll.
    assert!(
        time_to_readmit <= Duration::from_millis(EJECTION_MAX_MS + 6_000),
        "readmitted {time_to_readmit:?} after it was up again"
    );
    let ramp = Duration::from_millis(SLOW_START_MS);
    let end = readmitted + ramp + Duration::from_secs(10);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = load.finish().await;
    let failed = seen.iter().filter(|(_, o)| o.status != 200).count();
    assert_eq!(failed, 0, "every request succeeds on the live downstreams");
    let stretch = |from: Duration, to: Duration| -> Vec<&(Instant, Observed)> {
        seen.iter().filter(|(t, _)| *t >= readmitted + from && *t < readmitted + to).collect()
    };
    let quarter = ramp / 4;
    let stretches = [
        stretch(Duration::ZERO, quarter),
        stretch(quarter, ramp / 2),
        stretch(ramp / 2, ramp),
        stretch(ramp, ramp + Duration::from_secs(10)),
    ];
    let shares = stretches.each_ref().map(|s| share_of(s, victim));
    let counts = stretches.each_ref().map(Vec::len);
    println!(
        "health: {} user attempts lost to the stopped downstream (bound {bound}), ejected {:?} after \
         the stop, {} ejections while down, readmitted {time_to_readmit:?} after it was up \
         (restart took {:?}); slow-start shares {shares:.3?} over {counts:?} responses; \
         {} requests, {failed} failed",
        run.lost_attempts,
        run.time_to_eject,
        run.ejections,
        up.saturating_duration_since(restarted),
        seen.len(),
    );
    assert!(counts.iter().all(|&n| n >= 30), "too little traffic to judge shares: {counts:?}");
    assert!(shares[0] <= 0.22, "first quarter of the window: {shares:?}");
    assert!(shares[0] < shares[3], "the share ramps up: {shares:?}");
    assert!((shares[3] - 1.0 / 3.0).abs() <= 0.08, "after the window, a full share: {shares:?}");
}

/// The same stop without readmission probes (`HEALTH_PROBE=off`, as Envoy without active
/// checks): each ejection that ends readmits the dead downstream and user requests find out
/// again: every ejection costs at least the two failed attempts in a row that the quickest rule
/// (phi) needs, where with probes only the first one does. The figure is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_probes_a_dead_downstream_keeps_costing_attempts() {
    let mut stack = Stack::start("health-noprobe", &fleet_failing(&[0, 0, 0]), &health_vars(false));
    let client = client();
    let (run, load) = stop_under_load(&mut stack, &client, Duration::from_secs(12)).await;
    let seen = load.finish().await;
    let failed = seen.iter().filter(|(_, o)| o.status != 200).count();
    println!(
        "health without probes: {} user attempts lost to the stopped downstream in {} ejections \
         (ejected {:?} after the stop); {} requests, {failed} failed",
        run.lost_attempts,
        run.ejections,
        run.time_to_eject,
        seen.len()
    );
    // Ejections of 2 s, then 4 s: at least two in the 12 s it is down after the first.
    assert!(run.ejections >= 2, "its ejections ended and it was ejected again: {}", run.ejections);
    assert!(
        run.lost_attempts >= 2 * run.ejections,
        "each readmission costs attempts: {} in {} ejections",
        run.lost_attempts,
        run.ejections
    );
    assert_eq!(failed, 0, "the retries still save every request");
}

/// 3 of 4 downstreams fail every request: at most 2 (all but 50%) are ejected, the third
/// stays in as `suspect`, `/_magnetar/state` says `panic_mode`, and user requests (single
/// attempts) reach exactly the two downstreams left in: the healthy one and the suspect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panic_threshold_keeps_half_the_fleet_in() {
    let mut vars = health_vars(true);
    // The probe asks for work (the downstream Worker's `/ping` always answers 200), which these
    // fail: ejected ones stay out.
    vars.retain(|(k, _)| *k != "HEALTH_PROBE_PATH");
    vars.push(("HEALTH_PROBE_PATH", "/service".into()));
    let stack = Stack::start("health-panic", &fleet_failing(&[100, 100, 100, 0]), &vars);
    let client = client();
    let url = format!("{}/service?max_attempts=1", stack.router_url);
    let (shared, c, u) = (&stack, &client, &url);
    let state = poll("panic mode", Duration::from_secs(60), Duration::from_millis(50), || {
        let (stack, client, url) = (shared, c, u);
        async move {
            for _ in 0..10 {
                let _ = client.get(url).send().await.expect("router answered").bytes().await;
            }
            let state = stack.router_state(client).await;
            (state["health"]["panic_mode"] == true).then_some(state)
        }
    })
    .await;
    assert_eq!(state["health"]["max_ejected"], 2, "{state}");
    let ejected: Vec<String> = state["health"]["ejected"]
        .as_array()
        .expect("ejected list")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert_eq!(ejected.len(), 2, "{state}");
    assert!(!ejected.contains(&"downstream-4".to_owned()), "the healthy one stays: {state}");
    let suspect: Vec<&str> = ["downstream-1", "downstream-2", "downstream-3"]
        .into_iter()
        .filter(|n| phase(&state, n) == "suspect")
        .collect();
    assert_eq!(suspect.len(), 1, "{state}");

    let mut reached = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..200 {
        let response = client.get(&url).send().await.expect("router answered");
        let observed = Observed::of(&response, Duration::ZERO);
        *reached.entry(observed.worker).or_default() += 1;
    }
    let expected: std::collections::BTreeSet<String> =
        [suspect[0].to_owned(), "downstream-4".to_owned()].into_iter().collect();
    let got: std::collections::BTreeSet<String> = reached.keys().cloned().collect();
    assert_eq!(got, expected, "requests reached {reached:?}");
    for n in reached.values() {
        assert!((80..=120).contains(n), "round robin over the two left in: {reached:?}");
    }
    let state = stack.router_state(&client).await;
    assert_eq!(state["health"]["panic_mode"], true, "{state}");
    println!(
        "panic threshold: ejected {ejected:?}, suspect {suspect:?}, 200 requests reached {reached:?}"
    );
}
