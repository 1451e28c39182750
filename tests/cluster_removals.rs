//! A member's removal on a cluster node returns only once every peer has
//! confirmed it forgot the chat's members (or after `cluster.removal_wait_ms`
//! for a peer that never does), over real QUIC and a real Redis; joins do not
//! wait. The peer here is a bare transport, so the test decides when it answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::server::redis_url;
use tokio::sync::mpsc;
use weft::cluster::directory::Directory;
use weft::cluster::fabric::{Applied, ClusterFabric, Peers};
use weft::cluster::tls::{self, NodeTls};
use weft::cluster::transport::{Inbound, Transport, TransportConfig};
use weft::cluster::wire::Wire;
use weft::delivery::{Fabric as _, Hub};
use weft::ids::{AppId, ChatNumber, UserId};
use weft::redis_conn::{RedisConfig, RedisConn};

const DEADLINE: Duration = Duration::from_secs(20);

struct Node {
    transport: Transport,
    inbound: mpsc::Receiver<Inbound>,
}

fn start(tls: &NodeTls, id: &str) -> Node {
    let config = TransportConfig { listen: "127.0.0.1:0".parse().unwrap(), ..TransportConfig::default() };
    let (tx, inbound) = mpsc::channel(64);
    Node { transport: Transport::bind(&config, tls, id.to_owned(), tx).unwrap(), inbound }
}

async fn redis() -> RedisConn {
    let config = RedisConfig { url: redis_url(), ..RedisConfig::default() };
    match RedisConn::connect(&config).await {
        Ok(Some(conn)) => conn,
        other => panic!("cannot reach Redis at {}: {:?}", redis_url(), other.err()),
    }
}

/// The next frame a node received, decoded.
async fn next(node: &mut Node) -> (String, Wire) {
    let inbound = tokio::time::timeout(DEADLINE, node.inbound.recv()).await.unwrap().unwrap();
    (inbound.from, Wire::decode(&inbound.frame).unwrap())
}

/// Node "a" (a fabric) and its peer "b" (a bare transport).
async fn pair(removal_wait: Duration) -> (ClusterFabric, Applied, Node, Node) {
    let dir = tempfile::tempdir().unwrap();
    let generated = tls::generate(dir.path(), &["a", "b"], false).unwrap();
    let load =
        |name: &str| NodeTls::load(&generated.nodes.iter().find(|(n, _)| n == name).unwrap().1).unwrap();
    let (a, b) = (start(&load("a"), "a"), start(&load("b"), "b"));
    let peers = Peers::default();
    peers.insert("b".into(), b.transport.local_addr());
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let directory = Directory::new(redis().await, prefix, "a".into());
    let applied = Applied::default();
    let fabric = ClusterFabric::new(
        Hub::default(),
        directory,
        a.transport.clone(),
        peers,
        applied.clone(),
        removal_wait,
    );
    (fabric, applied, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_returns_once_every_peer_forgot_the_members() {
    let (fabric, applied, mut a, mut b) = pair(Duration::from_secs(600)).await;
    let fabric = std::sync::Arc::new(fabric);
    let (app, chat, vic) = (AppId::generate(), ChatNumber(3), UserId::parse("vic").unwrap());

    let removal = {
        let (fabric, app, vic) = (fabric.clone(), app.clone(), vic.clone());
        tokio::spawn(async move { fabric.members_changed(&app, chat, &vic, false).await })
    };
    let (from, wire) = next(&mut b).await;
    let Wire::Members { joined: false, ack: Some(ack), user, .. } = wire else {
        panic!("a removal must ask its peers to confirm: {wire:?}");
    };
    assert_eq!((from.as_str(), user.as_str()), ("a", "vic"));
    // The peer has not answered: the removal is still waiting (it waits up to 600 s).
    assert!(!removal.is_finished(), "the removal returned before its peer confirmed");

    // The peer answers (as `cluster::node` does once its cache forgot the chat).
    let reply = Bytes::from(Wire::MembersApplied { ack }.encode());
    b.transport.send("a", a.transport.local_addr(), reply).unwrap();
    let (from, wire) = next(&mut a).await;
    assert_eq!((from.as_str(), &wire), ("b", &Wire::MembersApplied { ack }));
    applied.applied(ack, &from);
    tokio::time::timeout(DEADLINE, removal)
        .await
        .expect("the removal did not return once confirmed")
        .unwrap();

    // A join tells the peer but waits for nobody.
    tokio::time::timeout(DEADLINE, fabric.members_changed(&app, chat, &vic, true)).await.unwrap();
    let (_, wire) = next(&mut b).await;
    assert!(matches!(wire, Wire::Members { joined: true, ack: None, .. }), "{wire:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_confirms_is_waited_for_no_longer_than_configured() {
    let (fabric, _applied, _a, mut b) = pair(Duration::from_millis(200)).await;
    let (app, vic) = (AppId::generate(), UserId::parse("vic").unwrap());
    let removal = fabric.members_changed(&app, ChatNumber(3), &vic, false);
    tokio::time::timeout(DEADLINE, removal).await.expect("a silent peer held the removal up for good");
    let (_, wire) = next(&mut b).await;
    assert!(matches!(wire, Wire::Members { joined: false, ack: Some(_), .. }), "{wire:?}");
}
