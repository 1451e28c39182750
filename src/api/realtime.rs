//! `/chats/:number/read_state` and `/users/:user_id/presence`.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::openapi::{BAD_PARAMETER, BAD_USER, INTERNAL, NO_APP, NO_CHAT, UNAVAILABLE};
use super::params::{ChatPath, ListQuery, PageQuery, PathParams, UserPath, chat_number, user_id};
use super::views::{PresenceOut, ReadStateOut};

/// `GET /applications/:token/chats/:number/read_state`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}/read_state",
    operation_id = "list_read_states",
    tag = "realtime",
    params(ChatPath, PageQuery),
    responses(
        (status = 200, description = "Each member's receipt positions", body = Vec<ReadStateOut>),
        (status = 404, description = NO_CHAT),
        (status = 422, description = BAD_PARAMETER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn read_state(
    State(state): State<ApiState>,
    access: Access<need::MessagesRead>,
    PathParams(ChatPath { number, .. }): PathParams<ChatPath>,
    query: ListQuery,
) -> Result<Json<Vec<ReadStateOut>>, ApiError> {
    let (number, page) = (chat_number(&number)?, query.page()?);
    let states = state.chat.read_states(access.token(), number, page).await?;
    Ok(Json(states.into_iter().map(Into::into).collect()))
}

/// `GET /applications/:token/users/:user_id/presence`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/users/{user}/presence",
    operation_id = "get_presence",
    tag = "realtime",
    params(UserPath),
    responses(
        (status = 200, description = "Whether the user is online, and since when not", body = PresenceOut),
        (status = 404, description = NO_APP),
        (status = 422, description = BAD_USER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn presence(
    State(state): State<ApiState>,
    access: Access<need::ChatsRead>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
) -> Result<Json<PresenceOut>, ApiError> {
    let user = user_id(&user)?;
    let app = state.chat.application(access.token()).await?;
    let status = state.presence.status(&app.id, &user);
    let online = state.chat.fabric().is_online(&app.id, &user).await;
    Ok(Json(PresenceOut {
        user_id: user,
        online,
        sessions: status.sessions,
        last_seen: if online { None } else { status.last_seen },
    }))
}
