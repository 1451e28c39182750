//! The queue on one node without Redis: a redb file of its own.
//!
//! Everything lives in memory (a mutex'd `State`: the lanes, the schedule,
//! the attempts, the logs, who is failing) and every change is written to the
//! file before the memory changes, under the same lock, so the file and the
//! memory change in the same order and `open` rebuilds the memory from the file.
//!
//! - `push` commits durably: an event the caller was told is queued survives a
//!   crash. Acks (`pop`), `retry`, the logs and the health marks commit without
//!   an fsync (redb's [`Durability::None`]), made durable by the next durable
//!   commit, by one at least every [`FLUSH_EVERY`] (an empty one once the queue
//!   is quiet that long), or when the queue closes.
//!   A crash loses at most those: a lost ack delivers its event again (the
//!   contract is at least once; receivers dedupe by the event id), a lost retry
//!   only undercounts attempts.
//! - Leases are not written: the node is alone, so after a restart every lane
//!   with entries is due at once, except a lane backing off: its retry's due
//!   time is written with its attempts, and it is due then.
//! - A stale `pop` or `retry` (the head is no longer `id`) writes nothing and
//!   moves the schedule as the Redis scripts do.
//!
//! redb is synchronous: every write runs on the queue's writer thread, which
//! takes whatever writes are waiting (up to [`GROUP`]) into one transaction.
//! A durable write (a push) commits it at once, with an fsync, and is answered
//! after; writes that need none (acks, retries, log lines, health marks) are
//! answered at once and committed together after [`LAZY`] — under load one
//! commit carries thousands of deliveries' acks instead of one each. A crash
//! loses what was answered and not yet committed, as it loses a commit without
//! an fsync (above). A write that fails drops its transaction: the memory is
//! read back from the file (every lane due at once: at least once still
//! holds). Reads, leases and releases only touch the memory.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::sync::mpsc;

use tokio::sync::{Mutex, oneshot};

use super::{Attempts, Depth, Entry, Head, LOG_LEN, Lane, LogRecord, QueueError};
use crate::ids::{AppId, WebhookId};

/// (lane, sequence) → the entry as [`Entry::encode`] wrote it; a lane's
/// entries in sequence order, head first.
const ENTRIES: TableDefinition<(&str, u64), &str> = TableDefinition::new("webhook_entries");
/// lane → the head's failed attempts and when it is retried: (failed, first
/// failed at, due).
const RETRIES: TableDefinition<&str, (u32, i64, i64)> = TableDefinition::new("webhook_retries");
/// (`<app>|<webhook>`, sequence) → a delivery log line (JSON), oldest first.
const LOGS: TableDefinition<(&str, u64), &str> = TableDefinition::new("webhook_logs");
/// `<app>|<webhook>` → failing since (ms).
const FAILING: TableDefinition<&str, i64> = TableDefinition::new("webhook_failing");

/// The longest a commit without an fsync stays the only copy of a change.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Most writes taken from the writer's channel at once.
pub const GROUP: usize = 256;

/// How long answered writes that need no fsync wait in an open transaction.
pub const LAZY: Duration = Duration::from_millis(50);

/// Most writes an open transaction takes before it commits.
const LAZY_WRITES: usize = 4_096;

fn local(e: impl Into<redb::Error>) -> QueueError {
    QueueError::Local(Box::new(e.into()))
}

fn webhook_field(app: &AppId, webhook: &WebhookId) -> String {
    format!("{app}|{webhook}")
}

fn lease_until(now: i64, lease: Duration) -> i64 {
    now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
}

/// The queue's contents in memory, as the file holds them (plus the schedule).
struct State {
    /// Encoded lane → its entries, head first, each with its sequence (its key
    /// in [`ENTRIES`]). Never holds an empty lane.
    lanes: HashMap<String, VecDeque<(u64, Entry)>>,
    /// (due, encoded lane), in the order Redis's sorted set keeps them.
    schedule: BTreeSet<(i64, String)>,
    /// Encoded lane → when it is due (its key in `schedule`).
    due: HashMap<String, i64>,
    /// Encoded lane → its head's failed attempts.
    attempts: HashMap<String, Attempts>,
    /// `<app>|<webhook>` → its delivery log, oldest first, with sequences.
    logs: HashMap<String, VecDeque<(u64, LogRecord)>>,
    /// `<app>|<webhook>` → failing since (ms).
    failing: HashMap<String, i64>,
    /// The next sequence of an entry or a log line (one counter for both).
    next_seq: u64,
    /// When a commit last reached the disk.
    last_durable: Instant,
    /// Whether a commit without an fsync came after it.
    dirty: bool,
}

