//! The queue in Redis, shared by every node of a cluster.
//!
//! Every key carries one hash tag, `{whq}`: the schedule and the lanes live on
//! one Redis Cluster slot so that each step is one atomic script. Keys, under
//! the deployment's prefix:
//!
//! - `{whq}:due` — sorted set: lane → when it is next due (ms);
//! - `{whq}:l:<lane>` — list: the lane's entries, head first;
//! - `{whq}:att` — hash: lane → the head's [`Attempts`] (while it has failed);
//! - `{whq}:fail` — hash: `<app>|<webhook>` → failing since (ms);
//! - `{whq}:log:<app>|<webhook>` — list: the delivery log, newest first.

use std::time::Duration;

use redis::AsyncCommands as _;

use super::{Attempts, Depth, Entry, Head, LOG_LEN, Lane, LogRecord, QueueError};
use crate::ids::{AppId, WebhookId};
use crate::redis_conn::RedisConn;

/// Leases the lanes due: `ZRANGEBYSCORE` then re-scores each at now + lease.
const LEASE: &str = r"
local lanes = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, lane in ipairs(lanes) do
  redis.call('ZADD', KEYS[1], ARGV[2], lane)
end
return lanes
";

/// Pops the head when it is still ARGV[2], then returns the next head and its
/// attempts (re-leased) or leaves the schedule when the lane is empty. When
/// the head is another, the caller lost its lease: nothing changes.
/// KEYS: due, list, att. ARGV: lane, id prefix (`{"id":"<id>",`), lease until, n.
const POP: &str = r"
local head = redis.call('LINDEX', KEYS[2], 0)
if not head or string.sub(head, 1, string.len(ARGV[2])) ~= ARGV[2] then
  return {}
end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[4]), -1)
redis.call('HDEL', KEYS[3], ARGV[1])
local next = redis.call('LINDEX', KEYS[2], 0)
if next then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return {next, redis.call('HGET', KEYS[3], ARGV[1]) or ''}
end
redis.call('ZREM', KEYS[1], ARGV[1])
return {}
";

/// Records a failed attempt when the head is still ARGV[2] and reschedules
/// the lane; when the head is another, the caller lost its lease: nothing changes.
/// KEYS: due, list, att. ARGV: lane, id prefix, attempts, due.
const RETRY: &str = r"
local head = redis.call('LINDEX', KEYS[2], 0)
if not head or string.sub(head, 1, string.len(ARGV[2])) ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
return 1
";

/// Pushes ARGV[2] into an empty lane only, due at ARGV[3] unless scheduled.
/// KEYS: due, list. ARGV: lane, entry, due.
const PUSH_ONCE: &str = r"
if redis.call('LLEN', KEYS[2]) > 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[1])
return 1
";

/// Gives a lane back: due at ARGV[2] if it still has entries.
/// KEYS: due, list. ARGV: lane, due.
const RELEASE: &str = r"
if redis.call('LLEN', KEYS[2]) > 0 then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
";

/// The queue in Redis.
pub struct RedisQueue {
    conn: RedisConn,
    /// `<prefix>:{whq}`.
    base: String,
    lease: redis::Script,
    pop: redis::Script,
    retry: redis::Script,
    release: redis::Script,
    push_once: redis::Script,
}

fn redis_err(e: redis::RedisError) -> QueueError {
    QueueError::Redis(e)
}

/// What an entry's stored form starts with: the queue recognises its head by it.
fn id_prefix(id: &str) -> String {
    let quoted = serde_json::to_string(id).unwrap_or_default();
    format!("{{\"id\":{quoted},")
}

fn webhook_field(app: &AppId, webhook: &WebhookId) -> String {
    format!("{app}|{webhook}")
}

fn decode_attempts(raw: &str) -> Attempts {
    serde_json::from_str(raw).unwrap_or_default()
}

