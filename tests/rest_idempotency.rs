//! REST posts go through the one send path: an `Idempotency-Key` makes a
//! retried POST return the first answer and store nothing twice, in the same
//! key space as the sender's WebSocket `client_msg_id`; `reply_to` must name a
//! stored message of the chat (REST and WebSocket).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::server::{Mode, TestServer, code};
use common::ws::{Client, assert_error, history, join, user_token};
use serde_json::{Value, json};

on_every_mode!(
    concurrent_retries_on_any_node_store_one_message,
    a_rest_key_and_a_client_msg_id_of_one_sender_are_one_message,
    senders_have_separate_key_spaces,
    a_post_without_the_header_is_not_deduplicated,
    a_key_reused_for_another_message_is_refused,
    the_header_has_the_limits_of_client_msg_id,
    reply_to_must_name_a_stored_message_of_the_chat,
);

fn messages_path(token: &str, chat: u64) -> String {
    format!("/api/v1/applications/{token}/chats/{chat}/messages")
}

/// POSTs a message to `node` with `key` as its `Idempotency-Key`; a 409
/// `in_flight` (the first request still committing) is retried as a client
/// would, so that the answer checked is the one the client ends with.
async fn post_keyed(
    node: &TestServer,
    token: &str,
    chat: u64,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let url = node.url(&messages_path(token, chat));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut req = node.http.post(&url).json(&body);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        let (status, answer) = node.send(req).await;
        if status == 409 && code(&answer) == "in_flight" && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        return (status, answer);
    }
}

async fn concurrent_retries_on_any_node_store_one_message(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let nodes = s.nodes();
    let body = json!({"body": "pay 10 EUR", "sender": "alice"});
    let answers = futures::future::join_all((0..10).map(|i| {
        let (node, token, body) = (nodes[i % nodes.len()], &token, body.clone());
        async move { post_keyed(node, token, chat, Some("order-17"), body).await }
    }))
    .await;
    let first = &answers[0].1;
    for (status, answer) in &answers {
        assert_eq!(*status, 201, "{answer}");
        // The same message object: number, body, sender and created_at.
        assert_eq!(answer, first, "every retry answers the first message");
    }
    let stored = history(s, &token, chat, 0).await;
    assert_eq!(stored.len(), 1, "one message stored: {stored:?}");
    assert_eq!(stored.keys().next().copied(), first["number"].as_u64());
    let (_, view) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}")).await;
    assert_eq!(view["messages_count"], 1, "the retries drew no number");
}

