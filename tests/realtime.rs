//! Real-time delivery over real WebSockets (tokio-tungstenite clients), on the
//! embedded default and on Cassandra + Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::server::{Mode, TestServer};
use common::ws::{Client, join, user_token};
use futures::StreamExt as _;
use serde_json::json;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message as Ws;

on_every_mode!(
    messages_reach_every_member_device_but_the_sending_one,
    bad_frames_get_error_codes_and_the_session_survives,
    sync_pages_history_oldest_first,
);

async fn messages_reach_every_member_device_but_the_sending_one(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    for user in ["alice", "bob"] {
        join(s, &token, chat, user).await;
    }
    let (alice_jwt, bob_jwt, carol_jwt) = (
        user_token(s, &token, "alice").await,
        user_token(s, &token, "bob").await,
        user_token(s, &token, "carol").await,
    );
    let mut phone = Client::connect(s, &alice_jwt).await;
    let mut laptop = Client::connect(s, &alice_jwt).await;
    let mut bob = Client::connect(s, &bob_jwt).await;
    let mut carol = Client::connect(s, &carol_jwt).await;

    phone.send(json!({"type":"send","id":1,"chat":chat,"body":"hi","client_msg_id":"m-1"})).await;
    let ack = phone.next().await;
    assert_eq!(ack, json!({"type":"ack","id":1,"chat":chat,"seq":1}));
    for device in [&mut laptop, &mut bob] {
        let m = device.next().await;
        assert_eq!((m["type"].as_str(), m["seq"].as_u64()), (Some("message"), Some(1)), "{m}");
        assert_eq!((m["sender"].as_str(), m["body"].as_str()), (Some("alice"), Some("hi")));
        assert_eq!(m["client_msg_id"], "m-1");
    }

    // A retry with the same client_msg_id gets the first ack and delivers nothing.
    phone.send(json!({"type":"send","id":2,"chat":chat,"body":"hi","client_msg_id":"m-1"})).await;
    assert_eq!(phone.next().await, json!({"type":"ack","id":2,"chat":chat,"seq":1}));
    bob.send(json!({"type":"send","id":"b","chat":chat,"body":"yo","client_msg_id":"m-1"})).await;
    assert_eq!(bob.next().await["seq"], 2, "keys are per sender");
    assert_eq!(laptop.next().await["seq"], 2, "the retry was not delivered again");
    assert_eq!(phone.next().await["seq"], 2);

    // A REST post reaches the sessions too.
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    assert_eq!(s.post(&path, json!({"body": "from the backend"})).await.0, 201);
    for device in [&mut phone, &mut laptop, &mut bob] {
        assert_eq!(device.next().await["body"], "from the backend");
    }
    carol.nothing_queued(s, &token).await;
    phone.nothing_queued(s, &token).await;
}

async fn bad_frames_get_error_codes_and_the_session_survives(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    join(s, &token, chat, "alice").await;
    let mut alice = Client::connect(s, &user_token(s, &token, "alice").await).await;
    let mut mallory = Client::connect(s, &user_token(s, &token, "mallory").await).await;

    let cases = [
        (Ws::text("{not json"), "malformed_json"),
        (Ws::text("[1]"), "invalid_frame"),
        (Ws::text(r#"{"type":"dance","id":3}"#), "unknown_type"),
        (Ws::text(r#"{"type":"send","id":4,"chat":"x","body":"b","client_msg_id":"c"}"#), "invalid_frame"),
        (Ws::text(r#"{"type":"send","id":5,"chat":1,"body":"b"}"#), "invalid_frame"),
        (Ws::text(r#"{"type":"send","id":6,"chat":999,"body":"b","client_msg_id":"c"}"#), "chat_not_found"),
        (Ws::binary(vec![1u8, 2, 3]), "binary_not_supported"),
    ];
    for (frame, code) in cases {
        alice.send_raw(frame).await;
        let err = alice.next().await;
        assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some(code)), "{err}");
    }
    mallory.send(json!({"type":"send","id":"m","chat":chat,"body":"let me in","client_msg_id":"x"})).await;
    let err = mallory.next().await;
    assert_eq!((err["code"].as_str(), err["id"].as_str()), (Some("not_a_member"), Some("m")), "{err}");
    mallory.send(json!({"type":"sync","id":"s","chat":chat,"after":0})).await;
    assert_eq!(mallory.next().await["code"], "not_a_member");

    // Still connected, still working.
    alice.send(json!({"type":"send","id":9,"chat":chat,"body":"fine","client_msg_id":"ok"})).await;
    assert_eq!(alice.next().await["type"], "ack");

    // Unauthenticated upgrades are refused before the handshake.
    let base = s.base.replace("http://", "ws://");
    for url in [format!("{base}/ws"), format!("{base}/ws?token=garbage")] {
        match connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
            other => panic!("expected a 401, got {other:?}"),
        }
    }
}

async fn sync_pages_history_oldest_first(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    join(s, &token, chat, "alice").await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    for n in 1..=7 {
        assert_eq!(s.post(&path, json!({"body": format!("m{n}")})).await.0, 201);
    }
    let mut alice = Client::connect(s, &user_token(s, &token, "alice").await).await;
    alice.send(json!({"type":"sync","id":"p1","chat":chat,"after":2,"limit":3})).await;
    let page = alice.next().await;
    assert_eq!((page["type"].as_str(), page["id"].as_str()), (Some("messages"), Some("p1")));
    let seqs: Vec<u64> =
        page["items"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![3, 4, 5]);
    assert_eq!(page["has_more"], true);
    alice.send(json!({"type":"sync","id":"p2","chat":chat,"after":5})).await;
    let page = alice.next().await;
    let seqs: Vec<u64> =
        page["items"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![6, 7]);
    assert_eq!(page["has_more"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_while_a_fast_one_gets_everything() {
    let s = TestServer::start_with(Mode::Embedded, |c| c.gateway.outbox_frames = 8).await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    for user in ["fast", "slow"] {
        join(&s, &token, chat, user).await;
    }
    let mut fast = Client::connect(&s, &user_token(&s, &token, "fast").await).await;
    let mut slow = Client::connect(&s, &user_token(&s, &token, "slow").await).await;

    // ~12 MB the slow client never reads: more than the socket buffers hold.
    const COUNT: u64 = 400;
    let body = "x".repeat(30_000);
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    let reader = tokio::spawn(async move {
        for n in 1..=COUNT {
            assert_eq!(fast.next().await["seq"], n, "the fast client missed a message");
        }
    });
    for _ in 0..COUNT {
        assert_eq!(s.post(&path, json!({"body": body})).await.0, 201);
    }
    reader.await.unwrap();

    // The slow client gets what was buffered, then close code 4200 — or, when
    // its buffers were too full to take even the close frame, a reset. Either
    // way it was cut off: it never got all the messages.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut received = 0u64;
    loop {
        let msg =
            tokio::time::timeout_at(deadline, slow.ws.next()).await.expect("the slow client was not cut off");
        match msg {
            Some(Ok(Ws::Text(_))) => received += 1,
            Some(Ok(Ws::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 4200);
                break;
            }
            Some(Err(tokio_tungstenite::tungstenite::Error::Protocol(_))) | None => break,
            other => panic!("expected frames then a 4200 close, got {other:?}"),
        }
    }
    assert!(received < COUNT, "the slow client got all {COUNT} messages: it was never cut off");
    s.stop().await;
}
