//! The webhook queue's operations, one scenario on every backend: the local
//! queue (redb, in a temporary directory), a real Redis and a real Redis
//! Cluster. Times are explicit `now` values, never sleeps. The local queue is
//! also reopened, as a restarting node does, and must have lost nothing pushed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::server::{redis_cluster_nodes, redis_url};
use weft::ids::{AppId, WebhookId};
use weft::notify::queue::local::LocalQueue;
use weft::notify::queue::redis::RedisQueue;
use weft::notify::queue::{Attempts, Depth, Entry, LOG_LEN, Lane, LogRecord, Queue, Sink};
use weft::redis_conn::{RedisConfig, RedisConn};

/// The lease every step takes (ms).
const L: i64 = 10_000;
const LEASE: Duration = Duration::from_millis(10_000);
/// The scenario's first `now`.
const T: i64 = 1_700_000_000_000;

async fn connect(config: RedisConfig) -> RedisConn {
    let at = format!("{:?}{:?}", config.url, config.cluster_nodes);
    match RedisConn::connect(&config).await {
        Ok(Some(conn)) => conn,
        Ok(None) => panic!("no Redis configured"),
        Err(e) => panic!("cannot reach Redis at {at}: {e}; start it with scripts/services.sh"),
    }
}

/// A queue under a fresh key prefix, so runs never see each other's lanes.
fn redis_queue(conn: RedisConn) -> Queue {
    Queue::Redis(Box::new(RedisQueue::new(conn, &format!("weft-test-{:016x}", rand::random::<u64>()))))
}

