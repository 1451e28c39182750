//! The real-time features of `docs/protocol.md` over real WebSockets, on the
//! embedded default and on Cassandra + Redis: fan-out to every device, implicit
//! chats, duplicate suppression, receipts, typing, presence, `hello` catch-up,
//! and isolation between applications. The limits and heartbeats are in
//! `realtime_limits.rs`.
//!
//! Scenarios that need the default config run through `on_every_mode!`; those
//! that shorten a timing or a limit start their own server and run through
//! `on_both_modes_configured!` (as `configured::embedded::x`, `configured::cluster::x`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::server::{Mode, TestServer};
use common::ws::{
    Client, FRAME_WAIT, assert_error, assert_message, barrier, chat_numbers, chat_with, connect, history,
    item_seqs, members, post, presence, send, send_to, user_token, wait_for_sessions, wait_until,
};
use serde_json::{Value, json};
use tokio::time::Instant;

on_every_mode!(
    every_device_of_every_member_gets_a_message_and_outsiders_nothing,
    recipients_find_the_direct_chat_or_create_a_group,
    a_pair_sending_to_each_other_at_once_gets_one_direct_chat,
    retried_sends_are_acked_once_and_create_nothing_new,
    concurrent_retries_of_a_group_send_create_one_chat,
    receipts_fan_out_to_the_members_and_only_move_forward,
    presence_rest_answer_has_the_documented_shape,
    hello_answers_each_chat_and_refuses_outsiders,
    hello_ends_each_chat_with_done_or_an_error_naming_it,
    hello_falls_back_to_the_store_past_the_recent_cache,
    a_message_delivered_live_is_not_repeated_by_the_catch_up,
    another_applications_chats_stay_invisible,
);

on_both_modes_configured!(
    typing_reaches_the_other_members_once_per_interval,
    presence_tells_chat_partners_when_a_user_comes_and_goes,
    a_quick_reconnect_sends_no_presence,
    hello_catches_up_while_others_keep_sending,
    hello_stops_at_resume_max_messages,
);

// ---------------------------------------------------------------------------------------------
// fan-out

async fn every_device_of_every_member_gets_a_message_and_outsiders_nothing(s: &TestServer) {
    let token = s.new_app().await;
    let chat = chat_with(s, &token, &["alice", "bob"]).await;
    let (alice, bob, carol) = (
        user_token(s, &token, "alice").await,
        user_token(s, &token, "bob").await,
        user_token(s, &token, "carol").await,
    );
    let mut alice_phone = Client::connect(s, &alice).await;
    let mut alice_laptop = Client::connect(s, &alice).await;
    let mut bob_phone = Client::connect(s, &bob).await;
    let mut bob_laptop = Client::connect(s, &bob).await;
    let mut carol = Client::connect(s, &carol).await;

    let ack = alice_phone.request(send(1, chat, "hi all", "a-1")).await;
    assert_eq!(ack, json!({"type":"ack","id":1,"chat":chat,"seq":1}));
    for device in [&mut alice_laptop, &mut bob_phone, &mut bob_laptop] {
        let m = device.next().await;
        assert_message(&m, chat, 1, "hi all");
        assert_eq!((m["sender"].as_str(), m["client_msg_id"].as_str()), (Some("alice"), Some("a-1")), "{m}");
    }
    let ack = bob_laptop.request(send(2, chat, "hi alice", "b-1")).await;
    assert_eq!(ack, json!({"type":"ack","id":2,"chat":chat,"seq":2}));
    for device in [&mut alice_phone, &mut alice_laptop, &mut bob_phone] {
        assert_message(&device.next().await, chat, 2, "hi alice");
    }
    // The sending devices got their acks and nothing more; carol got nothing at all.
    alice_phone.nothing_queued(s, &token).await;
    bob_laptop.nothing_queued(s, &token).await;
    carol.nothing_queued(s, &token).await;
}

// ---------------------------------------------------------------------------------------------
// implicit chats

