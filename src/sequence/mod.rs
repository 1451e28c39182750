//! Numbering: chat numbers per application and message numbers per chat.
//!
//! Numbers only grow. In the embedded mode the counters live in process,
//! seeded from the store on first use. In cluster mode they are Redis `INCR`
//! counters; if Redis loses a counter, it is re-seeded above the highest stored
//! number plus `resume_gap`, so numbers allocated but not yet persisted on some
//! node when Redis was lost are never handed out again. A gap is fine; a reuse
//! never is.

mod local;
mod redis;

use serde::Deserialize;

use crate::ids::{AppId, ChatNumber, MessageNumber, UserId};
use crate::store::{DynStore, StoreError};

pub use self::local::LocalSequencer;
pub use self::redis::{RedisConfig, RedisSequencer};

/// Tuning of numbering (`[sequence]` in the config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceConfig {
    /// How far above the highest stored number a lost Redis counter resumes.
    pub resume_gap: u64,
    /// A retry takes over an idempotency claim whose send is still not
    /// stored after this long (its node died before the commit), in ms. Must
    /// be well above the longest a commit can take (batch queue + store timeout).
    pub claim_abandon_ms: u64,
}

impl Default for SequenceConfig {
    fn default() -> Self {
        Self { resume_gap: 1000, claim_abandon_ms: 30_000 }
    }
}

/// Why a number could not be allocated or read.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    /// Redis did not answer or refused.
    #[error("redis unavailable")]
    Redis(#[source] ::redis::RedisError),
    /// The store was needed to seed a counter and failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An idempotency key: (application, sender, client_msg_id). A sender of
/// `None` is the application's backend posting over REST without naming a
/// sender: a key space of its own, apart from every user's.
pub type IdempotencyKey = (AppId, Option<UserId>, String);

/// What an idempotency key was claimed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The chat.
    pub chat: ChatNumber,
    /// The number the first send drew.
    pub seq: MessageNumber,
    /// Whether that send's message is persisted (its ack may be repeated).
    pub committed: bool,
    /// When the claim was made, in ms since the epoch.
    pub at: i64,
}

impl Claim {
    /// A fresh, uncommitted claim.
    pub fn pending(chat: ChatNumber, seq: MessageNumber) -> Self {
        Self { chat, seq, committed: false, at: crate::ids::Timestamp::now().millis() }
    }

    /// How the claim is kept in Redis: `P|C:chat:seq:at`.
    pub(crate) fn encode(&self) -> String {
        let state = if self.committed { 'C' } else { 'P' };
        format!("{state}:{}:{}:{}", self.chat, self.seq, self.at)
    }

    /// Reads a kept claim; the older `chat:seq` form counts as committed.
    pub(crate) fn decode(raw: &str) -> Option<Self> {
        let parts: Vec<&str> = raw.split(':').collect();
        let number = |s: &str| s.parse::<u64>().ok();
        match parts.as_slice() {
            [state @ ("P" | "C"), chat, seq, at] => Some(Self {
                chat: ChatNumber(number(chat)?),
                seq: MessageNumber(number(seq)?),
                committed: *state == "C",
                at: at.parse().ok()?,
            }),
            [chat, seq] => Some(Self {
                chat: ChatNumber(number(chat)?),
                seq: MessageNumber(number(seq)?),
                committed: true,
                at: 0,
            }),
            _ => None,
        }
    }
}

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_SECONDS: u64 = 24 * 3600;

/// Where a counter lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Counter {
    /// The chats of an application.
    Chats(AppId),
    /// The messages of a chat.
    Messages(AppId, ChatNumber),
}

impl Counter {
    /// The highest number the store holds for this counter.
    async fn stored_max(&self, store: &DynStore) -> Result<u64, StoreError> {
        match self {
            Counter::Chats(app) => store.max_chat_number(app).await,
            Counter::Messages(app, chat) => store.max_message_number(app, *chat).await,
        }
    }
}

/// The numbering backend in use.
#[derive(Clone)]
pub enum Sequencer {
    /// In-process counters (single node).
    Local(LocalSequencer),
    /// Redis counters (cluster).
    Redis(RedisSequencer),
}

impl Sequencer {
    /// The Redis connection and key prefix, in cluster mode.
    pub(crate) fn redis(&self) -> Option<(crate::redis_conn::RedisConn, String)> {
        match self {
            Sequencer::Local(_) => None,
            Sequencer::Redis(s) => Some(s.connection()),
        }
    }

    /// Starts the counters of a new application at zero.
    pub async fn init_app(&self, app: &AppId) -> Result<(), SequenceError> {
        self.init(Counter::Chats(app.clone())).await
    }

    /// Starts the counter of a new chat at zero.
    pub async fn init_chat(&self, app: &AppId, chat: ChatNumber) -> Result<(), SequenceError> {
        self.init(Counter::Messages(app.clone(), chat)).await
    }

