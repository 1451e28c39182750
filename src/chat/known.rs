//! Bounded memories of what never changes once it exists: chats (to spare a
//! store read per message) and the direct chat of each pair.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::sync::{Arc, Mutex, PoisonError};

use crate::ids::{AppId, ChatNumber};
use crate::model::DirectPair;

/// Chats are never deleted, so "exists" never goes stale; the set is simply
/// cleared when it grows past `CAPACITY`.
#[derive(Clone, Default)]
pub(super) struct KnownChats {
    set: Arc<Mutex<HashSet<(AppId, ChatNumber)>>>,
}

const CAPACITY: usize = 100_000;

impl KnownChats {
    pub(super) fn contains(&self, app: &AppId, chat: ChatNumber) -> bool {
        let set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        set.contains(&(app.clone(), chat))
    }

    pub(super) fn insert(&self, app: &AppId, chat: ChatNumber) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        if set.len() >= CAPACITY {
            set.clear();
        }
        set.insert((app.clone(), chat));
    }
}

/// Lock stripes for creating direct chats on this node.
const STRIPES: usize = 64;

/// The direct chats this node has seen (a pair's chat never changes), and
/// striped locks so that two local sends opening the same pair create it once.
#[derive(Clone)]
pub(super) struct DirectChats {
    found: Arc<Mutex<HashMap<(AppId, DirectPair), ChatNumber>>>,
    stripes: Arc<[tokio::sync::Mutex<()>]>,
}

impl Default for DirectChats {
    fn default() -> Self {
        Self { found: Arc::default(), stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect() }
    }
}

impl DirectChats {
    pub(super) fn get(&self, app: &AppId, pair: &DirectPair) -> Option<ChatNumber> {
        let found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        found.get(&(app.clone(), pair.clone())).copied()
    }

    pub(super) fn put(&self, app: &AppId, pair: &DirectPair, chat: ChatNumber) {
        let mut found = self.found.lock().unwrap_or_else(PoisonError::into_inner);
        if found.len() >= CAPACITY {
            found.clear();
        }
        found.insert((app.clone(), pair.clone()), chat);
    }

    /// Holds the stripe of `pair` until the guard drops.
    pub(super) async fn lock(&self, app: &AppId, pair: &DirectPair) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (app, pair).hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % STRIPES as u64).unwrap_or(0);
        self.stripes[index].lock().await
    }
}
