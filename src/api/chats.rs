//! `/applications/:token/chats` and their members; `/users/:user_id/chats`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::input::{Input, Resource};
use super::openapi::{BAD_BODY, BAD_PARAMETER, INTERNAL, NO_APP, NO_CHAT, TOO_LARGE, UNAVAILABLE};
use super::params::{
    AppPath, ChatPath, ListQuery, MemberPath, PageQuery, PathParams, UserPath, chat_number, user_id,
};
use super::views::{ChatOut, MemberOut};
use crate::chat::{ChatChanges, MetadataChange, NewChat};
use crate::ids::UserId;
use crate::model::{MAX_CHAT_NAME, MAX_DESCRIPTION, Role};

/// The body of chat requests.
pub struct ChatBody;

impl Resource for ChatBody {
    const ROOT: &'static str = "chat";
}

/// The body of member requests.
pub struct MemberBody;

impl Resource for MemberBody {
    const ROOT: &'static str = "member";
}

/// The body of `POST …/chats`: every field optional (an empty body makes a chat without info).
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct NewChatIn {
    #[schema(max_length = 200)]
    name: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// A JSON object of at most 4 KiB serialized.
    metadata: Option<Map<String, Value>>,
    /// Becomes the chat's first member, as `owner`.
    created_by: Option<UserId>,
}

/// The body of `PATCH …/chats/{number}`: at least one field; null (or "") clears a text.
#[derive(ToSchema)]
#[schema(min_properties = 1)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct ChatChangeIn {
    #[schema(max_length = 200)]
    name: Option<String>,
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// Keys merged one level deep (a null value removes its key); null clears them all.
    metadata: Option<Map<String, Value>>,
}

/// The body of `PUT …/members/{user}`: may be empty.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct MemberChangeIn {
    /// `owner`, `admin` or `member` (default `member`; a member keeps their role when none is given).
    #[schema(required = false, example = "member")]
    role: String,
}

