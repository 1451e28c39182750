//! Frames between nodes over QUIC (quinn), mutually authenticated with the cluster CA.
//!
//! A node has one endpoint, one UDP socket, that both accepts and connects. Data
//! flows over one connection per direction of a peer pair: this node's writer for
//! peer X connects to X and only writes; X's accept loop only reads.
//!
//! On each connection, one long-lived bidirectional stream. The connecting side
//! sends a hello with its node id, the accepting side answers with its own (so a
//! writer never delivers to a node it did not mean), then the connecting side
//! writes frames: a `u32` big-endian length, then the payload. The certificate
//! proves cluster membership; the node id comes from the hello.
//!
//! [`Transport::send`] never waits: it puts the frame on the peer's bounded queue
//! and a writer task per peer drains it, many queued frames per write. A full queue
//! is the caller's to count ([`SendError::Full`]): that peer is slow or gone, and
//! no other peer notices.
//!
//! Delivery is at most once, in order per sending node. A frame is lost when the
//! connection breaks while it is in flight, and frames on a connection that looks
//! alive but whose peer crashed are lost until the idle timeout declares it dead
//! (call [`Transport::forget`] when membership says a peer restarted, so that the
//! next send connects afresh). Frames queued while a peer is unreachable wait in its
//! queue and go out once the writer has reconnected (exponential backoff with jitter).
//! The chat layer's catch-up covers the gaps.
//!
//! At shutdown, writers flush their queues: a writer finishes its stream and waits
//! until the peer, having read it to the end, closes the connection.
//!
//! Files: `frame` (the wire format), `writer` (one peer's outbound side), `inbound`
//! (accepted connections); this one holds the handle, its config and errors.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Endpoint, EndpointConfig, IdleTimeout, VarInt};
use serde::Deserialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info, info_span, warn};

use self::frame::valid_node_id;
use self::inbound::{Acceptor, accept_loop};
use self::writer::{Backoff, Writer};
use crate::cluster::tls::NodeTls;

mod frame;
mod inbound;
mod writer;

/// Longest node id, in bytes.
pub const MAX_NODE_ID_BYTES: usize = 255;

/// Close codes, with the reason sent alongside.
const CLOSE_DRAINING: VarInt = VarInt::from_u32(0);
const CLOSE_FORGOTTEN: VarInt = VarInt::from_u32(1);
const CLOSE_PROTOCOL: VarInt = VarInt::from_u32(2);
const CLOSE_SUPERSEDED: VarInt = VarInt::from_u32(3);
const CLOSE_WRONG_PEER: VarInt = VarInt::from_u32(4);
const CLOSE_MOVED: VarInt = VarInt::from_u32(5);

/// Timings and limits of the node-to-node transport.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransportConfig {
    /// UDP address of the QUIC endpoint (it both accepts and connects).
    pub listen: SocketAddr,
    /// A connection silent for this long is dead, in ms (the smaller of both sides' wins).
    pub idle_timeout_ms: u64,
    /// Keep-alive interval on idle connections, in ms; below `idle_timeout_ms`.
    pub keep_alive_ms: u64,
    /// Frames that may wait for one peer; past it `send` returns `Full`.
    pub peer_queue_frames: usize,
    /// Largest frame, in bytes: refused on send, and a peer sending one is disconnected.
    pub max_frame_bytes: usize,
    /// First wait before reconnecting to a peer, in ms; doubles per failure.
    pub reconnect_min_ms: u64,
    /// Longest wait between reconnection attempts, in ms.
    pub reconnect_max_ms: u64,
    /// How long a new connection may take to exchange hellos, in ms.
    pub hello_timeout_ms: u64,
    /// At shutdown, how long writers may take to flush their queues, in ms.
    pub flush_timeout_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7100)),
            idle_timeout_ms: 10_000,
            keep_alive_ms: 2_000,
            peer_queue_frames: 65_536,
            max_frame_bytes: 1024 * 1024,
            reconnect_min_ms: 50,
            reconnect_max_ms: 5_000,
            hello_timeout_ms: 5_000,
            flush_timeout_ms: 2_000,
        }
    }
}

impl TransportConfig {
    /// What types alone cannot check: (field, reason) of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let rules: [(bool, &str, &str); 7] = [
            (self.idle_timeout_ms == 0, "idle_timeout_ms", "must be at least 1"),
            (
                self.keep_alive_ms == 0 || self.keep_alive_ms >= self.idle_timeout_ms,
                "keep_alive_ms",
                "must be at least 1 and below idle_timeout_ms",
            ),
            (self.peer_queue_frames == 0, "peer_queue_frames", "must be at least 1"),
            (
                self.max_frame_bytes == 0 || u32::try_from(self.max_frame_bytes).is_err(),
                "max_frame_bytes",
                "must be between 1 and 4294967295",
            ),
            (self.reconnect_min_ms == 0, "reconnect_min_ms", "must be at least 1"),
            (
                self.reconnect_max_ms < self.reconnect_min_ms,
                "reconnect_max_ms",
                "must be at least reconnect_min_ms",
            ),
            (self.hello_timeout_ms == 0, "hello_timeout_ms", "must be at least 1"),
        ];
        match rules.into_iter().find(|(bad, _, _)| *bad) {
            Some((_, key, reason)) => Err((key, reason)),
            None => Ok(()),
        }
    }
}

