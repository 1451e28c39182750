//! Edits and deletes of messages, over the WebSocket (a user, their own
//! messages) and REST (the backend, any message), on one node and across
//! three: seen live by every member on every node, and afterwards in history,
//! `sync`, `hello` (the recent cache) and search; a deleted body found nowhere.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::server::{Mode, TestServer, code, with_search};
use common::ws::{Client, assert_error, chat_with, connect, every_read, message_path, user_token};
use serde_json::{Value, json};

on_all_modes_configured!(
    an_edit_reaches_every_member_and_every_read,
    a_delete_leaves_a_tombstone_and_the_body_nowhere,
    only_the_author_changes_a_message_and_bad_changes_change_nothing,
    replies_make_a_thread_seen_live_and_paged,
);

async fn an_edit_reaches_every_member_and_every_read(mode: Mode) {
    let s = TestServer::start_with(mode, with_search).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let alice_jwt = user_token(&s, &token, "alice").await;
    let mut phone = Client::connect(&s, &alice_jwt).await;
    // (The phone acts; its ack is its answer, and it hears of nothing it did.)
    let mut laptop = Client::connect(&s, &alice_jwt).await;
    let mut bob = connect(&s, &token, "bob").await;
    let ack =
        phone.request(json!({"type":"send","id":1,"chat":chat,"body":"teh plan","client_msg_id":"c1"})).await;
    let seq = ack["seq"].as_u64().unwrap();
    for client in [&mut laptop, &mut bob] {
        assert_eq!(client.next().await["body"], "teh plan");
    }

    let ack = phone.request(json!({"type":"edit","id":2,"chat":chat,"seq":seq,"body":"the plan"})).await;
    assert_eq!(ack, json!({"type":"ack","id":2,"chat":chat,"seq":seq}));
    let mut edited_at = Vec::new();
    // Every session of the members but the one that asked (it has its ack).
    for client in [&mut laptop, &mut bob] {
        let event = client.next().await;
        assert_eq!(
            (event["type"].as_str(), event["chat"].as_u64(), event["seq"].as_u64(), event["body"].as_str()),
            (Some("message_edited"), Some(chat), Some(seq), Some("the plan")),
            "{event}"
        );
        edited_at.push(event["edited_at"].clone());
    }
    assert!(edited_at.iter().all(|t| t == &edited_at[0] && t.is_string()), "{edited_at:?}");

    for copy in every_read(&s, &token, chat, seq, "bob").await {
        assert_eq!(copy["body"], "the plan", "{copy}");
        assert_eq!(copy["edited_at"], edited_at[0], "{copy}");
        assert!(copy.get("deleted").is_none(), "{copy}");
    }
    // The backend edits too, and the old bodies are kept, oldest first.
    let url = s.url(&message_path(&token, chat, seq));
    let (status, body) = s.send(s.http.patch(url).json(&json!({"body":"the final plan"}))).await;
    assert_eq!((status, body["body"].as_str()), (200, Some("the final plan")), "{body}");
    assert_eq!(body["sender"], "alice");
    assert_eq!(bob.next().await["body"], "the final plan");
    let (_, versions) = s.get(&format!("{}/versions", message_path(&token, chat, seq))).await;
    let bodies: Vec<&str> =
        versions.as_array().unwrap().iter().map(|v| v["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["teh plan", "the plan"], "{versions}");
    assert_eq!(versions[1]["written_at"], edited_at[0]);

    // Search finds the new words only.
    let search = |q: &str| {
        let q = serde_urlencoded::to_string([("query", q)]).unwrap();
        format!("/api/v1/applications/{token}/chats/{chat}/messages/search?{q}")
    };
    wait_until(&s, &search("final"), 1).await;
    wait_until(&s, &search("teh"), 0).await;
    s.stop().await;
}

async fn a_delete_leaves_a_tombstone_and_the_body_nowhere(mode: Mode) {
    let s = TestServer::start_with(mode, with_search).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    let mut seqs = Vec::new();
    for (i, body) in ["first", "my secret passphrase", "third"].iter().enumerate() {
        let ack = alice
            .request(json!({"type":"send","id":i,"chat":chat,"body":body,"client_msg_id":format!("c{i}")}))
            .await;
        seqs.push(ack["seq"].as_u64().unwrap());
        bob.next().await;
    }
    let seq = seqs[1];
    let search = {
        let q = serde_urlencoded::to_string([("query", "passphrase")]).unwrap();
        format!("/api/v1/applications/{token}/chats/{chat}/messages/search?{q}")
    };
    wait_until(&s, &search, 1).await;
    let ack = alice
        .request(json!({"type":"edit","id":"e","chat":chat,"seq":seq,"body":"my secret passphrase!"}))
        .await;
    assert_eq!(ack["type"], "ack");
    bob.next().await;

    let ack = alice.request(json!({"type":"delete","id":"d","chat":chat,"seq":seq})).await;
    assert_eq!(ack, json!({"type":"ack","id":"d","chat":chat,"seq":seq}));
    let event = bob.next().await;
    assert_eq!(
        (event["type"].as_str(), event["seq"].as_u64(), event.get("body")),
        (Some("message_deleted"), Some(seq), None),
        "{event}"
    );
    assert!(event["deleted_at"].is_string());

    for copy in every_read(&s, &token, chat, seq, "bob").await {
        assert_eq!(copy["body"], Value::Null, "{copy}");
        assert_eq!(
            (copy["deleted"].as_bool(), copy["deleted_at"].clone()),
            (Some(true), event["deleted_at"].clone())
        );
        assert!(!copy.to_string().contains("passphrase"), "{copy}");
    }
    // The number stays: no gap, and the count does not go down.
    let (_, page) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}/messages")).await;
    let numbers: Vec<u64> = page.as_array().unwrap().iter().map(|m| m["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [seqs[2], seqs[1], seqs[0]]);
    let (_, chat_view) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}")).await;
    assert_eq!(chat_view["messages_count"], 3);
    let (_, versions) = s.get(&format!("{}/versions", message_path(&token, chat, seq))).await;
    assert_eq!(versions, json!([]), "earlier bodies go with the message");
    wait_until(&s, &search, 0).await;

    // Deleted is final: no edit, no second delete, on either edge.
    let again = alice.request(json!({"type":"edit","id":"e2","chat":chat,"seq":seq,"body":"back"})).await;
    assert_error(&again, &json!("e2"), "message_deleted");
    let again = alice.request(json!({"type":"delete","id":"d2","chat":chat,"seq":seq})).await;
    assert_error(&again, &json!("d2"), "message_deleted");
    let url = s.url(&message_path(&token, chat, seq));
    let (status, body) = s.send(s.http.delete(url.clone())).await;
    assert_eq!((status, code(&body)), (410, "message_deleted"));
    let (status, body) = s.send(s.http.patch(url).json(&json!({"body":"x"}))).await;
    assert_eq!((status, code(&body)), (410, "message_deleted"));
    // The backend deletes any message.
    let (status, _) = s.send(s.http.delete(s.url(&message_path(&token, chat, seqs[0])))).await;
    assert_eq!(status, 204);
    assert_eq!(bob.next().await["seq"], json!(seqs[0]));
    s.stop().await;
}

async fn only_the_author_changes_a_message_and_bad_changes_change_nothing(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    let mut carol = connect(&s, &token, "carol").await;
    let ack =
        alice.request(json!({"type":"send","id":1,"chat":chat,"body":"mine","client_msg_id":"c1"})).await;
    let seq = ack["seq"].as_u64().unwrap();
    bob.next().await;

    for (frame, expected) in [
        (json!({"type":"edit","id":"a","chat":chat,"seq":seq,"body":"yours now"}), "forbidden"),
        (json!({"type":"delete","id":"a","chat":chat,"seq":seq}), "forbidden"),
        (json!({"type":"edit","id":"a","chat":chat,"seq":seq + 50,"body":"x"}), "message_not_found"),
        (json!({"type":"edit","id":"a","chat":chat + 50,"seq":seq,"body":"x"}), "chat_not_found"),
        (json!({"type":"edit","id":"a","chat":chat,"seq":seq,"body":"   "}), "invalid_frame"),
        (json!({"type":"edit","id":"a","chat":chat,"seq":seq}), "invalid_frame"),
        (json!({"type":"delete","id":"a","chat":chat,"seq":"one"}), "invalid_frame"),
    ] {
        let answer = bob.request(frame.clone()).await;
        assert_error(&answer, &json!("a"), expected);
        if expected == "forbidden" {
            let message = answer["message"].as_str().unwrap();
            let needed = if frame["type"] == "edit" { "only its author" } else { "admin or owner role" };
            assert!(message.contains(needed), "{answer}");
        }
    }
    let answer = carol.request(json!({"type":"delete","id":"c","chat":chat,"seq":seq})).await;
    assert_error(&answer, &json!("c"), "not_a_member");

    let url = s.url(&message_path(&token, chat, seq));
    for (body, status, expected) in [
        (json!({"body":""}), 422, "invalid_field"),
        (json!({}), 422, "invalid_field"),
        (json!({"body":7}), 422, "invalid_field"),
    ] {
        let (got, answer) = s.send(s.http.patch(url.clone()).json(&body)).await;
        assert_eq!((got, code(&answer)), (status, expected), "{body}: {answer}");
    }
    for (path, status, expected) in [
        (message_path(&token, chat, seq + 50), 404, "message_not_found"),
        (message_path(&token, chat + 50, seq), 404, "chat_not_found"),
        (message_path("no-such-token", chat, seq), 404, "application_not_found"),
    ] {
        let (got, answer) = s.send(s.http.delete(s.url(&path))).await;
        assert_eq!((got, code(&answer)), (status, expected), "{path}: {answer}");
        let (got, answer) = s.get(&format!("{path}/versions")).await;
        assert_eq!((got, code(&answer)), (status, expected), "{path}/versions: {answer}");
    }
    // Nothing changed: the message is as sent, with no versions, and nobody heard of a change.
    let (_, message) = s.get(&message_path(&token, chat, seq)).await;
    assert_eq!((message["body"].as_str(), message.get("edited_at")), (Some("mine"), None), "{message}");
    let (_, versions) = s.get(&format!("{}/versions", message_path(&token, chat, seq))).await;
    assert_eq!(versions, json!([]));
    alice.nothing_queued(&s, &token).await;
    s.stop().await;
}

async fn replies_make_a_thread_seen_live_and_paged(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    let ack =
        alice.request(json!({"type":"send","id":1,"chat":chat,"body":"lunch?","client_msg_id":"p"})).await;
    let parent = ack["seq"].as_u64().unwrap();
    bob.next().await;

    // Bob answers in the thread: alice gets the reply and the parent's new count; bob his ack.
    let ack = bob
        .request(
            json!({"type":"send","id":2,"chat":chat,"body":"yes","client_msg_id":"r1","reply_to":parent}),
        )
        .await;
    let first = ack["seq"].as_u64().unwrap();
    let mut frames = vec![alice.next().await, alice.next().await];
    frames.sort_by_key(|f| f["type"].as_str().unwrap_or_default().to_owned());
    assert_eq!((frames[0]["type"].as_str(), frames[0]["reply_to"].as_u64()), (Some("message"), Some(parent)));
    assert_eq!(frames[1]["type"], "thread_updated", "{:?}", frames);
    assert_eq!((frames[1]["seq"].as_u64(), frames[1]["reply_count"].as_u64()), (Some(parent), Some(1)));
    assert_eq!(frames[1]["last_reply_at"], frames[0]["sent_at"]);

    // The backend answers too (REST `reply_to`).
    let url = s.url(&format!("/api/v1/applications/{token}/chats/{chat}/messages"));
    let (status, body) =
        s.send(s.http.post(url).json(&json!({"body":"me too","sender":"bob","reply_to":parent}))).await;
    assert_eq!(status, 201, "{body}");
    let second = body["number"].as_u64().unwrap();
    for client in [&mut alice, &mut bob] {
        let mut frames = vec![client.next().await, client.next().await];
        frames.sort_by_key(|f| f["type"].as_str().unwrap_or_default().to_owned());
        assert_eq!(frames[1]["reply_count"], 2, "{frames:?}");
    }

    let replies = |query: &str| format!("{}/replies{query}", message_path(&token, chat, parent));
    let numbers = |page: &Value| {
        page.as_array().unwrap().iter().map(|m| m["number"].as_u64().unwrap()).collect::<Vec<_>>()
    };
    let (_, all) = s.get(&replies("")).await;
    assert_eq!(numbers(&all), [first, second], "oldest first");
    assert_eq!(all[0]["reply_to"], json!(parent));
    let (_, rest) = s.get(&replies(&format!("?after={first}"))).await;
    assert_eq!(numbers(&rest), [second]);
    let (_, one) = s.get(&replies("?per_page=1")).await;
    assert_eq!(numbers(&one), [first]);
    let (_, none) = s.get(&format!("{}/replies", message_path(&token, chat, first))).await;
    assert_eq!(none, json!([]));

    // The parent carries its thread in every read.
    let (_, message) = s.get(&message_path(&token, chat, parent)).await;
    assert_eq!((message["reply_count"].as_u64(), message["last_reply_at"].is_string()), (Some(2), true));
    let mut fresh = connect(&s, &token, "alice").await;
    let resumed = fresh.request(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":0}]})).await;
    let cached =
        resumed["items"].as_array().unwrap().iter().find(|m| m["seq"] == json!(parent)).unwrap().clone();
    assert_eq!(
        (cached["reply_count"].as_u64(), cached["last_reply_at"].clone()),
        (Some(2), message["last_reply_at"].clone())
    );

    // Bad threads.
    for (path, status, expected) in [
        (format!("{}/replies", message_path(&token, chat, 999)), 404, "message_not_found"),
        (replies("?before=3"), 422, "invalid_parameter"),
        (replies("?page=2"), 422, "invalid_parameter"),
    ] {
        let (got, body) = s.get(&path).await;
        assert_eq!((got, code(&body)), (status, expected), "{path}: {body}");
    }
    let other = chat_with(&s, &token, &["alice", "bob"]).await;
    let answer = bob
        .request(json!({"type":"send","id":3,"chat":other,"body":"x","client_msg_id":"r3","reply_to":parent + 100}))
        .await;
    assert_error(&answer, &json!(3), "invalid_field");
    s.stop().await;
}

/// Waits until the search at `path` has `want` hits.
async fn wait_until(s: &TestServer, path: &str, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = s.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        if body.as_array().unwrap().len() == want {
            return;
        }
        assert!(Instant::now() < deadline, "{path}: waited for {want} hits: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
