//! Chat numbers per application and message numbers per chat: in process
//! (one node, seeded from the store) or Redis counters (a cluster).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use super::{SequenceError, redis_err};
use crate::ids::{AppId, ChatNumber, MessageNumber};
use crate::redis_conn::RedisConn;
use crate::store::{DynStore, StoreError};

/// INCR only a counter that exists; -1 says it must be seeded first.
const NEXT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('INCR', KEYS[1])
";

/// SET a counter to ARGV[1] unless it is there or above already (numbers only grow).
const RAISE: &str = r"
local now = tonumber(redis.call('GET', KEYS[1]) or '-1')
if now < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
";

/// Where a counter lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Counter {
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

/// The numbering in use; cheap to clone.
#[derive(Clone)]
pub enum Numbering {
    /// In-process counters (one node).
    Local(LocalCounters),
    /// Redis counters (a cluster).
    Redis(RedisCounters),
}

impl Numbering {
    /// Counters in this process, each seeded from `store` on first use.
    pub fn local(store: DynStore) -> Self {
        Numbering::Local(LocalCounters { store, cells: Arc::default() })
    }

    /// Counters in Redis under `prefix`, re-seeded from `store` at its
    /// maximum plus `resume_gap` when Redis lost them.
    pub fn redis(conn: RedisConn, prefix: String, store: DynStore, resume_gap: u64) -> Self {
        Numbering::Redis(RedisCounters { conn, prefix, store, resume_gap, next: redis::Script::new(NEXT) })
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

    /// Moves `app`'s chat counter up to `to` (never down): an imported
    /// application's next chat is numbered after every number it had used.
    pub async fn raise_chats(&self, app: &AppId, to: u64) -> Result<(), SequenceError> {
        self.raise(Counter::Chats(app.clone()), to).await
    }

    /// Moves `chat`'s message counter up to `to` (never down), as [`Self::raise_chats`].
    pub async fn raise_messages(&self, app: &AppId, chat: ChatNumber, to: u64) -> Result<(), SequenceError> {
        self.raise(Counter::Messages(app.clone(), chat), to).await
    }

    async fn raise(&self, counter: Counter, to: u64) -> Result<(), SequenceError> {
        match self {
            Numbering::Local(s) => {
                let cell = s.seeded(&counter).await?;
                if let Some(n) = cell.get() {
                    n.fetch_max(to, Ordering::SeqCst);
                }
                Ok(())
            }
            Numbering::Redis(s) => {
                let mut conn = s.conn.clone();
                let _: i64 = redis::Script::new(RAISE)
                    .key(s.key(&counter))
                    .arg(to)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(redis_err)?;
                Ok(())
            }
        }
    }

    async fn init(&self, counter: Counter) -> Result<(), SequenceError> {
        match self {
            Numbering::Local(s) => {
                s.init(&counter);
                Ok(())
            }
            Numbering::Redis(s) => s.init(&counter).await,
        }
    }

    async fn next(&self, counter: Counter) -> Result<u64, SequenceError> {
        match self {
            Numbering::Local(s) => s.next(&counter).await,
            Numbering::Redis(s) => s.next(&counter).await,
        }
    }

    async fn current(&self, counters: &[Counter]) -> Result<Vec<u64>, SequenceError> {
        match self {
            Numbering::Local(s) => s.current(counters).await,
            Numbering::Redis(s) => s.current(counters).await,
        }
    }
}

type Cell = Arc<OnceCell<AtomicU64>>;

/// Counters held in memory, each seeded from the store on first use.
///
/// Only correct while this process is the only writer of its store, which is
/// what the embedded mode is.
#[derive(Clone)]
pub struct LocalCounters {
    store: DynStore,
    cells: Arc<Mutex<HashMap<Counter, Cell>>>,
}

impl LocalCounters {
    fn cell(&self, counter: &Counter) -> Cell {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(cells.entry(counter.clone()).or_default())
    }

    async fn seeded(&self, counter: &Counter) -> Result<Cell, SequenceError> {
        let cell = self.cell(counter);
        cell.get_or_try_init(|| async { counter.stored_max(&self.store).await.map(AtomicU64::new) }).await?;
        Ok(cell)
    }

    fn init(&self, counter: &Counter) {
        let cell = self.cell(counter);
        // A new application or chat has nothing stored: zero is its true start.
        let _ = cell.set(AtomicU64::new(0));
    }

    async fn next(&self, counter: &Counter) -> Result<u64, SequenceError> {
        let cell = self.seeded(counter).await?;
        Ok(cell.get().map_or(0, |n| n.fetch_add(1, Ordering::SeqCst) + 1))
    }

    async fn current(&self, counters: &[Counter]) -> Result<Vec<u64>, SequenceError> {
        let mut out = Vec::with_capacity(counters.len());
        for counter in counters {
            let cell = self.seeded(counter).await?;
            out.push(cell.get().map_or(0, |n| n.load(Ordering::SeqCst)));
        }
        Ok(out)
    }
}

/// Counters in Redis, re-seeded from the store when Redis lost them.
#[derive(Clone)]
pub struct RedisCounters {
    conn: RedisConn,
    prefix: String,
    store: DynStore,
    resume_gap: u64,
    next: redis::Script,
}

impl RedisCounters {
    /// The shared connection.
    pub(super) fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// The key of `chat`'s message counter.
    pub(super) fn message_key(&self, app: &AppId, chat: ChatNumber) -> String {
        self.key(&Counter::Messages(app.clone(), chat))
    }

    fn key(&self, counter: &Counter) -> String {
        // The hash tag keeps all keys of one application on one Redis Cluster slot.
        match counter {
            Counter::Chats(app) => format!("{}:{{{}}}:chats", self.prefix, app),
            Counter::Messages(app, chat) => format!("{}:{{{}}}:chat:{}:seq", self.prefix, app, chat),
        }
    }

    async fn init(&self, counter: &Counter) -> Result<(), SequenceError> {
        let mut conn = self.conn.clone();
        let _: Option<String> = redis::cmd("SET")
            .arg(self.key(counter))
            .arg(0)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn next(&self, counter: &Counter) -> Result<u64, SequenceError> {
        let key = self.key(counter);
        let mut conn = self.conn.clone();
        // Two rounds at most: the counter was missing, we seeded it, now it exists.
        for _ in 0..2 {
            let value: i64 = self.next.key(&key).invoke_async(&mut conn).await.map_err(redis_err)?;
            if let Ok(value) = u64::try_from(value) {
                return Ok(value);
            }
            let seed = counter.stored_max(&self.store).await? + self.resume_gap;
            tracing::warn!(seed, "redis counter missing, re-seeding above the stored maximum");
            let _: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(seed)
                .arg("NX")
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
        }
        let value: i64 = self.next.key(&key).invoke_async(&mut conn).await.map_err(redis_err)?;
        u64::try_from(value).map_err(|_| {
            SequenceError::Redis(redis::RedisError::from((
                redis::ErrorKind::Client,
                "counter vanished twice",
            )))
        })
    }

    async fn current(&self, counters: &[Counter]) -> Result<Vec<u64>, SequenceError> {
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = counters.iter().map(|c| self.key(c)).collect();
        let mut conn = self.conn.clone();
        let values: Vec<Option<u64>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await.map_err(redis_err)?;
        let mut out = Vec::with_capacity(values.len());
        for (value, counter) in values.into_iter().zip(counters) {
            match value {
                Some(v) => out.push(v),
                // Lost by Redis: the store knows at least what was persisted.
                None => out.push(counter.stored_max(&self.store).await?),
            }
        }
        Ok(out)
    }
}
