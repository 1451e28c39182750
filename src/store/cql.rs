//! The CQL backend: ScyllaDB or Apache Cassandra through the scylla driver.
//!
//! The schema lives in `cql/*.cql` and is applied by [`CqlStore::migrate`];
//! [`CqlStore::connect`] refuses a keyspace whose schema is older than
//! [`SCHEMA_VERSION`]. The CQL is portable: it runs unchanged on Cassandra 5.0
//! (what CI uses) and on ScyllaDB.
//!
//! Layout (see `cql/001_initial.cql`):
//! - messages are partitioned by `(app, chat, bucket)` with
//!   `bucket = number / MESSAGE_BUCKET`, newest first inside a partition;
//! - `chat_buckets` lists the buckets of a chat that hold messages, newest
//!   first, so readers find the newest bucket and skip empty ones;
//! - members and a user's chats are two mirror tables written together.
//!
//! Writes never use lightweight transactions (Paxos), and optional columns are
//! sent *unset* rather than null so that no tombstones are written.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::deserialize::row::DeserializeRow;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::response::query_result::QueryResult;
use scylla::statement::Consistency;
use scylla::statement::batch::{Batch, BatchStatement, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, MaybeUnset};

use super::{Store, StoreError, bucket_of};
use crate::ids::{AppId, AppToken, ChatNumber, MessageNumber, Timestamp, UserId};
use crate::model::{Application, Chat, ChatKind, Member, Message, MessageRange, Page};

/// The embedded migrations: (version, name, CQL text), oldest first.
const MIGRATIONS: &[(u32, &str, &str)] = &[(1, "initial", include_str!("../../cql/001_initial.cql"))];

/// The schema version this build needs (the newest embedded migration).
pub const SCHEMA_VERSION: u32 = 1;

/// At most this many message bytes (bodies plus the other text columns plus a
/// fixed per-row allowance) go into one batch. Cassandra fails batches above
/// 50 KiB by default (`batch_size_fail_threshold`), ScyllaDB above 1 MiB.
const BATCH_MAX_BYTES: usize = 40 * 1024;

/// At most this many statements go into one batch.
const BATCH_MAX_ROWS: usize = 100;

/// What a message row costs beyond its text columns (keys, numbers, cell
/// timestamps) when sizing a batch; generous on purpose.
const ROW_OVERHEAD_BYTES: usize = 64;

/// How many partitions one `insert_messages` call writes at the same time.
const MAX_CONCURRENT_PARTITIONS: usize = 32;

/// How many bucket numbers one read of `chat_buckets` returns.
const BUCKET_LIST_PAGE: usize = 32;

/// How many `(app, chat, bucket)` keys a store remembers as already listed in
/// `chat_buckets` before it forgets them all (about 100 bytes each).
const KNOWN_BUCKETS_MAX: usize = 100_000;

/// How to reach the CQL cluster and where weft keeps its tables.
#[derive(Clone, Debug, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CqlConfig {
    /// Contact points as `host:port`; the driver discovers the other nodes.
    pub nodes: Vec<String>,
    /// The keyspace holding weft's tables (letters, digits and `_`, at most 48;
    /// case-insensitive like any unquoted CQL name).
    pub keyspace: String,
    /// Copies of each row kept by the cluster; used when `weft migrate`
    /// creates the keyspace (an existing keyspace is left as it is).
    pub replication_factor: u32,
    /// The local datacenter. When set, the keyspace is created with
    /// `NetworkTopologyStrategy {datacenter: replication_factor}` instead of
    /// `SimpleStrategy`, and requests prefer this datacenter's nodes.
    pub datacenter: Option<String>,
    /// Client-side timeout of one request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Timeout of opening one connection, in milliseconds.
    pub connect_timeout_ms: u64,
}

impl Default for CqlConfig {
    fn default() -> Self {
        Self {
            nodes: vec!["127.0.0.1:9042".to_owned()],
            keyspace: "weft".to_owned(),
            replication_factor: 1,
            datacenter: None,
            request_timeout_ms: 5000,
            connect_timeout_ms: 5000,
        }
    }
}

