//! The webhook queue: durable lanes of events, each delivered in order, one
//! entry at a time, by whichever node holds the lane's lease.
//!
//! A **lane** is one webhook's events of one ordering key (a chat, a user).
//! Its entries are delivered head first; a failed head is retried after a
//! backoff and holds the lane (so order is kept) until it is delivered or
//! given up. A schedule maps every non-empty lane to when it is next due.
//! Taking a lane **leases** it: it becomes due again `lease` later, so when
//! the node that took it dies mid-delivery another node takes it over and
//! delivers the same head again (at least once; receivers dedupe by the
//! event id).
//!
//! Two backends with the same operations: [`redis`] for a cluster (every node
//! shares the lanes), [`local`] for one node without Redis (a redb file of its
//! own beside the store).

pub mod local;
pub mod redis;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{AppId, WebhookId};

/// Why the queue could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis did not answer or refused.
    #[error("redis unavailable")]
    Redis(#[source] ::redis::RedisError),
    /// The local queue's file failed.
    #[error("the local webhook queue failed")]
    Local(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The queue holds data this build cannot read.
    #[error("the webhook queue holds malformed data: {what}")]
    Corrupt {
        /// What could not be read.
        what: &'static str,
    },
}

/// Whom a lane's entries go to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sink {
    /// A webhook: its events, delivered one at a time.
    Webhook(WebhookId),
    /// A user's devices: the messages of one chat to push, taken together.
    Push,
    /// A user's email: one unread-digest check.
    Email,
}

impl Sink {
    fn encode(&self) -> String {
        match self {
            Sink::Webhook(id) => format!("w:{id}"),
            Sink::Push => "push".to_owned(),
            Sink::Email => "email".to_owned(),
        }
    }

    fn decode(raw: &str) -> Option<Sink> {
        match raw {
            "push" => Some(Sink::Push),
            "email" => Some(Sink::Email),
            _ => raw.strip_prefix("w:").map(|id| Sink::Webhook(WebhookId::from_store(id.to_owned()))),
        }
    }
}

/// One sink's entries of one ordering key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lane {
    /// The application.
    pub app: AppId,
    /// Whom its entries go to.
    pub sink: Sink,
    /// The ordering key: `c<chat>` for a chat's events, `u<user>` for a
    /// user's; `<user>|<chat>` for pushes; the user for emails.
    pub key: String,
}

impl Lane {
    /// A webhook's lane.
    pub fn webhook(app: &AppId, webhook: &WebhookId, key: &str) -> Lane {
        Lane { app: app.clone(), sink: Sink::Webhook(webhook.clone()), key: key.to_owned() }
    }

    /// The webhook whose lane this is, if it is one.
    pub fn webhook_id(&self) -> Option<&WebhookId> {
        match &self.sink {
            Sink::Webhook(id) => Some(id),
            Sink::Push | Sink::Email => None,
        }
    }

    /// The lane as one string: `<app>|<sink>|<key>` (neither an application
    /// id nor a sink holds a `|`).
    pub fn encode(&self) -> String {
        format!("{}|{}|{}", self.app, self.sink.encode(), self.key)
    }

    /// The lane [`encode`](Self::encode) wrote.
    pub fn decode(raw: &str) -> Option<Lane> {
        let mut parts = raw.splitn(3, '|');
        let (app, sink, key) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Lane { app: AppId::new(app), sink: Sink::decode(sink)?, key: key.to_owned() })
    }
}

/// One queued event: what is POSTed, and what the delivery log says of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The event id (the body's `id`): stable across retries.
    pub id: String,
    /// The event type's wire name.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened (ms since the epoch).
    pub at: i64,
    /// The JSON body, exactly as POSTed.
    pub body: String,
}

impl Entry {
    /// The entry as stored.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// An entry as stored.
    pub fn decode(raw: &str) -> Result<Entry, QueueError> {
        serde_json::from_str(raw).map_err(|_| QueueError::Corrupt { what: "webhook queue entry" })
    }
}

/// How often the head of a lane was tried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempts {
    /// Failed attempts so far.
    pub failed: u32,
    /// When the first attempt failed (ms since the epoch; 0: none failed).
    pub first_failed_at: i64,
}

