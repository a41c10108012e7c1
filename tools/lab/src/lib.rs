//! Magnetar's lab: honest, repeatable stress comparisons.
//!
//! `magnetar-lab run` sends the same load (requests, concurrency or fixed rate, scenario timeline)
//! through each chosen Magnetar strategy and through HAProxy and nginx in front of the same
//! downstream fleet, and reports one table with one set of definitions ([`metrics`]).
//! `magnetar-lab serve` serves the test-bed page, which does the same interactively in a browser.
//!
//! - [`scenario`]: how the fleet behaves over a run (the `x-flaky-config` header per request);
//! - [`load`]: the load generator and how each lane's answers are read;
//! - [`metrics`]: the definitions (success, first-attempt success, score, regret, ...);
//! - [`oracle`]: the best possible success when rate limits bind at a fixed rate;
//! - [`peers`]: HAProxy and nginx configured and started on loopback;
//! - [`stack`]: finding the running stack, or starting one;
//! - [`run`]: one comparison, lanes interleaved, or several pooled (`--repeats`); [`report`]:
//!   tables, intervals, JSON, CSV, SVG;
//! - [`stats`]: confidence intervals of success and of the difference against each peer;
//! - [`latency`]: the router's added latency (`magnetar-lab latency`);
//! - [`serve`]: the page's server; [`cli`]: the command line; [`prompt`]: its questions when run
//!   bare in a terminal; [`process`]: child process groups.

pub mod cli;
pub mod latency;
pub mod load;
pub mod metrics;
pub mod oracle;
pub mod peers;
pub mod process;
pub mod prompt;
pub mod report;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod stack;
pub mod stats;