/// A configuration weft refuses before talking to the cluster.
#[derive(Debug, thiserror::Error)]
#[error("invalid CQL configuration: {0}")]
struct InvalidConfig(&'static str);

impl CqlConfig {
    /// The keyspace name, checked (it is spliced into CQL text) and lower-cased
    /// (how the server stores an unquoted name).
    fn keyspace_name(&self) -> Result<String, StoreError> {
        let name = &self.keyspace;
        let valid = !name.is_empty()
            && name.len() <= 48
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
        if valid {
            Ok(name.to_ascii_lowercase())
        } else {
            Err(StoreError::unavailable(InvalidConfig(
                "keyspace must be 1 to 48 letters, digits or _, starting with a letter",
            )))
        }
    }

    /// The `replication` map of `CREATE KEYSPACE`.
    fn replication(&self) -> Result<String, StoreError> {
        let rf = self.replication_factor;
        if rf == 0 {
            return Err(StoreError::unavailable(InvalidConfig(
                "replication_factor must be at least 1",
            )));
        }
        Ok(match &self.datacenter {
            Some(dc) => {
                let dc = dc.replace('\'', "''");
                format!("{{'class': 'NetworkTopologyStrategy', '{dc}': {rf}}}")
            }
            None => format!("{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"),
        })
    }

    /// A session builder with this configuration's nodes, timeouts, consistency
    /// and datacenter preference, not yet bound to a keyspace.
    fn session_builder(&self, keyspace: &str) -> SessionBuilder {
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &self.datacenter {
            policy = policy.prefer_datacenter(dc.clone());
        }
        let profile = ExecutionProfile::builder()
            .request_timeout(Some(Duration::from_millis(self.request_timeout_ms)))
            .consistency(Consistency::LocalQuorum)
            .load_balancing_policy(policy.build())
            .build();
        SessionBuilder::new()
            .known_nodes(&self.nodes)
            .connection_timeout(Duration::from_millis(self.connect_timeout_ms))
            .default_execution_profile_handle(profile.into_handle())
            .keyspaces_to_fetch([keyspace.to_owned()])
    }
}

/// The ScyllaDB / Cassandra store. Cloning is cheap and shares the session.
#[derive(Clone)]
pub struct CqlStore {
    inner: Arc<Inner>,
}

/// The session and the statements prepared on it.
struct Inner {
    session: Session,
    stmts: Statements,
    known_buckets: KnownBuckets,
}

/// The `(app, chat, bucket)` rows this store has already written to
/// `chat_buckets`, so that only the first write to a bucket pays for that row
/// (one extra round trip before the messages). Forgetting is always safe:
/// the row is then just written again, which is idempotent.
#[derive(Default)]
struct KnownBuckets(Mutex<HashSet<(AppId, u64, u64)>>);

impl KnownBuckets {
    fn contains(&self, key: &(AppId, u64, u64)) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    fn insert(&self, key: (AppId, u64, u64)) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= KNOWN_BUCKETS_MAX {
            known.clear();
        }
        known.insert(key);
    }
}

impl CqlStore {
    /// The schema version this build needs (also [`SCHEMA_VERSION`], which
    /// `store` does not re-export).
    pub const SCHEMA_VERSION: u32 = SCHEMA_VERSION;

    /// Creates the keyspace when missing and applies every embedded migration
    /// newer than the one recorded in `schema_migrations`; returns the schema
    /// version now in the store. Safe to run again (and after a failure), but
    /// run it from one place at a time: the same `CREATE TABLE` sent to two
    /// Cassandra nodes at once can leave conflicting table ids behind.
    ///
    /// The driver waits for schema agreement after each schema change (its
    /// default); one more explicit wait at the end makes sure every node sees
    /// the final schema before this returns.
    pub async fn migrate(cfg: &CqlConfig) -> Result<u32, StoreError> {
        let keyspace = cfg.keyspace_name()?;
        let session = cfg
            .session_builder(&keyspace)
            // Nothing here reads the driver's schema metadata: skip refreshing it after each DDL.
            .refresh_metadata_on_auto_schema_agreement(false)
            .build()
            .await
            .map_err(StoreError::unavailable)?;
        let create = format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
            cfg.replication()?
        );
        session
            .query_unpaged(create, ())
            .await
            .map_err(StoreError::unavailable)?;
        session
            .use_keyspace(&keyspace, false)
            .await
            .map_err(StoreError::unavailable)?;

        let mut version = schema_version(&session, &keyspace).await?;
        let pending = MIGRATIONS.iter().filter(|m| m.0 > version);
        for &(number, name, text) in pending.collect::<Vec<_>>() {
            tracing::info!(keyspace, version = number, name, "applying CQL migration");
            apply_migration(&session, number, name, text).await?;
            version = number;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(version)
    }

    /// Connects to the configured keyspace and prepares every statement.
    ///
    /// Fails with [`StoreError::SchemaOutdated`] when the keyspace was not
    /// migrated to [`SCHEMA_VERSION`] (a missing keyspace counts as version 0),
    /// and with [`StoreError::Unavailable`] when the cluster cannot be reached.
    pub async fn connect(cfg: &CqlConfig) -> Result<CqlStore, StoreError> {
        let keyspace = cfg.keyspace_name()?;
        let session = cfg
            .session_builder(&keyspace)
            .build()
            .await
            .map_err(StoreError::unavailable)?;
        let found = schema_version(&session, &keyspace).await?;
        if found < SCHEMA_VERSION {
            return Err(StoreError::SchemaOutdated {
                found,
                needed: SCHEMA_VERSION,
            });
        }
        session
            .use_keyspace(&keyspace, false)
            .await
            .map_err(StoreError::unavailable)?;
        let stmts = Statements::prepare(&session).await?;
        let known_buckets = KnownBuckets::default();
        Ok(CqlStore {
            inner: Arc::new(Inner {
                session,
                stmts,
                known_buckets,
            }),
        })
    }

    fn session(&self) -> &Session {
        &self.inner.session
    }

    fn stmts(&self) -> &Statements {
        &self.inner.stmts
    }
}

