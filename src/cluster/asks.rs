//! Questions to peers waiting for their answers: which sessions of a user
//! have a socket open on each node (`Wire::SessionsAsk` / `Wire::SessionsHere`).
//!
//! The asker registers the peers it asks before sending, collects what they
//! answer, and stops at the last answer or after a bounded wait, whichever
//! comes first: a peer that is slow or dead (SIGKILLed, not yet declared gone
//! by gossip) is counted as holding nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// At most this many session ids are kept from one peer's answer (a peer
/// holds a handful of a user's sessions; a larger answer is cut, not stored).
const MAX_SIDS_PER_ANSWER: usize = 1_024;

/// One question in flight.
struct Pending {
    /// The peers that have not answered yet.
    peers: HashSet<String>,
    /// The session ids answered so far.
    sids: HashSet<String>,
    /// Fired when the last peer answers.
    done: Option<oneshot::Sender<()>>,
}

/// Questions waiting for their answers; cheap to clone.
#[derive(Clone, Default)]
pub struct Asks {
    next: Arc<AtomicU64>,
    pending: Arc<Mutex<HashMap<u64, Pending>>>,
}

impl Asks {
    /// Starts waiting for `peers`; the number to ask them with, and what
    /// fires once they have all answered.
    pub fn expect(&self, peers: HashSet<String>) -> (u64, oneshot::Receiver<()>) {
        let ask = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (done, wait) = oneshot::channel();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.insert(ask, Pending { peers, sids: HashSet::new(), done: Some(done) });
        (ask, wait)
    }

    /// `peer` answered `ask` with `sids` (or will not answer: an empty list).
    /// An answer to no pending question, or from a peer not asked, is ignored.
    pub fn answered(&self, ask: u64, peer: &str, sids: Vec<String>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = pending.get_mut(&ask) else { return };
        if !entry.peers.remove(peer) {
            return;
        }
        entry.sids.extend(sids.into_iter().take(MAX_SIDS_PER_ANSWER));
        if entry.peers.is_empty()
            && let Some(done) = entry.done.take()
        {
            let _ = done.send(());
        }
    }

    /// Stops waiting for `ask` (answered or timed out): the session ids
    /// answered, and the peers that did not answer.
    pub fn finish(&self, ask: u64) -> (HashSet<String>, HashSet<String>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.remove(&ask).map(|p| (p.sids, p.peers)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_are_collected_until_the_last_peer() {
        let asks = Asks::default();
        let (ask, mut wait) = asks.expect(["b".to_owned(), "c".to_owned()].into());
        asks.answered(ask, "b", vec!["s1".into()]);
        // An unasked peer, a repeat and an unknown question change nothing.
        asks.answered(ask, "x", vec!["forged".into()]);
        asks.answered(ask, "b", vec!["again".into()]);
        asks.answered(ask + 1, "c", vec!["other".into()]);
        assert!(wait.try_recv().is_err(), "done before every peer answered");
        asks.answered(ask, "c", vec!["s2".into()]);
        wait.await.unwrap();
        let (sids, silent) = asks.finish(ask);
        assert_eq!(sids, ["s1".to_owned(), "s2".to_owned()].into());
        assert!(silent.is_empty());
        assert_eq!(asks.finish(ask), Default::default());
    }

    #[test]
    fn a_silent_peer_is_reported_at_finish() {
        let asks = Asks::default();
        let (ask, _wait) = asks.expect(["b".to_owned(), "c".to_owned()].into());
        asks.answered(ask, "c", vec!["s2".into()]);
        let (sids, silent) = asks.finish(ask);
        assert_eq!(sids, ["s2".to_owned()].into());
        assert_eq!(silent, ["b".to_owned()].into());
    }
}
