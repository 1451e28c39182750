//! The admin key that guards application creation.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

/// The operator's key; `Debug` never shows it.
#[derive(Clone)]
pub struct AdminKey(String);

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

/// Why a request's credentials were refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …` header.
    #[error("missing credentials")]
    Missing,
    /// A key that does not match.
    #[error("invalid credentials")]
    Invalid,
}

impl AdminKey {
    /// Wraps the configured key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Checks the request's bearer token against the key, in constant time.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let presented = bearer(headers).ok_or(AuthError::Missing)?;
        if bool::from(presented.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn checks_bearer_tokens() {
        let key = AdminKey::new("s3cret");
        assert_eq!(key.check(&HeaderMap::new()), Err(AuthError::Missing));
        assert_eq!(key.check(&headers("Basic s3cret")), Err(AuthError::Missing));
        assert_eq!(key.check(&headers("Bearer nope")), Err(AuthError::Invalid));
        assert_eq!(key.check(&headers("Bearer s3cret")), Ok(()));
        assert_eq!(key.check(&headers("bearer s3cret")), Ok(()));
        assert_eq!(format!("{key:?}"), "AdminKey(<redacted>)");
    }
}
