//! The behaviour every [`SearchIndex`] backend must show, as checks over
//! `&dyn SearchIndex`.
//!
//! Each check works inside a fresh random application, so the checks can run
//! against one shared index (an OpenSearch cluster), in any order. A backend
//! is given about a second to make a document searchable: each check indexes,
//! then waits (with a deadline) until everything it indexed is visible before
//! it asserts, so a "never appears" check is not fooled by a slow refresh.
//! Waiting uses a query with no text and no filters, which a backend answers
//! with every document in scope (the parser never produces it; the index does).

use std::time::Duration;

/// Calls `$tests!(check, …)` with the name of every check, so each backend's
/// test file runs them all from this one list.
macro_rules! with_search_checks {
    ($tests:ident) => {
        $tests!(
            partial_words,
            case_and_accents,
            all_words_must_match,
            phrases,
            urls_punctuation_and_emoji,
            cjk,
            best_match_first_then_newest,
            paging,
            applications_are_isolated,
            chats_are_scoped,
            filters,
            reindexing_replaces,
            remove,
            indexed_through,
            positions_many_at_once,
            a_thousand_documents,
        );
    };
}

use weft::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use weft::model::Page;
use weft::search::query::parse;
use weft::search::{MAX_RESULT_WINDOW, ParsedQuery, SearchDoc, SearchIndex, SearchRequest};

/// Runs every check.
pub async fn all(index: &dyn SearchIndex) {
    partial_words(index).await;
    case_and_accents(index).await;
    all_words_must_match(index).await;
    phrases(index).await;
    urls_punctuation_and_emoji(index).await;
    cjk(index).await;
    best_match_first_then_newest(index).await;
    paging(index).await;
    applications_are_isolated(index).await;
    chats_are_scoped(index).await;
    filters(index).await;
    reindexing_replaces(index).await;
    remove(index).await;
    indexed_through(index).await;
    positions_many_at_once(index).await;
    a_thousand_documents(index).await;
}

const T0: i64 = 1_780_000_000_000;

/// A message of `chat` with number `seq`, created `seq` seconds after T0.
pub fn doc(app: &AppId, chat: u64, seq: u64, body: &str) -> SearchDoc {
    SearchDoc {
        app: app.clone(),
        chat: ChatNumber(chat),
        seq: MessageNumber(seq),
        sender: None,
        body: body.to_owned(),
        reply_to: None,
        created_at: Timestamp(T0 + seq as i64 * 1000),
    }
}

/// A request for `text` (as a user would type it) in `chats`, first page of 50.
pub fn request(app: &AppId, chats: &[u64], text: &str) -> SearchRequest {
    SearchRequest {
        app: app.clone(),
        chats: chats.iter().copied().map(ChatNumber).collect(),
        query: parse(text).unwrap(),
        page: Page { skip: 0, limit: 50 },
    }
}

/// (chat, seq) of each hit, in order.
pub async fn hits(index: &dyn SearchIndex, request: &SearchRequest) -> Vec<(u64, u64)> {
    index.search(request).await.unwrap().iter().map(|h| (h.chat.get(), h.seq.get())).collect()
}

/// The seqs of the hits for `text` in `chats`, in order.
async fn seqs(index: &dyn SearchIndex, app: &AppId, chats: &[u64], text: &str) -> Vec<u64> {
    hits(index, &request(app, chats, text)).await.into_iter().map(|(_, s)| s).collect()
}

/// The seqs of the hits, sorted (when the order is not the point).
async fn sorted(index: &dyn SearchIndex, app: &AppId, chats: &[u64], text: &str) -> Vec<u64> {
    let mut s = seqs(index, app, chats, text).await;
    s.sort_unstable();
    s
}

/// Indexes `docs` and waits until the application's scope holds exactly `expect` documents.
pub async fn index_and_settle(index: &dyn SearchIndex, docs: &[SearchDoc], expect: usize) {
    index.index(docs).await.unwrap();
    let app = &docs[0].app;
    let mut chats: Vec<u64> = docs.iter().map(|d| d.chat.get()).collect();
    chats.sort_unstable();
    chats.dedup();
    settle(index, app, &chats, expect).await;
}

