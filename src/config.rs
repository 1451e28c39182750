//! The one typed configuration, read once at start.
//!
//! Sources, later wins: built-in defaults (the same as `config/default.toml`),
//! the TOML file given with `--config` (or `WEFT_CONFIG`), then environment
//! variables `WEFT_<SECTION>_<KEY>` for the sections below (e.g.
//! `WEFT_SERVER_LISTEN=0.0.0.0:8080`, `WEFT_CQL_NODES='["a:9042","b:9042"]'`; lists are TOML arrays).
//! Unknown keys and bad values fail the start with a message naming the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::auth::JwksConfig;
use crate::cache::CacheConfig;
use crate::cluster::membership::MembershipConfig;
use crate::cluster::node::ClusterConfig;
use crate::cluster::tls::TlsPaths;
use crate::cluster::transport::TransportConfig;
use crate::gateway::GatewayConfig;
use crate::sequence::{RedisConfig, SequenceConfig};
use crate::store::{BatchConfig, CqlConfig};

/// The sections of the file, which are also the env variable prefixes.
const SECTIONS: &[&str] = &[
    "server",
    "gateway",
    "cache",
    "jwks",
    "sessions",
    "store",
    "cql",
    "redis",
    "batch",
    "sequence",
    "cluster",
    "gossip",
    "quic",
    "tls",
    "log",
    "metrics",
    "search",
    "attachments",
    "webhooks",
    "notifications",
    "push",
    "email",
    "demo",
];

/// Everything a node is configured with.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP serving.
    pub server: ServerConfig,
    /// WebSocket sessions.
    pub gateway: GatewayConfig,
    /// Recent-message and member caches.
    pub cache: CacheConfig,
    /// Fetching applications' identity-provider keys.
    pub jwks: JwksConfig,
    /// Lifetimes of the tokens sessions hand out.
    pub sessions: crate::auth::SessionsConfig,
    /// Which store backend.
    pub store: StoreConfig,
    /// The CQL backend (ScyllaDB / Cassandra).
    pub cql: CqlConfig,
    /// Redis (counters in cluster mode).
    pub redis: RedisConfig,
    /// Who may read `/metrics`.
    pub metrics: crate::metrics::MetricsConfig,
    /// The batch writer.
    pub batch: BatchConfig,
    /// Numbering.
    pub sequence: SequenceConfig,
    /// Whether and as whom this node joins a cluster.
    pub cluster: ClusterConfig,
    /// Cluster membership (gossip).
    pub gossip: MembershipConfig,
    /// Node-to-node transport (QUIC).
    pub quic: TransportConfig,
    /// The cluster's certificates.
    pub tls: TlsPaths,
    /// Logging.
    pub log: LogConfig,
    /// Message search.
    pub search: crate::search::SearchConfig,
    /// Attachment files.
    pub attachments: crate::attachments::AttachmentsConfig,
    /// Webhook delivery.
    pub webhooks: crate::notify::WebhooksConfig,
    /// When away members get pushes and emails.
    pub notifications: crate::notify::AlertsConfig,
    /// Push providers (FCM, Web Push).
    pub push: crate::notify::push::PushConfig,
    /// Email digests (SMTP).
    pub email: crate::notify::email::EmailConfig,
    /// The web chat at `/demo`.
    pub demo: crate::demo::DemoConfig,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the HTTP/WebSocket listener.
    pub listen: SocketAddr,
    /// Bearer key required to create applications; empty leaves creation open.
    pub admin_key: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish at shutdown, in ms.
    pub shutdown_grace_ms: u64,
    /// At shutdown, sessions are closed (1012) at random moments over this window, in ms,
    /// so their reconnects do not land on the other nodes all at once.
    pub drain_window_ms: u64,
    /// A new connection must deliver a whole request head within this, in ms.
    pub header_read_timeout_ms: u64,
    /// A keep-alive connection must deliver its next request head within this
    /// of the last response, in ms.
    pub idle_timeout_ms: u64,
    /// Largest request head (request line and headers), in bytes; 431 above it.
    pub max_header_bytes: usize,
    /// Connections that are not a WebSocket, open at once at most; past it a new
    /// one is answered 503 `overloaded` and closed.
    pub max_pending_connections: usize,
    /// The certificate chain (PEM, leaf first) the node serves HTTPS and WSS with; empty
    /// serves plain HTTP. Reloaded when it changes (see `tls_reload_ms`).
    pub tls_cert_file: PathBuf,
    /// The private key (PEM: PKCS#8, SEC1 or PKCS#1) of `tls_cert_file`.
    pub tls_key_file: PathBuf,
    /// How often the two files are read for a new certificate, in ms.
    pub tls_reload_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_key: String::new(),
            max_body_bytes: 64 * 1024,
            shutdown_grace_ms: 10_000,
            drain_window_ms: 5_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            max_header_bytes: 16 * 1024,
            max_pending_connections: 1024,
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
            tls_reload_ms: 5_000,
        }
    }
}

