//! The worker of an email lane (one user): when the check is due, a user
//! still away with unread messages gets one digest of their chats.

use std::time::Duration;

use super::Ctx;
use crate::ids::{MessageNumber, Timestamp, UserId};
use crate::model::{ChatLevel, MessageRange, Page};
use crate::notify::email::{ChatDigest, Digest, EmailError, EmailSender, Line};
use crate::notify::queue::{Attempts, Lane};

/// Chats one digest looks at (the user's first, by number).
const MAX_CHATS: usize = 200;
/// Unread messages shown per chat.
const FIRST_LINES: usize = 3;
const LEASE: Duration = Duration::from_secs(60);

pub(super) async fn work(ctx: &Ctx, lane: Lane) {
    let m = crate::metrics::metrics();
    let now = Timestamp::now().millis();
    let entries = match ctx.queue.entries(&lane, 16).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read an email lane");
            return;
        }
    };
    let Some(first) = entries.first() else {
        let _ = ctx.queue.release(&lane, now).await;
        return;
    };
    let finish = |outcome: &'static str| {
        m.email_digests.with_label_values(&[outcome]).inc();
        let (queue, lane, id, n) = (&ctx.queue, &lane, first.id.clone(), entries.len());
        async move {
            let _ = queue.pop(lane, &id, n, now, LEASE).await;
            let _ = queue.release(lane, now).await;
        }
    };
    let Ok(user) = UserId::parse(&lane.key) else {
        let _ = ctx.queue.drop_lane(&lane).await;
        return;
    };
    let Some(sender) = &ctx.email else {
        return finish("not_configured").await;
    };
    if ctx.fabric.is_online(&lane.app, &user).await {
        return finish("online_again").await;
    }
    let store = ctx.prefs.store();
    let settings = match store.notification_settings(&lane.app, &user).await {
        Ok(Some(s)) => s,
        Ok(None) => return finish("email_off").await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read notification settings; the digest waits");
            return retry(ctx, &lane, &first.id, first.at, now).await;
        }
    };
    let Some(address) = settings.email_address.clone().filter(|_| settings.email) else {
        return finish("email_off").await;
    };
    let digest = match compose(ctx, sender, &lane, &user, &settings).await {
        Ok(Some(digest)) => digest,
        Ok(None) => return finish("nothing_unread").await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read unread messages; the digest waits");
            return retry(ctx, &lane, &first.id, first.at, now).await;
        }
    };
    match sender.send_digest(&address, &digest).await {
        Ok(()) => finish("sent").await,
        Err(EmailError::Retry(reason)) => {
            m.email_digests.with_label_values(&["retried"]).inc();
            tracing::warn!(app = %lane.app, reason = %reason, "digest email failed; retrying");
            retry(ctx, &lane, &first.id, first.at, now).await;
        }
        Err(e) => {
            tracing::warn!(app = %lane.app, error = %e, "digest email refused");
            finish("failed").await;
        }
    }
}

async fn retry(ctx: &Ctx, lane: &Lane, id: &str, first_at: i64, now: i64) {
    let failed = ctx.queue.head(lane).await.ok().flatten().map_or(1, |h| h.attempts.failed + 1);
    if failed > 8 {
        // About half a day of tries: the next message schedules a new check.
        let _ = ctx.queue.pop(lane, id, usize::MAX, now, LEASE).await;
        let _ = ctx.queue.release(lane, now).await;
        return;
    }
    let wait = 60_000i64.saturating_mul(1 << failed.min(10));
    let attempts = Attempts { failed, first_failed_at: first_at };
    let _ = ctx.queue.retry(lane, id, attempts, now.saturating_add(wait)).await;
}

/// The user's chats with unread messages (not muted), or `None` when none has any.
async fn compose(
    ctx: &Ctx,
    sender: &EmailSender,
    lane: &Lane,
    user: &UserId,
    settings: &crate::model::NotificationSettings,
) -> Result<Option<Digest>, crate::store::StoreError> {
    let store = ctx.prefs.store();
    let app = &lane.app;
    let chats = store.user_chats(app, user, Page { skip: 0, limit: MAX_CHATS }).await?;
    let mut digests = Vec::new();
    for chat in chats {
        if settings.level(chat) == ChatLevel::None {
            continue;
        }
        let newest = store.max_message_number(app, chat).await?;
        let read = store.read_state(app, chat, user).await?.map_or(0, |s| s.read.get());
        if newest <= read {
            continue;
        }
        let range = MessageRange {
            before: Some(MessageNumber(read + FIRST_LINES as u64 + 1)),
            after: Some(MessageNumber(read)),
            page: Page { skip: 0, limit: FIRST_LINES },
        };
        let mut firsts = store.messages(app, chat, range).await?;
        firsts.reverse();
        let first_lines = firsts
            .iter()
            .filter(|m| !m.is_deleted())
            .map(|m| Line {
                sender: m.sender.as_ref().map_or_else(String::new, |u| u.as_str().to_owned()),
                // The renderer cuts it to one line of `email::LINE_CHARS`.
                text: m.body.clone(),
            })
            .collect();
        let name = store.chat(app, chat).await?.and_then(|c| c.name);
        digests.push(ChatDigest { chat: chat.get(), name, unread: newest - read, first_lines });
    }
    if digests.is_empty() {
        return Ok(None);
    }
    let app_name = store.application_by_id(app).await?.map(|a| a.name).unwrap_or_default();
    let unsubscribe_url = sender.unsubscribe_url(app.as_str(), user.as_str());
    Ok(Some(Digest { app_name, user: user.as_str().to_owned(), chats: digests, unsubscribe_url }))
}
