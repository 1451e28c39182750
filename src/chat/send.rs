//! The real-time send path: authorize, deduplicate, number, persist, cache,
//! fan out.

use crate::cache::members::contains;
use crate::chat::{ALL, ChatError, ChatService, Event};
use crate::gateway::hub::SessionId;
use crate::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Application, Message, MessageRange, Page};

/// Where a message goes: a chat, or users (the chat is found or created).
#[derive(Clone, Debug)]
pub enum Target {
    /// A chat the sender is a member of.
    Chat(ChatNumber),
    /// The direct chat with one user, or a new group with several.
    Recipients(Vec<UserId>),
}

/// A message a user sends from a session.
#[derive(Clone, Debug)]
pub struct SendRequest {
    /// Where it goes.
    pub target: Target,
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

/// A chat's messages after a position, oldest first.
#[derive(Clone, Debug)]
pub struct CatchUp {
    /// The messages.
    pub items: Vec<Message>,
    /// More follow after the last item.
    pub has_more: bool,
    /// Where the next page starts (the last item's number, or past an empty stretch).
    pub next: MessageNumber,
}

impl ChatService {
    /// The members of `chat`, sorted by user id, from the cache when fresh.
    pub(super) async fn member_list(
        &self,
        app: &AppId,
        chat: ChatNumber,
    ) -> Result<crate::cache::members::Members, ChatError> {
        if let Some(members) = self.members.get(app, chat) {
            return Ok(members);
        }
        let members: crate::cache::members::Members =
            self.store.members(app, chat, ALL).await?.into_iter().map(|m| m.user).collect();
        self.members.put(app, chat, members.clone());
        Ok(members)
    }

    /// Fails with `NotAMember` unless `user` is a member of `chat`.
    pub(super) async fn ensure_member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<(), ChatError> {
        self.ensure_chat(app, chat).await?;
        if let Some(members) = self.members.get(app, chat)
            && contains(&members, user)
        {
            return Ok(());
        }
        if self.store.is_member(app, chat, user).await? { Ok(()) } else { Err(ChatError::NotAMember) }
    }

    /// Caches and delivers a persisted message to the chat's members.
    pub(super) async fn fan_out(&self, message: &Message, except: Option<SessionId>) {
        // Cached before delivered: a catch-up that starts after a recipient
        // missed the live frame finds the message (see `catch_up`).
        self.recent.push(std::slice::from_ref(message)).await;
        match self.member_list(&message.app, message.chat).await {
            Ok(members) => {
                self.deliver.deliver(&message.app, &Event::Message(message.clone()), &members, except);
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
        let key = (app.id.clone(), sender.clone(), request.client_msg_id.clone());
        // A retry of an implicit-chat send must not create a second chat.
        if let Some((chat, seq)) = self.seq.recall(&key).await? {
            return Ok(Sent { chat, seq, duplicate: true });
        }
        let chat = match &request.target {
            Target::Chat(chat) => {
                self.ensure_member(&app.id, *chat, sender).await?;
                *chat
            }
            Target::Recipients(users) => self.implicit_chat(&app.id, sender, users).await?,
        };
        // Known gap: a retry that arrives while the first send is still being
        // committed gets its ack before that commit finishes.
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
    ) -> Result<CatchUp, ChatError> {
        self.ensure_member(app, chat, user).await?;
        self.read_after(app, chat, after, limit).await
    }

    /// Like `sync`, but served from the recent cache when it provably holds
    /// every message after `after` (the `hello` path).
    pub async fn catch_up(
        &self,
        app: &AppId,
        user: &UserId,
        chat: ChatNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Result<CatchUp, ChatError> {
        self.ensure_member(app, chat, user).await?;
        // One more than asked tells whether more follow.
        if let Some(mut items) = self.recent.after(app, chat, after, limit.saturating_add(1)).await {
            let has_more = items.len() > limit;
            items.truncate(limit);
            let next = items.last().map_or(after, |m| m.number);
            return Ok(CatchUp { items, has_more, next });
        }
        self.read_after(app, chat, after, limit).await
    }

    async fn read_after(
        &self,
        app: &AppId,
        chat: ChatNumber,
        after: MessageNumber,
        limit: usize,
    ) -> Result<CatchUp, ChatError> {
        let newest = self.seq.messages_counts(app, &[chat]).await?.first().copied().unwrap_or(0);
        let upper = after.get().saturating_add(limit as u64);
        let range = MessageRange {
            after: Some(after),
            before: Some(MessageNumber(upper.saturating_add(1))),
            page: Page { skip: 0, limit },
        };
        let mut items = self.store.messages(app, chat, range).await?;
        items.reverse();
        let has_more = upper < newest;
        // Past an empty stretch (a numbering gap) the next page starts at its end.
        let next = if has_more { MessageNumber(upper) } else { items.last().map_or(after, |m| m.number) };
        Ok(CatchUp { items, has_more, next })
    }
}
