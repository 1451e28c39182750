//! The accepting side: every connection a peer opens, its hello, then its frames
//! handed to the node's inbound channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::frame::{FrameReader, HELLO_MAX_BYTES, hello_frame, parse_hello};
use super::{CLOSE_DRAINING, CLOSE_PROTOCOL, CLOSE_SUPERSEDED, Inbound, LinkError};

/// What the accept loop and its connection tasks share.
pub(super) struct Acceptor {
    pub(super) node_id: Arc<str>,
    pub(super) inbound: mpsc::Sender<Inbound>,
    pub(super) max_frame_bytes: usize,
    pub(super) hello_timeout: Duration,
    /// The current inbound connection of each peer, and a token cancelled when its
    /// reader has stopped delivering.
    pub(super) conns: Mutex<HashMap<String, (Connection, CancellationToken)>>,
    pub(super) readers: TaskTracker,
}

pub(super) async fn accept_loop(endpoint: Endpoint, acceptor: Arc<Acceptor>) {
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        let span =
            info_span!("peer_conn", node_id = %acceptor.node_id, %remote, peer = tracing::field::Empty);
        acceptor.readers.spawn(serve_peer(incoming, acceptor.clone()).instrument(span));
    }
}

/// One inbound connection: TLS (done by rustls), hellos, then frames to `inbound`.
async fn serve_peer(incoming: quinn::Incoming, acceptor: Arc<Acceptor>) {
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(error) => {
            warn!(%error, "refused peer connection");
            return;
        }
    };
    let (peer, mut reader) =
        match tokio::time::timeout(acceptor.hello_timeout, accept_hello(&conn, &acceptor)).await {
            Ok(Ok(hello)) => hello,
            Ok(Err(error)) => {
                conn.close(CLOSE_PROTOCOL, b"bad hello");
                warn!(%error, "refused peer connection");
                return;
            }
            Err(_) => {
                conn.close(CLOSE_PROTOCOL, b"no hello");
                warn!(error = %LinkError::HelloTimeout, "refused peer connection");
                return;
            }
        };
    tracing::Span::current().record("peer", peer.as_str());

    // A peer has one current connection. A newer one (it reconnected) waits until the
    // older one's reader has stopped, so that frames reach `inbound` in the order sent.
    let done = CancellationToken::new();
    let _done = done.clone().drop_guard();
    let previous = acceptor
        .conns
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(peer.clone(), (conn.clone(), done));
    if let Some((old, old_done)) = previous {
        old.close(CLOSE_SUPERSEDED, b"superseded");
        old_done.cancelled().await;
    }
    debug!("peer connected");

    let result = deliver(&conn, &mut reader, &peer, &acceptor).await;
    {
        let mut conns = acceptor.conns.lock().unwrap_or_else(PoisonError::into_inner);
        if conns.get(&peer).is_some_and(|(current, _)| current.stable_id() == conn.stable_id()) {
            conns.remove(&peer);
        }
    }
    match result {
        Ok(()) => {
            // Everything is read: the peer's flush waits for this close.
            conn.close(CLOSE_DRAINING, b"finished");
            debug!("peer finished its stream");
        }
        Err(LinkError::Connection(quinn::ConnectionError::LocallyClosed)) => debug!("peer connection closed"),
        Err(error) => info!(%error, "peer connection ended"),
    }
}

/// Reads the peer's hello and answers with ours.
async fn accept_hello(conn: &Connection, acceptor: &Acceptor) -> Result<(String, FrameReader), LinkError> {
    let (mut send, recv) = conn.accept_bi().await?;
    let mut reader = FrameReader::new(recv, HELLO_MAX_BYTES);
    let peer = parse_hello(&reader.next().await?.ok_or(LinkError::BadHello)?)?;
    send.write_chunk(hello_frame(&acceptor.node_id)).await?;
    send.finish()?;
    reader.max = acceptor.max_frame_bytes;
    Ok((peer, reader))
}

/// Hands every frame to `inbound`; waiting on it slows this peer's stream only.
async fn deliver(
    conn: &Connection,
    reader: &mut FrameReader,
    peer: &str,
    acceptor: &Acceptor,
) -> Result<(), LinkError> {
    let m = crate::metrics::metrics();
    let (frames, bytes) =
        (m.quic_frames_received.with_label_values(&[peer]), m.quic_bytes_received.with_label_values(&[peer]));
    loop {
        let frame = match reader.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(()),
            Err(error) => {
                if matches!(error, LinkError::FrameTooLarge { .. } | LinkError::Truncated) {
                    conn.close(CLOSE_PROTOCOL, b"bad frame");
                }
                return Err(error);
            }
        };
        frames.inc();
        bytes.inc_by(frame.len() as u64);
        if acceptor.inbound.send(Inbound { from: peer.to_owned(), frame }).await.is_err() {
            // Nobody receives any more: the node is stopping.
            conn.close(CLOSE_DRAINING, b"draining");
            return Ok(());
        }
    }
}