/// One frame from a peer.
#[derive(Clone, Debug, PartialEq)]
pub struct Inbound {
    /// The sender's node id, from its hello.
    pub from: String,
    /// The payload, without the length prefix.
    pub frame: Bytes,
}

/// The transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A value in [`TransportConfig`] is out of range.
    #[error("invalid transport setting `{key}`: {reason}")]
    Config {
        /// The field.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The node id is empty, longer than 255 bytes, or holds control characters.
    #[error("invalid node id {id:?}")]
    InvalidNodeId {
        /// The id given.
        id: String,
    },
    /// Not called inside a tokio runtime.
    #[error("the transport needs a tokio runtime")]
    NoRuntime,
    /// The UDP socket could not be bound or set up.
    #[error("cannot bind the cluster transport on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The TLS configuration is unfit for QUIC.
    #[error("the tls configuration is unfit for quic: {0}")]
    Tls(#[source] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// A frame was not queued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The peer's queue is full: it is slow or unreachable. The frame is dropped.
    #[error("the peer's queue is full")]
    Full,
    /// The frame is larger than `max_frame_bytes`.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The transport is shutting down.
    #[error("the transport is shut down")]
    Closed,
}

/// Counters of one peer's outbound side, for metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's node id.
    pub peer: String,
    /// The address its writer connects to.
    pub addr: SocketAddr,
    /// Whether a connection is up (hellos exchanged).
    pub connected: bool,
    /// Frames waiting in its queue.
    pub queued: usize,
    /// Frames handed to QUIC (not necessarily received).
    pub frames_sent: u64,
    /// Payload bytes handed to QUIC.
    pub bytes_sent: u64,
    /// Connections established after the first.
    pub reconnects: u64,
    /// Connection attempts that failed (unreachable, refused, wrong node, no hello).
    pub connect_failures: u64,
    /// Frames refused because its queue was full.
    pub dropped_full: u64,
}

/// A node's end of the cluster transport: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &self.inner.node_id)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

struct Inner {
    node_id: Arc<str>,
    local_addr: SocketAddr,
    config: TransportConfig,
    endpoint: Endpoint,
    peers: RwLock<HashMap<String, Peer>>,
    /// Cancelled at shutdown: writers flush and stop.
    shutdown: CancellationToken,
    writers: TaskTracker,
    readers: TaskTracker,
    runtime: tokio::runtime::Handle,
}

impl Drop for Inner {
    // Tasks hold no `Inner`, so the last handle going away stops them all.
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.endpoint.close(CLOSE_DRAINING, b"draining");
    }
}

/// The sending side of one peer, owned by `Inner::peers`.
struct Peer {
    queue: mpsc::Sender<Bytes>,
    addr: watch::Sender<SocketAddr>,
    /// Cancelled by `forget`: the writer drops its queue and connection.
    forget: CancellationToken,
    counters: Arc<PeerCounters>,
}

struct PeerCounters {
    connected: AtomicBool,
    connections: AtomicU64,
    connect_failures: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    dropped_full: AtomicU64,
    /// The same, exported per peer (`weft_quic_*`).
    exported: PeerMetrics,
}

/// One peer's series of the `weft_quic_*` metrics.
pub(super) struct PeerMetrics {
    pub(super) frames_sent: prometheus::IntCounter,
    pub(super) bytes_sent: prometheus::IntCounter,
    pub(super) reconnects: prometheus::IntCounter,
    pub(super) dropped: prometheus::IntCounter,
}

impl PeerMetrics {
    fn of(peer: &str) -> Self {
        let m = crate::metrics::metrics();
        PeerMetrics {
            frames_sent: m.quic_frames_sent.with_label_values(&[peer]),
            bytes_sent: m.quic_bytes_sent.with_label_values(&[peer]),
            reconnects: m.quic_reconnects.with_label_values(&[peer]),
            dropped: m.quic_frames_dropped.with_label_values(&[peer]),
        }
    }
}

impl PeerCounters {
    fn new(peer: &str) -> Self {
        PeerCounters {
            connected: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            dropped_full: AtomicU64::new(0),
            exported: PeerMetrics::of(peer),
        }
    }
}

