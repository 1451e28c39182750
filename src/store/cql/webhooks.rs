//! Webhook records: one partition per application, one row per webhook, so
//! that listing an application's webhooks is one read. Inserts are plain
//! (the id is fresh); updates and deletes are conditional (`IF EXISTS`), so
//! an update racing a delete never brings the row back and a delete tells
//! whether there was one.

use super::CqlStore;
use super::rows::{WebhookRow, decode_first, decode_rows, event_names, ts, unset_if_none, webhook_from_row};
use super::store_impl::applied;
use crate::ids::{AppId, WebhookId};
use crate::model::Webhook;
use crate::store::StoreError;

impl CqlStore {
    pub(super) async fn insert_webhook_row(&self, w: &Webhook) -> Result<(), StoreError> {
        let values = (
            w.app.as_str(),
            w.id.as_str(),
            w.url.as_str(),
            event_names(&w.events),
            w.secret.as_str(),
            unset_if_none(w.previous_secret.as_deref()),
            unset_if_none(w.previous_until.map(ts)),
            ts(w.created_at),
            unset_if_none(w.disabled_at.map(ts)),
            unset_if_none(w.disabled_reason.as_deref()),
        );
        self.session()
            .execute_unpaged(&self.stmts().insert_webhook, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    pub(super) async fn webhook_row(
        &self,
        app: &AppId,
        id: &WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().webhook, (app.as_str(), id.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<WebhookRow>(result, "webhooks")?.map(|row| webhook_from_row(app, row)).transpose()
    }

    pub(super) async fn webhook_rows(&self, app: &AppId) -> Result<Vec<Webhook>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().webhooks, (app.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        decode_rows::<WebhookRow>(result, "webhooks")?
            .into_iter()
            .map(|row| webhook_from_row(app, row))
            .collect()
    }

    /// Overwrites every column but `created_at`; the optional ones that are
    /// `None` are written as null (cleared). A missing webhook stays missing.
    pub(super) async fn update_webhook_row(&self, w: &Webhook) -> Result<(), StoreError> {
        let values = (
            w.url.as_str(),
            event_names(&w.events),
            w.secret.as_str(),
            w.previous_secret.as_deref(),
            w.previous_until.map(ts),
            w.disabled_at.map(ts),
            w.disabled_reason.as_deref(),
            w.app.as_str(),
            w.id.as_str(),
        );
        self.session()
            .execute_unpaged(&self.stmts().update_webhook, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    pub(super) async fn delete_webhook_row(&self, app: &AppId, id: &WebhookId) -> Result<bool, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().delete_webhook, (app.as_str(), id.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        applied(result, "webhooks delete")
    }
}
