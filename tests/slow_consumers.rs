//! What a client that does not read may cost a node.
//!
//! - A `hello` streams its catch-up: clients that resume a large chat and
//!   never read cost the node a few frames each, not their backlog, and are
//!   cut off as slow consumers (issue 12: 20 such sockets on a chat of 64 MB
//!   took a node from 13 MB to 1.6 GB when the catch-up was built whole
//!   first). The node is a separate `weft` process (embedded store), so its
//!   resident memory (`/proc/<pid>/status`) is the node's alone.
//! - Live frames held for a session are bounded in bytes
//!   (`gateway.outbox_bytes`), not only in frames.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Child;
use std::time::Duration;

use common::server::{Mode, TestServer};
use common::ws::{Client, join, user_token, wait_for_sessions, wait_within};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

const MESSAGES: u64 = 2_000;
const BODY_BYTES: usize = 32 * 1024;
const HANGING: usize = 20;

/// How much the node may grow while the 20 hang. Each holds at most about one
/// catch-up frame (~0.5 MiB of messages, kept twice while it is written: the
/// encoded frame and the WebSocket's write buffer), so ~25 MiB in all, plus
/// what the allocator keeps (measured: +18 MiB); what the kernel buffers for
/// their sockets is not resident memory of the process. Holding each one's
/// backlog would be 20 × 64 MiB, at least 1.25 GiB (the unfixed node grew by
/// 1.6 GB): this bound is a twentieth of that, with room for the allocator.
const GROWTH_BOUND_KB: u64 = 64 * 1024;

/// The node process; killed when dropped.
struct Node {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = common::process::weft_command();
        cmd.env("RUST_LOG", "info")
            .env("WEFT_LOG_FORMAT", "json")
            .env("WEFT_SERVER_LISTEN", "127.0.0.1:0")
            .env("WEFT_STORE_DATA_DIR", dir.path())
            // A hanging client is cut off after this long blocked on one write.
            .env("WEFT_GATEWAY_WRITE_TIMEOUT_MS", "3000");
        let (child, addr) = common::process::serve(cmd);
        Node { child, base: format!("http://{addr}"), _dir: dir }
    }

    /// Resident memory, in kB.
    fn rss_kb(&self) -> u64 {
        common::process::rss_kib(self.child.id())
    }
}

/// A `hello` from 0 on a client that reads: every message, in order, once.
async fn catch_up_whole(s: &TestServer, jwt: &str, chat: u64) {
    let mut client = Client::connect(s, jwt).await;
    client.send(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":0}]})).await;
    let mut seqs = Vec::new();
    loop {
        let page = client.next().await;
        assert_eq!((page["type"].as_str(), page["chat"].as_u64()), (Some("messages"), Some(chat)), "{page}");
        for item in page["items"].as_array().unwrap() {
            assert_eq!(item["body"].as_str().unwrap().len(), BODY_BYTES);
            seqs.push(item["seq"].as_u64().unwrap());
        }
        if page["has_more"] == false {
            break;
        }
    }
    assert_eq!(seqs, (1..=MESSAGES).collect::<Vec<_>>(), "every message once, in order");
    client.close().await;
}

type SmallSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket on a small receive buffer, so that the kernel holds little of
/// what the node writes to a client that does not read.
async fn open_small(base: &str, jwt: &str) -> SmallSocket {
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("{}/ws?token={jwt}", base.replace("http://", "ws://"));
    tokio_tungstenite::client_async(url, stream).await.unwrap().0
}

/// A client that sends `hello` from 0 and never reads.
async fn hang(base: &str, jwt: &str, chat: u64) -> SmallSocket {
    let mut ws = open_small(base, jwt).await;
    let hello = json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":0}]});
    ws.send(Ws::text(hello.to_string())).await.unwrap();
    ws
}

/// A counter of the node's `/metrics`.
async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_hellos_on_a_64_mb_chat_keep_the_node_within_its_bound_and_are_cut_off() {
    let node = Node::start();
    let s = TestServer::remote(&node.base);
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    for user in ["reader", "mallory"] {
        let url = s.url(&format!("/api/v1/applications/{token}/chats/{chat}/members/{user}"));
        assert_eq!(s.send(s.http.put(url)).await.0, 204);
    }
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    let posts = futures::stream::iter(1..=MESSAGES)
        .map(|n| {
            let body = format!("{n:06}{}", "x".repeat(BODY_BYTES - 6));
            s.post(&path, json!({"body": body, "sender": "alice"}))
        })
        .buffer_unordered(16);
    posts.for_each(|(status, body)| async move { assert_eq!(status, 201, "{body}") }).await;

    // One whole catch-up first: the store's and the allocator's caches are
    // warm, so what follows measures the hanging clients alone.
    let (reader, mallory) = (user_token(&s, &token, "reader").await, user_token(&s, &token, "mallory").await);
    catch_up_whole(&s, &reader, chat).await;
    let baseline = node.rss_kb();

    let mut hanging = Vec::new();
    for _ in 0..HANGING {
        hanging.push(hang(&node.base, &mallory, chat).await);
    }
    let (mut peak, deadline) = (baseline, Instant::now() + Duration::from_secs(90));
    loop {
        peak = peak.max(node.rss_kb());
        assert!(
            peak < baseline + GROWTH_BOUND_KB,
            "the node grew from {baseline} kB to {peak} kB with {HANGING} hanging catch-ups"
        );
        if metric(&s, "weft_slow_consumer_disconnects_total").await >= HANGING as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "the hanging clients were not all cut off as slow consumers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("rss: baseline {baseline} kB, peak {peak} kB (+{} kB)", peak - baseline);
    wait_within(Duration::from_secs(30), "mallory's sessions are gone", || async {
        let (_, body) = s.get(&format!("/api/v1/applications/{token}/users/mallory/presence")).await;
        body["sessions"] == 0
    })
    .await;
    drop(hanging);

    // A reading client still gets the whole chat, in order.
    catch_up_whole(&s, &reader, chat).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_holds_more_than_outbox_bytes_is_cut_off_while_a_fast_one_gets_everything() {
    let s = TestServer::start_with(Mode::Embedded, |c| {
        c.gateway.outbox_bytes = 1024 * 1024;
        // Only the byte bound can cut the slow client off within the test:
        // not the frame count, not a blocked write.
        c.gateway.outbox_frames = 100_000;
        c.gateway.write_timeout_ms = 600_000;
    })
    .await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    for user in ["fast", "slow"] {
        join(&s, &token, chat, user).await;
    }
    let mut fast = Client::connect(&s, &user_token(&s, &token, "fast").await).await;
    let _slow = open_small(&s.base, &user_token(&s, &token, "slow").await).await;
    wait_for_sessions(&s, &token, "slow", 1).await;

    // ~12 MB the slow client never reads: more than its socket buffers and
    // its outbox's 1 MiB hold, in far fewer frames than its outbox may hold.
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
    wait_within(Duration::from_secs(30), "the slow client is cut off", || async {
        let (_, body) = s.get(&format!("/api/v1/applications/{token}/users/slow/presence")).await;
        body["sessions"] == 0
    })
    .await;
    s.stop().await;
}
