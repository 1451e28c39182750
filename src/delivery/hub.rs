//! The sessions on this node, by application and user, and delivery to them.
//!
//! A frame is encoded once per event and shared by every recipient session
//! (`Utf8Bytes` clones are reference counts). Each session has a bounded
//! outbox; a session whose outbox is full is cut off as a slow consumer rather
//! than slowing anyone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::SessionId;
use super::fabric::{Audience, Event, Fabric};
use super::outbox::{Cut, Flushed, Outbox, Staged};
use super::outgoing::{Outgoing, outgoing};
use super::presence::Presence;
use crate::ids::{AppId, ChatNumber, UserId};

/// What the hub holds of a session.
#[derive(Clone)]
pub struct SessionHandle {
    /// This session's id.
    pub id: SessionId,
    /// Its bounded outbox. Its items share the frame encoded once per event
    /// (a reference count each); it also carries the session's cut-off.
    pub outbox: Outbox,
    /// The session (refresh-token family) its token belongs to, if any.
    pub auth: Option<crate::auth::AuthSessionId>,
}

type Fast = foldhash::fast::RandomState;

/// One application's sessions on this node, by user. Delivery looks the
/// application up once per event and then each recipient by user id alone
/// (no key to build, no application id to hash or compare per recipient);
/// hashed with foldhash (randomly seeded per process) rather than SipHash.
#[derive(Default)]
struct AppSessions {
    users: HashMap<UserId, Vec<SessionHandle>, Fast>,
    /// Sessions in `users`.
    count: usize,
}

/// Sessions by application, then user.
type Sessions = HashMap<AppId, AppSessions, Fast>;

/// The local session registry; cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    sessions: Arc<RwLock<Sessions>>,
    next_id: Arc<AtomicU64>,
    open: Arc<AtomicUsize>,
    presence: Presence,
    /// The heartbeat's count: sessions compare it with the last they saw.
    ticks: Arc<AtomicU64>,
    /// Writes what fan-outs staged.
    flusher: Arc<Flusher>,
}

/// Writes what fan-outs staged, in a task of its own (see [`Hub::send_to`]).
///
/// A fan-out stages its frame in each recipient's outbox under the hub's
/// lock (a push each) and hands the outboxes it found empty to this task,
/// which writes each one's frames to its socket in one vectored write, or
/// wakes its session when the session is writing itself. While it writes,
/// later fan-outs stage behind what waits, so a flush carries every message
/// that came meanwhile: the busier the node, the more messages a syscall
/// carries.
///
/// Its rounds (everything handed to it so far, written) are spaced, like
/// Nagle's algorithm sends: the next round starts no sooner than five times
/// the last one's length after the last one began, and no later than
/// `interval` (`gateway.flush_interval_ms`) after it. What is fanned out
/// meanwhile goes in the same writes. A round that wrote to a few sockets
/// (a direct message) hardly holds the next one up; one that wrote to a
/// thousand (a big chat's message) makes the next wait most of the
/// interval, so a busy node spends a syscall per session per interval, not
/// per message. An idle node writes each frame at once.
#[derive(Default)]
struct Flusher {
    /// Whether the flusher may write to sockets (`gateway.direct_writes`).
    direct: bool,
    /// Longest a round may wait after the last one began (the spacing's cap).
    interval: Duration,
    /// The task's queue, made with the task on first use in a runtime.
    tx: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Vec<Outbox>>>,
}

impl Flusher {
    fn new(direct: bool, interval: Duration) -> Self {
        Self { direct, interval, tx: std::sync::OnceLock::new() }
    }

