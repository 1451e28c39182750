//! Insert throughput of the CQL store against a running server.
//!
//! ```text
//! cargo run --release --example cql_insert_bench
//! WEFT_BENCH_CQL_NODES=10.0.0.1:9042 WEFT_BENCH_MESSAGES=200000 cargo run --release --example cql_insert_bench
//! ```
//!
//! Compares, for 50,000 messages of about 200 bytes written into one chat and
//! into 1,000 chats:
//! (a) `Store::insert_messages` with calls of 256 messages, 4 calls at a time;
//! (b) a plain loop of single prepared INSERTs, 64 at a time, same driver;
//! (c) the batch writer, fed by 512 concurrent senders that each wait for
//!     their write to commit before sending the next (as HTTP/WebSocket
//!     senders do), reporting the batch sizes it formed.
//! Works in a fresh keyspace and drops it at the end.

use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::Consistency;
use scylla::value::{CqlTimestamp, MaybeUnset};
use weft::ids::{AppId, ChatNumber, MessageNumber, Timestamp, UserId};
use weft::model::Message;
use weft::store::{BatchConfig, BatchWriter, CqlConfig, CqlStore, Store, bucket_of};

const CALL_SIZE: usize = 256;
const CALLS_IN_FLIGHT: usize = 4;
const SINGLE_IN_FLIGHT: usize = 64;
const WRITER_SENDERS: usize = 512;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `count` messages of ~200 bytes spread round-robin over `chats` chats, as
/// they would arrive from many chats at once.
fn messages(app: &AppId, chats: u64, count: u64) -> Result<Vec<Message>, BoxError> {
    let sender = UserId::parse("bench-user")?;
    Ok((0..count)
        .map(|i| Message {
            app: app.clone(),
            chat: ChatNumber(i % chats + 1),
            number: MessageNumber(i / chats + 1),
            body: format!("{i:>10} {}", "lorem ipsum dolor sit amet ".repeat(7)),
            sender: Some(sender.clone()),
            client_msg_id: Some(format!("c-{i}")),
            reply_to: None,
            created_at: Timestamp::now(),
            edited_at: None,
            deleted_at: None,
            reply_count: 0,
            last_reply_at: None,
            attachments: Vec::new(),
            reactions: Default::default(),
        })
        .collect())
}

