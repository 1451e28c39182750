//! What a node publishes about itself in gossip, and how peers read it back.
//!
//! Every gossip key is a constant in [`keys`]; [`NodeStateExt`] is the one place
//! that parses their values, and [`Member::from_gossip`] the one place that turns
//! a chitchat node state into a [`Member`].

use std::net::SocketAddr;
use std::str::FromStr;

use chitchat::{ChitchatId, NodeState};
use serde::Serialize;

/// The gossip keys a node publishes. Values are the `Display` forms of their types.
pub mod keys {
    /// `SocketAddr`: where peers open QUIC connections to this node. Set at join.
    pub const QUIC_ADDR: &str = "quic_addr";
    /// `SocketAddr`: where this node serves HTTP and WebSocket clients. Set at join.
    pub const HTTP_ADDR: &str = "http_addr";
    /// `u64`: client sessions open on this node, republished by a timer.
    pub const CONNECTIONS: &str = "connections";
    /// `bool`: the node accepts new clients.
    pub const READY: &str = "ready";
    /// `bool`: the node is closing its sessions before it stops.
    pub const DRAINING: &str = "draining";
    /// `bool`: the node has left; peers drop it at once instead of waiting for the
    /// failure detector.
    pub const LEFT: &str = "left";
}

/// What a node announces when it joins: its identity and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Unique in the cluster and stable across restarts of the same node.
    pub node_id: String,
    /// Where peers open QUIC connections to this node.
    pub quic_addr: SocketAddr,
    /// Where this node serves HTTP and WebSocket clients.
    pub http_addr: SocketAddr,
}

/// One live node of the cluster, as the local node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The node's configured id.
    pub node_id: String,
    /// The node's start time in ms since the Unix epoch: a restart supersedes the old generation.
    pub generation: u64,
    /// Where peers open QUIC connections to the node.
    #[schema(value_type = String, example = "10.0.0.7:7001")]
    pub quic_addr: SocketAddr,
    /// Where the node serves HTTP and WebSocket clients.
    #[schema(value_type = String, example = "10.0.0.7:8080")]
    pub http_addr: SocketAddr,
    /// Client sessions open on the node, as last published.
    pub connections: u64,
    /// The node accepts new clients.
    pub ready: bool,
    /// The node is closing its sessions before it stops.
    pub draining: bool,
    /// This entry is the local node.
    pub is_self: bool,
}

impl Member {
    /// The state a node starts with, before it publishes anything else.
    pub(crate) fn joining(info: &NodeInfo, generation: u64) -> Member {
        Member {
            node_id: info.node_id.clone(),
            generation,
            quic_addr: info.quic_addr,
            http_addr: info.http_addr,
            connections: 0,
            ready: false,
            draining: false,
            is_self: true,
        }
    }

