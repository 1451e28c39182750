//! Message search, scoped here: the index is asked only about the chats the
//! searcher may see at the moment of the query (one chat for the
//! application's backend; every chat a user is a member of, read from the
//! store, for a user), and hits come back as the stored messages.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;

use super::{ChatError, ChatService};
use crate::ids::{AppId, AppToken, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Message, Page};
use crate::search::{
    IndexChange, IndexFeed, ParsedQuery, SearchDoc, SearchError, SearchIndex, SearchRequest,
};

/// A user's chats read per store call while gathering the search scope.
const USER_CHATS_PAGE: usize = 1_000;
/// Hits whose messages are read from the store at once.
const READS_IN_FLIGHT: usize = 16;

/// The node's search index, when it has one, and its indexer's feed (edits
/// and deletes go through the indexer, which retries them while the index is down).
#[derive(Clone, Default)]
pub struct Search {
    index: Option<Arc<dyn SearchIndex>>,
    feed: Option<IndexFeed>,
}

impl Search {
    /// Search through `index`, changes through `feed`.
    pub fn new(index: Arc<dyn SearchIndex>, feed: IndexFeed) -> Self {
        Self { index: Some(index), feed: Some(feed) }
    }

    /// No search: every search answers `search_unavailable`.
    pub fn disabled() -> Self {
        Self { index: None, feed: None }
    }

    fn index(&self) -> Result<&Arc<dyn SearchIndex>, ChatError> {
        self.index.as_ref().ok_or(ChatError::Search(SearchError::Unavailable(Box::new(NotConfigured))))
    }
}

/// `[search] backend` is `none` (or `auto` on a CQL store).
#[derive(Debug, thiserror::Error)]
#[error("search is not configured on this node ([search] backend)")]
struct NotConfigured;

/// One hit: the message as stored, with its matched words marked.
#[derive(Clone, Debug)]
pub struct Found {
    /// The message.
    pub message: Message,
    /// The body with the matched words in `<mark>…</mark>` (HTML-escaped).
    pub highlight: String,
}

/// A page of hits, and whether more follow.
#[derive(Clone, Debug)]
pub struct Results {
    /// Best first, ties newest first.
    pub items: Vec<Found>,
    /// Whether the next page holds more.
    pub has_more: bool,
}

/// Filters of a user's search besides the query's own operators.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// Only this chat.
    pub chat: Option<ChatNumber>,
    /// Only messages this user sent.
    pub sender: Option<UserId>,
    /// Only messages created at or after this instant.
    pub after: Option<Timestamp>,
    /// Only messages created before this instant.
    pub before: Option<Timestamp>,
}

impl ChatService {
    /// Searches one chat of an application (its backend: any chat).
    pub async fn search_chat(
        &self,
        token: &AppToken,
        chat: ChatNumber,
        query: ParsedQuery,
        page: Page,
    ) -> Result<Results, ChatError> {
        let app = self.application(token).await?;
        self.ensure_chat(&app.id, chat).await?;
        let chats = match query.in_chat {
            Some(other) if other != chat => Vec::new(),
            _ => vec![chat],
        };
        self.run_search(&app.id, chats, query, page).await
    }

    /// Searches every chat `user` is a member of now, narrowed by `filters`.
    pub async fn search_user(
        &self,
        app: &AppId,
        user: &UserId,
        mut query: ParsedQuery,
        filters: Filters,
        page: Page,
    ) -> Result<Results, ChatError> {
        let mut chats = Vec::new();
        loop {
            let page = Page { skip: chats.len(), limit: USER_CHATS_PAGE };
            let some = self.store.user_chats(app, user, page).await?;
            let done = some.len() < USER_CHATS_PAGE;
            chats.extend(some);
            if done {
                break;
            }
        }
        for only in [filters.chat, query.in_chat].into_iter().flatten() {
            chats.retain(|c| *c == only);
        }
        if let Some(sender) = filters.sender {
            if query.from.as_ref().is_some_and(|from| *from != sender) {
                chats.clear();
            }
            query.from = Some(sender);
        }
        query.after = query.after.max(filters.after);
        query.before = match (query.before, filters.before) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.run_search(app, chats, query, page).await
    }

    /// Searches the application `token` names as `user` (the REST route).
    pub async fn search_user_of(
        &self,
        token: &AppToken,
        user: &UserId,
        query: ParsedQuery,
        filters: Filters,
        page: Page,
    ) -> Result<Results, ChatError> {
        let app = self.application(token).await?;
        self.search_user(&app.id, user, query, filters, page).await
    }

    async fn run_search(
        &self,
        app: &AppId,
        chats: Vec<ChatNumber>,
        query: ParsedQuery,
        page: Page,
    ) -> Result<Results, ChatError> {
        let index = self.search.index()?;
        let started = Instant::now();
        let m = crate::metrics::metrics();
        let limit = page.limit;
        // One more than asked, to tell whether a next page exists.
        let request = SearchRequest {
            app: app.clone(),
            chats,
            query,
            page: Page { skip: page.skip, limit: limit.saturating_add(1) },
        };
        let mut hits = index.search(&request).await.map_err(|e| {
            m.search_errors.with_label_values(&["search"]).inc();
            ChatError::Search(e)
        })?;
        let has_more = hits.len() > limit;
        hits.truncate(limit);
        let store = &self.store;
        let found: Vec<Result<Option<Found>, ChatError>> = futures::stream::iter(hits)
            .map(|hit| async move {
                let message = store.message(app, hit.chat, hit.seq).await?;
                // A hit whose message is gone (deleted) is left out.
                Ok(message.map(|message| Found { message, highlight: hit.highlight }))
            })
            .buffered(READS_IN_FLIGHT)
            .collect()
            .await;
        let mut items = Vec::with_capacity(found.len());
        for f in found {
            // A message deleted since it was indexed is never shown, whatever the index still holds.
            items.extend(f?.filter(|f| !f.message.is_deleted()));
        }
        m.search_seconds.observe(started.elapsed().as_secs_f64());
        for found in &mut items {
            self.with_urls(std::slice::from_mut(&mut found.message)).await;
        }
        Ok(Results { items, has_more })
    }

    /// A message's text changed (an edit): the index will hold the new text
    /// (within a tick of the indexer; retried while the index is down).
    pub fn reindex_message(&self, message: &Message) {
        if let Some(feed) = &self.search.feed {
            feed.changed(IndexChange::Upsert(SearchDoc::from(message)));
        }
    }

    /// A message is gone (a delete): the index will forget it (likewise).
    pub fn unindex_message(&self, app: &AppId, chat: ChatNumber, seq: MessageNumber) {
        if let Some(feed) = &self.search.feed {
            feed.changed(IndexChange::Remove(app.clone(), chat, seq));
        }
    }
}
