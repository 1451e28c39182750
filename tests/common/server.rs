//! Real weft nodes in the test process, on `127.0.0.1:0`, with a real HTTP client.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use weft::config::{Backend, Config};
use weft::store::CqlStore;

/// Where the test Redis is (`WEFT_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
pub fn redis_url() -> String {
    std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The seeds of the test Redis Cluster (`WEFT_TEST_REDIS_CLUSTER_NODES`,
/// comma-separated; default the three masters `scripts/services.sh` starts).
pub fn redis_cluster_nodes() -> Vec<String> {
    let raw = std::env::var("WEFT_TEST_REDIS_CLUSTER_NODES").unwrap_or_else(|_| {
        "redis://127.0.0.1:6380,redis://127.0.0.1:6381,redis://127.0.0.1:6382".to_owned()
    });
    raw.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// Where the test OpenSearch node is (`WEFT_TEST_OPENSEARCH_URL`, set by
/// `scripts/services.sh env`); a test that needs it fails without it.
pub fn opensearch_url() -> String {
    std::env::var("WEFT_TEST_OPENSEARCH_URL").unwrap_or_else(|_| {
        panic!(
            "WEFT_TEST_OPENSEARCH_URL is not set: start OpenSearch with `bash scripts/services.sh up` \
             and run `eval \"$(bash scripts/services.sh env)\"` (scripts/test.sh does both)"
        )
    })
}

/// The OpenSearch index prefix every test node shares (applications are
/// random, so tests never see each other's documents).
pub const SEARCH_PREFIX: &str = "weft-test-nodes";

/// Turns search on: the embedded index on the embedded store (the default),
/// OpenSearch on CQL.
pub fn with_search(config: &mut Config) {
    if config.store.backend == Backend::Cql {
        config.search.backend = weft::search::SearchBackend::Opensearch;
        config.search.url = opensearch_url();
        config.search.index_prefix = SEARCH_PREFIX.to_owned();
    }
    config.search.batch_delay_ms = 20;
}

/// Raises the per-user send limit and the frame budget far above what a
/// test sends, for tests of throughput and order rather than of the limits.
pub fn with_raised_rates(config: &mut Config) {
    config.gateway.send_rate_per_sec = 100_000;
    config.gateway.send_burst = 100_000;
    config.gateway.frame_rate_per_sec = 100_000;
    config.gateway.frame_burst = 100_000;
}

/// `(endpoint, bucket, region, access key, secret key)` of the test S3 server
/// (SeaweedFS, from `scripts/services.sh env`); a test that needs it fails without it.
pub fn s3() -> (String, String, String, String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: start SeaweedFS with `bash scripts/services.sh up` \
                 and run `eval \"$(bash scripts/services.sh env)\"` (scripts/test.sh does both)"
            )
        })
    };
    (
        var("WEFT_TEST_S3_URL"),
        var("WEFT_TEST_S3_BUCKET"),
        var("WEFT_TEST_S3_REGION"),
        var("WEFT_TEST_S3_ACCESS_KEY"),
        var("WEFT_TEST_S3_SECRET_KEY"),
    )
}

/// `(SMTP URL, HTTP API base)` of the test SMTP server (Mailpit, from
/// `scripts/services.sh env`: `WEFT_TEST_SMTP_URL` such as `smtp://127.0.0.1:1025`,
/// the form `[email] smtp_url` takes, and `WEFT_TEST_MAILPIT_URL` such as
/// `http://127.0.0.1:8025`); a test that needs it fails without it.
pub fn mailpit() -> (String, String) {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: start Mailpit with `bash scripts/services.sh up` \
                 and run `eval \"$(bash scripts/services.sh env)\"` (scripts/test.sh does both)"
            )
        })
    };
    (var("WEFT_TEST_SMTP_URL"), var("WEFT_TEST_MAILPIT_URL").trim_end_matches('/').to_owned())
}

