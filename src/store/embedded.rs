//! The embedded backend: one redb file, for the single-node default.
//!
//! redb is synchronous, so every call runs on tokio's blocking pool. Writes are
//! one transaction each; the batch writer makes a transaction carry many
//! messages, which is what keeps the fsync per commit affordable.

mod attachments;
mod audit;
mod auth_sessions;
mod backup;
mod devices;
mod server_keys;
mod webhooks;

pub use backup::BackupError;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::auth::{AuthSession, AuthSessionId, SigningSecret};
use crate::ids::{
    AppId, AppToken, AttachmentId, ChatNumber, DeviceId, MessageNumber, Timestamp, UserId, WebhookId,
};
use crate::model::{
    Application, AttachedFile, Attachment, Change, Chat, ChatKind, Device, DirectPair, Member, Message,
    MessageRange, MessageVersion, Metadata, NotificationSettings, Page, Reactions, ReadState, ReceiptKind,
    Role, UserGroups, Webhook,
};

/// The database file in the data directory.
const FILE_NAME: &str = "weft.redb";

/// token → application.
const APPS: TableDefinition<&str, &[u8]> = TableDefinition::new("applications");
/// app id → token.
const APPS_BY_ID: TableDefinition<&str, &str> = TableDefinition::new("applications_by_id");
/// (app, chat) → chat.
const CHATS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("chats");
/// (app, chat, number) → message.
const MESSAGES: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("messages");
/// (app, chat, parent, reply) → (): each thread's replies, in order.
const REPLIES: TableDefinition<(&str, u64, u64, u64), ()> = TableDefinition::new("thread_replies");
/// (app, chat, user) → joined_at.
const MEMBERS: TableDefinition<(&str, u64, &str), i64> = TableDefinition::new("members");
/// (app, chat, user) → role, for members who are not plain members (no row:
/// `member`). A table of its own so that files written before roles existed
/// read unchanged.
const MEMBER_ROLES: TableDefinition<(&str, u64, &str), &str> = TableDefinition::new("member_roles");
/// (app, user, chat) → joined_at.
const USER_CHATS: TableDefinition<(&str, &str, u64), i64> = TableDefinition::new("user_chats");
/// (app, lower user, higher user) → the pair's direct chat.
const DIRECT_CHATS: TableDefinition<(&str, &str, &str), u64> = TableDefinition::new("direct_chats");
/// (app, chat, user) → (delivered, read).
const READ_STATE: TableDefinition<(&str, u64, &str), (u64, u64)> = TableDefinition::new("read_state");

#[derive(Serialize, Deserialize)]
struct StoredApp {
    id: String,
    name: String,
    secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwks_url: Option<String>,
    /// `UserGroups` by name; absent for `open` (and in files written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_groups: Option<String>,
    created_at: i64,
    updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    metadata: Metadata,
}

/// A chat; the fields after `created_at` are absent in files written before groups had them.
#[derive(Serialize, Deserialize)]
struct StoredChat {
    kind: String,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    metadata: Metadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_at: Option<i64>,
}

impl StoredChat {
    fn of(chat: &Chat) -> Self {
        Self {
            kind: chat.kind.as_str().to_owned(),
            created_at: chat.created_at.millis(),
            name: chat.name.clone(),
            description: chat.description.clone(),
            metadata: chat.metadata.clone(),
            created_by: chat.created_by.as_ref().map(|u| u.as_str().to_owned()),
            updated_at: (chat.updated_at != chat.created_at).then_some(chat.updated_at.millis()),
        }
    }

    fn into_chat(self, app: AppId, number: ChatNumber) -> Chat {
        Chat {
            app,
            number,
            kind: ChatKind::from_stored(&self.kind),
            name: self.name,
            description: self.description,
            metadata: self.metadata,
            created_by: self.created_by.map(UserId::from_store),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at.unwrap_or(self.created_at)),
        }
    }
}

/// A member's role as stored: no row for `member`.
fn read_role(
    roles: &impl ReadableTable<(&'static str, u64, &'static str), &'static str>,
    key: (&str, u64, &str),
) -> Result<Role, StoreError> {
    match roles.get(key).map_err(embedded)? {
        None => Ok(Role::Member),
        Some(guard) => Role::parse(guard.value()).ok_or(StoreError::Corrupt { what: "member role" }),
    }
}