    /// Flushes `outboxes`: by the flusher's task, or here when there is no runtime to run it.
    fn flush(&self, outboxes: Vec<Outbox>) {
        if !self.direct {
            // Their sessions write them: waking one is cheap.
            for outbox in &outboxes {
                outbox.flush(false, &mut Vec::new(), &mut Flushed::default());
            }
            return;
        }
        let outboxes = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let tx = self.tx.get_or_init(|| {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    runtime.spawn(flush_staged(rx, self.interval));
                    tx
                });
                // Sent back only if the task's runtime is gone (a test's).
                match tx.send(outboxes) {
                    Ok(()) => return,
                    Err(unsent) => unsent.0,
                }
            }
            Err(_) => outboxes,
        };
        write_staged(&outboxes, &mut Vec::new());
    }
}

/// A round's length times this is the least time from its start to the
/// next's (at most the flusher's interval): a busy flusher writes at most a
/// fifth of the time, and one that writes to a few sockets hardly waits.
const ROUND_SPACING: u32 = 5;

/// Waits shorter than this are not taken (the timer's granularity).
const LEAST_WAIT: Duration = Duration::from_millis(1);

/// The flusher's task: flushes each fan-out's outboxes, in the order the
/// fan-outs came, in rounds spaced by their length (see [`Flusher`]).
async fn flush_staged(mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<Outbox>>, interval: Duration) {
    let mut frames = Vec::new();
    let mut next_round: Option<Instant> = None;
    while let Some(outboxes) = rx.recv().await {
        if let Some(due) = next_round
            && due.saturating_duration_since(Instant::now()) >= LEAST_WAIT
        {
            // Busy: what is fanned out until then joins these writes.
            tokio::time::sleep_until(due).await;
        }
        let started = Instant::now();
        write_staged(&outboxes, &mut frames);
        while let Ok(outboxes) = rx.try_recv() {
            write_staged(&outboxes, &mut frames);
        }
        next_round = Some(next_round_after(started, started.elapsed(), interval));
    }
}

/// When the round after one that began at `started` and took `took` may start.
fn next_round_after(started: Instant, took: Duration, interval: Duration) -> Instant {
    started + interval.min(took.saturating_mul(ROUND_SPACING))
}

/// Flushes `outboxes`, writing to the sockets of direct sessions (`frames`: scratch space).
fn write_staged(outboxes: &[Outbox], frames: &mut Vec<bytes::Bytes>) {
    let mut done = Flushed::default();
    for outbox in outboxes {
        outbox.flush(true, frames, &mut done);
    }
    done.record();
}

/// How many sessions one user, and one application, may hold on this node (0: no cap).
#[derive(Clone, Copy, Debug, Default)]
pub struct Caps {
    /// Sessions of one user.
    pub per_user: usize,
    /// Sessions of one application's users.
    pub per_app: usize,
}

/// The cap a session was refused by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over {
    /// The user holds `Caps::per_user` sessions here already.
    User,
    /// The application holds `Caps::per_app` sessions here already.
    App,
}

/// A reserved connection slot; frees itself when dropped.
pub struct Slot {
    open: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::metrics().connections.dec();
    }
}

impl Hub {
    /// A hub whose fan-outs are written to idle sessions' sockets by its
    /// flusher when `on`, else by each session (see [`send_to`](Self::send_to)),
    /// the flusher's rounds spaced by their length, up to `interval` (see [`Flusher`]).
    pub fn with_direct_writes(self, on: bool, interval: Duration) -> Self {
        Self { flusher: Arc::new(Flusher::new(on, interval)), ..self }
    }

