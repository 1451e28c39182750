//! The server keys an application's servers use on the REST API (see
//! [`crate::auth::server_key`]): a supertrait of [`super::Store`], kept apart
//! so its backends live in files of their own.

use async_trait::async_trait;

use super::StoreError;
use crate::auth::server_key::{KeyHash, KeyId, ServerKey};
use crate::ids::{AppId, Timestamp};

/// Server-key records, by key hash and by application.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Saves a new key (its id and hash are fresh).
    async fn insert_server_key(&self, key: &ServerKey) -> Result<(), StoreError>;
    /// The key with this hash, revoked or not.
    async fn server_key(&self, hash: &KeyHash) -> Result<Option<ServerKey>, StoreError>;
    /// Every key of an application, revoked ones included, by id.
    async fn server_keys(&self, app: &AppId) -> Result<Vec<ServerKey>, StoreError>;
    /// Marks a key revoked (a second revocation keeps the first time); the
    /// key as it is now, or none when the application has no such key.
    async fn revoke_server_key(
        &self,
        app: &AppId,
        id: &KeyId,
        at: Timestamp,
    ) -> Result<Option<ServerKey>, StoreError>;
    /// Records a use of the key (best effort: callers may ignore a failure).
    async fn touch_server_key(&self, hash: &KeyHash, at: Timestamp) -> Result<(), StoreError>;
}
