//! The store contract against the embedded (redb) backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::contract;
use weft::store::EmbeddedStore;

#[tokio::test]
async fn embedded_store_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    contract::all(&store).await;
}

#[tokio::test]
async fn embedded_store_keeps_data_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        contract::applications(&store).await;
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    contract::chats(&store).await;
}

/// Closing the batch writer commits what is queued, refuses what comes after,
/// and ends the writer even while other handles to it are still alive.
/// (One thread, so that the test knows when every write is queued.)
#[tokio::test]
async fn a_closed_batch_writer_commits_its_queue_and_refuses_more() {
    use std::sync::Arc;
    use weft::ids::{AppId, ChatNumber};
    use weft::store::{BatchConfig, BatchWriter, DynStore, WriteError};

    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let tracker = tokio_util::task::TaskTracker::new();
    // Small, slow batches: most writes are still queued when the writer closes.
    let config =
        BatchConfig { max_messages: 10, max_delay_ms: 20, max_in_flight: 1, ..BatchConfig::default() };
    let writer = BatchWriter::spawn(Arc::clone(&store), &config, &tracker);
    let app = AppId::generate();
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writes: Vec<_> = (1..=300)
        .map(|n| {
            let (writer, app, started) = (writer.clone(), app.clone(), Arc::clone(&started));
            tokio::spawn(async move {
                // Counted in the same poll that queues the write (the queue has room).
                started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                writer.write(contract::message(&app, 1, n, format!("m{n}"))).await
            })
        })
        .collect();
    // Every write is queued (the first ones perhaps committed) before the close.
    while started.load(std::sync::atomic::Ordering::Relaxed) < 300 {
        tokio::task::yield_now().await;
    }
    let committed = || writer.stats().messages.load(std::sync::atomic::Ordering::Relaxed);
    writer.close();
    let at_close = committed();
    assert!(at_close < 300, "everything was committed before the close: the test proves nothing");
    let late = writer.write(contract::message(&app, 1, 301, "late".into())).await;
    assert!(matches!(late, Err(WriteError::Closed)), "{late:?}");
    tracker.close();
    tokio::time::timeout(std::time::Duration::from_secs(10), tracker.wait())
        .await
        .expect("the writer did not end while a handle is alive");
    let mut ok = 0;
    for write in writes {
        if write.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 300);
    assert_eq!(store.max_message_number(&app, ChatNumber(1)).await.unwrap(), 300);
    drop(writer);
}