impl State {
    /// Reads everything the file holds; every lane with entries is due at once
    /// or, backing off, when its retry said.
    fn load(db: &Database) -> Result<State, QueueError> {
        let txn = db.begin_read().map_err(local)?;
        let mut state = State {
            lanes: HashMap::new(),
            schedule: BTreeSet::new(),
            due: HashMap::new(),
            attempts: HashMap::new(),
            logs: HashMap::new(),
            failing: HashMap::new(),
            next_seq: 0,
            last_durable: Instant::now(),
            dirty: false,
        };
        let mut max_seq = None;
        for row in txn.open_table(ENTRIES).map_err(local)?.iter().map_err(local)? {
            let (key, value) = row.map_err(local)?;
            let (lane, seq) = key.value();
            let entry = Entry::decode(value.value())?;
            state.lanes.entry(lane.to_owned()).or_default().push_back((seq, entry));
            max_seq = max_seq.max(Some(seq));
        }
        let mut retry_due = HashMap::new();
        for row in txn.open_table(RETRIES).map_err(local)?.iter().map_err(local)? {
            let (key, value) = row.map_err(local)?;
            let lane = key.value();
            let (failed, first_failed_at, due) = value.value();
            if state.lanes.contains_key(lane) {
                state.attempts.insert(lane.to_owned(), Attempts { failed, first_failed_at });
                retry_due.insert(lane.to_owned(), due);
            }
        }
        let lanes: Vec<String> = state.lanes.keys().cloned().collect();
        for lane in lanes {
            let due = retry_due.get(&lane).copied().unwrap_or(0);
            state.schedule(&lane, due);
        }
        for row in txn.open_table(LOGS).map_err(local)?.iter().map_err(local)? {
            let (key, value) = row.map_err(local)?;
            let (field, seq) = key.value();
            let record: LogRecord = serde_json::from_str(value.value())
                .map_err(|_| QueueError::Corrupt { what: "webhook delivery log line" })?;
            let log = state.logs.entry(field.to_owned()).or_default();
            log.push_back((seq, record));
            if log.len() > LOG_LEN {
                log.pop_front();
            }
            max_seq = max_seq.max(Some(seq));
        }
        for row in txn.open_table(FAILING).map_err(local)?.iter().map_err(local)? {
            let (key, value) = row.map_err(local)?;
            state.failing.insert(key.value().to_owned(), value.value());
        }
        state.next_seq = max_seq.map_or(0, |s| s.saturating_add(1));
        Ok(state)
    }

    /// Makes `lane` due at `at`.
    fn schedule(&mut self, lane: &str, at: i64) {
        if let Some(old) = self.due.insert(lane.to_owned(), at) {
            self.schedule.remove(&(old, lane.to_owned()));
        }
        self.schedule.insert((at, lane.to_owned()));
    }

    /// Takes `lane` out of the schedule.
    fn unschedule(&mut self, lane: &str) {
        if let Some(old) = self.due.remove(lane) {
            self.schedule.remove(&(old, lane.to_owned()));
        }
    }

    /// Schedules `lane` at `at` if it has entries, else takes it out.
    fn reschedule(&mut self, lane: &str, at: i64) {
        if self.lanes.contains_key(lane) {
            self.schedule(lane, at);
        } else {
            self.unschedule(lane);
        }
    }

    fn head(&self, lane: &str) -> Option<Head> {
        let (_, entry) = self.lanes.get(lane)?.front()?;
        Some(Head { entry: entry.clone(), attempts: self.attempts.get(lane).copied().unwrap_or_default() })
    }

