//! The one Redis connection every Redis-backed part shares: a single server
//! (`redis.url`) or a Redis Cluster (`redis.cluster_nodes`).
//!
//! Every key weft writes carries the application id as a hash tag
//! (`prefix:{app}:…`), so all keys of one application live on one cluster
//! slot and a pipeline of one application's keys is one round trip either
//! way. The few writes that span applications (a node's directory index, a
//! batch of messages from many applications) go through [`SlotPipes`], which
//! is one pipeline on a single server and one per slot, concurrently, on a
//! cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    ClientTlsConfig, Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, TlsCertificates, Value,
};
use serde::Deserialize;

/// Where Redis is (`[redis]` in the config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db` of a single server; empty runs without Redis
    /// (single node only) unless `cluster_nodes` is set.
    pub url: String,
    /// `redis://host:port` seeds of a Redis Cluster; when not empty, weft
    /// uses the cluster client and `url` must be empty.
    pub cluster_nodes: Vec<String>,
    /// Prefix of every key weft writes, so several deployments can share a Redis.
    pub key_prefix: String,
    /// How long one command may take before it fails, in ms.
    pub timeout_ms: u64,
    /// With `rediss://` URLs: the CA certificates (PEM) the server's certificate must chain
    /// to; empty trusts the system's roots.
    pub tls_ca_file: PathBuf,
    /// With `rediss://` URLs: a client certificate chain (PEM), for a server that asks for
    /// one (`tls-auth-clients yes`); needs `tls_key_file`.
    pub tls_cert_file: PathBuf,
    /// The private key (PEM) of `tls_cert_file`.
    pub tls_key_file: PathBuf,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            cluster_nodes: Vec::new(),
            key_prefix: "weft".into(),
            timeout_ms: 2000,
            tls_ca_file: PathBuf::new(),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
        }
    }
}

impl RedisConfig {
    /// Whether any Redis is configured.
    pub fn is_set(&self) -> bool {
        !self.url.is_empty() || !self.cluster_nodes.is_empty()
    }

    /// Whether any of the TLS files is set.
    fn has_tls_files(&self) -> bool {
        [&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file].iter().any(|p| !p.as_os_str().is_empty())
    }

    /// What the config checks cannot see in types: `(key, reason)` of the first problem.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.tls_cert_file.as_os_str().is_empty() != self.tls_key_file.as_os_str().is_empty() {
            return Err((
                "redis.tls_key_file",
                "set both redis.tls_cert_file and redis.tls_key_file, or neither",
            ));
        }
        let urls = std::iter::once(&self.url).chain(&self.cluster_nodes).filter(|u| !u.is_empty());
        if self.has_tls_files() && urls.clone().any(|u| !u.starts_with("rediss://")) {
            return Err((
                "redis.tls_ca_file",
                "TLS files need rediss:// URLs (redis.url, redis.cluster_nodes)",
            ));
        }
        Ok(())
    }

    /// The CA and client certificate files, read; `None` when none is set (system roots,
    /// no client certificate).
    fn tls_certificates(&self) -> RedisResult<Option<TlsCertificates>> {
        if !self.has_tls_files() {
            return Ok(None);
        }
        let root_cert = (!self.tls_ca_file.as_os_str().is_empty())
            .then(|| read_pem("redis.tls_ca_file", &self.tls_ca_file))
            .transpose()?;
        let client_tls = if self.tls_cert_file.as_os_str().is_empty() {
            None
        } else {
            Some(ClientTlsConfig {
                client_cert: read_pem("redis.tls_cert_file", &self.tls_cert_file)?,
                client_key: read_pem("redis.tls_key_file", &self.tls_key_file)?,
            })
        };
        Ok(Some(TlsCertificates { client_tls, root_cert }))
    }
}

/// A TLS file's bytes; the error names the key and the file, never the contents.
fn read_pem(key: &'static str, path: &Path) -> RedisResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        RedisError::from((ErrorKind::InvalidClientConfig, key, format!("{}: {e}", path.display())))
    })
}