/// Writes a member's role (removes the row for `member`).
fn write_role(txn: &redb::WriteTransaction, key: (&str, u64, &str), role: Role) -> Result<(), StoreError> {
    let mut roles = txn.open_table(MEMBER_ROLES).map_err(embedded)?;
    match role {
        Role::Member => roles.remove(key).map_err(embedded).map(drop),
        role => roles.insert(key, role.as_str()).map_err(embedded).map(drop),
    }
}

#[derive(Serialize, Deserialize)]
struct StoredMessage {
    body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<u64>,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_at: Option<i64>,
    /// Earlier bodies, oldest first: kept in the message's own row, so an
    /// edit and a delete are each one write of one row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    versions: Vec<StoredVersion>,
    #[serde(default, skip_serializing_if = "crate::ids::is_zero")]
    reply_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_reply_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<AttachedFile>,
    /// (emoji, user) pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    reactions: Vec<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredVersion {
    body: String,
    written_at: i64,
    replaced_at: i64,
}

impl StoredMessage {
    fn of(m: &Message) -> Self {
        Self {
            body: m.body.clone(),
            sender: m.sender.as_ref().map(|u| u.as_str().to_owned()),
            client_msg_id: m.client_msg_id.clone(),
            reply_to: m.reply_to.map(MessageNumber::get),
            created_at: m.created_at.millis(),
            edited_at: m.edited_at.map(Timestamp::millis),
            deleted_at: m.deleted_at.map(Timestamp::millis),
            versions: Vec::new(),
            reply_count: m.reply_count,
            last_reply_at: m.last_reply_at.map(Timestamp::millis),
            attachments: m.attachments.iter().map(|f| AttachedFile { url: None, ..f.clone() }).collect(),
            reactions: m.reactions.pairs().map(|(e, u)| (e.to_owned(), u.as_str().to_owned())).collect(),
        }
    }

    fn into_message(self, app: &AppId, chat: u64, number: u64) -> Message {
        Message {
            app: app.clone(),
            chat: ChatNumber(chat),
            number: MessageNumber(number),
            body: self.body,
            sender: self.sender.map(UserId::from_store),
            client_msg_id: self.client_msg_id,
            reply_to: self.reply_to.map(MessageNumber),
            created_at: Timestamp(self.created_at),
            edited_at: self.edited_at.map(Timestamp),
            deleted_at: self.deleted_at.map(Timestamp),
            reply_count: self.reply_count,
            last_reply_at: self.last_reply_at.map(Timestamp),
            attachments: self.attachments,
            reactions: Reactions::from_pairs(
                self.reactions.into_iter().map(|(e, u)| (e, UserId::from_store(u))),
            ),
        }
    }
}

/// A store in one redb file.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

fn embedded(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Embedded(Box::new(e.into()))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Embedded(Box::new(e)))
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &'static str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt { what })
}

fn to_message(app: &AppId, chat: u64, number: u64, bytes: &[u8]) -> Result<Message, StoreError> {
    let m: StoredMessage = decode(bytes, "message")?;
    Ok(m.into_message(app, chat, number))
}

/// Applies `change` to a stored message that is not deleted, in `txn`.
fn change_message(
    txn: &redb::WriteTransaction,
    app: &AppId,
    chat: ChatNumber,
    number: MessageNumber,
    change: impl FnOnce(&mut StoredMessage),
) -> Result<Change, StoreError> {
    let mut table = txn.open_table(MESSAGES).map_err(embedded)?;
    let key = (app.as_str(), chat.get(), number.get());
    let mut stored: StoredMessage = match table.get(key).map_err(embedded)? {
        Some(guard) => decode(guard.value(), "message")?,
        None => return Ok(Change::Missing),
    };
    if stored.deleted_at.is_some() {
        return Ok(Change::Deleted(stored.into_message(app, chat.get(), number.get())));
    }
    change(&mut stored);
    table.insert(key, encode(&stored)?.as_slice()).map_err(embedded)?;
    Ok(Change::Done(stored.into_message(app, chat.get(), number.get())))
}

