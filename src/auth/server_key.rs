//! Scoped server keys: credentials an application's servers use on the REST
//! API instead of the application token, each limited to a set of scopes.
//!
//! A key is `wk_` followed by 32 random bytes (URL-safe base64); it is shown
//! once, when created, and stored only as its SHA-256 ([`KeyHash`]).

use std::fmt;

use base64::Engine as _;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::{AppId, Timestamp};

/// What a server key may do. The application token holds every scope; a key
/// with [`Scope::Admin`] may do everything the token may.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub enum Scope {
    /// Read chats, their members, presence.
    #[serde(rename = "chats:read")]
    ChatsRead,
    /// Create and change chats.
    #[serde(rename = "chats:write")]
    ChatsWrite,
    /// Read messages, their versions, replies, reactions, read states; search.
    #[serde(rename = "messages:read")]
    MessagesRead,
    /// Post, edit, delete and react to messages; request attachment uploads.
    #[serde(rename = "messages:write")]
    MessagesWrite,
    /// Add, change and remove chat members.
    #[serde(rename = "members:write")]
    MembersWrite,
    /// Mint user tokens and manage users' sessions.
    #[serde(rename = "users:tokens")]
    UsersTokens,
    /// Manage webhooks and their deliveries.
    #[serde(rename = "webhooks")]
    Webhooks,
    /// Everything, the application's settings, secret and keys included.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in the order of the documentation.
    pub const ALL: [Scope; 8] = [
        Scope::ChatsRead,
        Scope::ChatsWrite,
        Scope::MessagesRead,
        Scope::MessagesWrite,
        Scope::MembersWrite,
        Scope::UsersTokens,
        Scope::Webhooks,
        Scope::Admin,
    ];

    /// The scope's wire name, e.g. `messages:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ChatsRead => "chats:read",
            Scope::ChatsWrite => "chats:write",
            Scope::MessagesRead => "messages:read",
            Scope::MessagesWrite => "messages:write",
            Scope::MembersWrite => "members:write",
            Scope::UsersTokens => "users:tokens",
            Scope::Webhooks => "webhooks",
            Scope::Admin => "admin",
        }
    }

    /// The scope of a wire name; none for a name weft does not know.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes a credential grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// Every scope: what the application token grants.
    pub fn all() -> Self {
        Self(vec![Scope::Admin])
    }

    /// The given scopes, sorted and without repeats.
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }

    /// Whether `scope` is granted (`admin` grants every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        self.0.iter().any(|s| *s == scope || *s == Scope::Admin)
    }

    /// The scopes, sorted.
    pub fn list(&self) -> &[Scope] {
        &self.0
    }
}

/// The public id of a server key (not a secret: shown in lists and logs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// A fresh random id (72 bits).
    pub fn generate() -> Self {
        Self(crate::ids::random_url_safe(9))
    }

    /// Wraps an id from a path or the store.
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The prefix of every server key, so that one found in a log or a
/// repository is recognizable (and told apart from a user token).
pub const KEY_PREFIX: &str = "wk_";

/// A server key as presented by a client; `Debug` never shows it.
pub struct KeySecret(String);

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(<redacted>)")
    }
}

impl KeySecret {
    /// A fresh key: the prefix and 32 random bytes.
    pub fn generate() -> Self {
        let mut buf = [0u8; 32];
        rand::rng().fill_bytes(&mut buf);
        Self(format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)))
    }

    /// A presented bearer token, if it has the shape of a server key.
    pub fn presented(raw: &str) -> Option<Self> {
        raw.starts_with(KEY_PREFIX).then(|| Self(raw.to_owned()))
    }

    /// The key, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps.
    pub fn hash(&self) -> KeyHash {
        KeyHash(hex(&Sha256::digest(self.0.as_bytes())))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a server key, lowercase hex: what the store keeps and looks keys up by.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

impl KeyHash {
    /// Wraps a hash read from the store.
    pub fn from_store(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The hash as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// A server key's record (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerKey {
    /// The application it belongs to.
    pub app: AppId,
    /// Its public id.
    pub id: KeyId,
    /// The SHA-256 of the key.
    pub hash: KeyHash,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub scopes: Scopes,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last used (updated at most once a minute, best effort).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked key authorizes nothing.
    pub revoked_at: Option<Timestamp>,
}

/// How stale `last_used_at` may get before a use writes it again.
pub const LAST_USED_GRANULARITY_MS: i64 = 60_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_admin_grants_all() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("chats"), None);
        assert!(Scopes::all().allows(Scope::Webhooks));
        let some = Scopes::new(vec![Scope::MessagesRead, Scope::ChatsRead, Scope::ChatsRead]);
        assert_eq!(some.list(), [Scope::ChatsRead, Scope::MessagesRead]);
        assert!(some.allows(Scope::ChatsRead) && !some.allows(Scope::MessagesWrite));
    }

    #[test]
    fn keys_are_prefixed_random_and_hashed() {
        let (a, b) = (KeySecret::generate(), KeySecret::generate());
        assert!(a.expose().starts_with("wk_") && a.expose().len() == 3 + 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.hash().as_str().len(), 64);
        assert!(a.hash().ct_eq(&KeySecret::presented(a.expose()).unwrap().hash()));
        assert!(!a.hash().ct_eq(&b.hash()));
        assert!(KeySecret::presented("eyJhbGciOi").is_none());
    }
}
