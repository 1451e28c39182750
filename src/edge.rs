//! What a client is told when the domain refuses or fails a request, on either
//! edge: one table from [`ErrorKind`] to an HTTP status and a stable code. The
//! REST API answers with the status and `{"error":{"code","message"}}`; the
//! WebSocket `error` frame carries the same code. README.md and
//! docs/protocol.md list exactly these codes (checked by a test).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::chat::{ChatError, ErrorKind, Missing, Refusal, Service};

/// The one table: the HTTP status and the stable code of each kind of failure.
pub fn describe(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::NotFound(Missing::Application) => (StatusCode::NOT_FOUND, "application_not_found"),
        ErrorKind::NotFound(Missing::Chat) => (StatusCode::NOT_FOUND, "chat_not_found"),
        ErrorKind::NotFound(Missing::Message) => (StatusCode::NOT_FOUND, "message_not_found"),
        ErrorKind::NotFound(Missing::Member) => (StatusCode::NOT_FOUND, "member_not_found"),
        ErrorKind::NotFound(Missing::Webhook) => (StatusCode::NOT_FOUND, "webhook_not_found"),
        ErrorKind::NotFound(Missing::Device) => (StatusCode::NOT_FOUND, "device_not_found"),
        ErrorKind::NotFound(Missing::Session) => (StatusCode::NOT_FOUND, "session_not_found"),
        ErrorKind::Forbidden(Refusal::NotAMember) => (StatusCode::FORBIDDEN, "not_a_member"),
        ErrorKind::Forbidden(Refusal::InvalidToken) => (StatusCode::UNAUTHORIZED, "invalid_token"),
        ErrorKind::Forbidden(Refusal::InvalidRefreshToken) => {
            (StatusCode::UNAUTHORIZED, "invalid_refresh_token")
        }
        ErrorKind::Forbidden(Refusal::SessionRevoked) => (StatusCode::UNAUTHORIZED, "session_revoked"),
        ErrorKind::Forbidden(Refusal::UserGroupsClosed) => (StatusCode::FORBIDDEN, "user_groups_closed"),
        ErrorKind::Forbidden(Refusal::Permission) => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorKind::Gone => (StatusCode::GONE, "message_deleted"),
        ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        ErrorKind::InvalidAttachment => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_attachment"),
        ErrorKind::KeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        ErrorKind::Unavailable(Service::Store) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        ErrorKind::Unavailable(Service::Redis) => (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable"),
        ErrorKind::Unavailable(Service::IdentityProvider) => {
            (StatusCode::SERVICE_UNAVAILABLE, "identity_provider_unavailable")
        }
        ErrorKind::Unavailable(Service::Node) => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        ErrorKind::Unavailable(Service::Search) => (StatusCode::SERVICE_UNAVAILABLE, "search_unavailable"),
        ErrorKind::Unavailable(Service::Attachments) => {
            (StatusCode::SERVICE_UNAVAILABLE, "attachments_unavailable")
        }
        ErrorKind::InFlight => (StatusCode::CONFLICT, "in_flight"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

/// Every kind, for the tests and docs checks that walk the table.
#[cfg(test)]
pub const KINDS: &[ErrorKind] = &[
    ErrorKind::NotFound(Missing::Application),
    ErrorKind::NotFound(Missing::Chat),
    ErrorKind::NotFound(Missing::Message),
    ErrorKind::NotFound(Missing::Member),
    ErrorKind::NotFound(Missing::Webhook),
    ErrorKind::NotFound(Missing::Device),
    ErrorKind::NotFound(Missing::Session),
    ErrorKind::Forbidden(Refusal::NotAMember),
    ErrorKind::Forbidden(Refusal::InvalidToken),
    ErrorKind::Forbidden(Refusal::InvalidRefreshToken),
    ErrorKind::Forbidden(Refusal::SessionRevoked),
    ErrorKind::Forbidden(Refusal::UserGroupsClosed),
    ErrorKind::Forbidden(Refusal::Permission),
    ErrorKind::Gone,
    ErrorKind::Invalid,
    ErrorKind::InvalidAttachment,
    ErrorKind::KeyReused,
    ErrorKind::Unavailable(Service::Store),
    ErrorKind::Unavailable(Service::Redis),
    ErrorKind::Unavailable(Service::IdentityProvider),
    ErrorKind::Unavailable(Service::Node),
    ErrorKind::Unavailable(Service::Search),
    ErrorKind::Unavailable(Service::Attachments),
    ErrorKind::InFlight,
    ErrorKind::Internal,
];

/// Whether a failure is the client's doing (it counts toward flooding on a
/// WebSocket); a failing service, a request in flight or a bug is not.
pub fn is_client_fault(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound(_)
            | ErrorKind::Forbidden(_)
            | ErrorKind::Invalid
            | ErrorKind::InvalidAttachment
            | ErrorKind::KeyReused
            | ErrorKind::Gone
    )
}

/// The code, status and message a client gets for `e`. Failures an operator
/// must see are logged here, once, with their cause; the client gets no
/// internals.
pub fn explain(e: &ChatError) -> (StatusCode, &'static str, String) {
    let kind = e.kind();
    let (status, code) = describe(kind);
    let message = match kind {
        ErrorKind::Unavailable(Service::Node) => {
            "the node is shutting down; connect to another node".to_owned()
        }
        ErrorKind::Unavailable(service) => {
            let cause = causes(e);
            if service == Service::IdentityProvider {
                // The key-set fetcher warns itself, at a bounded rate (a failing
                // identity provider must not write a line per request).
                tracing::debug!(error = %e, cause, code, "request failed");
            } else {
                tracing::warn!(error = %e, cause, code, "request failed");
            }
            let what = match service {
                Service::Store => "the store",
                Service::Redis => "redis",
                Service::IdentityProvider => "the application's identity provider",
                Service::Node => "the node",
                Service::Search => "search",
                Service::Attachments => "the attachment store",
            };
            if matches!(service, Service::Search | Service::Attachments) {
                format!("{what} is unavailable; retry later")
            } else {
                format!("{what} is unavailable; retry later (a send with the same idempotency key is safe)")
            }
        }
        ErrorKind::Internal => {
            let cause = causes(e);
            tracing::error!(error = %e, cause, "request failed");
            "internal error".to_owned()
        }
        _ => e.to_string(),
    };
    (status, code, message)
}

/// The whole chain of causes under `e` (`commit failed: store unavailable:
/// connection refused`), innermost last: the operator needs the root cause, not
/// the first wrapper. `None` when `e` has no source. Causes are driver and
/// service errors; no request content (bodies, tokens) reaches them.
fn causes(e: &ChatError) -> Option<String> {
    let mut next = std::error::Error::source(e);
    let mut chain: Vec<String> = Vec::new();
    while let Some(cause) = next {
        chain.push(cause.to_string());
        next = cause.source();
    }
    (!chain.is_empty()).then(|| chain.join(": "))
}

/// Every error answer's body, REST or a refused handshake: `{"error":{"code","message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    #[schema(inline)]
    error: ErrorDetail<'a>,
}

/// The error of an [`ErrorBody`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// The stable code, for programs: one per cause (README.md lists them).
    code: &'a str,
    /// What happened, for people: may change between versions.
    message: &'a str,
}

