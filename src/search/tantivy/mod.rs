//! The embedded search index: tantivy in a directory of the node's data dir.
//!
//! The body is indexed twice (see [`analysis`]): as whole words with positions
//! (`words`, for exact words and phrases, and stored for highlights) and as the
//! prefixes of its words (`prefixes`, for partial words). A query word must be
//! a prefix of some word and scores higher where it is the whole word; ranking
//! is BM25, ties newest first. Each [`SearchIndex::index`] call is one commit,
//! after which the reader reloads: a document is searchable when the call
//! returns. Per chat positions live in `positions.redb` beside the index, and
//! are cleared when the index is created (a wiped index is caught up from 0).
//! tantivy blocks, so every call runs on tokio's blocking pool.

mod analysis;
mod highlight;
mod positions;
mod query;
mod schema;

use std::path::Path;
use std::sync::{Arc, Mutex};

use ::tantivy::collector::TopDocs;
use ::tantivy::directory::MmapDirectory;
use ::tantivy::schema::Value;
use ::tantivy::{
    DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader, TantivyDocument,
};

use self::positions::Positions;
use self::schema::Fields;
use super::{Hit, MAX_RESULT_WINDOW, SearchDoc, SearchError, SearchIndex, SearchRequest};
use crate::ids::{AppId, ChatNumber, MessageNumber};

/// The writer's indexing memory (one thread): small, commits are frequent.
const WRITER_HEAP_BYTES: usize = 32 * 1024 * 1024;

/// A tantivy index in a directory (the node uses `<data_dir>/search`).
#[derive(Clone)]
pub struct TantivyIndex {
    inner: Arc<Inner>,
}

struct Inner {
    fields: Fields,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    reader: IndexReader,
    positions: Positions,
}

impl TantivyIndex {
    /// Opens the index in `dir`, creating it when absent. Blocking: call it at
    /// start (or on the blocking pool). Only one process may hold it open.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        let index_dir = dir.join("index");
        std::fs::create_dir_all(&index_dir).map_err(internal)?;
        let (schema, fields) = Fields::schema();
        let directory = MmapDirectory::open(&index_dir).map_err(internal)?;
        let positions = Positions::open(&dir.join("positions.redb")).map_err(internal)?;
        if !Index::exists(&directory).map_err(internal)? {
            // Positions describe this index: a new (or wiped) one starts from
            // nothing. Cleared before the index exists, so a crash in between
            // clears them again.
            positions.clear().map_err(internal)?;
        }
        let index = Index::open_or_create(directory, schema).map_err(internal)?;
        index.tokenizers().register(analysis::WORDS, analysis::words());
        index.tokenizers().register(analysis::PREFIXES, analysis::prefixes());
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES).map_err(internal)?;
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(internal)?;
        Ok(Self { inner: Arc::new(Inner { fields, writer: Mutex::new(writer), reader, positions }) })
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, SearchError> + Send + 'static,
    ) -> Result<T, SearchError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(internal)?
    }
}

impl Inner {
    fn index(&self, docs: &[SearchDoc]) -> Result<(), SearchError> {
        {
            let mut writer = self.writer.lock().map_err(|_| poisoned())?;
            for doc in docs {
                writer.delete_term(self.fields.id_term(&doc.app, doc.chat, doc.seq));
                writer.add_document(self.fields.document(doc)).map_err(internal)?;
            }
            writer.commit().map_err(internal)?;
        }
        self.reader.reload().map_err(internal)
    }

    fn remove(&self, app: &AppId, chat: ChatNumber, seq: MessageNumber) -> Result<(), SearchError> {
        {
            let mut writer = self.writer.lock().map_err(|_| poisoned())?;
            writer.delete_term(self.fields.id_term(app, chat, seq));
            writer.commit().map_err(internal)?;
        }
        self.reader.reload().map_err(internal)
    }

    fn search(&self, request: &SearchRequest) -> Result<Vec<Hit>, SearchError> {
        let Some((query, matched)) = query::build(&self.fields, request) else {
            return Ok(Vec::new());
        };
        let skip = request.page.skip;
        let limit = request.page.limit.min(MAX_RESULT_WINDOW.saturating_sub(skip));
        if limit == 0 {
            return Ok(Vec::new());
        }
        let collector = TopDocs::with_limit(limit).and_offset(skip).tweak_score(|segment: &SegmentReader| {
            let columns = segment.fast_fields();
            let created_at = columns.i64("created_at").ok().map(|c| c.first_or_default_col(0));
            let seq = columns.u64("seq").ok().map(|c| c.first_or_default_col(0));
            // Best score first; ties newest first (time, then number).
            move |doc: DocId, score: Score| {
                let created_at = created_at.as_ref().map_or(0, |c| c.get_val(doc));
                let seq = seq.as_ref().map_or(0, |c| c.get_val(doc));
                (score, created_at, seq)
            }
        });
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &collector).map_err(internal)?;
        let mut hits = Vec::with_capacity(top.len());
        for ((score, _, _), address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(internal)?;
            let number = |field| doc.get_first(field).and_then(|v| v.as_u64());
            let (Some(chat), Some(seq)) = (number(self.fields.chat), number(self.fields.seq)) else {
                return Err(internal(Damaged("a document without its chat or number")));
            };
            let body = doc.get_first(self.fields.words).and_then(|v| v.as_str()).unwrap_or_default();
            hits.push(Hit {
                chat: ChatNumber(chat),
                seq: MessageNumber(seq),
                score,
                highlight: highlight::highlight(body, &matched),
            });
        }
        Ok(hits)
    }
}

#[async_trait::async_trait]
impl SearchIndex for TantivyIndex {
    async fn index(&self, docs: &[SearchDoc]) -> Result<(), SearchError> {
        if docs.is_empty() {
            return Ok(());
        }
        let docs = docs.to_vec();
        self.blocking(move |inner| inner.index(&docs)).await
    }

    async fn remove(&self, app: &AppId, chat: ChatNumber, seq: MessageNumber) -> Result<(), SearchError> {
        let app = app.clone();
        self.blocking(move |inner| inner.remove(&app, chat, seq)).await
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<Hit>, SearchError> {
        let request = request.clone();
        self.blocking(move |inner| inner.search(&request)).await
    }

    async fn indexed_through(&self, app: &AppId, chat: ChatNumber) -> Result<MessageNumber, SearchError> {
        let app = app.clone();
        self.blocking(move |inner| inner.positions.get(&app, chat).map_err(internal)).await
    }

    async fn mark_indexed(
        &self,
        app: &AppId,
        chat: ChatNumber,
        seq: MessageNumber,
    ) -> Result<(), SearchError> {
        let app = app.clone();
        self.blocking(move |inner| inner.positions.raise(&app, chat, seq).map_err(internal)).await
    }

    async fn mark_indexed_many(
        &self,
        marks: &[(AppId, ChatNumber, MessageNumber)],
    ) -> Result<(), SearchError> {
        let marks = marks.to_vec();
        self.blocking(move |inner| inner.positions.raise_many(&marks).map_err(internal)).await
    }
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> SearchError {
    SearchError::Internal(Box::new(e))
}

fn poisoned() -> SearchError {
    internal(Damaged("the index writer's lock is poisoned (a writer panicked)"))
}

/// The index holds something it never writes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Damaged(&'static str);
