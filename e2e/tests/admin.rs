//! The learner's admin API (`/v1`) as a client sees it: the learner binary on loopback with its
//! admin store in SQLite (the default, a file beside the state file) and in a real PostgreSQL
//! server (Debian's, started here with initdb), the same suite on both: credentials (401 for
//! missing, unknown and revoked keys, 403 for a read key on a write and for keys on key
//! management), validation (4xx naming the field), the routers' snapshot and its version, the
//! audit log, an experiment report from posted telemetry, and a restart that keeps pools,
//! experiments, gates and keys. A last test runs two learners on one PostgreSQL database.

use std::path::PathBuf;

use magnetar_core::Outcome;
use magnetar_core::telemetry::{AttemptTelemetry, TELEMETRY_SCHEMA, TelemetryRecord};
use magnetar_e2e::postgres::Postgres;
use magnetar_e2e::{Learner, free_port, learner_token};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Which database the learner under test keeps its admin store in.
#[derive(Clone, Copy, Debug)]
enum Db {
    Sqlite,
    Postgres,
}

/// A learner whose admin store outlives it (to restart it on the same port and database).
struct Fixture {
    learner: Option<Learner>,
    port: u16,
    args: Vec<String>,
    label: String,
    _postgres: Option<Postgres>,
    _dir: PathBuf,
}

impl Fixture {
    fn start(label: &str, db: Db) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("magnetar-admin-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let mut args: Vec<String> = vec!["--mode".into(), "embedded".into()];
        args.extend(["--state-file".into(), dir.join("state.json").display().to_string()]);
        let postgres = match db {
            Db::Sqlite => None,
            Db::Postgres => {
                let pg = Postgres::start(label);
                args.extend(["--database-url".into(), pg.database("magnetar")]);
                Some(pg)
            }
        };
        let port = free_port();
        let mut fixture = Fixture {
            learner: None,
            port,
            args,
            label: label.to_owned(),
            _postgres: postgres,
            _dir: dir,
        };
        fixture.restart();
        fixture
    }

