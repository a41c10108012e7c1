//! A run's results: the table, JSON, CSV and an SVG chart, written to a results folder.
//!
//! Files in the run's folder:
//! - `results.json`: the whole run (settings, definitions, every lane's summary and samples);
//! - `summary.csv`: one row per lane; `samples.csv`: one row per request;
//! - `table.md`: the measures' table the lab prints (one row per lane);
//! - `statistics.md`: the intervals the lab prints below it: every lane's success and
//!   first-attempt success with 95% intervals, and each Magnetar lane against each peer
//!   ([`crate::stats`]);
//! - `chart.svg`: rolling success rate per lane over the run, and final success rate per lane.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::load::LoadShape;
use crate::metrics::{self, DownstreamCount, ROLLING_WINDOW, Sample, Summary};
use crate::scenario::Scenario;
use crate::stats::{Interval, LaneCounts, Statistics};

/// Version of the `results.json` layout (2: lanes interleaved, per-lane tags, tries and repeat
/// tries; later additions that leave every field in place, such as `statistics`, keep it).
pub const RESULTS_SCHEMA: u32 = 2;

/// One measured lane.
#[derive(Clone, Debug, Serialize)]
pub struct LaneReport {
    pub label: String,
    /// `magnetar` or `peer`.
    pub kind: String,
    /// Route the router learned on (Magnetar lanes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The `x-flaky-tag` the downstreams counted this lane's attempts under.
    pub tag: String,
    pub summary: Summary,
    /// Work requests each downstream counted during the lane (`GET /stats`), when they could be
    /// read: the traffic share, and an independent check of the attempts column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downstream_counts: Option<Vec<DownstreamCount>>,
    pub samples: Vec<Sample>,
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub schema: u32,
    pub tool: String,
    pub started_at_unix_ms: u64,
    pub scenario: Scenario,
    pub requests: usize,
    pub load: LoadShape,
    pub max_attempts: u32,
    pub router: String,
    pub learner: Option<String>,
    pub fleet: Vec<String>,
    /// Request index at which each scenario phase starts.
    pub phase_starts: Vec<usize>,
    /// What every column means.
    pub definitions: BTreeMap<String, String>,
    /// How HAProxy and nginx were tuned (when they ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_tuning: Option<crate::peers::PeerTuning>,
    pub lanes: Vec<LaneReport>,
    /// Every lane's 95% intervals and each Magnetar lane against each peer, from this run alone.
    pub statistics: Statistics,
}

impl LaneReport {
    /// The counts the lane's intervals rest on.
    pub fn counts(&self) -> LaneCounts {
        LaneCounts {
            label: self.label.clone(),
            kind: self.kind.clone(),
            requests: self.summary.requests,
            successes: self.summary.successes,
            first_attempt_successes: self.summary.first_attempt_successes,
        }
    }
}

