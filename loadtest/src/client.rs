//! One socket's task: it sends (paced to a rate, or as fast as a window of
//! unacknowledged sends allows) and records acks, errors and deliveries.
//!
//! The node handles one session's frames one after the other, so the window
//! only keeps the next sends queued behind the one being persisted.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::seqset::SeqSet;
use crate::socket::Socket;

/// Where a socket's sends go.
#[derive(Clone, Debug)]
pub enum Target {
    /// It only receives.
    Listen,
    /// A chat it is a member of.
    Chat(u64),
    /// The direct chat with this user, found or created by the first send's
    /// `recipients`; the ack names the chat, which the next sends use.
    Direct(String),
}

/// The protocol the sockets speak.
#[derive(Clone, Debug, Default)]
pub enum Dialect {
    /// weft's own: `send` frames, `ack`s with the chat's `seq`, `message` frames.
    #[default]
    Weft,
    /// Centrifugo's JSON protocol (see [`crate::centrifugo`]): `publish` to this
    /// channel, replies by request id, pushes; a sender's `Target::Chat` is its stream.
    Centrifugo {
        /// The channel every sender publishes to.
        channel: String,
    },
}

/// What one socket does.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Where its sends go.
    pub target: Target,
    /// Its sends per second; 0 sends as fast as the window allows.
    pub rate: f64,
    /// Sends in flight (unacknowledged) at most.
    pub window: usize,
    /// Whether the messages it receives are recorded (and expected).
    pub record: bool,
    /// How many recording sockets each of its acknowledged sends should reach.
    pub audience: u64,
    /// When its paced sends start, after the run's start (spreads sockets over a period).
    pub offset: Duration,
    /// Prefix of its `client_msg_id`s: unique per user.
    pub tag: String,
}

/// The phase of a run, as the tasks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Direct sockets find their chat with one `recipients` send; the others wait.
    Prepare,
    /// Send and receive.
    Run,
    /// Stop sending; receive what is still on its way.
    Drain,
    /// Close the socket and hand in the outcome.
    Close,
}

/// Running totals over every socket, for live progress and the drain.
#[derive(Debug, Default)]
pub struct Counters {
    /// Sends acknowledged.
    pub acked: AtomicU64,
    /// Deliveries recorded (first copies only).
    pub delivered: AtomicU64,
    /// Deliveries the acknowledged sends call for.
    pub expected: AtomicU64,
    /// Sends waiting for their answer.
    pub in_flight: AtomicI64,
    /// Error frames and lost sockets.
    pub errors: AtomicU64,
    /// Direct sockets that know their chat.
    pub prepared: AtomicU64,
}

/// Tries of the `recipients` send that finds a direct chat.
const PREPARE_TRIES: u64 = 3;

/// What every socket task shares.
#[derive(Debug)]
pub struct Shared {
    /// Timestamps in message bodies are nanoseconds since this instant.
    pub epoch: Instant,
    /// When the run phase started, in ns since `epoch` (`u64::MAX` before).
    pub start: AtomicU64,
    /// The warm-up, then the measured window, in ns.
    pub warmup_ns: u64,
    /// The measured window's length, in ns.
    pub measure_ns: u64,
    /// Padding that brings each body to the requested size.
    pub pad: String,
    /// The protocol of the server under test.
    pub dialect: Dialect,
    /// Running totals.
    pub counters: Counters,
}

impl Shared {
    /// Nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Nanoseconds since the run phase started, if it has.
    fn since_start(&self, ns: u64) -> Option<u64> {
        ns.checked_sub(self.start.load(Ordering::Relaxed))
    }

    fn in_window(&self, ns: u64) -> bool {
        self.since_start(ns).is_some_and(|t| t >= self.warmup_ns && t - self.warmup_ns < self.measure_ns)
    }
}

/// What one socket saw, handed in at the end.
#[derive(Debug, Default)]
pub struct Outcome {
    /// `(chat, seq)` of each acknowledged send.
    pub acked: Vec<(u64, u64)>,
    /// Per chat, the message numbers received (when recording).
    pub received: HashMap<u64, SeqSet>,
    /// Messages received more than once.
    pub duplicates: u64,
    /// Send→receive latencies of messages sent in the measured window, in µs.
    pub latencies_us: Vec<u32>,
    /// Send→ack latencies of sends made in the measured window, in µs.
    pub ack_latencies_us: Vec<u32>,
    /// Errors by kind: error frame codes, or why the socket was lost.
    pub errors: BTreeMap<String, u64>,
    /// The socket was lost before the run closed it.
    pub lost: bool,
    /// The chat its sends went to.
    pub chat: Option<u64>,
    /// Acknowledged sends that were sent in the measured window.
    pub sent_in_window: u64,
    /// Deliveries received in the measured window.
    pub delivered_in_window: u64,
}

