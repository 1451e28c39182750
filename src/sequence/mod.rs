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
}

impl Default for SequenceConfig {
    fn default() -> Self {
        Self { resume_gap: 1000 }
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

/// An idempotency key: (application, sender, client_msg_id).
pub type IdempotencyKey = (AppId, UserId, String);

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
    pub(crate) fn redis(&self) -> Option<(::redis::aio::ConnectionManager, String)> {
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

    /// The (chat, number) a key was first sent as, if it was.
    pub async fn recall(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<(ChatNumber, MessageNumber)>, SequenceError> {
        match self {
            Sequencer::Local(s) => Ok(s.recall(key)),
            Sequencer::Redis(s) => s.recall(key).await,
        }
    }

    /// Claims `key` for (chat, seq); returns the earlier claim if another won.
    pub async fn remember(
        &self,
        key: &IdempotencyKey,
        chat: ChatNumber,
        seq: MessageNumber,
    ) -> Result<Option<(ChatNumber, MessageNumber)>, SequenceError> {
        match self {
            Sequencer::Local(s) => Ok(s.remember(key, chat, seq)),
            Sequencer::Redis(s) => s.remember(key, chat, seq).await,
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