/// A connection to a single Redis or to a Redis Cluster; cheap to clone, and
/// it reconnects by itself after an outage.
#[derive(Clone)]
pub enum RedisConn {
    /// One server.
    Single(ConnectionManager),
    /// A Redis Cluster (commands are routed by key slot).
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Connects as configured; `None` when no Redis is configured.
    pub async fn connect(config: &RedisConfig) -> RedisResult<Option<Self>> {
        let timeout = Duration::from_millis(config.timeout_ms);
        let certs = config.tls_certificates()?;
        let tls = certs.is_some()
            || config.url.starts_with("rediss://")
            || config.cluster_nodes.iter().any(|n| n.starts_with("rediss://"));
        if tls {
            // The redis crate builds its rustls config with the process's default provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        if !config.cluster_nodes.is_empty() {
            let mut builder = ClusterClientBuilder::new(config.cluster_nodes.iter().map(String::as_str))
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(2);
            if let Some(certs) = certs {
                builder = builder.certs(certs);
            }
            let client = builder.build()?;
            return Ok(Some(RedisConn::Cluster(client.get_async_connection().await?)));
        }
        if config.url.is_empty() {
            return Ok(None);
        }
        let client = match certs {
            Some(certs) => redis::Client::build_with_tls(config.url.as_str(), certs)?,
            None => redis::Client::open(config.url.as_str())?,
        };
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        Ok(Some(RedisConn::Single(ConnectionManager::new_with_config(client, manager_config).await?)))
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> RedisResult<()> {
        let mut conn = self.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ())
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

/// The command's name, for metrics: one of weft's own fixed set.
fn command_name(cmd: &Cmd) -> &'static str {
    match cmd.args_iter().next() {
        Some(redis::Arg::Simple(name)) => crate::metrics::REDIS_OPS
            .iter()
            .find(|k| k.as_bytes().eq_ignore_ascii_case(name))
            .copied()
            .unwrap_or("other"),
        _ => "other",
    }
}

/// Times a Redis round trip and counts its failure.
fn measured<'a, T: Send + 'a>(op: &'static str, call: RedisFuture<'a, T>) -> RedisFuture<'a, T> {
    let m = crate::metrics::metrics();
    Box::pin(crate::metrics::timed(op, &m.redis_seconds, &m.redis_errors, call))
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let op = command_name(cmd);
        match self {
            RedisConn::Single(c) => measured(op, c.req_packed_command(cmd)),
            RedisConn::Cluster(c) => measured(op, c.req_packed_command(cmd)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => measured("pipeline", c.req_packed_commands(pipeline, offset, count)),
            RedisConn::Cluster(c) => measured("pipeline", c.req_packed_commands(pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// The part of `key` Redis Cluster hashes: the first non-empty `{…}`, else the key.
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// Write-only pipelines grouped so that each goes to one cluster slot: one
/// pipeline in all on a single server, one per hash tag on a cluster.
pub struct SlotPipes {
    cluster: bool,
    pipes: BTreeMap<String, Pipeline>,
}

impl SlotPipes {
    /// Empty pipelines for `conn`.
    pub fn new(conn: &RedisConn) -> Self {
        Self { cluster: conn.is_cluster(), pipes: BTreeMap::new() }
    }

    /// The pipeline commands on `key` go into.
    pub fn of(&mut self, key: &str) -> &mut Pipeline {
        let group = if self.cluster { hash_tag(key).to_owned() } else { String::new() };
        self.pipes.entry(group).or_insert_with(redis::pipe)
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// Runs every pipeline (concurrently), ignoring replies; the first error wins.
    pub async fn run(self, conn: &RedisConn) -> RedisResult<()> {
        let runs = self.pipes.into_values().map(|pipe| {
            let mut conn = conn.clone();
            async move { pipe.query_async::<()>(&mut conn).await }
        });
        futures::future::try_join_all(runs).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_tag_is_the_first_non_empty_braces() {
        assert_eq!(hash_tag("weft:{app1}:chat:3:nodes"), "app1");
        assert_eq!(hash_tag("weft:node:n1:keys"), "weft:node:n1:keys");
        assert_eq!(hash_tag("weft:{}:x"), "weft:{}:x");
        assert_eq!(hash_tag("weft:{a}{b}"), "a");
        assert_eq!(hash_tag("weft:{open"), "weft:{open");
    }
}
