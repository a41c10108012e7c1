//! One client request: read the client's options, attempt downstreams as the
//! [`AttemptPlan`] allows, answer, and hand telemetry to `wait_until`.

use magnetar_core::config::{Algo, RouterConfig};
use magnetar_core::request::{BodyError, parse_request_options};
use magnetar_core::retry::{AttemptPlan, IDEMPOTENCY_KEY_HEADER, Next, Replay};
use magnetar_core::tags::TAGS_HEADER;
use magnetar_core::telemetry::{AttemptTelemetry, TELEMETRY_SCHEMA, TelemetryRecord};
use magnetar_core::{Outcome, forward};
use serde_json::json;
use worker::{Context, Method, Request, Response, Result, RouteContext};

use crate::attempt::{self, Answer, Outgoing};
use crate::body::{self, BodyRead};
use crate::choose::LEARNER_FALLBACK;
use crate::clock::now_ms;
use crate::isolate::Isolate;
use crate::{context, control, health, learner, log, race, tags, telemetry};

/// Set to `1` on a response when a hedge was sent for its request.
pub const HEDGED_HEADER: &str = "x-magnetar-hedged";

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
    let required = match tags::required(&config, &route, lookup(TAGS_HEADER).as_deref()) {
        Ok(required) => required,
        Err(refusal) => return Ok(control::with_cors(refusal.response()?, &config)),
    };
    let route = required.learning_route(&route);
    let request_context = match context::of(&req, url.path(), body.len(), lookup) {
        Ok(c) => c,
        Err(e) => {
            let response = control::error(400, "bad_request", e.to_string())?;
            return Ok(control::with_cors(response, &config));
        }
    };
    isolate.count(|c| c.requests += 1);
    isolate.deposit_retry_budget(started_ms);
    health::start_due_probes(&isolate, &ctx.env, &ctx.data, started_ms);
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
            config.forward_trust,
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

    let ask = race::Ask { out: &out, required: &required, context: Some(&request_context) };
    let raced = race::run(&ctx.env, &isolate, &route, algo, ask, &mut plan).await;
    let (next, last_answer, fell_back) = (raced.next, raced.answer, raced.fell_back);

    let finished_ms = now_ms();
    let id = request_id(started_ms);
    let mut response = respond(&config, &plan, next, last_answer, algo, &id, fell_back)?;
    if raced.hedges > 0 {
        response.headers_mut().set(HEDGED_HEADER, "1")?;
    }
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
            pool: None,
            experiment: None,
            variant: None,
        };
        ctx.data.wait_until(telemetry::post(isolate.clone(), telemetry_config, record));
    }
    Ok(control::with_cors(response, &config))
}

fn attempts_telemetry(config: &RouterConfig, plan: &AttemptPlan) -> Vec<AttemptTelemetry> {
    plan.attempts()
        .iter()
        .map(|a| AttemptTelemetry {
            downstream: config.fleet.get(a.arm).map(|d| d.name.clone()).unwrap_or_default(),
            status: a.status,
            outcome: a.outcome,
            latency_ms: a.latency_ms,
            hedged: a.hedged,
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
