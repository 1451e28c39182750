//! The indexer: keeps the search index in step with the store, off the send path.
//!
//! The batch writer hands every committed batch to [`IndexFeed::committed`],
//! which queues it without waiting (a full queue marks the chats for a
//! catch-up instead). One task indexes the queue in batches, and per chat
//! raises the index's "indexed through" position once every number below it
//! is indexed. Three things catch up from the store:
//!
//! - a chat whose position is stuck (numbers indexed above a hole) for
//!   `settle_ms`: another node wrote the hole, or a failed commit left it;
//! - a chat whose documents could not be indexed (the index was down) or did
//!   not fit in the queue;
//! - a scan of every chat of every application, at start and every
//!   `scan_interval_ms` (one node of a cluster at a time): what a node that
//!   died between commit and index never indexed.
//!
//! A catch-up reads the chat from its position on, indexes what the index
//! lacks (a document's id is its message, so twice is once), and moves the
//! position past a missing number only when a stored message above it is
//! older than `commit_horizon_ms` (no commit takes that long, so the number
//! will never be filled).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{SearchDoc, SearchError, SearchIndex};
use crate::ids::{AppId, ChatNumber, MessageNumber, Timestamp};
use crate::model::{Message, MessageRange};
use crate::sequence::Locks;
use crate::store::{DynStore, OnCommit, StoreError};

use super::config::SearchConfig;

/// A chat of an application.
type ChatKey = (AppId, ChatNumber);

/// Numbers read from the store per catch-up step.
const WINDOW: u64 = 1_000;
/// Chats the scan looks at per tick, so live indexing is never held up long.
const SCAN_CHATS_PER_TICK: usize = 200;
/// Chats whose progress is remembered; past it idle ones are forgotten (their
/// position is in the index).
const MAX_TRACKED_CHATS: usize = 100_000;
/// How often stuck chats, marks and the scan are looked at.
const TICK: Duration = Duration::from_millis(500);
/// The cluster lock name of the scan.
const SCAN_LOCK: &str = "search-scan";

/// A change to a message already indexed (an edit, a delete).
#[derive(Clone, Debug)]
pub enum IndexChange {
    /// The message's new text.
    Upsert(SearchDoc),
    /// The message is gone.
    Remove(AppId, ChatNumber, MessageNumber),
}

impl IndexChange {
    fn key(&self) -> (AppId, ChatNumber, MessageNumber) {
        match self {
            IndexChange::Upsert(doc) => (doc.app.clone(), doc.chat, doc.seq),
            IndexChange::Remove(app, chat, seq) => (app.clone(), *chat, *seq),
        }
    }
}

/// Changes remembered so that a stale document still queued (committed
/// before the change, indexed after it) is corrected on its way in.
const MAX_REMEMBERED_CHANGES: usize = 100_000;

/// The batch writer's side: hands committed messages to the indexer; the
/// domain's side: hands it edits and deletes.
#[derive(Clone)]
pub struct IndexFeed {
    tx: mpsc::Sender<Vec<SearchDoc>>,
    /// Chats whose documents did not fit in the queue.
    overflow: Arc<Mutex<HashSet<ChatKey>>>,
    queued: Arc<AtomicI64>,
    /// Edits and deletes to apply, in order (retried until the index takes them).
    changes: Arc<Mutex<Vec<IndexChange>>>,
}

impl IndexFeed {
    /// Queues an edit or a delete; the indexer applies it within a tick
    /// (500 ms), and keeps trying while the index is down.
    pub fn changed(&self, change: IndexChange) {
        self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(change);
    }
}

impl OnCommit for IndexFeed {
    fn committed(&self, messages: &[Message]) {
        let docs: Vec<SearchDoc> = messages.iter().map(SearchDoc::from).collect();
        let n = docs.len() as i64;
        // The queue is counted in batches; a batch holds at most the writer's
        // batch size, so the bound in messages is approximate.
        match self.tx.try_send(docs) {
            Ok(()) => {
                self.queued.fetch_add(n, Ordering::Relaxed);
                crate::metrics::metrics().search_lag_messages.add(n);
            }
            Err(e) => {
                let docs = e.into_inner();
                if let Ok(mut overflow) = self.overflow.lock() {
                    overflow.extend(docs.iter().map(|d| (d.app.clone(), d.chat)));
                }
            }
        }
    }
}