/// (a): through the store, in calls of `CALL_SIZE`, `CALLS_IN_FLIGHT` at a time.
async fn via_store(store: &CqlStore, messages: &[Message]) -> Result<Duration, BoxError> {
    let started = Instant::now();
    futures::stream::iter(messages.chunks(CALL_SIZE))
        .map(|call| store.insert_messages(call))
        .buffer_unordered(CALLS_IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

/// (b): one prepared INSERT per message, `SINGLE_IN_FLIGHT` at a time.
async fn one_by_one(session: &Session, messages: &[Message]) -> Result<Duration, BoxError> {
    let insert = session
        .prepare(
            "INSERT INTO messages (app, chat, bucket, number, body, sender, client_msg_id, reply_to, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .await?;
    let insert = &insert;
    let started = Instant::now();
    futures::stream::iter(messages)
        .map(|m| async move {
            let values = (
                m.app.as_str(),
                i64::try_from(m.chat.get())?,
                i64::try_from(bucket_of(m.number))?,
                i64::try_from(m.number.get())?,
                m.body.as_str(),
                m.sender.as_ref().map_or(MaybeUnset::Unset, |s| MaybeUnset::Set(s.as_str())),
                m.client_msg_id.as_deref().map_or(MaybeUnset::Unset, MaybeUnset::Set),
                MaybeUnset::<i64>::Unset,
                CqlTimestamp(m.created_at.millis()),
            );
            session.execute_unpaged(insert, values).await?;
            Ok::<_, BoxError>(())
        })
        .buffer_unordered(SINGLE_IN_FLIGHT)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

/// (c): through the batch writer, `WRITER_SENDERS` senders waiting on each commit.
/// Returns the time taken, the commits made and the messages committed.
async fn via_writer(store: &CqlStore, messages: Vec<Message>) -> Result<(Duration, u64, u64), BoxError> {
    let tracker = tokio_util::task::TaskTracker::new();
    let config = BatchConfig { max_in_flight: 8, ..BatchConfig::default() };
    let writer = BatchWriter::spawn(std::sync::Arc::new(store.clone()), &config, &tracker);
    let per_sender = messages.len().div_ceil(WRITER_SENDERS);
    let mut chunks: Vec<Vec<Message>> = Vec::new();
    let mut rest = messages.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(per_sender).collect());
    }
    let started = Instant::now();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for m in chunk {
                    writer.write(m).await?;
                }
                Ok::<_, BoxError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let took = started.elapsed();
    let stats = writer.stats();
    let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
    let committed = stats.messages.load(std::sync::atomic::Ordering::Relaxed);
    drop(writer);
    tracker.close();
    tracker.wait().await;
    Ok((took, batches, committed))
}

/// A plain session like the store's: same nodes, consistency and timeout.
async fn raw_session(cfg: &CqlConfig) -> Result<Session, BoxError> {
    let profile = ExecutionProfile::builder()
        .request_timeout(Some(Duration::from_millis(cfg.request_timeout_ms)))
        .consistency(Consistency::LocalQuorum)
        .build();
    let session = SessionBuilder::new()
        .known_nodes(&cfg.nodes)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await?;
    session.use_keyspace(&cfg.keyspace, false).await?;
    Ok(session)
}

fn rate(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let nodes = std::env::var("WEFT_BENCH_CQL_NODES").unwrap_or_else(|_| "127.0.0.1:9042".into());
    let count: u64 = std::env::var("WEFT_BENCH_MESSAGES").ok().and_then(|n| n.parse().ok()).unwrap_or(50_000);
    let cfg = CqlConfig {
        nodes: nodes.split(',').map(str::to_owned).collect(),
        keyspace: format!("weft_bench_{:08x}", rand::random::<u32>()),
        request_timeout_ms: 30_000,
        ..CqlConfig::default()
    };
    CqlStore::migrate(&cfg).await?;
    let store = CqlStore::connect(&cfg).await?;
    let session = raw_session(&cfg).await?;

    // Warm up both paths (connections, server JIT) on data that is not measured.
    via_store(&store, &messages(&AppId::generate(), 100, 10_000)?).await?;
    one_by_one(&session, &messages(&AppId::generate(), 100, 10_000)?).await?;

    println!(
        "{count} messages of ~200 B; store: calls of {CALL_SIZE} x{CALLS_IN_FLIGHT}; single: x{SINGLE_IN_FLIGHT}"
    );
    for chats in [1, 1000] {
        let batched = messages(&AppId::generate(), chats, count)?;
        let single = messages(&AppId::generate(), chats, count)?;
        let a = rate(batched.len(), via_store(&store, &batched).await?);
        let b = rate(single.len(), one_by_one(&session, &single).await?);
        println!(
            "{chats:>5} chat(s): (a) insert_messages {a:>9.0} msg/s   (b) single INSERTs {b:>9.0} msg/s   a/b = {:.2}",
            a / b
        );
        let through_writer = messages(&AppId::generate(), chats, count)?;
        let (took, batches, committed) = via_writer(&store, through_writer).await?;
        let c = rate(committed as usize, took);
        println!(
            "{chats:>5} chat(s): (c) batch writer    {c:>9.0} msg/s   {batches} commits, {:.1} messages per commit   c/b = {:.2}",
            committed as f64 / batches.max(1) as f64,
            c / b
        );
    }

    let mut drop = scylla::statement::Statement::new(format!("DROP KEYSPACE IF EXISTS {}", cfg.keyspace));
    drop.set_request_timeout(Some(Duration::from_secs(60)));
    session.query_unpaged(drop, ()).await?;
    Ok(())
}
