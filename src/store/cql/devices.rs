//! Push devices and notification settings.
//!
//! Devices: one partition per (application, user), one row per device, so
//! that listing a user's devices is one read. Every write of a device is a
//! lightweight transaction, so Paxos orders them all: a registration keeps
//! the first `created_at` by inserting `IF NOT EXISTS` and, when the device
//! was there, updating only provider, token and `updated_at` `IF EXISTS`; a
//! delete is `IF EXISTS` and tells whether there was one. (A read-then-write
//! would let two first registrations racing each other both write their own
//! `created_at`.)
//!
//! Settings: one row per user, overwritten whole by a plain insert (a
//! cleared field is written as null, the chats map is replaced).

use super::CqlStore;
use super::rows::{
    DeviceRow, SettingsRow, chat_levels, decode_first, decode_rows, device_from_row, settings_from_row, ts,
};
use super::store_impl::{CONDITIONAL_TRIES, Contended, applied};
use crate::ids::{AppId, DeviceId, UserId};
use crate::model::{Device, NotificationSettings};
use crate::store::StoreError;

impl CqlStore {
    /// Registers a device, or sets a new provider and token for one
    /// registered before (its `created_at` stays): `INSERT ... IF NOT EXISTS`,
    /// then, when that did not apply, `UPDATE ... IF EXISTS`. When the update
    /// does not apply either, the device was deleted in between: start over.
    pub(super) async fn put_device_row(&self, d: &Device) -> Result<(), StoreError> {
        let (app, user, id) = (d.app.as_str(), d.user.as_str(), d.id.as_str());
        for _ in 0..CONDITIONAL_TRIES {
            let insert =
                (app, user, id, d.provider.as_str(), d.token.as_str(), ts(d.created_at), ts(d.updated_at));
            let result = self
                .session()
                .execute_unpaged(&self.stmts().insert_device, insert)
                .await
                .map_err(StoreError::unavailable)?;
            if applied(result, "devices insert")? {
                return Ok(());
            }
            let update = (d.provider.as_str(), d.token.as_str(), ts(d.updated_at), app, user, id);
            let result = self
                .session()
                .execute_unpaged(&self.stmts().update_device, update)
                .await
                .map_err(StoreError::unavailable)?;
            if applied(result, "devices update")? {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(Box::new(Contended("a device registration kept losing to deletes"))))
    }

    pub(super) async fn device_rows(&self, app: &AppId, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().devices, (app.as_str(), user.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        decode_rows::<DeviceRow>(result, "devices")?
            .into_iter()
            .map(|row| device_from_row(app, user, row))
            .collect()
    }

    pub(super) async fn delete_device_row(
        &self,
        app: &AppId,
        user: &UserId,
        id: &DeviceId,
    ) -> Result<bool, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().delete_device, (app.as_str(), user.as_str(), id.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        applied(result, "devices delete")
    }

    pub(super) async fn settings_row(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Option<NotificationSettings>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().notification_settings, (app.as_str(), user.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<SettingsRow>(result, "notification_settings")?
            .map(|row| settings_from_row(app, user, row))
            .transpose()
    }

    /// Overwrites every column: the optional ones that are `None` are written
    /// as null (cleared), and the chats map replaces the stored one.
    pub(super) async fn put_settings_row(&self, s: &NotificationSettings) -> Result<(), StoreError> {
        let quiet = s.quiet_hours.as_ref();
        let values = (
            s.app.as_str(),
            s.user.as_str(),
            s.email,
            s.email_address.as_deref(),
            s.push,
            chat_levels(&s.chats)?,
            quiet.map(|q| q.from.as_str()),
            quiet.map(|q| q.to.as_str()),
            quiet.map(|q| q.tz.as_str()),
            ts(s.updated_at),
        );
        self.session()
            .execute_unpaged(&self.stmts().put_notification_settings, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}
