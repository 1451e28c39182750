//! Real-time delivery over real WebSockets (tokio-tungstenite clients), on the
//! embedded default and on Cassandra + Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::server::{Mode, TestServer};
use common::ws::{Client, assert_error, item_seqs, join, user_token};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message as Ws;

on_every_mode!(
    messages_reach_every_member_device_but_the_sending_one,
    bad_frames_get_error_codes_and_the_session_survives,
    sync_pages_history_oldest_first,
    sync_reads_backward_as_the_rest_history_does,
    sync_refuses_a_bad_direction_and_outsiders,
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

async fn sync_reads_backward_as_the_rest_history_does(s: &TestServer) {
    // More than the recent cache keeps (200 by default): the newest pages can
    // come from the cache, the older ones and the long ones from the store.
    const TOTAL: u64 = 230;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    join(s, &token, chat, "alice").await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    for n in 1..=TOTAL {
        assert_eq!(s.post(&path, json!({"body": format!("m{n}")})).await.0, 201);
    }
    // A tombstone is a message of the history, as over REST.
    assert_eq!(s.send(s.http.delete(s.url(&format!("{path}/225")))).await.0, 204);
    let mut alice = Client::connect(s, &user_token(s, &token, "alice").await).await;

    let cases = [
        (json!({"latest":true,"limit":10}), "per_page=10", (221..=230).collect::<Vec<u64>>()),
        (json!({"latest":true}), "per_page=100", (131..=230).collect()),
        (json!({"latest":true,"limit":500}), "per_page=500", (1..=230).collect()),
        (json!({"before":120,"limit":50}), "before=120&per_page=50", (70..=119).collect()),
        (json!({"before":5,"limit":50}), "before=5&per_page=50", (1..=4).collect()),
        (json!({"before":1}), "before=1&per_page=100", Vec::new()),
        (json!({"before":10_000,"limit":3}), "before=10000&per_page=3", vec![228, 229, 230]),
    ];
    for (n, (mut frame, query, want)) in cases.into_iter().enumerate() {
        frame["type"] = json!("sync");
        frame["id"] = json!(n);
        frame["chat"] = json!(chat);
        let page = alice.request(frame.clone()).await;
        assert_eq!((page["type"].as_str(), page["chat"].as_u64()), (Some("messages"), Some(chat)), "{page}");
        assert_eq!(item_seqs(&page), want, "{frame}: oldest first");
        assert_eq!(
            page["has_more"],
            want.first().is_some_and(|&oldest| oldest > 1),
            "{frame}: older ones exist"
        );
        // The same messages as the REST history, which lists them newest first.
        let (status, rest) = s.get(&format!("{path}?{query}")).await;
        assert_eq!(status, 200, "{rest}");
        let rest: Vec<(u64, Value)> = rest
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|m| (m["number"].as_u64().unwrap(), m["body"].clone()))
            .collect();
        let ws: Vec<(u64, Value)> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["seq"].as_u64().unwrap(), m["body"].clone()))
            .collect();
        assert_eq!(ws, rest, "{frame} against ?{query}");
    }
    let newest = alice.request(json!({"type":"sync","id":"t","chat":chat,"latest":true,"limit":10})).await;
    let tombstone = &newest["items"][4];
    assert_eq!((tombstone["seq"].as_u64(), &tombstone["deleted"]), (Some(225), &json!(true)), "{tombstone}");

    // Scrolling up from the newest to the first message: each once, and
    // `has_more` false exactly on the page that reaches message 1.
    let mut seen: Vec<u64> = Vec::new();
    let mut frame = json!({"type":"sync","id":"up","chat":chat,"latest":true,"limit":64});
    loop {
        let page = alice.request(frame.clone()).await;
        let seqs = item_seqs(&page);
        seen.splice(0..0, seqs.iter().copied());
        if page["has_more"] == false {
            break;
        }
        frame = json!({"type":"sync","id":"up","chat":chat,"before":seqs[0],"limit":64});
    }
    assert_eq!(seen, (1..=TOTAL).collect::<Vec<_>>());
}

async fn sync_refuses_a_bad_direction_and_outsiders(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    join(s, &token, chat, "alice").await;
    let mut alice = Client::connect(s, &user_token(s, &token, "alice").await).await;
    let mut mallory = Client::connect(s, &user_token(s, &token, "mallory").await).await;
    let bad = [
        json!({"type":"sync","id":1,"chat":chat}),
        json!({"type":"sync","id":2,"chat":chat,"after":3,"before":9}),
        json!({"type":"sync","id":3,"chat":chat,"before":9,"latest":true}),
        json!({"type":"sync","id":4,"chat":chat,"latest":false}),
        json!({"type":"sync","id":5,"chat":chat,"before":0}),
        json!({"type":"sync","id":6,"chat":chat,"before":9,"limit":501}),
        json!({"type":"sync","id":7,"chat":chat,"latest":true,"limit":0}),
    ];
    for frame in bad {
        let answer = alice.request(frame.clone()).await;
        assert_error(&answer, &frame["id"], "invalid_frame");
    }
    for from in [json!({"latest":true}), json!({"before":5}), json!({"after":0})] {
        let mut frame = from.clone();
        frame["type"] = json!("sync");
        frame["id"] = json!("m");
        frame["chat"] = json!(chat);
        assert_error(&mallory.request(frame.clone()).await, &json!("m"), "not_a_member");
        frame["chat"] = json!(999);
        assert_error(&alice.request(frame).await, &json!("m"), "chat_not_found");
    }
    // Still connected, still answered.
    let page = alice.request(json!({"type":"sync","id":"ok","chat":chat,"latest":true})).await;
    assert_eq!(
        (page["items"].as_array().map(Vec::len), &page["has_more"]),
        (Some(0), &json!(false)),
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_while_a_fast_one_gets_everything() {
    // Both ways a frame reaches a socket: queued, and written by the fan-out.
    for direct_writes in [false, true] {
        slow_consumer_is_cut_off(direct_writes).await;
    }
}

async fn slow_consumer_is_cut_off(direct_writes: bool) {
    let s = TestServer::start_with(Mode::Embedded, |c| {
        c.gateway.outbox_frames = 8;
        c.gateway.direct_writes = direct_writes;
    })
    .await;
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
            // The heartbeat, if the cut-off came after it.
            Some(Ok(Ws::Ping(_))) => {}
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
