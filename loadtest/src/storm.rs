//! The `storm` scenario: clients spread over a cluster's nodes, steady
//! traffic into their chats, one node killed (SIGKILL). Every client of the
//! dead node reconnects to a survivor and resumes with `hello`; the run
//! reports how long until every client was back and held every message, and
//! any message lost or delivered twice (there must be none).
//!
//! Clients follow the protocol's rules: on a broken socket, reconnect (to the
//! next node) and `hello` from the last number held without a gap; a gap in
//! `seq` still open after 500 ms is filled with `sync`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use futures::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::node::Node;

/// What to run.
#[derive(Clone, Debug)]
pub struct Storm {
    /// Clients (one socket each), spread over the nodes in turn.
    pub clients: usize,
    /// Chats the clients are members of (client `i` is in chat `i % chats`).
    pub chats: usize,
    /// Messages per second posted over REST (to the `--url` node, which must survive).
    pub rate: f64,
    /// The process to kill: a node other than `--url`.
    pub kill_pid: u32,
    /// Seconds of traffic before the kill, and after it.
    pub before: Duration,
    /// Seconds of traffic after the kill.
    pub after: Duration,
    /// How long the clients may take to hold every message after the traffic stops.
    pub settle: Duration,
}

/// The figures of a storm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StormReport {
    /// Clients in the run.
    pub clients: usize,
    /// Clients whose socket broke and that reconnected.
    pub moved: usize,
    /// From the kill to the last moved client's new session, in seconds.
    pub reconnected_secs: f64,
    /// From the last send (traffic goes on after the kill) until every client
    /// held every acked message, in seconds.
    pub recovered_secs: f64,
    /// Messages acked.
    pub acked: u64,
    /// Acked messages some client of their chat never got.
    pub lost: u64,
    /// Messages a client got twice (live or in a catch-up).
    pub duplicates: u64,
    /// Gaps clients filled with `sync`.
    pub gap_syncs: u64,
}

impl StormReport {
    /// The markdown table header of storm rows.
    pub const HEADER: &'static str = "| clients | moved | all moved reconnected (after the kill) | all caught up (after the last send) | acked | lost | duplicates | gap syncs |\n|---|---|---|---|---|---|---|---|\n";

    /// One markdown row.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {:.2} s | {:.2} s | {} | {} | {} | {} |",
            self.clients,
            self.moved,
            self.reconnected_secs,
            self.recovered_secs,
            self.acked,
            self.lost,
            self.duplicates,
            self.gap_syncs
        )
    }
}

/// What the run shares with every client.
struct Shared {
    /// Acked numbers per chat index, once the traffic has stopped.
    want: watch::Receiver<Option<Arc<Vec<BTreeSet<u64>>>>>,
    killed_at: std::sync::Mutex<Option<Instant>>,
    last_reconnect: std::sync::Mutex<Option<Instant>>,
    moved: AtomicUsize,
    duplicates: AtomicU64,
    gap_syncs: AtomicU64,
    done: AtomicUsize,
    /// Clients past their first `welcome`.
    connected: AtomicUsize,
    stop: AtomicBool,
}