async fn recipients_find_the_direct_chat_or_create_a_group(s: &TestServer) {
    let token = s.new_app().await;
    let first = s.new_chat(&token).await;
    let mut alice = connect(s, &token, "alice").await;
    let mut bob = connect(s, &token, "bob").await;
    let mut carol = connect(s, &token, "carol").await;

    // The first send to bob creates the direct chat, numbered after the REST one.
    let ack = alice.request(send_to(1, &["bob"], "hello bob", "a-1")).await;
    let direct = ack["chat"].as_u64().expect("the ack carries the chat");
    assert_eq!(ack, json!({"type":"ack","id":1,"chat":direct,"seq":1}));
    assert_eq!(direct, first + 1, "chat numbers are sequential");
    let m = bob.next().await;
    assert_message(&m, direct, 1, "hello bob");
    assert_eq!(m["sender"], "alice");

    // Bob's answer to alice finds the same chat, and so does alice's next send.
    let ack = bob.request(send_to(2, &["alice"], "hi alice", "b-1")).await;
    assert_eq!(ack, json!({"type":"ack","id":2,"chat":direct,"seq":2}));
    assert_message(&alice.next().await, direct, 2, "hi alice");
    let ack = alice.request(send_to(3, &["bob"], "again", "a-2")).await;
    assert_eq!(ack, json!({"type":"ack","id":3,"chat":direct,"seq":3}));
    assert_message(&bob.next().await, direct, 3, "again");
    // Naming oneself too still means the pair's chat.
    let ack = alice.request(send_to(4, &["alice", "bob"], "me and you", "a-3")).await;
    assert_eq!(ack, json!({"type":"ack","id":4,"chat":direct,"seq":4}));
    assert_message(&bob.next().await, direct, 4, "me and you");

    // Several recipients: a new group; carol's first frame is its message, so
    // she got nothing of the direct chat.
    let ack = alice.request(send_to(5, &["bob", "carol"], "group hi", "a-4")).await;
    let group = ack["chat"].as_u64().unwrap();
    assert_eq!(ack, json!({"type":"ack","id":5,"chat":group,"seq":1}));
    assert_eq!(group, direct + 1, "chat numbers are sequential");
    assert_message(&bob.next().await, group, 1, "group hi");
    assert_message(&carol.next().await, group, 1, "group hi");

    assert_eq!(members(s, &token, direct).await, BTreeSet::from(["alice".into(), "bob".into()]));
    assert_eq!(
        members(s, &token, group).await,
        BTreeSet::from(["alice".into(), "bob".into(), "carol".into()])
    );

    // Recipients naming nobody but the sender are refused, and spend no chat number.
    let err = alice.request(send_to(6, &["alice"], "to me", "a-5")).await;
    assert_error(&err, &json!(6), "invalid_field");
    let last = s.new_chat(&token).await;
    assert_eq!(last, group + 1, "a REST chat after implicit ones gets the next number");
    assert_eq!(chat_numbers(s, &token).await, vec![first, direct, group, last]);
    alice.nothing_queued(s, &token).await;
}

