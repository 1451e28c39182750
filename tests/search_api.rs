//! Message search through a node: the REST routes, the WebSocket `search`
//! frame, membership scoping, and the indexer feeding the index from the
//! batch writer. Embedded nodes search their tantivy index; CQL nodes (one,
//! and a spread cluster of three) search the test OpenSearch node.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::server::{Mode, TestServer, code, with_search};
use common::ws::{Client, chat_with, connect, join, post};
use serde_json::{Value, json};

on_all_modes_configured!(
    a_chat_search_finds_partial_words_best_first,
    a_user_finds_only_what_is_in_their_chats_now,
    the_websocket_search_frame_answers_search_results,
    bad_searches_get_precise_errors,
);

/// Every body matching `query`'s hits (waits until `want` are there: the
/// index takes about a second after the ack).
async fn search_until(s: &TestServer, path: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = s.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let hits = body.as_array().unwrap().clone();
        if hits.len() >= want {
            return hits;
        }
        assert!(Instant::now() < deadline, "{path}: {} hits, waited for {want}: {body}", hits.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn bodies(hits: &[Value]) -> Vec<&str> {
    hits.iter().map(|h| h["body"].as_str().unwrap()).collect()
}

fn chat_search(token: &str, chat: u64, query: &str) -> String {
    format!("/api/v1/applications/{token}/chats/{chat}/messages/search?{}", query_param(query))
}

fn user_search(token: &str, user: &str, query: &str) -> String {
    format!("/api/v1/applications/{token}/users/{user}/messages/search?{}", query_param(query))
}

fn query_param(query: &str) -> String {
    serde_urlencoded::to_string([("query", query)]).unwrap()
}

async fn a_chat_search_finds_partial_words_best_first(mode: Mode) {
    let s = TestServer::start_with(mode, with_search).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut seqs = Vec::new();
    for body in [
        "hello world",
        "Café au lait at noon",
        "say hello, hello again",
        "nothing to see here",
        "the world is round",
    ] {
        seqs.push(post(&s, &token, chat, body).await);
    }
    // Each query waits for its whole answer (indexing takes about a second).
    let hits = search_until(&s, &chat_search(&token, chat, "hel"), 2).await;
    let found = bodies(&hits);
    assert_eq!(found.len(), 2, "{hits:?}");
    assert!(found.contains(&"hello world") && found.contains(&"say hello, hello again"), "{found:?}");
    // The message objects of the message list, plus the chat and a highlight.
    let hit = hits.iter().find(|h| h["body"] == "hello world").unwrap();
    assert_eq!(hit["number"], json!(seqs[0]));
    assert_eq!(hit["chat"], json!(chat));
    assert_eq!(hit["sender"], Value::Null);
    assert!(hit["created_at"].is_string(), "{hit}");
    assert_eq!(hit["highlight"], "<mark>hello</mark> world");

    let hits = search_until(&s, &chat_search(&token, chat, "cafe"), 1).await;
    assert_eq!(bodies(&hits), ["Café au lait at noon"]);
    let hits = search_until(&s, &chat_search(&token, chat, "WORLD"), 2).await;
    assert_eq!(bodies(&hits).len(), 2);
    // Every word must match; a phrase matches word after word.
    let hits = search_until(&s, &chat_search(&token, chat, "hello world"), 1).await;
    assert_eq!(bodies(&hits), ["hello world"]);
    let hits = search_until(&s, &chat_search(&token, chat, "\"hello again\""), 1).await;
    assert_eq!(bodies(&hits), ["say hello, hello again"]);
    let (_, none) = s.get(&chat_search(&token, chat, "\"again hello\"")).await;
    assert_eq!(none, json!([]));

    // Paging: one hit per page, the pages together are the whole answer.
    let path = chat_search(&token, chat, "world");
    let (_, first) = s.get(&format!("{path}&per_page=1&page=1")).await;
    let (_, second) = s.get(&format!("{path}&per_page=1&page=2")).await;
    let (_, third) = s.get(&format!("{path}&per_page=1&page=3")).await;
    assert_eq!((first.as_array().unwrap().len(), second.as_array().unwrap().len()), (1, 1));
    assert_eq!(third, json!([]));
    assert_ne!(first[0]["number"], second[0]["number"]);
    s.stop().await;
}

async fn a_user_finds_only_what_is_in_their_chats_now(mode: Mode) {
    let s = TestServer::start_with(mode, with_search).await;
    let token = s.new_app().await;
    let a = chat_with(&s, &token, &["alice", "carol"]).await;
    let b = chat_with(&s, &token, &["alice", "bob"]).await;
    let c = chat_with(&s, &token, &["bob", "carol"]).await;
    for chat in [a, b, c] {
        post(&s, &token, chat, &format!("pineapple pizza in chat {chat}")).await;
    }
    // The same word in another application, where alice also exists.
    let other = s.new_app().await;
    let elsewhere = chat_with(&s, &other, &["alice", "bob"]).await;
    post(&s, &other, elsewhere, "pineapple elsewhere").await;
    let hits = search_until(&s, &user_search(&other, "alice", "pineapple"), 1).await;
    assert_eq!(bodies(&hits), ["pineapple elsewhere"]);

    let chats_of = |hits: &[Value]| {
        let mut chats: Vec<u64> = hits.iter().map(|h| h["chat"].as_u64().unwrap()).collect();
        chats.sort_unstable();
        chats
    };
    let alice = search_until(&s, &user_search(&token, "alice", "pine"), 2).await;
    assert_eq!(chats_of(&alice), [a, b]);
    let bob = search_until(&s, &user_search(&token, "bob", "pineapple"), 2).await;
    assert_eq!(chats_of(&bob), [b, c]);
    let (_, nobody) = s.get(&user_search(&token, "dave", "pineapple")).await;
    assert_eq!(nobody, json!([]), "a user in no chat finds nothing");

    // Filters: one chat, a sender, a time window.
    let (_, only_b) = s.get(&format!("{}&chat={b}", user_search(&token, "alice", "pineapple"))).await;
    assert_eq!(chats_of(only_b.as_array().unwrap()), [b]);
    let (_, not_hers) = s.get(&format!("{}&chat={c}", user_search(&token, "alice", "pineapple"))).await;
    assert_eq!(not_hers, json!([]), "a chat she is not in finds nothing, even when named");
    let (_, in_op) = s.get(&user_search(&token, "alice", &format!("pineapple in:{a}"))).await;
    assert_eq!(chats_of(in_op.as_array().unwrap()), [a]);
    let (_, future) = s.get(&format!("{}&after=2999-01-01", user_search(&token, "alice", "pineapple"))).await;
    assert_eq!(future, json!([]));
    let (_, past) = s.get(&format!("{}&before=2999-01-01", user_search(&token, "alice", "pineapple"))).await;
    assert_eq!(past.as_array().unwrap().len(), 2);

    let url = s.url(&format!("/api/v1/applications/{token}/chats/{b}/messages"));
    let (status, body) =
        s.send(s.http.post(url).json(&json!({"body":"pineapple from bob","sender":"bob"}))).await;
    assert_eq!(status, 201, "{body}");
    let both = search_until(&s, &user_search(&token, "alice", "pineapple"), 3).await;
    assert_eq!(both.len(), 3);
    let (_, from_bob) = s.get(&format!("{}&sender=bob", user_search(&token, "alice", "pineapple"))).await;
    assert_eq!(bodies(from_bob.as_array().unwrap()), ["pineapple from bob"]);

    // Removed from b: its messages are gone from her results at once.
    let url = s.url(&format!("/api/v1/applications/{token}/chats/{b}/members/alice"));
    let (status, _) = s.send(s.http.delete(url)).await;
    assert_eq!(status, 204);
    let (_, after_removal) = s.get(&user_search(&token, "alice", "pineapple")).await;
    assert_eq!(chats_of(after_removal.as_array().unwrap()), [a]);
    s.stop().await;
}

async fn the_websocket_search_frame_answers_search_results(mode: Mode) {
    let s = TestServer::start_with(mode, with_search).await;
    let token = s.new_app().await;
    let mine = chat_with(&s, &token, &["alice", "bob"]).await;
    let theirs = chat_with(&s, &token, &["bob", "carol"]).await;
    let mut seqs = Vec::new();
    for i in 0..3 {
        seqs.push(post(&s, &token, mine, &format!("the quarterly report, draft {i}")).await);
    }
    post(&s, &token, theirs, "the quarterly report they keep").await;
    search_until(&s, &chat_search(&token, theirs, "quarterly"), 1).await;
    search_until(&s, &user_search(&token, "alice", "quarterly"), 3).await;

    let mut alice = connect(&s, &token, "alice").await;
    let answer = alice.request(json!({"type":"search","id":"q1","query":"quart","per_page":2})).await;
    assert_eq!(answer["type"], "search_results", "{answer}");
    assert_eq!(answer["id"], "q1");
    assert_eq!(answer["has_more"], true);
    let items = answer["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        assert_eq!(item["chat"], json!(mine), "only her chats: {item}");
        let keys: Vec<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6, "{item}");
        for key in ["chat", "seq", "sender", "body", "created_at", "highlight"] {
            assert!(item.get(key).is_some(), "{key} in {item}");
        }
        assert!(item["highlight"].as_str().unwrap().contains("<mark>quarterly</mark>"), "{item}");
    }
    // Ties (the same score) newest first.
    assert_eq!(items[0]["seq"], json!(seqs[2]));
    assert_eq!(items[1]["seq"], json!(seqs[1]));
    let rest = alice.request(json!({"type":"search","id":"q2","query":"quart","per_page":2,"page":2})).await;
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["items"][0]["seq"], json!(seqs[0]));
    // `chat` narrows; a chat she is not in finds nothing.
    let narrowed = alice.request(json!({"type":"search","id":3,"query":"report","chat":theirs})).await;
    assert_eq!((narrowed["items"].clone(), narrowed["has_more"].clone()), (json!([]), json!(false)));
    // A bad query is an error frame with the request's id; the session goes on.
    let bad = alice.request(json!({"type":"search","id":"q4","query":"   "})).await;
    assert_eq!((bad["type"].as_str(), bad["code"].as_str()), (Some("error"), Some("invalid_frame")), "{bad}");
    let bad = alice.request(json!({"type":"search","id":"q5","query":"x","per_page":101})).await;
    assert_eq!(bad["code"], "invalid_frame", "{bad}");
    let again = alice.request(json!({"type":"search","id":"q6","query":"draft"})).await;
    assert_eq!(again["items"].as_array().unwrap().len(), 3);
    Client::close(alice).await;
    s.stop().await;
}

