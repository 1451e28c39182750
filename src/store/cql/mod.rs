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
//! - members and a user's chats are two mirror tables written together;
//! - `attachments` holds one row per granted upload, keyed by (app, id);
//! - `webhooks` holds an application's webhooks in one partition, by id;
//! - `devices` holds a user's push devices in one partition, by id;
//! - `notification_settings` holds one row per user, keyed by (app, user);
//! - `server_keys` holds one row per server key, keyed by its hash, and
//!   `app_server_keys` an application's key ids;
//! - `auth_sessions` holds one row per session, keyed by its id, and
//!   `user_auth_sessions` a user's session ids;
//! - `audit_log` holds the audit trail, one partition per (app, UTC day).
//!
//! The message path never uses lightweight transactions (Paxos); the rare
//! changes that must not race do (claiming a direct chat, edits and deletes,
//! attaching a file to one message, updating and deleting a webhook, every
//! write of a device). Optional columns are sent *unset* rather than null so
//! that no tombstones are written (a webhook update that clears a field, and
//! notification settings, which are overwritten whole, write their nulls).

mod attachments;
mod audit;
mod auth_sessions;
mod batches;
mod devices;
mod rows;
mod schema;
mod server_keys;
mod statements;
mod store_impl;
mod tls;
mod webhooks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::statement::Consistency;

use super::StoreError;
use batches::KnownBuckets;
use schema::{MIGRATIONS, apply_migration, recorded_migrations, schema_version};
use statements::Statements;

pub use schema::SCHEMA_VERSION;

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
    /// The CA certificates (PEM) the nodes' certificates must chain to; set, weft speaks
    /// TLS to every node (each node's certificate must name its IP address).
    pub tls_ca_file: PathBuf,
    /// A client certificate chain (PEM), for nodes that require one; needs `tls_key_file`.
    pub tls_cert_file: PathBuf,
    /// The private key (PEM) of `tls_cert_file`.
    pub tls_key_file: PathBuf,
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
            tls_ca_file: PathBuf::new(),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
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
            return Err(StoreError::unavailable(InvalidConfig("replication_factor must be at least 1")));
        }
        Ok(match &self.datacenter {
            Some(dc) => {
                let dc = dc.replace('\'', "''");
                format!("{{'class': 'NetworkTopologyStrategy', '{dc}': {rf}}}")
            }
            None => format!("{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"),
        })
    }

    /// A session builder with this configuration's nodes, timeouts, consistency,
    /// datacenter preference and TLS, not yet bound to a keyspace.
    fn session_builder(&self, keyspace: &str) -> Result<SessionBuilder, StoreError> {
        let tls = tls::client_config(self).map_err(StoreError::unavailable)?;
        let mut policy = DefaultPolicy::builder().token_aware(true);
        if let Some(dc) = &self.datacenter {
            policy = policy.prefer_datacenter(dc.clone());
        }
        let profile = ExecutionProfile::builder()
            .request_timeout(Some(Duration::from_millis(self.request_timeout_ms)))
            .consistency(Consistency::LocalQuorum)
            .load_balancing_policy(policy.build())
            .build();
        Ok(SessionBuilder::new()
            .known_nodes(&self.nodes)
            .connection_timeout(Duration::from_millis(self.connect_timeout_ms))
            .default_execution_profile_handle(profile.into_handle())
            .keyspaces_to_fetch([keyspace.to_owned()])
            .tls_context(tls))
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

impl CqlStore {
    /// The schema version this build needs (also [`SCHEMA_VERSION`], which
    /// `store` does not re-export).
    pub const SCHEMA_VERSION: u32 = SCHEMA_VERSION;

    /// Creates the keyspace when missing and applies every embedded migration
    /// not recorded in `schema_migrations` (in number order, also one below the
    /// highest recorded: branches merge); returns the schema
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
            .session_builder(&keyspace)?
            // Nothing here reads the driver's schema metadata: skip refreshing it after each DDL.
            .refresh_metadata_on_auto_schema_agreement(false)
            .build()
            .await
            .map_err(StoreError::unavailable)?;
        let create =
            format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}", cfg.replication()?);
        session.query_unpaged(create, ()).await.map_err(StoreError::unavailable)?;
        session.use_keyspace(&keyspace, false).await.map_err(StoreError::unavailable)?;

        let recorded = recorded_migrations(&session, &keyspace).await?;
        let mut version = recorded.last().copied().unwrap_or(0);
        let pending = MIGRATIONS.iter().filter(|m| !recorded.contains(&m.0));
        for &(number, name, text) in pending.collect::<Vec<_>>() {
            tracing::info!(keyspace, version = number, name, "applying CQL migration");
            apply_migration(&session, number, name, text).await?;
            version = version.max(number);
        }
        session.await_schema_agreement().await.map_err(StoreError::unavailable)?;
        Ok(version)
    }

    /// Connects to the configured keyspace and prepares every statement.
    ///
    /// Fails with [`StoreError::SchemaOutdated`] when the keyspace was not
    /// migrated to [`SCHEMA_VERSION`] (a missing keyspace counts as version 0),
    /// and with [`StoreError::Unavailable`] when the cluster cannot be reached.
    pub async fn connect(cfg: &CqlConfig) -> Result<CqlStore, StoreError> {
        let keyspace = cfg.keyspace_name()?;
        let session = cfg.session_builder(&keyspace)?.build().await.map_err(StoreError::unavailable)?;
        let (found, complete) = schema_version(&session, &keyspace).await?;
        if found < SCHEMA_VERSION || !complete {
            return Err(StoreError::SchemaOutdated { found, needed: SCHEMA_VERSION });
        }
        session.use_keyspace(&keyspace, false).await.map_err(StoreError::unavailable)?;
        let stmts = Statements::prepare(&session).await?;
        let known_buckets = KnownBuckets::default();
        Ok(CqlStore { inner: Arc::new(Inner { session, stmts, known_buckets }) })
    }

    fn session(&self) -> &Session {
        &self.inner.session
    }

    fn stmts(&self) -> &Statements {
        &self.inner.stmts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_replication() {
        let cfg = CqlConfig::default();
        assert_eq!(cfg.nodes, ["127.0.0.1:9042"]);
        assert_eq!(cfg.keyspace_name().ok().as_deref(), Some("weft"));
        assert_eq!(
            cfg.replication().ok().as_deref(),
            Some("{'class': 'SimpleStrategy', 'replication_factor': 1}")
        );
        let dc = CqlConfig { datacenter: Some("eu'1".into()), replication_factor: 3, ..cfg.clone() };
        assert_eq!(
            dc.replication().ok().as_deref(),
            Some("{'class': 'NetworkTopologyStrategy', 'eu''1': 3}")
        );
        for bad in ["", "1abc", "we-ft", "ks; DROP", &"k".repeat(49)] {
            let cfg = CqlConfig { keyspace: bad.into(), ..CqlConfig::default() };
            assert!(cfg.keyspace_name().is_err(), "{bad:?} accepted");
        }
        assert!(CqlConfig { replication_factor: 0, ..CqlConfig::default() }.replication().is_err());
    }
}
