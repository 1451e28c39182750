//! Attachments in the domain: granting an upload (a record and a signed PUT
//! URL), checking and attaching the ids a send names, rendering download
//! URLs on the way out, deleting the files with their message.
//!
//! The record says who may attach what where; the object store is asked (a
//! HEAD) whether the bytes really arrived with the declared size, because the
//! client uploads straight to the store and weft never sees it finish.

use super::{Author, ChatError, ChatService};
use crate::attachments::{Attachments, AttachmentsError};
use crate::ids::{AppId, AttachmentId, ChatNumber, MessageNumber, Timestamp};
use crate::model::{AttachedFile, Attachment, Message};

/// The longest file name accepted, in characters.
pub const MAX_ATTACHMENT_NAME: usize = 255;

/// What an upload request declares.
#[derive(Clone, Debug)]
pub struct NewUpload {
    /// The file name to show.
    pub name: String,
    /// Its media type (`type/subtype`).
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A granted upload: PUT the bytes to `upload_url` before `expires_at`.
#[derive(Clone, Debug)]
pub struct Upload {
    /// The attachment's id, for `send`'s `attachments`.
    pub id: AttachmentId,
    /// Where to PUT the bytes (with `Content-Type` the declared type).
    pub upload_url: String,
    /// When the URL stops working.
    pub expires_at: Timestamp,
}

fn refuse(id: Option<&AttachmentId>, reason: &'static str) -> ChatError {
    ChatError::InvalidAttachment { id: id.map(|i| i.as_str().to_owned()), reason }
}

impl ChatService {
    /// Grants an upload into `chat`: a user must be a member, the backend
    /// needs the chat to exist. Nothing is recorded for a refused request.
    pub async fn create_upload(
        &self,
        app: &AppId,
        author: &Author,
        chat: ChatNumber,
        new: NewUpload,
    ) -> Result<Upload, ChatError> {
        let config = self.attachments.config()?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > MAX_ATTACHMENT_NAME || name.chars().any(char::is_control)
        {
            return Err(refuse(None, "`name` must be 1 to 255 characters, without control characters"));
        }
        let content_type = new.content_type.trim().to_ascii_lowercase();
        let valid_type = content_type.split_once('/').is_some_and(|(kind, sub)| {
            crate::attachments::is_media_token(kind) && crate::attachments::is_media_token(sub)
        });
        if !valid_type {
            return Err(refuse(None, "`content_type` must be a media type such as image/png"));
        }
        if !config.allows(&content_type) {
            return Err(refuse(
                None,
                "this content type is not accepted (attachments.allowed_content_types)",
            ));
        }
        if new.size == 0 {
            return Err(refuse(None, "`size` must be at least 1"));
        }
        if new.size > config.max_size {
            return Err(refuse(
                None,
                "`size` is larger than the largest attachment accepted (attachments.max_size)",
            ));
        }
        match author {
            Author::User(user) => self.ensure_member(app, chat, user).await?,
            Author::Backend(_) => self.ensure_chat(app, chat).await?,
        }
        let attachment = Attachment {
            app: app.clone(),
            id: AttachmentId::generate(),
            chat,
            name: name.to_owned(),
            content_type,
            size: new.size,
            created_by: match author {
                Author::User(user) => Some(user.clone()),
                Author::Backend(sender) => sender.clone(),
            },
            created_at: Timestamp::now(),
            message: None,
        };
        // Signed first: a failing store leaves no record behind.
        let grant = self.attachments.upload_url(app, chat, &attachment.file()).await?;
        self.store.insert_attachment(&attachment).await?;
        Ok(Upload { id: attachment.id, upload_url: grant.url, expires_at: grant.expires_at })
    }