    /// A fresh session id.
    pub fn next_session_id(&self) -> SessionId {
        SessionId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Reserves one of `max` connection slots, or `None` when all are taken.
    pub fn reserve(&self, max: usize) -> Option<Slot> {
        let taken = self.open.fetch_add(1, Ordering::AcqRel);
        crate::metrics::metrics().connections.inc();
        let slot = Slot { open: Arc::clone(&self.open) };
        (taken < max).then_some(slot)
    }

    /// Who is online on this node.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Registers a session of `user`, unless the user or the application
    /// already holds as many as `caps` allow. Counted and added under one
    /// lock, so a burst of connects cannot pass the check together.
    pub fn register(
        &self,
        app: &AppId,
        user: &UserId,
        handle: SessionHandle,
        caps: Caps,
    ) -> Result<(), Over> {
        let mut sessions = self.sessions.write().unwrap_or_else(PoisonError::into_inner);
        let of_app = sessions.entry(app.clone()).or_default();
        let of_user = of_app.users.get(user).map_or(0, Vec::len);
        if caps.per_user > 0 && of_user >= caps.per_user {
            return Err(Over::User);
        }
        if caps.per_app > 0 && of_app.count >= caps.per_app {
            return Err(Over::App);
        }
        of_app.count += 1;
        // Most users have one session here: room for one, not the four a first push makes.
        of_app.users.entry(user.clone()).or_insert_with(|| Vec::with_capacity(1)).push(handle);
        Ok(())
    }

    /// Removes a session.
    pub fn unregister(&self, app: &AppId, user: &UserId, id: SessionId) {
        let mut sessions = self.sessions.write().unwrap_or_else(PoisonError::into_inner);
        let Some(of_app) = sessions.get_mut(app) else { return };
        if let Some(list) = of_app.users.get_mut(user) {
            let before = list.len();
            list.retain(|s| s.id != id);
            of_app.count = of_app.count.saturating_sub(before - list.len());
            if list.is_empty() {
                of_app.users.remove(user);
            }
        }
        if of_app.users.is_empty() {
            sessions.remove(app);
        }
    }

    /// Closes every session of `app` on this node (its secret was rotated).
    pub fn revoke(&self, app: &AppId) {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        for handle in sessions.get(app).into_iter().flat_map(|a| a.users.values()).flatten() {
            handle.outbox.cut(Cut::Revoked);
        }
    }

    /// Closes the sockets of `user` opened with tokens of session `auth` (it was revoked).
    pub fn close_auth_session(&self, app: &AppId, user: &UserId, auth: &crate::auth::AuthSessionId) {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let of_user = sessions.get(app).and_then(|a| a.users.get(user)).into_iter().flatten();
        for handle in of_user.filter(|h| h.auth.as_ref() == Some(auth)) {
            handle.outbox.cut(Cut::SessionRevoked);
        }
    }

    /// Whether a socket of `user` opened with a token of session `auth` is open on this node.
    pub fn has_auth_session(&self, app: &AppId, user: &UserId, auth: &crate::auth::AuthSessionId) -> bool {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let mut of_user = sessions.get(app).and_then(|a| a.users.get(user)).into_iter().flatten();
        of_user.any(|h| h.auth.as_ref() == Some(auth))
    }

    /// The sessions (`auth`) of `user` with a socket open on this node, each once.
    pub fn auth_sessions(&self, app: &AppId, user: &UserId) -> Vec<crate::auth::AuthSessionId> {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let of_user = sessions.get(app).and_then(|a| a.users.get(user)).into_iter().flatten();
        let mut auths: Vec<_> = of_user.filter_map(|h| h.auth.clone()).collect();
        auths.sort_unstable();
        auths.dedup();
        auths
    }

    /// Closes every session (1012) one by one, spread evenly over `window`
    /// in random order, so their clients do not all reconnect at once; then
    /// any that opened meanwhile.
    pub async fn drain(&self, window: std::time::Duration) {
        let mut outboxes = self.outboxes();
        rand::seq::SliceRandom::shuffle(outboxes.as_mut_slice(), &mut rand::rng());
        let (start, n) = (tokio::time::Instant::now(), outboxes.len().max(1) as f64);
        for (i, outbox) in outboxes.into_iter().enumerate() {
            // The i-th at i/n of the window (several per timer tick when there are many).
            let due = start + window.mul_f64(i as f64 / n);
            if due > tokio::time::Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            outbox.cut(Cut::Drain);
        }
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        for session in every(&sessions) {
            session.outbox.cut(Cut::Drain);
        }
    }

    /// The heartbeat: counts a tick, then wakes every session through its
    /// outbox to look (its silence, its token's expiry). A session learns of
    /// ticks in the same wait as of its frames, so the wake-up each delivery
    /// costs registers one waker, not a second on a channel every session shares.
    pub fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::Release);
        // Taken out first: the pokes do not hold up deliveries.
        for outbox in self.outboxes() {
            outbox.poke();
        }
    }

    /// The heartbeat's count so far (see [`tick`](Self::tick)).
    pub fn ticks(&self) -> &AtomicU64 {
        &self.ticks
    }

    /// Every session's outbox, taken out under the lock for work done after it.
    fn outboxes(&self) -> Vec<Outbox> {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        every(&sessions).map(|s| s.outbox.clone()).collect()
    }

    /// Sessions of `user` open on this node.
    pub fn user_sessions(&self, app: &AppId, user: &UserId) -> usize {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        sessions.get(app).and_then(|a| a.users.get(user)).map_or(0, Vec::len)
    }

    /// Sessions open on this node.
    pub fn session_count(&self) -> usize {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        sessions.values().map(|a| a.count).sum()
    }

    /// Delivers `item` to every session of `users` but `except`: staged in
    /// each one's outbox here, under the lock (a push each, no waiting), then
    /// written by the [`Flusher`] for the sessions that were idle. A full
    /// outbox cuts its session off as slow.
    pub fn send_to<'a>(
        &self,
        app: &AppId,
        users: impl Iterator<Item = &'a UserId>,
        item: &Outgoing,
        except: Option<SessionId>,
    ) {
        let sessions = self.sessions.read().unwrap_or_else(PoisonError::into_inner);
        let Some(of_app) = sessions.get(app) else { return };
        let recipients =
            users.filter_map(|user| of_app.users.get(user)).flatten().filter(|s| Some(s.id) != except);
        // Only the outboxes this frame is the first in: what is staged
        // behind others goes with them, whoever flushes them.
        let mut first = Vec::new();
        for session in recipients {
            if session.outbox.stage(item) == Staged::First {
                first.push(session.outbox.clone());
            }
        }
        drop(sessions);
        if !first.is_empty() {
            self.flusher.flush(first);
        }
    }
}