/// The definitions written into every results file (the page shows the same).
pub fn definitions(success_definition: &str) -> BTreeMap<String, String> {
    [
        ("success", format!("the router's definition: {success_definition}. HAProxy's and nginx's final status is classified with the same function; a request with no answer is a failure")),
        ("first_attempt_success", "the request succeeded with a single attempt".to_owned()),
        ("attempts_per_request", "attempts over requests (router: x-magnetar-attempts; nginx: $upstream_addr; HAProxy: its log, one line per try), checked against the downstreams' own counters of the lane's x-flaky-tag".to_owned()),
        ("repeat_tries", "peers only: tries that went to a downstream the request had already tried, over all retries (tries after the first); from nginx's $upstream_addr and HAProxy's per-try log. The router never repeats a downstream within a request (magnetar-core's attempt plan vetoes tried ones) and names only the final one, so Magnetar lanes report none".to_owned()),
        ("interleaving", "lanes run interleaved: request i of every lane leaves at the same moment with the same fleet behaviour, each lane with the same concurrency (requests in flight per lane; a new round leaves when every lane answered one) or the same rate per lane".to_owned()),
        ("best_guess_score", format!("successes minus every attempt beyond the {}rd of a request", metrics::FREE_ATTEMPTS)),
        ("latency", "p50 and p99 of client-observed latency of every request, log-bucketed histogram with 1% precision (magnetar-core metrics), ms".to_owned()),
        ("realized_regret", "sum over requests of (probability that an oracle trying the best downstreams of the scenario in force, one distinct downstream per attempt within the same budget, serves the request) minus (1 if the request succeeded, else 0); rate-limited downstreams count as under their limit (an upper bound, labelled an estimate in the heading) unless the load has a fixed rate, where their limits bind (the lab's oracle module)".to_owned()),
        ("traffic_share", "attempts each downstream counted itself under the lane's x-flaky-tag over all of the lane's attempts, in fleet order".to_owned()),
        ("confidence_intervals", "95% Wilson score interval of each lane's success and first-attempt success; the difference of a Magnetar lane's success and a peer's with Newcombe's hybrid score interval (method 10) from the two Wilson intervals, lanes taken as independent samples; better or worse when that interval excludes 0, else not distinguishable".to_owned()),
        ("rolling_success", format!("success rate over the last {ROLLING_WINDOW} requests, by request index")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Repeat tries as a percentage, `–` when the lane does not report them.
pub fn repeat_text(summary: &Summary) -> String {
    summary.repeat_try_rate.map_or_else(|| "–".to_owned(), pct)
}

/// Traffic share in fleet order as whole percentages, `33/33/34`.
pub fn share_text(summary: &Summary) -> String {
    summary.traffic_share.iter().map(|v| format!("{:.0}", v * 100.0)).collect::<Vec<_>>().join("/")
}

/// The results table (GitHub markdown).
pub fn table(report: &RunReport) -> String {
    let errors = report.lanes.iter().any(|l| l.summary.errors > 0);
    let mut out = String::new();
    let _ = write!(
        out,
        "| lane | success | first-attempt success | attempts/req | repeat tries | best-guess score | p50 ms | p99 ms | realized regret | traffic share % ({}) |",
        report
            .fleet
            .iter()
            .map(|n| n.trim_start_matches("downstream-"))
            .collect::<Vec<_>>()
            .join("/")
    );
    out.push_str(if errors { " no answer |\n" } else { "\n" });
    out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    out.push_str(if errors { "--:|\n" } else { "\n" });
    for lane in &report.lanes {
        let s = &lane.summary;
        let label =
            if lane.kind == "peer" { format!("{} (peer)", lane.label) } else { lane.label.clone() };
        let _ = write!(
            out,
            "| {label} | {} | {} | {:.2} | {} | {} | {:.0} | {:.0} | {:.1} | {} |",
            pct(s.success_rate),
            pct(s.first_attempt_success_rate),
            s.attempts_per_request,
            repeat_text(s),
            s.best_guess_score,
            s.latency_p50_ms,
            s.latency_p99_ms,
            s.realized_regret,
            share_text(s)
        );
        if errors {
            let _ = write!(out, " {} |", s.errors);
        }
        out.push('\n');
    }
    out
}

fn interval_text(i: &Interval) -> String {
    format!("[{:.1}, {:.1}]", i.low * 100.0, i.high * 100.0)
}

fn points(x: f64) -> String {
    format!("{:+.1}", x * 100.0)
}

/// The intervals (GitHub markdown): one table of every lane's success and first-attempt success
/// with its 95% interval, one of each Magnetar lane against each peer, and how many requests they
/// rest on.
pub fn statistics_table(stats: &Statistics) -> String {
    let mut out = String::new();
    let (fewest, most) = stats.requests_range();
    let per_lane = if fewest == most {
        format!("{most} requests per lane")
    } else {
        format!("{fewest} to {most} requests per lane")
    };
    let pooled = if stats.repeats > 1 {
        format!(", pooled over {} repeats of the whole comparison", stats.repeats)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "95% intervals ({}; differences: Newcombe's hybrid score interval), each resting on {per_lane}{pooled}.\n",
        stats.proportion_method
    );
    out.push_str(
        "| lane | requests | success | 95% interval | first-attempt success | 95% interval |\n",
    );
    out.push_str("|---|--:|--:|--:|--:|--:|\n");
    for lane in &stats.lanes {
        let label =
            if lane.kind == "peer" { format!("{} (peer)", lane.label) } else { lane.label.clone() };
        let (s, f) = (&lane.success, &lane.first_attempt_success);
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} |",
            s.n,
            pct(s.rate),
            interval_text(&s.interval),
            pct(f.rate),
            interval_text(&f.interval)
        );
    }
    if !stats.comparisons.is_empty() {
        out.push_str(
            "\n| lane | against | success difference, points | 95% interval | verdict | \
             requests per lane to tell such a difference apart |\n",
        );
        out.push_str("|---|---|--:|--:|---|--:|\n");
        for c in &stats.comparisons {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                c.lane,
                c.peer,
                points(c.difference),
                interval_text(&c.interval),
                c.verdict.text(),
                c.requests_to_distinguish.map_or_else(|| "–".to_owned(), |n| format!("≈{n}"))
            );
        }
    }
    out
}

