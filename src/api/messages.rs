//! `/applications/:token/chats/:number/messages`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use utoipa::ToSchema;

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::input::{Input, Resource};
use super::openapi::{BAD_BODY, BAD_PARAMETER, INTERNAL, NO_CHAT, NO_MESSAGE, TOO_LARGE, UNAVAILABLE};
use super::params::{
    ChatPath, ListQuery, MessagePath, PageQuery, PathParams, RangeQuery, ReactionPath, ReaderQuery,
    chat_number, message_number, user_id,
};
use super::views::{MessageOut, ReactionsOut, VersionOut, reactions_out};
use crate::chat::{Author, NewMessage};
use crate::ids::{AppToken, AttachmentId, MessageNumber, UserId};
use crate::model::check_emoji;
use crate::protocol::MAX_CLIENT_MSG_ID;

/// The body of message requests.
pub struct MessageBody;

impl Resource for MessageBody {
    const ROOT: &'static str = "message";
}

/// The body of `POST …/messages`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct NewMessageIn {
    #[schema(min_length = 1)]
    body: String,
    /// The author (none: the application's backend).
    sender: Option<UserId>,
    /// The message of the same chat this one answers (a thread).
    #[schema(minimum = 1)]
    reply_to: Option<u64>,
    /// Uploaded attachments (`POST …/attachments`), at most 10.
    #[schema(max_items = 10)]
    attachments: Option<Vec<AttachmentId>>,
}

/// The body of `PATCH …/messages/{message}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct MessageChangeIn {
    /// The new body.
    #[schema(min_length = 1)]
    body: String,
}

