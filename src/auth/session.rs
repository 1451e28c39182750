//! Sessions: what a refresh token belongs to, and how a presented refresh
//! token is judged.
//!
//! A session is created by the application's backend for one user (and
//! device). It hands out pairs: a short access JWT carrying the session's id
//! (`sid`) and generation (`gen`), and an opaque refresh token
//! `<session id>.<256 random bits>`. Only the SHA-256 of a refresh token is
//! stored: the token is high-entropy random, so a fast hash is enough (no
//! password KDF), and a stolen store yields no usable token. Hashes are
//! compared in constant time.
//!
//! Rotation (see [`judge`]): presenting the current refresh token gives a new
//! pair; the one before stays known as *superseded* until the new pair is
//! used (its refresh token presented or its access token accepted), so a
//! client that lost the answer, or two racing refreshes, get a plain refusal.
//! Presenting any older token (or the superseded one after the new pair was
//! used) is reuse: the token was stolen or replayed, and the whole session is
//! revoked.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::{AppId, Timestamp, UserId, random_url_safe};

/// How many superseded refresh-token hashes a session keeps for reuse
/// detection: a token older than that is merely unknown.
pub const KEPT_HASHES: usize = 32;

/// A session's id: 128 random bits, URL-safe (a path segment as it is).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^[A-Za-z0-9_-]{22}$")]
pub struct AuthSessionId(String);

/// Why a string is not a valid [`AuthSessionId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a session id is 22 characters of letters, digits, _ and -")]
pub struct InvalidSessionId;

impl AuthSessionId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(random_url_safe(16))
    }

    /// Validates an id a client sent.
    pub fn parse(raw: &str) -> Result<Self, InvalidSessionId> {
        let ok =
            raw.len() == 22 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if ok { Ok(Self(raw.to_owned())) } else { Err(InvalidSessionId) }
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

impl std::fmt::Display for AuthSessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AuthSessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The SHA-256 of a refresh token.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

impl TokenHash {
    /// Constant-time equality.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Reads a hash back from 32 stored bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }
}

/// An opaque refresh token, as handed to the client; never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

impl RefreshToken {
    /// A fresh token of `session`.
    pub fn generate(session: &AuthSessionId) -> Self {
        Self(format!("{}.{}", session.as_str(), random_url_safe(32)))
    }

    /// Wraps a token a client presented.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The token as handed to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The session the token names (unchecked until its hash matches).
    pub fn session(&self) -> Option<AuthSessionId> {
        let (id, secret) = self.0.split_once('.')?;
        if secret.is_empty() {
            return None;
        }
        AuthSessionId::parse(id).ok()
    }

    /// What the store keeps of it.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// A session as stored: who, from where, and its refresh-token state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSession {
    /// Its id (the `sid` claim of its access tokens).
    pub id: AuthSessionId,
    /// The application.
    pub app: AppId,
    /// The user.
    pub user: UserId,
    /// The device the backend named, if any.
    pub device: Option<String>,
    /// The client's address when last seen, if known.
    pub ip: Option<String>,
    /// The client's `User-Agent` when last seen, if known.
    pub user_agent: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When a token of it was last used (created, refreshed, connected).
    pub last_seen_at: Timestamp,
    /// When its current refresh token stops working (each rotation moves it).
    pub expires_at: Timestamp,
    /// Pairs handed out so far (the `gen` claim of the newest access token).
    pub generation: u64,
    /// The hash of the current refresh token.
    pub refresh_hash: TokenHash,
    /// Hashes of earlier refresh tokens, newest first, at most [`KEPT_HASHES`].
    pub rotated: Vec<TokenHash>,
    /// The current pair has been used (the newest superseded token is now reuse).
    pub confirmed: bool,
    /// Bumped by every write: writes are conditional on it, so two never interleave.
    pub version: u64,
}

/// What a presented refresh token is to its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The current token: rotate.
    Current,
    /// The token just superseded, before the new pair was used: refuse, but
    /// keep the session (a lost answer or a concurrent refresh).
    Superseded,
    /// An earlier token, used again: revoke the session.
    Reused,
    /// Not a token of this session, or past its expiry: refuse.
    Unknown,
}

