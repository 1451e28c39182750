//! Idempotency claims: a send claims its key (application, sender,
//! `client_msg_id`) before it is numbered, and marks the claim committed once
//! its message is persisted, so a retry repeats the first answer instead of
//! storing the message twice. In process on one node, in Redis in a cluster.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::{SequenceError, redis_err};
use crate::ids::{AppId, ChatNumber, MessageNumber, UserId};
use crate::redis_conn::RedisConn;

/// An idempotency key: (application, sender, client_msg_id). A sender of
/// `None` is the application's backend posting over REST without naming a
/// sender: a key space of its own, apart from every user's.
pub type IdempotencyKey = (AppId, Option<UserId>, String);

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_TTL_SECONDS: u64 = 24 * 3600;

/// SET a key to ARGV[2] only while it holds ARGV[1] (compare and set).
const REPLACE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
";

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

/// The claims in use; cheap to clone.
#[derive(Clone)]
pub enum Claims {
    /// Kept in this process (one node).
    Local(LocalClaims),
    /// Kept in Redis (a cluster), for [`IDEMPOTENCY_TTL_SECONDS`].
    Redis(RedisClaims),
}

impl Claims {
    /// Claims kept in this process.
    pub fn local() -> Self {
        Claims::Local(LocalClaims::default())
    }

    /// Claims kept in Redis under `prefix`.
    pub fn redis(conn: RedisConn, prefix: String) -> Self {
        Claims::Redis(RedisClaims { conn, prefix, replace: redis::Script::new(REPLACE) })
    }

    /// The claim on a key, if it was sent before.
    pub async fn recall(&self, key: &IdempotencyKey) -> Result<Option<Claim>, SequenceError> {
        match self {
            Claims::Local(s) => Ok(s.recall(key)),
            Claims::Redis(s) => s.recall(key).await,
        }
    }

    /// Claims `key` (pending) unless claimed before; returns the earlier claim if so.
    pub async fn claim(&self, key: &IdempotencyKey, claim: Claim) -> Result<Option<Claim>, SequenceError> {
        match self {
            Claims::Local(s) => Ok(s.claim(key, claim)),
            Claims::Redis(s) => s.claim(key, claim).await,
        }
    }

    /// Replaces `old` by `new` if `key` still holds `old` (taking over an abandoned claim).
    pub async fn replace(&self, key: &IdempotencyKey, old: Claim, new: Claim) -> Result<bool, SequenceError> {
        match self {
            Claims::Local(s) => Ok(s.replace(key, old, new)),
            Claims::Redis(s) => s.replace(key, old, new).await,
        }
    }

    /// Marks a claim committed: its message is persisted.
    pub async fn confirm(&self, key: &IdempotencyKey, claim: Claim) -> Result<(), SequenceError> {
        self.replace(key, claim, Claim { committed: true, ..claim }).await.map(|_| ())
    }

    /// Drops a claim whose message could not be persisted.
    pub async fn forget(&self, key: &IdempotencyKey) -> Result<(), SequenceError> {
        match self {
            Claims::Local(s) => {
                s.forget(key);
                Ok(())
            }
            Claims::Redis(s) => s.forget(key).await,
        }
    }
}

/// Idempotency keys kept in memory at most, over two generations: when the
/// newer one is full, the older one is dropped. A claim (pending or not) is
/// thus kept for at least `SEEN_CAPACITY / 2` later claims; clearing one map
/// at once dropped claims still being committed, and a retry of one of them
/// would have stored its message twice.
const SEEN_CAPACITY: usize = 200_000;

/// Claims held in this process.
#[derive(Clone, Default)]
pub struct LocalClaims {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    current: HashMap<IdempotencyKey, Claim>,
    previous: HashMap<IdempotencyKey, Claim>,
}

impl Seen {
    fn get(&self, key: &IdempotencyKey) -> Option<&Claim> {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    /// The earlier claim on `key`, or `None` after recording this one.
    fn claim(&mut self, key: &IdempotencyKey, claim: Claim, capacity: usize) -> Option<Claim> {
        if let Some(earlier) = self.get(key) {
            return Some(*earlier);
        }
        if self.current.len() >= (capacity / 2).max(1) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key.clone(), claim);
        None
    }

    fn get_mut(&mut self, key: &IdempotencyKey) -> Option<&mut Claim> {
        match self.current.get_mut(key) {
            Some(claim) => Some(claim),
            None => self.previous.get_mut(key),
        }
    }

    /// Replaces `old` by `new` if `key` holds `old`.
    fn replace(&mut self, key: &IdempotencyKey, old: Claim, new: Claim) -> bool {
        match self.get_mut(key) {
            Some(current) if *current == old => {
                *current = new;
                true
            }
            _ => false,
        }
    }

    fn forget(&mut self, key: &IdempotencyKey) {
        self.current.remove(key);
        self.previous.remove(key);
    }
}

impl LocalClaims {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn recall(&self, key: &IdempotencyKey) -> Option<Claim> {
        self.seen().get(key).copied()
    }

