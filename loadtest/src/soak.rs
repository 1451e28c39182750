//! The `soak` scenario: many clients, each a random (seeded) mix of valid and
//! invalid frames, for a bounded time. It checks that the node stays up and
//! ready (`/readyz` every second), that every invalid frame is answered (an
//! `error` of the documented code, or the documented close), that every acked
//! send is in history exactly once (by `client_msg_id`), and that the node's
//! memory (RSS, every second) is flat once the clients leave.
//!
//! Each client runs one request at a time and waits for its answer (5 s at
//! most), so an answer without an `id` (`malformed_json`, `binary_not_supported`)
//! is matched to the frame that earned it. It paces itself (about 4 frames a
//! second, about one in nine invalid: some 4 strikes in 10 s against the
//! node's limit of 20) so that it stays under the node's frame
//! budget and its flood limit, except in the `flood` action, which exceeds the
//! frame budget on purpose and expects `rate_limited` (then the 4100 close).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::{SinkExt as _, StreamExt as _};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::node::Node;
use crate::socket::{Socket, connect};

/// How long an answer may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The node's `gateway.max_frame_bytes` (default 64 KiB); the huge frame is 4 KiB over it.
const HUGE_FRAME_BYTES: usize = 64 * 1024 + 4096;

/// What to run.
#[derive(Clone, Debug)]
pub struct Soak {
    /// Clients, one socket (at a time) each.
    pub clients: usize,
    /// Chats the clients are members of (client `i` is in chat `i % chats`).
    pub chats: usize,
    /// How long the clients run.
    pub duration: Duration,
    /// The time after the clients leave before the settled RSS is read.
    pub settle: Duration,
    /// The seed of every client's choices.
    pub seed: u64,
    /// The node's process (RSS and liveness), if known.
    pub pid: Option<u32>,
}

/// The answers to one kind of frame.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Answers {
    /// Frames of this kind sent.
    pub sent: u64,
    /// Answered as documented.
    pub answered: u64,
    /// Answered otherwise (another error code, an unexpected close).
    pub wrong: u64,
    /// No answer within the timeout.
    pub unanswered: u64,
}

/// The figures of a soak.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SoakReport {
    /// Clients in the run.
    pub clients: usize,
    /// Seconds the clients ran.
    pub secs: f64,
    /// The seed.
    pub seed: u64,
    /// Frames sent by all clients (flood frames included).
    pub frames_sent: u64,
    /// `frames_sent` per second of the run.
    pub frames_per_sec: f64,
    /// Valid requests, by kind.
    pub valid: BTreeMap<String, Answers>,
    /// Invalid frames (and forged tokens at connect), by kind.
    pub invalid: BTreeMap<String, Answers>,
    /// Answers that were not the documented one, by kind and what came (at most 20).
    pub wrong_samples: Vec<String>,
    /// Sessions opened (reconnects included).
    pub sessions: u64,
    /// Sessions that ended without the client asking (other than after a flood or a huge frame).
    pub unexpected_closes: u64,
    /// Sends acked.
    pub acked_sends: u64,
    /// Acked sends not in history.
    pub history_missing: u64,
    /// Acked sends in history more than once (extra copies).
    pub history_duplicates: u64,
    /// `/readyz` samples, and those that were not 200.
    pub readyz_samples: u64,
    /// `/readyz` samples that were not 200 (or did not answer within 5 s).
    pub readyz_failures: u64,
    /// The node's RSS: median over seconds 10–20 of the run, MiB.
    pub rss_baseline_mib: Option<f64>,
    /// The node's RSS when the clients left, MiB.
    pub rss_end_mib: Option<f64>,
    /// The node's RSS after the settle time, MiB.
    pub rss_settled_mib: Option<f64>,
    /// The node's peak RSS during the run, MiB.
    pub rss_peak_mib: Option<f64>,
    /// "flat" if settled ≤ baseline × 1.5 + 16 MiB, "grew" otherwise, "unknown" without a pid.
    pub memory: String,
    /// Why the run failed (empty: it passed).
    pub failures: Vec<String>,
}

