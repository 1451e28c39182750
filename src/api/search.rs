//! `GET …/chats/:number/messages/search` and `GET …/users/:user/messages/search`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::ApiState;
use super::error::ApiError;
use super::params::{ListQuery, PathParams, chat_number, token, user_id};
use super::views::MessageOut;
use crate::chat::{Filters, Found};
use crate::ids::{ChatNumber, Timestamp, UserId};
use crate::search::ParsedQuery;

/// A hit: the message as the message list shows it, its chat, and its body
/// with the matched words marked `<mark>…</mark>` (the rest HTML-escaped).
#[derive(Serialize)]
pub struct HitOut {
    chat: ChatNumber,
    #[serde(flatten)]
    message: MessageOut,
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

/// `GET …/chats/:number/messages/search?query=Q&page&per_page`: best match
/// first, ties newest first.
pub async fn in_chat(
    State(state): State<ApiState>,
    PathParams((raw, number)): PathParams<(String, String)>,
    query: ListQuery,
) -> Result<Json<Vec<HitOut>>, ApiError> {
    let number = chat_number(&number)?;
    let (parsed, page) = (parsed_query(&query)?, query.page()?);
    let reader = query.reader()?;
    let results = state.chat.search_chat(&token(raw), number, parsed, page).await?;
    Ok(Json(results.items.into_iter().map(|f| HitOut::seen_by(f, reader.as_ref())).collect()))
}

/// `GET …/users/:user/messages/search?query=Q&chat&sender&after&before&page&per_page`:
/// only the chats the user is a member of now.
pub async fn of_user(
    State(state): State<ApiState>,
    PathParams((raw, user)): PathParams<(String, String)>,
    query: ListQuery,
) -> Result<Json<Vec<HitOut>>, ApiError> {
    let user = user_id(&user)?;
    let (parsed, page) = (parsed_query(&query)?, query.page()?);
    let filters = filters(&query)?;
    let results = state.chat.search_user_of(&token(raw), &user, parsed, filters, page).await?;
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
