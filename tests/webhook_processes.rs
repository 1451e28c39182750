//! Three `weft` processes share one webhook queue (in Redis): the node
//! delivering a chat's events is killed (SIGKILL) mid-delivery, another node
//! takes its lane over when the lease runs out, and every event reaches the
//! receiver in the chat's order, the one in flight again with the same id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::hooks::{Answer, Receiver, summary};
use common::trio::{as_server, three_nodes_with};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_webhook_event_is_lost_when_the_delivering_node_is_killed() {
    // Node a is woken by its own pushes at once; the others find due lanes
    // only by polling, so a delivers until it dies.
    let trio = three_nodes_with(&[
        ("WEFT_WEBHOOKS_ALLOW_HTTP", "true"),
        ("WEFT_WEBHOOKS_ALLOW_PRIVATE", "true"),
        ("WEFT_WEBHOOKS_CACHE_MS", "0"),
        ("WEFT_WEBHOOKS_POLL_MS", "300"),
        ("WEFT_WEBHOOKS_LEASE_MS", "2000"),
        ("WEFT_WEBHOOKS_TIMEOUT_MS", "1500"),
    ])
    .await;
    let sa = as_server(&trio.nodes[0]);
    let rx = Receiver::start().await;
    // Every answer takes a while, so a delivery is in flight when a dies.
    rx.fallback(Answer::Slow(Duration::from_millis(200), 200));
    let token = sa.new_app().await;
    let (status, hook) = sa
        .post(
            &format!("/api/v1/applications/{token}/webhooks"),
            json!({"url": rx.url, "events": ["message.created"]}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let chat = sa.new_chat(&token).await;
    const N: u64 = 30;
    for i in 1..=N {
        assert_eq!(common::ws::post(&sa, &token, chat, &format!("m{i}")).await, i);
    }
    // Acked: every message is committed, its event queued. Kill a mid-delivery.
    // The third request has just arrived and waits 200 ms for its answer.
    let before = rx.wait(Duration::from_secs(20), "some deliveries", |got| got.len() >= 3).await;
    trio.nodes[0].signal("KILL");
    let in_flight = before[2].body["data"]["message"]["seq"].as_u64().unwrap();
    let got = rx
        .wait(Duration::from_secs(60), "every event delivered", |got| {
            got.iter()
                .map(|r| r.body["data"]["message"]["seq"].as_u64().unwrap())
                .collect::<BTreeSet<_>>()
                .len()
                == N as usize
        })
        .await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut first_seen = Vec::new();
    let mut ids = std::collections::BTreeMap::new();
    for r in &got {
        assert!(weft::notify::sign::verify(&secret, &r.signature, &r.raw, now, 300), "{r:?}");
        let seq = r.body["data"]["message"]["seq"].as_u64().unwrap();
        // A redelivery carries the id of the first delivery.
        assert_eq!(ids.entry(seq).or_insert_with(|| r.id.clone()), &r.id, "{:#?}", summary(&got));
        if !first_seen.contains(&seq) {
            first_seen.push(seq);
        }
    }
    assert_eq!(first_seen, (1..=N).collect::<Vec<_>>(), "order per chat: {:#?}", summary(&got));
    let distinct: BTreeSet<&str> = ids.values().map(String::as_str).collect();
    assert_eq!(distinct.len(), N as usize);
    // The event in flight when a died was delivered again, by a survivor, with its id.
    let again = got.iter().filter(|r| r.body["data"]["message"]["seq"] == in_flight).count();
    assert!(again >= 2, "seq {in_flight} was in flight: {:#?}", summary(&got));
}