impl EmbeddedStore {
    /// Opens (or creates) the database file `dir/weft.redb`, creating `dir` if needed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Embedded(Box::new(e)))?;
        let db = Database::create(dir.join(FILE_NAME)).map_err(embedded)?;
        let txn = db.begin_write().map_err(embedded)?;
        {
            txn.open_table(APPS).map_err(embedded)?;
            txn.open_table(APPS_BY_ID).map_err(embedded)?;
            txn.open_table(CHATS).map_err(embedded)?;
            txn.open_table(MESSAGES).map_err(embedded)?;
            txn.open_table(MEMBERS).map_err(embedded)?;
            txn.open_table(USER_CHATS).map_err(embedded)?;
            txn.open_table(DIRECT_CHATS).map_err(embedded)?;
            txn.open_table(READ_STATE).map_err(embedded)?;
            txn.open_table(REPLIES).map_err(embedded)?;
            txn.open_table(MEMBER_ROLES).map_err(embedded)?;
            txn.open_table(attachments::ATTACHMENTS).map_err(embedded)?;
            txn.open_table(webhooks::WEBHOOKS).map_err(embedded)?;
            txn.open_table(devices::DEVICES).map_err(embedded)?;
            txn.open_table(devices::NOTIFICATION_SETTINGS).map_err(embedded)?;
            txn.open_table(server_keys::SERVER_KEYS).map_err(embedded)?;
            txn.open_table(server_keys::APP_SERVER_KEYS).map_err(embedded)?;
            txn.open_table(auth_sessions::AUTH_SESSIONS).map_err(embedded)?;
            txn.open_table(auth_sessions::USER_AUTH_SESSIONS).map_err(embedded)?;
            txn.open_table(audit::AUDIT).map_err(embedded)?;
        }
        txn.commit().map_err(embedded)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs `f` on the blocking pool with the database.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(|e| StoreError::Embedded(Box::new(e)))?
    }

    /// Runs `f` in one write transaction and commits it.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(embedded)?;
            let out = f(&txn)?;
            txn.commit().map_err(embedded)?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` in one read transaction.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(embedded)?;
            f(&txn)
        })
        .await
    }
}

fn put_app(txn: &redb::WriteTransaction, app: &Application) -> Result<(), StoreError> {
    let stored = StoredApp {
        id: app.id.as_str().to_owned(),
        name: app.name.clone(),
        secret: app.secret.expose().to_owned(),
        jwks_url: app.jwks_url.clone(),
        user_groups: (app.user_groups != UserGroups::Open).then(|| app.user_groups.as_str().to_owned()),
        created_at: app.created_at.millis(),
        updated_at: app.updated_at.millis(),
        description: app.description.clone(),
        metadata: app.metadata.clone(),
    };
    let bytes = encode(&stored)?;
    let mut table = txn.open_table(APPS).map_err(embedded)?;
    table.insert(app.token.as_str(), bytes.as_slice()).map_err(embedded)?;
    let mut by_id = txn.open_table(APPS_BY_ID).map_err(embedded)?;
    by_id.insert(app.id.as_str(), app.token.as_str()).map_err(embedded)?;
    Ok(())
}

fn get_app(txn: &redb::ReadTransaction, token: AppToken) -> Result<Option<Application>, StoreError> {
    let table = txn.open_table(APPS).map_err(embedded)?;
    let Some(guard) = table.get(token.as_str()).map_err(embedded)? else {
        return Ok(None);
    };
    let stored: StoredApp = decode(guard.value(), "application")?;
    Ok(Some(Application {
        id: AppId::new(stored.id),
        token,
        name: stored.name,
        secret: SigningSecret::new(stored.secret),
        jwks_url: stored.jwks_url,
        user_groups: match stored.user_groups.as_deref() {
            None => UserGroups::Open,
            Some(name) => {
                UserGroups::parse(name).ok_or(StoreError::Corrupt { what: "application user_groups" })?
            }
        },
        created_at: Timestamp(stored.created_at),
        updated_at: Timestamp(stored.updated_at),
        description: stored.description,
        metadata: stored.metadata,
    }))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn insert_application(&self, app: &Application) -> Result<(), StoreError> {
        let app = app.clone();
        self.write(move |txn| put_app(txn, &app)).await
    }

    async fn application_by_token(&self, token: &AppToken) -> Result<Option<Application>, StoreError> {
        let token = token.clone();
        self.read(move |txn| get_app(txn, token)).await
    }

    async fn application_by_id(&self, id: &AppId) -> Result<Option<Application>, StoreError> {
        let id = id.clone();
        self.read(move |txn| {
            let by_id = txn.open_table(APPS_BY_ID).map_err(embedded)?;
            let token = match by_id.get(id.as_str()).map_err(embedded)? {
                Some(guard) => AppToken::new(guard.value()),
                None => return Ok(None),
            };
            get_app(txn, token)
        })
        .await
    }

    async fn update_application(&self, app: &Application) -> Result<(), StoreError> {
        let app = app.clone();
        self.write(move |txn| put_app(txn, &app)).await
    }

    async fn application_ids(&self, after: Option<&AppId>, limit: usize) -> Result<Vec<AppId>, StoreError> {
        let after = after.cloned();
        self.read(move |txn| {
            let by_id = txn.open_table(APPS_BY_ID).map_err(embedded)?;
            let rows = match &after {
                Some(after) => by_id
                    .range::<&str>((std::ops::Bound::Excluded(after.as_str()), std::ops::Bound::Unbounded)),
                None => by_id.range::<&str>(..),
            }
            .map_err(embedded)?;
            let mut out = Vec::new();
            for row in rows.take(limit) {
                let (id, _) = row.map_err(embedded)?;
                out.push(AppId::new(id.value()));
            }
            Ok(out)
        })
        .await
    }

    async fn insert_chat(&self, chat: &Chat) -> Result<(), StoreError> {
        let chat = chat.clone();
        self.write(move |txn| {
            let bytes = encode(&StoredChat::of(&chat))?;
            let mut table = txn.open_table(CHATS).map_err(embedded)?;
            table.insert((chat.app.as_str(), chat.number.get()), bytes.as_slice()).map_err(embedded)?;
            Ok(())
        })
        .await
    }

    async fn update_chat(&self, chat: &Chat) -> Result<(), StoreError> {
        let chat = chat.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(CHATS).map_err(embedded)?;
            let key = (chat.app.as_str(), chat.number.get());
            let mut stored: StoredChat = match table.get(key).map_err(embedded)? {
                Some(guard) => decode(guard.value(), "chat")?,
                None => return Ok(()),
            };
            stored.name = chat.name.clone();
            stored.description = chat.description.clone();
            stored.metadata = chat.metadata.clone();
            stored.updated_at = Some(chat.updated_at.millis());
            table.insert(key, encode(&stored)?.as_slice()).map_err(embedded)?;
            Ok(())
        })
        .await
    }

    async fn chat(&self, app: &AppId, number: ChatNumber) -> Result<Option<Chat>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(CHATS).map_err(embedded)?;
            let Some(guard) = table.get((app.as_str(), number.get())).map_err(embedded)? else {
                return Ok(None);
            };
            let stored: StoredChat = decode(guard.value(), "chat")?;
            Ok(Some(stored.into_chat(app, number)))
        })
        .await
    }

    async fn chats(&self, app: &AppId, page: Page) -> Result<Vec<Chat>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(CHATS).map_err(embedded)?;
            let range = table.range((app.as_str(), 0)..=(app.as_str(), u64::MAX)).map_err(embedded)?;
            let mut out = Vec::new();
            for row in range.skip(page.skip).take(page.limit) {
                let (key, value) = row.map_err(embedded)?;
                let stored: StoredChat = decode(value.value(), "chat")?;
                out.push(stored.into_chat(app.clone(), ChatNumber(key.value().1)));
            }
            Ok(out)
        })
        .await
    }

    async fn max_chat_number(&self, app: &AppId) -> Result<u64, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(CHATS).map_err(embedded)?;
            let mut range = table.range((app.as_str(), 0)..=(app.as_str(), u64::MAX)).map_err(embedded)?;
            match range.next_back() {
                Some(row) => Ok(row.map_err(embedded)?.0.value().1),
                None => Ok(0),
            }
        })
        .await
    }

    async fn insert_messages(&self, messages: &[Message]) -> Result<(), StoreError> {
        let messages = messages.to_vec();
        self.write(move |txn| {
            let mut table = txn.open_table(MESSAGES).map_err(embedded)?;
            for m in &messages {
                let key = (m.app.as_str(), m.chat.get(), m.number.get());
                // Written once: a message written again (a retried batch)
                // keeps what happened to it since (its thread, say).
                if table.get(key).map_err(embedded)?.is_some() {
                    continue;
                }
                let bytes = encode(&StoredMessage::of(m))?;
                table.insert(key, bytes.as_slice()).map_err(embedded)?;
            }
            // Threads: a reply listed once (a rewrite of the same message
            // counts nothing), its parent's count and newest time moved.
            let mut replies = txn.open_table(REPLIES).map_err(embedded)?;
            for m in messages.iter() {
                let Some(parent) = m.reply_to else { continue };
                let key = (m.app.as_str(), m.chat.get(), parent.get(), m.number.get());
                if replies.insert(key, ()).map_err(embedded)?.is_some() {
                    continue;
                }
                let parent_key = (m.app.as_str(), m.chat.get(), parent.get());
                let stored: Option<StoredMessage> = match table.get(parent_key).map_err(embedded)? {
                    Some(guard) => Some(decode(guard.value(), "message")?),
                    None => None,
                };
                if let Some(mut stored) = stored {
                    stored.reply_count += 1;
                    stored.last_reply_at = stored.last_reply_at.max(Some(m.created_at.millis()));
                    table.insert(parent_key, encode(&stored)?.as_slice()).map_err(embedded)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Option<Message>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(MESSAGES).map_err(embedded)?;
            match table.get((app.as_str(), chat.get(), number.get())).map_err(embedded)? {
                Some(guard) => Ok(Some(to_message(&app, chat.get(), number.get(), guard.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn messages(
        &self,
        app: &AppId,
        chat: ChatNumber,
        range: MessageRange,
    ) -> Result<Vec<Message>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(MESSAGES).map_err(embedded)?;
            let low = range.after.map_or(0, |a| a.get().saturating_add(1));
            let high = range.before.map_or(u64::MAX, |b| b.get());
            if low >= high {
                return Ok(Vec::new());
            }
            let rows = table
                .range((app.as_str(), chat.get(), low)..(app.as_str(), chat.get(), high))
                .map_err(embedded)?;
            let mut out = Vec::new();
            for row in rows.rev().skip(range.page.skip).take(range.page.limit) {
                let (key, value) = row.map_err(embedded)?;
                out.push(to_message(&app, chat.get(), key.value().2, value.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn max_message_number(&self, app: &AppId, chat: ChatNumber) -> Result<u64, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(MESSAGES).map_err(embedded)?;
            let mut rows = table
                .range((app.as_str(), chat.get(), 0)..=(app.as_str(), chat.get(), u64::MAX))
                .map_err(embedded)?;
            match rows.next_back() {
                Some(row) => Ok(row.map_err(embedded)?.0.value().2),
                None => Ok(0),
            }
        })
        .await
    }

    async fn edit_message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        body: &str,
        at: Timestamp,
    ) -> Result<Change, StoreError> {
        let (app, body) = (app.clone(), body.to_owned());
        self.write(move |txn| {
            change_message(txn, &app, chat, number, |m| {
                m.versions.push(StoredVersion {
                    body: std::mem::replace(&mut m.body, body),
                    written_at: m.edited_at.unwrap_or(m.created_at),
                    replaced_at: at.millis(),
                });
                m.edited_at = Some(at.millis());
            })
        })
        .await
    }

    async fn delete_message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
        at: Timestamp,
    ) -> Result<Change, StoreError> {
        let app = app.clone();
        self.write(move |txn| {
            change_message(txn, &app, chat, number, |m| {
                m.body.clear();
                m.versions.clear();
                m.attachments.clear();
                m.reactions.clear();
                m.deleted_at = Some(at.millis());
            })
        })
        .await
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
        let (app, pair) = (app.clone(), (emoji.to_owned(), user.as_str().to_owned()));
        self.write(move |txn| {
            change_message(txn, &app, chat, number, |m| {
                let at = m.reactions.binary_search(&pair);
                match (on, at) {
                    (true, Err(i)) => m.reactions.insert(i, pair),
                    (false, Ok(i)) => {
                        m.reactions.remove(i);
                    }
                    _ => {}
                }
            })
        })
        .await
    }

    async fn replies(
        &self,
        app: &AppId,
        chat: ChatNumber,
        parent: MessageNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let replies = txn.open_table(REPLIES).map_err(embedded)?;
            let messages = txn.open_table(MESSAGES).map_err(embedded)?;
            let (c, p) = (chat.get(), parent.get());
            let from = after.get().saturating_add(1);
            let rows = replies
                .range((app.as_str(), c, p, from)..=(app.as_str(), c, p, u64::MAX))
                .map_err(embedded)?;
            let mut out = Vec::new();
            for row in rows.take(limit) {
                let number = row.map_err(embedded)?.0.value().3;
                if let Some(guard) = messages.get((app.as_str(), c, number)).map_err(embedded)? {
                    out.push(to_message(&app, c, number, guard.value())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn message_versions(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Vec<MessageVersion>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(MESSAGES).map_err(embedded)?;
            let Some(guard) = table.get((app.as_str(), chat.get(), number.get())).map_err(embedded)? else {
                return Ok(Vec::new());
            };
            let m: StoredMessage = decode(guard.value(), "message")?;
            Ok(m.versions
                .into_iter()
                .map(|v| MessageVersion {
                    body: v.body,
                    written_at: Timestamp(v.written_at),
                    replaced_at: Timestamp(v.replaced_at),
                })
                .collect())
        })
        .await
    }

    async fn add_member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.write(move |txn| {
            let mut members = txn.open_table(MEMBERS).map_err(embedded)?;
            let key = (app.as_str(), chat.get(), user.as_str());
            if members.get(key).map_err(embedded)?.is_some() {
                return Ok(());
            }
            members.insert(key, at.millis()).map_err(embedded)?;
            write_role(txn, key, role)?;
            let mut mirror = txn.open_table(USER_CHATS).map_err(embedded)?;
            mirror.insert((app.as_str(), user.as_str(), chat.get()), at.millis()).map_err(embedded)?;
            Ok(())
        })
        .await
    }

    async fn member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<Member>, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.read(move |txn| {
            let members = txn.open_table(MEMBERS).map_err(embedded)?;
            let key = (app.as_str(), chat.get(), user.as_str());
            let Some(joined_at) = members.get(key).map_err(embedded)?.map(|g| g.value()) else {
                return Ok(None);
            };
            let roles = txn.open_table(MEMBER_ROLES).map_err(embedded)?;
            let role = read_role(&roles, key)?;
            Ok(Some(Member { user, joined_at: Timestamp(joined_at), role }))
        })
        .await
    }

    async fn set_role(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        role: Role,
    ) -> Result<bool, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.write(move |txn| {
            let members = txn.open_table(MEMBERS).map_err(embedded)?;
            let key = (app.as_str(), chat.get(), user.as_str());
            if members.get(key).map_err(embedded)?.is_none() {
                return Ok(false);
            }
            write_role(txn, key, role)?;
            Ok(true)
        })
        .await
    }

    async fn remove_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.write(move |txn| {
            let mut members = txn.open_table(MEMBERS).map_err(embedded)?;
            let key = (app.as_str(), chat.get(), user.as_str());
            let was = members.remove(key).map_err(embedded)?.is_some();
            write_role(txn, key, Role::Member)?;
            let mut mirror = txn.open_table(USER_CHATS).map_err(embedded)?;
            mirror.remove((app.as_str(), user.as_str(), chat.get())).map_err(embedded)?;
            Ok(was)
        })
        .await
    }

    async fn members(&self, app: &AppId, chat: ChatNumber, page: Page) -> Result<Vec<Member>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(MEMBERS).map_err(embedded)?;
            let Some(next) = chat.get().checked_add(1) else {
                return Ok(Vec::new());
            };
            let roles = txn.open_table(MEMBER_ROLES).map_err(embedded)?;
            let rows =
                table.range((app.as_str(), chat.get(), "")..(app.as_str(), next, "")).map_err(embedded)?;
            let mut out = Vec::new();
            for row in rows.skip(page.skip).take(page.limit) {
                let (key, value) = row.map_err(embedded)?;
                let user = key.value().2;
                out.push(Member {
                    role: read_role(&roles, (app.as_str(), chat.get(), user))?,
                    user: UserId::from_store(user.to_owned()),
                    joined_at: Timestamp(value.value()),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn is_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.read(move |txn| {
            let table = txn.open_table(MEMBERS).map_err(embedded)?;
            Ok(table.get((app.as_str(), chat.get(), user.as_str())).map_err(embedded)?.is_some())
        })
        .await
    }

    async fn user_chats(
        &self,
        app: &AppId,
        user: &UserId,
        page: Page,
    ) -> Result<Vec<ChatNumber>, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.read(move |txn| {
            let table = txn.open_table(USER_CHATS).map_err(embedded)?;
            let rows = table
                .range((app.as_str(), user.as_str(), 0)..=(app.as_str(), user.as_str(), u64::MAX))
                .map_err(embedded)?;
            let mut out = Vec::new();
            for row in rows.skip(page.skip).take(page.limit) {
                let (key, _) = row.map_err(embedded)?;
                out.push(ChatNumber(key.value().2));
            }
            Ok(out)
        })
        .await
    }

    async fn direct_chat(&self, app: &AppId, pair: &DirectPair) -> Result<Option<ChatNumber>, StoreError> {
        let (app, pair) = (app.clone(), pair.clone());
        self.read(move |txn| {
            let table = txn.open_table(DIRECT_CHATS).map_err(embedded)?;
            let [low, high] = pair.users();
            Ok(table
                .get((app.as_str(), low.as_str(), high.as_str()))
                .map_err(embedded)?
                .map(|g| ChatNumber(g.value())))
        })
        .await
    }

    async fn claim_direct_chat(
        &self,
        app: &AppId,
        pair: &DirectPair,
        chat: ChatNumber,
    ) -> Result<ChatNumber, StoreError> {
        let (app, pair) = (app.clone(), pair.clone());
        // redb serialises write transactions: the first claim wins.
        self.write(move |txn| {
            let mut table = txn.open_table(DIRECT_CHATS).map_err(embedded)?;
            let [low, high] = pair.users();
            let key = (app.as_str(), low.as_str(), high.as_str());
            if let Some(found) = table.get(key).map_err(embedded)? {
                return Ok(ChatNumber(found.value()));
            }
            table.insert(key, chat.get()).map_err(embedded)?;
            Ok(chat)
        })
        .await
    }

    async fn advance_read_state(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        kind: ReceiptKind,
        seq: MessageNumber,
    ) -> Result<(), StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.write(move |txn| {
            let mut table = txn.open_table(READ_STATE).map_err(embedded)?;
            let key = (app.as_str(), chat.get(), user.as_str());
            let (delivered, read) = table.get(key).map_err(embedded)?.map_or((0, 0), |g| g.value());
            let seq = seq.get();
            let next = match kind {
                ReceiptKind::Delivered => (delivered.max(seq), read),
                ReceiptKind::Read => (delivered.max(seq), read.max(seq)),
            };
            if next != (delivered, read) {
                table.insert(key, next).map_err(embedded)?;
            }
            Ok(())
        })
        .await
    }

    async fn read_state(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<ReadState>, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.read(move |txn| {
            let table = txn.open_table(READ_STATE).map_err(embedded)?;
            let found = table.get((app.as_str(), chat.get(), user.as_str())).map_err(embedded)?;
            Ok(found.map(|g| {
                let (delivered, read) = g.value();
                ReadState { user, delivered: MessageNumber(delivered), read: MessageNumber(read) }
            }))
        })
        .await
    }

    async fn read_states(
        &self,
        app: &AppId,
        chat: ChatNumber,
        page: Page,
    ) -> Result<Vec<ReadState>, StoreError> {
        let app = app.clone();
        self.read(move |txn| {
            let table = txn.open_table(READ_STATE).map_err(embedded)?;
            let Some(next) = chat.get().checked_add(1) else {
                return Ok(Vec::new());
            };
            let rows =
                table.range((app.as_str(), chat.get(), "")..(app.as_str(), next, "")).map_err(embedded)?;
            let mut out = Vec::new();
            for row in rows.skip(page.skip).take(page.limit) {
                let (key, value) = row.map_err(embedded)?;
                let (delivered, read) = value.value();
                out.push(ReadState {
                    user: UserId::from_store(key.value().2.to_owned()),
                    delivered: MessageNumber(delivered),
                    read: MessageNumber(read),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn insert_attachment(&self, attachment: &Attachment) -> Result<(), StoreError> {
        let attachment = attachment.clone();
        self.write(move |txn| attachments::insert(txn, &attachment)).await
    }

    async fn attachment(&self, app: &AppId, id: &AttachmentId) -> Result<Option<Attachment>, StoreError> {
        let (app, id) = (app.clone(), id.clone());
        self.read(move |txn| attachments::get(txn, &app, &id)).await
    }

    async fn attach(
        &self,
        app: &AppId,
        id: &AttachmentId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<bool, StoreError> {
        let (app, id) = (app.clone(), id.clone());
        self.write(move |txn| attachments::set_message(txn, &app, &id, Some(chat), None, Some(number))).await
    }

    async fn detach(&self, app: &AppId, id: &AttachmentId, number: MessageNumber) -> Result<(), StoreError> {
        let (app, id) = (app.clone(), id.clone());
        self.write(move |txn| attachments::set_message(txn, &app, &id, None, Some(number), None).map(drop))
            .await
    }

    async fn delete_attachment(&self, app: &AppId, id: &AttachmentId) -> Result<(), StoreError> {
        let (app, id) = (app.clone(), id.clone());
        self.write(move |txn| attachments::delete(txn, &app, &id)).await
    }

    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let webhook = webhook.clone();
        self.write(move |txn| webhooks::insert(txn, &webhook)).await
    }

    async fn webhook(&self, app: &AppId, id: &WebhookId) -> Result<Option<Webhook>, StoreError> {
        let (app, id) = (app.clone(), id.clone());
        self.read(move |txn| webhooks::get(txn, &app, &id)).await
    }

    async fn webhooks(&self, app: &AppId) -> Result<Vec<Webhook>, StoreError> {
        let app = app.clone();
        self.read(move |txn| webhooks::list(txn, &app)).await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let webhook = webhook.clone();
        self.write(move |txn| webhooks::update(txn, &webhook)).await
    }

    async fn delete_webhook(&self, app: &AppId, id: &WebhookId) -> Result<bool, StoreError> {
        let (app, id) = (app.clone(), id.clone());
        self.write(move |txn| webhooks::delete(txn, &app, &id)).await
    }

    async fn put_device(&self, device: &Device) -> Result<(), StoreError> {
        let device = device.clone();
        self.write(move |txn| devices::put_device(txn, &device)).await
    }

    async fn devices(&self, app: &AppId, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.read(move |txn| devices::devices(txn, &app, &user)).await
    }

    async fn delete_device(&self, app: &AppId, user: &UserId, id: &DeviceId) -> Result<bool, StoreError> {
        let (app, user, id) = (app.clone(), user.clone(), id.clone());
        self.write(move |txn| devices::delete_device(txn, &app, &user, &id)).await
    }

    async fn notification_settings(
        &self,
        app: &AppId,
        user: &UserId,
    ) -> Result<Option<NotificationSettings>, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.read(move |txn| devices::settings(txn, &app, &user)).await
    }

    async fn put_notification_settings(&self, settings: &NotificationSettings) -> Result<(), StoreError> {
        let settings = settings.clone();
        self.write(move |txn| devices::put_settings(txn, &settings)).await
    }

    async fn insert_auth_session(&self, session: &AuthSession) -> Result<(), StoreError> {
        let session = session.clone();
        self.write(move |txn| auth_sessions::insert(txn, &session)).await
    }

    async fn auth_session(&self, id: &AuthSessionId) -> Result<Option<AuthSession>, StoreError> {
        let id = id.clone();
        self.read(move |txn| auth_sessions::get(txn, &id)).await
    }

    async fn auth_sessions(&self, app: &AppId, user: &UserId) -> Result<Vec<AuthSession>, StoreError> {
        let (app, user) = (app.clone(), user.clone());
        self.read(move |txn| auth_sessions::of_user(txn, &app, &user)).await
    }

    async fn replace_auth_session(&self, session: &AuthSession, expected: u64) -> Result<bool, StoreError> {
        let session = session.clone();
        self.write(move |txn| auth_sessions::replace(txn, &session, expected)).await
    }

    async fn delete_auth_session(
        &self,
        app: &AppId,
        user: &UserId,
        id: &AuthSessionId,
    ) -> Result<bool, StoreError> {
        let (app, user, id) = (app.clone(), user.clone(), id.clone());
        self.write(move |txn| auth_sessions::delete(txn, &app, &user, &id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chats_and_applications_written_before_groups_read_without_info() {
        let app = AppId::generate();
        let old: StoredChat = decode(br#"{"kind":"direct","created_at":5}"#, "chat").unwrap();
        let chat = old.into_chat(app.clone(), ChatNumber(2));
        assert_eq!(chat, Chat::new(app, ChatNumber(2), ChatKind::Direct, Timestamp(5)));
        let old: StoredApp =
            decode(br#"{"id":"a","name":"n","secret":"s","created_at":1,"updated_at":2}"#, "application")
                .unwrap();
        assert_eq!((old.description, old.metadata.len()), (None, 0));
    }
}
