//! The audit trail of administrative acts (docs/security.md): a supertrait of
//! [`super::Store`], kept apart so its backends live in files of their own.
//!
//! Entries are kept per application and UTC day (CQL: one partition each),
//! newest first inside a day. An entry never holds a message body, a secret,
//! a token or a key: its `before`/`after` are small JSON objects of the
//! changed fields with secrets replaced by a marker.

use super::StoreError;
use crate::ids::{AppId, Timestamp};
use async_trait::async_trait;

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) of an instant.
pub fn day_of(at: Timestamp) -> i64 {
    at.millis().div_euclid(DAY_MS)
}

/// One administrative act.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    /// The application acted on.
    pub app: AppId,
    /// When.
    pub at: Timestamp,
    /// Random, unique within the application and millisecond.
    pub id: String,
    /// Who: `application_token`, `key:<id>`.
    pub actor: String,
    /// What (`key.create`, `member.remove`, …).
    pub action: String,
    /// On what (`key:<id>`, `chat:3/member:alice`, …).
    pub object: String,
    /// The changed fields before the act (none for a creation).
    pub before: Option<serde_json::Value>,
    /// The changed fields after the act (none for a deletion).
    pub after: Option<serde_json::Value>,
    /// The request's id (`x-request-id`).
    pub request_id: Option<String>,
    /// The client's address as the proxy in front of the node gave it.
    pub ip: Option<String>,
}

/// Where a page of a day stops: entries strictly older than (at, id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPosition {
    /// The time of the last entry seen.
    pub at: Timestamp,
    /// Its id.
    pub id: String,
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Up to `limit` entries of the application's UTC `day`, newest first,
    /// older than `before` when given.
    async fn audit_entries(
        &self,
        app: &AppId,
        day: i64,
        before: Option<&AuditPosition>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}
