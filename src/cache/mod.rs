//! Caches on the message path: the recent messages of each chat (for
//! catch-ups) and the member lists of chats (for fan-out).

pub mod apps;
pub mod members;
mod recent;

use serde::Deserialize;

pub use apps::AppsCache;
pub use members::MembersCache;
pub use recent::{Compact, RecentCache};

/// `[cache]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Recent messages kept per chat; 0 turns the cache off.
    pub recent_messages: usize,
    /// A chat's recent set expires after this long without messages, in seconds.
    pub recent_ttl_secs: u64,
    /// How long a chat's member list is reused for fan-out, in ms.
    pub members_ttl_ms: u64,
    /// How long an application (its secret, for token checks) is reused, in ms;
    /// 0 reads it from the store every time.
    pub apps_ttl_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            recent_messages: 200,
            recent_ttl_secs: 7 * 24 * 3600,
            members_ttl_ms: 5_000,
            apps_ttl_ms: 5_000,
        }
    }
}
