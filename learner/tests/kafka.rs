//! Router -> REST bridge -> Kafka -> learner, with a real Kafka-protocol broker (tansu, in-memory
//! storage) on loopback, and the built `magnetar-learner` binary as child processes.
//!
//! These tests fail (they do not skip) when tansu is missing: see `common::tansu_bin`.

// Helpers outside #[test] functions unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use magnetar_core::Outcome;
use serde_json::{Value, json};

struct Tansu {
    _process: ChildProcess,
    port: u16,
}

impl Tansu {
    fn start() -> Tansu {
        let bin = tansu_bin();
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let args = [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ];
        let (process, _) = ChildProcess::spawn("tansu", &bin, &args, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen; log:\n{}",
                process.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Tansu { _process: process, port }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let output = Command::new(tansu_bin())
            .args(["topic", "create", name, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .unwrap();
        assert!(output.status.success(), "tansu topic create: {output:?}");
    }
}

/// Starts the learner binary on 127.0.0.1:0 and returns it with its base URL.
fn start_learner(name: &str, args: &[&str]) -> (ChildProcess, String) {
    let mut all = vec!["--http-addr", "127.0.0.1:0", "--token", TOKEN];
    all.extend_from_slice(args);
    let (process, addr) =
        ChildProcess::spawn(name, &learner_bin(), &all, Some("learner listening"));
    let url = format!("http://{}", addr.unwrap());
    (process, url)
}

/// Posts `count` records (ids `{prefix}-{i}`, spread over four routes) in batches of `per_batch`
/// and checks every offset is a real Kafka (partition, offset), distinct from all seen before.
async fn produce(
    client: &reqwest::Client,
    bridge: &str,
    prefix: &str,
    count: usize,
    per_batch: usize,
    pause: Duration,
    seen: &mut BTreeSet<(i64, i64)>,
) {
    let url = format!("{bridge}/topics/magnetar-telemetry");
    let mut fleet = FlakyFleet::standard(count as u64);
    for start in (0..count).step_by(per_batch) {
        let records: Vec<_> = (start..(start + per_batch).min(count))
            .map(|i| {
                let d = &fleet.names[i % 3].clone();
                let outcome = fleet.attempt(d);
                record(&format!("{prefix}-{i}"), &format!("/route-{}", i % 4), &[(d, outcome)])
            })
            .collect();
        let (status, ct, body) =
            post(client, &url, V2_JSON, serde_json::to_vec(&batch(&records)).unwrap()).await;
        assert_eq!((status, ct.as_str()), (200, "application/vnd.kafka.v2+json"), "{body}");
        let offsets = body["offsets"].as_array().unwrap();
        assert_eq!(offsets.len(), records.len());
        for o in offsets {
            assert_eq!(o["error_code"], Value::Null, "{body}");
            let (p, off) = (o["partition"].as_i64().unwrap(), o["offset"].as_i64().unwrap());
            assert!((0..3).contains(&p) && off >= 0, "{o}");
            assert!(seen.insert((p, off)), "offset {p}/{off} returned twice");
        }
        tokio::time::sleep(pause).await;
    }
}

async fn stats(client: &reqwest::Client, url: &str) -> Value {
    get_json(client, &format!("{url}/stats")).await.1
}

async fn wait_applied(client: &reqwest::Client, url: &str, n: u64, timeout: Duration) -> Value {
    eventually(timeout, &format!("{n} records applied at {url}"), || async {
        let s = stats(client, url).await;
        (s["records_applied"].as_u64() == Some(n)).then_some(s)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_to_kafka_to_learner_resumes_exactly_after_sigkill() {
    let tansu = Tansu::start();
    tansu.create_topic("magnetar-telemetry", 3);
    let brokers = tansu.brokers();
    let client = client();
    let dir = std::env::temp_dir().join(format!("learner-kafka-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state_file = dir.join("state.json");
    let _ = std::fs::remove_file(&state_file);
    let state_arg = state_file.to_str().unwrap().to_owned();

    let (mut bridge, bridge_url) =
        start_learner("bridge", &["--mode", "bridge", "--kafka-brokers", &brokers]);
    let learner_args = [
        "--mode",
        "kafka",
        "--kafka-brokers",
        &brokers,
        "--kafka-group",
        "learner-test",
        "--state-file",
        &state_arg,
        "--commit-interval-ms",
        "300",
    ];
    let (mut learner, learner_url) = start_learner("learner", &learner_args);

    // Phase 1: everything produced arrives.
    let mut seen = BTreeSet::new();
    produce(&client, &bridge_url, "a", 200, 10, Duration::ZERO, &mut seen).await;
    // A record of an unknown schema is refused on its own, and not forwarded.
    let mut future =
        serde_json::to_value(record("future", "/route-0", &[("downstream-3", Outcome::Success)]))
            .unwrap();
    future["schema"] = json!(2);
    let (status, _, body) = post(
        &client,
        &format!("{bridge_url}/topics/magnetar-telemetry"),
        V2_JSON,
        serde_json::to_vec(&json!({"records": [{"value": future}]})).unwrap(),
    )
    .await;
    assert_eq!((status, body["offsets"][0]["error_code"].clone()), (200, json!(42206)), "{body}");
    let s = wait_applied(&client, &learner_url, 200, Duration::from_secs(60)).await;
    assert_eq!(s["kafka"]["consumed"], 200, "{s}");
    let (status, health) = get_json(&client, &format!("{learner_url}/healthz")).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["consumer"]["status"], "ok", "{health}");
    assert!(health["consumer"]["last_message_age_ms"].as_u64().is_some(), "{health}");
    assert_eq!(s["routes"].as_object().unwrap().len(), 4, "{s}");
    let (status, params) = get_json(&client, &format!("{learner_url}/params?route=/route-1")).await;
    assert_eq!(status, 200);
    assert_eq!(params["downstreams"].as_object().unwrap().len(), 3, "{params}");
    let (status, _) =
        get_json(&client, &format!("{learner_url}/recommendation?route=/route-1")).await;
    assert_eq!(status, 200);
    // A kafka-mode learner has no produce API: telemetry goes through the bridge.
    let (status, _, body) =
        post(&client, &format!("{learner_url}/topics/magnetar-telemetry"), V2_JSON, b"{}".to_vec())
            .await;
    assert_eq!(status, 404, "{body}");

    // Phase 2: keep producing, SIGKILL the learner in the middle, restart it.
    let producer = {
        let (client, bridge_url) = (client.clone(), bridge_url.clone());
        let mut seen = seen.clone();
        tokio::spawn(async move {
            produce(&client, &bridge_url, "b", 300, 5, Duration::from_millis(15), &mut seen).await;
        })
    };
    // Kill it right after a commit in the middle of phase 2, with more records still coming.
    let committed_at_kill =
        eventually(Duration::from_secs(60), "a commit in the middle of phase 2", || async {
            let s = stats(&client, &learner_url).await;
            let committed = offsets_sum(&s["kafka"]["committed"]);
            (committed >= 260).then_some(committed)
        })
        .await;
    learner.signal("KILL");
    let status = learner.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "the learner was killed, not stopped: {status}");
    drop(learner);

    let (mut learner, learner_url) = start_learner("learner-2", &learner_args);
    producer.await.unwrap();
    // A router that retried its posts: 20 phase-1 records reach Kafka a second time.
    produce(&client, &bridge_url, "a", 20, 10, Duration::ZERO, &mut seen).await;
    let total = 500;
    wait_applied(&client, &learner_url, total, Duration::from_secs(90)).await;
    // A few commit intervals later it is still exact: nothing was counted twice.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let s2 = stats(&client, &learner_url).await;
    assert_eq!(s2["records_applied"], total, "{s2}");
    let consumed = s2["kafka"]["consumed"].as_u64().unwrap();
    let resumed = offsets_sum(&s2["kafka"]["resumed_from"]);
    // It resumed from the committed offsets, not from the beginning of the topic.
    assert!(consumed < total, "the restarted learner re-read {consumed} records: {s2}");
    assert!(
        resumed >= committed_at_kill,
        "resumed from {resumed} in total, {committed_at_kill} were committed: {s2}"
    );
    // Records read again (re-posted, or applied and checkpointed but not committed before the
    // kill) were recognised by request id.
    let duplicates = s2["duplicates"].as_u64().unwrap();
    assert!(duplicates >= 20, "the re-posted records were not recognised: {s2}");
    eprintln!(
        "restart: killed after committing {committed_at_kill}; consumed {consumed} records, {duplicates} duplicates dropped, resumed from {}",
        s2["kafka"]["resumed_from"]
    );

    // Graceful stop: SIGTERM commits and exits 0.
    learner.signal("TERM");
    assert!(learner.wait_exit(Duration::from_secs(20)).success(), "{}", learner.log_text());
    assert!(learner.log_text().contains("consumer stopped"), "{}", learner.log_text());
    bridge.signal("TERM");
    assert!(bridge.wait_exit(Duration::from_secs(20)).success(), "{}", bridge.log_text());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sum over partitions of a `{"partition": offset}` object.
fn offsets_sum(offsets: &Value) -> i64 {
    offsets.as_object().map_or(0, |o| o.values().filter_map(Value::as_i64).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_mode_runs_rest_to_kafka_to_learner_in_one_process() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let client = client();
    // No topic yet: the learner creates it.
    let (mut learner, url) = start_learner(
        "combined",
        &["--mode", "combined", "--kafka-brokers", &brokers, "--kafka-partitions", "3"],
    );
    let mut seen = BTreeSet::new();
    produce(&client, &url, "c", 60, 20, Duration::ZERO, &mut seen).await;
    let s = wait_applied(&client, &url, 60, Duration::from_secs(60)).await;
    assert_eq!(s["records_forwarded"], 60, "{s}");
    assert_eq!(s["mode"], "combined");
    let (status, rec) = get_json(
        &client,
        &format!("{url}/recommendation?route=/route-0&candidates=downstream-1,downstream-3"),
    )
    .await;
    assert_eq!(status, 200, "{rec}");
    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("magnetar_learner_kafka_consumed_total 60"), "{metrics}");
    learner.signal("TERM");
    assert!(learner.wait_exit(Duration::from_secs(20)).success(), "{}", learner.log_text());
}

/// Per-partition next offsets of the deliveries in v3 results.
fn next_offsets(results: &[Value]) -> BTreeMap<String, i64> {
    let mut next = BTreeMap::new();
    for r in results {
        let (p, o) = (r["partition_id"].as_i64().unwrap(), r["offset"].as_i64().unwrap());
        let slot = next.entry(p.to_string()).or_insert(0);
        *slot = (*slot).max(o + 1);
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_with_basic_auth_through_the_bridge_and_commits_confirmed() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let client = client();
    let (mut learner, url) = start_learner(
        "combined-v3",
        &[
            "--mode",
            "combined",
            "--kafka-brokers",
            &brokers,
            "--cluster-id",
            "lkc-test",
            "--rest-basic-auth",
            "router:pw",
            "--commit-interval-ms",
            "200",
        ],
    );
    let records_url = format!("{url}/v3/clusters/lkc-test/topics/magnetar-telemetry/records");
    let auth = Some(("router", "pw"));
    let body = |ids: std::ops::Range<usize>| -> Vec<u8> {
        ids.flat_map(|i| {
            let r = record(
                &format!("v3-{i}"),
                &format!("/route-{}", i % 4),
                &[("downstream-3", Outcome::Success)],
            );
            serde_json::to_vec(&magnetar_core::telemetry::v3_record(r)).unwrap()
        })
        .collect()
    };
    // Without credentials: refused before anything reaches Kafka.
    let bare = reqwest::Client::new();
    let (status, headers, _) =
        post_raw(&bare, &records_url, "application/json", None, body(0..1)).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Basic realm=\"magnetar\"");

    let mut results = Vec::new();
    // One record at a time, the way the router posts.
    for i in 0..10 {
        let (status, _, text) =
            post_raw(&client, &records_url, "application/json", auth, body(i..i + 1)).await;
        assert_eq!(status, 200, "{text}");
        results.push(serde_json::from_str::<Value>(&text).unwrap());
    }
    // A stream of 30.
    let (status, _, text) =
        post_raw(&client, &records_url, "application/json", auth, body(10..40)).await;
    assert_eq!(status, 200, "{text}");
    results.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()));
    assert_eq!(results.len(), 40);
    let mut seen = BTreeSet::new();
    for r in &results {
        assert_eq!(
            (r["error_code"].clone(), r["cluster_id"].clone()),
            (json!(200), json!("lkc-test")),
            "{r}"
        );
        let (p, o) = (r["partition_id"].as_i64().unwrap(), r["offset"].as_i64().unwrap());
        assert!((0..3).contains(&p) && o >= 0, "{r}");
        assert!(seen.insert((p, o)), "offset {p}/{o} returned twice");
    }
    // A partition that does not exist: Kafka refuses it, and the answer says so as embedded does.
    let mut stray = serde_json::to_value(magnetar_core::telemetry::v3_record(record(
        "stray",
        "/route-0",
        &[("downstream-3", Outcome::Success)],
    )))
    .unwrap();
    stray["partition_id"] = json!(7);
    let (status, _, text) = post_raw(
        &client,
        &records_url,
        "application/json",
        auth,
        serde_json::to_vec(&stray).unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error_code"], 404, "{text}");

    let s = wait_applied(&client, &url, 40, Duration::from_secs(60)).await;
    assert_eq!(s["records_forwarded"], 40, "{s}");
    // The broker confirms the commits of every partition, the quiet ones included.
    let expected = next_offsets(&results);
    let committed = eventually(Duration::from_secs(30), "confirmed commits", || async {
        let s = stats(&client, &url).await;
        let committed: BTreeMap<String, i64> =
            serde_json::from_value(s["kafka"]["committed"].clone()).unwrap_or_default();
        (committed == expected).then_some(s)
    })
    .await;
    assert_eq!(committed["kafka"]["commit_failures"], 0, "{committed}");
    let (status, health) = get_json(&client, &format!("{url}/healthz")).await;
    assert_eq!((status, health["consumer"]["status"].clone()), (200, json!("ok")), "{health}");
    learner.signal("TERM");
    assert!(learner.wait_exit(Duration::from_secs(20)).success(), "{}", learner.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_partitions_are_committed_at_the_rebalance() {
    let tansu = Tansu::start();
    tansu.create_topic("magnetar-telemetry", 3);
    let brokers = tansu.brokers();
    let client = client();
    let (mut bridge, bridge_url) =
        start_learner("bridge-rb", &["--mode", "bridge", "--kafka-brokers", &brokers]);
    // Commit interval of ten minutes: only the revoke callback (or shutdown) commits.
    let args = [
        "--mode",
        "kafka",
        "--kafka-brokers",
        &brokers,
        "--kafka-group",
        "rebalance-test",
        "--commit-interval-ms",
        "600000",
    ];
    let (mut first, first_url) = start_learner("learner-a", &args);
    let mut seen = BTreeSet::new();
    produce(&client, &bridge_url, "rb", 30, 10, Duration::ZERO, &mut seen).await;
    let s = wait_applied(&client, &first_url, 30, Duration::from_secs(60)).await;
    assert_eq!(s["kafka"]["committed"], json!({}), "nothing committed before the rebalance: {s}");
    let mut expected = BTreeMap::new();
    for (p, o) in &seen {
        let slot = expected.entry(p.to_string()).or_insert(0);
        *slot = (*slot).max(o + 1);
    }
    // A second member joins: the group takes the first one's partitions back, which commits.
    let (mut second, _second_url) = start_learner("learner-b", &args);
    let s = eventually(Duration::from_secs(60), "a commit on revoke", || async {
        let s = stats(&client, &first_url).await;
        let committed: BTreeMap<String, i64> =
            serde_json::from_value(s["kafka"]["committed"].clone()).unwrap_or_default();
        (committed == expected).then_some(s)
    })
    .await;
    assert!(first.log_text().contains("partitions revoked"), "{}", first.log_text());
    eprintln!("committed on revoke: {}", s["kafka"]["committed"]);
    for process in [&mut second, &mut first, &mut bridge] {
        process.signal("TERM");
        assert!(process.wait_exit(Duration::from_secs(20)).success(), "{}", process.log_text());
    }
}

/// Commits offset 0 on every partition of `topic` for `group` (no member running): the group's
/// committed offsets then lag behind the state file, as after commits that failed while the
/// checkpoints went on.
fn rewind_group(brokers: &str, group: &str, topic: &str, partitions: i32) {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Offset(0)).unwrap();
    }
    consumer.commit(&list, CommitMode::Sync).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_where_the_state_file_ends_when_commits_lag_behind() {
    let tansu = Tansu::start();
    tansu.create_topic("magnetar-telemetry", 3);
    let brokers = tansu.brokers();
    let client = client();
    let dir = std::env::temp_dir().join(format!("learner-kafka-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state_file = dir.join("state.json");
    let _ = std::fs::remove_file(&state_file);
    let state_arg = state_file.to_str().unwrap().to_owned();
    let (mut bridge, bridge_url) =
        start_learner("bridge-rs", &["--mode", "bridge", "--kafka-brokers", &brokers]);
    // A dedupe window far smaller than the replay a lagging commit would cause.
    let args = [
        "--mode",
        "kafka",
        "--kafka-brokers",
        &brokers,
        "--kafka-group",
        "resume-test",
        "--state-file",
        &state_arg,
        "--commit-interval-ms",
        "300",
        "--dedupe-window",
        "16",
    ];
    let (mut learner, learner_url) = start_learner("learner-rs-1", &args);
    let mut seen = BTreeSet::new();
    produce(&client, &bridge_url, "r", 300, 10, Duration::ZERO, &mut seen).await;
    wait_applied(&client, &learner_url, 300, Duration::from_secs(60)).await;
    learner.signal("TERM");
    assert!(learner.wait_exit(Duration::from_secs(20)).success(), "{}", learner.log_text());
    drop(learner);

    rewind_group(&brokers, "resume-test", "magnetar-telemetry", 3);

    let (mut learner, learner_url) = start_learner("learner-rs-2", &args);
    produce(&client, &bridge_url, "s", 30, 10, Duration::ZERO, &mut seen).await;
    wait_applied(&client, &learner_url, 330, Duration::from_secs(60)).await;
    // Several commit intervals later it is still exact: nothing of the state was read again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let s = stats(&client, &learner_url).await;
    assert_eq!(s["records_applied"], 330, "records counted twice after the restart: {s}");
    assert_eq!(s["kafka"]["consumed"], 30, "the restart re-read what the state holds: {s}");
    assert!(
        learner.log_text().contains("resuming from the state file's offset"),
        "{}",
        learner.log_text()
    );
    eprintln!("resumed from {} with the group rewound to 0", s["kafka"]["resumed_from"]);
    for process in [&mut learner, &mut bridge] {
        process.signal("TERM");
        assert!(process.wait_exit(Duration::from_secs(20)).success(), "{}", process.log_text());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
