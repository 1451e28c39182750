//! The real-time send path: authorize, deduplicate, number, persist, fan out.

use crate::chat::{ALL, ChatError, ChatService};
use crate::gateway::hub::SessionId;
use crate::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Application, Message, MessageRange, Page};

/// Hands persisted messages to the sessions of their recipients (this node's
/// hub now; other nodes through the cluster transport later).
pub trait Deliver: Send + Sync + 'static {
    /// Delivers `message` to every session of `recipients` but `except`.
    fn deliver(&self, message: &Message, recipients: &[UserId], except: Option<SessionId>);
}

/// A message a user sends from a session.
#[derive(Clone, Debug)]
pub struct SendRequest {
    /// The chat.
    pub chat: ChatNumber,
    /// The text.
    pub body: String,
    /// The sender's idempotency key.
    pub client_msg_id: String,
    /// The message it answers.
    pub reply_to: Option<MessageNumber>,
}

/// The outcome of a send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The chat.
    pub chat: ChatNumber,
    /// The message's number.
    pub seq: MessageNumber,
    /// This `client_msg_id` was sent before: nothing new was stored or delivered.
    pub duplicate: bool,
}

impl ChatService {
    /// Fails with `NotAMember` unless `user` is a member of `chat`.
    async fn ensure_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<(), ChatError> {
        self.ensure_chat(app, chat).await?;
        if self.store.is_member(app, chat, user).await? { Ok(()) } else { Err(ChatError::NotAMember) }
    }

    /// Delivers a persisted message to the chat's members.
    pub(super) async fn fan_out(&self, message: &Message, except: Option<SessionId>) {
        match self.store.members(&message.app, message.chat, ALL).await {
            Ok(members) => {
                let users: Vec<UserId> = members.into_iter().map(|m| m.user).collect();
                self.deliver.deliver(message, &users, except);
            }
            // The message is persisted: members catch up with `hello`/`sync`.
            Err(e) => tracing::warn!(error = %e, "cannot read members for fan-out"),
        }
    }

    /// Sends a message from `sender`'s session `from`; returns once persisted.
    pub async fn send(
        &self,
        app: &Application,
        sender: &UserId,
        request: SendRequest,
        from: Option<SessionId>,
    ) -> Result<Sent, ChatError> {
        let chat = request.chat;
        self.ensure_member(&app.id, chat, sender).await?;
        let key = (app.id.clone(), sender.clone(), request.client_msg_id.clone());
        // Known gap: a retry that arrives while the first send is still being
        // committed gets its ack before that commit finishes.
        if let Some((chat, seq)) = self.seq.recall(&key).await? {
            return Ok(Sent { chat, seq, duplicate: true });
        }
        let seq = self.seq.next_message(&app.id, chat).await?;
        if let Some((chat, seq)) = self.seq.remember(&key, chat, seq).await? {
            // A concurrent retry claimed the key first; our number stays a gap.
            return Ok(Sent { chat, seq, duplicate: true });
        }
        let message = Message {
            app: app.id.clone(),
            chat,
            number: seq,
            body: request.body,
            sender: Some(sender.clone()),
            client_msg_id: Some(request.client_msg_id),
            reply_to: request.reply_to,
            created_at: Timestamp::now(),
        };
        if let Err(e) = self.writer.write(message.clone()).await {
            // Not persisted: a retry with the same key must try again.
            let _ = self.seq.forget(&key).await;
            return Err(e.into());
        }
        self.fan_out(&message, from).await;
        Ok(Sent { chat, seq, duplicate: false })
    }

    /// Messages of `chat` after `after`, oldest first, at most `limit`; and whether more follow.
    pub async fn sync(
        &self,
        app: &AppId,
        user: &UserId,
        chat: ChatNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), ChatError> {
        self.ensure_member(app, chat, user).await?;
        let newest = self.seq.messages_counts(app, &[chat]).await?.first().copied().unwrap_or(0);
        let upper = after.get().saturating_add(limit as u64);
        let range = MessageRange {
            after: Some(after),
            before: Some(MessageNumber(upper.saturating_add(1))),
            page: Page { skip: 0, limit },
        };
        let mut items = self.store.messages(app, chat, range).await?;
        items.reverse();
        Ok((items, upper < newest))
    }
}
