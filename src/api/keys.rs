//! `/applications/:token/keys`: scoped server keys — create (the key is
//! shown once), list (never a key), revoke. Each needs the `admin` scope.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::input::{Input, Resource};
use super::openapi::{BAD_BODY, INTERNAL, NO_APP, TOO_LARGE, UNAVAILABLE};
use super::params::{AppPath, PathParams};
use crate::auth::server_key::{KeyId, KeySecret, Scope, Scopes, ServerKey};
use crate::chat::ChatError;
use crate::ids::Timestamp;

/// The longest key name.
const MAX_NAME: usize = 200;

/// The body of key requests.
pub struct KeyBody;

impl Resource for KeyBody {
    const ROOT: &'static str = "key";
}

/// `{token}/keys/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    token: String,
    /// The key's id.
    #[param(value_type = String)]
    id: String,
}

/// The body of `POST …/keys`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct NewKeyIn {
    /// A name for people.
    #[schema(max_length = 200)]
    name: String,
    /// At least one scope.
    #[schema(min_items = 1)]
    scopes: Vec<Scope>,
}

/// A server key, without the key.
#[derive(Serialize, ToSchema)]
pub struct KeyOut {
    /// Its id, to revoke it.
    id: String,
    name: String,
    scopes: Vec<Scope>,
    created_at: Timestamp,
    /// When it was last used (updated at most once a minute).
    last_used_at: Option<Timestamp>,
    /// Set once revoked: the key then authorizes nothing.
    revoked_at: Option<Timestamp>,
}

impl From<ServerKey> for KeyOut {
    fn from(k: ServerKey) -> Self {
        Self {
            id: k.id.as_str().to_owned(),
            name: k.name,
            scopes: k.scopes.list().to_vec(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedKeyOut {
    #[serde(flatten)]
    key: KeyOut,
    /// The key (`wk_…`): send it as `Authorization: Bearer`, with the
    /// application's id (`app_id`) in place of the token in paths. Never shown again.
    secret: String,
    /// The application's public id, for the paths.
    app_id: String,
}

/// The list of keys.
#[derive(Serialize, ToSchema)]
pub struct KeysOut {
    keys: Vec<KeyOut>,
}

fn scopes(raw: Option<Vec<String>>) -> Result<Scopes, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::InvalidField("`scopes` is required".into()))?;
    if raw.is_empty() {
        return Err(ApiError::InvalidScope("`scopes` must name at least one scope".into()));
    }
    let parsed = raw
        .iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::InvalidScope(format!("unknown scope `{name}` (known: {})", known.join(", ")))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scopes::new(parsed))
}

/// `POST /applications/:token/keys {"name","scopes":[…]}`: a new key, shown once.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/keys",
    operation_id = "create_key",
    tag = "applications",
    params(AppPath),
    request_body = NewKeyIn,
    responses(
        (status = 201, description = "The key, with its secret (shown this once)", body = CreatedKeyOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`, `invalid_scope`: the name is missing or too long, or a scope is unknown or none is given"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    access: Access<need::Admin>,
    Input(fields, _): Input<KeyBody>,
) -> Result<(StatusCode, Json<CreatedKeyOut>), ApiError> {
    let name = fields.required_string("name", MAX_NAME)?;
    let scopes = scopes(fields.optional_strings("scopes", Scope::ALL.len() * 2, 64)?)?;
    let secret = KeySecret::generate();
    let key = ServerKey {
        app: access.app().id.clone(),
        id: KeyId::generate(),
        hash: secret.hash(),
        name,
        scopes,
        created_at: Timestamp::now(),
        last_used_at: None,
        revoked_at: None,
    };
    state.chat.store().insert_server_key(&key).await.map_err(ChatError::from)?;
    tracing::info!(key = key.id.as_str(), actor = ?access.actor(), "server key created");
    let scopes: Vec<&str> = key.scopes.list().iter().map(|s| s.as_str()).collect();
    let after = serde_json::json!({ "name": key.name, "scopes": scopes });
    access.audit(&state, "key.create", format!("key:{}", key.id.as_str()), None, Some(after)).await?;
    let app_id = key.app.as_str().to_owned();
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyOut { key: key.into(), secret: secret.expose().to_owned(), app_id }),
    ))
}

/// `GET /applications/:token/keys`: every key, revoked ones included (never a secret).
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/keys",
    operation_id = "list_keys",
    tag = "applications",
    params(AppPath),
    responses(
        (status = 200, description = "The keys, by id", body = KeysOut),
        (status = 404, description = NO_APP),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    access: Access<need::Admin>,
) -> Result<Json<KeysOut>, ApiError> {
    let keys = state.chat.store().server_keys(&access.app().id).await.map_err(ChatError::from)?;
    Ok(Json(KeysOut { keys: keys.into_iter().map(KeyOut::from).collect() }))
}

/// `DELETE /applications/:token/keys/:id`: revokes the key, on every node at once.
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{token}/keys/{id}",
    operation_id = "revoke_key",
    tag = "applications",
    params(KeyPath),
    responses(
        (status = 200, description = "The revoked key", body = KeyOut),
        (status = 404, description = "`application_not_found`, `key_not_found`"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn revoke(
    State(state): State<ApiState>,
    access: Access<need::Admin>,
    PathParams(KeyPath { id, .. }): PathParams<KeyPath>,
) -> Result<Json<KeyOut>, ApiError> {
    let store = state.chat.store();
    let key = store.revoke_server_key(&access.app().id, &KeyId::new(id), Timestamp::now()).await;
    let key = key.map_err(ChatError::from)?.ok_or(ApiError::NotFound("key_not_found"))?;
    tracing::info!(key = key.id.as_str(), actor = ?access.actor(), "server key revoked");
    let (before, after) = (serde_json::json!({ "revoked": false }), serde_json::json!({ "revoked": true }));
    access.audit(&state, "key.revoke", format!("key:{}", key.id.as_str()), Some(before), Some(after)).await?;
    Ok(Json(key.into()))
}
