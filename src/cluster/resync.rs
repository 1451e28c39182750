//! Chats owed a resync signal by a peer: live frames of theirs to that peer were
//! dropped because its queue was full.
//!
//! The transport drops rather than waits (a slow peer must not stall this node),
//! and a dropped frame leaves a gap the client's own rule would only notice at
//! the next message. So the sender remembers which chats lost frames to which
//! peer, and sends that peer one `resync` event per chat once its queue takes
//! frames again; the peer hands it to its sessions of the chat, which `sync` it.
//! The set is bounded per peer: past the bound a drop is only covered by the
//! client's gap rule, as before.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use super::fabric::Peers;
use super::transport::{SendError, Transport};
use super::wire::{Wire, WireAudience, WireEvent};
use crate::ids::{AppId, ChatNumber};

/// Chats remembered for one peer, at most.
const MAX_PER_PEER: usize = 10_000;

/// How often owed signals are tried again while a peer's queue is full.
const RETRY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Inner {
    chats: HashMap<String, BTreeSet<(AppId, ChatNumber)>>,
    /// A task is sending the owed signals.
    flushing: bool,
}

/// The chats owed a resync, per peer; cheap to clone.
#[derive(Clone, Default)]
pub struct Owed {
    inner: Arc<Mutex<Inner>>,
}

impl Owed {
    /// A frame of `chat` to `peer` was dropped; starts sending the signal
    /// (through `transport`, to the address `peers` knows) unless a task already is.
    pub fn record(&self, peer: &str, app: &AppId, chat: ChatNumber, transport: &Transport, peers: &Peers) {
        let start = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let chats = inner.chats.entry(peer.to_owned()).or_default();
            if chats.len() < MAX_PER_PEER {
                chats.insert((app.clone(), chat));
            }
            !std::mem::replace(&mut inner.flushing, true)
        };
        if start {
            tokio::spawn(self.clone().flush(transport.clone(), peers.clone()));
        }
    }

    /// Sends the owed signals until none is left.
    async fn flush(self, transport: Transport, peers: Peers) {
        loop {
            tokio::time::sleep(RETRY).await;
            let owed: Vec<(String, Vec<(AppId, ChatNumber)>)> = {
                let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
                inner
                    .chats
                    .iter()
                    .map(|(peer, chats)| (peer.clone(), chats.iter().cloned().collect()))
                    .collect()
            };
            for (peer, chats) in owed {
                let sent = send_owed(&transport, &peers, &peer, &chats);
                let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(left) = inner.chats.get_mut(&peer) {
                    for done in &chats[..sent] {
                        left.remove(done);
                    }
                    if left.is_empty() {
                        inner.chats.remove(&peer);
                    }
                }
            }
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if inner.chats.is_empty() {
                inner.flushing = false;
                return;
            }
        }
    }
}

/// Queues the signals of `chats` for `peer` in order; returns how many are
/// done with (sent, or moot because the peer is gone), stopping at a full queue.
fn send_owed(transport: &Transport, peers: &Peers, peer: &str, chats: &[(AppId, ChatNumber)]) -> usize {
    let Some(addr) = peers.get(peer) else {
        // Gone: its sessions reconnect elsewhere and resume with `hello`.
        return chats.len();
    };
    let resyncs = crate::metrics::metrics().quic_resyncs.with_label_values(&[peer]);
    for (done, (app, chat)) in chats.iter().enumerate() {
        let wire = Wire::Event {
            app: app.as_str().to_owned(),
            event: Box::new(WireEvent::Resync { chat: chat.get() }),
            audience: WireAudience::Chat { chat: chat.get(), except: None },
        };
        match transport.send(peer, addr, Bytes::from(wire.encode())) {
            Ok(()) => resyncs.inc(),
            Err(SendError::Full) => return done,
            Err(e) => {
                tracing::warn!(peer, error = %e, "cannot send a resync signal");
            }
        }
    }
    chats.len()
}
