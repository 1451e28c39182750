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
    seen: Arc<Mutex<Seen>>,
}

/// Idempotency keys kept in memory at most, over two generations: when the
/// newer one is full, the older one is dropped. A claim (pending or not) is
/// thus kept for at least `SEEN_CAPACITY / 2` later claims; clearing one map
/// at once dropped claims still being committed, and a retry of one of them
/// would have stored its message twice.
const SEEN_CAPACITY: usize = 200_000;

#[derive(Default)]
struct Seen {
    current: HashMap<IdempotencyKey, Claim>,
    previous: HashMap<IdempotencyKey, Claim>,
}

impl Seen {
    fn get(&self, key: &IdempotencyKey) -> Option<&Claim> {
        self.current.get(key).or_else(|| self.previous.get(key))
    }

    /// The earlier claim on `key`, or `None` after recording this one.
    fn claim(&mut self, key: &IdempotencyKey, claim: Claim, capacity: usize) -> Option<Claim> {
        if let Some(earlier) = self.get(key) {
            return Some(*earlier);
        }
        if self.current.len() >= (capacity / 2).max(1) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key.clone(), claim);
        None
    }

    fn get_mut(&mut self, key: &IdempotencyKey) -> Option<&mut Claim> {
        match self.current.get_mut(key) {
            Some(claim) => Some(claim),
            None => self.previous.get_mut(key),
        }
    }
}

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
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).claim(key, claim, SEEN_CAPACITY)
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
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.current.remove(key);
        seen.previous.remove(key);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AppId, ChatNumber, MessageNumber, UserId};

    #[test]
    fn a_claim_outlives_the_generation_it_was_made_in() {
        let app = AppId::generate();
        let user = UserId::parse("u").unwrap();
        let key = |n: u64| -> IdempotencyKey { (app.clone(), Some(user.clone()), format!("k{n}")) };
        let claim = |n: u64| Claim { chat: ChatNumber(1), seq: MessageNumber(n), at: 0, committed: false };
        let mut seen = Seen::default();
        for n in 0..10 {
            assert!(seen.claim(&key(n), claim(n), 10).is_none());
        }
        // Keys 0..5 moved to the older generation, 5..10 too: every one is still known.
        for n in 0..10 {
            assert_eq!(seen.claim(&key(n), claim(99), 10).map(|c| c.seq), Some(MessageNumber(n)), "key {n}");
        }
        // Pending claims are still marked committed after a flip.
        seen.get_mut(&key(0)).unwrap().committed = true;
        assert!(seen.get(&key(0)).unwrap().committed);
        // Two flips later the oldest are gone.
        for n in 10..20 {
            seen.claim(&key(n), claim(n), 10);
        }
        assert!(seen.get(&key(0)).is_none());
        assert!(seen.get(&key(19)).is_some());
    }
}
