//! A session's outbox: the bounded queue every event reaches the session
//! through, the flag that cuts the session off, and, when the session's
//! socket is plain TCP, the way to that socket that lets the fan-out write a
//! live frame itself while the session has nothing queued.
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
//! of the one `usize` capacity they replaced.
//!
//! **Written by the hub's flusher.** A delivery to a session that waits with
//! an empty queue used to wake its task, which took the frame and wrote it: a
//! task wake-up (scheduler, `select!`, wakers) per recipient per message. Now
//! a fan-out [`stage`](Outbox::stage)s the frame (a push that wakes no one)
//! and whoever staged the first frame waiting [`flush`](Outbox::flush)es the
//! outbox after (the hub's flusher task): while the session is *direct*, the
//! flush writes everything waiting to the socket itself ([`Wire`]), in one
//! vectored write, however many fan-outs staged meanwhile. The session turns
//! direct only at a point where nothing it took is still unwritten: after the
//! welcome, and after writing a batch that left the queue empty; taking frames
//! to write itself ends it, and so do a catch-up (which must come before the
//! live traffic it covers) and the close. So frames reach the socket in the
//! order they were staged. A frame the socket does not take at once waits in
//! the wire, within the same byte bound, and wakes the session to flush it.
//!
//! The outbox also keeps what a session's catch-ups must know ([`Seen`]): the
//! live messages it was sent, and the ones a catch-up carried (whose live
//! copies are skipped), since both kinds of writer deliver live messages.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::outgoing::Outgoing;
use super::wire::{Sent, Wire};
use crate::ids::{ChatNumber, MessageNumber};

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

/// What became of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Written to the socket by a flush (or kept in the wire for the session to flush).
    Written,
    /// Queued for the session to write.
    Queued,
    /// Not for this session: a catch-up carried it already, or the session is cut off.
    Dropped,
}

/// What became of a [`stage`](Outbox::stage)d item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staged {
    /// It is the first waiting: the one who staged it flushes the outbox.
    First,
    /// Others wait before it: it goes with them.
    Behind,
    /// The session is cut off (now, or before).
    Dropped,
}

/// What [`flush`](Outbox::flush)es (or a session) wrote, counted for the
/// metrics once per batch: every session shares these counters.
#[derive(Default)]
pub struct Flushed {
    /// `message` frames written.
    pub written: u64,
    /// Other frames written, by kind (few kinds: a short list).
    pub frames: Vec<(&'static str, u64)>,
}

impl Flushed {
    /// Counts `item`, written at `now` (ms since the epoch); a message's
    /// delivery latency is observed here.
    pub fn count(&mut self, item: &Outgoing, now: i64) {
        match item {
            Outgoing::Message { at, .. } => {
                self.written += 1;
                let waited = now.saturating_sub(*at).max(0);
                crate::metrics::metrics().delivery_seconds.observe(waited as f64 / 1000.0);
            }
            Outgoing::Frame { kind, .. } => match self.frames.iter_mut().find(|(k, _)| k == kind) {
                Some((_, n)) => *n += 1,
                None => self.frames.push((kind, 1)),
            },
        }
    }

