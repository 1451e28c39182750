//! The fabric of a cluster node: local delivery through the hub, remote
//! delivery through the transport to the nodes the directory names.
//!
//! A message to a chat costs one `SMEMBERS` (the chat's nodes) and one frame
//! per other node with online members, whatever the member count; the
//! receiving node resolves the chat's members from its own cache.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;

use bytes::Bytes;

use super::asks::Asks;
use super::directory::Directory;
use super::resync::Owed;
use super::transport::{SendError, Transport};
use super::wire::Wire;
use crate::delivery::{Audience, Event, Fabric, Hub, SessionId};
use crate::ids::{AppId, ChatNumber, UserId};

/// Chats up to this size are routed by their members' nodes too (still one
/// Redis round trip): a chat created by a send may not be routed yet.
const SMALL_CHAT: usize = 128;

/// How long the session list waits for the peers asked which sessions of a
/// user they hold; a peer silent that long (slow, or dead and not yet
/// declared gone by gossip) counts as holding none.
const ASK_WAIT: Duration = Duration::from_secs(1);

/// The QUIC address of every live peer, kept from the membership.
#[derive(Clone, Default)]
pub struct Peers {
    addrs: Arc<RwLock<HashMap<String, SocketAddr>>>,
}

impl Peers {
    /// Records (or updates) a peer's address.
    pub fn insert(&self, node: String, addr: SocketAddr) {
        self.addrs.write().unwrap_or_else(PoisonError::into_inner).insert(node, addr);
    }

    /// Forgets a peer.
    pub fn remove(&self, node: &str) {
        self.addrs.write().unwrap_or_else(PoisonError::into_inner).remove(node);
    }

    /// A peer's address.
    pub fn get(&self, node: &str) -> Option<SocketAddr> {
        self.addrs.read().unwrap_or_else(PoisonError::into_inner).get(node).copied()
    }

    /// Every peer.
    pub fn all(&self) -> Vec<(String, SocketAddr)> {
        let addrs = self.addrs.read().unwrap_or_else(PoisonError::into_inner);
        addrs.iter().map(|(n, a)| (n.clone(), *a)).collect()
    }
}

/// A removal waiting for the peers to forget the chat's members.
struct Waiting {
    /// The peers that have not answered yet.
    peers: HashSet<String>,
    /// Fired when the last one answers.
    done: Option<oneshot::Sender<()>>,
}

/// Membership changes waiting for every peer's `members_applied`; cheap to clone.
#[derive(Clone, Default)]
pub struct Applied {
    next: Arc<AtomicU64>,
    waiting: Arc<Mutex<HashMap<u64, Waiting>>>,
}

impl Applied {
    /// Starts waiting for `peers`; the number to ask them to answer with.
    fn expect(&self, peers: HashSet<String>) -> (u64, oneshot::Receiver<()>) {
        let ack = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (done, wait) = oneshot::channel();
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.insert(ack, Waiting { peers, done: Some(done) });
        (ack, wait)
    }

    /// `peer` answered `ack`.
    pub fn applied(&self, ack: u64, peer: &str) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = waiting.get_mut(&ack) else { return };
        entry.peers.remove(peer);
        if entry.peers.is_empty() {
            if let Some(done) = entry.done.take() {
                let _ = done.send(());
            }
            waiting.remove(&ack);
        }
    }

    /// Stops waiting for `ack` (answered or timed out).
    fn forget(&self, ack: u64) {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).remove(&ack);
    }
}

/// One node of a cluster.
pub struct ClusterFabric {
    hub: Hub,
    directory: Directory,
    transport: Transport,
    peers: Peers,
    applied: Applied,
    /// `cluster.removal_wait_ms`: how long a removal waits for the peers.
    removal_wait: Duration,
    /// Chats whose live frames to a peer were dropped: owed a resync signal.
    owed: Owed,
    /// Questions to peers about their sessions, waiting for answers.
    asks: Asks,
}

impl ClusterFabric {
    /// A fabric over these parts.
    pub fn new(
        hub: Hub,
        directory: Directory,
        transport: Transport,
        peers: Peers,
        applied: Applied,
        removal_wait: Duration,
    ) -> Self {
        Self {
            hub,
            directory,
            transport,
            peers,
            applied,
            removal_wait,
            owed: Owed::default(),
            asks: Asks::default(),
        }
    }

    /// Where the peers' answers to this fabric's questions go (`cluster::node` hands them in).
    pub(super) fn asks(&self) -> Asks {
        self.asks.clone()
    }

