//! A store that times every call (`weft_store_seconds{op}`) and counts its
//! failures (`weft_store_errors_total{op}`), whatever the backend.

use async_trait::async_trait;

use super::audit::{AuditEntry, AuditPosition};
use super::{AuditStore, DynStore, KeyStore, Store, StoreError};
use crate::auth::server_key::{KeyHash, KeyId, ServerKey};
use crate::auth::{AuthSession, AuthSessionId};
use crate::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};
use crate::metrics::{metrics, timed};
use crate::model::{
    Application, Attachment, Change, Chat, Device, DirectPair, Member, Message, MessageRange, MessageVersion,
    NotificationSettings, Page, ReadState, ReceiptKind, Role, Webhook,
};

/// Wraps a store with metrics.
pub struct Metered(pub DynStore);

async fn time<T>(op: &str, call: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    let m = metrics();
    timed(op, &m.store_seconds, &m.store_errors, call).await
}

#[async_trait]
impl KeyStore for Metered {
    async fn insert_server_key(&self, key: &ServerKey) -> Result<(), StoreError> {
        time("insert_server_key", self.0.insert_server_key(key)).await
    }

    async fn server_key(&self, hash: &KeyHash) -> Result<Option<ServerKey>, StoreError> {
        time("server_key", self.0.server_key(hash)).await
    }

    async fn server_keys(&self, app: &AppId) -> Result<Vec<ServerKey>, StoreError> {
        time("server_keys", self.0.server_keys(app)).await
    }

    async fn revoke_server_key(
        &self,
        app: &AppId,
        id: &KeyId,
        at: Timestamp,
    ) -> Result<Option<ServerKey>, StoreError> {
        time("revoke_server_key", self.0.revoke_server_key(app, id, at)).await
    }

    async fn touch_server_key(&self, hash: &KeyHash, at: Timestamp) -> Result<(), StoreError> {
        time("touch_server_key", self.0.touch_server_key(hash, at)).await
    }
}

#[async_trait]
impl AuditStore for Metered {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        time("append_audit", self.0.append_audit(entry)).await
    }

    async fn audit_entries(
        &self,
        app: &AppId,
        day: i64,
        before: Option<&AuditPosition>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        time("audit_entries", self.0.audit_entries(app, day, before, limit)).await
    }
}

#[async_trait]
impl Store for Metered {
    async fn insert_application(&self, app: &Application) -> Result<(), StoreError> {
        time("insert_application", self.0.insert_application(app)).await
    }

    async fn application_by_token(&self, token: &AppToken) -> Result<Option<Application>, StoreError> {
        time("application_by_token", self.0.application_by_token(token)).await
    }

    async fn application_by_id(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        time("application_by_id", self.0.application_by_id(id)).await
    }

    async fn update_application(&self, app: &Application) -> Result<(), StoreError> {
        time("update_application", self.0.update_application(app)).await
    }

    async fn application_ids(&self, after: Option<&AppId>, limit: usize) -> Result<Vec<AppId>, StoreError> {
        time("application_ids", self.0.application_ids(after, limit)).await
    }

    async fn insert_chat(&self, chat: &Chat) -> Result<(), StoreError> {
        time("insert_chat", self.0.insert_chat(chat)).await
    }

    async fn update_chat(&self, chat: &Chat) -> Result<(), StoreError> {
        time("update_chat", self.0.update_chat(chat)).await
    }

    async fn chat(&self, app: &AppId, number: ChatNumber) -> Result<Option<Chat>, StoreError> {
        time("chat", self.0.chat(app, number)).await
    }

    async fn chats(&self, app: &AppId, page: Page) -> Result<Vec<Chat>, StoreError> {
        time("chats", self.0.chats(app, page)).await
    }

    async fn max_chat_number(&self, app: &AppId) -> Result<u64, StoreError> {
        time("max_chat_number", self.0.max_chat_number(app)).await
    }

    fn chats_commit_apart(&self) -> bool {
        self.0.chats_commit_apart()
    }

    async fn insert_messages(&self, messages: &[Message]) -> Result<(), StoreError> {
        time("insert_messages", self.0.insert_messages(messages)).await
    }

    async fn message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Option<Message>, StoreError> {
        time("message", self.0.message(app, chat, number)).await
    }

    async fn messages(
        &self,
        app: &AppId,
        chat: ChatNumber,
        range: MessageRange,
    ) -> Result<Vec<Message>, StoreError> {
        time("messages", self.0.messages(app, chat, range)).await
    }

    async fn max_message_number(&self, app: &AppId, chat: ChatNumber) -> Result<u64, StoreError> {
        time("max_message_number", self.0.max_message_number(app, chat)).await
    }

