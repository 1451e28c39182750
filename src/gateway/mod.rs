//! WebSocket sessions: authenticate, then one loop per socket.
//!
//! - `session`: the upgrade and the session's loop (socket, outbox, heartbeat, limits);
//! - `handlers`: what each client frame does;
//! - `catch_up`: `hello`, streamed a frame at a time;
//! - `pipeline`: a session's sends between their number and their ack;
//! - `lines`: batched frames, several in one WebSocket frame for a client that asks;
//! - `caps`: the per-user and per-application session caps;
//! - `expiry`: when the session's token expires, and its `token_expiring` notice;
//! - `state`: what every session shares ([`GatewayState`]);
//! - `limits`: per-user rate limits shared by a user's sessions;
//! - `budget`: each session's frame budget, and the strikes of a client that
//!   does not wait as `rate_limited` told it.
//!
//! The frames themselves are `crate::protocol`; delivery to sessions is
//! `crate::delivery`.

mod budget;
mod caps;
mod catch_up;
mod config;
mod expiry;
mod handlers;
mod limits;
mod lines;
mod pipeline;
mod reads;
mod session;
mod state;

pub use config::GatewayConfig;
#[cfg(test)]
pub(crate) use handlers::error_frame;
pub use limits::Limits;
pub use session::routes;
pub use state::{GatewayParts, GatewayState};