/// A JSON error answer: `{"error":{"code","message"}}` with `status`.
pub fn http_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody { error: ErrorDetail { code, message } };
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::CONFLICT || status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    response
}

/// The answer for a refusal the edge makes itself, of a kind in the table (a
/// missing user token, a draining node): the table's status and code.
pub fn refusal(kind: ErrorKind, message: &str) -> Response {
    let (status, code) = describe(kind);
    http_error(status, code, message)
}

/// The REST answer for a domain failure.
pub fn chat_error_response(e: &ChatError) -> Response {
    let (status, code, message) = explain(e);
    http_error(status, code, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_code() {
        let mut codes: Vec<_> = KINDS.iter().map(|k| describe(*k).1).collect();
        codes.sort_unstable();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n, "a code is shared by two kinds");
        for e in ChatError::examples() {
            assert!(KINDS.contains(&e.kind()), "{e:?} maps to a kind outside KINDS");
        }
    }

    #[test]
    fn the_logged_cause_reaches_the_root() {
        let io = Box::new(std::io::Error::other("connection refused"));
        let e = ChatError::Write(crate::store::WriteError::Store(std::sync::Arc::new(
            crate::store::StoreError::Unavailable(io),
        )));
        assert_eq!(causes(&e).as_deref(), Some("store unavailable: connection refused"));
        assert_eq!(causes(&ChatError::ChatNotFound), None);
    }

    #[test]
    fn readme_and_protocol_list_every_code() {
        let readme = include_str!("../README.md");
        let protocol = include_str!("../docs/protocol.md");
        for kind in KINDS {
            let code = format!("`{}`", describe(*kind).1);
            assert!(readme.contains(&code), "README.md does not list {code}");
            assert!(protocol.contains(&code), "docs/protocol.md does not list {code}");
        }
    }
}
