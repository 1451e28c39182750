//! The last messages of each chat, so that most catch-ups (`hello`) are
//! answered without reading the store.
//!
//! A message joins its chat's set after it is persisted and before it is
//! fanned out. In cluster mode the set is a Redis sorted set scored by number
//! (`prefix:{app}:chat:N:recent`), trimmed to the newest `recent_messages` and
//! expiring after `recent_ttl_secs` without news; in the embedded mode it is
//! in process.
//!
//! The cache is trusted only when it provably holds every message after the
//! asked position: the numbers it returns must run on from `after + 1` with
//! no hole. Anything else (an evicted range, a hole left by a failed push, a
//! numbering gap) makes the reader fall back to the store, so a catch-up from
//! the cache can be wrong only if a push failed for a chat's very newest
//! message and Redis came back before the next one; a failed push therefore
//! also deletes the chat's set, retrying in the background.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::redis_conn::{RedisConn, SlotPipes};
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};

use super::CacheConfig;
use crate::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Message, Reactions};

/// Chats kept in process at most; past it the in-process cache starts over.
const MAX_LOCAL_CHATS: usize = 50_000;

/// The recent-message cache; cheap to clone.
#[derive(Clone)]
pub struct RecentCache {
    keep: usize,
    backend: Backend,
}

/// The in-process sets: per chat, messages by number.
type LocalSets = HashMap<(AppId, ChatNumber), BTreeMap<u64, Message>>;

#[derive(Clone)]
enum Backend {
    Off,
    Local(Arc<Mutex<LocalSets>>),
    Redis { conn: RedisConn, prefix: String, ttl_secs: u64 },
}

/// A message in short JSON, without its application and chat (the key or the
/// frame around it names them): kept in Redis here, sent between nodes by the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compact {
    n: u64,
    b: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<u64>,
    t: i64,
    /// Edited at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<i64>,
    /// Deleted at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<i64>,
    /// Reply count.
    #[serde(default, skip_serializing_if = "crate::ids::is_zero")]
    rc: u64,
    /// Last reply at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lr: Option<i64>,
    /// Attachments (with the URLs signed for a live event, none in the cache).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    a: Vec<crate::model::AttachedFile>,
    /// Reactions: (emoji, user) pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    x: Vec<(String, String)>,
}

impl Compact {
    /// The compact form of `m`.
    pub fn of(m: &Message) -> Self {
        Self {
            n: m.number.get(),
            b: m.body.clone(),
            s: m.sender.as_ref().map(|u| u.as_str().to_owned()),
            c: m.client_msg_id.clone(),
            r: m.reply_to.map(MessageNumber::get),
            t: m.created_at.millis(),
            e: m.edited_at.map(Timestamp::millis),
            d: m.deleted_at.map(Timestamp::millis),
            rc: m.reply_count,
            lr: m.last_reply_at.map(Timestamp::millis),
            a: m.attachments.clone(),
            x: m.reactions.pairs().map(|(e, u)| (e.to_owned(), u.as_str().to_owned())).collect(),
        }
    }

    /// The message, in `app` and `chat`; `None` when its sender is not a valid user id.
    pub fn into_message(self, app: &AppId, chat: ChatNumber) -> Option<Message> {
        let sender = match self.s {
            Some(s) => Some(UserId::parse(&s).ok()?),
            None => None,
        };
        let mut reactions = Vec::with_capacity(self.x.len());
        for (emoji, user) in self.x {
            reactions.push((emoji, UserId::parse(&user).ok()?));
        }
        Some(Message {
            app: app.clone(),
            chat,
            number: MessageNumber(self.n),
            body: self.b,
            sender,
            client_msg_id: self.c,
            reply_to: self.r.map(MessageNumber),
            created_at: Timestamp(self.t),
            edited_at: self.e.map(Timestamp),
            deleted_at: self.d.map(Timestamp),
            reply_count: self.rc,
            last_reply_at: self.lr.map(Timestamp),
            attachments: self.a,
            reactions: Reactions::from_pairs(reactions),
        })
    }
}

impl RecentCache {
    /// An in-process cache (embedded mode), or none when `recent_messages` is 0.
    pub fn local(config: &CacheConfig) -> Self {
        let backend = if config.recent_messages == 0 { Backend::Off } else { Backend::Local(Arc::default()) };
        Self { keep: config.recent_messages, backend }
    }

    /// A cache in Redis (cluster mode), or none when `recent_messages` is 0.
    pub fn redis(config: &CacheConfig, conn: RedisConn, prefix: String) -> Self {
        let backend = if config.recent_messages == 0 {
            Backend::Off
        } else {
            Backend::Redis { conn, prefix, ttl_secs: config.recent_ttl_secs.max(1) }
        };
        Self { keep: config.recent_messages, backend }
    }