/// Waits until `chats` of `app` hold exactly `expect` documents.
pub async fn settle(index: &dyn SearchIndex, app: &AppId, chats: &[u64], expect: usize) {
    let all = SearchRequest {
        app: app.clone(),
        chats: chats.iter().copied().map(ChatNumber).collect(),
        query: ParsedQuery::default(),
        page: Page { skip: 0, limit: 2000 },
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n = index.search(&all).await.unwrap().len();
        if n == expect {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "index holds {n} documents, expected {expect}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A query word matches any word it is a prefix of, and highlights the whole word.
pub async fn partial_words(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs = [
        doc(&app, 1, 1, "hello world"),
        doc(&app, 1, 2, "help me"),
        doc(&app, 1, 3, "seashell"),
        doc(&app, 1, 4, "supercalifragilisticexpialidocious indeed"),
    ];
    index_and_settle(index, &docs, 4).await;
    // Long words are found whole and by long prefixes.
    assert_eq!(sorted(index, &app, &[1], "supercalifragilisticexpialidocious").await, [4]);
    assert_eq!(sorted(index, &app, &[1], "supercalifragilisticexp").await, [4]);
    assert_eq!(sorted(index, &app, &[1], "supercali").await, [4]);
    assert_eq!(sorted(index, &app, &[1], "hel").await, [1, 2]);
    assert_eq!(sorted(index, &app, &[1], "wor").await, [1]);
    assert_eq!(sorted(index, &app, &[1], "hello").await, [1]);
    assert!(sorted(index, &app, &[1], "hellos").await.is_empty());
    let hit = &index.search(&request(&app, &[1], "hel wor")).await.unwrap()[0];
    assert_eq!(hit.highlight, "<mark>hello</mark> <mark>world</mark>");
}

/// Case and accents do not matter, on either side.
pub async fn case_and_accents(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs = [doc(&app, 1, 1, "Café au lait"), doc(&app, 1, 2, "CAFE OLE"), doc(&app, 1, 3, "naïve Zoë")];
    index_and_settle(index, &docs, 3).await;
    assert_eq!(sorted(index, &app, &[1], "cafe").await, [1, 2]);
    assert_eq!(sorted(index, &app, &[1], "CAFÉ").await, [1, 2]);
    assert_eq!(sorted(index, &app, &[1], "café lait").await, [1]);
    assert_eq!(sorted(index, &app, &[1], "zoe naive").await, [3]);
    let hit = &index.search(&request(&app, &[1], "cafe lait")).await.unwrap()[0];
    assert_eq!(hit.highlight, "<mark>Café</mark> au <mark>lait</mark>");
}

/// Every word must match.
pub async fn all_words_must_match(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs =
        [doc(&app, 1, 1, "apple banana"), doc(&app, 1, 2, "apple cherry"), doc(&app, 1, 3, "banana cherry")];
    index_and_settle(index, &docs, 3).await;
    assert_eq!(sorted(index, &app, &[1], "apple banana").await, [1]);
    assert_eq!(sorted(index, &app, &[1], "cherry").await, [2, 3]);
    assert!(sorted(index, &app, &[1], "apple banana cherry").await.is_empty());
}

/// A quoted phrase matches its words in order, next to each other.
pub async fn phrases(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs = [
        doc(&app, 1, 1, "that was a big deal, honestly"),
        doc(&app, 1, 2, "a big fish makes a deal"),
        doc(&app, 1, 3, "deal big"),
    ];
    index_and_settle(index, &docs, 3).await;
    assert_eq!(sorted(index, &app, &[1], r#""big deal""#).await, [1]);
    assert_eq!(sorted(index, &app, &[1], r#""Big Deal" honest"#).await, [1]);
    assert!(sorted(index, &app, &[1], r#""big deal" fish"#).await.is_empty());
    assert_eq!(sorted(index, &app, &[1], "big deal").await, [1, 2, 3]);
    // A quoted word is a whole word, not a prefix.
    assert_eq!(sorted(index, &app, &[1], r#""deal""#).await, [1, 2, 3]);
    assert!(sorted(index, &app, &[1], r#""dea""#).await.is_empty());
    let hit = &index.search(&request(&app, &[1], r#""big deal""#)).await.unwrap()[0];
    assert_eq!(hit.highlight, "that was a <mark>big</mark> <mark>deal</mark>, honestly");
}

/// Punctuation, URLs and emoji neither hide words nor break queries.
pub async fn urls_punctuation_and_emoji(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs = [
        doc(&app, 1, 1, "see https://example.com/docs?page=2 now"),
        doc(&app, 1, 2, "wow!!! 🎉🎉party🎉 time"),
        doc(&app, 1, 3, "state-of-the-art, isn't it? (really)"),
    ];
    index_and_settle(index, &docs, 3).await;
    assert_eq!(sorted(index, &app, &[1], "example.com").await, [1]);
    assert_eq!(sorted(index, &app, &[1], "https://example.com/docs").await, [1]);
    assert_eq!(sorted(index, &app, &[1], "party").await, [2]);
    assert_eq!(sorted(index, &app, &[1], "party!").await, [2]);
    assert_eq!(sorted(index, &app, &[1], "🎉time").await, [2]);
    assert_eq!(sorted(index, &app, &[1], "state-of-the-art").await, [3]);
    assert_eq!(sorted(index, &app, &[1], "(really)").await, [3]);
}

/// Chinese, Japanese and Korean text is searchable without spaces.
pub async fn cjk(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs = [
        doc(&app, 1, 1, "我住在东京，很开心"),
        doc(&app, 1, 2, "東京タワーに行きました"),
        doc(&app, 1, 3, "서울에 살아요"),
        doc(&app, 1, 4, "北京欢迎你"),
    ];
    index_and_settle(index, &docs, 4).await;
    assert_eq!(sorted(index, &app, &[1], "东京").await, [1]);
    assert_eq!(sorted(index, &app, &[1], "开心").await, [1]);
    assert_eq!(sorted(index, &app, &[1], "東京タワー").await, [2]);
    assert_eq!(sorted(index, &app, &[1], r#""東京タワー""#).await, [2]);
    assert!(sorted(index, &app, &[1], r#""タワー東京""#).await.is_empty());
    assert_eq!(sorted(index, &app, &[1], "서울").await, [3]);
    assert_eq!(sorted(index, &app, &[1], "北京").await, [4]);
    assert!(sorted(index, &app, &[1], "南京").await.is_empty());
    let hit = &index.search(&request(&app, &[1], "东京")).await.unwrap()[0];
    assert_eq!(hit.highlight, "我住在<mark>东京</mark>，很开心");
}

/// The better match comes first, however old; equal matches come newest first.
pub async fn best_match_first_then_newest(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let mut docs = vec![
        doc(&app, 1, 1, "rust rust rust"),
        doc(&app, 1, 2, "once upon a time someone mentioned rust in a long and winding sentence"),
        doc(&app, 1, 3, "same words here"),
        doc(&app, 1, 4, "same words here"),
        doc(&app, 1, 5, "same words here"),
    ];
    // Created at the same instant as 5: the higher number comes first.
    let mut same_time = doc(&app, 1, 6, "same words here");
    same_time.created_at = docs[4].created_at;
    docs.push(same_time);
    // Newer but numbered lower (a chat's numbers and clocks need not agree): time wins.
    let mut newest = doc(&app, 2, 1, "same words here");
    newest.created_at = Timestamp(T0 + 100_000);
    docs.push(newest);
    index_and_settle(index, &docs, 7).await;
    assert_eq!(seqs(index, &app, &[1], "rust").await, [1, 2]);
    assert_eq!(
        hits(index, &request(&app, &[1, 2], "same words")).await,
        [(2, 1), (1, 6), (1, 5), (1, 4), (1, 3)]
    );
    // A whole word ranks above a word it only begins (here older and longer, too).
    let whole = [doc(&app, 3, 1, "cat xxxxxx"), doc(&app, 3, 2, "catalog x")];
    index_and_settle(index, &whole, 2).await;
    assert_eq!(seqs(index, &app, &[3], "cat").await, [1, 2]);
    let scored = index.search(&request(&app, &[1], "rust")).await.unwrap();
    assert!(scored[0].score > scored[1].score, "{scored:?}");
    // Filters alone: every hit ties, newest first.
    assert_eq!(
        hits(index, &request(&app, &[1, 2], "after:2020-01-01")).await,
        [(2, 1), (1, 6), (1, 5), (1, 4), (1, 3), (1, 2), (1, 1)]
    );
}

/// `page` skips and limits, in rank order.
pub async fn paging(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs: Vec<_> = (1..=5).map(|seq| doc(&app, 1, seq, "paged message")).collect();
    index_and_settle(index, &docs, 5).await;
    let page = |skip, limit| {
        let mut r = request(&app, &[1], "paged");
        r.page = Page { skip, limit };
        r
    };
    assert_eq!(hits(index, &page(0, 2)).await, [(1, 5), (1, 4)]);
    assert_eq!(hits(index, &page(2, 2)).await, [(1, 3), (1, 2)]);
    assert_eq!(hits(index, &page(4, 2)).await, [(1, 1)]);
    assert!(hits(index, &page(6, 2)).await.is_empty());
    assert!(hits(index, &page(0, 0)).await.is_empty());
    // Pages a client can ask for but no backend ranks: nothing, not a failure.
    assert_eq!(hits(index, &page(0, usize::MAX)).await.len(), 5);
    assert!(hits(index, &page(usize::MAX, usize::MAX)).await.is_empty());
    assert!(hits(index, &page(MAX_RESULT_WINDOW, 10)).await.is_empty());
    assert_eq!(hits(index, &page(MAX_RESULT_WINDOW - 10, usize::MAX)).await.len(), 0);
}

/// An application never sees another's documents, even with the same chat numbers.
pub async fn applications_are_isolated(index: &dyn SearchIndex) {
    let (a, b) = (AppId::generate(), AppId::generate());
    index_and_settle(index, &[doc(&a, 1, 1, "shared words")], 1).await;
    index_and_settle(index, &[doc(&b, 1, 2, "shared words")], 1).await;
    assert_eq!(seqs(index, &a, &[1], "shared").await, [1]);
    assert_eq!(seqs(index, &b, &[1], "shared").await, [2]);
    assert!(seqs(index, &AppId::generate(), &[1], "shared").await.is_empty());
}

/// Only the chats of the request are searched; `in:` narrows them, never widens.
pub async fn chats_are_scoped(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs =
        [doc(&app, 1, 1, "secret plan"), doc(&app, 2, 2, "secret plan"), doc(&app, 3, 3, "secret plan")];
    index_and_settle(index, &docs, 3).await;
    let mut chats: Vec<u64> =
        hits(index, &request(&app, &[1, 2], "secret")).await.iter().map(|h| h.0).collect();
    chats.sort_unstable();
    assert_eq!(chats, [1, 2]);
    assert!(hits(index, &request(&app, &[], "secret")).await.is_empty());
    assert_eq!(hits(index, &request(&app, &[1, 2], "secret in:2")).await, [(2, 2)]);
    assert!(hits(index, &request(&app, &[1, 2], "secret in:3")).await.is_empty());
    assert!(hits(index, &request(&app, &[1, 2], "in:3")).await.is_empty());
}

/// `from:`, `after:`/`before:`, `is:thread` and `has:file`.
pub async fn filters(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let alice = UserId::parse("alice").unwrap();
    let bob = UserId::parse("bob").unwrap();
    let mut docs: Vec<_> = (1..=4).map(|seq| doc(&app, 1, seq, "status report")).collect();
    docs[0].sender = Some(alice.clone());
    docs[1].sender = Some(bob.clone());
    docs[2].sender = Some(alice.clone());
    docs[2].reply_to = Some(MessageNumber(1));
    // 1..4 are created at T0 + 1 s .. T0 + 4 s.
    docs[3].created_at = Timestamp(T0 + 86_400_000 * 2);
    index_and_settle(index, &docs, 4).await;
    assert_eq!(sorted(index, &app, &[1], "report from:alice").await, [1, 3]);
    assert_eq!(sorted(index, &app, &[1], "from:@bob").await, [2]);
    assert!(sorted(index, &app, &[1], "report from:carol").await.is_empty());
    assert_eq!(sorted(index, &app, &[1], "report is:thread").await, [3]);
    assert!(sorted(index, &app, &[1], "report has:file").await.is_empty());
    // T0 is 2026-05-28T20:26:40Z; doc 4 is two days later.
    assert_eq!(sorted(index, &app, &[1], "report after:2026-05-29").await, [4]);
    assert_eq!(sorted(index, &app, &[1], "report before:2026-05-29").await, [1, 2, 3]);
    assert_eq!(sorted(index, &app, &[1], "report after:2026-05-28T20:26:42Z").await, [2, 3, 4]);
    assert_eq!(
        sorted(index, &app, &[1], "report after:2026-05-28T20:26:42Z before:2026-05-28T20:26:43Z").await,
        [2]
    );
    assert_eq!(sorted(index, &app, &[1], "from:alice before:2026-05-29 is:thread").await, [3]);
}

/// Indexing the same message again replaces it.
pub async fn reindexing_replaces(index: &dyn SearchIndex) {
    let app = AppId::generate();
    index_and_settle(index, &[doc(&app, 1, 1, "first draft")], 1).await;
    index.index(&[doc(&app, 1, 1, "first draft")]).await.unwrap();
    // The same message twice in one batch: the last one stands.
    index.index(&[doc(&app, 1, 1, "first draft"), doc(&app, 1, 1, "final version")]).await.unwrap();
    // Wait until the new text is visible, then check nothing else is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seqs(index, &app, &[1], "final").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the new text never became searchable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle(index, &app, &[1], 1).await;
    assert_eq!(seqs(index, &app, &[1], "final").await, [1]);
    assert!(seqs(index, &app, &[1], "draft").await.is_empty());
}

/// A removed message is no longer found; removing an absent one is fine.
pub async fn remove(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs = [doc(&app, 1, 1, "keep this"), doc(&app, 1, 2, "delete this")];
    index_and_settle(index, &docs, 2).await;
    index.remove(&app, ChatNumber(1), MessageNumber(2)).await.unwrap();
    index.remove(&app, ChatNumber(1), MessageNumber(99)).await.unwrap();
    index.remove(&AppId::generate(), ChatNumber(1), MessageNumber(1)).await.unwrap();
    settle(index, &app, &[1], 1).await;
    assert_eq!(seqs(index, &app, &[1], "this").await, [1]);
    assert!(seqs(index, &app, &[1], "delete").await.is_empty());
}

/// Positions are kept per application and chat, 0 until marked.
pub async fn indexed_through(index: &dyn SearchIndex) {
    let (a, b) = (AppId::generate(), AppId::generate());
    assert_eq!(index.indexed_through(&a, ChatNumber(1)).await.unwrap(), MessageNumber(0));
    index.mark_indexed(&a, ChatNumber(1), MessageNumber(5)).await.unwrap();
    index.mark_indexed(&a, ChatNumber(2), MessageNumber(7)).await.unwrap();
    assert_eq!(index.indexed_through(&a, ChatNumber(1)).await.unwrap(), MessageNumber(5));
    assert_eq!(index.indexed_through(&a, ChatNumber(2)).await.unwrap(), MessageNumber(7));
    assert_eq!(index.indexed_through(&b, ChatNumber(1)).await.unwrap(), MessageNumber(0));
    index.mark_indexed(&a, ChatNumber(1), MessageNumber(9)).await.unwrap();
    assert_eq!(index.indexed_through(&a, ChatNumber(1)).await.unwrap(), MessageNumber(9));
}

/// Many positions recorded in one call; each only rises (a lower one in the
/// same call or a later one changes nothing).
pub async fn positions_many_at_once(index: &dyn SearchIndex) {
    let a = AppId::generate();
    index.mark_indexed(&a, ChatNumber(3), MessageNumber(50)).await.unwrap();
    let marks: Vec<_> =
        (1..=200).map(|chat| (a.clone(), ChatNumber(chat), MessageNumber(chat * 2))).collect();
    index.mark_indexed_many(&marks).await.unwrap();
    assert_eq!(index.indexed_through(&a, ChatNumber(1)).await.unwrap(), MessageNumber(2));
    assert_eq!(index.indexed_through(&a, ChatNumber(3)).await.unwrap(), MessageNumber(50), "never lowered");
    assert_eq!(index.indexed_through(&a, ChatNumber(200)).await.unwrap(), MessageNumber(400));
    index.mark_indexed_many(&[(a.clone(), ChatNumber(200), MessageNumber(10))]).await.unwrap();
    assert_eq!(index.indexed_through(&a, ChatNumber(200)).await.unwrap(), MessageNumber(400));
    index.mark_indexed_many(&[]).await.unwrap();
}

/// 1,000 documents indexed in a few batches are all found, each by its own word.
pub async fn a_thousand_documents(index: &dyn SearchIndex) {
    let app = AppId::generate();
    let docs: Vec<_> =
        (1..=1000u64).map(|seq| doc(&app, 1 + seq % 3, seq, &format!("bulk item{seq:04}x"))).collect();
    for batch in docs.chunks(250) {
        index.index(batch).await.unwrap();
    }
    settle(index, &app, &[1, 2, 3], 1000).await;
    let mut all = request(&app, &[1, 2, 3], "bulk");
    all.page = Page { skip: 0, limit: 1000 };
    let mut found: Vec<u64> = hits(index, &all).await.into_iter().map(|(_, s)| s).collect();
    found.sort_unstable();
    assert_eq!(found, (1..=1000).collect::<Vec<_>>());
    for seq in 1..=1000u64 {
        assert_eq!(
            hits(index, &request(&app, &[1, 2, 3], &format!("item{seq:04}"))).await,
            [(1 + seq % 3, seq)]
        );
    }
}