    /// Asks `nodes` (but this one, and those not live) which sessions of
    /// `user` have a socket open on them; the ids they answered within [`ASK_WAIT`].
    async fn sessions_elsewhere(&self, app: &AppId, user: &UserId, nodes: Vec<String>) -> HashSet<String> {
        let asked: HashMap<String, SocketAddr> = nodes
            .into_iter()
            .filter(|n| n != self.directory.node())
            .filter_map(|n| self.peers.get(&n).map(|addr| (n, addr)))
            .collect();
        if asked.is_empty() {
            return HashSet::new();
        }
        // Registered before sending: an answer may come back before `send` returns.
        let (ask, wait) = self.asks.expect(asked.keys().cloned().collect());
        let wire = Wire::SessionsAsk { app: app.as_str().to_owned(), user: user.as_str().to_owned(), ask };
        let frame = Bytes::from(wire.encode());
        for (node, addr) in asked {
            if let Err(e) = self.transport.send(&node, addr, frame.clone()) {
                tracing::warn!(peer = %node, error = %e, "cannot ask a peer for its sessions");
                self.asks.answered(ask, &node, Vec::new());
            }
        }
        let _ = tokio::time::timeout(ASK_WAIT, wait).await;
        let (sids, silent) = self.asks.finish(ask);
        if !silent.is_empty() {
            tracing::warn!(peers = ?silent, "peers did not say which sessions they hold in time");
        }
        sids
    }

    /// Sends `frame` to each peer; the ones it was queued for.
    fn send_to_all(&self, frame: &Bytes) -> HashSet<String> {
        let mut sent = HashSet::new();
        for (node, addr) in self.peers.all() {
            if node == self.directory.node() {
                continue;
            }
            match self.transport.send(&node, addr, frame.clone()) {
                Ok(()) => {
                    sent.insert(node);
                }
                Err(SendError::Full) => tracing::warn!(peer = %node, "peer queue full; frame dropped"),
                Err(e) => tracing::warn!(peer = %node, error = %e, "cannot send to peer"),
            }
        }
        sent
    }

    /// Sends `frame` to each of `nodes` but this one; returns those whose
    /// queue was full (the frame was dropped for them).
    fn send(&self, nodes: impl IntoIterator<Item = String>, frame: &Bytes) -> Vec<String> {
        let mut dropped = Vec::new();
        for node in nodes {
            if node == self.directory.node() {
                continue;
            }
            let Some(addr) = self.peers.get(&node) else {
                // Registered in the directory but not (or no longer) live: its
                // entries are purged when gossip declares it dead.
                tracing::debug!(peer = %node, "no address for a directory node");
                continue;
            };
            match self.transport.send(&node, addr, frame.clone()) {
                Ok(()) => {}
                Err(SendError::Full) => {
                    tracing::warn!(peer = %node, "peer queue full; frame dropped");
                    dropped.push(node);
                }
                Err(e) => tracing::warn!(peer = %node, error = %e, "cannot send to peer"),
            }
        }
        dropped
    }

    /// `event`'s frame to `dropped` was lost: when the event belongs to a
    /// chat's history, that peer is owed a resync of the chat.
    fn owe_resync(&self, app: &AppId, event: &Event, audience: &Audience, dropped: Vec<String>) {
        let Audience::Chat { chat, .. } = audience else { return };
        // Typing is fleeting and a resync is its own signal: neither leaves a gap.
        if dropped.is_empty() || matches!(event, Event::Typing { .. } | Event::Resync { .. }) {
            return;
        }
        for peer in dropped {
            self.owed.record(&peer, app, *chat, &self.transport, &self.peers);
        }
    }
}