/// Judges `presented` against `session` at `now`.
pub fn judge(session: &AuthSession, presented: &TokenHash, now: Timestamp) -> Verdict {
    let current = session.refresh_hash.ct_eq(presented);
    let superseded_at = session.rotated.iter().position(|h| h.ct_eq(presented));
    match (current, superseded_at) {
        (true, _) if now <= session.expires_at => Verdict::Current,
        (true, _) => Verdict::Unknown,
        (false, Some(0)) if !session.confirmed => Verdict::Superseded,
        (false, Some(_)) => Verdict::Reused,
        (false, None) => Verdict::Unknown,
    }
}

impl AuthSession {
    /// The session after a rotation to `next` at `now`, valid `ttl_ms` from then.
    pub fn rotated_to(&self, next: &RefreshToken, now: Timestamp, ttl_ms: i64) -> Self {
        let mut rotated = Vec::with_capacity(KEPT_HASHES);
        rotated.push(self.refresh_hash);
        rotated.extend(self.rotated.iter().take(KEPT_HASHES - 1).copied());
        Self {
            generation: self.generation + 1,
            refresh_hash: next.hash(),
            rotated,
            confirmed: false,
            last_seen_at: now,
            expires_at: Timestamp(now.millis().saturating_add(ttl_ms)),
            version: self.version + 1,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(token: &RefreshToken) -> AuthSession {
        let now = Timestamp::now();
        AuthSession {
            id: token.session().unwrap(),
            app: AppId::generate(),
            user: UserId::parse("alice").unwrap(),
            device: None,
            ip: None,
            user_agent: None,
            created_at: now,
            last_seen_at: now,
            expires_at: Timestamp(now.millis() + 60_000),
            generation: 1,
            refresh_hash: token.hash(),
            rotated: Vec::new(),
            confirmed: false,
            version: 1,
        }
    }

    #[test]
    fn tokens_name_their_session_and_hash_stably() {
        let id = AuthSessionId::generate();
        let token = RefreshToken::generate(&id);
        assert_eq!(token.session(), Some(id));
        assert!(token.hash().ct_eq(&RefreshToken::new(token.expose()).hash()));
        assert!(!token.hash().ct_eq(&RefreshToken::generate(&AuthSessionId::generate()).hash()));
        assert_eq!(RefreshToken::new("nope").session(), None);
        assert_eq!(RefreshToken::new(format!("{}.", AuthSessionId::generate())).session(), None);
        assert_eq!(format!("{token:?}"), "RefreshToken(<redacted>)");
    }

    #[test]
    fn rotation_supersedes_then_reuse_is_detected() {
        let first = RefreshToken::generate(&AuthSessionId::generate());
        let s1 = session(&first);
        let now = Timestamp::now();
        assert_eq!(judge(&s1, &first.hash(), now), Verdict::Current);
        let second = RefreshToken::generate(&s1.id);
        let s2 = s1.rotated_to(&second, now, 60_000);
        assert_eq!((s2.generation, s2.version), (2, 2));
        assert_eq!(judge(&s2, &second.hash(), now), Verdict::Current);
        // Before the new pair is used: a retry or a race, refused without revoking.
        assert_eq!(judge(&s2, &first.hash(), now), Verdict::Superseded);
        let used = AuthSession { confirmed: true, ..s2.clone() };
        assert_eq!(judge(&used, &first.hash(), now), Verdict::Reused);
        let third = RefreshToken::generate(&s1.id);
        let s3 = s2.rotated_to(&third, now, 60_000);
        assert_eq!(judge(&s3, &first.hash(), now), Verdict::Reused);
        assert_eq!(judge(&s3, &second.hash(), now), Verdict::Superseded);
        let stranger = RefreshToken::generate(&s1.id);
        assert_eq!(judge(&s3, &stranger.hash(), now), Verdict::Unknown);
        let late = Timestamp(s3.expires_at.millis() + 1);
        assert_eq!(judge(&s3, &third.hash(), late), Verdict::Unknown);
    }

    #[test]
    fn only_so_many_hashes_are_kept() {
        let id = AuthSessionId::generate();
        let mut s = session(&RefreshToken::generate(&id));
        for _ in 0..(KEPT_HASHES + 5) {
            s = s.rotated_to(&RefreshToken::generate(&id), Timestamp::now(), 60_000);
        }
        assert_eq!(s.rotated.len(), KEPT_HASHES);
    }
}
