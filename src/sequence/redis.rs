//! Redis counters for the cluster mode.

use super::{Claim, Counter, IDEMPOTENCY_TTL_SECONDS, IdempotencyKey, SequenceError};
pub use crate::redis_conn::RedisConfig;
use crate::redis_conn::RedisConn;
use crate::store::DynStore;

/// INCR only a counter that exists; -1 says it must be seeded first.
const NEXT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('INCR', KEYS[1])
";

/// SET a key to ARGV[2] only while it holds ARGV[1] (compare and set).
const REPLACE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
";

/// Counters in Redis, re-seeded from the store when Redis lost them.
#[derive(Clone)]
pub struct RedisSequencer {
    conn: RedisConn,
    store: DynStore,
    prefix: String,
    resume_gap: u64,
    next: redis::Script,
    replace: redis::Script,
}

/// The Redis key of an idempotency claim. A user's keys are
/// `idem:<user>:<id>` with any `:` of the user id written `%3A` (user ids hold
/// no `%`), so the first `:` after the user ends it: users `a:b` with key `c`
/// and `a` with key `b:c` no longer share a key, and ids without `:` keep the
/// key they always had. The backend's keys (no sender) are `idem-app:<id>`,
/// which no user's key can be.
fn idempotency_key(prefix: &str, (app, user, id): &IdempotencyKey) -> String {
    match user {
        Some(user) => format!("{prefix}:{{{app}}}:idem:{}:{id}", user.as_str().replace(':', "%3A")),
        None => format!("{prefix}:{{{app}}}:idem-app:{id}"),
    }
}

fn redis_err(e: redis::RedisError) -> SequenceError {
    SequenceError::Redis(e)
}

impl RedisSequencer {
    /// Counters on `conn` (see [`RedisConn::connect`]).
    pub fn new(conn: RedisConn, config: &RedisConfig, store: DynStore, resume_gap: u64) -> Self {
        Self {
            conn,
            store,
            prefix: config.key_prefix.clone(),
            resume_gap,
            next: redis::Script::new(NEXT),
            replace: redis::Script::new(REPLACE),
        }
    }

    /// The shared connection and key prefix, for other Redis-backed parts (the recent cache).
    pub(crate) fn connection(&self) -> (RedisConn, String) {
        (self.conn.clone(), self.prefix.clone())
    }

    fn key(&self, counter: &Counter) -> String {
        // The hash tag keeps all keys of one application on one Redis Cluster slot.
        match counter {
            Counter::Chats(app) => format!("{}:{{{}}}:chats", self.prefix, app),
            Counter::Messages(app, chat) => format!("{}:{{{}}}:chat:{}:seq", self.prefix, app, chat),
        }
    }

    fn idempotency_key(&self, key: &IdempotencyKey) -> String {
        idempotency_key(&self.prefix, key)
    }

    pub(super) async fn recall(&self, key: &IdempotencyKey) -> Result<Option<Claim>, SequenceError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = redis::cmd("GET")
            .arg(self.idempotency_key(key))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(value.as_deref().and_then(Claim::decode))
    }

    pub(super) async fn claim(
        &self,
        key: &IdempotencyKey,
        claim: Claim,
    ) -> Result<Option<Claim>, SequenceError> {
        let mut conn = self.conn.clone();
        let claimed: Option<String> = redis::cmd("SET")
            .arg(self.idempotency_key(key))
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

    pub(super) async fn replace(
        &self,
        key: &IdempotencyKey,
        old: Claim,
        new: Claim,
    ) -> Result<bool, SequenceError> {
        let mut conn = self.conn.clone();
        let replaced: i64 = self
            .replace
            .key(self.idempotency_key(key))
            .arg(old.encode())
            .arg(new.encode())
            .arg(IDEMPOTENCY_TTL_SECONDS)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(replaced == 1)
    }

    pub(super) async fn try_lock(&self, name: &str, ttl_ms: u64) -> Result<bool, SequenceError> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(format!("{}:lock:{name}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(taken.is_some())
    }

    pub(super) async fn unlock(&self, name: &str) -> Result<(), SequenceError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{}:lock:{name}", self.prefix))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    pub(super) async fn forget(&self, key: &IdempotencyKey) -> Result<(), SequenceError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(self.idempotency_key(key))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    pub(super) async fn init(&self, counter: &Counter) -> Result<(), SequenceError> {
        let mut conn = self.conn.clone();
        let _: bool = redis::cmd("SET")
            .arg(self.key(counter))
            .arg(0)
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map(|v: Option<String>| v.is_some())
            .map_err(redis_err)?;
        Ok(())
    }

    pub(super) async fn next(&self, counter: &Counter) -> Result<u64, SequenceError> {
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

    pub(super) async fn current(&self, counters: &[Counter]) -> Result<Vec<u64>, SequenceError> {
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

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), SequenceError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(redis_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppId, UserId};

    #[test]
    fn idempotency_keys_of_different_senders_never_meet() {
        let app = AppId::generate();
        let key = |user: Option<&str>, id: &str| {
            idempotency_key("p", &(app.clone(), user.map(|u| UserId::parse(u).unwrap()), id.to_owned()))
        };
        assert_ne!(key(Some("a:b"), "c"), key(Some("a"), "b:c"));
        assert_ne!(key(Some(":x"), "y"), key(None, "x:y"));
        assert_ne!(key(None, "k"), key(Some("k"), "k"));
        // Ids without `:` keep their key across this change (claims live a day).
        assert_eq!(key(Some("alice"), "c:1"), format!("p:{{{app}}}:idem:alice:c:1"));
    }
}