async fn bad_searches_get_precise_errors(mode: Mode) {
    let s = TestServer::start_with(mode, with_search).await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    join(&s, &token, chat, "alice").await;
    for (path, status, expected) in [
        (chat_search(&token, chat, ""), 422, "invalid_parameter"),
        (chat_search(&token, chat, &"a".repeat(257)), 422, "invalid_parameter"),
        (chat_search(&token, chat, "in:abc"), 422, "invalid_parameter"),
        (format!("/api/v1/applications/{token}/chats/{chat}/messages/search"), 422, "invalid_parameter"),
        (chat_search(&token, chat + 100, "x"), 404, "chat_not_found"),
        (chat_search("no-such-token", chat, "x"), 404, "application_not_found"),
        (user_search("no-such-token", "alice", "x"), 404, "application_not_found"),
        (user_search(&token, "not a user", "x"), 422, "invalid_field"),
        (format!("{}&after=yesterday", user_search(&token, "alice", "x")), 422, "invalid_parameter"),
        (format!("{}&chat=0", user_search(&token, "alice", "x")), 422, "invalid_parameter"),
        (format!("{}&per_page=501", user_search(&token, "alice", "x")), 422, "invalid_parameter"),
    ] {
        let (got, body) = s.get(&path).await;
        assert_eq!((got, code(&body)), (status, expected), "{path}: {body}");
    }
    s.stop().await;
}

