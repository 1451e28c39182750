//! Persistence: one [`Store`] trait and its two backends.
//!
//! - `embedded`: a redb file, for the single-node default;
//! - `cql`: ScyllaDB (or Apache Cassandra) through the scylla driver.
//!
//! Both pass the same contract suite (`tests/common/contract.rs`, run by `tests/store_embedded.rs` and `tests/store_cql.rs`). Driver types
//! never leave this module: every failure becomes a [`StoreError`].

pub mod audit;
mod batch;
mod cql;
mod embedded;
mod metered;
pub mod server_keys;

use std::sync::Arc;

use async_trait::async_trait;

use crate::auth::{AuthSession, AuthSessionId};
use crate::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};
use crate::model::{
    Application, Attachment, Change, Chat, Device, DirectPair, Member, Message, MessageRange, MessageVersion,
    NotificationSettings, Page, ReadState, ReceiptKind, Role, Webhook,
};

pub use audit::AuditStore;
pub use batch::{BatchConfig, BatchStats, BatchWriter, OnCommit, WriteError};
pub use cql::{CqlConfig, CqlStore, SCHEMA_VERSION};
pub use embedded::{BackupError, EmbeddedStore};
pub use metered::Metered;
pub use server_keys::KeyStore;

/// Messages of one chat share a partition per bucket of this many numbers.
///
/// Part of the on-disk layout: changing it orphans stored messages.
pub const MESSAGE_BUCKET: u64 = 1024;