/// The head of a lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The entry.
    pub entry: Entry,
    /// Its failed attempts so far.
    pub attempts: Attempts,
}

/// What became of one delivery attempt (the delivery log's lines).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// The event id.
    pub event_id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Which attempt this was (1 for the first).
    pub attempt: u32,
    /// `delivered`, `failed`, `gave_up` or `disabled`.
    pub outcome: String,
    /// The HTTP status the endpoint answered, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed (timeout, connection refused…), never the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the attempt ended (ms since the epoch).
    pub at: i64,
    /// How long it took, in ms.
    pub duration_ms: u64,
    /// When it is tried again (ms since the epoch), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<i64>,
}

/// Delivery log lines kept per webhook (the newest).
pub const LOG_LEN: usize = 100;

/// The queue, on its backend.
pub enum Queue {
    /// One node without Redis.
    Local(local::LocalQueue),
    /// Every node of a cluster (boxed: its scripts make it the larger).
    Redis(Box<redis::RedisQueue>),
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Queue::Local(_) => "Queue::Local",
            Queue::Redis(_) => "Queue::Redis",
        })
    }
}

impl Queue {
    /// Appends entries to their lanes, in the order given, and makes each lane
    /// due at `due` unless it is scheduled already (leased, backing off, or
    /// waiting to gather more).
    pub async fn push(&self, items: &[(Lane, Entry)], due: i64) -> Result<(), QueueError> {
        match self {
            Queue::Local(q) => q.push(items, due).await,
            Queue::Redis(q) => q.push(items, due).await,
        }
    }

    /// Puts `entry` in `lane`, due at `due`, only when the lane is empty;
    /// returns whether it did (one pending check per lane).
    pub async fn push_once(&self, lane: &Lane, entry: &Entry, due: i64) -> Result<bool, QueueError> {
        match self {
            Queue::Local(q) => q.push_once(lane, entry, due).await,
            Queue::Redis(q) => q.push_once(lane, entry, due).await,
        }
    }

    /// The first `max` entries of a lane, head first.
    pub async fn entries(&self, lane: &Lane, max: usize) -> Result<Vec<Entry>, QueueError> {
        match self {
            Queue::Local(q) => q.entries(lane, max).await,
            Queue::Redis(q) => q.entries(lane, max).await,
        }
    }

    /// Leases up to `n` lanes due at `now`: each is due again at `now + lease`
    /// unless it is settled before.
    pub async fn lease(&self, now: i64, lease: Duration, n: usize) -> Result<Vec<Lane>, QueueError> {
        match self {
            Queue::Local(q) => q.lease(now, lease, n).await,
            Queue::Redis(q) => q.lease(now, lease, n).await,
        }
    }

    /// The head of a lane, if it has one.
    pub async fn head(&self, lane: &Lane) -> Result<Option<Head>, QueueError> {
        match self {
            Queue::Local(q) => q.head(lane).await,
            Queue::Redis(q) => q.head(lane).await,
        }
    }

    /// Removes the lane's first `n` entries if its head is still `id`
    /// (delivered, or given up) and returns the next head, keeping the lease
    /// (due at `now + lease`); with no next head the lane leaves the schedule.
    /// When `id` is not the head (another node took the lane over) nothing
    /// changes and the answer is `None`: the caller stops working the lane.
    pub async fn pop(
        &self,
        lane: &Lane,
        id: &str,
        n: usize,
        now: i64,
        lease: Duration,
    ) -> Result<Option<Head>, QueueError> {
        match self {
            Queue::Local(q) => q.pop(lane, id, n.max(1), now, lease).await,
            Queue::Redis(q) => q.pop(lane, id, n.max(1), now, lease).await,
        }
    }

