//! Scenarios from files: the [`Scenario`] type itself, read from TOML or JSON, then checked.
//!
//! A file describes one fleet; every built-in scenario is shipped as such a file under
//! `sim/scenarios/` (built for the default run, 20,000 requests), so a user copies one and edits
//! it. Times are simulated milliseconds from the start of the run.
//!
//! ```toml
//! name = "mine"
//! description = "two hosts, one with random outages"
//! # interarrival_ms = 1.0        # optional: this fleet's mean time between arrivals
//! # arrivals = "poisson"         # or "constant" (the default), { bursts = { size = 20, gap_ms = 0.5 } }
//! # latency_objective_ms = 300   # optional: report success within 300 ms of arrival
//! # attempt_timeout_ms = 1000    # optional: this fleet's attempt timeout
//! # poison = { server_error_share = 0.02, client_error_share = 0.01 }
//! # brownout = { from_ms = 60000, until_ms = 120000, success = 0.2 }
//! # context = { share = 0.5, path_class = "/eu/orders", other_path_class = "/us/orders", served_by = [1], elsewhere = 0.0 }
//!
//! [[downstreams]]
//! name = "a"
//! success = { constant = 0.95 }  # or { step = {..} }, { sine = {..} }
//! latency_ms = 20.0              # median; latency_sigma (0.25) is the spread of its log
//! stickiness = 0.5               # a retry on a host that failed the request fails again
//! markov = [{ success = 0.98, mean_dwell_ms = 20000.0 }, { success = 0.0, mean_dwell_ms = 5000.0 }]
//!
//! [[downstreams]]
//! name = "b"
//! success = { constant = 0.9 }
//! latency_ms = 30.0
//! capacity_rps = 40              # 429 above 40 accepted attempts per sliding second
//! outage = { up_ms = 20000, down_ms = 10000, offset_ms = 0 }
//! slow_tail = { share = 0.01, factor = 20.0 }
//! latency_steps = [{ at_ms = 50000, latency_ms = 200.0 }]
//!
//! [[downstreams]]
//! name = "c"                     # degrades linearly from 98% to 60% between 30 s and 90 s
//! success = { linear = [{ at_ms = 30000, success = 0.98 }, { at_ms = 90000, success = 0.6 }] }
//! latency_ms = 20.0              # ignored while latency_curve has points
//! latency_curve = [{ at_ms = 30000, latency_ms = 20.0 }, { at_ms = 90000, latency_ms = 400.0 }]
//! ```
//!
//! A linear curve's points are in time order; before the first point its value holds, after
//! the last one the last value, and two points at the same time make a jump.
//!
//! Parse errors name the line, the column and the key (TOML) or the field's path and the line
//! (JSON); [`Scenario::check`] then names the field of a value out of range
//! (`downstreams[1].markov[0].mean_dwell_ms: must be positive, got -5`).

use std::fmt::Display;

use super::arrivals::Arrivals;
use super::model::SuccessCurve;
use super::scenario::Scenario;

/// A file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// JSON for a `.json` path, TOML otherwise.
    pub fn of_path(path: &str) -> Format {
        if path.to_ascii_lowercase().ends_with(".json") { Format::Json } else { Format::Toml }
    }
}

/// A scenario file could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScenarioError {
    #[error("{0}")]
    Toml(String),
    #[error("{path}: {message}")]
    Json { path: String, message: String },
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("cannot write the scenario as TOML: {0}")]
    Write(String),
}

fn invalid(field: impl Display, problem: impl Display) -> ScenarioError {
    ScenarioError::Invalid { field: field.to_string(), problem: problem.to_string() }
}

/// `value` must be a probability.
fn probability(field: impl Display, value: f64) -> Result<(), ScenarioError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(field, format!("must be a probability in 0..=1, got {value}")))
    }
}

/// `value` must be finite and above 0.
fn positive(field: impl Display, value: f64) -> Result<(), ScenarioError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("must be positive, got {value}")))
    }
}

/// Times of a curve's points must not go backwards; a curve has at least one point.
fn in_time_order(field: &str, times: impl IntoIterator<Item = u64>) -> Result<(), ScenarioError> {
    let mut last = None;
    for (j, at) in times.into_iter().enumerate() {
        if last.is_some_and(|l| at < l) {
            return Err(invalid(
                format!("{field}[{j}].at_ms"),
                format!("must not be before the previous point's ({at} < {})", last.unwrap_or(0)),
            ));
        }
        last = Some(at);
    }
    if last.is_none() {
        return Err(invalid(field, "needs at least one point"));
    }
    Ok(())
}

