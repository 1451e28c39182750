//! Running as one of many nodes.
//!
//! - [`tls`]: the cluster CA and each node's certificate (mutual TLS between nodes);
//! - [`transport`]: length-prefixed frames to and from peer nodes over QUIC.

pub mod tls;
pub mod transport;