fn entry(id: &str) -> Entry {
    Entry {
        id: id.to_owned(),
        kind: "message.created".to_owned(),
        at: T,
        body: format!(r#"{{"id":"{id}","n":1}}"#),
    }
}

fn lane(app: &AppId, webhook: &WebhookId, key: &str) -> Lane {
    Lane::webhook(app, webhook, key)
}

fn record(n: u32) -> LogRecord {
    LogRecord {
        event_id: format!("e{n}"),
        kind: "message.created".to_owned(),
        attempt: n % 7 + 1,
        outcome: if n.is_multiple_of(2) { "delivered" } else { "failed" }.to_owned(),
        status: (!n.is_multiple_of(3)).then_some(500),
        error: n.is_multiple_of(3).then(|| "connection refused".to_owned()),
        at: T + i64::from(n),
        duration_ms: u64::from(n) * 10,
        next_retry_at: (n % 2 == 1).then_some(T + 60_000),
    }
}

async fn head_id(queue: &Queue, lane: &Lane) -> Option<String> {
    queue.head(lane).await.unwrap().map(|h| h.entry.id)
}

async fn leased(queue: &Queue, now: i64, n: usize) -> Vec<Lane> {
    queue.lease(now, LEASE, n).await.unwrap()
}

/// Every operation, on one queue that starts empty.
async fn scenario(queue: &Queue) {
    let app = AppId::generate();
    let webhook = WebhookId::generate();
    // Encoded, `…|c1` sorts before `…|c2`: Redis breaks ties of due time by
    // the lane's bytes, and the local queue does the same.
    let (a, b) = (lane(&app, &webhook, "c1"), lane(&app, &webhook, "c2"));
    let depth = |lanes, due, oldest_failing| Depth { lanes, due, oldest_failing };

    assert_eq!(queue.depth(T).await.unwrap(), depth(0, 0, 0));
    assert!(leased(queue, T, 10).await.is_empty());

    // Two lanes, each in the order pushed (across calls too).
    queue
        .push(&[(a.clone(), entry("a1")), (b.clone(), entry("b1")), (a.clone(), entry("a2"))], T)
        .await
        .unwrap();
    queue.push(&[(a.clone(), entry("a3"))], T).await.unwrap();
    queue.push(&[], T).await.unwrap();
    let head = queue.head(&a).await.unwrap().unwrap();
    assert_eq!(head.entry, entry("a1"));
    assert_eq!(head.attempts, Attempts::default());
    assert_eq!(head_id(queue, &b).await.as_deref(), Some("b1"));
    assert_eq!(queue.depth(T - 1).await.unwrap(), depth(2, 0, 0), "pushed lanes are due at the push's now");
    assert_eq!(queue.depth(T).await.unwrap(), depth(2, 2, 0));

    // Leases: only due lanes, at most n, and a leased lane not again until its lease passes.
    assert!(leased(queue, T - 1, 10).await.is_empty());
    assert_eq!(leased(queue, T, 1).await, vec![a.clone()]);
    assert_eq!(leased(queue, T, 10).await, vec![b.clone()]);
    assert!(leased(queue, T, 10).await.is_empty());
    assert!(leased(queue, T + L - 1, 10).await.is_empty());
    assert_eq!(queue.depth(T + L - 1).await.unwrap(), depth(2, 0, 0));
    assert_eq!(queue.depth(T + L).await.unwrap(), depth(2, 2, 0), "due again once the lease passes");

    // Pop of the head: the next head, and the lane stays leased from the pop's now.
    let next = queue.pop(&a, "a1", 1, T + 1000, LEASE).await.unwrap().unwrap();
    assert_eq!(next.entry, entry("a2"));
    assert_eq!(next.attempts, Attempts::default());
    assert_eq!(head_id(queue, &a).await.as_deref(), Some("a2"));
    assert_eq!(leased(queue, T + L, 10).await, vec![b.clone()], "a is leased until T + 1000 + L");
    assert_eq!(leased(queue, T + L + 1000, 10).await, vec![a.clone()]);
    let n = T + L + 1000; // a leased until n + L, b until T + 2L = n + L - 1000

    // A node that lost its lease pops what it delivered: nothing changes and it
    // is told to stop (no head); an id that only starts like the head's is not
    // the head's either.
    let stale = queue.pop(&a, "a1", 1, n, LEASE).await.unwrap();
    assert_eq!(stale, None);
    assert_eq!(head_id(queue, &a).await.as_deref(), Some("a2"));
    queue.pop(&a, "a", 1, n, LEASE).await.unwrap();
    assert_eq!(head_id(queue, &a).await.as_deref(), Some("a2"));

    // Retry: attempts recorded on the head, the lane due when the backoff ends.
    let first = Attempts { failed: 1, first_failed_at: n };
    queue.retry(&a, "a2", first, n + 3000).await.unwrap();
    assert_eq!(queue.head(&a).await.unwrap().unwrap().attempts, first);
    assert_eq!(queue.depth(n).await.unwrap(), depth(2, 0, n));
    assert!(leased(queue, n + 2999, 10).await.is_empty());
    assert_eq!(leased(queue, n + 3000, 10).await, vec![a.clone()]);
    let second = Attempts { failed: 2, first_failed_at: n };
    queue.retry(&a, "a2", second, n + 6000).await.unwrap();
    // A stale retry records nothing.
    queue.retry(&a, "a1", Attempts { failed: 9, first_failed_at: 1 }, n + 6000).await.unwrap();
    let head = queue.head(&a).await.unwrap().unwrap();
    assert_eq!((head.entry.id.as_str(), head.attempts), ("a2", second));
    assert_eq!(queue.depth(n + 6000).await.unwrap(), depth(2, 1, n));

    // Release: due when given back, not before.
    assert_eq!(leased(queue, n + 6000, 10).await, vec![a.clone()]);
    queue.release(&a, n + 7000).await.unwrap();
    assert!(leased(queue, n + 6999, 10).await.is_empty());
    assert_eq!(leased(queue, n + 7000, 10).await, vec![a.clone()]);

    // The popped head takes its attempts along.
    let next = queue.pop(&a, "a2", 1, n + 7000, LEASE).await.unwrap().unwrap();
    assert_eq!((next.entry.id.as_str(), next.attempts), ("a3", Attempts::default()));
    assert_eq!(queue.depth(n + 7000).await.unwrap(), depth(2, 0, 0));

    // The last pop empties the lane: it leaves the schedule...
    assert_eq!(queue.pop(&a, "a3", 1, n + 7000, LEASE).await.unwrap(), None);
    assert_eq!(queue.head(&a).await.unwrap(), None);
    assert_eq!(queue.depth(n + 7000).await.unwrap(), depth(1, 0, 0));
    assert_eq!(queue.depth(n + 100 * L).await.unwrap(), depth(1, 1, 0), "only b comes due");
    // ...and releasing or retrying it does not bring it back.
    queue.release(&a, n + 7000).await.unwrap();
    queue.retry(&a, "a3", first, n + 7000).await.unwrap();
    assert_eq!(queue.depth(n + 7000).await.unwrap(), depth(1, 0, 0));
    assert_eq!(queue.pop(&a, "a3", 1, n + 7000, LEASE).await.unwrap(), None);
    assert_eq!(queue.depth(n + 7000).await.unwrap(), depth(1, 0, 0));

    // A push makes it due again, at the push's now.
    queue.push(&[(a.clone(), entry("a4"))], n + 8000).await.unwrap();
    assert_eq!(queue.depth(n + 8000).await.unwrap(), depth(2, 1, 0));
    assert_eq!(leased(queue, n + 8000, 10).await, vec![a.clone()]);
    assert_eq!(head_id(queue, &a).await.as_deref(), Some("a4"));
    // A push to a leased lane does not make it due.
    queue.push(&[(a.clone(), entry("a5"))], n + 8000).await.unwrap();
    assert!(leased(queue, n + 8000, 10).await.is_empty());

    // drop_lane: the lane, its entries and its attempts are gone.
    queue.retry(&b, "b1", Attempts { failed: 1, first_failed_at: n + 8500 }, n + 9000).await.unwrap();
    assert_eq!(queue.depth(n + 8000).await.unwrap(), depth(2, 0, n + 8500));
    queue.drop_lane(&b).await.unwrap();
    assert_eq!(queue.head(&b).await.unwrap(), None);
    assert_eq!(queue.depth(n + 100 * L).await.unwrap(), depth(1, 1, 0));
    assert_eq!(leased(queue, n + 100 * L, 10).await, vec![a.clone()]);
    queue.drop_lane(&b).await.unwrap();
    queue.push(&[(b.clone(), entry("b2"))], n + 9000).await.unwrap();
    let head = queue.head(&b).await.unwrap().unwrap();
    assert_eq!((head.entry.id.as_str(), head.attempts), ("b2", Attempts::default()));

    // The delivery log: the newest LOG_LEN lines, newest first, per webhook.
    let other = WebhookId::generate();
    assert!(queue.logs(&app, &webhook).await.unwrap().is_empty());
    for i in 0..(LOG_LEN as u32 + 5) {
        queue.log(&app, &webhook, &record(i)).await.unwrap();
    }
    queue.log(&app, &other, &record(1000)).await.unwrap();
    let logs = queue.logs(&app, &webhook).await.unwrap();
    let expected: Vec<LogRecord> = (5..(LOG_LEN as u32 + 5)).rev().map(record).collect();
    assert_eq!(logs, expected);
    assert_eq!(queue.logs(&app, &other).await.unwrap(), vec![record(1000)]);

    // Failing since the first failure, until a delivery succeeds.
    assert_eq!(queue.failing(&app, &webhook, T + 100).await.unwrap(), T + 100);
    assert_eq!(queue.failing(&app, &webhook, T + 200).await.unwrap(), T + 100);
    assert_eq!(queue.failing(&app, &other, T + 300).await.unwrap(), T + 300);
    queue.healthy(&app, &webhook).await.unwrap();
    queue.healthy(&app, &webhook).await.unwrap();
    assert_eq!(queue.failing(&app, &webhook, T + 400).await.unwrap(), T + 400);
    assert_eq!(queue.failing(&app, &other, T + 500).await.unwrap(), T + 300);

    // forget: the log and the health go, the other webhook's stay, the lanes stay.
    queue.forget(&app, &webhook).await.unwrap();
    assert!(queue.logs(&app, &webhook).await.unwrap().is_empty());
    assert_eq!(queue.failing(&app, &webhook, T + 600).await.unwrap(), T + 600);
    assert_eq!(queue.logs(&app, &other).await.unwrap(), vec![record(1000)]);
    assert_eq!(queue.failing(&app, &other, T + 600).await.unwrap(), T + 300);
    assert_eq!(head_id(queue, &a).await.as_deref(), Some("a4"));
    assert_eq!(queue.depth(n + 100 * L).await.unwrap().lanes, 2);

    // delivered: the log line, the health and the pop in one go.
    let d = lane(&app, &webhook, "d");
    queue.push(&[(d.clone(), entry("d1")), (d.clone(), entry("d2"))], T).await.unwrap();
    assert_eq!(
        queue.failing(&app, &webhook, T + 700).await.unwrap(),
        T + 600,
        "failing since the check above"
    );
    let next = queue.delivered(&d, "d1", &webhook, &record(7), n, LEASE).await.unwrap();
    assert_eq!(next.map(|h| h.entry.id).as_deref(), Some("d2"));
    assert_eq!(queue.logs(&app, &webhook).await.unwrap(), vec![record(7)]);
    assert_eq!(queue.failing(&app, &webhook, T + 800).await.unwrap(), T + 800, "healthy again");
    // A stale id (the lane was taken over) pops nothing; the attempt is still logged.
    assert_eq!(queue.delivered(&d, "d1", &webhook, &record(8), n, LEASE).await.unwrap(), None);
    assert_eq!(head_id(queue, &d).await.as_deref(), Some("d2"));
    assert_eq!(queue.logs(&app, &webhook).await.unwrap(), vec![record(8), record(7)]);
    assert_eq!(queue.delivered(&d, "d2", &webhook, &record(9), n, LEASE).await.unwrap(), None);
    assert_eq!(head_id(queue, &d).await, None);
    queue.forget(&app, &webhook).await.unwrap();

    // Push and email lanes: an email check is pushed only into an empty lane,
    // due later; a push lane's entries are read and popped together.
    let mail = Lane { app: app.clone(), sink: Sink::Email, key: "alice".to_owned() };
    let push = Lane { app: app.clone(), sink: Sink::Push, key: "alice|3".to_owned() };
    assert_eq!(Lane::decode(&mail.encode()), Some(mail.clone()));
    assert_eq!(Lane::decode(&push.encode()), Some(push.clone()));
    assert_eq!(Lane::decode(&a.encode()), Some(a.clone()));
    assert!(queue.push_once(&mail, &entry("m1"), T + 5_000).await.unwrap());
    assert!(!queue.push_once(&mail, &entry("m2"), T).await.unwrap(), "one pending check per lane");
    assert_eq!(queue.entries(&mail, 10).await.unwrap(), vec![entry("m1")]);
    queue
        .push(&[(push.clone(), entry("p1")), (push.clone(), entry("p2")), (push.clone(), entry("p3"))], T)
        .await
        .unwrap();
    let now = n + 100 * L;
    let taken = queue.entries(&push, 2).await.unwrap();
    assert_eq!(taken, vec![entry("p1"), entry("p2")]);
    assert_eq!(
        queue.pop(&push, "p1", 2, now, LEASE).await.unwrap().map(|h| h.entry.id).as_deref(),
        Some("p3")
    );
    assert_eq!(queue.pop(&push, "p3", 5, now, LEASE).await.unwrap(), None);
    assert!(queue.entries(&push, 10).await.unwrap().is_empty());
    assert_eq!(queue.pop(&mail, "m1", 10, now, LEASE).await.unwrap(), None);
    assert!(queue.push_once(&mail, &entry("m3"), T).await.unwrap(), "an emptied lane takes a new check");
    queue.drop_lane(&mail).await.unwrap();

    // Leave nothing behind.
    queue.forget(&app, &webhook).await.unwrap();
    queue.forget(&app, &other).await.unwrap();
    queue.drop_lane(&a).await.unwrap();
    queue.drop_lane(&b).await.unwrap();
    assert_eq!(queue.depth(i64::MAX).await.unwrap(), depth(0, 0, 0));
}

#[tokio::test]
async fn the_local_queue_keeps_the_queue_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::Local(LocalQueue::open(&dir.path().join("webhooks.redb")).unwrap());
    scenario(&queue).await;
}