/// The fields of a Centrifugo reply or push the generator reads; the others are skipped.
/// A ping is an empty object.
#[derive(Deserialize)]
struct Reply<'a> {
    id: Option<u64>,
    #[serde(borrow)]
    error: Option<ReplyError<'a>>,
    #[serde(borrow)]
    push: Option<Push<'a>>,
}

#[derive(Deserialize)]
struct ReplyError<'a> {
    code: u32,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Push<'a> {
    #[serde(rename = "pub", borrow)]
    publication: Option<Publication<'a>>,
    disconnect: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Publication<'a> {
    #[serde(borrow)]
    data: Data<'a>,
}

/// A publication's data as the generator's senders write it.
#[derive(Deserialize)]
struct Data<'a> {
    /// The body: `<send timestamp>:<pad>`.
    #[serde(borrow)]
    b: Cow<'a, str>,
    /// The sender's stream.
    s: u64,
    /// Its number in the stream.
    n: u64,
}

/// The fields of a server frame the generator reads; the others are skipped.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    id: Option<u64>,
    chat: Option<u64>,
    seq: Option<u64>,
    #[serde(borrow)]
    body: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

struct Client {
    plan: Plan,
    shared: Arc<Shared>,
    outcome: Outcome,
    /// Sends issued so far; also the last request id.
    issued: u64,
    /// Paced sends issued in the run phase.
    paced: u64,
    /// Request id → send timestamp.
    in_flight: HashMap<u64, u64>,
    /// Pings (Centrifugo) waiting for their pong.
    pongs: u32,
}

/// Runs one socket until the run closes it (or the node does).
pub async fn run(
    mut socket: Socket,
    plan: Plan,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> Outcome {
    let mut client = Client::new(plan, shared);
    let mut current = *phase.borrow();
    while current != Phase::Close {
        if let Err(e) = client.send_due(&mut socket, current).await {
            client.lose(format!("write failed: {e}"));
            break;
        }
        let wake = if current == Phase::Run { client.next_send_at() } else { None };
        tokio::select! {
            changed = phase.changed() => {
                current = if changed.is_ok() { *phase.borrow() } else { Phase::Close };
            }
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    client.on_text(&text);
                    if let Err(e) = client.pong(&mut socket).await {
                        client.lose(format!("write failed: {e}"));
                        break;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    client.lose(format!("closed by the node: {}", describe(frame.as_ref())));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    client.lose(format!("read failed: {e}"));
                    break;
                }
                None => {
                    client.lose("closed by the node".to_owned());
                    break;
                }
            },
            () = tokio::time::sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => {}
        }
    }
    if !client.outcome.lost {
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
    }
    client.outcome
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400)
}

fn describe(frame: Option<&CloseFrame>) -> String {
    frame.map_or_else(|| "no close code".to_owned(), |f| format!("{} {}", u16::from(f.code), f.reason))
}

impl Client {
    fn new(plan: Plan, shared: Arc<Shared>) -> Self {
        let chat = match plan.target {
            Target::Chat(chat) => Some(chat),
            Target::Listen | Target::Direct(_) => None,
        };
        let outcome = Outcome { chat, ..Outcome::default() };
        Self { plan, shared, outcome, issued: 0, paced: 0, in_flight: HashMap::new(), pongs: 0 }
    }

    /// Answers the pings read so far (Centrifugo: `{}` for `{}`).
    async fn pong(&mut self, socket: &mut Socket) -> Result<(), tungstenite::Error> {
        if self.pongs == 0 {
            return Ok(());
        }
        self.pongs = 0;
        socket.send(Message::text("{}")).await
    }

    fn sends(&self) -> bool {
        !matches!(self.plan.target, Target::Listen)
    }

    /// Sends in flight at most: until an ack names the direct chat, one at a time.
    fn window(&self) -> usize {
        if self.outcome.chat.is_some() { self.plan.window } else { 1 }
    }