    /// Adds persisted messages. Never fails: a failed push drops the chat's set.
    pub async fn push(&self, messages: &[Message]) {
        match &self.backend {
            Backend::Off => {}
            Backend::Local(chats) => {
                let mut chats = chats.lock().unwrap_or_else(PoisonError::into_inner);
                if chats.len() >= MAX_LOCAL_CHATS {
                    chats.clear();
                }
                for m in messages {
                    let set = chats.entry((m.app.clone(), m.chat)).or_default();
                    set.insert(m.number.get(), m.clone());
                    while set.len() > self.keep {
                        set.pop_first();
                    }
                }
            }
            Backend::Redis { conn, prefix, ttl_secs } => {
                // A batch may hold several applications: one pipeline per slot on a Redis Cluster.
                let mut pipes = SlotPipes::new(conn);
                for m in messages {
                    let key = key(prefix, &m.app, m.chat);
                    let keep = isize::try_from(self.keep).unwrap_or(isize::MAX);
                    pipes
                        .of(&key)
                        .zadd(&key, encode(m), m.number.get())
                        .ignore()
                        .zremrangebyrank(&key, 0, -(keep + 1))
                        .ignore()
                        .expire(&key, i64::try_from(*ttl_secs).unwrap_or(i64::MAX))
                        .ignore();
                }
                if let Err(e) = pipes.run(conn).await {
                    tracing::warn!(error = %e, "cannot push to the recent cache; dropping the chats' sets");
                    let keys: Vec<String> = messages.iter().map(|m| key(prefix, &m.app, m.chat)).collect();
                    tokio::spawn(drop_sets(conn.clone(), keys));
                }
            }
        }
    }

    /// Replaces a cached message by its edited (or deleted) self, if the chat's
    /// set holds it. Never fails: a failed replace drops the chat's set.
    pub async fn replace(&self, m: &Message) {
        match &self.backend {
            Backend::Off => {}
            Backend::Local(chats) => {
                let mut chats = chats.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(cached) =
                    chats.get_mut(&(m.app.clone(), m.chat)).and_then(|set| set.get_mut(&m.number.get()))
                {
                    *cached = m.clone();
                }
            }
            Backend::Redis { conn, prefix, .. } => {
                // Atomic: only an entry that is there is replaced (a trimmed one stays out).
                const REPLACE: &str = "if redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1]) > 0 then \
                     redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2]) end return 0";
                let key = key(prefix, &m.app, m.chat);
                let mut c = conn.clone();
                let replaced: Result<i64, _> = redis::Script::new(REPLACE)
                    .key(&key)
                    .arg(m.number.get())
                    .arg(encode(m))
                    .invoke_async(&mut c)
                    .await;
                if let Err(e) = replaced {
                    tracing::warn!(error = %e, "cannot replace in the recent cache; dropping the chat's set");
                    tokio::spawn(drop_sets(conn.clone(), vec![key]));
                }
            }
        }
    }

    /// Every message of `chat` after `after` (oldest first, at most `limit`),
    /// if the cache provably holds all of them; `None` sends the reader to the store.
    pub async fn after(
        &self,
        app: &AppId,
        chat: ChatNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Option<Vec<Message>> {
        let (items, empty) = match &self.backend {
            Backend::Off => return None,
            Backend::Local(chats) => {
                let chats = chats.lock().unwrap_or_else(PoisonError::into_inner);
                let set = chats.get(&(app.clone(), chat))?;
                let items: Vec<Message> =
                    set.range(after.get().saturating_add(1)..).take(limit).map(|(_, m)| m.clone()).collect();
                (items, set.is_empty())
            }
            Backend::Redis { conn, prefix, .. } => {
                let key = key(prefix, app, chat);
                let mut c = conn.clone();
                let (count, raw): (u64, Vec<String>) = redis::pipe()
                    .zcard(&key)
                    .cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg(format!("({}", after.get()))
                    .arg("+inf")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut c)
                    .await
                    .ok()?;
                let items = raw.iter().map(|r| decode(app, chat, r)).collect::<Option<Vec<_>>>()?;
                (items, count == 0)
            }
        };
        if empty {
            return None;
        }
        let contiguous =
            items.iter().zip(after.get().saturating_add(1)..).all(|(m, expected)| m.number.get() == expected);
        contiguous.then_some(items)
    }
}

impl RecentCache {
    /// The newest `limit` messages of `chat`, newest first, if the cache
    /// provably holds them: they run down without a hole, and either fill the
    /// page or reach message 1 (the whole chat). `None` sends the reader to the store.
    pub async fn newest(&self, app: &AppId, chat: ChatNumber, limit: usize) -> Option<Vec<Message>> {
        if limit == 0 {
            return None;
        }
        let items = match &self.backend {
            Backend::Off => return None,
            Backend::Local(chats) => {
                let chats = chats.lock().unwrap_or_else(PoisonError::into_inner);
                chats.get(&(app.clone(), chat))?.values().rev().take(limit).cloned().collect::<Vec<_>>()
            }
            Backend::Redis { conn, prefix, .. } => {
                let key = key(prefix, app, chat);
                let stop = isize::try_from(limit).unwrap_or(isize::MAX).saturating_sub(1);
                let raw: Vec<String> = conn.clone().zrevrange(&key, 0, stop).await.ok()?;
                raw.iter().map(|r| decode(app, chat, r)).collect::<Option<Vec<_>>>()?
            }
        };
        let newest = items.first()?.number.get();
        let contiguous = items.iter().zip((1..=newest).rev()).all(|(m, expected)| m.number.get() == expected);
        let whole = items.len() == limit || items.last().is_some_and(|m| m.number.get() == 1);
        (contiguous && whole).then_some(items)
    }
}

