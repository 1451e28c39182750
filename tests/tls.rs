//! TLS on every edge, with certificates made in the test (rcgen): a node serving HTTPS and
//! WSS itself and picking up a new certificate without a restart; `rediss://` to a real
//! TLS-only `redis-server` that asks for a client certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft::config::Config;
use weft::redis_conn::RedisConn;

/// A generous bound for what the node does in well under a second.
const PATIENCE: Duration = Duration::from_secs(15);

/// A test CA that issues server and client certificates.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
struct Issued {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { pem, issuer: Issuer::new(params, key) }
    }

    /// A certificate for `localhost` and 127.0.0.1, good for server and client use.
    fn issue(&self, common_name: &str) -> Issued {
        let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap().pem();
        Issued { cert, key: key.serialize_pem() }
    }
}

/// Writes `contents` to `path` by a rename, as a rotation tool (or a Secret update) does.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A rustls client trusting only `ca`.
fn client_config(ca: &Ca) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der(&ca.pem)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS connection to the node as `localhost`.
async fn tls_connect(addr: SocketAddr, ca: &Ca) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client_config(ca));
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

/// The leaf certificate a new connection is served.
async fn served_leaf(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let tls = tls_connect(addr, ca).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

/// A node serving on `127.0.0.1:0` in this process, stopped on drop.
struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run_node(mut config: Config, dir: tempfile::TempDir) -> Running {
    config.store.data_dir = dir.path().join("data");
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.validate().unwrap();
    let node = weft::Node::start(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind(config.server.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(weft::run(listener, node, stop.clone()));
    Running { addr, stop, _dir: dir }
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_are_served_and_a_new_certificate_is_picked_up() {
    let ca = Ca::new("weft test https CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let first = ca.issue("weft-first");
    std::fs::write(&cert_file, &first.cert).unwrap();
    std::fs::write(&key_file, &first.key).unwrap();
    let mut config = Config::default();
    config.server.tls_cert_file = cert_file.clone();
    config.server.tls_key_file = key_file.clone();
    config.server.tls_reload_ms = 100;
    let node = run_node(config, dir).await;
    let port = node.addr.port();

    // HTTPS with the test CA as the only root.
    let http = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let (status, app) = json_of(
        http.post(format!("{base}/api/v1/applications")).json(&json!({"name": "tls"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let token = app["token"].as_str().unwrap().to_owned();
    let (status, user) = json_of(
        http.post(format!("{base}/api/v1/applications/{token}/users/alice/tokens"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let jwt = user["token"].as_str().unwrap();

    // WSS: the WebSocket upgrade over the same TLS listener, welcomed as on plain HTTP.
    let tls = tls_connect(node.addr, &ca).await;
    let (mut ws, response) =
        tokio_tungstenite::client_async(format!("wss://localhost:{port}/ws?token={jwt}"), tls).await.unwrap();
    assert_eq!(response.status(), 101);
    let frame = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap().unwrap().unwrap();
    let frame: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(frame["type"], "welcome", "{frame}");

    // Plain HTTP to the TLS port: a clear 400, not a hang or garbage.
    let plain = reqwest::Client::new();
    let (status, body) =
        json_of(plain.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("tls_required")), "{body}");
    // A client that trusts another CA is refused in the handshake.
    let stranger = Ca::new("another CA");
    let connector = tokio_rustls::TlsConnector::from(client_config(&stranger));
    let tcp = TcpStream::connect(node.addr).await.unwrap();
    assert!(connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.is_err());

    // Rotation: new files, and new connections get the new certificate.
    assert_eq!(served_leaf(node.addr, &ca).await, der(&first.cert));
    let second = ca.issue("weft-second");
    replace(&key_file, &second.key);
    replace(&cert_file, &second.cert);
    let deadline = Instant::now() + PATIENCE;
    while served_leaf(node.addr, &ca).await != der(&second.cert) {
        assert!(Instant::now() < deadline, "the new certificate was not served within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The WebSocket opened before the rotation is still up.
    assert!(answers_ping(&mut ws).await, "the wss session opened before the rotation closed");

    // A broken new certificate is refused: the last good one stays in service.
    let refused = weft::metrics::metrics().tls_reloads.with_label_values(&["refused"]);
    let before = refused.get();
    replace(&cert_file, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
    let deadline = Instant::now() + PATIENCE;
    while refused.get() == before {
        assert!(Instant::now() < deadline, "the broken certificate was not looked at within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served_leaf(node.addr, &ca).await, der(&second.cert));
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// Sends a WebSocket ping and reads until its pong: whether the session is still up.
async fn answers_ping<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    if ws.send(Message::Ping(b"rotated".to_vec().into())).await.is_err() {
        return false;
    }
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) => return true,
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) | Err(_) => return false,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn a_certificate_that_cannot_be_served_fails_the_start() {
    let ca = Ca::new("weft test https CA");
    let dir = tempfile::tempdir().unwrap();
    let (one, other) = (ca.issue("one"), ca.issue("other"));
    let cert_file = dir.path().join("tls.crt");
    let key_file = dir.path().join("tls.key");
    std::fs::write(&cert_file, &one.cert).unwrap();
    std::fs::write(&key_file, &other.key).unwrap();
    let mut config = Config::default();
    config.store.data_dir = dir.path().join("data");
    config.server.tls_cert_file = cert_file;
    config.server.tls_key_file = key_file.clone();
    let err = weft::Node::start(&config).await.err().expect("a mismatched key was accepted");
    let chain = error_chain(&err);
    assert!(chain.contains("tls.key") && chain.contains("does not fit"), "{chain}");
    assert!(!chain.contains("PRIVATE KEY"), "{chain}");
    config.server.tls_key_file = dir.path().join("missing.key");
    let err = weft::Node::start(&config).await.err().expect("a missing key was accepted");
    assert!(error_chain(&err).contains("missing.key"), "{}", error_chain(&err));
    // One file without the other is a config error naming the key.
    let err = Config::from_toml("[server]\ntls_cert_file = \"a.pem\"\n").unwrap_err().to_string();
    assert!(err.contains("server.tls_key_file"), "{err}");
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A TLS-only `redis-server` on a free loopback port, killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsRedis {
    /// Starts one that serves `server` and asks clients for a certificate of `ca`.
    async fn start(ca: &Ca, server: &Issued) -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, contents: &str| -> PathBuf {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            path
        };
        let (cert, key, ca_file) =
            (file("redis.crt", &server.cert), file("redis.key", &server.key), file("ca.crt", &ca.pem));
        // redis-server takes a port number, not a listening socket: a free one, found just before.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&ca_file)
            .args(["--tls-auth-clients", "yes", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): scripts/services.sh installs it (Debian's redis-server, built with TLS)")
            });
        let mut redis = TlsRedis { child, port, _dir: dir };
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if let Some(status) = redis.child.try_wait().unwrap() {
                panic!("redis-server exited ({status}): is it built with TLS (`redis-server --tls-port`)?");
            }
            assert!(Instant::now() < deadline, "redis-server did not listen on {port} within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        redis
    }
}

/// Writes the client side's files and returns a `[redis]` config for `url`.
fn redis_config(dir: &Path, url: String, ca: &Ca, client: Option<&Issued>) -> weft::redis_conn::RedisConfig {
    let mut config =
        weft::redis_conn::RedisConfig { url, key_prefix: "weft-tls-test".into(), ..Default::default() };
    config.tls_ca_file = dir.join("redis-ca.crt");
    std::fs::write(&config.tls_ca_file, &ca.pem).unwrap();
    if let Some(client) = client {
        config.tls_cert_file = dir.join("client.crt");
        config.tls_key_file = dir.join("client.key");
        std::fs::write(&config.tls_cert_file, &client.cert).unwrap();
        std::fs::write(&config.tls_key_file, &client.key).unwrap();
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_ca_and_a_client_certificate() {
    let ca = Ca::new("weft test redis CA");
    let redis = TlsRedis::start(&ca, &ca.issue("redis")).await;
    let dir = tempfile::tempdir().unwrap();
    let client = ca.issue("weft-node");
    let url = format!("rediss://127.0.0.1:{}", redis.port);

    let config = redis_config(dir.path(), url.clone(), &ca, Some(&client));
    let conn = RedisConn::connect(&config).await.unwrap().unwrap();
    conn.ping().await.unwrap();

    // A node on the embedded store with its counters in the TLS Redis numbers messages there.
    let node_config = Config { redis: config.clone(), ..Config::default() };
    let node = run_node(node_config, tempfile::tempdir().unwrap()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", node.addr);
    let (status, app) = json_of(
        http.post(format!("{base}/api/v1/applications")).json(&json!({"name": "r"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let token = app["token"].as_str().unwrap();
    let (status, chat) =
        json_of(http.post(format!("{base}/api/v1/applications/{token}/chats")).send().await.unwrap()).await;
    assert_eq!(status, 201, "{chat}");
    for expected in 1..=2 {
        let url = format!("{base}/api/v1/applications/{token}/chats/{}/messages", chat["number"]);
        let (status, message) =
            json_of(http.post(url).json(&json!({"body": "hi", "sender": "alice"})).send().await.unwrap())
                .await;
        assert_eq!((status, message["number"].as_u64()), (201, Some(expected)), "{message}");
    }
    let mut conn = conn;
    let keys: Vec<String> = redis::cmd("KEYS").arg("weft-tls-test*").query_async(&mut conn).await.unwrap();
    assert!(!keys.is_empty(), "the node wrote nothing to the TLS Redis");
    drop(node);

    // A server certificate from a CA the node does not trust is refused, and the error says why.
    let stranger = Ca::new("another CA");
    let wrong_ca = redis_config(dir.path(), url.clone(), &stranger, Some(&client));
    let err = RedisConn::connect(&wrong_ca).await.err().expect("a server of an unknown CA was accepted");
    let chain = error_chain(&err).to_lowercase();
    assert!(chain.contains("certificate") || chain.contains("issuer"), "{chain}");

    // No client certificate: this server refuses the handshake.
    let anonymous = redis_config(dir.path(), url, &ca, None);
    let refused = match RedisConn::connect(&anonymous).await {
        Err(_) => true,
        Ok(conn) => conn.unwrap().ping().await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
}

/// The CA of the test Cassandra's optional client TLS (made by `scripts/services.sh`).
fn cql_ca() -> PathBuf {
    let path = std::env::var("WEFT_TEST_CQL_CA").unwrap_or_else(|_| {
        panic!(
            "WEFT_TEST_CQL_CA is not set: start Cassandra with `bash scripts/services.sh up` \
             and run `eval \"$(bash scripts/services.sh env)\"` (scripts/test.sh does both)"
        )
    });
    PathBuf::from(path)
}

fn cql_config(ca: PathBuf) -> weft::store::CqlConfig {
    let nodes = std::env::var("WEFT_TEST_CQL_NODES").unwrap_or_else(|_| "127.0.0.1:9042".to_owned());
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    weft::store::CqlConfig {
        nodes: nodes.split(',').map(str::to_owned).collect(),
        // The form test keyspaces take, so a reused node prunes it (scripts/cassandra/cql_ping.py).
        keyspace: format!("weft_tls_{secs}_{:08x}", rand::random::<u32>()),
        tls_ca_file: ca,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_over_tls_with_the_nodes_ca() {
    let ca = cql_ca();
    assert!(ca.is_file(), "{} is missing: `bash scripts/services.sh up` makes it", ca.display());
    let cql = cql_config(ca);
    weft::store::CqlStore::migrate(&cql).await.unwrap();

    // A node on the CQL store over TLS stores and reads back messages.
    let mut config = Config::default();
    config.store.backend = weft::config::Backend::Cql;
    config.cql = cql.clone();
    let node = run_node(config, tempfile::tempdir().unwrap()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", node.addr);
    let (status, app) = json_of(
        http.post(format!("{base}/api/v1/applications")).json(&json!({"name": "c"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let token = app["token"].as_str().unwrap();
    let chats = format!("{base}/api/v1/applications/{token}/chats");
    let (status, chat) = json_of(http.post(&chats).send().await.unwrap()).await;
    assert_eq!(status, 201, "{chat}");
    let messages = format!("{chats}/{}/messages", chat["number"]);
    let (status, sent) = json_of(
        http.post(&messages).json(&json!({"body": "over tls", "sender": "alice"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let (status, page) = json_of(http.get(&messages).send().await.unwrap()).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.to_string().contains("over tls"), "{page}");
    drop(node);

    // A CA that did not sign the node's certificate: the connection is refused, saying why.
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("stranger.pem");
    std::fs::write(&stranger, Ca::new("another CA").pem).unwrap();
    let err =
        weft::store::CqlStore::connect(&weft::store::CqlConfig { tls_ca_file: stranger, ..cql.clone() })
            .await
            .err()
            .expect("a node of an unknown CA was accepted");
    let chain = error_chain(&err).to_lowercase();
    assert!(chain.contains("certificate") || chain.contains("issuer"), "{chain}");
}
