use super::*;

const GOOD: &str = r#"{
  "router": { "port": 8787, "default_algo": "thompson", "max_attempts": 3 },
  "learner": { "port": 8090, "half_life_ms": 60000 },
  "downstreams": [
    { "name": "downstream-1", "port": 8801, "mode": "All_fail", "percentage_fail": 100 },
    { "name": "downstream-2", "port": 8802, "mode": "percentage_fail", "percentage_fail": 90, "delay_ms": 5 },
    { "name": "origin", "url": "https://origin.example", "weight": 2, "tags": ["eu"] },
    { "name": "bound", "service": "DOWNSTREAM_4" }
  ]
}"#;

fn error_of(text: &str) -> String {
    FleetFile::parse(text).unwrap_err().to_string()
}

/// `GOOD` with `downstreams[1]` replaced.
fn with_second(entry: &str) -> String {
    let mut doc: Value = serde_json::from_str(GOOD).unwrap();
    doc["downstreams"][1] = serde_json::from_str(entry).unwrap();
    doc.to_string()
}

#[test]
fn the_repository_fleet_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(DEFAULT_FILE);
    let file = FleetFile::load(&path).unwrap();
    assert!(file.downstreams.len() >= 3);
    assert!(file.downstreams.iter().all(|d| matches!(d.placement, Placement::Local { .. })));
}

#[test]
fn a_good_file_parses_with_defaults_filled_in() {
    let file = FleetFile::parse(GOOD).unwrap();
    assert_eq!(file.downstreams.len(), 4);
    assert_eq!(file.downstreams[1].effective.percentage_fail, 90.0);
    assert_eq!(file.downstreams[1].effective.delay_ms, 5);
    assert_eq!(file.downstreams[2].placement, Placement::Url("https://origin.example".into()));
    assert_eq!(file.router_vars.get("DEFAULT_ALGO").map(String::as_str), Some("thompson"));
    assert_eq!(file.router_vars.get("MAX_ATTEMPTS").map(String::as_str), Some("3"));
    assert_eq!((file.test_bed_port, file.kafka_port), (DEFAULT_TEST_BED_PORT, DEFAULT_KAFKA_PORT));
}

