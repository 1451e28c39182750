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
    // Several chats' nodes at once (a presence change's watchers).
    assert_eq!(a.chats_nodes(&app, &[c1]).await.unwrap(), set(&["node-a"]));
    assert_eq!(a.chats_nodes(&app, &[c1, c3]).await.unwrap(), set(&["node-a", "node-b"]));
    assert_eq!(a.chats_nodes(&app, &[c3, ChatNumber(77)]).await.unwrap(), set(&["node-b"]));
    assert!(a.chats_nodes(&app, &[]).await.unwrap().is_empty());
    assert!(a.chats_nodes(&AppId::generate(), &[c1, c2]).await.unwrap().is_empty(), "per application");

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

    // carol has sessions on both nodes.
    let shared = AppId::generate();
    assert!(a.session_opened(&shared, &user("carol"), vec![ChatNumber(9)]).await.unwrap());
    assert!(b.session_opened(&shared, &user("carol"), vec![ChatNumber(9)]).await.unwrap());

    // B dies: A purges its entries, in every application. The users B held
    // who are on no node now come back, once: bob and each dan, not carol.
    let purged = a.purge("node-b").await.unwrap();
    assert!(purged.keys > 0);
    let mut want: Vec<(String, String)> = others.iter().map(|o| (o.to_string(), "dan".to_owned())).collect();
    want.push((app.to_string(), "bob".to_owned()));
    want.sort();
    let mut orphans: Vec<(String, String)> =
        purged.orphans.iter().map(|(a, u)| (a.to_string(), u.to_string())).collect();
    orphans.sort();
    assert_eq!(orphans, want, "the users only B held");
    let again = a.purge("node-b").await.unwrap();
    assert!(again.orphans.is_empty() && again.keys == 0, "a second purge finds nothing: {again:?}");
    assert_eq!(a.user_node_count(&shared, &user("carol")).await.unwrap(), 1);
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

/// A Redis of this test's own, persisting to `dir` so that a restart keeps its data.
struct OwnRedis(std::process::Child);

impl OwnRedis {
    fn start(port: u16, dir: &std::path::Path) -> OwnRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/services.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        OwnRedis(child)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A session that opens while Redis does not answer is registered by the
/// next repair once Redis is back, even though Redis kept the node's index
/// (so nothing looks lost).
#[tokio::test]
async fn a_registration_that_failed_is_made_by_the_next_repair() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis = OwnRedis::start(port, dir.path());
    let config =
        RedisConfig { url: format!("redis://127.0.0.1:{port}"), timeout_ms: 300, ..RedisConfig::default() };
    let a = Directory::new(connect(config).await, "weft-test".into(), "node-a".into());
    let app = AppId::generate();
    assert!(a.session_opened(&app, &user("alice"), vec![ChatNumber(1)]).await.unwrap());

    drop(redis);
    assert!(a.session_opened(&app, &user("bob"), vec![ChatNumber(2)]).await.is_err());
    let _redis = OwnRedis::start(port, dir.path());
    // Redis kept alice and the node's index; bob is missing until the repair.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let repaired = loop {
        match a.repair().await {
            Ok(repaired) => break repaired,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("redis did not come back: {e}"),
        }
    };
    assert!(repaired, "the failed registration was not made again");
    assert_eq!(a.user_node_count(&app, &user("bob")).await.unwrap(), 1);
    assert_eq!(
        set(&a.chat_nodes(&app, ChatNumber(2)).await.unwrap().iter().map(String::as_str).collect::<Vec<_>>()),
        set(&["node-a"])
    );
    assert!(!a.repair().await.unwrap(), "nothing left to repair");
}