    /// Adds what was counted to the node's metrics.
    pub fn record(&self) {
        let m = crate::metrics::metrics();
        if self.written > 0 {
            m.messages_out.inc_by(self.written);
        }
        for (kind, n) in &self.frames {
            m.frames_out.with_label_values(&[kind]).inc_by(*n);
        }
    }
}

/// A session's outbox; cheap to clone (the hub holds one, the session another).
#[derive(Clone)]
pub struct Outbox(Arc<Inner>);

struct Inner {
    queue: Mutex<Queue>,
    /// The session's socket, when it is plain TCP: the fan-out may write to it.
    wire: Option<Arc<Wire>>,
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

/// What the queue's lock guards.
#[derive(Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    /// The fan-out writes to the wire itself (see the module doc).
    direct: bool,
    /// Made at the first live message.
    seen: Option<Box<Seen>>,
}

impl Queue {
    /// Whether the live message `seq` of `chat` is for the session (a
    /// catch-up did not carry it), recording it as sent if so.
    fn admit(&mut self, item: &Outgoing) -> bool {
        let Outgoing::Message { chat, seq, .. } = item else { return true };
        self.seen.get_or_insert_default().admit(*chat, *seq)
    }
}

/// The live messages a session was sent most recently, so that a later
/// catch-up does not repeat them, and per resumed chat the newest numbers its
/// catch-up carried, so that their live copies are skipped.
#[derive(Default)]
struct Seen {
    live: VecDeque<(ChatNumber, MessageNumber)>,
    carried: HashMap<ChatNumber, HashSet<MessageNumber>>,
}

impl Seen {
    /// Live messages remembered: the outbox size bounds how far a catch-up can trail live traffic.
    const KEEP: usize = 1024;

