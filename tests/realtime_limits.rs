//! The limits and heartbeats of `docs/protocol.md` over real WebSockets, on the
//! embedded default and on Cassandra + Redis: the per-user send rate, the
//! per-session frame budget, flooding, pings and the idle timeout, the
//! connection limit, oversized frames and text that is not UTF-8. Each
//! scenario shortens the limit it checks, so each starts its own server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::server::{Mode, TestServer};
use common::ws::{
    Client, FRAME_WAIT, assert_error, assert_message, chat_with, close_code, connect, history, open, send,
    user_token, wait_for_sessions,
};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::io::AsyncReadExt as _;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

on_both_modes_configured!(
    sends_past_the_burst_are_rate_limited,
    a_flooding_client_is_closed_with_4100,
    quiet_clients_are_pinged_and_silent_ones_closed_with_4201,
    past_max_connections_a_socket_is_closed_with_4101,
    an_oversized_frame_gets_frame_too_large_then_1009,
    a_sender_that_reads_is_not_cut_off_while_its_sends_commit,
    a_sender_that_waits_retry_after_ms_is_never_cut_off,
    a_sender_that_ignores_retry_after_ms_is_closed_with_4100,
    a_typing_flood_is_closed_with_4100_while_others_are_served,
    a_text_frame_that_is_not_utf8_is_closed_with_1007,
);

