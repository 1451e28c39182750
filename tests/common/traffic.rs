//! Steady chat traffic that survives faults, as a careful client does it:
//! senders that reconnect and resend what was not acked with the same
//! `client_msg_id`, recipients that reconnect, resume with `hello` and fill
//! gaps with `sync`. (The same clients as `tests/cluster_processes.rs`,
//! with an open-ended send count and a recorded time of convergence.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

use super::ws::send;

/// A WebSocket that may break: every read and write reports failure instead of panicking.
pub struct Link {
    ws: super::ws::Socket,
}

/// Opens a session on the first of `bases` that accepts one, reading its `welcome`.
pub async fn connect_any(bases: &[String], jwt: &str) -> Link {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for base in bases {
            let url = format!("{}/ws?token={jwt}", base.replace("http://", "ws://"));
            let Ok(Ok((ws, _))) =
                tokio::time::timeout(Duration::from_secs(2), tokio_tungstenite::connect_async(url)).await
            else {
                continue;
            };
            let mut link = Link { ws };
            if let Some(welcome) = link.next(Duration::from_secs(5)).await.ok().flatten()
                && welcome["type"] == "welcome"
            {
                return link;
            }
        }
        assert!(Instant::now() < deadline, "no node accepted a session within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Link {
    /// Sends a frame; `Err` once the socket is gone.
    pub async fn send(&mut self, frame: &Value) -> Result<(), ()> {
        self.ws.send(Ws::text(frame.to_string())).await.map_err(|_| ())
    }

    /// The next text frame within `wait` (`Ok(None)`: none yet), or `Err` once the socket is gone.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<Value>, ()> {
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

    /// Closes the session.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// What a sender did.
#[derive(Debug, Default)]
pub struct Sent {
    /// (client_msg_id, seq) of every acked message.
    pub acked: Vec<(String, u64)>,
    /// Sends tried again (same `client_msg_id`) after a broken session or an
    /// `in_flight` / `*_unavailable` answer.
    pub retried: usize,
    /// The error codes answered, with how often.
    pub refusals: BTreeMap<String, usize>,
    /// The longest time from a first try to its ack.
    pub slowest_ack: Duration,
}

/// Sends to `chat` every `pace` until `stop`, from the first node of `bases`
/// that takes the session; on a broken session or an unavailable answer it
/// retries with the same `client_msg_id`. A send must be acked within 120 s.
pub async fn steady_sender(
    bases: Vec<String>,
    jwt: String,
    chat: u64,
    tag: &'static str,
    pace: Duration,
    stop: Arc<AtomicBool>,
) -> Sent {
    let mut sent = Sent::default();
    let mut link = connect_any(&bases, &jwt).await;
    for n in 1u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = format!("{tag}-{n}");
        let frame = send(n, chat, &id, &id);
        let first_try = Instant::now();
        'retry: loop {
            assert!(first_try.elapsed() < Duration::from_secs(120), "{id} was never acked");
            if link.send(&frame).await.is_ok() {
                loop {
                    match link.next(Duration::from_secs(15)).await {
                        Ok(Some(answer)) if answer["id"] == n => match answer["type"].as_str() {
                            Some("ack") => {
                                sent.acked.push((id.clone(), answer["seq"].as_u64().unwrap()));
                                sent.slowest_ack = sent.slowest_ack.max(first_try.elapsed());
                                break 'retry;
                            }
                            _ if answer["code"] == "in_flight"
                                || answer["code"].as_str().is_some_and(|c| c.ends_with("_unavailable")) =>
                            {
                                let code = answer["code"].as_str().unwrap_or_default().to_owned();
                                *sent.refusals.entry(code).or_default() += 1;
                                tokio::time::sleep(Duration::from_millis(250)).await;
                                sent.retried += 1;
                                continue 'retry;
                            }
                            _ => panic!("{id}: unexpected answer {answer}"),
                        },
                        Ok(Some(_)) => {}
                        Ok(None) | Err(()) => break,
                    }
                }
            }
            // No answer or a broken session: reconnect, same client_msg_id.
            sent.retried += 1;
            link = connect_any(&bases, &jwt).await;
        }
        tokio::time::sleep(pace).await;
    }
    sent
}

/// The numbers each recipient must end up holding, per chat, once the senders are done.
pub type Want = Arc<std::sync::Mutex<Option<BTreeMap<u64, BTreeSet<u64>>>>>;

