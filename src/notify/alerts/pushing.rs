//! The worker of a push lane (one user, one chat): everything queued in it
//! becomes one notification to each of the user's devices.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::Rng as _;

use super::Ctx;
use super::gather::PushItem;
use crate::ids::{ChatNumber, Timestamp, UserId};
use crate::model::{Device, PushProvider};
use crate::notify::push::{PushError, PushMessage};
use crate::notify::queue::{Attempts, Lane};

/// Most entries one notification sums up.
const MAX_ITEMS: usize = 200;

/// How long a lane is held while its notification is sent.
const LEASE: Duration = Duration::from_secs(30);

pub(super) async fn work(ctx: &Ctx, lane: Lane) {
    let m = crate::metrics::metrics();
    let now = Timestamp::now().millis();
    let entries = match ctx.queue.entries(&lane, MAX_ITEMS).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a push lane");
            return;
        }
    };
    let Some(first) = entries.first() else {
        let _ = ctx.queue.release(&lane, now).await;
        return;
    };
    let Some((user, chat)) = parse_key(&lane.key) else {
        let _ = ctx.queue.drop_lane(&lane).await;
        return;
    };
    let done = |outcome: &'static str| m.push_deliveries.with_label_values(&[outcome]).inc();
    // Back meanwhile: they see the messages themselves.
    if ctx.fabric.is_online(&lane.app, &user).await {
        done("online_again");
        let _ = ctx.queue.pop(&lane, &first.id, entries.len(), now, LEASE).await;
        let _ = ctx.queue.release(&lane, now).await;
        // Entries queued meanwhile are due now: the lease loop need not wait for its poll.
        ctx.wake.notify_waiters();
        return;
    }
    let items: Vec<PushItem> = entries.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect();
    let message = compose(ctx, &lane, chat, &items).await;
    // Read afresh: a device removed meanwhile is not pushed again.
    let devices = match ctx.prefs.store().devices(&lane.app, &user).await {
        Ok(devices) => devices,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a user's devices; the push waits");
            retry(ctx, &lane, &first.id, first.at, now).await;
            return;
        }
    };
    let mut again = false;
    for device in &devices {
        match send(ctx, device, &message).await {
            Ok(()) => done("delivered"),
            Err(PushError::InvalidToken) => {
                done("device_removed");
                tracing::info!(app = %lane.app, device = %device.id, "push token refused by its provider: device removed");
                if let Err(e) = ctx.prefs.store().delete_device(&lane.app, &user, &device.id).await {
                    tracing::warn!(error = %e, "cannot remove a dead device");
                }
                ctx.prefs.forget(&lane.app, &user);
            }
            Err(PushError::Retry { reason, .. }) => {
                done("retried");
                tracing::warn!(app = %lane.app, device = %device.id, reason = %reason, "push failed; retrying");
                again = true;
            }
            Err(e) => {
                done("failed");
                tracing::warn!(app = %lane.app, device = %device.id, error = %e, "push refused");
            }
        }
    }
    let retry_for = i64::try_from(ctx.config.push_retry_for_ms).unwrap_or(i64::MAX);
    if again && now - first.at < retry_for {
        // The whole notification again: devices that got it see it replaced (same collapse key).
        retry(ctx, &lane, &first.id, first.at, now).await;
        return;
    }
    let _ = ctx.queue.pop(&lane, &first.id, entries.len(), now, LEASE).await;
    let _ = ctx.queue.release(&lane, now).await;
    // Entries queued meanwhile are due now: the lease loop need not wait for its poll.
    ctx.wake.notify_waiters();
}

/// Schedules the lane's next try with exponential backoff and jitter (at most 5 minutes).
async fn retry(ctx: &Ctx, lane: &Lane, id: &str, first_at: i64, now: i64) {
    let failed = ctx.queue.head(lane).await.ok().flatten().map_or(1, |h| h.attempts.failed + 1);
    let base: u64 = 1_000u64.saturating_mul(1 << failed.min(12));
    let wait = rand::rng().random_range(base / 2..=base).min(300_000);
    let attempts = Attempts { failed, first_failed_at: first_at };
    let _ = ctx.queue.retry(lane, id, attempts, now.saturating_add(i64::try_from(wait).unwrap_or(0))).await;
}

fn parse_key(key: &str) -> Option<(UserId, ChatNumber)> {
    let (user, chat) = key.rsplit_once('|')?;
    Some((UserId::parse(user).ok()?, ChatNumber(chat.parse().ok()?)))
}

async fn send(ctx: &Ctx, device: &Device, message: &PushMessage) -> Result<(), PushError> {
    let Some(pushers) = &ctx.pushers else {
        return Err(PushError::NotConfigured);
    };
    match device.provider {
        PushProvider::Fcm => pushers.send_fcm(&device.token, message).await,
        PushProvider::WebPush => pushers.send_webpush(&device.token, message).await,
        PushProvider::Apns => Err(PushError::NotConfigured),
    }
}

/// "alice: hi" for one message, "3 new messages in Team" for more; the
/// chat's name (or the application's) as the title.
async fn compose(ctx: &Ctx, lane: &Lane, chat: ChatNumber, items: &[PushItem]) -> PushMessage {
    let store = ctx.prefs.store();
    let chat_name = store.chat(&lane.app, chat).await.ok().flatten().and_then(|c| c.name);
    let app_name = match store.application_by_id(&lane.app).await {
        Ok(Some(app)) => app.name,
        _ => String::new(),
    };
    let count: u64 = items.iter().map(|i| i.count).sum();
    let last = items.iter().max_by_key(|i| i.seq);
    let mentioned = items.iter().any(|i| i.mentioned);
    let sender = last.and_then(|i| i.sender.clone()).unwrap_or_else(|| app_name.clone());
    let preview = last.map(|i| i.preview.clone()).unwrap_or_default();
    let place = chat_name.clone().unwrap_or_else(|| format!("chat {chat}"));
    let body = match (count, mentioned) {
        (1, true) => format!("{sender} mentioned you: {preview}"),
        (1, false) => format!("{sender}: {preview}"),
        (n, true) => format!("{n} new messages in {place}, one mentions you"),
        (n, false) => format!("{n} new messages in {place}"),
    };
    let title = chat_name.unwrap_or(if app_name.is_empty() { place } else { app_name });
    let mut data = BTreeMap::new();
    data.insert("app".to_owned(), lane.app.as_str().to_owned());
    data.insert("chat".to_owned(), chat.to_string());
    data.insert("count".to_owned(), count.to_string());
    if let Some(last) = last {
        data.insert("seq".to_owned(), last.seq.to_string());
    }
    PushMessage { title, body, data, collapse_key: format!("chat-{chat}") }
}
