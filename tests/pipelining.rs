//! Pipelined sends over real WebSockets (`docs/protocol.md`, "Sends may be
//! pipelined"), on one node (embedded store, then Cassandra + Redis) and on
//! three nodes with the clients spread over them: a client that sends without
//! waiting for acks gets every send numbered, delivered and answered in the
//! order it sent them, each acked only once persisted; sends in flight when
//! the client goes away are still delivered, once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::server::{Mode, TestServer};
use common::ws::{Client, chat_with, connect, history, send};
use serde_json::Value;

on_all_modes_configured!(
    pipelined_sends_are_numbered_delivered_and_answered_in_order,
    a_small_window_still_takes_every_send_in_order,
    sends_in_flight_when_the_client_leaves_are_delivered_once,
);

/// Sends per scenario: several times the default window of 64.
const SENDS: u64 = 300;

fn pipelining(c: &mut weft::config::Config) {
    common::server::with_raised_rates(c);
    c.gateway.outbox_frames = 4096;
    // The refused sends of the first scenario are strikes.
    c.gateway.max_bad_frames = 10_000;
    // Fan-outs write to idle sockets themselves where they may: the order
    // checked here must hold across both ways a frame reaches a socket.
    c.gateway.direct_writes = true;
}

/// A chat of alice and bob, both connected, and alice's [`SENDS`] sends
/// `m1`, `m2`, … (`client_msg_id` `c1`, `c2`, …) written without waiting.
async fn alice_pipelines_to_bob(s: &TestServer, token: &str) -> (u64, Client, Client) {
    let chat = chat_with(s, token, &["alice", "bob"]).await;
    let mut alice = connect(s, token, "alice").await;
    let bob = connect(s, token, "bob").await;
    for n in 1..=SENDS {
        alice.send(send(n, chat, &format!("m{n}"), &format!("c{n}"))).await;
    }
    (chat, alice, bob)
}

/// Reads `client` until it has `answers` answers (acks or errors); returns
/// them in the order they came, and the messages of `chat` it got meanwhile.
async fn collect(client: &mut Client, chat: u64, answers: usize) -> (Vec<Value>, Vec<Value>) {
    let (mut got, mut messages) = (Vec::new(), Vec::new());
    while got.len() < answers {
        let frame = client.next().await;
        match frame["type"].as_str() {
            Some("ack" | "error") => got.push(frame),
            Some("message") if frame["chat"] == chat => messages.push(frame),
            _ => panic!("unexpected {frame}"),
        }
    }
    (got, messages)
}

/// Reads `client` until it has `count` messages of `chat`, and nothing else.
async fn messages_of(client: &mut Client, chat: u64, count: usize) -> Vec<Value> {
    let mut messages = Vec::new();
    while messages.len() < count {
        let frame = client.next().await;
        assert_eq!(frame["type"], "message", "expected messages only, got {frame}");
        assert_eq!(frame["chat"], chat);
        messages.push(frame);
    }
    messages
}

