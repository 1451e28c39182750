//! Per-node session caps per user (`gateway.max_sessions_per_user`) and per
//! application (`gateway.max_sessions_per_app`): the session past a cap is
//! upgraded and closed with 4102, naming the cap, while other users and
//! other applications still connect.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::server::{Mode, TestServer};
use common::ws::{Client, FRAME_WAIT, Socket, assert_message, chat_with, connect, open, send, user_token};
use futures::StreamExt as _;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

on_both_modes_configured!(
    a_user_past_its_cap_is_closed_with_4102_and_others_connect,
    an_application_past_its_cap_is_closed_with_4102_and_other_applications_connect,
);

/// What a socket got first: a welcome, or a close with its code and reason.
#[derive(Debug)]
enum First {
    Welcome,
    Closed(u16, String),
}

async fn first(ws: &mut Socket) -> First {
    let msg = tokio::time::timeout(FRAME_WAIT, ws.next()).await.expect("nothing within 10 s");
    match msg {
        Some(Ok(Ws::Text(text))) if text.contains("\"welcome\"") => First::Welcome,
        Some(Ok(Ws::Close(Some(frame)))) => First::Closed(u16::from(frame.code), frame.reason.to_string()),
        other => panic!("expected a welcome or a close, got {other:?}"),
    }
}

/// Opens sockets until one is welcomed (a closed session's slot is freed a moment after its close).
async fn welcomed_soon(s: &TestServer, jwt: &str) -> Socket {
    let deadline = Instant::now() + FRAME_WAIT;
    loop {
        let mut ws = open(s, jwt).await;
        match first(&mut ws).await {
            First::Welcome => return ws,
            First::Closed(4102, _) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("the freed slot was never taken again: {other:?}"),
        }
    }
}

async fn a_user_past_its_cap_is_closed_with_4102_and_others_connect(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.gateway.max_sessions_per_user = 3).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let alice = user_token(&s, &token, "alice").await;

    // A burst of connects: exactly the cap is welcomed, whatever the interleaving.
    let opened = futures::future::join_all((0..10).map(|_| async {
        let mut ws = open(&s, &alice).await;
        let first = first(&mut ws).await;
        (ws, first)
    }))
    .await;
    let (mut kept, mut refused) = (Vec::new(), 0);
    for (ws, first) in opened {
        match first {
            First::Welcome => kept.push(ws),
            First::Closed(code, reason) => {
                assert_eq!(code, 4102, "{reason}");
                assert!(reason.contains("user"), "the reason names the cap: {reason}");
                refused += 1;
            }
        }
    }
    assert_eq!((kept.len(), refused), (3, 7));

    // Another user of the same application connects, and alice's sessions work.
    let mut bob = connect(&s, &token, "bob").await;
    let mut phone = Client { ws: kept.pop().unwrap(), welcome: serde_json::Value::Null };
    assert_eq!(phone.request(send(1, chat, "hi", "c-1")).await["type"], "ack");
    assert_message(&bob.next().await, chat, 1, "hi");

    // A closed session frees its place.
    phone.close().await;
    let _again = welcomed_soon(&s, &alice).await;
    s.stop().await;
}

async fn an_application_past_its_cap_is_closed_with_4102_and_other_applications_connect(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.gateway.max_sessions_per_app = 3).await;
    let (busy, other) = (s.new_app().await, s.new_app().await);
    let mut held = Vec::new();
    for user in ["a1", "a2", "a3"] {
        held.push(connect(&s, &busy, user).await);
    }
    let a4 = user_token(&s, &busy, "a4").await;
    let mut ws = open(&s, &a4).await;
    match first(&mut ws).await {
        First::Closed(4102, reason) => assert!(reason.contains("application"), "{reason}"),
        got => panic!("expected 4102, got {got:?}"),
    }

    // Another application's users connect.
    let chat = chat_with(&s, &other, &["b1", "b2"]).await;
    let mut b1 = connect(&s, &other, "b1").await;
    let mut b2 = connect(&s, &other, "b2").await;
    assert_eq!(b1.request(send(1, chat, "hi", "c-1")).await["type"], "ack");
    assert_message(&b2.next().await, chat, 1, "hi");

    // One of the busy application's sessions closes: a4 gets its place.
    held.pop().unwrap().close().await;
    let _a4 = welcomed_soon(&s, &a4).await;
    s.stop().await;
}
