//! The node-to-node transport over real QUIC on 127.0.0.1: ordered delivery with the
//! sender's id, mutual TLS that keeps strangers out, a dead peer that fills its own
//! queue and no one else's, reconnection, flushing at shutdown, and `weft cluster-ca`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use weft::cluster::tls::{self, Generated, NodeTls, TlsPaths};
use weft::cluster::transport::{Inbound, SendError, Transport, TransportConfig};

const DEADLINE: Duration = Duration::from_secs(20);

/// Short timings, so that a dead peer is found out and retried quickly.
fn config() -> TransportConfig {
    TransportConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        idle_timeout_ms: 2_000,
        keep_alive_ms: 500,
        reconnect_min_ms: 20,
        reconnect_max_ms: 300,
        hello_timeout_ms: 1_000,
        flush_timeout_ms: 5_000,
        ..TransportConfig::default()
    }
}

fn certs(names: &[&str]) -> (tempfile::TempDir, Generated) {
    let dir = tempfile::tempdir().unwrap();
    let generated = tls::generate(dir.path(), names, false).unwrap();
    (dir, generated)
}

fn node_tls(generated: &Generated, name: &str) -> NodeTls {
    let (_, paths) = generated.nodes.iter().find(|(n, _)| n == name).unwrap();
    NodeTls::load(paths).unwrap()
}

struct Node {
    transport: Transport,
    inbound: mpsc::Receiver<Inbound>,
}

fn start(config: &TransportConfig, tls: &NodeTls, id: &str) -> Node {
    let (tx, inbound) = mpsc::channel(1024);
    let transport = Transport::bind(config, tls, id.to_owned(), tx).unwrap();
    Node { transport, inbound }
}

fn frame(n: u32) -> Bytes {
    Bytes::copy_from_slice(&n.to_be_bytes())
}

fn number(inbound: &Inbound) -> u32 {
    u32::from_be_bytes(inbound.frame[..].try_into().unwrap())
}

