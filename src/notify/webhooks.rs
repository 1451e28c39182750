//! Registering webhooks: create, list, show, rotate, enable, delete, and the
//! delivery log; and each node's short-lived copy of an application's
//! webhooks, which the dispatcher and the workers read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::WebhooksConfig;
use super::queue::{LogRecord, Queue, QueueError};
use super::target::check_url;
use crate::ids::{AppId, Timestamp, WebhookId};
use crate::model::{EventType, MAX_WEBHOOKS, Webhook};
use crate::store::{DynStore, StoreError};

/// Why a webhook request failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such webhook in this application.
    #[error("webhook not found")]
    NotFound,
    /// The request is not valid (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The webhooks of every application; cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

/// Each application's webhooks, and when they were read.
type Copies = HashMap<AppId, (Instant, Arc<Vec<Webhook>>)>;

struct Inner {
    store: DynStore,
    queue: Arc<Queue>,
    config: WebhooksConfig,
    /// Each application's webhooks as read at an instant.
    cache: Mutex<Copies>,
}

/// The events a request names: a list of known type names, or `["*"]` for all.
pub fn parse_events(names: &[String]) -> Result<Vec<EventType>, WebhookError> {
    if names.is_empty() {
        return Err(WebhookError::Invalid("`events` must name at least one event".into()));
    }
    if names.iter().any(|n| n == "*") {
        return Ok(EventType::ALL.to_vec());
    }
    let mut events = Vec::with_capacity(names.len());
    for name in names {
        let Some(kind) = EventType::parse(name) else {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(WebhookError::Invalid(format!(
                "unknown event `{}`; known: {} (or \"*\")",
                name.chars().take(64).collect::<String>(),
                known.join(", ")
            )));
        };
        events.push(kind);
    }
    events.sort();
    events.dedup();
    Ok(events)
}

fn new_secret() -> String {
    format!("whsec_{}", crate::ids::random_url_safe(24))
}

impl Webhooks {
    pub(super) fn new(store: DynStore, queue: Arc<Queue>, config: WebhooksConfig) -> Self {
        Self { inner: Arc::new(Inner { store, queue, config, cache: Mutex::default() }) }
    }

    /// The configuration.
    pub fn config(&self) -> &WebhooksConfig {
        &self.inner.config
    }

    /// Registers a webhook; the answer holds its secret (shown this once).
    pub async fn create(&self, app: &AppId, url: &str, events: &[String]) -> Result<Webhook, WebhookError> {
        let url =
            check_url(url, self.inner.config.policy()).map_err(|e| WebhookError::Invalid(e.to_string()))?;
        let events = parse_events(events)?;
        if self.inner.store.webhooks(app).await?.len() >= MAX_WEBHOOKS {
            return Err(WebhookError::Invalid(format!("an application has at most {MAX_WEBHOOKS} webhooks")));
        }
        let webhook = Webhook {
            app: app.clone(),
            id: WebhookId::generate(),
            url: url.to_string(),
            events,
            secret: new_secret(),
            previous_secret: None,
            previous_until: None,
            created_at: Timestamp::now(),
            disabled_at: None,
            disabled_reason: None,
        };
        self.inner.store.insert_webhook(&webhook).await?;
        self.invalidate(app);
        tracing::info!(app = %app, webhook = %webhook.id, "webhook created");
        Ok(webhook)
    }

    /// An application's webhooks.
    pub async fn list(&self, app: &AppId) -> Result<Vec<Webhook>, WebhookError> {
        Ok(self.inner.store.webhooks(app).await?)
    }

    /// One webhook.
    pub async fn get(&self, app: &AppId, id: &WebhookId) -> Result<Webhook, WebhookError> {
        self.inner.store.webhook(app, id).await?.ok_or(WebhookError::NotFound)
    }

    /// Forgets a webhook, its log and (as the workers meet them) its lanes.
    pub async fn delete(&self, app: &AppId, id: &WebhookId) -> Result<(), WebhookError> {
        if !self.inner.store.delete_webhook(app, id).await? {
            return Err(WebhookError::NotFound);
        }
        self.invalidate(app);
        self.inner.queue.forget(app, id).await?;
        tracing::info!(app = %app, webhook = %id, "webhook deleted");
        Ok(())
    }

