//! A session's outbox: the bounded queue every event reaches the session
//! through, and the flag that cuts the session off.
//!
//! Every open session holds one, idle or not, so it is small: a queue that
//! allocates only when frames wait, one `Notify` for "frames or a cut", and
//! the cut in an atomic. (A tokio `mpsc` channel plus two cancellation tokens
//! held about 1 KiB per session before anything was sent.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::outgoing::Outgoing;

/// Why a session is cut off from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Its outbox overflowed: it does not read fast enough.
    Slow,
    /// Its application's secret was rotated.
    Revoked,
    /// The node is draining.
    Drain,
}

/// A session's outbox; cheap to clone (the hub holds one, the session another).
#[derive(Clone)]
pub struct Outbox(Arc<Inner>);

struct Inner {
    queue: Mutex<VecDeque<Arc<Outgoing>>>,
    capacity: usize,
    /// Woken on a push or a cut; it keeps one wake-up for a session not waiting yet.
    ready: Notify,
    /// 0, or the first [`Cut`] (1 slow, 2 revoked, 3 drain).
    cut: AtomicU8,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames.
    pub fn new(capacity: usize) -> Self {
        Self(Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            cut: AtomicU8::new(0),
        }))
    }

    /// Queues `item`; a full outbox cuts its session off as slow instead.
    pub fn push(&self, item: Arc<Outgoing>) {
        let full = {
            let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let full = queue.len() >= self.0.capacity;
            if !full {
                queue.push_back(item);
            }
            full
        };
        if full {
            self.cut(Cut::Slow);
        } else {
            self.0.ready.notify_one();
        }
    }

    /// Cuts the session off (the first cut wins).
    pub fn cut(&self, why: Cut) {
        let code = match why {
            Cut::Slow => 1,
            Cut::Revoked => 2,
            Cut::Drain => 3,
        };
        if self.0.cut.compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.0.ready.notify_one();
        }
    }

    /// The cut, if any.
    pub fn is_cut(&self) -> Option<Cut> {
        match self.0.cut.load(Ordering::Acquire) {
            0 => None,
            1 => Some(Cut::Slow),
            2 => Some(Cut::Revoked),
            _ => Some(Cut::Drain),
        }
    }

    /// Waits until frames wait or the session is cut.
    pub async fn ready(&self) {
        loop {
            let waiting = !self.0.queue.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
            if waiting || self.is_cut().is_some() {
                return;
            }
            self.0.ready.notified().await;
        }
    }

    /// Waits until the session is cut.
    pub async fn cut_off(&self) -> Cut {
        loop {
            if let Some(why) = self.is_cut() {
                return why;
            }
            self.0.ready.notified().await;
        }
    }

    /// Takes up to `max` waiting frames, oldest first.
    pub fn take(&self, max: usize) -> Vec<Arc<Outgoing>> {
        let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let n = queue.len().min(max);
        let items: Vec<_> = queue.drain(..n).collect();
        if queue.is_empty() && queue.capacity() > 64 {
            // A burst is over: an idle session does not keep its peak.
            queue.shrink_to_fit();
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn item(n: u64) -> Arc<Outgoing> {
        Arc::new(Outgoing::Frame { kind: "typing", frame: format!("{n}").into() })
    }

    #[tokio::test]
    async fn frames_wait_in_order_and_an_overflow_cuts_as_slow() {
        let outbox = Outbox::new(3);
        for n in 0..3 {
            outbox.push(item(n));
        }
        assert_eq!(outbox.is_cut(), None);
        tokio::time::timeout(Duration::from_secs(1), outbox.ready()).await.unwrap();
        assert_eq!(outbox.take(2).len(), 2);
        outbox.push(item(3));
        outbox.push(item(4));
        assert_eq!(outbox.is_cut(), None, "room again after the take");
        outbox.push(item(5));
        assert_eq!(outbox.is_cut(), Some(Cut::Slow));
        // A later cut does not replace the first.
        outbox.cut(Cut::Revoked);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), outbox.cut_off()).await.unwrap(), Cut::Slow);
        assert_eq!(outbox.take(10).len(), 3);
    }

    #[tokio::test]
    async fn a_waiting_session_wakes_on_a_push_or_a_cut() {
        let outbox = Outbox::new(8);
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.ready().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        outbox.push(item(1));
        tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();

        let cut = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.cut_off().await }
        });
        // A push wakes it, but it waits on for the cut.
        outbox.push(item(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!cut.is_finished());
        outbox.cut(Cut::Revoked);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), cut).await.unwrap().unwrap(), Cut::Revoked);
    }
}
