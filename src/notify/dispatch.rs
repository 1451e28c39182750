//! From notices to queue entries: one task per node takes what the domain
//! emitted, in batches, and pushes an entry into the lane of every webhook
//! that wants it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::queue::{Entry, Lane, Queue};
use super::{Notice, Webhooks};

/// Most notices pushed in one queue call.
const BATCH: usize = 512;

/// Pushes are at least this far apart: under load each is a larger batch
/// (one fsync on the local queue, one round trip to Redis, for ~5 ms of
/// events), while the first notice after a quiet spell goes at once.
const SPACING: Duration = Duration::from_millis(5);

/// Runs until `shutdown`, then pushes what is already handed off and stops.
pub(super) async fn run(
    mut rx: mpsc::Receiver<Notice>,
    webhooks: Webhooks,
    queue: Arc<Queue>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_push: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
            () = shutdown.cancelled() => {
                while batch.len() < BATCH * 8 && let Ok(notice) = rx.try_recv() {
                    batch.push(notice);
                }
                if !batch.is_empty() {
                    let _ = push(&webhooks, &queue, &batch, &CancellationToken::new(), 1).await;
                }
                // Past that the node does not wait: what is left is counted, not lost silently.
                let mut left = 0u64;
                while rx.try_recv().is_ok() {
                    left += 1;
                }
                if left > 0 {
                    crate::metrics::metrics().webhook_notices_dropped.inc_by(left);
                    tracing::warn!(notices = left, "webhook notices dropped at shutdown: more were waiting than a stop drains");
                }
                return;
            }
        }
        if let Some(at) = last_push
            && batch.len() < BATCH
        {
            // Too soon after the last push: gather more until the spacing is over.
            let _ = tokio::time::timeout_at(at + SPACING, async {
                loop {
                    let room = BATCH - batch.len();
                    if room == 0 || rx.recv_many(&mut batch, room).await == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        last_push = Some(tokio::time::Instant::now());
        if push(&webhooks, &queue, &batch, &shutdown, u32::MAX).await {
            wake.notify_waiters();
        }
        batch.clear();
    }
}

/// Pushes a batch, retrying (with backoff, at most `tries` times) while the
/// queue or the store is down; returns whether anything was pushed.
async fn push(
    webhooks: &Webhooks,
    queue: &Queue,
    batch: &[Notice],
    shutdown: &CancellationToken,
    tries: u32,
) -> bool {
    let m = crate::metrics::metrics();
    let mut wait = Duration::from_millis(100);
    for _ in 0..tries {
        match entries(webhooks, batch).await {
            Ok(items) if items.is_empty() => return false,
            Ok(items) => match queue.push(&items, crate::ids::Timestamp::now().millis()).await {
                Ok(()) => {
                    m.webhook_events_queued.inc_by(items.len() as u64);
                    return true;
                }
                Err(e) => tracing::warn!(error = %e, "cannot queue webhook events; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot read webhooks; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => break,
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
    m.webhook_notices_dropped.inc_by(batch.len() as u64);
    tracing::error!(notices = batch.len(), "webhook events dropped: the queue is unavailable");
    false
}

/// One entry per (notice, webhook that wants it).
async fn entries(
    webhooks: &Webhooks,
    batch: &[Notice],
) -> Result<Vec<(Lane, Entry)>, crate::store::StoreError> {
    let mut items = Vec::new();
    for notice in batch {
        let hooks = webhooks.of_app(&notice.app).await?;
        let wanted: Vec<_> =
            hooks.iter().filter(|w| w.disabled_at.is_none() && w.events.contains(&notice.kind)).collect();
        if wanted.is_empty() {
            continue;
        }
        // Made whole only now, and only for a webhook that wants it.
        let mut notice = notice.clone();
        notice.resolve();
        let body = notice.body();
        for webhook in wanted {
            items.push((Lane::webhook(&notice.app, &webhook.id, &notice.key), notice.entry(body.clone())));
        }
    }
    Ok(items)
}
