//! A WebSocket's socket as two writers share it: the session, which reads and
//! writes it through tungstenite, and the fan-out, which writes a live frame
//! straight to it while the session has nothing queued (issue 15: no task
//! wake-up per recipient per message).
//!
//! Frames must not interleave, so every write is of whole frames and goes
//! through one lock: what the socket does not take at once waits here, in
//! order, and is written before anything after it. The fan-out never waits
//! for the socket: what it could not write waits (within the outbox's byte
//! bound) for the session to flush. The session's own writes keep their
//! back-pressure: a write waits while anything is still unsent, and the part
//! of one write the socket did not take is kept here whole, so tungstenite,
//! which writes whole frames, never holds half of one.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;

/// Buffers written in one vectored write, at most.
const IOVECS: usize = 64;

/// The write side of a plain TCP socket, shared (in an `Arc`) by the session's
/// stream and the fan-out.
pub struct Wire {
    half: OwnedWriteHalf,
    unsent: Mutex<Unsent>,
}

/// What was written but not yet taken by the socket, oldest first.
#[derive(Default)]
struct Unsent {
    bufs: VecDeque<Bytes>,
    len: usize,
}

impl Unsent {
    fn keep(&mut self, buf: Bytes) {
        self.len += buf.len();
        self.bufs.push_back(buf);
    }

    /// Writes what the socket takes now, as far as it goes.
    fn write(&mut self, half: &OwnedWriteHalf) -> io::Result<()> {
        while !self.bufs.is_empty() {
            let slices: Vec<IoSlice<'_>> = self.bufs.iter().take(IOVECS).map(|b| IoSlice::new(b)).collect();
            let mut n = half.try_write_vectored(&slices)?;
            self.len -= n;
            while n > 0 {
                let Some(front) = self.bufs.front_mut() else { break };
                if n >= front.len() {
                    n -= front.len();
                    self.bufs.pop_front();
                } else {
                    let _ = front.split_to(n);
                    n = 0;
                }
            }
        }
        if self.bufs.capacity() > IOVECS {
            self.bufs.shrink_to_fit();
        }
        Ok(())
    }
}

/// What became of a frame the fan-out wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The socket took it all.
    Whole,
    /// Some or all of it waits for the session to flush it.
    Kept,
    /// Keeping it would hold more than the bound: nothing was written.
    Over,
}

impl Wire {
    /// Shares `half`.
    pub fn new(half: OwnedWriteHalf) -> Self {
        Self { half, unsent: Mutex::new(Unsent::default()) }
    }

    fn unsent(&self) -> MutexGuard<'_, Unsent> {
        self.unsent.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes whole frames without waiting, in one vectored write when the
    /// socket takes them (several per syscall when a session has several
    /// waiting): at once when nothing waits before them, and what the socket
    /// does not take is kept, unless that would hold more than `max_frames`
    /// buffers or `max_bytes` bytes.
    pub fn send_all(&self, frames: &[Bytes], max_frames: usize, max_bytes: usize) -> Sent {
        self.hold().send_all(frames, max_frames, max_bytes)
    }

    /// Takes the wire's turn: writes made through what it returns go before
    /// any write begun after this call. The fan-out takes it before it lets
    /// go of the outbox it took frames from, then writes without holding the outbox.
    pub fn hold(&self) -> Held<'_> {
        Held { half: &self.half, unsent: self.unsent() }
    }

    /// Whether anything waits to be written.
    pub fn has_unsent(&self) -> bool {
        !self.unsent().bufs.is_empty()
    }

    /// Writes what waits; ready once nothing does.
    pub fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut unsent = self.unsent();
                match unsent.write(&self.half) {
                    Ok(()) => return Poll::Ready(Ok(())),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            ready!(self.half.as_ref().poll_write_ready(cx))?;
        }
    }

    /// A write of the session's (whole frames, or an HTTP response before
    /// the upgrade): after whatever waits, and taken whole: what the socket
    /// does not take at once waits here.
    pub fn poll_write_vectored(&self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        loop {
            ready!(self.poll_drain(cx))?;
            let mut unsent = self.unsent();
            if !unsent.bufs.is_empty() {
                // The fan-out got in between: that goes first.
                continue;
            }
            match self.half.try_write_vectored(bufs) {
                Ok(n) => {
                    if n < total {
                        unsent.keep(rest_of(bufs, n));
                    }
                    return Poll::Ready(Ok(total));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            drop(unsent);
            ready!(self.half.as_ref().poll_write_ready(cx))?;
        }
    }

    /// Ends the write side (after what waits is written).
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        // The half is shared, so it is shut down through a duplicate of its descriptor.
        let fd = std::os::fd::AsFd::as_fd(self.half.as_ref()).try_clone_to_owned()?;
        Poll::Ready(std::net::TcpStream::from(fd).shutdown(std::net::Shutdown::Write))
    }
}

