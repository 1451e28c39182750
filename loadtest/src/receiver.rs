//! The webhook receiver: a small HTTP/1 server on `127.0.0.1:0` inside the
//! generator that answers every POST `200` at once, and records what came —
//! each event's id and type, when it came, and for `message.created` the
//! message's chat, number, `sent_at` and the send timestamp in its body — so
//! that a run can count events, duplicates, missing and out-of-order messages,
//! and measure the latency from the message's `sent_at` to its webhook.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::node::{AppToken, Node};
use crate::report::Latency;
use crate::seqset::SeqSet;

/// The event type whose messages are checked and timed.
pub const MESSAGE_CREATED: &str = "message.created";

/// How often the webhook drain looks at the count.
const POLL: Duration = Duration::from_millis(20);

/// The drain gives up early when no `message.created` came for this long (the
/// receiver answers 200 at once, so nothing is waiting for a retry): what is
/// missing then was never queued (see `node_notices_dropped`).
const QUIET: Duration = Duration::from_secs(20);

/// The node's count of events dropped before its webhook queue.
const DROPPED_METRIC: &str = "weft_webhook_notices_dropped_total";

/// A running receiver; it stops (its connections too) when dropped.
pub struct Receiver {
    url: String,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
    /// The webhook registered for it, to delete once the run is counted.
    registered: Option<(AppToken, String)>,
    /// The node's `weft_webhook_notices_dropped_total` when it was registered.
    dropped_before: Option<u64>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// What the handler and the run share.
#[derive(Default)]
struct Shared {
    /// POSTs answered (every type, duplicates too).
    posts: Arc<AtomicU64>,
    /// Distinct `message.created` events received.
    created: AtomicU64,
    log: Mutex<Log>,
}

/// Everything received, in the order it came.
#[derive(Default)]
struct Log {
    receipts: Vec<Receipt>,
    /// Event ids seen.
    seen: HashSet<String>,
    /// POSTs of an event id seen before.
    duplicates: u64,
    /// POSTs per event type (duplicates too).
    by_type: BTreeMap<String, u64>,
    /// POSTs without a `Weft-Signature` header.
    unsigned: u64,
    /// POSTs whose body was not an event.
    unreadable: u64,
}

/// One POST.
struct Receipt {
    /// When its body had arrived.
    at: Instant,
    /// The same instant on the wall clock, in ns since the Unix epoch.
    wall_ns: i128,
    /// The first POST of its event id.
    first: bool,
    /// For `message.created`: the message.
    message: Option<Created>,
}

/// The message of a `message.created` event.
struct Created {
    chat: u64,
    seq: u64,
    /// Its `sent_at`, in ns since the Unix epoch (ms precision).
    sent_at_ns: Option<i128>,
    /// The generator's send timestamp at the start of its body (ns since the run's epoch).
    stamp_ns: Option<u64>,
}

/// The fields of a POSTed event the receiver reads.
#[derive(Deserialize)]
struct Posted<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<PostedData<'a>>,
}

#[derive(Deserialize)]
struct PostedData<'a> {
    #[serde(borrow, default)]
    message: Option<PostedMessage<'a>>,
}

#[derive(Deserialize)]
struct PostedMessage<'a> {
    chat: u64,
    seq: u64,
    #[serde(borrow, default)]
    sent_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
}

fn unix_ns_now() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0))
}

/// An RFC 3339 timestamp in ns since the Unix epoch.
fn parse_rfc3339_ns(at: &str) -> Option<i128> {
    Some(OffsetDateTime::parse(at, &Rfc3339).ok()?.unix_timestamp_nanos())
}

impl Receiver {
    /// Starts the receiver on a free loopback port.
    pub async fn start() -> anyhow::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot bind the webhook receiver")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept(listener, Arc::clone(&shared)));
        eprintln!("weft-load: webhook receiver on http://{addr}/hook");
        Ok(Receiver {
            url: format!("http://{addr}/hook"),
            shared,
            accept,
            registered: None,
            dropped_before: None,
        })
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registers a webhook of `app` for `events` (`["*"]`: all) at this receiver.
    pub async fn register(&mut self, node: &Node, app: &AppToken, events: &[&str]) -> anyhow::Result<()> {
        self.dropped_before = dropped(node).await;
        let id = node.create_webhook(app, &self.url, events).await?;
        eprintln!("weft-load: webhook {id} registered for {events:?}");
        self.registered = Some((app.clone(), id));
        Ok(())
    }