/// What one recipient saw.
#[derive(Default, Debug)]
pub struct Inbox {
    /// Every number delivered live or in a `hello` catch-up, per chat.
    pub got: BTreeMap<u64, Vec<u64>>,
    /// Numbers fetched by `sync` after a gap was seen.
    pub synced: BTreeMap<u64, BTreeSet<u64>>,
    /// Sessions opened.
    pub sessions: usize,
    /// Gaps filled with `sync`.
    pub gap_syncs: usize,
    /// When it first held everything it was asked for.
    pub complete_at: Option<Instant>,
}

impl Inbox {
    /// Every number held for `chat`.
    pub fn held(&self, chat: u64) -> BTreeSet<u64> {
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
/// open for 500 ms is filled with `sync`; a chat silent for `idle_sync` is
/// synced past what it holds (a recipient cannot see a gap after the last
/// message it was sent). Stops once it holds every number in `want`; panics
/// after `limit`.
pub async fn steady_recipient(
    bases: Vec<String>,
    jwt: String,
    chats: Vec<u64>,
    want: Want,
    limit: Duration,
) -> Inbox {
    let idle_sync = Duration::from_secs(2);
    let mut inbox = Inbox::default();
    let mut skipped: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let deadline = Instant::now() + limit;
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
        let mut last_heard: BTreeMap<u64, Instant> = chats.iter().map(|&c| (c, Instant::now())).collect();
        'session: loop {
            assert!(Instant::now() < deadline, "recipient never completed within {limit:?}: {inbox:?}");
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
                        last_heard.insert(chat, Instant::now());
                    }
                    (Some("messages"), Some("h")) => {
                        for item in frame["items"].as_array().unwrap() {
                            let seq = item["seq"].as_u64().unwrap();
                            assert!(this_session.insert((chat, seq)), "{chat}/{seq} twice in one session");
                            inbox.got.entry(chat).or_default().push(seq);
                        }
                    }
                    _ => {}
                }
            }
            for &chat in &chats {
                let none = BTreeSet::new();
                let contiguous = inbox.contiguous(chat, skipped.get(&chat).unwrap_or(&none));
                let top = inbox.held(chat).last().copied().unwrap_or(0);
                let gap_open = top > contiguous
                    && gap_since.entry(chat).or_insert_with(Instant::now).elapsed()
                        > Duration::from_millis(500);
                let idle = last_heard[&chat].elapsed() > idle_sync;
                if top <= contiguous {
                    gap_since.remove(&chat);
                }
                if !gap_open && !idle {
                    continue;
                }
                inbox.gap_syncs += 1;
                gap_since.remove(&chat);
                last_heard.insert(chat, Instant::now());
                // Once the wanted numbers are known, from the first one missing
                // (a number skipped as spent may have been stored since).
                let first_missing = want.lock().unwrap().as_ref().and_then(|w| {
                    let held = inbox.held(chat);
                    w.get(&chat).and_then(|seqs| seqs.iter().find(|s| !held.contains(s)).copied())
                });
                let after = first_missing.map_or(contiguous, |s| s - 1);
                let id = format!("g{}", inbox.gap_syncs);
                let sync = json!({"type":"sync","id":id,"chat":chat,"after":after,"limit":500});
                if link.send(&sync).await.is_err() {
                    break 'session;
                }
                let answer = loop {
                    match link.next(Duration::from_secs(15)).await {
                        Ok(Some(f)) if f["type"] == "messages" && f["id"] == sync["id"] => break Some(f),
                        // A sync refused while a service is away is asked again later.
                        Ok(Some(f)) if f["type"] == "error" && f["id"] == sync["id"] => break None,
                        Ok(Some(f)) if f["type"] == "message" => {
                            let seq = f["seq"].as_u64().unwrap();
                            let c = f["chat"].as_u64().unwrap();
                            assert!(this_session.insert((c, seq)), "{c}/{seq} twice in one session");
                            inbox.got.entry(c).or_default().push(seq);
                            last_heard.insert(c, Instant::now());
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break None,
                        Err(()) => break 'session,
                    }
                };
                let Some(answer) = answer else { continue };
                let found: BTreeSet<u64> =
                    answer["items"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
                inbox.synced.entry(chat).or_default().extend(found.iter().copied());
                // Numbers below the highest found that the store does not have
                // were spent by failed sends (a full page says nothing past its end).
                let top = if found.len() >= 500 { found.last().copied().unwrap_or(0) } else { top };
                let held = inbox.held(chat);
                let spent = skipped.entry(chat).or_default();
                spent.extend((after + 1..top).filter(|n| !found.contains(n) && !held.contains(n)));
            }
            let done = want
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|want| want.iter().all(|(chat, seqs)| seqs.is_subset(&inbox.held(*chat))));
            if done {
                inbox.complete_at = Some(Instant::now());
                return inbox;
            }
        }
    }
}