/// The bucket that holds message `number`.
pub fn bucket_of(number: MessageNumber) -> u64 {
    number.get() / MESSAGE_BUCKET
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time; retrying later may work.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend answered with data weft cannot read.
    #[error("stored data is malformed: {what}")]
    Corrupt {
        /// What could not be read.
        what: &'static str,
    },
    /// The schema is older than this build needs.
    #[error("the store schema is at version {found} but this weft needs {needed}; run `weft migrate`")]
    SchemaOutdated {
        /// The version found in the store.
        found: u32,
        /// The version this build needs.
        needed: u32,
    },
    /// The embedded database failed (I/O, corruption).
    #[error("embedded store failed")]
    Embedded(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any driver error as `Unavailable`.
    pub(crate) fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

/// A shared, dynamically dispatched store.
pub type DynStore = Arc<dyn Store>;

/// Everything weft persists.
///
/// Lists of chats, members and a user's chats are ordered by chat number or
/// user id ascending; lists of messages newest first.
#[async_trait]
pub trait Store: KeyStore + AuditStore + Send + Sync + 'static {
    /// Saves a new application.
    async fn insert_application(&self, app: &Application) -> Result<(), StoreError>;
    /// Finds an application by its token.
    async fn application_by_token(&self, token: &AppToken) -> Result<Option<Application>, StoreError>;
    /// Finds an application by its id.
    async fn application_by_id(&self, id: &AppId) -> Result<Option<Application>, StoreError>;
    /// Overwrites an application's mutable fields (name, secret, JWKS URL,
    /// user groups, description, metadata, updated_at).
    async fn update_application(&self, app: &Application) -> Result<(), StoreError>;
    /// Up to `limit` application ids after `after` (from the first when `None`),
    /// in the backend's own stable order: paging with the last id of each page
    /// lists every application once (the search catch-up walks them).
    async fn application_ids(&self, after: Option<&AppId>, limit: usize) -> Result<Vec<AppId>, StoreError>;

    /// Saves a new chat.
    async fn insert_chat(&self, chat: &Chat) -> Result<(), StoreError>;
    /// Overwrites a chat's info: name, description, metadata and updated_at.
    async fn update_chat(&self, chat: &Chat) -> Result<(), StoreError>;
    /// Finds a chat.
    async fn chat(&self, app: &AppId, number: ChatNumber) -> Result<Option<Chat>, StoreError>;
    /// Lists an application's chats by number.
    async fn chats(&self, app: &AppId, page: Page) -> Result<Vec<Chat>, StoreError>;
    /// The highest chat number stored for an application (0 when none).
    async fn max_chat_number(&self, app: &AppId) -> Result<u64, StoreError>;

    /// Persists a batch of messages (any chats); all or an error.
    async fn insert_messages(&self, messages: &[Message]) -> Result<(), StoreError>;

    /// Whether writes to different chats are independent round trips (CQL:
    /// one partition each), so the batch writer commits each chat of a batch
    /// on its own and acknowledges it as soon as it is written, instead of
    /// holding every sender of the batch for its slowest chat. `false` (the
    /// embedded store) commits a batch as one transaction: one fsync.
    fn chats_commit_apart(&self) -> bool {
        false
    }
    /// Finds one message.
    async fn message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Option<Message>, StoreError>;
    /// Lists a chat's messages in a range, newest first.
    async fn messages(
        &self,
        app: &AppId,
        chat: ChatNumber,
        range: MessageRange,
    ) -> Result<Vec<Message>, StoreError>;
    /// The highest message number stored in a chat (0 when none).
    async fn max_message_number(&self, app: &AppId, chat: ChatNumber) -> Result<u64, StoreError>;

    /// Replaces a message's body (an edit) unless it was deleted, keeping the
    /// old body as a version, atomically with the edit.
    async fn edit_message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        body: &str,
        at: Timestamp,
    ) -> Result<Change, StoreError>;
    /// Turns a message into its tombstone: the number stays, the body and
    /// every version are gone. Deleting a tombstone changes nothing.
    async fn delete_message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        at: Timestamp,
    ) -> Result<Change, StoreError>;
    /// Adds (`on`) or takes back `user`'s reaction `emoji` on a message,
    /// atomically with the row (idempotent: adding twice or taking back
    /// what is not there changes nothing). A tombstone takes none.
    async fn set_reaction(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        emoji: &str,
        user: &UserId,
        on: bool,
    ) -> Result<Change, StoreError>;
    /// The replies to `parent` (messages whose `reply_to` names it) after
    /// `after`, oldest first, at most `limit`. `insert_messages` lists each
    /// reply under its parent and moves the parent's `reply_count` and
    /// `last_reply_at`.
    async fn replies(
        &self,
        app: &AppId,
        chat: ChatNumber,
        parent: MessageNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;
    /// The earlier bodies of a message, oldest first (none once deleted).
    async fn message_versions(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Vec<MessageVersion>, StoreError>;

    /// Makes `user` a member of `chat` with `role` (idempotent: a member
    /// keeps their first join time and their role).
    async fn add_member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// One member of a chat (members stored without a role read as `Member`).
    async fn member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<Member>, StoreError>;
    /// Sets a member's role; false (and nothing written) when `user` is not a member.
    async fn set_role(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
    ) -> Result<bool, StoreError>;
    /// Removes `user` from `chat`; returns whether it was a member.
    async fn remove_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError>;
    /// Lists a chat's members by user id.
    async fn members(&self, app: &AppId, chat: ChatNumber, page: Page) -> Result<Vec<Member>, StoreError>;
    /// Whether `user` is a member of `chat`.
    async fn is_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError>;
    /// Lists the chats `user` is a member of, by number.
    async fn user_chats(&self, app: &AppId, user: &UserId, page: Page)
    -> Result<Vec<ChatNumber>, StoreError>;

    /// The direct chat of a pair, if one was claimed.
    async fn direct_chat(&self, app: &AppId, pair: &DirectPair) -> Result<Option<ChatNumber>, StoreError>;
    /// Claims `chat` as the direct chat of `pair` unless one was claimed
    /// before (by any node, atomically); returns the pair's chat either way.
    async fn claim_direct_chat(
        &self,
        app: &AppId,
        pair: &DirectPair,
        chat: ChatNumber,
    ) -> Result<ChatNumber, StoreError>;

    /// Moves `user`'s receipt position in `chat` up to `seq`; never down. A
    /// `Read` also moves `delivered` up to `seq`.
    async fn advance_read_state(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        kind: ReceiptKind,
        seq: MessageNumber,
    ) -> Result<(), StoreError>;
    /// One member's receipt positions in a chat, if any were recorded.
    async fn read_state(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<ReadState>, StoreError>;
    /// Every recorded receipt position of a chat, by user id.
    async fn read_states(
        &self,
        app: &AppId,
        chat: ChatNumber,
        page: Page,
    ) -> Result<Vec<ReadState>, StoreError>;

    /// Saves the record of a granted upload.
    async fn insert_attachment(&self, attachment: &Attachment) -> Result<(), StoreError>;
    /// Finds an attachment of an application.
    async fn attachment(&self, app: &AppId, id: &AttachmentId) -> Result<Option<Attachment>, StoreError>;
    /// Attaches `id` to message `number`, only if the record exists, was granted
    /// for `chat` and is attached to no message yet (atomically: of two sends
    /// naming it, one wins); returns whether it did.
    async fn attach(
        &self,
        app: &AppId,
        id: &AttachmentId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<bool, StoreError>;
    /// Undoes an `attach` to `number` (a send refused after attaching some of
    /// its ids); an attachment held by another message is left alone.
    async fn detach(&self, app: &AppId, id: &AttachmentId, number: MessageNumber) -> Result<(), StoreError>;
    /// Forgets an attachment's record (its message was deleted).
    async fn delete_attachment(&self, app: &AppId, id: &AttachmentId) -> Result<(), StoreError>;

    /// Saves a new webhook.
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError>;
    /// One webhook of an application.
    async fn webhook(&self, app: &AppId, id: &WebhookId) -> Result<Option<Webhook>, StoreError>;
    /// Every webhook of an application (at most [`MAX_WEBHOOKS`](crate::model::MAX_WEBHOOKS)
    /// are created), by id.
    async fn webhooks(&self, app: &AppId) -> Result<Vec<Webhook>, StoreError>;
    /// Overwrites a webhook's url, events, secrets and disabled fields.
    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError>;
    /// Forgets a webhook; returns whether it existed.
    async fn delete_webhook(&self, app: &AppId, id: &WebhookId) -> Result<bool, StoreError>;

    /// Saves a device (a new one, or a new token for an id registered before:
    /// `created_at` is kept).
    async fn put_device(&self, device: &Device) -> Result<(), StoreError>;
    /// A user's devices, by id.
    async fn devices(&self, app: &AppId, user: &UserId) -> Result<Vec<Device>, StoreError>;
    /// Forgets a device; returns whether it existed.
    async fn delete_device(&self, app: &AppId, user: &UserId, id: &DeviceId) -> Result<bool, StoreError>;
    /// A user's notification settings, if they ever chose any.
    async fn notification_settings(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Option<NotificationSettings>, StoreError>;
    /// Overwrites a user's notification settings.
    async fn put_notification_settings(&self, settings: &NotificationSettings) -> Result<(), StoreError>;

    /// Saves a new session (its id is fresh).
    async fn insert_auth_session(&self, session: &AuthSession) -> Result<(), StoreError>;
    /// One session, by id (none once revoked).
    async fn auth_session(&self, id: &AuthSessionId) -> Result<Option<AuthSession>, StoreError>;
    /// A user's sessions, by id.
    async fn auth_sessions(&self, app: &AppId, user: &UserId) -> Result<Vec<AuthSession>, StoreError>;
    /// Overwrites a session's mutable fields (address, user agent, times,
    /// refresh-token state, version) only if the stored `version` is
    /// `expected` (atomically: of two writers that read one version, one
    /// wins); false when it was not, or the session is gone.
    async fn replace_auth_session(&self, session: &AuthSession, expected: u64) -> Result<bool, StoreError>;
    /// Forgets a session; returns whether it existed.
    async fn delete_auth_session(
        &self,
        app: &AppId,
        user: &UserId,
        id: &AuthSessionId,
    ) -> Result<bool, StoreError>;
}