    async fn edit_message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        body: &str,
        at: Timestamp,
    ) -> Result<Change, StoreError> {
        time("edit_message", self.0.edit_message(app, chat, number, body, at)).await
    }

    async fn delete_message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        at: Timestamp,
    ) -> Result<Change, StoreError> {
        time("delete_message", self.0.delete_message(app, chat, number, at)).await
    }

    async fn set_reaction(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        emoji: &str,
        user: &UserId,
        on: bool,
    ) -> Result<Change, StoreError> {
        time("set_reaction", self.0.set_reaction(app, chat, number, emoji, user, on)).await
    }

    async fn replies(
        &self,
        app: &AppId,
        chat: ChatNumber,
        parent: MessageNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        time("replies", self.0.replies(app, chat, parent, after, limit)).await
    }

    async fn message_versions(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Vec<MessageVersion>, StoreError> {
        time("message_versions", self.0.message_versions(app, chat, number)).await
    }

    async fn add_member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        time("add_member", self.0.add_member(app, chat, user, role, at)).await
    }

    async fn member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<Member>, StoreError> {
        time("member", self.0.member(app, chat, user)).await
    }

    async fn set_role(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
    ) -> Result<bool, StoreError> {
        time("set_role", self.0.set_role(app, chat, user, role)).await
    }

    async fn remove_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError> {
        time("remove_member", self.0.remove_member(app, chat, user)).await
    }

    async fn members(&self, app: &AppId, chat: ChatNumber, page: Page) -> Result<Vec<Member>, StoreError> {
        time("members", self.0.members(app, chat, page)).await
    }

    async fn is_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError> {
        time("is_member", self.0.is_member(app, chat, user)).await
    }

    async fn user_chats(
        &self,
        app: &AppId,
        user: &UserId,
        page: Page,
    ) -> Result<Vec<ChatNumber>, StoreError> {
        time("user_chats", self.0.user_chats(app, user, page)).await
    }

    async fn direct_chat(&self, app: &AppId, pair: &DirectPair) -> Result<Option<ChatNumber>, StoreError> {
        time("direct_chat", self.0.direct_chat(app, pair)).await
    }

    async fn claim_direct_chat(
        &self,
        app: &AppId,
        pair: &DirectPair,
        chat: ChatNumber,
    ) -> Result<ChatNumber, StoreError> {
        time("claim_direct_chat", self.0.claim_direct_chat(app, pair, chat)).await
    }

    async fn advance_read_state(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        kind: ReceiptKind,
        seq: MessageNumber,
    ) -> Result<(), StoreError> {
        time("advance_read_state", self.0.advance_read_state(app, chat, user, kind, seq)).await
    }

    async fn read_state(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<ReadState>, StoreError> {
        time("read_state", self.0.read_state(app, chat, user)).await
    }

    async fn read_states(
        &self,
        app: &AppId,
        chat: ChatNumber,
        page: Page,
    ) -> Result<Vec<ReadState>, StoreError> {
        time("read_states", self.0.read_states(app, chat, page)).await
    }

    async fn insert_attachment(&self, attachment: &Attachment) -> Result<(), StoreError> {
        time("insert_attachment", self.0.insert_attachment(attachment)).await
    }

    async fn attachment(&self, app: &AppId, id: &AttachmentId) -> Result<Option<Attachment>, StoreError> {
        time("attachment", self.0.attachment(app, id)).await
    }

    async fn attach(
        &self,
        app: &AppId,
        id: &AttachmentId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<bool, StoreError> {
        time("attach", self.0.attach(app, id, chat, number)).await
    }

    async fn detach(&self, app: &AppId, id: &AttachmentId, number: MessageNumber) -> Result<(), StoreError> {
        time("detach", self.0.detach(app, id, number)).await
    }

    async fn delete_attachment(&self, app: &AppId, id: &AttachmentId) -> Result<(), StoreError> {
        time("delete_attachment", self.0.delete_attachment(app, id)).await
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        time("insert_webhook", self.0.insert_webhook(webhook)).await
    }

    async fn webhook(&self, app: &AppId, id: &WebhookId) -> Result<Option<Webhook>, StoreError> {
        time("webhook", self.0.webhook(app, id)).await
    }

    async fn webhooks(&self, app: &AppId) -> Result<Vec<Webhook>, StoreError> {
        time("webhooks", self.0.webhooks(app)).await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        time("update_webhook", self.0.update_webhook(webhook)).await
    }

    async fn delete_webhook(&self, app: &AppId, id: &WebhookId) -> Result<bool, StoreError> {
        time("delete_webhook", self.0.delete_webhook(app, id)).await
    }

    async fn put_device(&self, device: &Device) -> Result<(), StoreError> {
        time("put_device", self.0.put_device(device)).await
    }

    async fn devices(&self, app: &AppId, user: &UserId) -> Result<Vec<Device>, StoreError> {
        time("devices", self.0.devices(app, user)).await
    }

    async fn delete_device(&self, app: &AppId, user: &UserId, id: &DeviceId) -> Result<bool, StoreError> {
        time("delete_device", self.0.delete_device(app, user, id)).await
    }

    async fn notification_settings(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Option<NotificationSettings>, StoreError> {
        time("notification_settings", self.0.notification_settings(app, user)).await
    }

    async fn put_notification_settings(&self, settings: &NotificationSettings) -> Result<(), StoreError> {
        time("put_notification_settings", self.0.put_notification_settings(settings)).await
    }

    async fn insert_auth_session(&self, session: &AuthSession) -> Result<(), StoreError> {
        time("insert_auth_session", self.0.insert_auth_session(session)).await
    }

    async fn auth_session(&self, id: &AuthSessionId) -> Result<Option<AuthSession>, StoreError> {
        time("auth_session", self.0.auth_session(id)).await
    }

    async fn auth_sessions(&self, app: &AppId, user: &UserId) -> Result<Vec<AuthSession>, StoreError> {
        time("auth_sessions", self.0.auth_sessions(app, user)).await
    }

    async fn replace_auth_session(&self, session: &AuthSession, expected: u64) -> Result<bool, StoreError> {
        time("replace_auth_session", self.0.replace_auth_session(session, expected)).await
    }

    async fn delete_auth_session(
        &self,
        app: &AppId,
        user: &UserId,
        id: &AuthSessionId,
    ) -> Result<bool, StoreError> {
        time("delete_auth_session", self.0.delete_auth_session(app, user, id)).await
    }
}
