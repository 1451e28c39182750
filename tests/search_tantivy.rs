//! The embedded search index (tantivy): the search contract on a fresh index
//! per check, and what only a local index can show (surviving a reopen).

#[macro_use]
mod common;

use common::search_contract::{self as contract, doc, index_and_settle, request};
use weft::ids::{AppId, ChatNumber, MessageNumber};
use weft::search::{SearchIndex, TantivyIndex};

/// One test per contract check, each on its own index in a temporary directory.
macro_rules! contract_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let dir = tempfile::tempdir().unwrap();
                let index = TantivyIndex::open(dir.path()).unwrap();
                contract::$check(&index).await;
            }
        )*
    };
}

with_search_checks!(contract_tests);

/// Every check in a row on one index, as a shared OpenSearch index runs them.
#[tokio::test]
async fn the_whole_contract_on_one_index() {
    let dir = tempfile::tempdir().unwrap();
    let index = TantivyIndex::open(dir.path()).unwrap();
    contract::all(&index).await;
}

/// Documents and positions survive closing and reopening the directory.
#[tokio::test]
async fn documents_and_positions_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppId::generate();
    {
        let index = TantivyIndex::open(dir.path()).unwrap();
        index_and_settle(&index, &[doc(&app, 1, 1, "durable words"), doc(&app, 1, 2, "gone soon")], 2).await;
        index.remove(&app, ChatNumber(1), MessageNumber(2)).await.unwrap();
        index.mark_indexed(&app, ChatNumber(1), MessageNumber(2)).await.unwrap();
        index.mark_indexed(&app, ChatNumber(4), MessageNumber(40)).await.unwrap();
    }
    let index = TantivyIndex::open(dir.path()).unwrap();
    assert_eq!(index.indexed_through(&app, ChatNumber(1)).await.unwrap(), MessageNumber(2));
    assert_eq!(index.indexed_through(&app, ChatNumber(4)).await.unwrap(), MessageNumber(40));
    let found = index.search(&request(&app, &[1], "dur")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].highlight, "<mark>durable</mark> words");
    assert!(index.search(&request(&app, &[1], "gone")).await.unwrap().is_empty());
    // Still writable after the reopen.
    index.index(&[doc(&app, 1, 3, "more words")]).await.unwrap();
    assert_eq!(index.search(&request(&app, &[1], "words")).await.unwrap().len(), 2);
}

/// Positions describe the index beside them: a wiped index starts from 0.
#[tokio::test]
async fn a_wiped_index_forgets_its_positions() {
    let dir = tempfile::tempdir().unwrap();
    let app = AppId::generate();
    {
        let index = TantivyIndex::open(dir.path()).unwrap();
        index.index(&[doc(&app, 1, 1, "lost")]).await.unwrap();
        index.mark_indexed(&app, ChatNumber(1), MessageNumber(1)).await.unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let index = TantivyIndex::open(dir.path()).unwrap();
    assert_eq!(index.indexed_through(&app, ChatNumber(1)).await.unwrap(), MessageNumber(0));
    assert!(index.search(&request(&app, &[1], "lost")).await.unwrap().is_empty());
}

/// A position never goes back: batches may report out of order.
#[tokio::test]
async fn positions_never_go_back() {
    let dir = tempfile::tempdir().unwrap();
    let index = TantivyIndex::open(dir.path()).unwrap();
    let app = AppId::generate();
    index.mark_indexed(&app, ChatNumber(1), MessageNumber(9)).await.unwrap();
    index.mark_indexed(&app, ChatNumber(1), MessageNumber(4)).await.unwrap();
    assert_eq!(index.indexed_through(&app, ChatNumber(1)).await.unwrap(), MessageNumber(9));
}

/// A document is searchable as soon as `index` returns (one commit per call).
#[tokio::test]
async fn searchable_when_index_returns() {
    let dir = tempfile::tempdir().unwrap();
    let index = TantivyIndex::open(dir.path()).unwrap();
    let app = AppId::generate();
    for seq in 1..=5 {
        index.index(&[doc(&app, 1, seq, &format!("fresh{seq}"))]).await.unwrap();
        assert_eq!(index.search(&request(&app, &[1], &format!("fresh{seq}"))).await.unwrap().len(), 1);
    }
}

/// A second handle on the same directory is refused (tantivy's writer lock), not corrupting it.
#[tokio::test]
async fn one_writer_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _index = TantivyIndex::open(dir.path()).unwrap();
    assert!(TantivyIndex::open(dir.path()).is_err());
}
