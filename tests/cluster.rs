//! Three nodes as one chat server: clients on different nodes chat as if
//! they shared one (Redis Cluster + Cassandra, gossip over UDP, QUIC with mutual TLS).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::server::{Mode, TestServer};
use common::ws::{Client, chat_with, send, send_to, user_token};
use serde_json::json;

async fn connect(s: &TestServer, token: &str, user: &str) -> Client {
    Client::connect(s, &user_token(s, token, user).await).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_nodes_chat_as_if_on_one() {
    // The one way tests start a cluster: three nodes in this process (`Mode::Spread`).
    let cluster = TestServer::start(Mode::Spread).await;
    let nodes = cluster.nodes();
    let (a, b, c) = (nodes[0], nodes[1], nodes[2]);
    let token = a.new_app().await;
    let chat = chat_with(a, &token, &["alice", "bob", "carol"]).await;
    let mut alice = connect(a, &token, "alice").await;
    let mut bob = connect(b, &token, "bob").await;
    let mut carol = connect(c, &token, "carol").await;
    let mut bob_laptop = connect(c, &token, "bob").await;

    // A message from A reaches B and C, every device, once.
    let ack = alice.request(send(1, chat, "hello from A", "a1")).await;
    assert_eq!(ack, json!({"type":"ack","id":1,"chat":chat,"seq":1}));
    for device in [&mut bob, &mut carol, &mut bob_laptop] {
        let m = device.next().await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64(), m["body"].as_str()),
            (Some("message"), Some(1), Some("hello from A")),
            "{m}"
        );
    }
    // Typing and receipts cross nodes too.
    bob.send(json!({"type":"typing","chat":chat})).await;
    for device in [&mut alice, &mut carol] {
        assert_eq!(device.next().await, json!({"type":"typing","chat":chat,"user":"bob"}));
    }
    carol.send(json!({"type":"read","chat":chat,"seq":1})).await;
    for device in [&mut alice, &mut bob, &mut bob_laptop] {
        assert_eq!(
            device.next().await,
            json!({"type":"receipt","chat":chat,"user":"carol","kind":"read","seq":1})
        );
    }
    // An implicit direct chat from C to a user on A.
    let ack = carol.request(send_to(2, &["alice"], "psst", "c2")).await;
    let dm = ack["chat"].as_u64().unwrap();
    assert_ne!(dm, chat);
    let m = alice.next().await;
    assert_eq!((m["chat"].as_u64(), m["body"].as_str()), (Some(dm), Some("psst")), "{m}");
    // A member added through node B hears the next message on node A's chat at once.
    let mut dave = connect(b, &token, "dave").await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/members/dave");
    assert_eq!(c.send(c.http.put(c.url(&path))).await.0, 204);
    assert_eq!(alice.request(send(3, chat, "welcome dave", "a3")).await["seq"], 2);
    let m = dave.next().await;
    assert_eq!((m["chat"].as_u64(), m["body"].as_str()), (Some(chat), Some("welcome dave")), "{m}");

    let (status, listing) = a.get("/api/v1/cluster").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> =
        listing["members"].as_array().unwrap().iter().map(|m| m["node_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["node-0", "node-1", "node-2"], "{listing}");
    cluster.stop().await;
}

/// Waits for `want` on `client`, past other frames (other members' presence).
async fn expect_frame(client: &mut Client, want: serde_json::Value) {
    loop {
        if client.next_any().await == want {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_in_a_big_chat_reaches_its_members_on_every_node() {
    let cluster = TestServer::start_with(Mode::Spread, |c| c.gateway.presence_debounce_ms = 300).await;
    let nodes = cluster.nodes();
    let (a, b, c) = (nodes[0], nodes[1], nodes[2]);
    let token = a.new_app().await;
    // More members than the fabric routes one user at a time: the watchers'
    // nodes are found through the chat's.
    let names: Vec<String> = (0..140).map(|i| format!("member-{i:03}")).collect();
    let mut members: Vec<&str> = names.iter().map(String::as_str).collect();
    members.extend(["alice", "bob", "carol"]);
    chat_with(a, &token, &members).await;
    chat_with(a, &token, &["dave"]).await;
    let mut bob = connect(b, &token, "bob").await;
    let mut carol = connect(c, &token, "carol").await;
    let mut dave = connect(b, &token, "dave").await;

    let alice = connect(a, &token, "alice").await;
    for watcher in [&mut bob, &mut carol] {
        expect_frame(watcher, json!({"type":"presence","user":"alice","online":true})).await;
    }
    alice.close().await;
    for watcher in [&mut bob, &mut carol] {
        expect_frame(watcher, json!({"type":"presence","user":"alice","online":false})).await;
    }
    // dave shares no chat with them: nothing about anyone.
    dave.silent().await;
    cluster.stop().await;
}