impl Transport {
    /// Binds the endpoint at `config.listen` and starts accepting peers; their frames
    /// go to `inbound`. Must be called inside a tokio runtime.
    pub fn bind(
        config: &TransportConfig,
        tls: &NodeTls,
        node_id: String,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Transport, TransportError> {
        let socket = UdpSocket::bind(config.listen)
            .map_err(|source| TransportError::Bind { addr: config.listen, source })?;
        Self::from_socket(socket, config, tls, node_id, inbound)
    }

    /// Like [`bind`](Self::bind), on a socket the caller has bound (`config.listen` is ignored).
    pub fn from_socket(
        socket: UdpSocket,
        config: &TransportConfig,
        tls: &NodeTls,
        node_id: String,
        inbound: mpsc::Sender<Inbound>,
    ) -> Result<Transport, TransportError> {
        config.check().map_err(|(key, reason)| TransportError::Config { key, reason })?;
        if !valid_node_id(&node_id) {
            return Err(TransportError::InvalidNodeId { id: node_id });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TransportError::NoRuntime)?;
        let quic = quic_transport_config(config)?;

        let crypto = QuicServerConfig::try_from(tls.server_config()).map_err(TransportError::Tls)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(quic.clone());
        let crypto = QuicClientConfig::try_from(tls.client_config()).map_err(TransportError::Tls)?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(quic);

        let addr =
            socket.local_addr().map_err(|source| TransportError::Bind { addr: config.listen, source })?;
        let bind_error = |source| TransportError::Bind { addr, source };
        let mut endpoint =
            Endpoint::new(EndpointConfig::default(), Some(server), socket, Arc::new(quinn::TokioRuntime))
                .map_err(bind_error)?;
        endpoint.set_default_client_config(client);
        let local_addr = endpoint.local_addr().map_err(bind_error)?;

        let node_id: Arc<str> = node_id.into();
        let readers = TaskTracker::new();
        let acceptor = Arc::new(Acceptor {
            node_id: node_id.clone(),
            inbound,
            max_frame_bytes: config.max_frame_bytes,
            hello_timeout: Duration::from_millis(config.hello_timeout_ms),
            conns: Mutex::new(HashMap::new()),
            readers: readers.clone(),
        });
        readers.spawn(accept_loop(endpoint.clone(), acceptor));
        info!(node_id = %node_id, addr = %local_addr, "cluster transport listening");
        Ok(Transport {
            inner: Arc::new(Inner {
                node_id,
                local_addr,
                config: config.clone(),
                endpoint,
                peers: RwLock::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                writers: TaskTracker::new(),
                readers,
                runtime,
            }),
        })
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's id, as sent in hellos.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Queues `frame` for `peer` at `addr`, connecting on first use. Never waits.
    ///
    /// A changed `addr` makes the writer reconnect there. `Ok` means queued, not delivered.
    pub fn send(&self, peer: &str, addr: SocketAddr, frame: Bytes) -> Result<(), SendError> {
        let max = self.inner.config.max_frame_bytes;
        if frame.len() > max {
            return Err(SendError::TooLarge { len: frame.len(), max });
        }
        if self.inner.shutdown.is_cancelled() {
            return Err(SendError::Closed);
        }
        let peers = self.inner.peers.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = peers.get(peer) {
            return entry.enqueue(addr, frame);
        }
        drop(peers);
        let mut peers = self.inner.peers.write().unwrap_or_else(PoisonError::into_inner);
        let entry = peers.entry(peer.to_owned()).or_insert_with(|| self.start_writer(peer, addr));
        entry.enqueue(addr, frame)
    }

    /// Drops `peer`'s queue, writer and outbound connection (it left or died). A later
    /// `send` to it starts afresh. Its inbound connection ends when it closes or times out.
    pub fn forget(&self, peer: &str) {
        let removed = self.inner.peers.write().unwrap_or_else(PoisonError::into_inner).remove(peer);
        if let Some(entry) = removed {
            entry.forget.cancel();
            debug!(peer, "forgot peer");
        }
    }

    /// Outbound counters per peer, sorted by node id.
    pub fn stats(&self) -> Vec<PeerStats> {
        let peers = self.inner.peers.read().unwrap_or_else(PoisonError::into_inner);
        let mut stats: Vec<PeerStats> = peers
            .iter()
            .map(|(id, peer)| {
                let c = &peer.counters;
                PeerStats {
                    peer: id.clone(),
                    addr: *peer.addr.borrow(),
                    connected: c.connected.load(Ordering::Relaxed),
                    queued: peer.queue.max_capacity() - peer.queue.capacity(),
                    frames_sent: c.frames_sent.load(Ordering::Relaxed),
                    bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
                    reconnects: c.connections.load(Ordering::Relaxed).saturating_sub(1),
                    connect_failures: c.connect_failures.load(Ordering::Relaxed),
                    dropped_full: c.dropped_full.load(Ordering::Relaxed),
                }
            })
            .collect();
        stats.sort_by(|a, b| a.peer.cmp(&b.peer));
        stats
    }

    /// Refuses new sends, lets writers flush their queues (up to `flush_timeout_ms`),
    /// then closes every connection with reason "draining".
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.shutdown.cancel();
        inner.writers.close();
        let grace = Duration::from_millis(inner.config.flush_timeout_ms);
        if tokio::time::timeout(grace, inner.writers.wait()).await.is_err() {
            warn!(node_id = %inner.node_id, "peer writers did not flush in time");
        }
        inner.endpoint.close(CLOSE_DRAINING, b"draining");
        inner.readers.close();
        let closed = async {
            inner.readers.wait().await;
            inner.endpoint.wait_idle().await;
        };
        let _ = tokio::time::timeout(grace, closed).await;
        info!(node_id = %inner.node_id, "cluster transport stopped");
    }

    fn start_writer(&self, peer: &str, addr: SocketAddr) -> Peer {
        let inner = &self.inner;
        let (queue, queue_rx) = mpsc::channel(inner.config.peer_queue_frames);
        let (addr_tx, addr_rx) = watch::channel(addr);
        let forget = CancellationToken::new();
        let counters = Arc::new(PeerCounters::new(peer));
        let writer = Writer {
            peer: peer.to_owned(),
            node_id: inner.node_id.clone(),
            endpoint: inner.endpoint.clone(),
            queue: queue_rx,
            addr: addr_rx,
            forget: forget.clone(),
            shutdown: inner.shutdown.clone(),
            counters: counters.clone(),
            backoff: Backoff::new(inner.config.reconnect_min_ms, inner.config.reconnect_max_ms),
            hello_timeout: Duration::from_millis(inner.config.hello_timeout_ms),
        };
        let span = info_span!("peer_writer", node_id = %inner.node_id, peer);
        inner.writers.spawn_on(writer.run().instrument(span), &inner.runtime);
        Peer { queue, addr: addr_tx, forget, counters }
    }
}

impl Peer {
    fn enqueue(&self, addr: SocketAddr, frame: Bytes) -> Result<(), SendError> {
        self.addr.send_if_modified(|current| {
            let moved = *current != addr;
            *current = addr;
            moved
        });
        match self.queue.try_send(frame) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
                self.counters.exported.dropped.inc();
                Err(SendError::Full)
            }
            Err(TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }
}

fn quic_transport_config(config: &TransportConfig) -> Result<Arc<quinn::TransportConfig>, TransportError> {
    let idle = IdleTimeout::try_from(Duration::from_millis(config.idle_timeout_ms))
        .map_err(|_| TransportError::Config { key: "idle_timeout_ms", reason: "is too large" })?;
    let mut quic = quinn::TransportConfig::default();
    quic.max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(Duration::from_millis(config.keep_alive_ms)))
        // One stream per connection, opened by the connecting side.
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .datagram_receive_buffer_size(None);
    Ok(Arc::new(quic))
}