/// Receives until `count` frames arrived, or fails at the deadline.
async fn receive(inbound: &mut mpsc::Receiver<Inbound>, count: usize) -> Vec<Inbound> {
    let mut got = Vec::with_capacity(count);
    let deadline = Instant::now() + DEADLINE;
    while got.len() < count {
        match tokio::time::timeout_at(deadline.into(), inbound.recv()).await {
            Ok(Some(frame)) => got.push(frame),
            Ok(None) => panic!("inbound closed after {} of {count} frames", got.len()),
            Err(_) => panic!("only {} of {count} frames arrived", got.len()),
        }
    }
    got
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Rebinds `addr` (just released by a stopped node) as soon as the OS lets go of it.
async fn rebind(addr: SocketAddr) -> UdpSocket {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match UdpSocket::bind(addr) {
            Ok(socket) => return socket,
            Err(e) => assert!(Instant::now() < deadline, "cannot rebind {addr}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that nothing arrives while `during` runs.
async fn assert_nothing_arrives<F: Future>(inbound: &mut mpsc::Receiver<Inbound>, during: F) -> F::Output {
    let out = during.await;
    // Anything a connection delivered is in the channel by the time it was refused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(inbound.try_recv().is_err(), "a frame got through");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_frames_reach_two_peers_in_order() {
    let (_dir, certs) = certs(&["a", "b", "c"]);
    let a = start(&config(), &node_tls(&certs, "a"), "node-a");
    let mut b = start(&config(), &node_tls(&certs, "b"), "node-b");
    let mut c = start(&config(), &node_tls(&certs, "c"), "node-c");
    let (b_addr, c_addr) = (b.transport.local_addr(), c.transport.local_addr());

    for n in 0..10_000 {
        a.transport.send("node-b", b_addr, frame(n)).unwrap();
        a.transport.send("node-c", c_addr, frame(n)).unwrap();
    }
    let (at_b, at_c) = tokio::join!(receive(&mut b.inbound, 10_000), receive(&mut c.inbound, 10_000));
    for got in [at_b, at_c] {
        assert!(got.iter().all(|f| f.from == "node-a"));
        assert!(got.iter().map(number).eq(0..10_000), "lost or out of order");
    }
    wait_until("the counters caught up", || {
        let stats = a.transport.stats();
        stats.len() == 2
            && stats.iter().all(|s| s.frames_sent == 10_000 && s.bytes_sent == 40_000 && s.dropped_full == 0)
    })
    .await;
    for node in [a, b, c] {
        node.transport.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_another_ca_cannot_deliver() {
    let (_dir, ours) = certs(&["b"]);
    let (_other, theirs) = certs(&["rogue"]);
    let mut b = start(&config(), &node_tls(&ours, "b"), "node-b");
    let b_addr = b.transport.local_addr();
    let rogue = start(&config(), &node_tls(&theirs, "rogue"), "node-rogue");

    let attempts = || rogue.transport.stats().first().map_or(0, |s| s.connect_failures);
    assert_nothing_arrives(&mut b.inbound, async {
        rogue.transport.send("node-b", b_addr, frame(1)).unwrap();
        wait_until("the rogue failed twice", || attempts() >= 2).await;
    })
    .await;
    assert!(!rogue.transport.stats()[0].connected);
    rogue.transport.shutdown().await;
    b.transport.shutdown().await;
}

/// A bare QUIC client speaking the transport's protocol by hand, trusting `ca`.
struct RawClient {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
}

impl RawClient {
    fn new(ca: &Path, identity: Option<&TlsPaths>) -> RawClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(ca).unwrap()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots);
        let mut tls = match identity {
            Some(paths) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_file(&paths.node_cert).unwrap()],
                    PrivateKeyDer::from_pem_file(&paths.node_key).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![tls::ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let config = quinn::ClientConfig::new(Arc::new(crypto));
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        RawClient { endpoint, config }
    }

    /// Connects, writes `bytes` on a new stream, reads the answer and finishes the
    /// stream; returns what the server answered, if anything, and why it closed.
    async fn talk(&self, addr: SocketAddr, bytes: &[u8]) -> (Option<Vec<u8>>, String) {
        self.converse(addr, bytes, true).await
    }

    /// Like `talk`, but leaves the stream open after `bytes`.
    async fn stall(&self, addr: SocketAddr, bytes: &[u8]) -> (Option<Vec<u8>>, String) {
        self.converse(addr, bytes, false).await
    }

    async fn converse(&self, addr: SocketAddr, bytes: &[u8], finish: bool) -> (Option<Vec<u8>>, String) {
        let connecting = self.endpoint.connect_with(self.config.clone(), addr, tls::SERVER_NAME).unwrap();
        let conn = match connecting.await {
            Ok(conn) => conn,
            Err(e) => return (None, format!("handshake: {e}")),
        };
        let exchange = async {
            let (mut send, mut recv) = conn.open_bi().await.ok()?;
            send.write_all(bytes).await.ok()?;
            // The server answers a hello and finishes its side at once; it closes the
            // connection when it has read ours to the end, which would cut the answer short.
            let answer = recv.read_to_end(4096).await.ok();
            if finish {
                send.finish().ok()?;
            }
            answer
        };
        let answer = exchange.await;
        // Stream errors only say "connection lost": the close itself says why.
        let closed = tokio::time::timeout(DEADLINE, conn.closed()).await.expect("the server did not close");
        (answer, closed.to_string())
    }
}

fn hello(id: &str) -> Vec<u8> {
    let payload = [b"weft-hello/1 ".as_slice(), id.as_bytes()].concat();
    [(payload.len() as u32).to_be_bytes().as_slice(), &payload].concat()
}

fn framed(payload: &[u8]) -> Vec<u8> {
    [(payload.len() as u32).to_be_bytes().as_slice(), payload].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_of_the_cluster_ca_are_refused() {
    let (_dir, ours) = certs(&["b"]);
    let (_other, theirs) = certs(&["rogue"]);
    let mut b = start(&config(), &node_tls(&ours, "b"), "node-b");
    let b_addr = b.transport.local_addr();
    let message = [hello("node-rogue"), framed(b"let me in")].concat();

    // Trusts our CA, presents a certificate of another.
    let rogue = RawClient::new(&ours.ca_cert, Some(&theirs.nodes[0].1));
    let (answer, closed) = assert_nothing_arrives(&mut b.inbound, rogue.talk(b_addr, &message)).await;
    assert_eq!(answer, None);
    assert!(closed.contains("invalid peer certificate"), "{closed}");

    let anonymous = RawClient::new(&ours.ca_cert, None);
    let (answer, closed) = assert_nothing_arrives(&mut b.inbound, anonymous.talk(b_addr, &message)).await;
    assert_eq!(answer, None);
    assert!(closed.contains("handshake failed"), "{closed}");

    // The control: a client with a certificate of our CA gets through.
    let (_, paths) = &ours.nodes[0];
    let member = RawClient::new(&ours.ca_cert, Some(paths));
    let (answer, closed) = member.talk(b_addr, &message).await;
    assert_eq!(answer, Some(hello("node-b")));
    // It finished its stream: the server closes once it has read everything.
    assert!(closed.contains("finished"), "{closed}");
    let got = receive(&mut b.inbound, 1).await;
    assert_eq!((got[0].from.as_str(), &got[0].frame[..]), ("node-rogue", &b"let me in"[..]));
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_must_say_hello_first_and_keep_frames_small() {
    let (_dir, ours) = certs(&["b"]);
    let mut b = start(&config(), &node_tls(&ours, "b"), "node-b");
    let b_addr = b.transport.local_addr();
    let member = RawClient::new(&ours.ca_cert, Some(&ours.nodes[0].1));

    // A frame that is not a hello.
    let (answer, closed) =
        assert_nothing_arrives(&mut b.inbound, member.talk(b_addr, &framed(b"hi there"))).await;
    assert_eq!((answer, closed.contains("bad hello")), (None, true), "{closed}");
    // Half a hello, then silence past the hello timeout (1 s in `config`).
    let half = &hello("x")[..6];
    let (answer, closed) = assert_nothing_arrives(&mut b.inbound, member.stall(b_addr, half)).await;
    assert_eq!((answer, closed.contains("no hello")), (None, true), "{closed}");
    // A hello, then a frame over `max_frame_bytes`.
    let oversized = (1024 * 1024 + 1u32).to_be_bytes();
    let message = [hello("x"), oversized.to_vec()].concat();
    let (_, closed) = assert_nothing_arrives(&mut b.inbound, member.talk(b_addr, &message)).await;
    assert!(closed.contains("bad frame"), "{closed}");

    // Our side refuses to send one.
    let big = Bytes::from(vec![0; 1024 * 1024 + 1]);
    assert_eq!(
        b.transport.send("node-x", b_addr, big),
        Err(SendError::TooLarge { len: 1024 * 1024 + 1, max: 1024 * 1024 })
    );
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_fills_its_own_queue_only_and_gets_it_when_it_comes_up() {
    let (_dir, certs) = certs(&["a", "b", "d"]);
    let small_queue = TransportConfig { peer_queue_frames: 100, ..config() };
    let a = start(&small_queue, &node_tls(&certs, "a"), "node-a");
    let mut b = start(&config(), &node_tls(&certs, "b"), "node-b");
    let b_addr = b.transport.local_addr();
    // The dead peer's address: a bound socket nobody reads, until the peer starts on it.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let d_addr = dead.local_addr().unwrap();

    for n in 0..100 {
        assert_eq!(a.transport.send("node-d", d_addr, frame(n)), Ok(()));
    }
    assert_eq!(a.transport.send("node-d", d_addr, frame(100)), Err(SendError::Full));
    // The live peer does not notice.
    for n in 0..1_000 {
        a.transport.send("node-b", b_addr, frame(n)).unwrap();
        if n % 100 == 99 {
            // Stay under the small queue's bound: the writer keeps up.
            wait_until("b's queue drained", || {
                a.transport.stats().iter().all(|s| s.peer != "node-b" || s.queued == 0)
            })
            .await;
        }
    }
    let got = receive(&mut b.inbound, 1_000).await;
    assert!(got.iter().map(number).eq(0..1_000));
    let d_stats = a.transport.stats().into_iter().find(|s| s.peer == "node-d").unwrap();
    assert!(!d_stats.connected);
    assert_eq!((d_stats.queued, d_stats.dropped_full), (100, 1));

    // It comes up on that address: the writer reconnects and delivers its queue.
    let (tx, mut d_inbound) = mpsc::channel(1024);
    let d = Transport::from_socket(dead, &config(), &node_tls(&certs, "d"), "node-d".into(), tx).unwrap();
    let got = receive(&mut d_inbound, 100).await;
    assert!(got.iter().all(|f| f.from == "node-a"));
    assert!(got.iter().map(number).eq(0..100));
    for t in [a.transport, b.transport, d] {
        t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_after_a_peer_restarts_arrive() {
    let (_dir, certs) = certs(&["a", "b"]);
    let a = start(&config(), &node_tls(&certs, "a"), "node-a");
    let mut b1 = start(&config(), &node_tls(&certs, "b"), "node-b");
    let b_addr = b1.transport.local_addr();
    for n in 0..500 {
        a.transport.send("node-b", b_addr, frame(n)).unwrap();
    }
    assert!(receive(&mut b1.inbound, 500).await.iter().map(number).eq(0..500));

    b1.transport.shutdown().await;
    drop(b1);
    let (tx, mut inbound) = mpsc::channel(1024);
    let b2 =
        Transport::from_socket(rebind(b_addr).await, &config(), &node_tls(&certs, "b"), "node-b".into(), tx)
            .unwrap();

    // Keep sending until the restarted peer hears from us; what was sent while it was
    // down may be lost, but nothing arrives twice or out of order.
    let mut next = 500;
    let mut got = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while got.is_empty() {
        assert!(Instant::now() < deadline, "the restarted peer never heard from us");
        let _ = a.transport.send("node-b", b_addr, frame(next));
        next += 1;
        if let Ok(Some(frame)) = tokio::time::timeout(Duration::from_millis(20), inbound.recv()).await {
            got.push(frame);
        }
    }
    // From the first frame the new connection carried, nothing is lost.
    let first = number(&got[0]);
    for n in next..next + 1_000 {
        a.transport.send("node-b", b_addr, frame(n)).unwrap();
    }
    let last = next + 999;
    got.extend(receive(&mut inbound, (last - first) as usize).await);
    assert!(got.iter().map(number).eq(first..=last), "lost, repeated or out of order");
    assert!(a.transport.stats()[0].reconnects >= 1);
    a.transport.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_what_is_queued() {
    let (_dir, certs) = certs(&["a", "b"]);
    let a = start(&config(), &node_tls(&certs, "a"), "node-a");
    let mut b = start(&config(), &node_tls(&certs, "b"), "node-b");
    let b_addr = b.transport.local_addr();
    for n in 0..5_000 {
        a.transport.send("node-b", b_addr, frame(n)).unwrap();
    }
    // Not connected yet, most likely: shutdown connects, flushes, then closes.
    let (got, ()) = tokio::join!(receive(&mut b.inbound, 5_000), a.transport.shutdown());
    assert!(got.iter().map(number).eq(0..5_000));
    assert_eq!(a.transport.send("node-b", b_addr, frame(0)), Err(SendError::Closed));
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_drops_a_peer_and_a_later_send_starts_afresh() {
    let (_dir, certs) = certs(&["a", "b"]);
    let a = start(&config(), &node_tls(&certs, "a"), "node-a");
    let mut b = start(&config(), &node_tls(&certs, "b"), "node-b");
    let b_addr = b.transport.local_addr();
    a.transport.send("node-b", b_addr, frame(1)).unwrap();
    receive(&mut b.inbound, 1).await;
    a.transport.forget("node-b");
    assert!(a.transport.stats().is_empty());
    a.transport.send("node-b", b_addr, frame(2)).unwrap();
    let got = receive(&mut b.inbound, 1).await;
    assert_eq!(number(&got[0]), 2);
    a.transport.shutdown().await;
    b.transport.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_refuses_a_node_that_is_not_the_one_it_meant() {
    let (_dir, certs) = certs(&["a", "b"]);
    let a = start(&config(), &node_tls(&certs, "a"), "node-a");
    let mut b = start(&config(), &node_tls(&certs, "b"), "node-b");
    let b_addr = b.transport.local_addr();
    let failures = || a.transport.stats().first().map_or(0, |s| s.connect_failures);
    assert_nothing_arrives(&mut b.inbound, async {
        a.transport.send("node-z", b_addr, frame(1)).unwrap();
        wait_until("a's writer gave up twice", || failures() >= 2).await;
    })
    .await;
    a.transport.shutdown().await;
    b.transport.shutdown().await;
}

fn weft() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    for (key, _) in std::env::vars() {
        if key.starts_with("WEFT_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ca_writes_material_that_nodes_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let run = |extra: &[&str]| {
        weft().arg("cluster-ca").arg("--out").arg(&out).args(["--names", "a,b"]).args(extra).output().unwrap()
    };
    let first = run(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8_lossy(&first.stdout);
    for file in ["ca.pem", "ca.key", "a.pem", "a.key", "b.pem", "b.key"] {
        assert!(out.join(file).is_file(), "{file} missing");
        assert!(stdout.contains(file), "{file} not printed: {stdout}");
    }

    let ca_before = std::fs::read(out.join("ca.pem")).unwrap();
    let again = run(&[]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("ca.key") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), ca_before, "a refused run changed the CA");
    let forced = run(&["--force"]);
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));

    // The pairs work: a talks to b.
    let paths = |name: &str| TlsPaths {
        ca_cert: out.join("ca.pem"),
        node_cert: out.join(format!("{name}.pem")),
        node_key: out.join(format!("{name}.key")),
    };
    let a = start(&config(), &NodeTls::load(&paths("a")).unwrap(), "node-a");
    let mut b = start(&config(), &NodeTls::load(&paths("b")).unwrap(), "node-b");
    a.transport.send("node-b", b.transport.local_addr(), frame(7)).unwrap();
    assert_eq!(number(&receive(&mut b.inbound, 1).await[0]), 7);
    a.transport.shutdown().await;
    b.transport.shutdown().await;

    let bad = weft().args(["cluster-ca", "--names", "../x", "--out"]).arg(dir.path()).output().unwrap();
    assert!(!bad.status.success());
}