/// Turns attachments on: the node's filesystem on the embedded store (the
/// default), the test S3 server on CQL.
pub fn with_attachments(config: &mut Config) {
    if config.store.backend == Backend::Cql {
        let (endpoint, bucket, region, access, secret) = s3();
        let a = &mut config.attachments;
        a.backend = weft::attachments::AttachmentBackend::S3;
        a.s3_allow_http = endpoint.starts_with("http://");
        a.s3_endpoint = endpoint;
        a.s3_bucket = bucket;
        a.s3_region = region;
        a.s3_access_key = access;
        a.s3_secret_key = secret;
        a.s3_path_style = true;
    }
}

/// Where the test CQL server is (`WEFT_TEST_CQL_NODES`, default `127.0.0.1:9042`).
pub fn cql_nodes() -> Vec<String> {
    let raw = std::env::var("WEFT_TEST_CQL_NODES").unwrap_or_else(|_| "127.0.0.1:9042".to_owned());
    raw.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// One keyspace per test process, migrated once.
pub fn keyspace() -> &'static str {
    static KEYSPACE: OnceLock<String> = OnceLock::new();
    KEYSPACE.get_or_init(|| {
        let name = super::test_keyspace("it");
        let mut cql = Config::default().cql;
        cql.nodes = cql_nodes();
        cql.keyspace = name.clone();
        cql.request_timeout_ms = 30_000;
        // Its own thread and runtime: the test runtimes come and go.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(CqlStore::migrate(&cql)).unwrap_or_else(|e| {
                panic!(
                    "cannot migrate a keyspace on the CQL server at {:?}: {e:?}. \
                     Start it with scripts/services.sh (the README's test command does)",
                    cql.nodes
                )
            })
        })
        .join()
        .unwrap();
        name
    })
}

/// Which backends a node runs on.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// redb file, in-process counters.
    Embedded,
    /// Cassandra + Redis.
    Cluster,
    /// Three cluster nodes (Cassandra + a Redis Cluster, gossip, QUIC);
    /// WebSocket clients are spread over them in turn, REST calls go to the
    /// first. (So every behaviour suite also runs on a Redis Cluster, while
    /// `Cluster` runs it on a single Redis.)
    Spread,
}

/// Cluster certificates shared by every spread node of this test process.
fn certs() -> weft::cluster::tls::TlsPaths {
    static CERTS: OnceLock<(tempfile::TempDir, weft::cluster::tls::TlsPaths)> = OnceLock::new();
    let (_, paths) = CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let generated = weft::cluster::tls::generate(dir.path(), &["node"], true).unwrap();
        let paths = generated.nodes[0].1.clone();
        (dir, paths)
    });
    paths.clone()
}

/// A config for `mode`; embedded data goes to `dir`.
pub fn config(mode: Mode, dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_ms = 2_000;
    // Open sessions close within this at stop (tests of the drain set their own).
    config.server.drain_window_ms = 100;
    // Webhook receivers are local HTTP servers; retries and polls are quick; a
    // webhook created on one node is seen by every node at once.
    config.webhooks.allow_http = true;
    config.webhooks.allow_private = true;
    config.webhooks.backoff_base_ms = 50;
    config.webhooks.backoff_max_ms = 400;
    config.webhooks.timeout_ms = 1_000;
    config.webhooks.poll_ms = 50;
    config.webhooks.cache_ms = 0;
    match mode {
        Mode::Embedded => {
            config.store.data_dir = dir.to_path_buf();
        }
        Mode::Cluster | Mode::Spread => {
            config.store.backend = Backend::Cql;
            config.cql.nodes = cql_nodes();
            config.cql.keyspace = keyspace().to_owned();
            config.cql.request_timeout_ms = 10_000;
            config.redis.url = redis_url();
            // Each test its own key space in Redis, so tests never see each other.
            config.redis.key_prefix = format!("weft-test-{:016x}", rand::random::<u64>());
        }
    }
    if let Mode::Spread = mode {
        config.redis.url = String::new();
        config.redis.cluster_nodes = redis_cluster_nodes();
        config.cluster.enabled = true;
        config.gossip.gossip_listen = "127.0.0.1:0".parse().unwrap();
        config.gossip.gossip_interval_ms = 100;
        config.quic.listen = "127.0.0.1:0".parse().unwrap();
        config.tls = certs();
    }
    config
}