/// `POST …/messages {"body","sender"?,"reply_to"?,"attachments"?}` with an optional
/// `Idempotency-Key` header.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/chats/{number}/messages",
    operation_id = "create_message",
    tag = "messages",
    params(
        ChatPath,
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[!-~]+$",
            description = "A retry with the same key answers the first message (1–128 bytes of visible ASCII)"),
    ),
    request_body = NewMessageIn,
    responses(
        (status = 201, description = "The message, once persisted", body = MessageOut),
        (status = 400, description = BAD_BODY),
        (status = 403, description = "`not_a_member`: the sender is not a member of the chat"),
        (status = 404, description = NO_CHAT),
        (status = 409, description = "`in_flight`: the first request with this `Idempotency-Key` is still being committed"),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`, `invalid_attachment`, `idempotency_key_reused`: a bad field or header, an attachment refused, or a key reused for another message"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    access: Access<need::MessagesWrite>,
    headers: HeaderMap,
    PathParams(ChatPath { number, .. }): PathParams<ChatPath>,
    Input(fields, _): Input<MessageBody>,
) -> Result<(StatusCode, Json<MessageOut>), ApiError> {
    let number = chat_number(&number)?;
    let idempotency_key = idempotency_key(&headers)?;
    let body = fields.required_string("body", usize::MAX)?;
    let sender = fields.optional_user("sender")?;
    let reply_to = fields.optional_u64("reply_to", 1, u64::MAX)?.map(MessageNumber);
    let attachments = fields.optional_attachments("attachments", crate::protocol::MAX_ATTACHMENTS)?;
    let new = NewMessage { body, sender, idempotency_key, reply_to, attachments };
    let message = state.chat.post_message(access.token(), number, new).await?;
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
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}/messages",
    operation_id = "list_messages",
    tag = "messages",
    params(ChatPath, PageQuery, RangeQuery, ReaderQuery),
    responses(
        (status = 200, description = "The chat's messages, newest first", body = Vec<MessageOut>),
        (status = 404, description = NO_CHAT),
        (status = 422, description = BAD_PARAMETER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    access: Access<need::MessagesRead>,
    PathParams(ChatPath { number, .. }): PathParams<ChatPath>,
    query: ListQuery,
) -> Result<Json<Vec<MessageOut>>, ApiError> {
    let (number, range, reader) = (chat_number(&number)?, query.message_range()?, query.reader()?);
    let messages = state.chat.messages(access.token(), number, range).await?;
    Ok(Json(messages.into_iter().map(|m| MessageOut::seen_by(m, reader.as_ref())).collect()))
}

/// `PATCH …/messages/:number {"body"}`: the backend edits any message.
#[utoipa::path(
    patch,
    path = "/api/v1/applications/{token}/chats/{number}/messages/{message}",
    operation_id = "edit_message",
    tag = "messages",
    params(MessagePath),
    request_body = MessageChangeIn,
    responses(
        (status = 200, description = "The message with its new body and `edited_at`", body = MessageOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_MESSAGE),
        (status = 410, description = "`message_deleted`: the message was deleted"),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: no `body`, or an empty one"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    access: Access<need::MessagesWrite>,
    PathParams(MessagePath { number: chat, message: number, .. }): PathParams<MessagePath>,
    Input(fields, _): Input<MessageBody>,
) -> Result<Json<MessageOut>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let body = fields.required_string("body", usize::MAX)?;
    let app = state.chat.application(access.token()).await?;
    let edited = state.chat.edit_message(&app.id, &Author::Backend(None), (chat, number), body, None).await?;
    Ok(Json(edited.into()))
}

/// `DELETE …/messages/:number`: the backend deletes any message (204; a
/// tombstone keeps the number).
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{token}/chats/{number}/messages/{message}",
    operation_id = "delete_message",
    tag = "messages",
    params(MessagePath),
    responses(
        (status = 204, description = "The message is a tombstone now"),
        (status = 404, description = NO_MESSAGE),
        (status = 410, description = "`message_deleted`: deleted already"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn destroy(
    State(state): State<ApiState>,
    access: Access<need::MessagesWrite>,
    PathParams(MessagePath { number: chat, message: number, .. }): PathParams<MessagePath>,
) -> Result<StatusCode, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let app = state.chat.application(access.token()).await?;
    state.chat.delete_message(&app.id, &Author::Backend(None), (chat, number), None).await?;
    let object = format!("chat:{}/message:{}", chat.get(), number.get());
    let (before, after) = (serde_json::json!({ "deleted": false }), serde_json::json!({ "deleted": true }));
    access.audit(&state, "message.delete", object, Some(before), Some(after)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/messages/:number/replies?after&per_page`: the thread, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}/messages/{message}/replies",
    operation_id = "list_replies",
    tag = "messages",
    params(
        MessagePath,
        ("after" = Option<u64>, Query, minimum = 0, description = "Only replies numbered above this"),
        ("per_page" = Option<u64>, Query, minimum = 1, maximum = 500, description = "Replies per page (default 50)"),
        ReaderQuery,
    ),
    responses(
        (status = 200, description = "The message's replies, oldest first", body = Vec<MessageOut>),
        (status = 404, description = NO_MESSAGE),
        (status = 422, description = "`invalid_parameter`: a parameter out of range, or `before` or `page` (a thread pages with `after`)"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn replies(
    State(state): State<ApiState>,
    access: Access<need::MessagesRead>,
    PathParams(MessagePath { number: chat, message: number, .. }): PathParams<MessagePath>,
    query: ListQuery,
) -> Result<Json<Vec<MessageOut>>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let (range, reader) = (query.message_range()?, query.reader()?);
    if range.before.is_some() || range.page.skip > 0 {
        return Err(ApiError::InvalidParameter("a thread pages with `after` and `per_page`".into()));
    }
    let after = range.after.unwrap_or(MessageNumber(0));
    let replies = state.chat.replies(access.token(), chat, number, after, range.page.limit).await?;
    Ok(Json(replies.into_iter().map(|m| MessageOut::seen_by(m, reader.as_ref())).collect()))
}

/// `GET …/messages/:number/versions`: earlier bodies, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}/messages/{message}/versions",
    operation_id = "list_versions",
    tag = "messages",
    params(MessagePath),
    responses(
        (status = 200, description = "The earlier bodies, oldest first (none once deleted)", body = Vec<VersionOut>),
        (status = 404, description = NO_MESSAGE),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn versions(
    State(state): State<ApiState>,
    access: Access<need::MessagesRead>,
    PathParams(MessagePath { number: chat, message: number, .. }): PathParams<MessagePath>,
) -> Result<Json<Vec<VersionOut>>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let versions = state.chat.message_versions(access.token(), chat, number).await?;
    Ok(Json(versions.into_iter().map(Into::into).collect()))
}

/// `GET …/messages/:number?user`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}/messages/{message}",
    operation_id = "get_message",
    tag = "messages",
    params(MessagePath, ReaderQuery),
    responses(
        (status = 200, description = "The message", body = MessageOut),
        (status = 404, description = NO_MESSAGE),
        (status = 422, description = BAD_PARAMETER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn show(
    State(state): State<ApiState>,
    access: Access<need::MessagesRead>,
    PathParams(MessagePath { number: chat, message: number, .. }): PathParams<MessagePath>,
    query: ListQuery,
) -> Result<Json<MessageOut>, ApiError> {
    let (chat, number, reader) = (chat_number(&chat)?, message_number(&number)?, query.reader()?);
    let message = state.chat.message(access.token(), chat, number).await?;
    Ok(Json(MessageOut::seen_by(message, reader.as_ref())))
}

/// `GET …/messages/:number/reactions`: every emoji with the users who reacted with it.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}/messages/{message}/reactions",
    operation_id = "list_reactions",
    tag = "messages",
    params(MessagePath),
    responses(
        (status = 200, description = "Each emoji with the users who reacted with it", body = BTreeMap<String, Vec<UserId>>),
        (status = 404, description = NO_MESSAGE),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn reactions(
    State(state): State<ApiState>,
    access: Access<need::MessagesRead>,
    PathParams(MessagePath { number: chat, message: number, .. }): PathParams<MessagePath>,
) -> Result<Json<ReactionsOut>, ApiError> {
    let (chat, number) = (chat_number(&chat)?, message_number(&number)?);
    let message = state.chat.message(access.token(), chat, number).await?;
    Ok(Json(reactions_out(&message)))
}

/// `PUT …/messages/:number/reactions/:emoji/:user`: the backend reacts on
/// behalf of a member (idempotent); the message as that user sees it.
#[utoipa::path(
    put,
    path = "/api/v1/applications/{token}/chats/{number}/messages/{message}/reactions/{emoji}/{user}",
    operation_id = "add_reaction",
    tag = "messages",
    params(ReactionPath),
    responses(
        (status = 200, description = "The message as that user sees it", body = MessageOut),
        (status = 403, description = "`not_a_member`: the user is not a member of the chat"),
        (status = 404, description = NO_MESSAGE),
        (status = 410, description = "`message_deleted`: the message was deleted"),
        (status = 422, description = "`invalid_field`, `invalid_parameter`: a bad user id, or an emoji that is not 1–16 characters without white space"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn react(
    State(state): State<ApiState>,
    access: Access<need::MessagesWrite>,
    PathParams(path): PathParams<ReactionPath>,
) -> Result<Json<MessageOut>, ApiError> {
    set_reaction(state, access.token(), path, true).await
}

/// `DELETE …/messages/:number/reactions/:emoji/:user`: takes it back (idempotent).
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{token}/chats/{number}/messages/{message}/reactions/{emoji}/{user}",
    operation_id = "remove_reaction",
    tag = "messages",
    params(ReactionPath),
    responses(
        (status = 200, description = "The message as that user sees it", body = MessageOut),
        (status = 403, description = "`not_a_member`: the user is not a member of the chat"),
        (status = 404, description = NO_MESSAGE),
        (status = 410, description = "`message_deleted`: the message was deleted"),
        (status = 422, description = "`invalid_field`, `invalid_parameter`: a bad user id, or an emoji that is not 1–16 characters without white space"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn unreact(
    State(state): State<ApiState>,
    access: Access<need::MessagesWrite>,
    PathParams(path): PathParams<ReactionPath>,
) -> Result<Json<MessageOut>, ApiError> {
    set_reaction(state, access.token(), path, false).await
}

async fn set_reaction(
    state: ApiState,
    token: &AppToken,
    path: ReactionPath,
    on: bool,
) -> Result<Json<MessageOut>, ApiError> {
    let ReactionPath { number: chat, message: number, emoji, user, .. } = path;
    let (chat, number, user) = (chat_number(&chat)?, message_number(&number)?, user_id(&user)?);
    check_emoji(&emoji).map_err(|e| ApiError::InvalidParameter(format!("`emoji` {e}")))?;
    let message = state.chat.react_for(token, &user, (chat, number), &emoji, on).await?;
    Ok(Json(MessageOut::seen_by(message, Some(&user))))
}