async fn a_rest_key_and_a_client_msg_id_of_one_sender_are_one_message(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    join(s, &token, chat, "alice").await;
    let mut alice = Client::connect(s, &user_token(s, &token, "alice").await).await;

    // WebSocket first, then the backend retries the same message over REST.
    let ack =
        alice.request(json!({"type":"send","id":1,"chat":chat,"body":"hi","client_msg_id":"k-1"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let (status, posted) =
        post_keyed(s, &token, chat, Some("k-1"), json!({"body": "hi", "sender": "alice"})).await;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(posted["number"], ack["seq"]);
    let (_, stored) = s.get(&format!("{}/{}", messages_path(&token, chat), ack["seq"])).await;
    assert_eq!(posted, stored, "the stored message, not a re-made one");

    // REST first, then alice's session sends the same key: the first ack.
    let (status, posted) =
        post_keyed(s, &token, chat, Some("k-2"), json!({"body": "yo", "sender": "alice"})).await;
    assert_eq!(status, 201, "{posted}");
    let live = alice.next().await;
    assert_eq!(
        (live["seq"].clone(), live["client_msg_id"].clone()),
        (posted["number"].clone(), json!("k-2"))
    );
    let ack =
        alice.request(json!({"type":"send","id":2,"chat":chat,"body":"yo","client_msg_id":"k-2"})).await;
    assert_eq!(ack, json!({"type":"ack","id":2,"chat":chat,"seq":posted["number"]}));

    assert_eq!(history(s, &token, chat, 0).await.len(), 2);
    alice.close().await;
}

async fn senders_have_separate_key_spaces(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    // The backend without a sender has a key space of its own; user ids with
    // `:` must not meet another user's key (`a:b` + `c` against `a` + `b:c`).
    let posts = [
        (json!({"body": "x", "sender": "alice"}), "k"),
        (json!({"body": "x", "sender": "bob"}), "k"),
        (json!({"body": "x"}), "k"),
        (json!({"body": "x", "sender": "k"}), "k"),
        (json!({"body": "x", "sender": "a:b"}), "c"),
        (json!({"body": "x", "sender": "a"}), "b:c"),
    ];
    let mut numbers = std::collections::BTreeSet::new();
    for (body, key) in posts {
        let (status, posted) = post_keyed(s, &token, chat, Some(key), body.clone()).await;
        assert_eq!(status, 201, "{body}: {posted}");
        assert_eq!(posted.get("sender"), body.get("sender"));
        assert!(
            numbers.insert(posted["number"].as_u64().unwrap()),
            "{body} with {key} met another sender's key"
        );
    }
    assert_eq!(history(s, &token, chat, 0).await.len(), 6);
}

async fn a_post_without_the_header_is_not_deduplicated(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let path = messages_path(&token, chat);
    let (first, second) =
        (s.post(&path, json!({"body": "same"})).await, s.post(&path, json!({"body": "same"})).await);
    assert_eq!((first.0, second.0), (201, 201));
    assert_eq!((first.1["number"].as_u64(), second.1["number"].as_u64()), (Some(1), Some(2)));
    assert_eq!(first.1.get("sender"), None);
    assert_eq!(history(s, &token, chat, 0).await.len(), 2);
}

async fn a_key_reused_for_another_message_is_refused(s: &TestServer) {
    let token = s.new_app().await;
    let (chat, other) = (s.new_chat(&token).await, s.new_chat(&token).await);
    let (status, first) = post_keyed(s, &token, chat, Some("k"), json!({"body": "a", "sender": "bob"})).await;
    assert_eq!(status, 201, "{first}");
    for (target, body) in [
        (chat, json!({"body": "b", "sender": "bob"})),
        (other, json!({"body": "a", "sender": "bob"})),
        (chat, json!({"body": "a", "sender": "bob", "reply_to": 1})),
    ] {
        let (status, answer) = post_keyed(s, &token, target, Some("k"), body.clone()).await;
        assert_eq!((status, code(&answer)), (422, "idempotency_key_reused"), "{body}: {answer}");
    }
    // The same message again is still the first answer.
    let (status, again) = post_keyed(s, &token, chat, Some("k"), json!({"body": "a", "sender": "bob"})).await;
    assert_eq!((status, &again), (201, &first));
    assert_eq!(history(s, &token, chat, 0).await.len(), 1);
    assert_eq!(history(s, &token, other, 0).await.len(), 0);
}

async fn the_header_has_the_limits_of_client_msg_id(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let url = s.url(&messages_path(&token, chat));
    let longest = "k".repeat(128);
    let too_long = "k".repeat(129);
    for key in ["", too_long.as_str()] {
        let req = s.http.post(&url).header("idempotency-key", key).json(&json!({"body": "x"}));
        let (status, answer) = s.send(req).await;
        assert_eq!((status, code(&answer)), (422, "invalid_field"), "{} bytes: {answer}", key.len());
    }
    let twice = s
        .http
        .post(&url)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&json!({"body": "x"}));
    let (status, answer) = s.send(twice).await;
    assert_eq!((status, code(&answer)), (422, "invalid_field"), "{answer}");
    assert!(history(s, &token, chat, 0).await.is_empty(), "a refused key stores nothing");
    let (status, answer) = post_keyed(s, &token, chat, Some(&longest), json!({"body": "x"})).await;
    assert_eq!(status, 201, "{answer}");
}

async fn reply_to_must_name_a_stored_message_of_the_chat(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let empty = s.new_chat(&token).await;
    join(s, &token, chat, "alice").await;
    join(s, &token, empty, "alice").await;
    let path = messages_path(&token, chat);
    assert_eq!(s.post(&path, json!({"body": "one"})).await.0, 201);

    // REST: the newest message may be answered; one above it, 0, or a number
    // only another chat holds may not.
    let (status, reply) = s.post(&path, json!({"body": "re", "reply_to": 1})).await;
    assert_eq!((status, reply["reply_to"].as_u64()), (201, Some(1)), "{reply}");
    for (target, reply_to) in [(chat, json!(3)), (chat, json!(0)), (chat, json!(u64::MAX)), (empty, json!(1))]
    {
        let body = json!({"body": "re", "reply_to": reply_to});
        let (status, answer) = s.post(&messages_path(&token, target), body).await;
        assert_eq!(
            (status, code(&answer)),
            (422, "invalid_field"),
            "chat {target} reply_to {reply_to}: {answer}"
        );
    }

    // WebSocket: the same rule, as an `error` frame.
    let mut alice = Client::connect(s, &user_token(s, &token, "alice").await).await;
    let send = |id: u64, chat: u64, reply_to: u64| json!({"type":"send","id":id,"chat":chat,"body":"re","client_msg_id":format!("r-{id}"),"reply_to":reply_to});
    let ack = alice.request(send(1, chat, 2)).await;
    assert_eq!((ack["type"].as_str(), ack["seq"].as_u64()), (Some("ack"), Some(3)), "{ack}");
    for (id, target, reply_to) in [(2, chat, 4), (3, chat, 0), (4, chat, u64::MAX), (5, empty, 1)] {
        let answer = alice.request(send(id, target, reply_to)).await;
        assert_error(&answer, &json!(id), "invalid_field");
    }
    // Nothing refused was stored, and no number was spent on it.
    assert_eq!(history(s, &token, chat, 0).await.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(history(s, &token, empty, 0).await.is_empty());
    let ok = alice.request(send(6, chat, 3)).await;
    assert_eq!(ok["seq"], 4, "{ok}");
    alice.close().await;
}
