//! Webhook records in redb: one table keyed by (app, id), so that an
//! application's webhooks are one range scan, in id order. An update reads
//! the row in the same (serialised) write transaction, so it never brings
//! back a webhook deleted meanwhile.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{decode, embedded, encode};
use crate::ids::{AppId, Timestamp, WebhookId};
use crate::model::{EventType, Webhook};
use crate::store::StoreError;

/// (app, webhook id) → webhook.
pub(super) const WEBHOOKS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("webhooks");

#[derive(Serialize, Deserialize)]
struct StoredWebhook {
    url: String,
    /// Wire names (`message.created`), in the webhook's order.
    events: Vec<String>,
    secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_until: Option<i64>,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
}

impl StoredWebhook {
    fn of(w: &Webhook) -> Self {
        Self {
            url: w.url.clone(),
            events: w.events.iter().map(|e| e.as_str().to_owned()).collect(),
            secret: w.secret.clone(),
            previous_secret: w.previous_secret.clone(),
            previous_until: w.previous_until.map(Timestamp::millis),
            created_at: w.created_at.millis(),
            disabled_at: w.disabled_at.map(Timestamp::millis),
            disabled_reason: w.disabled_reason.clone(),
        }
    }

    /// The webhook; an event name this build does not know is `Corrupt`.
    fn into_webhook(self, app: &AppId, id: &str) -> Result<Webhook, StoreError> {
        let events = self
            .events
            .iter()
            .map(|name| EventType::parse(name).ok_or(StoreError::Corrupt { what: "webhook event" }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Webhook {
            app: app.clone(),
            id: WebhookId::from_store(id.to_owned()),
            url: self.url,
            events,
            secret: self.secret,
            previous_secret: self.previous_secret,
            previous_until: self.previous_until.map(Timestamp),
            created_at: Timestamp(self.created_at),
            disabled_at: self.disabled_at.map(Timestamp),
            disabled_reason: self.disabled_reason,
        })
    }
}

pub(super) fn insert(txn: &redb::WriteTransaction, w: &Webhook) -> Result<(), StoreError> {
    let mut table = txn.open_table(WEBHOOKS).map_err(embedded)?;
    table
        .insert((w.app.as_str(), w.id.as_str()), encode(&StoredWebhook::of(w))?.as_slice())
        .map_err(embedded)?;
    Ok(())
}

pub(super) fn get(
    txn: &redb::ReadTransaction,
    app: &AppId,
    id: &WebhookId,
) -> Result<Option<Webhook>, StoreError> {
    let table = txn.open_table(WEBHOOKS).map_err(embedded)?;
    let Some(guard) = table.get((app.as_str(), id.as_str())).map_err(embedded)? else { return Ok(None) };
    let stored: StoredWebhook = decode(guard.value(), "webhook")?;
    stored.into_webhook(app, id.as_str()).map(Some)
}

/// Every webhook of `app`, by id: the keys from `(app, "")` up to the first
/// key of the next application name (`app` followed by a NUL byte).
pub(super) fn list(txn: &redb::ReadTransaction, app: &AppId) -> Result<Vec<Webhook>, StoreError> {
    let table = txn.open_table(WEBHOOKS).map_err(embedded)?;
    let next_app = format!("{}\0", app.as_str());
    let rows = table.range((app.as_str(), "")..(next_app.as_str(), "")).map_err(embedded)?;
    let mut out = Vec::new();
    for row in rows {
        let (key, value) = row.map_err(embedded)?;
        let stored: StoredWebhook = decode(value.value(), "webhook")?;
        out.push(stored.into_webhook(app, key.value().1)?);
    }
    Ok(out)
}

/// Overwrites the url, events, secrets and disabled fields of a webhook that
/// exists (`created_at` stays); a missing one stays missing.
pub(super) fn update(txn: &redb::WriteTransaction, w: &Webhook) -> Result<(), StoreError> {
    let mut table = txn.open_table(WEBHOOKS).map_err(embedded)?;
    let key = (w.app.as_str(), w.id.as_str());
    let created_at = match table.get(key).map_err(embedded)? {
        Some(guard) => decode::<StoredWebhook>(guard.value(), "webhook")?.created_at,
        None => return Ok(()),
    };
    let stored = StoredWebhook { created_at, ..StoredWebhook::of(w) };
    table.insert(key, encode(&stored)?.as_slice()).map_err(embedded)?;
    Ok(())
}

pub(super) fn delete(txn: &redb::WriteTransaction, app: &AppId, id: &WebhookId) -> Result<bool, StoreError> {
    let mut table = txn.open_table(WEBHOOKS).map_err(embedded)?;
    let removed = table.remove((app.as_str(), id.as_str())).map_err(embedded)?;
    Ok(removed.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_event_name_is_corrupt() {
        let app = AppId::generate();
        let stored: StoredWebhook =
            decode(br#"{"url":"u","events":["message.created"],"secret":"s","created_at":1}"#, "webhook")
                .unwrap();
        let read = stored.into_webhook(&app, "id").unwrap();
        assert_eq!(
            (read.events, read.previous_secret, read.disabled_at),
            (vec![EventType::MessageCreated], None, None)
        );
        let stored: StoredWebhook =
            decode(br#"{"url":"u","events":["message.exploded"],"secret":"s","created_at":1}"#, "webhook")
                .unwrap();
        assert!(matches!(
            stored.into_webhook(&app, "id"),
            Err(StoreError::Corrupt { what: "webhook event" })
        ));
    }
}
