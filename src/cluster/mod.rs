//! Running as one of many nodes.
//!
//! - [`tls`]: the cluster CA and each node's certificate (mutual TLS between nodes).

pub mod tls;
