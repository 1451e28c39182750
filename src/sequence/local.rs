//! In-process counters for the single-node mode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OnceCell;

use super::{Claim, Counter, IdempotencyKey, SequenceError};
use crate::store::DynStore;

type Cell = Arc<OnceCell<AtomicU64>>;

/// Counters held in memory, each seeded from the store on first use.
///
/// Only correct while this process is the only writer of its store, which is
/// what the embedded mode is.
#[derive(Clone)]
pub struct LocalSequencer {
    store: DynStore,
    cells: Arc<Mutex<HashMap<Counter, Cell>>>,
    seen: Arc<Mutex<HashMap<IdempotencyKey, Claim>>>,
}

/// Idempotency keys kept in memory at most; the map is cleared past it.
const SEEN_CAPACITY: usize = 200_000;

impl LocalSequencer {
    /// Counters over `store`.
    pub fn new(store: DynStore) -> Self {
        Self { store, cells: Arc::default(), seen: Arc::default() }
    }

    fn cell(&self, counter: &Counter) -> Cell {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(cells.entry(counter.clone()).or_default())
    }

    async fn seeded(&self, counter: &Counter) -> Result<Cell, SequenceError> {
        let cell = self.cell(counter);
        cell.get_or_try_init(|| async { counter.stored_max(&self.store).await.map(AtomicU64::new) }).await?;
        Ok(cell)
    }

    pub(super) fn recall(&self, key: &IdempotencyKey) -> Option<Claim> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).get(key).copied()
    }

    pub(super) fn claim(&self, key: &IdempotencyKey, claim: Claim) -> Option<Claim> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(earlier) = seen.get(key) {
            return Some(*earlier);
        }
        if seen.len() >= SEEN_CAPACITY {
            seen.clear();
        }
        seen.insert(key.clone(), claim);
        None
    }

    pub(super) fn replace(&self, key: &IdempotencyKey, old: Claim, new: Claim) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        match seen.get_mut(key) {
            Some(current) if *current == old => {
                *current = new;
                true
            }
            _ => false,
        }
    }

    pub(super) fn forget(&self, key: &IdempotencyKey) {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    pub(super) fn init(&self, counter: Counter) {
        let cell = self.cell(&counter);
        // A new application or chat has nothing stored: zero is its true start.
        let _ = cell.set(AtomicU64::new(0));
    }

    pub(super) async fn next(&self, counter: Counter) -> Result<u64, SequenceError> {
        let cell = self.seeded(&counter).await?;
        let value = cell.get().map_or(0, |n| n.fetch_add(1, Ordering::SeqCst) + 1);
        Ok(value)
    }

    pub(super) async fn current(&self, counters: &[Counter]) -> Result<Vec<u64>, SequenceError> {
        let mut out = Vec::with_capacity(counters.len());
        for counter in counters {
            let cell = self.seeded(counter).await?;
            out.push(cell.get().map_or(0, |n| n.load(Ordering::SeqCst)));
        }
        Ok(out)
    }
}
