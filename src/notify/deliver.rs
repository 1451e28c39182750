//! The delivery workers: lease due lanes, POST their heads, retry with
//! backoff, give up after `retry_for_ms`, disable a webhook that kept failing
//! for `disable_after_ms`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::alerts::AlertWorkers;
use super::queue::{Attempts, Head, Lane, LogRecord, Queue, Sink};
use super::sign;
use super::target::{PublicResolver, literal_allowed};
use super::{Webhooks, WebhooksConfig};
use crate::ids::{Timestamp, WebhookId};
use crate::model::Webhook;

/// What one attempt came to.
enum Attempt {
    /// The endpoint answered 2xx.
    Delivered(u16),
    /// It answered otherwise, or not at all.
    Failed {
        /// Its status, if it answered.
        status: Option<u16>,
        /// Why, when it did not answer (never the body).
        error: Option<String>,
        /// How long it asked to wait (`Retry-After` on 429/503).
        retry_after: Option<Duration>,
    },
}

#[derive(Clone)]
struct Worker {
    webhooks: Webhooks,
    /// The workers of push and email lanes, which the same lease loop takes.
    alerts: AlertWorkers,
    /// Wakes the lease loop (a lane given back with entries left is due at once).
    wake: Arc<Notify>,
    queue: Arc<Queue>,
    client: reqwest::Client,
    config: Arc<WebhooksConfig>,
    shutdown: CancellationToken,
}

/// Starts this node's workers (and the queue gauges) on the delivery thread.
pub(super) fn spawn(
    webhooks: Webhooks,
    alerts: AlertWorkers,
    queue: Arc<Queue>,
    wake: Arc<Notify>,
    config: &WebhooksConfig,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_millis(config.timeout_ms))
        .connect_timeout(Duration::from_millis(config.timeout_ms))
        // A redirect is a failed attempt: following one could reach an address the URL check refused.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weft-webhooks/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30));
    if !config.allow_private {
        builder = builder.dns_resolver(Arc::new(PublicResolver));
    }
    let client = match builder.build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not delivered");
            return Ok(());
        }
    };
    let background = super::background::start(config.delivery_nice, tracker, shutdown.clone())?;

    let worker = Worker {
        webhooks,
        alerts,
        queue,
        client,
        config: Arc::new(config.clone()),
        shutdown,
        wake: Arc::clone(&wake),
    };
    // On the delivery thread; the lease loop's workers follow it there.
    tracker.spawn_on(gauges(worker.clone()), &background);
    tracker.spawn_on(lease_loop(worker, wake, tracker.clone()), &background);
    Ok(())
}

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

/// Leases due lanes while there are free delivery slots; each lane is worked
/// by a task of its own.
async fn lease_loop(worker: Worker, wake: Arc<Notify>, tracker: TaskTracker) {
    let slots = Arc::new(Semaphore::new(worker.config.concurrency.max(1)));
    let lease = Duration::from_millis(worker.config.lease_ms);
    let poll = Duration::from_millis(worker.config.poll_ms.max(1));
    while !worker.shutdown.is_cancelled() {
        // Registered before the lease, so a push in between still wakes us.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => drop(permit),
                () = worker.shutdown.cancelled() => return,
            }
            continue;
        }
        let lanes = match worker.queue.lease(now_ms(), lease, free).await {
            Ok(lanes) => lanes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot lease webhook lanes");
                Vec::new()
            }
        };
        if lanes.len() == free {
            // Perhaps more are due: take them as soon as slots free up.
            for lane in lanes {
                start(&worker, &slots, &tracker, lane).await;
            }
            continue;
        }
        for lane in lanes {
            start(&worker, &slots, &tracker, lane).await;
        }
        // Nothing more is due: wait for a push on this node or the next poll.
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep(poll) => {}
            () = worker.shutdown.cancelled() => return,
        }
    }
}

async fn start(worker: &Worker, slots: &Arc<Semaphore>, tracker: &TaskTracker, lane: Lane) {
    let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
        return;
    };
    let worker = worker.clone();
    tracker.spawn(async move {
        match lane.sink {
            Sink::Webhook(_) => worker.work(lane).await,
            Sink::Push | Sink::Email => worker.alerts.work(lane).await,
        }
        drop(permit);
    });
}

