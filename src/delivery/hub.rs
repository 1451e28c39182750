//! The sessions on this node, by application and user, and delivery to them.
//!
//! A frame is encoded once per event and shared by every recipient session
//! (`Utf8Bytes` clones are reference counts). Each session has a bounded
//! outbox; a session whose outbox is full is cut off as a slow consumer rather
//! than slowing anyone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::SessionId;
use super::fabric::{Audience, Event, Fabric};
use super::outbox::{Cut, Delivered, Outbox};
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
    sessions: Arc<Mutex<Sessions>>,
    next_id: Arc<AtomicU64>,
    open: Arc<AtomicUsize>,
    presence: Presence,
    /// The heartbeat's count: sessions compare it with the last they saw.
    ticks: Arc<AtomicU64>,
    /// How many deliveries a second fan-outs may write themselves (none
    /// with `gateway.direct_writes` off).
    budget: Arc<Budget>,
}

/// How long one fan-out may spend writing to sockets itself before it queues
/// the rest. Each write is a syscall that, on loopback and on kernels with
/// costly kernel entries, also runs the receiver's side: 1,000 of them held
/// one worker for several ms while the recipients' own sessions, spread over
/// every worker, could have written them (`docs/benchmarks.md`, 2026-12-06).
/// A slice adapts to the machine where a count would not.
const DIRECT_SLICE: std::time::Duration = std::time::Duration::from_micros(500);

/// The clock is read once every this many direct writes.
const DIRECT_CHECK_EVERY: usize = 16;

/// How many deliveries a second the node's fan-outs may write themselves.
///
/// A fan-out writing to idle sessions' sockets itself spends one syscall per
/// recipient in its own task (a few ms for a thousand) and coalesces nothing;
/// queued, a burst reaches each session in one wake-up and one syscall,
/// however many messages it holds. The first is cheaper while messages are
/// few and far between, the second once many follow one another: direct
/// writes capped one sender's pipelined sends into a 1,000-member chat at
/// ~330 msg/s and a node at ~300 msg/s (`docs/benchmarks.md`). So every
/// delivery is counted in windows of [`WINDOW_MS`](Self::WINDOW_MS), and a
/// fan-out writes itself only while neither the last window nor this one
/// (with it) went past the budget; past it, fan-outs queue until a window
/// stays under it. Counted approximately (relaxed atomics, a window's turn
/// may lose a few deliveries to the next): it picks a path, nothing more.
struct Budget {
    /// Deliveries per window; 0: never direct.
    per_window: u64,
    /// The current window's number since `epoch`.
    window: AtomicU64,
    /// Deliveries counted in the current window.
    used: AtomicU64,
    /// Deliveries counted in the window before it (0 if it had none).
    before: AtomicU64,
    epoch: std::time::Instant,
}

impl Budget {
    const WINDOW_MS: u64 = 100;

    /// A budget of `per_sec` deliveries a second (0: none).
    fn new(per_sec: u64) -> Self {
        Self {
            per_window: per_sec.saturating_mul(Self::WINDOW_MS) / 1000,
            window: AtomicU64::new(0),
            used: AtomicU64::new(0),
            before: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
        }
    }

    /// Whether a fan-out at `at_ms` (since `epoch`) may write itself: neither
    /// the last window nor this one so far went past the budget. It is
    /// [`count`](Self::count)ed once made, whichever way.
    fn allows_at(&self, at_ms: u64) -> bool {
        if self.per_window == 0 {
            return false;
        }
        let now = at_ms / Self::WINDOW_MS;
        let current = self.window.load(Ordering::Relaxed);
        if now > current
            && self.window.compare_exchange(current, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            let used = self.used.swap(0, Ordering::Relaxed);
            self.before.store(if now == current + 1 { used } else { 0 }, Ordering::Relaxed);
        }
        self.used.load(Ordering::Relaxed) <= self.per_window
            && self.before.load(Ordering::Relaxed) <= self.per_window
    }

