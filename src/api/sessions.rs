//! Sessions and refresh tokens: `POST`/`GET`/`DELETE
//! /applications/:token/users/:user/sessions`, `DELETE …/sessions/:id`, and
//! `POST /auth/refresh` (docs/security.md).

use axum::Json;
use axum::extract::State;
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::input::{Input, Resource};
use super::openapi::{BAD_BODY, BAD_USER, INTERNAL, NO_APP, TOO_LARGE, UNAVAILABLE};
use super::params::{PathParams, UserPath, user_id};
use crate::auth::{AuthSessionId, RefreshToken};
use crate::chat::{ClientInfo, Issued, NewSession, SessionView};
use crate::ids::{Timestamp, UserId};

/// The longest `device`, `ip` or `user_agent` kept.
const MAX_FIELD: usize = 512;
/// The longest refresh token read (they are 66 characters).
const MAX_REFRESH_TOKEN: usize = 256;

/// Where a request came from: its `User-Agent`, and the first address of
/// `X-Forwarded-For` (or `X-Real-IP`) as the proxy in front of the node wrote
/// it. Shown to the application, never used to decide anything.
pub fn client_info(headers: &HeaderMap) -> ClientInfo {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let ip = header("x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .or_else(|| header("x-real-ip"))
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .map(str::to_owned);
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_FIELD).collect::<String>())
        .filter(|ua| !ua.is_empty());
    ClientInfo { ip, user_agent }
}

/// `{token}/users/{user}/sessions/{session}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    token: String,
    /// The user.
    #[param(value_type = UserId)]
    user: String,
    /// The session.
    #[param(value_type = AuthSessionId)]
    session: String,
}

/// The body of `POST …/sessions`.
pub struct SessionBody;

impl Resource for SessionBody {
    const ROOT: &'static str = "session";
}

/// The body of `POST …/sessions`: everything is optional.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct NewSessionIn {
    /// The user's device, as the application names it (shown in the list).
    #[schema(max_length = 512)]
    device: Option<String>,
    /// The user's address, as the backend saw it (shown in the list).
    #[schema(max_length = 512)]
    ip: Option<String>,
    /// The user's client, as the backend saw it (shown in the list).
    #[schema(max_length = 512)]
    user_agent: Option<String>,
}

/// The body of `POST /auth/refresh`.
pub struct RefreshBody;

impl Resource for RefreshBody {
    const ROOT: &'static str = "auth";
}

/// The body of `POST /auth/refresh`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct RefreshIn {
    /// The session's newest refresh token.
    refresh_token: String,
}

/// A new pair.
#[derive(Serialize, ToSchema)]
pub struct PairOut {
    /// An HS256 JWT: `sub`, `app`, `iat`, `exp`, `sid` (the session), `gen` (the pair).
    access_token: String,
    /// The access token's lifetime, in seconds.
    expires_in: u64,
    /// When the access token expires.
    expires_at: Timestamp,
    /// Opaque; trades for the next pair once (`POST /api/v1/auth/refresh`). Shown only here.
    refresh_token: String,
    /// The session.
    session_id: AuthSessionId,
}

impl From<Issued> for PairOut {
    fn from(issued: Issued) -> Self {
        Self {
            access_token: issued.access_token,
            expires_in: issued.expires_in,
            expires_at: issued.expires_at,
            refresh_token: issued.refresh_token.expose().to_owned(),
            session_id: issued.session,
        }
    }
}

/// A session as listed.
#[derive(Serialize, ToSchema)]
pub struct SessionOut {
    /// Its id.
    id: AuthSessionId,
    /// The device the backend named.
    device: Option<String>,
    /// The client's address when last seen.
    ip: Option<String>,
    /// The client's `User-Agent` when last seen.
    user_agent: Option<String>,
    /// When it was created.
    created_at: Timestamp,
    /// When one of its tokens was last used (created, refreshed, connected).
    last_seen_at: Timestamp,
    /// When its refresh token stops working unless used.
    expires_at: Timestamp,
    /// A WebSocket opened with one of its tokens is open on some node of the cluster.
    online: bool,
}

impl From<SessionView> for SessionOut {
    fn from(view: SessionView) -> Self {
        let s = view.session;
        Self {
            id: s.id,
            device: s.device,
            ip: s.ip,
            user_agent: s.user_agent,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
            online: view.online,
        }
    }
}