/// `value` must be finite and at least 0.
fn not_negative(field: impl Display, value: f64) -> Result<(), ScenarioError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(invalid(field, format!("must be 0 or more, got {value}")))
    }
}

impl Scenario {
    /// Reads a scenario from `text` in `format`, then [checks](Scenario::check) it.
    pub fn parse(text: &str, format: Format) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = match format {
            Format::Toml => toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))?,
            Format::Json => {
                let de = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de).map_err(|e| ScenarioError::Json {
                    path: e.path().to_string(),
                    message: e.inner().to_string(),
                })?
            }
        };
        scenario.check()?;
        Ok(scenario)
    }

    /// This scenario as a TOML file.
    pub fn to_toml(&self) -> Result<String, ScenarioError> {
        toml::to_string(self).map_err(|e| ScenarioError::Write(e.to_string()))
    }

    /// Checks every value a file can get wrong; the error names the field.
    pub fn check(&self) -> Result<(), ScenarioError> {
        if self.downstreams.is_empty() {
            return Err(invalid("downstreams", "the fleet is empty"));
        }
        if let Some(ms) = self.interarrival_ms {
            positive("interarrival_ms", ms)?;
        }
        if self.attempt_timeout_ms == Some(0) {
            return Err(invalid("attempt_timeout_ms", "must be positive, got 0"));
        }
        if self.latency_objective_ms == Some(0) {
            return Err(invalid("latency_objective_ms", "must be positive, got 0"));
        }
        if let Some(Arrivals::Bursts { size, gap_ms }) = self.arrivals {
            if size == 0 {
                return Err(invalid("arrivals.bursts.size", "must be at least 1, got 0"));
            }
            not_negative("arrivals.bursts.gap_ms", gap_ms)?;
        }
        if let Some(p) = self.poison {
            probability("poison.server_error_share", p.server_error_share)?;
            probability("poison.client_error_share", p.client_error_share)?;
            probability("poison (both shares)", p.server_error_share + p.client_error_share)?;
        }
        if let Some(c) = &self.context {
            c.check(self.downstreams.len())
                .map_err(|e| ScenarioError::Invalid { field: e.field, problem: e.problem })?;
        }
        if let Some(b) = self.brownout {
            probability("brownout.success", b.success)?;
            if b.until_ms < b.from_ms {
                return Err(invalid("brownout.until_ms", "must not be before from_ms"));
            }
        }
        for (i, d) in self.downstreams.iter().enumerate() {
            let at = |field: &str| format!("downstreams[{i}].{field}");
            match d.success {
                SuccessCurve::Constant(p) => probability(at("success.constant"), p)?,
                SuccessCurve::Step { before, after, .. } => {
                    probability(at("success.step.before"), before)?;
                    probability(at("success.step.after"), after)?;
                }
                SuccessCurve::Sine { mean, amplitude, .. } => {
                    probability(at("success.sine.mean"), mean)?;
                    not_negative(at("success.sine.amplitude"), amplitude)?;
                }
                SuccessCurve::Linear(ref points) => {
                    in_time_order(&at("success.linear"), points.iter().map(|p| p.at_ms))?;
                    for (j, p) in points.iter().enumerate() {
                        probability(at(&format!("success.linear[{j}].success")), p.success)?;
                    }
                }
            }
            positive(at("latency_ms"), d.latency_ms)?;
            not_negative(at("latency_sigma"), d.latency_sigma)?;
            probability(at("timeout_share"), d.timeout_share)?;
            probability(at("stickiness"), d.stickiness)?;
            if let Some(o) = d.outage
                && o.up_ms + o.down_ms == 0
            {
                return Err(invalid(at("outage"), "up_ms + down_ms must be positive"));
            }
            if let Some(t) = d.slow_tail {
                probability(at("slow_tail.share"), t.share)?;
                positive(at("slow_tail.factor"), t.factor)?;
            }
            for (j, s) in d.latency_steps.iter().enumerate() {
                positive(at(&format!("latency_steps[{j}].latency_ms")), s.latency_ms)?;
            }
            if !d.latency_curve.is_empty() {
                if !d.latency_steps.is_empty() {
                    return Err(invalid(
                        at("latency_curve"),
                        "cannot be combined with latency_steps",
                    ));
                }
                in_time_order(&at("latency_curve"), d.latency_curve.iter().map(|p| p.at_ms))?;
                for (j, p) in d.latency_curve.iter().enumerate() {
                    positive(at(&format!("latency_curve[{j}].latency_ms")), p.latency_ms)?;
                }
            }
            for (j, s) in d.markov.iter().enumerate() {
                probability(at(&format!("markov[{j}].success")), s.success)?;
                positive(at(&format!("markov[{j}].mean_dwell_ms")), s.mean_dwell_ms)?;
                if let Some(ms) = s.latency_ms {
                    positive(at(&format!("markov[{j}].latency_ms")), ms)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;
    use crate::scenario::SCENARIOS;

    #[test]
    fn every_builtin_round_trips_through_toml_and_json() {
        for s in Scenario::builtins(&SimConfig::default()) {
            let toml = s.to_toml().unwrap();
            assert_eq!(Scenario::parse(&toml, Format::Toml).unwrap(), s, "{}", s.name);
            let json = serde_json::to_string_pretty(&s).unwrap();
            assert_eq!(Scenario::parse(&json, Format::Json).unwrap(), s, "{}", s.name);
        }
    }

    #[test]
    fn the_shipped_files_are_the_builtins() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
        for name in SCENARIOS {
            let path = format!("{dir}/{name}.toml");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let builtin = Scenario::builtin(name, &SimConfig::default()).unwrap();
            assert_eq!(Scenario::parse(&text, Format::Toml).unwrap(), builtin, "{path}");
        }
        let files = std::fs::read_dir(dir).unwrap().count();
        assert_eq!(files, SCENARIOS.len(), "one file per built-in scenario, nothing else");
    }

    const TWO: &str = r#"
name = "two"
description = "two hosts"

[[downstreams]]
name = "a"
success = { constant = 0.9 }
latency_ms = 20

[[downstreams]]
name = "b"
success = { constant = 0.5 }
latency_ms = 30.0
markov = [{ success = 0.9, mean_dwell_ms = 1000.0 }, { success = 0.0, mean_dwell_ms = 500 }]
"#;

    fn error(text: &str) -> String {
        Scenario::parse(text, Format::Toml).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_file_takes_the_defaults() {
        let s = Scenario::parse(TWO, Format::Toml).unwrap();
        assert_eq!(s.arms(), 2);
        assert_eq!(s.downstreams[0].latency_sigma, crate::model::DEFAULT_LATENCY_SIGMA);
        assert_eq!(
            (s.downstreams[0].latency_ms, s.downstreams[1].markov[1].mean_dwell_ms),
            (20.0, 500.0)
        );
        assert_eq!(s.downstreams[1].stickiness, 0.0);
    }

    #[test]
    fn malformed_files_get_errors_naming_the_field() {
        let unknown = error(&TWO.replace("latency_ms = 20\n", "latency_ms = 20\nlatency = 3\n"));
        assert!(
            unknown.contains("unknown field `latency`") && unknown.contains("line 9"),
            "{unknown}"
        );
        let range = error(&TWO.replace("constant = 0.9", "constant = 1.5"));
        assert_eq!(
            range,
            "downstreams[0].success.constant: must be a probability in 0..=1, got 1.5"
        );
        let dwell = error(&TWO.replace("mean_dwell_ms = 500", "mean_dwell_ms = -5"));
        assert_eq!(dwell, "downstreams[1].markov[1].mean_dwell_ms: must be positive, got -5");
        let empty = error("name = \"x\"\ndescription = \"\"\ndownstreams = []\n");
        assert_eq!(empty, "downstreams: the fleet is empty");
        let sticky =
            error(&TWO.replace("latency_ms = 30.0", "latency_ms = 30.0\nstickiness = -0.1"));
        assert!(sticky.starts_with("downstreams[1].stickiness:"), "{sticky}");
        let missing = error(&TWO.replace("success = { constant = 0.9 }\n", ""));
        assert!(missing.contains("missing field `success`"), "{missing}");
        let json = Scenario::parse(
            r#"{"name": "j", "description": "", "downstreams": [{"name": "a", "success": {"constant": "high"}, "latency_ms": 1}]}"#,
            Format::Json,
        )
        .unwrap_err()
        .to_string();
        assert!(json.starts_with("downstreams[0].success.constant: invalid type"), "{json}");
    }
}