#[tokio::test]
async fn the_redis_queue_keeps_the_queue_semantics() {
    scenario(&redis_queue(connect(RedisConfig { url: redis_url(), ..RedisConfig::default() }).await)).await;
}

#[tokio::test]
async fn the_redis_queue_keeps_the_queue_semantics_on_a_redis_cluster() {
    let conn = connect(RedisConfig { cluster_nodes: redis_cluster_nodes(), ..RedisConfig::default() }).await;
    assert!(conn.is_cluster());
    scenario(&redis_queue(conn)).await;
}

/// A restart loses nothing pushed: the same heads, attempts, logs and health,
/// every lane due at once except one backing off, which is due when its retry said.
#[tokio::test]
async fn the_local_queue_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // In a directory the queue creates.
    let path = dir.path().join("data").join("webhooks.redb");
    let app = AppId::generate();
    let webhook = WebhookId::generate();
    let (a, b, c, d) = (
        lane(&app, &webhook, "c1"),
        lane(&app, &webhook, "c2"),
        lane(&app, &webhook, "u1"),
        lane(&app, &webhook, "u2"),
    );
    let failed = Attempts { failed: 3, first_failed_at: T + 50 };
    {
        let queue = Queue::Local(LocalQueue::open(&path).unwrap());
        queue
            .push(&[(a.clone(), entry("a1")), (b.clone(), entry("b1")), (a.clone(), entry("a2"))], T)
            .await
            .unwrap();
        queue
            .push(&[(a.clone(), entry("a3")), (c.clone(), entry("c1")), (d.clone(), entry("d1"))], T)
            .await
            .unwrap();
        assert_eq!(leased(&queue, T, 10).await.len(), 4);
        assert_eq!(queue.pop(&a, "a1", 1, T, LEASE).await.unwrap().unwrap().entry.id, "a2");
        queue.retry(&b, "b1", failed, T + 60_000).await.unwrap();
        assert_eq!(queue.pop(&c, "c1", 1, T, LEASE).await.unwrap(), None);
        queue.drop_lane(&d).await.unwrap();
        for i in 0..(LOG_LEN as u32 + 3) {
            queue.log(&app, &webhook, &record(i)).await.unwrap();
        }
        assert_eq!(queue.failing(&app, &webhook, T + 7).await.unwrap(), T + 7);
    }
    for _ in 0..2 {
        let queue = Queue::Local(LocalQueue::open(&path).unwrap());
        let head = queue.head(&a).await.unwrap().unwrap();
        assert_eq!((head.entry, head.attempts), (entry("a2"), Attempts::default()));
        let head = queue.head(&b).await.unwrap().unwrap();
        assert_eq!((head.entry, head.attempts), (entry("b1"), failed));
        assert_eq!(queue.head(&c).await.unwrap(), None);
        assert_eq!(queue.head(&d).await.unwrap(), None);
        // a's lease was not kept: it is due at once; b backs off as its retry said.
        assert_eq!(queue.depth(0).await.unwrap(), Depth { lanes: 2, due: 1, oldest_failing: T + 50 });
        assert_eq!(
            queue.depth(T + 60_000).await.unwrap(),
            Depth { lanes: 2, due: 2, oldest_failing: T + 50 }
        );
        let expected: Vec<LogRecord> = (3..(LOG_LEN as u32 + 3)).rev().map(record).collect();
        assert_eq!(queue.logs(&app, &webhook).await.unwrap(), expected);
        assert_eq!(queue.failing(&app, &webhook, T + 9).await.unwrap(), T + 7);
        // The order survives, and what is pushed after a restart goes behind it.
        queue.push(&[(a.clone(), entry("a9"))], T).await.unwrap();
        assert_eq!(queue.pop(&a, "a2", 1, T, LEASE).await.unwrap().unwrap().entry.id, "a3");
        assert_eq!(queue.pop(&a, "a3", 1, T, LEASE).await.unwrap().unwrap().entry.id, "a9");
        // Put back what this round took, for the next round.
        queue.drop_lane(&a).await.unwrap();
        queue.push(&[(a.clone(), entry("a2")), (a.clone(), entry("a3"))], T).await.unwrap();
    }
}

