//! A cluster node's running parts: joining the gossip, serving what peers
//! send, following membership changes, and leaving.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::asks::Asks;
use super::directory::Directory;
use super::fabric::{Applied, ClusterFabric, Peers};
use super::member::NodeInfo;
use super::membership::{Change, Membership, MembershipConfig, MembershipError};
use super::tls::{NodeTls, TlsError, TlsPaths};
use super::transport::{Inbound, Transport, TransportConfig, TransportError};
use super::wire::{Wire, WireAudience};
use crate::chat::ChatService;
use crate::delivery::{Audience, Fabric as _, Hub};
use crate::ids::{AppId, ChatNumber, UserId};
use crate::redis_conn::RedisConn;

/// Frames from peers that may wait to be handled.
const INBOUND_QUEUE: usize = 16_384;

/// `[cluster]`: whether this node is part of a cluster, and as whom.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Join a cluster (needs Redis and a CQL store; see `[gossip]`, `[quic]`, `[tls]`).
    pub enabled: bool,
    /// This node's id, unique in the cluster; empty: `node-<random>`.
    pub node_id: String,
    /// The QUIC address peers reach this node at, when not `quic.listen`.
    pub quic_advertise: Option<SocketAddr>,
    /// The HTTP address shown in the cluster listing, when not `server.listen`.
    pub http_advertise: Option<SocketAddr>,
    /// How long a member's removal waits for every peer to forget the chat's
    /// members before it is answered, in ms (0: do not wait).
    pub removal_wait_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            node_id: String::new(),
            quic_advertise: None,
            http_advertise: None,
            removal_wait_ms: 2_000,
        }
    }
}

