//! Runs the `magnetar-sim` binary on a small job and checks what it prints and writes: the
//! markdown table, `results.json` (with the retry budget recorded), `results.csv` and one SVG
//! chart per scenario, each well-formed.

use std::path::{Path, PathBuf};
use std::process::Command;

const STRATEGIES: [&str; 3] = ["thompson", "round_robin", "envoy_outlier"];
const SCENARIOS: [&str; 2] = ["prototype", "rate_limited"];

/// A fresh directory under the target's temporary directory.
fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sim-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run(out: &Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_magnetar-sim"))
        .args(["--scenarios", &SCENARIOS.join(","), "--strategies", &STRATEGIES.join(",")])
        .args(["--seeds", "2", "--requests", "600", "--points", "20", "--threads", "2"])
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("magnetar-sim runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8 table")
}

/// Checks that every tag is closed in order (a small well-formedness check for our SVG, which
/// has no comments, CDATA or `>` inside attributes) and that text holds only known entities.
fn assert_well_formed_xml(xml: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| entity.starts_with(e)),
                "bare & in {text:?}"
            );
        }
        let close = rest[open..].find('>').expect("unterminated tag") + open;
        let tag = &rest[open + 1..close];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().expect("tag name");
            stack.push(name.to_owned());
        }
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed {stack:?}");
    assert!(rest.trim().is_empty(), "text after the root: {rest:?}");
}

#[test]
fn writes_a_table_json_csv_and_a_chart_per_scenario() {
    let dir = out_dir("budget");
    let table = run(&dir, &["--max-attempts", "3", "--envoy-lb", "random"]);

    // Table: one section per scenario, the header, a separator and one row per strategy.
    for scenario in SCENARIOS {
        assert!(table.contains(&format!("### `{scenario}`")), "{table}");
    }
    assert!(table.contains("3 attempt(s) per request (retry budget 20%+10/s,ttl=10s)"), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), SCENARIOS.len() * (1 + STRATEGIES.len()));
    let columns = rows[0].matches('|').count();
    assert!(rows.iter().all(|r| r.matches('|').count() == columns), "{rows:#?}");

    // JSON: every scenario with its config (retry budget included) and every strategy.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
            .expect("results.json parses");
    let reports = json.as_array().expect("an array of scenario reports");
    assert_eq!(reports.len(), SCENARIOS.len());
    for report in reports {
        let config = &report["config"];
        assert_eq!(config["max_attempts"], 3);
        assert_eq!(config["retry_budget"]["retry_percent"], 0.2);
        assert_eq!(config["retry_budget"]["min_per_sec"], 10);
        assert_eq!(config["requests"], 600);
        let results = report["results"].as_array().expect("results");
        assert_eq!(results.len(), STRATEGIES.len());
        for r in results {
            assert_eq!(r["runs"], 2);
            let rate = r["success_rate"]["mean"].as_f64().expect("success rate");
            assert!((0.0..=1.0).contains(&rate));
            assert_eq!(r["series"]["regret"].as_array().map(Vec::len), Some(20));
        }
    }

    // CSV: a header and one row per (scenario, strategy), every row as wide as the header, the
    // numbers numbers.
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(header.last(), Some(&"retry_budget"));
    let body: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(body.len(), SCENARIOS.len() * STRATEGIES.len());
    for row in &body {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert!(SCENARIOS.contains(&row[0]) && STRATEGIES.contains(&row[1]), "{row:?}");
        let objective = header.iter().position(|h| *h == "latency_objective_ms").expect("column");
        assert_eq!((row[objective], row[objective + 1]), ("", ""), "no objective: empty fields");
        for (name, field) in header.iter().zip(row).skip(2) {
            let empty = ["latency_objective_ms", "success_within_objective_rate"];
            if !["traffic_share", "retry_budget"].contains(name) && !empty.contains(name) {
                assert!(field.parse::<f64>().is_ok(), "{name} = {field:?}");
            }
        }
        assert_eq!(row[header.len() - 2], "3");
        assert_eq!(row[header.len() - 1], "20%+10/s;ttl=10s");
    }

    // One chart per scenario: well-formed SVG with a regret and a success line per strategy,
    // plus the oracle's.
    for scenario in SCENARIOS {
        let svg = std::fs::read_to_string(dir.join(format!("{scenario}.svg"))).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{scenario}");
        assert_well_formed_xml(&svg);
        assert_eq!(svg.matches("<polyline").count(), 2 * STRATEGIES.len() + 1, "{scenario}");
        for strategy in STRATEGIES {
            assert!(svg.contains(&format!(">{strategy}</text>")), "{scenario}: {strategy}");
        }
    }
}

#[test]
fn records_a_disabled_retry_budget() {
    let dir = out_dir("no-budget");
    let table = run(&dir, &["--max-attempts", "3", "--no-retry-budget"]);
    assert!(table.contains("(retry budget none)"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert!(json[0]["config"]["retry_budget"].is_null());
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",3,none")), "{csv}");
}

