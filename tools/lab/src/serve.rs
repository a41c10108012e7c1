//! `magnetar-lab serve`: the test-bed page's server.
//!
//! Serves the page's static files from `test-bed/` (top-level files only: the HTML, the style
//! sheet and the page's ES modules), Chart.js from `node_modules/chart.js/dist/chart.umd.js` at
//! `/vendor/chart.umd.js`, and two JSON documents the page starts from: `/config.json` (where the
//! router and the learner are, the shared metric constants) and `/scenarios.json` (the lab's
//! built-in scenarios, so the page's presets are the lab's). The page sends its requests to the
//! router directly (CORS). What needs credentials it reads through this server, which adds them,
//! so no token reaches the page; and the downstreams (no CORS) it reaches through this server too,
//! which forwards to every downstream of the router's fleet (the last fleet read is kept, so the
//! downstreams stay readable while the router is down):
//!
//! - `GET /api/fleet`: the router's `GET /_magnetar/fleet`, with its admin token;
//! - `GET /api/params?route=R`: the learner's `GET /params?route=R`, with the learner's token;
//! - `GET /api/downstreams`: each downstream's `GET /stats`, overall and per `x-flaky-tag` (the
//!   page tags each lane of a run and reads its counts from there);
//! - `GET /api/downstreams/config`: each downstream's `GET /`, its own effective configuration
//!   (mode, failure percentage, delay, whether it honours overrides), which the page's controls
//!   start from.
//!
//! Files are read on every request: editing the page needs no restart.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::metrics::{FREE_ATTEMPTS, ROLLING_WINDOW};
use crate::scenario::Scenario;
use crate::stack::FleetInfo;

/// Where the page's pieces are and what it should talk to.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The `test-bed/` directory.
    pub dir: PathBuf,
    /// Chart.js's UMD build.
    pub chart_js: PathBuf,
    /// Router base URL, as the browser reaches it.
    pub router: String,
    /// Learner base URL.
    pub learner: String,
    /// The router's `ADMIN_TOKEN`, sent on `/_magnetar/fleet`.
    pub admin_token: Option<String>,
    /// The learner's bearer token, sent on `/params`.
    pub learner_token: Option<String>,
}

/// What the handlers share.
struct Shared {
    config: ServeConfig,
    /// For the downstreams: carries no credentials.
    client: reqwest::Client,
    /// For the router's admin endpoints and the learner: carry their tokens.
    router_client: reqwest::Client,
    learner_client: reqwest::Client,
    /// (name, URL) of every downstream, from the router's last answered `/_magnetar/fleet`.
    fleet: Mutex<Vec<(String, String)>>,
}

/// The page's router (axum), ready to serve.
pub fn app(config: ServeConfig) -> Router {
    let client = client_with(None);
    let router_client = client_with(config.admin_token.as_deref());
    let learner_client = client_with(config.learner_token.as_deref());
    let shared =
        Shared { config, client, router_client, learner_client, fleet: Mutex::new(Vec::new()) };
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok" }))
        .route("/config.json", get(config_json))
        .route("/scenarios.json", get(scenarios_json))
        .route("/api/fleet", get(router_fleet))
        .route("/api/params", get(learner_params))
        .route("/api/downstreams", get(downstream_counts))
        .route("/api/downstreams/config", get(downstream_configs))
        .route("/vendor/chart.umd.js", get(chart_js))
        .route("/{file}", get(static_file))
        .with_state(Arc::new(shared))
}