/// Writes from many tasks at once share transactions on the local queue's
/// writer: each still lands whole, in its lane's order, and survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_on_the_local_queue_all_land_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.redb");
    let app = AppId::generate();
    let webhook = WebhookId::generate();
    const LANES: usize = 40;
    const EACH: usize = 25;
    {
        let queue = std::sync::Arc::new(Queue::Local(LocalQueue::open(&path).unwrap()));
        let mut tasks = tokio::task::JoinSet::new();
        for l in 0..LANES {
            let queue = std::sync::Arc::clone(&queue);
            let (app, webhook) = (app.clone(), webhook.clone());
            tasks.spawn(async move {
                let lane = lane(&app, &webhook, &format!("c{l}"));
                for i in 0..EACH {
                    queue.push(&[(lane.clone(), entry(&format!("{l}-{i}")))], T).await.unwrap();
                    queue.log(&app, &webhook, &record(u32::try_from(i).unwrap())).await.unwrap();
                }
                // Every other lane acks its first ten, one by one.
                if l % 2 == 0 {
                    for i in 0..10 {
                        let next = queue.pop(&lane, &format!("{l}-{i}"), 1, T, LEASE).await.unwrap();
                        assert_eq!(next.unwrap().entry.id, format!("{l}-{}", i + 1));
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }
    let queue = Queue::Local(LocalQueue::open(&path).unwrap());
    for l in 0..LANES {
        let first = if l % 2 == 0 { 10 } else { 0 };
        let want: Vec<String> = (first..EACH).map(|i| format!("{l}-{i}")).collect();
        let got: Vec<String> = queue
            .entries(&lane(&app, &webhook, &format!("c{l}")), EACH)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(got, want, "lane c{l}");
    }
    assert_eq!(queue.logs(&app, &webhook).await.unwrap().len(), LOG_LEN);
}
