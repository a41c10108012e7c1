//! Magnetar's flaky downstream, a Cloudflare Worker.
//!
//! A test origin that fails on purpose, in the ways the router must learn to route around:
//! always, at a percentage, above a request rate (429), or in timed outages (503). Every decision
//! is made by [`magnetar_flaky`]; this crate only reads variables and headers, waits, and
//! answers.
//!
//! Endpoints:
//! - `GET /ping`: liveness, always 200 (any method), never flaky, not counted;
//! - `GET /`: the effective configuration (variables plus this request's header override);
//! - `GET /stats`: this isolate's counters, overall and per `x-flaky-tag` (`"tags"`);
//!   `DELETE /stats` zeroes them and the rate window;
//! - anything else, including `POST /` and `POST /service`: a work request, counted.
//!
//! - [`config`]: variables and per-request overrides into one `OriginConfig`;
//! - [`reply`]: JSON responses;
//! - [`isolate`]: per-isolate state (counters, rate window, RNG).

use std::time::Duration;

use magnetar_flaky::TAG_HEADER;

use worker::{
    Context, Date, Delay, Env, Method, Request, Response, Result, RouteContext, Router, event,
};

pub mod config;
pub mod isolate;
pub mod reply;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    handle(req, env).await
}

/// The Worker without the event plumbing (the wasm tests drive it directly).
pub async fn handle(req: Request, env: Env) -> Result<Response> {
    Router::new()
        .on("/ping", ping)
        .on_async("/", root)
        .get("/stats", show_stats)
        .delete("/stats", reset_stats)
        .or_else_any_method_async("/*path", work)
        .run(req, env)
        .await
}

fn ping(_req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let worker = config::worker_name(&ctx.env);
    reply::json(200, &serde_json::json!({"worker": worker, "ok": true}), &worker)
}

/// `/` is registered for every method: a GET-only route would make the Router answer 405 to
/// `POST /`, and the router Worker forwards client paths, `/` included, unchanged.
async fn root(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    match req.method() {
        Method::Get | Method::Head => show_config(req, ctx).await,
        _ => work(req, ctx).await,
    }
}

async fn show_config(mut req: Request, ctx: RouteContext<()>) -> Result<Response> {
    match config::effective(&mut req, &ctx.env).await {
        Ok(cfg) => reply::json(200, &cfg, &cfg.worker),
        Err(err) => reply::config_error(&config::worker_name(&ctx.env), &err),
    }
}

fn show_stats(_req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let worker = config::worker_name(&ctx.env);
    reply::json(200, &isolate::report(&worker), &worker)
}

fn reset_stats(req: Request, ctx: RouteContext<()>) -> Result<Response> {
    isolate::reset();
    show_stats(req, ctx)
}

async fn work(mut req: Request, ctx: RouteContext<()>) -> Result<Response> {
    let now_ms = Date::now().as_millis();
    let tag = req.headers().get(TAG_HEADER).ok().flatten();
    let cfg = match config::effective(&mut req, &ctx.env).await {
        Ok(cfg) => cfg,
        Err(err) => {
            isolate::record_invalid(tag.as_deref());
            return reply::config_error(&config::worker_name(&ctx.env), &err);
        }
    };
    let verdict = isolate::decide(&cfg.flaky, now_ms, tag.as_deref())?;
    if verdict.delay_ms() > 0 {
        Delay::from(Duration::from_millis(verdict.delay_ms())).await;
    }
    reply::verdict(&cfg.worker, cfg.flaky.mode, &verdict)
}

#[cfg(test)]
mod tests;
