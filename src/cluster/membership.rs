//! Cluster membership over gossip (chitchat, UDP).
//!
//! [`Membership::join`] starts gossiping; the handle it returns is cheap to clone and
//! gives a consistent [`snapshot`](Membership::snapshot) of the live members and a
//! stream of [`Change`]s, both taken under one lock. A node is one entry per node id:
//! a restarted node (same id, newer generation) replaces its old generation.
//!
//! Chitchat has no "node died" event: a node counts as gone when it leaves the live
//! set (failure detector) or publishes [`keys::LEFT`], and [`Change::Removed`] is
//! derived by diffing consecutive views.
//!
//! # How fast a dead node is noticed
//!
//! Chitchat's phi-accrual detector declares a node dead when the time since its last
//! heartbeat exceeds `phi_threshold × mean heartbeat interval`; liveness is evaluated
//! once per gossip round. Heartbeats arrive about once per round (usually more often),
//! the smoothing prior is one gossip interval, and gaps longer than two gossip
//! intervals are not sampled, so the mean stays below `2 × gossip_interval`. Counting
//! one round for the last heartbeat to reach us through a peer and one round until the
//! next evaluation, the bound is
//!
//! `(2 × phi_threshold + 2) × gossip_interval` — 9 s at the defaults (8.0, 500 ms),
//!
//! see [`MembershipConfig::failure_detection_bound`]; typically it takes about
//! `phi_threshold × gossip_interval / 2 + gossip_interval`, ~2.5 s. A node that calls
//! [`Membership::leave`] is dropped by its peers as soon as they hear of it.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, SystemTimeError, UNIX_EPOCH};

use chitchat::transport::{Socket, Transport, UdpSocket};
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion,
    spawn_chitchat,
};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, info, info_span, warn};

use super::member::{GossipValueError, Member, NodeInfo, NodeStateExt, keys};

/// Heartbeat gaps longer than this many gossip intervals are not sampled, which keeps
/// the detector's mean interval, and so the detection time, bounded.
const MAX_SAMPLED_GAP_ROUNDS: u32 = 2;

/// Gossip rounds a leaving node keeps gossiping so that its `left` flag spreads.
const LEAVE_ROUNDS: u32 = 3;

/// Tombstoned key-values are kept this long. weft never deletes keys, so this only
/// matters if a future version does.
const DELETED_KEY_GRACE: Duration = Duration::from_secs(3600);

/// Heartbeat intervals kept per peer by the failure detector (chitchat's default).
const SAMPLING_WINDOW: usize = 1_000;

/// `[cluster]` gossip settings.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MembershipConfig {
    /// Nodes gossiping with another cluster id are ignored.
    pub cluster_id: String,
    /// UDP address gossip listens on; port 0 picks a free port.
    pub gossip_listen: SocketAddr,
    /// Address peers gossip with, if not `gossip_listen`; required when that is
    /// `0.0.0.0` or `::`. Port 0 means the bound port.
    pub gossip_advertise: Option<SocketAddr>,
    /// `ip:port` or `host:port` of nodes to join through; a host name may resolve to
    /// several addresses and is resolved again every minute.
    pub seeds: Vec<String>,
    /// Time between gossip rounds, in ms.
    pub gossip_interval_ms: u64,
    /// Suspicion level at which a silent node is declared dead (phi accrual).
    pub phi_threshold: f64,
    /// A dead node's state is kept this long, then forgotten, in ms.
    pub dead_grace_ms: u64,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        Self {
            cluster_id: "weft".into(),
            // Loopback like `server.listen`: a cluster across hosts sets both addresses.
            gossip_listen: SocketAddr::from(([127, 0, 0, 1], 7946)),
            gossip_advertise: None,
            seeds: Vec::new(),
            gossip_interval_ms: 500,
            phi_threshold: 8.0,
            dead_grace_ms: 60_000,
        }
    }
}

