//! The Redis directory against a real Redis and a real Redis Cluster:
//! registration by reference counts, one-round-trip lookups, purge of a dead
//! node (across applications, so across cluster slots), repair after loss.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::server::{redis_cluster_nodes, redis_url};
use weft::cluster::directory::Directory;
use weft::ids::{AppId, ChatNumber, UserId};
use weft::redis_conn::{RedisConfig, RedisConn};

async fn connect(config: RedisConfig) -> RedisConn {
    let at = format!("{:?}{:?}", config.url, config.cluster_nodes);
    match RedisConn::connect(&config).await {
        Ok(Some(conn)) => conn,
        Ok(None) => panic!("no Redis configured"),
        Err(e) => panic!("cannot reach Redis at {at}: {e}; start it with scripts/services.sh"),
    }
}

async fn single() -> RedisConn {
    connect(RedisConfig { url: redis_url(), ..RedisConfig::default() }).await
}

async fn cluster() -> RedisConn {
    let conn = connect(RedisConfig { cluster_nodes: redis_cluster_nodes(), ..RedisConfig::default() }).await;
    assert!(conn.is_cluster());
    conn
}

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn set(nodes: &[&str]) -> BTreeSet<String> {
    nodes.iter().map(|n| (*n).to_owned()).collect()
}

#[tokio::test]
async fn nodes_register_and_survivors_purge_the_dead_on_one_redis() {
    register_and_purge(single().await).await;
}

#[tokio::test]
async fn nodes_register_and_survivors_purge_the_dead_on_a_redis_cluster() {
    register_and_purge(cluster().await).await;
}

async fn register_and_purge(conn: RedisConn) {
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let a = Directory::new(conn.clone(), prefix.clone(), "node-a".into());
    let b = Directory::new(conn.clone(), prefix.clone(), "node-b".into());
    let app = AppId::generate();
    let (c1, c2, c3) = (ChatNumber(1), ChatNumber(2), ChatNumber(3));
    let sorted = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();

    // alice on A (two devices) in chats 1, 2; bob on B in chats 2, 3.
    assert!(a.session_opened(&app, &user("alice"), vec![c1, c2]).await.unwrap());
    assert!(!a.session_opened(&app, &user("alice"), vec![c1, c2]).await.unwrap());
    assert!(b.session_opened(&app, &user("bob"), vec![c2, c3]).await.unwrap());
    assert_eq!(sorted(a.chat_nodes(&app, c1).await.unwrap()), set(&["node-a"]));
    assert_eq!(sorted(a.chat_nodes(&app, c2).await.unwrap()), set(&["node-a", "node-b"]));
    assert_eq!(sorted(a.chat_nodes(&app, c3).await.unwrap()), set(&["node-b"]));
    let both = [user("alice"), user("bob"), user("carol")];
    assert_eq!(a.user_nodes(&app, both.iter()).await.unwrap(), set(&["node-a", "node-b"]));
    assert!(a.chat_nodes(&AppId::generate(), c1).await.unwrap().is_empty(), "per application");

    // One of alice's devices closes: still online; the other: gone from A's sets.
    assert!(!a.session_closed(&app, &user("alice")).await.unwrap());
    assert_eq!(a.user_node_count(&app, &user("alice")).await.unwrap(), 1);
    assert!(a.session_closed(&app, &user("alice")).await.unwrap());
    assert_eq!(a.user_node_count(&app, &user("alice")).await.unwrap(), 0);
    assert!(a.chat_nodes(&app, c1).await.unwrap().is_empty());
    assert_eq!(sorted(a.chat_nodes(&app, c2).await.unwrap()), set(&["node-b"]));

    // bob joins chat 1 while online on B; leaves chat 3.
    b.joined(&app, c1, &user("bob")).await.unwrap();
    b.left(&app, c3, &user("bob")).await.unwrap();
    assert_eq!(sorted(a.chat_nodes(&app, c1).await.unwrap()), set(&["node-b"]));
    assert!(a.chat_nodes(&app, c3).await.unwrap().is_empty());

    // B also holds sessions of many other applications (on a Redis Cluster,
    // their keys are spread over the slots of every master).
    let others: Vec<AppId> = (0..20).map(|_| AppId::generate()).collect();
    for other in &others {
        assert!(b.session_opened(other, &user("dan"), vec![c1]).await.unwrap());
    }
    assert!(a.user_nodes(&others[7], [user("dan")].iter()).await.unwrap().contains("node-b"));

    // B dies: A purges its entries, in every application.
    assert!(a.purge("node-b").await.unwrap() > 0);
    assert!(a.chat_nodes(&app, c1).await.unwrap().is_empty());
    assert_eq!(a.user_node_count(&app, &user("bob")).await.unwrap(), 0);
    for other in &others {
        assert!(a.chat_nodes(other, c1).await.unwrap().is_empty());
        assert_eq!(a.user_node_count(other, &user("dan")).await.unwrap(), 0);
    }

    // B was alive after all (or Redis lost its data): it registers again by itself.
    assert!(b.repair().await.unwrap());
    assert!(!b.repair().await.unwrap(), "nothing to repair twice");
    assert_eq!(sorted(a.chat_nodes(&app, c2).await.unwrap()), set(&["node-b"]));
    assert_eq!(a.user_node_count(&app, &user("bob")).await.unwrap(), 1);
    assert_eq!(a.user_node_count(&others[3], &user("dan")).await.unwrap(), 1);
    assert_eq!(sorted(a.chat_nodes(&others[19], c1).await.unwrap()), set(&["node-b"]));
}