    /// Stops the learner (if running) and starts it again on the same port and database.
    fn restart(&mut self) {
        if let Some(mut old) = self.learner.take() {
            old.service.stop();
        }
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.learner = Some(Learner::start_on(&self.label, self.port, &args));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut learner) = self.learner.take() {
            learner.service.stop();
        }
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// `(status, JSON body or Null)` of `method path` with `bearer` (none when `None`).
async fn call(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, format!("{base}{path}"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn pool() -> Value {
    json!({"name": "api", "routes": ["/api/*", "/users/:id"], "downstreams": ["downstream-1", "downstream-2"],
           "algo": "thompson", "max_attempts": 2})
}

fn experiment(id: &str) -> Value {
    json!({"id": id, "pool": "api", "state": "running", "sticky": true, "variants": [
        {"name": "control", "algo": "round_robin", "percent": 50},
        {"name": "treatment", "algo": "thompson", "percent": 50}]})
}

fn gate() -> Value {
    json!({"id": "contextual-eu", "feature": "contextual", "percent": 10, "rules": [
        {"caller": "client-a"}, {"header": "x-beta", "equals": "1"}, {"colo": "AMS"}]})
}

/// `n` records of `variant` of experiment `id`, the first `successes` of them successful.
fn tagged(id: &str, variant: &str, n: usize, successes: usize) -> Vec<TelemetryRecord> {
    (0..n)
        .map(|i| {
            let outcome = if i < successes { Outcome::Success } else { Outcome::ServerError };
            TelemetryRecord {
                schema: TELEMETRY_SCHEMA,
                request_id: format!("{id}-{variant}-{i}"),
                caller_id: None,
                route: "/api/x".into(),
                strategy: "thompson".into(),
                router_instance: "e2e".into(),
                started_ms: 1_000,
                finished_ms: 1_000 + 10 + (i % 20) as u64,
                attempts: vec![AttemptTelemetry {
                    downstream: "downstream-1".into(),
                    status: Some(if outcome.is_success() { 200 } else { 500 }),
                    outcome,
                    latency_ms: 5.0,
                    hedged: false,
                }],
                final_outcome: outcome,
                final_status: if outcome.is_success() { 200 } else { 500 },
                pool: Some("api".into()),
                experiment: Some(id.into()),
                variant: Some(variant.into()),
            }
        })
        .collect()
}

async fn post_telemetry(client: &reqwest::Client, base: &str, records: &[TelemetryRecord]) {
    let batch = json!({"records": records.iter().map(|r| json!({"key": r.route, "value": r})).collect::<Vec<_>>()});
    let response = client
        .post(format!("{base}/topics/magnetar-telemetry"))
        .bearer_auth(learner_token())
        .header("content-type", "application/vnd.kafka.json.v2+json")
        .body(batch.to_string())
        .send()
        .await
        .expect("post telemetry");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
}

async fn suite(db: Db) {
    let label = format!("admin-{db:?}").to_lowercase();
    let mut fx = Fixture::start(&label, db);
    let client = reqwest::Client::new();
    let base = fx.url();
    let token = learner_token();

    // Credentials: missing, unknown, not a key.
    let (status, body) = call(&client, &base, Method::GET, "/v1/pools", None, None).await;
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(40110)),
        "{body}"
    );
    let fake = format!("mgk_{}", "0".repeat(64));
    let (status, body) = call(&client, &base, Method::GET, "/v1/pools", Some(&fake), None).await;
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(40111)),
        "{body}"
    );
    let (status, _) =
        call(&client, &base, Method::GET, "/v1/config", Some("not-the-token-at-all"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) =
        call(&client, &base, Method::POST, "/v1/keys", None, Some(json!({"scope": "write"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Keys from the learner token; the secret is shown once and never listed.
    let (status, write) = call(
        &client,
        &base,
        Method::POST,
        "/v1/keys",
        Some(token),
        Some(json!({"scope": "write", "label": "ops"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{write}");
    let write_secret = write["secret"].as_str().expect("secret").to_owned();
    assert!(write_secret.starts_with("mgk_") && write_secret.len() == 68, "{write}");
    let (_, read) =
        call(&client, &base, Method::POST, "/v1/keys", Some(token), Some(json!({"scope": "read"})))
            .await;
    let read_secret = read["secret"].as_str().expect("secret").to_owned();
    let (status, body) = call(
        &client,
        &base,
        Method::POST,
        "/v1/keys",
        Some(token),
        Some(json!({"scope": "admin"})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("scope")),
        "{body}"
    );
    let (_, listed) = call(&client, &base, Method::GET, "/v1/keys", Some(token), None).await;
    assert_eq!(listed["keys"].as_array().map(Vec::len), Some(2), "{listed}");
    assert!(!listed.to_string().contains(&write_secret[4..]), "a listing shows no secret");

    // Scopes: a read key cannot write; keys cannot manage keys.
    let (status, body) =
        call(&client, &base, Method::POST, "/v1/pools", Some(&read_secret), Some(pool())).await;
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (StatusCode::FORBIDDEN, Some(40310)),
        "{body}"
    );
    let (status, _) = call(
        &client,
        &base,
        Method::POST,
        "/v1/keys",
        Some(&write_secret),
        Some(json!({"scope": "read"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) =
        call(&client, &base, Method::GET, "/v1/audit", Some(&read_secret), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Create, with validation naming the field.
    let (status, created) =
        call(&client, &base, Method::POST, "/v1/pools", Some(&write_secret), Some(pool())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) =
        call(&client, &base, Method::POST, "/v1/pools", Some(&write_secret), Some(pool())).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::CONFLICT, Some("name")), "{body}");
    let refusals: Vec<(&str, Value, StatusCode, &str)> = vec![
        (
            "/v1/pools",
            json!({"name": "p2", "routes": ["/p2"], "downstreams": ["d"], "algo": "thompson", "max_attempts": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_attempts",
        ),
        (
            "/v1/pools",
            json!({"name": "p2", "routes": ["p2"], "downstreams": ["d"], "algo": "thompson", "max_attempts": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "routes[0]",
        ),
        (
            "/v1/pools",
            json!({"name": "p2", "routes": ["/p2"], "downstreams": ["d"], "algo": "thompsn", "max_attempts": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "algo",
        ),
        (
            "/v1/experiments",
            json!({"id": "e", "pool": "api", "variants": [
            {"name": "a", "algo": "thompson", "percent": 60}, {"name": "b", "algo": "thompson", "percent": 50}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "variants",
        ),
        (
            "/v1/experiments",
            json!({"id": "e", "pool": "nope", "variants": [
            {"name": "a", "algo": "thompson", "percent": 50}, {"name": "b", "algo": "thompson", "percent": 50}]}),
            StatusCode::CONFLICT,
            "pool",
        ),
        (
            "/v1/gates",
            json!({"id": "g", "feature": "f", "percent": 10, "rules": [{"colo": "ams"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "rules[0].colo",
        ),
        (
            "/v1/gates",
            json!({"id": "g", "feature": "f", "percent": 101}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "percent",
        ),
    ];
    for (path, body, want, field) in refusals {
        let (status, answer) =
            call(&client, &base, Method::POST, path, Some(&write_secret), Some(body)).await;
        assert_eq!((status, answer["field"].as_str()), (want, Some(field)), "{path}: {answer}");
        assert!(answer["message"].as_str().is_some_and(|m| m.starts_with(field)), "{answer}");
    }
    let not_json = client
        .post(format!("{base}/v1/pools"))
        .bearer_auth(&write_secret)
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    let (status, _) = call(
        &client,
        &base,
        Method::POST,
        "/v1/experiments",
        Some(&write_secret),
        Some(experiment("exp-1")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) =
        call(&client, &base, Method::POST, "/v1/gates", Some(&write_secret), Some(gate())).await;
    assert_eq!(status, StatusCode::CREATED);

    // The routers' snapshot: the learner token or a read key; the version bumps on changes.
    let (status, config) = call(&client, &base, Method::GET, "/v1/config", Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let v1 = config["version"].as_u64().expect("version");
    assert_eq!(config["pools"][0]["name"], "api", "{config}");
    assert_eq!(config["experiments"][0]["variants"][1]["algo"], "thompson", "{config}");
    assert_eq!(config["gates"][0]["rules"][2]["colo"], "AMS", "{config}");
    let (status, by_key) =
        call(&client, &base, Method::GET, "/v1/config", Some(&read_secret), None).await;
    assert_eq!((status, by_key["version"].as_u64()), (StatusCode::OK, Some(v1)));
    let (status, changed) = call(
        &client,
        &base,
        Method::PATCH,
        "/v1/pools/api",
        Some(&write_secret),
        Some(json!({"max_attempts": 3})),
    )
    .await;
    assert_eq!((status, changed["max_attempts"].as_u64()), (StatusCode::OK, Some(3)), "{changed}");
    assert_eq!(changed["routes"], pool()["routes"], "a patch keeps the other fields");
    let (status, body) = call(
        &client,
        &base,
        Method::PATCH,
        "/v1/pools/api",
        Some(&write_secret),
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        "{body}"
    );
    let (status, _) =
        call(&client, &base, Method::PUT, "/v1/gates/nope", Some(&write_secret), Some(gate()))
            .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "the body's id must be the path's");
    let (status, _) =
        call(&client, &base, Method::GET, "/v1/gates/nope", Some(&read_secret), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, config) = call(&client, &base, Method::GET, "/v1/config", Some(token), None).await;
    let v2 = config["version"].as_u64().expect("version");
    assert!(v2 > v1, "version {v1} -> {v2}");
    assert_eq!(config["pools"][0]["max_attempts"], 3);

    // A report from telemetry: control 300/600, treatment 570/600 (95%).
    let mut records = tagged("exp-1", "control", 600, 300);
    records.extend(tagged("exp-1", "treatment", 600, 570));
    for chunk in records.chunks(100) {
        post_telemetry(&client, &base, chunk).await;
    }
    let (status, report) =
        call(&client, &base, Method::GET, "/v1/experiments/exp-1/report", Some(&read_secret), None)
            .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let variants = report["variants"].as_array().expect("variants");
    assert_eq!(
        (variants[0]["requests"].as_u64(), variants[0]["successes"].as_u64()),
        (Some(600), Some(300)),
        "{report}"
    );
    assert_eq!(variants[1]["successes"].as_u64(), Some(570), "{report}");
    assert_eq!(variants[1]["against_control"]["verdict"], "better", "{report}");
    assert!(variants[0]["against_control"].is_null());
    assert!(
        variants[1]["success_interval"]["low"].as_f64()
            > variants[0]["success_interval"]["high"].as_f64()
    );
    let p50 = variants[0]["latency_ms"]["p50"].as_f64().expect("p50");
    assert!((15.0..=25.0).contains(&p50), "p50 {p50}: {report}");
    assert_eq!(variants[1]["mean_attempts"].as_f64(), Some(1.0));

    // Stop: the snapshot carries running experiments only.
    let (status, stopped) =
        call(&client, &base, Method::POST, "/v1/experiments/exp-1/stop", Some(&write_secret), None)
            .await;
    assert_eq!((status, stopped["state"].as_str()), (StatusCode::OK, Some("stopped")), "{stopped}");
    let (_, config) = call(&client, &base, Method::GET, "/v1/config", Some(token), None).await;
    assert_eq!(config["experiments"], json!([]), "{config}");
    let v3 = config["version"].as_u64().expect("version");
    assert!(v3 > v2);
    let (status, body) =
        call(&client, &base, Method::DELETE, "/v1/pools/api", Some(&write_secret), None).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::CONFLICT, Some("name")),
        "a pool with experiments: {body}"
    );

    // Revocation.
    let read_id = read["id"].as_str().expect("id").to_owned();
    let (status, revoked) =
        call(&client, &base, Method::DELETE, &format!("/v1/keys/{read_id}"), Some(token), None)
            .await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_ms"].as_u64().is_some(), "{revoked}");
    let (status, body) =
        call(&client, &base, Method::GET, "/v1/pools", Some(&read_secret), None).await;
    assert_eq!(
        (status, body["error_code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(40112)),
        "{body}"
    );
    let (status, _) =
        call(&client, &base, Method::DELETE, "/v1/keys/key_nope", Some(token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The audit log: who did what, refusals of known callers included.
    let (status, audit) =
        call(&client, &base, Method::GET, "/v1/audit?limit=1000", Some(token), None).await;
    assert_eq!(status, StatusCode::OK);
    let entries = audit["entries"].as_array().expect("entries");
    let write_actor = format!("key:{}", write["id"].as_str().expect("id"));
    let has = |actor: &str, method: &str, path: &str, status: u64| {
        entries.iter().any(|e| {
            e["actor"] == actor
                && e["method"] == method
                && e["path"] == path
                && e["status"] == status
                && e["at_ms"].as_u64().is_some()
        })
    };
    assert!(has(&write_actor, "POST", "/v1/pools", 201), "{audit}");
    assert!(has(&format!("key:{read_id}"), "POST", "/v1/pools", 403), "{audit}");
    assert!(has("learner-token", "DELETE", &format!("/v1/keys/{read_id}"), 200), "{audit}");
    assert!(has(&write_actor, "PATCH", "/v1/pools/api", 200), "{audit}");
    let (status, body) =
        call(&client, &base, Method::GET, "/v1/audit?limit=0", Some(token), None).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("limit")));

    // Restart: everything but the report's counts is still there.
    fx.restart();
    let base = fx.url();
    let (status, pools) =
        call(&client, &base, Method::GET, "/v1/pools", Some(&write_secret), None).await;
    assert_eq!(status, StatusCode::OK, "the write key survives a restart: {pools}");
    assert_eq!(pools["pools"][0]["max_attempts"], 3, "{pools}");
    let (_, e) =
        call(&client, &base, Method::GET, "/v1/experiments/exp-1", Some(&write_secret), None).await;
    assert_eq!(e["state"], "stopped", "{e}");
    let (_, g) =
        call(&client, &base, Method::GET, "/v1/gates/contextual-eu", Some(&write_secret), None)
            .await;
    assert_eq!(g["percent"], 10, "{g}");
    let (status, _) =
        call(&client, &base, Method::GET, "/v1/pools", Some(&read_secret), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked key stays revoked");
    let (_, config) = call(&client, &base, Method::GET, "/v1/config", Some(token), None).await;
    assert_eq!(config["version"].as_u64(), Some(v3), "{config}");

    // Clean up in order: the experiment, then its pool.
    let (status, _) =
        call(&client, &base, Method::DELETE, "/v1/experiments/exp-1", Some(&write_secret), None)
            .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) =
        call(&client, &base, Method::DELETE, "/v1/pools/api", Some(&write_secret), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, pools) =
        call(&client, &base, Method::GET, "/v1/pools", Some(&write_secret), None).await;
    assert_eq!(pools["pools"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_on_sqlite() {
    suite(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_on_postgres() {
    suite(Db::Postgres).await;
}

/// Two learners on one PostgreSQL database: a key made on one works on the other, and a change
/// through one is in the other's snapshot under the same version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_learners_share_one_postgres_database() {
    let pg = Postgres::start("admin-shared");
    let url = pg.database("shared");
    let start =
        |label: &str| Learner::start(label, &["--mode", "embedded", "--database-url", &url]);
    let a = start("admin-shared-a");
    let b = start("admin-shared-b");
    let client = reqwest::Client::new();
    let token = learner_token();
    let (status, key) = call(
        &client,
        &a.url,
        Method::POST,
        "/v1/keys",
        Some(token),
        Some(json!({"scope": "write"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = key["secret"].as_str().expect("secret");
    let (status, _) =
        call(&client, &b.url, Method::POST, "/v1/pools", Some(secret), Some(pool())).await;
    assert_eq!(status, StatusCode::CREATED, "a key made on one learner works on the other");
    let (_, from_a) = call(&client, &a.url, Method::GET, "/v1/config", Some(token), None).await;
    let (_, from_b) = call(&client, &b.url, Method::GET, "/v1/config", Some(token), None).await;
    assert_eq!(from_a, from_b);
    assert_eq!(from_a["pools"][0]["name"], "api", "{from_a}");
}
