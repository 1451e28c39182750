//! Batched frames (`GET /ws?batch=1`, docs/protocol.md, "Batched frames"): a
//! session that asks for them gets the frames the node writes together in one
//! WebSocket text frame, one JSON object a line, every message once and in
//! order; a session that does not ask gets one object per frame, as before.
//! A `batch` that is neither 1, true, 0 nor false is refused at the handshake.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::server::{Mode, TestServer};
use common::ws::{Client, FRAME_WAIT, chat_with, connect, send, user_token};
use futures::StreamExt as _;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message as Ws;

on_both_modes_configured!(a_batched_session_gets_every_frame_a_line_each_in_order);

/// Large sends first: together they are more than the kernel buffers for a
/// client that does not read (its receive buffer is small, the node's send
/// buffer at most 4 MiB), so what follows waits in the node's outbox.
const LARGE: u64 = 120;
const LARGE_BYTES: usize = 60_000;
/// Then small ones, which the session takes from its outbox several at a time.
const SMALL: u64 = 200;
/// The largest a frame of several lines may be (`MAX_PACKED` in `gateway/lines.rs`).
const MAX_PACKED: usize = 16 * 1024;

fn config(c: &mut weft::config::Config) {
    common::server::with_raised_rates(c);
    c.gateway.outbox_frames = 4096;
    c.gateway.outbox_bytes = 64 * 1024 * 1024;
    // The readers read only once every send is acked.
    c.gateway.write_timeout_ms = 60_000;
}

type SmallSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket on a small receive buffer, with `query` after the token.
async fn open_small(s: &TestServer, jwt: &str, query: &str) -> SmallSocket {
    let base = s.ws_base();
    let addr: std::net::SocketAddr = base.trim_start_matches("ws://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    tokio_tungstenite::client_async(format!("{base}/ws?token={jwt}{query}"), stream).await.unwrap().0
}

/// The text frames of `ws` until it has `messages` messages: each frame's lines.
async fn read_frames(ws: &mut SmallSocket, messages: usize) -> Vec<Vec<Value>> {
    let mut frames = Vec::new();
    let mut seen = 0;
    while seen < messages {
        let next = tokio::time::timeout(FRAME_WAIT, ws.next()).await.expect("no frame within 10 s");
        let text = match next.expect("the socket closed").unwrap() {
            Ws::Text(text) => text,
            Ws::Ping(_) | Ws::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        };
        let lines: Vec<Value> = text
            .as_str()
            .split('\n')
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:.200}")))
            .collect();
        assert!(
            lines.len() == 1 || text.len() <= MAX_PACKED,
            "a frame of {} lines, {} bytes",
            lines.len(),
            text.len()
        );
        seen += lines.iter().filter(|l| l["type"] == "message").count();
        frames.push(lines);
    }
    frames
}

/// The bodies of the `message` lines of `frames`, with their numbers, in order.
fn messages(frames: &[Vec<Value>]) -> Vec<(u64, String)> {
    frames
        .iter()
        .flatten()
        .filter(|l| l["type"] == "message")
        .map(|m| (m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap().to_owned()))
        .collect()
}

async fn a_batched_session_gets_every_frame_a_line_each_in_order(mode: Mode) {
    let s = TestServer::start_with(mode, config).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob", "carol"]).await;

    // A batch that means nothing is refused before the upgrade.
    let jwt = user_token(&s, &token, "bob").await;
    let url = format!("{}/ws?token={jwt}&batch=yes", s.ws_base());
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 422);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "invalid_parameter", "{body}");
        }
        other => panic!("expected 422, got {other:?}"),
    }

    // bob asks for batched frames, carol does not; neither reads for now.
    let mut bob = open_small(&s, &jwt, "&batch=1").await;
    let carol_jwt = user_token(&s, &token, "carol").await;
    let mut carol = open_small(&s, &carol_jwt, "&batch=0").await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut sent = Vec::new();
    for n in 1..=LARGE + SMALL {
        let body =
            if n <= LARGE { format!("{n:06}{}", "x".repeat(LARGE_BYTES - 6)) } else { format!("s{n}") };
        alice.send(send(n, chat, &body, &format!("c{n}"))).await;
        sent.push(body);
    }
    let acked = acks(&mut alice, LARGE + SMALL).await;
    let want: Vec<(u64, String)> = acked.into_iter().zip(sent).collect();

    let frames = read_frames(&mut bob, want.len()).await;
    assert_eq!(messages(&frames), want, "bob gets every message once, in order");
    let packed = frames.iter().filter(|f| f.len() > 1).count();
    assert!(packed > 0, "the small messages that waited share frames ({} frames)", frames.len());
    assert!(frames.iter().flatten().all(|line| line["type"].is_string()), "every line is a frame");

    let frames = read_frames(&mut carol, want.len()).await;
    assert!(frames.iter().all(|f| f.len() == 1), "without batch=1, one frame per WebSocket frame");
    assert_eq!(messages(&frames), want, "carol gets every message once, in order");
    s.stop().await;
}

/// The numbers of alice's `count` acks, in request order.
async fn acks(alice: &mut Client, count: u64) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < count as usize {
        let frame = alice.next().await;
        match frame["type"].as_str() {
            Some("ack") => {
                assert_eq!(frame["id"], seqs.len() as u64 + 1, "{frame}");
                seqs.push(frame["seq"].as_u64().unwrap());
            }
            Some("message") => {}
            _ => panic!("unexpected {frame}"),
        }
    }
    seqs
}
