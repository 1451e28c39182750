//! `/applications/:token/chats/:number/messages`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::ApiState;
use super::error::ApiError;
use super::input::{Input, Resource};
use super::params::{ListQuery, PathParams, chat_number, message_number, token};
use super::views::MessageOut;
use crate::chat::NewMessage;

/// The body of message requests.
pub struct MessageBody;

impl Resource for MessageBody {
    const ROOT: &'static str = "message";
}

/// `POST …/messages {"body","sender"?}`.
pub async fn create(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
    Input(fields, _): Input<MessageBody>,
) -> Result<(StatusCode, Json<MessageOut>), ApiError> {
    let number = chat_number(&number)?;
    let body = fields.required_string("body", usize::MAX)?;
    let sender = fields.optional_user("sender")?;
    let message = state.chat.post_message(&token(raw), number, NewMessage { body, sender }).await?;
    Ok((StatusCode::CREATED, Json(message.into())))
}

/// `GET …/messages?page&per_page&before&after`, newest first.
pub async fn list(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
    query: ListQuery,
) -> Result<Json<Vec<MessageOut>>, ApiError> {
    let (number, range) = (chat_number(&number)?, query.message_range()?);
    let messages = state.chat.messages(&token(raw), number, range).await?;
    Ok(Json(messages.into_iter().map(Into::into).collect()))
}

/// `GET …/messages/:number`.
pub async fn show(
    State(state): State<ApiState>,
    PathParams((raw, chat, number)): PathParams<(String, String, String)>,
) -> Result<Json<MessageOut>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    Ok(Json(state.chat.message(&token(raw), chat, number).await?.into()))
}