    /// Whether a fan-out now may write itself (see [`allows_at`](Self::allows_at)).
    fn allows(&self) -> bool {
        self.allows_at(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Counts a fan-out's `n` deliveries in the current window.
    fn count(&self, n: u64) {
        if self.per_window > 0 {
            self.used.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(0)
    }
}

tokio::task_local! {
    /// Set around a publish by a publisher with more persisted messages right
    /// behind it (a session's pipelined sends, see `gateway::pipeline`). Its
    /// fan-outs run one after another in its task, so one that wrote 1,000
    /// sockets itself (~3 ms) would hold up the rest; queued, it takes a
    /// fraction of that, and each recipient's session writes the burst with
    /// one wake-up. A hint on the path taken, never on what is delivered.
    static BACKLOG: bool;
}

/// Runs `publish` (which fans out) knowing whether more wait behind it: see [`BACKLOG`].
pub async fn with_backlog<F: Future>(behind: bool, publish: F) -> F::Output {
    BACKLOG.scope(behind, publish).await
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
    /// A hub whose fan-outs may write to direct sessions' sockets
    /// themselves, up to `per_sec` deliveries a second on this node (see [`Budget`]).
    pub fn with_direct_writes(self, on: bool, per_sec: u64) -> Self {
        Self { budget: Arc::new(Budget::new(if on { per_sec } else { 0 })), ..self }
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
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
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
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
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
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        for handle in sessions.get(app).into_iter().flat_map(|a| a.users.values()).flatten() {
            handle.outbox.cut(Cut::Revoked);
        }
    }

    /// Closes the sockets of `user` opened with tokens of session `auth` (it was revoked).
    pub fn close_auth_session(&self, app: &AppId, user: &UserId, auth: &crate::auth::AuthSessionId) {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let of_user = sessions.get(app).and_then(|a| a.users.get(user)).into_iter().flatten();
        for handle in of_user.filter(|h| h.auth.as_ref() == Some(auth)) {
            handle.outbox.cut(Cut::SessionRevoked);
        }
    }

    /// Whether a socket of `user` opened with a token of session `auth` is open on this node.
    pub fn has_auth_session(&self, app: &AppId, user: &UserId, auth: &crate::auth::AuthSessionId) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let mut of_user = sessions.get(app).and_then(|a| a.users.get(user)).into_iter().flatten();
        of_user.any(|h| h.auth.as_ref() == Some(auth))
    }

    /// The sessions (`auth`) of `user` with a socket open on this node, each once.
    pub fn auth_sessions(&self, app: &AppId, user: &UserId) -> Vec<crate::auth::AuthSessionId> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
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
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
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
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        every(&sessions).map(|s| s.outbox.clone()).collect()
    }

    /// Sessions of `user` open on this node.
    pub fn user_sessions(&self, app: &AppId, user: &UserId) -> usize {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.get(app).and_then(|a| a.users.get(user)).map_or(0, Vec::len)
    }

    /// Sessions open on this node.
    pub fn session_count(&self) -> usize {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.values().map(|a| a.count).sum()
    }

    /// Delivers `item` to every session of `users` but `except`: written to
    /// the socket by this call when the session is direct, the node's
    /// fan-outs are within their [`Budget`], no [`BACKLOG`] waits behind
    /// this one and this call is within its [`DIRECT_SLICE`], else queued.
    pub fn send_to<'a>(
        &self,
        app: &AppId,
        users: impl Iterator<Item = &'a UserId>,
        item: &Outgoing,
        except: Option<SessionId>,
    ) {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(of_app) = sessions.get(app) else { return };
        let recipients =
            users.filter_map(|user| of_app.users.get(user)).flatten().filter(|s| Some(s.id) != except);
        if !self.budget.allows() || BACKLOG.try_with(|behind| *behind).unwrap_or(false) {
            // Queued under the lock: a push never waits, and cloning each
            // handle out of the map cost more than the pushes.
            let mut count = 0u64;
            for session in recipients {
                // A full outbox cuts its session off as slow.
                session.outbox.deliver_or_queue(item, false);
                count += 1;
            }
            drop(sessions);
            self.budget.count(count);
            return;
        }
        // Taken out under the lock, delivered after it: a delivery may be a
        // socket write, and other fan-outs and connects must not wait for those.
        let outboxes: Vec<Outbox> = recipients.map(|s| s.outbox.clone()).collect();
        drop(sessions);
        self.budget.count(outboxes.len() as u64);
        let mut written = 0u64;
        let started = std::time::Instant::now();
        let mut may_write = true;
        for (i, outbox) in outboxes.iter().enumerate() {
            // Past its slice the fan-out queues the rest: their sessions write
            // them on every worker instead of one task holding its own.
            if may_write && i % DIRECT_CHECK_EVERY == DIRECT_CHECK_EVERY - 1 {
                may_write = started.elapsed() < DIRECT_SLICE;
            }
            // A full outbox cuts its session off as slow.
            if outbox.deliver_or_queue(item, may_write) == Delivered::Written {
                written += 1;
                if let Outgoing::Message { at, .. } = item {
                    let waited = crate::ids::Timestamp::now().millis().saturating_sub(*at).max(0);
                    crate::metrics::metrics().delivery_seconds.observe(waited as f64 / 1000.0);
                }
            }
        }
        // Counted once per event; what was queued is counted by its session when written.
        if written > 0 {
            let m = crate::metrics::metrics();
            match item {
                Outgoing::Message { .. } => m.messages_out.inc_by(written),
                Outgoing::Frame { kind, .. } => m.frames_out.with_label_values(&[kind]).inc_by(written),
            }
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

    #[test]
    fn fan_outs_write_themselves_only_within_the_budget() {
        // 1,000 a second: 100 per window of 100 ms.
        let budget = Budget::new(1_000);
        let fan_out = |n: u64, at: u64| {
            let allowed = budget.allows_at(at);
            budget.count(n);
            allowed
        };
        assert!(fan_out(60, 0), "within this window's budget");
        assert!(fan_out(41, 50), "at 60 of 100");
        assert!(!fan_out(1, 99), "past it (101)");
        assert!(!fan_out(1, 150), "the last window went past it");
        assert!(fan_out(10, 250), "the last window (1 delivery) stayed under it");
        assert!(fan_out(10, 5_000), "after a quiet spell");
        assert!(!Budget::new(0).allows_at(0), "no budget: never direct");
    }

    #[tokio::test]
    async fn a_publish_with_others_behind_it_queues_rather_than_writing_itself() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (ours, _) = listener.accept().await.unwrap();
        let wire = Arc::new(crate::delivery::Wire::new(ours.into_split().1));
        let outbox = Outbox::new(8, 1 << 20, Some(wire));
        let (app, user) = (AppId::new("app"), UserId::parse("bob").unwrap());
        for (direct, budget, behind, written) in [
            (true, 1_000_000, false, true),
            (true, 1_000_000, true, false),
            (true, 0, false, false),
            (false, 1_000_000, false, false),
        ] {
            let hub = Hub::default().with_direct_writes(direct, budget);
            let handle = SessionHandle { id: hub.next_session_id(), outbox: outbox.clone(), auth: None };
            hub.register(&app, &user, handle, Caps::default()).unwrap();
            outbox.go_direct();
            let item = Outgoing::Frame { kind: "typing", frame: String::from("t").into() };
            with_backlog(behind, async { hub.send_to(&app, [&user].into_iter(), &item, None) }).await;
            let queued = outbox.take(8).len();
            assert_eq!(queued == 0, written, "direct {direct}, budget {budget}, behind {behind}");
            if written {
                use tokio::io::AsyncReadExt as _;
                let mut frame = [0u8; 3];
                client.read_exact(&mut frame).await.unwrap();
                assert_eq!(frame, [0x81, 1, b't'], "the whole frame, written by the fan-out");
            }
        }
    }
}
