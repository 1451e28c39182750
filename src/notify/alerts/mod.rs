//! Reaching members who are away: push notifications to their devices and
//! unread digests by email, fed by the messages committed.
//!
//! - The domain hands every committed message to [`Alerts::message`] (never
//!   waiting: a bounded hand-off, as webhooks have).
//! - `gather`: one task per node gathers them per chat for `coalesce_ms`,
//!   then asks once per chat who of its members has no session anywhere (the
//!   cluster's directory), what each wants (settings: push, email, the chat's
//!   level, quiet hours, mentions) and queues, in the durable queue, one push
//!   entry per (user, chat) and one pending email check per user (due
//!   `email_after_ms` later).
//! - `pushing` and `digest`: the delivery workers of those lanes (taken by the
//!   same lease loop as webhooks): a lane of pushes becomes one notification
//!   ("3 new messages in Team") to each of the user's devices; an email check
//!   sends the digest if the user is still away with unread messages.
//! - [`prefs`]: settings and devices read through a short per-node copy.

mod digest;
mod gather;
pub mod prefs;
mod pushing;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::email::EmailSender;
use super::push::Pushers;
use super::queue::{Lane, Queue, Sink};
use crate::delivery::Fabric;
use crate::ids::UserId;
use crate::model::Message;

pub use prefs::Prefs;

/// `[notifications]`: when and how away members are told.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// A chat's messages are gathered this long before its away members are
    /// pushed one notification for them all, in ms.
    pub coalesce_ms: u64,
    /// A member away this long with unread messages gets a digest email (at
    /// most one per this long), in ms (15 minutes).
    pub email_after_ms: u64,
    /// How long a node trusts its copy of a user's settings and devices, in ms.
    pub prefs_cache_ms: u64,
    /// Chats with more members than this push nobody (a broadcast channel's
    /// readers subscribe to it otherwise).
    pub max_members: usize,
    /// A push still failing this long after it was queued is dropped, in ms.
    pub push_retry_for_ms: u64,
    /// Messages waiting between the send path and the gatherer (past it they
    /// are dropped and counted).
    pub handoff: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            coalesce_ms: 1_000,
            email_after_ms: 900_000,
            prefs_cache_ms: 5_000,
            max_members: 10_000,
            push_retry_for_ms: 3_600_000,
            handoff: 65_536,
        }
    }
}

/// A committed message, for the gatherer (which reads its preview and mentions off the send path).
#[derive(Clone, Debug)]
pub struct Alert {
    /// The message, shared with the webhook dispatcher.
    pub message: Arc<Message>,
    /// The chat's members as its fan-out read them (`None`: it could not; the
    /// gatherer reads them itself).
    pub members: Option<Arc<[UserId]>>,
}

/// Characters of a body a push shows.
pub const PREVIEW_CHARS: usize = 120;

/// The first `PREVIEW_CHARS` characters of `body`, on one line (as digests cut
/// their lines: no control or bidi-override characters, an ellipsis when cut).
pub fn preview(body: &str) -> String {
    super::email::clip(body, PREVIEW_CHARS)
}

/// The domain's handle: cheap to clone, never blocks.
#[derive(Clone, Debug, Default)]
pub struct Alerts {
    tx: Option<mpsc::Sender<Alert>>,
}

impl Alerts {
    /// Whether messages are gathered (a push provider or email is configured).
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands a committed message to the gatherer (dropped and counted when the hand-off is full).
    pub fn message(&self, m: &Arc<Message>, members: Option<Arc<[UserId]>>) {
        let Some(tx) = &self.tx else {
            return;
        };
        if m.is_deleted() {
            return;
        }
        if tx.try_send(Alert { message: Arc::clone(m), members }).is_err() {
            crate::metrics::metrics().alerts_dropped.inc();
            super::warn_dropped(
                "messages dropped before the push gatherer: its hand-off is full (the node is overloaded)",
            );
        }
    }
}

/// What the gatherer and the workers share.
pub(super) struct Ctx {
    pub(super) config: AlertsConfig,
    pub(super) prefs: Prefs,
    pub(super) queue: Arc<Queue>,
    pub(super) fabric: Arc<dyn Fabric>,
    pub(super) pushers: Option<Pushers>,
    pub(super) email: Option<Arc<EmailSender>>,
    /// Wakes the lease loop when something was queued.
    pub(super) wake: Arc<Notify>,
}

/// The workers of push and email lanes (the lease loop calls [`work`](Self::work)).
#[derive(Clone)]
pub struct AlertWorkers {
    ctx: Arc<Ctx>,
}

impl AlertWorkers {
    /// Works a leased push or email lane.
    pub async fn work(&self, lane: Lane) {
        match lane.sink {
            Sink::Push => pushing::work(&self.ctx, lane).await,
            Sink::Email => digest::work(&self.ctx, lane).await,
            Sink::Webhook(_) => {}
        }
    }
}

/// Starts the gatherer; returns the domain's handle and the lane workers.
/// With no push provider and no email configured nothing is gathered (the
/// handle drops every message): nobody could be told.
pub(super) fn spawn(ctx: Ctx, tracker: &TaskTracker, shutdown: CancellationToken) -> (Alerts, AlertWorkers) {
    let can_tell =
        ctx.email.is_some() || ctx.pushers.as_ref().is_some_and(|p| p.has_fcm() || p.has_webpush());
    let ctx = Arc::new(ctx);
    if !can_tell {
        tracing::info!("push and email are off ([push], [email]): away members are not notified");
        return (Alerts { tx: None }, AlertWorkers { ctx });
    }
    let (tx, rx) = mpsc::channel(ctx.config.handoff.max(1));
    let period = Duration::from_millis(ctx.config.coalesce_ms.max(1));
    tracker.spawn(gather::run(rx, Arc::clone(&ctx), period, shutdown));
    (Alerts { tx: Some(tx) }, AlertWorkers { ctx })
}
