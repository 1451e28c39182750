//! A bounded memory of chats known to exist, to spare a store read per message.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::ids::{AppId, ChatNumber};

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