impl SoakReport {
    /// The markdown table header of soak rows.
    pub const HEADER: &'static str = "| clients | secs | frames/s | acked sends | invalid answered / sent | unanswered | wrong | readyz failures | RSS baseline | end | settled | memory |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";

    /// One markdown row.
    pub fn row(&self) -> String {
        let sum = |f: fn(&Answers) -> u64| self.invalid.values().map(f).sum::<u64>();
        let all = |f: fn(&Answers) -> u64| sum(f) + self.valid.values().map(f).sum::<u64>();
        let mib = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.1} MiB"));
        format!(
            "| {} | {:.0} | {:.0} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
            self.clients,
            self.secs,
            self.frames_per_sec,
            self.acked_sends,
            sum(|a| a.answered),
            sum(|a| a.sent),
            all(|a| a.unanswered),
            all(|a| a.wrong),
            self.readyz_failures,
            mib(self.rss_baseline_mib),
            mib(self.rss_end_mib),
            mib(self.rss_settled_mib),
            self.memory
        )
    }
}

/// Counts shared by the clients.
#[derive(Default)]
struct Tally {
    frames: u64,
    valid: BTreeMap<String, Answers>,
    invalid: BTreeMap<String, Answers>,
    wrong_samples: Vec<String>,
    sessions: u64,
    unexpected_closes: u64,
    /// client_msg_id → (chat, seq) of every acked send.
    acked: HashMap<String, (u64, u64)>,
}

impl Tally {
    fn entry(&mut self, valid: bool, kind: &str) -> &mut Answers {
        let map = if valid { &mut self.valid } else { &mut self.invalid };
        map.entry(kind.to_owned()).or_default()
    }
}

type Shared = Arc<Mutex<Tally>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How one request ended.
enum Outcome {
    /// The documented answer.
    Answered,
    /// Something else (what).
    Wrong(String),
    /// Nothing within the timeout.
    Unanswered,
    /// The socket closed with this code (and the answer, if it came first, is counted).
    Closed(Option<u16>, bool),
}