impl MembershipConfig {
    /// Checks what types alone cannot; the error names the key and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let advertise_unusable = self.gossip_advertise.is_some_and(|addr| addr.ip().is_unspecified());
        let rules: [(bool, &str, &str); 6] = [
            (self.cluster_id.is_empty(), "gossip.cluster_id", "must not be empty"),
            (self.gossip_interval_ms == 0, "gossip.gossip_interval_ms", "must be at least 1"),
            (
                !(self.phi_threshold.is_finite() && self.phi_threshold > 0.0),
                "gossip.phi_threshold",
                "must be a positive number",
            ),
            (self.dead_grace_ms == 0, "gossip.dead_grace_ms", "must be at least 1"),
            (
                self.gossip_advertise.is_none() && self.gossip_listen.ip().is_unspecified(),
                "gossip.gossip_advertise",
                "is required when gossip.gossip_listen is 0.0.0.0 or ::",
            ),
            (advertise_unusable, "gossip.gossip_advertise", "must be an address peers can reach"),
        ];
        if let Some((_, key, reason)) = rules.into_iter().find(|(bad, _, _)| *bad) {
            return Err((key, reason));
        }
        if !self.seeds.iter().all(|seed| is_host_port(seed)) {
            return Err(("gossip.seeds", "each must be ip:port or host:port"));
        }
        Ok(())
    }

    /// Time between gossip rounds.
    pub fn gossip_interval(&self) -> Duration {
        Duration::from_millis(self.gossip_interval_ms)
    }

    /// Longest time until peers see a killed node gone: `(2 × phi + 2) × gossip interval`
    /// (see the module docs).
    pub fn failure_detection_bound(&self) -> Duration {
        let rounds = f64::from(MAX_SAMPLED_GAP_ROUNDS) * self.phi_threshold + 2.0;
        self.gossip_interval().mul_f64(rounds)
    }

    fn failure_detector(&self) -> FailureDetectorConfig {
        FailureDetectorConfig {
            phi_threshold: self.phi_threshold,
            sampling_window_size: SAMPLING_WINDOW,
            max_interval: self.gossip_interval() * MAX_SAMPLED_GAP_ROUNDS,
            // chitchat's default prior (5 s) would make detection take tens of seconds
            // for a node we have heard from only a few times.
            initial_interval: self.gossip_interval(),
            dead_node_grace_period: Duration::from_millis(self.dead_grace_ms),
        }
    }
}