    /// What a send's `attachments` name, checked before a number is drawn:
    /// each granted in this application for this chat, not attached yet, and
    /// uploaded with its declared size.
    pub(super) async fn check_attachments(
        &self,
        app: &AppId,
        chat: ChatNumber,
        ids: &[AttachmentId],
    ) -> Result<Vec<AttachedFile>, ChatError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let config = self.attachments.config()?;
        if ids.len() > config.max_per_message {
            return Err(refuse(None, "too many attachments on one message (attachments.max_per_message)"));
        }
        let mut files = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(refuse(Some(id), "is named twice"));
            }
            // Records are keyed by application: another application's id is not found.
            let Some(record) = self.store.attachment(app, id).await? else {
                return Err(refuse(Some(id), "no such attachment in this application"));
            };
            if record.chat != chat {
                return Err(refuse(Some(id), "was granted for another chat"));
            }
            if record.message.is_some() {
                return Err(refuse(Some(id), "is attached to another message already"));
            }
            match self.attachments.size_of(&Attachments::key(app, chat, id)).await? {
                None => return Err(refuse(Some(id), "was never uploaded")),
                Some(size) if size != record.size => {
                    return Err(refuse(Some(id), "the uploaded file does not have the declared size"));
                }
                Some(_) => files.push(record.file()),
            }
        }
        Ok(files)
    }

    /// Claims each file for message `seq`; if one was taken meanwhile, the
    /// ones claimed are released and the send is refused.
    pub(super) async fn attach_all(
        &self,
        app: &AppId,
        chat: ChatNumber,
        seq: MessageNumber,
        files: &[AttachedFile],
    ) -> Result<(), ChatError> {
        for (i, file) in files.iter().enumerate() {
            let won = match self.store.attach(app, &file.id, chat, seq).await {
                Ok(won) => won,
                Err(e) => {
                    self.release(app, seq, &files[..i]).await;
                    return Err(e.into());
                }
            };
            if !won {
                self.release(app, seq, &files[..i]).await;
                return Err(refuse(Some(&file.id), "is attached to another message already"));
            }
        }
        Ok(())
    }

    /// Undoes `attach_all` for a send that did not persist.
    pub(super) async fn release(&self, app: &AppId, seq: MessageNumber, files: &[AttachedFile]) {
        for file in files {
            if let Err(e) = self.store.detach(app, &file.id, seq).await {
                tracing::warn!(error = %e, attachment = %file.id, "cannot release an attachment of a failed send");
            }
        }
    }

    /// Fresh download URLs on each message's files (none on a tombstone).
    pub(crate) async fn with_urls(&self, messages: &mut [Message]) {
        for message in messages.iter_mut() {
            if message.is_deleted() {
                message.attachments.clear();
                continue;
            }
            for file in &mut message.attachments {
                match self.attachments.download_url(&message.app, message.chat, file).await {
                    Ok(url) => file.url = Some(url),
                    Err(AttachmentsError::Disabled) => file.url = None,
                    Err(e) => {
                        tracing::warn!(error = %e, attachment = %file.id, "cannot sign a download URL");
                        file.url = None;
                    }
                }
            }
        }
    }

    /// One message with fresh download URLs.
    pub(crate) async fn with_url(&self, mut message: Message) -> Message {
        self.with_urls(std::slice::from_mut(&mut message)).await;
        message
    }

    /// The files and records of a deleted message.
    pub(super) async fn delete_files(&self, app: &AppId, chat: ChatNumber, files: &[AttachedFile]) {
        for file in files {
            if let Err(e) = self.attachments.delete(&Attachments::key(app, chat, &file.id)).await {
                tracing::warn!(error = %e, attachment = %file.id, "cannot delete an attachment's file");
                continue;
            }
            if let Err(e) = self.store.delete_attachment(app, &file.id).await {
                tracing::warn!(error = %e, attachment = %file.id, "cannot delete an attachment's record");
            }
        }
    }

    /// The node's attachment files (for the routes that serve them).
    pub fn attachments(&self) -> &Attachments {
        &self.attachments
    }
}
