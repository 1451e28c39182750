//! What a send or the setup can come to.

use std::time::Duration;

/// Why a push was not accepted by its provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The provider says the token or subscription is dead or malformed (or
    /// it is one this server would not accept): the caller removes the device.
    #[error("the device's push token is no longer valid")]
    InvalidToken,
    /// A passing failure (5xx, 429, a timeout, a connection error, the OAuth
    /// token endpoint down): send again later, not before `after` when the
    /// provider said how long to wait.
    #[error("push failed, try again later: {reason}")]
    Retry {
        /// How long the provider asked to wait (`Retry-After`), at most an hour.
        after: Option<Duration>,
        /// What failed (a status and error code, never a token or the message).
        reason: String,
    },
    /// The provider refused the push for a reason retrying will not fix and
    /// that is not about the token (a bad request, refused credentials).
    #[error("push rejected: {0}")]
    Rejected(String),
    /// The provider is off on this server.
    #[error("this push provider is not configured")]
    NotConfigured,
}

/// Why the push settings cannot be used (names the setting, never prints a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushConfigError {
    /// `fcm_credentials` is not a usable service-account key.
    #[error("push.fcm_credentials: {0}")]
    FcmCredentials(String),
    /// `fcm_base_url` is not an http(s) URL.
    #[error("push.fcm_base_url must be an http(s) URL")]
    FcmBaseUrl,
    /// `vapid_private_key` is not a P-256 private key in the expected form.
    #[error("push.vapid_private_key: {0}")]
    VapidKey(String),
    /// `vapid_subject` is missing or not a `mailto:`/`https:` URI.
    #[error("push.vapid_subject: {0}")]
    VapidSubject(String),
    /// Another setting is out of range.
    #[error("push.{0}")]
    Setting(String),
    /// The HTTP client could not be built.
    #[error("push: cannot build the HTTP client: {0}")]
    Client(String),
}
