//! One peer's outbound side: a task that owns its queue and connection, connects,
//! says hello, writes batches of frames, and reconnects with backoff.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use quinn::{Connection, Endpoint, SendStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::frame::{FrameReader, HELLO_MAX_BYTES, encode_frame, hello_frame, parse_hello};
use super::{
    CLOSE_DRAINING, CLOSE_FORGOTTEN, CLOSE_MOVED, CLOSE_PROTOCOL, CLOSE_WRONG_PEER, LinkError, PeerCounters,
};
use crate::cluster::tls::SERVER_NAME;

/// Frames one write may carry at most.
const BATCH_MAX_FRAMES: usize = 1024;
/// Bytes past which a write takes no further frame.
const BATCH_MAX_BYTES: usize = 256 * 1024;

/// Owns one peer's queue and connection: connects, says hello, writes batches, reconnects.
pub(super) struct Writer {
    pub(super) peer: String,
    pub(super) node_id: Arc<str>,
    pub(super) endpoint: Endpoint,
    pub(super) queue: mpsc::Receiver<Bytes>,
    pub(super) addr: watch::Receiver<SocketAddr>,
    pub(super) forget: CancellationToken,
    pub(super) shutdown: CancellationToken,
    pub(super) counters: Arc<PeerCounters>,
    pub(super) backoff: Backoff,
    pub(super) hello_timeout: Duration,
}

/// How a live connection ended.
enum End {
    /// `forget`, or the transport went away: stop at once.
    Stop,
    /// Shutdown: the queue was flushed.
    Flushed,
    /// `send` named a new address: reconnect there now.
    Moved,
    /// The connection broke: reconnect after a backoff.
    Lost(LinkError),
}

