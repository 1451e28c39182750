//! Three `weft` processes on loopback (real Redis, real Cassandra, gossip
//! over UDP, QUIC with mutual TLS): one drains under traffic, another is
//! killed with SIGKILL. Clients reconnect to a survivor and resume with
//! `hello`; every acked message is in history and reached every recipient,
//! in order, without duplicates.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::server::{cql_nodes, redis_url};
use common::ws::{Client, history, send, wait_within};
use serde_json::{Value, json};

/// One node process.
struct Node {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Node {
    async fn get(&self, path: &str) -> Value {
        self.http.get(format!("{}{path}", self.base)).send().await.unwrap().json().await.unwrap()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(status.unwrap().success());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn weft(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WEFT_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info").envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

/// The settings every node shares: store, Redis, certificates, short timings.
fn shared_env(keyspace: &str, prefix: &str, certs: &Path) -> Vec<(String, String)> {
    let nodes: Vec<String> = cql_nodes().iter().map(|n| format!("\"{n}\"")).collect();
    [
        ("WEFT_STORE_BACKEND", "cql".to_owned()),
        ("WEFT_CQL_NODES", format!("[{}]", nodes.join(","))),
        ("WEFT_CQL_KEYSPACE", keyspace.to_owned()),
        ("WEFT_CQL_REQUEST_TIMEOUT_MS", "10000".to_owned()),
        ("WEFT_REDIS_URL", redis_url()),
        ("WEFT_REDIS_KEY_PREFIX", prefix.to_owned()),
        ("WEFT_CLUSTER_ENABLED", "true".to_owned()),
        ("WEFT_GOSSIP_GOSSIP_LISTEN", "127.0.0.1:0".to_owned()),
        ("WEFT_GOSSIP_GOSSIP_INTERVAL_MS", "100".to_owned()),
        ("WEFT_QUIC_LISTEN", "127.0.0.1:0".to_owned()),
        ("WEFT_TLS_CA_CERT", certs.join("ca.pem").display().to_string()),
        ("WEFT_TLS_NODE_CERT", certs.join("node.pem").display().to_string()),
        ("WEFT_TLS_NODE_KEY", certs.join("node.key").display().to_string()),
        ("WEFT_SERVER_LISTEN", "127.0.0.1:0".to_owned()),
        ("WEFT_SERVER_DRAIN_WINDOW_MS", "300".to_owned()),
        ("WEFT_LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Starts a node and waits for its "serving" log line, which names its address.
fn start(env: &[(String, String)], node_id: &str, seeds: &[String]) -> Node {
    let mut env = env.to_vec();
    env.push(("WEFT_CLUSTER_NODE_ID".into(), node_id.into()));
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    env.push(("WEFT_GOSSIP_SEEDS".into(), format!("[{}]", seeds.join(","))));
    // Logs go to stderr; the "serving" line names the address.
    let mut child = weft(&env).arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stdout = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "serving"
            {
                let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the node did not start serving");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Node { child, base: format!("http://{addr}"), http }
}

async fn member_ids(node: &Node) -> Vec<String> {
    let listing = node.get("/api/v1/cluster").await;
    listing["members"].as_array().unwrap().iter().map(|m| m["node_id"].as_str().unwrap().to_owned()).collect()
}

/// A test server handle pointing at a node process, for the shared ws helpers.
fn as_server(node: &Node) -> common::server::TestServer {
    common::server::TestServer::remote(&node.base)
}

/// Reads messages of `chat` until `until` arrived (catch-up pages and live
/// frames alike); returns their numbers in arrival order.
async fn collect(client: &mut Client, chat: u64, until: u64, got: &mut Vec<u64>) {
    while !got.contains(&until) {
        let frame = client.next().await;
        match frame["type"].as_str() {
            Some("message") if frame["chat"] == chat => got.push(frame["seq"].as_u64().unwrap()),
            Some("messages") if frame["chat"] == chat => {
                got.extend(frame["items"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()));
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_drains_and_another_is_killed_and_nothing_acked_is_lost() {
    let certs = tempfile::tempdir().unwrap();
    weft::cluster::tls::generate(certs.path(), &["node"], true).unwrap();
    let keyspace = format!("weft_proc_{:010x}", rand::random::<u64>() >> 24);
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let env = shared_env(&keyspace, &prefix, certs.path());
    let migrated = weft(&env).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    let a = start(&env, "node-a", &[]);
    let seed = a.get("/api/v1/cluster").await["gossip"].as_str().unwrap().to_owned();
    let b = start(&env, "node-b", std::slice::from_ref(&seed));
    let c = start(&env, "node-c", &[seed]);
    for node in [&a, &b, &c] {
        wait_within(Duration::from_secs(30), "three members", || async { member_ids(node).await.len() == 3 })
            .await;
    }

    let (sa, sb, sc) = (as_server(&a), as_server(&b), as_server(&c));
    let token = sa.new_app().await;
    let chat = common::ws::chat_with(&sa, &token, &["alice", "bob", "carol"]).await;
    let mut alice = common::ws::connect(&sa, &token, "alice").await;
    let mut bob = common::ws::connect(&sb, &token, "bob").await;
    let mut carol = common::ws::connect(&sc, &token, "carol").await;
    let (mut bob_got, mut carol_got) = (Vec::new(), Vec::new());
    let mut acked = Vec::new();
    let post = async |alice: &mut Client, n: u64| {
        let ack = alice.request(send(n, chat, &format!("m{n}"), &format!("c{n}"))).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack["seq"].as_u64().unwrap()
    };
    for n in 1..=20 {
        acked.push(post(&mut alice, n).await);
    }
    collect(&mut bob, chat, acked[19], &mut bob_got).await;
    collect(&mut carol, chat, acked[19], &mut carol_got).await;

    // Node B drains: bob is told to reconnect (1012) and resumes on A.
    b.signal("TERM");
    let (code, _) = bob.close_code().await;
    assert_eq!(code, 1012);
    for n in 21..=30 {
        acked.push(post(&mut alice, n).await);
    }
    let mut bob = common::ws::connect(&sa, &token, "bob").await;
    let last = *bob_got.last().unwrap();
    bob.send(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":last}]})).await;
    collect(&mut bob, chat, acked[29], &mut bob_got).await;

    // Node C dies without a word: the others see it gone and purge its routes.
    c.signal("KILL");
    for node in [&a] {
        wait_within(Duration::from_secs(30), "node-c declared dead", || async {
            !member_ids(node).await.contains(&"node-c".to_owned())
        })
        .await;
    }
    let client = redis::Client::open(redis_url()).unwrap();
    let redis = client.get_multiplexed_async_connection().await.unwrap();
    let app_id = sa.get(&format!("/api/v1/applications/{token}")).await.1["id"].as_str().unwrap().to_owned();
    let key = format!("{prefix}:{{{app_id}}}:chat:{chat}:nodes");
    wait_within(Duration::from_secs(10), "node-c purged from the directory", || {
        let (key, mut redis) = (key.clone(), redis.clone());
        async move {
            let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query_async(&mut redis).await.unwrap();
            !nodes.contains(&"node-c".to_owned())
        }
    })
    .await;
    for n in 31..=40 {
        acked.push(post(&mut alice, n).await);
    }
    let mut carol = common::ws::connect(&sa, &token, "carol").await;
    let last = *carol_got.last().unwrap();
    carol.send(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":last}]})).await;
    collect(&mut carol, chat, acked[39], &mut carol_got).await;
    collect(&mut bob, chat, acked[39], &mut bob_got).await;

    // Every acked message is in history; each recipient got each one once, in order.
    let stored: Vec<u64> = history(&sa, &token, chat, 0).await.keys().copied().collect();
    assert_eq!(stored, acked);
    for (who, got) in [("bob", &bob_got), ("carol", &carol_got)] {
        assert_eq!(got, &acked, "{who} received");
        assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), got.len(), "{who} got duplicates");
    }
    drop(sc);
    drop(sb);
}
