//! Every REST error, and its one mapping to HTTP: a status and a stable code.
//!
//! The body is always `{"error":{"code":"…","message":"…"}}`.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::TokenError;
use crate::chat::ChatError;
use crate::sequence::SequenceError;
use crate::store::{StoreError, WriteError};

/// A request that failed, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON (or form data).
    #[error("the request body is not valid {0}")]
    Malformed(&'static str),
    /// The body's content type is not JSON or form data.
    #[error("content type must be application/json or application/x-www-form-urlencoded")]
    UnsupportedContentType,
    /// A field is missing, empty or of the wrong type.
    #[error("{0}")]
    InvalidField(String),
    /// A query parameter is invalid.
    #[error("{0}")]
    InvalidParameter(String),
    /// No credentials where some are required.
    #[error("missing credentials: send Authorization: Bearer <admin key>")]
    Unauthorized,
    /// A user token that is forged, expired or for no application.
    #[error("{0}")]
    InvalidToken(String),
    /// Credentials that do not match.
    #[error("the credentials are not valid")]
    Forbidden,
    /// Something named by the request does not exist.
    #[error("{}", .0.replace('_', " "))]
    NotFound(&'static str),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// An `Idempotency-Key` sent again with a different message.
    #[error("this Idempotency-Key was used for a different message (chat, body or reply_to)")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still being committed.
    #[error("the first request with this Idempotency-Key is still being committed; retry")]
    InFlight,
    /// A backing service is unreachable; retry later.
    #[error("{0} is unavailable, retry later")]
    Unavailable(&'static str),
    /// The node is shutting down: go to another node.
    #[error("the node is draining; connect to another node")]
    Draining,
    /// A bug or corrupt data; logged where it happens.
    #[error("internal error")]
    Internal,
}

/// What is unavailable when an application's JWKS cannot be fetched.
const IDENTITY_PROVIDER: &str = "the application's identity provider";

impl ApiError {
    /// The HTTP status and the stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Malformed("JSON") => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_body"),
            ApiError::UnsupportedContentType => (StatusCode::BAD_REQUEST, "unsupported_content_type"),
            ApiError::InvalidField(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            ApiError::InvalidParameter(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_parameter"),
            ApiError::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            ApiError::InFlight => (StatusCode::SERVICE_UNAVAILABLE, "in_flight"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unavailable("redis") => (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable"),
            ApiError::Draining => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
            ApiError::Unavailable(IDENTITY_PROVIDER) => {
                (StatusCode::SERVICE_UNAVAILABLE, "identity_provider_unavailable")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        if let ApiError::InFlight = self {
            // The first request commits within a store timeout; one second is a polite first retry.
            return (status, [(header::RETRY_AFTER, "1")], Json(body)).into_response();
        }
        (status, Json(body)).into_response()
    }
}

fn from_store(e: &StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) | StoreError::Embedded(_) => {
            tracing::warn!(error = %e, "store call failed");
            ApiError::Unavailable("the store")
        }
        StoreError::Corrupt { .. } | StoreError::SchemaOutdated { .. } => {
            tracing::error!(error = %e, "store returned unusable data");
            ApiError::Internal
        }
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::ApplicationNotFound => ApiError::NotFound("application_not_found"),
            ChatError::ChatNotFound => ApiError::NotFound("chat_not_found"),
            ChatError::MessageNotFound => ApiError::NotFound("message_not_found"),
            ChatError::NotAMember => ApiError::NotFound("member_not_found"),
            ChatError::Invalid(reason) => ApiError::InvalidField(reason.to_owned()),
            ChatError::InFlight => ApiError::InFlight,
            ChatError::KeyReused => ApiError::IdempotencyKeyReused,
            ChatError::Token(TokenError::Sign(e)) => {
                tracing::error!(error = %e, "cannot sign a user token");
                ApiError::Internal
            }
            ChatError::Token(TokenError::KeysUnavailable(e)) => {
                tracing::warn!(error = %e, "cannot fetch an identity provider's keys");
                ApiError::Unavailable(IDENTITY_PROVIDER)
            }
            ChatError::Token(e) => ApiError::InvalidToken(e.to_string()),
            ChatError::Store(e) | ChatError::Sequence(SequenceError::Store(e)) => from_store(&e),
            ChatError::Sequence(SequenceError::Redis(e)) => {
                tracing::warn!(error = %e, "redis call failed");
                ApiError::Unavailable("redis")
            }
            ChatError::Write(WriteError::Store(e)) => from_store(&e),
            ChatError::Write(WriteError::Closed) => ApiError::Unavailable("the node (shutting down)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_still_committing_is_503_in_flight_with_retry_after() {
        let response = ApiError::from(ChatError::InFlight).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(ApiError::InFlight.status_and_code().1, "in_flight");
        let reused = ApiError::from(ChatError::KeyReused).status_and_code();
        assert_eq!(reused, (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    }
}
