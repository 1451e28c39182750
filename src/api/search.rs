//! `GET …/chats/:number/messages/search` and `GET …/users/:user/messages/search`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::openapi::{INTERNAL, NO_APP, NO_CHAT};
use super::params::{
    ChatPath, ListQuery, PageQuery, PathParams, ReaderQuery, UserPath, chat_number, user_id,
};
use super::views::MessageOut;
use crate::chat::{Filters, Found};
use crate::ids::{ChatNumber, Timestamp, UserId};
use crate::search::ParsedQuery;

/// A hit: the message as the message list shows it, its chat, and its body
/// with the matched words marked `<mark>…</mark>` (the rest HTML-escaped).
#[derive(Serialize, ToSchema)]
pub struct HitOut {
    chat: ChatNumber,
    #[serde(flatten)]
    message: MessageOut,
    /// The body, HTML-escaped, with the matched words in `<mark>…</mark>`.
    highlight: String,
}

impl HitOut {
    /// A hit as `reader` sees it.
    fn seen_by(found: Found, reader: Option<&UserId>) -> Self {
        let chat = found.message.chat;
        Self { chat, message: MessageOut::seen_by(found.message, reader), highlight: found.highlight }
    }
}

/// `query`: required, parsed (operators included).
fn parsed_query(query: &ListQuery) -> Result<ParsedQuery, ApiError> {
    let text = query.text("query").ok_or_else(|| ApiError::InvalidParameter("`query` is required".into()))?;
    crate::search::query::parse(text).map_err(|e| ApiError::InvalidParameter(format!("`query`: {e}")))
}

/// 503 answers of a search.
const SEARCH_UNAVAILABLE: &str = "`search_unavailable`, `store_unavailable`, `redis_unavailable`, `draining`: the \
                                  search index (or another service) does not answer; retry after `Retry-After` seconds";

/// `query`: the search itself.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "the document's description of what `ListQuery` reads")]
pub struct SearchQuery {
    /// Words (prefixes, any case or accent), `"a phrase"`, and the operators `from:user`,
    /// `in:chat`, `after:`/`before:`, `is:thread`, `has:file`.
    #[param(min_length = 1, max_length = 256, example = "hello")]
    query: String,
}

/// `GET …/chats/:number/messages/search?query=Q&page&per_page`: best match
/// first, ties newest first.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/chats/{number}/messages/search",
    operation_id = "search_chat",
    tag = "search",
    params(ChatPath, SearchQuery, PageQuery, ReaderQuery),
    responses(
        (status = 200, description = "The matching messages, best first", body = Vec<HitOut>),
        (status = 404, description = NO_CHAT),
        (status = 422, description = "`invalid_parameter`: no query, an empty or too long one, an operator with a bad value, or a parameter out of range"),
        (status = 500, description = INTERNAL),
        (status = 503, description = SEARCH_UNAVAILABLE),
    )
)]
pub async fn in_chat(
    State(state): State<ApiState>,
    access: Access<need::MessagesRead>,
    PathParams(ChatPath { number, .. }): PathParams<ChatPath>,
    query: ListQuery,
) -> Result<Json<Vec<HitOut>>, ApiError> {
    let number = chat_number(&number)?;
    let (parsed, page) = (parsed_query(&query)?, query.page()?);
    let reader = query.reader()?;
    let results = state.chat.search_chat(access.token(), number, parsed, page).await?;
    Ok(Json(results.items.into_iter().map(|f| HitOut::seen_by(f, reader.as_ref())).collect()))
}

/// `GET …/users/:user/messages/search?query=Q&chat&sender&after&before&page&per_page`:
/// Filters of a user's search.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "the document's description of what `ListQuery` reads")]
pub struct FiltersQuery {
    /// Only this chat.
    #[param(minimum = 1)]
    chat: Option<u64>,
    /// Only messages of this sender.
    sender: Option<UserId>,
    /// Only messages after this date (`2026-01-31`) or RFC 3339 instant.
    #[param(example = "2026-01-31")]
    after: Option<String>,
    /// Only messages before this date or instant.
    #[param(example = "2026-12-31T23:59:59Z")]
    before: Option<String>,
}

/// only the chats the user is a member of now.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/users/{user}/messages/search",
    operation_id = "search_user_messages",
    tag = "search",
    params(UserPath, SearchQuery, FiltersQuery, PageQuery),
    responses(
        (status = 200, description = "The matching messages of the user's chats, best first", body = Vec<HitOut>),
        (status = 404, description = NO_APP),
        (status = 422, description = "`invalid_field`, `invalid_parameter`: a bad user id; no query, a bad one, or a bad filter"),
        (status = 500, description = INTERNAL),
        (status = 503, description = SEARCH_UNAVAILABLE),
    )
)]
pub async fn of_user(
    State(state): State<ApiState>,
    access: Access<need::MessagesRead>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
    query: ListQuery,
) -> Result<Json<Vec<HitOut>>, ApiError> {
    let user = user_id(&user)?;
    let (parsed, page) = (parsed_query(&query)?, query.page()?);
    let filters = filters(&query)?;
    let results = state.chat.search_user_of(access.token(), &user, parsed, filters, page).await?;
    Ok(Json(results.items.into_iter().map(|f| HitOut::seen_by(f, Some(&user))).collect()))
}

fn filters(query: &ListQuery) -> Result<Filters, ApiError> {
    let time = |name: &str| -> Result<Option<Timestamp>, ApiError> {
        query
            .text(name)
            .map(|raw| {
                crate::search::query::instant(raw).ok_or_else(|| {
                    ApiError::InvalidParameter(format!(
                        "`{name}` must be a date (2026-01-31) or an RFC 3339 instant"
                    ))
                })
            })
            .transpose()
    };
    let sender = query
        .text("sender")
        .map(|raw| UserId::parse(raw).map_err(|e| ApiError::InvalidParameter(format!("`sender`: {e}"))))
        .transpose()?;
    Ok(Filters {
        chat: query.positive("chat")?.map(ChatNumber),
        sender,
        after: time("after")?,
        before: time("before")?,
    })
}