    /// When a paced socket's next send is due, if it has room in its window to send it.
    fn next_send_at(&self) -> Option<tokio::time::Instant> {
        let start = self.shared.start.load(Ordering::Relaxed);
        if !self.sends()
            || self.plan.rate <= 0.0
            || self.in_flight.len() >= self.window()
            || start == u64::MAX
        {
            return None;
        }
        let at = Duration::from_nanos(start)
            + self.plan.offset
            + Duration::from_secs_f64(self.paced as f64 / self.plan.rate);
        Some(tokio::time::Instant::from_std(self.shared.epoch + at))
    }

    /// Paced sends due by `since_start` (counted from `offset`), or all the
    /// window allows when unpaced.
    fn due(&self, since_start: u64) -> u64 {
        if self.plan.rate <= 0.0 {
            return u64::MAX;
        }
        let offset = u64::try_from(self.plan.offset.as_nanos()).unwrap_or(u64::MAX);
        match since_start.checked_sub(offset) {
            // Whole sends due (truncation intended).
            Some(elapsed) => (elapsed as f64 / 1e9 * self.plan.rate) as u64 + 1,
            None => 0,
        }
    }

    /// Writes the sends that are due and fit the window, then flushes once.
    async fn send_due(&mut self, socket: &mut Socket, phase: Phase) -> Result<(), tungstenite::Error> {
        match phase {
            Phase::Prepare => {
                let direct = matches!(self.plan.target, Target::Direct(_)) && self.outcome.chat.is_none();
                if direct && self.in_flight.is_empty() && self.issued < PREPARE_TRIES {
                    self.send_one(socket).await?;
                    socket.flush().await?;
                }
            }
            Phase::Run if self.sends() => {
                let due = self.due(self.shared.since_start(self.shared.now_ns()).unwrap_or_default());
                let mut fed = false;
                while self.paced < due && self.in_flight.len() < self.window() {
                    self.paced += 1;
                    self.send_one(socket).await?;
                    fed = true;
                }
                if fed {
                    socket.flush().await?;
                }
            }
            Phase::Run | Phase::Drain | Phase::Close => {}
        }
        Ok(())
    }

    /// Queues one send on the socket (not flushed).
    async fn send_one(&mut self, socket: &mut Socket) -> Result<(), tungstenite::Error> {
        self.issued += 1;
        let (id, stamp) = (self.issued, self.shared.now_ns());
        let text = self.send_frame(id, stamp);
        self.in_flight.insert(id, stamp);
        self.shared.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        socket.feed(Message::text(text)).await
    }