#[async_trait::async_trait]
impl Fabric for ClusterFabric {
    async fn deliver(&self, app: &AppId, event: &Event, audience: &Audience, except: Option<SessionId>) {
        let routes = async {
            match audience {
                // A chat just created (by a send to recipients) may not be in the
                // other nodes' routes yet; its members' own routes are.
                Audience::Chat { chat, members, .. } if members.len() <= SMALL_CHAT => self
                    .directory
                    .chat_or_user_nodes(app, *chat, members.iter())
                    .await
                    .map(|n| n.into_iter().collect::<Vec<_>>()),
                Audience::Chat { chat, .. } => self.directory.chat_nodes(app, *chat).await,
                // Many watchers: by their chats (small audiences keep per-user
                // routes, for the same reason as small chats above).
                Audience::MembersOf { chats, users } if users.len() > SMALL_CHAT => {
                    self.directory.chats_nodes(app, chats).await.map(|n| n.into_iter().collect())
                }
                Audience::Users(users) | Audience::MembersOf { users, .. } => {
                    self.directory.user_nodes(app, users.iter()).await.map(|n| n.into_iter().collect())
                }
            }
        };
        // The routes are asked for first: Redis answers while this node
        // delivers to its own sessions, so the other nodes' recipients wait
        // for the longer of the two rather than for both.
        let (nodes, ()) = tokio::join!(routes, self.hub.deliver(app, event, audience, except));
        match nodes {
            Ok(nodes) if nodes.iter().any(|n| n != self.directory.node()) => {
                let frame = Bytes::from(Wire::event(app, event, audience).encode());
                let dropped = self.send(nodes, &frame);
                self.owe_resync(app, event, audience, dropped);
            }
            Ok(_) => {}
            // Without the routes every live peer gets the frame: each resolves
            // the audience itself, so nobody misses a live event while Redis
            // is slow (only a node with none of them does a little work for nothing).
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the directory; sending the event to every peer");
                let frame = Bytes::from(Wire::event(app, event, audience).encode());
                let dropped = self.send(self.peers.all().into_iter().map(|(n, _)| n), &frame);
                self.owe_resync(app, event, audience, dropped);
            }
        }
    }

    async fn members_changed(&self, app: &AppId, chat: ChatNumber, user: &UserId, joined: bool) {
        let routed = if joined {
            self.directory.joined(app, chat, user).await
        } else {
            self.directory.left(app, chat, user).await
        };
        if let Err(e) = routed {
            tracing::warn!(error = %e, "cannot update the directory");
        }
        let mut wire = Wire::Members {
            app: app.as_str().to_owned(),
            chat: chat.get(),
            user: user.as_str().to_owned(),
            joined,
            ack: None,
        };
        if joined || self.removal_wait.is_zero() {
            self.send(self.peers.all().into_iter().map(|(n, _)| n), &Bytes::from(wire.encode()));
            return;
        }
        // A removal returns once every peer has forgotten the chat's members
        // (frames from one node arrive in order, so what this node sends next
        // finds them forgotten), or after `removal_wait` for peers that are slow or gone.
        let peers: HashSet<String> =
            self.peers.all().into_iter().map(|(n, _)| n).filter(|n| n != self.directory.node()).collect();
        if peers.is_empty() {
            return;
        }
        let (ack, wait) = self.applied.expect(peers.clone());
        if let Wire::Members { ack: slot, .. } = &mut wire {
            *slot = Some(ack);
        }
        let sent = self.send_to_all(&Bytes::from(wire.encode()));
        for peer in peers.difference(&sent) {
            self.applied.applied(ack, peer);
        }
        if tokio::time::timeout(self.removal_wait, wait).await.is_err() {
            tracing::warn!(ack, "peers did not confirm a member removal in time");
        }
        self.applied.forget(ack);
    }

    async fn session_opened(&self, app: &AppId, user: &UserId, chats: Vec<ChatNumber>) -> bool {
        match self.directory.session_opened(app, user, chats).await {
            Ok(false) => false,
            Ok(true) => self.directory.user_node_count(app, user).await.map_or(true, |n| n <= 1),
            Err(e) => {
                tracing::warn!(error = %e, "cannot register a session in the directory");
                self.hub.user_sessions(app, user) == 1
            }
        }
    }

    async fn session_closed(&self, app: &AppId, user: &UserId) {
        if let Err(e) = self.directory.session_closed(app, user).await {
            tracing::warn!(error = %e, "cannot unregister a session in the directory");
        }
    }

    async fn is_online(&self, app: &AppId, user: &UserId) -> bool {
        match self.directory.user_node_count(app, user).await {
            Ok(n) => n > 0,
            Err(_) => self.hub.user_sessions(app, user) > 0,
        }
    }

    async fn online_among(&self, app: &AppId, users: &[UserId]) -> Vec<bool> {
        match self.directory.user_node_counts(app, users).await {
            Ok(counts) => counts.into_iter().map(|n| n > 0).collect(),
            // Redis down: only this node's sessions are known.
            Err(_) => users.iter().map(|u| self.hub.user_sessions(app, u) > 0).collect(),
        }
    }

    async fn revoke(&self, app: &AppId) {
        self.hub.revoke(app);
        let frame = Bytes::from(Wire::Revoke { app: app.as_str().to_owned() }.encode());
        self.send(self.peers.all().into_iter().map(|(n, _)| n), &frame);
    }

    async fn close_auth_session(&self, app: &AppId, user: &UserId, auth: &crate::auth::AuthSessionId) {
        self.hub.close_auth_session(app, user, auth);
        let wire = Wire::RevokeSession {
            app: app.as_str().to_owned(),
            user: user.as_str().to_owned(),
            sid: auth.as_str().to_owned(),
        };
        self.send(self.peers.all().into_iter().map(|(n, _)| n), &Bytes::from(wire.encode()));
    }

    async fn auth_sessions_online(
        &self,
        app: &AppId,
        user: &UserId,
        auths: &[crate::auth::AuthSessionId],
    ) -> Vec<bool> {
        let mut online: Vec<bool> = auths.iter().map(|a| self.hub.has_auth_session(app, user, a)).collect();
        if online.iter().all(|o| *o) {
            return online;
        }
        // Only the nodes holding sockets of the user are asked; without the
        // directory, every live peer is.
        let nodes = match self.directory.user_nodes(app, std::iter::once(user)).await {
            Ok(nodes) => nodes.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the directory; asking every peer for its sessions");
                self.peers.all().into_iter().map(|(n, _)| n).collect()
            }
        };
        let elsewhere = self.sessions_elsewhere(app, user, nodes).await;
        for (online, auth) in online.iter_mut().zip(auths) {
            *online = *online || elsewhere.contains(auth.as_str());
        }
        online
    }

    fn spans_nodes(&self) -> bool {
        true
    }
}
