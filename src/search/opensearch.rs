//! The OpenSearch backend of [`SearchIndex`]: for a cluster, where every node
//! indexes into and searches one shared OpenSearch.
//!
//! Two indices per prefix: `<prefix>-messages` holds one document per message
//! (id `{app}/{chat}/{seq}`, routed by application, so a search reads one shard
//! and indexing twice leaves one document), and `<prefix>-indexed` one
//! document per chat (id `{app}/{chat}`) with its indexed-through number. Both
//! are created on first use, with their settings and mappings, idempotently.
//!
//! `body` is analyzed into words (the standard tokenizer, lowercased, accents
//! folded, CJK runs as bigrams); `body.prefix` holds every prefix of every
//! word (an `edge_ngram` filter at index time, the word analyzer at search
//! time), so `hel` finds "hello". Positions only ever rise: each is written
//! with OpenSearch's external versioning (`version = seq`, `external_gte`),
//! so a lower mark is refused by OpenSearch itself, atomically.
//!
//! Plain REST over reqwest. A connection failure, a timeout, a 429 or a 5xx is
//! [`SearchError::Unavailable`]; anything else unexpected is
//! [`SearchError::Internal`]. Neither carries a body or a credential.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::ids::{AppId, ChatNumber, MessageNumber};
use crate::search::{Hit, SearchDoc, SearchError, SearchIndex, SearchRequest};

/// OpenSearch's default `index.max_result_window`: `from + size` may not pass it.
const MAX_RESULT_WINDOW: usize = 10_000;

/// The longest prefix indexed in `body.prefix`; a longer query word is looked
/// up there by its first this many characters (and matches `body` when typed whole).
const MAX_PREFIX_CHARS: u32 = 20;

/// Where OpenSearch is and how to reach it.
#[derive(Clone)]
pub struct OpenSearchConfig {
    /// The base URL, e.g. `https://search.internal:9200`.
    pub url: String,
    /// Basic-auth user, if the cluster needs one.
    pub username: Option<String>,
    /// Basic-auth password (with `username`).
    pub password: Option<String>,
    /// Names the indices: `<prefix>-messages`, `<prefix>-indexed`
    /// (lowercase letters, digits, `-` and `_`, starting with a letter or digit).
    pub index_prefix: String,
    /// The limit on each request, connecting included.
    pub timeout_ms: u64,
}