/// Per chat: how far the index is complete, and what is indexed above that.
#[derive(Debug)]
struct Progress {
    /// Every number up to this one is indexed (and recorded in the index once `marked`).
    through: u64,
    /// The position the index has recorded.
    marked: u64,
    /// Numbers indexed above `through` (a hole below them).
    above: BTreeSet<u64>,
    /// Since when `above` has been waiting for its hole.
    stuck_since: Option<Instant>,
}

impl Progress {
    fn new(through: u64) -> Self {
        Self { through, marked: through, above: BTreeSet::new(), stuck_since: None }
    }

    /// Records that `seq` is indexed.
    fn indexed(&mut self, seq: u64) {
        if seq > self.through {
            self.above.insert(seq);
        }
    }

    /// Moves `through` up to `floor` (holes below it will never fill), then
    /// along the run of indexed numbers.
    fn advance(&mut self, floor: u64) {
        if floor > self.through {
            self.through = floor;
            self.above = self.above.split_off(&(floor + 1));
        }
        while self.above.first() == Some(&(self.through + 1)) {
            self.above.pop_first();
            self.through += 1;
        }
        self.stuck_since = match (self.above.is_empty(), self.stuck_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
    }
}

/// The running indexer.
pub struct Indexer {
    index: Arc<dyn SearchIndex>,
    store: DynStore,
    locks: Locks,
    config: SearchConfig,
    rx: mpsc::Receiver<Vec<SearchDoc>>,
    overflow: Arc<Mutex<HashSet<ChatKey>>>,
    queued: Arc<AtomicI64>,
    changes: Arc<Mutex<Vec<IndexChange>>>,
    /// The latest change of each recently changed message (`None`: removed).
    changed: HashMap<(AppId, ChatNumber, MessageNumber), Option<SearchDoc>>,
    chats: HashMap<ChatKey, Progress>,
    /// Chats to catch up from the store.
    behind: HashSet<ChatKey>,
    /// The index failed: nothing is sent to it before this (catch-ups probe it).
    resting_until: Option<Instant>,
    /// How long the last live batch's oldest message waited to be indexed, in seconds.
    batch_lag: f64,
    /// Since when some chat has been waiting for a catch-up.
    behind_since: Option<Instant>,
    scan: Option<Scan>,
    next_scan: Instant,
}

/// A scan in progress: the application and the next chat number.
#[derive(Debug, Default)]
struct Scan {
    apps: Vec<AppId>,
    /// The last application id listed (the next page starts after it).
    listed_after: Option<AppId>,
    done_listing: bool,
    /// The application being walked, its next chat and its highest.
    current: Option<(AppId, u64, u64)>,
}

impl Indexer {
    /// Starts the indexer on `tracker`: it scans at once, then indexes what
    /// the returned feed hands it; when every feed is dropped (the batch
    /// writer has ended) it indexes what is queued, records positions and ends.
    pub fn spawn(
        index: Arc<dyn SearchIndex>,
        store: DynStore,
        locks: Locks,
        config: &SearchConfig,
        tracker: &tokio_util::task::TaskTracker,
    ) -> IndexFeed {
        let (tx, rx) = mpsc::channel((config.queue / 64).max(16));
        let overflow = Arc::new(Mutex::new(HashSet::new()));
        let queued = Arc::new(AtomicI64::new(0));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let indexer = Indexer {
            index,
            store,
            locks,
            config: config.clone(),
            rx,
            overflow: Arc::clone(&overflow),
            queued: Arc::clone(&queued),
            changes: Arc::clone(&changes),
            changed: HashMap::new(),
            chats: HashMap::new(),
            behind: HashSet::new(),
            resting_until: None,
            batch_lag: 0.0,
            behind_since: None,
            scan: None,
            next_scan: Instant::now(),
        };
        tracker.spawn(indexer.run());
        IndexFeed { tx, overflow, queued, changes }
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                docs = self.rx.recv() => match docs {
                    Some(docs) => {
                        let docs = self.gather(docs).await;
                        self.index_live(docs).await;
                    }
                    None => break,
                },
                _ = tick.tick() => self.housekeeping().await,
            }
        }
        // The writer has ended and everything it committed was indexed: record positions.
        self.mark().await;
    }

    /// Waits up to `batch_delay_ms` for more documents, up to `batch_max_docs`.
    async fn gather(&mut self, mut docs: Vec<SearchDoc>) -> Vec<SearchDoc> {
        let max = self.config.batch_max_docs.max(1);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.batch_delay_ms);
        while docs.len() < max {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(more)) => docs.extend(more),
                Ok(None) | Err(_) => break,
            }
        }
        docs
    }

    /// Indexes committed documents; on failure their chats are caught up later.
    async fn index_live(&mut self, docs: Vec<SearchDoc>) {
        let n = docs.len() as i64;
        self.queued.fetch_sub(n, Ordering::Relaxed);
        let m = crate::metrics::metrics();
        m.search_lag_messages.sub(n);
        let docs = self.corrected(docs);
        let resting = self.resting_until.is_some_and(|until| Instant::now() < until);
        if resting {
            self.behind.extend(docs.iter().map(|d| (d.app.clone(), d.chat)));
            return;
        }
        match self.index.index(&docs).await {
            Ok(()) => {
                m.search_indexed.inc_by(docs.len() as u64);
                self.resting_until = None;
                if let Some(oldest) = docs.iter().map(|d| d.created_at).min() {
                    let waited = (Timestamp::now().millis() - oldest.millis()).max(0);
                    self.batch_lag = waited as f64 / 1000.0;
                }
                for doc in &docs {
                    let key = (doc.app.clone(), doc.chat);
                    if self.track(&key).await.is_err() {
                        self.behind.insert(key);
                        continue;
                    }
                    if let Some(progress) = self.chats.get_mut(&key) {
                        progress.indexed(doc.seq.get());
                        progress.advance(0);
                    }
                }
            }
            Err(e) => {
                self.index_failed(&e);
                self.behind.extend(docs.iter().map(|d| (d.app.clone(), d.chat)));
            }
        }
    }

    fn index_failed(&mut self, e: &SearchError) {
        crate::metrics::metrics().search_errors.with_label_values(&["index"]).inc();
        tracing::warn!(error = %e, cause = ?std::error::Error::source(e).map(ToString::to_string), "indexing failed; catching up later");
        self.resting_until = Some(Instant::now() + Duration::from_secs(1));
    }

    /// Makes sure `key`'s progress is known (read from the index the first time).
    async fn track(&mut self, key: &ChatKey) -> Result<(), SearchError> {
        if self.chats.contains_key(key) {
            return Ok(());
        }
        if self.chats.len() >= MAX_TRACKED_CHATS {
            self.chats.retain(|_, p| !p.above.is_empty() || p.marked < p.through);
        }
        let through = self.index.indexed_through(&key.0, key.1).await?.get();
        self.chats.insert(key.clone(), Progress::new(through));
        Ok(())
    }

    /// `docs` with the edits and deletes made since they were committed
    /// applied (a deleted message's document is left out).
    fn corrected(&self, docs: Vec<SearchDoc>) -> Vec<SearchDoc> {
        if self.changed.is_empty() {
            return docs;
        }
        docs.into_iter()
            .filter_map(|doc| match self.changed.get(&(doc.app.clone(), doc.chat, doc.seq)) {
                Some(change) => change.clone(),
                None => Some(doc),
            })
            .collect()
    }

    /// Applies queued edits and deletes in order; what the index refuses waits for the next tick.
    async fn apply_changes(&mut self) {
        let changes =
            std::mem::take(&mut *self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut rest = changes.into_iter();
        while let Some(change) = rest.next() {
            let applied = match &change {
                IndexChange::Upsert(doc) => self.index.index(std::slice::from_ref(doc)).await,
                IndexChange::Remove(app, chat, seq) => self.index.remove(app, *chat, *seq).await,
            };
            if let Err(e) = applied {
                self.index_failed(&e);
                // Put back, ahead of anything queued meanwhile.
                let mut queue = self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let later = std::mem::take(&mut *queue);
                queue.push(change);
                queue.extend(rest);
                queue.extend(later);
                return;
            }
            if self.changed.len() >= MAX_REMEMBERED_CHANGES {
                self.changed.clear();
            }
            let key = change.key();
            let latest = match change {
                IndexChange::Upsert(doc) => Some(doc),
                IndexChange::Remove(..) => None,
            };
            self.changed.insert(key, latest);
        }
    }

    /// Catches up stuck and failed chats, records positions, walks the scan.
    async fn housekeeping(&mut self) {
        if let Ok(mut overflow) = self.overflow.lock() {
            self.behind.extend(overflow.drain());
        }
        let settle = Duration::from_millis(self.config.settle_ms);
        let stuck: Vec<ChatKey> = self
            .chats
            .iter()
            .filter(|(_, p)| p.stuck_since.is_some_and(|since| since.elapsed() >= settle))
            .map(|(k, _)| k.clone())
            .collect();
        self.behind.extend(stuck);
        let resting = self.resting_until.is_some_and(|until| Instant::now() < until);
        if !resting {
            self.apply_changes().await;
        }
        let resting = self.resting_until.is_some_and(|until| Instant::now() < until);
        if !resting {
            let behind: Vec<ChatKey> = self.behind.iter().cloned().collect();
            for key in behind {
                match self.catch_up(&key).await {
                    Ok(()) => {
                        self.behind.remove(&key);
                    }
                    Err(CatchUpError::Index(e)) => {
                        self.index_failed(&e);
                        break;
                    }
                    Err(CatchUpError::Store(e)) => {
                        tracing::warn!(error = %e, "search catch-up could not read the store; retrying");
                        break;
                    }
                }
            }
        }
        self.mark().await;
        // The lag: the last batch's wait while more is queued, and how long
        // chats have waited for a catch-up.
        if self.queued.load(Ordering::Relaxed) <= 0 {
            self.batch_lag = 0.0;
        }
        self.behind_since = match (self.behind.is_empty(), self.behind_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
        let behind = self.behind_since.map_or(0.0, |since| since.elapsed().as_secs_f64());
        crate::metrics::metrics().search_lag_seconds.set(self.batch_lag.max(behind));
        if !resting {
            self.scan_step().await;
        }
    }

    /// Records in the index the positions that moved.
    async fn mark(&mut self) {
        let moved: Vec<(AppId, ChatNumber, MessageNumber)> = self
            .chats
            .iter()
            .filter(|(_, p)| p.through > p.marked)
            .map(|((app, chat), p)| (app.clone(), *chat, MessageNumber(p.through)))
            .collect();
        if moved.is_empty() {
            return;
        }
        match self.index.mark_indexed_many(&moved).await {
            Ok(()) => {
                for (app, chat, seq) in moved {
                    if let Some(p) = self.chats.get_mut(&(app, chat)) {
                        p.marked = p.marked.max(seq.get());
                    }
                }
            }
            Err(e) => self.index_failed(&e),
        }
    }

    /// Reads `key` from the store past its position and indexes what is missing.
    async fn catch_up(&mut self, key: &ChatKey) -> Result<(), CatchUpError> {
        self.track(key).await.map_err(CatchUpError::Index)?;
        let (app, chat) = key;
        let newest = self.store.max_message_number(app, *chat).await.map_err(CatchUpError::Store)?;
        let horizon =
            Timestamp::now().millis() - i64::try_from(self.config.commit_horizon_ms).unwrap_or(i64::MAX);
        let Some(progress) = self.chats.get(key) else { return Ok(()) };
        let mut from = progress.through;
        let mut floor = 0;
        while from < newest {
            let range = MessageRange::window(from, WINDOW);
            let messages = self.store.messages(app, *chat, range).await.map_err(CatchUpError::Store)?;
            let indexed = self.chats.get(key).map(|p| &p.above);
            // The store has the latest text; a deleted message has none to index.
            let docs: Vec<SearchDoc> = messages
                .iter()
                .filter(|m| !m.is_deleted())
                .filter(|m| !indexed.is_some_and(|above| above.contains(&m.number.get())))
                .map(SearchDoc::from)
                .collect();
            self.index.index(&docs).await.map_err(CatchUpError::Index)?;
            crate::metrics::metrics().search_indexed.inc_by(docs.len() as u64);
            if let Some(progress) = self.chats.get_mut(key) {
                for m in &messages {
                    progress.indexed(m.number.get());
                    if m.created_at.millis() < horizon {
                        floor = floor.max(m.number.get());
                    }
                }
            }
            from = from.saturating_add(WINDOW);
        }
        if let Some(progress) = self.chats.get_mut(key) {
            progress.advance(floor);
            // Still waiting for young holes: look again after `settle_ms`.
            if !progress.above.is_empty() {
                progress.stuck_since = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// One slice of the scan of every chat; starts a scan when one is due.
    async fn scan_step(&mut self) {
        if self.scan.is_none() {
            if Instant::now() < self.next_scan {
                return;
            }
            self.next_scan = Instant::now() + Duration::from_millis(self.config.scan_interval_ms);
            match self.locks.try_lock(SCAN_LOCK, self.config.scan_interval_ms.max(1)).await {
                Ok(true) => {
                    tracing::info!("search scan started");
                    self.scan = Some(Scan::default());
                }
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "search scan skipped: cannot take its lock");
                    return;
                }
            }
        }
        match self.scan_chats(SCAN_CHATS_PER_TICK).await {
            Ok(true) => {
                tracing::info!("search scan finished");
                self.scan = None;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "search scan paused"),
        }
    }

    /// Looks at up to `budget` chats; true when the scan is done.
    async fn scan_chats(&mut self, mut budget: usize) -> Result<bool, ScanError> {
        while budget > 0 {
            let Some(scan) = self.scan.as_mut() else { return Ok(true) };
            let Some((app, next, last)) = scan.current.clone() else {
                if scan.apps.is_empty() {
                    if scan.done_listing {
                        return Ok(true);
                    }
                    let page = self.store.application_ids(scan.listed_after.as_ref(), 100).await?;
                    scan.done_listing = page.len() < 100;
                    scan.listed_after = page.last().cloned();
                    scan.apps = page;
                    scan.apps.reverse();
                    continue;
                }
                let Some(app) = scan.apps.pop() else { continue };
                let last = self.store.max_chat_number(&app).await?;
                if let Some(scan) = self.scan.as_mut() {
                    scan.current = Some((app, 1, last));
                }
                continue;
            };
            if next > last {
                scan.current = None;
                continue;
            }
            scan.current = Some((app.clone(), next + 1, last));
            budget -= 1;
            let key = (app, ChatNumber(next));
            if self.behind.contains(&key) {
                continue;
            }
            self.track(&key).await?;
            let newest = self.store.max_message_number(&key.0, key.1).await?;
            let through =
                self.chats.get(&key).map_or(0, |p| p.through.max(p.above.last().copied().unwrap_or(0)));
            if newest > through {
                self.behind.insert(key);
            }
        }
        Ok(false)
    }
}

#[derive(Debug, thiserror::Error)]
enum CatchUpError {
    #[error("the index failed")]
    Index(#[source] SearchError),
    #[error("the store failed")]
    Store(#[source] StoreError),
}

#[derive(Debug, thiserror::Error)]
enum ScanError {
    #[error("the index failed")]
    Index(#[from] SearchError),
    #[error("the store failed")]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn progress_moves_along_the_run_and_waits_at_a_hole() {
        let mut p = Progress::new(3);
        for seq in [5, 4, 7] {
            p.indexed(seq);
        }
        p.advance(0);
        assert_eq!(p.through, 5);
        assert!(p.stuck_since.is_some(), "7 waits for 6");
        p.indexed(2);
        p.advance(0);
        assert_eq!(p.through, 5, "an old number changes nothing");
        p.advance(6);
        assert_eq!((p.through, p.above.len()), (7, 0), "6 will never come: past it, and along to 7");
        assert!(p.stuck_since.is_none());
    }
}
