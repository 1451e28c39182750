//! A user's devices and notification settings, and the email unsubscribe
//! link: what decides whether and how a member who is away is told.

use std::collections::BTreeMap;

use super::{ChatError, ChatService};
use crate::ids::{AppId, AppToken, ChatNumber, DeviceId, Timestamp, UserId};
use crate::model::{
    ChatLevel, Device, MAX_CHAT_SETTINGS, MAX_DEVICES, NotificationSettings, PushProvider, QuietHours,
};
use crate::notify::alerts::prefs::check_quiet_hours;
use crate::notify::push;

/// A change of notification settings (`None`: leave as is).
#[derive(Clone, Debug, Default)]
pub struct SettingsChanges {
    /// Digests by email on or off.
    pub email: Option<bool>,
    /// Where digests go (`Some(None)`: forget the address).
    pub email_address: Option<Option<String>>,
    /// Pushes on or off.
    pub push: Option<bool>,
    /// Per chat levels to set (`all` removes the chat's entry: it is the default).
    pub chats: Option<BTreeMap<ChatNumber, ChatLevel>>,
    /// Quiet hours (`Some(None)`: none).
    pub quiet_hours: Option<Option<QuietHours>>,
}

impl ChatService {
    /// Registers (or re-registers with a new token) a device of `user`.
    /// Past [`MAX_DEVICES`] the least recently registered one is replaced.
    pub async fn put_device(
        &self,
        app: &AppId,
        user: &UserId,
        id: DeviceId,
        provider: &str,
        token: &str,
    ) -> Result<Device, ChatError> {
        let provider = PushProvider::parse(provider).ok_or_else(|| {
            ChatError::InvalidValue("`provider` must be \"fcm\", \"apns\" or \"webpush\"".into())
        })?;
        let checked = match provider {
            PushProvider::Fcm => push::check_fcm_token(token),
            PushProvider::Apns => push::check_apns_token(token),
            PushProvider::WebPush => push::check_webpush_subscription(token, self.notifier.push_allow_http()),
        };
        checked.map_err(ChatError::InvalidValue)?;
        let now = Timestamp::now();
        let devices = self.store.devices(app, user).await?;
        if devices.len() >= MAX_DEVICES
            && !devices.iter().any(|d| d.id == id)
            && let Some(oldest) = devices.iter().min_by_key(|d| d.updated_at)
        {
            self.store.delete_device(app, user, &oldest.id).await?;
        }
        let created_at = devices.iter().find(|d| d.id == id).map_or(now, |d| d.created_at);
        let device = Device {
            app: app.clone(),
            user: user.clone(),
            id,
            provider,
            token: token.to_owned(),
            created_at,
            updated_at: now,
        };
        self.store.put_device(&device).await?;
        self.forget_prefs(app, user);
        Ok(device)
    }

    /// A user's devices.
    pub async fn devices(&self, app: &AppId, user: &UserId) -> Result<Vec<Device>, ChatError> {
        Ok(self.store.devices(app, user).await?)
    }

    /// Forgets a device of `user`.
    pub async fn delete_device(&self, app: &AppId, user: &UserId, id: &DeviceId) -> Result<(), ChatError> {
        if !self.store.delete_device(app, user, id).await? {
            return Err(ChatError::DeviceNotFound);
        }
        self.forget_prefs(app, user);
        Ok(())
    }

    /// A user's settings (the defaults when they never chose).
    pub async fn notification_settings(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<NotificationSettings, ChatError> {
        let stored = self.store.notification_settings(app, user).await?;
        Ok(stored.unwrap_or_else(|| NotificationSettings::default_for(app, user)))
    }

    /// Changes a user's settings; returns them as they are now.
    pub async fn change_notification_settings(
        &self,
        app: &AppId,
        user: &UserId,
        changes: SettingsChanges,
    ) -> Result<NotificationSettings, ChatError> {
        let mut settings = self.notification_settings(app, user).await?;
        if let Some(Some(address)) = &changes.email_address {
            crate::notify::email::check_address(address).map_err(ChatError::InvalidValue)?;
        }
        if let Some(Some(quiet)) = &changes.quiet_hours {
            check_quiet_hours(quiet).map_err(ChatError::InvalidValue)?;
        }
        if let Some(email) = changes.email {
            settings.email = email;
        }
        if let Some(address) = changes.email_address {
            settings.email_address = address;
        }
        if let Some(push) = changes.push {
            settings.push = push;
        }
        if let Some(chats) = changes.chats {
            for (chat, level) in chats {
                match level {
                    ChatLevel::All => settings.chats.remove(&chat),
                    level => settings.chats.insert(chat, level),
                };
            }
            if settings.chats.len() > MAX_CHAT_SETTINGS {
                return Err(ChatError::InvalidValue(format!(
                    "settings name at most {MAX_CHAT_SETTINGS} chats (\"all\" needs no entry)"
                )));
            }
        }
        if let Some(quiet) = changes.quiet_hours {
            settings.quiet_hours = quiet;
        }
        if settings.email && settings.email_address.is_none() {
            return Err(ChatError::InvalidValue("`email` needs an `email_address`".into()));
        }
        settings.updated_at = Timestamp::now();
        self.store.put_notification_settings(&settings).await?;
        self.forget_prefs(app, user);
        Ok(settings)
    }

    /// Turns email digests off for the user an unsubscribe link names, when
    /// its token is right; false when it is not.
    pub async fn unsubscribe(&self, app: &str, user: &str, token: &str) -> Result<bool, ChatError> {
        if !self.notifier.check_unsubscribe(app, user, token) {
            return Ok(false);
        }
        let (app, Ok(user)) = (AppId::new(app), UserId::parse(user)) else {
            return Ok(false);
        };
        let changes = SettingsChanges { email: Some(false), ..SettingsChanges::default() };
        self.change_notification_settings(&app, &user, changes).await?;
        tracing::info!(app = %app, "a user unsubscribed from email digests");
        Ok(true)
    }

    /// The application a token names, for the notification endpoints.
    pub async fn app_id(&self, token: &AppToken) -> Result<AppId, ChatError> {
        Ok(self.application(token).await?.id)
    }

    fn forget_prefs(&self, app: &AppId, user: &UserId) {
        if let Some(prefs) = self.notifier.prefs() {
            prefs.forget(app, user);
        }
    }
}