    /// Gives a webhook a new secret; the old one still signs for
    /// `rotation_overlap_ms` so receivers can switch without losing events.
    pub async fn rotate(&self, app: &AppId, id: &WebhookId) -> Result<Webhook, WebhookError> {
        let mut webhook = self.get(app, id).await?;
        let overlap = i64::try_from(self.inner.config.rotation_overlap_ms).unwrap_or(i64::MAX);
        webhook.previous_secret = Some(std::mem::replace(&mut webhook.secret, new_secret()));
        webhook.previous_until = Some(Timestamp(Timestamp::now().millis().saturating_add(overlap)));
        self.inner.store.update_webhook(&webhook).await?;
        self.invalidate(app);
        tracing::info!(app = %app, webhook = %id, "webhook secret rotated");
        Ok(webhook)
    }

    /// Changes a webhook's URL or events (`None`: kept), or turns a disabled
    /// webhook back on (`enable`).
    pub async fn update(
        &self,
        app: &AppId,
        id: &WebhookId,
        url: Option<&str>,
        events: Option<&[String]>,
        enable: bool,
    ) -> Result<Webhook, WebhookError> {
        let mut webhook = self.get(app, id).await?;
        if let Some(url) = url {
            webhook.url = check_url(url, self.inner.config.policy())
                .map_err(|e| WebhookError::Invalid(e.to_string()))?
                .to_string();
        }
        if let Some(events) = events {
            webhook.events = parse_events(events)?;
        }
        if enable {
            webhook.disabled_at = None;
            webhook.disabled_reason = None;
            self.inner.queue.healthy(app, id).await?;
        }
        self.inner.store.update_webhook(&webhook).await?;
        self.invalidate(app);
        Ok(webhook)
    }

    /// Queues `notices` for `webhook` alone, in order (a replay).
    pub async fn replay(&self, webhook: &Webhook, notices: &[super::Notice]) -> Result<(), WebhookError> {
        let items: Vec<_> = notices
            .iter()
            .map(|n| (super::queue::Lane::webhook(&webhook.app, &webhook.id, &n.key), n.entry(n.body())))
            .collect();
        for chunk in items.chunks(500) {
            self.inner.queue.push(chunk, Timestamp::now().millis()).await?;
        }
        Ok(())
    }

    /// The newest delivery attempts of a webhook, newest first.
    pub async fn deliveries(&self, app: &AppId, id: &WebhookId) -> Result<Vec<LogRecord>, WebhookError> {
        self.get(app, id).await?;
        Ok(self.inner.queue.logs(app, id).await?)
    }

    /// Stops delivering to a webhook that kept failing, and says why.
    pub(super) async fn disable(
        &self,
        app: &AppId,
        id: &WebhookId,
        reason: String,
    ) -> Result<(), WebhookError> {
        let mut webhook = self.get(app, id).await?;
        if webhook.disabled_at.is_some() {
            return Ok(());
        }
        webhook.disabled_at = Some(Timestamp::now());
        webhook.disabled_reason = Some(reason);
        self.inner.store.update_webhook(&webhook).await?;
        self.invalidate(app);
        tracing::warn!(app = %app, webhook = %id, "webhook disabled: it kept failing");
        Ok(())
    }

    /// An application's webhooks, from this node's copy when it is fresh.
    pub(super) async fn of_app(&self, app: &AppId) -> Result<Arc<Vec<Webhook>>, StoreError> {
        let ttl = Duration::from_millis(self.inner.config.cache_ms);
        if let Some((at, hooks)) = self.cache().get(app)
            && at.elapsed() < ttl
        {
            return Ok(Arc::clone(hooks));
        }
        let hooks = Arc::new(self.inner.store.webhooks(app).await?);
        let mut cache = self.cache();
        if cache.len() > 100_000 {
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        cache.insert(app.clone(), (Instant::now(), Arc::clone(&hooks)));
        Ok(hooks)
    }

    /// One webhook, from this node's copy of its application's.
    pub(super) async fn find(&self, app: &AppId, id: &WebhookId) -> Result<Option<Webhook>, StoreError> {
        Ok(self.of_app(app).await?.iter().find(|w| &w.id == id).cloned())
    }

    fn invalidate(&self, app: &AppId) {
        self.cache().remove(app);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Copies> {
        self.inner.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_parsed_sorted_and_deduplicated() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let parsed = parse_events(&names(&["member.added", "message.created", "message.created"]));
        assert_eq!(parsed.ok(), Some(vec![EventType::MessageCreated, EventType::MemberAdded]));
        assert_eq!(parse_events(&names(&["*"])).ok(), Some(EventType::ALL.to_vec()));
        let unknown = parse_events(&names(&["message.sent"]));
        assert!(
            matches!(unknown, Err(WebhookError::Invalid(m)) if m.contains("unknown event `message.sent`"))
        );
        assert!(matches!(parse_events(&[]), Err(WebhookError::Invalid(_))));
    }
}
