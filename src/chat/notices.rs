//! What the domain tells its webhooks, and the webhook requests of the REST
//! API (an application's token authorizes them, as its other requests).
//!
//! A notice is emitted after what it tells of is committed, and never waited
//! for: the notifier's hand-off does not block (see `crate::notify`).

use serde_json::json;

use super::{ChatError, ChatService};
use crate::delivery::message_out;
use crate::delivery::outgoing::chat_out;
use crate::ids::{AppId, AppToken, ChatNumber, MessageNumber, UserId, WebhookId};
use crate::model::{Chat, EventType, Message, Role, Webhook};
use crate::notify::Notice;
use crate::notify::queue::LogRecord;

/// Most events one replay queues.
pub const MAX_REPLAY: usize = 10_000;

/// `message.created` for `m`, made whole (a replay).
fn created_notice(m: &Message) -> Notice {
    let mut notice = Notice::created(std::sync::Arc::new(m.clone()));
    notice.resolve();
    notice
}

impl ChatService {
    /// `message.created` (see [`created_notice`]), and the message to the push gatherer.
    pub(super) fn notify_created(&self, m: &Message, members: Option<std::sync::Arc<[UserId]>>) {
        self.notifier.message_created(m, members);
    }

    /// `message.edited` or `message.deleted`: the message as it is now.
    pub(super) fn notify_changed(&self, m: &Message) {
        let (kind, at) = match (m.deleted_at, m.edited_at) {
            (Some(at), _) => (EventType::MessageDeleted, at),
            (None, Some(at)) => (EventType::MessageEdited, at),
            (None, None) => return,
        };
        let data = json!({ "chat": m.chat, "message": message_out(m) });
        let notice = Notice::chat(&m.app, kind, m.chat, data).with_stable_id(&[
            &m.chat.to_string(),
            &m.number.to_string(),
            &at.millis().to_string(),
        ]);
        self.notifier.emit(notice);
    }

    /// `chat.created` or `chat.updated`.
    pub(super) fn notify_chat(&self, chat: &Chat, created: bool) {
        let kind = if created { EventType::ChatCreated } else { EventType::ChatUpdated };
        let data = json!({ "chat": chat_out(chat) });
        self.notifier.emit(Notice::chat(&chat.app, kind, chat.number, data));
    }

    /// `member.added` (with the role) or `member.removed` (without).
    pub(super) fn notify_member(&self, app: &AppId, chat: ChatNumber, user: &UserId, role: Option<Role>) {
        let (kind, data) = match role {
            Some(role) => {
                (EventType::MemberAdded, json!({ "chat": chat, "user": user, "role": role.as_str() }))
            }
            None => (EventType::MemberRemoved, json!({ "chat": chat, "user": user })),
        };
        self.notifier.emit(Notice::chat(app, kind, chat, data));
    }

    /// `receipt.read`: `user` read `chat` up to `seq`.
    pub(super) fn notify_read(&self, app: &AppId, chat: ChatNumber, user: &UserId, seq: MessageNumber) {
        let data = json!({ "chat": chat, "user": user, "seq": seq });
        self.notifier.emit(Notice::chat(app, EventType::ReceiptRead, chat, data));
    }

    /// `user.connected` / `user.disconnected`: a session of `user` opened or
    /// closed on node `node`.
    pub fn notify_session(&self, app: &AppId, user: &UserId, node: &str, opened: bool) {
        let kind = if opened { EventType::UserConnected } else { EventType::UserDisconnected };
        let data = json!({ "user": user, "node": node });
        self.notifier.emit(Notice::user(app, kind, user, data));
    }

    /// `user.online` / `user.offline`.
    pub(super) fn notify_presence(&self, app: &AppId, user: &UserId, online: bool) {
        let kind = if online { EventType::UserOnline } else { EventType::UserOffline };
        self.notifier.emit(Notice::user(app, kind, user, json!({ "user": user })));
    }

