//! What operators see: `/metrics` (guarded, and holding every metric the
//! Grafana dashboard queries), `/readyz` waiting for gossip, and logs that
//! never carry a token, a secret or a message body.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::server::{Mode, TestServer, cql_nodes, redis_url};
use common::ws::{Client, chat_with, connect, send, user_token, wait_within};
use serde_json::{Value, json};

/// The metric names the shipped dashboard queries (histogram series mapped to their metric).
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/helm/weft/dashboards/weft.json");
    let text = std::fs::read_to_string(path).unwrap();
    let _: Value = serde_json::from_str(&text).unwrap();
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("weft_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
        names.insert(base.to_owned());
    }
    assert!(names.len() > 10, "the dashboard names only {names:?}");
    names
}

/// The metric families (`# TYPE` lines) of an exposition.
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The value of the series `name{labels}` (exact label text), if present.
fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(s: &TestServer, bearer: Option<&str>) -> (u16, String) {
    let mut req = s.http.get(s.url("/metrics"));
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Three nodes, clients spread over them, some traffic of every kind: the
/// scrape of one node holds every metric the dashboard queries, and counts
/// what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_metric_is_exported_by_a_live_node_behind_its_token() {
    let s = TestServer::start_with(Mode::Spread, |c| {
        c.metrics.token = "metrics-token".into();
        c.gateway.send_rate_per_sec = 1;
        c.gateway.send_burst = 3;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob", "carol"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    let mut carol = connect(&s, &token, "carol").await;
    for n in 1..=3 {
        assert_eq!(alice.request(send(n, chat, "hi", &format!("a{n}"))).await["type"], "ack");
    }
    let limited = alice.request(send(4, chat, "one too many", "a4")).await;
    assert_eq!(limited["code"], "rate_limited", "{limited}");
    bob.until_message(chat, 3).await;
    carol.until_message(chat, 3).await;
    bob.send(json!({"type":"read","chat":chat,"seq":3})).await;
    alice.send(json!({"type":"typing","chat":chat})).await;
    carol.close().await;

    // Guarded: no token 401, a wrong one 403 (the admin key also opens it: see the logs test).
    assert_eq!(scrape(&s, None).await.0, 401);
    assert_eq!(scrape(&s, Some("wrong")).await.0, 403);
    let (status, text) = scrape(&s, Some("metrics-token")).await;
    assert_eq!(status, 200);

    let exported = families(&text);
    let missing: Vec<_> = dashboard_metrics().into_iter().filter(|m| !exported.contains(m)).collect();
    assert!(missing.is_empty(), "the dashboard queries metrics no node exports: {missing:?}");
    // And they count what happened (one process holds all three nodes' series).
    let at_least = |series: &str, min: f64| {
        let v = value(&text, series).unwrap_or_else(|| panic!("no series {series}"));
        assert!(v >= min, "{series} = {v}, expected at least {min}");
    };
    at_least("weft_messages_persisted_total", 3.0);
    at_least("weft_frames_in_total{type=\"send\"}", 4.0);
    at_least("weft_frames_out_total{type=\"ack\"}", 3.0);
    at_least("weft_rate_limited_total{kind=\"send\"}", 1.0);
    at_least("weft_sessions_opened_total", 3.0);
    at_least("weft_sessions_closed_total{reason=\"normal\"}", 1.0);
    at_least("weft_delivery_seconds_count", 6.0);
    // (weft_cluster_members is one gauge per process, shared by the in-process
    // nodes of every test here: tests/cluster_processes.rs reads it per node.)
    assert!(text.contains("weft_quic_frames_sent_total{peer=\"node-"), "no per-peer QUIC series");
    assert!(
        text.contains(
            "weft_http_requests_total{route=\"/api/v1/applications/{token}/chats\",status=\"201\"}"
        ),
        "requests are counted by route template"
    );
    assert!(!text.contains(&token), "an application token in a metric label");
    s.stop().await;
}

/// A clustered node whose seeds answer nobody is not ready until it has
/// waited a failure-detection bound, then serves alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_gossip_to_join() {
    let certs = tempfile::tempdir().unwrap();
    let tls = weft::cluster::tls::generate(certs.path(), &["node"], true).unwrap().nodes[0].1.clone();
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let seed = nobody.local_addr().unwrap().to_string();
    drop(nobody);
    let s = TestServer::start_with(Mode::Cluster, move |c| {
        c.cluster.enabled = true;
        c.gossip.gossip_listen = "127.0.0.1:0".parse().unwrap();
        c.gossip.gossip_interval_ms = 100;
        // (2 x 40 + 2) x 100 ms = 8.2 s alone before it serves without peers.
        c.gossip.phi_threshold = 40.0;
        c.gossip.seeds = vec![seed.clone()];
        c.quic.listen = "127.0.0.1:0".parse().unwrap();
        c.tls = tls.clone();
    })
    .await;
    let (status, body) = s.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"], json!({"store": true, "redis": true, "gossip": false}), "{body}");
    wait_within(Duration::from_secs(30), "the lone node to turn ready", || async {
        s.get("/readyz").await.0 == 200
    })
    .await;
    s.stop().await;
}

/// Runs a whole scenario against a `weft` process logging JSON at trace level
/// for weft (debug for everything else) and looks for every secret in its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_no_token_secret_or_message_body() {
    let keyspace = common::test_keyspace("logs");
    let nodes: Vec<String> = cql_nodes().iter().map(|n| format!("\"{n}\"")).collect();
    let env = [
        ("WEFT_STORE_BACKEND", "cql".to_owned()),
        ("WEFT_CQL_NODES", format!("[{}]", nodes.join(","))),
        ("WEFT_CQL_KEYSPACE", keyspace),
        ("WEFT_REDIS_URL", redis_url()),
        ("WEFT_REDIS_KEY_PREFIX", format!("weft-test-{:016x}", rand::random::<u64>())),
        ("WEFT_SERVER_LISTEN", "127.0.0.1:0".to_owned()),
        ("WEFT_SERVER_ADMIN_KEY", "admin-key-XYZZY-4711".to_owned()),
        ("WEFT_METRICS_TOKEN", "metrics-token-PLUGH-0815".to_owned()),
        ("WEFT_SERVER_DRAIN_WINDOW_MS", "100".to_owned()),
        ("WEFT_LOG_FORMAT", "json".to_owned()),
        ("WEFT_LOG_LEVEL", "weft=trace,debug".to_owned()),
    ];
    let weft = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
        for (key, _) in std::env::vars() {
            if key.starts_with("WEFT_") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    };
    let migrated = weft().arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let mut child = weft().arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        // Read line by line until the address shows, then the rest at the end.
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let mut told = false;
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            if !told && let Some(addr) = serving_addr(&all) {
                let _ = tx.send(addr);
                told = true;
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the node did not start serving");
    let s = TestServer::remote(&format!("http://{addr}"));

    // A full scenario: application, tokens, sockets, messages, receipts, typing,
    // a rotation, forged and expired credentials, a scrape.
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth("admin-key-XYZZY-4711");
    let (status, app) =
        s.send(admin(s.http.post(s.url("/api/v1/applications"))).json(&json!({"name":"l"}))).await;
    assert_eq!(status, 201, "{app}");
    let token = app["token"].as_str().unwrap().to_owned();
    let first_secret = app["secret"].as_str().unwrap().to_owned();
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let alice_jwt = user_token(&s, &token, "alice").await;
    let mut alice = Client::connect(&s, &alice_jwt).await;
    let mut bob = connect(&s, &token, "bob").await;
    let bodies = ["BODY-over-the-socket-Q7", "BODY-over-rest-K9"];
    let ack = alice.request(send(1, chat, bodies[0], "c1")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    bob.until_message(chat, 1).await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    assert_eq!(s.post(&path, json!({"body": bodies[1], "sender": "bob"})).await.0, 201);
    bob.send(json!({"type":"read","chat":chat,"seq":2})).await;
    alice.send(json!({"type":"typing","chat":chat})).await;
    alice.send(json!({"type":"sync","id":"s","chat":chat,"after":0})).await;
    assert_eq!(alice.answer(&json!("s")).await["type"], "messages");
    let bad = s.http.get(s.url("/api/v1/me")).bearer_auth(format!("{alice_jwt}x")).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    assert_eq!(s.get(&format!("/api/v1/applications/{token}x")).await.0, 404);
    let (status, rotated) = s.post(&format!("/api/v1/applications/{token}/secret"), json!({})).await;
    assert_eq!(status, 200);
    let second_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(alice.close_code().await.0, 4001);
    for key in ["metrics-token-PLUGH-0815", "admin-key-XYZZY-4711"] {
        let scrape = s.http.get(s.url("/metrics")).bearer_auth(key).send().await.unwrap();
        assert_eq!(scrape.status().as_u16(), 200);
    }
    drop(bob);

    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let _ = child.wait();
    let logs = reader.join().unwrap();

    // The logs are real: the spans name routes and the application's public id.
    let app_id = app["id"].as_str().unwrap();
    assert!(logs.contains("/api/v1/applications/{token}/chats/{number}/messages"), "no route in the logs");
    assert!(logs.contains(app_id), "the application id is not in any span");
    assert!(logs.contains("\"session\""), "no session span in the logs");
    for secret in [
        token.as_str(),
        first_secret.as_str(),
        second_secret.as_str(),
        alice_jwt.as_str(),
        "admin-key-XYZZY-4711",
        "metrics-token-PLUGH-0815",
        bodies[0],
        bodies[1],
    ] {
        assert!(!logs.contains(secret), "the logs contain {secret}");
    }
    // JWT signatures are what matter most: no part of the user token either.
    for part in alice_jwt.split('.') {
        assert!(!logs.contains(part), "the logs contain a part of a user token");
    }
}

/// The `addr` of the "serving" JSON log line, once it is in `bytes`.
fn serving_addr(bytes: &[u8]) -> Option<String> {
    String::from_utf8_lossy(bytes).lines().find_map(|line| {
        let v: Value = serde_json::from_str(line).ok()?;
        (v["fields"]["message"] == "serving").then(|| v["fields"]["addr"].as_str().map(str::to_owned))?
    })
}
