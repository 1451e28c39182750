//! The store contract against a real CQL server (Apache Cassandra in CI,
//! ScyllaDB in production).
//!
//! The server address comes from `WEFT_TEST_CQL_NODES` (comma-separated
//! `host:port`, default `127.0.0.1:9042`); start one with `scripts/services.sh`.
//! A missing server fails these tests: it is never a reason to skip them.
//! Every test works in its own fresh keyspace and drops it at the end.

// Test code: a panic is a failed test (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::contract;
use weft::store::{CqlConfig, CqlStore, Store, StoreError};

/// The configured nodes.
fn nodes() -> Vec<String> {
    let raw = std::env::var("WEFT_TEST_CQL_NODES").unwrap_or_else(|_| "127.0.0.1:9042".to_owned());
    raw.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// A configuration for a keyspace no other test (or run) uses.
fn fresh_config() -> CqlConfig {
    CqlConfig {
        nodes: nodes(),
        keyspace: common::test_keyspace("test"),
        // Schema changes on a busy single test node can be slow.
        request_timeout_ms: 30_000,
        ..CqlConfig::default()
    }
}

fn unreachable(cfg: &CqlConfig, e: &StoreError) -> String {
    format!(
        "cannot use the CQL server at {:?}: {e} ({e:?}). Start it with scripts/services.sh \
         or point WEFT_TEST_CQL_NODES at one",
        cfg.nodes
    )
}

/// A keyspace that is migrated, and a store connected to it.
async fn migrated_store() -> (CqlStore, CqlConfig) {
    let cfg = fresh_config();
    let version = CqlStore::migrate(&cfg).await.unwrap_or_else(|e| panic!("{}", unreachable(&cfg, &e)));
    assert_eq!(version, CqlStore::SCHEMA_VERSION);
    let store = CqlStore::connect(&cfg).await.unwrap_or_else(|e| panic!("{}", unreachable(&cfg, &e)));
    (store, cfg)
}

/// Drops a test keyspace through a session of its own.
async fn drop_keyspace(cfg: &CqlConfig) {
    let session =
        scylla::client::session_builder::SessionBuilder::new().known_nodes(&cfg.nodes).build().await.unwrap();
    let mut drop = scylla::statement::Statement::new(format!("DROP KEYSPACE IF EXISTS {}", cfg.keyspace));
    drop.set_request_timeout(Some(std::time::Duration::from_secs(60)));
    session.query_unpaged(drop, ()).await.unwrap();
}

#[tokio::test]
async fn migrate_is_idempotent_and_connect_checks_the_schema() {
    let cfg = fresh_config();
    match CqlStore::connect(&cfg).await {
        Err(StoreError::SchemaOutdated { found: 0, needed }) => assert_eq!(needed, CqlStore::SCHEMA_VERSION),
        Err(e) => panic!("{}", unreachable(&cfg, &e)),
        Ok(_) => panic!("connect accepted a keyspace that does not exist"),
    }
    let first = CqlStore::migrate(&cfg).await.unwrap_or_else(|e| panic!("{}", unreachable(&cfg, &e)));
    let second = CqlStore::migrate(&cfg).await.unwrap();
    assert_eq!((first, second), (CqlStore::SCHEMA_VERSION, CqlStore::SCHEMA_VERSION));
    let store = CqlStore::connect(&cfg).await.unwrap();
    assert_eq!(store.max_chat_number(&weft::ids::AppId::generate()).await.unwrap(), 0);
    drop_keyspace(&cfg).await;
}

/// A migration numbered below the highest recorded one (merged from a
/// parallel branch) is still applied: `connect` refuses the keyspace until
/// `migrate` has run it.
#[tokio::test]
async fn migrate_applies_a_migration_below_the_highest_recorded() {
    let cfg = fresh_config();
    CqlStore::migrate(&cfg).await.unwrap_or_else(|e| panic!("{}", unreachable(&cfg, &e)));
    let session =
        scylla::client::session_builder::SessionBuilder::new().known_nodes(&cfg.nodes).build().await.unwrap();
    // As if 5 had come with a merge after 8 was applied.
    session
        .query_unpaged(format!("DELETE FROM {}.schema_migrations WHERE version = 5", cfg.keyspace), ())
        .await
        .unwrap();
    match CqlStore::connect(&cfg).await {
        Err(StoreError::SchemaOutdated { found, needed }) => assert_eq!(found, needed),
        Err(e) => panic!("expected SchemaOutdated, got {e:?}"),
        Ok(_) => panic!("connect accepted a keyspace missing migration 5"),
    }
    assert_eq!(CqlStore::migrate(&cfg).await.unwrap(), CqlStore::SCHEMA_VERSION);
    CqlStore::connect(&cfg).await.unwrap();
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn connect_refuses_a_keyspace_without_migrations() {
    let cfg = fresh_config();
    // The keyspace exists but holds no weft tables.
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&cfg.nodes)
        .build()
        .await
        .unwrap_or_else(|e| panic!("cannot reach the CQL server at {:?}: {e}", cfg.nodes));
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
                cfg.keyspace
            ),
            (),
        )
        .await
        .unwrap();
    match CqlStore::connect(&cfg).await {
        Err(StoreError::SchemaOutdated { found: 0, needed }) => assert_eq!(needed, CqlStore::SCHEMA_VERSION),
        Err(e) => panic!("expected SchemaOutdated, got {e:?}"),
        Ok(_) => panic!("connect accepted an empty keyspace"),
    }
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn an_unreachable_cluster_is_unavailable() {
    let cfg = CqlConfig { nodes: vec!["127.0.0.1:1".into()], connect_timeout_ms: 1000, ..fresh_config() };
    assert!(matches!(CqlStore::connect(&cfg).await, Err(StoreError::Unavailable(_))));
    assert!(matches!(CqlStore::migrate(&cfg).await, Err(StoreError::Unavailable(_))));
}

