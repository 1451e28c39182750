//! Services going away: Redis losing its data, Redis down, the CQL store paused.
//! The node answers 503 while a service is gone, loses no acknowledged message,
//! never reuses a number, and serves again by itself when the service returns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Mode, TestServer, code, redis_url};
use common::ws::wait_within;
use serde_json::{Value, json};

/// Posts `count` messages from `senders` concurrent tasks; returns number → body of the acked ones.
async fn post_many(
    s: &TestServer,
    path: &str,
    senders: usize,
    count: usize,
    tag: &str,
) -> BTreeMap<u64, String> {
    let per = count / senders;
    let tasks: Vec<_> = (0..senders)
        .map(|i| {
            let (http, url, tag) = (s.http.clone(), s.url(path), tag.to_owned());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for j in 0..per {
                    let body = format!("{tag}-{i}-{j}");
                    let resp = http.post(&url).json(&json!({"body": body})).send().await.unwrap();
                    assert_eq!(resp.status().as_u16(), 201);
                    let n = resp.json::<Value>().await.unwrap()["number"].as_u64().unwrap();
                    acked.push((n, body));
                }
                acked
            })
        })
        .collect();
    let mut out = BTreeMap::new();
    for t in tasks {
        for (n, body) in t.await.unwrap() {
            assert!(out.insert(n, body).is_none(), "number {n} was handed out twice");
        }
    }
    out
}

async fn history(s: &TestServer, path: &str) -> BTreeMap<u64, String> {
    let mut all = BTreeMap::new();
    let mut before: Option<u64> = None;
    loop {
        let page = match before {
            Some(b) => format!("{path}?per_page=500&before={b}"),
            None => format!("{path}?per_page=500"),
        };
        let (status, list) = s.get(&page).await;
        assert_eq!(status, 200, "{list}");
        let list = list.as_array().unwrap();
        if list.is_empty() {
            return all;
        }
        for m in list {
            let n = m["number"].as_u64().unwrap();
            assert!(all.insert(n, m["body"].as_str().unwrap().to_owned()).is_none());
            before = Some(n);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_flush_never_reuses_a_number() {
    // Database 9 belongs to this test alone, so FLUSHDB touches nobody else.
    let url = format!("{}/9", redis_url().trim_end_matches('/'));
    let s = TestServer::start_with(Mode::Cluster, |c| c.redis.url = url.clone()).await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");

    let mut acked = post_many(&s, &path, 8, 80, "before").await;

    // Flush while senders are mid-flight.
    let flusher = {
        let url = url.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let client = redis::Client::open(url.as_str()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let _: () = redis::cmd("FLUSHDB").query_async(&mut conn).await.unwrap();
        })
    };
    let during = post_many(&s, &path, 8, 160, "during").await;
    flusher.await.unwrap();
    let after = post_many(&s, &path, 4, 40, "after").await;
    let max_before = *acked.keys().last().unwrap();
    assert!(after.keys().all(|n| *n > max_before), "numbering went back after the flush");
    for (n, body) in during.into_iter().chain(after) {
        assert!(acked.insert(n, body).is_none(), "number {n} was reused after the Redis flush");
    }
    assert_eq!(acked.len(), 280);

    // Every acknowledged message is in history, with its own body.
    assert_eq!(history(&s, &path).await, acked);

    // Chat numbers resume above the stored ones too.
    let next_chat = s.new_chat(&token).await;
    assert!(next_chat > chat, "chat number {next_chat} reused");
    let (_, view) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}")).await;
    assert!(view["messages_count"].as_u64().unwrap() >= *acked.keys().last().unwrap());
    s.stop().await;
}

/// A redis-server of this test's own, on a port it chose.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        let redis = OwnRedis { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_503_and_the_node_recovers_by_itself() {
    let port = free_port();
    let redis = OwnRedis::start(port);
    let url = redis.url();
    let s = TestServer::start_with(Mode::Cluster, |c| {
        c.redis.url = url.clone();
        c.redis.timeout_ms = 500;
    })
    .await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    let acked = post_many(&s, &path, 2, 10, "up").await;

    redis.kill();
    let (status, body) = s.post(&path, json!({"body": "while down"})).await;
    assert_eq!((status, code(&body)), (503, "redis_unavailable"), "{body}");
    let (status, body) = s.send(s.http.post(s.url(&format!("/api/v1/applications/{token}/chats")))).await;
    assert_eq!((status, code(&body)), (503, "redis_unavailable"), "{body}");
    let (status, ready) = s.get("/readyz").await;
    assert_eq!((status, &ready["checks"]["redis"]), (503, &json!(false)));
    // Reads that need no counter still work.
    assert_eq!(s.get(&format!("{path}/1")).await.0, 200);

    // Redis comes back empty, as after a crash without persistence.
    let _redis = OwnRedis::start(port);
    wait_within(Duration::from_secs(30), "the node to serve again", || async {
        s.post(&path, json!({"body": "probe"})).await.0 == 201
    })
    .await;
    assert_eq!(s.get("/readyz").await.0, 200);
    let after = post_many(&s, &path, 2, 10, "back").await;
    let max_before = *acked.keys().last().unwrap();
    assert!(after.keys().all(|n| *n > max_before), "a number was reused after the outage");
    let stored = history(&s, &path).await;
    for (n, body) in acked.iter().chain(after.iter()) {
        assert_eq!(stored.get(n), Some(body), "acked message {n} is missing from history");
    }
    s.stop().await;
}
