//! Path and query parameters, parsed into ids with precise errors.

use axum::extract::{FromRequestParts, Path, RawQuery};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use super::error::ApiError;
use crate::ids::{ChatNumber, MessageNumber, UserId};
use crate::model::{MessageRange, Page};

/// Path parameters; a path that cannot be read is a 404 like any unknown id.
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| PathParams(t))
            .map_err(|_| ApiError::NotFound("not_found"))
    }
}

/// `{token}`: every path under an application starts with its token.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AppPath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    pub token: String,
}

/// `{token}/chats/{number}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChatPath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    pub token: String,
    /// The chat's number (only the canonical decimal form names a chat).
    #[param(value_type = u64, minimum = 1)]
    pub number: String,
}

/// `{token}/chats/{number}/messages/{message}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessagePath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    pub token: String,
    /// The chat's number.
    #[param(value_type = u64, minimum = 1)]
    pub number: String,
    /// The message's number in the chat.
    #[param(value_type = u64, minimum = 1)]
    pub message: String,
}

/// `{token}/chats/{number}/messages/{message}/reactions/{emoji}/{user}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ReactionPath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    pub token: String,
    /// The chat's number.
    #[param(value_type = u64, minimum = 1)]
    pub number: String,
    /// The message's number in the chat.
    #[param(value_type = u64, minimum = 1)]
    pub message: String,
    /// The emoji: 1–16 characters without white space, percent-encoded.
    #[param(example = "👍")]
    pub emoji: String,
    /// The member who reacts.
    #[param(value_type = crate::ids::UserId)]
    pub user: String,
}

/// `{token}/chats/{number}/members/{user}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    pub token: String,
    /// The chat's number.
    #[param(value_type = u64, minimum = 1)]
    pub number: String,
    /// The user.
    #[param(value_type = crate::ids::UserId)]
    pub user: String,
}

/// `{token}/users/{user}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    pub token: String,
    /// The user.
    #[param(value_type = crate::ids::UserId)]
    pub user: String,
}

/// `page` and `per_page`, on every list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "the document's description of what `ListQuery` reads")]
pub struct PageQuery {
    /// The page, from 1.
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub per_page: Option<u64>,
}

/// `user`: whose `me` the reactions of the messages show.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "the document's description of what `ListQuery` reads")]
pub struct ReaderQuery {
    /// The reader: `me` in each reaction says whether this user reacted with it.
    #[param(value_type = Option<crate::ids::UserId>)]
    pub user: Option<String>,
}

/// `before` and `after`: exclusive bounds on the message number.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, reason = "the document's description of what `ListQuery` reads")]
pub struct RangeQuery {
    /// Only messages numbered below this.
    #[param(minimum = 1)]
    pub before: Option<u64>,
    /// Only messages numbered above this.
    #[param(minimum = 0)]
    pub after: Option<u64>,
}

/// Query parameters read into `T`; a query that cannot be read is 422
/// `invalid_parameter`, naming what is wrong, like every other bad parameter.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(QueryParams)
            .map_err(|e| ApiError::InvalidParameter(format!("the query string: {e}")))
    }
}

/// A chat number from the path: anything but a positive integer names no chat.
pub fn chat_number(raw: &str) -> Result<ChatNumber, ApiError> {
    let number = positive(raw).map(ChatNumber).ok_or(ApiError::NotFound("chat_not_found"))?;
    tracing::Span::current().record("chat", number.get());
    Ok(number)
}

/// A message number from the path.
pub fn message_number(raw: &str) -> Result<MessageNumber, ApiError> {
    positive(raw).map(MessageNumber).ok_or(ApiError::NotFound("message_not_found"))
}

/// A user id from the path.
pub fn user_id(raw: &str) -> Result<UserId, ApiError> {
    let user = UserId::parse(raw).map_err(|e| ApiError::InvalidField(format!("`user_id`: {e}")))?;
    tracing::Span::current().record("user", user.as_str());
    Ok(user)
}

