//! `/applications/:token/chats/:number/messages`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::ApiState;
use super::error::ApiError;
use super::input::{Input, Resource};
use super::params::{ListQuery, PathParams, chat_number, message_number, token, user_id};
use super::views::{MessageOut, ReactionsOut, VersionOut, reactions_out};
use crate::chat::{Author, NewMessage};
use crate::ids::MessageNumber;
use crate::model::check_emoji;
use crate::protocol::MAX_CLIENT_MSG_ID;

/// The body of message requests.
pub struct MessageBody;

impl Resource for MessageBody {
    const ROOT: &'static str = "message";
}

/// `POST …/messages {"body","sender"?,"reply_to"?,"attachments"?}` with an optional
/// `Idempotency-Key` header.
pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    PathParams((raw, number)): PathParams<(String, String)>,
    Input(fields, _): Input<MessageBody>,
) -> Result<(StatusCode, Json<MessageOut>), ApiError> {
    let number = chat_number(&number)?;
    let idempotency_key = idempotency_key(&headers)?;
    let body = fields.required_string("body", usize::MAX)?;
    let sender = fields.optional_user("sender")?;
    let reply_to = fields.optional_u64("reply_to", 1, u64::MAX)?.map(MessageNumber);
    let attachments = fields.optional_attachments("attachments", crate::protocol::MAX_ATTACHMENTS)?;
    let new = NewMessage { body, sender, idempotency_key, reply_to, attachments };
    let message = state.chat.post_message(&token(raw), number, new).await?;
    Ok((StatusCode::CREATED, Json(message.into())))
}

/// The `Idempotency-Key` header, if given: once, 1 to 128 bytes of visible
/// ASCII (the limits of `client_msg_id`, whose key space it shares).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else { return Ok(None) };
    let bad = || {
        ApiError::InvalidField(format!(
            "the `Idempotency-Key` header must be given once, 1 to {MAX_CLIENT_MSG_ID} bytes of visible ASCII"
        ))
    };
    if values.next().is_some() {
        return Err(bad());
    }
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_CLIENT_MSG_ID => Ok(Some(key.to_owned())),
        _ => Err(bad()),
    }
}

/// `GET …/messages?page&per_page&before&after`, newest first.
pub async fn list(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
    query: ListQuery,
) -> Result<Json<Vec<MessageOut>>, ApiError> {
    let (number, range, reader) = (chat_number(&number)?, query.message_range()?, query.reader()?);
    let messages = state.chat.messages(&token(raw), number, range).await?;
    Ok(Json(messages.into_iter().map(|m| MessageOut::seen_by(m, reader.as_ref())).collect()))
}

/// `PATCH …/messages/:number {"body"}`: the backend edits any message.
pub async fn update(
    State(state): State<ApiState>,
    PathParams((raw, chat, number)): PathParams<(String, String, String)>,
    Input(fields, _): Input<MessageBody>,
) -> Result<Json<MessageOut>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let body = fields.required_string("body", usize::MAX)?;
    let app = state.chat.application(&token(raw)).await?;
    let edited = state.chat.edit_message(&app.id, &Author::Backend(None), (chat, number), body, None).await?;
    Ok(Json(edited.into()))
}

/// `DELETE …/messages/:number`: the backend deletes any message (204; a
/// tombstone keeps the number).
pub async fn destroy(
    State(state): State<ApiState>,
    PathParams((raw, chat, number)): PathParams<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let app = state.chat.application(&token(raw)).await?;
    state.chat.delete_message(&app.id, &Author::Backend(None), (chat, number), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/messages/:number/replies?after&per_page`: the thread, oldest first.
pub async fn replies(
    State(state): State<ApiState>,
    PathParams((raw, chat, number)): PathParams<(String, String, String)>,
    query: ListQuery,
) -> Result<Json<Vec<MessageOut>>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let (range, reader) = (query.message_range()?, query.reader()?);
    if range.before.is_some() || range.page.skip > 0 {
        return Err(ApiError::InvalidParameter("a thread pages with `after` and `per_page`".into()));
    }
    let after = range.after.unwrap_or(MessageNumber(0));
    let replies = state.chat.replies(&token(raw), chat, number, after, range.page.limit).await?;
    Ok(Json(replies.into_iter().map(|m| MessageOut::seen_by(m, reader.as_ref())).collect()))
}

/// `GET …/messages/:number/versions`: earlier bodies, oldest first.
pub async fn versions(
    State(state): State<ApiState>,
    PathParams((raw, chat, number)): PathParams<(String, String, String)>,
) -> Result<Json<Vec<VersionOut>>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let versions = state.chat.message_versions(&token(raw), chat, number).await?;
    Ok(Json(versions.into_iter().map(Into::into).collect()))
}

/// `GET …/messages/:number?user`.
pub async fn show(
    State(state): State<ApiState>,
    PathParams((raw, chat, number)): PathParams<(String, String, String)>,
    query: ListQuery,
) -> Result<Json<MessageOut>, ApiError> {
    let (chat, number, reader) = (chat_number(&chat)?, message_number(&number)?, query.reader()?);
    let message = state.chat.message(&token(raw), chat, number).await?;
    Ok(Json(MessageOut::seen_by(message, reader.as_ref())))
}

/// `GET …/messages/:number/reactions`: every emoji with the users who reacted with it.
pub async fn reactions(
    State(state): State<ApiState>,
    PathParams((raw, chat, number)): PathParams<(String, String, String)>,
) -> Result<Json<ReactionsOut>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let message = state.chat.message(&token(raw), chat, number).await?;
    Ok(Json(reactions_out(&message)))
}

/// `PUT …/messages/:number/reactions/:emoji/:user`: the backend reacts on
/// behalf of a member (idempotent); the message as that user sees it.
pub async fn react(
    State(state): State<ApiState>,
    PathParams((raw, chat, number, emoji, user)): PathParams<(String, String, String, String, String)>,
) -> Result<Json<MessageOut>, ApiError> {
    set_reaction(state, (raw, chat, number, emoji, user), true).await
}

/// `DELETE …/messages/:number/reactions/:emoji/:user`: takes it back (idempotent).
pub async fn unreact(
    State(state): State<ApiState>,
    PathParams((raw, chat, number, emoji, user)): PathParams<(String, String, String, String, String)>,
) -> Result<Json<MessageOut>, ApiError> {
    set_reaction(state, (raw, chat, number, emoji, user), false).await
}

async fn set_reaction(
    state: ApiState,
    (raw, chat, number, emoji, user): (String, String, String, String, String),
    on: bool,
) -> Result<Json<MessageOut>, ApiError> {
    let (chat, number, user) = (chat_number(&chat)?, message_number(&number)?, user_id(&user)?);
    check_emoji(&emoji).map_err(|e| ApiError::InvalidParameter(format!("`emoji` {e}")))?;
    let message = state.chat.react_for(&token(raw), &user, (chat, number), &emoji, on).await?;
    Ok(Json(MessageOut::seen_by(message, Some(&user))))
}
