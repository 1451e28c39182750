//! Member lists of chats, reused for fan-out for a short time.
//!
//! A send reads its chat's members once per `members_ttl_ms` instead of once
//! per message. Changes made through this node invalidate at once; changes
//! made through another node are seen after the TTL (the cluster transport
//! invalidates across nodes).
//!
//! A list past half its TTL is still served, and the first send to see it so
//! refreshes it in the background ([`MembersCache::get_or_refresh`]): a chat
//! that keeps sending never waits for the store, where a list that simply
//! expired made one message in every TTL wait for a read of all the members.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ids::{AppId, ChatNumber, UserId};

/// Chats kept at most; past it the cache starts over (cheap, and rare).
const MAX_CHATS: usize = 100_000;

/// The members of a chat, sorted by user id.
pub type Members = Arc<[UserId]>;

/// A member list, when it was read, and whether a refresh of it is under way.
type Fresh = (Members, Instant, bool);

/// A TTL cache of member lists; cheap to clone.
#[derive(Clone)]
pub struct MembersCache {
    ttl: Duration,
    chats: Arc<Mutex<HashMap<(AppId, ChatNumber), Fresh>>>,
    /// Stripes of invalidation counts, by chat: a list read before an
    /// invalidation of its chat (or of another chat of its stripe) is not kept
    /// after it (a removed member must not come back from a read that raced
    /// the removal). Striped so that joins elsewhere rarely spoil a read.
    epochs: Arc<[AtomicU64; EPOCH_STRIPES]>,
}

/// How many invalidation counts the chats share.
const EPOCH_STRIPES: usize = 64;

impl MembersCache {
    /// A cache keeping lists for `ttl` (zero: never reuse).
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, chats: Arc::default(), epochs: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))) }
    }

    fn stripe(&self, app: &AppId, chat: ChatNumber) -> &AtomicU64 {
        use std::hash::BuildHasher as _;
        // A fixed hasher: the stripe of a chat must not change between calls.
        let fixed = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default();
        &self.epochs[(fixed.hash_one((app, chat)) as usize) % EPOCH_STRIPES]
    }

    /// `chat`'s invalidation count; read it before reading its list from the store.
    pub fn epoch(&self, app: &AppId, chat: ChatNumber) -> u64 {
        self.stripe(app, chat).load(Ordering::Acquire)
    }

    /// The cached members of `chat`, while fresh.
    pub fn get(&self, app: &AppId, chat: ChatNumber) -> Option<Members> {
        let chats = self.chats.lock().unwrap_or_else(PoisonError::into_inner);
        let (members, at, _) = chats.get(&(app.clone(), chat))?;
        (at.elapsed() < self.ttl).then(|| members.clone())
    }

    /// The cached members of `chat`, while fresh, and whether the caller
    /// should refresh them now: `true` once, for the first call past half
    /// the TTL (the caller then reads the store and [`put`](Self::put)s).
    pub fn get_or_refresh(&self, app: &AppId, chat: ChatNumber) -> Option<(Members, bool)> {
        let mut chats = self.chats.lock().unwrap_or_else(PoisonError::into_inner);
        let (members, at, refreshing) = chats.get_mut(&(app.clone(), chat))?;
        let age = at.elapsed();
        if age >= self.ttl {
            return None;
        }
        let refresh = !*refreshing && age >= self.ttl / 2;
        *refreshing |= refresh;
        Some((members.clone(), refresh))
    }

    /// Keeps `members` (sorted by user id) of `chat`, read when the epoch was
    /// `seen`: unless something was invalidated since.
    pub fn put(&self, app: &AppId, chat: ChatNumber, members: Members, seen: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut chats = self.chats.lock().unwrap_or_else(PoisonError::into_inner);
        if self.epoch(app, chat) != seen {
            return;
        }
        if chats.len() >= MAX_CHATS {
            chats.clear();
        }
        chats.insert((app.clone(), chat), (members, Instant::now(), false));
    }

    /// Forgets `chat` after its members changed.
    pub fn invalidate(&self, app: &AppId, chat: ChatNumber) {
        let mut chats = self.chats.lock().unwrap_or_else(PoisonError::into_inner);
        self.stripe(app, chat).fetch_add(1, Ordering::AcqRel);
        chats.remove(&(app.clone(), chat));
    }
}

