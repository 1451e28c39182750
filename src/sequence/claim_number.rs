//! A send's idempotency claim and its message number in one Redis round trip.
//!
//! The general path claims a key, draws a number and writes the number into
//! the claim: three round trips before the store write, each one more
//! process to wait for on a busy machine. For the common send — into a named
//! chat, with a key, nothing to check first — one script does all three
//! atomically. Anything else (the key claimed before, the counter missing,
//! one node without Redis) says so, and the send takes the general path,
//! which knows how to settle a retry and re-seed a counter.

use super::claims::{Claim, Claims, IDEMPOTENCY_TTL_SECONDS, IdempotencyKey};
use super::numbering::Numbering;
use super::{SequenceError, redis_err};
use crate::ids::{ChatNumber, MessageNumber, Timestamp};

/// KEYS[1] the claim, KEYS[2] the chat's counter; ARGV chat, at (ms), ttl.
/// `{1, seq}`: claimed as pending with the number drawn; `{0}`: claimed
/// before; `{-1}`: the counter is missing (nothing written). The claim is
/// written as [`Claim::encode`] writes it (`P:chat:seq:at`).
const CLAIM_NUMBER: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1} end
local seq = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], 'P:' .. ARGV[1] .. ':' .. seq .. ':' .. ARGV[2], 'EX', ARGV[3])
return {1, seq}
";

/// The script, its digest computed once.
static SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(CLAIM_NUMBER));

/// Claims `key` for a message of `chat` and draws its number, in one round
/// trip: the pending claim, or `None` when the send must take the general
/// path (the key was claimed before, the counter must be seeded, or the
/// numbering is in process, where the general path costs no round trip).
pub async fn claim_numbered(
    numbers: &Numbering,
    claims: &Claims,
    key: &IdempotencyKey,
    chat: ChatNumber,
) -> Result<Option<Claim>, SequenceError> {
    let (Numbering::Redis(counters), Claims::Redis(claimed)) = (numbers, claims) else {
        return Ok(None);
    };
    let at = Timestamp::now().millis();
    let mut conn = counters.conn();
    let answer: Vec<i64> = SCRIPT
        .key(claimed.key(key))
        .key(counters.message_key(&key.0, chat))
        .arg(chat.get())
        .arg(at)
        .arg(IDEMPOTENCY_TTL_SECONDS)
        .invoke_async(&mut conn)
        .await
        .map_err(redis_err)?;
    Ok(match answer.as_slice() {
        [1, seq] => {
            u64::try_from(*seq).ok().map(|seq| Claim { chat, seq: MessageNumber(seq), committed: false, at })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::{AppId, UserId};
    use crate::redis_conn::{RedisConfig, RedisConn};
    use crate::store::{DynStore, EmbeddedStore};

    /// The test Redis, or the test Redis Cluster (`scripts/services.sh` starts both).
    async fn redis(cluster: bool) -> RedisConn {
        let config = if cluster {
            let nodes = std::env::var("WEFT_TEST_REDIS_CLUSTER_NODES").unwrap_or_else(|_| {
                "redis://127.0.0.1:6380,redis://127.0.0.1:6381,redis://127.0.0.1:6382".to_owned()
            });
            RedisConfig {
                cluster_nodes: nodes.split(',').map(str::to_owned).collect(),
                ..RedisConfig::default()
            }
        } else {
            let url =
                std::env::var("WEFT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
            RedisConfig { url, ..RedisConfig::default() }
        };
        RedisConn::connect(&config)
            .await
            .expect("the test Redis answers (bash scripts/services.sh up)")
            .expect("a Redis is configured")
    }

    /// One send's key claimed and numbered at once; its claim reads back as
    /// the general path wrote it, and is confirmed by the general path's
    /// compare-and-set (the script and `Claim::encode` agree to the byte).
    async fn claims_and_numbers_in_one_round_trip(cluster: bool) {
        let conn = redis(cluster).await;
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let prefix = format!("weft-test-{}", AppId::generate());
        let numbers = Numbering::redis(conn.clone(), prefix.clone(), store, 1000);
        let claims = Claims::redis(conn, prefix);
        let (app, chat) = (AppId::generate(), ChatNumber(4));
        let key = |id: &str| -> IdempotencyKey {
            (app.clone(), Some(UserId::parse("a:b").unwrap()), id.to_owned())
        };

        // The counter does not exist yet: nothing is claimed, the general path seeds it.
        assert_eq!(claim_numbered(&numbers, &claims, &key("k1"), chat).await.unwrap(), None);
        assert_eq!(claims.recall(&key("k1")).await.unwrap(), None, "nothing written");

        numbers.init_chat(&app, chat).await.unwrap();
        let first = claim_numbered(&numbers, &claims, &key("k1"), chat).await.unwrap().unwrap();
        assert_eq!((first.chat, first.seq, first.committed), (chat, MessageNumber(1), false));
        assert_eq!(claims.recall(&key("k1")).await.unwrap(), Some(first));
        // A second send with the key takes the general path (which settles it).
        assert_eq!(claim_numbered(&numbers, &claims, &key("k1"), chat).await.unwrap(), None);
        claims.confirm(&key("k1"), first).await.unwrap();
        assert!(claims.recall(&key("k1")).await.unwrap().unwrap().committed, "confirmed in place");

        // Numbers go on from the same counter the general path draws from.
        let second = claim_numbered(&numbers, &claims, &key("k2"), chat).await.unwrap().unwrap();
        assert_eq!(second.seq, MessageNumber(2));
        assert_eq!(numbers.next_message(&app, chat).await.unwrap(), MessageNumber(3));
        let fourth = claim_numbered(&numbers, &claims, &key("k3"), chat).await.unwrap().unwrap();
        assert_eq!(fourth.seq, MessageNumber(4));
    }

    #[tokio::test]
    async fn claims_and_numbers_in_one_round_trip_on_one_redis() {
        claims_and_numbers_in_one_round_trip(false).await;
    }

    #[tokio::test]
    async fn claims_and_numbers_in_one_round_trip_on_a_redis_cluster() {
        claims_and_numbers_in_one_round_trip(true).await;
    }

    #[tokio::test]
    async fn in_process_numbering_takes_the_general_path() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let key: IdempotencyKey = (AppId::generate(), None, "k".to_owned());
        let found = claim_numbered(&Numbering::local(store), &Claims::local(), &key, ChatNumber(1)).await;
        assert_eq!(found.unwrap(), None);
    }
}