impl Soak {
    /// Runs the soak against `node` (its process `self.pid`, if known).
    pub async fn run(&self, node: &Node) -> anyhow::Result<SoakReport> {
        ensure!(self.clients >= 1 && self.chats >= 1, "--clients and --chats must be at least 1");
        ensure!(self.duration >= Duration::from_secs(1), "--secs must be at least 1");
        let app = node.create_app("weft-load soak").await?;
        let mut chats = Vec::with_capacity(self.chats);
        for _ in 0..self.chats {
            chats.push(node.create_chat(&app).await?);
        }
        // A chat none of the clients is in: their frames to it are `not_a_member`.
        let foreign = node.create_chat(&app).await?;
        node.add_member(&app, foreign, "outsider").await?;
        // The checker reads every chat's history at the end.
        for &chat in &chats {
            node.add_member(&app, chat, "checker").await?;
        }
        let checker = node.user_token(&app, "checker").await?;
        let jwts: Vec<String> = futures::stream::iter(0..self.clients)
            .map(|i| {
                let (app, chat) = (&app, chats[i % chats.len()]);
                async move {
                    let user = format!("k{i}");
                    node.add_member(app, chat, &user).await?;
                    node.user_token(app, &user).await
                }
            })
            .buffered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        eprintln!(
            "weft-load: soak setup: {} clients in {} chats, {} s, seed {}",
            self.clients,
            self.chats,
            self.duration.as_secs(),
            self.seed
        );

        // The watcher: /readyz and RSS every second, from now until told to stop.
        let started = Instant::now();
        let (stop_watch, stop_rx) = tokio::sync::watch::channel(false);
        let watcher = tokio::spawn(watch(node.clone(), self.pid, started, stop_rx));

        let shared: Shared = Arc::new(Mutex::new(Tally::default()));
        let deadline = started + self.duration;
        let mut clients = Vec::with_capacity(self.clients);
        for (i, jwt) in jwts.into_iter().enumerate() {
            let client = Client {
                url: node.ws_url(&jwt)?,
                forged: node.ws_url(&forge(&jwt))?,
                chat: chats[i % chats.len()],
                foreign,
                rng: StdRng::seed_from_u64(
                    self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(i as u64),
                ),
                index: i,
                next_id: 0,
                top: 0,
                mine: Vec::new(),
                sent_cmids: 0,
                last_ack: None,
            };
            let shared = Arc::clone(&shared);
            clients.push(tokio::spawn(async move { client.run(&shared, deadline).await }));
            if i % 50 == 49 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for client in clients {
            client.await.context("a client panicked")?;
        }
        let ran = started.elapsed();
        let left = Instant::now();
        let rss_end = self.pid.and_then(crate::proc::rss_bytes);
        eprintln!("weft-load: soak: the clients left after {:.1} s; checking history", ran.as_secs_f64());

        // History: every acked client_msg_id exactly once.
        let acked = lock(&shared).acked.clone();
        let history = read_history(&node.ws_url(&checker)?, &chats).await?;
        let mut missing = 0u64;
        let mut duplicates = 0u64;
        for cmid in acked.keys() {
            match history.get(cmid) {
                None => missing += 1,
                Some(&n) if n > 1 => duplicates += n - 1,
                Some(_) => {}
            }
        }

        // Settle, then stop the watcher.
        tokio::time::sleep(self.settle.saturating_sub(left.elapsed())).await;
        let rss_settled = self.pid.and_then(crate::proc::rss_bytes);
        let _ = stop_watch.send(true);
        let watched = watcher.await.context("the watcher panicked")?;

        let tally = std::mem::take(&mut *lock(&shared));
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let baseline = watched.baseline();
        let memory = match (baseline, rss_settled) {
            (Some(base), Some(settled)) if settled as f64 <= base as f64 * 1.5 + 16.0 * 1024.0 * 1024.0 => {
                "flat"
            }
            (Some(_), Some(_)) => "grew",
            _ => "unknown",
        };
        let mut report = SoakReport {
            clients: self.clients,
            secs: ran.as_secs_f64(),
            seed: self.seed,
            frames_sent: tally.frames,
            frames_per_sec: tally.frames as f64 / ran.as_secs_f64().max(0.001),
            valid: tally.valid,
            invalid: tally.invalid,
            wrong_samples: tally.wrong_samples,
            sessions: tally.sessions,
            unexpected_closes: tally.unexpected_closes,
            acked_sends: acked.len() as u64,
            history_missing: missing,
            history_duplicates: duplicates,
            readyz_samples: watched.readyz_samples,
            readyz_failures: watched.readyz_failures,
            rss_baseline_mib: baseline.map(mib),
            rss_end_mib: rss_end.map(mib),
            rss_settled_mib: rss_settled.map(mib),
            rss_peak_mib: watched.rss.iter().map(|&(_, b)| b).max().map(mib),
            memory: memory.to_owned(),
            failures: Vec::new(),
        };
        report.failures = failures(&report, self.pid.is_some());
        Ok(report)
    }
}

/// What makes a run fail.
fn failures(report: &SoakReport, watched: bool) -> Vec<String> {
    let mut out = Vec::new();
    for (class, map) in [("valid", &report.valid), ("invalid", &report.invalid)] {
        for (kind, a) in map {
            if a.unanswered > 0 {
                out.push(format!("{} {class} {kind} frames got no answer within 5 s", a.unanswered));
            }
            if a.wrong > 0 {
                out.push(format!(
                    "{} {class} {kind} frames got another answer than the documented one",
                    a.wrong
                ));
            }
        }
    }
    if report.unexpected_closes > 0 {
        out.push(format!("{} sessions closed without a reason the client gave", report.unexpected_closes));
    }
    if report.history_missing > 0 || report.history_duplicates > 0 {
        out.push(format!(
            "history: {} acked sends missing, {} stored more than once",
            report.history_missing, report.history_duplicates
        ));
    }
    if report.readyz_failures > 0 {
        out.push(format!(
            "/readyz was not 200 in {} of {} samples",
            report.readyz_failures, report.readyz_samples
        ));
    }
    if report.acked_sends == 0 {
        out.push("no send was acked".to_owned());
    }
    if watched && report.memory != "flat" {
        out.push(format!(
            "memory {}: settled {:?} MiB against a baseline of {:?} MiB",
            report.memory, report.rss_settled_mib, report.rss_baseline_mib
        ));
    }
    out
}

/// A token whose signature is not the node's.
fn forge(jwt: &str) -> String {
    match jwt.rsplit_once('.') {
        Some((head, sig)) => {
            let flipped: String =
                sig.chars().rev().map(|c| if c == 'A' { 'B' } else { 'A' }).collect::<String>();
            format!("{head}.{flipped}")
        }
        None => format!("{jwt}x"),
    }
}

/// The watcher's samples.
#[derive(Default)]
struct Watched {
    readyz_samples: u64,
    readyz_failures: u64,
    /// (seconds since the start, RSS bytes).
    rss: Vec<(f64, u64)>,
}

impl Watched {
    /// The median RSS over seconds 10–20 (the second half of a shorter run).
    fn baseline(&self) -> Option<u64> {
        let last = self.rss.last()?.0;
        let (from, to) = if last >= 20.0 { (10.0, 20.0) } else { (last / 4.0, last / 2.0) };
        let mut window: Vec<u64> =
            self.rss.iter().filter(|(t, _)| *t >= from && *t <= to).map(|&(_, b)| b).collect();
        window.sort_unstable();
        window.get(window.len() / 2).copied()
    }
}

async fn watch(
    node: Node,
    pid: Option<u32>,
    started: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Watched {
    let mut watched = Watched::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return watched,
        }
        watched.readyz_samples += 1;
        if !node.ready().await {
            watched.readyz_failures += 1;
            eprintln!("weft-load: soak: /readyz was not 200 at {:.0} s", started.elapsed().as_secs_f64());
        }
        if let Some(rss) = pid.and_then(crate::proc::rss_bytes) {
            watched.rss.push((started.elapsed().as_secs_f64(), rss));
        }
    }
}