/// Why a connection to or from a peer ended or never began (logged, never returned).
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Connect(#[from] quinn::ConnectError),
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
    #[error(transparent)]
    Write(quinn::WriteError),
    #[error(transparent)]
    Read(quinn::ReadError),
    #[error(transparent)]
    Stream(#[from] quinn::ClosedStream),
    #[error("no hello within the timeout")]
    HelloTimeout,
    #[error("the first frame is not a valid hello")]
    BadHello,
    #[error("expected node {expected:?}, reached {found:?}")]
    WrongPeer { expected: String, found: String },
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("the stream ended inside a frame")]
    Truncated,
}

// A stream error that only says "connection lost" hides why: keep the connection's reason.
impl From<quinn::WriteError> for LinkError {
    fn from(error: quinn::WriteError) -> Self {
        match error {
            quinn::WriteError::ConnectionLost(lost) => LinkError::Connection(lost),
            other => LinkError::Write(other),
        }
    }
}

impl From<quinn::ReadError> for LinkError {
    fn from(error: quinn::ReadError) -> Self {
        match error {
            quinn::ReadError::ConnectionLost(lost) => LinkError::Connection(lost),
            other => LinkError::Read(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid_and_checks_catch_bad_values() {
        assert_eq!(TransportConfig::default().check(), Ok(()));
        let bad = TransportConfig { keep_alive_ms: 10_000, ..TransportConfig::default() };
        assert_eq!(bad.check().unwrap_err().0, "keep_alive_ms");
        let bad = TransportConfig { peer_queue_frames: 0, ..TransportConfig::default() };
        assert_eq!(bad.check().unwrap_err().0, "peer_queue_frames");
    }
}
