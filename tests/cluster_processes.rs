//! Three `weft` processes on loopback (real Redis, real Cassandra, gossip
//! over UDP, QUIC with mutual TLS).
//!
//! - Every frame type crosses the processes, and a QUIC peer with a
//!   certificate of another CA is refused.
//! - Under steady traffic one node drains (SIGTERM) and another is killed
//!   (SIGKILL). Clients reconnect to a survivor and resume with `hello`;
//!   senders retry what was not acked with the same `client_msg_id`. Every
//!   acked message is in history once and reached every recipient once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::server::redis_url;
use common::trio::{Trio, as_server, member_ids, three_nodes};
use common::ws::{Client, history, send, send_to, user_token, wait_within};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_type_crosses_processes_and_a_rogue_peer_is_refused() {
    let trio = three_nodes().await;
    let (sa, sb, sc) = (as_server(&trio.nodes[0]), as_server(&trio.nodes[1]), as_server(&trio.nodes[2]));
    let token = sa.new_app().await;
    let chat = common::ws::chat_with(&sa, &token, &["alice", "bob", "carol", "dave", "erin"]).await;
    let mut alice = common::ws::connect(&sa, &token, "alice").await;
    let mut bob = common::ws::connect(&sb, &token, "bob").await;
    let mut carol = common::ws::connect(&sc, &token, "carol").await;
    let mut bob_laptop = common::ws::connect(&sc, &token, "bob").await;

    // message + ack: A to B and C, every device of bob.
    let ack = alice.request(send(1, chat, "hello", "a1")).await;
    assert_eq!(ack, json!({"type":"ack","id":1,"chat":chat,"seq":1}));
    for device in [&mut bob, &mut carol, &mut bob_laptop] {
        let m = device.next().await;
        assert_eq!((m["type"].as_str(), m["seq"].as_u64()), (Some("message"), Some(1)), "{m}");
        assert_eq!(m["body"], "hello");
    }
    // typing: B to A and C.
    bob.send(json!({"type":"typing","chat":chat})).await;
    for device in [&mut alice, &mut carol] {
        assert_eq!(device.next().await, json!({"type":"typing","chat":chat,"user":"bob"}));
    }
    // receipt: C to A, B and bob's laptop on C.
    carol.send(json!({"type":"read","chat":chat,"seq":1})).await;
    for device in [&mut alice, &mut bob, &mut bob_laptop] {
        assert_eq!(
            device.next().await,
            json!({"type":"receipt","chat":chat,"user":"carol","kind":"read","seq":1})
        );
    }
    // presence: dave comes online on B and leaves; alice on A hears both.
    let dave = common::ws::connect(&sb, &token, "dave").await;
    let online = next_presence(&mut alice, "dave").await;
    assert_eq!(online, json!({"type":"presence","user":"dave","online":true}));
    dave.close().await;
    let offline = next_presence(&mut alice, "dave").await;
    assert_eq!(offline["online"], false, "{offline}");
    // implicit direct chat: C to a user on A, and the answer back.
    let ack = carol.request(send_to(2, &["alice"], "psst", "c2")).await;
    let dm = ack["chat"].as_u64().unwrap();
    let m = alice.next().await;
    assert_eq!((m["chat"].as_u64(), m["body"].as_str()), (Some(dm), Some("psst")), "{m}");
    assert_eq!(alice.request(send(3, dm, "yes?", "a3")).await["seq"], 2);
    let m = carol.next().await;
    assert_eq!((m["chat"].as_u64(), m["body"].as_str()), (Some(dm), Some("yes?")), "{m}");
    // offline sync: erin was never online; she syncs on C what was sent on A.
    let mut erin = common::ws::connect(&sc, &token, "erin").await;
    let page = erin.request(json!({"type":"sync","id":"s","chat":chat,"after":0})).await;
    assert_eq!(common::ws::item_seqs(&page), [1], "{page}");

    // A peer whose certificate comes from another CA never gets a connection.
    let other_ca = tempfile::tempdir().unwrap();
    let theirs = weft::cluster::tls::generate(other_ca.path(), &["rogue"], false).unwrap();
    let rogue_tls = weft::cluster::tls::NodeTls::load(&theirs.nodes[0].1).unwrap();
    let (tx, _inbound) = tokio::sync::mpsc::channel(16);
    let rogue_config = weft::cluster::transport::TransportConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        reconnect_min_ms: 20,
        reconnect_max_ms: 200,
        hello_timeout_ms: 1_000,
        ..Default::default()
    };
    let rogue = weft::cluster::transport::Transport::bind(&rogue_config, &rogue_tls, "node-rogue".into(), tx)
        .unwrap();
    let listing = trio.nodes[0].get("/api/v1/cluster").await;
    let quic: std::net::SocketAddr = listing["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["node_id"] == "node-a")
        .and_then(|m| m["quic_addr"].as_str())
        .unwrap()
        .parse()
        .unwrap();
    rogue.send("node-a", quic, bytes::Bytes::from_static(b"anything")).unwrap();
    wait_within(Duration::from_secs(20), "the rogue failed twice", || async {
        rogue.stats().first().map_or(0, |s| s.connect_failures) >= 2
    })
    .await;
    assert!(!rogue.stats()[0].connected);
    rogue.shutdown().await;
    // A keeps serving: alice still hears bob.
    bob.request(send(4, chat, "still there?", "b4")).await;
    alice.until_message(chat, 2).await;
    // Each node's metrics see the cluster and its peers.
    let scraped = sa.http.get(sa.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(scraped.lines().any(|l| l == "weft_cluster_members 3"), "{scraped}");
    for peer in ["node-b", "node-c"] {
        let sent = format!("weft_quic_frames_sent_total{{peer=\"{peer}\"}}");
        assert!(scraped.lines().any(|l| l.starts_with(&sent) && !l.ends_with(" 0")), "no frames to {peer}");
    }
    erin.close().await;
}

/// The next `presence` frame about `user` (skipping anything else).
async fn next_presence(client: &mut Client, user: &str) -> Value {
    loop {
        let frame = client.next_any().await;
        if frame["type"] == "presence" && frame["user"] == user {
            return frame;
        }
    }
}

/// A WebSocket that may break: every read and write reports failure instead of panicking.
struct Link {
    ws: common::ws::Socket,
}

/// Opens a session on the first of `bases` that accepts one (the others are
/// draining or dead), reading its `welcome`.
async fn connect_any(bases: &[String], jwt: &str) -> Link {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for base in bases {
            let url = format!("{}/ws?token={jwt}", base.replace("http://", "ws://"));
            let Ok(Ok((ws, _))) =
                tokio::time::timeout(Duration::from_secs(2), tokio_tungstenite::connect_async(url)).await
            else {
                continue;
            };
            let mut link = Link { ws };
            if let Some(welcome) = link.next(Duration::from_secs(2)).await.ok().flatten()
                && welcome["type"] == "welcome"
            {
                return link;
            }
        }
        assert!(Instant::now() < deadline, "no node accepted a session within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Link {
    async fn send(&mut self, frame: &Value) -> Result<(), ()> {
        self.ws.send(Ws::text(frame.to_string())).await.map_err(|_| ())
    }

    /// The next text frame within `wait` (`Ok(None)`: none yet), or `Err` once the socket is gone.
    async fn next(&mut self, wait: Duration) -> Result<Option<Value>, ()> {
        let deadline = Instant::now() + wait;
        loop {
            let Ok(msg) = tokio::time::timeout_at(deadline, self.ws.next()).await else {
                return Ok(None);
            };
            match msg {
                Some(Ok(Ws::Text(text))) => return Ok(Some(serde_json::from_str(&text).unwrap())),
                Some(Ok(Ws::Ping(_) | Ws::Pong(_))) => {}
                _ => return Err(()),
            }
        }
    }
}

/// Sends to `chat` every `pace` until `stop`, from the first node of `bases`
/// that takes the session; on a broken session it reconnects and retries the
/// unacked message with the same `client_msg_id`. Returns (client_msg_id, seq)
/// of every acked message and how many sends were retried.
async fn steady_sender(
    bases: Vec<String>,
    jwt: String,
    chat: u64,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> (Vec<(String, u64)>, usize) {
    let mut acked = Vec::new();
    let mut retried = 0;
    let mut link = connect_any(&bases, &jwt).await;
    for n in 1..=400u64 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = format!("{tag}-{n}");
        let frame = send(n, chat, &id, &id);
        let deadline = Instant::now() + Duration::from_secs(90);
        'retry: loop {
            assert!(Instant::now() < deadline, "{id} was never acked");
            if link.send(&frame).await.is_ok() {
                loop {
                    match link.next(Duration::from_secs(10)).await {
                        Ok(Some(answer)) if answer["id"] == n => match answer["type"].as_str() {
                            Some("ack") => {
                                acked.push((id.clone(), answer["seq"].as_u64().unwrap()));
                                break 'retry;
                            }
                            // The claim of a send whose node died is settled after a while.
                            _ if answer["code"] == "in_flight"
                                || answer["code"].as_str().is_some_and(|c| c.ends_with("_unavailable")) =>
                            {
                                tokio::time::sleep(Duration::from_millis(250)).await;
                                retried += 1;
                                continue 'retry;
                            }
                            _ => panic!("{id}: unexpected answer {answer}"),
                        },
                        Ok(Some(_)) => {}
                        Ok(None) | Err(()) => break,
                    }
                }
            }
            // The session broke (drain or kill) before the ack: reconnect, same client_msg_id.
            retried += 1;
            link = connect_any(&bases, &jwt).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (acked, retried)
}

/// The numbers each recipient must end up holding, per chat, once the senders are done.
type Want = Arc<std::sync::Mutex<Option<BTreeMap<u64, BTreeSet<u64>>>>>;

/// What one recipient saw.
#[derive(Default, Debug)]
struct Inbox {
    /// Every number delivered live or in a `hello` catch-up, per chat.
    got: BTreeMap<u64, Vec<u64>>,
    /// Numbers fetched by `sync` after a gap was seen.
    synced: BTreeMap<u64, BTreeSet<u64>>,
    sessions: usize,
    gap_syncs: usize,
}

impl Inbox {
    fn held(&self, chat: u64) -> BTreeSet<u64> {
        let mut held: BTreeSet<u64> = self.got.get(&chat).into_iter().flatten().copied().collect();
        held.extend(self.synced.get(&chat).into_iter().flatten());
        held
    }

    /// The highest number up to which nothing is missing (numbers spent
    /// without a message count as held once a sync showed them absent).
    fn contiguous(&self, chat: u64, skipped: &BTreeSet<u64>) -> u64 {
        let held = self.held(chat);
        let mut n = 0;
        while held.contains(&(n + 1)) || skipped.contains(&(n + 1)) {
            n += 1;
        }
        n
    }
}

/// Reads `chats` as `jwt` from the first node of `bases` that takes the
/// session; on a broken session reconnects and resumes with `hello`; a gap
/// that stays open for 500 ms is filled with `sync` (a message can be acked
/// to a retry after its first node died before fanning it out). Stops once
/// it holds every number in `want` (set when the senders are done).
async fn steady_recipient(bases: Vec<String>, jwt: String, chats: Vec<u64>, want: Want) -> Inbox {
    let mut inbox = Inbox::default();
    let mut skipped: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let mut link = connect_any(&bases, &jwt).await;
        inbox.sessions += 1;
        let mut this_session: BTreeSet<(u64, u64)> = BTreeSet::new();
        if inbox.sessions > 1 {
            let resume: Vec<Value> = chats
                .iter()
                .map(|&chat| {
                    let empty = BTreeSet::new();
                    json!({"chat":chat,"after":inbox.contiguous(chat, skipped.get(&chat).unwrap_or(&empty))})
                })
                .collect();
            if link.send(&json!({"type":"hello","id":"h","resume":resume})).await.is_err() {
                continue;
            }
        }
        let mut gap_since: BTreeMap<u64, Instant> = BTreeMap::new();
        loop {
            assert!(Instant::now() < deadline, "recipient never completed: {inbox:?}");
            let frame = match link.next(Duration::from_millis(100)).await {
                Ok(frame) => frame,
                Err(()) => break,
            };
            if let Some(frame) = frame {
                let chat = frame["chat"].as_u64().unwrap_or(0);
                match (frame["type"].as_str(), frame["id"].as_str()) {
                    (Some("message"), _) => {
                        let seq = frame["seq"].as_u64().unwrap();
                        assert!(this_session.insert((chat, seq)), "{chat}/{seq} twice in one session");
                        assert!(
                            !inbox.got.get(&chat).is_some_and(|g| g.contains(&seq)),
                            "{chat}/{seq} delivered live again"
                        );
                        inbox.got.entry(chat).or_default().push(seq);
                    }
                    (Some("messages"), Some("h")) => {
                        for item in frame["items"].as_array().unwrap() {
                            let seq = item["seq"].as_u64().unwrap();
                            assert!(this_session.insert((chat, seq)), "{chat}/{seq} twice in one session");
                            inbox.got.entry(chat).or_default().push(seq);
                        }
                    }
                    (Some("messages"), Some(_)) => {
                        let items: BTreeSet<u64> = frame["items"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|m| m["seq"].as_u64().unwrap())
                            .collect();
                        inbox.synced.entry(chat).or_default().extend(items);
                    }
                    _ => {}
                }
            }
            // Gaps: a number above one not held, open for 500 ms, is synced.
            for &chat in &chats {
                let none = BTreeSet::new();
                let skip = skipped.get(&chat).unwrap_or(&none);
                let contiguous = inbox.contiguous(chat, skip);
                let top = inbox.held(chat).last().copied().unwrap_or(0);
                if top <= contiguous {
                    gap_since.remove(&chat);
                    continue;
                }
                let since = *gap_since.entry(chat).or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    inbox.gap_syncs += 1;
                    gap_since.remove(&chat);
                    let sync = json!({"type":"sync","id":format!("g{}", inbox.gap_syncs),"chat":chat,"after":contiguous,"limit":(top - contiguous).min(500)});
                    if link.send(&sync).await.is_err() {
                        break;
                    }
                    // Numbers below `top` the store does not have were spent by failed sends.
                    let answer = loop {
                        match link.next(Duration::from_secs(10)).await {
                            Ok(Some(f)) if f["type"] == "messages" && f["id"] == sync["id"] => break Some(f),
                            Ok(Some(f)) if f["type"] == "message" => {
                                let seq = f["seq"].as_u64().unwrap();
                                let c = f["chat"].as_u64().unwrap();
                                assert!(this_session.insert((c, seq)), "{c}/{seq} twice in one session");
                                inbox.got.entry(c).or_default().push(seq);
                            }
                            Ok(Some(_)) => {}
                            _ => break None,
                        }
                    };
                    let Some(answer) = answer else { break };
                    let found: BTreeSet<u64> = answer["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|m| m["seq"].as_u64().unwrap())
                        .collect();
                    inbox.synced.entry(chat).or_default().extend(found.iter().copied());
                    let spent = skipped.entry(chat).or_default();
                    spent.extend((contiguous + 1..top).filter(|n| !found.contains(n)));
                }
            }
            let done = want
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|want| want.iter().all(|(chat, seqs)| seqs.is_subset(&inbox.held(*chat))));
            if done {
                return inbox;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_drains_and_another_is_killed_under_traffic_and_nothing_acked_is_lost() {
    let Trio { nodes, prefix, _certs } = three_nodes().await;
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let sa = as_server(a);
    let token = sa.new_app().await;
    let people = ["alice", "carol", "bob", "dave", "erin"];
    let x = common::ws::chat_with(&sa, &token, &people).await;
    let y = common::ws::chat_with(&sa, &token, &people).await;
    let mut jwt = BTreeMap::new();
    for user in people {
        jwt.insert(user, user_token(&sa, &token, user).await);
    }
    let order = |first: usize| -> Vec<String> { (0..3).map(|i| bases[(first + i) % 3].clone()).collect() };

    // Recipients: bob starts on B (drained), dave on A (stays), erin on C (killed).
    let want = Arc::new(std::sync::Mutex::new(None));
    let recipients: Vec<_> = [("bob", 1), ("dave", 0), ("erin", 2)]
        .into_iter()
        .map(|(user, first)| {
            let (bases, jwt, want) = (order(first), jwt[user].clone(), Arc::clone(&want));
            tokio::spawn(steady_recipient(bases, jwt, vec![x, y], want))
        })
        .collect();
    // Senders: alice on A into chat x, carol on C into chat y (then on A).
    let stop = Arc::new(AtomicBool::new(false));
    let alice = tokio::spawn(steady_sender(
        vec![bases[0].clone()],
        jwt["alice"].clone(),
        x,
        "alice",
        Arc::clone(&stop),
    ));
    let carol = tokio::spawn(steady_sender(order(2), jwt["carol"].clone(), y, "carol", Arc::clone(&stop)));

    tokio::time::sleep(Duration::from_millis(1500)).await;
    // B drains under traffic and exits by itself once its sessions are gone
    // and its writes flushed, well before the 15 s grace would run out.
    b.signal("TERM");
    let drained = Instant::now();
    let mut b_exit = None;
    while drained.elapsed() < Duration::from_secs(12) {
        if let Some(status) = nodes[1].try_wait() {
            b_exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b_exit = b_exit.expect("the drained node did not exit within 12 s");
    eprintln!("node-b exited {:?} after SIGTERM", drained.elapsed());
    assert!(b_exit.success(), "drained node exit: {b_exit:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // C dies without a word, mid-traffic.
    c.signal("KILL");
    wait_within(Duration::from_secs(30), "node-c declared dead", || async {
        !member_ids(a).await.contains(&"node-c".to_owned())
    })
    .await;
    let client = redis::Client::open(redis_url()).unwrap();
    let redis = client.get_multiplexed_async_connection().await.unwrap();
    let app_id = sa.get(&format!("/api/v1/applications/{token}")).await.1["id"].as_str().unwrap().to_owned();
    for chat in [x, y] {
        let key = format!("{prefix}:{{{app_id}}}:chat:{chat}:nodes");
        wait_within(Duration::from_secs(10), "node-c purged from the directory", || {
            let (key, mut redis) = (key.clone(), redis.clone());
            async move {
                let nodes: Vec<String> =
                    redis::cmd("SMEMBERS").arg(&key).query_async(&mut redis).await.unwrap();
                !nodes.iter().any(|n| n == "node-c" || n == "node-b")
            }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let (alice_acked, alice_retried) = alice.await.unwrap();
    let (carol_acked, carol_retried) = carol.await.unwrap();
    assert!(carol_retried > 0, "carol's session was never broken: the kill missed the traffic");

    // Every acked message is stored once, under the number its ack gave.
    let mut targets = BTreeMap::new();
    for (chat, acked) in [(x, &alice_acked), (y, &carol_acked)] {
        let stored = history(&sa, &token, chat, 0).await;
        let by_body: BTreeMap<&str, u64> =
            stored.iter().map(|(seq, (_, body))| (body.as_str(), *seq)).collect();
        assert_eq!(by_body.len(), stored.len(), "a client_msg_id was stored twice in chat {chat}");
        for (id, seq) in acked {
            assert_eq!(by_body.get(id.as_str()), Some(seq), "{id} acked as {seq}");
        }
        // Retries of unacked sends may have stored one more than acked (the
        // last send's ack was lost with the stop): only acked ones must be there.
        targets.insert(chat, acked.iter().map(|(_, seq)| *seq).collect::<BTreeSet<u64>>());
    }
    *want.lock().unwrap() = Some(targets.clone());

    // Every recipient got every acked message exactly once (the checks run as they read).
    for (task, user) in recipients.into_iter().zip(["bob", "dave", "erin"]) {
        let inbox = task.await.unwrap();
        for (chat, seqs) in &targets {
            assert!(seqs.is_subset(&inbox.held(*chat)), "{user} misses some of chat {chat}");
        }
        eprintln!(
            "{user}: {} sessions, {} gap syncs, {} messages",
            inbox.sessions,
            inbox.gap_syncs,
            inbox.got.values().map(Vec::len).sum::<usize>()
        );
        if user != "dave" {
            assert!(inbox.sessions >= 2, "{user} was never moved to another node");
        }
    }
    eprintln!(
        "alice: {} acked, {alice_retried} retries; carol: {} acked, {carol_retried} retries",
        alice_acked.len(),
        carol_acked.len()
    );
}
