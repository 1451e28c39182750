//! Three `weft` processes, each in its own network namespace on a fault
//! network ([`super::netns`]), reaching Redis and Cassandra through relays in
//! two more namespaces ([`super::relay`]): every link between them can be cut,
//! one way or both, and every service slowed or taken away.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::netns::{Host, Net};
use super::relay::Relay;
use super::server::{cql_nodes, redis_url};
use super::ws::wait_within;

/// One node process inside a namespace.
pub struct NsNode {
    child: Mutex<Child>,
    /// Its node id.
    pub id: String,
    /// `http://<its address>:<port>`.
    pub base: String,
    http: reqwest::Client,
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Log lines of a node kept for a failure's report.
const LOG_TAIL: usize = 400;

impl NsNode {
    /// The last lines of its log that match `filter`.
    pub fn log_lines(&self, filter: &str) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|l| l.contains(filter)).cloned().collect()
    }

    /// GET `path`: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `/readyz`: whether it says ready, and its checks.
    pub async fn ready(&self) -> (bool, Value) {
        let (status, body) = self.get("/readyz").await;
        (status == 200, body)
    }

    /// The live member ids this node sees.
    pub async fn members(&self) -> Vec<String> {
        let (_, listing) = self.get("/api/v1/cluster").await;
        listing["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["node_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The sum of every sample of metric `name` whose line starts with
    /// `name` followed by `labels` (e.g. `{peer="node-b"}`, or empty).
    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        let text =
            self.http.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        let start = format!("{name}{labels}");
        text.lines()
            .filter(|l| l.starts_with(&start) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum()
    }

    /// A handle for the shared REST/WebSocket helpers.
    pub fn server(&self) -> super::server::TestServer {
        super::server::TestServer::remote(&self.base)
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The cluster, its services' relays and the network; torn down in that order.
pub struct FaultCluster {
    /// node-a, node-b, node-c.
    pub nodes: Vec<NsNode>,
    /// Their hosts, in the same order.
    pub hosts: Vec<Host>,
    /// The relay to Redis, and its host.
    pub redis: Relay,
    pub redis_host: Host,
    /// The relay to Cassandra, and its host.
    pub cql: Relay,
    pub cql_host: Host,
    _cql_hops: Vec<Relay>,
    /// The nodes' Redis key prefix.
    pub prefix: String,
    _certs: tempfile::TempDir,
    /// The network (dropped last).
    pub net: Net,
}

impl FaultCluster {
    /// Every node's base URL, starting from node `first`.
    pub fn bases_from(&self, first: usize) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.nodes[(first + i) % self.nodes.len()].base.clone()).collect()
    }

    /// Cuts node `i` from every other node, both ways (its services and clients stay).
    pub fn isolate(&self, i: usize) {
        for (j, other) in self.hosts.iter().enumerate() {
            if j != i {
                self.net.partition(&self.hosts[i], other);
            }
        }
    }

    /// Undoes [`FaultCluster::isolate`].
    pub fn reconnect(&self, i: usize) {
        for (j, other) in self.hosts.iter().enumerate() {
            if j != i {
                self.net.rejoin(&self.hosts[i], other);
            }
        }
    }

    /// Waits until every node sees `n` members.
    pub async fn wait_members(&self, n: usize, limit: Duration) {
        for node in &self.nodes {
            wait_within(limit, &format!("{} sees {n} members", node.id), || async {
                node.members().await.len() == n
            })
            .await;
        }
    }
}

/// Starts three nodes in namespaces with `extra` settings on top of the
/// loopback trio's ([`super::trio::shared_env`]), and waits until each sees all three.
pub async fn start(extra: &[(&str, &str)]) -> FaultCluster {
    start_with(extra, Default::default()).await
}

/// [`start`], with `per_node[i]` added to node i's environment only.
pub async fn start_with(extra: &[(&str, &str)], per_node: [Vec<(String, String)>; 3]) -> FaultCluster {
    let net = Net::new();
    let redis_host = net.host("redis");
    let cql_host = net.host("cql");
    let redis_upstream = redis_url();
    let (redis_hostport, redis_path) = split_redis_url(&redis_upstream);
    let redis = Relay::start(&redis_host, 6379, redis_hostport);
    let cql = Relay::start(&cql_host, 9042, &cql_nodes()[0]);
    let hosts: Vec<Host> = ["a", "b", "c"].iter().map(|n| net.host(n)).collect();

    let certs = tempfile::tempdir().unwrap();
    weft::cluster::tls::generate(certs.path(), &["node"], true).unwrap();
    let keyspace = super::test_keyspace("fault");
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let mut env = super::trio::shared_env(&keyspace, &prefix, certs.path());
    let migrated = super::trio::weft(&env).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    env.push(("WEFT_REDIS_URL".into(), format!("redis://{}{redis_path}", redis.addr)));
    env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));

    // Cassandra tells the driver to find it at the address it advertises
    // (127.0.0.1:9042), whatever address the driver was given: inside each
    // node's namespace that address is a relay to the Cassandra host's relay,
    // so CQL traffic crosses the Cassandra host's link.
    let cql_hops: Vec<Relay> = hosts
        .iter()
        .map(|h| Relay::start_at(&h.ns, cql_nodes()[0].parse().unwrap(), &cql.addr.to_string()))
        .collect();
    let env_of = |i: usize| -> Vec<(String, String)> { env.iter().chain(&per_node[i]).cloned().collect() };
    let a = start_node(&env_of(0), &hosts[0], "node-a", &[]);
    let seed = a.get("/api/v1/cluster").await.1["gossip"].as_str().unwrap().to_owned();
    let b = start_node(&env_of(1), &hosts[1], "node-b", std::slice::from_ref(&seed));
    let c = start_node(&env_of(2), &hosts[2], "node-c", &[seed]);
    let cluster = FaultCluster {
        nodes: vec![a, b, c],
        hosts,
        redis,
        redis_host,
        cql,
        cql_host,
        _cql_hops: cql_hops,
        prefix,
        _certs: certs,
        net,
    };
    cluster.wait_members(3, Duration::from_secs(30)).await;
    cluster
}