/// Every session in `sessions`.
fn every(sessions: &Sessions) -> impl Iterator<Item = &SessionHandle> {
    sessions.values().flat_map(|a| a.users.values()).flatten()
}

/// One node alone: the hub is the whole fabric.
#[async_trait::async_trait]
impl Fabric for Hub {
    async fn deliver(&self, app: &AppId, event: &Event, audience: &Audience, except: Option<SessionId>) {
        self.send_to(app, audience.users(), &outgoing(event), except);
    }

    async fn members_changed(&self, _app: &AppId, _chat: ChatNumber, _user: &UserId, _joined: bool) {}

    async fn session_opened(&self, app: &AppId, user: &UserId, _chats: Vec<ChatNumber>) -> bool {
        self.user_sessions(app, user) == 1
    }

    async fn session_closed(&self, _app: &AppId, _user: &UserId) {}

    async fn is_online(&self, app: &AppId, user: &UserId) -> bool {
        self.user_sessions(app, user) > 0
    }

    async fn revoke(&self, app: &AppId) {
        Hub::revoke(self, app);
    }

    async fn close_auth_session(&self, app: &AppId, user: &UserId, auth: &crate::auth::AuthSessionId) {
        Hub::close_auth_session(self, app, user, auth);
    }

    async fn auth_sessions_online(
        &self,
        app: &AppId,
        user: &UserId,
        auths: &[crate::auth::AuthSessionId],
    ) -> Vec<bool> {
        auths.iter().map(|auth| self.has_auth_session(app, user, auth)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's wire on a real loopback connection, and the client's end.
    async fn wired() -> (tokio::net::TcpStream, Arc<crate::delivery::Wire>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        (client, Arc::new(crate::delivery::Wire::new(ours.into_split().1)))
    }

    /// A frame of `text`.
    fn item(text: &str) -> Outgoing {
        Outgoing::Frame { kind: "typing", frame: String::from(text).into() }
    }

    #[tokio::test]
    async fn the_flusher_writes_to_idle_sessions_and_sessions_write_the_rest() {
        use tokio::io::AsyncReadExt as _;
        let (mut client, wire) = wired().await;
        let (app, user) = (AppId::new("app"), UserId::parse("bob").unwrap());
        for direct in [true, false] {
            let outbox = Outbox::new(8, 1 << 20, Some(Arc::clone(&wire)));
            let hub = Hub::default().with_direct_writes(direct, Duration::ZERO);
            let handle = SessionHandle { id: hub.next_session_id(), outbox: outbox.clone(), auth: None };
            hub.register(&app, &user, handle, Caps::default()).unwrap();
            outbox.go_direct();
            hub.send_to(&app, [&user].into_iter(), &item("a"), None);
            hub.send_to(&app, [&user].into_iter(), &item("b"), None);
            if direct {
                let mut frames = [0u8; 6];
                tokio::time::timeout(std::time::Duration::from_secs(5), client.read_exact(&mut frames))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(frames, [0x81, 1, b'a', 0x81, 1, b'b'], "both, in order, by the flusher");
                assert!(outbox.take(8).is_empty());
            } else {
                let ticks = AtomicU64::new(0);
                let woken = tokio::time::timeout(std::time::Duration::from_secs(5), outbox.ready(&ticks, 0));
                assert_eq!(woken.await.unwrap(), super::super::outbox::Wake::Frames);
                let queued: Vec<_> = outbox.take(8).iter().map(|i| i.frame().text.to_string()).collect();
                assert_eq!(queued, ["a", "b"], "the session writes them");
            }
            hub.unregister(&app, &user, SessionId(1));
        }
    }
    #[test]
    fn rounds_are_spaced_by_their_length_up_to_the_interval() {
        let (at, interval) = (Instant::now(), Duration::from_millis(20));
        let after = |took_us: u64| next_round_after(at, Duration::from_micros(took_us), interval) - at;
        // A round to a thousand sockets: the next waits (most of) the interval.
        assert_eq!(after(4_000), Duration::from_millis(20));
        assert_eq!(after(3_000), Duration::from_millis(15));
        assert_eq!(after(50_000), interval, "never longer than the interval");
        // A round to a few sockets: shorter than a wait worth taking.
        assert!(after(50) < LEAST_WAIT);
        assert_eq!(next_round_after(at, Duration::from_millis(4), Duration::ZERO), at, "0: no spacing");
    }

    #[tokio::test]
    async fn a_flusher_with_an_interval_writes_a_few_sockets_at_once_and_in_order() {
        use tokio::io::AsyncReadExt as _;
        let (mut client, wire) = wired().await;
        let (app, user) = (AppId::new("app"), UserId::parse("bob").unwrap());
        let outbox = Outbox::new(8, 1 << 20, Some(Arc::clone(&wire)));
        // An interval far longer than the test: rounds to one socket must not wait it out.
        let hub = Hub::default().with_direct_writes(true, Duration::from_secs(3_600));
        let handle = SessionHandle { id: hub.next_session_id(), outbox: outbox.clone(), auth: None };
        hub.register(&app, &user, handle, Caps::default()).unwrap();
        outbox.go_direct();
        let mut got = Vec::new();
        for t in ["a", "b", "c"] {
            hub.send_to(&app, [&user].into_iter(), &item(t), None);
            let mut frame = [0u8; 3];
            tokio::time::timeout(Duration::from_secs(60), client.read_exact(&mut frame))
                .await
                .unwrap()
                .unwrap();
            got.extend_from_slice(&frame);
        }
        assert_eq!(got, [0x81, 1, b'a', 0x81, 1, b'b', 0x81, 1, b'c']);
        assert!(outbox.take(8).is_empty());
    }
}
