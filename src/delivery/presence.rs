//! Who is online on this node, with the debounce that keeps a quick
//! reconnect from flapping.
//!
//! A user is announced online when their first session opens, unless an
//! offline announcement for them is still pending (then it is simply
//! cancelled). When their last session closes, the offline announcement waits
//! `presence_debounce_ms`; a session opening meanwhile bumps the generation
//! and the pending announcement finds itself stale.
//!
//! The pending announcements are tracked: a draining cluster node waits for
//! them ([`Presence::settled`]) before it leaves, so a user whose sessions
//! were only there, and who does not reconnect elsewhere within the debounce,
//! is announced offline to the members on other nodes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::task::TaskTracker;

use crate::ids::{AppId, Timestamp, UserId};

/// Offline users remembered for `last_seen`, at most.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Default)]
struct Entry {
    sessions: usize,
    generation: u64,
    announced_online: bool,
    last_seen: Option<Timestamp>,
}

/// A user's presence as the REST API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Has a live session.
    pub online: bool,
    /// Live sessions.
    pub sessions: usize,
    /// When the last session closed, while offline.
    pub last_seen: Option<Timestamp>,
}

/// Presence bookkeeping; cheap to clone.
#[derive(Clone, Default)]
pub struct Presence {
    users: Arc<Mutex<HashMap<(AppId, UserId), Entry>>>,
    /// The offline announcements waiting out their debounce.
    pending: TaskTracker,
}

/// A pending offline announcement, valid while nobody reconnects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingOffline(u64);

impl Presence {
    /// A session of `user` opened; true when the user must be announced online.
    pub fn opened(&self, app: &AppId, user: &UserId) -> bool {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = users.entry((app.clone(), user.clone())).or_default();
        entry.sessions += 1;
        entry.generation += 1;
        entry.last_seen = None;
        let announce = !entry.announced_online;
        entry.announced_online = true;
        announce
    }

    /// A session of `user` closed; when it was the last, the offline
    /// announcement to make after the debounce.
    pub fn closed(&self, app: &AppId, user: &UserId) -> Option<PendingOffline> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = users.get_mut(&(app.clone(), user.clone()))?;
        entry.sessions = entry.sessions.saturating_sub(1);
        if entry.sessions > 0 {
            return None;
        }
        entry.generation += 1;
        entry.last_seen = Some(Timestamp::now());
        Some(PendingOffline(entry.generation))
    }

    /// After the debounce: true when `user` must now be announced offline.
    pub fn settle(&self, app: &AppId, user: &UserId, pending: PendingOffline) -> bool {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = users.get_mut(&(app.clone(), user.clone())) else {
            return false;
        };
        if entry.generation != pending.0 || entry.sessions > 0 || !entry.announced_online {
            return false;
        }
        entry.announced_online = false;
        if users.len() > MAX_REMEMBERED {
            users.retain(|_, e| e.sessions > 0 || e.announced_online);
        }
        true
    }

    /// Runs `announcement` (a debounce, then maybe an offline announcement)
    /// where [`settled`](Self::settled) can wait for it.
    pub fn spawn_pending(&self, announcement: impl Future<Output = ()> + Send + 'static) {
        self.pending.spawn(announcement);
    }

    /// Waits for the pending offline announcements (a draining node, once its
    /// sessions are closed); later ones are still tracked, and waited for too.
    pub async fn settled(&self) {
        self.pending.close();
        self.pending.wait().await;
    }

    /// `user`'s presence on this node.
    pub fn status(&self, app: &AppId, user: &UserId) -> Status {
        let users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        match users.get(&(app.clone(), user.clone())) {
            Some(e) => Status { online: e.sessions > 0, sessions: e.sessions, last_seen: e.last_seen },
            None => Status { online: false, sessions: 0, last_seen: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_reconnect_does_not_flap() {
        let (p, app, u) = (Presence::default(), AppId::generate(), UserId::parse("u").unwrap());
        assert!(p.opened(&app, &u), "first session: online");
        assert!(!p.opened(&app, &u), "second device: nothing");
        assert!(p.closed(&app, &u).is_none(), "one device left");
        let pending = p.closed(&app, &u).unwrap();
        assert!(!p.status(&app, &u).online);
        assert!(!p.opened(&app, &u), "reconnect inside the debounce: nothing");
        assert!(!p.settle(&app, &u, pending), "stale announcement");
        let pending = p.closed(&app, &u).unwrap();
        assert!(p.settle(&app, &u, pending), "offline for real");
        assert!(p.status(&app, &u).last_seen.is_some());
        assert!(p.opened(&app, &u), "back: online again");
    }

    #[tokio::test]
    async fn settled_waits_for_the_pending_announcements() {
        let p = Presence::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::clone(&done);
        p.spawn_pending(async move {
            let _ = rx.await;
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let settled = tokio::spawn({
            let p = p.clone();
            async move { p.settled().await }
        });
        tokio::task::yield_now().await;
        assert!(!settled.is_finished(), "settled before the announcement ran");
        tx.send(()).unwrap();
        settled.await.unwrap();
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }
}
