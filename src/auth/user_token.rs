//! User tokens: HS256 JWTs signed with the application's secret.
//!
//! Claims: `sub` (user id), `app` (application id), `iat`, `exp`, and for
//! the access token of a session (see `auth::session`) `sid` and `gen`. An
//! application's backend can mint the same token itself with its secret
//! (without `sid`: such a token is checked by its signature and expiry alone).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::ids::{AppId, Timestamp, UserId};

/// An application's signing secret (256 random bits, URL-safe base64); never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        Self(crate::ids::random_url_safe(32))
    }

    /// Wraps a secret read from the store.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The secret as handed to the application (and stored).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &SigningSecret) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// The claims of a user token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserClaims {
    /// The user.
    pub sub: String,
    /// The application's id.
    pub app: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The session the token belongs to (an access token a session handed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Which of the session's pairs it is (with `sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#gen: Option<u64>,
}

/// A session's access token: which session, which pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClaim {
    /// The session.
    pub id: crate::auth::AuthSessionId,
    /// The pair's generation.
    pub generation: u64,
}

/// What a verified HS256 token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The user.
    pub user: UserId,
    /// The session, for an access token a session handed out.
    pub session: Option<SessionClaim>,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, a bad signature, a wrong algorithm or missing claims.
    #[error("the token is not valid")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// Past its `exp`.
    #[error("the token has expired")]
    Expired,
    /// Names an application that does not exist.
    #[error("the token names no known application")]
    UnknownApplication,
    /// Signed for another application.
    #[error("the token belongs to another application")]
    WrongApplication,
    /// `sub` is not a valid user id.
    #[error("the token's user id is not valid")]
    BadSubject,
    /// The session the token belongs to was revoked (or has ended).
    #[error("the token's session was revoked")]
    SessionRevoked,
    /// An in-band `refresh` with a token of another user or session.
    #[error("the token is for another user or session than this connection's")]
    OtherSession,
    /// No key of the identity provider's set has the token's `kid` (or, without
    /// a `kid`, the set does not hold exactly one usable key).
    #[error("no key of the identity provider matches the token")]
    UnknownKey,
    /// The identity provider's keys cannot be fetched and none are cached.
    #[error("cannot fetch the identity provider's keys")]
    KeysUnavailable(#[source] std::sync::Arc<crate::auth::jwks::FetchError>),
    /// Signing failed (should not happen with an HMAC key).
    #[error("cannot sign the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// Mints a token for `user` of `app`, valid for `ttl_seconds` from `now`.
pub fn mint(
    secret: &SigningSecret,
    app: &AppId,
    user: &UserId,
    now: Timestamp,
    ttl_seconds: u64,
) -> Result<(String, Timestamp), TokenError> {
    mint_for(secret, app, user, None, now, ttl_seconds)
}

/// Mints a token for `user` of `app`, of `session` when given, valid for `ttl_seconds` from `now`.
pub fn mint_for(
    secret: &SigningSecret,
    app: &AppId,
    user: &UserId,
    session: Option<&SessionClaim>,
    now: Timestamp,
    ttl_seconds: u64,
) -> Result<(String, Timestamp), TokenError> {
    let iat = now.millis() / 1000;
    let exp = iat.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX));
    let claims = UserClaims {
        sub: user.as_str().to_owned(),
        app: app.as_str().to_owned(),
        iat,
        exp,
        sid: session.map(|s| s.id.as_str().to_owned()),
        r#gen: session.map(|s| s.generation),
    };
    let key = EncodingKey::from_secret(secret.expose().as_bytes());
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(TokenError::Sign)?;
    Ok((token, Timestamp(exp.saturating_mul(1000))))
}

/// What a token says about itself before its signature is checked: only
/// to find the application and which key to check it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unverified {
    /// The application: the `app` claim, else the first `aud`.
    pub app: AppId,
    /// Signed with the application's secret (HS256) rather than its identity provider's keys.
    pub hmac: bool,
    /// The `exp` claim, in seconds since the epoch (trustworthy once the token is verified).
    pub exp: Option<i64>,
}

/// The claims read without verification.
#[derive(Deserialize)]
struct Claimed {
    app: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Reads a token's application and algorithm without checking the signature.
pub fn inspect(token: &str) -> Result<Unverified, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(TokenError::Invalid)?;
    let data = jsonwebtoken::dangerous::insecure_decode::<Claimed>(token).map_err(TokenError::Invalid)?;
    let exp = data.claims.exp;
    let app = match (data.claims.app, data.claims.aud) {
        (Some(app), _) => app,
        (None, Some(Audience::One(aud))) => aud,
        (None, Some(Audience::Many(auds))) => {
            auds.into_iter().next().ok_or(TokenError::UnknownApplication)?
        }
        (None, None) => return Err(TokenError::UnknownApplication),
    };
    Ok(Unverified { app: AppId::new(app), hmac: header.alg == Algorithm::HS256, exp })
}

