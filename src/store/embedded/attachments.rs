//! Attachment records in redb: one table keyed by (app, id). A write
//! transaction is serialised with every other, so `attach`'s read-then-write
//! is atomic by itself.

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{decode, embedded, encode};
use crate::ids::{AppId, AttachmentId, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::Attachment;
use crate::store::StoreError;

/// (app, attachment id) → attachment.
pub(super) const ATTACHMENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("attachments");

#[derive(Serialize, Deserialize)]
struct StoredAttachment {
    chat: u64,
    name: String,
    content_type: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<u64>,
}

impl StoredAttachment {
    fn of(a: &Attachment) -> Self {
        Self {
            chat: a.chat.get(),
            name: a.name.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            created_by: a.created_by.as_ref().map(|u| u.as_str().to_owned()),
            created_at: a.created_at.millis(),
            message: a.message.map(MessageNumber::get),
        }
    }

    fn into_attachment(self, app: &AppId, id: &AttachmentId) -> Attachment {
        Attachment {
            app: app.clone(),
            id: id.clone(),
            chat: ChatNumber(self.chat),
            name: self.name,
            content_type: self.content_type,
            size: self.size,
            created_by: self.created_by.map(UserId::from_store),
            created_at: Timestamp(self.created_at),
            message: self.message.map(MessageNumber),
        }
    }
}

pub(super) fn insert(txn: &redb::WriteTransaction, a: &Attachment) -> Result<(), StoreError> {
    let mut table = txn.open_table(ATTACHMENTS).map_err(embedded)?;
    table
        .insert((a.app.as_str(), a.id.as_str()), encode(&StoredAttachment::of(a))?.as_slice())
        .map_err(embedded)?;
    Ok(())
}

pub(super) fn get(
    txn: &redb::ReadTransaction,
    app: &AppId,
    id: &AttachmentId,
) -> Result<Option<Attachment>, StoreError> {
    let table = txn.open_table(ATTACHMENTS).map_err(embedded)?;
    let Some(guard) = table.get((app.as_str(), id.as_str())).map_err(embedded)? else { return Ok(None) };
    let stored: StoredAttachment = decode(guard.value(), "attachment")?;
    Ok(Some(stored.into_attachment(app, id)))
}

/// Sets `message` to `to` if it is `from` now (and, when attaching, the chat matches).
pub(super) fn set_message(
    txn: &redb::WriteTransaction,
    app: &AppId,
    id: &AttachmentId,
    chat: Option<ChatNumber>,
    from: Option<MessageNumber>,
    to: Option<MessageNumber>,
) -> Result<bool, StoreError> {
    let mut table = txn.open_table(ATTACHMENTS).map_err(embedded)?;
    let key = (app.as_str(), id.as_str());
    let mut stored: StoredAttachment = match table.get(key).map_err(embedded)? {
        Some(guard) => decode(guard.value(), "attachment")?,
        None => return Ok(false),
    };
    if stored.message != from.map(MessageNumber::get) || chat.is_some_and(|c| c.get() != stored.chat) {
        return Ok(false);
    }
    stored.message = to.map(MessageNumber::get);
    table.insert(key, encode(&stored)?.as_slice()).map_err(embedded)?;
    Ok(true)
}

pub(super) fn delete(txn: &redb::WriteTransaction, app: &AppId, id: &AttachmentId) -> Result<(), StoreError> {
    let mut table = txn.open_table(ATTACHMENTS).map_err(embedded)?;
    table.remove((app.as_str(), id.as_str())).map_err(embedded)?;
    Ok(())
}
