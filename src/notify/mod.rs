//! Telling the world outside the chat what happened in it, off the send path:
//! webhooks now (push and email follow the same feed).
//!
//! - [`Notifier`]: the handle the domain gives every committed event to. It
//!   never waits: a notice goes into a bounded hand-off and the sender's ack
//!   is not held for it;
//! - `dispatch`: one task per node takes notices in batches, finds each
//!   application's webhooks that want them and pushes one entry per webhook
//!   into the durable [`queue`];
//! - `deliver`: workers on every node lease due lanes from the queue and
//!   POST their heads, signed ([`sign`]), retrying with backoff;
//! - [`webhooks`]: registering, listing, rotating and deleting webhooks;
//! - [`target`]: which URLs and addresses a webhook may point to.

pub mod alerts;
mod background;
mod config;
mod deliver;
mod dispatch;
pub mod email;
pub mod push;
pub mod queue;
pub mod sign;
pub mod target;
pub mod webhooks;

use std::sync::Arc;

use serde_json::Value;
use sha2::Digest as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ids::{AppId, ChatNumber, Timestamp, UserId};
use crate::model::EventType;
use crate::store::DynStore;

pub use alerts::{Alerts, AlertsConfig, Prefs};
pub use config::WebhooksConfig;
pub use webhooks::{WebhookError, Webhooks};

/// Something that happened in an application, for its webhooks.
#[derive(Clone, Debug)]
pub struct Notice {
    /// The application.
    pub app: AppId,
    /// What happened.
    pub kind: EventType,
    /// The event id: derived from what happened when that can happen only
    /// once (a message's creation), so a notice emitted twice is delivered
    /// with one id; random otherwise.
    pub id: String,
    /// When it happened.
    pub at: Timestamp,
    /// The ordering key: events of one key reach a webhook in the order
    /// they were emitted.
    pub key: String,
    /// The event's `data`.
    pub data: Payload,
}

/// A notice's `data`: ready, or a message whose JSON (and id) the dispatcher
/// makes, off the send path, only when a webhook wants it.
#[derive(Clone, Debug)]
pub enum Payload {
    /// The JSON as it is sent.
    Data(Value),
    /// `message.created`: `{"chat","message"}` of this message.
    Created(Arc<crate::model::Message>),
}

impl Notice {
    /// A notice about a chat: ordered with the chat's other events.
    pub fn chat(app: &AppId, kind: EventType, chat: ChatNumber, data: Value) -> Notice {
        Notice {
            app: app.clone(),
            kind,
            id: random_id(),
            at: Timestamp::now(),
            key: format!("c{chat}"),
            data: Payload::Data(data),
        }
    }

    /// `message.created` for `m`: its id (the same however often it is made
    /// for this message: a fan-out done again, a replay) and its data are
    /// made by [`resolve`](Self::resolve), off the send path.
    pub fn created(m: Arc<crate::model::Message>) -> Notice {
        Notice {
            app: m.app.clone(),
            kind: EventType::MessageCreated,
            id: String::new(),
            at: m.created_at,
            key: format!("c{}", m.chat),
            data: Payload::Created(m),
        }
    }

    /// Makes a `created` notice whole: its id and its data.
    pub fn resolve(&mut self) {
        if let Payload::Created(m) = &self.data {
            let data = serde_json::json!({ "chat": m.chat, "message": crate::delivery::message_out(m) });
            self.id = stable_id(&self.app, self.kind, &[&m.chat.to_string(), &m.number.to_string()]);
            self.data = Payload::Data(data);
        }
    }

    /// A notice about a user: ordered with the user's other events.
    pub fn user(app: &AppId, kind: EventType, user: &UserId, data: Value) -> Notice {
        Notice {
            app: app.clone(),
            kind,
            id: random_id(),
            at: Timestamp::now(),
            key: format!("u{user}"),
            data: Payload::Data(data),
        }
    }

    /// Makes the id a digest of `parts` (and the application and type): the
    /// same happening always gets the same id.
    pub fn with_stable_id(mut self, parts: &[&str]) -> Notice {
        self.id = stable_id(&self.app, self.kind, parts);
        self
    }

    /// The queue entry of this (resolved) notice, whose `body` it carries.
    pub fn entry(&self, body: String) -> queue::Entry {
        queue::Entry { id: self.id.clone(), kind: self.kind.as_str().to_owned(), at: self.at.millis(), body }
    }

    /// The body POSTed to a webhook (of a [`resolve`](Self::resolve)d notice).
    pub fn body(&self) -> String {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            id: &'a str,
            #[serde(rename = "type")]
            kind: &'a str,
            created_at: String,
            app: &'a str,
            data: &'a Value,
        }
        let data = match &self.data {
            Payload::Data(data) => data,
            Payload::Created(_) => &Value::Null,
        };
        let body = Body {
            id: &self.id,
            kind: self.kind.as_str(),
            created_at: self.at.to_rfc3339(),
            app: self.app.as_str(),
            data,
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// The id of a happening that can happen once: a digest of the application,
/// the type and `parts`.
fn stable_id(app: &AppId, kind: EventType, parts: &[&str]) -> String {
    let mut digest = sha2::Sha256::new();
    digest.update(app.as_str().as_bytes());
    digest.update(b"\0");
    digest.update(kind.as_str().as_bytes());
    for part in parts {
        digest.update(b"\0");
        digest.update(part.as_bytes());
    }
    let bytes = digest.finalize();
    format!("evt_{}", base64_url(&bytes[..16]))
}

/// Logs `what` at most once every ten seconds per process (a drop happens per
/// event; the counter counts them all).
pub(crate) fn warn_dropped(what: &'static str) {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = Timestamp::now().millis();
    let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    if now - last >= 10_000
        && LAST
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
    {
        tracing::warn!("{what}");
    }
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn random_id() -> String {
    format!("evt_{}", crate::ids::random_url_safe(16))
}

/// The domain's handle to the notifier: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Notice>>,
    alerts: Alerts,
    prefs: Option<Prefs>,
    /// Whether Web Push subscriptions may name http:// endpoints.
    push_allow_http: bool,
    /// Email digests (their unsubscribe links are checked with its key).
    email: Option<Arc<email::EmailSender>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.tx.is_some() { "Notifier" } else { "Notifier(off)" })
    }
}