#[test]
fn errors_name_the_field_in_the_file() {
    let cases = [
        (
            with_second(r#"{"name":"d","port":8802,"percentage_fail":150}"#),
            "downstreams[1].percentage_fail: 150",
        ),
        (with_second(r#"{"name":"d","port":8802,"mode":"sometimes"}"#), "downstreams[1].mode:"),
        (
            with_second(r#"{"name":"d","port":8802,"mdoe":"All_fail"}"#),
            "downstreams[1].mdoe: unknown key",
        ),
        (with_second(r#"{"name":"d","port":8802,"delay_ms":-1}"#), "downstreams[1].delay_ms:"),
        (
            with_second(r#"{"name":"d","port":8802,"fail_status":404}"#),
            "downstreams[1].fail_status:",
        ),
        (with_second(r#"{"name":"d","port":80}"#), "downstreams[1].port: must be a port"),
        (with_second(r#"{"name":"d","port":8801}"#), "downstreams[1].port: port 8801"),
        (with_second(r#"{"name":"d"}"#), "downstreams[1]: give a local port"),
        (
            with_second(r#"{"name":"d","port":8802,"url":"http://x"}"#),
            "downstreams[1]: give only one",
        ),
        (
            with_second(r#"{"name":"d","url":"ftp://x"}"#),
            "downstreams[1].url: must start with http",
        ),
        (with_second(r#"{"name":"downstream-1","port":8805}"#), "downstreams[1].name:"),
        (with_second(r#"{"name":"d","service":"not a binding"}"#), "downstreams[1].service:"),
        (with_second(r#"{"name":"d","port":8802,"weight":0}"#), "downstreams[1].weight:"),
        (
            with_second(r#"{"name":"d","port":8802,"outage_up_secs":0,"outage_down_secs":0}"#),
            "downstreams[1].outage_down_secs:",
        ),
        (
            GOOD.replace(r#""default_algo": "thompson""#, r#""default_algo": "thompsn""#),
            "router.default_algo (DEFAULT_ALGO): ",
        ),
        (
            GOOD.replace(r#""max_attempts": 3"#, r#""max_attempts": 0"#),
            "router.max_attempts (MAX_ATTEMPTS): ",
        ),
        (
            GOOD.replace(r#""max_attempts": 3"#, r#""max_atempts": 3"#),
            "router.max_atempts: unknown key",
        ),
        (GOOD.replace(r#""half_life_ms": 60000"#, r#""half_life_ms": 0"#), "learner.half_life_ms:"),
        (GOOD.replace(r#""port": 8090"#, r#""port": 8787"#), "learner.port: port 8787"),
        ("[]".to_owned(), "(top level): must be an object"),
        (r#"{"downstreams": []}"#.to_owned(), "downstreams: must be a non-empty list"),
        ("{".to_owned(), "not valid JSON"),
    ];
    for (text, expected) in cases {
        let err = error_of(&text);
        assert!(err.starts_with(expected), "expected {expected:?}, got {err:?}");
    }
}

#[test]
fn the_deployed_fleet_needs_urls_or_bindings() {
    let file = FleetFile::parse(GOOD).unwrap();
    let err = file.router_fleet(Reach::Deployed).unwrap_err().to_string();
    assert!(err.starts_with("downstreams[0]: give a url or a service"), "{err}");
    let local: Value =
        serde_json::from_str(&file.router_fleet(Reach::LoopbackUrls).unwrap()).unwrap();
    assert_eq!(local[0]["url"], "http://127.0.0.1:8801");
    assert_eq!(
        local[2],
        json!({"name": "origin", "url": "https://origin.example", "weight": 2.0, "tags": ["eu"]})
    );
    assert_eq!(local[3], json!({"name": "bound", "service": "DOWNSTREAM_4"}));
}

#[test]
fn gen_local_writes_configs_the_workers_read_back() {
    let out = std::env::temp_dir().join(format!("magnetar-fleet-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let file = FleetFile::parse(GOOD).unwrap();
    let options = LocalOptions {
        router_vars: BTreeMap::from([("KAFKA_REST_URL".into(), "http://127.0.0.1:8090".into())]),
        router_secrets: BTreeMap::from([
            ("KAFKA_REST_USERNAME".into(), "magnetar".into()),
            ("KAFKA_REST_PASSWORD".into(), "s3cr\"et".into()),
        ]),
        reach: Reach::LoopbackUrls,
    };
    let manifest = gen_local(&file, Path::new("/repo"), &out, &options).unwrap();
    assert_eq!(manifest.downstreams.len(), 2, "only local downstreams run locally");
    assert_eq!(manifest.downstreams[1].inspector_port, 18802);
    assert_eq!(manifest.router.port, 8787);

    let downstream = fs::read_to_string(&manifest.downstreams[1].config).unwrap();
    assert!(
        downstream.contains(r#"main = "/repo/downstream-worker/build/index.js""#),
        "{downstream}"
    );
    // Read the variables back as the downstream Worker does.
    let vars: BTreeMap<String, String> = downstream
        .lines()
        .skip_while(|l| *l != "[vars]")
        .skip(1)
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_owned(), serde_json::from_str::<String>(v).unwrap()))
        .collect();
    let origin = magnetar_flaky::OriginConfig::from_lookup(|n| vars.get(n).cloned()).unwrap();
    assert_eq!(origin.worker, "downstream-2");
    assert!(origin.allow_overrides, "the local test fleet takes the test-bed's overrides");
    assert_eq!(origin.flaky, file.downstreams[1].effective);

    let router = fs::read_to_string(&manifest.router.config).unwrap();
    assert!(router.contains(r#"KAFKA_REST_URL = "http://127.0.0.1:8090""#), "{router}");
    assert!(router.contains(r#"CORS_ALLOW_ORIGIN = "*""#), "{router}");
    assert!(!router.contains("s3cr"), "secrets stay out of the config: {router}");
    let dev_vars = fs::read_to_string(out.join("router/.dev.vars")).unwrap();
    assert!(dev_vars.contains(r#"KAFKA_REST_PASSWORD="s3cr\"et""#), "{dev_vars}");
    let _ = fs::remove_dir_all(&out);
}

#[test]
fn gen_local_checks_the_router_variables_it_is_given() {
    let file = FleetFile::parse(GOOD).unwrap();
    let options = LocalOptions {
        router_vars: BTreeMap::from([
            ("KAFKA_REST_URL".into(), "http://127.0.0.1:1".into()),
            ("KAFKA_REST_API".into(), "v4".into()),
        ]),
        ..LocalOptions::default()
    };
    let out = std::env::temp_dir().join(format!("magnetar-fleet-bad-{}", std::process::id()));
    let err = gen_local(&file, Path::new("/repo"), &out, &options).unwrap_err().to_string();
    assert!(err.starts_with("KAFKA_REST_API: v2 or v3"), "{err}");
    let _ = fs::remove_dir_all(&out);
}

#[test]
fn pairs_need_an_equals_sign() {
    let ok = parse_pairs(&["A=1".into(), "B=x=y".into()], "--var").unwrap();
    assert_eq!(ok.get("B").map(String::as_str), Some("x=y"));
    let err = parse_pairs(&["A".into()], "--var").unwrap_err().to_string();
    assert!(err.starts_with("--var: expected KEY=VALUE"), "{err}");
}

#[test]
fn service_bindings_put_the_downstreams_beside_the_router() {
    let out = std::env::temp_dir().join(format!("magnetar-fleet-bound-{}", std::process::id()));
    let _ = fs::remove_dir_all(&out);
    let file = FleetFile::parse(GOOD).unwrap();
    let options = LocalOptions { reach: Reach::ServiceBindings, ..LocalOptions::default() };
    let manifest = gen_local(&file, Path::new("/repo"), &out, &options).unwrap();
    let hosted: Vec<_> = ["downstream-1", "downstream-2"]
        .iter()
        .map(|name| out.join(name).join("wrangler.toml"))
        .collect();
    assert_eq!(manifest.router.also_hosts, hosted);
    assert!(manifest.downstreams.is_empty(), "the router hosts them: no process of their own");
    let router = fs::read_to_string(&manifest.router.config).unwrap();
    assert!(
        router.contains(r#"{\"name\":\"downstream-1\",\"service\":\"DOWNSTREAM_1\"}"#),
        "{router}"
    );
    assert!(
        router.contains("[[services]]\nbinding = \"DOWNSTREAM_2\"\nservice = \"downstream-2\""),
        "{router}"
    );
    assert!(
        router.contains(r#"\"service\":\"DOWNSTREAM_4\""#),
        "a deployed binding stays: {router}"
    );
    assert_eq!(binding_name("edge.origin-1"), "EDGE_ORIGIN_1");
    let _ = fs::remove_dir_all(&out);
}
