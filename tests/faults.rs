//! Network faults under steady traffic (issue 18): three `weft` processes,
//! each in its own network namespace, Redis and Cassandra behind relays in
//! two more ([`common::fault_cluster`]). Senders and recipients are spread
//! over the three nodes and behave as careful clients do
//! ([`common::traffic`]). For each fault: no acked message lost, none stored
//! twice, every recipient holds the full history within the stated bound
//! after healing, no ghost presence, and `/readyz` and the metrics tell the
//! truth while it lasts. Bounds and measured figures: docs/reliability.md.
//!
//! Needs root (network namespaces, veth, a bridge); fails with the reason otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::fault_cluster::{FaultCluster, NsNode};
use common::traffic::{Inbox, Sent, Want, steady_recipient, steady_sender};
use common::ws::{user_token, wait_within};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// After a fault heals, every recipient holds every acked message within this.
const CONVERGE: Duration = Duration::from_secs(30);
/// After a fault heals, membership, presence and readiness are right within this.
const SETTLE: Duration = Duration::from_secs(20);
/// Time between one sender's messages.
const PACE: Duration = Duration::from_millis(50);

const PEOPLE: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "gina", "frank", "hana"];

/// An application, two chats of everyone, and every user's token.
struct Scene {
    token: String,
    chats: [u64; 2],
    jwt: BTreeMap<&'static str, String>,
}

async fn scene(cluster: &FaultCluster) -> Scene {
    let s = cluster.nodes[0].server();
    let token = s.new_app().await;
    let x = common::ws::chat_with(&s, &token, &PEOPLE).await;
    let y = common::ws::chat_with(&s, &token, &PEOPLE).await;
    let mut jwt = BTreeMap::new();
    for user in PEOPLE {
        jwt.insert(user, user_token(&s, &token, user).await);
    }
    Scene { token, chats: [x, y], jwt }
}