/// `redis://host:port/db` → (`host:port`, `/db`).
fn split_redis_url(url: &str) -> (&str, &str) {
    let rest = url
        .strip_prefix("redis://")
        .unwrap_or_else(|| panic!("the fault tests need a redis:// URL, not {url}"));
    rest.find('/').map_or((rest, ""), |i| rest.split_at(i))
}

/// Starts `weft serve` inside `host`'s namespace, listening on its address.
fn start_node(env: &[(String, String)], host: &Host, id: &str, seeds: &[String]) -> NsNode {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &host.ns, env!("CARGO_BIN_EXE_weft")]);
    for (key, _) in std::env::vars() {
        if key.starts_with("WEFT_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    cmd.env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("WEFT_CLUSTER_NODE_ID", id)
        .env("WEFT_GOSSIP_SEEDS", format!("[{}]", seeds.join(",")))
        .env("WEFT_GOSSIP_GOSSIP_LISTEN", format!("{}:0", host.ip))
        .env("WEFT_QUIC_LISTEN", format!("{}:0", host.ip))
        .env("WEFT_SERVER_LISTEN", format!("{}:0", host.ip));
    let mut child = cmd.arg("serve").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(VecDeque::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let tail = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["fields"]["message"] == "serving"
            {
                let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_owned());
            }
            let mut tail = tail.lock().unwrap();
            if tail.len() == LOG_TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|e| {
        let tail: Vec<String> = log.lock().unwrap().iter().cloned().collect();
        panic!("{id} did not start serving ({e}); its log ends:\n{}", tail.join("\n"))
    });
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    NsNode { child: Mutex::new(child), id: id.to_owned(), base: format!("http://{addr}"), http, log }
}
