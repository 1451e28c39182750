//! Reactions, over the WebSocket (a member, for themselves) and REST (the
//! backend, on behalf of a member), on one node and across three: seen live by
//! every member on every node, and afterwards with `me` in every read (REST
//! history and one message, `sync`, `hello`); one per user, message and emoji;
//! bad reactions change nothing.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::server::{Mode, TestServer, code};
use common::ws::{Client, assert_error, barrier, chat_with, connect, every_read, message_path, user_token};
use serde_json::{Value, json};

on_all_modes_configured!(
    a_reaction_reaches_every_member_and_every_read,
    one_reaction_per_user_message_and_emoji,
    bad_reactions_are_refused_and_change_nothing,
);

fn reaction_path(token: &str, chat: u64, seq: u64, emoji: &str, user: &str) -> String {
    let emoji: String = url_escape(emoji);
    format!("{}/reactions/{emoji}/{user}", message_path(token, chat, seq))
}

fn url_escape(raw: &str) -> String {
    raw.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The message's `reactions` in every read `user` has (`me` is theirs).
async fn reactions_read(s: &TestServer, token: &str, chat: u64, seq: u64, user: &str) -> Vec<Value> {
    every_read(s, token, chat, seq, user).await.into_iter().map(|m| m["reactions"].clone()).collect()
}

#[track_caller]
fn assert_reaction(event: &Value, (chat, seq): (u64, u64), user: &str, emoji: &str, op: &str, count: u64) {
    assert_eq!(
        event,
        &json!({"type":"reaction","chat":chat,"seq":seq,"user":user,"emoji":emoji,"op":op,"count":count}),
    );
}

async fn a_reaction_reaches_every_member_and_every_read(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob", "carol"]).await;
    let bob_jwt = user_token(&s, &token, "bob").await;
    let mut alice = connect(&s, &token, "alice").await;
    // (Bob's phone acts; its ack is its answer, and it hears of nothing it did.)
    let mut phone = Client::connect(&s, &bob_jwt).await;
    let mut laptop = Client::connect(&s, &bob_jwt).await;
    let mut carol = connect(&s, &token, "carol").await;
    let ack =
        alice.request(json!({"type":"send","id":1,"chat":chat,"body":"lunch?","client_msg_id":"c1"})).await;
    let seq = ack["seq"].as_u64().unwrap();
    for client in [&mut phone, &mut laptop, &mut carol] {
        assert_eq!(client.next().await["body"], "lunch?");
    }

    let ack = phone.request(json!({"type":"react","id":2,"chat":chat,"seq":seq,"emoji":"👍"})).await;
    assert_eq!(ack, json!({"type":"ack","id":2,"chat":chat,"seq":seq}));
    for client in [&mut alice, &mut laptop, &mut carol] {
        assert_reaction(&client.next().await, (chat, seq), "bob", "👍", "add", 1);
    }
    let ack = carol.request(json!({"type":"react","id":3,"chat":chat,"seq":seq,"emoji":"👍"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for client in [&mut alice, &mut phone, &mut laptop] {
        assert_reaction(&client.next().await, (chat, seq), "carol", "👍", "add", 2);
    }
    // The backend reacts for alice.
    let url = s.url(&reaction_path(&token, chat, seq, "🎉", "alice"));
    let (status, body) = s.send(s.http.put(url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reactions"], json!({"👍":{"count":2,"me":false},"🎉":{"count":1,"me":true}}));
    for client in [&mut alice, &mut phone, &mut laptop, &mut carol] {
        assert_reaction(&client.next().await, (chat, seq), "alice", "🎉", "add", 1);
    }

    // Every read shows the counts, and `me` for whoever reads.
    for read in reactions_read(&s, &token, chat, seq, "bob").await {
        assert_eq!(read, json!({"👍":{"count":2,"me":true},"🎉":{"count":1,"me":false}}));
    }
    for read in reactions_read(&s, &token, chat, seq, "alice").await {
        assert_eq!(read, json!({"👍":{"count":2,"me":false},"🎉":{"count":1,"me":true}}));
    }
    let (_, listed) = s.get(&format!("{}/reactions", message_path(&token, chat, seq))).await;
    assert_eq!(listed, json!({"👍":["bob","carol"],"🎉":["alice"]}));
    // Without a reader, the counts (no one's `me`).
    let (_, plain) = s.get(&message_path(&token, chat, seq)).await;
    assert_eq!(plain["reactions"], json!({"👍":{"count":2,"me":false},"🎉":{"count":1,"me":false}}));

    // Taking back: live, and gone from every read.
    let ack = phone.request(json!({"type":"unreact","id":4,"chat":chat,"seq":seq,"emoji":"👍"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for client in [&mut alice, &mut laptop, &mut carol] {
        assert_reaction(&client.next().await, (chat, seq), "bob", "👍", "remove", 1);
    }
    let url = s.url(&reaction_path(&token, chat, seq, "🎉", "alice"));
    let (status, body) = s.send(s.http.delete(url)).await;
    assert_eq!((status, &body["reactions"]), (200, &json!({"👍":{"count":1,"me":false}})), "{body}");
    for client in [&mut alice, &mut phone, &mut laptop, &mut carol] {
        assert_reaction(&client.next().await, (chat, seq), "alice", "🎉", "remove", 0);
    }
    for read in reactions_read(&s, &token, chat, seq, "bob").await {
        assert_eq!(read, json!({"👍":{"count":1,"me":false}}));
    }
    s.stop().await;
}

async fn one_reaction_per_user_message_and_emoji(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    let ack =
        alice.request(json!({"type":"send","id":1,"chat":chat,"body":"vote","client_msg_id":"c1"})).await;
    let seq = ack["seq"].as_u64().unwrap();
    bob.next().await;

    for id in 2..5 {
        let ack = bob.request(json!({"type":"react","id":id,"chat":chat,"seq":seq,"emoji":":yes:"})).await;
        assert_eq!(ack["type"], "ack", "a repeated reaction is answered: {ack}");
    }
    assert_reaction(&alice.next().await, (chat, seq), "bob", ":yes:", "add", 1);
    // A repeat changes nothing and is announced to no one: the next frames are a barrier.
    barrier(&s, &token, chat, &mut [&mut alice, &mut bob]).await;
    let url = s.url(&reaction_path(&token, chat, seq, ":yes:", "bob"));
    let (status, body) = s.send(s.http.put(url)).await;
    assert_eq!((status, &body["reactions"]), (200, &json!({":yes:":{"count":1,"me":true}})));
    // Taking back what is not there is answered too, and changes nothing.
    let ack = alice.request(json!({"type":"unreact","id":9,"chat":chat,"seq":seq,"emoji":":yes:"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    barrier(&s, &token, chat, &mut [&mut alice, &mut bob]).await;
    for read in reactions_read(&s, &token, chat, seq, "bob").await {
        assert_eq!(read, json!({":yes:":{"count":1,"me":true}}));
    }
    s.stop().await;
}

async fn bad_reactions_are_refused_and_change_nothing(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let other = chat_with(&s, &token, &["alice", "bob"]).await;
    let lonely = chat_with(&s, &token, &["carol"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let seq = alice.request(json!({"type":"send","id":1,"chat":chat,"body":"hi","client_msg_id":"c1"})).await
        ["seq"]
        .as_u64()
        .unwrap();
    let gone = alice
        .request(json!({"type":"send","id":2,"chat":chat,"body":"oops","client_msg_id":"c2"}))
        .await["seq"]
        .as_u64()
        .unwrap();
    let ack = alice.request(json!({"type":"delete","id":3,"chat":chat,"seq":gone})).await;
    assert_eq!(ack["type"], "ack", "{ack}");

    let react = |chat: u64, seq: u64, emoji: &str| json!({"type":"react","id":"r","chat":chat,"seq":seq,"emoji":emoji});
    let bad_frames = [
        (react(chat, seq, ""), "invalid_frame"),
        (react(chat, seq, "thumbs up"), "invalid_frame"),
        (react(chat, seq, "abcdefghijklmnopq"), "invalid_frame"),
        (react(chat, seq, "a\u{7}"), "invalid_frame"),
        (json!({"type":"react","id":"r","chat":chat,"seq":seq}), "invalid_frame"),
        (json!({"type":"react","id":"r","chat":chat,"seq":"one","emoji":"👍"}), "invalid_frame"),
        // A number of this chat asked in another chat: that chat has no such message.
        (react(other, seq, "👍"), "message_not_found"),
        (react(chat, 999, "👍"), "message_not_found"),
        (react(chat, gone, "👍"), "message_deleted"),
        (react(lonely, 1, "👍"), "not_a_member"),
        (react(999, 1, "👍"), "chat_not_found"),
    ];
    for (frame, expected) in bad_frames {
        let answer = alice.request(frame.clone()).await;
        assert_error(&answer, &json!("r"), expected);
    }
    // At most 50 different emoji on one message.
    for i in 0..50 {
        let ack = alice.request(react(chat, seq, &format!(":e{i}:"))).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let answer = alice.request(react(chat, seq, ":one-too-many:")).await;
    assert_error(&answer, &json!("r"), "invalid_field");
    let ack = alice.request(react(chat, seq, ":e7:")).await;
    assert_eq!(ack["type"], "ack", "an emoji already there is still fine: {ack}");

    // REST: the same refusals with statuses and codes.
    let cases = [
        (reaction_path(&token, chat, seq, "a b", "bob"), 422, "invalid_parameter"),
        (reaction_path(&token, chat, seq, "👍", "no body"), 422, "invalid_field"),
        (reaction_path(&token, chat, seq, "👍", "carol"), 403, "not_a_member"),
        (reaction_path(&token, chat, 999, "👍", "bob"), 404, "message_not_found"),
        (reaction_path(&token, chat, gone, "👍", "bob"), 410, "message_deleted"),
        (reaction_path(&token, 999, 1, "👍", "bob"), 404, "chat_not_found"),
        (reaction_path("nope", chat, seq, "👍", "bob"), 404, "application_not_found"),
    ];
    for (path, status, expected) in cases {
        let (got, body) = s.send(s.http.put(s.url(&path))).await;
        assert_eq!((got, code(&body)), (status, expected), "PUT {path}: {body}");
    }
    // Nothing was half-applied: only alice's 50.
    let (_, listed) = s.get(&format!("{}/reactions", message_path(&token, chat, seq))).await;
    let listed = listed.as_object().unwrap();
    assert_eq!(listed.len(), 50);
    assert!(listed.values().all(|users| users == &json!(["alice"])), "{listed:?}");
    let (_, tombstone) = s.get(&message_path(&token, chat, gone)).await;
    assert!(tombstone.get("reactions").is_none(), "{tombstone}");
    let (_, elsewhere) = s.get(&format!("/api/v1/applications/{token}/chats/{other}/messages")).await;
    assert_eq!(elsewhere, json!([]));
    s.stop().await;
}