/// Why a cluster node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The cluster certificates could not be loaded.
    #[error("cluster tls")]
    Tls(#[from] TlsError),
    /// The QUIC endpoint could not start.
    #[error("cluster transport")]
    Transport(#[from] TransportError),
    /// Gossip could not start.
    #[error("cluster membership")]
    Membership(#[from] MembershipError),
}

/// A cluster node before it serves: its transport is bound, gossip not joined yet.
pub struct Cluster {
    config: ClusterConfig,
    gossip: MembershipConfig,
    transport: Transport,
    directory: Directory,
    peers: Peers,
    applied: Applied,
    asks: Asks,
    inbound: mpsc::Receiver<Inbound>,
}

/// The configured node id, or `node-` and 8 random hex digits made once at start
/// (never the process id, which tells a client what runs where).
pub fn node_id_or_random(configured: &str) -> String {
    if configured.is_empty() { format!("node-{:08x}", rand::random::<u32>()) } else { configured.to_owned() }
}

impl Cluster {
    /// Binds the transport and builds the fabric the chat service delivers through.
    pub fn start(
        config: &ClusterConfig,
        gossip: &MembershipConfig,
        quic: &TransportConfig,
        tls: &TlsPaths,
        redis: (RedisConn, String),
        hub: Hub,
    ) -> Result<(Cluster, ClusterFabric), ClusterError> {
        let mut config = config.clone();
        config.node_id = node_id_or_random(&config.node_id);
        let tls = NodeTls::load(tls)?;
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let transport = Transport::bind(quic, &tls, config.node_id.clone(), tx)?;
        let directory = Directory::new(redis.0, redis.1, config.node_id.clone());
        let peers = Peers::default();
        let applied = Applied::default();
        let removal_wait = Duration::from_millis(config.removal_wait_ms);
        let fabric = ClusterFabric::new(
            hub,
            directory.clone(),
            transport.clone(),
            peers.clone(),
            applied.clone(),
            removal_wait,
        );
        let asks = fabric.asks();
        let cluster =
            Cluster { config, gossip: gossip.clone(), transport, directory, peers, applied, asks, inbound };
        Ok((cluster, fabric))
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Joins the gossip and starts serving peers; runs until `stop` fires.
    pub async fn join(
        self,
        http_addr: SocketAddr,
        chat: ChatService,
        hub: Hub,
        stop: CancellationToken,
    ) -> Result<Joined, ClusterError> {
        let Cluster { config, gossip, transport, directory, peers, applied, asks, inbound } = self;
        let info = NodeInfo {
            node_id: config.node_id.clone(),
            quic_addr: config.quic_advertise.unwrap_or_else(|| transport.local_addr()),
            http_addr: config.http_advertise.unwrap_or(http_addr),
        };
        let membership = Membership::join(&gossip, info).await?;
        membership.set_ready(true).await;
        tracing::info!(node_id = %config.node_id, gossip = %membership.gossip_advertise_addr(), quic = %transport.local_addr(), "joined the cluster");
        let answer = Answer { transport: transport.clone(), peers: peers.clone(), applied, asks };
        tokio::spawn(serve_peers(
            inbound,
            chat.clone(),
            hub.clone(),
            directory.clone(),
            answer,
            stop.clone(),
        ));
        tokio::spawn(follow_membership(
            membership.clone(),
            transport.clone(),
            directory.clone(),
            peers,
            chat.clone(),
            stop.clone(),
        ));
        tokio::spawn(maintain(membership.clone(), directory, hub, stop));
        Ok(Joined { membership, transport })
    }
}

/// A node in the cluster.
pub struct Joined {
    membership: Membership,
    transport: Transport,
}

impl Joined {
    /// A handle to the membership.
    pub fn membership(&self) -> Membership {
        self.membership.clone()
    }

    /// Tells the others this node drains (not ready, no new sessions).
    pub async fn draining(&self) {
        self.membership.set_ready(false).await;
        self.membership.set_draining(true).await;
    }

    /// Leaves the gossip and closes the transport.
    pub async fn leave(self) {
        if let Err(e) = self.membership.leave().await {
            tracing::warn!(error = %e, "leaving the gossip failed");
        }
        self.transport.shutdown().await;
    }
}

/// What a node needs to answer peers' `members` and `sessions_ask` frames and read their answers.
struct Answer {
    transport: Transport,
    peers: Peers,
    applied: Applied,
    asks: Asks,
}

/// Delivers what peers send to this node's sessions.
async fn serve_peers(
    mut inbound: mpsc::Receiver<Inbound>,
    chat: ChatService,
    hub: Hub,
    directory: Directory,
    answer: Answer,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            frame = inbound.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
            () = stop.cancelled() => break,
        };
        // One task delivers every peer's events in turn; a fan-out only
        // stages its frames, the hub's flusher writes them (`delivery::hub`).
        if let Err(reason) = handle(&frame, &chat, &hub, &directory, &answer).await {
            tracing::warn!(peer = %frame.from, reason, "dropped a frame from a peer");
        }
    }
}

async fn handle(
    frame: &Inbound,
    chat: &ChatService,
    hub: &Hub,
    directory: &Directory,
    answer: &Answer,
) -> Result<(), &'static str> {
    let wire = Wire::decode(&frame.frame).ok_or("malformed frame")?;
    match wire {
        Wire::Event { app, event, audience } => {
            let app = AppId::new(app);
            let event = event.into_event(&app).ok_or("invalid id in an event")?;
            let audience = match audience {
                WireAudience::Chat { chat: number, except } => {
                    let number = ChatNumber(number);
                    let members = chat.members_of(&app, number).await.map_err(|_| "cannot read members")?;
                    let except_user = except.and_then(|u| UserId::parse(&u).ok());
                    Audience::Chat { chat: number, members, except_user }
                }
                WireAudience::Users { users } => {
                    Audience::Users(users.iter().filter_map(|u| UserId::parse(u).ok()).collect())
                }
            };
            hub.deliver(&app, &event, &audience, None).await;
        }
        Wire::Members { app, chat: number, user, joined, ack } => {
            let (app, number) = (AppId::new(app), ChatNumber(number));
            chat.forget_members(&app, number);
            // Answered as soon as the cache forgot: the directory below is routing only.
            if let Some(ack) = ack
                && let Some(addr) = answer.peers.get(&frame.from)
            {
                let reply = Bytes::from(Wire::MembersApplied { ack }.encode());
                if let Err(e) = answer.transport.send(&frame.from, addr, reply) {
                    tracing::warn!(peer = %frame.from, error = %e, "cannot confirm a member removal");
                }
            }
            let user = UserId::parse(&user).map_err(|_| "invalid user id")?;
            let routed = if joined {
                directory.joined(&app, number, &user).await
            } else {
                directory.left(&app, number, &user).await
            };
            routed.map_err(|_| "cannot update the directory")?;
        }
        Wire::MembersApplied { ack } => answer.applied.applied(ack, &frame.from),
        Wire::Revoke { app } => {
            let app = AppId::new(app);
            // Forgotten first: a reconnect with an old token must not find the old secret.
            chat.forget_application(&app);
            hub.revoke(&app);
        }
        Wire::RevokeSession { app, user, sid } => {
            let app = AppId::new(app);
            let user = UserId::parse(&user).map_err(|_| "invalid user id")?;
            let sid = crate::auth::AuthSessionId::parse(&sid).map_err(|_| "invalid session id")?;
            // Forgotten first: its tokens are refused here from now on.
            chat.forget_auth_session(&sid);
            hub.close_auth_session(&app, &user, &sid);
        }
        Wire::SessionsAsk { app, user, ask } => {
            let app = AppId::new(app);
            // An id that does not parse has no sessions here: still answered,
            // so the asker does not wait for nothing.
            let sids = match UserId::parse(&user) {
                Ok(user) => hub.auth_sessions(&app, &user).iter().map(|s| s.as_str().to_owned()).collect(),
                Err(_) => Vec::new(),
            };
            let addr = answer.peers.get(&frame.from).ok_or("no address for the asking peer")?;
            let reply = Bytes::from(Wire::SessionsHere { ask, sids }.encode());
            answer
                .transport
                .send(&frame.from, addr, reply)
                .map_err(|_| "cannot answer a sessions question")?;
        }
        Wire::SessionsHere { ask, sids } => answer.asks.answered(ask, &frame.from, sids),
    }
    Ok(())
}

