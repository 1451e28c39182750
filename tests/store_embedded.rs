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