/// Which store holds the data.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A redb file under `data_dir` (single node).
    #[default]
    Embedded,
    /// ScyllaDB or Cassandra, as `[cql]` says.
    Cql,
}

/// `[store]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `embedded` or `cql`.
    pub backend: Backend,
    /// Directory of the embedded database.
    pub data_dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { backend: Backend::Embedded, data_dir: PathBuf::from("./data") }
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `weft=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Text }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or a variable could not be read or has a wrong key or type.
    #[error("{0}")]
    Read(#[from] Box<figment::Error>),
    /// A value is out of range or inconsistent.
    #[error("invalid value for `{key}`: {reason}")]
    Invalid {
        /// The offending key, as `section.key`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Config {
    /// Reads defaults, then `file` if given, then `WEFT_*` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Invalid {
                    key: "--config",
                    reason: format!("{} is not a readable file", file.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(env_provider());
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document (no env), and validates it.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = Figment::from(Toml::string(text)).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| Err(ConfigError::Invalid { key, reason: reason.into() });
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024");
        }
        if self.server.header_read_timeout_ms == 0 {
            return invalid("server.header_read_timeout_ms", "must be at least 1");
        }
        if self.server.idle_timeout_ms == 0 {
            return invalid("server.idle_timeout_ms", "must be at least 1");
        }
        if !(8192..=1024 * 1024).contains(&self.server.max_header_bytes) {
            return invalid("server.max_header_bytes", "must be from 8192 to 1048576");
        }
        // A semaphore's permits: far past any file-descriptor limit, and tokio's bound.
        if !(1..=1_000_000).contains(&self.server.max_pending_connections) {
            return invalid("server.max_pending_connections", "must be from 1 to 1000000");
        }
        if self.server.tls_cert_file.as_os_str().is_empty() != self.server.tls_key_file.as_os_str().is_empty()
        {
            return invalid(
                "server.tls_key_file",
                "set both server.tls_cert_file and server.tls_key_file, or neither",
            );
        }
        if !(100..=86_400_000).contains(&self.server.tls_reload_ms) {
            return invalid("server.tls_reload_ms", "must be from 100 to 86400000");
        }
        if let Err((key, reason)) = self.gateway.check() {
            return invalid(key, reason);
        }
        if let Err((key, reason)) = self.sessions.check() {
            return invalid(key, reason);
        }
        if let Err((key, reason)) = self.jwks.check() {
            return invalid(key, reason);
        }
        if self.cluster.enabled {
            if !self.redis.is_set() {
                return invalid("redis.url", "a cluster needs Redis (cluster.enabled is true)");
            }
            if self.store.backend != Backend::Cql {
                return invalid("store.backend", "a cluster needs the cql store (cluster.enabled is true)");
            }
            if let Err((key, reason)) = self.gossip.check() {
                return invalid(key, reason);
            }
            if let Err((key, reason)) = self.quic.check() {
                return Err(ConfigError::Invalid { key: "quic", reason: format!("{key}: {reason}") });
            }
        }
        if self.sequence.claim_abandon_ms < 3_000 {
            return invalid("sequence.claim_abandon_ms", "must be at least 3000 (a retry already waits 3 s)");
        }
        // Each bound is allocated or made permits of up front: a huge value fails the start here.
        if !(1..=65_536).contains(&self.batch.max_messages) {
            return invalid("batch.max_messages", "must be from 1 to 65536");
        }
        if self.batch.max_delay_ms > 60_000 {
            return invalid("batch.max_delay_ms", "must be at most 60000");
        }
        if !(1..=1024).contains(&self.batch.max_in_flight) {
            return invalid("batch.max_in_flight", "must be from 1 to 1024");
        }
        if !(1..=16_777_216).contains(&self.batch.queue) {
            return invalid("batch.queue", "must be from 1 to 16777216");
        }
        if self.store.backend == Backend::Cql {
            if self.cql.nodes.is_empty() {
                return invalid("cql.nodes", "needs at least one host:port");
            }
            let ks = &self.cql.keyspace;
            let valid = ks.len() <= 48
                && ks.starts_with(|c: char| c.is_ascii_lowercase())
                && ks.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return invalid("cql.keyspace", "must be 1-48 of [a-z0-9_], starting with a letter");
            }
            if self.cql.replication_factor == 0 {
                return invalid("cql.replication_factor", "must be at least 1");
            }
            let set = |p: &PathBuf| !p.as_os_str().is_empty();
            if set(&self.cql.tls_cert_file) != set(&self.cql.tls_key_file) {
                return invalid(
                    "cql.tls_key_file",
                    "set both cql.tls_cert_file and cql.tls_key_file, or neither",
                );
            }
            if set(&self.cql.tls_cert_file) && !set(&self.cql.tls_ca_file) {
                return invalid(
                    "cql.tls_ca_file",
                    "a client certificate needs TLS, which tls_ca_file turns on",
                );
            }
        }
        if !self.redis.url.is_empty() && redis::Client::open(self.redis.url.as_str()).is_err() {
            return invalid("redis.url", "is not a valid redis:// or rediss:// URL");
        }
        if let Err((key, reason)) = self.redis.check() {
            return invalid(key, reason);
        }
        if !self.redis.cluster_nodes.is_empty() {
            if !self.redis.url.is_empty() {
                return invalid(
                    "redis.cluster_nodes",
                    "set either redis.url or redis.cluster_nodes, not both",
                );
            }
            if self.redis.cluster_nodes.iter().any(|n| redis::Client::open(n.as_str()).is_err()) {
                return invalid("redis.cluster_nodes", "every entry must be a redis:// URL");
            }
        }
        if let Err((key, reason)) = self.attachments.check() {
            return invalid(key, reason);
        }
        if self.cluster.enabled
            && self.attachments.backend == crate::attachments::AttachmentBackend::Filesystem
        {
            return invalid(
                "attachments.backend",
                "filesystem keeps files on one node: a cluster needs s3 (or auto with s3_bucket)",
            );
        }
        if self.email.enabled()
            && let Err((key, reason)) = self.email.check()
        {
            return invalid(key, reason);
        }
        if self.webhooks.lease_ms <= self.webhooks.timeout_ms {
            return invalid(
                "webhooks.lease_ms",
                "must be above webhooks.timeout_ms (a lane is held while it is tried)",
            );
        }
        if !(0..=19).contains(&self.webhooks.delivery_nice) {
            return invalid("webhooks.delivery_nice", "must be 0 to 19");
        }
        if !(1..=4096).contains(&self.webhooks.concurrency) {
            return invalid("webhooks.concurrency", "must be from 1 to 4096");
        }
        // Channel bounds: tokio refuses (panics on) one past 2^61.
        for (key, handoff) in [
            ("webhooks.handoff", self.webhooks.handoff),
            ("notifications.handoff", self.notifications.handoff),
        ] {
            if !(1..=16_777_216).contains(&handoff) {
                return invalid(key, "must be from 1 to 16777216");
            }
        }
        if let Err((key, reason)) = self.demo.check() {
            return invalid(key, reason);
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return invalid("log.level", "is not a valid tracing filter");
        }
        Ok(())
    }
}

/// `WEFT_<SECTION>_<KEY>` → `section.key`; variables of other names are not ours.
fn env_provider() -> Env {
    Env::prefixed("WEFT_").filter(|key| section_of(key.as_str()).is_some()).map(|key| {
        let key = key.as_str().to_ascii_lowercase();
        match section_of(&key) {
            Some(section) => format!("{section}.{}", &key[section.len() + 1..]).into(),
            None => key.into(),
        }
    })
}

fn section_of(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    SECTIONS
        .iter()
        .copied()
        .find(|s| key.len() > s.len() + 1 && key.starts_with(s) && key.as_bytes()[s.len()] == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_matches_the_built_in_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml")).unwrap();
        assert_eq!(Config::from_toml(&text).unwrap(), Config::default());
    }

    #[test]
    fn the_cluster_file_is_valid() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/cluster.toml")).unwrap();
        let config = Config::from_toml(&text).unwrap();
        assert_eq!(config.store.backend, Backend::Cql);
        assert!(!config.redis.url.is_empty());
        assert!(!config.server.admin_key.is_empty());
        assert!(!config.demo.enabled, "the demo is off for clusters");
    }

    #[test]
    fn the_demo_is_on_by_default_and_checked() {
        assert!(Config::default().demo.enabled);
        let err = Config::from_toml("[demo]\ntoken_ttl_secs = 0\n").unwrap_err().to_string();
        assert!(err.contains("demo.token_ttl_secs"), "{err}");
        let err = Config::from_toml("[demo]\nenabled = \"yes\"\n").unwrap_err().to_string();
        assert!(err.contains("enabled"), "{err}");
        assert_eq!(section_of("DEMO_ENABLED"), Some("demo"));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("[server]\nlisten_port = 1\n").unwrap_err().to_string();
        assert!(err.contains("listen_port"), "{err}");
        let err = Config::from_toml("[nope]\n").unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_toml("[server]\nlisten = \"nowhere\"\n").unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
        let err = Config::from_toml("[batch]\nmax_messages = 0\n").unwrap_err().to_string();
        assert!(err.contains("batch.max_messages"), "{err}");
        let err = Config::from_toml("[jwks]\nmax_key_sets = 0\n").unwrap_err().to_string();
        assert!(err.contains("jwks.max_key_sets"), "{err}");
        let err = Config::from_toml("[store]\nbackend = \"postgres\"\n").unwrap_err().to_string();
        assert!(err.contains("backend"), "{err}");
        for (text, key) in [
            ("[server]\nheader_read_timeout_ms = 0\n", "server.header_read_timeout_ms"),
            ("[server]\nidle_timeout_ms = 0\n", "server.idle_timeout_ms"),
            ("[server]\nmax_header_bytes = 4096\n", "server.max_header_bytes"),
            ("[server]\nmax_pending_connections = 0\n", "server.max_pending_connections"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    /// Found by `tests/props_config.rs`: each of these passed the checks, then
    /// panicked the node as it started (a semaphore, a channel or a rate
    /// limiter refusing the size) or aborted it (a batch's allocation).
    #[test]
    fn sizes_past_what_the_node_can_make_are_named() {
        let huge = i64::MAX;
        for (text, key) in [
            (format!("[gateway]\ntyping_interval_ms = {huge}"), "gateway.typing_interval_ms"),
            (format!("[server]\nmax_pending_connections = {}", 1u64 << 62), "server.max_pending_connections"),
            (format!("[batch]\nmax_messages = {huge}"), "batch.max_messages"),
            (format!("[batch]\nmax_messages = {}", 1u64 << 40), "batch.max_messages"),
            (format!("[batch]\nmax_delay_ms = {huge}"), "batch.max_delay_ms"),
            (format!("[batch]\nmax_in_flight = {huge}"), "batch.max_in_flight"),
            (format!("[batch]\nqueue = {huge}"), "batch.queue"),
            (format!("[webhooks]\nconcurrency = {huge}"), "webhooks.concurrency"),
            (format!("[webhooks]\nhandoff = {huge}"), "webhooks.handoff"),
            (format!("[notifications]\nhandoff = {huge}"), "notifications.handoff"),
        ] {
            match Config::from_toml(&text) {
                Err(ConfigError::Invalid { key: named, .. }) => assert_eq!(named, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn env_keys_map_to_sections() {
        assert_eq!(section_of("SERVER_LISTEN"), Some("server"));
        assert_eq!(section_of("server_admin_key"), Some("server"));
        assert_eq!(section_of("CQL_NODES"), Some("cql"));
        assert_eq!(section_of("TEST_REDIS_URL"), None);
        assert_eq!(section_of("CONFIG"), None);
        assert_eq!(section_of("SERVER"), None);
        assert_eq!(section_of("ATTACHMENTS_S3_SECRET_KEY"), Some("attachments"));
    }

    #[test]
    fn attachment_settings_are_checked() {
        let bad = |toml: &str| match Config::from_toml(toml) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{toml}: {other:?}"),
        };
        assert_eq!(bad("[attachments]\nmax_per_message = 0"), "attachments.max_per_message");
        assert_eq!(bad("[attachments]\nbackend = \"s3\""), "attachments.s3_bucket");
        assert_eq!(bad("[attachments]\nsigning_key = \"short\""), "attachments.signing_key");
        assert_eq!(
            bad("[attachments]\nallowed_content_types = [\"image\"]"),
            "attachments.allowed_content_types"
        );
        let s3 = "[attachments]\nbackend = \"s3\"\ns3_bucket = \"b\"\ns3_endpoint = \"http://s3:8333\"";
        assert_eq!(bad(s3), "attachments.s3_endpoint");
        assert!(Config::from_toml(&format!("{s3}\ns3_allow_http = true")).is_ok());
    }
}
