//! Wiring: build a node from its config, serve until told to stop.

pub mod backup;
mod http;
mod plain;
pub mod reindex;
mod tls;
pub mod transfer;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, ApiParts, ApiState, Snapshots};
use crate::auth::{AdminKey, JwksVerifier};
use crate::cache::{AppsCache, MembersCache, RecentCache};
use crate::chat::{Caches, ChatParts, ChatService, Search};
use crate::cluster::node::{Cluster, ClusterError, Joined};
use crate::config::{Backend, Config};
use crate::delivery::{Fabric, Hub};
use crate::gateway::{GatewayParts, GatewayState, Limits};
use crate::notify::queue::{Queue, local::LocalQueue, redis::RedisQueue};
use crate::redis_conn::RedisConn;
use crate::search::{Indexer, SearchBackend, SearchError, SearchIndex, TantivyIndex};
use crate::sequence::{Claims, Locks, Numbering, SequenceError};
use crate::store::{BatchWriter, CqlStore, DynStore, EmbeddedStore, Metered, StoreError};

pub use tls::HttpsError;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or is on an old schema.
    #[error("cannot open the store")]
    Store(#[from] StoreError),
    /// Redis could not be reached.
    #[error("cannot reach redis")]
    Redis(#[from] SequenceError),
    /// The cluster parts could not start.
    #[error("cannot start the cluster node")]
    Cluster(#[from] ClusterError),
    /// The search index could not be opened.
    #[error("cannot open the search index")]
    Search(#[source] SearchError),
    /// The attachment store could not be opened.
    #[error("cannot open the attachment store")]
    Attachments(#[source] crate::attachments::AttachmentsError),
    /// The webhook queue (a file of its own on a node without Redis) could not be opened.
    #[error("cannot open the webhook queue")]
    Webhooks(#[source] crate::notify::queue::QueueError),
    /// Push or email is misconfigured.
    #[error(transparent)]
    Notify(crate::notify::NotifyError),
    /// The HTTPS certificate or key (`server.tls_cert_file`, `server.tls_key_file`) cannot be served.
    #[error("cannot serve https")]
    Https(#[source] HttpsError),
}

/// A node's running parts, before it serves.
pub struct Node {
    chat: ChatService,
    hub: Hub,
    config: Config,
    tracker: TaskTracker,
    writer: BatchWriter,
    cluster: Option<Cluster>,
    /// The node's Redis connection (readiness checks), when configured.
    redis: Option<RedisConn>,
    /// The embedded store, for backups while serving (none on CQL).
    snapshots: Option<Snapshots>,
    /// The HTTPS certificate, when the node serves TLS itself.
    https: Option<tls::ServerTls>,
    /// Stops the notifier once no request runs any more (or when the node is
    /// dropped unrun: its delivery thread must not outlive it).
    notify_stop: tokio_util::sync::DropGuard,
}

impl Node {
    /// Opens the store, connects Redis when configured, starts the batch writer.
    pub async fn start(config: &Config) -> Result<Node, StartError> {
        // rustls's process-wide provider is ring: the crates that build their own TLS configs
        // (Redis, object_store) use it, and with aws-lc-rs also compiled in (through the CQL
        // driver) rustls would not pick one itself.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // First: a bad certificate fails the start before anything is opened.
        let https = tls::ServerTls::from_config(&config.server).map_err(StartError::Https)?;
        let (store, embedded) = open_stores(config).await?;
        let snapshots = embedded.map(|store| Snapshots { store, dir: config.store.data_dir.clone() });
        // One Redis connection for the node, handed to every part that keeps state there.
        let redis = RedisConn::connect(&config.redis).await.map_err(SequenceError::Redis)?;
        let prefix = config.redis.key_prefix.clone();
        let (numbers, claims, locks) = match &redis {
            None => (Numbering::local(Arc::clone(&store)), Claims::local(), Locks::Local),
            Some(conn) => (
                Numbering::redis(
                    conn.clone(),
                    prefix.clone(),
                    Arc::clone(&store),
                    config.sequence.resume_gap,
                ),
                Claims::redis(conn.clone(), prefix.clone()),
                Locks::Redis { conn: conn.clone(), prefix: prefix.clone() },
            ),
        };
        let tracker = TaskTracker::new();
        let notify_stop = CancellationToken::new();
        let queue = match &redis {
            Some(conn) => Queue::Redis(Box::new(RedisQueue::new(conn.clone(), &prefix))),
            None => {
                let dir = &config.store.data_dir;
                std::fs::create_dir_all(dir).map_err(|e| {
                    StartError::Webhooks(crate::notify::queue::QueueError::Local(Box::new(e)))
                })?;
                Queue::Local(LocalQueue::open(&dir.join("webhooks.redb")).map_err(StartError::Webhooks)?)
            }
        };
        let index = open_search(config).await?;
        let feed = index.as_ref().map(|index| {
            Indexer::spawn(Arc::clone(index), Arc::clone(&store), locks.clone(), &config.search, &tracker)
        });
        let on_commit = feed.clone().map(|feed| Arc::new(feed) as Arc<dyn crate::store::OnCommit>);
        let writer = BatchWriter::spawn_with(Arc::clone(&store), &config.batch, &tracker, on_commit);
        let hub = Hub::default().with_direct_writes(
            config.gateway.direct_writes,
            std::time::Duration::from_millis(config.gateway.flush_interval_ms),
        );
        let recent = match &redis {
            Some(conn) => RecentCache::redis(&config.cache, conn.clone(), prefix.clone()),
            None => RecentCache::local(&config.cache),
        };
        let members = MembersCache::new(Duration::from_millis(config.cache.members_ttl_ms));
        let jwks = JwksVerifier::new(config.jwks.clone());
        let apps = AppsCache::new(Duration::from_millis(config.cache.apps_ttl_ms));
        let caches = Caches { members, recent, apps, jwks };
        let (fabric, cluster): (Arc<dyn Fabric>, _) = match (config.cluster.enabled, &redis) {
            (true, Some(conn)) => {
                let (cluster, fabric) = Cluster::start(
                    &config.cluster,
                    &config.gossip,
                    &config.quic,
                    &config.tls,
                    (conn.clone(), prefix),
                    hub.clone(),
                )?;
                (Arc::new(fabric), Some(cluster))
            }
            _ => (Arc::new(hub.clone()), None),
        };
        let notify = crate::notify::spawn(
            crate::notify::Parts {
                webhooks: &config.webhooks,
                alerts: &config.notifications,
                push: &config.push,
                email: &config.email,
                store: Arc::clone(&store),
                queue,
                fabric: Arc::clone(&fabric),
            },
            &tracker,
            notify_stop.clone(),
        )
        .map_err(StartError::Notify)?;
        let attachments = crate::attachments::Attachments::open(
            &config.attachments,
            config.store.backend == Backend::Cql,
            &config.store.data_dir,
        )
        .map_err(StartError::Attachments)?;
        let chat = ChatService::new(ChatParts {
            store,
            numbers,
            claims,
            locks,
            writer: writer.clone(),
            caches,
            fabric,
            claim_abandon_ms: config.sequence.claim_abandon_ms,
            search: match (index, feed) {
                (Some(index), Some(feed)) => Search::new(index, feed),
                _ => Search::disabled(),
            },
            attachments,
            notifier: notify.notifier,
            webhooks: notify.webhooks,
            sessions: config.sessions.clone(),
        });
        let notify_stop = notify_stop.drop_guard();
        Ok(Node {
            chat,
            hub,
            redis,
            snapshots,
            https,
            config: config.clone(),
            tracker,
            writer,
            cluster,
            notify_stop,
        })
    }

    /// The domain service, for embedding and benchmarks.
    pub fn chat(&self) -> &ChatService {
        &self.chat
    }
}

/// The store `[store]` names, with metrics.
async fn open_store(config: &Config) -> Result<DynStore, StartError> {
    Ok(open_stores(config).await?.0)
}

/// The store `[store]` names, with metrics, and the embedded store itself when it is that.
async fn open_stores(config: &Config) -> Result<(DynStore, Option<EmbeddedStore>), StartError> {
    let (store, embedded): (DynStore, _) = match config.store.backend {
        Backend::Embedded => {
            let store = EmbeddedStore::open(&config.store.data_dir)?;
            (Arc::new(store.clone()), Some(store))
        }
        Backend::Cql => (Arc::new(CqlStore::connect(&config.cql).await?), None),
    };
    Ok((Arc::new(Metered(store)), embedded))
}

/// The search index `[search]` names, if any.
async fn open_search(config: &Config) -> Result<Option<Arc<dyn SearchIndex>>, StartError> {
    let backend = match (config.search.backend, config.store.backend) {
        (SearchBackend::Auto, Backend::Embedded) => SearchBackend::Embedded,
        (SearchBackend::Auto, Backend::Cql) => SearchBackend::None,
        (backend, _) => backend,
    };
    match backend {
        SearchBackend::Auto | SearchBackend::None => {
            tracing::info!("search is off ([search] backend)");
            Ok(None)
        }
        SearchBackend::Embedded => {
            let dir = config.store.data_dir.join("search");
            let index = tokio::task::spawn_blocking(move || TantivyIndex::open(&dir))
                .await
                .map_err(|e| StartError::Search(SearchError::Internal(Box::new(e))))?
                .map_err(StartError::Search)?;
            Ok(Some(Arc::new(index)))
        }
        SearchBackend::Opensearch => {
            let index = crate::search::opensearch::OpenSearchIndex::new(&config.search.opensearch())
                .map_err(|e| StartError::Search(SearchError::Internal(Box::new(e))))?;
            Ok(Some(Arc::new(index)))
        }
    }
}

/// Serves `node` on `listener` until `shutdown` fires, then drains:
/// `/readyz` turns 503 and new WebSockets are refused at once; open sessions
/// close with 1012 spread over `server.drain_window_ms`; then the listener
/// stops, in-flight requests get `server.shutdown_grace_ms` to finish, and
/// queued writes are committed.
pub async fn run(listener: TcpListener, node: Node, shutdown: CancellationToken) -> std::io::Result<()> {
    let Node { chat, hub, redis, snapshots, https, config, tracker, writer, cluster, notify_stop } = node;
    let notify_stop = notify_stop.disarm();
    // A run dropped half way (its runtime went away) stops the notifier too.
    let _stop_notifier = notify_stop.clone().drop_guard();
    let admin_key =
        (!config.server.admin_key.is_empty()).then(|| AdminKey::new(config.server.admin_key.clone()));
    let node_id = match &cluster {
        Some(cluster) => cluster.node_id().to_owned(),
        None => crate::cluster::node::node_id_or_random(&config.cluster.node_id),
    };
    // Stops the cluster's background tasks once the node has left.
    let cluster_stop = CancellationToken::new();
    let joined = match cluster {
        Some(cluster) => {
            let http = listener.local_addr()?;
            let joined = cluster
                .join(http, chat.clone(), hub.clone(), cluster_stop.clone())
                .await
                .map_err(std::io::Error::other)?;
            Some(joined)
        }
        None => {
            crate::metrics::metrics().cluster_members.set(1);
            None
        }
    };
    let limits = Limits::new(&config.gateway);
    // Stops the listener (and the heartbeat) once the sessions have drained.
    let stop_http = CancellationToken::new();
    spawn_heartbeat(&config, limits.clone(), hub.clone(), stop_http.clone());
    let sessions = GatewayState::new(GatewayParts {
        chat: chat.clone(),
        hub: hub.clone(),
        config: config.gateway.clone(),
        limits,
        node_id: node_id.clone(),
        shutdown: shutdown.clone(),
    });
    let state = ApiState::new(ApiParts {
        chat,
        admin_key,
        metrics_key: (!config.metrics.token.is_empty()).then(|| AdminKey::new(config.metrics.token.clone())),
        max_body_bytes: config.server.max_body_bytes,
        presence: hub.presence().clone(),
        redis,
        node_id,
        shutdown: shutdown.clone(),
        membership: joined.as_ref().map(Joined::membership),
        snapshots,
    });
    let (sessions, sessions_doc) = crate::gateway::routes().with_state(sessions).split_for_parts();
    let sessions =
        sessions.merge(crate::demo::router(&config.demo, &config.store.data_dir, state.chat.clone()));
    let router = api::router(state, sessions, sessions_doc);
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
    let window = Duration::from_millis(config.server.drain_window_ms);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, https = https.is_some(), "serving");
    }
    if let Some(https) = &https {
        let every = Duration::from_millis(config.server.tls_reload_ms);
        tokio::spawn(https.clone().watch(every, stop_http.clone()));
    }
    let joined = std::sync::Arc::new(tokio::sync::Mutex::new(joined));
    tokio::spawn(drain_sessions(hub, shutdown, (window, grace), stop_http.clone(), Arc::clone(&joined)));
    let serve =
        http::serve(listener, router, http::HttpLimits::new(&config.server), https, stop_http.clone());
    let serve = async {
        let mut serve = std::pin::pin!(serve);
        tokio::select! {
            result = &mut serve => result,
            () = async { stop_http.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "requests still running after the grace period");
                Ok(())
            }
        }
    };
    let result = serve.await;
    // No request runs any more: the writer commits what is queued and ends
    // (the cluster's tasks still hold handles, so it is told to).
    writer.close();
    // The notifier queues what was handed to it, finishes its attempts in flight, and ends.
    notify_stop.cancel();
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("batch writer did not finish in time");
    }
    if let Some(joined) = joined.lock().await.take() {
        joined.leave().await;
    }
    cluster_stop.cancel();
    tracing::info!("stopped");
    result
}

/// After `shutdown`, tells the cluster this node drains, waits (at most
/// `window + grace`) for the sessions to close and their offline
/// announcements to be made, then stops the listener.
async fn drain_sessions(
    hub: Hub,
    shutdown: CancellationToken,
    (window, grace): (Duration, Duration),
    stop_http: CancellationToken,
    joined: Arc<tokio::sync::Mutex<Option<Joined>>>,
) {
    shutdown.cancelled().await;
    if let Some(joined) = joined.lock().await.as_ref() {
        joined.draining().await;
    }
    tracing::info!(sessions = hub.session_count(), "draining");
    let deadline = tokio::time::Instant::now() + window + grace;
    // The sessions close over the window, each at its own moment.
    tokio::spawn({
        let hub = hub.clone();
        async move { hub.drain(window).await }
    });
    while hub.session_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if hub.session_count() > 0 {
        tracing::warn!(sessions = hub.session_count(), "sessions still open after the drain window");
    }
    // Users who do not reconnect elsewhere within the debounce are announced
    // offline while this node can still reach its peers.
    if tokio::time::timeout_at(deadline, hub.presence().settled()).await.is_err() {
        tracing::warn!("offline announcements still pending after the drain window");
    }
    stop_http.cancel();
}

/// The heartbeat wheel: one timer for the node, ticking a few times per
/// heartbeat; each session checks its own silence on a tick. Also prunes the
/// per-user limiters.
fn spawn_heartbeat(config: &Config, limits: Limits, hub: Hub, shutdown: CancellationToken) {
    let period = Duration::from_millis((config.gateway.heartbeat_ms / 4).clamp(20, 5_000));
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    limits.prune();
                    hub.tick();
                }
                () = shutdown.cancelled() => break,
            }
        }
        // Sessions still open once the listener stops close with 1012.
        hub.drain(Duration::ZERO).await;
    });
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse as _;

    use crate::api::ApiError;
    use crate::chat::ChatError;
    use crate::protocol::{RequestId, ServerFrame};

    /// Every domain failure reaches a REST client and a WebSocket client with the same code.
    #[tokio::test]
    async fn every_chat_error_has_one_code_on_both_edges() {
        for e in ChatError::examples() {
            let (status, code) = crate::edge::describe(e.kind());
            let frame = crate::gateway::error_frame(Some(RequestId::Number(7)), &e);
            let ServerFrame::Error { code: ws_code, id, .. } = frame else {
                panic!("{e:?}: not an error frame");
            };
            assert_eq!(ws_code, code, "{e:?} on the WebSocket");
            assert_eq!(id, Some(RequestId::Number(7)));
            let response = ApiError::Chat(e).into_response();
            assert_eq!(response.status(), status, "{code} over REST");
            let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    }
}
