//! Reactions: one per user, message and emoji. Adding one twice or taking
//! back one that is not there is an answer, not a change: nothing is written
//! or announced.

use super::{ChatError, ChatService};
use crate::delivery::{Audience, Event, SessionId};
use crate::ids::{AppId, AppToken, ChatNumber, MessageNumber, UserId};
use crate::model::{Change, MAX_REACTION_KINDS, Message, check_emoji};

impl ChatService {
    /// Adds (`on`) or takes back `user`'s `emoji` on message `seq` of
    /// `chat`, which `user` must be a member of; returns the message as it
    /// is now. The members' sessions hear of a change but `from` (the
    /// session that asked, which gets its answer instead).
    pub async fn react(
        &self,
        app: &AppId,
        user: &UserId,
        (chat, seq): (ChatNumber, MessageNumber),
        emoji: &str,
        on: bool,
        from: Option<SessionId>,
    ) -> Result<Message, ChatError> {
        check_emoji(emoji)
            .map_err(|_| ChatError::Invalid("`emoji` must be 1 to 16 characters, no white space"))?;
        self.ensure_member(app, chat, user).await?;
        let current = self.store.message(app, chat, seq).await?.ok_or(ChatError::MessageNotFound)?;
        if current.is_deleted() {
            return Err(ChatError::MessageDeleted);
        }
        if current.reactions.has(emoji, user) == on {
            return Ok(current);
        }
        if on && current.reactions.count(emoji) == 0 && current.reactions.kinds() >= MAX_REACTION_KINDS {
            return Err(ChatError::Invalid("a message takes at most 50 different reactions"));
        }
        let now = match self.store.set_reaction(app, chat, seq, emoji, user, on).await? {
            Change::Done(m) => m,
            Change::Missing => return Err(ChatError::MessageNotFound),
            Change::Deleted(_) => return Err(ChatError::MessageDeleted),
        };
        self.recent.replace(&now).await;
        match self.member_list(app, chat).await {
            Ok(members) => {
                let event = Event::Reaction {
                    chat,
                    seq,
                    user: user.clone(),
                    emoji: emoji.to_owned(),
                    on,
                    count: now.reactions.count(emoji),
                };
                let audience = Audience::Chat { chat, members, except_user: None };
                self.fabric.deliver(app, &event, &audience, from).await;
            }
            // Stored: members see it in history and `sync`.
            Err(e) => tracing::warn!(error = %e, "cannot read members to announce a reaction"),
        }
        Ok(now)
    }

    /// [`react`](Self::react) by the application's backend on behalf of `user`.
    pub async fn react_for(
        &self,
        token: &AppToken,
        user: &UserId,
        at: (ChatNumber, MessageNumber),
        emoji: &str,
        on: bool,
    ) -> Result<Message, ChatError> {
        let app = self.application(token).await?;
        self.ensure_chat(&app.id, at.0).await?;
        self.react(&app.id, user, at, emoji, on, None).await
    }
}