/// Each Magnetar lane against each peer on every scenario of a multi-scenario run: the
/// difference in success points with its 95% interval and the verdict, one row per pair, one
/// column per scenario.
pub fn verdicts_table(runs: &[(String, Statistics)]) -> String {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (_, stats) in runs {
        for c in &stats.comparisons {
            if !pairs.contains(&(c.lane.as_str(), c.peer.as_str())) {
                pairs.push((c.lane.as_str(), c.peer.as_str()));
            }
        }
    }
    let mut out = String::from("| lane | against |");
    for (scenario, _) in runs {
        let _ = write!(out, " {scenario} |");
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---|".repeat(runs.len()));
    out.push('\n');
    for (lane, peer) in pairs {
        let _ = write!(out, "| {lane} | {peer} |");
        for (_, stats) in runs {
            let cell = stats.comparisons.iter().find(|c| c.lane == lane && c.peer == peer);
            let _ = match cell {
                Some(c) => write!(
                    out,
                    " {} {} {} |",
                    c.verdict.text(),
                    points(c.difference),
                    interval_text(&c.interval)
                ),
                None => write!(out, " – |"),
            };
        }
        out.push('\n');
    }
    out
}

/// A one-line description of the run, printed above the table.
pub fn heading(report: &RunReport) -> String {
    format!(
        "scenario {} ({} downstreams), {} requests per lane, lanes interleaved, {} per lane, at most {} attempt{} per request",
        report.scenario.name,
        report.fleet.len(),
        report.requests,
        report.load,
        report.max_attempts,
        if report.max_attempts == 1 { "" } else { "s" }
    ) + if report.scenario.oracle_is_estimate(report.max_attempts, report.load.rate()) {
        "; the oracle behind the regret column is an estimate (rate-limited downstreams counted as \
         under their limit, an upper bound; outages as up two thirds of the time)"
    } else {
        ""
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `summary.csv`: one row per lane.
pub fn summary_csv(report: &RunReport) -> String {
    let mut out = String::from(
        "lane,kind,requests,successes,success_rate,first_attempt_success_rate,attempts,attempts_per_request,repeat_tries,repeat_try_rate,best_guess_score,latency_p50_ms,latency_p99_ms,realized_regret,errors,success_ci95_low,success_ci95_high,first_attempt_ci95_low,first_attempt_ci95_high",
    );
    for name in &report.fleet {
        let _ = write!(out, ",share_{}", csv_field(name));
    }
    out.push('\n');
    for (lane, stats) in report.lanes.iter().zip(&report.statistics.lanes) {
        let s = &lane.summary;
        let (ok, first) = (stats.success.interval, stats.first_attempt_success.interval);
        let _ = write!(
            out,
            "{},{},{},{},{:.6},{:.6},{},{:.6},{},{},{},{:.3},{:.3},{:.4},{},{:.6},{:.6},{:.6},{:.6}",
            csv_field(&lane.label),
            lane.kind,
            s.requests,
            s.successes,
            s.success_rate,
            s.first_attempt_success_rate,
            s.attempts,
            s.attempts_per_request,
            s.repeat_tries.map(|r| r.to_string()).unwrap_or_default(),
            s.repeat_try_rate.map(|r| format!("{r:.6}")).unwrap_or_default(),
            s.best_guess_score,
            s.latency_p50_ms,
            s.latency_p99_ms,
            s.realized_regret,
            s.errors,
            ok.low,
            ok.high,
            first.low,
            first.high,
        );
        for share in &s.traffic_share {
            let _ = write!(out, ",{share:.6}");
        }
        out.push('\n');
    }
    out
}

/// `samples.csv`: one row per request.
pub fn samples_csv(report: &RunReport) -> String {
    let mut out = String::from(
        "lane,index,sent_ms,latency_ms,status,success,attempts,worker,oracle,error,tried\n",
    );
    for lane in &report.lanes {
        for s in metrics::by_index(&lane.samples) {
            let _ = writeln!(
                out,
                "{},{},{:.3},{:.3},{},{},{},{},{},{},{}",
                csv_field(&lane.label),
                s.index,
                s.sent_ms,
                s.latency_ms,
                s.status,
                s.success,
                s.attempts,
                csv_field(&s.worker),
                s.oracle,
                csv_field(s.error.as_deref().unwrap_or("")),
                csv_field(&s.tried.as_ref().map(|t| t.join(";")).unwrap_or_default())
            );
        }
    }
    out
}

/// Colour of lane `i` (Chart.js's and the page's palette).
pub fn colour(i: usize) -> &'static str {
    const PALETTE: [&str; 10] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        "#bcbd22", "#17becf",
    ];
    PALETTE[i % PALETTE.len()]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The chart: rolling success rate per lane (left) and final success rate per lane (right).
pub fn chart_svg(report: &RunReport) -> String {
    const W: f64 = 1000.0;
    const H: f64 = 460.0;
    // Left panel.
    let (lx, ly, lw, lh) = (60.0, 50.0, 560.0, 330.0);
    // Right panel.
    let (rx, rw) = (760.0, 200.0);
    let n = report.requests.max(2) as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{lx}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(&format!("Magnetar lab: {}", heading(report)))
    );
    let _ = writeln!(
        svg,
        r#"<text x="{lx}" y="40">rolling success rate (last {ROLLING_WINDOW} requests) by request index</text>"#
    );
    for tick in 0..=4 {
        let v = f64::from(tick) * 0.25;
        let y = ly + lh - v * lh;
        let _ = writeln!(
            svg,
            r##"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{:.0}%</text>"##,
            lx + lw,
            lx - 6.0,
            y + 4.0,
            v * 100.0
        );
    }
    for tick in 0..=4 {
        let i = (f64::from(tick) / 4.0 * (n - 1.0)).round();
        let x = lx + i / (n - 1.0) * lw;
        let _ = writeln!(
            svg,
            r#"<text x="{x}" y="{}" text-anchor="middle">{i}</text>"#,
            ly + lh + 16.0
        );
    }
    for start in report.phase_starts.iter().skip(1) {
        let x = lx + *start as f64 / (n - 1.0) * lw;
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{ly}" x2="{x}" y2="{}" stroke="#555" stroke-dasharray="4 3"/><text x="{}" y="{}" fill="#555">phase switch</text>"##,
            ly + lh,
            x + 4.0,
            ly + 12.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{lx}" y="{ly}" width="{lw}" height="{lh}" fill="none" stroke="#999"/>"##
    );
    for (i, lane) in report.lanes.iter().enumerate() {
        let rolling = metrics::rolling_success(&lane.samples, ROLLING_WINDOW);
        let points: Vec<String> = rolling
            .iter()
            .enumerate()
            .map(|(k, v)| format!("{:.1},{:.1}", lx + k as f64 / (n - 1.0) * lw, ly + lh - v * lh))
            .collect();
        let dash = if lane.kind == "peer" { r#" stroke-dasharray="6 3""# } else { "" };
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.6"{dash} points="{}"/>"#,
            colour(i),
            points.join(" ")
        );
    }
    // Right panel: bars.
    let _ = writeln!(svg, r#"<text x="{}" y="40">success rate</text>"#, rx - 100.0);
    let bar_h = (lh / report.lanes.len().max(1) as f64).min(28.0);
    for (i, lane) in report.lanes.iter().enumerate() {
        let y = ly + i as f64 * bar_h;
        let v = lane.summary.success_rate;
        let label =
            if lane.kind == "peer" { format!("{} (peer)", lane.label) } else { lane.label.clone() };
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{rx}" y="{}" width="{:.1}" height="{:.1}" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            rx - 6.0,
            y + bar_h * 0.65,
            escape(&label),
            y + 2.0,
            v * rw,
            bar_h - 4.0,
            colour(i),
            rx + v * rw + 4.0,
            y + bar_h * 0.65,
            pct(v)
        );
    }
    // Legend under the left panel.
    let mut x = lx;
    for (i, lane) in report.lanes.iter().enumerate() {
        let y = ly + lh + 40.0 + 18.0 * (i / 5) as f64;
        if i % 5 == 0 {
            x = lx;
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y - 10.0,
            colour(i),
            x + 16.0,
            y,
            escape(&lane.label)
        );
        x += 130.0;
    }
    svg.push_str("</svg>\n");
    svg
}

/// Several whole comparisons of one scenario (`--repeats`), their counts pooled per lane.
#[derive(Clone, Debug, Serialize)]
pub struct PooledReport {
    pub schema: u32,
    pub tool: String,
    pub scenario: String,
    pub repeats: usize,
    /// Requests per lane in each repeat.
    pub requests_per_repeat: usize,
    pub max_attempts: u32,
    /// Each repeat's own results folder (its `results.json` has every sample).
    pub runs: Vec<String>,
    /// Each lane's counts summed over the repeats, in lane order.
    pub lanes: Vec<LaneCounts>,
    /// The intervals and comparisons of the pooled counts.
    pub statistics: Statistics,
}

/// Pools runs of the same scenario and lanes: sums each lane's requests, successes and
/// first-attempt successes over the runs. The runs must have the same lanes in the same order.
pub fn pool(runs: &[&RunReport]) -> Result<PooledReport> {
    let Some(first) = runs.first() else { anyhow::bail!("nothing to pool") };
    let mut lanes: Vec<LaneCounts> = first.lanes.iter().map(LaneReport::counts).collect();
    for run in &runs[1..] {
        let labels = |r: &RunReport| r.lanes.iter().map(|l| l.label.clone()).collect::<Vec<_>>();
        if labels(run) != labels(first) || run.scenario.name != first.scenario.name {
            anyhow::bail!("the repeats measured different scenarios or lanes");
        }
        for (pooled, lane) in lanes.iter_mut().zip(&run.lanes) {
            let c = lane.counts();
            pooled.requests += c.requests;
            pooled.successes += c.successes;
            pooled.first_attempt_successes += c.first_attempt_successes;
        }
    }
    Ok(PooledReport {
        schema: RESULTS_SCHEMA,
        tool: first.tool.clone(),
        scenario: first.scenario.name.clone(),
        repeats: runs.len(),
        requests_per_repeat: first.requests,
        max_attempts: first.max_attempts,
        runs: Vec::new(),
        statistics: Statistics::of(&lanes, runs.len()),
        lanes,
    })
}

/// The heading of a pooled report.
pub fn pooled_heading(pooled: &PooledReport) -> String {
    format!(
        "scenario {}, {} repeats of {} requests per lane pooled, at most {} attempt{} per request",
        pooled.scenario,
        pooled.repeats,
        pooled.requests_per_repeat,
        pooled.max_attempts,
        if pooled.max_attempts == 1 { "" } else { "s" }
    )
}

/// Writes `pooled.json` and `statistics.md` into `dir` and returns the paths written.
pub fn write_pooled(pooled: &PooledReport, dir: &Path) -> Result<Vec<PathBuf>> {
    write_files(
        dir,
        [
            ("pooled.json", serde_json::to_string_pretty(pooled)?),
            (
                "statistics.md",
                format!("{}\n\n{}", pooled_heading(pooled), statistics_table(&pooled.statistics)),
            ),
        ],
    )
}

fn write_files<const N: usize>(dir: &Path, files: [(&str, String); N]) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes every file of the run into `dir` (created) and returns the paths written.
pub fn write_all(report: &RunReport, dir: &Path) -> Result<Vec<PathBuf>> {
    write_files(
        dir,
        [
            ("results.json", serde_json::to_string_pretty(report)?),
            ("summary.csv", summary_csv(report)),
            ("samples.csv", samples_csv(report)),
            ("table.md", format!("{}\n\n{}", heading(report), table(report))),
            (
                "statistics.md",
                format!("{}\n\n{}", heading(report), statistics_table(&report.statistics)),
            ),
            ("chart.svg", chart_svg(report)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(label: &str, kind: &str, successes: u64, requests: u64) -> LaneCounts {
        LaneCounts {
            label: label.into(),
            kind: kind.into(),
            requests,
            successes,
            first_attempt_successes: successes,
        }
    }

    #[test]
    fn the_statistics_table_shows_intervals_verdicts_and_what_they_rest_on() {
        let stats = Statistics::of(
            &[counts("magnetar", "magnetar", 81, 263), counts("haproxy", "peer", 15, 148)],
            3,
        );
        let text = statistics_table(&stats);
        assert!(
            text.contains("each resting on 148 to 263 requests per lane, pooled over 3 repeats")
        );
        // Wilson for 81/263 is [25.53%, 36.62%].
        assert!(text.contains("| magnetar | 263 | 30.8% | [25.5, 36.6] | 30.8% | [25.5, 36.6] |"));
        assert!(text.contains("| haproxy (peer) | 148 | 10.1% | [6.2, 16."));
        assert!(text.contains("| magnetar | haproxy | +20.7 |"), "{text}");
        assert!(text.contains("| better |"), "{text}");
    }

    fn run_report(lanes: &[(&str, &str, u64, u64)]) -> RunReport {
        let lane = |(label, kind, successes, requests): &(&str, &str, u64, u64)| {
            let samples: Vec<Sample> = (0..*requests)
                .map(|i| Sample {
                    index: i as usize,
                    sent_ms: 0.0,
                    latency_ms: 1.0,
                    status: 200,
                    success: i < *successes,
                    attempts: 1,
                    worker: "downstream-1".into(),
                    oracle: 1.0,
                    error: None,
                    tried: None,
                })
                .collect();
            LaneReport {
                label: (*label).into(),
                kind: (*kind).into(),
                route: None,
                tag: String::new(),
                summary: metrics::summarize(&samples, &["downstream-1".into()], None),
                downstream_counts: None,
                samples,
            }
        };
        let lanes: Vec<LaneReport> = lanes.iter().map(lane).collect();
        RunReport {
            schema: RESULTS_SCHEMA,
            tool: "test".into(),
            started_at_unix_ms: 0,
            scenario: Scenario::by_name("t1").unwrap(),
            requests: 100,
            load: LoadShape::Concurrency(3),
            max_attempts: 3,
            router: String::new(),
            learner: None,
            fleet: vec!["downstream-1".into()],
            phase_starts: vec![0],
            definitions: BTreeMap::new(),
            peer_tuning: None,
            statistics: Statistics::of(
                &lanes.iter().map(LaneReport::counts).collect::<Vec<_>>(),
                1,
            ),
            lanes,
        }
    }

    #[test]
    fn repeats_pool_each_lanes_counts() {
        let a = run_report(&[("magnetar", "magnetar", 98, 100), ("haproxy", "peer", 92, 100)]);
        let b = run_report(&[("magnetar", "magnetar", 97, 100), ("haproxy", "peer", 92, 100)]);
        let pooled = pool(&[&a, &b]).unwrap();
        assert_eq!(pooled.repeats, 2);
        assert_eq!((pooled.lanes[0].successes, pooled.lanes[0].requests), (195, 200));
        assert_eq!(pooled.lanes[1].first_attempt_successes, 184);
        // 97.5% against 92% over 200 requests each: the interval of the difference, [1.1, 10.3]
        // points, excludes 0, where neither run alone (98% or 97% against 92% over 100) does.
        assert_eq!(a.statistics.comparisons[0].verdict, crate::stats::Verdict::NotDistinguishable);
        assert_eq!(pooled.statistics.comparisons[0].verdict, crate::stats::Verdict::Better);
        assert_eq!(b.statistics.comparisons[0].verdict, crate::stats::Verdict::NotDistinguishable);
        let csv = summary_csv(&a);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
        let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
        // Wilson for 98/100: [0.929988, 0.994498].
        assert_eq!(
            (column("success_ci95_low"), column("success_ci95_high")),
            ("0.929988", "0.994498")
        );
        let verdicts = verdicts_table(&[
            ("t1".into(), a.statistics.clone()),
            ("t2".into(), pooled.statistics),
        ]);
        assert!(verdicts.starts_with("| lane | against | t1 | t2 |\n|---|---|---|---|\n"));
        assert!(
            verdicts.contains("| magnetar | haproxy | not distinguishable +6.0 [-0.3, 13.1] | better +5.5 [1.1, 10.3] |"),
            "{verdicts}"
        );
        let other = run_report(&[("thompson", "magnetar", 97, 100), ("haproxy", "peer", 94, 100)]);
        assert!(pool(&[&a, &other]).is_err());
    }
}
