//! WebSocket sessions and their wire protocol.
//!
//! So far: the protocol codec ([`protocol`]), pure and tested without sockets.
//! The session loop, outbox and hub build on it.

pub mod hub;
pub mod protocol;
mod session;

pub use session::{GatewayConfig, ws_handler};
