//! Newtypes for the identifiers and values that cross module boundaries.
//!
//! A bare `String` or `u64` says nothing about what it holds; these do, and
//! they keep an application token from being passed where a user id belongs.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Generates `bytes` random bytes encoded as unpadded URL-safe base64.
pub(crate) fn random_url_safe(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The secret token that names an application in the REST API.
///
/// 192 random bits; compared in constant time; never logged (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppToken(String);

impl AppToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        Self(random_url_safe(24))
    }

    /// Wraps a token received from a client or read from the store.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The token as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, for comparing a presented token with a stored one.
    pub fn ct_eq(&self, other: &AppToken) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for AppToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppToken(<redacted>)")
    }
}

/// The internal, stable identifier of an application: the partition key of its data.
///
/// Unlike the token it is not a secret, but the REST API of issue 2 never shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    /// A fresh random id (96 bits).
    pub fn generate() -> Self {
        Self(random_url_safe(12))
    }

    /// Wraps an id read from the store.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! number_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[derive(utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(minimum = 1)]
        pub struct $name(pub u64);

        impl $name {
            /// The number itself.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

number_newtype!(
    /// A chat's number inside its application: 1, 2, 3…
    ChatNumber
);
number_newtype!(
    /// A message's number (sequence) inside its chat: 1, 2, 3…
    MessageNumber
);

/// A user of an application, named by the application (any string of 1–128
/// characters from `[A-Za-z0-9_.@:-]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^[A-Za-z0-9_.@:-]{1,128}$", example = "alice")]
pub struct UserId(String);

/// Why a string is not a valid [`UserId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a user id is 1 to 128 characters of letters, digits and _ . @ : -")]
pub struct InvalidUserId;

impl UserId {
    /// The longest user id accepted.
    pub const MAX_LEN: usize = 128;

    /// Validates and wraps a user id.
    pub fn parse(raw: &str) -> Result<Self, InvalidUserId> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b':' | b'-'));
        if ok { Ok(Self(raw.to_owned())) } else { Err(InvalidUserId) }
    }

    /// Wraps an id read from the store, which only holds validated ids.
    pub fn from_store(raw: String) -> Self {
        Self(raw)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of an attachment: 128 random bits, URL-safe, so it can be part of
/// an object key and a URL as it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^[A-Za-z0-9_-]{22}$")]
pub struct AttachmentId(String);

/// Why a string is not a valid [`AttachmentId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an attachment id is 22 characters of letters, digits, _ and -")]
pub struct InvalidAttachmentId;

impl AttachmentId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(random_url_safe(16))
    }

    /// Validates an id a client sent (the shape [`generate`](Self::generate) makes).
    pub fn parse(raw: &str) -> Result<Self, InvalidAttachmentId> {
        let ok =
            raw.len() == 22 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if ok { Ok(Self(raw.to_owned())) } else { Err(InvalidAttachmentId) }
    }

    /// Wraps an id read from the store, which only holds valid ids.
    pub fn from_store(raw: String) -> Self {
        Self(raw)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AttachmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AttachmentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The id of a webhook endpoint: 128 random bits, URL-safe (a path segment as it is).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^[A-Za-z0-9_-]{22}$")]
pub struct WebhookId(String);

/// Why a string is not a valid [`WebhookId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a webhook id is 22 characters of letters, digits, _ and -")]
pub struct InvalidWebhookId;

impl WebhookId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(random_url_safe(16))
    }

    /// Validates an id a client sent (the shape [`generate`](Self::generate) makes).
    pub fn parse(raw: &str) -> Result<Self, InvalidWebhookId> {
        let ok =
            raw.len() == 22 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if ok { Ok(Self(raw.to_owned())) } else { Err(InvalidWebhookId) }
    }

    /// Wraps an id read from the store or the queue, which only hold valid ids.
    pub fn from_store(raw: String) -> Self {
        Self(raw)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's device, named by the client (1–128 letters, digits and `_ . : -`):
/// registering the same id again replaces its token.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^[A-Za-z0-9_.:-]{1,128}$")]
pub struct DeviceId(String);

/// Why a string is not a valid [`DeviceId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a device id is 1-128 characters of letters, digits and _ . : -")]
pub struct InvalidDeviceId;

impl DeviceId {
    /// Validates an id a client sent.
    pub fn parse(raw: &str) -> Result<Self, InvalidDeviceId> {
        let ok = (1..=128).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok { Ok(Self(raw.to_owned())) } else { Err(InvalidDeviceId) }
    }

    /// Wraps an id read from the store, which only holds valid ids.
    pub fn from_store(raw: String) -> Self {
        Self(raw)
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a count is zero: serde's `skip_serializing_if` for counts left
/// out of JSON while they are 0.
pub fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A point in time, in milliseconds since the Unix epoch (the CQL `timestamp` unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Self(i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-23T14:30:00.123Z`.
    pub fn to_rfc3339(self) -> String {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let at = at.replace_nanosecond(at.millisecond() as u32 * 1_000_000).unwrap_or(at);
        at.format(&Rfc3339).unwrap_or_default()
    }
}

/// On the wire a timestamp is its RFC 3339 text ([`Timestamp::to_rfc3339`]).
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("An instant, RFC 3339 in UTC with millisecond precision"))
            .into()
    }
}

impl utoipa::ToSchema for Timestamp {}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = AppToken::generate();
        let b = AppToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(a.ct_eq(&a.clone()));
        assert!(!a.ct_eq(&b));
        assert_eq!(format!("{a:?}"), "AppToken(<redacted>)");
    }

    #[test]
    fn user_ids_are_validated() {
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("u-1_2:3.4").is_ok());
        assert_eq!(UserId::parse(""), Err(InvalidUserId));
        assert_eq!(UserId::parse("a b"), Err(InvalidUserId));
        assert_eq!(UserId::parse(&"x".repeat(129)), Err(InvalidUserId));
    }

    #[test]
    fn timestamps_render_as_rfc3339_millis() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_700_000_000_123).to_rfc3339(), "2023-11-14T22:13:20.123Z");
    }
}
