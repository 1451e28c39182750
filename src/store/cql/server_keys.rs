//! Server keys in CQL: `server_keys` by key hash (what a request looks up)
//! and `app_server_keys` (app, id) → hash for listing and revoking. The
//! statements are sent unprepared (the driver prepares each on the way): they
//! are rare next to the message path; a key lookup is one single-partition read.

use async_trait::async_trait;
use scylla::value::CqlTimestamp;

use super::CqlStore;
use super::rows::{decode_first, decode_rows, from_ts, ts, unset_if_none};
use crate::auth::server_key::{KeyHash, KeyId, Scope, Scopes, ServerKey};
use crate::ids::{AppId, Timestamp};
use crate::store::StoreError;
use crate::store::server_keys::KeyStore;

const KEY_COLUMNS: &str = "hash, app, id, name, scopes, created_at, last_used_at, revoked_at";

type KeyRow = (
    String,
    String,
    String,
    String,
    Option<Vec<String>>,
    CqlTimestamp,
    Option<CqlTimestamp>,
    Option<CqlTimestamp>,
);

fn key_from_row(row: KeyRow) -> Result<ServerKey, StoreError> {
    let (hash, app, id, name, scopes, created_at, last_used_at, revoked_at) = row;
    let scopes = scopes
        .unwrap_or_default()
        .iter()
        .map(|s| Scope::parse(s).ok_or(StoreError::Corrupt { what: "server key scope" }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ServerKey {
        app: AppId::new(app),
        id: KeyId::new(id),
        hash: KeyHash::from_store(hash),
        name,
        scopes: Scopes::new(scopes),
        created_at: from_ts(created_at),
        last_used_at: last_used_at.map(from_ts),
        revoked_at: revoked_at.map(from_ts),
    })
}

#[async_trait]
impl KeyStore for CqlStore {
    async fn insert_server_key(&self, key: &ServerKey) -> Result<(), StoreError> {
        let scopes: Vec<&str> = key.scopes.list().iter().map(|s| s.as_str()).collect();
        let values = (
            key.hash.as_str(),
            key.app.as_str(),
            key.id.as_str(),
            key.name.as_str(),
            scopes,
            ts(key.created_at),
            unset_if_none(key.last_used_at.map(ts)),
            unset_if_none(key.revoked_at.map(ts)),
        );
        // The record first: an index row never names a missing key.
        self.session()
            .query_unpaged(
                format!("INSERT INTO server_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                values,
            )
            .await
            .map_err(StoreError::unavailable)?;
        self.session()
            .query_unpaged(
                "INSERT INTO app_server_keys (app, id, hash) VALUES (?, ?, ?)",
                (key.app.as_str(), key.id.as_str(), key.hash.as_str()),
            )
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn server_key(&self, hash: &KeyHash) -> Result<Option<ServerKey>, StoreError> {
        let result = self
            .session()
            .query_unpaged(format!("SELECT {KEY_COLUMNS} FROM server_keys WHERE hash = ?"), (hash.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<KeyRow>(result, "server_keys")?.map(key_from_row).transpose()
    }

    async fn server_keys(&self, app: &AppId) -> Result<Vec<ServerKey>, StoreError> {
        let result = self
            .session()
            .query_unpaged("SELECT hash FROM app_server_keys WHERE app = ?", (app.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        let mut out = Vec::new();
        for (hash,) in decode_rows::<(String,)>(result, "app_server_keys")? {
            out.extend(self.server_key(&KeyHash::from_store(hash)).await?);
        }
        Ok(out)
    }

    async fn revoke_server_key(
        &self,
        app: &AppId,
        id: &KeyId,
        at: Timestamp,
    ) -> Result<Option<ServerKey>, StoreError> {
        let result = self
            .session()
            .query_unpaged(
                "SELECT hash FROM app_server_keys WHERE app = ? AND id = ?",
                (app.as_str(), id.as_str()),
            )
            .await
            .map_err(StoreError::unavailable)?;
        let Some((hash,)) = decode_first::<(String,)>(result, "app_server_keys")? else { return Ok(None) };
        let hash = KeyHash::from_store(hash);
        let Some(mut key) = self.server_key(&hash).await? else { return Ok(None) };
        if key.revoked_at.is_none() {
            self.session()
                .query_unpaged(
                    "UPDATE server_keys SET revoked_at = ? WHERE hash = ?",
                    (ts(at), hash.as_str()),
                )
                .await
                .map_err(StoreError::unavailable)?;
            key.revoked_at = Some(at);
        }
        Ok(Some(key))
    }

    async fn touch_server_key(&self, hash: &KeyHash, at: Timestamp) -> Result<(), StoreError> {
        self.session()
            .query_unpaged(
                "UPDATE server_keys SET last_used_at = ? WHERE hash = ? IF EXISTS",
                (ts(at), hash.as_str()),
            )
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}
