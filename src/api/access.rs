//! Who may act on an application, and with which scopes: the one extractor
//! every handler under `/api/v1/applications/{token}` takes.
//!
//! The path's `{token}` segment is either the application token (full
//! rights: the `admin` scope) or, with `Authorization: Bearer wk_…`, the
//! application's public id and a server key of that application, limited to
//! the key's scopes. A key of another application, or the id without a key,
//! names no application (404 `application_not_found`, as an unknown token:
//! nothing tells whether the application exists). Keys are read from the
//! store on every request, so a revocation holds on every node at once.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;

use super::ApiState;
use super::audit::{Act, Origin};
use super::error::ApiError;
use crate::auth::server_key::{KeyId, KeySecret, LAST_USED_GRANULARITY_MS, Scope, Scopes};
use crate::ids::{AppToken, Timestamp};
use crate::model::Application;

/// Who acts: the application token, or one of its server keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The application token (every scope).
    ApplicationToken,
    /// A server key, by id.
    Key(KeyId),
}

/// The scope a route needs, as a type: `Access<need::MessagesWrite>`.
pub trait Need: Send + Sync {
    /// The scope.
    const SCOPE: Scope;
}

/// The scopes as types, one per scope.
pub mod need {
    use super::{Need, Scope};

    macro_rules! needs {
        ($($name:ident),*) => {$(
            #[doc = concat!("Needs [`Scope::", stringify!($name), "`].")]
            pub struct $name;
            impl Need for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }
    needs!(ChatsRead, ChatsWrite, MessagesRead, MessagesWrite, MembersWrite, UsersTokens, Webhooks, Admin);
}

/// An application the request may act on with scope `N`: refused (403
/// `insufficient_scope`, naming the scope) before the body is read.
pub struct Access<N: Need> {
    app: Application,
    actor: Actor,
    origin: Origin,
    need: PhantomData<N>,
}

impl<N: Need> Access<N> {
    /// The application's token, for the domain calls that take one.
    pub fn token(&self) -> &AppToken {
        &self.app.token
    }

    /// The application.
    pub fn app(&self) -> &Application {
        &self.app
    }

    /// Who acts.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Appends an administrative act by this request's actor to the
    /// application's audit trail: `before`/`after` are the changed fields,
    /// never a body, secret, token or key.
    pub async fn audit(
        &self,
        state: &ApiState,
        action: &'static str,
        object: impl Into<String>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<(), ApiError> {
        let actor = match &self.actor {
            Actor::ApplicationToken => "application_token".to_owned(),
            Actor::Key(id) => format!("key:{}", id.as_str()),
        };
        let act = Act { app: &self.app.id, actor, action, object: object.into(), before, after };
        super::audit::record(state.chat.store(), &self.origin, act).await
    }
}

impl<N: Need> FromRequestParts<ApiState> for Access<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let no_app = || ApiError::NotFound("application_not_found");
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| no_app())?;
        let segment = params.iter().find(|(name, _)| *name == "token").map(|(_, v)| v.to_owned());
        let segment = segment.ok_or_else(no_app)?;
        let key = crate::auth::bearer(&parts.headers).and_then(KeySecret::presented);
        let (app, actor, scopes) = match key {
            None => {
                let app = state.chat.application(&AppToken::new(segment)).await?;
                (app, Actor::ApplicationToken, Scopes::all())
            }
            Some(secret) => {
                let hash = secret.hash();
                let store = state.chat.store();
                let key = store.server_key(&hash).await.map_err(crate::chat::ChatError::from)?;
                let key = key.filter(|k| k.hash.ct_eq(&hash) && k.revoked_at.is_none());
                let key = key.ok_or(ApiError::InvalidKey)?;
                if key.app.as_str() != segment {
                    return Err(no_app());
                }
                let app = store.application_by_id(&key.app).await.map_err(crate::chat::ChatError::from)?;
                let app = app.ok_or_else(no_app)?;
                tracing::Span::current().record("app", app.id.as_str());
                let now = Timestamp::now();
                if key.last_used_at.is_none_or(|at| now.millis() - at.millis() >= LAST_USED_GRANULARITY_MS) {
                    let store = store.clone();
                    tokio::spawn(async move {
                        if let Err(e) = store.touch_server_key(&hash, now).await {
                            tracing::debug!(error = %e, "cannot record a server key's use");
                        }
                    });
                }
                (app, Actor::Key(key.id), key.scopes)
            }
        };
        if !scopes.allows(N::SCOPE) {
            return Err(ApiError::InsufficientScope(N::SCOPE));
        }
        Ok(Self { app, actor, origin: Origin::of(parts), need: PhantomData })
    }
}

/// Adds what [`Access`] can answer to an operation of the document under
/// `/api/v1/applications/{token}`: 401 `invalid_key` and 403 `insufficient_scope`.
pub fn document(operation: &mut serde_json::Value) {
    let Some(responses) = operation.get_mut("responses").and_then(serde_json::Value::as_object_mut) else {
        return;
    };
    let answers = [
        ("401", "`invalid_key`", "a server key (`wk_…`) that is unknown or revoked"),
        ("403", "`insufficient_scope`", "the server key lacks the scope the operation needs (`error.scope`)"),
    ];
    for (status, code, why) in answers {
        match responses.get_mut(status).and_then(|r| r.get_mut("description")) {
            Some(serde_json::Value::String(description)) => *description = format!("{code}, {description}"),
            _ => {
                responses
                    .insert(status.into(), serde_json::json!({ "description": format!("{code}: {why}") }));
            }
        }
    }
}