/// Every answer in request order; every ack's number above the one before;
/// bob gets alice's messages in that order; history agrees. Every fifth send
/// goes to a chat alice is not in, so errors come back between the acks.
async fn pipelined_sends_are_numbered_delivered_and_answered_in_order(mode: Mode) {
    let s = TestServer::start_with(mode, pipelining).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let theirs = chat_with(&s, &token, &["carol"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    for n in 1..=SENDS {
        let to = if n % 5 == 0 { theirs } else { chat };
        alice.send(send(n, to, &format!("m{n}"), &format!("c{n}"))).await;
    }
    let (answers, _) = collect(&mut alice, chat, SENDS as usize).await;
    let ids: Vec<u64> = answers.iter().map(|a| a["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, (1..=SENDS).collect::<Vec<_>>(), "answers in request order");
    let mut acked = Vec::new();
    for (n, answer) in (1..=SENDS).zip(&answers) {
        if n % 5 == 0 {
            assert_eq!(answer["type"], "error", "{answer}");
            assert_eq!(answer["code"], "not_a_member", "{answer}");
        } else {
            assert_eq!(answer["type"], "ack", "{answer}");
            assert_eq!(answer["chat"], chat);
            acked.push((answer["seq"].as_u64().unwrap(), format!("m{n}")));
        }
    }
    assert!(acked.windows(2).all(|w| w[0].0 < w[1].0), "numbers follow the send order: {acked:?}");
    let delivered = messages_of(&mut bob, chat, acked.len()).await;
    let seen: Vec<(u64, String)> = delivered
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(seen, acked, "bob gets alice's messages in the order she sent them");
    let stored: Vec<(u64, String)> =
        history(&s, &token, chat, 0).await.into_iter().map(|(seq, (_, body))| (seq, body)).collect();
    assert_eq!(stored, acked, "history holds each acked message under its acked number");
    s.stop().await;
}

/// A window of two: the session stops reading while two sends are in
/// flight, and every send still gets through, in order.
async fn a_small_window_still_takes_every_send_in_order(mode: Mode) {
    let s = TestServer::start_with(mode, |c| {
        pipelining(c);
        c.gateway.max_inflight_sends = 2;
    })
    .await;
    let token = s.new_app().await;
    let (chat, mut alice, mut bob) = alice_pipelines_to_bob(&s, &token).await;
    let (answers, _) = collect(&mut alice, chat, SENDS as usize).await;
    let seqs: Vec<u64> = answers.iter().map(|a| a["seq"].as_u64().expect("an ack")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let delivered = messages_of(&mut bob, chat, SENDS as usize).await;
    let bodies: Vec<&str> = delivered.iter().map(|m| m["body"].as_str().unwrap()).collect();
    let sent: Vec<String> = (1..=SENDS).map(|n| format!("m{n}")).collect();
    assert_eq!(bodies, sent);
    s.stop().await;
}

/// Alice pipelines her sends and hangs up without reading an ack. Whatever
/// her session had numbered is persisted and delivered; she reconnects and
/// sends the same `client_msg_id`s again: each is acked, those that were
/// in flight with their first number; bob gets every message exactly once.
async fn sends_in_flight_when_the_client_leaves_are_delivered_once(mode: Mode) {
    let s = TestServer::start_with(mode, pipelining).await;
    let token = s.new_app().await;
    let (chat, alice, mut bob) = alice_pipelines_to_bob(&s, &token).await;
    drop(alice);
    let mut alice = connect(&s, &token, "alice").await;
    for n in 1..=SENDS {
        alice.send(send(n, chat, &format!("m{n}"), &format!("c{n}"))).await;
    }
    let (answers, _) = collect(&mut alice, chat, SENDS as usize).await;
    let mut acked = BTreeMap::new();
    for (n, answer) in (1..=SENDS).zip(&answers) {
        assert_eq!(answer["type"], "ack", "{answer}");
        assert_eq!(answer["id"], n);
        acked.insert(answer["seq"].as_u64().unwrap(), format!("m{n}"));
    }
    assert_eq!(acked.len() as u64, SENDS, "one number per client_msg_id");
    let delivered = messages_of(&mut bob, chat, SENDS as usize).await;
    let mut seen = BTreeMap::new();
    for m in &delivered {
        let seq = m["seq"].as_u64().unwrap();
        let body = m["body"].as_str().unwrap().to_owned();
        assert!(seen.insert(seq, body).is_none(), "message {seq} delivered twice");
    }
    assert_eq!(seen, acked, "bob gets every acked message, once");
    bob.nothing().await;
    let stored: BTreeMap<u64, String> =
        history(&s, &token, chat, 0).await.into_iter().map(|(seq, (_, body))| (seq, body)).collect();
    assert_eq!(stored, acked);
    s.stop().await;
}
