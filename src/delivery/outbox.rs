//! A session's outbox: the bounded queue every event reaches the session
//! through, and the flag that cuts the session off.
//!
//! Every open session holds one, idle or not, so it is small: a queue that
//! allocates only when frames wait, one `Notify` for "frames or a cut", and
//! the cut in an atomic. (A tokio `mpsc` channel plus two cancellation tokens
//! held about 1 KiB per session before anything was sent.)
//!
//! It is bounded twice: in frames, and in bytes. Frames are shared by every
//! recipient, but a session that does not read keeps its own queue alive, so
//! each session counts the length of what it holds; past either bound the
//! session is cut off as slow. The two bounds are `u32`, and the byte count
//! an atomic written under the queue's lock, so that they fit in the padding
//! of the one `usize` capacity they replaced: an idle outbox is no larger.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use super::outgoing::Outgoing;

/// Why a session is cut off from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Its outbox overflowed (in frames or bytes): it does not read fast enough.
    Slow,
    /// Its application's secret was rotated.
    Revoked,
    /// The node is draining.
    Drain,
    /// The session (refresh-token family) its token belongs to was revoked.
    SessionRevoked,
}

/// What woke a session waiting on its outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// It was cut off.
    Cut(Cut),
    /// The heartbeat ticked: this is its new count.
    Tick(u64),
    /// Frames wait.
    Frames,
}

/// A session's outbox; cheap to clone (the hub holds one, the session another).
#[derive(Clone)]
pub struct Outbox(Arc<Inner>);

