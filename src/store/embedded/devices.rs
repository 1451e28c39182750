//! Push devices and notification settings in redb. Devices are keyed by
//! (app, user, id), so that a user's devices are one range scan, in id
//! order; settings are keyed by (app, user). A registration reads the row in
//! the same (serialised) write transaction, so it keeps the `created_at` of a
//! device registered before.

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{decode, embedded, encode};
use crate::ids::{AppId, ChatNumber, DeviceId, Timestamp, UserId};
use crate::model::{ChatLevel, Device, NotificationSettings, PushProvider, QuietHours};
use crate::store::StoreError;

/// (app, user, device id) → device.
pub(super) const DEVICES: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("devices");
/// (app, user) → notification settings.
pub(super) const NOTIFICATION_SETTINGS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("notification_settings");

#[derive(Serialize, Deserialize)]
struct StoredDevice {
    /// The wire name (`fcm`, `apns`, `webpush`).
    provider: String,
    token: String,
    created_at: i64,
    updated_at: i64,
}

impl StoredDevice {
    fn of(d: &Device) -> Self {
        Self {
            provider: d.provider.as_str().to_owned(),
            token: d.token.clone(),
            created_at: d.created_at.millis(),
            updated_at: d.updated_at.millis(),
        }
    }

    /// The device; a provider name this build does not know is `Corrupt`.
    fn into_device(self, app: &AppId, user: &UserId, id: &str) -> Result<Device, StoreError> {
        let provider =
            PushProvider::parse(&self.provider).ok_or(StoreError::Corrupt { what: "device provider" })?;
        Ok(Device {
            app: app.clone(),
            user: user.clone(),
            id: DeviceId::from_store(id.to_owned()),
            provider,
            token: self.token,
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct StoredQuietHours {
    from: String,
    to: String,
    tz: String,
}

#[derive(Serialize, Deserialize)]
struct StoredSettings {
    email: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email_address: Option<String>,
    push: bool,
    /// Chat number → level wire name (`all`, `mentions`, `none`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    chats: BTreeMap<u64, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quiet_hours: Option<StoredQuietHours>,
    updated_at: i64,
}

impl StoredSettings {
    fn of(s: &NotificationSettings) -> Self {
        Self {
            email: s.email,
            email_address: s.email_address.clone(),
            push: s.push,
            chats: s.chats.iter().map(|(chat, level)| (chat.get(), level.as_str().to_owned())).collect(),
            quiet_hours: s.quiet_hours.as_ref().map(|q| StoredQuietHours {
                from: q.from.clone(),
                to: q.to.clone(),
                tz: q.tz.clone(),
            }),
            updated_at: s.updated_at.millis(),
        }
    }

    /// The settings; a level name this build does not know is `Corrupt`.
    fn into_settings(self, app: &AppId, user: &UserId) -> Result<NotificationSettings, StoreError> {
        let chats = self
            .chats
            .into_iter()
            .map(|(chat, level)| {
                let level = ChatLevel::parse(&level).ok_or(StoreError::Corrupt { what: "chat level" })?;
                Ok((ChatNumber(chat), level))
            })
            .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
        Ok(NotificationSettings {
            app: app.clone(),
            user: user.clone(),
            email: self.email,
            email_address: self.email_address,
            push: self.push,
            chats,
            quiet_hours: self.quiet_hours.map(|q| QuietHours { from: q.from, to: q.to, tz: q.tz }),
            updated_at: Timestamp(self.updated_at),
        })
    }
}

/// Saves a device; one registered before under the same id keeps its `created_at`.
pub(super) fn put_device(txn: &redb::WriteTransaction, d: &Device) -> Result<(), StoreError> {
    let mut table = txn.open_table(DEVICES).map_err(embedded)?;
    let key = (d.app.as_str(), d.user.as_str(), d.id.as_str());
    let created_at = match table.get(key).map_err(embedded)? {
        Some(guard) => decode::<StoredDevice>(guard.value(), "device")?.created_at,
        None => d.created_at.millis(),
    };
    let stored = StoredDevice { created_at, ..StoredDevice::of(d) };
    table.insert(key, encode(&stored)?.as_slice()).map_err(embedded)?;
    Ok(())
}

/// Every device of `user` in `app`, by id: the keys from `(app, user, "")`
/// up to the first key of the next user name (`user` followed by a NUL byte).
pub(super) fn devices(
    txn: &redb::ReadTransaction,
    app: &AppId,
    user: &UserId,
) -> Result<Vec<Device>, StoreError> {
    let table = txn.open_table(DEVICES).map_err(embedded)?;
    let next_user = format!("{}\0", user.as_str());
    let rows = table
        .range((app.as_str(), user.as_str(), "")..(app.as_str(), next_user.as_str(), ""))
        .map_err(embedded)?;
    let mut out = Vec::new();
    for row in rows {
        let (key, value) = row.map_err(embedded)?;
        let stored: StoredDevice = decode(value.value(), "device")?;
        out.push(stored.into_device(app, user, key.value().2)?);
    }
    Ok(out)
}

pub(super) fn delete_device(
    txn: &redb::WriteTransaction,
    app: &AppId,
    user: &UserId,
    id: &DeviceId,
) -> Result<bool, StoreError> {
    let mut table = txn.open_table(DEVICES).map_err(embedded)?;
    let removed = table.remove((app.as_str(), user.as_str(), id.as_str())).map_err(embedded)?;
    Ok(removed.is_some())
}

pub(super) fn settings(
    txn: &redb::ReadTransaction,
    app: &AppId,
    user: &UserId,
) -> Result<Option<NotificationSettings>, StoreError> {
    let table = txn.open_table(NOTIFICATION_SETTINGS).map_err(embedded)?;
    let Some(guard) = table.get((app.as_str(), user.as_str())).map_err(embedded)? else { return Ok(None) };
    let stored: StoredSettings = decode(guard.value(), "notification settings")?;
    stored.into_settings(app, user).map(Some)
}

/// Overwrites a user's settings.
pub(super) fn put_settings(txn: &redb::WriteTransaction, s: &NotificationSettings) -> Result<(), StoreError> {
    let mut table = txn.open_table(NOTIFICATION_SETTINGS).map_err(embedded)?;
    table
        .insert((s.app.as_str(), s.user.as_str()), encode(&StoredSettings::of(s))?.as_slice())
        .map_err(embedded)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_provider_and_level_names_are_corrupt() {
        let (app, user) = (AppId::generate(), UserId::parse("u").unwrap());
        let stored: StoredDevice =
            decode(br#"{"provider":"webpush","token":"t","created_at":1,"updated_at":2}"#, "device").unwrap();
        let read = stored.into_device(&app, &user, "phone").unwrap();
        assert_eq!((read.provider, read.id.as_str()), (PushProvider::WebPush, "phone"));
        let stored: StoredDevice =
            decode(br#"{"provider":"pigeon","token":"t","created_at":1,"updated_at":2}"#, "device").unwrap();
        assert!(matches!(
            stored.into_device(&app, &user, "phone"),
            Err(StoreError::Corrupt { what: "device provider" })
        ));

        let stored: StoredSettings =
            decode(br#"{"email":false,"push":true,"chats":{"7":"mentions"},"updated_at":1}"#, "settings")
                .unwrap();
        let read = stored.into_settings(&app, &user).unwrap();
        assert_eq!((read.level(ChatNumber(7)), read.quiet_hours), (ChatLevel::Mentions, None));
        let stored: StoredSettings =
            decode(br#"{"email":false,"push":true,"chats":{"7":"loud"},"updated_at":1}"#, "settings")
                .unwrap();
        assert!(matches!(stored.into_settings(&app, &user), Err(StoreError::Corrupt { what: "chat level" })));
    }
}
