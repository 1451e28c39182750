//! Three `weft` processes on loopback sharing a keyspace, a Redis prefix and
//! a cluster CA (real Redis, real Cassandra, gossip over UDP, QUIC with mutual TLS).

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use super::server::{cql_nodes, redis_url};
use super::ws::wait_within;

/// One node process.
pub struct Node {
    child: std::sync::Mutex<Child>,
    /// `http://127.0.0.1:port`.
    pub base: String,
    http: reqwest::Client,
}

impl Node {
    /// GET `path`, as JSON.
    pub async fn get(&self, path: &str) -> Value {
        self.http.get(format!("{}{path}", self.base)).send().await.unwrap().json().await.unwrap()
    }

    /// Sends the process a signal (`TERM`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.lock().unwrap().id();
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
        assert!(status.unwrap().success());
    }

    /// The exit status, once the process has exited.
    pub fn try_wait(&self) -> Option<std::process::ExitStatus> {
        self.child.lock().unwrap().try_wait().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub fn weft(env: &[(String, String)]) -> Command {
    let mut cmd = super::process::weft_command();
    cmd.env("RUST_LOG", "info").envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

/// The settings every node shares: store, Redis, certificates, short timings.
pub fn shared_env(keyspace: &str, prefix: &str, certs: &Path) -> Vec<(String, String)> {
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
        // Long, so that a shutdown that waits for it (instead of ending once
        // its writes are flushed) shows.
        ("WEFT_SERVER_SHUTDOWN_GRACE_MS", "15000".to_owned()),
        // A send claimed by the killed node and never stored is taken over
        // by its retry after this (commits here take milliseconds).
        ("WEFT_SEQUENCE_CLAIM_ABANDON_MS", "5000".to_owned()),
        ("WEFT_LOG_FORMAT", "json".to_owned()),
        ("WEFT_GATEWAY_SEND_RATE_PER_SEC", "1000".to_owned()),
        ("WEFT_GATEWAY_SEND_BURST", "1000".to_owned()),
        ("WEFT_GATEWAY_FRAME_RATE_PER_SEC", "1000".to_owned()),
        ("WEFT_GATEWAY_FRAME_BURST", "1000".to_owned()),
        ("WEFT_GATEWAY_PRESENCE_DEBOUNCE_MS", "300".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Starts a node and waits for its "serving" log line, which names its address.
pub fn start(env: &[(String, String)], node_id: &str, seeds: &[String]) -> Node {
    let mut env = env.to_vec();
    env.push(("WEFT_CLUSTER_NODE_ID".into(), node_id.into()));
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    env.push(("WEFT_GOSSIP_SEEDS".into(), format!("[{}]", seeds.join(","))));
    let (child, addr) = super::process::serve(weft(&env));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Node { child: std::sync::Mutex::new(child), base: format!("http://{addr}"), http }
}

pub async fn member_ids(node: &Node) -> Vec<String> {
    let listing = node.get("/api/v1/cluster").await;
    listing["members"].as_array().unwrap().iter().map(|m| m["node_id"].as_str().unwrap().to_owned()).collect()
}

/// A test server handle pointing at a node process, for the shared ws helpers.
pub fn as_server(node: &Node) -> super::server::TestServer {
    super::server::TestServer::remote(&node.base)
}

/// Three node processes sharing a keyspace, a Redis prefix and a CA.
pub struct Trio {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Their Redis key prefix.
    pub prefix: String,
    /// Their certificates, removed on drop.
    pub _certs: tempfile::TempDir,
}

pub async fn three_nodes() -> Trio {
    three_nodes_with(&[]).await
}

/// Three nodes with `extra` settings on top of the shared ones.
pub async fn three_nodes_with(extra: &[(&str, &str)]) -> Trio {
    let certs = tempfile::tempdir().unwrap();
    weft::cluster::tls::generate(certs.path(), &["node"], true).unwrap();
    let keyspace = super::test_keyspace("proc");
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let mut env = shared_env(&keyspace, &prefix, certs.path());
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
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
    Trio { nodes: vec![a, b, c], prefix, _certs: certs }
}