impl RedisQueue {
    /// The queue under `prefix` on `conn`.
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self {
            conn,
            base: format!("{prefix}:{{whq}}"),
            lease: redis::Script::new(LEASE),
            pop: redis::Script::new(POP),
            retry: redis::Script::new(RETRY),
            release: redis::Script::new(RELEASE),
            push_once: redis::Script::new(PUSH_ONCE),
        }
    }

    fn due_key(&self) -> String {
        format!("{}:due", self.base)
    }

    fn list_key(&self, lane: &str) -> String {
        format!("{}:l:{lane}", self.base)
    }

    fn att_key(&self) -> String {
        format!("{}:att", self.base)
    }

    fn fail_key(&self) -> String {
        format!("{}:fail", self.base)
    }

    fn log_key(&self, app: &AppId, webhook: &WebhookId) -> String {
        format!("{}:log:{}", self.base, webhook_field(app, webhook))
    }

    pub(super) async fn push(&self, items: &[(Lane, Entry)], due: i64) -> Result<(), QueueError> {
        if items.is_empty() {
            return Ok(());
        }
        // RPUSH, then ZADD NX: whatever a concurrent POP does in between, the
        // lane ends scheduled (POP re-checks the length in the same script).
        let mut pipe = redis::pipe();
        let due_key = self.due_key();
        for (lane, entry) in items {
            let encoded = lane.encode();
            pipe.rpush(self.list_key(&encoded), entry.encode()).ignore();
            pipe.cmd("ZADD").arg(&due_key).arg("NX").arg(due).arg(encoded).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(redis_err)
    }

    pub(super) async fn push_once(&self, lane: &Lane, entry: &Entry, due: i64) -> Result<bool, QueueError> {
        let encoded = lane.encode();
        let mut conn = self.conn.clone();
        let pushed: i64 = self
            .push_once
            .key(self.due_key())
            .key(self.list_key(&encoded))
            .arg(&encoded)
            .arg(entry.encode())
            .arg(due)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(pushed == 1)
    }

    pub(super) async fn entries(&self, lane: &Lane, max: usize) -> Result<Vec<Entry>, QueueError> {
        let mut conn = self.conn.clone();
        let last = isize::try_from(max).unwrap_or(isize::MAX).saturating_sub(1);
        let raw: Vec<String> =
            conn.lrange(self.list_key(&lane.encode()), 0, last).await.map_err(redis_err)?;
        raw.iter().map(|r| Entry::decode(r)).collect()
    }

    pub(super) async fn lease(&self, now: i64, lease: Duration, n: usize) -> Result<Vec<Lane>, QueueError> {
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut conn = self.conn.clone();
        let raw: Vec<String> = self
            .lease
            .key(self.due_key())
            .arg(now)
            .arg(until)
            .arg(n)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(raw.iter().filter_map(|l| Lane::decode(l)).collect())
    }

    pub(super) async fn head(&self, lane: &Lane) -> Result<Option<Head>, QueueError> {
        let encoded = lane.encode();
        let mut conn = self.conn.clone();
        let (head, attempts): (Option<String>, Option<String>) = redis::pipe()
            .lindex(self.list_key(&encoded), 0)
            .hget(self.att_key(), &encoded)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        head.map(|raw| {
            Ok(Head {
                entry: Entry::decode(&raw)?,
                attempts: attempts.as_deref().map(decode_attempts).unwrap_or_default(),
            })
        })
        .transpose()
    }

    pub(super) async fn pop(
        &self,
        lane: &Lane,
        id: &str,
        n: usize,
        now: i64,
        lease: Duration,
    ) -> Result<Option<Head>, QueueError> {
        let encoded = lane.encode();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut conn = self.conn.clone();
        let next: Vec<String> = self
            .pop
            .key(self.due_key())
            .key(self.list_key(&encoded))
            .key(self.att_key())
            .arg(&encoded)
            .arg(id_prefix(id))
            .arg(until)
            .arg(n)
            .invoke_async(&mut conn)
            .await
            .map_err(redis_err)?;
        match next.as_slice() {
            [] => Ok(None),
            [entry, attempts] => Ok(Some(Head {
                entry: Entry::decode(entry)?,
                attempts: if attempts.is_empty() { Attempts::default() } else { decode_attempts(attempts) },
            })),
            _ => Err(QueueError::Corrupt { what: "webhook queue pop" }),
        }
    }

    pub(super) async fn retry(
        &self,
        lane: &Lane,
        id: &str,
        attempts: Attempts,
        due: i64,
    ) -> Result<(), QueueError> {
        let encoded = lane.encode();
        let attempts = serde_json::to_string(&attempts).unwrap_or_default();
        let mut conn = self.conn.clone();
        self.retry
            .key(self.due_key())
            .key(self.list_key(&encoded))
            .key(self.att_key())
            .arg(&encoded)
            .arg(id_prefix(id))
            .arg(attempts)
            .arg(due)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(redis_err)
    }

    pub(super) async fn release(&self, lane: &Lane, due: i64) -> Result<(), QueueError> {
        let encoded = lane.encode();
        let mut conn = self.conn.clone();
        self.release
            .key(self.due_key())
            .key(self.list_key(&encoded))
            .arg(&encoded)
            .arg(due)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(redis_err)
    }

    pub(super) async fn drop_lane(&self, lane: &Lane) -> Result<(), QueueError> {
        let encoded = lane.encode();
        let mut conn = self.conn.clone();
        redis::pipe()
            .del(self.list_key(&encoded))
            .ignore()
            .zrem(self.due_key(), &encoded)
            .ignore()
            .hdel(self.att_key(), &encoded)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    pub(super) async fn log(
        &self,
        app: &AppId,
        webhook: &WebhookId,
        record: &LogRecord,
    ) -> Result<(), QueueError> {
        let key = self.log_key(app, webhook);
        let line = serde_json::to_string(record).unwrap_or_default();
        let mut conn = self.conn.clone();
        redis::pipe()
            .lpush(&key, line)
            .ignore()
            .ltrim(&key, 0, LOG_LEN as isize - 1)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    pub(super) async fn logs(&self, app: &AppId, webhook: &WebhookId) -> Result<Vec<LogRecord>, QueueError> {
        let mut conn = self.conn.clone();
        let lines: Vec<String> =
            conn.lrange(self.log_key(app, webhook), 0, LOG_LEN as isize - 1).await.map_err(redis_err)?;
        Ok(lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    pub(super) async fn failing(
        &self,
        app: &AppId,
        webhook: &WebhookId,
        now: i64,
    ) -> Result<i64, QueueError> {
        let field = webhook_field(app, webhook);
        let mut conn = self.conn.clone();
        let (_, since): (bool, i64) = redis::pipe()
            .hset_nx(self.fail_key(), &field, now)
            .hget(self.fail_key(), &field)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(since)
    }

    pub(super) async fn healthy(&self, app: &AppId, webhook: &WebhookId) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        conn.hdel::<_, _, ()>(self.fail_key(), webhook_field(app, webhook)).await.map_err(redis_err)
    }

    pub(super) async fn forget(&self, app: &AppId, webhook: &WebhookId) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .del(self.log_key(app, webhook))
            .ignore()
            .hdel(self.fail_key(), webhook_field(app, webhook))
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_err)
    }

    pub(super) async fn depth(&self, now: i64) -> Result<Depth, QueueError> {
        let mut conn = self.conn.clone();
        let (lanes, due, attempts): (u64, u64, Vec<String>) = redis::pipe()
            .zcard(self.due_key())
            .zcount(self.due_key(), "-inf", now)
            .hvals(self.att_key())
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let oldest_failing = attempts
            .iter()
            .map(|a| decode_attempts(a).first_failed_at)
            .filter(|at| *at > 0)
            .min()
            .unwrap_or(0);
        Ok(Depth { lanes, due, oldest_failing })
    }
}
