//! Receipts (`delivered`/`read`), typing, and who hears about a user's presence.

use std::collections::BTreeSet;

use crate::chat::{ChatError, ChatService};
use crate::delivery::SessionId;
use crate::delivery::{Audience, Event};
use crate::ids::{AppId, AppToken, ChatNumber, MessageNumber, UserId};
use crate::model::{Page, ReadState, ReceiptKind};

/// Chats of a user whose members hear about the user's presence, at most.
const PRESENCE_CHATS: usize = 1_000;
/// Users told about one presence change, at most.
const PRESENCE_AUDIENCE: usize = 10_000;

impl ChatService {
    /// Moves `user`'s receipt position in `chat` forward to `seq` and tells
    /// the chat's members (but session `from`); returns whether it moved.
    pub async fn receipt(
        &self,
        app: &AppId,
        user: &UserId,
        chat: ChatNumber,
        kind: ReceiptKind,
        seq: MessageNumber,
        from: Option<SessionId>,
    ) -> Result<bool, ChatError> {
        self.ensure_member(app, chat, user).await?;
        let newest = self.numbers.messages_counts(app, &[chat]).await?.first().copied().unwrap_or(0);
        if seq.get() > newest {
            return Err(ChatError::Invalid("`seq` is past the chat's newest message"));
        }
        let before = self.store.read_state(app, chat, user).await?;
        let moved = match (&before, kind) {
            (None, _) => seq.get() > 0,
            (Some(state), ReceiptKind::Delivered) => seq > state.delivered,
            (Some(state), ReceiptKind::Read) => seq > state.read,
        };
        if !moved {
            return Ok(false);
        }
        self.store.advance_read_state(app, chat, user, kind, seq).await?;
        if kind == ReceiptKind::Read {
            self.notify_read(app, chat, user, seq);
        }
        let members = self.member_list(app, chat).await?;
        let event = Event::Receipt { chat, user: user.clone(), kind, seq };
        self.fabric.deliver(app, &event, &Audience::Chat { chat, members, except_user: None }, from).await;
        Ok(true)
    }

    /// Every member's receipt positions in a chat (`GET .../read_state`).
    pub async fn read_states(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        page: Page,
    ) -> Result<Vec<ReadState>, ChatError> {
        let app = self.application(token).await?;
        self.ensure_chat(&app.id, chat).await?;
        Ok(self.store.read_states(&app.id, chat, page).await?)
    }

    /// Tells the other members of `chat` that `user` is typing.
    pub async fn typing(&self, app: &AppId, user: &UserId, chat: ChatNumber) -> Result<(), ChatError> {
        self.ensure_member(app, chat, user).await?;
        let members = self.member_list(app, chat).await?;
        let audience = Audience::Chat { chat, members, except_user: Some(user.clone()) };
        self.fabric.deliver(app, &Event::Typing { chat, user: user.clone() }, &audience, None).await;
        Ok(())
    }

    /// The chats of `user` (at most the first 1,000), for routing its sessions.
    pub async fn chats_of(&self, app: &AppId, user: &UserId) -> Result<Vec<ChatNumber>, ChatError> {
        Ok(self.store.user_chats(app, user, Page { skip: 0, limit: PRESENCE_CHATS }).await?)
    }

    /// Tells the members of `user`'s chats that `user` came online or went offline.
    pub async fn announce_presence(&self, app: &AppId, user: &UserId, online: bool) -> Result<(), ChatError> {
        self.notify_presence(app, user, online);
        let chats = self.store.user_chats(app, user, Page { skip: 0, limit: PRESENCE_CHATS }).await?;
        let mut audience = BTreeSet::new();
        let mut via = Vec::new();
        for chat in chats {
            let members = self.member_list(app, chat).await?;
            audience.extend(members.iter().filter(|m| *m != user).cloned());
            via.push(chat);
            if audience.len() >= PRESENCE_AUDIENCE {
                break;
            }
        }
        let audience = Audience::MembersOf { chats: via, users: audience.into_iter().collect() };
        self.fabric.deliver(app, &Event::Presence { user: user.clone(), online }, &audience, None).await;
        Ok(())
    }
}
