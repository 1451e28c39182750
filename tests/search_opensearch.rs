//! The OpenSearch backend of the search index against a real OpenSearch 2.19
//! node (`WEFT_TEST_OPENSEARCH_URL`, started by `scripts/services.sh up`).
//! Each test works in indices of its own prefix and deletes them at the end.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use weft::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use weft::model::Page;
use weft::search::opensearch::{OpenSearchConfig, OpenSearchIndex};
use weft::search::{Hit, SearchDoc, SearchError, SearchIndex, SearchRequest, query};

fn opensearch_url() -> String {
    std::env::var("WEFT_TEST_OPENSEARCH_URL").unwrap_or_else(|_| {
        panic!(
            "WEFT_TEST_OPENSEARCH_URL is not set: start OpenSearch with `bash scripts/services.sh up` \
             and run `eval \"$(bash scripts/services.sh env)\"` (scripts/test.sh does both)"
        )
    })
}

/// An index under a prefix of its own, on the test node.
struct Fixture {
    url: String,
    prefix: String,
    index: OpenSearchIndex,
    http: reqwest::Client,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let url = opensearch_url();
        let prefix = format!("weft-test-{name}-{:08x}", rand::random::<u32>());
        let index = OpenSearchIndex::new(&OpenSearchConfig {
            url: url.clone(),
            username: None,
            password: None,
            index_prefix: prefix.clone(),
            timeout_ms: 10_000,
        })
        .unwrap();
        Self { url, prefix, index, http: reqwest::Client::new() }
    }

    async fn index(&self, docs: &[SearchDoc]) {
        self.index.index(docs).await.unwrap();
        self.refresh().await;
    }

    /// Makes what was indexed searchable now (the index itself refreshes every second).
    async fn refresh(&self) {
        let url = format!("{}/{}/_refresh", self.url, self.index.messages_index());
        let status = self.http.post(url).send().await.unwrap().status();
        assert!(status.is_success(), "refresh answered {status}");
    }

    async fn search(&self, app: &str, chats: &[u64], text: &str) -> Vec<Hit> {
        self.page(app, chats, text, 0, 50).await
    }

    async fn page(&self, app: &str, chats: &[u64], text: &str, skip: usize, limit: usize) -> Vec<Hit> {
        self.index.search(&request(app, chats, text, skip, limit)).await.unwrap()
    }

    async fn seqs(&self, app: &str, chats: &[u64], text: &str) -> Vec<u64> {
        self.search(app, chats, text).await.iter().map(|h| h.seq.get()).collect()
    }

    /// Deletes this test's indices.
    async fn cleanup(self) {
        let url = format!("{}/{p}-messages,{p}-indexed", self.url, p = self.prefix);
        let status = self.http.delete(url).send().await.unwrap().status();
        assert!(status.is_success(), "deleting the test indices answered {status}");
    }
}

/// The search contract (the same checks the embedded index passes), each in indices of its own.
macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {
        mod contract {
            $(
                #[tokio::test]
                async fn $check() {
                    let fixture = super::Fixture::new(stringify!($check));
                    super::common::search_contract::$check(&fixture.index).await;
                    fixture.cleanup().await;
                }
            )*
        }
    };
}

with_search_checks!(contract_tests);

fn request(app: &str, chats: &[u64], text: &str, skip: usize, limit: usize) -> SearchRequest {
    SearchRequest {
        app: AppId::new(app),
        chats: chats.iter().copied().map(ChatNumber).collect(),
        query: query::parse(text).unwrap(),
        page: Page { skip, limit },
    }
}

/// 2026-01-01T00:00:00Z plus `minutes`.
fn at(minutes: i64) -> Timestamp {
    Timestamp(1_767_225_600_000 + minutes * 60_000)
}