#[test]
fn the_well_formedness_check_can_fail() {
    for bad in ["<svg><g></svg>", "<svg>a & b</svg>", "<svg><text x=\"1>t</text></svg>"] {
        assert!(std::panic::catch_unwind(|| assert_well_formed_xml(bad)).is_err(), "{bad}");
    }
    assert_well_formed_xml("<svg a=\"1\"><g/><text>x &amp; y</text></svg>\n");
}

#[test]
fn unknown_names_are_refused() {
    for args in [["--strategies", "nope"], ["--envoy-lb", "least_request"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_magnetar-sim"))
            .args(["--scenarios", "prototype", "--seeds", "1", "--requests", "10"])
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(args[1]), "{args:?}");
    }
}

#[test]
fn lists_the_builtins_and_runs_a_scenario_file() {
    let list = Command::new(env!("CARGO_BIN_EXE_magnetar-sim")).arg("--list").output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("slow_host") && list.contains("sim/scenarios/sticky.toml"), "{list}");
    let dir = out_dir("file");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sim/scenarios/random_outages.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_magnetar-sim"))
        .args(["--scenario-file", file, "--strategies", "thompson", "--seeds", "1"])
        .args(["--requests", "300", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.contains("### `random_outages`") && table.contains("% of oracle"), "{table}");
    // A malformed file fails, naming the file and the field.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\ndescription = \"\"\ndownstreams = []\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_magnetar-sim"))
        .arg("--scenario-file")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && err.contains("downstreams: the fleet is empty"), "{err}");
}

/// The markdown rows of a table, split into trimmed cells.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with("| "))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

#[test]
fn reports_success_within_the_latency_objective() {
    let dir = out_dir("objective");
    let output = Command::new(env!("CARGO_BIN_EXE_magnetar-sim"))
        .args(["--scenarios", "latency", "--strategies", "magnetar,round_robin"])
        .args(["--seeds", "2", "--requests", "2000", "--threads", "2"])
        .args(["--objective", "latency_slo:50", "--out"])
        .arg(&dir)
        .output()
        .expect("magnetar-sim runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).expect("utf-8");
    assert!(table.contains("latency objective 50 ms"), "{table}");
    let rows = cells(&table);
    assert_eq!(rows[0][1..3], ["success %", "within 50 ms %"]);
    assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{rows:?}");
    let within = |name: &str| -> (f64, f64) {
        let r = rows.iter().find(|r| r[0] == name).expect("a row per strategy");
        (r[1].parse().expect("success"), r[2].parse().expect("within"))
    };
    // The fleet answers in 10, 30, 100 and 400 ms (95% each): round robin's answers beat 50 ms
    // only from the first two hosts (and rarely the third), magnetar with latency_slo:50 learns
    // to keep to the fastest.
    let (rr_success, rr_within) = within("round_robin");
    let (m_success, m_within) = within("magnetar");
    assert!(rr_within <= rr_success && m_within <= m_success);
    assert!((40.0..60.0).contains(&rr_within), "{rr_within}");
    assert!(m_within > 90.0, "{m_within}");
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).expect("column");
    for row in lines.map(|l| l.split(',').collect::<Vec<_>>()) {
        assert_eq!(row[at("latency_objective_ms")], "50");
        let within: f64 = row[at("success_within_objective_rate")].parse().expect("a rate");
        assert!(within <= row[at("success_rate")].parse::<f64>().expect("a rate"));
    }
}

#[test]
fn prints_the_fleet_table_and_the_throughput() {
    let output = Command::new(env!("CARGO_BIN_EXE_magnetar-sim"))
        .args(["--scenarios", "constant", "--strategies", "thompson,round_robin"])
        .args(["--seeds", "1", "--requests", "2000", "--isolates", "1,50", "--threads", "2"])
        .output()
        .expect("magnetar-sim runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).expect("utf-8");
    assert!(table.contains("### `constant` across isolates"), "{table}");
    let rows = cells(&table);
    assert_eq!(rows[0][..3], ["strategy", "isolates", "learner"]);
    let body = &rows[1..];
    assert_eq!(body.len(), 2 * 2 * 2, "strategy x isolates x learner: {rows:?}");
    for r in body {
        let imports: f64 = r[6].parse().expect("imports per request");
        // Only a strategy that imports the learner's parameters, and only with the learner.
        assert_eq!(imports > 0.0, r[0] == "thompson" && r[2] == "yes", "{r:?}");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().find(|l| l.starts_with("all scenarios:")).expect("a total line");
    assert!(
        line.contains("simulated attempts (") && line.contains("attempts/s on 2 threads"),
        "{line}"
    );
    // Bad fleet options name the flag.
    for (flag, value) in [("--isolates", "0"), ("--skew", "-1"), ("--arrivals", "bursts:0:1")] {
        let output = Command::new(env!("CARGO_BIN_EXE_magnetar-sim"))
            .args(["--scenarios", "constant", "--seeds", "1", "--requests", "10"])
            .args(["--isolates", "2", &format!("{flag}={value}")])
            .output()
            .expect("magnetar-sim runs");
        let err = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag} {value}");
        let named = if flag == "--skew" { "spread.exponent" } else { flag };
        assert!(err.contains(named), "{flag}: {err}");
    }
}