/// A session keeps delivering live traffic while its own sends commit: a
/// client that pipelines sends into a busy chat and reads at once is never
/// mistaken for a slow consumer, even with an outbox that holds only twice
/// what one session may have in flight.
async fn a_sender_that_reads_is_not_cut_off_while_its_sends_commit(mode: Mode) {
    let s = TestServer::start_with(mode, |c| {
        c.gateway.outbox_frames = 8;
        c.gateway.max_inflight_sends = 4;
        c.gateway.send_rate_per_sec = 10_000;
        c.gateway.send_burst = 10_000;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    const EACH: u64 = 60;
    // Both pipeline every send at once; each one's outbox fills with the other's messages.
    for n in 1..=EACH {
        alice.send(send(n, chat, &format!("a{n}"), &format!("a{n}"))).await;
        bob.send(send(n, chat, &format!("b{n}"), &format!("b{n}"))).await;
    }
    for client in [&mut alice, &mut bob] {
        let (mut acks, mut messages) = (0, 0);
        while acks < EACH || messages < EACH {
            let frame = client.next().await;
            match frame["type"].as_str() {
                Some("ack") => acks += 1,
                Some("message") => messages += 1,
                _ => panic!("unexpected {frame}"),
            }
        }
    }
    s.stop().await;
}

async fn sends_past_the_burst_are_rate_limited(mode: Mode) {
    let s = TestServer::start_with(mode, |c| {
        c.gateway.send_rate_per_sec = 1;
        c.gateway.send_burst = 3;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let alice_jwt = user_token(&s, &token, "alice").await;
    let mut phone = Client::connect(&s, &alice_jwt).await;
    let mut laptop = Client::connect(&s, &alice_jwt).await;
    let mut bob = connect(&s, &token, "bob").await;

    for n in 1..=4u64 {
        phone.send(send(n, chat, &format!("m{n}"), &format!("m{n}"))).await;
    }
    for n in 1..=3u64 {
        assert_eq!(phone.answer(&json!(n)).await, json!({"type":"ack","id":n,"chat":chat,"seq":n}));
    }
    let limited = phone.answer(&json!(4)).await;
    assert_error(&limited, &json!(4), "rate_limited");
    assert!(limited["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{limited}");
    // The bucket is the user's, across sessions; other users have their own.
    for n in 1..=3u64 {
        assert_message(&laptop.next().await, chat, n, &format!("m{n}"));
        assert_message(&bob.next().await, chat, n, &format!("m{n}"));
    }
    let limited = laptop.request(send(5, chat, "m5", "m5")).await;
    assert_error(&limited, &json!(5), "rate_limited");
    let ack = bob.request(send(1, chat, "bob's", "b1")).await;
    assert_eq!(ack, json!({"type":"ack","id":1,"chat":chat,"seq":4}));
    assert_message(&phone.next().await, chat, 4, "bob's");

    // The connection stays open: retrying as told succeeds, and the refused
    // send was not stored (its retry is new, not a duplicate).
    let deadline = Instant::now() + FRAME_WAIT;
    let retried = loop {
        let answer = phone.request(send(6, chat, "m4", "m4")).await;
        if answer["type"] == "ack" {
            break answer;
        }
        assert_error(&answer, &json!(6), "rate_limited");
        assert!(Instant::now() < deadline, "still rate limited after 10 s");
        tokio::time::sleep(Duration::from_millis(answer["retry_after_ms"].as_u64().unwrap())).await;
    };
    assert_eq!(retried, json!({"type":"ack","id":6,"chat":chat,"seq":5}));
    let stored = history(&s, &token, chat, 0).await;
    let bodies: Vec<&str> = stored.values().map(|(_, b)| b.as_str()).collect();
    assert_eq!(bodies, ["m1", "m2", "m3", "bob's", "m4"]);
    s.stop().await;
}

async fn a_flooding_client_is_closed_with_4100(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.gateway.max_bad_frames = 5).await;
    let token = s.new_app().await;
    let mut mallory = connect(&s, &token, "mallory").await;
    let mut alice = connect(&s, &token, "alice").await;
    for _ in 0..10 {
        // The server may hang up before the last ones are written.
        if mallory.ws.send(Ws::text("{garbage")).await.is_err() {
            break;
        }
    }
    let (code, before) = mallory.close_code().await;
    assert_eq!(code, 4100, "frames before the close: {before:?}");
    assert!((5..=6).contains(&before.len()), "max_bad_frames error answers, then the close: {before:?}");
    assert!(before.iter().all(|f| f["code"] == "malformed_json"), "{before:?}");
    // Other sessions go on.
    let chat = chat_with(&s, &token, &["alice"]).await;
    assert_eq!(alice.request(send(1, chat, "fine", "f")).await["type"], "ack");
    s.stop().await;
}

/// What a client that never answers pings reads from its TCP socket: the
/// server's (unmasked) frames as (opcode, payload), until the server hangs up.
async fn raw_frames_until_eof(client: &mut Client) -> Vec<(u8, Vec<u8>)> {
    let mut bytes = Vec::new();
    let stream = client.ws.get_mut();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(FRAME_WAIT, read).await.expect("the server never hung up on a silent client");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let (len, header) = match rest[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => (usize::try_from(u64::from_be_bytes(rest[2..10].try_into().unwrap())).unwrap(), 10),
            n => (usize::from(n), 2),
        };
        assert!(rest.len() >= header + len, "a truncated frame in {bytes:?}");
        frames.push((opcode, rest[header..header + len].to_vec()));
        rest = &rest[header + len..];
    }
    frames
}

async fn quiet_clients_are_pinged_and_silent_ones_closed_with_4201(mode: Mode) {
    const PING: u8 = 0x9;
    const CLOSE: u8 = 0x8;
    let s = TestServer::start_with(mode, |c| {
        c.gateway.heartbeat_ms = 100;
        c.gateway.idle_timeout_ms = 400;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice"]).await;

    // A client that reads answers pings (tungstenite pongs on its next read):
    // five pings take longer than the idle timeout, and it is still served.
    let mut alice = connect(&s, &token, "alice").await;
    let mut pings = 0;
    while pings < 5 {
        let msg = tokio::time::timeout(FRAME_WAIT, futures::StreamExt::next(&mut alice.ws))
            .await
            .expect("no ping within 10 s: the server does not ping quiet clients");
        match msg {
            Some(Ok(Ws::Ping(_))) => pings += 1,
            other => panic!("a client that answers pings must stay open, got {other:?} after {pings} pings"),
        }
    }
    assert_eq!(alice.request(send(1, chat, "still here", "s")).await["type"], "ack");

    // A client that reads nothing never pongs: pinged, then closed with 4201.
    let mut bob = connect(&s, &token, "bob").await;
    let frames = raw_frames_until_eof(&mut bob).await;
    let opcodes: Vec<u8> = frames.iter().map(|(op, _)| *op).collect();
    assert!(opcodes.first() == Some(&PING), "pinged before being closed: {opcodes:?}");
    let (op, payload) = frames.last().unwrap();
    assert_eq!(*op, CLOSE, "{opcodes:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 4201, "{frames:?}");
    wait_for_sessions(&s, &token, "bob", 0).await;
    s.stop().await;
}

async fn past_max_connections_a_socket_is_closed_with_4101(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.gateway.max_connections = 2).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;

    let carol_jwt = user_token(&s, &token, "carol").await;
    let mut refused = open(&s, &carol_jwt).await;
    let (code, before) = close_code(&mut refused).await;
    assert_eq!(code, 4101);
    assert!(before.is_empty(), "no welcome for a refused socket: {before:?}");

    // The two sessions still work.
    assert_eq!(alice.request(send(1, chat, "hi", "a")).await["type"], "ack");
    assert_message(&bob.next().await, chat, 1, "hi");

    // A freed slot is taken again.
    bob.close().await;
    let deadline = Instant::now() + FRAME_WAIT;
    loop {
        let mut ws = open(&s, &carol_jwt).await;
        let first = tokio::time::timeout(FRAME_WAIT, futures::StreamExt::next(&mut ws)).await.unwrap();
        match first {
            Some(Ok(Ws::Text(t))) if t.contains("welcome") => break,
            Some(Ok(Ws::Close(Some(f)))) if u16::from(f.code) == 4101 => {
                assert!(Instant::now() < deadline, "the closed session's slot was never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("expected a welcome or 4101, got {other:?}"),
        }
    }
    s.stop().await;
}

async fn an_oversized_frame_gets_frame_too_large_then_1009(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.gateway.max_frame_bytes = 1024).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    // Just under the limit is fine.
    let ack = alice.request(send(1, chat, &"x".repeat(900), "fits")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    alice.send(send(2, chat, &"x".repeat(2_000), "too-big")).await;
    let (code, before) = alice.close_code().await;
    assert_eq!(before.len(), 1, "one error frame, then the close: {before:?}");
    assert_eq!(
        (before[0]["type"].as_str(), before[0]["code"].as_str()),
        (Some("error"), Some("frame_too_large")),
        "{before:?}"
    );
    assert_eq!(code, 1009);
    // Many times the session's read buffer (512 B), still refused cleanly.
    let mut again = connect(&s, &token, "alice").await;
    again.send(send(3, chat, &"y".repeat(12_000), "much-too-big")).await;
    let (code, before) = again.close_code().await;
    assert_eq!(before.len(), 1, "one error frame, then the close: {before:?}");
    assert_eq!(before[0]["code"].as_str(), Some("frame_too_large"), "{before:?}");
    assert_eq!(code, 1009);
    s.stop().await;
}

/// How long the pacing sender keeps going (the scenario: 60 s).
const PACED_FOR: Duration = Duration::from_secs(60);

/// A client that sleeps exactly `retry_after_ms` after each `rate_limited`
/// is refused again at worst, never cut off, however long it keeps at it: the
/// wait is rounded up, and a send that comes when told is no strike.
async fn a_sender_that_waits_retry_after_ms_is_never_cut_off(mode: Mode) {
    let s = TestServer::start_with(mode, |c| {
        c.gateway.send_rate_per_sec = 1;
        c.gateway.send_burst = 1;
        c.gateway.max_bad_frames = 2;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let until = Instant::now() + PACED_FOR;
    let (mut n, mut acked, mut refused) = (0u64, 0u64, 0u64);
    while Instant::now() < until {
        n += 1;
        alice.send(send(n, chat, "paced", &format!("p{n}"))).await;
        // `answer` panics on the close frame of a cut-off session.
        let answer = alice.answer(&json!(n)).await;
        if answer["type"] == "ack" {
            acked += 1;
            continue;
        }
        assert_error(&answer, &json!(n), "rate_limited");
        refused += 1;
        let wait = answer["retry_after_ms"].as_u64().unwrap();
        assert!((1..=1000).contains(&wait), "at most one period of the bucket: {answer}");
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    assert!(refused > 0 && acked > 0, "{acked} acked, {refused} refused");
    let last = alice.request(send(n + 1, chat, "still here", "last")).await;
    assert!(last["type"] == "ack" || last["code"] == "rate_limited", "{last}");
    s.stop().await;
}

/// A client that resends at once after `rate_limited` floods: closed with 4100.
async fn a_sender_that_ignores_retry_after_ms_is_closed_with_4100(mode: Mode) {
    let s = TestServer::start_with(mode, |c| {
        c.gateway.send_rate_per_sec = 1;
        c.gateway.send_burst = 1;
        c.gateway.max_bad_frames = 3;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut answers = Vec::new();
    let code = 'sending: loop {
        let n = answers.len() as u64 + 1;
        assert!(n <= 100, "still open after {answers:?}");
        if alice.ws.send(Ws::text(send(n, chat, "again", &format!("a{n}")).to_string())).await.is_err() {
            break close_code(&mut alice.ws).await.0;
        }
        loop {
            let msg = tokio::time::timeout(FRAME_WAIT, alice.ws.next()).await.expect("no answer within 10 s");
            match msg {
                Some(Ok(Ws::Text(text))) => {
                    let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if frame.get("id").is_some() {
                        answers.push(frame);
                        continue 'sending;
                    }
                }
                Some(Ok(Ws::Close(Some(frame)))) => break 'sending u16::from(frame.code),
                Some(Ok(Ws::Ping(_) | Ws::Pong(_))) => {}
                other => panic!("expected an answer or a close, got {other:?} after {answers:?}"),
            }
        }
    };
    assert_eq!(code, 4100, "{answers:?}");
    assert_eq!(answers[0]["type"], "ack", "{answers:?}");
    assert!(answers.len() >= 4, "max_bad_frames early resends, then the close: {answers:?}");
    assert!(answers[1..].iter().all(|a| a["code"] == "rate_limited"), "{answers:?}");
    s.stop().await;
}

/// Frames that do nothing still spend the session's frame budget: 10,000
/// `typing` as fast as they go are refused, then closed with 4100, while
/// another user on the node is served.
async fn a_typing_flood_is_closed_with_4100_while_others_are_served(mode: Mode) {
    const FLOOD: usize = 10_000;
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let quiet_chat = chat_with(&s, &token, &["mallory"]).await;
    let chat = chat_with(&s, &token, &["alice"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mallory = connect(&s, &token, "mallory").await;
    let (mut sink, mut stream) = mallory.ws.split();
    let flood = tokio::spawn(async move {
        let typing = json!({"type":"typing","id":"t","chat":quiet_chat}).to_string();
        let mut sent = 0;
        while sent < FLOOD && sink.send(Ws::text(typing.clone())).await.is_ok() {
            sent += 1;
        }
        sent
    });
    assert_eq!(alice.request(send(1, chat, "served", "s1")).await["type"], "ack");
    let mut refusals = Vec::new();
    let code = loop {
        let msg = tokio::time::timeout(FRAME_WAIT, stream.next()).await.expect("no close within 10 s");
        match msg {
            Some(Ok(Ws::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(Ws::Text(text))) => {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "error" {
                    refusals.push(frame);
                }
            }
            Some(Ok(Ws::Ping(_) | Ws::Pong(_))) => {}
            other => panic!("expected the close, got {other:?} after {refusals:?}"),
        }
    };
    let sent = flood.await.unwrap();
    assert_eq!(code, 4100, "after {sent} typing frames and {refusals:?}");
    assert!(!refusals.is_empty(), "refused with rate_limited before the close");
    for refusal in &refusals {
        assert_error(refusal, &json!("t"), "rate_limited");
        assert!(refusal["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{refusal}");
    }
    assert!(refusals.len() < sent, "not every refused frame is answered: {} of {sent}", refusals.len());
    assert_eq!(alice.request(send(2, chat, "still served", "s2")).await["type"], "ack");
    s.stop().await;
}

/// A text frame that is not UTF-8 is closed with 1007 (invalid frame payload data).
async fn a_text_frame_that_is_not_utf8_is_closed_with_1007(mode: Mode) {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let mut alice = connect(&s, &token, "alice").await;
    let payload: &[u8] = b"{\"type\":\"typing\",\"chat\":1,\"x\":\"\xff\xfe\"}";
    alice.send_raw(Ws::Frame(Frame::message(payload.to_vec(), OpCode::Data(Data::Text), true))).await;
    let (code, before) = alice.close_code().await;
    assert_eq!(code, 1007, "{before:?}");
    s.stop().await;
}
