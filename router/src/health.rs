//! The router's side of passive health (`magnetar_core::health`): every attempt's outcome is
//! reported, every attempt's veto includes the ejected downstreams, and an ejected downstream
//! whose ejection is over is probed (one synthetic `GET HEALTH_PROBE_PATH` in `wait_until`)
//! before a user request goes to it again. What the isolate's [`FleetHealth`] decides shows in
//! `/_magnetar/state` under `health`.
//!
//! [`FleetHealth`]: magnetar_core::health::FleetHealth

use magnetar_core::forward;
use magnetar_core::health;
use magnetar_core::strategy::ArmId;
use magnetar_core::{Outcome, select::SelectContext};
use worker::{Context, Env, Headers, Method};

use crate::attempt::{self, AttemptResult, Outgoing};
use crate::clock;
use crate::isolate::Isolate;

/// Header a probe carries, so a downstream can tell it from user traffic.
pub const PROBE_HEADER: &str = "x-magnetar-probe";

/// The veto of the next attempt: the plan's `excluded` and what health vetoes now (see
/// [`health::combine`]).
pub fn veto(isolate: &Isolate, excluded: &[ArmId], now_ms: u64) -> Vec<ArmId> {
    let arms = isolate.config().fleet.len();
    let vetoed = isolate.health(|h, rng| h.veto(now_ms, rng));
    health::combine(excluded, &vetoed, arms)
}

/// `ctx` restricted to `excluded` (from [`veto`]).
pub fn context<'a>(ctx: SelectContext<'a>, excluded: &'a [ArmId]) -> SelectContext<'a> {
    health::with_veto(ctx, excluded)
}

/// A user attempt to `arm` came back with `outcome`.
pub fn observe(isolate: &Isolate, arm: ArmId, outcome: Outcome, now_ms: u64) {
    isolate.health(|h, _| h.observe(arm, outcome, now_ms));
}

/// Moves health on to `now_ms` and sends the probes that are due, in the background.
pub fn start_due_probes(isolate: &Isolate, env: &Env, ctx: &Context, now_ms: u64) {
    for arm in isolate.health(|h, _| h.advance(now_ms)) {
        let (isolate, env) = (isolate.clone(), env.clone());
        ctx.wait_until(async move {
            let ok = probe(&isolate, &env, arm).await;
            isolate.health(|h, _| h.probed(arm, ok, clock::now_ms()));
        });
    }
}

/// One synthetic request to `arm`: whether it answered with the expected status in time.
async fn probe(isolate: &Isolate, env: &Env, arm: ArmId) -> bool {
    let config = isolate.config();
    let Some(downstream) = config.fleet.get(arm) else { return false };
    let headers = Headers::new();
    if headers.set(PROBE_HEADER, "1").is_err() {
        return false;
    }
    let out = Outgoing {
        method: Method::Get,
        path_and_query: config.health.probe_path.clone(),
        headers,
        body: Vec::new(),
        forwarding: forward::forwarding(None, None, None, "https", forward::ForwardTrust::Replace),
    };
    let result = attempt::send(env, downstream, &out, 1, config.health.probe_timeout_ms).await;
    let (ok, detail) = match &result {
        AttemptResult::Answered(a) => {
            (a.status == config.health.probe_status, format!("status {}", a.status))
        }
        AttemptResult::TimedOut => (false, "timed out".to_owned()),
        AttemptResult::Failed(e) => (false, e.clone()),
        AttemptResult::BrokenBody(status, e) => (false, format!("status {status}, body: {e}")),
    };
    if !ok {
        // One line per probe: probes are rare (one per ejection that ends).
        worker::console_warn!(
            "health probe failed downstream={:?} detail={detail:?}",
            downstream.name
        );
    }
    ok
}
