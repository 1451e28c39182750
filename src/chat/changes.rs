//! Edits and deletes of stored messages: who may, the store's atomic change,
//! then the recent cache, the search index and the members' live sessions.

use super::{Author, ChatError, ChatService};
use crate::delivery::{Audience, Event, SessionId};
use crate::ids::{AppId, AppToken, ChatNumber, MessageNumber, Timestamp};
use crate::model::{Change, Message, MessageVersion};

/// Who besides its sender may change a message (a user; the backend always may).
enum Others {
    /// Nobody: the refusal.
    Never(&'static str),
    /// A chat admin or owner; the refusal for anyone else.
    Managers(&'static str),
}

impl ChatService {
    /// Edits a message's body: a user only their own message, the backend
    /// any. Every session of the members hears of it but `from` (the
    /// session that asked, which gets its answer instead).
    pub async fn edit_message(
        &self,
        app: &AppId,
        author: &Author,
        (chat, seq): (ChatNumber, MessageNumber),
        body: String,
        from: Option<SessionId>,
    ) -> Result<Message, ChatError> {
        if body.trim().is_empty() {
            return Err(ChatError::Invalid("`body` must not be empty"));
        }
        self.may_change(app, author, chat, seq, Others::Never("only its author may edit a message")).await?;
        let edited = match self.store.edit_message(app, chat, seq, &body, Timestamp::now()).await? {
            Change::Done(m) => m,
            Change::Missing => return Err(ChatError::MessageNotFound),
            Change::Deleted(_) => return Err(ChatError::MessageDeleted),
        };
        self.changed(&edited, from).await;
        Ok(self.with_url(edited).await)
    }

    /// Deletes a message (a tombstone keeps its number): a user their own
    /// message, or anyone's with the admin or owner role; the backend any.
    /// Deleting it again is `MessageDeleted`.
    pub async fn delete_message(
        &self,
        app: &AppId,
        author: &Author,
        (chat, seq): (ChatNumber, MessageNumber),
        from: Option<SessionId>,
    ) -> Result<Message, ChatError> {
        let before = self
            .may_change(app, author, chat, seq, Others::Managers(super::groups::DELETE_OTHERS_NEEDS))
            .await?;
        let tombstone = match self.store.delete_message(app, chat, seq, Timestamp::now()).await? {
            Change::Done(m) => m,
            Change::Missing => return Err(ChatError::MessageNotFound),
            Change::Deleted(_) => return Err(ChatError::MessageDeleted),
        };
        // After the tombstone: a failure here leaves files no message names.
        self.delete_files(app, chat, &before.attachments).await;
        self.changed(&tombstone, from).await;
        Ok(tombstone)
    }

    /// A reply to `parent` was persisted: the parent (with its new count) is
    /// refreshed in the recent cache and announced to the members (but the
    /// replying session `from`, which has its ack).
    pub(super) async fn thread_updated(
        &self,
        app: &AppId,
        chat: ChatNumber,
        parent: MessageNumber,
        from: Option<SessionId>,
    ) {
        let parent = match self.store.message(app, chat, parent).await {
            Ok(Some(parent)) => parent,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a reply's parent to announce its thread");
                return;
            }
        };
        self.recent.replace(&parent).await;
        match self.member_list(app, chat).await {
            Ok(members) => {
                let audience = Audience::Chat { chat, members, except_user: None };
                self.fabric.deliver(app, &Event::ThreadUpdated(parent), &audience, from).await;
            }
            Err(e) => tracing::warn!(error = %e, "cannot read members to announce a thread"),
        }
    }

    /// A thread: the replies to `parent`, oldest first, after `after`.
    pub async fn replies(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        parent: MessageNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Result<Vec<Message>, ChatError> {
        let app = self.application(token).await?;
        self.ensure_chat(&app.id, chat).await?;
        if self.store.message(&app.id, chat, parent).await?.is_none() {
            return Err(ChatError::MessageNotFound);
        }
        let mut items = self.store.replies(&app.id, chat, parent, after, limit).await?;
        self.with_urls(&mut items).await;
        Ok(items)
    }

    /// The earlier bodies of a message, oldest first (the backend's audit).
    pub async fn message_versions(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        seq: MessageNumber,
    ) -> Result<Vec<MessageVersion>, ChatError> {
        let app = self.application(token).await?;
        self.ensure_chat(&app.id, chat).await?;
        if self.store.message(&app.id, chat, seq).await?.is_none() {
            return Err(ChatError::MessageNotFound);
        }
        Ok(self.store.message_versions(&app.id, chat, seq).await?)
    }

    /// Whether `author` may change message `seq` of `chat` (the message, if
    /// so): a user must be a member and its sender (or, where `others`
    /// allows, a chat admin or owner); the backend may change any message.
    async fn may_change(
        &self,
        app: &AppId,
        author: &Author,
        chat: ChatNumber,
        seq: MessageNumber,
        others: Others,
    ) -> Result<Message, ChatError> {
        match author {
            Author::User(user) => self.ensure_member(app, chat, user).await?,
            Author::Backend(_) => self.ensure_chat(app, chat).await?,
        }
        let message = self.store.message(app, chat, seq).await?.ok_or(ChatError::MessageNotFound)?;
        if message.is_deleted() {
            return Err(ChatError::MessageDeleted);
        }
        if let Author::User(user) = author
            && message.sender.as_ref() != Some(user)
        {
            return match others {
                Others::Managers(_) if self.manages(app, chat, user).await? => Ok(message),
                Others::Never(refusal) | Others::Managers(refusal) => Err(ChatError::Forbidden(refusal)),
            };
        }
        Ok(message)
    }

    /// After a change is stored: the cache, the index, the members.
    async fn changed(&self, message: &Message, from: Option<SessionId>) {
        self.notify_changed(message);
        self.recent.replace(message).await;
        if message.is_deleted() {
            self.unindex_message(&message.app, message.chat, message.number);
        } else {
            self.reindex_message(message);
        }
        match self.member_list(&message.app, message.chat).await {
            Ok(members) => {
                let audience = Audience::Chat { chat: message.chat, members, except_user: None };
                let event = Event::MessageChanged(message.clone());
                self.fabric.deliver(&message.app, &event, &audience, from).await;
            }
            // Stored: members see the change in history and `sync`.
            Err(e) => tracing::warn!(error = %e, "cannot read members to announce a change"),
        }
    }
}
