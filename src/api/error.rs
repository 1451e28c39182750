//! Every REST error, and its one mapping to HTTP: a status and a stable code.
//!
//! The body is always `{"error":{"code":"…","message":"…"}}`.

use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::chat::{ChatError, ErrorKind, Refusal};

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
    /// A server key (`wk_…`) that is unknown or revoked.
    #[error("the server key is unknown or revoked")]
    InvalidKey,
    /// A server key without the scope the route needs.
    #[error("the server key lacks the `{0}` scope")]
    InsufficientScope(crate::auth::server_key::Scope),
    /// A scope name weft does not know.
    #[error("{0}")]
    InvalidScope(String),
    /// Something named by the request does not exist.
    #[error("{}", .0.replace('_', " "))]
    NotFound(&'static str),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A signed attachment URL that is expired or altered.
    #[error("{0}")]
    SignedUrl(crate::attachments::SignatureError),
    /// An upload whose `Content-Type` is not the one its URL was signed for.
    #[error("the upload's Content-Type must be the declared content_type")]
    ContentTypeMismatch,
    /// The domain refused or failed the request: mapped by `crate::edge`'s one table.
    #[error(transparent)]
    Chat(#[from] ChatError),
}

impl ApiError {
    /// The HTTP status and the stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Malformed("JSON") => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_body"),
            ApiError::UnsupportedContentType => (StatusCode::BAD_REQUEST, "unsupported_content_type"),
            ApiError::InvalidField(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            ApiError::InvalidParameter(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_parameter"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::InvalidKey => (StatusCode::UNAUTHORIZED, "invalid_key"),
            ApiError::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            ApiError::InvalidScope(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_scope"),
            ApiError::InvalidToken(_) => crate::edge::describe(ErrorKind::Forbidden(Refusal::InvalidToken)),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, what),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::SignedUrl(crate::attachments::SignatureError::Expired) => {
                (StatusCode::FORBIDDEN, "url_expired")
            }
            ApiError::SignedUrl(crate::attachments::SignatureError::Invalid) => {
                (StatusCode::FORBIDDEN, "invalid_signature")
            }
            ApiError::ContentTypeMismatch => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type_mismatch"),
            ApiError::Chat(e) => crate::edge::describe(e.kind()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Chat(e) = &self {
            return crate::edge::chat_error_response(e);
        }
        let (status, code) = self.status_and_code();
        match &self {
            ApiError::InsufficientScope(scope) => scope_refusal(*scope, &self.to_string()),
            ApiError::InvalidKey => {
                let mut response = crate::edge::http_error(status, code, &self.to_string());
                let challenge = HeaderValue::from_static("Bearer error=\"invalid_token\"");
                response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
                response
            }
            _ => crate::edge::http_error(status, code, &self.to_string()),
        }
    }
}

/// 403 `insufficient_scope`, with the scope in the error body (`"scope"`) and
/// in `WWW-Authenticate` (RFC 6750).
fn scope_refusal(scope: crate::auth::server_key::Scope, message: &str) -> Response {
    let body = serde_json::json!({
        "error": { "code": "insufficient_scope", "message": message, "scope": scope.as_str() }
    });
    let mut response = (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    let challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{}\"", scope.as_str());
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_still_committing_is_409_in_flight_with_retry_after() {
        let response = ApiError::from(ChatError::InFlight).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let retry = response.headers().get(axum::http::header::RETRY_AFTER).map(|v| v.as_bytes());
        assert_eq!(retry, Some(&b"1"[..]));
        let reused = ApiError::from(ChatError::KeyReused).status_and_code();
        assert_eq!(reused, (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    }
}
