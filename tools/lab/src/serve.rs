//! `magnetar-lab serve`: the test-bed page's server.
//!
//! Serves the page's static files from `test-bed/` (top-level files only), Chart.js from
//! `node_modules/chart.js/dist/chart.umd.js` at `/vendor/chart.umd.js`, and two JSON documents the
//! page starts from: `/config.json` (where the router and the learner are, the shared metric
//! constants) and `/scenarios.json` (the lab's built-in scenarios, so the page's presets are the
//! lab's). The page itself talks to the router and the learner directly (CORS).
//! Files are read on every request: editing the page needs no restart.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use crate::metrics::{FREE_ATTEMPTS, ROLLING_WINDOW};
use crate::scenario::Scenario;

/// Where the page's pieces are and what it should talk to.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The `test-bed/` directory.
    pub dir: PathBuf,
    /// Chart.js's UMD build.
    pub chart_js: PathBuf,
    /// Router base URL, as the browser reaches it.
    pub router: String,
    /// Learner base URL, as the browser reaches it.
    pub learner: String,
}

/// The page's router (axum), ready to serve.
pub fn app(config: ServeConfig) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok" }))
        .route("/config.json", get(config_json))
        .route("/scenarios.json", get(scenarios_json))
        .route("/vendor/chart.umd.js", get(chart_js))
        .route("/{file}", get(static_file))
        .with_state(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(config)).with_graceful_shutdown(shutdown).await
}

fn content_type(file: &str) -> Option<&'static str> {
    let ext = file.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => return None,
    })
}

async fn send_file(path: PathBuf, kind: &'static str) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-store")], bytes)
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn index(State(config): State<Arc<ServeConfig>>) -> Response {
    send_file(config.dir.join("index.html"), "text/html; charset=utf-8").await
}

async fn static_file(State(config): State<Arc<ServeConfig>>, Path(file): Path<String>) -> Response {
    let plain = !file.starts_with('.')
        && file.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    match content_type(&file).filter(|_| plain) {
        Some(kind) => send_file(config.dir.join(&file), kind).await,
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn chart_js(State(config): State<Arc<ServeConfig>>) -> Response {
    send_file(config.chart_js.clone(), "text/javascript; charset=utf-8").await
}

async fn config_json(State(config): State<Arc<ServeConfig>>) -> Json<serde_json::Value> {
    Json(json!({
        "router": config.router,
        "learner": config.learner,
        "rolling_window": ROLLING_WINDOW,
        "free_attempts": FREE_ATTEMPTS,
        "tool": format!("magnetar-lab {}", env!("CARGO_PKG_VERSION")),
    }))
}

async fn scenarios_json() -> Json<serde_json::Value> {
    let scenarios = Scenario::builtin();
    Json(json!({ "scenarios": scenarios }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_top_level_files_have_a_type() {
        assert_eq!(content_type("app.js"), Some("text/javascript; charset=utf-8"));
        assert_eq!(content_type("index.html"), Some("text/html; charset=utf-8"));
        assert_eq!(content_type("Cargo.toml"), None);
        assert_eq!(content_type("noext"), None);
    }
}
