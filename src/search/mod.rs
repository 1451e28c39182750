//! Full-text search of messages: the [`SearchIndex`] seam and what crosses it.
//!
//! Two backends implement it: tantivy under the data dir (one node, nothing to
//! install) and OpenSearch (a cluster). The domain resolves *which chats* a
//! query may look in (the user's chats at query time) before it asks the index,
//! so a backend never decides who may see what; it only matches, ranks, filters
//! and pages within the chats it is given, and always within one application.
//!
//! Indexing is off the send path and at least once: a document's id is
//! (application, chat, seq), so indexing the same message twice leaves one
//! document. Each backend remembers per chat the highest number it has
//! indexed with nothing missing below it ([`SearchIndex::indexed_through`]), from
//! which a catch-up after a restart or an outage resumes.

mod config;
mod indexer;
pub mod opensearch;
pub mod query;
mod tantivy;

use crate::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Message, Page};

pub use self::tantivy::TantivyIndex;
pub use config::{SearchBackend, SearchConfig};
pub use indexer::{IndexChange, IndexFeed, Indexer};
pub use query::{ParsedQuery, QueryError};

/// The longest query text accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 256;

/// How deep paging reaches: hits ranked below this are never returned (a page
/// past it is empty), so a client's `page` cannot make a backend rank millions
/// (OpenSearch's default `max_result_window`).
pub const MAX_RESULT_WINDOW: usize = 10_000;

/// What is indexed of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchDoc {
    /// The application.
    pub app: AppId,
    /// The chat.
    pub chat: ChatNumber,
    /// The message's number.
    pub seq: MessageNumber,
    /// Who sent it, when known.
    pub sender: Option<UserId>,
    /// The text.
    pub body: String,
    /// The message this one answers, when any (`is:thread`).
    pub reply_to: Option<MessageNumber>,
    /// When it was accepted.
    pub created_at: Timestamp,
}

impl From<&Message> for SearchDoc {
    fn from(m: &Message) -> Self {
        Self {
            app: m.app.clone(),
            chat: m.chat,
            seq: m.number,
            sender: m.sender.clone(),
            body: m.body.clone(),
            reply_to: m.reply_to,
            created_at: m.created_at,
        }
    }
}

/// A search, scoped by the domain before it reaches a backend.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    /// The application searched (never another's documents).
    pub app: AppId,
    /// The chats the searcher may see; an empty list finds nothing.
    pub chats: Vec<ChatNumber>,
    /// What to match (words, prefixes, phrases) and the operators' filters.
    pub query: ParsedQuery,
    /// Which page of hits.
    pub page: Page,
}

/// One hit, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    /// The chat.
    pub chat: ChatNumber,
    /// The message's number.
    pub seq: MessageNumber,
    /// The backend's relevance score (higher is better; ties go newest first).
    pub score: f32,
    /// The body with the matched words marked `<mark>…</mark>` (HTML-escaped elsewhere).
    pub highlight: String,
}

/// Why the index could not answer or take documents.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The search engine does not answer (OpenSearch down, say); retry later.
    #[error("the search index is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The index is damaged or answered with something unreadable.
    #[error("the search index failed")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A full-text index of messages.
#[async_trait::async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// Adds (or replaces: same application, chat and seq) these documents.
    /// Searchable within about a second.
    async fn index(&self, docs: &[SearchDoc]) -> Result<(), SearchError>;

    /// Removes a message's document (a deleted message); absent is fine.
    async fn remove(&self, app: &AppId, chat: ChatNumber, seq: MessageNumber) -> Result<(), SearchError>;

    /// Hits for `request`: best match first, ties newest first, one page.
    async fn search(&self, request: &SearchRequest) -> Result<Vec<Hit>, SearchError>;

    /// The highest number of `chat` indexed with none missing below it (0: none).
    async fn indexed_through(&self, app: &AppId, chat: ChatNumber) -> Result<MessageNumber, SearchError>;

    /// Records that every message of `chat` up to `seq` is indexed.
    async fn mark_indexed(
        &self,
        app: &AppId,
        chat: ChatNumber,
        seq: MessageNumber,
    ) -> Result<(), SearchError>;

    /// [`mark_indexed`](Self::mark_indexed) for many chats at once (the
    /// indexer records every position that moved in one call).
    async fn mark_indexed_many(
        &self,
        marks: &[(AppId, ChatNumber, MessageNumber)],
    ) -> Result<(), SearchError> {
        for (app, chat, seq) in marks {
            self.mark_indexed(app, *chat, *seq).await?;
        }
        Ok(())
    }
}
