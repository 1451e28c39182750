//! The CQL store pausing: 503 while it does not answer, service again after.
//!
//! Pauses the test Cassandra with SIGSTOP, so it lives in its own test binary
//! (cargo runs binaries one after another) and holds a single test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{Mode, TestServer, code};
use serde_json::json;

fn cassandra_pid() -> String {
    let out =
        Command::new("pgrep").args(["-f", "org.apache.cassandra.service.CassandraDaemon"]).output().unwrap();
    let pids = String::from_utf8(out.stdout).unwrap();
    let pid = pids.lines().next().map(str::to_owned);
    pid.expect("no CassandraDaemon process found: start it with scripts/services.sh up")
}

fn signal(pid: &str, sig: &str) {
    let ok = Command::new("kill").args([sig, pid]).status().unwrap().success();
    assert!(ok, "kill {sig} {pid} failed");
}

/// Resumes Cassandra even if the test fails half-way.
struct Resume(String);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(&self.0, "-CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_store_gives_503_and_the_node_recovers_by_itself() {
    let s = TestServer::start_with(Mode::Cluster, |c| c.cql.request_timeout_ms = 1_500).await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    assert_eq!(s.post(&path, json!({"body": "before"})).await.0, 201);

    let pid = cassandra_pid();
    signal(&pid, "-STOP");
    let resume = Resume(pid);
    let (status, body) = s.post(&path, json!({"body": "while paused"})).await;
    assert_eq!((status, code(&body)), (503, "store_unavailable"), "{body}");
    let (status, body) = s.get(&format!("{path}/1")).await;
    assert_eq!((status, code(&body)), (503, "store_unavailable"), "{body}");
    assert_eq!(s.get("/readyz").await.0, 503);
    assert_eq!(s.get("/healthz").await.0, 200, "the process stays alive");
    drop(resume);

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, _) = s.post(&path, json!({"body": "after"})).await;
        if status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "the node did not recover after the store came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(s.get("/readyz").await.0, 200);
    let (status, first) = s.get(&format!("{path}/1")).await;
    assert_eq!((status, first["body"].as_str()), (200, Some("before")));
    s.stop().await;
}
