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
    /// The fan-outs under way, and when the last ended.
    fanouts: Arc<Fanouts>,
    /// Whether sessions may be written to by the fan-out (`gateway.direct_writes`).
    direct_writes: bool,
}

/// Whether the node's fan-out path is busy. A fan-out alone writes to idle
/// sessions' sockets itself, one syscall per recipient in its own task (a
/// few ms for a thousand). When fan-outs overlap or follow each other with
/// no gap, that path is the bottleneck: one session's pipelined sends would
/// publish one such fan-out after another, and at a few hundred messages a
/// second a node would spend a syscall per message per recipient. They then
/// queue instead, and each session writes whatever the burst left it with
/// one wake-up and one syscall, as before direct writes.
struct Fanouts {
    running: AtomicUsize,
    /// When the last fan-out ended, in µs since `epoch`.
    last_end: AtomicU64,
    epoch: std::time::Instant,
}

impl Default for Fanouts {
    fn default() -> Self {
        Self { running: AtomicUsize::new(0), last_end: AtomicU64::new(0), epoch: std::time::Instant::now() }
    }
}

impl Fanouts {
    /// A fan-out starting within this of the last one's end follows it with no gap.
    const GAP_MICROS: u64 = 1_000;

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn start(&self) -> Fanning<'_> {
        let others = self.running.fetch_add(1, Ordering::Relaxed);
        // 0: none has ended yet.
        let last = self.last_end.load(Ordering::Relaxed);
        let gap = last == 0 || self.now().saturating_sub(last) >= Self::GAP_MICROS;
        Fanning { fanouts: self, direct: others == 0 && gap }
    }
}

/// One fan-out under way.
struct Fanning<'a> {
    fanouts: &'a Fanouts,
    /// Started alone, after a gap.
    direct: bool,
}

impl Fanning<'_> {
    /// Whether this fan-out writes to direct sessions itself: it started
    /// alone, after a gap, and no other has started since.
    fn may_write(&self) -> bool {
        self.direct && self.fanouts.running.load(Ordering::Relaxed) == 1
    }
}

impl Drop for Fanning<'_> {
    fn drop(&mut self) {
        self.fanouts.last_end.store(self.fanouts.now().max(1), Ordering::Relaxed);
        self.fanouts.running.fetch_sub(1, Ordering::Relaxed);
    }
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
    /// A hub whose fan-outs may write to direct sessions' sockets themselves.
    pub fn with_direct_writes(self, on: bool) -> Self {
        Self { direct_writes: on, ..self }
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
    /// the socket by this call when the session is direct and the node's
    /// fan-out path is not busy ([`Fanouts`]), else queued.
    pub fn send_to<'a>(
        &self,
        app: &AppId,
        users: impl Iterator<Item = &'a UserId>,
        item: &Outgoing,
        except: Option<SessionId>,
    ) {
        if !self.direct_writes {
            // Queued under the lock: a push never waits, and cloning each
            // handle out of the map cost more than the pushes.
            let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(of_app) = sessions.get(app) else { return };
            for session in users.filter_map(|user| of_app.users.get(user)).flatten() {
                if Some(session.id) != except {
                    // A full outbox cuts its session off as slow.
                    session.outbox.deliver_or_queue(item, false);
                }
            }
            return;
        }
        // Taken out under the lock, delivered after it: a delivery may be a
        // socket write, and other fan-outs and connects must not wait for those.
        let outboxes: Vec<Outbox> = {
            let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(of_app) = sessions.get(app) else { return };
            let of_users = users.filter_map(|user| of_app.users.get(user)).flatten();
            of_users.filter(|s| Some(s.id) != except).map(|s| s.outbox.clone()).collect()
        };
        let fanning = self.fanouts.start();
        let mut written = 0u64;
        for outbox in &outboxes {
            // A full outbox cuts its session off as slow.
            if outbox.deliver_or_queue(item, fanning.may_write()) == Delivered::Written {
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
    fn a_fan_out_writes_itself_only_alone_and_after_a_gap() {
        let fanouts = Fanouts::default();
        let first = fanouts.start();
        assert!(first.may_write(), "the node's first fan-out, alone");
        let second = fanouts.start();
        assert!(!second.may_write(), "another is under way");
        assert!(!first.may_write(), "another started since");
        drop((first, second));
        // (Whether the next follows with no gap depends on this machine's
        // speed, so only the gap's far side is checked.)
        std::thread::sleep(std::time::Duration::from_micros(2 * Fanouts::GAP_MICROS));
        assert!(fanouts.start().may_write(), "alone again, after a gap");
    }
}
