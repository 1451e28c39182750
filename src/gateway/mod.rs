//! WebSocket sessions and their wire protocol.
//!
//! - [`protocol`]: the frames, pure and tested without sockets;
//! - `session`: one loop per socket, its outbox, heartbeat and limits;
//! - `handlers`: what each client frame does;
//! - [`hub`]: the sessions of this node and delivery to them;
//! - [`outbox`]: a session's bounded queue and its cut-off flag;
//! - `presence` and `limits`: per-user state shared by a user's sessions.

mod config;
mod handlers;
pub mod hub;
mod limits;
pub mod outbox;
pub mod presence;
pub mod protocol;
mod session;

pub use config::GatewayConfig;
pub use limits::Limits;
pub use session::ws_handler;