fn doc(app: &str, chat: u64, seq: u64, body: &str) -> SearchDoc {
    SearchDoc {
        app: AppId::new(app),
        chat: ChatNumber(chat),
        seq: MessageNumber(seq),
        sender: Some(UserId::parse("alice").unwrap()),
        body: body.to_owned(),
        created_at: at(i64::try_from(seq).unwrap()),
        reply_to: None,
    }
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[tokio::test]
async fn partial_words_case_and_accents_match() {
    let f = Fixture::new("prefix");
    f.index(&[
        doc("a", 1, 1, "hello world"),
        doc("a", 1, 2, "Café au lait"),
        doc("a", 1, 3, "HELLO again"),
        doc("a", 1, 4, "shell script"),
    ])
    .await;

    assert_eq!(sorted(f.seqs("a", &[1], "hel").await), [1, 3]);
    assert_eq!(f.seqs("a", &[1], "wor").await, [1]);
    assert_eq!(f.seqs("a", &[1], "cafe").await, [2]);
    assert_eq!(f.seqs("a", &[1], "CAFÉ").await, [2]);
    assert_eq!(f.seqs("a", &[1], "hello").await.len(), 2);
    // A prefix is a word's start, not any part of it.
    assert!(f.seqs("a", &[1], "ell").await.is_empty());

    let hits = f.search("a", &[1], "wor").await;
    assert_eq!(hits[0].highlight, "hello <mark>world</mark>");
    assert!(hits[0].score > 0.0);
    let hits = f.search("a", &[1], "cafe").await;
    assert_eq!(hits[0].highlight, "<mark>Café</mark> au lait");
    f.cleanup().await;
}

#[tokio::test]
async fn every_word_must_match_and_phrases_match_in_order() {
    let f = Fixture::new("and");
    f.index(&[
        doc("a", 1, 1, "a big deal today"),
        doc("a", 1, 2, "deal with the big one"),
        doc("a", 1, 3, "a big thing"),
    ])
    .await;
    assert_eq!(sorted(f.seqs("a", &[1], "big deal").await), [1, 2]);
    assert_eq!(f.seqs("a", &[1], "big thi").await, [3]);
    assert_eq!(f.seqs("a", &[1], r#""big deal""#).await, [1]);
    assert_eq!(f.seqs("a", &[1], r#"today "big deal""#).await, [1]);
    assert!(f.seqs("a", &[1], r#""deal big""#).await.is_empty());
    let hits = f.search("a", &[1], r#""big deal""#).await;
    assert_eq!(hits[0].highlight, "a <mark>big</mark> <mark>deal</mark> today");
    f.cleanup().await;
}

#[tokio::test]
async fn cjk_text_is_searchable() {
    let f = Fixture::new("cjk");
    f.index(&[
        doc("a", 1, 1, "東京都に住んでいます"),
        doc("a", 1, 2, "大阪へ行きます"),
        doc("a", 1, 3, "서울에 갑니다"),
    ])
    .await;
    assert_eq!(f.seqs("a", &[1], "東京").await, [1]);
    assert_eq!(f.seqs("a", &[1], "東京都").await, [1]);
    assert_eq!(f.seqs("a", &[1], "大阪").await, [2]);
    assert_eq!(f.seqs("a", &[1], "東").await, [1]);
    assert_eq!(f.seqs("a", &[1], "서울").await, [3]);
    assert!(f.seqs("a", &[1], "京都大").await.is_empty());
    f.cleanup().await;
}

#[tokio::test]
async fn equal_scores_go_newest_first_and_pages_cut_that_order() {
    let f = Fixture::new("ranking");
    let mut docs: Vec<SearchDoc> = (1..=7).map(|seq| doc("a", 1, seq, "lunch now")).collect();
    // Two at the same instant: the higher number first.
    docs[1].created_at = docs[2].created_at;
    // Shuffled on the way in: the order comes from the index, not from arrival.
    docs.swap(0, 5);
    f.index(&docs).await;

    assert_eq!(f.seqs("a", &[1], "lunch").await, [7, 6, 5, 4, 3, 2, 1]);
    let mut paged = Vec::new();
    for skip in (0..8).step_by(3) {
        paged.extend(f.page("a", &[1], "lunch", skip, 3).await.iter().map(|h| h.seq.get()));
    }
    assert_eq!(paged, [7, 6, 5, 4, 3, 2, 1]);
    assert!(f.page("a", &[1], "lunch", 7, 3).await.is_empty());
    assert!(f.page("a", &[1], "lunch", 0, 0).await.is_empty());
    assert!(f.page("a", &[1], "lunch", 20_000, 10).await.is_empty());

    // A better match ranks above newer ones.
    f.index(&[doc("a", 1, 0, "lunch lunch lunch")]).await;
    assert_eq!(f.seqs("a", &[1], "lunch").await[0], 0);
    f.cleanup().await;
}

#[tokio::test]
async fn applications_are_isolated() {
    let f = Fixture::new("apps");
    // The same chat and number in two applications are two documents.
    f.index(&[doc("a", 1, 1, "secret plans"), doc("b", 1, 1, "secret recipes")]).await;
    let a = f.search("a", &[1], "secret").await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].highlight, "<mark>secret</mark> plans");
    let b = f.search("b", &[1], "secret").await;
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].highlight, "<mark>secret</mark> recipes");
    assert!(f.search("c", &[1], "secret").await.is_empty());
    f.cleanup().await;
}

#[tokio::test]
async fn only_the_given_chats_are_searched() {
    let f = Fixture::new("chats");
    f.index(&[doc("a", 1, 1, "ping"), doc("a", 2, 1, "ping"), doc("a", 3, 1, "ping")]).await;
    let chats = |hits: Vec<Hit>| sorted(hits.iter().map(|h| h.chat.get()).collect());
    assert_eq!(chats(f.search("a", &[1, 3], "ping").await), [1, 3]);
    assert_eq!(chats(f.search("a", &[1, 3], "ping in:3").await), [3]);
    // `in:` cannot widen the chats the searcher may see.
    assert!(f.search("a", &[1, 3], "ping in:2").await.is_empty());
    assert!(f.search("a", &[], "ping").await.is_empty());
    f.cleanup().await;
}

#[tokio::test]
async fn operators_filter() {
    let f = Fixture::new("filters");
    let mut bob = doc("a", 1, 2, "report draft");
    bob.sender = Some(UserId::parse("bob").unwrap());
    let mut nobody = doc("a", 1, 3, "report final");
    nobody.sender = None;
    f.index(&[doc("a", 1, 1, "report outline"), bob, nobody]).await;

    assert_eq!(f.seqs("a", &[1], "report from:bob").await, [2]);
    assert_eq!(f.seqs("a", &[1], "from:@alice").await, [1]);
    // after: is inclusive, before: exclusive (created_at = 2026-01-01T00:0{seq}:00Z).
    assert_eq!(f.seqs("a", &[1], "report after:2026-01-01T00:02:00Z").await, [3, 2]);
    assert_eq!(f.seqs("a", &[1], "report before:2026-01-01T00:02:00Z").await, [1]);
    assert_eq!(f.seqs("a", &[1], "after:2026-01-01T00:02:00Z before:2026-01-01T00:03:00Z").await, [2]);
    assert!(f.seqs("a", &[1], "report after:2026-01-02").await.is_empty());
    // No message has a file, and a SearchDoc does not say which are replies.
    assert!(f.seqs("a", &[1], "report has:file").await.is_empty());
    assert!(f.seqs("a", &[1], "report is:thread").await.is_empty());
    // Filters alone list every match, newest first.
    assert_eq!(f.seqs("a", &[1], "in:1").await, [3, 2, 1]);
    f.cleanup().await;
}

#[tokio::test]
async fn indexing_again_replaces_and_is_searchable_within_seconds() {
    let f = Fixture::new("reindex");
    f.index.index(&[doc("a", 1, 1, "first words")]).await.unwrap();
    f.index.index(&[doc("a", 1, 1, "second words")]).await.unwrap();
    f.index.index(&[doc("a", 1, 1, "second words")]).await.unwrap();
    // No explicit refresh: the index's own one-second refresh makes it visible.
    let deadline = Instant::now() + Duration::from_secs(30);
    let hits = loop {
        let hits = f.search("a", &[1], "words").await;
        // A refresh between the writes shows the first version for a moment: wait for the last.
        let settled = hits.len() == 1 && hits[0].highlight.starts_with("second");
        if settled || Instant::now() > deadline {
            break hits;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(hits.len(), 1, "one document per message");
    assert_eq!(hits[0].highlight, "second <mark>words</mark>");
    assert!(f.search("a", &[1], "first").await.is_empty());
    // An empty batch asks nothing.
    f.index.index(&[]).await.unwrap();
    f.cleanup().await;
}

#[tokio::test]
async fn removed_messages_are_not_found() {
    let f = Fixture::new("remove");
    f.index(&[doc("a", 1, 1, "oops typo"), doc("a", 1, 2, "oops fixed")]).await;
    f.index.remove(&AppId::new("a"), ChatNumber(1), MessageNumber(1)).await.unwrap();
    f.refresh().await;
    assert_eq!(f.seqs("a", &[1], "oops").await, [2]);
    // Absent is fine: again, and never indexed.
    f.index.remove(&AppId::new("a"), ChatNumber(1), MessageNumber(1)).await.unwrap();
    f.index.remove(&AppId::new("a"), ChatNumber(9), MessageNumber(9)).await.unwrap();
    // Another application's message of the same number stays.
    f.index(&[doc("b", 1, 2, "oops other")]).await;
    f.index.remove(&AppId::new("a"), ChatNumber(1), MessageNumber(2)).await.unwrap();
    f.refresh().await;
    assert!(f.seqs("a", &[1], "oops").await.is_empty());
    assert_eq!(f.seqs("b", &[1], "oops").await, [2]);
    f.cleanup().await;
}

#[tokio::test]
async fn indexed_through_only_rises() {
    let f = Fixture::new("positions");
    let (a, b) = (AppId::new("a"), AppId::new("b"));
    let through = |app: &AppId, chat: u64| {
        let app = app.clone();
        let index = &f.index;
        async move { index.indexed_through(&app, ChatNumber(chat)).await.unwrap().get() }
    };
    assert_eq!(through(&a, 1).await, 0);
    f.index.mark_indexed(&a, ChatNumber(1), MessageNumber(5)).await.unwrap();
    assert_eq!(through(&a, 1).await, 5);
    f.index.mark_indexed(&a, ChatNumber(1), MessageNumber(3)).await.unwrap();
    assert_eq!(through(&a, 1).await, 5, "a lower mark does not lower it");
    f.index.mark_indexed(&a, ChatNumber(1), MessageNumber(5)).await.unwrap();
    f.index.mark_indexed(&a, ChatNumber(1), MessageNumber(9)).await.unwrap();
    assert_eq!(through(&a, 1).await, 9);
    // Per chat and per application.
    assert_eq!(through(&a, 2).await, 0);
    assert_eq!(through(&b, 1).await, 0);
    f.index.mark_indexed(&b, ChatNumber(1), MessageNumber(2)).await.unwrap();
    assert_eq!(through(&b, 1).await, 2);
    assert_eq!(through(&a, 1).await, 9);

    // Racing marks end at the highest.
    let marks = (10..30).map(|seq| f.index.mark_indexed(&a, ChatNumber(3), MessageNumber(seq)));
    for result in futures::future::join_all(marks).await {
        result.unwrap();
    }
    assert_eq!(through(&a, 3).await, 29);
    f.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_opensearch_is_unavailable() {
    // A port nothing listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let index = OpenSearchIndex::new(&OpenSearchConfig {
        url: format!("http://127.0.0.1:{port}"),
        username: Some("user".into()),
        password: Some("pass".into()),
        index_prefix: "weft-test-down".into(),
        timeout_ms: 2_000,
    })
    .unwrap();
    let (app, chat, seq) = (AppId::new("a"), ChatNumber(1), MessageNumber(1));
    let unavailable = |r: Result<(), SearchError>| matches!(r, Err(SearchError::Unavailable(_)));
    assert!(unavailable(index.index(&[doc("a", 1, 1, "x")]).await));
    assert!(unavailable(index.remove(&app, chat, seq).await));
    assert!(unavailable(index.search(&request("a", &[1], "x", 0, 10)).await.map(|_| ())));
    assert!(unavailable(index.indexed_through(&app, chat).await.map(|_| ())));
    assert!(unavailable(index.mark_indexed(&app, chat, MessageNumber(3)).await));
    // Nothing to look in: answered without asking.
    assert!(index.search(&request("a", &[], "x", 0, 10)).await.unwrap().is_empty());
}

#[test]
fn bad_configs_are_refused_and_passwords_not_shown() {
    let config = |url: &str, prefix: &str| OpenSearchConfig {
        url: url.into(),
        username: Some("user".into()),
        password: Some("hunter2".into()),
        index_prefix: prefix.into(),
        timeout_ms: 1_000,
    };
    assert!(OpenSearchIndex::new(&config("http://127.0.0.1:9200/", "weft")).is_ok());
    assert!(OpenSearchIndex::new(&config("127.0.0.1:9200", "weft")).is_err());
    assert!(OpenSearchIndex::new(&config("ftp://127.0.0.1", "weft")).is_err());
    assert!(OpenSearchIndex::new(&config("http://u:p@127.0.0.1", "weft")).is_err());
    assert!(OpenSearchIndex::new(&config("http://127.0.0.1", "Weft")).is_err());
    assert!(OpenSearchIndex::new(&config("http://127.0.0.1", "")).is_err());
    assert!(OpenSearchIndex::new(&config("http://127.0.0.1", "-weft")).is_err());
    assert!(!format!("{:?}", config("http://127.0.0.1", "weft")).contains("hunter2"));
}

#[tokio::test]
async fn a_document_opensearch_refuses_fails_the_batch() {
    let f = Fixture::new("refused");
    // The index exists already, made by someone else without a `body` field and strict:
    // creating it again is fine, but every document is refused (400, not retryable).
    let url = format!("{}/{}", f.url, f.index.messages_index());
    let mapping = serde_json::json!({ "mappings": { "dynamic": "strict", "properties": { "app": { "type": "keyword" } } } });
    let status = f.http.put(url).json(&mapping).send().await.unwrap().status();
    assert!(status.is_success(), "creating the index answered {status}");
    let result = f.index.index(&[doc("a", 1, 1, "x")]).await;
    assert!(matches!(result, Err(SearchError::Internal(_))), "{result:?}");
    f.cleanup().await;
}

/// A local HTTP server that answers every request with `status` and `body`.
async fn fake_opensearch(status: &'static str, body: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Requests here are small: read one, answer, close.
                let mut buf = vec![0u8; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

fn index_at(url: String) -> OpenSearchIndex {
    OpenSearchIndex::new(&OpenSearchConfig {
        url,
        username: None,
        password: None,
        index_prefix: "weft-test-fake".into(),
        timeout_ms: 5_000,
    })
    .unwrap()
}

#[tokio::test]
async fn server_errors_are_unavailable_and_garbage_is_internal() {
    let busy = index_at(fake_opensearch("503 Service Unavailable", r#"{"error":{"type":"x"}}"#).await);
    let result = busy.search(&request("a", &[1], "x", 0, 10)).await;
    assert!(matches!(result, Err(SearchError::Unavailable(_))), "{result:?}");

    let garbage = index_at(fake_opensearch("200 OK", "<html>not json</html>").await);
    let result = garbage.search(&request("a", &[1], "x", 0, 10)).await;
    assert!(matches!(result, Err(SearchError::Internal(_))), "{result:?}");
    let result = garbage.index(&[doc("a", 1, 1, "x")]).await;
    assert!(matches!(result, Err(SearchError::Internal(_))), "{result:?}");

    let forbidden =
        index_at(fake_opensearch("403 Forbidden", r#"{"error":{"type":"security_exception"}}"#).await);
    let result = forbidden.indexed_through(&AppId::new("a"), ChatNumber(1)).await;
    assert!(matches!(result, Err(SearchError::Internal(_))), "{result:?}");
}
