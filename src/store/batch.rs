//! The group-commit writer: every message write goes through here.
//!
//! Callers hand in one message and wait; a single task gathers whatever is
//! queued (up to `max_messages`, waiting at most `max_delay_ms` for more) and
//! commits it as one store call, with up to `max_in_flight` commits running at
//! once. Under load, batches grow by themselves while earlier commits are in
//! flight; when idle, a lone message waits `max_delay_ms` for company (0, the
//! default: committed at once). The wait trades latency for CPU: what is
//! committed together is fanned out together, and each recipient's session
//! writes it with one wake-up (`docs/design.md`, "The batch writer"); with
//! `gateway.direct_writes` on (the default), the hub's flusher coalesces what
//! comes close together anyway and the wait saves mostly commits. On a store whose
//! chats are written apart (CQL), a batch's chats are written concurrently and
//! each chat's senders are answered when their chat is written, not when the
//! batch's slowest chat is.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{DynStore, StoreError};
use crate::ids::{AppId, ChatNumber};
use crate::model::Message;

/// Tuning of the batch writer (`[batch]` in the config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most messages in one commit.
    pub max_messages: usize,
    /// How long a commit may wait for more messages after the first, in ms (0: never waits).
    pub max_delay_ms: u64,
    /// Commits running at once.
    pub max_in_flight: usize,
    /// Messages that may wait for a commit before senders are held back.
    pub queue: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_messages: 256, max_delay_ms: 0, max_in_flight: 4, queue: 16_384 }
    }
}

/// Why a write did not persist.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store refused or failed the commit.
    #[error("commit failed")]
    Store(#[source] Arc<StoreError>),
    /// The writer is shutting down.
    #[error("the batch writer is closed")]
    Closed,
}

/// Counters of what the writer did, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Commits made.
    pub batches: AtomicU64,
    /// Messages committed.
    pub messages: AtomicU64,
}

/// Told of every committed batch (the search indexer). Runs on the commit's
/// task, after the senders are answered: it must hand the messages off and
/// return at once, never wait.
pub trait OnCommit: Send + Sync + 'static {
    /// `messages` are committed.
    fn committed(&self, messages: &[Message]);
}

struct Job {
    message: Message,
    done: oneshot::Sender<Result<(), WriteError>>,
}

/// A handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct BatchWriter {
    tx: mpsc::Sender<Job>,
    stats: Arc<BatchStats>,
    closing: CancellationToken,
}

impl BatchWriter {
    /// Starts the writer task on `tracker`; it ends after [`close`](Self::close)
    /// or when every handle is dropped, after committing what was queued.
    pub fn spawn(store: DynStore, config: &BatchConfig, tracker: &TaskTracker) -> Self {
        Self::spawn_with(store, config, tracker, None)
    }

    /// [`spawn`](Self::spawn), telling `on_commit` of every committed batch.
    pub fn spawn_with(
        store: DynStore,
        config: &BatchConfig,
        tracker: &TaskTracker,
        on_commit: Option<Arc<dyn OnCommit>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let stats = Arc::new(BatchStats::default());
        let closing = CancellationToken::new();
        let run = Run {
            store,
            max_messages: config.max_messages.max(1),
            max_delay: Duration::from_millis(config.max_delay_ms),
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            stats: Arc::clone(&stats),
            tracker: tracker.clone(),
            on_commit,
        };
        tracker.spawn(run.run(rx, closing.clone()));
        Self { tx, stats, closing }
    }

    /// Stops taking writes (later ones fail with [`WriteError::Closed`]);
    /// what is queued is still committed. Wait on the tracker for the end.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Persists `message`; returns once it is committed.
    pub async fn write(&self, message: Message) -> Result<(), WriteError> {
        if self.closing.is_cancelled() {
            return Err(WriteError::Closed);
        }
        let (done, wait) = oneshot::channel();
        self.tx.send(Job { message, done }).await.map_err(|_| WriteError::Closed)?;
        wait.await.map_err(|_| WriteError::Closed)?
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }
}

