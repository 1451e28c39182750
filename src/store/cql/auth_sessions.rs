//! Sessions (refresh tokens): one row per session keyed by its id, and a
//! user's session ids in one partition. The insert is plain (the id is
//! fresh); every later change is a lightweight transaction on `version`, and
//! a revocation deletes `IF EXISTS`, so a change racing a revocation never
//! brings the session back.

use super::CqlStore;
use super::rows::{
    AuthSessionRow, auth_session_from_row, bigint, decode_first, decode_rows, ts, unset_if_none,
};
use super::store_impl::applied;
use crate::auth::{AuthSession, AuthSessionId};
use crate::ids::{AppId, UserId};
use crate::store::StoreError;

impl CqlStore {
    pub(super) async fn insert_auth_session_row(&self, s: &AuthSession) -> Result<(), StoreError> {
        let rotated = rotated_values(s);
        let values = (
            s.id.as_str(),
            s.app.as_str(),
            s.user.as_str(),
            unset_if_none(s.device.as_deref()),
            unset_if_none(s.ip.as_deref()),
            unset_if_none(s.user_agent.as_deref()),
            ts(s.created_at),
            ts(s.last_seen_at),
            ts(s.expires_at),
            bigint(s.generation)?,
            s.refresh_hash.0.as_slice(),
            unset_if_none(rotated),
            s.confirmed,
            bigint(s.version)?,
        );
        // The index row first: a session is never live without it (listing finds it to revoke it).
        let index = (s.app.as_str(), s.user.as_str(), s.id.as_str());
        let session = self.session();
        session
            .execute_unpaged(&self.stmts().insert_user_auth_session, index)
            .await
            .map_err(StoreError::unavailable)?;
        session
            .execute_unpaged(&self.stmts().insert_auth_session, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    pub(super) async fn auth_session_row(
        &self,
        id: &AuthSessionId,
    ) -> Result<Option<AuthSession>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().auth_session, (id.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<AuthSessionRow>(result, "auth_sessions")?.map(auth_session_from_row).transpose()
    }

    pub(super) async fn auth_session_rows(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Vec<AuthSession>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().user_auth_sessions, (app.as_str(), user.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        let mut sessions = Vec::new();
        for (id,) in decode_rows::<(String,)>(result, "user_auth_sessions")? {
            // An index row whose session is gone (revoked half-way) is skipped.
            if let Some(session) = self.auth_session_row(&AuthSessionId::from_store(id)).await?
                && session.app == *app
                && session.user == *user
            {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }

    /// Writes the session's mutable columns if the stored version is `expected`.
    pub(super) async fn replace_auth_session_row(
        &self,
        s: &AuthSession,
        expected: u64,
    ) -> Result<bool, StoreError> {
        let rotated = rotated_values(s);
        let values = (
            unset_if_none(s.ip.as_deref()),
            unset_if_none(s.user_agent.as_deref()),
            ts(s.last_seen_at),
            ts(s.expires_at),
            bigint(s.generation)?,
            s.refresh_hash.0.as_slice(),
            unset_if_none(rotated),
            s.confirmed,
            bigint(s.version)?,
            s.id.as_str(),
            bigint(expected)?,
        );
        let result = self
            .session()
            .execute_unpaged(&self.stmts().replace_auth_session, values)
            .await
            .map_err(StoreError::unavailable)?;
        applied(result, "auth_sessions update")
    }

    pub(super) async fn delete_auth_session_row(
        &self,
        app: &AppId,
        user: &UserId,
        id: &AuthSessionId,
    ) -> Result<bool, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().delete_auth_session, (id.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        let existed = applied(result, "auth_sessions delete")?;
        self.session()
            .execute_unpaged(
                &self.stmts().delete_user_auth_session,
                (app.as_str(), user.as_str(), id.as_str()),
            )
            .await
            .map_err(StoreError::unavailable)?;
        Ok(existed)
    }
}

/// The earlier hashes as a CQL list; none (unset, no tombstone) while there are none.
fn rotated_values(s: &AuthSession) -> Option<Vec<&[u8]>> {
    (!s.rotated.is_empty()).then(|| s.rotated.iter().map(|h| h.0.as_slice()).collect())
}