/// The highest migration recorded in `keyspace` (0 when the keyspace or its
/// `schema_migrations` table does not exist yet).
async fn schema_version(session: &Session, keyspace: &str) -> Result<u32, StoreError> {
    let found = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
            (keyspace, "schema_migrations"),
        )
        .await
        .map_err(StoreError::unavailable)?;
    if decode_rows::<(String,)>(found, "system_schema.tables")?.is_empty() {
        return Ok(0);
    }
    let versions = session
        .query_unpaged(format!("SELECT version FROM {keyspace}.schema_migrations"), ())
        .await
        .map_err(StoreError::unavailable)?;
    let versions = decode_rows::<(i32,)>(versions, "schema_migrations")?;
    let max = versions.into_iter().map(|(v,)| v).max().unwrap_or(0);
    u32::try_from(max).map_err(|_| StoreError::Corrupt {
        what: "schema_migrations version",
    })
}

/// Runs one migration's statements in order, then records it.
async fn apply_migration(session: &Session, version: u32, name: &str, text: &str) -> Result<(), StoreError> {
    for statement in cql_statements(text) {
        session
            .query_unpaged(statement, ())
            .await
            .map_err(StoreError::unavailable)?;
    }
    let version = i32::try_from(version).map_err(|_| StoreError::Corrupt {
        what: "migration version",
    })?;
    session
        .query_unpaged(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (version, name, ts(Timestamp::now())),
        )
        .await
        .map_err(StoreError::unavailable)?;
    Ok(())
}

/// Splits a `.cql` file into statements: on `;`, without full-line `--`
/// comments, skipping what is left empty.
fn cql_statements(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(';').filter_map(|chunk| {
        let statement = chunk
            .lines()
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let statement = statement.trim();
        (!statement.is_empty()).then(|| statement.to_owned())
    })
}

/// Every statement the store runs, prepared once at connect.
struct Statements {
    insert_application: PreparedStatement,
    application_by_token: PreparedStatement,
    update_application: PreparedStatement,
    insert_chat: PreparedStatement,
    chat: PreparedStatement,
    chats: PreparedStatement,
    max_chat: PreparedStatement,
    insert_message: PreparedStatement,
    insert_chat_bucket: PreparedStatement,
    message: PreparedStatement,
    messages_in_bucket: PreparedStatement,
    buckets_between: PreparedStatement,
    newest_bucket: PreparedStatement,
    member: PreparedStatement,
    members: PreparedStatement,
    user_chats: PreparedStatement,
    /// LOGGED batch: the `members` row and its `user_chats` mirror.
    add_member: Batch,
    /// LOGGED batch: deletes the `members` row and its `user_chats` mirror.
    remove_member: Batch,
}

const MESSAGE_COLUMNS: &str = "number, body, sender, client_msg_id, reply_to, created_at";

impl Statements {
    async fn prepare(session: &Session) -> Result<Self, StoreError> {
        let p = |cql: String| prepare(session, cql);
        let insert_member =
            p("INSERT INTO members (app, chat, user_id, joined_at) VALUES (?, ?, ?, ?)".into());
        let insert_user_chat =
            p("INSERT INTO user_chats (app, user_id, chat, joined_at) VALUES (?, ?, ?, ?)".into());
        let delete_member = p("DELETE FROM members WHERE app = ? AND chat = ? AND user_id = ?".into());
        let delete_user_chat = p("DELETE FROM user_chats WHERE app = ? AND user_id = ? AND chat = ?".into());
        Ok(Statements {
            insert_application: p(
                "INSERT INTO applications (\"token\", id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                    .into(),
            )
            .await?,
            application_by_token: p(
                "SELECT \"token\", id, name, created_at, updated_at FROM applications WHERE \"token\" = ?".into(),
            )
            .await?,
            update_application: p(
                "UPDATE applications SET name = ?, updated_at = ? WHERE \"token\" = ?".into()
            )
            .await?,
            insert_chat: p("INSERT INTO chats (app, number, kind, created_at) VALUES (?, ?, ?, ?)".into()).await?,
            chat: p("SELECT number, kind, created_at FROM chats WHERE app = ? AND number = ?".into()).await?,
            chats: p(
                "SELECT number, kind, created_at FROM chats WHERE app = ? ORDER BY number ASC LIMIT ?".into()
            )
            .await?,
            max_chat: p("SELECT number FROM chats WHERE app = ? LIMIT 1".into()).await?,
            insert_message: p("INSERT INTO messages (app, chat, bucket, number, body, sender, client_msg_id, \
                 reply_to, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                .into())
            .await?,
            insert_chat_bucket: p("INSERT INTO chat_buckets (app, chat, bucket) VALUES (?, ?, ?)".into()).await?,
            message: p(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE app = ? AND chat = ? AND bucket = ? AND number = ?"
            ))
            .await?,
            messages_in_bucket: p(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE app = ? AND chat = ? AND bucket = ? \
                 AND number < ? AND number > ? LIMIT ?"
            ))
            .await?,
            buckets_between: p("SELECT bucket FROM chat_buckets WHERE app = ? AND chat = ? \
                 AND bucket <= ? AND bucket >= ? LIMIT ?"
                .into())
            .await?,
            newest_bucket: p("SELECT bucket FROM chat_buckets WHERE app = ? AND chat = ? LIMIT 1".into()).await?,
            member: p("SELECT joined_at FROM members WHERE app = ? AND chat = ? AND user_id = ?".into()).await?,
            members: p("SELECT user_id, joined_at FROM members WHERE app = ? AND chat = ? LIMIT ?".into()).await?,
            user_chats: p("SELECT chat FROM user_chats WHERE app = ? AND user_id = ? LIMIT ?".into()).await?,
            add_member: logged_batch(vec![insert_member.await?, insert_user_chat.await?]),
            remove_member: logged_batch(vec![delete_member.await?, delete_user_chat.await?]),
        })
    }
}