struct Inner {
    queue: Mutex<VecDeque<Outgoing>>,
    /// Frames held at most.
    capacity: u32,
    /// Bytes held at most (the sum of the queued frames' lengths).
    max_bytes: u32,
    /// Bytes held now; changed only under the queue's lock.
    bytes: AtomicU32,
    /// Woken on a push or a cut; it keeps one wake-up for a session not waiting yet.
    ready: Notify,
    /// 0, or the first [`Cut`] (1 slow, 2 revoked, 3 drain).
    cut: AtomicU8,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames of `max_bytes` in all.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        let bound = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).max(1);
        Self(Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            capacity: bound(capacity),
            max_bytes: bound(max_bytes),
            bytes: AtomicU32::new(0),
            ready: Notify::new(),
            cut: AtomicU8::new(0),
        }))
    }

    /// Queues `item`; a full outbox (in frames or bytes) cuts its session off as slow instead.
    pub fn push(&self, item: Outgoing) {
        let len = u32::try_from(item.byte_len()).unwrap_or(u32::MAX);
        let (full, was_empty) = {
            let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
            let bytes = self.0.bytes.load(Ordering::Relaxed).saturating_add(len);
            let (full, was_empty) =
                (queue.len() >= self.0.capacity as usize || bytes > self.0.max_bytes, queue.is_empty());
            if !full {
                queue.push_back(item);
                self.0.bytes.store(bytes, Ordering::Relaxed);
            }
            (full, was_empty)
        };
        if full {
            self.cut(Cut::Slow);
        } else if was_empty {
            // Only the first frame wakes the session: it sleeps only after
            // seeing the queue empty (under the lock), and takes all it finds.
            self.0.ready.notify_one();
        }
    }

    /// Cuts the session off (the first cut wins).
    pub fn cut(&self, why: Cut) {
        let code = match why {
            Cut::Slow => 1,
            Cut::Revoked => 2,
            Cut::Drain => 3,
            Cut::SessionRevoked => 4,
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
            3 => Some(Cut::Drain),
            _ => Some(Cut::SessionRevoked),
        }
    }

    /// Waits until the session is cut, `ticks` (the node's heartbeat count,
    /// see [`Hub::tick`](super::Hub::tick)) moved past `seen`, or frames
    /// wait, in that order of precedence: ticks are rare, and a session that
    /// always has frames waiting must still check its silence and its token.
    /// One wait covers all three, so a session woken for a frame registers
    /// one waker, not one per cause.
    pub async fn ready(&self, ticks: &AtomicU64, seen: u64) -> Wake {
        loop {
            if let Some(why) = self.is_cut() {
                return Wake::Cut(why);
            }
            let now = ticks.load(Ordering::Acquire);
            if now != seen {
                return Wake::Tick(now);
            }
            if !self.0.queue.lock().unwrap_or_else(PoisonError::into_inner).is_empty() {
                return Wake::Frames;
            }
            self.0.ready.notified().await;
        }
    }

    /// Wakes the session (or its next wait) to look at the heartbeat count.
    pub fn poke(&self) {
        self.0.ready.notify_one();
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
    #[cfg(test)]
    pub fn take(&self, max: usize) -> Vec<Outgoing> {
        let mut items = Vec::new();
        self.take_each(max, |item| items.push(item));
        items
    }

    /// Hands up to `max` waiting frames to `each`, oldest first, under the
    /// queue's lock (`each` must not wait): no list of them is made.
    pub fn take_each(&self, max: usize, mut each: impl FnMut(Outgoing)) {
        let mut queue = self.0.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let n = queue.len().min(max);
        let mut left = self.0.bytes.load(Ordering::Relaxed);
        for item in queue.drain(..n) {
            left = left.saturating_sub(u32::try_from(item.byte_len()).unwrap_or(u32::MAX));
            each(item);
        }
        self.0.bytes.store(left, Ordering::Relaxed);
        if queue.is_empty() && queue.capacity() > 64 {
            // A burst is over: an idle session does not keep its peak.
            queue.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn item(n: u64) -> Outgoing {
        Outgoing::Frame { kind: "typing", frame: format!("{n}").into() }
    }

    #[tokio::test]
    async fn frames_wait_in_order_and_an_overflow_cuts_as_slow() {
        let outbox = Outbox::new(3, 1 << 20);
        for n in 0..3 {
            outbox.push(item(n));
        }
        assert_eq!(outbox.is_cut(), None);
        let ticks = AtomicU64::new(0);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), outbox.ready(&ticks, 0)).await.unwrap(),
            Wake::Frames
        );
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

    #[test]
    fn bytes_past_the_bound_cut_as_slow_and_taking_frees_them() {
        let big = |n: usize| Outgoing::Frame { kind: "message", frame: "x".repeat(n).into() };
        let outbox = Outbox::new(100, 1_000);
        outbox.push(big(400));
        outbox.push(big(600));
        assert_eq!(outbox.is_cut(), None, "exactly at the bound");
        assert_eq!(outbox.take(1).len(), 1);
        outbox.push(big(400));
        assert_eq!(outbox.is_cut(), None, "the 400 taken were freed");
        outbox.push(big(1));
        assert_eq!(outbox.is_cut(), Some(Cut::Slow), "1,001 bytes held, few frames");
    }

    #[test]
    fn an_idle_outbox_is_no_larger_for_its_byte_bound() {
        // Every idle session holds one (`docs/benchmarks.md`, idle memory).
        assert!(size_of::<Inner>() <= 88, "{}", size_of::<Inner>());
    }

    #[tokio::test]
    async fn a_tick_wakes_a_waiting_session_and_is_not_lost_before_it_waits() {
        let outbox = Outbox::new(8, 1 << 20);
        let ticks = Arc::new(AtomicU64::new(0));
        let waiter = tokio::spawn({
            let (outbox, ticks) = (outbox.clone(), Arc::clone(&ticks));
            async move { outbox.ready(&ticks, 0).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "nothing happened yet");
        ticks.fetch_add(1, Ordering::Release);
        outbox.poke();
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap(),
            Wake::Tick(1)
        );
        // A tick seen already does not wake; one that came while the session
        // was busy (poked before it waited) does.
        let seen = tokio::time::timeout(Duration::from_millis(50), outbox.ready(&ticks, 1)).await;
        assert!(seen.is_err(), "tick 1 was seen");
        ticks.fetch_add(1, Ordering::Release);
        outbox.poke();
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), outbox.ready(&ticks, 1)).await.unwrap(),
            Wake::Tick(2)
        );
        // A tick comes before waiting frames (a session always busy writing
        // still checks its silence and its token), then the frames; a cut before both.
        outbox.push(item(1));
        assert_eq!(outbox.ready(&ticks, 0).await, Wake::Tick(2));
        assert_eq!(outbox.ready(&ticks, 2).await, Wake::Frames);
        outbox.cut(Cut::Drain);
        assert_eq!(outbox.ready(&ticks, 2).await, Wake::Cut(Cut::Drain));
    }

    #[tokio::test]
    async fn a_waiting_session_wakes_on_a_push_or_a_cut() {
        let outbox = Outbox::new(8, 1 << 20);
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.ready(&AtomicU64::new(0), 0).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        outbox.push(item(1));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap(),
            Wake::Frames
        );

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