struct Run {
    store: DynStore,
    max_messages: usize,
    max_delay: Duration,
    permits: Arc<Semaphore>,
    stats: Arc<BatchStats>,
    tracker: TaskTracker,
    on_commit: Option<Arc<dyn OnCommit>>,
}

impl Run {
    async fn run(self, mut rx: mpsc::Receiver<Job>, closing: CancellationToken) {
        let mut jobs = Vec::with_capacity(self.max_messages);
        let mut closed = false;
        loop {
            let received = tokio::select! {
                n = rx.recv_many(&mut jobs, self.max_messages) => n,
                // No new writes; the loop goes on through what is queued.
                () = closing.cancelled(), if !closed => {
                    rx.close();
                    closed = true;
                    continue;
                }
            };
            if received == 0 {
                break;
            }
            self.fill(&mut rx, &mut jobs).await;
            // Waiting for a free commit slot is what lets batches grow under load.
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                break;
            };
            rx_drain_now(&mut rx, &mut jobs, self.max_messages);
            let batch = std::mem::replace(&mut jobs, Vec::with_capacity(self.max_messages));
            let store = Arc::clone(&self.store);
            let stats = Arc::clone(&self.stats);
            let on_commit = self.on_commit.clone();
            self.tracker.spawn(async move {
                commit(store, batch, &stats, on_commit.as_deref()).await;
                drop(permit);
            });
        }
    }

    /// Waits up to `max_delay` for the batch to fill.
    async fn fill(&self, rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
        if self.max_delay.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.max_delay;
        while jobs.len() < self.max_messages {
            let room = self.max_messages - jobs.len();
            tokio::select! {
                n = rx.recv_many(jobs, room) => if n == 0 { return },
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}

/// Takes what is already queued, without waiting.
fn rx_drain_now(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>, max: usize) {
    while jobs.len() < max {
        match rx.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
}

/// Chats of one batch committed at once, at most, when they commit apart.
const CHATS_IN_FLIGHT: usize = 64;

async fn commit(store: DynStore, jobs: Vec<Job>, stats: &BatchStats, on_commit: Option<&dyn OnCommit>) {
    let m = crate::metrics::metrics();
    let started = std::time::Instant::now();
    m.batch_messages.observe(jobs.len() as f64);
    stats.batches.fetch_add(1, Ordering::Relaxed);
    if store.chats_commit_apart() {
        // Each chat's senders hear back when their chat is written.
        let mut chats: HashMap<(AppId, ChatNumber), Vec<Job>> = HashMap::new();
        for job in jobs {
            chats.entry((job.message.app.clone(), job.message.chat)).or_default().push(job);
        }
        futures::stream::iter(chats.into_values())
            .for_each_concurrent(CHATS_IN_FLIGHT, |jobs| commit_jobs(&store, jobs, stats, on_commit))
            .await;
    } else {
        commit_jobs(&store, jobs, stats, on_commit).await;
    }
    m.batch_commit_seconds.observe(started.elapsed().as_secs_f64());
}

/// Writes `jobs` in one store call and answers their senders.
async fn commit_jobs(store: &DynStore, jobs: Vec<Job>, stats: &BatchStats, on_commit: Option<&dyn OnCommit>) {
    let (messages, waiters): (Vec<Message>, Vec<_>) = jobs.into_iter().map(|j| (j.message, j.done)).unzip();
    match store.insert_messages(&messages).await {
        Ok(()) => {
            stats.messages.fetch_add(messages.len() as u64, Ordering::Relaxed);
            crate::metrics::metrics().messages_persisted.inc_by(messages.len() as u64);
            for done in waiters {
                let _ = done.send(Ok(()));
            }
            if let Some(on_commit) = on_commit {
                on_commit.committed(&messages);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, messages = messages.len(), "batch commit failed");
            let e = Arc::new(e);
            for done in waiters {
                let _ = done.send(Err(WriteError::Store(Arc::clone(&e))));
            }
        }
    }
}
