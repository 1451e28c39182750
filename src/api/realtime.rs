//! `/chats/:number/read_state` and `/users/:user_id/presence`.

use axum::Json;
use axum::extract::State;

use super::ApiState;
use super::error::ApiError;
use super::params::{ListQuery, PathParams, chat_number, token, user_id};
use super::views::{PresenceOut, ReadStateOut};

/// `GET /applications/:token/chats/:number/read_state`.
pub async fn read_state(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
    query: ListQuery,
) -> Result<Json<Vec<ReadStateOut>>, ApiError> {
    let (number, page) = (chat_number(&number)?, query.page()?);
    let states = state.chat.read_states(&token(raw), number, page).await?;
    Ok(Json(states.into_iter().map(Into::into).collect()))
}

/// `GET /applications/:token/users/:user_id/presence`.
pub async fn presence(
    State(state): State<ApiState>,
    PathParams((raw, user)): PathParams<(String, String)>,
) -> Result<Json<PresenceOut>, ApiError> {
    let user = user_id(&user)?;
    let app = state.chat.application(&token(raw)).await?;
    let status = state.presence.status(&app.id, &user);
    let online = state.chat.fabric().is_online(&app.id, &user).await;
    Ok(Json(PresenceOut {
        user_id: user,
        online,
        sessions: status.sessions,
        last_seen: if online { None } else { status.last_seen },
    }))
}
