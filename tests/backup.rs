//! `GET /api/v1/backup`, `weft backup` and `weft restore`: a backup of the
//! embedded store taken while the node serves traffic is a consistent state
//! (every chat's messages a gap-free prefix, each equal to the live one), and
//! one taken once the traffic stops restores equal to the live store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::server::{Mode, TestServer, config};
use serde_json::{Value, json};
use weft::ids::AppToken;

const KEY: &str = "backup-test-admin-key";

async fn start(data_dir: &Path) -> TestServer {
    let dir = data_dir.to_owned();
    TestServer::start_with(Mode::Embedded, move |c| {
        c.server.admin_key = KEY.to_owned();
        c.store.data_dir = dir.clone();
    })
    .await
}

async fn export(data_dir: &Path, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let config = config(Mode::Embedded, data_dir);
    weft::export(&config, &AppToken::new(token), &mut out).await.unwrap_or_else(|e| panic!("{e:?}"));
    String::from_utf8(out).unwrap().lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// (chat, seq) → message record.
fn messages(records: &[Value]) -> BTreeMap<(u64, u64), Value> {
    records
        .iter()
        .filter(|r| r["type"] == "message")
        .map(|r| ((r["chat"].as_u64().unwrap(), r["seq"].as_u64().unwrap()), r.clone()))
        .collect()
}

fn weft_cli(dir: &Path, config_text: &str, args: &[&str]) -> std::process::Output {
    let file = dir.join(format!("weft-{:08x}.toml", rand::random::<u32>()));
    std::fs::write(&file, config_text).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weft"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WEFT_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--config").arg(&file).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_restores_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let node = start(&live).await;
    let (status, body) = node
        .send(node.http.post(node.url("/api/v1/applications")).bearer_auth(KEY).json(&json!({"name":"kept"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let chats = [node.new_chat(&token).await, node.new_chat(&token).await];

    // One sender per chat, each waiting for its answer: a chat's messages commit in order.
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for chat in chats {
        let (http, url, stop) = (
            node.http.clone(),
            node.url(&format!("/api/v1/applications/{token}/chats/{chat}/messages")),
            Arc::clone(&stop),
        );
        senders.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"body": format!("message {sent}"), "sender": "alice"});
                let response = http.post(&url).json(&body).send().await.unwrap();
                assert_eq!(response.status().as_u16(), 201);
                sent += 1;
            }
            sent
        }));
    }
    let wait_for = |n: u64| {
        let (node, token) = (&node, token.clone());
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let (_, page) =
                    node.get(&format!("/api/v1/applications/{token}/chats/{}/messages", chats[0])).await;
                if page.as_array().and_then(|p| p.first()).and_then(|m| m["number"].as_u64()).unwrap_or(0)
                    >= n
                {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "the senders did not get to {n}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(20).await;

    // Refused without the key or with another.
    let (status, _) = node.send(node.http.get(node.url("/api/v1/backup"))).await;
    assert_eq!(status, 401);
    let (status, _) = node.send(node.http.get(node.url("/api/v1/backup")).bearer_auth("nope")).await;
    assert_eq!(status, 403);

    let response = node.http.get(node.url("/api/v1/backup")).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    let during: PathBuf = dir.path().join("during.redb");
    std::fs::write(&during, response.bytes().await.unwrap()).unwrap();
    wait_for(60).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = 0;
    for sender in senders {
        sent += sender.await.unwrap();
    }
    assert!(sent >= 60);

    // Some changes after the traffic, then a backup through the CLI.
    let first = format!("/api/v1/applications/{token}/chats/{}/messages/1", chats[0]);
    let (status, body) = node.send(node.http.patch(node.url(&first)).json(&json!({"body":"edited"}))).await;
    assert_eq!(status, 200, "{body}");
    let after = dir.path().join("after.redb");
    let cli_config = format!("[server]\nadmin_key = \"{KEY}\"\n");
    let run = weft_cli(
        dir.path(),
        &cli_config,
        &["backup", "--node", &node.base, "--out", after.to_str().unwrap()],
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&after).unwrap().permissions().mode() & 0o077, 0);
    }
    node.stop().await;

    let live_records = export(&live, &token).await;
    let live_messages = messages(&live_records);

    // The backup taken during the traffic: each chat a gap-free prefix of the live chat.
    let restored = dir.path().join("restored-during");
    weft::restore(&config(Mode::Embedded, &restored), &during, false).unwrap();
    let snapshot = messages(&export(&restored, &token).await);
    for chat in chats {
        let seqs: Vec<u64> = snapshot.keys().filter(|(c, _)| *c == chat).map(|(_, s)| *s).collect();
        assert!(!seqs.is_empty(), "chat {chat} is empty in the backup");
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "chat {chat} has a gap");
    }
    for (key, message) in &snapshot {
        let mut live = live_messages[key].clone();
        if *key == (chats[0], 1) {
            // Edited after the backup.
            assert_eq!(message["body"], "message 0");
            live = message.clone();
        }
        assert_eq!(message, &live, "{key:?}");
    }
    assert!(snapshot.len() < live_messages.len(), "the traffic went on after the backup");

    // The backup taken after it, restored through the CLI: equal to the live store.
    let back = dir.path().join("restored-after");
    let restore_config = format!("[store]\ndata_dir = \"{}\"\n", back.display());
    let run = weft_cli(dir.path(), &restore_config, &["restore", "--in", after.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(export(&back, &token).await, live_records);
    let run = weft_cli(dir.path(), &restore_config, &["restore", "--in", after.to_str().unwrap()]);
    assert!(!run.status.success(), "a second restore over the store needs --force");

    // A node on the restored store numbers on.
    let node = start(&back).await;
    let url = node.url(&format!("/api/v1/applications/{token}/chats/{}/messages", chats[1]));
    let (status, body) =
        node.send(node.http.post(url).json(&json!({"body":"after restore","sender":"bob"}))).await;
    assert_eq!(status, 201, "{body}");
    let last = live_messages.keys().filter(|(c, _)| *c == chats[1]).map(|(_, s)| *s).max().unwrap();
    assert_eq!(body["number"].as_u64(), Some(last + 1));
    node.stop().await;
}