/// Prepares one statement. Every statement weft runs is idempotent (plain
/// upserts, deletes and reads), which lets the driver retry them after a timeout.
async fn prepare(session: &Session, cql: String) -> Result<PreparedStatement, StoreError> {
    let mut statement = session.prepare(cql).await.map_err(StoreError::unavailable)?;
    statement.set_is_idempotent(true);
    Ok(statement)
}

/// A LOGGED batch of prepared statements (for mirror rows that must not diverge).
fn logged_batch(statements: Vec<PreparedStatement>) -> Batch {
    let mut batch = Batch::new_with_statements(
        BatchType::Logged,
        statements
            .into_iter()
            .map(BatchStatement::PreparedStatement)
            .collect(),
    );
    batch.set_is_idempotent(true);
    batch
}

/// Decodes every row of a result; a row of the wrong shape is `Corrupt`.
fn decode_rows<R>(result: QueryResult, what: &'static str) -> Result<Vec<R>, StoreError>
where
    R: for<'frame> DeserializeRow<'frame, 'frame>,
{
    let corrupt = |e: &dyn std::error::Error| {
        tracing::warn!(what, error = %e, "cannot decode CQL rows");
        StoreError::Corrupt { what }
    };
    let rows = result.into_rows_result().map_err(|e| corrupt(&e))?;
    let iter = rows.rows::<R>().map_err(|e| corrupt(&e))?;
    iter.collect::<Result<Vec<R>, _>>().map_err(|e| corrupt(&e))
}

/// Decodes the first row of a result, if any.
fn decode_first<R>(result: QueryResult, what: &'static str) -> Result<Option<R>, StoreError>
where
    R: for<'frame> DeserializeRow<'frame, 'frame>,
{
    Ok(decode_rows(result, what)?.into_iter().next())
}

/// A stored number as the CQL `bigint` it is kept in; numbers above
/// `i64::MAX` cannot be stored.
fn bigint(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt {
        what: "number above i64::MAX",
    })
}

/// A query bound as a `bigint`, saturating (nothing is stored above `i64::MAX`).
fn bigint_bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `bigint` read back as a number; negative ones are `Corrupt`.
fn unsigned(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt { what })
}

/// `skip + limit` as a CQL `LIMIT` (an `int`).
fn cql_limit(rows: usize) -> i32 {
    i32::try_from(rows).unwrap_or(i32::MAX)
}

fn ts(at: Timestamp) -> CqlTimestamp {
    CqlTimestamp(at.millis())
}

fn from_ts(at: CqlTimestamp) -> Timestamp {
    Timestamp(at.0)
}

/// Drops the first `page.skip` rows (the query fetched `skip + limit`).
fn skip_page<T>(rows: Vec<T>, page: Page) -> Vec<T> {
    rows.into_iter().skip(page.skip).take(page.limit).collect()
}

type ApplicationRow = (String, String, String, CqlTimestamp, CqlTimestamp);
type ChatRow = (i64, String, CqlTimestamp);
type MessageRow = (
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    CqlTimestamp,
);

fn application_from_row(row: ApplicationRow) -> Application {
    let (token, id, name, created_at, updated_at) = row;
    Application {
        id: AppId::new(id),
        token: AppToken::new(token),
        name,
        created_at: from_ts(created_at),
        updated_at: from_ts(updated_at),
    }
}

fn chat_from_row(app: &AppId, row: ChatRow) -> Result<Chat, StoreError> {
    let (number, kind, created_at) = row;
    Ok(Chat {
        app: app.clone(),
        number: ChatNumber(unsigned(number, "chat number")?),
        kind: ChatKind::from_stored(&kind),
        created_at: from_ts(created_at),
    })
}

fn message_from_row(app: &AppId, chat: ChatNumber, row: MessageRow) -> Result<Message, StoreError> {
    let (number, body, sender, client_msg_id, reply_to, created_at) = row;
    Ok(Message {
        app: app.clone(),
        chat,
        number: MessageNumber(unsigned(number, "message number")?),
        body,
        sender: sender.map(UserId::from_store),
        client_msg_id,
        reply_to: reply_to
            .map(|n| unsigned(n, "reply_to").map(MessageNumber))
            .transpose()?,
        created_at: from_ts(created_at),
    })
}