/// A running node and a client for it.
pub struct TestServer {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The HTTP client.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
    /// In spread mode, the other nodes of the cluster.
    others: Vec<TestServer>,
    /// Which node the next WebSocket goes to.
    next: std::sync::atomic::AtomicUsize,
}

impl TestServer {
    /// A handle on a node running elsewhere (another process) at `base`;
    /// stopping it does nothing.
    pub fn remote(base: &str) -> TestServer {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        TestServer {
            base: base.to_owned(),
            http,
            shutdown: CancellationToken::new(),
            task: None,
            _dir: tempfile::tempdir().unwrap(),
            others: Vec::new(),
            next: Default::default(),
        }
    }

    /// Where the next WebSocket connects: in spread mode, each node in turn.
    pub fn ws_base(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (self.others.len() + 1);
        let base = if n == 0 { &self.base } else { &self.others[n - 1].base };
        base.replace("http://", "ws://")
    }

    /// Every node: this one, then in spread mode the other two (for requests
    /// that must hold whichever node answers them).
    pub fn nodes(&self) -> Vec<&TestServer> {
        std::iter::once(self).chain(&self.others).collect()
    }

    /// Starts a node in `mode` with the default test config.
    pub async fn start(mode: Mode) -> TestServer {
        Self::start_with(mode, |_| {}).await
    }

    /// Starts a node in `mode` after `tweak` edits its config (in spread
    /// mode, three nodes sharing one Redis prefix).
    pub async fn start_with(mode: Mode, tweak: impl Fn(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(mode, dir.path());
        tweak(&mut config);
        if let Mode::Spread = mode {
            config.cluster.node_id = "node-0".into();
            let mut first = Self::start_config(config.clone(), dir).await;
            let seed = first.get("/api/v1/cluster").await.1["gossip"].as_str().unwrap().to_owned();
            for i in 1..3 {
                let mut other = config.clone();
                other.cluster.node_id = format!("node-{i}");
                other.gossip.seeds = vec![seed.clone()];
                first.others.push(Self::start_config(other, tempfile::tempdir().unwrap()).await);
            }
            for node in std::iter::once(&first).chain(&first.others) {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while node.get("/api/v1/cluster").await.1["members"].as_array().map_or(0, Vec::len) < 3 {
                    assert!(std::time::Instant::now() < deadline, "the spread cluster did not converge");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            return first;
        }
        Self::start_config(config, dir).await
    }

    async fn start_config(config: Config, dir: tempfile::TempDir) -> TestServer {
        let mode = config.store.backend;
        let node = weft::Node::start(&config)
            .await
            .unwrap_or_else(|e| panic!("node failed to start on {mode:?}: {e:?}"));
        let listener = tokio::net::TcpListener::bind(config.server.listen).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(weft::run(listener, node, shutdown.clone()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        TestServer {
            base,
            http,
            shutdown,
            task: Some(task),
            _dir: dir,
            others: Vec::new(),
            next: Default::default(),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and returns (status, JSON body or Null).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        (status, body)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(self.url(path))).await
    }

    /// POST `path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    /// Creates an application and returns its token.
    pub async fn new_app(&self) -> String {
        let (status, body) = self.post("/api/v1/applications", serde_json::json!({"name": "test"})).await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Creates a chat and returns its number.
    pub async fn new_chat(&self, token: &str) -> u64 {
        let url = self.url(&format!("/api/v1/applications/{token}/chats"));
        let (status, body) = self.send(self.http.post(url)).await;
        assert_eq!(status, 201, "{body}");
        body["number"].as_u64().unwrap()
    }

    /// Starts the node's drain (as SIGTERM does) without waiting for it.
    pub fn begin_stop(&self) {
        for other in &self.others {
            other.begin_stop();
        }
        self.shutdown.cancel();
    }

    /// Stops the node (every node, in spread mode) and waits for it to drain.
    pub async fn stop(mut self) {
        for other in std::mem::take(&mut self.others) {
            Box::pin(other.stop()).await;
        }
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}