impl Storm {
    /// Runs the storm; `node` is the surviving REST node, its spread list every node.
    pub async fn run(&self, node: &Node, urls: &[String]) -> anyhow::Result<StormReport> {
        ensure!(self.clients >= 1 && self.chats >= 1, "--clients and --chats must be at least 1");
        ensure!(urls.len() >= 2, "--spread must list at least two nodes");
        let app = node.create_app("weft-load storm").await?;
        let mut chats = Vec::with_capacity(self.chats);
        for _ in 0..self.chats {
            chats.push(node.create_chat(&app).await?);
        }
        eprintln!(
            "weft-load: storm setup: {} clients in {} chats over {} nodes",
            self.clients,
            self.chats,
            urls.len()
        );
        let jwts: Vec<String> = futures::stream::iter(0..self.clients)
            .map(|i| {
                let (app, chat) = (&app, chats[i % chats.len()]);
                async move {
                    let user = format!("s{i}");
                    node.add_member(app, chat, &user).await?;
                    node.user_token(app, &user).await
                }
            })
            .buffered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;

        let (set_want, want) = watch::channel(None);
        let shared = Arc::new(Shared {
            want,
            killed_at: std::sync::Mutex::new(None),
            last_reconnect: std::sync::Mutex::new(None),
            moved: AtomicUsize::new(0),
            duplicates: AtomicU64::new(0),
            gap_syncs: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            connected: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let mut clients = Vec::with_capacity(self.clients);
        for (i, jwt) in jwts.into_iter().enumerate() {
            // Client i starts on node i % n and falls back to the next ones.
            let order: Vec<String> = (0..urls.len()).map(|k| urls[(i + k) % urls.len()].clone()).collect();
            let client = Client { jwt, chat: chats[i % chats.len()], index: i % chats.len(), order };
            let shared = Arc::clone(&shared);
            clients.push(tokio::spawn(async move { client.run(&shared).await }));
            if i % 200 == 199 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        // Every client is in before the traffic starts.
        let opening = Instant::now();
        while shared.connected.load(Ordering::Relaxed) < self.clients {
            ensure!(opening.elapsed() < Duration::from_secs(300), "clients did not all connect within 300 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "weft-load: {} clients connected in {:.1} s",
            self.clients,
            opening.elapsed().as_secs_f64()
        );

        // Steady traffic over REST; the kill in the middle of it.
        let acked = Arc::new(std::sync::Mutex::new(vec![BTreeSet::new(); chats.len()]));
        let sending = {
            let (node, app, chats, acked) = (node.clone(), app.clone(), chats.clone(), Arc::clone(&acked));
            let (rate, until) = (self.rate.max(1.0), self.before + self.after);
            tokio::spawn(async move {
                // Paced, with up to 64 posts in flight (a post waits for its commit).
                let permits = Arc::new(tokio::sync::Semaphore::new(64));
                let mut posts = tokio::task::JoinSet::new();
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < until {
                    let k = (n as usize) % chats.len();
                    let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                    let (node, app, chat, acked) = (node.clone(), app.clone(), chats[k], Arc::clone(&acked));
                    posts.spawn(async move {
                        if let Ok(seq) = node.post_message(&app, chat, &format!("storm {n}")).await {
                            acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[k].insert(seq);
                        }
                        drop(permit);
                    });
                    n += 1;
                    let due = start + Duration::from_secs_f64(n as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                while posts.join_next().await.is_some() {}
            })
        };
        tokio::time::sleep(self.before).await;
        let status =
            std::process::Command::new("kill").arg("-KILL").arg(self.kill_pid.to_string()).status()?;
        ensure!(status.success(), "cannot kill pid {}", self.kill_pid);
        let killed = Instant::now();
        *shared.killed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(killed);
        eprintln!("weft-load: killed pid {}", self.kill_pid);
        sending.await.context("the sender failed")?;
        let acked = acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let total: u64 = acked.iter().map(|s| s.len() as u64).sum();
        let _ = set_want.send(Some(Arc::new(acked.clone())));
        let stopped = Instant::now();

        // Every client holds every acked message of its chat, or the time is up.
        let deadline = Instant::now() + self.settle;
        while shared.done.load(Ordering::Relaxed) < self.clients && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let recovered = stopped.elapsed().as_secs_f64();
        shared.stop.store(true, Ordering::Relaxed);
        let mut lost = 0;
        let mut told = 0;
        for client in clients {
            let (index, held, sessions, connected) = client.await.context("a client failed")?;
            let missing: Vec<u64> = acked[index].difference(&held).copied().collect();
            if !missing.is_empty() && told < 5 {
                told += 1;
                eprintln!(
                    "weft-load: a client of chat #{index} misses {missing:?} (holds up to {:?}; {sessions} sessions; connected at the end: {connected})",
                    held.last()
                );
            }
            lost += missing.len() as u64;
        }
        let last = *shared.last_reconnect.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(StormReport {
            clients: self.clients,
            moved: shared.moved.load(Ordering::Relaxed),
            reconnected_secs: last.map_or(0.0, |t| t.saturating_duration_since(killed).as_secs_f64()),
            recovered_secs: recovered,
            acked: total,
            lost,
            duplicates: shared.duplicates.load(Ordering::Relaxed),
            gap_syncs: shared.gap_syncs.load(Ordering::Relaxed),
        })
    }
}

/// One client.
struct Client {
    jwt: String,
    chat: u64,
    index: usize,
    order: Vec<String>,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Client {
    /// Runs until told to stop; returns its chat index, the numbers it holds,
    /// its sessions, and whether it was connected at the end.
    async fn run(self, shared: &Shared) -> (usize, BTreeSet<u64>, usize, bool) {
        let mut held: BTreeSet<u64> = BTreeSet::new();
        let mut skipped: BTreeSet<u64> = BTreeSet::new();
        let mut synced: BTreeSet<u64> = BTreeSet::new();
        // Everything up to `low` is held (or was spent without a message).
        let mut low = 0u64;
        let mut sessions = 0usize;
        let mut finished = false;
        let mut connected;
        'sessions: while !shared.stop.load(Ordering::Relaxed) {
            let Some(mut ws) = self.connect().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            sessions += 1;
            if sessions == 1 {
                shared.connected.fetch_add(1, Ordering::Relaxed);
            }
            if sessions > 1 {
                if sessions == 2 {
                    shared.moved.fetch_add(1, Ordering::Relaxed);
                }
                *shared.last_reconnect.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now());
                let hello = json!({"type":"hello","id":"h","resume":[{"chat":self.chat,"after":low}]});
                if ws.send(Message::text(hello.to_string())).await.is_err() {
                    continue;
                }
            }
            let mut this_session = BTreeSet::new();
            connected = true;
            let mut gap_since: Option<Instant> = None;
            loop {
                if shared.stop.load(Ordering::Relaxed) {
                    return (self.index, held, sessions, connected);
                }
                let frame = match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
                    Err(_) => None,
                    Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str::<Value>(&text).ok(),
                    Ok(Some(Ok(_))) => None,
                    Ok(Some(Err(_)) | None) => continue 'sessions,
                };
                if let Some(frame) = frame {
                    let seqs: Vec<u64> = match frame["type"].as_str() {
                        Some("message") => frame["seq"].as_u64().into_iter().collect(),
                        Some("messages") => frame["items"]
                            .as_array()
                            .map(|items| items.iter().filter_map(|m| m["seq"].as_u64()).collect())
                            .unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    let sync_answer = frame["id"].as_str().is_some_and(|id| id.starts_with('g'));
                    for seq in seqs {
                        let live_again =
                            frame["type"] == "message" && held.contains(&seq) && !synced.contains(&seq);
                        if !sync_answer && (!this_session.insert(seq) || live_again) {
                            shared.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        held.insert(seq);
                    }
                    advance(&mut low, &held, &skipped);
                }
                // A gap open for 500 ms is synced (numbers missing from the answer were spent).
                let top = held.last().copied().unwrap_or(0);
                if top > low {
                    let since = *gap_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(500) {
                        gap_since = None;
                        let n = shared.gap_syncs.fetch_add(1, Ordering::Relaxed);
                        let limit = (top - low).min(500);
                        let sync = json!({"type":"sync","id":format!("g{n}"),"chat":self.chat,"after":low,"limit":limit});
                        if ws.send(Message::text(sync.to_string())).await.is_err() {
                            continue 'sessions;
                        }
                        let Some(found) = answer(&mut ws, &sync["id"]).await else { continue 'sessions };
                        held.extend(found.iter().copied());
                        synced.extend(found.iter().copied());
                        skipped.extend((low + 1..top).filter(|n| !found.contains(n)));
                        advance(&mut low, &held, &skipped);
                    }
                } else {
                    gap_since = None;
                }
                if !finished
                    && let Some(want) = shared.want.borrow().as_ref()
                    && want[self.index].is_subset(&held)
                {
                    finished = true;
                    shared.done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        (self.index, held, sessions, false)
    }

    async fn connect(&self) -> Option<Ws> {
        for base in &self.order {
            let url =
                format!("{}/ws?token={}", base.trim_end_matches('/').replace("http://", "ws://"), self.jwt);
            let Ok(Ok((mut ws, _))) =
                tokio::time::timeout(Duration::from_secs(5), crate::socket::connect(&url)).await
            else {
                continue;
            };
            let welcomed = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message
                        && text.contains("\"welcome\"")
                    {
                        return true;
                    }
                }
                false
            })
            .await;
            if welcomed == Ok(true) {
                return Some(ws);
            }
        }
        None
    }
}

/// The numbers in the `messages` answer to request `id` (other frames are
/// dropped meanwhile: the live ones among them are covered by the answer or
/// by the next gap check).
async fn answer(ws: &mut Ws, id: &Value) -> Option<BTreeSet<u64>> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()??.ok()?;
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).ok()?;
            if frame["type"] == "messages" && &frame["id"] == id {
                return frame["items"]
                    .as_array()
                    .map(|items| items.iter().filter_map(|m| m["seq"].as_u64()).collect());
            }
        }
    }
}

/// Moves `low` up over the numbers now held (or spent without a message).
fn advance(low: &mut u64, held: &BTreeSet<u64>, skipped: &BTreeSet<u64>) {
    while held.contains(&(*low + 1)) || skipped.contains(&(*low + 1)) {
        *low += 1;
    }
}