/// The values of one `insert_message`; optional columns are unset, not null,
/// so that no tombstone is written.
type MessageValues<'a> = (
    &'a str,
    i64,
    i64,
    i64,
    &'a str,
    MaybeUnset<&'a str>,
    MaybeUnset<&'a str>,
    MaybeUnset<i64>,
    CqlTimestamp,
);

fn unset_if_none<T>(value: Option<T>) -> MaybeUnset<T> {
    value.map_or(MaybeUnset::Unset, MaybeUnset::Set)
}

fn message_values(message: &Message) -> Result<MessageValues<'_>, StoreError> {
    Ok((
        message.app.as_str(),
        bigint(message.chat.get())?,
        bigint(bucket_of(message.number))?,
        bigint(message.number.get())?,
        &message.body,
        unset_if_none(message.sender.as_ref().map(UserId::as_str)),
        unset_if_none(message.client_msg_id.as_deref()),
        unset_if_none(message.reply_to.map(|n| bigint(n.get())).transpose()?),
        ts(message.created_at),
    ))
}

/// The partition a message belongs to: (app, chat, bucket).
type PartitionKey<'a> = (&'a AppId, ChatNumber, u64);

/// Groups messages by partition, keeping their order inside each group.
fn group_by_partition(messages: &[Message]) -> Vec<(PartitionKey<'_>, Vec<&Message>)> {
    let mut groups: std::collections::BTreeMap<PartitionKey<'_>, Vec<&Message>> = Default::default();
    for message in messages {
        groups
            .entry((&message.app, message.chat, bucket_of(message.number)))
            .or_default()
            .push(message);
    }
    groups.into_iter().collect()
}

/// What a message weighs when sizing a batch.
fn batch_weight(message: &Message) -> usize {
    message.body.len()
        + message.sender.as_ref().map_or(0, |s| s.as_str().len())
        + message.client_msg_id.as_ref().map_or(0, String::len)
        + message.app.as_str().len()
        + ROW_OVERHEAD_BYTES
}

/// Splits one partition's messages into batches of at most `BATCH_MAX_ROWS`
/// rows and `BATCH_MAX_BYTES` bytes (a single bigger message goes alone).
fn split_batches<'a>(messages: &[&'a Message]) -> Vec<Vec<&'a Message>> {
    let mut batches = Vec::new();
    let mut current: Vec<&Message> = Vec::new();
    let mut bytes = 0;
    for &message in messages {
        let weight = batch_weight(message);
        if !current.is_empty() && (current.len() == BATCH_MAX_ROWS || bytes + weight > BATCH_MAX_BYTES) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(message);
        bytes += weight;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The bounds of a message listing, as CQL values.
struct Window {
    /// Only numbers strictly below (`i64::MAX` when unbounded).
    below: i64,
    /// Only numbers strictly above (-1 when unbounded).
    above: i64,
    /// The highest bucket that can hold a match, when `before` is given.
    top_bucket: Option<u64>,
    /// The lowest bucket that can hold a match.
    bottom_bucket: u64,
}

impl Window {
    /// The window of a range, or `None` when no number can match.
    fn of(range: &MessageRange) -> Option<Window> {
        let lowest = match range.after {
            Some(after) => after.get().checked_add(1)?,
            None => 0,
        };
        let highest = match range.before {
            Some(before) => Some(before.get().checked_sub(1)?),
            None => None,
        };
        if highest.is_some_and(|h| h < lowest) {
            return None;
        }
        Some(Window {
            below: range.before.map_or(i64::MAX, |b| bigint_bound(b.get())),
            above: range.after.map_or(-1, |a| bigint_bound(a.get())),
            top_bucket: highest.map(|h| bucket_of(MessageNumber(h))),
            bottom_bucket: bucket_of(MessageNumber(lowest)),
        })
    }
}

impl CqlStore {
    /// Writes one partition's messages: its `chat_buckets` row first, unless
    /// already written (so a stored message's bucket is always listed), then
    /// its batches concurrently.
    async fn insert_partition(
        &self,
        key: PartitionKey<'_>,
        messages: Vec<&Message>,
    ) -> Result<(), StoreError> {
        self.list_bucket(key).await?;
        let batches = split_batches(&messages);
        futures::future::try_join_all(batches.iter().map(|batch| self.insert_batch(batch))).await?;
        Ok(())
    }

    /// Makes sure a bucket is listed in `chat_buckets`.
    async fn list_bucket(&self, (app, chat, bucket): PartitionKey<'_>) -> Result<(), StoreError> {
        let key = (app.clone(), chat.get(), bucket);
        if self.inner.known_buckets.contains(&key) {
            return Ok(());
        }
        self.session()
            .execute_unpaged(
                &self.stmts().insert_chat_bucket,
                (app.as_str(), bigint(chat.get())?, bigint(bucket)?),
            )
            .await
            .map_err(StoreError::unavailable)?;
        self.inner.known_buckets.insert(key);
        Ok(())
    }

    /// Writes messages of one partition in one UNLOGGED batch (a lone message
    /// as a plain statement, which no batch size limit applies to).
    async fn insert_batch(&self, messages: &[&Message]) -> Result<(), StoreError> {
        let insert = &self.stmts().insert_message;
        let values = messages
            .iter()
            .map(|m| message_values(m))
            .collect::<Result<Vec<_>, _>>()?;
        let result = match values.as_slice() {
            [single] => self.session().execute_unpaged(insert, single).await,
            _ => {
                let statements = vec![BatchStatement::PreparedStatement(insert.clone()); values.len()];
                let mut batch = Batch::new_with_statements(BatchType::Unlogged, statements);
                batch.set_is_idempotent(true);
                self.session().batch(&batch, &values).await
            }
        };
        result.map(drop).map_err(StoreError::unavailable)
    }

    /// The newest bucket of a chat that holds messages.
    async fn newest_bucket(&self, app: &AppId, chat: ChatNumber) -> Result<Option<u64>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().newest_bucket, (app.as_str(), bigint(chat.get())?))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<(i64,)>(result, "chat_buckets")?
            .map(|(b,)| unsigned(b, "bucket"))
            .transpose()
    }

    /// Up to `BUCKET_LIST_PAGE` buckets of a chat in `[bottom, top]`, newest first.
    async fn buckets_between(
        &self,
        app: &AppId,
        chat: ChatNumber,
        top: u64,
        bottom: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let values = (
            app.as_str(),
            bigint(chat.get())?,
            bigint_bound(top),
            bigint_bound(bottom),
            cql_limit(BUCKET_LIST_PAGE),
        );
        let result = self
            .session()
            .execute_unpaged(&self.stmts().buckets_between, values)
            .await
            .map_err(StoreError::unavailable)?;
        decode_rows::<(i64,)>(result, "chat_buckets")?
            .into_iter()
            .map(|(b,)| unsigned(b, "bucket"))
            .collect()
    }

    /// Up to `limit` messages of one bucket inside the window, newest first.
    async fn messages_in_bucket(
        &self,
        app: &AppId,
        chat: ChatNumber,
        bucket: u64,
        window: &Window,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let values = (
            app.as_str(),
            bigint(chat.get())?,
            bigint(bucket)?,
            window.below,
            window.above,
            cql_limit(limit),
        );
        let result = self
            .session()
            .execute_unpaged(&self.stmts().messages_in_bucket, values)
            .await
            .map_err(StoreError::unavailable)?;
        decode_rows::<MessageRow>(result, "messages")?
            .into_iter()
            .map(|row| message_from_row(app, chat, row))
            .collect()
    }

    /// Reads a member row's join time.
    async fn joined_at(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
    ) -> Result<Option<Timestamp>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(
                &self.stmts().member,
                (app.as_str(), bigint(chat.get())?, user.as_str()),
            )
            .await
            .map_err(StoreError::unavailable)?;
        Ok(decode_first::<(CqlTimestamp,)>(result, "members")?.map(|(at,)| from_ts(at)))
    }
}