    /// The next chat number of `app`.
    pub async fn next_chat(&self, app: &AppId) -> Result<ChatNumber, SequenceError> {
        self.next(Counter::Chats(app.clone())).await.map(ChatNumber)
    }

    /// The next message number of `chat`.
    pub async fn next_message(&self, app: &AppId, chat: ChatNumber) -> Result<MessageNumber, SequenceError> {
        self.next(Counter::Messages(app.clone(), chat)).await.map(MessageNumber)
    }

    /// How many chat numbers `app` has used.
    pub async fn chats_count(&self, app: &AppId) -> Result<u64, SequenceError> {
        let counts = self.current(&[Counter::Chats(app.clone())]).await?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    /// How many message numbers each of `chats` has used, in the same order.
    pub async fn messages_counts(
        &self,
        app: &AppId,
        chats: &[ChatNumber],
    ) -> Result<Vec<u64>, SequenceError> {
        let counters: Vec<_> = chats.iter().map(|c| Counter::Messages(app.clone(), *c)).collect();
        self.current(&counters).await
    }

    /// Takes a short cluster-wide lock named `name` for `ttl_ms` (always
    /// granted in process: the local callers hold their own lock).
    pub async fn try_lock(&self, name: &str, ttl_ms: u64) -> Result<bool, SequenceError> {
        match self {
            Sequencer::Local(_) => Ok(true),
            Sequencer::Redis(s) => s.try_lock(name, ttl_ms).await,
        }
    }

    /// Releases a lock taken with `try_lock` (it also expires by itself).
    pub async fn unlock(&self, name: &str) -> Result<(), SequenceError> {
        match self {
            Sequencer::Local(_) => Ok(()),
            Sequencer::Redis(s) => s.unlock(name).await,
        }
    }

    /// The claim on a key, if it was sent before.
    pub async fn recall(&self, key: &IdempotencyKey) -> Result<Option<Claim>, SequenceError> {
        match self {
            Sequencer::Local(s) => Ok(s.recall(key)),
            Sequencer::Redis(s) => s.recall(key).await,
        }
    }

    /// Claims `key` (pending) unless claimed before; returns the earlier claim if so.
    pub async fn claim(&self, key: &IdempotencyKey, claim: Claim) -> Result<Option<Claim>, SequenceError> {
        match self {
            Sequencer::Local(s) => Ok(s.claim(key, claim)),
            Sequencer::Redis(s) => s.claim(key, claim).await,
        }
    }

    /// Replaces `old` by `new` if `key` still holds `old` (taking over an abandoned claim).
    pub async fn replace(&self, key: &IdempotencyKey, old: Claim, new: Claim) -> Result<bool, SequenceError> {
        match self {
            Sequencer::Local(s) => Ok(s.replace(key, old, new)),
            Sequencer::Redis(s) => s.replace(key, old, new).await,
        }
    }

    /// Marks a claim committed: its message is persisted.
    pub async fn confirm(&self, key: &IdempotencyKey, claim: Claim) -> Result<(), SequenceError> {
        let committed = Claim { committed: true, ..claim };
        match self {
            Sequencer::Local(s) => {
                s.replace(key, claim, committed);
                Ok(())
            }
            Sequencer::Redis(s) => s.replace(key, claim, committed).await.map(|_| ()),
        }
    }

    /// Drops a claim whose message could not be persisted.
    pub async fn forget(&self, key: &IdempotencyKey) -> Result<(), SequenceError> {
        match self {
            Sequencer::Local(s) => {
                s.forget(key);
                Ok(())
            }
            Sequencer::Redis(s) => s.forget(key).await,
        }
    }

    async fn init(&self, counter: Counter) -> Result<(), SequenceError> {
        match self {
            Sequencer::Local(s) => {
                s.init(counter);
                Ok(())
            }
            Sequencer::Redis(s) => s.init(&counter).await,
        }
    }

    async fn next(&self, counter: Counter) -> Result<u64, SequenceError> {
        match self {
            Sequencer::Local(s) => s.next(counter).await,
            Sequencer::Redis(s) => s.next(&counter).await,
        }
    }

    async fn current(&self, counters: &[Counter]) -> Result<Vec<u64>, SequenceError> {
        match self {
            Sequencer::Local(s) => s.current(counters).await,
            Sequencer::Redis(s) => s.current(counters).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_round_trip_and_old_ones_read_as_committed() {
        let pending = Claim::pending(ChatNumber(3), MessageNumber(42));
        assert_eq!(Claim::decode(&pending.encode()), Some(pending));
        let committed = Claim { committed: true, ..pending };
        assert_eq!(Claim::decode(&committed.encode()), Some(committed));
        let old = Claim::decode("3:42").unwrap();
        assert!(old.committed);
        assert_eq!((old.chat, old.seq), (ChatNumber(3), MessageNumber(42)));
        for bad in ["", "x", "P:1:2", "Q:1:2:3", "P:a:2:3", "1:b"] {
            assert_eq!(Claim::decode(bad), None, "{bad}");
        }
    }
}