/// A node with search off answers 503 `search_unavailable` on both edges,
/// and chat goes on.
#[tokio::test]
async fn search_off_answers_search_unavailable() {
    let s = TestServer::start_with(Mode::Embedded, |c| {
        c.search.backend = weft::search::SearchBackend::None;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    post(&s, &token, chat, "still works").await;
    let (status, body) = s.get(&chat_search(&token, chat, "still")).await;
    assert_eq!((status, code(&body)), (503, "search_unavailable"), "{body}");
    let (status, body) = s.get(&user_search(&token, "alice", "still")).await;
    assert_eq!((status, code(&body)), (503, "search_unavailable"), "{body}");
    let mut alice = connect(&s, &token, "alice").await;
    let answer = alice.request(json!({"type":"search","id":1,"query":"still"})).await;
    assert_eq!(
        (answer["code"].as_str(), answer["retry_after_ms"].as_u64()),
        (Some("search_unavailable"), Some(1000))
    );
    s.stop().await;
}

/// The hooks edits and deletes call: a message edited in the store and handed
/// to `reindex_message` is found by its new text only; after
/// `unindex_message` it is found no more. On both backends.
async fn edit_and_delete_hooks_update_the_index(mode: Mode) {
    use weft::ids::{AppToken, ChatNumber, Timestamp};
    use weft::model::Page;
    use weft::{Author, SendRequest, Target};

    let dir = tempfile::tempdir().unwrap();
    let mut config = common::server::config(mode, dir.path());
    with_search(&mut config);
    let node = weft::Node::start(&config).await.unwrap();
    let chat = node.chat();
    let app = chat.create_application("hooks".into(), None, Default::default()).await.unwrap().app;
    let number = chat.create_chat(&app.token, Default::default()).await.unwrap().chat.number;
    let request = SendRequest {
        target: Target::Chat(number),
        body: "the original wording".into(),
        client_msg_id: None,
        reply_to: None,
        attachments: Vec::new(),
    };
    let sent = chat.send(&app, &Author::Backend(None), request, None).await.unwrap();
    let search = async |text: &str| {
        let query = weft::search::query::parse(text).unwrap();
        let page = Page { skip: 0, limit: 10 };
        let token = AppToken::new(app.token.as_str());
        let found = chat.search_chat(&token, ChatNumber(number.get()), query, page).await.unwrap();
        found.items.into_iter().map(|f| f.message.body).collect::<Vec<_>>()
    };
    // The index is searchable about a second after a call: wait for each state.
    let until = async |text: &str, want: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = search(text).await;
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{text}: {got:?}, waited for {want:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    until("original", &["the original wording"]).await;
    let changed =
        chat.store().edit_message(&app.id, number, sent.seq, "the amended wording", Timestamp::now());
    let weft::model::Change::Done(edited) = changed.await.unwrap() else { panic!("not edited") };
    chat.reindex_message(&edited);
    until("amended", &["the amended wording"]).await;
    until("original", &[]).await;
    chat.unindex_message(&app.id, number, sent.seq);
    until("wording", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_and_delete_hooks_update_the_embedded_index() {
    edit_and_delete_hooks_update_the_index(Mode::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_and_delete_hooks_update_opensearch() {
    edit_and_delete_hooks_update_the_index(Mode::Cluster).await;
}

/// `/metrics` counts indexing and searches (one registry per test process:
/// at least what this test did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_metrics_count_what_happened() {
    let s = TestServer::start_with(Mode::Embedded, with_search).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice"]).await;
    for n in 0..5 {
        post(&s, &token, chat, &format!("gooseberry {n}")).await;
    }
    search_until(&s, &chat_search(&token, chat, "gooseberry"), 5).await;
    let text = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in /metrics"))
    };
    assert!(value("weft_search_indexed_total") >= 5.0);
    assert!(value("weft_search_seconds_count") >= 1.0);
    assert!(value("weft_search_errors_total{op=\"search\"}") >= 0.0);
    assert!(value("weft_search_index_lag_seconds") >= 0.0);
    s.stop().await;
}
