//! `magnetar-lab run` asked interactively, as the flaky-load-balancer harness did.
//!
//! With no arguments after `run` and a terminal on stdin ([`asks`]), the lab asks for the strategy
//! (a wire name, several comma-separated, or `ALL`), the configurations (scenarios; the harness's
//! three, `t1,t2,t3`, by default) and the requests per configuration, then runs as if they had been
//! given as `--algos`, `--scenario` and `--requests`. Everything else keeps its default (both peers,
//! concurrency 3). With any flag, or without a terminal (a script, CI), nothing is asked.
//!
//! [`ask`] reads from any reader and writes to any writer, so the questions are tested without a
//! terminal; a bad answer is explained and asked again, at most [`TRIES`] times.

use std::ffi::OsString;
use std::io::{BufRead, Write};

use anyhow::{Result, bail};
use magnetar_core::config::Algo;

use crate::cli::{DEFAULT_REQUESTS, RunArgs};
use crate::scenario::Scenario;

/// The configurations asked about when the answer is empty: the harness's three.
pub const DEFAULT_CONFIGURATIONS: [&str; 3] = ["t1", "t2", "t3"];
/// Answers to one question before the lab gives up.
pub const TRIES: usize = 3;

/// What the questions settled.
#[derive(Clone, Debug, PartialEq)]
pub struct Answers {
    /// Wire names, or `["all"]`.
    pub algos: Vec<String>,
    pub scenarios: Vec<String>,
    pub requests: usize,
}

impl Answers {
    /// Puts the answers into the command line's arguments.
    pub fn apply(self, args: &mut RunArgs) {
        args.algos = self.algos;
        args.scenario = self.scenarios;
        args.requests = self.requests;
    }
}

/// Whether to ask: `magnetar-lab run` with nothing after it, and a terminal on stdin.
pub fn asks(args: &[OsString], stdin_is_terminal: bool) -> bool {
    stdin_is_terminal && args.len() == 2 && args[1] == "run"
}

fn items(answer: &str) -> impl Iterator<Item = &str> {
    answer.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `ALL` (any case) or comma-separated strategy names; empty means `ALL`.
pub fn parse_algos(answer: &str) -> Result<Vec<String>, String> {
    if items(answer).next().is_none() || items(answer).any(|a| a.eq_ignore_ascii_case("all")) {
        return Ok(vec!["all".to_owned()]);
    }
    items(answer)
        .map(|a| a.parse::<Algo>().map(|algo| algo.name().to_owned()).map_err(|e| e.to_string()))
        .collect()
}

/// `ALL` (every built-in scenario) or comma-separated scenario names; empty means `t1,t2,t3`.
pub fn parse_scenarios(answer: &str) -> Result<Vec<String>, String> {
    if items(answer).next().is_none() {
        return Ok(DEFAULT_CONFIGURATIONS.map(str::to_owned).to_vec());
    }
    if items(answer).any(|a| a.eq_ignore_ascii_case("all")) {
        return Ok(Scenario::builtin().into_iter().map(|s| s.name).collect());
    }
    items(answer)
        .map(|a| {
            Scenario::by_name(&a.to_ascii_lowercase()).map(|s| s.name).map_err(|e| e.to_string())
        })
        .collect()
}

/// A positive whole number; empty means [`DEFAULT_REQUESTS`].
pub fn parse_requests(answer: &str) -> Result<usize, String> {
    let answer = answer.trim().replace('_', "");
    if answer.is_empty() {
        return Ok(DEFAULT_REQUESTS);
    }
    match answer.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{answer:?} is not a number of requests (a whole number from 1)")),
    }
}

fn question<T>(
    input: &mut impl BufRead,
    output: &mut impl Write,
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T> {
    for _ in 0..TRIES {
        write!(output, "{text}: ")?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            bail!("no answer to {text:?}");
        }
        match parse(&line) {
            Ok(value) => return Ok(value),
            Err(e) => writeln!(output, "  {e}")?,
        }
    }
    bail!("no valid answer to {text:?} after {TRIES} tries")
}

