//! Signing secrets and user tokens: `POST /applications/:token/secret`,
//! `POST /applications/:token/users/:user_id/tokens`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::input::{Input, Resource};
use super::openapi::{BAD_BODY, BAD_USER, INTERNAL, NO_APP, TOO_LARGE, UNAVAILABLE};
use crate::auth::bearer;
use crate::ids::{Timestamp, UserId};

use super::params::{AppPath, PathParams, UserPath, user_id};

/// The body of a token request (`{"ttl_seconds"?}`).
pub struct TokenBody;

impl Resource for TokenBody {
    const ROOT: &'static str = "token";
}

/// The body of a token request: everything is optional.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct NewTokenIn {
    /// The token's lifetime in seconds: 1 h by default, 30 days at most.
    #[schema(minimum = 1, maximum = 2_592_000)]
    ttl_seconds: Option<u64>,
}

/// A new signing secret.
#[derive(Serialize, ToSchema)]
pub struct SecretOut {
    /// Signs user tokens (HS256) from now on; tokens signed with the old one stop working.
    secret: String,
}

/// A new user token.
#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    /// When the token stops working.
    expires_at: Timestamp,
    /// An HS256 JWT: `sub`, `app`, `iat`, `exp`.
    token: String,
}

/// Who a user token names.
#[derive(Serialize, ToSchema)]
pub struct MeOut {
    /// The application's public id.
    app: String,
    /// The user.
    user: UserId,
}

/// Lifetime of a user token when the request names none: one hour.
const DEFAULT_TTL_SECONDS: u64 = 3600;
/// The longest lifetime a token may ask for: 30 days.
const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// `POST /applications/:token/secret`: a new signing secret, shown once; the
/// application's sessions on every node are closed with 4001.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/secret",
    operation_id = "rotate_secret",
    tag = "applications",
    params(AppPath),
    responses(
        (status = 200, description = "The new signing secret, shown once", body = SecretOut),
        (status = 404, description = NO_APP),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    access: Access<need::Admin>,
) -> Result<Json<SecretOut>, ApiError> {
    let app = state.chat.rotate_secret(access.token()).await?;
    let object = format!("application:{}", app.id.as_str());
    let after = Some(serde_json::json!({ "secret": "rotated" }));
    access.audit(&state, "application.rotate_secret", object, None, after).await?;
    Ok(Json(SecretOut { secret: app.secret.expose().to_owned() }))
}

/// `POST /applications/:token/users/:user_id/tokens {"ttl_seconds"?}`.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/users/{user}/tokens",
    operation_id = "mint_user_token",
    tag = "applications",
    params(UserPath),
    request_body(content = Option<NewTokenIn>, description = "May be empty"),
    responses(
        (status = 201, description = "A user token signed with the application's secret", body = TokenOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = BAD_USER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn mint(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
    Input(fields, _): Input<TokenBody>,
) -> Result<(StatusCode, Json<TokenOut>), ApiError> {
    let user = user_id(&user)?;
    let ttl = fields.optional_u64("ttl_seconds", 1, MAX_TTL_SECONDS)?.unwrap_or(DEFAULT_TTL_SECONDS);
    let (jwt, expires_at) = state.chat.mint_user_token(access.token(), &user, ttl).await?;
    Ok((StatusCode::CREATED, Json(TokenOut { expires_at, token: jwt })))
}

/// `GET /me` with `Authorization: Bearer <user token>`: who the token says you are.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "get_me",
    tag = "applications",
    security(("user_token" = [])),
    responses(
        (status = 200, description = "The user and application the token names", body = MeOut),
        (status = 401, description = "`invalid_token`, `session_revoked`: no token, or one forged, expired, for no application or signed before a rotation; or its session was revoked"),
        (status = 500, description = INTERNAL),
        (status = 503, description = "`store_unavailable`, `redis_unavailable`, `identity_provider_unavailable`: retry after `Retry-After` seconds"),
    )
)]
pub async fn me(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<MeOut>, ApiError> {
    let jwt =
        bearer(&headers).ok_or(ApiError::InvalidToken("send Authorization: Bearer <user token>".into()))?;
    let crate::chat::Authenticated { app, user, .. } = state.chat.authenticate(jwt).await?;
    Ok(Json(MeOut { app: app.id.as_str().to_owned(), user }))
}
