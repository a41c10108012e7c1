//! One client request: read the client's options, attempt downstreams as the
//! [`AttemptPlan`] allows, answer, and hand telemetry to `wait_until`.

use magnetar_core::config::{Algo, RouterConfig};
use magnetar_core::request::{BodyError, parse_request_options};
use magnetar_core::retry::{AttemptPlan, AttemptRecord, IDEMPOTENCY_KEY_HEADER, Next, Replay};
use magnetar_core::strategy::{ArmId, Feedback, SelectContext, StrategyKind};
use magnetar_core::telemetry::{AttemptTelemetry, TELEMETRY_SCHEMA, TelemetryRecord};
use magnetar_core::{Outcome, forward};
use serde_json::json;
use worker::{Context, Method, Request, Response, Result, RouteContext};

use crate::attempt::{self, Answer, AttemptResult, Outgoing};
use crate::body::{self, BodyRead};
use crate::clock::now_ms;
use crate::isolate::Isolate;
use crate::{context, control, learner, log, telemetry};

/// Strategy the `learner` algo falls back to when the learner does not answer.
pub const LEARNER_FALLBACK: StrategyKind = StrategyKind::Thompson;

fn request_id(started_ms: u64) -> String {
    let rand = (js_sys::Math::random() * 1e12) as u64;
    format!("{started_ms:x}-{rand:010x}")
}

/// Handles every request that is not a `/_magnetar/` endpoint.
pub async fn handle(mut req: Request, ctx: RouteContext<Context>) -> Result<Response> {
    let started_ms = now_ms();
    let isolate = match Isolate::get(&ctx.env) {
        Ok(isolate) => isolate,
        Err(e) => {
            log::error("router configuration is invalid", &e.to_string());
            return control::error(500, "router_misconfigured", e.to_string());
        }
    };
    let config = isolate.config().clone();
    if req.method() == Method::Options && config.cors_allow_origin.is_some() {
        return control::preflight(&config);
    }
    let url = req.url()?;
    // The learning route: a configured pattern's (or the default one), else the path.
    let route = config.route_of(url.path()).to_owned();
    let query = url.query().unwrap_or("").to_owned();
    let body = match body::read(&mut req, config.max_body_bytes).await {
        Ok(body) => body,
        Err(BodyRead::Refused(e @ BodyError::BadContentLength(_))) => {
            return Ok(control::with_cors(
                control::error(400, "bad_request", e.to_string())?,
                &config,
            ));
        }
        Err(BodyRead::Refused(e)) => {
            isolate.count(|c| c.bodies_too_large += 1);
            let response = control::error(413, "body_too_large", e.to_string())?;
            return Ok(control::with_cors(response, &config));
        }
        Err(BodyRead::Broken(e)) => {
            let message = format!("could not read the request body: {e}");
            return Ok(control::with_cors(control::error(400, "bad_request", message)?, &config));
        }
    };
    let headers = req.headers();
    let lookup = |name: &str| headers.get(name).ok().flatten();
    let content_type = lookup("content-type");
    let options = match parse_request_options(
        &query,
        lookup,
        content_type.as_deref(),
        &body,
        config.max_attempts,
    ) {
        Ok(o) => o,
        Err(e) => {
            let response = control::error(400, "bad_request", e.to_string())?;
            return Ok(control::with_cors(response, &config));
        }
    };
    let request_context = match context::of(&req, url.path(), body.len(), lookup) {
        Ok(c) => c,
        Err(e) => {
            let response = control::error(400, "bad_request", e.to_string())?;
            return Ok(control::with_cors(response, &config));
        }
    };
    isolate.count(|c| c.requests += 1);
    isolate.deposit_retry_budget(started_ms);
    let algo = options.algo.unwrap_or(config.default_algo);
    learner::maybe_refresh_params(&isolate, &route, algo, started_ms, &ctx.data);

    let out = Outgoing {
        method: req.method(),
        path_and_query: match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        },
        headers: attempt::end_to_end_headers(req.headers()),
        body,
        forwarding: forward::forwarding(
            lookup("x-forwarded-for").as_deref(),
            lookup("forwarded").as_deref(),
            lookup("cf-connecting-ip").as_deref(),
            url.scheme(),
        ),
    };
    let max_attempts = options.max_attempts.unwrap_or(config.max_attempts);
    let idempotency_key = req.headers().has(IDEMPOTENCY_KEY_HEADER).unwrap_or(false);
    let replay = Replay::of(&req.inner().method(), out.body.len(), idempotency_key);
    let mut plan =
        AttemptPlan::new(max_attempts, config.fleet.len(), started_ms + config.request_deadline_ms)
            .mode(match algo {
                Algo::Local(kind) => config.retry_mode_for(kind),
                Algo::Learner => config.retry_mode_for(LEARNER_FALLBACK),
            })
            .started_at(started_ms)
            .replay(replay);

    let mut last_answer: Option<Answer> = None;
    let mut fell_back = false;
    let mut next = Next::GiveUp;
    loop {
        let attempt_no = plan.next_attempt();
        let ctx_sel = plan.select_context(now_ms()).request(Some(&request_context));
        let (arm, local_kind) = match choose(&isolate, &route, algo, &ctx_sel).await {
            Some(choice) => choice,
            None => break,
        };
        fell_back |= matches!(algo, Algo::Learner) && local_kind.is_some();
        let Some(downstream) = config.fleet.get(arm) else { break };
        // Read after choose(): the wait for the learner's recommendation is neither part of the
        // attempt's latency nor left of the request's deadline.
        let sent = now_ms();
        let hint = isolate.attempt_deadline_ms(&route, local_kind.unwrap_or(LEARNER_FALLBACK), arm);
        let timeout = plan.attempt_timeout_ms(sent, config.attempt_timeout_ms, hint);
        let result = attempt::send(&ctx.env, downstream, &out, attempt_no, timeout).await;
        let finished = now_ms();
        let (outcome, status, answer) = match result {
            AttemptResult::Answered(a) => (Outcome::from_status(a.status), Some(a.status), Some(a)),
            AttemptResult::TimedOut => (Outcome::Timeout, None, None),
            AttemptResult::Failed(_) => (Outcome::ConnectError, None, None),
            // The origin had the request and answered, but not in full: a server failure, not a
            // connection error (which would make a POST look safe to retry).
            AttemptResult::BrokenBody(status, _) => (Outcome::ServerError, Some(status), None),
        };
        let latency_ms = finished.saturating_sub(sent) as f64;
        let feedback = Feedback { outcome, latency_ms, now_ms: finished, attempt: attempt_no };
        // Every attempt teaches the local strategy that chose it; learner-routed attempts teach
        // the fallback so it is ready when the learner is not.
        let kind = local_kind.unwrap_or(LEARNER_FALLBACK);
        isolate.update_in_context(&route, kind, arm, &feedback, Some(&request_context));
        isolate.count(|c| c.attempts += 1);
        last_answer = answer;
        next = isolate.record_attempt(
            &mut plan,
            AttemptRecord { arm, outcome, status, latency_ms },
            finished,
        );
        if next != Next::Retry {
            break;
        }
    }

    let finished_ms = now_ms();
    let id = request_id(started_ms);
    let response = respond(&config, &plan, next, last_answer, algo, &id, fell_back)?;
    if let Some(telemetry_config) = config.telemetry.clone() {
        let record = TelemetryRecord {
            schema: TELEMETRY_SCHEMA,
            request_id: id,
            caller_id: options.caller_id,
            route,
            strategy: algo.name().to_owned(),
            router_instance: isolate.instance_id(),
            started_ms,
            finished_ms,
            attempts: attempts_telemetry(&config, &plan),
            final_outcome: plan.attempts().last().map_or(Outcome::ConnectError, |a| a.outcome),
            final_status: response.status_code(),
        };
        ctx.data.wait_until(telemetry::post(isolate.clone(), telemetry_config, record));
    }
    Ok(control::with_cors(response, &config))
}

