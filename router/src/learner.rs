//! The router's side of the learner: `GET /recommendation` on the request path (strategy
//! `learner`, short deadline) and `GET /params` refreshes in the background.
//!
//! Both carry `Authorization: Bearer <LEARNER_TOKEN>` when the secret is set (the learner refuses
//! unauthenticated calls unless it runs in its open mode).
//!
//! The learner is never on the critical path for correctness: any failure (down, slow, garbage,
//! a recommendation outside the fleet or already tried) yields `None`, and the caller falls back
//! to a local strategy.

use std::collections::HashMap;

use magnetar_core::config::{Algo, RouterConfig};
use magnetar_core::strategy::{ArmId, ArmPosterior, PosteriorSnapshot};
use serde::Deserialize;
use worker::{Context, Fetch, Headers, Method, Request, RequestInit};

use crate::deadline::Deadline;
use crate::isolate::{self, Isolate};
use crate::log;

#[derive(Deserialize)]
struct Recommendation {
    worker: String,
}

#[derive(Deserialize)]
struct Params {
    schema: u32,
    taken_ms: u64,
    downstreams: HashMap<String, ArmPosterior>,
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn get_json<T: for<'de> Deserialize<'de>>(
    url: &str,
    token: Option<&str>,
    timeout_ms: u64,
) -> Option<T> {
    let mut init = RequestInit::new();
    init.with_method(Method::Get);
    if let Some(token) = token {
        let headers = Headers::new();
        headers.set("authorization", &format!("Bearer {token}")).ok()?;
        init.with_headers(headers);
    }
    let deadline = Deadline::new(timeout_ms);
    let request = deadline.attach(&Request::new_with_init(url, &init).ok()?).ok()?;
    let fetch = async {
        let mut response = Fetch::Request(request).send().await.ok()?;
        if response.status_code() != 200 {
            return None;
        }
        response.json::<T>().await.ok()
    };
    deadline.run(fetch).await.flatten()
}

/// Asks the learner which downstream to try; `None` means "fall back".
pub async fn recommend(config: &RouterConfig, route: &str, excluded: &[ArmId]) -> Option<ArmId> {
    let learner = config.learner.as_ref()?;
    let names = config.fleet.names();
    let candidates = names.iter().map(|n| encode_query_value(n)).collect::<Vec<_>>().join(",");
    let exclude = excluded
        .iter()
        .filter_map(|a| names.get(*a))
        .map(|n| encode_query_value(n))
        .collect::<Vec<_>>()
        .join(",");
    let url = format!(
        "{}/recommendation?route={}&candidates={candidates}&exclude={exclude}",
        learner.url,
        encode_query_value(route)
    );
    let rec: Recommendation = get_json(&url, learner.token.as_deref(), learner.timeout_ms).await?;
    let arm = config.fleet.arm_of(&rec.worker)?;
    (!excluded.contains(&arm)).then_some(arm)
}

/// Maps the learner's per-name posterior onto this router's arms. Names the learner has not
/// seen get zero counts (the prior); names the fleet does not have are ignored.
fn to_snapshot(config: &RouterConfig, params: Params) -> Option<PosteriorSnapshot> {
    if params.schema != PosteriorSnapshot::SCHEMA {
        return None;
    }
    let arms = config
        .fleet
        .downstreams()
        .iter()
        .map(|d| params.downstreams.get(&d.name).cloned().unwrap_or_default())
        .collect();
    Some(PosteriorSnapshot { schema: PosteriorSnapshot::SCHEMA, taken_ms: params.taken_ms, arms })
}

/// Starts a background `/params` refresh for `route` when the strategy follows the learner and
/// the last refresh is older than the configured interval.
pub fn maybe_refresh_params(
    isolate: &Isolate,
    route: &str,
    algo: Algo,
    now_ms: u64,
    ctx: &Context,
) {
    let config = isolate.config();
    let Some(learner) = config.learner.as_ref() else { return };
    let follows = match algo {
        Algo::Local(kind) => isolate::follows_learner(kind),
        Algo::Learner => true,
    };
    if !follows || !isolate.claim_params_refresh(route, now_ms, learner.params_refresh_ms) {
        return;
    }
    let url = format!("{}/params?route={}", learner.url, encode_query_value(route));
    let timeout_ms = learner.timeout_ms.max(1_000);
    let token = learner.token.clone();
    let isolate = isolate.clone();
    let route = route.to_owned();
    ctx.wait_until(async move {
        let snapshot = get_json::<Params>(&url, token.as_deref(), timeout_ms)
            .await
            .and_then(|p| to_snapshot(isolate.config(), p));
        match snapshot {
            Some(snapshot) => {
                isolate.apply_learned(&route, snapshot);
                isolate.count(|c| c.params_refreshes += 1);
            }
            None => {
                let failures = isolate.tally(|c| &mut c.params_refresh_failures);
                log::sparse_warn("learner params refresh failed", failures, &url);
            }
        }
    });
}