    fn claim(&self, key: &IdempotencyKey, claim: Claim) -> Option<Claim> {
        self.seen().claim(key, claim, SEEN_CAPACITY)
    }

    fn replace(&self, key: &IdempotencyKey, old: Claim, new: Claim) -> bool {
        self.seen().replace(key, old, new)
    }

    fn forget(&self, key: &IdempotencyKey) {
        self.seen().forget(key);
    }
}

/// Claims in Redis, one key each, expiring after [`IDEMPOTENCY_TTL_SECONDS`].
#[derive(Clone)]
pub struct RedisClaims {
    conn: RedisConn,
    prefix: String,
    replace: redis::Script,
}

/// The Redis key of an idempotency claim. A user's keys are
/// `idem:<user>:<id>` with any `:` of the user id written `%3A` (user ids hold
/// no `%`), so the first `:` after the user ends it: users `a:b` with key `c`
/// and `a` with key `b:c` never share a key, and ids without `:` keep the key
/// they always had. The backend's keys (no sender) are `idem-app:<id>`, which no
/// user's key can be. The hash tag keeps an application's keys on one Redis
/// Cluster slot.
fn redis_key(prefix: &str, (app, user, id): &IdempotencyKey) -> String {
    match user {
        Some(user) => format!("{prefix}:{{{app}}}:idem:{}:{id}", user.as_str().replace(':', "%3A")),
        None => format!("{prefix}:{{{app}}}:idem-app:{id}"),
    }
}

impl RedisClaims {
    pub(super) fn key(&self, key: &IdempotencyKey) -> String {
        redis_key(&self.prefix, key)
    }

    async fn recall(&self, key: &IdempotencyKey) -> Result<Option<Claim>, SequenceError> {
        let mut conn = self.conn.clone();
        let value: Option<String> =
            redis::cmd("GET").arg(self.key(key)).query_async(&mut conn).await.map_err(redis_err)?;
        Ok(value.as_deref().and_then(Claim::decode))
    }

    async fn claim(&self, key: &IdempotencyKey, claim: Claim) -> Result<Option<Claim>, SequenceError> {
        let mut conn = self.conn.clone();
        let claimed: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(claim.encode())
            .arg("NX")
            .arg("EX")
            .arg(IDEMPOTENCY_TTL_SECONDS)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        if claimed.is_some() {
            return Ok(None);
        }
        self.recall(key).await
    }

    async fn replace(&self, key: &IdempotencyKey, old: Claim, new: Claim) -> Result<bool, SequenceError> {
        let mut conn = self.conn.clone();
        let replaced: i64 = self
            .replace
            .key(self.key(key))
            .arg(old.encode())
            .arg(new.encode())
            .arg(IDEMPOTENCY_TTL_SECONDS)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(replaced == 1)
    }

    async fn forget(&self, key: &IdempotencyKey) -> Result<(), SequenceError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL").arg(self.key(key)).query_async(&mut conn).await.map_err(redis_err)?;
        Ok(())
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

    #[test]
    fn a_claim_outlives_the_generation_it_was_made_in() {
        let app = AppId::generate();
        let user = UserId::parse("u").unwrap();
        let key = |n: u64| -> IdempotencyKey { (app.clone(), Some(user.clone()), format!("k{n}")) };
        let claim = |n: u64| Claim { chat: ChatNumber(1), seq: MessageNumber(n), at: 0, committed: false };
        let mut seen = Seen::default();
        for n in 0..10 {
            assert!(seen.claim(&key(n), claim(n), 10).is_none());
        }
        // Keys 0..5 moved to the older generation, 5..10 too: every one is still known.
        for n in 0..10 {
            assert_eq!(seen.claim(&key(n), claim(99), 10).map(|c| c.seq), Some(MessageNumber(n)), "key {n}");
        }
        // Pending claims are still marked committed after a flip.
        seen.get_mut(&key(0)).unwrap().committed = true;
        assert!(seen.get(&key(0)).unwrap().committed);
        // Two flips later the oldest are gone.
        for n in 10..20 {
            seen.claim(&key(n), claim(n), 10);
        }
        assert!(seen.get(&key(0)).is_none());
        assert!(seen.get(&key(19)).is_some());
    }

    #[test]
    fn idempotency_keys_of_different_senders_never_meet() {
        let app = AppId::generate();
        let key = |user: Option<&str>, id: &str| {
            redis_key("p", &(app.clone(), user.map(|u| UserId::parse(u).unwrap()), id.to_owned()))
        };
        assert_ne!(key(Some("a:b"), "c"), key(Some("a"), "b:c"));
        assert_ne!(key(Some(":x"), "y"), key(None, "x:y"));
        assert_ne!(key(None, "k"), key(Some("k"), "k"));
        // Ids without `:` keep their key across this change (claims live a day).
        assert_eq!(key(Some("alice"), "c:1"), format!("p:{{{app}}}:idem:alice:c:1"));
    }
}

#[cfg(test)]
mod props;
