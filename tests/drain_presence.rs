//! A draining node announces its users offline: two `weft` processes (real
//! Redis, real Cassandra, gossip and QUIC). A user whose only session is on
//! the drained node and who does not come back is announced offline to a
//! watcher on the other node, and the directory no longer holds them online;
//! a user who reconnects to the other node within the debounce is not. A
//! node killed outright (three processes): a survivor announces its users
//! offline, once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::trio::{as_server, member_ids, shared_env, start, weft};
use common::ws::{Client, chat_with, post, presence, user_token, wait_within};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The next `presence` frame about `user` before `deadline`, skipping anything else.
async fn next_presence(client: &mut Client, user: &str, deadline: Instant) -> Option<Value> {
    loop {
        let frame = client.next_before(deadline, true).await?;
        if frame["type"] == "presence" && frame["user"] == user {
            return Some(frame);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_announces_offline_who_does_not_reconnect_elsewhere() {
    let certs = tempfile::tempdir().unwrap();
    weft::cluster::tls::generate(certs.path(), &["node"], true).unwrap();
    let keyspace = common::test_keyspace("drainp");
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let mut env = shared_env(&keyspace, &prefix, certs.path());
    // Long enough for a client told to reconnect (1012) to be back elsewhere
    // on a loaded machine; the drain waits it out.
    env.push(("WEFT_GATEWAY_PRESENCE_DEBOUNCE_MS".into(), "2000".into()));
    let migrated = weft(&env).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let a = start(&env, "node-a", &[]);
    let seed = a.get("/api/v1/cluster").await["gossip"].as_str().unwrap().to_owned();
    let b = start(&env, "node-b", &[seed]);
    for node in [&a, &b] {
        wait_within(Duration::from_secs(30), "two members", || async { member_ids(node).await.len() == 2 })
            .await;
    }
    let (sa, sb) = (as_server(&a), as_server(&b));
    let token = sa.new_app().await;
    let chat = chat_with(&sa, &token, &["alice", "bob", "carol"]).await;
    let carol_jwt = user_token(&sa, &token, "carol").await;

    let mut bob = common::ws::connect(&sb, &token, "bob").await;
    let mut alice = common::ws::connect(&sa, &token, "alice").await;
    let mut carol = Client::connect(&sa, &carol_jwt).await;
    let soon = || Instant::now() + Duration::from_secs(10);
    for user in ["alice", "carol"] {
        let online = next_presence(&mut bob, user, soon()).await.expect("no online presence");
        assert_eq!(online["online"], true, "{online}");
    }

    // Drain A: carol goes to B at once; alice does not come back.
    a.signal("TERM");
    let (code, _) = carol.close_code().await;
    assert_eq!(code, 1012, "carol was not told to reconnect elsewhere");
    let mut carol = Client::connect(&sb, &carol_jwt).await;
    let (code, _) = alice.close_code().await;
    assert_eq!(code, 1012);
    drop(alice);

    // Bob hears alice go offline, and nothing of carol but maybe a repeated online.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut about_carol = Vec::new();
    let offline = loop {
        let frame =
            bob.next_before(deadline, true).await.expect("bob heard no offline for alice within 20 s");
        if frame["type"] == "presence" && frame["user"] == "carol" {
            about_carol.push(frame.clone());
        }
        if frame["type"] == "presence" && frame["user"] == "alice" {
            break frame;
        }
    };
    assert_eq!(offline, json!({"type":"presence","user":"alice","online":false}));

    // A has finished its drain (every announcement it makes is made before it
    // stops serving); then a message through B closes bob's stream of frames.
    wait_within(Duration::from_secs(30), "node A to exit", || async { a.try_wait().is_some() }).await;
    let seq = post(&sb, &token, chat, "after the drain").await;
    for frame in bob.until_message(chat, seq).await {
        if frame["type"] == "presence" && frame["user"] == "carol" {
            about_carol.push(frame);
        }
    }
    let flapped: Vec<&Value> = about_carol.iter().filter(|f| f["online"] != true).collect();
    assert!(
        flapped.is_empty(),
        "carol reconnected within the debounce but was announced offline: {flapped:?}"
    );
    carol.until_message(chat, seq).await;

    // The directory agrees: alice offline, carol online (on B).
    assert_eq!(presence(&sb, &token, "alice").await["online"], false);
    assert_eq!(presence(&sb, &token, "carol").await["online"], true);
    carol.close().await;
    bob.close().await;
}

/// A node killed outright announces nothing: a survivor, the one whose purge
/// of the dead node's directory entries left a user on no node, announces
/// that user offline, once, to watchers on every node. A user who also has a
/// session on a live node is not announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_users_are_announced_offline_once_by_a_survivor() {
    let trio = common::trio::three_nodes().await;
    let (a, b, c) = (&trio.nodes[0], &trio.nodes[1], &trio.nodes[2]);
    let (sa, sb, sc) = (as_server(a), as_server(b), as_server(c));
    let token = sa.new_app().await;
    let chat = chat_with(&sa, &token, &["alice", "bob", "carol", "dave"]).await;

    // bob watches on B, dave on C; alice is only on A, carol on A and C.
    let mut bob = common::ws::connect(&sb, &token, "bob").await;
    let mut dave = common::ws::connect(&sc, &token, "dave").await;
    let _alice = common::ws::connect(&sa, &token, "alice").await;
    let _carol_a = common::ws::connect(&sa, &token, "carol").await;
    let carol_c = common::ws::connect(&sc, &token, "carol").await;
    let soon = || Instant::now() + Duration::from_secs(10);
    for watcher in [&mut bob, &mut dave] {
        for user in ["alice", "carol"] {
            let online = next_presence(watcher, user, soon()).await.expect("no online presence");
            assert_eq!(online["online"], true, "{online}");
        }
    }

    a.signal("KILL");
    // Gossip notices within its bound (9 s at the defaults), then a survivor purges.
    for watcher in [&mut bob, &mut dave] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let offline =
            next_presence(watcher, "alice", deadline).await.expect("no offline for alice within 30 s");
        assert_eq!(offline, json!({"type":"presence","user":"alice","online":false}));
    }
    // Both survivors purged; a message through B then closes each watcher's
    // stream: nothing more about alice (announced once) and nothing about carol.
    wait_within(Duration::from_secs(30), "both survivors see two members", || async {
        member_ids(b).await.len() == 2 && member_ids(c).await.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seq = post(&sb, &token, chat, "after the kill").await;
    for watcher in [&mut bob, &mut dave] {
        let more: Vec<Value> = watcher
            .until_message(chat, seq)
            .await
            .into_iter()
            .filter(|f| f["type"] == "presence" && (f["user"] == "alice" || f["online"] == false))
            .collect();
        assert!(more.is_empty(), "alice announced twice, or carol announced offline: {more:?}");
    }
    assert_eq!(presence(&sb, &token, "alice").await["online"], false);
    assert_eq!(presence(&sc, &token, "carol").await["online"], true);
    carol_c.close().await;
    bob.close().await;
    dave.close().await;
}