/// The count of each `client_msg_id` in the chats' histories (sync forward from 0).
async fn read_history(url: &str, chats: &[u64]) -> anyhow::Result<HashMap<String, u64>> {
    let mut ws = open(url).await.context("the checker cannot connect")?;
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut n = 0u64;
    for &chat in chats {
        let mut after = 0u64;
        loop {
            n += 1;
            let id = format!("c{n}");
            let sync = json!({"type":"sync","id":id,"chat":chat,"after":after,"limit":500});
            ws.send(Message::text(sync.to_string())).await?;
            let frame = tokio::time::timeout(Duration::from_secs(30), async {
                while let Some(message) = ws.next().await {
                    if let Message::Text(text) = message? {
                        let frame: Value = serde_json::from_str(&text)?;
                        if frame["id"] == id.as_str() {
                            return Ok(frame);
                        }
                    }
                }
                anyhow::bail!("the checker's socket closed")
            })
            .await
            .context("no answer to the checker's sync within 30 s")??;
            ensure!(frame["type"] == "messages", "the checker's sync of chat {chat} was refused: {frame}");
            let items = frame["items"].as_array().cloned().unwrap_or_default();
            for item in &items {
                if let Some(cmid) = item["client_msg_id"].as_str() {
                    *seen.entry(cmid.to_owned()).or_default() += 1;
                }
                after = after.max(item["seq"].as_u64().unwrap_or(after));
            }
            if frame["has_more"] != true || items.is_empty() {
                break;
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(seen)
}

/// Opens a session and reads its `welcome`.
async fn open(url: &str) -> anyhow::Result<Socket> {
    let (mut ws, _) =
        tokio::time::timeout(ANSWER_TIMEOUT, connect(url)).await.context("no handshake within 5 s")??;
    tokio::time::timeout(ANSWER_TIMEOUT, async {
        while let Some(message) = ws.next().await {
            if let Message::Text(text) = message?
                && text.contains("\"welcome\"")
            {
                return Ok(());
            }
        }
        anyhow::bail!("closed before welcome")
    })
    .await
    .context("no welcome within 5 s")??;
    Ok(ws)
}

/// One client.
struct Client {
    url: String,
    forged: String,
    chat: u64,
    foreign: u64,
    rng: StdRng,
    index: usize,
    next_id: u64,
    /// The newest number seen in the chat.
    top: u64,
    /// Numbers of this client's acked sends.
    mine: Vec<u64>,
    sent_cmids: u64,
    /// The (chat, seq) of the last ack read.
    last_ack: Option<(u64, u64)>,
}

/// The actions, with their weights: valid ones first.
const ACTIONS: &[(&str, bool, u32)] = &[
    ("send", true, 60),
    ("typing", true, 16),
    ("read", true, 12),
    ("delivered", true, 8),
    ("hello", true, 6),
    ("sync", true, 12),
    ("react", true, 8),
    ("edit", true, 6),
    ("reconnect", true, 4),
    ("malformed_json", false, 3),
    ("binary", false, 3),
    ("wrong_field_type", false, 3),
    ("unknown_type", false, 3),
    ("unknown_chat", false, 2),
    ("foreign_chat", false, 2),
    ("huge_frame", false, 1),
    ("flood", false, 1),
    ("forged_token", false, 1),
];

impl Client {
    async fn run(mut self, shared: &Shared, deadline: Instant) {
        let total: u32 = ACTIONS.iter().map(|a| a.2).sum();
        let mut ws: Option<Socket> = None;
        while Instant::now() < deadline {
            let Some(socket) = ws.as_mut() else {
                match open(&self.url).await {
                    Ok(mut socket) => {
                        lock(shared).sessions += 1;
                        // Catch up after a reconnect, as a client must.
                        if self.top > 0 {
                            let _ = self.request(&mut socket, shared, "hello", true).await;
                        }
                        ws = Some(socket);
                    }
                    Err(e) => {
                        {
                            let mut tally = lock(shared);
                            tally.unexpected_closes += 1;
                            if tally.wrong_samples.len() < 20 {
                                tally
                                    .wrong_samples
                                    .push(format!("client {} cannot connect: {e:#}", self.index));
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
                continue;
            };
            let mut pick = self.rng.random_range(0..total);
            let mut action = ACTIONS[0];
            for a in ACTIONS {
                if pick < a.2 {
                    action = *a;
                    break;
                }
                pick -= a.2;
            }
            let (kind, valid, _) = action;
            let keep = match kind {
                "reconnect" => {
                    lock(shared).entry(true, kind).sent += 1;
                    let _ = socket.close(None).await;
                    lock(shared).entry(true, kind).answered += 1;
                    false
                }
                "forged_token" => {
                    self.forged_token(shared).await;
                    true
                }
                _ => self.request(socket, shared, kind, valid).await,
            };
            if !keep {
                ws = None;
            }
            // About four frames a second, a little jittered.
            let pause = self.rng.random_range(150..350);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        if let Some(mut socket) = ws {
            let _ = socket.close(None).await;
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends one frame of `kind` and judges its answer; false if the session is over.
    async fn request(&mut self, ws: &mut Socket, shared: &Shared, kind: &str, valid: bool) -> bool {
        let id = self.id();
        let chat = self.chat;
        // The frames, and the answer expected: (type, error code; empty for any).
        let mut cmid = None;
        let (frames, expect): (Vec<Message>, Option<(&str, &str)>) = match kind {
            "send" => {
                self.sent_cmids += 1;
                let c = format!("k{}-{}", self.index, self.sent_cmids);
                let frame =
                    json!({"type":"send","id":id,"chat":chat,"body":format!("soak {c}"),"client_msg_id":c});
                cmid = Some(c);
                (vec![Message::text(frame.to_string())], Some(("ack", "")))
            }
            "typing" => (vec![Message::text(json!({"type":"typing","chat":chat}).to_string())], None),
            "read" | "delivered" => {
                if self.top == 0 {
                    return true;
                }
                let frame = json!({"type":kind,"id":id,"chat":chat,"seq":self.top});
                (vec![Message::text(frame.to_string())], Some(("ack", "")))
            }
            "hello" => {
                let frame = json!({"type":"hello","id":id,"resume":[{"chat":chat,"after":self.top.saturating_sub(20)}]});
                (vec![Message::text(frame.to_string())], Some(("messages", "")))
            }
            "sync" => {
                let frame =
                    json!({"type":"sync","id":id,"chat":chat,"after":self.top.saturating_sub(50),"limit":50});
                (vec![Message::text(frame.to_string())], Some(("messages", "")))
            }
            "react" | "edit" => {
                let Some(&mine) = self.mine.last() else { return true };
                let frame = if kind == "react" {
                    json!({"type":"react","id":id,"chat":chat,"seq":mine,"emoji":"👍"})
                } else {
                    json!({"type":"edit","id":id,"chat":chat,"seq":mine,"body":"soak, edited"})
                };
                (vec![Message::text(frame.to_string())], Some(("ack", "")))
            }
            "malformed_json" => (vec![Message::text("{not json")], Some(("error", "malformed_json"))),
            "binary" => (vec![Message::binary(vec![0u8, 1, 2, 3])], Some(("error", "binary_not_supported"))),
            "wrong_field_type" => {
                let frame = json!({"type":"send","id":id,"chat":"three","body":"x","client_msg_id":"w"});
                (vec![Message::text(frame.to_string())], Some(("error", "invalid_frame")))
            }
            "unknown_type" => (
                vec![Message::text(json!({"type":"teleport","id":id}).to_string())],
                Some(("error", "unknown_type")),
            ),
            "unknown_chat" => {
                let frame = json!({"type":"sync","id":id,"chat":999_999_999u64,"after":0});
                (vec![Message::text(frame.to_string())], Some(("error", "chat_not_found")))
            }
            "foreign_chat" => {
                let frame = json!({"type":"sync","id":id,"chat":self.foreign,"after":0});
                (vec![Message::text(frame.to_string())], Some(("error", "not_a_member")))
            }
            "huge_frame" => {
                let body = "x".repeat(HUGE_FRAME_BYTES);
                let frame = json!({"type":"send","id":id,"chat":chat,"body":body,"client_msg_id":"huge"});
                (vec![Message::text(frame.to_string())], Some(("error", "frame_too_large")))
            }
            "flood" => {
                // Past the frame budget (burst 100): the first refused is `rate_limited`.
                let frame = json!({"type":"typing","chat":chat}).to_string();
                ((0..150).map(|_| Message::text(frame.clone())).collect(), Some(("error", "rate_limited")))
            }
            _ => return true,
        };
        {
            let mut tally = lock(shared);
            tally.frames += frames.len() as u64;
            tally.entry(valid, kind).sent += 1;
        }
        for frame in frames {
            if ws.feed(frame).await.is_err() {
                return self.closed_while(shared, kind, valid, None, false);
            }
        }
        if ws.flush().await.is_err() {
            return self.closed_while(shared, kind, valid, None, false);
        }
        let Some((want_type, want_code)) = expect else { return true };
        let outcome =
            self.answer(ws, id, want_type, want_code, kind == "flood" || kind == "huge_frame").await;
        match outcome {
            Outcome::Answered => {
                lock(shared).entry(valid, kind).answered += 1;
                self.note_ack(shared, cmid);
                if kind == "flood" || kind == "huge_frame" {
                    // The session is spent (a 4100 or 1009 close follows): start afresh.
                    let _ = ws.close(None).await;
                    return false;
                }
                true
            }
            Outcome::Wrong(what) => {
                let mut tally = lock(shared);
                tally.entry(valid, kind).wrong += 1;
                if tally.wrong_samples.len() < 20 {
                    tally.wrong_samples.push(format!("{kind}: {what}"));
                }
                true
            }
            Outcome::Unanswered => {
                lock(shared).entry(valid, kind).unanswered += 1;
                true
            }
            Outcome::Closed(code, answered) => self.closed_while(shared, kind, valid, code, answered),
        }
    }

    /// Remembers an acked send: its client_msg_id must be in history once.
    fn note_ack(&mut self, shared: &Shared, cmid: Option<String>) {
        if let (Some(cmid), Some((chat, seq))) = (cmid, self.last_ack.take()) {
            self.mine.push(seq);
            lock(shared).acked.insert(cmid, (chat, seq));
        }
    }

    /// Accounts for a session that closed during `kind`; always false (the session is over).
    fn closed_while(
        &mut self,
        shared: &Shared,
        kind: &str,
        valid: bool,
        code: Option<u16>,
        answered: bool,
    ) -> bool {
        let expected = match kind {
            "flood" => code == Some(4100),
            "huge_frame" => code == Some(1009),
            _ => false,
        };
        let mut tally = lock(shared);
        if expected {
            if !answered {
                tally.entry(valid, kind).answered += 1;
            }
        } else {
            tally.unexpected_closes += 1;
            if !answered {
                tally.entry(valid, kind).wrong += 1;
            }
            if tally.wrong_samples.len() < 20 {
                tally.wrong_samples.push(format!("{kind}: the session closed ({code:?})"));
            }
        }
        false
    }

    /// Reads frames until the answer to `id` (or, for answers without an id, the
    /// first `error`), noting the chat's newest number on the way.
    async fn answer(
        &mut self,
        ws: &mut Socket,
        id: u64,
        want_type: &str,
        want_code: &str,
        any_id: bool,
    ) -> Outcome {
        let until = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        loop {
            let message = match tokio::time::timeout_at(until, ws.next()).await {
                Err(_) => return Outcome::Unanswered,
                Ok(None | Some(Err(_))) => return Outcome::Closed(None, false),
                Ok(Some(Ok(message))) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => {
                    return Outcome::Closed(
                        frame.map(|f| u16::from(f.code)).or(Some(u16::from(CloseCode::Status))),
                        false,
                    );
                }
                _ => continue,
            };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                return Outcome::Wrong(format!("not JSON: {} bytes", text.len()));
            };
            let kind = frame["type"].as_str().unwrap_or("");
            if kind == "message" && frame["chat"] == self.chat {
                self.top = self.top.max(frame["seq"].as_u64().unwrap_or(0));
            }
            let ours = frame["id"] == id || (kind == "error" && (any_id || frame["id"].is_null()));
            if !ours {
                continue;
            }
            if kind == "messages" && frame["done"] == false {
                continue;
            }
            if let Some(items) = frame["items"].as_array() {
                for item in items {
                    self.top = self.top.max(item["seq"].as_u64().unwrap_or(0));
                }
            }
            if kind == want_type && (want_code.is_empty() || frame["code"] == want_code) {
                if kind == "ack"
                    && let (Some(chat), Some(seq)) = (frame["chat"].as_u64(), frame["seq"].as_u64())
                {
                    self.top = self.top.max(seq);
                    self.last_ack = Some((chat, seq));
                }
                return Outcome::Answered;
            }
            return Outcome::Wrong(format!("{kind} {}", frame["code"].as_str().unwrap_or("")));
        }
    }

    /// Opens a socket with a forged token: the handshake must be refused with 401.
    async fn forged_token(&mut self, shared: &Shared) {
        let kind = "forged_token";
        lock(shared).entry(false, kind).sent += 1;
        let outcome = tokio::time::timeout(ANSWER_TIMEOUT, connect(&self.forged)).await;
        let mut tally = lock(shared);
        match outcome {
            Err(_) => tally.entry(false, kind).unanswered += 1,
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) if response.status() == 401 => {
                tally.entry(false, kind).answered += 1;
            }
            Ok(other) => {
                tally.entry(false, kind).wrong += 1;
                if tally.wrong_samples.len() < 20 {
                    let what = match other {
                        Ok(_) => "the handshake succeeded".to_owned(),
                        Err(e) => e.to_string(),
                    };
                    tally.wrong_samples.push(format!("{kind}: {what}"));
                }
            }
        }
    }
}
