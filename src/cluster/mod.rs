//! The cluster: membership (chitchat gossip), the directory of who is
//! connected where (Redis), the node-to-node transport (QUIC with mutual TLS
//! from a cluster CA), and what nodes tell each other (the wire).

mod asks;
pub mod directory;
pub mod fabric;
pub mod member;
pub mod membership;
pub mod node;
mod resync;
pub mod tls;
pub mod transport;
pub mod wire;