/// Picks the arm of the next attempt. Returns the local strategy that chose it (`None` when the
/// learner chose).
async fn choose(
    isolate: &Isolate,
    route: &str,
    algo: Algo,
    ctx: &SelectContext<'_>,
) -> Option<(ArmId, Option<StrategyKind>)> {
    match algo {
        Algo::Local(kind) => isolate.select(route, kind, ctx).map(|arm| (arm, Some(kind))),
        Algo::Learner => {
            if let Some(arm) = learner::recommend(isolate.config(), route, ctx.excluded).await {
                isolate.count(|c| c.learner_recommendations += 1);
                return Some((arm, None));
            }
            let fallbacks = isolate.tally(|c| &mut c.learner_fallbacks);
            log::sparse_warn(
                "learner gave no usable recommendation, local fallback",
                fallbacks,
                "",
            );
            isolate.select(route, LEARNER_FALLBACK, ctx).map(|arm| (arm, Some(LEARNER_FALLBACK)))
        }
    }
}

fn attempts_telemetry(config: &RouterConfig, plan: &AttemptPlan) -> Vec<AttemptTelemetry> {
    plan.attempts()
        .iter()
        .map(|a| AttemptTelemetry {
            downstream: config.fleet.get(a.arm).map(|d| d.name.clone()).unwrap_or_default(),
            status: a.status,
            outcome: a.outcome,
            latency_ms: a.latency_ms,
        })
        .collect()
}

fn respond(
    config: &RouterConfig,
    plan: &AttemptPlan,
    next: Next,
    last: Option<Answer>,
    algo: Algo,
    id: &str,
    fell_back: bool,
) -> Result<Response> {
    let last_attempt = plan.attempts().last();
    let worker_name = last_attempt
        .and_then(|a| config.fleet.get(a.arm))
        .map(|d| d.name.clone())
        .unwrap_or_default();
    let mut response = match (next, last) {
        (Next::Answer, Some(answer)) => answer.into_response()?,
        _ => {
            let attempts: Vec<_> = plan
                .attempts()
                .iter()
                .map(|a| {
                    json!({
                        "downstream": config.fleet.get(a.arm).map(|d| d.name.as_str()),
                        "outcome": a.outcome,
                        "status": a.status,
                        "latency_ms": a.latency_ms,
                    })
                })
                .collect();
            let message = if attempts.is_empty() {
                "no downstream could be tried".to_owned()
            } else {
                format!("all {} attempts failed", attempts.len())
            };
            let body =
                json!({ "error": "all_attempts_failed", "message": message, "attempts": attempts });
            Response::from_json(&body)?.with_status(502)
        }
    };
    let headers = response.headers_mut();
    headers.set("x-magnetar-worker", &worker_name)?;
    headers.set("x-magnetar-attempts", &plan.attempts().len().to_string())?;
    headers.set("x-magnetar-algo", algo.name())?;
    headers.set("x-magnetar-request-id", id)?;
    let outcome = if plan.succeeded() { "success" } else { "failure" };
    headers.set("x-magnetar-outcome", outcome)?;
    if fell_back {
        headers.set("x-magnetar-fallback", LEARNER_FALLBACK.name())?;
    }
    Ok(response)
}