    /// The key-values a node publishes at join; they mirror [`Member::joining`].
    pub(crate) fn initial_key_values(&self) -> Vec<(String, String)> {
        [
            (keys::QUIC_ADDR, self.quic_addr.to_string()),
            (keys::HTTP_ADDR, self.http_addr.to_string()),
            (keys::CONNECTIONS, self.connections.to_string()),
            (keys::READY, self.ready.to_string()),
            (keys::DRAINING, self.draining.to_string()),
            (keys::LEFT, false.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }

    /// Reads a member from the node state chitchat holds for `id`.
    ///
    /// The addresses are required; the mutable fields default to a node that has just
    /// joined, since a partial delta may bring a node's keys over several rounds.
    pub fn from_gossip(
        id: &ChitchatId,
        state: &NodeState,
        is_self: bool,
    ) -> Result<Member, GossipValueError> {
        Ok(Member {
            node_id: id.node_id.to_string(),
            generation: id.generation_id,
            quic_addr: state.quic_addr()?,
            http_addr: state.http_addr()?,
            connections: state.connections()?,
            ready: state.is_ready()?,
            draining: state.is_draining()?,
            is_self,
        })
    }
}

/// A gossiped value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GossipValueError {
    /// The node has not published the key (yet).
    #[error("gossip key `{key}` is missing")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// The value does not parse as the key's type.
    #[error("gossip key `{key}` has an unreadable value `{value}`")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value as gossiped.
        value: String,
        /// Why it does not parse.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Typed access to the keys in [`keys`], on chitchat's per-node state.
pub trait NodeStateExt {
    /// [`keys::QUIC_ADDR`]; required.
    fn quic_addr(&self) -> Result<SocketAddr, GossipValueError>;
    /// [`keys::HTTP_ADDR`]; required.
    fn http_addr(&self) -> Result<SocketAddr, GossipValueError>;
    /// [`keys::CONNECTIONS`]; 0 when absent.
    fn connections(&self) -> Result<u64, GossipValueError>;
    /// [`keys::READY`]; false when absent.
    fn is_ready(&self) -> Result<bool, GossipValueError>;
    /// [`keys::DRAINING`]; false when absent.
    fn is_draining(&self) -> Result<bool, GossipValueError>;
    /// [`keys::LEFT`]; false when absent.
    fn has_left(&self) -> Result<bool, GossipValueError>;
}

impl NodeStateExt for NodeState {
    fn quic_addr(&self) -> Result<SocketAddr, GossipValueError> {
        parse(self, keys::QUIC_ADDR)?.ok_or(GossipValueError::Missing { key: keys::QUIC_ADDR })
    }

    fn http_addr(&self) -> Result<SocketAddr, GossipValueError> {
        parse(self, keys::HTTP_ADDR)?.ok_or(GossipValueError::Missing { key: keys::HTTP_ADDR })
    }

    fn connections(&self) -> Result<u64, GossipValueError> {
        Ok(parse(self, keys::CONNECTIONS)?.unwrap_or(0))
    }

    fn is_ready(&self) -> Result<bool, GossipValueError> {
        Ok(parse(self, keys::READY)?.unwrap_or(false))
    }

    fn is_draining(&self) -> Result<bool, GossipValueError> {
        Ok(parse(self, keys::DRAINING)?.unwrap_or(false))
    }

    fn has_left(&self) -> Result<bool, GossipValueError> {
        Ok(parse(self, keys::LEFT)?.unwrap_or(false))
    }
}

fn parse<T>(state: &NodeState, key: &'static str) -> Result<Option<T>, GossipValueError>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let Some(value) = state.get(key) else {
        return Ok(None);
    };
    value.parse().map(Some).map_err(|source| GossipValueError::Invalid {
        key,
        value: value.to_string(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> NodeInfo {
        NodeInfo {
            node_id: "node-a".into(),
            quic_addr: "10.0.0.1:7000".parse().unwrap(),
            http_addr: "10.0.0.1:8080".parse().unwrap(),
        }
    }

    fn state_with(kvs: &[(String, String)]) -> NodeState {
        let mut state = NodeState::for_test();
        for (key, value) in kvs {
            state.set(key, value);
        }
        state
    }

    #[test]
    fn a_joining_member_reads_back_from_its_initial_key_values() {
        let joining = Member::joining(&info(), 42);
        let state = state_with(&joining.initial_key_values());
        let id = ChitchatId::new("node-a", 42, "10.0.0.1:7946".parse().unwrap());
        assert_eq!(Member::from_gossip(&id, &state, true).unwrap(), joining);
        assert!(!state.has_left().unwrap());
    }

    #[test]
    fn mutable_fields_default_and_addresses_are_required() {
        let id = ChitchatId::new("node-a", 1, "10.0.0.1:7946".parse().unwrap());
        let state = state_with(&[(keys::QUIC_ADDR.into(), "10.0.0.1:7000".into())]);
        let err = Member::from_gossip(&id, &state, false).unwrap_err();
        assert!(matches!(err, GossipValueError::Missing { key: keys::HTTP_ADDR }), "{err}");

        let mut state = state;
        state.set(keys::HTTP_ADDR, "10.0.0.1:8080");
        let member = Member::from_gossip(&id, &state, false).unwrap();
        assert_eq!((member.connections, member.ready, member.draining), (0, false, false));
    }

    #[test]
    fn an_unreadable_value_names_its_key_and_keeps_its_cause() {
        let state = state_with(&[(keys::CONNECTIONS.into(), "many".into())]);
        let err = state.connections().unwrap_err();
        assert_eq!(err.to_string(), "gossip key `connections` has an unreadable value `many`");
        assert!(std::error::Error::source(&err).is_some());
    }
}
