//! Signing secrets and user tokens: `POST /applications/:token/secret`,
//! `POST /applications/:token/users/:user_id/tokens`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use super::input::{Input, Resource};
use crate::auth::bearer;

use super::params::{PathParams, token, user_id};

/// The body of a token request (`{"ttl_seconds"?}`).
pub struct TokenBody;

impl Resource for TokenBody {
    const ROOT: &'static str = "token";
}

/// Lifetime of a user token when the request names none: one hour.
const DEFAULT_TTL_SECONDS: u64 = 3600;
/// The longest lifetime a token may ask for: 30 days.
const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// `POST /applications/:token/secret`: a new signing secret, shown once; the
/// application's sessions on every node are closed with 4001.
pub async fn rotate_secret(
    State(state): State<ApiState>,
    PathParams(raw): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let app = state.chat.rotate_secret(&token(raw)).await?;
    Ok(Json(json!({ "secret": app.secret.expose() })))
}

/// `POST /applications/:token/users/:user_id/tokens {"ttl_seconds"?}`.
pub async fn mint(
    State(state): State<ApiState>,
    PathParams((raw, user)): PathParams<(String, String)>,
    Input(fields, _): Input<TokenBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = user_id(&user)?;
    let ttl = fields.optional_u64("ttl_seconds", 1, MAX_TTL_SECONDS)?.unwrap_or(DEFAULT_TTL_SECONDS);
    let (jwt, expires_at) = state.chat.mint_user_token(&token(raw), &user, ttl).await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": jwt, "expires_at": expires_at }))))
}

/// `GET /me` with `Authorization: Bearer <user token>`: who the token says you are.
pub async fn me(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let jwt =
        bearer(&headers).ok_or(ApiError::InvalidToken("send Authorization: Bearer <user token>".into()))?;
    let crate::chat::Authenticated { app, user, .. } = state.chat.authenticate(jwt).await?;
    Ok(Json(json!({ "user": user, "app": app.id.as_str() })))
}
