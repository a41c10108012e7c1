//! Magnetar's sans-io core.
//!
//! Everything that *decides* something lives here and runs unchanged in three places: the
//! router Worker (wasm32), the native learner, and the seeded simulator (`magnetar-sim`). Nothing in this crate
//! reads a clock, touches a global RNG or does I/O: time comes in as `now_ms`, randomness as
//! `&mut dyn RngCore`, outcomes as plain [`Outcome`] values classified once at the edge.
//!
//! Map of the crate:
//! - [`outcome`]: the small enum every raw HTTP result is classified into;
//! - [`arm`]: [`ArmId`](arm::ArmId), a downstream's index, shared by the fleet, retries and strategies;
//! - [`fleet`]: the fleet configuration (`config/workers.json`), parsed once into typed values;
//! - [`strategy`]: the [`Strategy`](strategy::Strategy) trait and one file per algorithm;
//! - [`posterior`]: the Beta posterior with exponential time decay (the learner's state per arm);
//! - [`health`]: passive failure detection (phi accrual, consecutive failures), ejection, panic
//!   threshold, readmission probes and slow start;
//! - [`retry`]: the attempt plan (penalty-free budget, distinct downstreams) and retry budget;
//! - [`tags`]: tags a request requires (`x-magnetar-tags`, `ROUTE_TAGS`) and the downstreams
//!   they leave out;
//! - [`hedge`]: when a request's attempt is hedged by a second one (`HEDGE`);
//! - [`retry_after`]: a 429/503's `Retry-After`, kept as a veto on the downstream until then;
//! - [`telemetry`]: the versioned telemetry record and the Kafka REST proxy v2 envelope;
//! - [`config`]: the router's configuration (wrangler variables), parsed once;
//! - [`context`]: what the edge knows about a request, and its feature vector (contextual strategies);
//! - [`bench`]: the micro-benchmark workload shared by the native and the wasm32 benchmarks.
//!
//! The flaky test origin is the `magnetar-flaky` crate and the simulator (with its metrics) the
//! `magnetar-sim` crate: the router's wasm compiles neither.

pub mod arm;
pub mod bench;
pub mod config;
pub mod context;
pub mod fleet;
pub mod forward;
pub mod health;
pub mod hedge;
pub mod outcome;
pub mod posterior;
pub mod request;
pub mod retry;
pub mod retry_after;
pub mod route;
pub mod select;
pub mod stats;
pub mod strategy;
pub mod tags;
pub mod telemetry;

pub use outcome::Outcome;