impl Worker {
    /// Delivers a leased lane's heads in order until it is empty, a head
    /// fails (the lane waits for its retry), `lane_burst` were delivered or
    /// the node stops.
    async fn work(&self, lane: Lane) {
        let Some(webhook_id) = lane.webhook_id().cloned() else {
            return;
        };
        let webhook_id = &webhook_id;
        let lease = Duration::from_millis(self.config.lease_ms);
        let mut head = match self.queue.head(&lane).await {
            Ok(Some(head)) => head,
            Ok(None) => {
                // Empty: `release` takes it out of the schedule.
                let _ = self.queue.release(&lane, now_ms()).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a webhook lane");
                return;
            }
        };
        for _ in 0..self.config.lane_burst.max(1) {
            let current = head;
            let webhook = match self.webhooks.find(&lane.app, webhook_id).await {
                Ok(Some(w)) if w.disabled_at.is_none() => w,
                Ok(_) => {
                    // Deleted or disabled: its events go nowhere.
                    crate::metrics::metrics().webhook_deliveries.with_label_values(&["dropped"]).inc();
                    if let Err(e) = self.queue.drop_lane(&lane).await {
                        tracing::warn!(error = %e, "cannot drop a webhook lane");
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a webhook; its lane waits");
                    let _ = self.queue.release(&lane, now_ms() + 1_000).await;
                    return;
                }
            };
            // No next head: the lane is empty (and out of the schedule), waits
            // for a retry, or was taken over by another node.
            match self.settle(&lane, &webhook, current, lease).await {
                Some(next) => head = next,
                None => return,
            }
            if self.shutdown.is_cancelled() {
                break;
            }
        }
        // Burst spent or stopping: the lane is due again at once, for any node
        // (and this node's lease loop is told so: it does not wait for its poll).
        let _ = self.queue.release(&lane, now_ms()).await;
        self.wake.notify_waiters();
    }

    /// Tries the head once and records what came of it; returns the lane's
    /// next head to go on with, or `None` when there is none to work on now.
    async fn settle(&self, lane: &Lane, webhook: &Webhook, head: Head, lease: Duration) -> Option<Head> {
        let m = crate::metrics::metrics();
        let started = Instant::now();
        let attempt_no = head.attempts.failed + 1;
        let result = self.post(webhook, &head, attempt_no).await;
        let took = started.elapsed();
        m.webhook_attempt_seconds.observe(took.as_secs_f64());
        let now = now_ms();
        let mut record = LogRecord {
            event_id: head.entry.id.clone(),
            kind: head.entry.kind.clone(),
            attempt: attempt_no,
            outcome: String::new(),
            status: None,
            error: None,
            at: now,
            duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            next_retry_at: None,
        };
        let (status, error, retry_after) = match result {
            Attempt::Delivered(status) => {
                m.webhook_deliveries.with_label_values(&["delivered"]).inc();
                if head.attempts.failed == 0 {
                    m.webhook_lag_seconds.observe((now - head.entry.at).max(0) as f64 / 1000.0);
                }
                record.outcome = "delivered".into();
                record.status = Some(status);
                return match self
                    .queue
                    .delivered(lane, &head.entry.id, &webhook.id, &record, now_ms(), lease)
                    .await
                {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot take a delivered webhook event off its lane");
                        None
                    }
                };
            }
            Attempt::Failed { status, error, retry_after } => (status, error, retry_after),
        };
        record.status = status;
        record.error = error;
        let attempts = Attempts {
            failed: attempt_no,
            first_failed_at: if head.attempts.first_failed_at > 0 {
                head.attempts.first_failed_at
            } else {
                now
            },
        };
        let failing_since = match self.queue.failing(&lane.app, &webhook.id, now).await {
            Ok(since) => since,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a webhook failing");
                now
            }
        };
        if now - failing_since >= ms(self.config.disable_after_ms) {
            m.webhook_deliveries.with_label_values(&["disabled"]).inc();
            record.outcome = "disabled".into();
            self.log(lane, &webhook.id, &record).await;
            let reason = format!(
                "every delivery failed for {} hours (last: {})",
                self.config.disable_after_ms / 3_600_000,
                describe(record.status, record.error.as_deref())
            );
            if let Err(e) = self.webhooks.disable(&lane.app, &webhook.id, reason).await {
                tracing::warn!(error = %e, "cannot disable a webhook");
            }
            let _ = self.queue.drop_lane(lane).await;
            return None;
        }
        if now - attempts.first_failed_at >= ms(self.config.retry_for_ms) {
            m.webhook_deliveries.with_label_values(&["gave_up"]).inc();
            record.outcome = "gave_up".into();
            self.log(lane, &webhook.id, &record).await;
            tracing::warn!(app = %lane.app, webhook = %webhook.id, "webhook event given up after its retries");
            return self.pop(lane, &head, lease).await;
        }
        m.webhook_deliveries.with_label_values(&["failed"]).inc();
        let due = now.saturating_add(ms_of(retry_after.unwrap_or_else(|| self.backoff(attempt_no))));
        record.outcome = "failed".into();
        record.next_retry_at = Some(due);
        self.log(lane, &webhook.id, &record).await;
        if let Err(e) = self.queue.retry(lane, &head.entry.id, attempts, due).await {
            tracing::warn!(error = %e, "cannot schedule a webhook retry; the lease will");
        }
        None
    }

    async fn pop(&self, lane: &Lane, head: &Head, lease: Duration) -> Option<Head> {
        match self.queue.pop(lane, &head.entry.id, 1, now_ms(), lease).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take a delivered webhook event off its lane");
                None
            }
        }
    }

    async fn log(&self, lane: &Lane, webhook: &WebhookId, record: &LogRecord) {
        if let Err(e) = self.queue.log(&lane.app, webhook, record).await {
            tracing::warn!(error = %e, "cannot write the webhook delivery log");
        }
    }

    /// Exponential, capped, with jitter: between half and all of
    /// `base × 2^(n-1)` (at most `backoff_max_ms`).
    fn backoff(&self, failed: u32) -> Duration {
        let base = self.config.backoff_base_ms.max(1);
        let full = base
            .saturating_mul(1u64 << failed.saturating_sub(1).min(40))
            .min(self.config.backoff_max_ms.max(1));
        let jittered = rand::rng().random_range(full / 2..=full);
        Duration::from_millis(jittered)
    }

    /// One POST of the head, signed.
    async fn post(&self, webhook: &Webhook, head: &Head, attempt: u32) -> Attempt {
        let Ok(url) = reqwest::Url::parse(&webhook.url) else {
            return Attempt::Failed { status: None, error: Some("invalid url".into()), retry_after: None };
        };
        if !literal_allowed(&url, self.config.policy()) {
            return Attempt::Failed {
                status: None,
                error: Some("private address".into()),
                retry_after: None,
            };
        }
        let body = head.entry.body.as_bytes().to_vec();
        let t = now_ms() / 1000;
        let mut secrets = vec![webhook.secret.as_str()];
        if let (Some(previous), Some(until)) = (&webhook.previous_secret, webhook.previous_until)
            && until.millis() > now_ms()
        {
            secrets.push(previous.as_str());
        }
        let signature = sign::header(&secrets, t, &body);
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(sign::HEADER, signature)
            .header("Weft-Event-Id", head.entry.id.as_str())
            .header("Weft-Event-Type", head.entry.kind.as_str())
            .header("Weft-Delivery-Attempt", attempt.to_string())
            .body(body);
        match request.send().await {
            Ok(response) if response.status().is_success() => Attempt::Delivered(response.status().as_u16()),
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = matches!(status, 429 | 503)
                    .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
                    .flatten()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(Duration::from_millis(self.config.backoff_max_ms)));
                Attempt::Failed { status: Some(status), error: None, retry_after }
            }
            Err(e) => Attempt::Failed { status: None, error: Some(classify(&e)), retry_after: None },
        }
    }
}

/// A failure in a few words, without the URL (it may hold a token in its query).
fn classify(e: &reqwest::Error) -> String {
    let private = std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source())
        .any(|e| e.is::<super::target::PrivateAddress>());
    if private {
        "private address".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else if e.is_body() || e.is_decode() {
        "response failed".into()
    } else {
        "request failed".into()
    }
}

fn describe(status: Option<u16>, error: Option<&str>) -> String {
    match (status, error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => e.to_owned(),
        (None, None) => "no answer".into(),
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn ms_of(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Keeps the queue gauges current (every node reports the cluster's queue).
async fn gauges(worker: Worker) {
    let m = crate::metrics::metrics();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = worker.shutdown.cancelled() => return,
        }
        let now = now_ms();
        if let Ok(depth) = worker.queue.depth(now).await {
            m.webhook_queue_lanes.set(i64::try_from(depth.lanes).unwrap_or(i64::MAX));
            m.webhook_queue_due.set(i64::try_from(depth.due).unwrap_or(i64::MAX));
            let age = if depth.oldest_failing > 0 {
                (now - depth.oldest_failing).max(0) as f64 / 1000.0
            } else {
                0.0
            };
            m.webhook_retry_age_seconds.set(age);
        }
    }
}
