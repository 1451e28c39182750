//! Search across failures: a node killed (-9) between committing messages and
//! indexing them, on the embedded index and on OpenSearch; OpenSearch taken
//! away and given back; `weft reindex` rebuilding a wiped index, resumably.
//! In each, every acked message is found afterwards, exactly once.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::process::{serve, weft_command};
use common::proxy::Proxy;
use common::server::{Mode, TestServer, code, cql_nodes, keyspace, opensearch_url, redis_url, with_search};
use common::ws::connect;
use serde_json::{Value, json};

/// A `weft serve` process, killed (-9) when dropped.
struct Node {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Node {
    fn start(env: &[(&str, String)]) -> Node {
        let mut cmd = weft_command();
        cmd.env("WEFT_LOG_FORMAT", "json").env("WEFT_SERVER_LISTEN", "127.0.0.1:0");
        cmd.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let (child, addr) = serve(cmd);
        Node { child, base: format!("http://{addr}"), http: reqwest::Client::new() }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn search_path(token: &str, chat: u64, query: &str) -> String {
    let q = serde_urlencoded::to_string([("query", query), ("per_page", "500")]).unwrap();
    format!("/api/v1/applications/{token}/chats/{chat}/messages/search?{q}")
}

/// The numbers of the hits, once there are `want` of them (or the test fails).
async fn numbers_found(get: impl AsyncFn(&str) -> (u16, Value), path: &str, want: usize) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(path).await;
        if status == 200 {
            let numbers: Vec<u64> =
                body.as_array().unwrap().iter().map(|h| h["number"].as_u64().unwrap()).collect();
            if numbers.len() >= want {
                return numbers;
            }
        }
        assert!(Instant::now() < deadline, "{path}: waited for {want} hits, last answer {status} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Exactly the numbers 1..=n, each once.
fn assert_each_once(mut numbers: Vec<u64>, n: u64) {
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=n).collect::<Vec<_>>(), "every acked message found, none twice");
}

/// The indexer of the first node holds what it is handed for ten minutes,
/// so a kill lands between commit and index.
fn holding_env() -> Vec<(&'static str, String)> {
    vec![("WEFT_SEARCH_BATCH_DELAY_MS", "600000".into()), ("WEFT_SEARCH_BATCH_MAX_DOCS", "100000".into())]
}

/// Posts `n` messages (each acked) with the word `marmalade`; returns the app token and chat.
async fn post_acked(node: &Node, n: u64) -> (String, u64) {
    let (status, app) = node.post("/api/v1/applications", json!({"name":"search recovery"})).await;
    assert_eq!(status, 201, "{app}");
    let token = app["token"].as_str().unwrap().to_owned();
    let (status, chat) = node.post(&format!("/api/v1/applications/{token}/chats"), json!({})).await;
    assert_eq!(status, 201, "{chat}");
    let chat = chat["number"].as_u64().unwrap();
    for i in 1..=n {
        let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
        let (status, body) = node.post(&path, json!({"body": format!("marmalade number {i}")})).await;
        assert_eq!((status, body["number"].as_u64()), (201, Some(i)), "{body}");
    }
    (token, chat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_kill_between_commit_and_index_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = ("WEFT_STORE_DATA_DIR", dir.path().display().to_string());
    let mut env = holding_env();
    env.push(data.clone());
    let node = Node::start(&env);
    let (token, chat) = post_acked(&node, 30).await;
    // Acked and committed, not indexed: the indexer is still gathering.
    let (status, hits) = node.get(&search_path(&token, chat, "marmalade")).await;
    assert_eq!((status, hits), (200, json!([])));
    node.kill_9();

    let node = Node::start(&[data]);
    let found =
        numbers_found(async |p: &str| node.get(p).await, &search_path(&token, chat, "marmalade"), 30).await;
    assert_each_once(found, 30);
}

/// The settings of a CQL node with OpenSearch, sharing `prefix` in Redis.
fn cql_env(prefix: &str) -> Vec<(&'static str, String)> {
    let nodes: Vec<String> = cql_nodes().iter().map(|n| format!("\"{n}\"")).collect();
    vec![
        ("WEFT_STORE_BACKEND", "cql".into()),
        ("WEFT_CQL_NODES", format!("[{}]", nodes.join(","))),
        ("WEFT_CQL_KEYSPACE", keyspace().to_owned()),
        ("WEFT_CQL_REQUEST_TIMEOUT_MS", "10000".into()),
        ("WEFT_REDIS_URL", redis_url()),
        ("WEFT_REDIS_KEY_PREFIX", prefix.to_owned()),
        ("WEFT_SEARCH_BACKEND", "opensearch".into()),
        ("WEFT_SEARCH_URL", opensearch_url()),
        ("WEFT_SEARCH_INDEX_PREFIX", common::server::SEARCH_PREFIX.into()),
        // The scan that finds what a dead node never indexed: every second here.
        ("WEFT_SEARCH_SCAN_INTERVAL_MS", "1000".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_a_kill_between_commit_and_index_loses_nothing() {
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let mut env = cql_env(&prefix);
    env.extend(holding_env());
    let node = Node::start(&env);
    let (token, chat) = post_acked(&node, 30).await;
    let (status, hits) = node.get(&search_path(&token, chat, "marmalade")).await;
    assert_eq!((status, hits), (200, json!([])));
    node.kill_9();

    // Another node of the cluster (the dead one's indexer is gone for good).
    let other = Node::start(&cql_env(&prefix));
    let found =
        numbers_found(async |p: &str| other.get(p).await, &search_path(&token, chat, "marmalade"), 30).await;
    assert_each_once(found, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensearch_away_gives_503_then_everything_sent_meanwhile_is_found_once() {
    let upstream = opensearch_url().trim_start_matches("http://").trim_end_matches('/').to_owned();
    let mut proxy = Proxy::start(&upstream).await;
    let url = format!("http://{}", proxy.addr());
    let s = TestServer::start_with(Mode::Cluster, |c| {
        with_search(c);
        c.search.url = url.clone();
        c.search.timeout_ms = 1_000;
    })
    .await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    common::ws::join(&s, &token, chat, "alice").await;
    let post = async |i: u64| {
        let url = s.url(&format!("/api/v1/applications/{token}/chats/{chat}/messages"));
        let (status, body) = s.send(s.http.post(url).json(&json!({"body": format!("quince jam {i}")}))).await;
        assert_eq!(status, 201, "chat goes on without search: {body}");
        body["number"].as_u64().unwrap()
    };
    for i in 1..=5 {
        post(i).await;
    }
    let get = async |p: &str| s.get(p).await;
    numbers_found(get, &search_path(&token, chat, "quince"), 5).await;

    proxy.down();
    let (status, body) = s.get(&search_path(&token, chat, "quince")).await;
    assert_eq!((status, code(&body)), (503, "search_unavailable"), "{body}");
    let mut alice = connect(&s, &token, "alice").await;
    let answer = alice.request(json!({"type":"search","id":1,"query":"quince"})).await;
    assert_eq!(answer["code"], "search_unavailable", "{answer}");
    for i in 6..=20 {
        post(i).await;
    }

    proxy.up().await;
    let found = numbers_found(get, &search_path(&token, chat, "quince"), 20).await;
    assert_each_once(found, 20);
    s.stop().await;
}

/// `weft reindex` rebuilds a wiped embedded index; a run cut short goes on
/// from its checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_rebuilds_a_wiped_index_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = ("WEFT_STORE_DATA_DIR", dir.path().display().to_string());
    let node = Node::start(std::slice::from_ref(&data));
    let (token, chat) = post_acked(&node, 1_200).await;
    let (_, app) = node.get(&format!("/api/v1/applications/{token}")).await;
    let app_id = app["id"].as_str().unwrap().to_owned();
    numbers_found(async |p: &str| node.get(p).await, &search_path(&token, chat, "marmalade"), 500).await;
    drop(node);
    std::fs::remove_dir_all(dir.path().join("search")).unwrap();

    let checkpoint = dir.path().join("reindex.checkpoint");
    let run = |extra: &[&str]| {
        let mut cmd = weft_command();
        cmd.env(data.0, &data.1).arg("reindex").arg("--checkpoint").arg(&checkpoint).args(extra);
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "weft reindex {extra:?}: {}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let chat_arg = chat.to_string();
    let scope = ["--app", token.as_str(), "--chat", chat_arg.as_str()];
    // What a run cut short after its first window leaves behind.
    let cut_short = json!({"scope":{"app":token,"chat":chat},"app":app_id,"chat":chat,"seq":1000});
    std::fs::write(&checkpoint, cut_short.to_string()).unwrap();
    let resumed = run(&scope);
    assert!(resumed.contains("reindexed 200 messages (1000 done by an earlier run)"), "{resumed}");
    assert!(!checkpoint.exists(), "a finished run removes its checkpoint");
    // The resumed run indexed only the rest (the wiped index had nothing below 1001).
    let node = Node::start(std::slice::from_ref(&data));
    let found =
        numbers_found(async |p: &str| node.get(p).await, &search_path(&token, chat, "marmalade"), 200).await;
    assert_eq!(found.len(), 200);
    assert!(found.iter().all(|n| *n > 1000), "{found:?}");
    drop(node);

    // From scratch, every application: all of it, once.
    let full = run(&[]);
    assert!(full.contains("reindexed 1200 messages (0 done by an earlier run)"), "{full}");
    let node = Node::start(&[data]);
    let found =
        numbers_found(async |p: &str| node.get(p).await, &search_path(&token, chat, "\"number 25\""), 1)
            .await;
    assert_eq!(found, [25]);
    let (_, all) = node.get(&format!("{}&page=3", search_path(&token, chat, "marmalade"))).await;
    assert_eq!(all.as_array().unwrap().len(), 200, "1,200 hits: pages of 500, 500 and 200");
}