fn is_host_port(seed: &str) -> bool {
    if seed.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match seed.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// Why joining or leaving failed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// A setting is out of range or inconsistent.
    #[error("invalid value for `{key}`: {reason}")]
    Config {
        /// The offending key, as `cluster.key`.
        key: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The clock reads before 1970, so no generation can be derived from it.
    #[error("system clock is before the Unix epoch")]
    Clock(#[source] SystemTimeError),
    /// The UDP socket could not be bound.
    #[error("cannot bind gossip to {addr}/udp")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Chitchat failed to start or stopped with an error.
    #[error("gossip failed")]
    Gossip(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One change to the set of live members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A node id appeared.
    Added(Member),
    /// A member changed: its published state, or its generation (a restart).
    Updated(Member),
    /// A node id is gone (left or dead): forget what is routed to it.
    Removed(String),
}

/// The [`Change`]s after a [`Membership::changes`] call, starting with an
/// [`Change::Added`] for each member at that moment. Ends when gossip stops.
#[derive(Debug)]
pub struct ChangeStream {
    rx: mpsc::UnboundedReceiver<Change>,
}

impl ChangeStream {
    /// The next change, or `None` once gossip has stopped.
    pub async fn recv(&mut self) -> Option<Change> {
        self.rx.recv().await
    }
}

impl futures::Stream for ChangeStream {
    type Item = Change;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        self.rx.poll_recv(cx)
    }
}

/// The local view: the members, and who to tell when they change. Membership changes
/// are rare control events, so subscribers get unbounded channels.
#[derive(Default)]
struct View {
    members: Vec<Member>,
    subscribers: Vec<mpsc::UnboundedSender<Change>>,
}

struct Inner {
    self_id: ChitchatId,
    gossip_listen: SocketAddr,
    gossip_interval: Duration,
    /// `None` once the node has left.
    handle: Mutex<Option<ChitchatHandle>>,
    view: Arc<Mutex<View>>,
    /// Whether seeds were given (a node without any is a cluster of one).
    seeded: bool,
    /// When a seeded node that met nobody stops waiting and serves alone.
    alone_after: std::time::Instant,
}

/// This node's membership in the cluster: a cheap `Clone` handle.
///
/// Gossip stops when [`leave`](Membership::leave) is called, or when the last clone is
/// dropped (peers then notice through the failure detector).
#[derive(Clone)]
pub struct Membership {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("self", &self.inner.self_id)
            .field("gossip_listen", &self.inner.gossip_listen)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Binds the gossip socket, publishes `info` and starts gossiping with the seeds.
    ///
    /// The generation is the start time in ms, so a restarted node supersedes its
    /// previous incarnation. The node starts not ready; see [`Membership::set_ready`].
    pub async fn join(config: &MembershipConfig, info: NodeInfo) -> Result<Membership, MembershipError> {
        config.check().map_err(|(key, reason)| MembershipError::Config { key, reason })?;
        let generation = generation_now()?;
        let (transport, bound) = BoundSocket::bind(config.gossip_listen).await?;
        let advertise = match config.gossip_advertise {
            Some(addr) if addr.port() == 0 => SocketAddr::new(addr.ip(), bound.port()),
            Some(addr) => addr,
            None => bound,
        };
        let self_id = ChitchatId::new(info.node_id.as_str(), generation, advertise);
        let me = Member::joining(&info, generation);
        let chitchat_config = ChitchatConfig {
            chitchat_id: self_id.clone(),
            cluster_id: config.cluster_id.clone(),
            gossip_interval: config.gossip_interval(),
            listen_addr: bound,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: config.failure_detector(),
            marked_for_deletion_grace_period: DELETED_KEY_GRACE,
            catchup_callback: None,
            extra_liveness_predicate: None,
            // V1 compresses digests; V0 keeps every chitchat release able to read us.
            protocol_version: ProtocolVersion::V0,
        };
        let handle = spawn_chitchat(chitchat_config, me.initial_key_values(), &transport)
            .await
            .map_err(|e| MembershipError::Gossip(e.into()))?;
        let live = handle.with_chitchat(|chitchat| chitchat.live_nodes_watcher()).await;

        // Until the first gossip round reports, the view is this node alone.
        let view = Arc::new(Mutex::new(View { members: vec![me], subscribers: Vec::new() }));
        let span = info_span!("membership", self_node_id = %info.node_id, generation);
        tokio::spawn(follow(live, Arc::clone(&view), self_id.clone()).instrument(span));
        info!(
            node_id = %info.node_id,
            generation,
            gossip_listen = %bound,
            gossip_advertise = %advertise,
            quic_addr = %info.quic_addr,
            http_addr = %info.http_addr,
            seeds = ?config.seeds,
            "joined cluster"
        );
        Ok(Membership {
            inner: Arc::new(Inner {
                self_id,
                gossip_listen: bound,
                gossip_interval: config.gossip_interval(),
                handle: Mutex::new(Some(handle)),
                view,
                seeded: !config.seeds.is_empty(),
                alone_after: std::time::Instant::now() + config.failure_detection_bound(),
            }),
        })
    }

    /// The address the gossip socket is bound to.
    pub fn gossip_addr(&self) -> SocketAddr {
        self.inner.gossip_listen
    }

    /// The address peers gossip with (give it to other nodes as a seed).
    pub fn gossip_advertise_addr(&self) -> SocketAddr {
        self.inner.self_id.gossip_advertise_addr
    }

    /// Whether this node has joined: it sees another member, or it has no
    /// seeds, or it waited a failure-detection bound and met nobody (its
    /// seeds are itself, or every other node is down: it serves alone rather
    /// than never). `/readyz` is not ready before.
    pub fn joined(&self) -> bool {
        !self.inner.seeded
            || lock(&self.inner.view).members.len() > 1
            || std::time::Instant::now() >= self.inner.alone_after
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.self_id.node_id
    }

    /// This node's generation (start time in ms).
    pub fn generation(&self) -> u64 {
        self.inner.self_id.generation_id
    }

    /// The live members, this node included, one per node id (its newest live
    /// generation), sorted by node id. This node's own updates show after the next
    /// gossip round; after [`leave`](Membership::leave) the list is empty.
    pub fn snapshot(&self) -> Vec<Member> {
        lock(&self.inner.view).members.clone()
    }

    /// The changes from now on, starting with an `Added` for each current member, so
    /// that replaying the stream always rebuilds the live set.
    pub fn changes(&self) -> ChangeStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut view = lock(&self.inner.view);
        for member in &view.members {
            // The receiver is still in hand: this cannot fail.
            let _ = tx.send(Change::Added(member.clone()));
        }
        // After gossip stopped nobody would end the stream: drop the sender now.
        if self.is_running() {
            view.subscribers.push(tx);
        }
        ChangeStream { rx }
    }

    /// Publishes the number of client sessions open here (call it from a timer).
    pub async fn set_connections(&self, connections: u64) {
        self.publish(keys::CONNECTIONS, connections.to_string()).await;
    }

    /// Publishes whether this node accepts new clients.
    pub async fn set_ready(&self, ready: bool) {
        self.publish(keys::READY, ready.to_string()).await;
    }

    /// Publishes whether this node is closing its sessions before it stops.
    pub async fn set_draining(&self, draining: bool) {
        self.publish(keys::DRAINING, draining.to_string()).await;
    }

    /// Tells peers this node is leaving, gossips for a few rounds so they hear it, and
    /// stops gossip (for every clone of this handle).
    ///
    /// Peers drop the node as soon as the news reaches them, and at the latest when
    /// their failure detectors give up on it.
    pub async fn leave(self) -> Result<(), MembershipError> {
        let Some(handle) = lock(&self.inner.handle).take() else {
            return Ok(());
        };
        info!(node_id = %self.inner.self_id.node_id, "leaving cluster");
        handle.with_chitchat(|chitchat| chitchat.self_node_state().set(keys::LEFT, true)).await;
        tokio::time::sleep(self.inner.gossip_interval * LEAVE_ROUNDS).await;
        handle.shutdown().await.map_err(|e| MembershipError::Gossip(e.into()))
    }

    fn is_running(&self) -> bool {
        lock(&self.inner.handle).is_some()
    }

    /// Sets one of this node's keys; chitchat only bumps the version (and so only
    /// gossips) when the value differs. Does nothing once the node has left.
    async fn publish(&self, key: &'static str, value: String) {
        let chitchat = lock(&self.inner.handle).as_ref().map(ChitchatHandle::chitchat);
        let Some(chitchat) = chitchat else {
            debug!(key, value, "not published: node has left");
            return;
        };
        chitchat.lock().await.self_node_state().set(key, value);
    }
}

/// Locks a std mutex; a panic elsewhere cannot leave these plain values half-updated.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn generation_now() -> Result<u64, MembershipError> {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_err(MembershipError::Clock)?;
    Ok(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
}

/// Hands chitchat a UDP socket bound before it starts: the advertised address must be
/// known before `spawn_chitchat`, and with port 0 only the bound socket knows it.
/// (chitchat's `Transport` trait speaks `anyhow`.)
struct BoundSocket(Mutex<Option<UdpSocket>>);

impl BoundSocket {
    async fn bind(addr: SocketAddr) -> Result<(BoundSocket, SocketAddr), MembershipError> {
        let bind_error = |e: anyhow::Error| MembershipError::Bind { addr, source: e.into() };
        let socket = UdpSocket::open(addr).await.map_err(bind_error)?;
        let bound = socket.local_addr().map_err(bind_error)?;
        Ok((BoundSocket(Mutex::new(Some(socket))), bound))
    }
}

#[async_trait::async_trait]
impl Transport for BoundSocket {
    async fn open(&self, _listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        match lock(&self.0).take() {
            Some(socket) => Ok(Box::new(socket)),
            None => anyhow::bail!("the gossip socket was already handed over"),
        }
    }
}

/// Follows chitchat's live set until gossip stops, folding it into the view.
async fn follow(
    mut live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    view: Arc<Mutex<View>>,
    self_id: ChitchatId,
) {
    let mut unreadable = HashSet::new();
    while live.changed().await.is_ok() {
        let members = members_of(&live.borrow_and_update(), &self_id, &mut unreadable);
        apply(&view, members, &self_id);
    }
    // Gossip has stopped: nothing is known any more, and the change streams end.
    let mut view = lock(&view);
    view.members.clear();
    view.subscribers.clear();
}

/// One member per node id: its newest live generation that has not left, sorted by id.
/// Nodes whose keys do not parse are skipped, with one warning per generation.
fn members_of(
    live: &BTreeMap<ChitchatId, NodeState>,
    self_id: &ChitchatId,
    unreadable: &mut HashSet<ChitchatId>,
) -> Vec<Member> {
    let mut newest: BTreeMap<&str, Member> = BTreeMap::new();
    for (id, state) in live {
        let member = state.has_left().and_then(|left| {
            if left { Ok(None) } else { Member::from_gossip(id, state, id == self_id).map(Some) }
        });
        let member = match member {
            Ok(Some(member)) => member,
            Ok(None) => continue,
            // Keys can arrive over several rounds; only a bad value is worth a warning.
            Err(GossipValueError::Missing { .. }) => continue,
            Err(error) => {
                if unreadable.insert(id.clone()) {
                    warn!(node_id = %id.node_id, generation = id.generation_id, %error, "ignoring member");
                }
                continue;
            }
        };
        if newest.get(&*id.node_id).is_none_or(|known| known.generation < member.generation) {
            newest.insert(&id.node_id, member);
        }
    }
    newest.into_values().collect()
}

/// Replaces the view's members, telling subscribers what changed.
fn apply(view: &Mutex<View>, members: Vec<Member>, self_id: &ChitchatId) {
    let mut view = lock(view);
    let changes = diff(&view.members, &members);
    if changes.is_empty() {
        return;
    }
    for change in &changes {
        log_change(change, &view.members, self_id);
    }
    view.subscribers.retain(|tx| changes.iter().all(|change| tx.send(change.clone()).is_ok()));
    view.members = members;
}

/// What turns `old` into `new`; both sorted by node id.
fn diff(old: &[Member], new: &[Member]) -> Vec<Change> {
    let old_by_id: BTreeMap<&str, &Member> = old.iter().map(|m| (m.node_id.as_str(), m)).collect();
    let new_ids: HashSet<&str> = new.iter().map(|m| m.node_id.as_str()).collect();
    let removed = old
        .iter()
        .filter(|m| !new_ids.contains(m.node_id.as_str()))
        .map(|m| Change::Removed(m.node_id.clone()));
    let added_or_updated = new.iter().filter_map(|m| match old_by_id.get(m.node_id.as_str()) {
        None => Some(Change::Added(m.clone())),
        Some(known) if *known != m => Some(Change::Updated(m.clone())),
        Some(_) => None,
    });
    removed.chain(added_or_updated).collect()
}

fn log_change(change: &Change, old: &[Member], self_id: &ChitchatId) {
    match change {
        Change::Added(m) => {
            info!(node_id = %m.node_id, generation = m.generation, quic_addr = %m.quic_addr, "member joined")
        }
        Change::Updated(m) => {
            let previous = old.iter().find(|known| known.node_id == m.node_id).map(|known| known.generation);
            if previous == Some(m.generation) {
                debug!(node_id = %m.node_id, connections = m.connections, ready = m.ready, draining = m.draining, "member updated");
            } else {
                info!(node_id = %m.node_id, generation = m.generation, quic_addr = %m.quic_addr, "member restarted");
            }
        }
        Change::Removed(node_id) => info!(node_id = %node_id, "member gone"),
    }
    if let Change::Added(m) | Change::Updated(m) = change
        && m.node_id == *self_id.node_id
        && !m.is_self
    {
        warn!(node_id = %m.node_id, generation = m.generation, "a newer process runs with this node id");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node_id: &str, generation: u64) -> Member {
        Member {
            node_id: node_id.into(),
            generation,
            quic_addr: "127.0.0.1:7000".parse().unwrap(),
            http_addr: "127.0.0.1:8080".parse().unwrap(),
            connections: 0,
            ready: false,
            draining: false,
            is_self: false,
        }
    }

    fn live(entries: &[(&Member, bool)]) -> BTreeMap<ChitchatId, NodeState> {
        entries
            .iter()
            .map(|(m, left)| {
                let id = ChitchatId::new(m.node_id.as_str(), m.generation, "127.0.0.1:7946".parse().unwrap());
                let mut state = NodeState::for_test();
                for (key, value) in m.initial_key_values() {
                    state.set(key, value);
                }
                state.set(keys::LEFT, left);
                (id, state)
            })
            .collect()
    }

    #[test]
    fn diff_reports_added_updated_and_removed() {
        let a = member("a", 1);
        let b = member("b", 1);
        let c = member("c", 1);
        let b_ready = Member { ready: true, ..b.clone() };
        let changes = diff(&[a.clone(), b], &[b_ready.clone(), c.clone()]);
        assert_eq!(changes, vec![Change::Removed("a".into()), Change::Updated(b_ready), Change::Added(c)]);
        assert!(diff(std::slice::from_ref(&a), std::slice::from_ref(&a)).is_empty());
    }

    #[test]
    fn the_newest_generation_of_a_node_id_wins_and_left_nodes_are_gone() {
        let (old, new, other) = (member("a", 1), member("a", 2), member("b", 5));
        let self_id = ChitchatId::new("b", 5, "127.0.0.1:7946".parse().unwrap());
        let members = members_of(
            &live(&[(&new, false), (&old, false), (&other, false)]),
            &self_id,
            &mut HashSet::new(),
        );
        assert_eq!(members, vec![new.clone(), Member { is_self: true, ..other.clone() }]);

        // The newer generation left: the old one, still live, is not resurrected.
        let members = members_of(&live(&[(&old, false), (&new, true)]), &self_id, &mut HashSet::new());
        assert_eq!(members, vec![old]);
    }

    #[test]
    fn config_checks_name_the_key() {
        assert_eq!(MembershipConfig::default().check(), Ok(()));
        let wildcard =
            MembershipConfig { gossip_listen: "0.0.0.0:7946".parse().unwrap(), ..Default::default() };
        assert_eq!(wildcard.check().unwrap_err().0, "gossip.gossip_advertise");
        let advertised =
            MembershipConfig { gossip_advertise: Some("10.0.0.1:0".parse().unwrap()), ..wildcard.clone() };
        assert_eq!(advertised.check(), Ok(()));
        let zero = MembershipConfig { gossip_interval_ms: 0, ..Default::default() };
        assert_eq!(zero.check().unwrap_err().0, "gossip.gossip_interval_ms");
        let nan = MembershipConfig { phi_threshold: f64::NAN, ..Default::default() };
        assert_eq!(nan.check().unwrap_err().0, "gossip.phi_threshold");
        for seed in ["10.0.0.1:7946", "[::1]:7946", "weft-gossip.svc:7946"] {
            let config = MembershipConfig { seeds: vec![seed.into()], ..Default::default() };
            assert_eq!(config.check(), Ok(()), "{seed}");
        }
        for seed in ["weft-gossip.svc", ":7946", "host:port", "::1:7946"] {
            let config = MembershipConfig { seeds: vec![seed.into()], ..Default::default() };
            assert_eq!(config.check().unwrap_err().0, "gossip.seeds", "{seed}");
        }
    }

    #[test]
    fn config_is_strict_and_defaults_what_is_absent() {
        let config: MembershipConfig = serde_json::from_str(r#"{"seeds": ["weft-0.weft:7946"]}"#).unwrap();
        assert_eq!(config, MembershipConfig { seeds: vec!["weft-0.weft:7946".into()], ..Default::default() });
        assert!(serde_json::from_str::<MembershipConfig>(r#"{"gossip_intervall_ms": 100}"#).is_err());
    }

    #[test]
    fn the_default_detection_bound_is_under_ten_seconds() {
        let bound = MembershipConfig::default().failure_detection_bound();
        assert_eq!(bound, Duration::from_secs(9));
    }
}