/// Asks the three questions on `output` and reads the answers from `input`.
pub fn ask(input: &mut impl BufRead, output: &mut impl Write) -> Result<Answers> {
    writeln!(output, "magnetar-lab run: each strategy beside HAProxy and nginx on the same fleet")?;
    writeln!(output, "strategies: {}", Algo::names())?;
    let algos = question(input, output, "strategy (a name, or ALL) [ALL]", parse_algos)?;
    let names: Vec<String> = Scenario::builtin().into_iter().map(|s| s.name).collect();
    writeln!(output, "configurations: {}", names.join(", "))?;
    let scenarios = question(
        input,
        output,
        &format!("configurations (names, or ALL) [{}]", DEFAULT_CONFIGURATIONS.join(",")),
        parse_scenarios,
    )?;
    let requests = question(
        input,
        output,
        &format!("requests per configuration [{DEFAULT_REQUESTS}]"),
        parse_requests,
    )?;
    let answers = Answers { algos, scenarios, requests };
    writeln!(output, "the same as: magnetar-lab run {}", answers.flags())?;
    Ok(answers)
}

impl Answers {
    /// The flags that run the same without questions.
    pub fn flags(&self) -> String {
        format!(
            "--algos {} --scenario {} --requests {}",
            self.algos.join(","),
            self.scenarios.join(","),
            self.requests
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(typed: &str) -> (Result<Answers>, String) {
        let mut output = Vec::new();
        let result = ask(&mut typed.as_bytes(), &mut output);
        (result, String::from_utf8(output).unwrap())
    }

    #[test]
    fn asks_only_for_a_bare_run_in_a_terminal() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(asks(&args(&["magnetar-lab", "run"]), true));
        assert!(!asks(&args(&["magnetar-lab", "run"]), false));
        assert!(!asks(&args(&["magnetar-lab", "run", "--requests", "10"]), true));
        assert!(!asks(&args(&["magnetar-lab", "scenarios"]), true));
    }

    #[test]
    fn empty_answers_take_the_defaults() {
        let (result, output) = answers("\n\n\n");
        let a = result.unwrap();
        assert_eq!(a.algos, ["all"]);
        assert_eq!(a.scenarios, ["t1", "t2", "t3"]);
        assert_eq!(a.requests, DEFAULT_REQUESTS);
        assert!(output.contains("strategy (a name, or ALL) [ALL]: "), "{output}");
        assert!(output.contains("magnetar"), "the strategies are listed: {output}");
        assert!(output.ends_with(
            "the same as: magnetar-lab run --algos all --scenario t1,t2,t3 --requests 1000\n"
        ));
    }

    #[test]
    fn names_are_read_in_any_case_and_bad_answers_are_asked_again() {
        let (result, output) =
            answers("nope\nMagnetar, thompson\ntiers,SLOWHOST\nmany\n0\n2_000\n");
        let a = result.unwrap();
        assert_eq!(a.algos, ["magnetar", "thompson"]);
        assert_eq!(a.scenarios, ["t1", "slowhost"]);
        assert_eq!(a.requests, 2000);
        assert!(output.contains("unknown") || output.contains("nope"), "{output}");
        assert!(output.contains("\"many\" is not a number of requests"), "{output}");
        assert_eq!(output.matches("requests per configuration").count(), 3);
    }

    #[test]
    fn all_means_every_strategy_or_every_scenario() {
        let a = answers("all\nALL\n5\n").0.unwrap();
        assert_eq!(a.algos, ["all"]);
        assert_eq!(a.scenarios.len(), Scenario::builtin().len());
    }

    #[test]
    fn no_answer_or_too_many_bad_ones_is_an_error() {
        assert!(answers("").0.is_err());
        let (result, _) = answers("x\ny\nz\nthompson\n");
        assert!(result.unwrap_err().to_string().contains("after 3 tries"));
    }

    #[test]
    fn the_answers_become_run_arguments() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from(["magnetar-lab", "run"]).unwrap();
        let crate::cli::Command::Run(mut args) = cli.command else { panic!("not run") };
        answers("magnetar\nt2\n300\n").0.unwrap().apply(&mut args);
        let plan = args.plan().unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!((plan[0].scenario.as_str(), plan[0].requests), ("t2", 300));
        assert_eq!(plan[0].algos, ["magnetar"]);
    }
}
