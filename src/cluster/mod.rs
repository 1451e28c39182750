//! Cluster membership: which nodes are live and how to reach them.

pub mod member;
pub mod membership;