impl fmt::Debug for OpenSearchConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenSearchConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("index_prefix", &self.index_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// Why a request to OpenSearch did not do what was asked (no bodies, no credentials).
#[derive(Debug, thiserror::Error)]
pub enum OpenSearchError {
    /// The configuration cannot work.
    #[error("opensearch config: {0}")]
    Config(&'static str),
    /// The HTTP client could not be built.
    #[error("could not build the opensearch http client")]
    Client(#[source] reqwest::Error),
    /// No answer (connection refused, timeout, broken connection).
    #[error("opensearch did not answer {what}")]
    Transport {
        /// The operation.
        what: &'static str,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An answer with a status the operation does not expect.
    #[error("opensearch answered {what} with {status} ({kind})")]
    Status {
        /// The operation.
        what: &'static str,
        /// The HTTP status.
        status: StatusCode,
        /// OpenSearch's `error.type`, or `-`.
        kind: String,
    },
    /// A document of a bulk request failed.
    #[error("opensearch refused a document of a bulk request with {status} ({kind})")]
    BulkItem {
        /// The item's status.
        status: u16,
        /// OpenSearch's `error.type`, or `-`.
        kind: String,
    },
    /// An answer that does not parse as expected.
    #[error("unreadable opensearch answer to {what}")]
    Malformed {
        /// The operation.
        what: &'static str,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Whether OpenSearch should be retried later rather than considered broken.
fn retryable(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

impl OpenSearchError {
    fn into_search(self) -> SearchError {
        let unavailable = match &self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => retryable(*status),
            Self::BulkItem { status, .. } => StatusCode::from_u16(*status).is_ok_and(retryable),
            Self::Config(_) | Self::Client(_) | Self::Malformed { .. } => false,
        };
        if unavailable {
            SearchError::Unavailable(Box::new(self))
        } else {
            SearchError::Internal(Box::new(self))
        }
    }
}

impl From<OpenSearchError> for SearchError {
    fn from(e: OpenSearchError) -> Self {
        e.into_search()
    }
}

/// A body sent to OpenSearch.
enum Body {
    None,
    Json(Value),
    NdJson(String),
}

/// An index of messages in OpenSearch.
pub struct OpenSearchIndex {
    client: reqwest::Client,
    base: Url,
    auth: Option<(String, Option<String>)>,
    messages: String,
    positions: String,
    created: OnceCell<()>,
}

impl fmt::Debug for OpenSearchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenSearchIndex")
            .field("base", &self.base.as_str())
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl OpenSearchIndex {
    /// An index over the OpenSearch at `config.url`; nothing is asked of it
    /// until the first call (which creates the indices if they are missing).
    pub fn new(config: &OpenSearchConfig) -> Result<Self, OpenSearchError> {
        let mut base =
            Url::parse(&config.url).map_err(|_| OpenSearchError::Config("`url` is not an absolute URL"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(OpenSearchError::Config("`url` must be an http:// or https:// URL"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(OpenSearchError::Config(
                "`url` must not hold credentials (use `username` and `password`)",
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(OpenSearchError::Config("`url` must not have a query or a fragment"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let prefix = &config.index_prefix;
        let valid = prefix.len() <= 100
            && prefix.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid {
            return Err(OpenSearchError::Config(
                "`index_prefix` must be 1-100 of [a-z0-9_-], starting with a letter or digit",
            ));
        }
        if config.password.is_some() && config.username.is_none() {
            return Err(OpenSearchError::Config("`password` without `username`"));
        }
        if config.timeout_ms == 0 {
            return Err(OpenSearchError::Config("`timeout_ms` must be positive"));
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(OpenSearchError::Client)?;
        Ok(Self {
            client,
            base,
            auth: config.username.clone().map(|u| (u, config.password.clone())),
            messages: format!("{prefix}-messages"),
            positions: format!("{prefix}-indexed"),
            created: OnceCell::new(),
        })
    }

    /// The name of the index of messages (tests refresh it).
    pub fn messages_index(&self) -> &str {
        &self.messages
    }

    /// One request: `segments` are path segments (each percent-encoded, `/` included).
    async fn call(
        &self,
        what: &'static str,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<(StatusCode, bytes::Bytes), OpenSearchError> {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.client.request(method, url);
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, password.as_ref());
        }
        request = match body {
            Body::None => request,
            Body::Json(v) => request.header("content-type", "application/json").body(v.to_string()),
            Body::NdJson(s) => request.header("content-type", "application/x-ndjson").body(s),
        };
        let transport = |source| OpenSearchError::Transport { what, source };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
        Ok((status, bytes))
    }

    /// The error for an answer `what` did not expect.
    fn unexpected(what: &'static str, status: StatusCode, body: &[u8]) -> OpenSearchError {
        OpenSearchError::Status { what, status, kind: error_type(body).unwrap_or_else(|| "-".to_owned()) }
    }

    /// Creates both indices unless they exist (once per process when it works).
    async fn ensure_indices(&self) -> Result<(), OpenSearchError> {
        self.created
            .get_or_try_init(|| async {
                self.create_index(&self.messages, messages_index_body()).await?;
                self.create_index(&self.positions, positions_index_body()).await
            })
            .await
            .map(|_| ())
    }

    async fn create_index(&self, name: &str, body: Value) -> Result<(), OpenSearchError> {
        const WHAT: &str = "create index";
        let (status, bytes) = self.call(WHAT, Method::PUT, &[name], &[], Body::Json(body)).await?;
        if status.is_success() {
            return Ok(());
        }
        let kind = error_type(&bytes);
        if status == StatusCode::BAD_REQUEST && kind.as_deref() == Some("resource_already_exists_exception") {
            return Ok(());
        }
        Err(Self::unexpected(WHAT, status, &bytes))
    }
}

#[async_trait::async_trait]
impl SearchIndex for OpenSearchIndex {
    async fn index(&self, docs: &[SearchDoc]) -> Result<(), SearchError> {
        const WHAT: &str = "bulk index";
        if docs.is_empty() {
            return Ok(());
        }
        self.ensure_indices().await?;
        let mut body = String::new();
        for doc in docs {
            let action = json!({ "index": {
                "_index": self.messages,
                "_id": message_id(&doc.app, doc.chat, doc.seq),
                "routing": doc.app.as_str(),
            }});
            let source = json!({
                "app": doc.app.as_str(),
                "chat": doc.chat.get(),
                "seq": doc.seq.get(),
                "sender": doc.sender.as_ref().map(|s| s.as_str()),
                "body": doc.body,
                "created_at": doc.created_at.millis(),
                "thread": doc.reply_to.is_some(),
            });
            body.push_str(&action.to_string());
            body.push('\n');
            body.push_str(&source.to_string());
            body.push('\n');
        }
        self.bulk(WHAT, body, &[]).await
    }

    async fn mark_indexed_many(
        &self,
        marks: &[(AppId, ChatNumber, MessageNumber)],
    ) -> Result<(), SearchError> {
        const WHAT: &str = "write positions";
        let marks: Vec<_> = marks.iter().filter(|(_, _, seq)| seq.get() > 0).collect();
        if marks.is_empty() {
            return Ok(());
        }
        if marks.iter().any(|(_, _, seq)| i64::try_from(seq.get()).is_err()) {
            return Err(OpenSearchError::Config("message number beyond OpenSearch's versions").into());
        }
        self.ensure_indices().await?;
        let mut body = String::new();
        for (app, chat, seq) in marks {
            let action = json!({ "index": {
                "_index": self.positions,
                "_id": position_id(app, *chat),
                "version": seq.get(),
                "version_type": "external_gte",
            }});
            let source = json!({ "app": app.as_str(), "chat": chat.get(), "seq": seq.get() });
            body.push_str(&action.to_string());
            body.push('\n');
            body.push_str(&source.to_string());
            body.push('\n');
        }
        // 409: that chat's recorded position is already higher; positions only rise.
        self.bulk(WHAT, body, &[StatusCode::CONFLICT]).await
    }

    async fn remove(&self, app: &AppId, chat: ChatNumber, seq: MessageNumber) -> Result<(), SearchError> {
        const WHAT: &str = "delete document";
        self.ensure_indices().await?;
        let id = message_id(app, chat, seq);
        let segments = [self.messages.as_str(), "_doc", id.as_str()];
        let (status, bytes) =
            self.call(WHAT, Method::DELETE, &segments, &[("routing", app.as_str())], Body::None).await?;
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(Self::unexpected(WHAT, status, &bytes).into())
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<Hit>, SearchError> {
        const WHAT: &str = "search";
        let Some(body) = search_body(request) else {
            return Ok(Vec::new());
        };
        self.ensure_indices().await?;
        let segments = [self.messages.as_str(), "_search"];
        let query = [("routing", request.app.as_str())];
        let (status, bytes) = self.call(WHAT, Method::POST, &segments, &query, Body::Json(body)).await?;
        if !status.is_success() {
            return Err(Self::unexpected(WHAT, status, &bytes).into());
        }
        let answer: SearchAnswer = parse(WHAT, &bytes)?;
        Ok(answer
            .hits
            .hits
            .into_iter()
            .map(|hit| {
                let highlight = hit
                    .highlight
                    .and_then(|mut h| h.remove("body.prefix").or_else(|| h.remove("body")))
                    .and_then(|fragments| fragments.into_iter().next())
                    .unwrap_or(hit.source.body);
                Hit {
                    chat: ChatNumber(hit.source.chat),
                    seq: MessageNumber(hit.source.seq),
                    score: hit.score.unwrap_or(0.0),
                    highlight,
                }
            })
            .collect())
    }

    async fn indexed_through(&self, app: &AppId, chat: ChatNumber) -> Result<MessageNumber, SearchError> {
        const WHAT: &str = "read position";
        self.ensure_indices().await?;
        let id = position_id(app, chat);
        let segments = [self.positions.as_str(), "_doc", id.as_str()];
        let (status, bytes) = self.call(WHAT, Method::GET, &segments, &[], Body::None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(MessageNumber(0));
        }
        if !status.is_success() {
            return Err(Self::unexpected(WHAT, status, &bytes).into());
        }
        let answer: PositionAnswer = parse(WHAT, &bytes)?;
        Ok(MessageNumber(answer.source.map_or(0, |s| s.seq)))
    }

    async fn mark_indexed(
        &self,
        app: &AppId,
        chat: ChatNumber,
        seq: MessageNumber,
    ) -> Result<(), SearchError> {
        const WHAT: &str = "write position";
        if seq.get() == 0 {
            return Ok(());
        }
        // External versions are non-negative i64s: a larger seq cannot be recorded.
        if i64::try_from(seq.get()).is_err() {
            return Err(OpenSearchError::Config("message number beyond OpenSearch's versions").into());
        }
        self.ensure_indices().await?;
        let id = position_id(app, chat);
        let segments = [self.positions.as_str(), "_doc", id.as_str()];
        let version = seq.get().to_string();
        let query = [("version", version.as_str()), ("version_type", "external_gte")];
        let body = json!({ "app": app.as_str(), "chat": chat.get(), "seq": seq.get() });
        let (status, bytes) = self.call(WHAT, Method::PUT, &segments, &query, Body::Json(body)).await?;
        // 409: the recorded position is already higher; positions only rise.
        if status.is_success() || status == StatusCode::CONFLICT {
            return Ok(());
        }
        Err(Self::unexpected(WHAT, status, &bytes).into())
    }
}

impl OpenSearchIndex {
    /// Sends a `_bulk` body; an item failing with a status outside `fine`
    /// fails the call (the worst item decides: a retryable failure anywhere
    /// makes the whole call retryable).
    async fn bulk(&self, what: &'static str, body: String, fine: &[StatusCode]) -> Result<(), SearchError> {
        let (status, bytes) = self.call(what, Method::POST, &["_bulk"], &[], Body::NdJson(body)).await?;
        if !status.is_success() {
            return Err(Self::unexpected(what, status, &bytes).into());
        }
        let answer: BulkAnswer = parse(what, &bytes)?;
        if answer.errors {
            let accepted =
                |status: u16| (200..300).contains(&status) || fine.iter().any(|f| f.as_u16() == status);
            let failed = answer
                .items
                .iter()
                .filter_map(|item| item.values().next())
                .filter(|r| !accepted(r.status))
                .max_by_key(|r| (StatusCode::from_u16(r.status).is_ok_and(retryable), r.status));
            if let Some(r) = failed {
                let kind =
                    r.error.as_ref().and_then(|e| e.get("type")).and_then(Value::as_str).unwrap_or("-");
                return Err(OpenSearchError::BulkItem { status: r.status, kind: kind.to_owned() }.into());
            }
        }
        Ok(())
    }
}

/// A message's document id: the same message always lands on the same document.
fn message_id(app: &AppId, chat: ChatNumber, seq: MessageNumber) -> String {
    format!("{}/{}/{}", app.as_str(), chat, seq)
}

fn position_id(app: &AppId, chat: ChatNumber) -> String {
    format!("{}/{}", app.as_str(), chat)
}

/// Settings and mappings of `<prefix>-messages`.
fn messages_index_body() -> Value {
    json!({
        "settings": {
            "index": {
                "refresh_interval": "1s",
                // One copy on a single node, two from two nodes on.
                "auto_expand_replicas": "0-1",
            },
            "analysis": {
                "filter": {
                    "weft_prefixes": { "type": "edge_ngram", "min_gram": 1, "max_gram": MAX_PREFIX_CHARS },
                    // A query word longer than the longest prefix indexed is
                    // looked up by its first MAX_PREFIX_CHARS characters.
                    "weft_prefix_query": { "type": "truncate", "length": MAX_PREFIX_CHARS },
                },
                "analyzer": {
                    "weft_words": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding", "cjk_bigram"],
                    },
                    "weft_prefixes": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding", "cjk_bigram", "weft_prefixes"],
                    },
                    "weft_prefix_query": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding", "cjk_bigram", "weft_prefix_query"],
                    },
                },
            },
        },
        "mappings": {
            "dynamic": "strict",
            "_routing": { "required": true },
            "properties": {
                "app": { "type": "keyword" },
                "chat": { "type": "long" },
                "seq": { "type": "long" },
                "sender": { "type": "keyword" },
                "created_at": { "type": "date", "format": "epoch_millis" },
                "thread": { "type": "boolean" },
                "body": {
                    "type": "text",
                    "analyzer": "weft_words",
                    "fields": {
                        "prefix": { "type": "text", "analyzer": "weft_prefixes", "search_analyzer": "weft_prefix_query" },
                    },
                },
            },
        },
    })
}

/// Settings and mappings of `<prefix>-indexed`.
fn positions_index_body() -> Value {
    json!({
        "settings": { "index": { "auto_expand_replicas": "0-1" } },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "app": { "type": "keyword" },
                "chat": { "type": "long" },
                "seq": { "type": "long" },
            },
        },
    })
}

/// The `_search` body for `request`, or None when nothing can match (no chat
/// left to look in, `has:file`, an empty page or one past the result window).
fn search_body(request: &SearchRequest) -> Option<Value> {
    let q = &request.query;
    if q.has_file {
        return None;
    }
    let chats: Vec<u64> =
        request.chats.iter().filter(|c| q.in_chat.is_none_or(|only| only == **c)).map(|c| c.get()).collect();
    if chats.is_empty() {
        return None;
    }
    let skip = request.page.skip;
    let size = request.page.limit.min(MAX_RESULT_WINDOW.saturating_sub(skip));
    if size == 0 {
        return None;
    }

    let mut must = Vec::new();
    let mut marks = Vec::new();
    for word in &q.words {
        must.push(json!({ "bool": { "should": [
            { "match": { "body.prefix": { "query": word, "operator": "and" } } },
            { "match": { "body": { "query": word, "operator": "and" } } },
        ], "minimum_should_match": 1 } }));
        marks.push(json!({ "match": { "body.prefix": { "query": word, "operator": "and" } } }));
    }
    for phrase in &q.phrases {
        must.push(json!({ "match_phrase": { "body": phrase } }));
        marks.push(json!({ "match_phrase": { "body.prefix": phrase } }));
    }
    let mut filter =
        vec![json!({ "term": { "app": request.app.as_str() } }), json!({ "terms": { "chat": chats } })];
    if let Some(from) = &q.from {
        filter.push(json!({ "term": { "sender": from.as_str() } }));
    }
    if q.after.is_some() || q.before.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(after) = q.after {
            range.insert("gte".into(), json!(after.millis()));
        }
        if let Some(before) = q.before {
            range.insert("lt".into(), json!(before.millis()));
        }
        filter.push(json!({ "range": { "created_at": range } }));
    }
    if q.is_thread {
        filter.push(json!({ "term": { "thread": true } }));
    }
    let mut body = json!({
        "from": skip,
        "size": size,
        "query": { "bool": { "must": must, "filter": filter } },
        "sort": [
            { "_score": "desc" },
            { "created_at": "desc" },
            { "seq": "desc" },
            { "chat": "desc" },
        ],
        "_source": ["chat", "seq", "body"],
        "track_total_hits": false,
    });
    if !marks.is_empty() {
        // The prefix field marks whole words ("hel" marks "hello"): edge n-grams keep their word's offsets.
        body["highlight"] = json!({
            "pre_tags": ["<mark>"],
            "post_tags": ["</mark>"],
            "fields": { "body.prefix": {
                "type": "unified",
                "number_of_fragments": 0,
                "highlight_query": { "bool": { "should": marks } },
            } },
        });
    }
    Some(body)
}

fn parse<'a, T: Deserialize<'a>>(what: &'static str, bytes: &'a [u8]) -> Result<T, OpenSearchError> {
    serde_json::from_slice(bytes).map_err(|source| OpenSearchError::Malformed { what, source })
}

/// OpenSearch's `error.type` in an error answer, if there is one.
fn error_type(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("error")?.get("type")?.as_str().map(str::to_owned)
}

#[derive(Deserialize)]
struct BulkAnswer {
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct SearchAnswer {
    hits: SearchHits,
}

#[derive(Deserialize)]
struct SearchHits {
    hits: Vec<SearchHit>,
}

#[derive(Deserialize)]
struct SearchHit {
    #[serde(rename = "_score")]
    score: Option<f32>,
    #[serde(rename = "_source")]
    source: HitSource,
    #[serde(default)]
    highlight: Option<std::collections::HashMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
struct HitSource {
    chat: u64,
    seq: u64,
    body: String,
}

#[derive(Deserialize)]
struct PositionAnswer {
    #[serde(rename = "_source")]
    source: Option<PositionSource>,
}

#[derive(Deserialize)]
struct PositionSource {
    seq: u64,
}
