//! The audit log in CQL: `audit_log`, one partition per (app, UTC day),
//! newest first. Statements are sent unprepared (the driver prepares each on
//! the way): administrative acts are rare next to the message path.

use async_trait::async_trait;
use scylla::value::CqlTimestamp;

use super::CqlStore;
use super::rows::{cql_limit, decode_rows, from_ts, ts, unset_if_none};
use crate::ids::AppId;
use crate::store::StoreError;
use crate::store::audit::{AuditEntry, AuditPosition, AuditStore, day_of};

const COLUMNS: &str = "at, id, actor, action, object, before, after, request_id, ip";

type Row = (
    CqlTimestamp,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn day_key(day: i64) -> Result<i32, StoreError> {
    i32::try_from(day).map_err(|_| StoreError::Corrupt { what: "audit day" })
}

fn json_text(value: Option<&serde_json::Value>) -> Option<String> {
    value.map(serde_json::Value::to_string)
}

fn json_value(text: Option<String>) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|_| StoreError::Corrupt { what: "audit entry state" }))
        .transpose()
}

#[async_trait]
impl AuditStore for CqlStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let values = (
            entry.app.as_str(),
            day_key(day_of(entry.at))?,
            ts(entry.at),
            entry.id.as_str(),
            entry.actor.as_str(),
            entry.action.as_str(),
            entry.object.as_str(),
            unset_if_none(json_text(entry.before.as_ref())),
            unset_if_none(json_text(entry.after.as_ref())),
            unset_if_none(entry.request_id.as_deref()),
            unset_if_none(entry.ip.as_deref()),
        );
        self.session()
            .query_unpaged(
                format!(
                    "INSERT INTO audit_log (app, day, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                values,
            )
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn audit_entries(
        &self,
        app: &AppId,
        day: i64,
        before: Option<&AuditPosition>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let day = day_key(day)?;
        let result = match before {
            None => self
                .session()
                .query_unpaged(
                    format!("SELECT {COLUMNS} FROM audit_log WHERE app = ? AND day = ? LIMIT ?"),
                    (app.as_str(), day, cql_limit(limit)),
                )
                .await
                .map_err(StoreError::unavailable)?,
            Some(b) => self
                .session()
                .query_unpaged(
                    format!(
                        "SELECT {COLUMNS} FROM audit_log WHERE app = ? AND day = ? AND (at, id) < (?, ?) LIMIT ?"
                    ),
                    (app.as_str(), day, ts(b.at), b.id.as_str(), cql_limit(limit)),
                )
                .await
                .map_err(StoreError::unavailable)?,
        };
        decode_rows::<Row>(result, "audit_log")?
            .into_iter()
            .map(|(at, id, actor, action, object, before, after, request_id, ip)| {
                Ok(AuditEntry {
                    app: app.clone(),
                    at: from_ts(at),
                    id,
                    actor,
                    action,
                    object,
                    before: json_value(before)?,
                    after: json_value(after)?,
                    request_id,
                    ip,
                })
            })
            .collect()
    }
}
