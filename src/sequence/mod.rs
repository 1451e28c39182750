//! Numbering, idempotency claims and short locks: three concerns that share a
//! backend — in process on one node, Redis in a cluster — and nothing else.
//!
//! - [`Numbering`]: chat numbers per application and message numbers per chat.
//!   Numbers only grow. In process the counters are seeded from the store on
//!   first use; in Redis a lost counter is re-seeded above the highest stored
//!   number plus `resume_gap`, so numbers handed out but not yet persisted
//!   when Redis was lost are never handed out again. A gap is fine; a reuse
//!   never is.
//! - [`Claims`]: idempotency keys — who sent what with which key, and whether
//!   that send is persisted yet.
//! - [`Locks`]: short cluster-wide locks (creating a pair's direct chat).
//!
//! None of them opens a Redis connection: the node's wiring (`server.rs`)
//! connects once and hands the same [`RedisConn`](crate::redis_conn::RedisConn)
//! to each, and to the recent cache and the cluster.

mod claim_number;
mod claims;
mod locks;
mod numbering;

use serde::Deserialize;

use crate::store::StoreError;

pub use self::claim_number::claim_numbered;
pub use self::claims::{Claim, Claims, IdempotencyKey};
pub use self::locks::Locks;
pub use self::numbering::Numbering;
pub use crate::redis_conn::RedisConfig;

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

/// Why a number, a claim or a lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    /// Redis did not answer or refused.
    #[error("redis unavailable")]
    Redis(#[source] ::redis::RedisError),
    /// The store was needed to seed a counter and failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn redis_err(e: ::redis::RedisError) -> SequenceError {
    SequenceError::Redis(e)
}