impl Notifier {
    /// A notifier that drops everything (benchmarks of the domain alone, unit tests).
    pub fn off() -> Self {
        Self { tx: None, alerts: Alerts::default(), prefs: None, push_allow_http: false, email: None }
    }

    /// Hands a notice to the dispatcher. When the hand-off is full (the queue
    /// is down or far behind), the notice is dropped and counted
    /// (`weft_webhook_notices_dropped_total`): the send path never waits.
    pub fn emit(&self, notice: Notice) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.try_send(notice).is_err() {
            crate::metrics::metrics().webhook_notices_dropped.inc();
            warn_dropped(
                "webhook events dropped: the hand-off to the queue is full (the node is overloaded or the queue is down)",
            );
        }
    }

    /// Hands a committed message to the webhooks (`message.created`) and to
    /// the push and email gatherer: one copy of it, shared, and nothing else
    /// on the send path (its JSON is made off it, only if a webhook wants it).
    /// `members` are the chat's members as the fan-out read them, if it could.
    pub fn message_created(&self, m: &crate::model::Message, members: Option<Arc<[crate::ids::UserId]>>) {
        if self.tx.is_none() && !self.alerts.is_on() {
            return;
        }
        let m = Arc::new(m.clone());
        self.alerts.message(&m, members);
        self.emit(Notice::created(m));
    }

    /// This node's copy of users' settings and devices (forget a user's after changing them).
    pub fn prefs(&self) -> Option<&Prefs> {
        self.prefs.as_ref()
    }

    /// Whether Web Push subscriptions may name http:// endpoints (`push.allow_http`).
    pub fn push_allow_http(&self) -> bool {
        self.push_allow_http
    }

    /// Whether `token` is the unsubscribe token of (`app`, `user`).
    pub fn check_unsubscribe(&self, app: &str, user: &str, token: &str) -> bool {
        self.email.as_ref().is_some_and(|e| e.check_unsubscribe(app, user, token))
    }
}

/// Why the notifier could not start (a push credential or the SMTP URL is malformed).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `[push]` is malformed.
    #[error("push notifications are misconfigured: {0}")]
    Push(String),
    /// `[email]` is malformed.
    #[error("email is misconfigured: {0}")]
    Email(String),
    /// The delivery thread could not start.
    #[error("cannot start the delivery thread: {0}")]
    Background(String),
}

/// The running notifier: the domain's handle, the webhooks service, and
/// the tasks behind them (stopped by the shutdown token, tracked).
pub struct Running {
    /// The handle for the domain.
    pub notifier: Notifier,
    /// The webhooks service for the API.
    pub webhooks: Webhooks,
}

/// What the notifier is built from.
pub struct Parts<'a> {
    /// `[webhooks]`.
    pub webhooks: &'a WebhooksConfig,
    /// `[notifications]`.
    pub alerts: &'a AlertsConfig,
    /// `[push]`.
    pub push: &'a push::PushConfig,
    /// `[email]`.
    pub email: &'a email::EmailConfig,
    /// The store.
    pub store: DynStore,
    /// The durable queue (Redis, or a file of its own on one node).
    pub queue: queue::Queue,
    /// Who is online where.
    pub fabric: Arc<dyn crate::delivery::Fabric>,
}

/// Starts the dispatcher, the push and email gatherer, and the delivery workers.
pub fn spawn(
    parts: Parts<'_>,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> Result<Running, NotifyError> {
    let Parts {
        webhooks: config,
        alerts: alerts_config,
        push: push_config,
        email: email_config,
        store,
        queue,
        fabric,
    } = parts;
    let pushers = push::Pushers::new(push_config).map_err(|e| NotifyError::Push(e.to_string()))?;
    let email_sender =
        email::EmailSender::new(email_config).map_err(|e| NotifyError::Email(e.to_string()))?.map(Arc::new);
    let queue = Arc::new(queue);
    let webhooks = Webhooks::new(Arc::clone(&store), Arc::clone(&queue), config.clone());
    let (tx, rx) = mpsc::channel(config.handoff.max(1));
    let wake = Arc::new(tokio::sync::Notify::new());
    let prefs =
        Prefs::new(Arc::clone(&store), std::time::Duration::from_millis(alerts_config.prefs_cache_ms));
    let (alerts, workers) = alerts::spawn(
        alerts::Ctx {
            config: alerts_config.clone(),
            prefs: prefs.clone(),
            queue: Arc::clone(&queue),
            fabric,
            pushers: Some(pushers),
            email: email_sender.clone(),
            wake: Arc::clone(&wake),
        },
        tracker,
        shutdown.clone(),
    );
    tracker.spawn(dispatch::run(
        rx,
        webhooks.clone(),
        Arc::clone(&queue),
        Arc::clone(&wake),
        shutdown.clone(),
    ));
    deliver::spawn(webhooks.clone(), workers, queue, wake, config, tracker, shutdown)
        .map_err(|e| NotifyError::Background(e.to_string()))?;
    let notifier = Notifier {
        tx: Some(tx),
        alerts,
        prefs: Some(prefs),
        push_allow_http: push_config.allow_http,
        email: email_sender,
    };
    Ok(Running { notifier, webhooks })
}
