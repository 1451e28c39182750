//! The cluster: membership (gossip), the directory of who is connected where
//! (Redis), and the node-to-node transport (QUIC).

pub mod directory;
pub mod wire;
