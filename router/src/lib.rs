//! Magnetar's edge router, a Cloudflare Worker.
//!
//! Thin by design: every decision (which downstream, whether to retry, what counts as success,
//! how configuration and requests are read) is made by `magnetar-core`; this crate only moves
//! bytes between the client, the downstreams, the learner and the Kafka REST proxy.
//!
//! - [`proxy`]: one client request: buffer the body once, attempt downstreams, answer;
//! - [`choose`]: who picks an attempt's downstream (local strategy or the learner, with fallback);
//! - [`body`]: the client's body, read under `MAX_BODY_BYTES`;
//! - [`attempt`]: one attempt, cut off at its deadline;
//! - [`deadline`]: AbortController + Delay for every subrequest;
//! - [`health`]: ejected downstreams vetoed, outcomes reported, readmission probes;
//! - [`isolate`]: per-isolate state (parsed config, strategies, RNG, counters), one handle per
//!   request passed to what touches it;
//! - [`clock`]: the wall clock;
//! - [`learner`]: `/recommendation` per attempt and background `/params` refreshes;
//! - [`tags`]: tags a request requires, the downstreams they leave out, 400/503 refusals;
//! - [`telemetry`]: one batch per request posted to the REST proxy in `wait_until`;
//! - [`log`]: log lines, failures of dependencies logged sparsely;
//! - [`control`]: the router's own `/_magnetar/*` endpoints and JSON error responses.

use worker::{Context, Env, Request, Response, Result, Router, event};

pub mod attempt;
pub mod body;
pub mod choose;
pub mod clock;
pub mod context;
pub mod control;
pub mod deadline;
pub mod health;
pub mod isolate;
pub mod learner;
pub mod log;
pub mod proxy;
pub mod race;
pub mod tags;
pub mod telemetry;

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    Router::with_data(ctx)
        .get("/_magnetar/health", control::health)
        .get("/_magnetar/fleet", control::fleet)
        .get("/_magnetar/state", control::state)
        .or_else_any_method_async("/", proxy::handle)
        .or_else_any_method_async("/*path", proxy::handle)
        .run(req, env)
        .await
}
