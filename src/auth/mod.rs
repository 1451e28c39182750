//! Credentials: the operator's admin key and the user tokens (JWTs) that
//! applications mint for their users.

mod admin;
pub mod egress;
pub mod jwks;
mod user_token;

pub use admin::{AdminKey, AuthError, bearer};
pub use jwks::{JwksConfig, JwksVerifier};
pub use user_token::{SigningSecret, TokenError, Unverified, UserClaims, claimed_app, inspect, mint, verify};
