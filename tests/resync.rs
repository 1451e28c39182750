//! Frames dropped between nodes trigger a server-side resync: two `weft`
//! processes with a one-frame peer queue; the receiving node is stopped
//! (SIGSTOP) while the other keeps posting, so its queue for it overflows.
//! Once it runs again its session of the chat gets `{"type":"resync","chat":N}`,
//! and a `sync` from there has the whole history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::trio::{as_server, member_ids, shared_env, start, weft};
use common::ws::{chat_with, item_seqs, post, wait_within};
use serde_json::json;
use tokio::time::Instant;

/// A metric's value on a node (0 when absent).
async fn metric(s: &common::server::TestServer, line_start: &str) -> u64 {
    let scraped = s.http.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    scraped
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Sends SIGCONT on drop, so a failed test never leaves the node stopped.
struct Resume<'a>(&'a common::trio::Node);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.0.signal("CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_peer_frames_send_the_chat_a_resync() {
    let certs = tempfile::tempdir().unwrap();
    weft::cluster::tls::generate(certs.path(), &["node"], true).unwrap();
    let keyspace = common::test_keyspace("resync");
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let mut env = shared_env(&keyspace, &prefix, certs.path());
    env.extend(
        [
            // One frame waits for a peer; the next is dropped while it waits.
            ("WEFT_QUIC_PEER_QUEUE_FRAMES", "1"),
            // A stopped peer's connection is given up quickly, so the queue stops draining.
            ("WEFT_QUIC_IDLE_TIMEOUT_MS", "1000"),
            ("WEFT_QUIC_KEEP_ALIVE_MS", "300"),
            ("WEFT_QUIC_RECONNECT_MAX_MS", "300"),
            // Gossip slow enough not to declare the stopped node dead meanwhile.
            ("WEFT_GOSSIP_GOSSIP_INTERVAL_MS", "1000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let migrated = weft(&env).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let a = start(&env, "node-a", &[]);
    let seed = a.get("/api/v1/cluster").await["gossip"].as_str().unwrap().to_owned();
    let b = start(&env, "node-b", &[seed]);
    for node in [&a, &b] {
        wait_within(Duration::from_secs(60), "two members", || async { member_ids(node).await.len() == 2 })
            .await;
    }
    let (sa, sb) = (as_server(&a), as_server(&b));
    let token = sa.new_app().await;
    let chat = chat_with(&sa, &token, &["alice", "bob"]).await;
    let mut bob = common::ws::connect(&sb, &token, "bob").await;
    let first = post(&sa, &token, chat, "first").await;
    bob.until_message(chat, first).await;

    // B stops; A posts until its queue for B is stuck dropping frames, and a few more.
    b.signal("STOP");
    let resume = Resume(&b);
    let dropped = "weft_quic_frames_dropped_total{peer=\"node-b\"}";
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = first;
    let mut after_drop = 0;
    while after_drop < 3 {
        assert!(Instant::now() < deadline, "A never dropped a frame for the stopped B");
        last = post(&sa, &token, chat, &format!("m{last}")).await;
        // Several drops: the queue is stuck (a stray one can be a frame of no chat,
        // dropped while the writer was busy for a moment).
        if metric(&sa, dropped).await >= 3 {
            after_drop += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(resume);

    // Bob gets the resync for the chat, and a sync from the start has everything.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let Some(frame) = bob.next_before(deadline, true).await else {
            let scraped = sa.http.get(sa.url("/metrics")).send().await.unwrap().text().await.unwrap();
            let quic: Vec<&str> = scraped
                .lines()
                .filter(|l| l.starts_with("weft_quic") || l.starts_with("weft_cluster"))
                .collect();
            panic!("no resync frame within 30 s; node A: {quic:#?}");
        };
        if frame["type"] == "resync" {
            assert_eq!(frame, json!({"type":"resync","chat":chat}));
            break;
        }
    }
    bob.send(json!({"type":"sync","id":"s","chat":chat,"after":0,"limit":500})).await;
    let page = bob.answer(&json!("s")).await;
    let want: Vec<u64> = (1..=last).collect();
    assert_eq!(item_seqs(&page), want, "the history after the resync is not whole");
    assert!(metric(&sa, "weft_quic_resyncs_total{peer=\"node-b\"}").await >= 1);
}