/// Only the canonical decimal form names a number: `+1`, `01` and ` 1` name
/// nothing, so one chat has one path (a percent-encoded digit was decoded before).
fn positive(raw: &str) -> Option<u64> {
    let canonical =
        raw.starts_with(|c: char| ('1'..='9').contains(&c)) && raw.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| raw.parse::<u64>().ok()).flatten()
}

/// The default page size.
pub const DEFAULT_PER_PAGE: usize = 50;
/// The largest page size.
pub const MAX_PER_PAGE: usize = 500;

/// List parameters: `page`, `per_page`, and for messages `before`/`after`.
#[derive(Debug, Default)]
pub struct ListQuery {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let RawQuery(raw) = RawQuery::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidParameter("the query string cannot be read".into()))?;
        let pairs = match raw {
            Some(raw) => serde_urlencoded::from_str(&raw)
                .map_err(|_| ApiError::InvalidParameter("the query string cannot be read".into()))?,
            None => Vec::new(),
        };
        Ok(Self { pairs })
    }
}

impl ListQuery {
    fn number(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let Some((_, raw)) = self.pairs.iter().rev().find(|(k, _)| k == name) else {
            return Ok(None);
        };
        match raw.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::InvalidParameter(format!("`{name}` must be an integer from {min} to {max}"))),
        }
    }

    /// The page asked for.
    pub fn page(&self) -> Result<Page, ApiError> {
        let max_page = (u64::MAX / MAX_PER_PAGE as u64).min(1_000_000);
        let page = self.number("page", 1, max_page)?.unwrap_or(1);
        let per_page = self.number("per_page", 1, MAX_PER_PAGE as u64)?.unwrap_or(DEFAULT_PER_PAGE as u64);
        let per_page = usize::try_from(per_page).unwrap_or(DEFAULT_PER_PAGE);
        let page = usize::try_from(page).unwrap_or(1);
        Ok(Page { skip: (page - 1).saturating_mul(per_page), limit: per_page })
    }

    /// The text of parameter `name`, if given (the last one wins).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A positive number parameter (a chat number, say), if given.
    pub fn positive(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.number(name, 1, u64::MAX)
    }

    /// `user`: whose `me` a message's reactions show, if anyone's.
    pub fn reader(&self) -> Result<Option<UserId>, ApiError> {
        self.text("user")
            .map(|raw| UserId::parse(raw).map_err(|e| ApiError::InvalidParameter(format!("`user`: {e}"))))
            .transpose()
    }

    /// The message range asked for.
    pub fn message_range(&self) -> Result<MessageRange, ApiError> {
        Ok(MessageRange {
            before: self.number("before", 1, u64::MAX)?.map(MessageNumber),
            after: self.number("after", 0, u64::MAX)?.map(MessageNumber),
            page: self.page()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> ListQuery {
        ListQuery { pairs: pairs.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect() }
    }

    #[test]
    fn pages_default_and_bound() {
        assert_eq!(q(&[]).page().unwrap(), Page { skip: 0, limit: 50 });
        assert_eq!(q(&[("page", "3"), ("per_page", "10")]).page().unwrap(), Page { skip: 20, limit: 10 });
        assert!(q(&[("per_page", "501")]).page().is_err());
        assert!(q(&[("page", "0")]).page().is_err());
        assert!(q(&[("page", "x")]).page().is_err());
    }

    #[test]
    fn numbers_in_paths() {
        assert_eq!(chat_number("7").unwrap(), ChatNumber(7));
        assert!(chat_number("0").is_err());
        assert!(chat_number("-1").is_err());
        assert!(chat_number("abc").is_err());
        for alias in ["+1", "01", "00", " 1", "1 ", "1.0", "18446744073709551616"] {
            assert!(chat_number(alias).is_err(), "{alias}");
            assert!(message_number(alias).is_err(), "{alias}");
        }
        assert_eq!(message_number("18446744073709551615").unwrap(), MessageNumber(u64::MAX));
    }
}

#[cfg(test)]
mod props;