    /// A `send` frame (Centrifugo: a `publish`); its body starts with the send timestamp.
    fn send_frame(&self, id: u64, stamp: u64) -> String {
        let (tag, pad) = (&self.plan.tag, &self.shared.pad);
        if let Dialect::Centrifugo { channel } = &self.shared.dialect {
            let stream = self.outcome.chat.unwrap_or_default();
            return format!(
                r#"{{"id":{id},"publish":{{"channel":"{channel}","data":{{"b":"{stamp}:{pad}","s":{stream},"n":{id}}}}}}}"#
            );
        }
        let to = match (self.outcome.chat, &self.plan.target) {
            (Some(chat), _) => format!(r#""chat":{chat}"#),
            (None, Target::Direct(peer)) => format!(r#""recipients":["{peer}"]"#),
            (None, _) => String::new(),
        };
        format!(r#"{{"type":"send","id":{id},{to},"body":"{stamp}:{pad}","client_msg_id":"{tag}-{id}"}}"#)
    }

    fn on_text(&mut self, text: &str) {
        if matches!(self.shared.dialect, Dialect::Centrifugo { .. }) {
            // Several replies and pushes may share a frame, one a line.
            for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
                self.on_centrifugo_line(line);
            }
            return;
        }
        // One frame a line: a session opened with `?batch=1` may get several in one.
        for line in text.split('\n') {
            self.on_weft_frame(line);
        }
    }

    fn on_weft_frame(&mut self, text: &str) {
        let Ok(frame) = serde_json::from_str::<Frame<'_>>(text) else {
            self.error("unreadable frame");
            return;
        };
        match frame.kind.as_ref() {
            "ack" => self.on_ack(frame.id, frame.chat.zip(frame.seq)),
            "message" if self.plan.record => {
                self.on_message(frame.chat.zip(frame.seq), frame.body.as_deref())
            }
            "error" => {
                self.error(frame.code.as_deref().unwrap_or("error without code"));
                if let Some(id) = frame.id
                    && self.in_flight.remove(&id).is_some()
                {
                    self.shared.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
            }
            "message" | "welcome" | "presence" | "typing" | "receipt" => {}
            _ => self.error("unexpected frame type"),
        }
    }

    fn on_centrifugo_line(&mut self, line: &str) {
        let Ok(reply) = serde_json::from_str::<Reply<'_>>(line) else {
            self.error("unreadable frame");
            return;
        };
        match reply {
            Reply { id: Some(id), error: Some(error), .. } => {
                eprintln!("weft-load: Centrifugo error {}: {}", error.code, error.message);
                self.error(&format!("centrifugo error {}", error.code));
                if self.in_flight.remove(&id).is_some() {
                    self.shared.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                }
            }
            // A publish's reply: the stream is the sender's, the number its request id.
            Reply { id: Some(id), .. } => self.on_ack(Some(id), self.outcome.chat.map(|stream| (stream, id))),
            Reply { push: Some(Push { publication: Some(publication), .. }), .. } => {
                if self.plan.record {
                    let data = publication.data;
                    self.on_message(Some((data.s, data.n)), Some(&data.b));
                }
            }
            Reply { push: Some(Push { disconnect: Some(_), .. }), .. } => self.error("disconnect push"),
            Reply { push: Some(_), .. } => {}
            Reply { id: None, error: _, push: None } => self.pongs += 1,
        }
    }

    fn on_ack(&mut self, id: Option<u64>, numbered: Option<(u64, u64)>) {
        let Some(sent) = id.and_then(|id| self.in_flight.remove(&id)) else {
            self.error("ack of no pending send");
            return;
        };
        let counters = &self.shared.counters;
        counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        counters.acked.fetch_add(1, Ordering::Relaxed);
        counters.expected.fetch_add(self.plan.audience, Ordering::Relaxed);
        if self.shared.in_window(sent) {
            self.outcome.sent_in_window += 1;
            let waited = self.shared.now_ns().saturating_sub(sent) / 1_000;
            self.outcome.ack_latencies_us.push(u32::try_from(waited).unwrap_or(u32::MAX));
        }
        let Some((chat, seq)) = numbered else {
            self.error("ack without chat or seq");
            return;
        };
        self.outcome.acked.push((chat, seq));
        match self.outcome.chat {
            None => {
                self.outcome.chat = Some(chat);
                self.shared.counters.prepared.fetch_add(1, Ordering::Relaxed);
            }
            Some(ours) if ours != chat => self.error("ack names another chat"),
            Some(_) => {}
        }
    }

    fn on_message(&mut self, numbered: Option<(u64, u64)>, body: Option<&str>) {
        let Some((chat, seq)) = numbered else {
            self.error("message without chat or seq");
            return;
        };
        let now = self.shared.now_ns();
        match self.outcome.received.entry(chat).or_default().insert(seq) {
            None => self.error("message number out of range"),
            Some(false) => self.outcome.duplicates += 1,
            Some(true) => {
                self.shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if self.shared.in_window(now) {
                    self.outcome.delivered_in_window += 1;
                }
                let stamp = body.and_then(|b| b.split(':').next()?.parse::<u64>().ok());
                if let Some(sent) = stamp
                    && self.shared.in_window(sent)
                {
                    let micros = now.saturating_sub(sent) / 1_000;
                    self.outcome.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
            }
        }
    }

    fn error(&mut self, kind: &str) {
        self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        *self.outcome.errors.entry(kind.to_owned()).or_default() += 1;
    }

    /// The node closed the socket (or it broke): its pending sends will never be answered.
    fn lose(&mut self, why: String) {
        let pending = i64::try_from(self.in_flight.len()).unwrap_or(i64::MAX);
        self.shared.counters.in_flight.fetch_sub(pending, Ordering::Relaxed);
        self.in_flight.clear();
        self.outcome.lost = true;
        self.error(&why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(target: Target, rate: f64) -> Client {
        client_of(Dialect::Weft, target, rate)
    }

    fn client_of(dialect: Dialect, target: Target, rate: f64) -> Client {
        let shared = Shared {
            epoch: Instant::now(),
            start: AtomicU64::new(0),
            warmup_ns: 0,
            measure_ns: u64::MAX,
            pad: "xx".into(),
            dialect,
            counters: Counters::default(),
        };
        let plan = Plan {
            target,
            rate,
            window: 4,
            record: true,
            audience: 1,
            offset: Duration::from_millis(500),
            tag: "a1".into(),
        };
        Client::new(plan, Arc::new(shared))
    }

    #[test]
    fn paced_sends_are_due_from_the_offset() {
        let c = client(Target::Chat(3), 10.0);
        assert_eq!(c.due(0), 0);
        assert_eq!(c.due(500_000_000), 1);
        assert_eq!(c.due(1_500_000_000), 11);
        assert_eq!(client(Target::Chat(3), 0.0).due(0), u64::MAX);
    }

    #[test]
    fn the_first_direct_send_names_the_peer_then_the_acked_chat() {
        let mut c = client(Target::Direct("b7".into()), 1.0);
        let first: serde_json::Value = serde_json::from_str(&c.send_frame(1, 42)).unwrap();
        assert_eq!(first["recipients"][0], "b7");
        assert_eq!(first["body"], "42:xx");
        assert_eq!(first["client_msg_id"], "a1-1");
        c.in_flight.insert(1, 42);
        c.on_text(r#"{"type":"ack","id":1,"chat":9,"seq":1}"#);
        let next: serde_json::Value = serde_json::from_str(&c.send_frame(2, 43)).unwrap();
        assert_eq!(next["chat"], 9);
        assert!(next.get("recipients").is_none());
        assert_eq!(c.outcome.acked, [(9, 1)]);
    }

    #[test]
    fn deliveries_are_counted_once_with_their_latency() {
        let mut c = client(Target::Listen, 0.0);
        c.on_text(r#"{"type":"message","chat":9,"seq":4,"sender":"b7","body":"1:xx","sent_at":"x"}"#);
        c.on_text(r#"{"type":"message","chat":9,"seq":4,"sender":"b7","body":"1:xx","sent_at":"x"}"#);
        c.on_text(r#"{"type":"error","id":3,"code":"rate_limited","message":"m","retry_after_ms":5}"#);
        assert_eq!(c.outcome.duplicates, 1);
        assert_eq!(c.outcome.latencies_us.len(), 1);
        assert!(c.outcome.received[&9].contains(4));
        assert_eq!(c.outcome.errors["rate_limited"], 1);
    }

    #[test]
    fn a_batched_frame_is_read_a_line_at_a_time() {
        let mut c = client(Target::Listen, 0.0);
        c.on_text(concat!(
            r#"{"type":"message","chat":9,"seq":4,"sender":"b7","body":"1:xx","sent_at":"x"}"#,
            "\n",
            r#"{"type":"typing","chat":9,"user":"b7"}"#,
            "\n",
            r#"{"type":"message","chat":9,"seq":5,"sender":"b7","body":"2:x\ny","sent_at":"x"}"#,
        ));
        assert!(c.outcome.received[&9].contains(4));
        assert!(c.outcome.received[&9].contains(5));
        assert!(c.outcome.errors.is_empty(), "{:?}", c.outcome.errors);
        c.on_text("{\"type\":\"message\"\nnot json");
        assert_eq!(c.outcome.errors["unreadable frame"], 2);
    }

    #[test]
    fn centrifugo_publishes_carry_the_stream_and_replies_share_frames() {
        let dialect = Dialect::Centrifugo { channel: "room".into() };
        let mut sender = client_of(dialect.clone(), Target::Chat(3), 1.0);
        let publish: serde_json::Value = serde_json::from_str(&sender.send_frame(5, 42)).unwrap();
        assert_eq!(publish["id"], 5);
        assert_eq!(publish["publish"]["channel"], "room");
        assert_eq!(publish["publish"]["data"]["b"], "42:xx");
        assert_eq!(publish["publish"]["data"]["s"], 3);
        assert_eq!(publish["publish"]["data"]["n"], 5);
        sender.in_flight.insert(5, 42);
        sender.in_flight.insert(6, 43);
        sender.on_text("{\"id\":5,\"publish\":{}}\n{}\n{\"id\":6,\"error\":{\"code\":103,\"message\":\"permission denied\"}}");
        assert_eq!(sender.outcome.acked, [(3, 5)]);
        assert!(sender.in_flight.is_empty());
        assert_eq!(sender.pongs, 1);
        assert_eq!(sender.outcome.errors["centrifugo error 103"], 1);

        let mut receiver = client_of(dialect, Target::Listen, 0.0);
        let push =
            r#"{"push":{"channel":"room","pub":{"data":{"b":"1:xx","s":3,"n":5},"info":{"user":"m3"}}}}"#;
        receiver.on_text(&format!("{push}\n{push}"));
        assert_eq!(receiver.outcome.duplicates, 1);
        assert_eq!(receiver.outcome.latencies_us.len(), 1);
        assert!(receiver.outcome.received[&3].contains(5));
        assert!(receiver.outcome.errors.is_empty());
    }
}
