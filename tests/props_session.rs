//! A property test of a live WebSocket session (the gateway's frame handling
//! on a real socket, one embedded node): any run of valid frames, frames with
//! a field broken, any text and binary frames is answered frame by frame —
//! each answer a documented frame type or an `error` with a code
//! `docs/protocol.md` lists — and the session stays open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;
mod props_support;

use std::sync::LazyLock;

use common::server::{Mode, TestServer};
use common::ws::{Client, chat_with, post, user_token};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;

/// The error codes of `docs/protocol.md`'s "Error codes" tables.
static CODES: LazyLock<Vec<String>> = LazyLock::new(|| {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md")).unwrap();
    let section = doc.split("## Error codes").nth(1).unwrap().split("\n## ").next().unwrap();
    let codes: Vec<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect();
    assert!(codes.len() > 20, "{codes:?}");
    codes
});

/// The frame types a session answers requests with.
const ANSWERS: &[&str] = &[
    "ack",
    "messages",
    "upload_ready",
    "device_registered",
    "device_unregistered",
    "notification_settings",
    "search_results",
    "error",
];

/// One frame the client writes.
#[derive(Clone, Debug)]
enum Frame {
    /// A valid frame of this kind (in the chat, or another).
    Valid(usize, bool),
    /// A valid frame with a field set to any value.
    Broken(usize, String, Value),
    /// Any text.
    Text(String),
    /// Any bytes, as a binary frame.
    Binary(Vec<u8>),
}

/// Valid frames of each kind, for `chat` and its first message.
fn valid(kind: usize, chat: u64, n: u64) -> Value {
    let frames = [
        json!({"type": "send", "chat": chat, "body": "hi", "client_msg_id": format!("c{n}")}),
        json!({"type": "send", "recipients": ["bob"], "body": "hi", "client_msg_id": format!("r{n}")}),
        json!({"type": "sync", "chat": chat, "after": 0}),
        json!({"type": "sync", "chat": chat, "before": 5, "limit": 2}),
        json!({"type": "hello", "resume": [{"chat": chat, "after": 0}]}),
        json!({"type": "typing", "chat": chat}),
        json!({"type": "delivered", "chat": chat, "seq": 1}),
        json!({"type": "read", "chat": chat, "seq": 1}),
        json!({"type": "edit", "chat": chat, "seq": 1, "body": "changed"}),
        json!({"type": "react", "chat": chat, "seq": 1, "emoji": "👍"}),
        json!({"type": "unreact", "chat": chat, "seq": 1, "emoji": "👍"}),
        json!({"type": "delete", "chat": chat, "seq": 1}),
        json!({"type": "upload", "chat": chat, "name": "a.png", "content_type": "image/png", "size": 10}),
        json!({"type": "add_members", "chat": chat, "users": ["carol"]}),
        json!({"type": "remove_member", "chat": chat, "user": "carol"}),
        json!({"type": "set_role", "chat": chat, "user": "bob", "role": "admin"}),
        json!({"type": "update_chat", "chat": chat, "name": "n"}),
        json!({"type": "leave", "chat": chat}),
        json!({"type": "register_device", "device_id": "d", "provider": "fcm", "token": "x"}),
        json!({"type": "unregister_device", "device_id": "d"}),
        json!({"type": "notification_settings", "push": true}),
        json!({"type": "search", "query": "hi"}),
    ];
    frames[kind % frames.len()].clone()
}

const KINDS: usize = 22;

fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        "\\PC{0,10}".prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
        Just(json!([{"chat": 1, "after": "x"}])),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    let field = prop::sample::select(vec![
        "chat",
        "seq",
        "body",
        "after",
        "before",
        "limit",
        "resume",
        "users",
        "user",
        "emoji",
        "name",
        "size",
        "query",
        "page",
        "recipients",
        "attachments",
        "metadata",
        "id",
        "type",
        "extra",
    ]);
    prop_oneof![
        4 => (0..KINDS, any::<bool>()).prop_map(|(k, other)| Frame::Valid(k, other)),
        4 => (0..KINDS, field, any_value()).prop_map(|(k, f, v)| Frame::Broken(k, f.to_owned(), v)),
        1 => "\\PC{0,40}".prop_map(Frame::Text),
        1 => vec(any::<u8>(), 0..16).prop_map(Frame::Binary),
    ]
}

/// Writes `frames` and, after each, a marker whose answer ends what that frame caused.
async fn run(s: &TestServer, frames: Vec<Frame>) -> Result<(), TestCaseError> {
    let token = s.new_app().await;
    let chat = chat_with(s, &token, &["alice", "bob"]).await;
    let other = chat_with(s, &token, &["bob"]).await;
    // Markers read a chat no frame touches (a frame may make alice leave `chat`).
    let quiet = chat_with(s, &token, &["alice"]).await;
    post(s, &token, chat, "first").await;
    let mut client = Client::connect(s, &user_token(s, &token, "alice").await).await;
    for (n, frame) in frames.into_iter().enumerate() {
        let n = n as u64;
        let id = json!(format!("f{n}"));
        let sent = match &frame {
            Frame::Valid(kind, in_other) => {
                let mut v = valid(*kind, if *in_other { other } else { chat }, n);
                v["id"] = id.clone();
                Ws::text(v.to_string())
            }
            Frame::Broken(kind, field, value) => {
                let mut v = valid(*kind, chat, n);
                v["id"] = id.clone();
                v[field.as_str()] = value.clone();
                Ws::text(v.to_string())
            }
            Frame::Text(text) => Ws::text(text.clone()),
            Frame::Binary(bytes) => Ws::binary(bytes.clone()),
        };
        client.send_raw(sent).await;
        let marker = json!(format!("m{n}"));
        client.send(json!({"type": "sync", "id": marker, "chat": quiet, "latest": true, "limit": 1})).await;
        loop {
            let answer = client.next().await;
            let kind = answer["type"].as_str().unwrap_or_default();
            if answer["id"] == marker {
                prop_assert_eq!(kind, "messages", "the marker: {}", answer);
                break;
            }
            if kind == "error" {
                let code = answer["code"].as_str().unwrap_or_default();
                prop_assert!(CODES.iter().any(|c| c == code), "{:?}: undocumented code in {}", frame, answer);
            } else if answer.get("id").is_some() {
                prop_assert!(ANSWERS.contains(&kind), "{:?}: answered {}", frame, answer);
            }
        }
    }
    client.close().await;
    Ok(())
}

#[test]
fn any_frames_are_answered_and_the_session_stays_open() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = runtime.block_on(TestServer::start_with(Mode::Embedded, |c| {
        // Only the frames are under test here, not the flood and rate limits.
        c.gateway.max_bad_frames = 1_000_000;
        common::server::with_raised_rates(c);
    }));
    let config = proptest::test_runner::Config { failure_persistence: None, ..props_support::budget(64) };
    let outcome =
        TestRunner::new(config).run(&vec(frame(), 1..16), |frames| runtime.block_on(run(&server, frames)));
    runtime.block_on(server.stop());
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
