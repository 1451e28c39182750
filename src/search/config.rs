//! `[search]`: which index backs message search, and how the indexer paces itself.

use serde::Deserialize;

/// Which index answers searches.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SearchBackend {
    /// `embedded` on the embedded store, `none` on CQL (a per-node index
    /// would only hold what its own node wrote).
    #[default]
    Auto,
    /// No search: search requests answer 503 `search_unavailable`.
    None,
    /// tantivy under `<store.data_dir>/search` (one node).
    Embedded,
    /// OpenSearch at `url` (a cluster).
    Opensearch,
}

/// `[search]`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Which index.
    pub backend: SearchBackend,
    /// OpenSearch's base URL, e.g. `http://opensearch:9200`.
    pub url: String,
    /// OpenSearch user (basic auth); empty: none.
    pub username: String,
    /// OpenSearch password (basic auth).
    pub password: String,
    /// OpenSearch index names start with this (`<prefix>-messages`, `<prefix>-indexed`).
    pub index_prefix: String,
    /// OpenSearch request timeout, in ms.
    pub timeout_ms: u64,
    /// Most documents in one indexing call.
    pub batch_max_docs: usize,
    /// How long the indexer waits for more documents after the first, in ms.
    pub batch_delay_ms: u64,
    /// Committed messages waiting for the indexer at most; past it they are
    /// caught up from the store instead (the send path never waits).
    pub queue: usize,
    /// A chat whose indexed position has not caught up with what was indexed
    /// for this long is caught up from the store, in ms.
    pub settle_ms: u64,
    /// A number missing from the store below a message older than this is a
    /// gap that will never fill (a commit cannot take longer), in ms.
    pub commit_horizon_ms: u64,
    /// Every this often one node walks every chat and catches up what the
    /// index lacks (messages of a node that died before indexing them), in ms.
    pub scan_interval_ms: u64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            backend: SearchBackend::Auto,
            url: String::new(),
            username: String::new(),
            password: String::new(),
            index_prefix: "weft".into(),
            timeout_ms: 5_000,
            batch_max_docs: 20_000,
            batch_delay_ms: 500,
            queue: 100_000,
            settle_ms: 5_000,
            commit_horizon_ms: 30_000,
            scan_interval_ms: 600_000,
        }
    }
}

impl std::fmt::Debug for SearchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchConfig")
            .field("backend", &self.backend)
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .field("index_prefix", &self.index_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("batch_max_docs", &self.batch_max_docs)
            .field("batch_delay_ms", &self.batch_delay_ms)
            .field("queue", &self.queue)
            .field("settle_ms", &self.settle_ms)
            .field("commit_horizon_ms", &self.commit_horizon_ms)
            .field("scan_interval_ms", &self.scan_interval_ms)
            .finish()
    }
}

impl SearchConfig {
    /// The OpenSearch client's settings.
    pub fn opensearch(&self) -> super::opensearch::OpenSearchConfig {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        super::opensearch::OpenSearchConfig {
            url: self.url.clone(),
            username: some(&self.username),
            password: some(&self.password),
            index_prefix: self.index_prefix.clone(),
            timeout_ms: self.timeout_ms,
        }
    }
}
