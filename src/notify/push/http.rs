//! What the senders share about HTTP: the clients, `Retry-After`, and what a
//! failed request means.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{PushConfig, PushConfigError, PushError};
use crate::notify::target::{PrivateAddress, PublicResolver};

/// The longest wait a `Retry-After` is taken at.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The most of a provider's answer that is read (error bodies are small).
const MAX_ANSWER: usize = 64 * 1024;

/// A client for one provider: bounded in time, no redirects (a redirect could
/// lead where the endpoint checks would refuse to go). `public_only` resolves
/// names to public addresses only.
pub(super) fn client(config: &PushConfig, public_only: bool) -> Result<reqwest::Client, PushConfigError> {
    if config.timeout_ms == 0 {
        return Err(PushConfigError::Setting("timeout_ms must be above 0".into()));
    }
    let timeout = Duration::from_millis(config.timeout_ms);
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weft-push/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(60));
    if public_only {
        builder = builder.dns_resolver(Arc::new(PublicResolver));
    }
    builder.build().map_err(|e| PushConfigError::Client(e.to_string()))
}

/// How long the answer asks to wait: `Retry-After` in seconds or as an HTTP
/// date, at most an hour.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let format = time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            );
            let at = time::PrimitiveDateTime::parse(value, &format).ok()?.assume_utc();
            let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds();
            Duration::from_secs(u64::try_from(secs).unwrap_or(0))
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// A provider's passing failure with its status (and error code, when it gave one).
pub(super) fn retry(provider: &str, status: u16, code: Option<&str>, headers: &HeaderMap) -> PushError {
    PushError::Retry { after: retry_after(headers), reason: describe(provider, status, code) }
}

/// `"<provider> answered <status>"`, with the provider's error code.
pub(super) fn describe(provider: &str, status: u16, code: Option<&str>) -> String {
    match code {
        Some(code) => format!("{provider} answered {status} ({code})"),
        None => format!("{provider} answered {status}"),
    }
}

/// A request that got no answer: a timeout or a connection error is passing;
/// a name that resolves only to private addresses is not.
pub(super) fn unanswered(provider: &str, e: &reqwest::Error) -> PushError {
    let private = std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
        .any(|e| e.is::<PrivateAddress>());
    if private {
        return PushError::Rejected(format!("the {provider} endpoint resolves only to private addresses"));
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    PushError::Retry { after: None, reason: format!("{provider}: {what}") }
}

/// The answer's body, at most [`MAX_ANSWER`] bytes of it (the rest is dropped).
pub(super) async fn read_capped(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ANSWER.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER {
            break;
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(retry_after(&headers("30")), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(&headers("999999")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")), Some(Duration::ZERO));
        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let format = time::macros::format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        );
        let wait = retry_after(&headers(&later.format(&format).unwrap())).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120), "{wait:?}");
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