    /// Takes `n` entries off `lane` if `id` is its head (else `None`: another
    /// node took the lane over, this one lost its lease); returns the next head.
    fn pop(
        &mut self,
        txn: &WriteTransaction,
        lane: &str,
        id: &str,
        n: usize,
        until: i64,
    ) -> Result<Option<Head>, QueueError> {
        let popped: Vec<u64> = match self.lanes.get(lane) {
            Some(entries) if entries.front().is_some_and(|(_, e)| e.id == id) => {
                entries.iter().take(n).map(|(seq, _)| *seq).collect()
            }
            _ => Vec::new(),
        };
        if popped.is_empty() {
            return Ok(None);
        }
        {
            let mut entries = txn.open_table(ENTRIES).map_err(local)?;
            for seq in &popped {
                entries.remove((lane, *seq)).map_err(local)?;
            }
            txn.open_table(RETRIES).map_err(local)?.remove(lane).map_err(local)?;
        }
        if let Some(entries) = self.lanes.get_mut(lane) {
            entries.drain(..popped.len().min(entries.len()));
            if entries.is_empty() {
                self.lanes.remove(lane);
            }
        }
        self.attempts.remove(lane);
        let head = self.head(lane);
        self.reschedule(lane, until);
        Ok(head)
    }

    /// Appends `record` (encoded as `line`) to `field`'s log, keeping the newest [`LOG_LEN`].
    fn log(
        &mut self,
        txn: &WriteTransaction,
        field: String,
        record: LogRecord,
        line: &str,
    ) -> Result<(), QueueError> {
        let seq = self.next_seq;
        // The oldest line kept once this one is in, if the log is full.
        let keep_from = self.logs.get(&field).and_then(|log| {
            let excess = (log.len() + 1).checked_sub(LOG_LEN).filter(|excess| *excess > 0)?;
            Some(log.get(excess).map_or(seq, |(s, _)| *s))
        });
        {
            let mut table = txn.open_table(LOGS).map_err(local)?;
            table.insert((field.as_str(), seq), line).map_err(local)?;
            if let Some(keep_from) = keep_from {
                let older = (field.as_str(), 0)..(field.as_str(), keep_from);
                table.retain_in(older, |_, _| false).map_err(local)?;
            }
        }
        let log = self.logs.entry(field).or_default();
        log.push_back((seq, record));
        while log.len() > LOG_LEN {
            log.pop_front();
        }
        self.next_seq = seq.saturating_add(1);
        Ok(())
    }

    /// Clears `field`'s failing mark, if it has one.
    fn healthy(&mut self, txn: &WriteTransaction, field: &str) -> Result<(), QueueError> {
        if self.failing.remove(field).is_some() {
            txn.open_table(FAILING).map_err(local)?.remove(field).map_err(local)?;
        }
        Ok(())
    }

    /// Commits `txn`: durably when `durable`, or when no commit reached the disk
    /// for [`FLUSH_EVERY`] (which also makes the earlier cheap commits durable).
    fn commit(&mut self, mut txn: WriteTransaction, durable: bool) -> Result<(), QueueError> {
        let durable = durable || self.last_durable.elapsed() >= FLUSH_EVERY;
        if !durable {
            txn.set_durability(Durability::None).map_err(local)?;
        }
        txn.commit().map_err(local)?;
        if durable {
            self.last_durable = Instant::now();
        }
        self.dirty = !durable;
        Ok(())
    }
}

/// One write waiting for the writer thread.
trait Op: Send {
    /// Whether its commit must reach the disk before it is answered.
    fn durable(&self) -> bool;
    /// Writes through `txn` and changes the memory; false if it failed (the
    /// whole transaction is then dropped).
    fn apply(&mut self, state: &mut State, txn: &WriteTransaction) -> bool;
    /// Answers the caller once the transaction committed (`Ok`) or did not.
    fn finish(self: Box<Self>, committed: Result<(), &QueueError>);
}

struct Write<T, F> {
    durable: bool,
    f: Option<F>,
    result: Option<Result<T, QueueError>>,
    reply: oneshot::Sender<Result<T, QueueError>>,
}