/// A client with a 3 s timeout that sends `Authorization: Bearer <token>` when given one.
fn client_with(token: Option<&str>) -> reqwest::Client {
    let mut headers = header::HeaderMap::new();
    if let Some(value) =
        token.and_then(|t| header::HeaderValue::from_str(&format!("Bearer {t}")).ok())
    {
        let mut value = value;
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .default_headers(headers)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
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

async fn index(State(shared): State<Arc<Shared>>) -> Response {
    send_file(shared.config.dir.join("index.html"), "text/html; charset=utf-8").await
}

async fn static_file(State(shared): State<Arc<Shared>>, Path(file): Path<String>) -> Response {
    let plain = !file.starts_with('.')
        && file.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    match content_type(&file).filter(|_| plain) {
        Some(kind) => send_file(shared.config.dir.join(&file), kind).await,
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn chart_js(State(shared): State<Arc<Shared>>) -> Response {
    send_file(shared.config.chart_js.clone(), "text/javascript; charset=utf-8").await
}

async fn config_json(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    Json(json!({
        "router": shared.config.router,
        "learner": shared.config.learner,
        "rolling_window": ROLLING_WINDOW,
        "free_attempts": FREE_ATTEMPTS,
        "tool": format!("magnetar-lab {}", env!("CARGO_PKG_VERSION")),
    }))
}

async fn scenarios_json() -> Json<serde_json::Value> {
    let scenarios = Scenario::builtin();
    Json(json!({ "scenarios": scenarios }))
}

/// The downstreams of the router's fleet, refreshed when the router answers.
async fn fleet(shared: &Shared) -> Vec<(String, String)> {
    if let Ok(Some(info)) = FleetInfo::fetch(
        &shared.router_client,
        &shared.config.router,
        shared.config.admin_token.as_deref(),
    )
    .await
    {
        let fresh: Vec<(String, String)> = info
            .downstreams
            .into_iter()
            .filter_map(|d| d.url.map(|u| (d.name, u.trim_end_matches('/').to_owned())))
            .collect();
        if let Ok(mut cached) = shared.fleet.lock() {
            *cached = fresh;
        }
    }
    shared.fleet.lock().map(|f| f.clone()).unwrap_or_default()
}

fn unavailable(message: String) -> Response {
    (
        StatusCode::BAD_GATEWAY,
        Json(json!({ "error": "downstreams_unavailable", "message": message })),
    )
        .into_response()
}

/// `GET url` as JSON, or why not.
async fn get_json(client: &reqwest::Client, url: String) -> Result<Value, String> {
    let response = client.get(&url).send().await.map_err(|e| {
        if e.is_connect() { "connection refused".to_owned() } else { e.to_string() }
    })?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    response.json().await.map_err(|_| "answered something other than JSON".to_owned())
}

/// `GET /api/fleet`: the router's fleet, read with the admin token.
async fn router_fleet(State(shared): State<Arc<Shared>>) -> Response {
    let url = format!("{}/_magnetar/fleet", shared.config.router);
    match get_json(&shared.router_client, url).await {
        Ok(fleet) => Json(fleet).into_response(),
        Err(e) => upstream_error("router", e),
    }
}

#[derive(serde::Deserialize)]
struct RouteQuery {
    route: String,
}

/// `GET /api/params?route=R`: the learner's posteriors for a route, read with its token.
async fn learner_params(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<RouteQuery>,
) -> Response {
    let request = shared
        .learner_client
        .get(format!("{}/params", shared.config.learner))
        .query(&[("route", query.route.as_str())]);
    let answer = match request.send().await {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.map_err(|e| e.to_string()),
        Ok(r) => Err(format!("answered {}", r.status())),
        Err(e) => Err(e.to_string()),
    };
    match answer {
        Ok(params) => Json(params).into_response(),
        Err(e) => upstream_error("learner", e),
    }
}

fn upstream_error(what: &str, message: String) -> Response {
    let body = json!({ "error": format!("{what}_unavailable"), "message": message });
    (StatusCode::BAD_GATEWAY, Json(body)).into_response()
}

/// `GET /api/downstreams`: every downstream's `/stats` (with its per-tag counts), in fleet order.
async fn downstream_counts(State(shared): State<Arc<Shared>>) -> Response {
    let fleet = fleet(&shared).await;
    if fleet.is_empty() {
        return unavailable("the router has not listed a local fleet".into());
    }
    let reads = fleet.iter().map(|(_, url)| get_json(&shared.client, format!("{url}/stats")));
    let mut out = Vec::new();
    for ((name, url), stats) in fleet.iter().zip(futures_util::future::join_all(reads).await) {
        let Ok(stats) = stats else {
            return unavailable(format!("{name} at {url} did not answer GET /stats"));
        };
        let count = |k: &str| stats[k].as_u64().unwrap_or(0);
        out.push(json!({
            "name": name,
            "requests": count("requests"),
            "successes": count("successes"),
            "failures": count("failures"),
            "rate_limited": count("rate_limited"),
            "invalid": count("invalid"),
            "tags": stats.get("tags").cloned().unwrap_or_else(|| json!({})),
        }));
    }
    Json(json!({ "downstreams": out })).into_response()
}

/// `GET /api/downstreams/config`: every downstream's own `GET /` (its effective configuration), in
/// fleet order. A downstream that does not answer gets `"config": null` and an `"error"`; the
/// page then falls back to a default for it and says so.
async fn downstream_configs(State(shared): State<Arc<Shared>>) -> Response {
    let fleet = fleet(&shared).await;
    if fleet.is_empty() {
        return unavailable("the router has not listed a local fleet".into());
    }
    let reads = fleet.iter().map(|(_, url)| get_json(&shared.client, format!("{url}/")));
    let out: Vec<Value> = fleet
        .iter()
        .zip(futures_util::future::join_all(reads).await)
        .map(|((name, url), config)| match config {
            Ok(config) => json!({ "name": name, "url": url, "config": config }),
            Err(e) => json!({ "name": name, "url": url, "config": null, "error": e }),
        })
        .collect();
    Json(json!({ "downstreams": out })).into_response()
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

    /// Every module of the page is served with a JavaScript type (browsers refuse modules served
    /// otherwise), and every relative import of one names a file that is served too.
    #[tokio::test]
    async fn every_page_module_and_its_imports_are_served_as_javascript() {
        let dir = crate::stack::repo_root().join("test-bed");
        let config = ServeConfig {
            dir: dir.clone(),
            chart_js: dir.join("index.html"),
            router: "http://127.0.0.1:9".into(),
            learner: "http://127.0.0.1:9".into(),
            admin_token: None,
            learner_token: None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, config, async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let mut modules: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.ends_with(".js"))
            .collect();
        modules.sort();
        assert!(modules.len() >= 5, "the page is split into modules: {modules:?}");
        let html = client.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
        assert!(html.contains(r#"<script type="module" src="app.js">"#));
        for module in &modules {
            let response = client.get(format!("{base}/{module}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{module}");
            let kind = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
            assert!(kind.starts_with("text/javascript"), "{module}: {kind}");
            let text = response.text().await.unwrap();
            for import in text.lines().filter_map(|l| l.split(r#"from "./"#).nth(1)) {
                let target = import.split('"').next().unwrap();
                assert!(modules.iter().any(|m| m == target), "{module} imports {target}");
            }
        }
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
