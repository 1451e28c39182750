//! Credentials: the operator's admin key and the user tokens (JWTs) that
//! applications mint for their users.

mod admin;
mod user_token;

pub use admin::{AdminKey, AuthError, bearer};
pub use user_token::{SigningSecret, TokenError, UserClaims, claimed_app, mint, verify};
