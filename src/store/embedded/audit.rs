//! The audit log in redb: (app, at, id) → entry, so a range over an
//! application and a day, read backwards, is the day newest first.

use async_trait::async_trait;
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::{EmbeddedStore, decode, embedded, encode};
use crate::ids::{AppId, Timestamp};
use crate::store::StoreError;
use crate::store::audit::{AuditEntry, AuditPosition, AuditStore, DAY_MS};

/// (app, at in ms, id) → entry.
pub(super) const AUDIT: TableDefinition<(&str, i64, &str), &[u8]> = TableDefinition::new("audit");

#[derive(Serialize, Deserialize)]
struct StoredEntry {
    actor: String,
    action: String,
    object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    before: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
}

#[async_trait]
impl AuditStore for EmbeddedStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let entry = entry.clone();
        self.write(move |txn| {
            let stored = StoredEntry {
                actor: entry.actor,
                action: entry.action,
                object: entry.object,
                before: entry.before,
                after: entry.after,
                request_id: entry.request_id,
                ip: entry.ip,
            };
            let mut table = txn.open_table(AUDIT).map_err(embedded)?;
            table
                .insert(
                    (entry.app.as_str(), entry.at.millis(), entry.id.as_str()),
                    encode(&stored)?.as_slice(),
                )
                .map_err(embedded)?;
            Ok(())
        })
        .await
    }

    async fn audit_entries(
        &self,
        app: &AppId,
        day: i64,
        before: Option<&AuditPosition>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let (app, before) = (app.clone(), before.cloned());
        self.read(move |txn| {
            let table = txn.open_table(AUDIT).map_err(embedded)?;
            let start = day.saturating_mul(DAY_MS);
            let end = start.saturating_add(DAY_MS);
            let mut out = Vec::new();
            let rows = table.range((app.as_str(), start, "")..(app.as_str(), end, "")).map_err(embedded)?;
            for row in rows.rev() {
                if out.len() >= limit {
                    break;
                }
                let (key, value) = row.map_err(embedded)?;
                let (_, at, id) = key.value();
                if let Some(b) = &before
                    && (at, id) >= (b.at.millis(), b.id.as_str())
                {
                    continue;
                }
                let stored: StoredEntry = decode(value.value(), "audit entry")?;
                out.push(AuditEntry {
                    app: app.clone(),
                    at: Timestamp(at),
                    id: id.to_owned(),
                    actor: stored.actor,
                    action: stored.action,
                    object: stored.object,
                    before: stored.before,
                    after: stored.after,
                    request_id: stored.request_id,
                    ip: stored.ip,
                });
            }
            Ok(out)
        })
        .await
    }
}