#[async_trait]
impl Store for CqlStore {
    async fn insert_application(&self, app: &Application) -> Result<(), StoreError> {
        let values = (
            app.token.as_str(),
            app.id.as_str(),
            app.name.as_str(),
            ts(app.created_at),
            ts(app.updated_at),
        );
        self.session()
            .execute_unpaged(&self.stmts().insert_application, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn application_by_token(&self, token: &AppToken) -> Result<Option<Application>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().application_by_token, (token.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        Ok(decode_first::<ApplicationRow>(result, "applications")?.map(application_from_row))
    }

    /// An upsert of name and updated_at: callers update applications they have read.
    async fn update_application(&self, app: &Application) -> Result<(), StoreError> {
        let values = (app.name.as_str(), ts(app.updated_at), app.token.as_str());
        self.session()
            .execute_unpaged(&self.stmts().update_application, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn insert_chat(&self, chat: &Chat) -> Result<(), StoreError> {
        let values = (
            chat.app.as_str(),
            bigint(chat.number.get())?,
            chat.kind.as_str(),
            ts(chat.created_at),
        );
        self.session()
            .execute_unpaged(&self.stmts().insert_chat, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn chat(&self, app: &AppId, number: ChatNumber) -> Result<Option<Chat>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().chat, (app.as_str(), bigint(number.get())?))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<ChatRow>(result, "chats")?
            .map(|row| chat_from_row(app, row))
            .transpose()
    }

    async fn chats(&self, app: &AppId, page: Page) -> Result<Vec<Chat>, StoreError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let values = (app.as_str(), cql_limit(page.skip.saturating_add(page.limit)));
        let result = self
            .session()
            .execute_unpaged(&self.stmts().chats, values)
            .await
            .map_err(StoreError::unavailable)?;
        let rows = skip_page(decode_rows::<ChatRow>(result, "chats")?, page);
        rows.into_iter().map(|row| chat_from_row(app, row)).collect()
    }

    async fn max_chat_number(&self, app: &AppId) -> Result<u64, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().max_chat, (app.as_str(),))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<(i64,)>(result, "chats")?.map_or(Ok(0), |(n,)| unsigned(n, "chat number"))
    }

    async fn insert_messages(&self, messages: &[Message]) -> Result<(), StoreError> {
        // Built eagerly: a stream `map` closure here trips the compiler's
        // higher-ranked lifetime check on the `Send` future async_trait needs.
        let writes: Vec<_> = group_by_partition(messages)
            .into_iter()
            .map(|(key, group)| self.insert_partition(key, group))
            .collect();
        futures::stream::iter(writes)
            .buffer_unordered(MAX_CONCURRENT_PARTITIONS)
            .try_collect::<()>()
            .await
    }

    async fn message(
        &self,
        app: &AppId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<Option<Message>, StoreError> {
        let values = (
            app.as_str(),
            bigint(chat.get())?,
            bigint(bucket_of(number))?,
            bigint(number.get())?,
        );
        let result = self
            .session()
            .execute_unpaged(&self.stmts().message, values)
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<MessageRow>(result, "messages")?
            .map(|row| message_from_row(app, chat, row))
            .transpose()
    }

    /// Walks the chat's buckets from the newest one that can match downwards,
    /// reading each bucket's matches newest first, until `skip + limit`
    /// messages are found or the buckets run out.
    async fn messages(
        &self,
        app: &AppId,
        chat: ChatNumber,
        range: MessageRange,
    ) -> Result<Vec<Message>, StoreError> {
        let wanted = range.page.skip.saturating_add(range.page.limit);
        let Some(window) = Window::of(&range).filter(|_| range.page.limit > 0) else {
            return Ok(Vec::new());
        };
        let top = match window.top_bucket {
            Some(top) => Some(top),
            None => self.newest_bucket(app, chat).await?,
        };
        let mut found = Vec::new();
        let mut next_top = top.filter(|&t| t >= window.bottom_bucket);
        while let Some(top) = next_top {
            let buckets = self.buckets_between(app, chat, top, window.bottom_bucket).await?;
            next_top = match buckets.last() {
                Some(&last) if buckets.len() == BUCKET_LIST_PAGE && last > window.bottom_bucket => {
                    Some(last - 1)
                }
                _ => None,
            };
            for bucket in buckets {
                let rows = self
                    .messages_in_bucket(app, chat, bucket, &window, wanted - found.len())
                    .await?;
                found.extend(rows);
                if found.len() >= wanted {
                    return Ok(skip_page(found, range.page));
                }
            }
        }
        Ok(skip_page(found, range.page))
    }

    async fn max_message_number(&self, app: &AppId, chat: ChatNumber) -> Result<u64, StoreError> {
        let newest = MessageRange {
            before: None,
            after: None,
            page: Page { skip: 0, limit: 1 },
        };
        let messages = self.messages(app, chat, newest).await?;
        Ok(messages.first().map_or(0, |m| m.number.get()))
    }

    /// Reads first and writes only when absent, so the first join time stays;
    /// two racing first joins both write, and either join time may win.
    async fn add_member(
        &self,
        app: &AppId,
        chat: ChatNumber,
        user: &UserId,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if self.joined_at(app, chat, user).await?.is_some() {
            return Ok(());
        }
        let chat = bigint(chat.get())?;
        let member = (app.as_str(), chat, user.as_str(), ts(at));
        let mirror = (app.as_str(), user.as_str(), chat, ts(at));
        self.session()
            .batch(&self.stmts().add_member, (member, mirror))
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    async fn remove_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError> {
        if self.joined_at(app, chat, user).await?.is_none() {
            return Ok(false);
        }
        let chat = bigint(chat.get())?;
        let member = (app.as_str(), chat, user.as_str());
        let mirror = (app.as_str(), user.as_str(), chat);
        self.session()
            .batch(&self.stmts().remove_member, (member, mirror))
            .await
            .map_err(StoreError::unavailable)?;
        Ok(true)
    }

    async fn members(&self, app: &AppId, chat: ChatNumber, page: Page) -> Result<Vec<Member>, StoreError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let values = (
            app.as_str(),
            bigint(chat.get())?,
            cql_limit(page.skip.saturating_add(page.limit)),
        );
        let result = self
            .session()
            .execute_unpaged(&self.stmts().members, values)
            .await
            .map_err(StoreError::unavailable)?;
        let rows = skip_page(decode_rows::<(String, CqlTimestamp)>(result, "members")?, page);
        Ok(rows
            .into_iter()
            .map(|(user, joined_at)| Member {
                user: UserId::from_store(user),
                joined_at: from_ts(joined_at),
            })
            .collect())
    }

    async fn is_member(&self, app: &AppId, chat: ChatNumber, user: &UserId) -> Result<bool, StoreError> {
        Ok(self.joined_at(app, chat, user).await?.is_some())
    }

    async fn user_chats(
        &self,
        app: &AppId,
        user: &UserId,
        page: Page,
    ) -> Result<Vec<ChatNumber>, StoreError> {
        if page.limit == 0 {
            return Ok(Vec::new());
        }
        let values = (
            app.as_str(),
            user.as_str(),
            cql_limit(page.skip.saturating_add(page.limit)),
        );
        let result = self
            .session()
            .execute_unpaged(&self.stmts().user_chats, values)
            .await
            .map_err(StoreError::unavailable)?;
        skip_page(decode_rows::<(i64,)>(result, "user_chats")?, page)
            .into_iter()
            .map(|(n,)| unsigned(n, "chat number").map(ChatNumber))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MESSAGE_BUCKET;

    #[test]
    fn migrations_are_numbered_in_order_and_end_at_schema_version() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.0).collect();
        let expected: Vec<u32> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn statements_are_split_without_comments() {
        let text = "-- a comment\nCREATE TABLE a (x int PRIMARY KEY);\n\n-- only a comment\n;\n\
                    CREATE TABLE b (\n  -- inner\n  y int PRIMARY KEY\n);\n";
        let statements: Vec<String> = cql_statements(text).collect();
        assert_eq!(
            statements,
            [
                "CREATE TABLE a (x int PRIMARY KEY)",
                "CREATE TABLE b (\n  y int PRIMARY KEY\n)"
            ]
        );
    }

    #[test]
    fn the_initial_migration_creates_every_table() {
        let statements: Vec<String> = cql_statements(MIGRATIONS[0].2).collect();
        assert_eq!(statements.len(), 7);
        assert!(
            statements
                .iter()
                .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS"))
        );
    }

    #[test]
    fn config_defaults_and_replication() {
        let cfg = CqlConfig::default();
        assert_eq!(cfg.nodes, ["127.0.0.1:9042"]);
        assert_eq!(cfg.keyspace_name().ok().as_deref(), Some("weft"));
        assert_eq!(
            cfg.replication().ok().as_deref(),
            Some("{'class': 'SimpleStrategy', 'replication_factor': 1}")
        );
        let dc = CqlConfig {
            datacenter: Some("eu'1".into()),
            replication_factor: 3,
            ..cfg.clone()
        };
        assert_eq!(
            dc.replication().ok().as_deref(),
            Some("{'class': 'NetworkTopologyStrategy', 'eu''1': 3}")
        );
        for bad in ["", "1abc", "we-ft", "ks; DROP", &"k".repeat(49)] {
            let cfg = CqlConfig {
                keyspace: bad.into(),
                ..CqlConfig::default()
            };
            assert!(cfg.keyspace_name().is_err(), "{bad:?} accepted");
        }
        assert!(
            CqlConfig {
                replication_factor: 0,
                ..CqlConfig::default()
            }
            .replication()
            .is_err()
        );
    }

    fn message(number: u64, body_len: usize) -> Message {
        Message {
            app: AppId::new("app"),
            chat: ChatNumber(1),
            number: MessageNumber(number),
            body: "x".repeat(body_len),
            sender: None,
            client_msg_id: None,
            reply_to: None,
            created_at: Timestamp(0),
        }
    }

    #[test]
    fn batches_are_capped_by_rows_and_bytes() {
        let small: Vec<Message> = (1..=250).map(|n| message(n, 10)).collect();
        let refs: Vec<&Message> = small.iter().collect();
        let sizes: Vec<usize> = split_batches(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 50]);

        let big: Vec<Message> = (1..=30).map(|n| message(n, 4000)).collect();
        let refs: Vec<&Message> = big.iter().collect();
        let batches = split_batches(&refs);
        assert!(
            batches
                .iter()
                .all(|b| b.iter().map(|m| batch_weight(m)).sum::<usize>() <= BATCH_MAX_BYTES)
        );
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 30);

        let huge = [message(1, 100_000), message(2, 10)];
        let refs: Vec<&Message> = huge.iter().collect();
        assert_eq!(
            split_batches(&refs).iter().map(Vec::len).collect::<Vec<_>>(),
            [1, 1]
        );
    }