/// Whether `user` is in a list sorted by user id.
pub fn contains(members: &[UserId], user: &UserId) -> bool {
    members.binary_search(user).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_expire_and_invalidate() {
        let (app, chat) = (AppId::generate(), ChatNumber(1));
        let users: Members = ["a", "b"].iter().map(|u| UserId::parse(u).unwrap()).collect();
        let cache = MembersCache::new(Duration::from_secs(60));
        assert!(cache.get(&app, chat).is_none());
        cache.put(&app, chat, users.clone(), cache.epoch(&app, chat));
        assert_eq!(cache.get(&app, chat).unwrap().len(), 2);
        assert!(contains(&users, &UserId::parse("b").unwrap()));
        assert!(!contains(&users, &UserId::parse("c").unwrap()));
        cache.invalidate(&app, chat);
        assert!(cache.get(&app, chat).is_none());
        let off = MembersCache::new(Duration::ZERO);
        off.put(&app, chat, users.clone(), off.epoch(&app, chat));
        assert!(off.get(&app, chat).is_none());
    }

    #[test]
    fn a_list_past_half_its_ttl_is_served_and_refreshed_once() {
        let (app, chat) = (AppId::generate(), ChatNumber(1));
        let users: Members = ["a", "b"].iter().map(|u| UserId::parse(u).unwrap()).collect();
        let cache = MembersCache::new(Duration::from_millis(200));
        assert!(cache.get_or_refresh(&app, chat).is_none());
        cache.put(&app, chat, users.clone(), cache.epoch(&app, chat));
        let (listed, refresh) = cache.get_or_refresh(&app, chat).unwrap();
        assert_eq!((listed.len(), refresh), (2, false));
        // Aged past half the TTL (moved back in time rather than slept).
        let past = Instant::now().checked_sub(Duration::from_millis(150)).unwrap();
        cache.chats.lock().unwrap().get_mut(&(app.clone(), chat)).unwrap().1 = past;
        assert_eq!(cache.get_or_refresh(&app, chat).map(|(_, r)| r), Some(true));
        assert_eq!(cache.get_or_refresh(&app, chat).map(|(_, r)| r), Some(false), "one refresh at a time");
        // The refreshed list starts over.
        cache.put(&app, chat, users.clone(), cache.epoch(&app, chat));
        assert_eq!(cache.get_or_refresh(&app, chat).map(|(_, r)| r), Some(false));
        // Past the TTL nothing is served.
        let expired = Instant::now().checked_sub(Duration::from_millis(250)).unwrap();
        cache.chats.lock().unwrap().get_mut(&(app.clone(), chat)).unwrap().1 = expired;
        assert!(cache.get_or_refresh(&app, chat).is_none());
        assert!(cache.get(&app, chat).is_none());
    }

    #[test]
    fn a_list_read_before_an_invalidation_is_not_kept() {
        let (app, chat) = (AppId::generate(), ChatNumber(1));
        let users: Members = ["a", "b"].iter().map(|u| UserId::parse(u).unwrap()).collect();
        let cache = MembersCache::new(Duration::from_secs(60));
        let seen = cache.epoch(&app, chat);
        cache.invalidate(&app, chat);
        cache.put(&app, chat, users.clone(), seen);
        assert!(cache.get(&app, chat).is_none(), "a stale read came back");
        cache.put(&app, chat, users, cache.epoch(&app, chat));
        assert!(cache.get(&app, chat).is_some());
        let off = MembersCache::new(Duration::ZERO);
        assert!(off.get(&app, chat).is_none());
    }
}