    /// Deletes the webhook registered: events emitted after the run (sessions closing,
    /// users going offline) would otherwise be retried against a receiver that is gone,
    /// for a day, and load the node in the runs that follow.
    pub async fn unregister(&mut self, node: &Node) {
        if let Some((app, id)) = self.registered.take()
            && let Err(e) = node.delete_webhook(&app, &id).await
        {
            eprintln!("weft-load: cannot delete webhook {id}: {e:#}");
        }
    }

    /// The count of POSTs answered, live (for progress lines).
    pub fn posts(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.posts)
    }

    /// How many events the node dropped before its queue since the webhook was
    /// registered (its hand-off was full), if its /metrics says.
    pub async fn node_dropped(&self, node: &Node) -> Option<u64> {
        Some(dropped(node).await?.saturating_sub(self.dropped_before?))
    }

    /// Waits until `expected` distinct `message.created` events came, or `limit`, or
    /// none came for [`QUIET`]; prints progress once a second. Returns whether they all came.
    pub async fn drain(&self, expected: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut next_print = Instant::now() + Duration::from_secs(1);
        let mut last = (Instant::now(), self.shared.created.load(Ordering::Relaxed));
        loop {
            let got = self.shared.created.load(Ordering::Relaxed);
            if got >= expected {
                return true;
            }
            let now = Instant::now();
            if got != last.1 {
                last = (now, got);
            } else if now.duration_since(last.0) >= QUIET {
                eprintln!(
                    "weft-load: webhook drain: nothing came for {QUIET:?}; {got} of {expected} message.created events"
                );
                return false;
            }
            if now >= deadline {
                eprintln!(
                    "weft-load: webhook drain timed out after {limit:?}: {got} of {expected} message.created events"
                );
                return false;
            }
            if now >= next_print {
                eprintln!("weft-load webhook drain: {got} of {expected} message.created events");
                next_print += Duration::from_secs(1);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The figures of what came, against the acknowledged sends `expected` (per chat).
    pub fn stats(&self, expected: &HashMap<u64, SeqSet>, window: &Window, drained: bool) -> WebhookStats {
        let log = self.shared.log.lock().unwrap_or_else(PoisonError::into_inner);
        let in_window = |at: Instant| at >= window.from && at < window.until;
        let stamp_in_window = |stamp: u64| {
            let sent = window.epoch + Duration::from_nanos(stamp);
            in_window(sent)
        };
        let mut received: HashMap<u64, SeqSet> = HashMap::new();
        let mut last_seq: HashMap<u64, u64> = HashMap::new();
        let (mut posts_in_window, mut out_of_order, mut unexpected) = (0, 0, 0);
        let (mut posts_after, mut last_post) = (0, window.until);
        let (mut persist_us, mut send_us) = (Vec::new(), Vec::new());
        let mut last_expected: Option<Instant> = None;
        for r in &log.receipts {
            if in_window(r.at) {
                posts_in_window += 1;
            } else if r.at >= window.until {
                posts_after += 1;
                last_post = last_post.max(r.at);
            }
            let (Some(m), true) = (&r.message, r.first) else { continue };
            received.entry(m.chat).or_default().insert(m.seq);
            let last = last_seq.entry(m.chat).or_default();
            if m.seq < *last {
                out_of_order += 1;
            }
            *last = (*last).max(m.seq);
            if expected.get(&m.chat).is_some_and(|s| s.contains(m.seq)) {
                last_expected = last_expected.max(Some(r.at));
            } else {
                unexpected += 1;
            }
            if let Some(stamp) = m.stamp_ns
                && stamp_in_window(stamp)
            {
                let sent = window.epoch + Duration::from_nanos(stamp);
                send_us.push(micros(r.at.saturating_duration_since(sent)));
                if let Some(sent_at) = m.sent_at_ns {
                    let us = (r.wall_ns - sent_at).max(0) / 1_000;
                    persist_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
        }
        let empty = SeqSet::default();
        let (mut messages, mut missing) = (0, 0);
        for (chat, want) in expected {
            let have = received.get(chat).unwrap_or(&empty);
            for seq in want.iter() {
                messages += 1;
                if !have.contains(seq) {
                    missing += 1;
                }
            }
        }
        let secs = window.until.saturating_duration_since(window.from).as_secs_f64();
        let drain_secs = last_post.saturating_duration_since(window.until).as_secs_f64();
        WebhookStats {
            posts: log.receipts.len() as u64,
            by_type: log.by_type.clone(),
            posts_in_window,
            events_per_sec: if secs > 0.0 { posts_in_window as f64 / secs } else { 0.0 },
            posts_after_window: posts_after,
            drain_events_per_sec: if drain_secs > 0.0 { posts_after as f64 / drain_secs } else { 0.0 },
            messages,
            missing,
            duplicates: log.duplicates,
            unexpected,
            out_of_order,
            unsigned: log.unsigned,
            unreadable: log.unreadable,
            persist_latency_ms: Latency::of_micros(persist_us),
            send_latency_ms: Latency::of_micros(send_us),
            drained,
            node_notices_dropped: None,
            last_after_secs: last_expected
                .map(|at| at.saturating_duration_since(window.until).as_secs_f64())
                .unwrap_or(0.0),
        }
    }
}

/// The node's `weft_webhook_notices_dropped_total`, if /metrics answers and has it.
async fn dropped(node: &Node) -> Option<u64> {
    parse_dropped(&node.metrics(None).await.ok()?)
}

/// `weft_webhook_notices_dropped_total` in a Prometheus text page.
fn parse_dropped(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(DROPPED_METRIC)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The measured window of a run, and the epoch of its send timestamps.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Send timestamps count from here.
    pub epoch: Instant,
    /// The measured window's start…
    pub from: Instant,
    /// … and end (sending stopped then).
    pub until: Instant,
}

/// What the receiver got over a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WebhookStats {
    /// POSTs answered (2xx) over the whole run, every type, duplicates too.
    pub posts: u64,
    /// Those per event type.
    pub by_type: BTreeMap<String, u64>,
    /// POSTs answered in the measured window.
    pub posts_in_window: u64,
    /// `posts_in_window` per second.
    pub events_per_sec: f64,
    /// POSTs answered after sending stopped (the backlog, and events of the sessions closing).
    #[serde(default)]
    pub posts_after_window: u64,
    /// Those per second, from the end of sending to the last of them: how fast the
    /// node worked its backlog off once it had only that to do.
    #[serde(default)]
    pub drain_events_per_sec: f64,
    /// Acknowledged messages (each calls for one `message.created`).
    pub messages: u64,
    /// Of them, those whose `message.created` never came (by the end of the drain).
    pub missing: u64,
    /// POSTs of an event id that came before (any type).
    pub duplicates: u64,
    /// `message.created` events of no acknowledged message.
    pub unexpected: u64,
    /// `message.created` events (first copies) of a lower number than one
    /// received before in the same chat.
    pub out_of_order: u64,
    /// POSTs without a `Weft-Signature` header.
    pub unsigned: u64,
    /// POSTs whose body was not a readable event.
    pub unreadable: u64,
    /// Receipt (wall clock) − the message's `sent_at`, of messages sent in the
    /// measured window. `sent_at` is stamped when the node numbers the message,
    /// just before it is written, at ms precision (truncated: the figures read up
    /// to 1 ms high).
    pub persist_latency_ms: Latency,
    /// Receipt − the generator's send timestamp (monotonic clock), same messages.
    pub send_latency_ms: Latency,
    /// Every acknowledged message's event came before the drain's limit.
    pub drained: bool,
    /// Events the node dropped before its webhook queue during the run (its
    /// `weft_webhook_notices_dropped_total`: the hand-off was full), if /metrics said.
    #[serde(default)]
    pub node_notices_dropped: Option<u64>,
    /// How long after sending stopped the last expected `message.created` came, in s
    /// (0 when all came before).
    pub last_after_secs: f64,
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    // Dropped (aborting every connection) when the receiver is.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&shared), request));
            let _ =
                http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
        });
        // Reap the finished ones.
        while connections.try_join_next().is_some() {}
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, Infallible> {
    let signed = request.headers().contains_key("weft-signature");
    let header_id = request.headers().get("weft-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    let (at, wall_ns) = (Instant::now(), unix_ns_now());
    shared.record(&body, header_id, signed, at, wall_ns);
    Ok(Response::new(Empty::new()))
}

impl Shared {
    fn record(&self, body: &[u8], header_id: Option<String>, signed: bool, at: Instant, wall_ns: i128) {
        self.posts.fetch_add(1, Ordering::Relaxed);
        let posted = serde_json::from_slice::<Posted<'_>>(body).ok();
        let message = posted.as_ref().and_then(|p| {
            let m = p.data.as_ref()?.message.as_ref()?;
            (p.kind == MESSAGE_CREATED).then(|| Created {
                chat: m.chat,
                seq: m.seq,
                sent_at_ns: m.sent_at.as_deref().and_then(parse_rfc3339_ns),
                stamp_ns: m.body.as_deref().and_then(|b| b.split(':').next()?.parse().ok()),
            })
        });
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if !signed {
            log.unsigned += 1;
        }
        let Some(posted) = posted else {
            log.unreadable += 1;
            log.receipts.push(Receipt { at, wall_ns, first: false, message: None });
            return;
        };
        *log.by_type.entry(posted.kind.into_owned()).or_default() += 1;
        let id = header_id.unwrap_or_else(|| posted.id.into_owned());
        let first = log.seen.insert(id);
        if !first {
            log.duplicates += 1;
        } else if message.is_some() {
            self.created.fetch_add(1, Ordering::Relaxed);
        }
        log.receipts.push(Receipt { at, wall_ns, first, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dropped_count_is_read_from_metrics() {
        let page = "# HELP weft_webhook_notices_dropped_total x\n# TYPE weft_webhook_notices_dropped_total counter\nweft_webhook_notices_dropped_total 33040\nweft_webhook_queue_lanes 0\n";
        assert_eq!(parse_dropped(page), Some(33040));
        assert_eq!(parse_dropped("weft_webhook_queue_lanes 0\n"), None);
    }

    #[test]
    fn sent_at_is_read_at_its_precision() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:02Z"), Some(2_000_000_000));
        assert_eq!(parse_rfc3339_ns("1970-01-01T01:00:00.001+01:00"), Some(1_000_000));
        assert_eq!(parse_rfc3339_ns("yesterday"), None);
    }

    #[tokio::test]
    async fn events_are_counted_once_in_order_and_timed() {
        let receiver = Receiver::start().await.unwrap();
        let epoch = Instant::now();
        let client = reqwest::Client::new();
        let event = |id: &str, seq: u64| {
            format!(
                r#"{{"id":"{id}","type":"message.created","created_at":"2026-01-01T00:00:00Z","app":"a","data":{{"chat":3,"message":{{"chat":3,"seq":{seq},"sender":"s","body":"1000:xx","sent_at":"2026-01-01T00:00:00.000Z"}}}}}}"#
            )
        };
        for (id, seq) in [("e1", 1), ("e2", 2), ("e2", 2), ("e4", 4), ("e3", 3)] {
            let answer = client
                .post(receiver.url())
                .header("Weft-Event-Id", id)
                .header("Weft-Signature", "t=1,v1=00")
                .body(event(id, seq))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
        let answer =
            client.post(receiver.url()).body(r#"{"id":"u1","type":"user.online","data":{"user":"x"}}"#);
        answer.send().await.unwrap();
        assert!(receiver.drain(4, Duration::from_secs(1)).await);
        let expected = HashMap::from([(3, SeqSet::from_iter([1, 2, 3, 4, 5]))]);
        let window = Window { epoch, from: epoch, until: Instant::now() };
        let stats = receiver.stats(&expected, &window, true);
        assert_eq!(stats.posts, 6);
        assert_eq!(stats.posts_in_window, 6);
        assert_eq!((stats.messages, stats.missing, stats.duplicates), (5, 1, 1));
        assert_eq!((stats.unexpected, stats.out_of_order, stats.unsigned), (0, 1, 1));
        assert_eq!(stats.by_type[MESSAGE_CREATED], 5);
        assert_eq!(stats.by_type["user.online"], 1);
        // Stamped 1 µs after the epoch: every message was sent in the window.
        assert_eq!(stats.send_latency_ms.samples, 4);
        assert_eq!(stats.persist_latency_ms.samples, 4);
    }
}