    #[test]
    fn messages_are_grouped_by_partition() {
        let messages: Vec<Message> = [1, 1023, 1024, 2, 5000]
            .into_iter()
            .map(|n| message(n, 1))
            .collect();
        let groups = group_by_partition(&messages);
        let shape: Vec<(u64, Vec<u64>)> = groups
            .iter()
            .map(|(k, ms)| (k.2, ms.iter().map(|m| m.number.get()).collect()))
            .collect();
        assert_eq!(shape, [(0, vec![1, 1023, 2]), (1, vec![1024]), (4, vec![5000])]);
    }

    #[test]
    fn windows_bound_numbers_and_buckets() {
        let page = Page { skip: 0, limit: 10 };
        let range = |before: Option<u64>, after: Option<u64>| MessageRange {
            before: before.map(MessageNumber),
            after: after.map(MessageNumber),
            page,
        };
        let w = Window::of(&range(Some(1025), Some(3)))
            .map(|w| (w.below, w.above, w.top_bucket, w.bottom_bucket));
        assert_eq!(w, Some((1025, 3, Some(1), 0)));
        let w = Window::of(&range(None, Some(MESSAGE_BUCKET - 1))).map(|w| (w.top_bucket, w.bottom_bucket));
        assert_eq!(w, Some((None, 1)));
        assert!(Window::of(&range(Some(0), None)).is_none());
        assert!(Window::of(&range(Some(5), Some(4))).is_none());
        assert!(Window::of(&range(None, Some(u64::MAX))).is_none());
        assert!(Window::of(&range(Some(6), Some(4))).is_some());
    }
}