/// Steady traffic: alice sends on A into x, gina on B into y, carol on C
/// into y; bob reads on B, dave on A, erin on C (each falls over to the
/// others only when its node refuses it).
struct Traffic {
    stop: Arc<AtomicBool>,
    want: Want,
    senders: Vec<(&'static str, u64, JoinHandle<Sent>)>,
    recipients: Vec<(&'static str, JoinHandle<Inbox>)>,
}

fn traffic(cluster: &FaultCluster, scene: &Scene) -> Traffic {
    let [x, y] = scene.chats;
    let stop = Arc::new(AtomicBool::new(false));
    let want: Want = Arc::new(std::sync::Mutex::new(None));
    let limit = Duration::from_secs(600);
    let recipients = [("bob", 1), ("dave", 0), ("erin", 2)]
        .into_iter()
        .map(|(user, first)| {
            let task = steady_recipient(
                cluster.bases_from(first),
                scene.jwt[user].clone(),
                vec![x, y],
                Arc::clone(&want),
                limit,
            );
            (user, tokio::spawn(task))
        })
        .collect();
    let senders = [("alice", 0, x), ("gina", 1, y), ("carol", 2, y)]
        .into_iter()
        .map(|(user, first, chat)| {
            let task = steady_sender(
                cluster.bases_from(first),
                scene.jwt[user].clone(),
                chat,
                user,
                PACE,
                Arc::clone(&stop),
            );
            (user, chat, tokio::spawn(task))
        })
        .collect();
    Traffic { stop, want, senders, recipients }
}

/// What the traffic showed once stopped and checked.
#[derive(Debug)]
struct Outcome {
    acked: usize,
    retried: usize,
    refusals: BTreeMap<String, usize>,
    slowest_ack: Duration,
    /// From the heal to the last recipient holding everything.
    converged: Duration,
    gap_syncs: usize,
    sessions: usize,
}

/// Stops the senders, checks that every acked message is stored once under
/// its acked number, and that every recipient holds them all within
/// [`CONVERGE`] of `healed`.
async fn finish(cluster: &FaultCluster, scene: &Scene, traffic: Traffic, healed: Instant) -> Outcome {
    traffic.stop.store(true, Ordering::Relaxed);
    let mut acked: BTreeMap<u64, Vec<(String, u64)>> = BTreeMap::new();
    let (mut retried, mut refusals, mut slowest_ack) = (0, BTreeMap::new(), Duration::ZERO);
    for (user, chat, task) in traffic.senders {
        let sent = task.await.unwrap();
        assert!(!sent.acked.is_empty(), "{user} had nothing acked");
        retried += sent.retried;
        slowest_ack = slowest_ack.max(sent.slowest_ack);
        for (code, n) in sent.refusals {
            *refusals.entry(code).or_default() += n;
        }
        acked.entry(chat).or_default().extend(sent.acked);
    }
    let s = cluster.nodes[0].server();
    let mut targets = BTreeMap::new();
    for (chat, acked) in &acked {
        let upto = acked.iter().map(|(_, seq)| *seq).max().unwrap_or(0);
        let stored = stored_history(&s, &scene.token, *chat, upto).await;
        let mut by_body: BTreeMap<&str, u64> = BTreeMap::new();
        for (seq, body) in &stored {
            if let Some(first) = by_body.insert(body.as_str(), *seq) {
                panic!("{body} stored twice in chat {chat}, as {first} and {seq}");
            }
        }
        for (id, seq) in acked {
            assert_eq!(by_body.get(id.as_str()), Some(seq), "{id} was acked as {seq}");
        }
        targets.insert(*chat, acked.iter().map(|(_, seq)| *seq).collect::<BTreeSet<u64>>());
    }
    *traffic.want.lock().unwrap() = Some(targets.clone());
    let (mut converged, mut gap_syncs, mut sessions) = (Duration::ZERO, 0, 0);
    for (user, task) in traffic.recipients {
        let inbox = tokio::time::timeout_at(healed + CONVERGE + Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("{user} never held the full history"))
            .unwrap();
        for (chat, seqs) in &targets {
            assert!(seqs.is_subset(&inbox.held(*chat)), "{user} misses some of chat {chat}");
        }
        let took = inbox.complete_at.unwrap().saturating_duration_since(healed);
        converged = converged.max(took);
        gap_syncs += inbox.gap_syncs;
        sessions += inbox.sessions;
    }
    let outcome = Outcome {
        acked: targets.values().map(BTreeSet::len).sum(),
        retried,
        refusals,
        slowest_ack,
        converged,
        gap_syncs,
        sessions,
    };
    eprintln!(
        "acked {} (slowest {:?}), {} retries {:?}; recipients: {} sessions, {} syncs, converged {:?} after the heal",
        outcome.acked,
        outcome.slowest_ack,
        outcome.retried,
        outcome.refusals,
        outcome.sessions,
        outcome.gap_syncs,
        outcome.converged
    );
    assert!(converged <= CONVERGE, "recipients took {converged:?} after healing (bound {CONVERGE:?})");
    outcome
}

/// Every message of `chat` (number → body), by windows of 500 numbers up
/// to the first empty window past `upto`.
async fn stored_history(
    s: &common::server::TestServer,
    token: &str,
    chat: u64,
    upto: u64,
) -> Vec<(u64, String)> {
    let mut all = Vec::new();
    for after in (0..).step_by(500) {
        let path = format!(
            "/api/v1/applications/{token}/chats/{chat}/messages?after={after}&before={}&per_page=500",
            after + 501
        );
        let (status, list) = s.get(&path).await;
        assert_eq!(status, 200, "{list}");
        let list = list.as_array().unwrap();
        if list.is_empty() && after >= upto {
            return all;
        }
        all.extend(
            list.iter().map(|m| (m["number"].as_u64().unwrap(), m["body"].as_str().unwrap().to_owned())),
        );
    }
    unreachable!()
}

/// Waits until `user` shows `online` on every node.
async fn presence_everywhere(cluster: &FaultCluster, token: &str, user: &str, online: bool, limit: Duration) {
    for node in &cluster.nodes {
        let s = node.server();
        wait_within(limit, &format!("{user} online={online} on {}", node.id), || {
            let s = &s;
            async move {
                let (status, body) =
                    s.get(&format!("/api/v1/applications/{token}/users/{user}/presence")).await;
                if status != 200 {
                    eprintln!("{}: presence of {user} answered {status} {body}", node.id);
                    for line in node.log_lines("WARN").iter().chain(&node.log_lines("ERROR")).rev().take(5) {
                        eprintln!("  {line}");
                    }
                }
                status == 200 && body["online"] == online
            }
        })
        .await;
    }
}

/// Waits until `node`'s `weft_cluster_members` is `n`.
async fn members_metric(node: &NsNode, n: f64, limit: Duration) {
    wait_within(limit, &format!("{} counts {n} members", node.id), || async {
        node.metric("weft_cluster_members", "").await == n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_from_its_peers_for_20_s_loses_nothing_and_converges() {
    let cluster = common::fault_cluster::start(&[]).await;
    let scene = scene(&cluster).await;
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    // frank is on C before the cut and leaves during it; hana arrives on C during it.
    let frank = common::traffic::connect_any(std::slice::from_ref(&c.base), &scene.jwt["frank"]).await;
    presence_everywhere(&cluster, &scene.token, "frank", true, SETTLE).await;
    let traffic = traffic(&cluster, &scene);
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.isolate(2);
    let cut = Instant::now();
    // The metrics and the listings tell the truth: A and B see two members, C one.
    members_metric(a, 2.0, SETTLE).await;
    members_metric(b, 2.0, SETTLE).await;
    members_metric(c, 1.0, SETTLE).await;
    eprintln!("partition seen by every node after {:?}", cut.elapsed());
    frank.close().await;
    let hana = common::traffic::connect_any(std::slice::from_ref(&c.base), &scene.jwt["hana"]).await;
    // Every node keeps serving its clients: each still has its store and Redis.
    for node in [a, b, c] {
        let (ready, checks) = node.ready().await;
        assert!(ready, "{} not ready while cut from its peers: {checks}", node.id);
    }
    tokio::time::sleep_until(cut + Duration::from_secs(20)).await;

    cluster.reconnect(2);
    let healed = Instant::now();
    for node in [a, b, c] {
        members_metric(node, 3.0, SETTLE).await;
    }
    eprintln!("three members again after {:?}", healed.elapsed());
    presence_everywhere(&cluster, &scene.token, "frank", false, SETTLE).await;
    presence_everywhere(&cluster, &scene.token, "hana", true, SETTLE).await;
    eprintln!("presence right everywhere after {:?}", healed.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcome = finish(&cluster, &scene, traffic, healed).await;
    assert!(outcome.acked > 100, "too little traffic: {outcome:?}");
    hana.close().await;
}

/// The peer-link metrics of `node` towards `peer`: (frames sent, frames received, reconnects).
async fn link_metrics(node: &NsNode, peer: &str) -> (f64, f64, f64) {
    let labels = format!("{{peer=\"{peer}\"}}");
    (
        node.metric("weft_quic_frames_sent_total", &labels).await,
        node.metric("weft_quic_frames_received_total", &labels).await,
        node.metric("weft_quic_reconnects_total", &labels).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_for_20_s_loses_nothing_and_converges() {
    let cluster = common::fault_cluster::start(&[]).await;
    let scene = scene(&cluster).await;
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    // frank is on B before the cut and leaves during it; hana arrives on B during it.
    let frank = common::traffic::connect_any(std::slice::from_ref(&b.base), &scene.jwt["frank"]).await;
    presence_everywhere(&cluster, &scene.token, "frank", true, SETTLE).await;
    let traffic = traffic(&cluster, &scene);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A hears B; B does not hear A.
    cluster.net.cut(&cluster.hosts[0], &cluster.hosts[1]);
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = (link_metrics(a, "node-b").await, link_metrics(b, "node-a").await);
    tokio::time::sleep(Duration::from_secs(4)).await;
    frank.close().await;
    let hana = common::traffic::connect_any(std::slice::from_ref(&b.base), &scene.jwt["hana"]).await;
    // Gossip goes round through C, so every node still sees all three, and
    // each still has its store and Redis: all stay ready.
    for node in [a, b, c] {
        let (ready, checks) = node.ready().await;
        assert!(ready, "{} not ready during a one-way cut between A and B: {checks}", node.id);
        assert_eq!(node.members().await.len(), 3, "{} lost a member", node.id);
    }
    tokio::time::sleep_until(cut + Duration::from_secs(19)).await;
    // The link metrics show the cut: what A sends B stops arriving.
    let during = (link_metrics(a, "node-b").await, link_metrics(b, "node-a").await);
    let (sent, arrived) = (during.0.0 - before.0.0, during.1.1 - before.1.1);
    eprintln!("during the cut A sent B {sent} frames, B received {arrived} from A");
    assert!(sent > 0.0 && arrived < sent, "the cut did not show: A sent {sent}, B got {arrived}");
    tokio::time::sleep_until(cut + Duration::from_secs(20)).await;

    cluster.net.heal(&cluster.hosts[0], &cluster.hosts[1]);
    let healed = Instant::now();
    for node in [a, b, c] {
        members_metric(node, 3.0, SETTLE).await;
    }
    presence_everywhere(&cluster, &scene.token, "frank", false, SETTLE).await;
    presence_everywhere(&cluster, &scene.token, "hana", true, SETTLE).await;
    eprintln!("presence right everywhere after {:?}", healed.elapsed());
    // The dead connection was replaced (QUIC's idle timeout is 10 s; the cut lasted 20).
    wait_within(SETTLE, "A and B reconnected", || async {
        link_metrics(a, "node-b").await.2 >= 1.0 && link_metrics(b, "node-a").await.2 >= 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcome = finish(&cluster, &scene, traffic, healed).await;
    assert!(outcome.acked > 100, "too little traffic: {outcome:?}");
    hana.close().await;
}

/// Which service a scenario slows down and takes away.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Service {
    Redis,
    Cassandra,
}

/// Under steady traffic the service answers 300 ms late for 10 s, then is
/// unreachable (its link down: packets vanish) for 10 s, then comes back.
async fn slow_then_gone(service: Service) {
    // Short store and Redis timeouts, so a node notices the outage in seconds.
    let cluster = common::fault_cluster::start(&[("WEFT_CQL_REQUEST_TIMEOUT_MS", "2000")]).await;
    let scene = scene(&cluster).await;
    let (relay, host, check, errors) = match service {
        Service::Redis => (&cluster.redis, &cluster.redis_host, "redis", "weft_redis_errors_total"),
        Service::Cassandra => (&cluster.cql, &cluster.cql_host, "store", "weft_store_errors_total"),
    };
    let frank = common::traffic::connect_any(&[cluster.nodes[2].base.clone()], &scene.jwt["frank"]).await;
    presence_everywhere(&cluster, &scene.token, "frank", true, SETTLE).await;
    let traffic = traffic(&cluster, &scene);
    tokio::time::sleep(Duration::from_secs(2)).await;

    relay.set_delay(Duration::from_millis(300));
    let slow = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Slow is not down: every node stays ready.
    for node in &cluster.nodes {
        let (ready, checks) = node.ready().await;
        assert!(ready, "{} not ready while {service:?} is slow: {checks}", node.id);
    }
    tokio::time::sleep_until(slow + Duration::from_secs(10)).await;
    relay.set_delay(Duration::ZERO);

    let errors_before: Vec<f64> =
        futures::future::join_all(cluster.nodes.iter().map(|n| n.metric(errors, ""))).await;
    cluster.net.link_down(host);
    let gone = Instant::now();
    frank.close().await;
    // Every node says it is not ready, and why, within the outage.
    futures::future::join_all(cluster.nodes.iter().map(|node| async move {
        let what = format!("{} not ready without {service:?}", node.id);
        wait_within(Duration::from_millis(9500), &what, || async {
            let (ready, checks) = node.ready().await;
            !ready && checks["checks"][check] == false
        })
        .await;
    }))
    .await;
    eprintln!("every node not ready {:?} into the outage", gone.elapsed());
    tokio::time::sleep_until(gone + Duration::from_secs(10)).await;
    let errors_after: Vec<f64> =
        futures::future::join_all(cluster.nodes.iter().map(|n| n.metric(errors, ""))).await;
    assert!(
        errors_after.iter().zip(&errors_before).any(|(after, before)| after > before),
        "{errors} did not move: {errors_before:?} → {errors_after:?}"
    );

    cluster.net.link_up(host);
    let healed = Instant::now();
    for node in &cluster.nodes {
        wait_within(SETTLE, &format!("{} ready again", node.id), || async { node.ready().await.0 }).await;
    }
    eprintln!("every node ready {:?} after the outage", healed.elapsed());
    presence_everywhere(&cluster, &scene.token, "frank", false, SETTLE).await;
    eprintln!("frank offline everywhere {:?} after the outage", healed.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcome = finish(&cluster, &scene, traffic, healed).await;
    // At 300 ms a round trip, a send takes seconds: fewer are acked.
    assert!(outcome.acked > 20, "too little traffic: {outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slow_then_unreachable_loses_nothing_and_readyz_tells() {
    slow_then_gone(Service::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_slow_then_unreachable_loses_nothing_and_readyz_tells() {
    slow_then_gone(Service::Cassandra).await;
}

/// libfaketime's library, which `scripts/test.sh` installs (Debian's `faketime`).
fn libfaketime() -> String {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ];
    let found = candidates.iter().find(|p| std::path::Path::new(p).exists());
    let found = found.unwrap_or_else(|| {
        panic!("libfaketime is missing ({candidates:?}): `apt-get install faketime` (scripts/test.sh does)")
    });
    (*found).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_clock_jumping_30_s_either_way_loses_nothing() {
    // C's wall clock (CLOCK_REALTIME, as an NTP step moves it) follows the
    // offset in this file, read at every call; its monotonic clock is left alone.
    let dir = tempfile::tempdir().unwrap();
    let offset = dir.path().join("offset");
    std::fs::write(&offset, "+0s").unwrap();
    let faked: Vec<(String, String)> = [
        ("LD_PRELOAD", libfaketime()),
        ("FAKETIME_TIMESTAMP_FILE", offset.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_owned()),
        ("DONT_FAKE_MONOTONIC", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let cluster = common::fault_cluster::start_with(&[], [vec![], vec![], faked]).await;
    let scene = scene(&cluster).await;
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    let mut frank =
        Some(common::traffic::connect_any(std::slice::from_ref(&c.base), &scene.jwt["frank"]).await);
    presence_everywhere(&cluster, &scene.token, "frank", true, SETTLE).await;
    let traffic = traffic(&cluster, &scene);
    tokio::time::sleep(Duration::from_secs(2)).await;

    for (step, jump) in ["+30s", "-30s"].into_iter().enumerate() {
        std::fs::write(&offset, jump).unwrap();
        let jumped = Instant::now();
        if step == 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            frank.take().unwrap().close().await;
        }
        // The jump is real: what C stamps is 30 s off.
        let off = clock_offset(c, &scene.token, scene.chats[0], jump).await;
        let want: i64 = if step == 0 { 30 } else { -30 };
        assert!((off - want).abs() <= 3, "C's clock is {off} s off, not {want} s");
        tokio::time::sleep_until(jumped + Duration::from_secs(10)).await;
        // The clock is not a service: every node stays ready, and a member.
        for node in [a, b, c] {
            let (ready, checks) = node.ready().await;
            assert!(ready, "{} not ready with C's clock at {jump}: {checks}", node.id);
            assert_eq!(node.members().await.len(), 3, "{} lost a member with C's clock at {jump}", node.id);
        }
    }
    std::fs::write(&offset, "+0s").unwrap();
    let healed = Instant::now();
    presence_everywhere(&cluster, &scene.token, "frank", false, SETTLE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcome = finish(&cluster, &scene, traffic, healed).await;
    assert!(outcome.acked > 100, "too little traffic: {outcome:?}");
}

/// How far the node's wall clock is from ours, in seconds, by the
/// `created_at` of a message posted through it (`…T13:52:35.123Z`).
async fn clock_offset(node: &NsNode, token: &str, chat: u64, label: &str) -> i64 {
    let seconds_of_day = |hms: &str| -> i64 {
        hms.split(':').map(|n| n.parse::<i64>().unwrap()).fold(0, |acc, n| acc * 60 + n)
    };
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    let (status, message) =
        node.server().post(&path, serde_json::json!({"body": format!("clock probe {label}")})).await;
    assert_eq!(status, 201, "{message}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let created = message["created_at"].as_str().unwrap();
    let hms = created.split('T').nth(1).unwrap().get(..8).unwrap();
    let diff = (seconds_of_day(hms) - now % 86_400).rem_euclid(86_400);
    if diff > 43_200 { diff - 86_400 } else { diff }
}

/// How long the loss lasts: 30 s by default (the minute, halved for
/// the suite's time); `WEFT_FAULT_SECS=60` runs the full minute.
fn loss_duration() -> Duration {
    let secs = std::env::var("WEFT_FAULT_SECS").map_or(30, |v| {
        v.parse::<u64>().unwrap_or_else(|e| panic!("WEFT_FAULT_SECS={v} is not a number of seconds: {e}"))
    });
    Duration::from_secs(secs)
}

/// The sum over `node`'s peers of (frames sent, frames received, reconnects, resyncs, frames dropped).
async fn peer_totals(node: &NsNode) -> [f64; 5] {
    let mut sums = [0.0; 5];
    for (i, name) in [
        "weft_quic_frames_sent_total",
        "weft_quic_frames_received_total",
        "weft_quic_reconnects_total",
        "weft_quic_resyncs_total",
        "weft_quic_frames_dropped_total",
    ]
    .into_iter()
    .enumerate()
    {
        sums[i] = node.metric(name, "").await;
    }
    sums
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_and_50_ms_jitter_on_every_peer_link_loses_nothing_and_converges() {
    let cluster = common::fault_cluster::start(&[]).await;
    let scene = scene(&cluster).await;
    let (a, b, c) = (&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]);
    // frank is on C before the loss and leaves during it; hana arrives on C during it.
    let frank = common::traffic::connect_any(std::slice::from_ref(&c.base), &scene.jwt["frank"]).await;
    presence_everywhere(&cluster, &scene.token, "frank", true, SETTLE).await;
    let traffic = traffic(&cluster, &scene);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut before = Vec::new();
    for node in [a, b, c] {
        before.push(peer_totals(node).await);
    }
    // Every node drops 5 % of what it sends each peer, and every packet
    // between two nodes is held 0–100 ms (50 ms ± 50 ms, drawn per packet, so
    // packets overtake each other): every link, both ways.
    for (i, host) in cluster.hosts.iter().enumerate() {
        let peers: Vec<&common::netns::Host> =
            cluster.hosts.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, h)| h).collect();
        cluster.net.lossy(host, &peers, 5);
    }
    let hosts: Vec<&common::netns::Host> = cluster.hosts.iter().collect();
    let jitter = common::impair::Jitter::start(&hosts, Duration::from_millis(50), Duration::from_millis(50));
    let lossy = Instant::now();
    let lasts = loss_duration();
    tokio::time::sleep(Duration::from_secs(3)).await;
    frank.close().await;
    let hana = common::traffic::connect_any(std::slice::from_ref(&c.base), &scene.jwt["hana"]).await;
    // Loss and jitter are not a partition: presence travels, and every node stays ready and a member.
    presence_everywhere(&cluster, &scene.token, "frank", false, SETTLE).await;
    presence_everywhere(&cluster, &scene.token, "hana", true, SETTLE).await;
    eprintln!("presence right everywhere {:?} into the loss", lossy.elapsed());
    while lossy.elapsed() + Duration::from_secs(5) < lasts {
        for node in [a, b, c] {
            let (ready, checks) = node.ready().await;
            assert!(ready, "{} not ready under 5 % peer loss and jitter: {checks}", node.id);
            assert_eq!(node.members().await.len(), 3, "{} lost a member under peer loss and jitter", node.id);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    tokio::time::sleep_until(lossy + lasts).await;

    // The loss was real: the kernel dropped about one packet in twenty on every node.
    for (node, host) in [a, b, c].into_iter().zip(&cluster.hosts) {
        let (seen, dropped) = cluster.net.loss_counts(host);
        let share = dropped as f64 / seen.max(1) as f64;
        eprintln!("{} sent its peers {seen} packets, {dropped} dropped ({:.1} %)", node.id, share * 100.0);
        assert!(seen > 500 && (0.02..0.10).contains(&share), "{}: {dropped} of {seen} dropped", node.id);
    }
    // The jitter was real: every packet between nodes went through it, held
    // between 0 and 100 ms, and packets overtook each other.
    let held = jitter.stats();
    eprintln!("jitter: {held:?}");
    assert!(
        held.forwarded > 1_000
            && held.overtaking > 50
            && held.min_ms < 10
            && (90..=100).contains(&held.max_ms)
            && held.refused == 0,
        "the jitter did not hold packets as asked: {held:?}"
    );
    drop(jitter);
    for host in &cluster.hosts {
        cluster.net.lossless(host);
    }
    let healed = Instant::now();
    for (node, before) in [a, b, c].into_iter().zip(&before) {
        let after = peer_totals(node).await;
        let moved: Vec<f64> = after.iter().zip(before).map(|(x, y)| x - y).collect();
        eprintln!(
            "{} during the loss: {} frames sent, {} received, {} reconnects, {} resyncs, {} dropped",
            node.id, moved[0], moved[1], moved[2], moved[3], moved[4]
        );
    }
    for node in [a, b, c] {
        members_metric(node, 3.0, SETTLE).await;
    }
    presence_everywhere(&cluster, &scene.token, "frank", false, SETTLE).await;
    presence_everywhere(&cluster, &scene.token, "hana", true, SETTLE).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcome = finish(&cluster, &scene, traffic, healed).await;
    assert!(outcome.acked > 100, "too little traffic: {outcome:?}");
    hana.close().await;
}
