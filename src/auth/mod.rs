//! Credentials: the operator's admin key and the user tokens (JWTs) that
//! applications mint for their users.

mod admin;
mod config;
pub mod egress;
pub mod jwks;
pub mod server_key;
pub mod session;
mod user_token;

pub use admin::{AdminKey, AuthError, bearer};
pub use config::SessionsConfig;
pub use jwks::{JwksConfig, JwksVerifier};
pub use session::{AuthSession, AuthSessionId, RefreshToken, TokenHash};
pub use user_token::{
    SessionClaim, SigningSecret, TokenError, Unverified, UserClaims, Verified, claimed_app, inspect, mint,
    mint_for, verify, verify_claims,
};