/// The wire's turn, taken (see [`Wire::hold`]).
pub struct Held<'a> {
    half: &'a OwnedWriteHalf,
    unsent: MutexGuard<'a, Unsent>,
}

impl Held<'_> {
    /// Whether nothing waits to be written.
    pub fn is_clear(&self) -> bool {
        self.unsent.bufs.is_empty()
    }

    /// Writes whole frames without waiting, in one vectored write when the
    /// socket takes them: see [`Wire::send_all`].
    pub fn send_all(mut self, frames: &[Bytes], max_frames: usize, max_bytes: usize) -> Sent {
        let unsent = &mut *self.unsent;
        // The first frame not wholly written.
        let mut next = 0;
        if unsent.bufs.is_empty() {
            while next < frames.len() {
                let batch = &frames[next..frames.len().min(next + IOVECS)];
                let mut slices = [IoSlice::new(&[]); IOVECS];
                for (slice, frame) in slices.iter_mut().zip(batch) {
                    *slice = IoSlice::new(frame);
                }
                let total: usize = batch.iter().map(Bytes::len).sum();
                match self.half.try_write_vectored(&slices[..batch.len()]) {
                    Ok(n) if n == total => next += batch.len(),
                    Ok(mut n) => {
                        while n >= frames[next].len() {
                            n -= frames[next].len();
                            next += 1;
                        }
                        // Half a frame cannot be taken back: it is kept whatever the bound.
                        if n > 0 {
                            unsent.keep(frames[next].slice(n..));
                            next += 1;
                        }
                        break;
                    }
                    // A broken socket too: the session's flush meets the error and closes.
                    Err(_) => break,
                }
            }
            if next == frames.len() && unsent.bufs.is_empty() {
                return Sent::Whole;
            }
        }
        let rest = &frames[next..];
        let rest_len: usize = rest.iter().map(Bytes::len).sum();
        if unsent.bufs.len() + rest.len() > max_frames || unsent.len + rest_len > max_bytes {
            return Sent::Over;
        }
        for frame in rest {
            unsent.keep(frame.clone());
        }
        Sent::Kept
    }
}

/// The bytes of `bufs` past the first `n`, copied into one buffer.
fn rest_of(bufs: &[IoSlice<'_>], mut n: usize) -> Bytes {
    let mut rest = BytesMut::new();
    for buf in bufs {
        if n >= buf.len() {
            n -= buf.len();
        } else {
            rest.extend_from_slice(&buf[n..]);
            n = 0;
        }
    }
    rest.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt as _;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: the wire's side (with a small send buffer) and the peer.
    async fn pair() -> (Wire, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        let (_read, write) = ours.into_split();
        (Wire::new(write), peer)
    }

    fn frame(n: u32, len: usize) -> Bytes {
        let mut f = n.to_be_bytes().to_vec();
        f.resize(len, b'x');
        f.into()
    }

    #[tokio::test]
    async fn frames_the_socket_cannot_take_wait_in_order_and_arrive_whole() {
        let (wire, mut peer) = pair().await;
        let len = 64 * 1024;
        let mut sent = 0u32;
        // The peer does not read: the socket's buffers fill, and frames wait.
        loop {
            let result = wire.send_all(&[frame(sent, len)], usize::MAX, usize::MAX);
            sent += 1;
            if result == Sent::Kept {
                break;
            }
            assert_eq!(result, Sent::Whole);
            assert!(sent < 10_000, "the socket never filled");
        }
        assert!(wire.has_unsent());
        for _ in 0..5 {
            assert_eq!(wire.send_all(&[frame(sent, len)], usize::MAX, usize::MAX), Sent::Kept);
            sent += 1;
        }
        // A bound below what waits refuses the next frame whole.
        assert_eq!(wire.send_all(&[frame(sent, len)], usize::MAX, 1), Sent::Over);
        // The session's own write goes after what waits.
        let drain = async {
            let tail = frame(sent, 10);
            std::future::poll_fn(|cx| wire.poll_write_vectored(cx, &[IoSlice::new(&tail)])).await.unwrap();
            std::future::poll_fn(|cx| wire.poll_drain(cx)).await.unwrap();
        };
        let read = async {
            let mut got = vec![0u8; sent as usize * len + 10];
            peer.read_exact(&mut got).await.unwrap();
            got
        };
        let ((), got) = tokio::join!(drain, read);
        for (i, chunk) in got.chunks(len).enumerate() {
            assert_eq!(&chunk[..4], &(i as u32).to_be_bytes(), "frame {i} in order and whole");
        }
        assert!(!wire.has_unsent());
    }
}