async fn a_pair_sending_to_each_other_at_once_gets_one_direct_chat(s: &TestServer) {
    let token = s.new_app().await;
    const PAIRS: u64 = 5;
    for pair in 0..PAIRS {
        let (a, b) = (format!("left-{pair}"), format!("right-{pair}"));
        let mut left = connect(s, &token, &a).await;
        let mut right = connect(s, &token, &b).await;
        let ((ack_left, mut left_got), (ack_right, mut right_got)) = tokio::join!(
            left.request_collect(send_to(1, &[b.as_str()], "from left", "l-1")),
            right.request_collect(send_to(1, &[a.as_str()], "from right", "r-1")),
        );
        assert_eq!(ack_left["type"], "ack", "{ack_left}");
        assert_eq!(ack_right["type"], "ack", "{ack_right}");
        assert_eq!(ack_left["chat"], ack_right["chat"], "both sides of pair {pair} must get the same chat");
        let chat = ack_left["chat"].as_u64().unwrap();
        let seqs = BTreeSet::from([ack_left["seq"].as_u64().unwrap(), ack_right["seq"].as_u64().unwrap()]);
        assert_eq!(seqs, BTreeSet::from([1, 2]), "{ack_left} {ack_right}");
        // Each side gets the other's message, before or after its own ack.
        if left_got.is_empty() {
            left_got.push(left.next().await);
        }
        if right_got.is_empty() {
            right_got.push(right.next().await);
        }
        assert_eq!(left_got.len(), 1, "{left_got:?}");
        assert_eq!(right_got.len(), 1, "{right_got:?}");
        assert_message(&left_got[0], chat, ack_right["seq"].as_u64().unwrap(), "from right");
        assert_message(&right_got[0], chat, ack_left["seq"].as_u64().unwrap(), "from left");
        assert_eq!(members(s, &token, chat).await, BTreeSet::from([a.clone(), b.clone()]));
    }
    // One chat per pair, and the next chat gets the next number: no race spent one.
    let next = s.new_chat(&token).await;
    assert_eq!(next, PAIRS + 1);
    assert_eq!(chat_numbers(s, &token).await, (1..=PAIRS + 1).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// duplicates

async fn retried_sends_are_acked_once_and_create_nothing_new(s: &TestServer) {
    let token = s.new_app().await;
    let chat = chat_with(s, &token, &["alice", "bob"]).await;
    let alice_jwt = user_token(s, &token, "alice").await;
    let mut phone = Client::connect(s, &alice_jwt).await;
    let mut laptop = Client::connect(s, &alice_jwt).await;
    let mut bob = connect(s, &token, "bob").await;
    let mut carol = connect(s, &token, "carol").await;

    // A chat send, retried from the other device (say, after a reconnect).
    let ack = phone.request(send(1, chat, "once", "m-1")).await;
    assert_eq!(ack, json!({"type":"ack","id":1,"chat":chat,"seq":1}));
    assert_message(&laptop.next().await, chat, 1, "once");
    assert_message(&bob.next().await, chat, 1, "once");
    let ack = laptop.request(send(2, chat, "once", "m-1")).await;
    assert_eq!(ack, json!({"type":"ack","id":2,"chat":chat,"seq":1}));

    // An implicit direct send, retried.
    let ack = phone.request(send_to(3, &["carol"], "direct", "m-2")).await;
    let direct = ack["chat"].as_u64().unwrap();
    assert_eq!(ack, json!({"type":"ack","id":3,"chat":direct,"seq":1}));
    assert_message(&laptop.next().await, direct, 1, "direct");
    assert_message(&carol.next().await, direct, 1, "direct");
    let ack = phone.request(send_to(4, &["carol"], "direct", "m-2")).await;
    assert_eq!(ack, json!({"type":"ack","id":4,"chat":direct,"seq":1}));

    // An implicit group send, retried (recipients in another order, too).
    let ack = phone.request(send_to(5, &["bob", "carol"], "group", "m-3")).await;
    let group = ack["chat"].as_u64().unwrap();
    assert_eq!(ack, json!({"type":"ack","id":5,"chat":group,"seq":1}));
    for device in [&mut laptop, &mut bob, &mut carol] {
        assert_message(&device.next().await, group, 1, "group");
    }
    let ack = laptop.request(send_to(6, &["bob", "carol"], "group", "m-3")).await;
    assert_eq!(ack, json!({"type":"ack","id":6,"chat":group,"seq":1}));
    let ack = phone.request(send_to(7, &["carol", "bob"], "group", "m-3")).await;
    assert_eq!(ack, json!({"type":"ack","id":7,"chat":group,"seq":1}));

    // No retry was delivered again, and none created a chat.
    let everyone = chat_with(s, &token, &["alice", "bob", "carol"]).await;
    barrier(s, &token, everyone, &mut [&mut phone, &mut laptop, &mut bob, &mut carol]).await;
    assert_eq!(chat_numbers(s, &token).await, vec![chat, direct, group, everyone]);
    assert_eq!(everyone, group + 1);
    for (chat, count) in [(chat, 1), (direct, 1), (group, 1)] {
        assert_eq!(history(s, &token, chat, 0).await.len(), count, "chat {chat}");
    }
}

async fn concurrent_retries_of_a_group_send_create_one_chat(s: &TestServer) {
    let token = s.new_app().await;
    let alice_jwt = user_token(s, &token, "alice").await;
    let mut phone = Client::connect(s, &alice_jwt).await;
    let mut laptop = Client::connect(s, &alice_jwt).await;
    let mut bob = connect(s, &token, "bob").await;
    const ROUNDS: u64 = 5;
    let mut alice_copies = Vec::new();
    for round in 1..=ROUNDS {
        let key = format!("g-{round}");
        let body = format!("group {round}");
        let ((first, phone_got), (retry, laptop_got)) = tokio::join!(
            phone.request_collect(send_to(round, &["bob", "carol"], &body, &key)),
            laptop.request_collect(send_to(round, &["bob", "carol"], &body, &key)),
        );
        alice_copies.extend(phone_got.into_iter().chain(laptop_got));
        assert_eq!(first["type"], "ack", "{first}");
        assert_eq!(first, retry, "round {round}: a retry gets the first ack");
        let chat = first["chat"].as_u64().unwrap();
        assert_message(&bob.next().await, chat, 1, &body);
        let numbers = chat_numbers(s, &token).await;
        if numbers.len() as u64 != round {
            let mut found = Vec::new();
            for n in &numbers {
                found.push(format!(
                    "chat {n}: members {:?}, messages {:?}",
                    members(s, &token, *n).await,
                    history(s, &token, *n, 0).await
                ));
            }
            panic!(
                "round {round}: both acks say chat {chat}, but the application has chats {numbers:?}: {found:#?}"
            );
        }
    }
    // Alice's devices got each message once in all: the device whose send was
    // the duplicate gets the live copy.
    let barrier_chat = chat_with(s, &token, &["alice", "bob"]).await;
    let seq = post(s, &token, barrier_chat, "barrier").await;
    alice_copies.extend(phone.until_message(barrier_chat, seq).await);
    alice_copies.extend(laptop.until_message(barrier_chat, seq).await);
    let mut bodies: Vec<&str> = alice_copies.iter().map(|m| m["body"].as_str().unwrap()).collect();
    bodies.sort_unstable();
    let want: Vec<String> = (1..=ROUNDS).map(|r| format!("group {r}")).collect();
    assert_eq!(bodies, want, "{alice_copies:?}");
    assert_eq!(bob.until_message(barrier_chat, seq).await, Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// receipts

async fn receipts_fan_out_to_the_members_and_only_move_forward(s: &TestServer) {
    let token = s.new_app().await;
    let chat = chat_with(s, &token, &["alice", "bob", "carol"]).await;
    let everyone = chat_with(s, &token, &["alice", "bob", "carol", "dave"]).await;
    for n in 1..=3 {
        post(s, &token, chat, &format!("m{n}")).await;
    }
    let bob_jwt = user_token(s, &token, "bob").await;
    let mut alice = connect(s, &token, "alice").await;
    let mut bob = Client::connect(s, &bob_jwt).await;
    let mut bob_tablet = Client::connect(s, &bob_jwt).await;
    let mut carol = connect(s, &token, "carol").await;
    let mut dave = connect(s, &token, "dave").await;

    let read = |id: u64, seq: u64| json!({"type":"read","id":id,"chat":chat,"seq":seq});
    let receipt =
        |kind: &str, seq: u64| json!({"type":"receipt","chat":chat,"user":"bob","kind":kind,"seq":seq});

    assert_eq!(bob.request(read(1, 2)).await, json!({"type":"ack","id":1,"chat":chat,"seq":2}));
    for member in [&mut alice, &mut carol, &mut bob_tablet] {
        assert_eq!(member.next().await, receipt("read", 2));
    }
    let (status, states) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}/read_state")).await;
    assert_eq!(status, 200, "{states}");
    assert_eq!(states, json!([{"user_id":"bob","delivered":2,"read":2}]), "read moves delivered too");

    // Positions at or below the stored ones are accepted and change nothing:
    // the next receipt everyone sees is delivered 3.
    assert_eq!(bob.request(read(2, 1)).await, json!({"type":"ack","id":2,"chat":chat,"seq":1}));
    let delivered = |id: u64, seq: u64| json!({"type":"delivered","id":id,"chat":chat,"seq":seq});
    assert_eq!(bob.request(delivered(3, 2)).await, json!({"type":"ack","id":3,"chat":chat,"seq":2}));
    assert_eq!(bob.request(delivered(4, 3)).await, json!({"type":"ack","id":4,"chat":chat,"seq":3}));
    for member in [&mut alice, &mut carol, &mut bob_tablet] {
        assert_eq!(member.next().await, receipt("delivered", 3));
    }
    // Without an id: fanned out, no ack; the sending session hears nothing.
    bob_tablet.send(json!({"type":"read","chat":chat,"seq":3})).await;
    for member in [&mut alice, &mut carol, &mut bob] {
        assert_eq!(member.next().await, receipt("read", 3));
    }
    let (_, states) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}/read_state")).await;
    assert_eq!(states, json!([{"user_id":"bob","delivered":3,"read":3}]));

    // Past the newest message, outside one's chats, unknown chats.
    assert_error(&bob.request(delivered(5, 4)).await, &json!(5), "invalid_field");
    assert_error(&bob.request(read(6, 99)).await, &json!(6), "invalid_field");
    assert_error(
        &dave.request(json!({"type":"read","id":7,"chat":chat,"seq":1})).await,
        &json!(7),
        "not_a_member",
    );
    assert_error(
        &dave.request(json!({"type":"delivered","id":8,"chat":999,"seq":1})).await,
        &json!(8),
        "chat_not_found",
    );
    let (_, states) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}/read_state")).await;
    assert_eq!(states, json!([{"user_id":"bob","delivered":3,"read":3}]), "refused receipts changed nothing");

    // Nobody got anything else (dave none of the receipts, bob_tablet no echo of its own).
    barrier(s, &token, everyone, &mut [&mut alice, &mut bob, &mut bob_tablet, &mut carol, &mut dave]).await;
}

// ---------------------------------------------------------------------------------------------
// typing

async fn typing_reaches_the_other_members_once_per_interval(mode: Mode) {
    // Long enough that a second `typing` within the test is always inside the interval.
    let s = TestServer::start_with(mode, |c| c.gateway.typing_interval_ms = 60_000).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob", "carol"]).await;
    let everyone = chat_with(&s, &token, &["alice", "bob", "carol", "dave"]).await;
    let alice_jwt = user_token(&s, &token, "alice").await;
    let mut phone = Client::connect(&s, &alice_jwt).await;
    let mut laptop = Client::connect(&s, &alice_jwt).await;
    let mut bob = connect(&s, &token, "bob").await;
    let mut carol = connect(&s, &token, "carol").await;
    let mut dave = connect(&s, &token, "dave").await;

    phone.send(json!({"type":"typing","chat":chat})).await;
    for member in [&mut bob, &mut carol] {
        assert_eq!(member.next().await, json!({"type":"typing","chat":chat,"user":"alice"}));
    }
    // Again at once, from either device: dropped silently (no error either).
    phone.send(json!({"type":"typing","id":"t2","chat":chat})).await;
    laptop.send(json!({"type":"typing","id":"t3","chat":chat})).await;
    barrier(&s, &token, everyone, &mut [&mut phone, &mut laptop, &mut bob, &mut carol, &mut dave]).await;

    // The interval is per chat and per user.
    phone.send(json!({"type":"typing","chat":everyone})).await;
    bob.send(json!({"type":"typing","chat":chat})).await;
    let typing = |chat: u64, user: &str| json!({"type":"typing","chat":chat,"user":user});
    assert_eq!(dave.next().await, typing(everyone, "alice"));
    for alice in [&mut phone, &mut laptop] {
        assert_eq!(alice.next().await, typing(chat, "bob"));
    }
    let mut got: Vec<Value> = vec![bob.next().await, carol.next().await, carol.next().await];
    got.sort_by_key(|v| v.to_string());
    let mut want = vec![typing(everyone, "alice"), typing(everyone, "alice"), typing(chat, "bob")];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(got, want);

    // Typing in a chat one is not in is refused.
    assert_error(
        &dave.request(json!({"type":"typing","id":"t","chat":chat})).await,
        &json!("t"),
        "not_a_member",
    );
    barrier(&s, &token, everyone, &mut [&mut phone, &mut laptop, &mut bob, &mut carol, &mut dave]).await;
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// presence

async fn presence_tells_chat_partners_when_a_user_comes_and_goes(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.gateway.presence_debounce_ms = 300).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let elsewhere = chat_with(&s, &token, &["dave", "erin"]).await;
    let alice_jwt = user_token(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    let mut dave = connect(&s, &token, "dave").await;

    let mut phone = Client::connect(&s, &alice_jwt).await;
    assert_eq!(bob.next_any().await, json!({"type":"presence","user":"alice","online":true}));
    let online = presence(&s, &token, "alice").await;
    assert_eq!((online["online"].as_bool(), online["sessions"].as_u64()), (Some(true), Some(1)), "{online}");
    assert!(online["last_seen"].is_null(), "{online}");

    // A second device: no news for bob; alice hears nothing about herself.
    let laptop = Client::connect(&s, &alice_jwt).await;
    wait_for_sessions(&s, &token, "alice", 2).await;
    laptop.close().await;
    wait_for_sessions(&s, &token, "alice", 1).await;
    let seq = post(&s, &token, chat, "still here").await;
    assert_message(&bob.next_any().await, chat, seq, "still here");
    // Bob's own "online" may still have been on its way when the phone
    // connected (in a cluster it crosses nodes): that news is true and
    // allowed; news about alice herself is not.
    let mut frame = phone.next_any().await;
    if frame == json!({"type":"presence","user":"bob","online":true}) {
        frame = phone.next_any().await;
    }
    assert_message(&frame, chat, seq, "still here");
    let seq = post(&s, &token, elsewhere, "not about alice").await;
    assert_message(&dave.next_any().await, elsewhere, seq, "not about alice");

    // The last session closes: offline after the debounce.
    phone.close().await;
    assert_eq!(bob.next_any().await, json!({"type":"presence","user":"alice","online":false}));
    let offline = presence(&s, &token, "alice").await;
    assert_eq!(
        (offline["online"].as_bool(), offline["sessions"].as_u64()),
        (Some(false), Some(0)),
        "{offline}"
    );
    assert!(offline["last_seen"].is_string(), "last_seen is when the last session closed: {offline}");

    dave.silent().await;
    bob.silent().await;
    s.stop().await;
}

async fn a_quick_reconnect_sends_no_presence(mode: Mode) {
    const DEBOUNCE: Duration = Duration::from_millis(5_000);
    let s = TestServer::start_with(mode, |c| c.gateway.presence_debounce_ms = 5_000).await;
    let token = s.new_app().await;
    chat_with(&s, &token, &["alice", "bob"]).await;
    let alice_jwt = user_token(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    let alice = Client::connect(&s, &alice_jwt).await;
    assert_eq!(bob.next_any().await, json!({"type":"presence","user":"alice","online":true}));

    alice.close().await;
    // The server has closed the session (and started the debounce) by now.
    wait_for_sessions(&s, &token, "alice", 0).await;
    let closed_by = Instant::now();
    let _alice = Client::connect(&s, &alice_jwt).await;
    // Not a frame until well past the debounce of the first close.
    bob.quiet_until(closed_by + DEBOUNCE + Duration::from_millis(500), false).await;
    let status = presence(&s, &token, "alice").await;
    assert_eq!((status["online"].as_bool(), status["sessions"].as_u64()), (Some(true), Some(1)), "{status}");
    s.stop().await;
}

async fn presence_rest_answer_has_the_documented_shape(s: &TestServer) {
    let token = s.new_app().await;
    let _bob = connect(s, &token, "bob").await;
    // docs/protocol.md: {"user_id":"bob","online":true,"sessions":2,"last_seen":null}
    let status = presence(s, &token, "bob").await;
    assert_eq!(status, json!({"user_id":"bob","online":true,"sessions":1,"last_seen":null}));
}

// ---------------------------------------------------------------------------------------------
// hello: catching up

async fn hello_answers_each_chat_and_refuses_outsiders(s: &TestServer) {
    let token = s.new_app().await;
    let chat = chat_with(s, &token, &["alice", "bob", "dave"]).await;
    let quiet = chat_with(s, &token, &["alice", "dave"]).await;
    let theirs = chat_with(s, &token, &["alice", "bob"]).await;
    post(s, &token, quiet, "q1").await;
    let mut alice = connect(s, &token, "alice").await;
    let mut bob = connect(s, &token, "bob").await;

    // What bob saw live is what dave's catch-up must hold, field for field.
    let mut live = Vec::new();
    for n in 1..=5u64 {
        let mut frame = send(n, chat, &format!("m{n}"), &format!("c-{n}"));
        if n == 4 {
            frame["reply_to"] = json!(2);
        }
        assert_eq!(alice.request(frame).await["seq"], n);
        let mut m = bob.next().await;
        if n == 4 {
            // A reply also tells the members about its thread (in either order).
            let (thread, reply) =
                if m["type"] == "thread_updated" { (m, bob.next().await) } else { (bob.next().await, m) };
            assert_eq!(
                (thread["type"].as_str(), thread["seq"].as_u64()),
                (Some("thread_updated"), Some(2)),
                "{thread}"
            );
            m = reply;
        }
        m.as_object_mut().unwrap().remove("type");
        live.push(m);
    }

    let mut dave = connect(s, &token, "dave").await;
    dave.send(json!({"type":"hello","id":"h1","resume":[{"chat":chat,"after":2},{"chat":quiet,"after":1}]}))
        .await;
    let mut pages = BTreeMap::new();
    for _ in 0..2 {
        let page = dave.next().await;
        assert_eq!((page["type"].as_str(), page["id"].as_str()), (Some("messages"), Some("h1")), "{page}");
        pages.insert(page["chat"].as_u64().unwrap(), page);
    }
    assert_eq!(pages[&chat]["items"], json!(live[2..]), "the catch-up holds what was sent live");
    assert_eq!((&pages[&chat]["has_more"], &pages[&chat]["done"]), (&json!(false), &json!(true)));
    assert_eq!(
        pages[&quiet],
        json!({"type":"messages","id":"h1","chat":quiet,"items":[],"has_more":false,"done":true})
    );

    // Live traffic follows.
    assert_eq!(alice.request(send(6, chat, "m6", "c-6")).await["seq"], 6);
    assert_message(&dave.next().await, chat, 6, "m6");

    // A chat dave is not in, and one that does not exist.
    dave.send(json!({"type":"hello","id":"h2","resume":[{"chat":theirs,"after":0}]})).await;
    let refused = dave.next().await;
    assert_error(&refused, &json!("h2"), "not_a_member");
    assert_eq!(refused["chat"], theirs, "the error names the chat: {refused}");
    dave.send(json!({"type":"hello","id":"h3","resume":[{"chat":999,"after":0}]})).await;
    let unknown = dave.next().await;
    assert_error(&unknown, &json!("h3"), "chat_not_found");
    assert_eq!(unknown["chat"], 999, "{unknown}");
    dave.nothing_queued(s, &token).await;
}

async fn hello_ends_each_chat_with_done_or_an_error_naming_it(s: &TestServer) {
    // Messages of 32 KiB: a catch-up frame carries about 512 KiB, so 40 take several.
    const BIG: u64 = 40;
    let token = s.new_app().await;
    let big = chat_with(s, &token, &["alice", "dave"]).await;
    let theirs = chat_with(s, &token, &["alice", "bob"]).await;
    let quiet = chat_with(s, &token, &["alice", "dave"]).await;
    let body = "x".repeat(32 * 1024);
    for _ in 1..=BIG {
        post(s, &token, big, &body).await;
    }
    post(s, &token, quiet, "q1").await;
    let mut dave = connect(s, &token, "dave").await;
    let resume = json!([
        {"chat":big,"after":0},
        {"chat":theirs,"after":0},
        {"chat":999,"after":0},
        {"chat":quiet,"after":0},
    ]);
    dave.send(json!({"type":"hello","id":"h","resume":resume})).await;

    // The big chat: several frames, only the last one `done`.
    let mut frames = Vec::new();
    loop {
        let frame = dave.next().await;
        assert_eq!(
            (frame["type"].as_str(), frame["id"].as_str(), frame["chat"].as_u64()),
            (Some("messages"), Some("h"), Some(big)),
            "{}",
            frame.to_string().chars().take(200).collect::<String>()
        );
        let (has_more, done) = (frame["has_more"].as_bool().unwrap(), frame["done"].as_bool().unwrap());
        frames.push(item_seqs(&frame));
        if done {
            assert!(!has_more, "the whole chat fits resume_max_messages");
            break;
        }
        assert!(has_more, "a frame that does not end the catch-up has more after it");
    }
    assert!(frames.len() > 1, "{} frames", frames.len());
    assert_eq!(frames.concat(), (1..=BIG).collect::<Vec<_>>());

    // The chats that fail end with an error naming them; the next chat goes on.
    let refused = dave.next().await;
    assert_error(&refused, &json!("h"), "not_a_member");
    assert_eq!(refused["chat"], theirs, "{refused}");
    let unknown = dave.next().await;
    assert_error(&unknown, &json!("h"), "chat_not_found");
    assert_eq!(unknown["chat"], 999, "{unknown}");
    let last = dave.next().await;
    assert_eq!(
        (last["chat"].as_u64(), item_seqs(&last), &last["has_more"], &last["done"]),
        (Some(quiet), vec![1], &json!(false), &json!(true)),
        "{last}"
    );
    dave.nothing_queued(s, &token).await;
}

async fn a_message_delivered_live_is_not_repeated_by_the_catch_up(s: &TestServer) {
    // Over a real network a client's hello reaches the server a round trip
    // after the welcome, and live messages sent meanwhile reach the client
    // first. This is that case made deterministic: message 4 arrives live
    // before dave's hello; "a message is either in the catch-up or live,
    // never both" (docs/protocol.md).
    let token = s.new_app().await;
    let chat = chat_with(s, &token, &["alice", "dave"]).await;
    for n in 1..=3 {
        post(s, &token, chat, &format!("m{n}")).await;
    }
    let mut alice = connect(s, &token, "alice").await;
    let mut dave = connect(s, &token, "dave").await;
    assert_eq!(alice.request(send(1, chat, "m4", "m4")).await["seq"], 4);
    assert_message(&dave.next().await, chat, 4, "m4");
    dave.send(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":0}]})).await;
    let page = dave.next().await;
    assert_eq!(
        (page["type"].as_str(), page["has_more"].as_bool()),
        (Some("messages"), Some(false)),
        "{page}"
    );
    assert_eq!(item_seqs(&page), vec![1, 2, 3], "message 4 was already delivered live: {page}");
    dave.nothing_queued(s, &token).await;
}

async fn hello_falls_back_to_the_store_past_the_recent_cache(s: &TestServer) {
    // The recent cache keeps 200 messages per chat by default: 300 are more.
    let token = s.new_app().await;
    let chat = chat_with(s, &token, &["alice"]).await;
    for n in 1..=300 {
        post(s, &token, chat, &format!("m{n}")).await;
    }
    let mut alice = connect(s, &token, "alice").await;
    for (id, after) in [("from-store", 0u64), ("from-cache", 150), ("edge", 100), ("just-before", 99)] {
        alice.send(json!({"type":"hello","id":id,"resume":[{"chat":chat,"after":after}]})).await;
        let page = alice.next().await;
        assert_eq!((page["type"].as_str(), page["id"].as_str()), (Some("messages"), Some(id)), "{page}");
        assert_eq!(item_seqs(&page), (after + 1..=300).collect::<Vec<_>>(), "{id}");
        let bodies: Vec<&str> =
            page["items"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
        let want: Vec<String> = (after + 1..=300).map(|n| format!("m{n}")).collect();
        assert_eq!(bodies, want, "{id}");
        assert_eq!(page["has_more"], false, "{id}");
    }
    alice.nothing_queued(s, &token).await;
}

async fn hello_stops_at_resume_max_messages(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.gateway.resume_max_messages = 50).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice"]).await;
    for n in 1..=120 {
        post(&s, &token, chat, &format!("m{n}")).await;
    }
    let mut alice = connect(&s, &token, "alice").await;
    alice.send(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":0}]})).await;
    let page = alice.next().await;
    assert_eq!((page["type"].as_str(), page["id"].as_str()), (Some("messages"), Some("h")), "{page}");
    assert_eq!(item_seqs(&page), (1..=50).collect::<Vec<_>>());
    assert_eq!(page["has_more"], true, "more than resume_max_messages were missed");
    assert_eq!(page["done"], true, "the chat's catch-up ends here: page on with sync");
    alice.nothing_queued(&s, &token).await;

    // Page on with sync.
    alice.send(json!({"type":"sync","id":"s","chat":chat,"after":50,"limit":500})).await;
    let page = alice.next().await;
    assert_eq!(item_seqs(&page), (51..=120).collect::<Vec<_>>());
    assert_eq!(page["has_more"], false);

    // Under the limit, one page that says so.
    alice.send(json!({"type":"hello","id":"h2","resume":[{"chat":chat,"after":80}]})).await;
    let page = alice.next().await;
    assert_eq!(item_seqs(&page), (81..=120).collect::<Vec<_>>());
    assert_eq!((&page["has_more"], &page["done"]), (&json!(false), &json!(true)));
    s.stop().await;
}

async fn hello_catches_up_while_others_keep_sending(mode: Mode) {
    const WARM: u64 = 20;
    const TOTAL: u64 = 500;
    const RECONNECT_AT: usize = 250;
    let s = TestServer::start_with(mode, |c| {
        // Three users send 500 messages as fast as they are acked.
        common::server::with_raised_rates(c);
        // The whole catch-up fits the recent cache (Redis in cluster mode).
        c.cache.recent_messages = 1_000;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob", "carol", "dave"]).await;
    let dave_jwt = user_token(&s, &token, "dave").await;

    // Dave is online for the first WARM messages, then leaves.
    let mut dave = Client::connect(&s, &dave_jwt).await;
    let mut warm = connect(&s, &token, "alice").await;
    for n in 1..=WARM {
        let ack = warm.request(send(n, chat, &format!("warm-{n}"), &format!("warm-{n}"))).await;
        assert_eq!(ack["seq"], n, "{ack}");
    }
    for n in 1..=WARM {
        assert_message(&dave.next().await, chat, n, &format!("warm-{n}"));
    }
    dave.close().await;
    warm.close().await;
    wait_for_sessions(&s, &token, "dave", 0).await;

    // Three senders on their own sockets.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for (user, count) in [("alice", 167u64), ("bob", 167), ("carol", 166)] {
        senders.push((connect(&s, &token, user).await, user, count));
    }
    let sending = futures::future::join_all(senders.into_iter().map(|(mut client, user, count)| {
        let acked = Arc::clone(&acked);
        async move {
            for i in 1..=count {
                let key = format!("{user}-{i}");
                client.send(send(i, chat, &key, &key)).await;
                let ack = client.answer(&json!(i)).await;
                assert_eq!(ack["type"], "ack", "{user}: {ack}");
                acked.fetch_add(1, Ordering::SeqCst);
            }
            client
        }
    }));

    // Dave comes back half-way and resumes after WARM.
    let resuming = async {
        let acked = &acked;
        wait_until("half of the messages are sent", || async move {
            acked.load(Ordering::SeqCst) >= RECONNECT_AT
        })
        .await;
        let mut dave = Client::connect(&s, &dave_jwt).await;
        dave.send(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":WARM}]})).await;
        let mut catch_up: Vec<Value> = Vec::new();
        let mut pages = Vec::new();
        let mut live: Vec<Value> = Vec::new();
        let mut trace = Vec::new();
        let mut seen = BTreeSet::new();
        let mut duplicates = Vec::new();
        let mut caught_up = false;
        while seen.len() < TOTAL as usize || !caught_up {
            let frame = dave.next_before(Instant::now() + FRAME_WAIT, false).await.unwrap_or_else(|| {
                let missing: Vec<u64> = (WARM + 1..=WARM + TOTAL).filter(|n| !seen.contains(n)).collect();
                panic!(
                    "dave stalled with {} of {TOTAL} messages (caught up: {caught_up}); missing {missing:?}; first frames: {:?}",
                    seen.len(),
                    &trace[..trace.len().min(12)]
                )
            });
            match frame["type"].as_str() {
                Some("messages") => {
                    assert_eq!(
                        (frame["id"].as_str(), frame["chat"].as_u64()),
                        (Some("h"), Some(chat)),
                        "{frame}"
                    );
                    assert!(!caught_up, "a messages frame after the last page: {frame}");
                    let seqs = item_seqs(&frame);
                    trace.push(format!(
                        "messages[{}..={}] has_more={}",
                        seqs.first().unwrap_or(&0),
                        seqs.last().unwrap_or(&0),
                        frame["has_more"]
                    ));
                    pages.push(seqs.len());
                    caught_up = frame["done"] == true;
                    assert_eq!(frame["has_more"], !caught_up, "{frame}");
                    for item in frame["items"].as_array().unwrap() {
                        let seq = item["seq"].as_u64().unwrap();
                        if !seen.insert(seq) {
                            duplicates.push(format!("{seq} (catch-up)"));
                        }
                        catch_up.push(item.clone());
                    }
                }
                Some("message") => {
                    assert_eq!(frame["chat"], chat, "{frame}");
                    let seq = frame["seq"].as_u64().unwrap();
                    trace.push(format!(
                        "message {seq}{}",
                        if caught_up { "" } else { " (before the catch-up ended)" }
                    ));
                    if !seen.insert(seq) {
                        duplicates.push(format!("{seq} (live)"));
                    }
                    live.push(frame);
                }
                _ => panic!("unexpected frame {frame}"),
            }
        }
        (dave, catch_up, pages, live, trace, duplicates)
    };
    let (senders, (mut dave, catch_up, pages, live, trace, duplicates)) = tokio::join!(sending, resuming);

    // A late copy would show now.
    dave.nothing().await;
    assert!(
        duplicates.is_empty(),
        "dave got duplicates {duplicates:?}; his first frames: {:?}",
        &trace[..trace.len().min(12)]
    );

    let catch_up_seqs: Vec<u64> = catch_up.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert!(
        catch_up_seqs.windows(2).all(|w| w[0] < w[1]),
        "the catch-up is not strictly ascending: {catch_up_seqs:?}"
    );
    assert!(
        catch_up_seqs.first().is_some_and(|first| *first == WARM + 1),
        "the catch-up starts after WARM: {catch_up_seqs:?}"
    );
    assert!(pages.iter().all(|n| *n <= 500), "pages hold at most 500 items: {pages:?}");

    // Everything after WARM, exactly once, as the store has it.
    let stored = history(&s, &token, chat, WARM).await;
    assert_eq!(stored.keys().copied().collect::<Vec<_>>(), (WARM + 1..=WARM + TOTAL).collect::<Vec<_>>());
    let mut got = BTreeMap::new();
    for m in catch_up.iter().chain(live.iter()) {
        got.insert(m["seq"].as_u64().unwrap(), (m["sender"].clone(), m["body"].as_str().unwrap().to_owned()));
    }
    assert_eq!(got, stored, "the catch-up and the live messages together are the chat's history");
    for (sender, body) in got.values() {
        assert!(body.starts_with(sender.as_str().unwrap()), "{sender} {body}");
    }
    for client in senders {
        client.close().await;
    }
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// applications are isolated

async fn another_applications_chats_stay_invisible(s: &TestServer) {
    let app_a = s.new_app().await;
    let app_b = s.new_app().await;
    // A has chats 1..=3, alice in all of them, a secret in 3.
    for _ in 0..3 {
        let chat = s.new_chat(&app_a).await;
        common::ws::join(s, &app_a, chat, "alice").await;
    }
    post(s, &app_a, 3, "secret of A").await;
    post(s, &app_a, 1, "also A's").await;
    // B has chat 1 (bob only) and chat 2 (alice and bob).
    let b1 = chat_with(s, &app_b, &["bob"]).await;
    let b2 = chat_with(s, &app_b, &["alice", "bob"]).await;
    assert_eq!((b1, b2), (1, 2));

    let mut alice_a = connect(s, &app_a, "alice").await;
    let mut alice_b = connect(s, &app_b, "alice").await;
    let mut bob_b = connect(s, &app_b, "bob").await;

    // Chat 3 exists only in A: not found in B, whatever the frame.
    let not_found = [
        json!({"type":"sync","id":1,"chat":3,"after":0}),
        json!({"type":"hello","id":2,"resume":[{"chat":3,"after":0}]}),
        send(3, 3, "sneak", "s-3"),
        json!({"type":"read","id":4,"chat":3,"seq":1}),
        json!({"type":"delivered","id":5,"chat":3,"seq":1}),
        json!({"type":"typing","id":6,"chat":3}),
    ];
    for frame in not_found {
        let id = frame["id"].clone();
        assert_error(&alice_b.request(frame).await, &id, "chat_not_found");
    }
    // Chat 1 exists in both; alice of B is not in B's.
    let forbidden = [
        json!({"type":"sync","id":7,"chat":1,"after":0}),
        json!({"type":"hello","id":8,"resume":[{"chat":1,"after":0}]}),
        send(9, 1, "sneak", "s-9"),
        json!({"type":"read","id":10,"chat":1,"seq":1}),
    ];
    for frame in forbidden {
        let id = frame["id"].clone();
        assert_error(&alice_b.request(frame).await, &id, "not_a_member");
    }
    // Where alice of B is a member, she sees B's messages only.
    alice_b.send(json!({"type":"sync","id":"b2","chat":b2,"after":0})).await;
    assert_eq!(
        alice_b.next().await,
        json!({"type":"messages","id":"b2","chat":b2,"items":[],"has_more":false})
    );

    // Live traffic stays in its application though the user ids are the same.
    let ack = bob_b.request(send(1, b2, "for alice of B", "b-1")).await;
    assert_eq!(ack["chat"], b2);
    assert_message(&alice_b.next().await, b2, 1, "for alice of B");
    let seq = post(s, &app_a, 2, "for alice of A").await;
    assert_message(&alice_a.next().await, 2, seq, "for alice of A");
    alice_a.nothing_queued(s, &app_a).await;
    alice_b.nothing_queued(s, &app_b).await;
}
