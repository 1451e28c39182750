//! Applications, reused for a short time, so that a reconnect or a REST
//! request does not read its application from the store every time.
//!
//! A reconnect storm (a node dies and its clients come back on the
//! survivors) is thousands of `authenticate` calls at once; each used to read
//! its application from Cassandra. An entry lives `apps_ttl_ms` (5 s).
//!
//! Rotating a secret forgets the application on every node (the cluster's
//! `Revoke`), so a token signed with the old secret is refused at once; a
//! change of name or JWKS URL made through another node is seen after the
//! TTL. A read that raced a forget is not kept: every forget moves an epoch,
//! and an entry read before it is dropped instead of stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ids::{AppId, AppToken};
use crate::model::Application;

/// Applications kept at most; past it the cache starts over (cheap, and rare).
const MAX_APPS: usize = 100_000;

/// A TTL cache of applications by id and by token; cheap to clone.
#[derive(Clone)]
pub struct AppsCache {
    ttl: Duration,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<AppId, (Arc<Application>, Instant)>,
    by_token: HashMap<AppToken, AppId>,
    /// Moves on every forget; see [`AppsCache::epoch`].
    epoch: u64,
}

/// Where the cache stood before a store read; [`AppsCache::put`] keeps the
/// read only if nothing was forgotten since.
#[derive(Clone, Copy, Debug)]
pub struct Epoch(u64);

impl AppsCache {
    /// A cache keeping applications for `ttl` (zero: never reuse).
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, inner: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take this before reading an application from the store.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.lock().epoch)
    }

    /// The application with this id, while fresh.
    pub fn by_id(&self, id: &AppId) -> Option<Arc<Application>> {
        let inner = self.lock();
        let (app, at) = inner.by_id.get(id)?;
        (at.elapsed() < self.ttl).then(|| app.clone())
    }

    /// The application with this token, while fresh.
    pub fn by_token(&self, token: &AppToken) -> Option<Arc<Application>> {
        let inner = self.lock();
        let id = inner.by_token.get(token)?;
        let (app, at) = inner.by_id.get(id)?;
        (at.elapsed() < self.ttl && app.token.ct_eq(token)).then(|| app.clone())
    }

    /// Keeps `app`, read from the store after `seen` was taken, unless it was
    /// forgotten (or anything else was) in between; returns it shared.
    pub fn put(&self, seen: Epoch, app: Application) -> Arc<Application> {
        let app = Arc::new(app);
        if self.ttl.is_zero() {
            return app;
        }
        let mut inner = self.lock();
        if inner.epoch != seen.0 {
            return app;
        }
        if inner.by_id.len() >= MAX_APPS {
            inner.by_id.clear();
            inner.by_token.clear();
        }
        inner.by_token.insert(app.token.clone(), app.id.clone());
        inner.by_id.insert(app.id.clone(), (Arc::clone(&app), Instant::now()));
        app
    }

    /// Forgets `app` after it changed (its secret, name or identity provider).
    pub fn forget(&self, id: &AppId) {
        let mut inner = self.lock();
        inner.epoch = inner.epoch.wrapping_add(1);
        if let Some((app, _)) = inner.by_id.remove(id) {
            inner.by_token.remove(&app.token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::SigningSecret;
    use crate::ids::Timestamp;

    fn app() -> Application {
        Application {
            id: AppId::generate(),
            token: AppToken::generate(),
            name: "a".into(),
            secret: SigningSecret::generate(),
            jwks_url: None,
            user_groups: crate::model::UserGroups::Open,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            description: None,
            metadata: crate::model::Metadata::new(),
        }
    }

    #[test]
    fn entries_are_found_by_id_and_token_until_forgotten() {
        let cache = AppsCache::new(Duration::from_secs(60));
        let a = app();
        assert!(cache.by_id(&a.id).is_none());
        cache.put(cache.epoch(), a.clone());
        assert_eq!(cache.by_id(&a.id).unwrap().secret, a.secret);
        assert_eq!(cache.by_token(&a.token).unwrap().id, a.id);
        assert!(cache.by_token(&AppToken::generate()).is_none());
        cache.forget(&a.id);
        assert!(cache.by_id(&a.id).is_none());
        assert!(cache.by_token(&a.token).is_none());
    }

    #[test]
    fn a_read_that_raced_a_forget_is_not_kept() {
        let cache = AppsCache::new(Duration::from_secs(60));
        let stale = app();
        let seen = cache.epoch();
        // The secret is rotated (and forgotten) while the old row is in flight.
        cache.forget(&stale.id);
        cache.put(seen, stale.clone());
        assert!(cache.by_id(&stale.id).is_none());
        cache.put(cache.epoch(), stale.clone());
        assert!(cache.by_id(&stale.id).is_some());
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_keeps_nothing() {
        let a = app();
        let cache = AppsCache::new(Duration::ZERO);
        cache.put(cache.epoch(), a.clone());
        assert!(cache.by_id(&a.id).is_none());
        let cache = AppsCache::new(Duration::from_millis(20));
        cache.put(cache.epoch(), a.clone());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.by_id(&a.id).is_none());
    }
}