/// A user's sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionsOut {
    /// By id.
    sessions: Vec<SessionOut>,
}

/// `POST /applications/:token/users/:user/sessions {"device"?,"ip"?,"user_agent"?}`.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/users/{user}/sessions",
    operation_id = "create_session",
    tag = "sessions",
    params(UserPath),
    request_body(content = Option<NewSessionIn>, description = "May be empty"),
    responses(
        (status = 201, description = "A new session and its first pair", body = PairOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = BAD_USER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
    Input(fields, _): Input<SessionBody>,
) -> Result<(StatusCode, Json<PairOut>), ApiError> {
    let user = user_id(&user)?;
    let field = |name| fields.clearable_string(name, MAX_FIELD).map(Option::flatten);
    let new = NewSession { device: field("device")?, ip: field("ip")?, user_agent: field("user_agent")? };
    let issued = state.chat.create_session(access.token(), &user, new).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// `GET /applications/:token/users/:user/sessions`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/users/{user}/sessions",
    operation_id = "list_sessions",
    tag = "sessions",
    params(UserPath),
    responses(
        (status = 200, description = "The user's sessions, by id", body = SessionsOut),
        (status = 404, description = NO_APP),
        (status = 422, description = BAD_USER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
) -> Result<Json<SessionsOut>, ApiError> {
    let user = user_id(&user)?;
    let sessions = state.chat.user_sessions(access.token(), &user).await?;
    Ok(Json(SessionsOut { sessions: sessions.into_iter().map(SessionOut::from).collect() }))
}

/// `DELETE /applications/:token/users/:user/sessions` → 204: every session revoked.
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{token}/users/{user}/sessions",
    operation_id = "revoke_sessions",
    tag = "sessions",
    params(UserPath),
    responses(
        (status = 204, description = "Every session of the user is revoked: its sockets closed (4001) on every node, its tokens refused"),
        (status = 404, description = NO_APP),
        (status = 422, description = BAD_USER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn revoke_all(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
) -> Result<StatusCode, ApiError> {
    let user = user_id(&user)?;
    state.chat.revoke_user_sessions(access.token(), &user).await?;
    let after = serde_json::json!({ "revoked": "all" });
    access.audit(&state, "session.revoke_all", format!("user:{}", user.as_str()), None, Some(after)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /applications/:token/users/:user/sessions/:session` → 204.
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{token}/users/{user}/sessions/{session}",
    operation_id = "revoke_session",
    tag = "sessions",
    params(SessionPath),
    responses(
        (status = 204, description = "The session is revoked: its sockets closed (4001) on every node, its tokens refused"),
        (status = 404, description = "`application_not_found`, `session_not_found`"),
        (status = 422, description = BAD_USER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn revoke(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(SessionPath { user, session, .. }): PathParams<SessionPath>,
) -> Result<StatusCode, ApiError> {
    let user = user_id(&user)?;
    // A malformed id names no session.
    let session = AuthSessionId::parse(&session).map_err(|_| ApiError::NotFound("session_not_found"))?;
    state.chat.revoke_session(access.token(), &user, &session).await?;
    let object = format!("user:{}/session:{}", user.as_str(), session.as_str());
    let after = serde_json::json!({ "revoked": true });
    access.audit(&state, "session.revoke", object, None, Some(after)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/refresh {"refresh_token"}`: the next pair of a session.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    operation_id = "refresh_session",
    tag = "sessions",
    request_body(content = RefreshIn),
    responses(
        (status = 200, description = "The session's next pair; the refresh token sent is superseded", body = PairOut),
        (status = 400, description = BAD_BODY),
        (status = 401, description = "`invalid_refresh_token`, `session_revoked`: the token is unknown, expired or superseded by a refresh whose pair was not used yet; or it was used before, and its session is now revoked"),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: no `refresh_token`"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn refresh(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Input(fields, _): Input<RefreshBody>,
) -> Result<Json<PairOut>, ApiError> {
    let presented = RefreshToken::new(fields.required_string("refresh_token", MAX_REFRESH_TOKEN)?);
    let issued = state.chat.refresh_session(&presented, client_info(&headers)).await?;
    Ok(Json(issued.into()))
}
