//! Cluster membership over real UDP gossip on 127.0.0.1 `:0` ports, several nodes in
//! one process, with gossip intervals shortened through the config.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{Instant, sleep, timeout};
use weft::cluster::member::{Member, NodeInfo};
use weft::cluster::membership::{Change, ChangeStream, Membership, MembershipConfig};

/// Generous deadline for anything gossip must do, on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(20);

fn config(seeds: Vec<String>) -> MembershipConfig {
    MembershipConfig {
        cluster_id: "weft-test".into(),
        gossip_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        seeds,
        gossip_interval_ms: 100,
        dead_grace_ms: 10_000,
        ..MembershipConfig::default()
    }
}

/// Made-up QUIC/HTTP addresses: membership publishes them, nothing binds them.
fn info(node_id: &str, port: u16) -> NodeInfo {
    NodeInfo {
        node_id: node_id.into(),
        quic_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], port + 1000)),
    }
}

async fn join(config: &MembershipConfig, info: NodeInfo) -> Membership {
    init_logs();
    Membership::join(config, info).await.unwrap()
}

/// `node-1` (no seeds), then `node-2` and `node-3` seeded with it; waits until all three see all three.
async fn three_nodes(config: &MembershipConfig) -> (Membership, Membership, Membership) {
    let n1 = join(&MembershipConfig { seeds: Vec::new(), ..config.clone() }, info("node-1", 7001)).await;
    let seeded = MembershipConfig { seeds: vec![n1.gossip_advertise_addr().to_string()], ..config.clone() };
    let n2 = join(&seeded, info("node-2", 7002)).await;
    let n3 = join(&seeded, info("node-3", 7003)).await;
    for node in [&n1, &n2, &n3] {
        wait_for(node, |members| ids(members) == ["node-1", "node-2", "node-3"]).await;
    }
    (n1, n2, n3)
}

fn ids(members: &[Member]) -> Vec<&str> {
    members.iter().map(|m| m.node_id.as_str()).collect()
}

fn find<'a>(members: &'a [Member], node_id: &str) -> Option<&'a Member> {
    members.iter().find(|m| m.node_id == node_id)
}

