//! A send answered `unavailable` is logged at warn with its cause: a `weft`
//! process logging JSON, its Redis and then its store taken away through a
//! TCP proxy, sends over REST and WebSocket; the warn line names the code and
//! the driver's cause, and never the message body or a token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::{LogLines, serve_logged, weft_command};
use common::proxy::Proxy;
use common::server::{TestServer, cql_nodes, redis_url};
use common::ws::{Client, chat_with, send, user_token, wait_within};
use serde_json::{Value, json};

const BODY: &str = "BODY-while-down-Z3";

/// The warn lines "request failed" with `code`, so far.
fn warnings(logs: &LogLines, code: &str) -> Vec<Value> {
    let lines = logs.lock().unwrap();
    lines
        .iter()
        .filter(|v| {
            v["level"] == "WARN" && v["fields"]["message"] == "request failed" && v["fields"]["code"] == code
        })
        .cloned()
        .collect()
}

/// Waits for `count` warn lines with `code` and a non-empty cause; returns them.
async fn warned(logs: &LogLines, code: &str, count: usize) -> Vec<Value> {
    wait_within(Duration::from_secs(10), &format!("{count} warn lines with code {code}"), || async {
        warnings(logs, code).len() >= count
    })
    .await;
    let lines = warnings(logs, code);
    for line in &lines {
        let cause = line["fields"]["cause"].as_str().unwrap_or_default();
        assert!(!cause.is_empty(), "a warn line without its cause: {line}");
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_sends_are_logged_at_warn_with_their_cause() {
    let redis_upstream = redis_url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let mut redis = Proxy::start(&redis_upstream).await;
    let mut cql = Proxy::start(&cql_nodes()[0]).await;
    let keyspace = common::test_keyspace("unav");
    let env = [
        ("WEFT_STORE_BACKEND", "cql".to_owned()),
        ("WEFT_CQL_NODES", format!("[\"{}\"]", cql.addr())),
        ("WEFT_CQL_KEYSPACE", keyspace),
        ("WEFT_CQL_REQUEST_TIMEOUT_MS", "2000".to_owned()),
        ("WEFT_REDIS_URL", format!("redis://{}", redis.addr())),
        ("WEFT_REDIS_TIMEOUT_MS", "1000".to_owned()),
        ("WEFT_REDIS_KEY_PREFIX", format!("weft-test-{:016x}", rand::random::<u64>())),
        ("WEFT_SERVER_LISTEN", "127.0.0.1:0".to_owned()),
        ("WEFT_SERVER_DRAIN_WINDOW_MS", "100".to_owned()),
        ("WEFT_LOG_FORMAT", "json".to_owned()),
        ("WEFT_LOG_LEVEL", "info".to_owned()),
    ];
    let weft = || {
        let mut cmd = weft_command();
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    };
    // The proxies run on this runtime: waiting on a process blocks a worker,
    // so it is done where the proxies' tasks can move off it.
    let direct = format!("[\"{}\"]", cql_nodes()[0]);
    let migrated = tokio::task::block_in_place(|| {
        weft().env("WEFT_CQL_NODES", &direct).arg("migrate").output().unwrap()
    });
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let (mut child, addr, logs) = tokio::task::block_in_place(|| serve_logged(weft()));
    let s = TestServer::remote(&format!("http://{addr}"));
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let jwt = user_token(&s, &token, "alice").await;
    let mut alice = Client::connect(&s, &jwt).await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    assert_eq!(s.post(&path, json!({"body": "before", "sender": "alice"})).await.0, 201);
    alice.send(send(1, chat, "before too", "c1")).await;
    assert_eq!(alice.answer(&json!(1)).await["type"], "ack");

    // Redis gone: sends over both edges answer redis_unavailable, each logged with its cause.
    redis.down();
    let (status, body) = s.post(&path, json!({"body": BODY, "sender": "alice"})).await;
    assert_eq!((status, common::server::code(&body)), (503, "redis_unavailable"), "{body}");
    alice.send(send(2, chat, BODY, "c2")).await;
    let answer = alice.answer(&json!(2)).await;
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("redis_unavailable"))
    );
    warned(&logs, "redis_unavailable", 2).await;
    redis.up().await;

    // The store gone (Redis back): store_unavailable, logged with the driver's cause.
    wait_within(Duration::from_secs(20), "redis answering again", || async {
        s.post(&path, json!({"body": "redis back", "sender": "alice"})).await.0 == 201
    })
    .await;
    cql.down();
    let (status, body) = s.post(&path, json!({"body": BODY, "sender": "alice"})).await;
    assert_eq!((status, common::server::code(&body)), (503, "store_unavailable"), "{body}");
    let lines = warned(&logs, "store_unavailable", 1).await;
    let cause = lines[0]["fields"]["cause"].as_str().unwrap();
    assert!(cause.len() > "store unavailable".len(), "the cause stops at the wrapper: {cause}");
    cql.up().await;

    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let _ = tokio::task::block_in_place(|| child.wait());
    let all = serde_json::to_string(&*logs.lock().unwrap()).unwrap();
    for secret in [BODY, token.as_str(), jwt.as_str()] {
        assert!(!all.contains(secret), "the logs carry a body or a token");
    }
}
