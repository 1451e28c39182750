//! `/applications/:token/chats` and their members; `/users/:user_id/chats`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::ApiState;
use super::error::ApiError;
use super::params::{ListQuery, PathParams, chat_number, token, user_id};
use super::views::{ChatOut, MemberOut};

/// `POST /applications/:token/chats`.
pub async fn create(
    State(state): State<ApiState>,
    PathParams(raw): PathParams<String>,
) -> Result<(StatusCode, Json<ChatOut>), ApiError> {
    let view = state.chat.create_chat(&token(raw)).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// `GET /applications/:token/chats`.
pub async fn list(
    State(state): State<ApiState>,
    PathParams(raw): PathParams<String>,
    query: ListQuery,
) -> Result<Json<Vec<ChatOut>>, ApiError> {
    let page = query.page()?;
    let chats = state.chat.chats(&token(raw), page).await?;
    Ok(Json(chats.into_iter().map(Into::into).collect()))
}

/// `GET /applications/:token/chats/:number`.
pub async fn show(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
) -> Result<Json<ChatOut>, ApiError> {
    let number = chat_number(&number)?;
    Ok(Json(state.chat.chat(&token(raw), number).await?.into()))
}

/// `PUT /applications/:token/chats/:number/members/:user_id`.
pub async fn add_member(
    State(state): State<ApiState>,
    PathParams((raw, number, user)): PathParams<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (number, user) = (chat_number(&number)?, user_id(&user)?);
    state.chat.add_member(&token(raw), number, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /applications/:token/chats/:number/members/:user_id`.
pub async fn remove_member(
    State(state): State<ApiState>,
    PathParams((raw, number, user)): PathParams<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (number, user) = (chat_number(&number)?, user_id(&user)?);
    state.chat.remove_member(&token(raw), number, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /applications/:token/chats/:number/members`.
pub async fn members(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
    query: ListQuery,
) -> Result<Json<Vec<MemberOut>>, ApiError> {
    let (number, page) = (chat_number(&number)?, query.page()?);
    let members = state.chat.members(&token(raw), number, page).await?;
    Ok(Json(members.into_iter().map(Into::into).collect()))
}

/// `GET /applications/:token/users/:user_id/chats`.
pub async fn user_chats(
    State(state): State<ApiState>,
    PathParams((raw, user)): PathParams<(String, String)>,
    query: ListQuery,
) -> Result<Json<Vec<ChatOut>>, ApiError> {
    let (user, page) = (user_id(&user)?, query.page()?);
    let chats = state.chat.user_chats(&token(raw), &user, page).await?;
    Ok(Json(chats.into_iter().map(Into::into).collect()))
}