/// `POST /applications/:token/chats {"name"?, "description"?, "metadata"?, "created_by"?}`:
/// `created_by` becomes the chat's first member, as owner.
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/chats",
    operation_id = "create_chat",
    tag = "chats",
    params(AppPath),
    request_body(content = Option<NewChatIn>, description = "May be empty"),
    responses(
        (status = 201, description = "The new group chat", body = ChatOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: a field too long or of the wrong type"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    access: Access<need::ChatsWrite>,
    Input(fields, _): Input<ChatBody>,
) -> Result<(StatusCode, Json<ChatOut>), ApiError> {
    let new = NewChat {
        name: fields.clearable_string("name", MAX_CHAT_NAME)?.flatten(),
        description: fields.clearable_string("description", MAX_DESCRIPTION)?.flatten(),
        metadata: fields.clearable_object("metadata")?.flatten().unwrap_or_default(),
        created_by: fields.optional_user("created_by")?,
    };
    let view = state.chat.create_chat(access.token(), new).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// `PATCH /applications/:token/chats/:number {"name"?, "description"?, "metadata"?}`:
/// null (or "") clears a text; `metadata` keys are merged (a null value
/// removes its key) and null clears them all. Members get `chat_updated`.
#[utoipa::path(
    patch,
    path = "/api/v1/applications/{token}/chats/{number}",
    operation_id = "update_chat",
    tag = "chats",
    params(ChatPath),
    request_body = ChatChangeIn,
    responses(
        (status = 200, description = "The changed chat", body = ChatOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_CHAT),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: no field, or a bad one"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    access: Access<need::ChatsWrite>,
    PathParams(ChatPath { number, .. }): PathParams<ChatPath>,
    Input(fields, _): Input<ChatBody>,
) -> Result<Json<ChatOut>, ApiError> {
    let number = chat_number(&number)?;
    let changes = ChatChanges {
        name: fields.clearable_string("name", MAX_CHAT_NAME)?,
        description: fields.clearable_string("description", MAX_DESCRIPTION)?,
        metadata: fields
            .clearable_object("metadata")?
            .map(|m| m.map_or(MetadataChange::Clear, MetadataChange::Merge)),
    };
    if changes.is_empty() {
        return Err(ApiError::InvalidField("give `name`, `description` or `metadata`".into()));
    }
    Ok(Json(state.chat.patch_chat(access.token(), number, changes).await?.into()))
}

/// `GET /applications/:token/chats`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats",
    operation_id = "list_chats",
    tag = "chats",
    params(AppPath, PageQuery),
    responses(
        (status = 200, description = "The application's chats, by number", body = Vec<ChatOut>),
        (status = 404, description = NO_APP),
        (status = 422, description = BAD_PARAMETER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    access: Access<need::ChatsRead>,
    query: ListQuery,
) -> Result<Json<Vec<ChatOut>>, ApiError> {
    let page = query.page()?;
    let chats = state.chat.chats(access.token(), page).await?;
    Ok(Json(chats.into_iter().map(Into::into).collect()))
}

/// `GET /applications/:token/chats/:number`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}",
    operation_id = "get_chat",
    tag = "chats",
    params(ChatPath),
    responses(
        (status = 200, description = "The chat", body = ChatOut),
        (status = 404, description = NO_CHAT),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn show(
    State(state): State<ApiState>,
    access: Access<need::ChatsRead>,
    PathParams(ChatPath { number, .. }): PathParams<ChatPath>,
) -> Result<Json<ChatOut>, ApiError> {
    let number = chat_number(&number)?;
    Ok(Json(state.chat.chat(access.token(), number).await?.into()))
}

/// `PUT /applications/:token/chats/:number/members/:user_id {"role"?}`: adds
/// the user (as `role`, default `member`), or sets a member's role.
#[utoipa::path(
    put,
    path = "/api/v1/applications/{token}/chats/{number}/members/{user}",
    operation_id = "put_member",
    tag = "chats",
    params(MemberPath),
    request_body(content = Option<MemberChangeIn>, description = "May be empty"),
    responses(
        (status = 204, description = "The user is a member, with that role"),
        (status = 400, description = BAD_BODY),
        (status = 403, description = "`forbidden`: demoting the last owner while others remain"),
        (status = 404, description = NO_CHAT),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: a bad user id or role, or a direct chat (it takes no members)"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn add_member(
    State(state): State<ApiState>,
    access: Access<need::MembersWrite>,
    PathParams(MemberPath { number, user, .. }): PathParams<MemberPath>,
    Input(fields, _): Input<MemberBody>,
) -> Result<StatusCode, ApiError> {
    let (number, user) = (chat_number(&number)?, user_id(&user)?);
    let role = fields
        .has("role")
        .then(|| {
            let name = fields.required_string("role", 16)?;
            Role::parse(&name).ok_or_else(|| {
                ApiError::InvalidField("`role` must be \"owner\", \"admin\" or \"member\"".into())
            })
        })
        .transpose()?;
    let before = prior_membership(&state, &access, number, &user).await?;
    let member = state.chat.put_member(access.token(), number, &user, role).await?;
    let object = format!("chat:{}/member:{}", number.get(), user.as_str());
    let after = serde_json::json!({ "member": true, "role": member.role.as_str() });
    access.audit(&state, "member.put", object, Some(before), Some(after)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /applications/:token/chats/:number/members/:user_id`.
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{token}/chats/{number}/members/{user}",
    operation_id = "remove_member",
    tag = "chats",
    params(MemberPath),
    responses(
        (status = 204, description = "The user is no longer a member; their sessions were told"),
        (status = 403, description = "`forbidden`: removing the last owner while others remain"),
        (status = 404, description = "`application_not_found`, `chat_not_found`, `member_not_found`"),
        (status = 422, description = "`invalid_field`: a bad user id, or a direct chat"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn remove_member(
    State(state): State<ApiState>,
    access: Access<need::MembersWrite>,
    PathParams(MemberPath { number, user, .. }): PathParams<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let (number, user) = (chat_number(&number)?, user_id(&user)?);
    let before = prior_membership(&state, &access, number, &user).await?;
    state.chat.remove_member(access.token(), number, &user).await?;
    let object = format!("chat:{}/member:{}", number.get(), user.as_str());
    let after = serde_json::json!({ "member": false, "role": null });
    access.audit(&state, "member.remove", object, Some(before), Some(after)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /applications/:token/chats/:number/members`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}/members",
    operation_id = "list_members",
    tag = "chats",
    params(ChatPath, PageQuery),
    responses(
        (status = 200, description = "The chat's members", body = Vec<MemberOut>),
        (status = 404, description = NO_CHAT),
        (status = 422, description = BAD_PARAMETER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn members(
    State(state): State<ApiState>,
    access: Access<need::ChatsRead>,
    PathParams(ChatPath { number, .. }): PathParams<ChatPath>,
    query: ListQuery,
) -> Result<Json<Vec<MemberOut>>, ApiError> {
    let (number, page) = (chat_number(&number)?, query.page()?);
    let members = state.chat.members(access.token(), number, page).await?;
    Ok(Json(members.into_iter().map(Into::into).collect()))
}

/// `GET /applications/:token/users/:user_id/chats`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/users/{user}/chats",
    operation_id = "list_user_chats",
    tag = "chats",
    params(UserPath, PageQuery),
    responses(
        (status = 200, description = "The chats the user is a member of", body = Vec<ChatOut>),
        (status = 404, description = NO_APP),
        (status = 422, description = "`invalid_field`, `invalid_parameter`: a bad user id, or a query parameter out of range"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn user_chats(
    State(state): State<ApiState>,
    access: Access<need::ChatsRead>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
    query: ListQuery,
) -> Result<Json<Vec<ChatOut>>, ApiError> {
    let (user, page) = (user_id(&user)?, query.page()?);
    let chats = state.chat.user_chats(access.token(), &user, page).await?;
    Ok(Json(chats.into_iter().map(Into::into).collect()))
}

/// A user's membership of a chat before an act, for the audit trail:
/// `{"member": bool, "role": "admin" | null}`.
async fn prior_membership(
    state: &ApiState,
    access: &Access<need::MembersWrite>,
    chat: crate::ids::ChatNumber,
    user: &crate::ids::UserId,
) -> Result<Value, ApiError> {
    let member = state.chat.store().member(&access.app().id, chat, user).await;
    let member = member.map_err(crate::chat::ChatError::from)?;
    Ok(serde_json::json!({ "member": member.is_some(), "role": member.map(|m| m.role.as_str()) }))
}