/// Keeps the peer addresses current; purges the directory entries of nodes
/// that died (every survivor does; purging is idempotent), and announces
/// offline the users a dead node held who are on no node now (the survivor
/// whose purge emptied their entry does, so once): a node killed outright
/// never announces them itself, and their watchers would see them online
/// for ever.
async fn follow_membership(
    membership: Membership,
    transport: Transport,
    directory: Directory,
    peers: Peers,
    chat: ChatService,
    stop: CancellationToken,
) {
    let mut changes = membership.changes();
    let me = membership.node_id().to_owned();
    loop {
        let change = tokio::select! {
            change = changes.recv() => match change {
                Some(change) => change,
                None => break,
            },
            () = stop.cancelled() => break,
        };
        match change {
            Change::Added(m) | Change::Updated(m) if m.node_id != me => {
                if peers.get(&m.node_id) != Some(m.quic_addr) {
                    // A new address (a restart): start afresh rather than retry the old one.
                    transport.forget(&m.node_id);
                }
                tracing::info!(peer = %m.node_id, quic = %m.quic_addr, draining = m.draining, "cluster member");
                peers.insert(m.node_id, m.quic_addr);
            }
            Change::Added(_) | Change::Updated(_) => {}
            Change::Removed(node) if node != me => {
                tracing::info!(peer = %node, "cluster member gone");
                peers.remove(&node);
                transport.forget(&node);
                match directory.purge(&node).await {
                    Ok(purged) => {
                        tracing::info!(peer = %node, keys = purged.keys, offline = purged.orphans.len(), "purged a gone node's directory entries");
                        let chat = chat.clone();
                        tokio::spawn(async move {
                            for (app, user) in purged.orphans {
                                if let Err(e) = chat.announce_presence(&app, &user, false).await {
                                    tracing::warn!(error = %e, "cannot announce a gone node's user offline");
                                }
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(peer = %node, error = %e, "cannot purge a gone node's directory entries")
                    }
                }
            }
            Change::Removed(_) => {}
        }
        let members = i64::try_from(membership.snapshot().len()).unwrap_or(i64::MAX);
        crate::metrics::metrics().cluster_members.set(members);
    }
}

/// Every second: publish the connection count; re-register in the directory
/// if Redis lost this node's entries.
async fn maintain(membership: Membership, directory: Directory, hub: Hub, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        membership.set_connections(hub.session_count() as u64).await;
        if let Err(e) = directory.repair().await {
            tracing::debug!(error = %e, "cannot check the directory");
        }
    }
}