/// Polls `node.snapshot()` until `pred` holds; panics with the last snapshot after [`DEADLINE`].
async fn wait_for(node: &Membership, pred: impl Fn(&[Member]) -> bool) -> Vec<Member> {
    let start = Instant::now();
    loop {
        let members = node.snapshot();
        if pred(&members) {
            return members;
        }
        if start.elapsed() > DEADLINE {
            panic!("{}: predicate still false after {DEADLINE:?}; snapshot: {members:#?}", node.node_id());
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Reads `changes` until one matches `pred`, within `deadline`; returns it and all before it.
async fn wait_change(
    changes: &mut ChangeStream,
    deadline: Duration,
    pred: impl Fn(&Change) -> bool,
) -> Vec<Change> {
    let mut seen = Vec::new();
    let found = timeout(deadline, async {
        while let Some(change) = changes.recv().await {
            let done = pred(&change);
            seen.push(change);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "no matching change within {deadline:?} (stream ended: {found:?}); seen: {seen:#?}"
    );
    seen
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_with_their_addresses() {
    let (n1, n2, n3) = three_nodes(&config(Vec::new())).await;
    for (node, port) in [(&n1, 7001), (&n2, 7002), (&n3, 7003)] {
        assert_ne!(node.gossip_addr().port(), 0);
        let members = node.snapshot();
        for (i, m) in members.iter().enumerate() {
            let expected = info(&format!("node-{}", i + 1), 7001 + i as u16);
            assert_eq!((m.quic_addr, m.http_addr), (expected.quic_addr, expected.http_addr), "{m:?}");
            assert!(m.generation > 0);
        }
        let selves: Vec<&Member> = members.iter().filter(|m| m.is_self).collect();
        assert_eq!(selves.len(), 1, "{members:#?}");
        assert_eq!(selves[0].quic_addr.port(), port);
        assert_eq!(selves[0].generation, node.generation());
    }

    // A new subscriber first gets the current members, as `Added`.
    let mut changes = n1.changes();
    let initial =
        wait_change(&mut changes, DEADLINE, |c| matches!(c, Change::Added(m) if m.node_id == "node-3")).await;
    let added: Vec<&str> = initial
        .iter()
        .filter_map(|c| match c {
            Change::Added(m) => Some(m.node_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(added, ["node-1", "node-2", "node-3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_state_propagates() {
    let (n1, n2, n3) = three_nodes(&config(Vec::new())).await;
    let mut changes = n1.changes();
    let before = find(&n1.snapshot(), "node-2").cloned().unwrap();
    assert_eq!((before.connections, before.ready, before.draining), (0, false, false));

    n2.set_connections(42).await;
    n2.set_ready(true).await;
    let published = |m: Option<&Member>| m.is_some_and(|m| m.connections == 42 && m.ready && !m.draining);
    for node in [&n1, &n2, &n3] {
        wait_for(node, |members| published(find(members, "node-2"))).await;
    }
    wait_change(&mut changes, DEADLINE, |c| matches!(c, Change::Updated(m) if published(Some(m)))).await;

    n2.set_draining(true).await;
    n2.set_ready(false).await;
    for node in [&n1, &n3] {
        wait_for(node, |members| find(members, "node-2").is_some_and(|m| m.draining && !m.ready)).await;
    }
    wait_change(
        &mut changes,
        DEADLINE,
        |c| matches!(c, Change::Updated(m) if m.node_id == "node-2" && m.draining),
    )
    .await;
    // Nothing else moved.
    let n1_view = n1.snapshot();
    assert!(find(&n1_view, "node-1").is_some_and(|m| !m.ready && m.connections == 0), "{n1_view:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_is_removed_without_waiting_for_the_failure_detector() {
    // With this threshold the failure detector would take minutes: only the `left` flag
    // can remove the node within the deadline.
    let config = MembershipConfig { phi_threshold: 1_000.0, ..config(Vec::new()) };
    assert!(config.failure_detection_bound() > Duration::from_secs(60));
    let (n1, n2, n3) = three_nodes(&config).await;
    let (mut c1, mut c2, mut own) = (n1.changes(), n2.changes(), n3.changes());

    n3.leave().await.unwrap();
    for changes in [&mut c1, &mut c2] {
        wait_change(changes, DEADLINE, |c| *c == Change::Removed("node-3".into())).await;
    }
    for node in [&n1, &n2] {
        assert_eq!(ids(&node.snapshot()), ["node-1", "node-2"]);
    }
    // The leaving node's own stream ends once gossip has stopped.
    let ended = timeout(DEADLINE, async { while own.recv().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the change stream of a node that left did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_is_removed_within_the_failure_detection_bound() {
    let config = config(Vec::new());
    let (n1, n2, n3) = three_nodes(&config).await;
    let (mut c1, mut c2) = (n1.changes(), n2.changes());

    // No leave: dropping the last handle stops gossip as a crash would.
    drop(n3);
    // The bound, plus slack for a machine busy with other builds.
    let deadline = config.failure_detection_bound() + Duration::from_secs(5);
    for changes in [&mut c1, &mut c2] {
        wait_change(changes, deadline, |c| *c == Change::Removed("node-3".into())).await;
    }
    for node in [&n1, &n2] {
        wait_for(node, |members| ids(members) == ["node-1", "node-2"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_supersedes_its_old_generation() {
    let config = config(Vec::new());
    let (n1, n2, n3) = three_nodes(&config).await;
    let old_generation = n3.generation();
    let mut changes = n1.changes();

    // Crash node-3 and start it again at once with a new QUIC address: for a while both
    // generations are live in gossip.
    drop(n3);
    let seeded = MembershipConfig { seeds: vec![n1.gossip_advertise_addr().to_string()], ..config.clone() };
    let n3 = join(&seeded, info("node-3", 7103)).await;
    assert!(n3.generation() > old_generation);

    let restarted =
        |m: &Member| m.node_id == "node-3" && m.generation == n3.generation() && m.quic_addr.port() == 7103;
    // Either the new generation replaced the old one (Updated) or the old one was
    // declared dead first (Removed, then Added).
    let seen = wait_change(
        &mut changes,
        DEADLINE,
        |c| matches!(c, Change::Added(m) | Change::Updated(m) if restarted(m)),
    )
    .await;
    for node in [&n1, &n2, &n3] {
        wait_for(node, |members| {
            ids(members) == ["node-1", "node-2", "node-3"] && find(members, "node-3").is_some_and(restarted)
        })
        .await;
    }
    assert_eq!(find(&n3.snapshot(), "node-3").map(|m| m.is_self), Some(true));

    // Once the failure detector gives up on the old generation, nothing changes.
    sleep(config.failure_detection_bound() * 2).await;
    let members = n1.snapshot();
    assert_eq!(ids(&members), ["node-1", "node-2", "node-3"]);
    assert!(find(&members, "node-3").is_some_and(restarted), "{members:#?}");
    let mut later = Vec::new();
    while let Ok(Some(change)) = timeout(Duration::from_millis(10), changes.recv()).await {
        later.push(change);
    }
    assert!(
        !later.iter().any(|c| *c == Change::Removed("node-3".into())),
        "node-3 was removed after it restarted: {seen:#?} then {later:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_given_as_a_host_name_is_resolved() {
    let config = config(Vec::new());
    let n1 = join(&config, info("node-1", 7001)).await;
    let by_name =
        MembershipConfig { seeds: vec![format!("localhost:{}", n1.gossip_addr().port())], ..config };
    let n2 = join(&by_name, info("node-2", 7002)).await;
    for node in [&n1, &n2] {
        wait_for(node, |members| ids(members) == ["node-1", "node-2"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_before_binding() {
    let config = MembershipConfig { gossip_interval_ms: 0, ..config(Vec::new()) };
    let err = Membership::join(&config, info("node-1", 7001)).await.unwrap_err();
    assert_eq!(err.to_string(), "invalid value for `gossip.gossip_interval_ms`: must be at least 1");
}