fn key(prefix: &str, app: &AppId, chat: ChatNumber) -> String {
    format!("{prefix}:{{{app}}}:chat:{chat}:recent")
}

fn encode(m: &Message) -> String {
    serde_json::to_string(&Compact::of(m)).unwrap_or_default()
}

fn decode(app: &AppId, chat: ChatNumber, raw: &str) -> Option<Message> {
    serde_json::from_str::<Compact>(raw).ok()?.into_message(app, chat)
}

/// Deletes sets whose push failed, retrying until Redis answers (at most ~5 min).
async fn drop_sets(conn: RedisConn, keys: Vec<String>) {
    let mut wait = Duration::from_millis(100);
    for _ in 0..20 {
        let mut pipes = SlotPipes::new(&conn);
        for key in &keys {
            pipes.of(key).del(key).ignore();
        }
        if pipes.run(&conn).await.is_ok() {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(30));
    }
    tracing::warn!(chats = keys.len(), "gave up dropping stale recent-cache sets");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(app: &AppId, n: u64) -> Message {
        Message {
            app: app.clone(),
            chat: ChatNumber(1),
            number: MessageNumber(n),
            body: format!("m{n}"),
            sender: Some(UserId::parse("a").unwrap()),
            client_msg_id: None,
            reply_to: None,
            created_at: Timestamp(n as i64),
            edited_at: None,
            deleted_at: None,
            reply_count: 0,
            last_reply_at: None,
            attachments: Vec::new(),
            reactions: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_newest_page_is_answered_only_when_the_cache_holds_it_whole() {
        let config = CacheConfig { recent_messages: 5, ..CacheConfig::default() };
        let cache = RecentCache::local(&config);
        let app = AppId::generate();
        let chat = ChatNumber(1);
        let numbers = |items: Vec<Message>| items.iter().map(|m| m.number.get()).collect::<Vec<_>>();
        assert!(cache.newest(&app, chat, 3).await.is_none(), "unknown chat");
        cache.push(&(1..=3).map(|n| message(&app, n)).collect::<Vec<_>>()).await;
        assert_eq!(numbers(cache.newest(&app, chat, 2).await.unwrap()), [3, 2]);
        assert_eq!(numbers(cache.newest(&app, chat, 10).await.unwrap()), [3, 2, 1], "the whole chat");
        cache.push(&(4..=8).map(|n| message(&app, n)).collect::<Vec<_>>()).await;
        // Keeps 4..=8: a page of 5 is whole, a page of 6 reaches past the cache.
        assert_eq!(numbers(cache.newest(&app, chat, 5).await.unwrap()), [8, 7, 6, 5, 4]);
        assert!(cache.newest(&app, chat, 6).await.is_none());
        // A hole (a numbering gap, or a failed push) sends the reader to the store.
        cache.push(&[message(&app, 10)]).await;
        assert!(cache.newest(&app, chat, 3).await.is_none());
        assert_eq!(numbers(cache.newest(&app, chat, 1).await.unwrap()), [10]);
    }

    #[tokio::test]
    async fn local_cache_answers_only_what_it_provably_holds() {
        let config = CacheConfig { recent_messages: 5, ..CacheConfig::default() };
        let cache = RecentCache::local(&config);
        let app = AppId::generate();
        let chat = ChatNumber(1);
        assert!(cache.after(&app, chat, MessageNumber(0), 10).await.is_none(), "empty: unknown");
        let all: Vec<Message> = (1..=8).map(|n| message(&app, n)).collect();
        cache.push(&all).await;
        // Keeps 4..=8.
        let got = cache.after(&app, chat, MessageNumber(3), 10).await.unwrap();
        assert_eq!(got.iter().map(|m| m.number.get()).collect::<Vec<_>>(), [4, 5, 6, 7, 8]);
        assert_eq!(cache.after(&app, chat, MessageNumber(6), 1).await.unwrap().len(), 1);
        assert!(cache.after(&app, chat, MessageNumber(8), 10).await.unwrap().is_empty(), "up to date");
        assert!(cache.after(&app, chat, MessageNumber(2), 10).await.is_none(), "evicted range");
        cache.push(&[message(&app, 10)]).await;
        assert!(cache.after(&app, chat, MessageNumber(8), 10).await.is_none(), "a hole at 9");
        let decoded = decode(&app, chat, &encode(&all[0])).unwrap();
        assert_eq!(decoded, all[0]);
    }
}
