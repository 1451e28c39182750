//! Reading a chat's messages for its members' sessions: `sync` forward from a
//! position, `sync` backward from a number or the newest (history while a
//! client scrolls up), and the `hello` catch-up.
//!
//! Forward reads walk windows of numbers, so a page past a numbering gap says
//! where the next one starts; backward reads count messages, like the REST
//! history (`GET …/messages?before`), and read the newest page from the
//! recent cache when it provably holds it.

use crate::chat::{ChatError, ChatService};
use crate::ids::{AppId, ChatNumber, MessageNumber, UserId};
use crate::model::{Message, MessageRange, Page};

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

/// A chat's newest messages below a number, oldest first.
#[derive(Clone, Debug)]
pub struct HistoryPage {
    /// The messages.
    pub items: Vec<Message>,
    /// Older messages exist, below the first item.
    pub has_more: bool,
}

impl ChatService {
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
            self.with_urls(&mut items).await;
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
        let newest = self.numbers.messages_counts(app, &[chat]).await?.first().copied().unwrap_or(0);
        let upper = after.get().saturating_add(limit as u64);
        let range = MessageRange {
            after: Some(after),
            before: Some(MessageNumber(upper.saturating_add(1))),
            page: Page { skip: 0, limit },
        };
        let mut items = self.store.messages(app, chat, range).await?;
        items.reverse();
        self.with_urls(&mut items).await;
        let has_more = upper < newest;
        // Past an empty stretch (a numbering gap) the next page starts at its end.
        let next = if has_more { MessageNumber(upper) } else { items.last().map_or(after, |m| m.number) };
        Ok(CatchUp { items, has_more, next })
    }

    /// The newest messages of `chat` numbered below `before` (with no bound:
    /// the chat's newest), at most `limit`, oldest first; and whether older
    /// ones exist. Tombstones count as messages, as in the REST history.
    pub async fn history(
        &self,
        app: &AppId,
        user: &UserId,
        chat: ChatNumber,
        before: Option<MessageNumber>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        self.ensure_member(app, chat, user).await?;
        // One more than asked tells whether older ones exist.
        let wanted = limit.saturating_add(1);
        let cached = match before {
            None => self.recent.newest(app, chat, wanted).await,
            Some(_) => None,
        };
        let mut items = match cached {
            Some(items) => items,
            None => {
                let range = MessageRange { before, after: None, page: Page { skip: 0, limit: wanted } };
                self.store.messages(app, chat, range).await?
            }
        };
        // Both reads come newest first.
        let has_more = items.len() > limit;
        items.truncate(limit);
        items.reverse();
        self.with_urls(&mut items).await;
        Ok(HistoryPage { items, has_more })
    }
}
