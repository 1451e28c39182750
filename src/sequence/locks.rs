//! Short cluster-wide locks (`SET NX PX`), for work two nodes must not race on
//! (creating a pair's direct chat). On one node the callers' own in-process
//! lock is enough, so a lock is always granted there.

use super::{SequenceError, redis_err};
use crate::redis_conn::RedisConn;

/// The locks in use; cheap to clone.
#[derive(Clone)]
pub enum Locks {
    /// One node: always granted (the callers hold their own local lock).
    Local,
    /// A cluster: Redis keys under a prefix.
    Redis {
        /// The connection.
        conn: RedisConn,
        /// The key prefix.
        prefix: String,
    },
}

impl Locks {
    /// Takes the lock `name` for `ttl_ms`; false when someone else holds it.
    pub async fn try_lock(&self, name: &str, ttl_ms: u64) -> Result<bool, SequenceError> {
        let Locks::Redis { conn, prefix } = self else {
            return Ok(true);
        };
        let mut conn = conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(format!("{prefix}:lock:{name}"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(taken.is_some())
    }

    /// Releases a lock taken with `try_lock` (it also expires by itself).
    pub async fn unlock(&self, name: &str) -> Result<(), SequenceError> {
        let Locks::Redis { conn, prefix } = self else {
            return Ok(());
        };
        let mut conn = conn.clone();
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{prefix}:lock:{name}"))
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }
}