    /// Head `id` of `lane` was delivered to `webhook`: logs `record`, clears
    /// the webhook's failing mark and pops the head, as [`log`](Self::log),
    /// [`healthy`](Self::healthy) and [`pop`](Self::pop) would — in one write
    /// on the local queue, in one round of pipelined commands on Redis.
    pub async fn delivered(
        &self,
        lane: &Lane,
        id: &str,
        webhook: &WebhookId,
        record: &LogRecord,
        now: i64,
        lease: Duration,
    ) -> Result<Option<Head>, QueueError> {
        match self {
            Queue::Local(q) => q.delivered(lane, id, webhook, record, now, lease).await,
            Queue::Redis(q) => {
                let (logged, healthy, popped) = tokio::join!(
                    q.log(&lane.app, webhook, record),
                    q.healthy(&lane.app, webhook),
                    q.pop(lane, id, 1, now, lease)
                );
                logged?;
                healthy?;
                popped
            }
        }
    }

    /// Records a failed attempt at head `id` and makes the lane due at `due`
    /// (nothing, when `id` is not the head any more).
    pub async fn retry(&self, lane: &Lane, id: &str, attempts: Attempts, due: i64) -> Result<(), QueueError> {
        match self {
            Queue::Local(q) => q.retry(lane, id, attempts, due).await,
            Queue::Redis(q) => q.retry(lane, id, attempts, due).await,
        }
    }

    /// Gives a leased lane back, due at `due` (the node stops; fairness).
    pub async fn release(&self, lane: &Lane, due: i64) -> Result<(), QueueError> {
        match self {
            Queue::Local(q) => q.release(lane, due).await,
            Queue::Redis(q) => q.release(lane, due).await,
        }
    }

    /// Drops a lane and everything in it (its webhook is gone or disabled).
    pub async fn drop_lane(&self, lane: &Lane) -> Result<(), QueueError> {
        match self {
            Queue::Local(q) => q.drop_lane(lane).await,
            Queue::Redis(q) => q.drop_lane(lane).await,
        }
    }

    /// Adds a line to a webhook's delivery log (the newest [`LOG_LEN`] are kept).
    pub async fn log(&self, app: &AppId, webhook: &WebhookId, record: &LogRecord) -> Result<(), QueueError> {
        match self {
            Queue::Local(q) => q.log(app, webhook, record).await,
            Queue::Redis(q) => q.log(app, webhook, record).await,
        }
    }

    /// A webhook's delivery log, newest first.
    pub async fn logs(&self, app: &AppId, webhook: &WebhookId) -> Result<Vec<LogRecord>, QueueError> {
        match self {
            Queue::Local(q) => q.logs(app, webhook).await,
            Queue::Redis(q) => q.logs(app, webhook).await,
        }
    }

    /// Marks a webhook failing from `now` unless it already was; returns
    /// since when it has been failing.
    pub async fn failing(&self, app: &AppId, webhook: &WebhookId, now: i64) -> Result<i64, QueueError> {
        match self {
            Queue::Local(q) => q.failing(app, webhook, now).await,
            Queue::Redis(q) => q.failing(app, webhook, now).await,
        }
    }

    /// Marks a webhook healthy (a delivery succeeded).
    pub async fn healthy(&self, app: &AppId, webhook: &WebhookId) -> Result<(), QueueError> {
        match self {
            Queue::Local(q) => q.healthy(app, webhook).await,
            Queue::Redis(q) => q.healthy(app, webhook).await,
        }
    }

    /// Forgets a webhook's log and health (it was deleted). Its lanes are
    /// dropped as the workers meet them.
    pub async fn forget(&self, app: &AppId, webhook: &WebhookId) -> Result<(), QueueError> {
        match self {
            Queue::Local(q) => q.forget(app, webhook).await,
            Queue::Redis(q) => q.forget(app, webhook).await,
        }
    }

    /// Lanes in the schedule, and how many of them are due at `now` (metrics).
    pub async fn depth(&self, now: i64) -> Result<Depth, QueueError> {
        match self {
            Queue::Local(q) => q.depth(now).await,
            Queue::Redis(q) => q.depth(now).await,
        }
    }
}

/// How full the queue is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Lanes with entries.
    pub lanes: u64,
    /// Of them, due now (not leased, not backing off).
    pub due: u64,
    /// When the oldest head still being retried first failed (ms since the
    /// epoch; 0: none is), for the retry-age gauge.
    pub oldest_failing: i64,
}