    fn admit(&mut self, chat: ChatNumber, seq: MessageNumber) -> bool {
        if self.carried.get(&chat).is_some_and(|carried| carried.contains(&seq)) {
            return false;
        }
        if self.live.len() == Self::KEEP {
            self.live.pop_front();
        }
        self.live.push_back((chat, seq));
        true
    }
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames of `max_bytes` in
    /// all, for a session whose socket is `wire` when it is plain TCP.
    pub fn new(capacity: usize, max_bytes: usize, wire: Option<Arc<Wire>>) -> Self {
        let bound = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).max(1);
        Self(Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wire,
            capacity: bound(capacity),
            max_bytes: bound(max_bytes),
            bytes: AtomicU32::new(0),
            ready: Notify::new(),
            cut: AtomicU8::new(0),
        }))
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.0.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Delivers `item` on its own: [`stage`](Self::stage)d, then
    /// [`flush`](Self::flush)ed when it is the first waiting.
    pub fn deliver(&self, item: &Outgoing) -> Delivered {
        match self.stage(item) {
            Staged::Dropped => Delivered::Dropped,
            Staged::Behind => Delivered::Queued,
            Staged::First => self.flush(true, &mut Vec::new(), &mut Flushed::default()),
        }
    }

    /// Puts `item` in the queue without waking anyone: whoever staged the
    /// first of what waits (`Staged::First`) must [`flush`](Self::flush) the
    /// outbox after, and what is staged behind it meanwhile goes with it. A
    /// full outbox (in frames or bytes) cuts its session off as slow instead.
    pub fn stage(&self, item: &Outgoing) -> Staged {
        if self.is_cut().is_some() {
            return Staged::Dropped;
        }
        let len = u32::try_from(item.byte_len()).unwrap_or(u32::MAX);
        let mut queue = self.queue();
        let bytes = self.0.bytes.load(Ordering::Relaxed).saturating_add(len);
        if queue.items.len() >= self.0.capacity as usize || bytes > self.0.max_bytes {
            drop(queue);
            self.cut(Cut::Slow);
            return Staged::Dropped;
        }
        let first = queue.items.is_empty();
        queue.items.push_back(item.clone());
        self.0.bytes.store(bytes, Ordering::Relaxed);
        if first {
            return Staged::First;
        }
        if queue.direct && (queue.items.len() * 2 > self.0.capacity as usize || bytes > self.0.max_bytes / 2)
        {
            // Half full while it waits for the flusher (its interval, or a
            // long round): the session writes it now rather than be taken for
            // a slow consumer (it stops being direct when it takes these).
            drop(queue);
            self.0.ready.notify_one();
        }
        Staged::Behind
    }

    /// Hands what waits on: written to the socket now, in one vectored write,
    /// when the session is direct and `may_write`; else the session is woken
    /// to write it. `frames` is scratch space for the writes (kept by the
    /// caller across flushes), `done` counts what was written. `Dropped`:
    /// nothing waited (the session took it), or only what a catch-up carried.
    pub fn flush(&self, may_write: bool, frames: &mut Vec<bytes::Bytes>, done: &mut Flushed) -> Delivered {
        let mut queue = self.queue();
        if queue.items.is_empty() {
            return Delivered::Dropped;
        }
        let held = match &self.0.wire {
            Some(wire) if may_write && queue.direct => wire.hold(),
            _ => {
                drop(queue);
                self.0.ready.notify_one();
                return Delivered::Queued;
            }
        };
        if !held.is_clear() {
            // The socket is backed up: the session writes from now on, with
            // its back-pressure and its write timeout, and joins what waits
            // into batched frames when its client asked for them.
            drop(held);
            queue.direct = false;
            drop(queue);
            self.0.ready.notify_one();
            return Delivered::Queued;
        }
        frames.clear();
        let now = crate::ids::Timestamp::now().millis();
        while let Some(item) = queue.items.pop_front() {
            if queue.admit(&item) {
                done.count(&item, now);
                frames.push(item.frame().ws.clone());
            }
        }
        self.0.bytes.store(0, Ordering::Relaxed);
        if queue.items.capacity() > 64 {
            queue.items.shrink_to_fit();
        }
        if frames.is_empty() {
            return Delivered::Dropped;
        }
        // The wire's turn was taken before the queue is let go: frames a
        // session takes after this (to write itself) go after these. The
        // write is then made without holding up fan-outs staging behind it.
        drop(queue);
        let sent = held.send_all(frames, self.0.capacity as usize, self.0.max_bytes as usize);
        frames.clear();
        match sent {
            Sent::Whole => Delivered::Written,
            Sent::Kept => {
                // The session flushes it (`Wake::Frames`).
                self.0.ready.notify_one();
                Delivered::Written
            }
            Sent::Over => {
                self.cut(Cut::Slow);
                Delivered::Dropped
            }
        }
    }

    /// Lets the fan-out write to the socket, if the session has one and
    /// nothing is queued. Called by the session only where everything it
    /// took from the queue has been written.
    pub fn go_direct(&self) {
        if self.0.wire.is_some() && self.is_cut().is_none() {
            let mut queue = self.queue();
            queue.direct = queue.items.is_empty();
        }
    }

    /// Stops the fan-out writing to the socket: deliveries are queued until
    /// the next [`go_direct`](Self::go_direct). A write under way ends first.
    pub fn stop_direct(&self) {
        self.queue().direct = false;
    }

    /// The numbers of `chat` the session was sent live (and still remembers).
    pub fn live_of_chat(&self, chat: ChatNumber) -> HashSet<MessageNumber> {
        let queue = self.queue();
        let live = queue.seen.iter().flat_map(|seen| seen.live.iter());
        live.filter(|(c, _)| *c == chat).map(|&(_, seq)| seq).collect()
    }

    /// Records that a catch-up carried `numbers` of `chat`: their live copies are skipped.
    pub fn carried(&self, chat: ChatNumber, numbers: impl IntoIterator<Item = MessageNumber>) {
        let mut queue = self.queue();
        queue.seen.get_or_insert_default().carried.entry(chat).or_default().extend(numbers);
    }

    /// Whether frames wait in the wire for the session to flush.
    pub fn has_unsent(&self) -> bool {
        self.0.wire.as_ref().is_some_and(|wire| wire.has_unsent())
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
            if !self.queue().items.is_empty() || self.has_unsent() {
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
    /// queue's lock (`each` must not wait): no list of them is made. Live
    /// messages a catch-up carried are dropped; the others are recorded as sent.
    pub fn take_each(&self, max: usize, mut each: impl FnMut(Outgoing)) {
        let mut queue = self.queue();
        let n = queue.items.len().min(max);
        if n > 0 {
            // The session writes these itself: until it has, nothing may be
            // written past them (see `go_direct`).
            queue.direct = false;
        }
        let mut left = self.0.bytes.load(Ordering::Relaxed);
        for _ in 0..n {
            let Some(item) = queue.items.pop_front() else { break };
            left = left.saturating_sub(u32::try_from(item.byte_len()).unwrap_or(u32::MAX));
            if queue.admit(&item) {
                each(item);
            }
        }
        self.0.bytes.store(left, Ordering::Relaxed);
        if queue.items.is_empty() && queue.items.capacity() > 64 {
            // A burst is over: an idle session does not keep its peak.
            queue.items.shrink_to_fit();
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
        let outbox = Outbox::new(3, 1 << 20, None);
        for n in 0..3 {
            outbox.deliver(&item(n));
        }
        assert_eq!(outbox.is_cut(), None);
        let ticks = AtomicU64::new(0);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), outbox.ready(&ticks, 0)).await.unwrap(),
            Wake::Frames
        );
        assert_eq!(outbox.take(2).len(), 2);
        outbox.deliver(&item(3));
        outbox.deliver(&item(4));
        assert_eq!(outbox.is_cut(), None, "room again after the take");
        outbox.deliver(&item(5));
        assert_eq!(outbox.is_cut(), Some(Cut::Slow));
        // A later cut does not replace the first.
        outbox.cut(Cut::Revoked);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), outbox.cut_off()).await.unwrap(), Cut::Slow);
        assert_eq!(outbox.take(10).len(), 3);
    }

    #[test]
    fn bytes_past_the_bound_cut_as_slow_and_taking_frees_them() {
        let big = |n: usize| Outgoing::Frame { kind: "message", frame: "x".repeat(n).into() };
        let outbox = Outbox::new(100, 1_000, None);
        outbox.deliver(&big(400));
        outbox.deliver(&big(600));
        assert_eq!(outbox.is_cut(), None, "exactly at the bound");
        assert_eq!(outbox.take(1).len(), 1);
        outbox.deliver(&big(400));
        assert_eq!(outbox.is_cut(), None, "the 400 taken were freed");
        outbox.deliver(&big(1));
        assert_eq!(outbox.is_cut(), Some(Cut::Slow), "1,001 bytes held, few frames");
    }

    #[test]
    fn an_idle_outbox_stays_small() {
        // Every idle session holds one (`docs/benchmarks.md`, idle memory): 88
        // bytes, plus the wire, the direct flag and the boxed `Seen`, whose
        // live log and carried numbers the session's own state held before
        // (80 bytes there, 24 here).
        assert!(size_of::<Inner>() <= 112, "{}", size_of::<Inner>());
    }

    /// An outbox whose session's socket is a real loopback connection, and the client's end.
    async fn wired(capacity: usize, max_bytes: usize) -> (Outbox, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        let (_read, write) = ours.into_split();
        (Outbox::new(capacity, max_bytes, Some(Arc::new(Wire::new(write)))), client)
    }

    fn message(chat: u64, seq: u64) -> Outgoing {
        Outgoing::Message {
            chat: ChatNumber(chat),
            seq: MessageNumber(seq),
            frame: format!("m{chat}.{seq}").into(),
            at: 0,
        }
    }

    /// Reads `n` whole text frames off the client's end.
    async fn read_frames(client: &mut tokio::net::TcpStream, n: usize) -> Vec<String> {
        use tokio::io::AsyncReadExt as _;
        let mut texts = Vec::new();
        for _ in 0..n {
            let mut head = [0u8; 2];
            client.read_exact(&mut head).await.unwrap();
            assert_eq!(head[0], 0x81, "a final text frame");
            let mut body = vec![0u8; usize::from(head[1])];
            client.read_exact(&mut body).await.unwrap();
            texts.push(String::from_utf8(body).unwrap());
        }
        texts
    }

    #[tokio::test]
    async fn a_direct_outbox_half_full_waiting_for_the_flusher_wakes_its_session() {
        let (outbox, _client) = wired(4, 1 << 20).await;
        outbox.go_direct();
        let ticks = Arc::new(AtomicU64::new(0));
        let session = {
            let (outbox, ticks) = (outbox.clone(), Arc::clone(&ticks));
            tokio::spawn(async move { outbox.ready(&ticks, 0).await })
        };
        // Parked on its wake-up: nothing is staged yet.
        tokio::task::yield_now().await;
        assert_eq!(outbox.stage(&message(1, 1)), Staged::First);
        assert_eq!(outbox.stage(&message(1, 2)), Staged::Behind);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!session.is_finished(), "two of four wait for the flusher: the session is left alone");
        assert_eq!(outbox.stage(&message(1, 3)), Staged::Behind);
        let woken = tokio::time::timeout(Duration::from_secs(30), session).await.unwrap().unwrap();
        assert_eq!(woken, Wake::Frames, "past half full, the session writes them itself");
        let taken: Vec<_> = outbox.take(10).iter().map(|i| i.frame().text.to_string()).collect();
        assert_eq!(taken, ["m1.1", "m1.2", "m1.3"]);
        assert_eq!(outbox.is_cut(), None);
    }

    #[tokio::test]
    async fn the_fan_out_writes_only_while_the_session_is_direct_and_nothing_is_queued() {
        let (outbox, mut client) = wired(8, 1 << 20).await;
        // Not direct until the session says so.
        assert_eq!(outbox.deliver(&message(1, 1)), Delivered::Queued);
        outbox.go_direct();
        assert_eq!(outbox.deliver(&message(1, 2)), Delivered::Queued, "something is queued: the queue first");
        let taken: Vec<_> = outbox.take(10).iter().map(|i| i.frame().text.to_string()).collect();
        assert_eq!(taken, ["m1.1", "m1.2"]);
        outbox.go_direct();
        assert_eq!(outbox.deliver(&message(1, 3)), Delivered::Written);
        assert_eq!(outbox.deliver(&message(2, 1)), Delivered::Written);
        assert_eq!(read_frames(&mut client, 2).await, ["m1.3", "m2.1"]);
        // Written live, so a catch-up of chat 1 skips them (`take` recorded 1 and 2).
        assert_eq!(outbox.live_of_chat(ChatNumber(1)), (1..=3).map(MessageNumber).collect());

        // A catch-up: deliveries queue; what it carried is not delivered again.
        outbox.stop_direct();
        outbox.carried(ChatNumber(3), [MessageNumber(7)]);
        assert_eq!(outbox.deliver(&message(3, 8)), Delivered::Queued);
        assert_eq!(outbox.deliver(&message(3, 7)), Delivered::Queued);
        let taken: Vec<_> = outbox.take(10).iter().map(|i| i.frame().text.to_string()).collect();
        assert_eq!(taken, ["m3.8"], "the carried copy is dropped when taken");
        outbox.go_direct();
        assert_eq!(outbox.deliver(&message(3, 7)), Delivered::Dropped, "carried: not written either");
        assert_eq!(outbox.deliver(&message(3, 9)), Delivered::Written);
        assert_eq!(read_frames(&mut client, 1).await, ["m3.9"]);

        // Cut off: nothing more, and it stays so.
        outbox.cut(Cut::Drain);
        assert_eq!(outbox.deliver(&message(3, 10)), Delivered::Dropped);
        outbox.go_direct();
        assert_eq!(outbox.deliver(&message(3, 11)), Delivered::Dropped);
    }

    #[tokio::test]
    async fn a_frame_staged_before_the_flush_is_not_overtaken() {
        let (outbox, mut client) = wired(8, 1 << 20).await;
        outbox.go_direct();
        // A fan-out staged it; its flush has not come yet.
        assert_eq!(outbox.stage(&message(1, 1)), Staged::First);
        assert_eq!(outbox.deliver(&message(1, 2)), Delivered::Queued, "staged behind the first, not written");
        // The session, awake for something else, takes them to write itself.
        let taken: Vec<_> = outbox.take(10).iter().map(|i| i.frame().text.to_string()).collect();
        assert_eq!(taken, ["m1.1", "m1.2"]);
        let mut frames = Vec::new();
        assert_eq!(
            outbox.flush(true, &mut frames, &mut Flushed::default()),
            Delivered::Dropped,
            "nothing left"
        );
        assert_eq!(
            outbox.deliver(&message(1, 3)),
            Delivered::Queued,
            "not direct until the session wrote them"
        );
        assert_eq!(outbox.take(10).len(), 1);
        outbox.go_direct();
        assert_eq!(outbox.deliver(&message(1, 4)), Delivered::Written);
        assert_eq!(read_frames(&mut client, 1).await, ["m1.4"]);
    }

    #[tokio::test]
    async fn what_is_staged_behind_the_first_goes_in_its_flush() {
        let (outbox, mut client) = wired(8, 1 << 20).await;
        outbox.go_direct();
        assert_eq!(outbox.stage(&message(1, 1)), Staged::First);
        assert_eq!(outbox.stage(&message(2, 1)), Staged::Behind);
        assert_eq!(outbox.stage(&message(1, 2)), Staged::Behind);
        let (mut frames, mut done) = (Vec::new(), Flushed::default());
        assert_eq!(outbox.flush(true, &mut frames, &mut done), Delivered::Written);
        assert_eq!(done.written, 3);
        assert_eq!(read_frames(&mut client, 3).await, ["m1.1", "m2.1", "m1.2"], "in the order staged");
        // Not allowed to write (`gateway.direct_writes` off): the session is woken instead.
        assert_eq!(outbox.stage(&message(1, 3)), Staged::First);
        assert_eq!(outbox.flush(false, &mut frames, &mut done), Delivered::Queued);
        let ticks = AtomicU64::new(0);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), outbox.ready(&ticks, 0)).await.unwrap(),
            Wake::Frames
        );
        assert_eq!(outbox.take(10).len(), 1);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_direct_frames_is_woken_for_then_cut_off_as_slow() {
        let (outbox, _client) = wired(8, 256 * 1024).await;
        outbox.go_direct();
        let ticks = AtomicU64::new(0);
        let big = Outgoing::Frame { kind: "message", frame: "x".repeat(32 * 1024).into() };
        let mut n = 0;
        while !outbox.has_unsent() {
            assert_eq!(outbox.deliver(&big), Delivered::Written);
            n += 1;
            assert!(n < 10_000, "the socket never filled");
        }
        // What waits in the wire wakes the session to flush it.
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), outbox.ready(&ticks, 0)).await.unwrap(),
            Wake::Frames
        );
        while outbox.is_cut().is_none() {
            outbox.deliver(&big);
            n += 1;
            assert!(n < 10_000, "never cut off");
        }
        assert_eq!(outbox.is_cut(), Some(Cut::Slow));
    }

    #[tokio::test]
    async fn a_tick_wakes_a_waiting_session_and_is_not_lost_before_it_waits() {
        let outbox = Outbox::new(8, 1 << 20, None);
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
        outbox.deliver(&item(1));
        assert_eq!(outbox.ready(&ticks, 0).await, Wake::Tick(2));
        assert_eq!(outbox.ready(&ticks, 2).await, Wake::Frames);
        outbox.cut(Cut::Drain);
        assert_eq!(outbox.ready(&ticks, 2).await, Wake::Cut(Cut::Drain));
    }

    #[tokio::test]
    async fn a_waiting_session_wakes_on_a_push_or_a_cut() {
        let outbox = Outbox::new(8, 1 << 20, None);
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.ready(&AtomicU64::new(0), 0).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        outbox.deliver(&item(1));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap(),
            Wake::Frames
        );

        let cut = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.cut_off().await }
        });
        // A push wakes it, but it waits on for the cut.
        outbox.deliver(&item(2));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!cut.is_finished());
        outbox.cut(Cut::Revoked);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), cut).await.unwrap().unwrap(), Cut::Revoked);
    }
}