#[tokio::test]
async fn contract_applications() {
    let (store, cfg) = migrated_store().await;
    contract::applications(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_application_ids() {
    let (store, cfg) = migrated_store().await;
    contract::application_ids(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_edits_and_deletes() {
    let (store, cfg) = migrated_store().await;
    contract::edits_and_deletes(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_reactions() {
    let (store, cfg) = migrated_store().await;
    contract::reactions(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_threads() {
    let (store, cfg) = migrated_store().await;
    contract::threads(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_attachments() {
    let (store, cfg) = migrated_store().await;
    contract::attachments(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_chats() {
    let (store, cfg) = migrated_store().await;
    contract::chats(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_messages() {
    let (store, cfg) = migrated_store().await;
    contract::messages_across_buckets(&store).await;
    contract::messages_in_sparse_buckets(&store).await;
    contract::large_message_batches(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_members() {
    let (store, cfg) = migrated_store().await;
    contract::members(&store).await;
    contract::direct_chats(&store).await;
    contract::read_state(&store).await;
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_groups_and_roles() {
    let (store, cfg) = migrated_store().await;
    contract::groups(&store).await;
    contract::roles(&store).await;
    drop_keyspace(&cfg).await;
}

/// Rows written before migration 7 (no name, metadata, creator or role
/// columns) read as a chat without info and a plain member.
#[tokio::test]
async fn rows_from_before_groups_read_as_plain_chats_and_members() {
    use weft::ids::{AppId, ChatNumber, Timestamp, UserId};
    use weft::model::{Chat, ChatKind, Role};
    let (store, cfg) = migrated_store().await;
    let session = scylla::client::session_builder::SessionBuilder::new()
        .known_nodes(&cfg.nodes)
        .use_keyspace(&cfg.keyspace, false)
        .build()
        .await
        .unwrap();
    let app = AppId::generate();
    let at = scylla::value::CqlTimestamp(1_700_000_000_000);
    session
        .query_unpaged(
            "INSERT INTO chats (app, number, kind, created_at) VALUES (?, ?, ?, ?)",
            (app.as_str(), 7_i64, "group", at),
        )
        .await
        .unwrap();
    session
        .query_unpaged(
            "INSERT INTO members (app, chat, user_id, joined_at) VALUES (?, ?, ?, ?)",
            (app.as_str(), 7_i64, "old-timer", at),
        )
        .await
        .unwrap();
    let chat = store.chat(&app, ChatNumber(7)).await.unwrap().unwrap();
    assert_eq!(chat, Chat::new(app.clone(), ChatNumber(7), ChatKind::Group, Timestamp(1_700_000_000_000)));
    let member = store.member(&app, ChatNumber(7), &UserId::parse("old-timer").unwrap()).await.unwrap();
    assert_eq!(member.map(|m| m.role), Some(Role::Member));
    // A role cell that outlived its member's removal (a race across clocks)
    // makes nobody a member.
    session
        .query_unpaged(
            "UPDATE members SET role = 'admin' WHERE app = ? AND chat = ? AND user_id = ?",
            (app.as_str(), 7_i64, "ghost"),
        )
        .await
        .unwrap();
    let ghost = UserId::parse("ghost").unwrap();
    assert_eq!(store.member(&app, ChatNumber(7), &ghost).await.unwrap(), None);
    assert!(!store.is_member(&app, ChatNumber(7), &ghost).await.unwrap());
    let page = weft::model::Page { skip: 0, limit: 10 };
    let listed: Vec<String> = store
        .members(&app, ChatNumber(7), page)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user.as_str().to_owned())
        .collect();
    assert_eq!(listed, ["old-timer"]);
    drop_keyspace(&cfg).await;
}

#[tokio::test]
async fn contract_all_on_one_shared_store() {
    // The checks must hold side by side in one keyspace, as the embedded backend runs them.
    let (store, cfg) = migrated_store().await;
    let shared: &dyn Store = &store;
    tokio::join!(contract::all(shared), contract::all(shared));
    drop_keyspace(&cfg).await;
}

/// The batch writer on CQL commits each chat of a batch apart: concurrent
/// senders into many chats are all answered, each message is stored once,
/// and batches still form.
#[tokio::test]
async fn the_batch_writer_commits_many_chats_apart() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use weft::ids::{AppId, ChatNumber};
    use weft::model::{MessageRange, Page};
    use weft::store::{BatchConfig, BatchWriter, DynStore};

    let (store, cfg) = migrated_store().await;
    let store: DynStore = Arc::new(store);
    assert!(store.chats_commit_apart());
    let tracker = tokio_util::task::TaskTracker::new();
    let config = BatchConfig { max_messages: 64, max_delay_ms: 5, ..BatchConfig::default() };
    let writer = BatchWriter::spawn(Arc::clone(&store), &config, &tracker);
    let app = AppId::generate();
    let (chats, per_chat) = (30u64, 20u64);
    let writes: Vec<_> = (1..=per_chat)
        .flat_map(|n| (1..=chats).map(move |chat| (chat, n)))
        .map(|(chat, n)| {
            let (writer, app) = (writer.clone(), app.clone());
            tokio::spawn(async move {
                writer.write(contract::message(&app, chat, n, format!("{chat}/{n}"))).await
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    let stats = writer.stats();
    assert_eq!(stats.messages.load(Ordering::Relaxed), chats * per_chat);
    assert!(stats.batches.load(Ordering::Relaxed) < chats * per_chat, "no batch held two messages");
    for chat in 1..=chats {
        let range = MessageRange { before: None, after: None, page: Page { skip: 0, limit: 100 } };
        let stored = store.messages(&app, ChatNumber(chat), range).await.unwrap();
        let numbers: Vec<u64> = stored.iter().map(|m| m.number.get()).collect();
        assert_eq!(numbers, (1..=per_chat).rev().collect::<Vec<_>>(), "chat {chat}");
        assert!(stored.iter().all(|m| m.body == format!("{chat}/{}", m.number.get())));
    }
    writer.close();
    tracker.close();
    tracker.wait().await;
    drop_keyspace(&cfg).await;
}
