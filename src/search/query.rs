//! The query language people know from Slack and Rocket.Chat, parsed once for
//! every backend: words (each must match, as a prefix of a word of the
//! message), `"quoted phrases"`, and the operators `from:user`, `in:chat`,
//! `before:`/`after:` (a date `2026-01-31` or an RFC 3339 instant), `has:file`
//! and `is:thread`. A `name:value` whose name is not an operator (a URL, a
//! time `10:30`) is plain text. Case, accents and word splitting are the
//! backends' analyzers' business: the parser keeps the text as typed.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::MAX_QUERY_CHARS;
use crate::ids::{ChatNumber, Timestamp, UserId};

/// A parsed query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedQuery {
    /// Words a hit must all contain, each as a prefix of one of its words.
    pub words: Vec<String>,
    /// Phrases a hit must all contain, word after word.
    pub phrases: Vec<String>,
    /// `from:` — only messages this user sent.
    pub from: Option<UserId>,
    /// `in:` — only this chat.
    pub in_chat: Option<ChatNumber>,
    /// `after:` — only messages created at or after this instant.
    pub after: Option<Timestamp>,
    /// `before:` — only messages created before this instant.
    pub before: Option<Timestamp>,
    /// `has:file` — only messages with an attachment (none exist yet: nothing matches).
    pub has_file: bool,
    /// `is:thread` — only replies (messages with a `reply_to`).
    pub is_thread: bool,
}

impl ParsedQuery {
    /// Whether the query names no text at all (only filters).
    pub fn has_no_text(&self) -> bool {
        self.words.is_empty() && self.phrases.is_empty()
    }
}

/// Why a query cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Nothing to search for.
    #[error("the query is empty")]
    Empty,
    /// Longer than [`MAX_QUERY_CHARS`].
    #[error("the query is longer than {MAX_QUERY_CHARS} characters")]
    TooLong,
    /// An operator with a value it cannot take.
    #[error("`{0}` is not a valid value here")]
    BadValue(String),
}

/// Parses a query as typed.
pub fn parse(text: &str) -> Result<ParsedQuery, QueryError> {
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(QueryError::TooLong);
    }
    let mut query = ParsedQuery::default();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            // A phrase runs to the next quote (or the end, if unclosed).
            let (phrase, after) = quoted.split_once('"').unwrap_or((quoted, ""));
            let phrase = phrase.split_whitespace().collect::<Vec<_>>().join(" ");
            if !phrase.is_empty() {
                query.phrases.push(phrase);
            }
            rest = after.trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (token, after) = rest.split_at(end);
        rest = after.trim_start();
        if !operator(&mut query, token)? {
            query.words.push(token.to_owned());
        }
    }
    let filtered = query.from.is_some()
        || query.in_chat.is_some()
        || query.after.is_some()
        || query.before.is_some()
        || query.has_file
        || query.is_thread;
    if query.has_no_text() && !filtered {
        return Err(QueryError::Empty);
    }
    Ok(query)
}

/// Applies `token` if it is an operator; false when it is plain text.
fn operator(query: &mut ParsedQuery, token: &str) -> Result<bool, QueryError> {
    let Some((name, value)) = token.split_once(':') else {
        return Ok(false);
    };
    let bad = || QueryError::BadValue(token.to_owned());
    match name.to_ascii_lowercase().as_str() {
        "from" => query.from = Some(UserId::parse(value.trim_start_matches('@')).map_err(|_| bad())?),
        "in" => {
            let number = value.trim_start_matches('#').parse::<u64>().map_err(|_| bad())?;
            query.in_chat = Some(ChatNumber(number));
        }
        "after" => query.after = Some(instant(value).ok_or_else(bad)?),
        "before" => query.before = Some(instant(value).ok_or_else(bad)?),
        "has" if value.eq_ignore_ascii_case("file") => query.has_file = true,
        "is" if value.eq_ignore_ascii_case("thread") => query.is_thread = true,
        "has" | "is" => return Err(bad()),
        _ => return Ok(false),
    }
    Ok(true)
}

/// A date (midnight UTC) or an RFC 3339 instant.
pub fn instant(value: &str) -> Option<Timestamp> {
    let at = match time::Date::parse(value, format_description!("[year]-[month]-[day]")) {
        Ok(date) => date.midnight().assume_utc(),
        Err(_) => OffsetDateTime::parse(value, &Rfc3339).ok()?,
    };
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok().map(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_phrases_and_operators() {
        let q = parse(r#"hel "big  deal" from:@alice in:#3 wor has:file is:thread"#).unwrap();
        assert_eq!(q.words, ["hel", "wor"]);
        assert_eq!(q.phrases, ["big deal"]);
        assert_eq!(q.from.as_ref().map(UserId::as_str), Some("alice"));
        assert_eq!(q.in_chat, Some(ChatNumber(3)));
        assert!(q.has_file && q.is_thread);
    }

    #[test]
    fn dates_and_instants() {
        let q = parse("x after:2026-01-31 before:2026-02-01T12:00:00Z").unwrap();
        assert_eq!(q.after, Some(Timestamp(1_769_817_600_000)));
        assert_eq!(q.before, Some(Timestamp(1_769_947_200_000)));
        assert_eq!(parse("x after:yesterday"), Err(QueryError::BadValue("after:yesterday".into())));
    }

    #[test]
    fn urls_times_and_unknown_names_are_text() {
        let q = parse("https://example.com/a?b=c 10:30 foo:bar").unwrap();
        assert_eq!(q.words, ["https://example.com/a?b=c", "10:30", "foo:bar"]);
    }

    #[test]
    fn empty_long_and_bad_queries_are_refused() {
        assert_eq!(parse("   "), Err(QueryError::Empty));
        assert_eq!(parse(r#""""#), Err(QueryError::Empty));
        assert_eq!(parse(&"a".repeat(MAX_QUERY_CHARS + 1)), Err(QueryError::TooLong));
        assert!(parse(&"a".repeat(MAX_QUERY_CHARS)).is_ok());
        assert_eq!(parse("in:abc"), Err(QueryError::BadValue("in:abc".into())));
        assert_eq!(parse("has:cake"), Err(QueryError::BadValue("has:cake".into())));
        // Filters alone are a query.
        assert!(parse("from:alice").unwrap().has_no_text());
    }

    #[test]
    fn an_unclosed_quote_runs_to_the_end() {
        assert_eq!(parse(r#"a "b c"#).unwrap().phrases, ["b c"]);
    }
}
