//! Sessions (refresh tokens) in redb: one table keyed by session id, and a
//! user's session ids keyed by (app, user, id) so that listing them is one
//! range scan. A replace reads the row in the same (serialised) write
//! transaction, so checking `version` and writing are one step, and a
//! revoked (deleted) session stays deleted.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{decode, embedded, encode};
use crate::auth::{AuthSession, AuthSessionId, TokenHash};
use crate::ids::{AppId, Timestamp, UserId};
use crate::store::StoreError;

/// session id → session.
pub(super) const AUTH_SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("auth_sessions");
/// (app, user, session id) → ().
pub(super) const USER_AUTH_SESSIONS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("user_auth_sessions");

#[derive(Serialize, Deserialize)]
struct StoredSession {
    app: String,
    user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    generation: u64,
    refresh_hash: TokenHash,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rotated: Vec<TokenHash>,
    confirmed: bool,
    version: u64,
}

impl StoredSession {
    fn of(s: &AuthSession) -> Self {
        Self {
            app: s.app.as_str().to_owned(),
            user: s.user.as_str().to_owned(),
            device: s.device.clone(),
            ip: s.ip.clone(),
            user_agent: s.user_agent.clone(),
            created_at: s.created_at.millis(),
            last_seen_at: s.last_seen_at.millis(),
            expires_at: s.expires_at.millis(),
            generation: s.generation,
            refresh_hash: s.refresh_hash,
            rotated: s.rotated.clone(),
            confirmed: s.confirmed,
            version: s.version,
        }
    }

    fn into_session(self, id: &str) -> Result<AuthSession, StoreError> {
        Ok(AuthSession {
            id: AuthSessionId::from_store(id.to_owned()),
            app: AppId::new(self.app),
            user: UserId::parse(&self.user).map_err(|_| StoreError::Corrupt { what: "session user" })?,
            device: self.device,
            ip: self.ip,
            user_agent: self.user_agent,
            created_at: Timestamp(self.created_at),
            last_seen_at: Timestamp(self.last_seen_at),
            expires_at: Timestamp(self.expires_at),
            generation: self.generation,
            refresh_hash: self.refresh_hash,
            rotated: self.rotated,
            confirmed: self.confirmed,
            version: self.version,
        })
    }
}

pub(super) fn insert(txn: &redb::WriteTransaction, s: &AuthSession) -> Result<(), StoreError> {
    let mut table = txn.open_table(AUTH_SESSIONS).map_err(embedded)?;
    table.insert(s.id.as_str(), encode(&StoredSession::of(s))?.as_slice()).map_err(embedded)?;
    let mut index = txn.open_table(USER_AUTH_SESSIONS).map_err(embedded)?;
    index.insert((s.app.as_str(), s.user.as_str(), s.id.as_str()), ()).map_err(embedded)?;
    Ok(())
}

fn read(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<AuthSession>, StoreError> {
    match table.get(id).map_err(embedded)? {
        Some(bytes) => decode::<StoredSession>(bytes.value(), "session")?.into_session(id).map(Some),
        None => Ok(None),
    }
}

pub(super) fn get(
    txn: &redb::ReadTransaction,
    id: &AuthSessionId,
) -> Result<Option<AuthSession>, StoreError> {
    let table = txn.open_table(AUTH_SESSIONS).map_err(embedded)?;
    read(&table, id.as_str())
}

pub(super) fn of_user(
    txn: &redb::ReadTransaction,
    app: &AppId,
    user: &UserId,
) -> Result<Vec<AuthSession>, StoreError> {
    let index = txn.open_table(USER_AUTH_SESSIONS).map_err(embedded)?;
    let table = txn.open_table(AUTH_SESSIONS).map_err(embedded)?;
    let (a, u) = (app.as_str(), user.as_str());
    let mut sessions = Vec::new();
    for row in index.range((a, u, "")..).map_err(embedded)? {
        let (key, _) = row.map_err(embedded)?;
        let (ka, ku, id) = key.value();
        if ka != a || ku != u {
            break;
        }
        if let Some(session) = read(&table, id)? {
            sessions.push(session);
        }
    }
    Ok(sessions)
}

pub(super) fn replace(
    txn: &redb::WriteTransaction,
    s: &AuthSession,
    expected: u64,
) -> Result<bool, StoreError> {
    let mut table = txn.open_table(AUTH_SESSIONS).map_err(embedded)?;
    let Some(stored) = read(&table, s.id.as_str())? else { return Ok(false) };
    if stored.version != expected {
        return Ok(false);
    }
    // Only the mutable fields change: who and when it was created stay.
    let next = AuthSession {
        id: stored.id,
        app: stored.app,
        user: stored.user,
        device: stored.device,
        created_at: stored.created_at,
        ip: s.ip.clone().or(stored.ip),
        user_agent: s.user_agent.clone().or(stored.user_agent),
        ..s.clone()
    };
    table.insert(s.id.as_str(), encode(&StoredSession::of(&next))?.as_slice()).map_err(embedded)?;
    Ok(true)
}

pub(super) fn delete(
    txn: &redb::WriteTransaction,
    app: &AppId,
    user: &UserId,
    id: &AuthSessionId,
) -> Result<bool, StoreError> {
    let mut table = txn.open_table(AUTH_SESSIONS).map_err(embedded)?;
    let existed = table.remove(id.as_str()).map_err(embedded)?.is_some();
    let mut index = txn.open_table(USER_AUTH_SESSIONS).map_err(embedded)?;
    index.remove((app.as_str(), user.as_str(), id.as_str())).map_err(embedded)?;
    Ok(existed)
}