impl<T, F> Op for Write<T, F>
where
    T: Send,
    F: FnOnce(&mut State, &WriteTransaction) -> Result<T, QueueError> + Send,
{
    fn durable(&self) -> bool {
        self.durable
    }

    fn apply(&mut self, state: &mut State, txn: &WriteTransaction) -> bool {
        let Some(f) = self.f.take() else { return false };
        let result = f(state, txn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), &QueueError>) {
        let answer = match (committed, self.result) {
            // Its own error first: it is why the transaction was dropped.
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(e), _) => Err(QueueError::Local(format!("the write's transaction failed: {e}").into())),
            (Ok(()), None) => Err(QueueError::Local("the write never ran".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// A transaction holding writes already answered, not yet committed.
struct Open {
    txn: WriteTransaction,
    since: Instant,
    writes: usize,
}

/// The writer thread. Each group of waiting writes is applied in one
/// transaction. A group with a durable write commits at once, durably, and is
/// answered after; a group of writes that need no fsync is answered at once
/// and its transaction left open for the next groups, committed after [`LAZY`]
/// (or [`LAZY_WRITES`] writes, or with the next durable write). A crash or a
/// failed commit loses what was answered but not committed, exactly as it
/// loses a commit without an fsync: acks come back (delivered again: at least
/// once) and log lines go.
fn writer(db: &Database, state: &Mutex<State>, ops: &mpsc::Receiver<Box<dyn Op>>) {
    let mut group: Vec<Box<dyn Op>> = Vec::with_capacity(GROUP);
    let mut open: Option<Open> = None;
    loop {
        let wait = open.as_ref().map_or(FLUSH_EVERY, |o| LAZY.saturating_sub(o.since.elapsed()));
        let first = match ops.recv_timeout(wait) {
            Ok(op) => op,
            Err(e) => {
                // Quiet for a while (what committed without an fsync reaches the
                // disk), or the queue was dropped (everything does, then the end).
                let closing = e == mpsc::RecvTimeoutError::Disconnected;
                let mut state = state.blocking_lock();
                match open.take() {
                    Some(o) => {
                        let _ = commit_or_reload(db, &mut state, o.txn, closing);
                    }
                    None => flush(db, &mut state, closing),
                }
                if closing {
                    return;
                }
                continue;
            }
        };
        group.push(first);
        while group.len() < GROUP
            && let Ok(op) = ops.try_recv()
        {
            group.push(op);
        }
        let mut state = state.blocking_lock();
        let (txn, since, writes) = match open.take() {
            Some(o) => (o.txn, o.since, o.writes),
            None => match db.begin_write() {
                Ok(txn) => (txn, Instant::now(), 0),
                Err(e) => {
                    drop(state);
                    let e = local(e);
                    tracing::warn!(error = %e, "cannot write the webhook queue");
                    for op in group.drain(..) {
                        op.finish(Err(&e));
                    }
                    continue;
                }
            },
        };
        let mut failed = false;
        for op in &mut group {
            // After a failure the transaction is dropped: the rest would only be lost.
            if failed || !op.apply(&mut state, &txn) {
                failed = true;
            }
        }
        let committed = if failed {
            drop(txn);
            let e = QueueError::Local("a write in the transaction failed".into());
            reload(db, &mut state, &e);
            Err(e)
        } else if group.iter().any(|op| op.durable()) || writes + group.len() >= LAZY_WRITES {
            let durable = group.iter().any(|op| op.durable());
            commit_or_reload(db, &mut state, txn, durable)
        } else {
            open = Some(Open { txn, since, writes: writes + group.len() });
            Ok(())
        };
        drop(state);
        for op in group.drain(..) {
            op.finish(committed.as_ref().copied());
        }
    }
}

/// Commits `txn`; when that fails, reads the memory back from the file.
fn commit_or_reload(
    db: &Database,
    state: &mut State,
    txn: WriteTransaction,
    durable: bool,
) -> Result<(), QueueError> {
    let committed = state.commit(txn, durable);
    if let Err(e) = &committed {
        reload(db, state, e);
    }
    committed
}

/// After a failed write: the memory is read back from the file.
fn reload(db: &Database, state: &mut State, why: &QueueError) {
    tracing::warn!(error = %why, "a webhook queue write failed; reading the queue back");
    match State::load(db) {
        Ok(fresh) => *state = fresh,
        Err(e) => tracing::error!(error = %e, "cannot read the webhook queue back"),
    }
}

/// Makes every earlier commit durable, by an empty durable commit, if one
/// without an fsync came after the last durable one (or `always`).
fn flush(db: &Database, state: &mut State, always: bool) {
    if !always && !state.dirty {
        return;
    }
    let committed = db.begin_write().map_err(local).and_then(|txn| state.commit(txn, true));
    if let Err(e) = committed {
        tracing::warn!(error = %e, "cannot flush the webhook queue");
    }
}

/// The webhook queue of a single node: one redb file, mirrored in memory.
pub struct LocalQueue {
    state: Arc<Mutex<State>>,
    /// To the writer thread (which owns the database); `None` once dropped.
    ops: Option<mpsc::Sender<Box<dyn Op>>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LocalQueue {
    /// Waits for the writer to commit what it holds, flush, and close the file
    /// (so it can be opened again at once).
    fn drop(&mut self) {
        self.ops = None;
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the webhook queue's writer panicked");
        }
    }
}

impl LocalQueue {
    /// Opens (or creates) the queue's file at `path` (creating its directory if
    /// needed) and reads all of it. Blocking: call it at startup.
    pub fn open(path: &Path) -> Result<LocalQueue, QueueError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| QueueError::Local(Box::new(e)))?;
        }
        let db = Database::create(path).map_err(local)?;
        let txn = db.begin_write().map_err(local)?;
        {
            txn.open_table(ENTRIES).map_err(local)?;
            txn.open_table(RETRIES).map_err(local)?;
            txn.open_table(LOGS).map_err(local)?;
            txn.open_table(FAILING).map_err(local)?;
        }
        txn.commit().map_err(local)?;
        let state = Arc::new(Mutex::new(State::load(&db)?));
        let (ops, rx) = mpsc::channel();
        let shared = Arc::clone(&state);
        // It ends (and closes the file) once the queue is dropped.
        let writer = std::thread::Builder::new()
            .name("weft-webhook-queue".into())
            .spawn(move || writer(&db, &shared, &rx))
            .map_err(|e| QueueError::Local(Box::new(e)))?;
        Ok(LocalQueue { state, ops: Some(ops), writer: Some(writer) })
    }

    /// Runs `f` on the writer thread with the state locked, in a transaction
    /// it may share with other writes: `f` writes the file through the
    /// transaction and changes the state; the answer comes once the
    /// transaction committed (durably, when `durable`).
    async fn write<T, F>(&self, durable: bool, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut State, &WriteTransaction) -> Result<T, QueueError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op: Box<dyn Op> = Box::new(Write { durable, f: Some(f), result: None, reply });
        let sent = self.ops.as_ref().is_some_and(|ops| ops.send(op).is_ok());
        if !sent {
            return Err(QueueError::Local("the webhook queue's writer stopped".into()));
        }
        answer.await.map_err(|_| QueueError::Local("the webhook queue's writer stopped".into()))?
    }

    pub(super) async fn push(&self, items: &[(Lane, Entry)], due: i64) -> Result<(), QueueError> {
        if items.is_empty() {
            return Ok(());
        }
        let items: Vec<(String, Entry)> =
            items.iter().map(|(lane, entry)| (lane.encode(), entry.clone())).collect();
        // Durable: the caller drops the events once this returns.
        self.write(true, move |state, txn| {
            let first = state.next_seq;
            {
                let mut table = txn.open_table(ENTRIES).map_err(local)?;
                for (seq, (lane, entry)) in (first..).zip(&items) {
                    table.insert((lane.as_str(), seq), entry.encode().as_str()).map_err(local)?;
                }
            }
            let mut seq = first;
            for (lane, entry) in items {
                state.lanes.entry(lane.clone()).or_default().push_back((seq, entry));
                if !state.due.contains_key(&lane) {
                    state.schedule(&lane, due);
                }
                seq = seq.saturating_add(1);
            }
            state.next_seq = seq;
            Ok(())
        })
        .await
    }

    pub(super) async fn push_once(&self, lane: &Lane, entry: &Entry, due: i64) -> Result<bool, QueueError> {
        let lane = lane.encode();
        let entry = entry.clone();
        self.write(true, move |state, txn| {
            if state.lanes.contains_key(&lane) {
                return Ok(false);
            }
            let seq = state.next_seq;
            txn.open_table(ENTRIES)
                .map_err(local)?
                .insert((lane.as_str(), seq), entry.encode().as_str())
                .map_err(local)?;
            state.lanes.entry(lane.clone()).or_default().push_back((seq, entry));
            if !state.due.contains_key(&lane) {
                state.schedule(&lane, due);
            }
            state.next_seq = seq.saturating_add(1);
            Ok(true)
        })
        .await
    }

    pub(super) async fn entries(&self, lane: &Lane, max: usize) -> Result<Vec<Entry>, QueueError> {
        let state = self.state.lock().await;
        Ok(state
            .lanes
            .get(&lane.encode())
            .map_or_else(Vec::new, |entries| entries.iter().take(max).map(|(_, e)| e.clone()).collect()))
    }

    pub(super) async fn lease(&self, now: i64, lease: Duration, n: usize) -> Result<Vec<Lane>, QueueError> {
        let until = lease_until(now, lease);
        let mut state = self.state.lock().await;
        let taken: Vec<String> = state
            .schedule
            .iter()
            .take_while(|(due, _)| *due <= now)
            .take(n)
            .map(|(_, lane)| lane.clone())
            .collect();
        for lane in &taken {
            state.schedule(lane, until);
        }
        Ok(taken.iter().filter_map(|lane| Lane::decode(lane)).collect())
    }

    pub(super) async fn head(&self, lane: &Lane) -> Result<Option<Head>, QueueError> {
        Ok(self.state.lock().await.head(&lane.encode()))
    }

    pub(super) async fn pop(
        &self,
        lane: &Lane,
        id: &str,
        n: usize,
        now: i64,
        lease: Duration,
    ) -> Result<Option<Head>, QueueError> {
        let lane = lane.encode();
        let id = id.to_owned();
        let until = lease_until(now, lease);
        // An ack lost to a crash delivers the event again: at least once.
        self.write(false, move |state, txn| state.pop(txn, &lane, &id, n, until)).await
    }

    pub(super) async fn retry(
        &self,
        lane: &Lane,
        id: &str,
        attempts: Attempts,
        due: i64,
    ) -> Result<(), QueueError> {
        let lane = lane.encode();
        let id = id.to_owned();
        // A retry lost to a crash only undercounts the attempts.
        self.write(false, move |state, txn| {
            let is_head =
                state.lanes.get(&lane).and_then(VecDeque::front).is_some_and(|(_, entry)| entry.id == id);
            if !is_head {
                // Another node holds the lane now: its schedule stands.
                return Ok(());
            }
            txn.open_table(RETRIES)
                .map_err(local)?
                .insert(lane.as_str(), (attempts.failed, attempts.first_failed_at, due))
                .map_err(local)?;
            state.attempts.insert(lane.clone(), attempts);
            state.reschedule(&lane, due);
            Ok(())
        })
        .await
    }

    pub(super) async fn release(&self, lane: &Lane, due: i64) -> Result<(), QueueError> {
        self.state.lock().await.reschedule(&lane.encode(), due);
        Ok(())
    }

    pub(super) async fn drop_lane(&self, lane: &Lane) -> Result<(), QueueError> {
        let lane = lane.encode();
        // A drop lost to a crash brings the lane back, and the worker that
        // meets it drops it again (its webhook is still gone).
        self.write(false, move |state, txn| {
            {
                let range = (lane.as_str(), 0)..=(lane.as_str(), u64::MAX);
                txn.open_table(ENTRIES).map_err(local)?.retain_in(range, |_, _| false).map_err(local)?;
                txn.open_table(RETRIES).map_err(local)?.remove(lane.as_str()).map_err(local)?;
            }
            state.lanes.remove(&lane);
            state.attempts.remove(&lane);
            state.unschedule(&lane);
            Ok(())
        })
        .await
    }

    pub(super) async fn log(
        &self,
        app: &AppId,
        webhook: &WebhookId,
        record: &LogRecord,
    ) -> Result<(), QueueError> {
        let field = webhook_field(app, webhook);
        let record = record.clone();
        let line = serde_json::to_string(&record).map_err(|e| QueueError::Local(Box::new(e)))?;
        self.write(false, move |state, txn| state.log(txn, field, record, &line)).await
    }

    pub(super) async fn logs(&self, app: &AppId, webhook: &WebhookId) -> Result<Vec<LogRecord>, QueueError> {
        let state = self.state.lock().await;
        Ok(state
            .logs
            .get(&webhook_field(app, webhook))
            .map(|log| log.iter().rev().map(|(_, record)| record.clone()).collect())
            .unwrap_or_default())
    }

    pub(super) async fn failing(
        &self,
        app: &AppId,
        webhook: &WebhookId,
        now: i64,
    ) -> Result<i64, QueueError> {
        let field = webhook_field(app, webhook);
        if let Some(since) = self.state.lock().await.failing.get(&field) {
            return Ok(*since);
        }
        self.write(false, move |state, txn| {
            if let Some(since) = state.failing.get(&field) {
                return Ok(*since);
            }
            txn.open_table(FAILING).map_err(local)?.insert(field.as_str(), now).map_err(local)?;
            state.failing.insert(field, now);
            Ok(now)
        })
        .await
    }

    pub(super) async fn healthy(&self, app: &AppId, webhook: &WebhookId) -> Result<(), QueueError> {
        let field = webhook_field(app, webhook);
        // Every delivery that succeeds says so: most find nothing to clear.
        if !self.state.lock().await.failing.contains_key(&field) {
            return Ok(());
        }
        self.write(false, move |state, txn| state.healthy(txn, &field)).await
    }

    /// [`log`](Self::log), [`healthy`](Self::healthy) and [`pop`](Self::pop)
    /// in one write.
    pub(super) async fn delivered(
        &self,
        lane: &Lane,
        id: &str,
        webhook: &WebhookId,
        record: &LogRecord,
        now: i64,
        lease: Duration,
    ) -> Result<Option<Head>, QueueError> {
        let field = webhook_field(&lane.app, webhook);
        let (lane, id, record) = (lane.encode(), id.to_owned(), record.clone());
        let line = serde_json::to_string(&record).map_err(|e| QueueError::Local(Box::new(e)))?;
        let until = lease_until(now, lease);
        self.write(false, move |state, txn| {
            state.log(txn, field.clone(), record, &line)?;
            state.healthy(txn, &field)?;
            state.pop(txn, &lane, &id, 1, until)
        })
        .await
    }

    pub(super) async fn forget(&self, app: &AppId, webhook: &WebhookId) -> Result<(), QueueError> {
        let field = webhook_field(app, webhook);
        self.write(false, move |state, txn| {
            {
                let range = (field.as_str(), 0)..=(field.as_str(), u64::MAX);
                txn.open_table(LOGS).map_err(local)?.retain_in(range, |_, _| false).map_err(local)?;
                txn.open_table(FAILING).map_err(local)?.remove(field.as_str()).map_err(local)?;
            }
            state.logs.remove(&field);
            state.failing.remove(&field);
            Ok(())
        })
        .await
    }

    pub(super) async fn depth(&self, now: i64) -> Result<Depth, QueueError> {
        let state = self.state.lock().await;
        let due = state.schedule.iter().take_while(|(due, _)| *due <= now).count();
        let oldest_failing =
            state.attempts.values().map(|a| a.first_failed_at).filter(|at| *at > 0).min().unwrap_or(0);
        Ok(Depth {
            lanes: u64::try_from(state.schedule.len()).unwrap_or(u64::MAX),
            due: u64::try_from(due).unwrap_or(u64::MAX),
            oldest_failing,
        })
    }
}