impl Writer {
    pub(super) async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            let addr = *self.addr.borrow_and_update();
            // Shutdown lets an attempt under way finish, to flush the queue: the
            // endpoint's close at the end of the flush window cuts it short.
            let attempt = tokio::select! {
                biased;
                _ = self.forget.cancelled() => return,
                attempt = self.connect(addr) => attempt,
            };
            match attempt {
                Ok((conn, send)) => {
                    self.backoff.reset();
                    failures = 0;
                    self.counters.connected.store(true, Ordering::Relaxed);
                    if self.counters.connections.fetch_add(1, Ordering::Relaxed) > 0 {
                        self.counters.exported.reconnects.inc();
                    }
                    info!(%addr, "connected to peer");
                    let end = self.pump(&conn, send, addr).await;
                    self.counters.connected.store(false, Ordering::Relaxed);
                    match end {
                        End::Stop => {
                            conn.close(CLOSE_FORGOTTEN, b"forgotten");
                            return;
                        }
                        End::Flushed => return,
                        End::Moved => {
                            conn.close(CLOSE_MOVED, b"peer moved");
                            info!(from = %addr, to = %*self.addr.borrow(), "peer moved, reconnecting");
                            continue;
                        }
                        End::Lost(LinkError::Connection(quinn::ConnectionError::ApplicationClosed(
                            close,
                        ))) if close.error_code == CLOSE_DRAINING => {
                            info!(%addr, "peer is draining");
                        }
                        End::Lost(error) => warn!(%addr, %error, "lost connection to peer"),
                    }
                }
                Err(error) => {
                    failures += 1;
                    self.counters.connect_failures.fetch_add(1, Ordering::Relaxed);
                    // The first failure says something; the rest repeat it until it changes.
                    if failures == 1 {
                        warn!(%addr, %error, "cannot connect to peer");
                    } else {
                        debug!(%addr, %error, failures, "cannot connect to peer");
                    }
                }
            }
            let delay = self.backoff.next_delay();
            tokio::select! {
                biased;
                _ = self.forget.cancelled() => return,
                _ = self.shutdown.cancelled() => return,
                changed = self.addr.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Connects, sends our hello and checks the peer's.
    async fn connect(&self, addr: SocketAddr) -> Result<(Connection, SendStream), LinkError> {
        let conn = self.endpoint.connect(addr, SERVER_NAME)?.await?;
        let exchange = async {
            let (mut send, recv) = conn.open_bi().await?;
            send.write_chunk(hello_frame(&self.node_id)).await?;
            // The server's verdict on our certificate arrives after our handshake completes:
            // only its hello proves that it accepted us.
            let mut reader = FrameReader::new(recv, HELLO_MAX_BYTES);
            let found = parse_hello(&reader.next().await?.ok_or(LinkError::BadHello)?)?;
            Ok::<_, LinkError>((send, found))
        };
        let (send, found) = match tokio::time::timeout(self.hello_timeout, exchange).await {
            Ok(Ok(exchanged)) => exchanged,
            Ok(Err(error)) => {
                conn.close(CLOSE_PROTOCOL, b"bad hello");
                return Err(error);
            }
            Err(_) => {
                conn.close(CLOSE_PROTOCOL, b"no hello");
                return Err(LinkError::HelloTimeout);
            }
        };
        if found != self.peer {
            conn.close(CLOSE_WRONG_PEER, b"wrong peer");
            return Err(LinkError::WrongPeer { expected: self.peer.clone(), found });
        }
        Ok((conn, send))
    }

    /// Writes queued frames until the connection ends or the writer is told to stop.
    async fn pump(&mut self, conn: &Connection, mut send: SendStream, addr: SocketAddr) -> End {
        loop {
            let first = tokio::select! {
                biased;
                _ = self.forget.cancelled() => return End::Stop,
                _ = self.shutdown.cancelled() => return self.flush(conn, send).await,
                changed = self.addr.changed() => match changed {
                    Err(_) => return End::Stop,
                    Ok(()) if *self.addr.borrow_and_update() != addr => return End::Moved,
                    Ok(()) => continue,
                },
                error = conn.closed() => return End::Lost(error.into()),
                frame = self.queue.recv() => match frame {
                    Some(frame) => frame,
                    None => return End::Stop,
                },
            };
            let (batch, frames) = self.batch(first);
            tokio::select! {
                biased;
                _ = self.forget.cancelled() => return End::Stop,
                written = self.write(&mut send, batch, frames) => if let Err(error) = written {
                    return End::Lost(error);
                },
            }
        }
    }

    /// At shutdown: writes what is queued, finishes the stream and waits until the peer
    /// has read it to the end and closed the connection (the caller bounds the wait).
    async fn flush(&mut self, conn: &Connection, mut send: SendStream) -> End {
        while let Ok(first) = self.queue.try_recv() {
            let (batch, frames) = self.batch(first);
            if let Err(error) = self.write(&mut send, batch, frames).await {
                debug!(%error, "flush interrupted");
                return End::Flushed;
            }
        }
        // Acknowledged stream data may still sit unread in the peer's buffers, and closing
        // the connection would discard it: the peer closes once it has read everything.
        if send.finish().is_ok() {
            conn.closed().await;
        }
        End::Flushed
    }

    /// `first` and whatever else is queued, up to the batch limits, as one buffer.
    fn batch(&mut self, first: Bytes) -> (Bytes, u64) {
        let mut buf = BytesMut::with_capacity(4 + first.len());
        encode_frame(&mut buf, &first);
        let mut frames = 1;
        while frames < BATCH_MAX_FRAMES && buf.len() < BATCH_MAX_BYTES {
            match self.queue.try_recv() {
                Ok(frame) => {
                    encode_frame(&mut buf, &frame);
                    frames += 1;
                }
                Err(_) => break,
            }
        }
        (buf.freeze(), frames as u64)
    }

    async fn write(&self, send: &mut SendStream, batch: Bytes, frames: u64) -> Result<(), LinkError> {
        let bytes = batch.len() as u64 - 4 * frames;
        send.write_chunk(batch).await?;
        self.counters.frames_sent.fetch_add(frames, Ordering::Relaxed);
        self.counters.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.counters.exported.frames_sent.inc_by(frames);
        self.counters.exported.bytes_sent.inc_by(bytes);
        Ok(())
    }
}

/// Exponential backoff with jitter: waits between half and all of the current step.
pub(super) struct Backoff {
    min_ms: u64,
    max_ms: u64,
    step_ms: u64,
}

impl Backoff {
    pub(super) fn new(min_ms: u64, max_ms: u64) -> Backoff {
        Backoff { min_ms, max_ms, step_ms: min_ms }
    }

    fn reset(&mut self) {
        self.step_ms = self.min_ms;
    }

    fn next_delay(&mut self) -> Duration {
        let step = self.step_ms;
        self.step_ms = step.saturating_mul(2).min(self.max_ms);
        // Jitter keeps the nodes that lost the same peer from reconnecting in lockstep.
        Duration::from_millis(step - step / 2 + rand::random_range(0..=step / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        let mut backoff = Backoff::new(50, 400);
        let steps: Vec<u64> = (0..6).map(|_| backoff.next_delay().as_millis() as u64).collect();
        for (delay, step) in steps.iter().zip([50, 100, 200, 400, 400, 400]) {
            assert!((step - step / 2..=step).contains(delay), "{delay} ms for a step of {step}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(50));
    }
}