/// The application id a token claims, read without checking the signature.
pub fn claimed_app(token: &str) -> Result<AppId, TokenError> {
    inspect(token).map(|u| u.app)
}

/// Verifies a token against `app`'s secret; returns its user.
pub fn verify(token: &str, app: &AppId, secret: &SigningSecret) -> Result<UserId, TokenError> {
    verify_claims(token, app, secret).map(|v| v.user)
}

/// Verifies a token against `app`'s secret; returns its user and session.
pub fn verify_claims(token: &str, app: &AppId, secret: &SigningSecret) -> Result<Verified, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    // The same as for identity-provider tokens: a token is refused before its `nbf`.
    validation.leeway = crate::auth::jwks::LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub", "iat"]);
    let key = DecodingKey::from_secret(secret.expose().as_bytes());
    let data = jsonwebtoken::decode::<UserClaims>(token, &key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
        _ => TokenError::Invalid(e),
    })?;
    if data.claims.app.as_bytes().ct_eq(app.as_str().as_bytes()).unwrap_u8() == 0 {
        return Err(TokenError::WrongApplication);
    }
    let user = UserId::parse(&data.claims.sub).map_err(|_| TokenError::BadSubject)?;
    let session = match data.claims.sid {
        None => None,
        Some(sid) => {
            // Signed by the application's secret: a malformed `sid` is a forgery or a bug.
            let id = crate::auth::AuthSessionId::parse(&sid).map_err(|_| TokenError::SessionRevoked)?;
            Some(SessionClaim { id, generation: data.claims.r#gen.unwrap_or(0) })
        }
    };
    Ok(Verified { user, session })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn minted_tokens_verify_for_their_app_only() {
        let (secret, app) = (SigningSecret::generate(), AppId::generate());
        let (token, expires) = mint(&secret, &app, &user("alice"), Timestamp::now(), 3600).unwrap();
        assert!(expires > Timestamp::now());
        assert_eq!(claimed_app(&token).unwrap(), app);
        assert_eq!(verify(&token, &app, &secret).unwrap(), user("alice"));
        assert!(matches!(verify(&token, &AppId::generate(), &secret), Err(TokenError::WrongApplication)));
        assert!(matches!(verify(&token, &app, &SigningSecret::generate()), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn expired_forged_and_garbage_tokens_are_refused() {
        let (secret, app) = (SigningSecret::generate(), AppId::generate());
        let long_ago = Timestamp(Timestamp::now().millis() - 3_600_000);
        let (old, _) = mint(&secret, &app, &user("bob"), long_ago, 60).unwrap();
        assert!(matches!(verify(&old, &app, &secret), Err(TokenError::Expired)));

        // Same claims, unsigned ("alg":"none") or re-signed by someone else.
        let (good, _) = mint(&secret, &app, &user("bob"), Timestamp::now(), 60).unwrap();
        let mut parts: Vec<&str> = good.split('.').collect();
        parts[2] = "";
        assert!(verify(&parts.join("."), &app, &secret).is_err());
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let forged = format!("{none_header}.{}.", good.split('.').nth(1).unwrap());
        assert!(verify(&forged, &app, &secret).is_err());
        assert!(matches!(verify("not a jwt", &app, &secret), Err(TokenError::Invalid(_))));
        assert!(claimed_app("not a jwt").is_err());
    }

    #[test]
    fn tokens_not_yet_valid_are_refused() {
        let (secret, app) = (SigningSecret::generate(), AppId::generate());
        let key = EncodingKey::from_secret(secret.expose().as_bytes());
        let now = Timestamp::now().millis() / 1000;
        let token = |nbf: i64| {
            let claims = serde_json::json!({
                "sub": "carol", "app": app.as_str(), "iat": now, "exp": now + 7200, "nbf": nbf,
            });
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
        };
        let refused = verify(&token(now + 3600), &app, &secret).unwrap_err();
        assert!(
            matches!(&refused, TokenError::Invalid(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ImmatureSignature),
            "{refused:?}"
        );
        // Within the leeway, and in the past: accepted.
        assert_eq!(verify(&token(now + 2), &app, &secret).unwrap(), user("carol"));
        assert_eq!(verify(&token(now - 60), &app, &secret).unwrap(), user("carol"));
    }

    #[test]
    fn secrets_are_random_and_redacted() {
        let a = SigningSecret::generate();
        assert!(!a.ct_eq(&SigningSecret::generate()));
        assert!(a.ct_eq(&a.clone()));
        assert_eq!(a.expose().len(), 43);
        assert_eq!(format!("{a:?}"), "SigningSecret(<redacted>)");
    }
}