    /// Registers a webhook of the application `token` names.
    pub async fn create_webhook(
        &self,
        token: &AppToken,
        url: &str,
        events: &[String],
    ) -> Result<Webhook, ChatError> {
        let app = self.application(token).await?;
        Ok(self.webhooks.create(&app.id, url, events).await?)
    }

    /// The application's webhooks.
    pub async fn webhooks(&self, token: &AppToken) -> Result<Vec<Webhook>, ChatError> {
        let app = self.application(token).await?;
        Ok(self.webhooks.list(&app.id).await?)
    }

    /// One webhook of the application.
    pub async fn webhook(&self, token: &AppToken, id: &WebhookId) -> Result<Webhook, ChatError> {
        let app = self.application(token).await?;
        Ok(self.webhooks.get(&app.id, id).await?)
    }

    /// Changes a webhook's URL or events, or turns it back on.
    pub async fn update_webhook(
        &self,
        token: &AppToken,
        id: &WebhookId,
        url: Option<&str>,
        events: Option<&[String]>,
        enable: bool,
    ) -> Result<Webhook, ChatError> {
        let app = self.application(token).await?;
        Ok(self.webhooks.update(&app.id, id, url, events, enable).await?)
    }

    /// Gives a webhook a new secret.
    pub async fn rotate_webhook(&self, token: &AppToken, id: &WebhookId) -> Result<Webhook, ChatError> {
        let app = self.application(token).await?;
        Ok(self.webhooks.rotate(&app.id, id).await?)
    }

    /// Deletes a webhook.
    pub async fn delete_webhook(&self, token: &AppToken, id: &WebhookId) -> Result<(), ChatError> {
        let app = self.application(token).await?;
        Ok(self.webhooks.delete(&app.id, id).await?)
    }

    /// Queues `message.created` again, for one webhook only, for the messages
    /// of `chat` numbered above `after` (at most [`MAX_REPLAY`] of them, in
    /// order, tombstones left out), with the ids they had the first time so a
    /// receiver that has them drops them. Returns how many were queued and the
    /// last number queued (to continue from).
    pub async fn replay_webhook(
        &self,
        token: &AppToken,
        id: &WebhookId,
        chat: ChatNumber,
        after: MessageNumber,
    ) -> Result<(usize, MessageNumber), ChatError> {
        let app = self.application(token).await?;
        let webhook = self.webhooks.get(&app.id, id).await?;
        if webhook.disabled_at.is_some() {
            return Err(ChatError::InvalidValue("the webhook is disabled: enable it first".into()));
        }
        if !webhook.events.contains(&EventType::MessageCreated) {
            return Err(ChatError::InvalidValue("the webhook does not take message.created".into()));
        }
        self.ensure_chat(&app.id, chat).await?;
        let newest = self.store.max_message_number(&app.id, chat).await?;
        let (mut queued, mut last) = (Vec::new(), after);
        while last.get() < newest && queued.len() < MAX_REPLAY {
            let window = crate::model::MessageRange::window(last.get(), 500);
            let mut page = self.store.messages(&app.id, chat, window).await?;
            page.reverse();
            last = MessageNumber(last.get().saturating_add(500).min(newest));
            for m in page {
                if queued.len() == MAX_REPLAY {
                    last = MessageNumber(m.number.get() - 1);
                    break;
                }
                if !m.is_deleted() {
                    queued.push(created_notice(&m));
                }
            }
        }
        let n = queued.len();
        self.webhooks.replay(&webhook, &queued).await?;
        tracing::info!(app = %app.id, webhook = %id, chat = chat.get(), events = n, "webhook replay queued");
        Ok((n, last))
    }

    /// A webhook's delivery log, newest first.
    pub async fn webhook_deliveries(
        &self,
        token: &AppToken,
        id: &WebhookId,
    ) -> Result<(Webhook, Vec<LogRecord>), ChatError> {
        let app = self.application(token).await?;
        let webhook = self.webhooks.get(&app.id, id).await?;
        let log = self.webhooks.deliveries(&app.id, id).await?;
        Ok((webhook, log))
    }
}
