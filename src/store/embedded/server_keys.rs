//! Server keys in redb: the record keyed by the key's hash (what a request
//! looks up), and an index (app, id) → hash for listing and revoking.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{EmbeddedStore, decode, embedded, encode};
use crate::auth::server_key::{KeyHash, KeyId, Scope, Scopes, ServerKey};
use crate::ids::{AppId, Timestamp};
use crate::store::StoreError;
use crate::store::server_keys::KeyStore;

/// Key hash → key record.
pub(super) const SERVER_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("server_keys");
/// (app, key id) → key hash.
pub(super) const APP_SERVER_KEYS: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("app_server_keys");

#[derive(Serialize, Deserialize)]
struct StoredKey {
    app: String,
    id: String,
    name: String,
    scopes: Vec<Scope>,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_at: Option<i64>,
}

impl StoredKey {
    fn of(k: &ServerKey) -> Self {
        Self {
            app: k.app.as_str().to_owned(),
            id: k.id.as_str().to_owned(),
            name: k.name.clone(),
            scopes: k.scopes.list().to_vec(),
            created_at: k.created_at.millis(),
            last_used_at: k.last_used_at.map(Timestamp::millis),
            revoked_at: k.revoked_at.map(Timestamp::millis),
        }
    }

    fn into_key(self, hash: &str) -> ServerKey {
        ServerKey {
            app: AppId::new(self.app),
            id: KeyId::new(self.id),
            hash: KeyHash::from_store(hash),
            name: self.name,
            scopes: Scopes::new(self.scopes),
            created_at: Timestamp(self.created_at),
            last_used_at: self.last_used_at.map(Timestamp),
            revoked_at: self.revoked_at.map(Timestamp),
        }
    }
}

fn get<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    hash: &str,
) -> Result<Option<ServerKey>, StoreError> {
    let Some(guard) = table.get(hash).map_err(embedded)? else { return Ok(None) };
    let stored: StoredKey = decode(guard.value(), "server key")?;
    Ok(Some(stored.into_key(hash)))
}

fn put(table: &mut redb::Table<&str, &[u8]>, key: &ServerKey) -> Result<(), StoreError> {
    table.insert(key.hash.as_str(), encode(&StoredKey::of(key))?.as_slice()).map_err(embedded)?;
    Ok(())
}

#[async_trait]
impl KeyStore for EmbeddedStore {
    async fn insert_server_key(&self, key: &ServerKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |txn| {
            put(&mut txn.open_table(SERVER_KEYS).map_err(embedded)?, &key)?;
            let mut index = txn.open_table(APP_SERVER_KEYS).map_err(embedded)?;
            index.insert((key.app.as_str(), key.id.as_str()), key.hash.as_str()).map_err(embedded)?;
            Ok(())
        })
        .await
    }

    async fn server_key(&self, hash: &KeyHash) -> Result<Option<ServerKey>, StoreError> {
        let hash = hash.clone();
        self.read(move |txn| get(&txn.open_table(SERVER_KEYS).map_err(embedded)?, hash.as_str())).await
    }

    async fn server_keys(&self, app: &AppId) -> Result<Vec<ServerKey>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let index = txn.open_table(APP_SERVER_KEYS).map_err(embedded)?;
            let keys = txn.open_table(SERVER_KEYS).map_err(embedded)?;
            let next_app = format!("{}\0", app.as_str());
            let mut out = Vec::new();
            for row in index.range((app.as_str(), "")..(next_app.as_str(), "")).map_err(embedded)? {
                let (_, hash) = row.map_err(embedded)?;
                out.extend(get(&keys, hash.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_server_key(
        &self,
        app: &AppId,
        id: &KeyId,
        at: Timestamp,
    ) -> Result<Option<ServerKey>, StoreError> {
        let (app, id) = (app.clone(), id.clone());
        self.write(move |txn| {
            let index = txn.open_table(APP_SERVER_KEYS).map_err(embedded)?;
            let Some(hash) = index.get((app.as_str(), id.as_str())).map_err(embedded)? else {
                return Ok(None);
            };
            let hash = hash.value().to_owned();
            let mut keys = txn.open_table(SERVER_KEYS).map_err(embedded)?;
            let Some(mut key) = get(&keys, &hash)? else { return Ok(None) };
            key.revoked_at = key.revoked_at.or(Some(at));
            put(&mut keys, &key)?;
            Ok(Some(key))
        })
        .await
    }

    async fn touch_server_key(&self, hash: &KeyHash, at: Timestamp) -> Result<(), StoreError> {
        let hash = hash.clone();
        self.write(move |txn| {
            let mut keys = txn.open_table(SERVER_KEYS).map_err(embedded)?;
            if let Some(mut key) = get(&keys, hash.as_str())? {
                key.last_used_at = Some(at);
                put(&mut keys, &key)?;
            }
            Ok(())
        })
        .await
    }
}
