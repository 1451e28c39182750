//! `/applications/:token/chats` and their members; `/users/:user_id/chats`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::ApiState;
use super::error::ApiError;
use super::input::{Input, Resource};
use super::params::{ListQuery, PathParams, chat_number, token, user_id};
use super::views::{ChatOut, MemberOut};
use crate::chat::{ChatChanges, MetadataChange, NewChat};
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

/// `POST /applications/:token/chats {"name"?, "description"?, "metadata"?, "created_by"?}`:
/// `created_by` becomes the chat's first member, as owner.
pub async fn create(
    State(state): State<ApiState>,
    PathParams(raw): PathParams<String>,
    Input(fields, _): Input<ChatBody>,
) -> Result<(StatusCode, Json<ChatOut>), ApiError> {
    let new = NewChat {
        name: fields.clearable_string("name", MAX_CHAT_NAME)?.flatten(),
        description: fields.clearable_string("description", MAX_DESCRIPTION)?.flatten(),
        metadata: fields.clearable_object("metadata")?.flatten().unwrap_or_default(),
        created_by: fields.optional_user("created_by")?,
    };
    let view = state.chat.create_chat(&token(raw), new).await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// `PATCH /applications/:token/chats/:number {"name"?, "description"?, "metadata"?}`:
/// null (or "") clears a text; `metadata` keys are merged (a null value
/// removes its key) and null clears them all. Members get `chat_updated`.
pub async fn update(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
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
    Ok(Json(state.chat.patch_chat(&token(raw), number, changes).await?.into()))
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

/// `PUT /applications/:token/chats/:number/members/:user_id {"role"?}`: adds
/// the user (as `role`, default `member`), or sets a member's role.
pub async fn add_member(
    State(state): State<ApiState>,
    PathParams((raw, number, user)): PathParams<(String, String, String)>,
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
    state.chat.put_member(&token(raw), number, &user, role).await?;
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
