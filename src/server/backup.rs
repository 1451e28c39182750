//! `weft backup` and `weft restore`: the CLI's side of backups of the embedded store.
//!
//! `backup` asks a serving node for a snapshot (`GET /api/v1/backup` with the
//! admin key) and writes it to a file; `restore` puts one in place as the
//! store of a stopped node's data directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Backend, Config};
use crate::store::{BackupError, EmbeddedStore};

/// Why `weft backup` or `weft restore` failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupCliError {
    /// The config names the CQL store.
    #[error("the config names the CQL store: back it up with its own tools (nodetool snapshot)")]
    NotEmbedded,
    /// No admin key in the config.
    #[error("a backup needs the node's admin key: set server.admin_key (or WEFT_SERVER_ADMIN_KEY)")]
    NoAdminKey,
    /// The node could not be reached or the transfer broke off.
    #[error("cannot fetch the backup from {url}")]
    Fetch {
        /// What was asked.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The node refused.
    #[error("the node answered {status}: {body}")]
    Refused {
        /// The status.
        status: u16,
        /// Its error body.
        body: String,
    },
    /// The output could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The restore failed.
    #[error(transparent)]
    Restore(#[from] BackupError),
}

/// Where the node of `config` answers: `node`, or its listen address (a
/// wildcard address asked on loopback).
fn base_url(config: &Config, node: Option<&str>) -> String {
    if let Some(node) = node {
        return node.trim_end_matches('/').to_owned();
    }
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

/// Fetches a snapshot of the serving node (`node`, or the one `config` listens
/// on) into `out` (created readable by its owner only, written whole or not
/// at all); returns the bytes written.
pub async fn backup(config: &Config, node: Option<&str>, out: &Path) -> Result<u64, BackupCliError> {
    if config.server.admin_key.is_empty() {
        return Err(BackupCliError::NoAdminKey);
    }
    let url = format!("{}/api/v1/backup", base_url(config, node));
    let fetch = |source| BackupCliError::Fetch { url: url.clone(), source };
    let mut response =
        reqwest::Client::new().get(&url).bearer_auth(&config.server.admin_key).send().await.map_err(fetch)?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(BackupCliError::Refused { status: status.as_u16(), body });
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let write = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupCliError::Write { path, source }
    };
    let mut file = create_private_file(&partial).map_err(write(&partial))?;
    let mut written = 0;
    while let Some(chunk) = response.chunk().await.map_err(fetch)? {
        file.write_all(&chunk).map_err(write(&partial))?;
        written += chunk.len() as u64;
    }
    file.sync_all().map_err(write(&partial))?;
    std::fs::rename(&partial, out).map_err(write(out))?;
    Ok(written)
}

/// Creates (or truncates) `path` readable and writable by its owner only: for
/// files that hold secrets (exports, backups).
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Puts the backup `input` in place as the store of `config`'s data
/// directory (the node stopped); returns the store file.
pub fn restore(config: &Config, input: &Path, force: bool) -> Result<PathBuf, BackupCliError> {
    if config.store.backend != Backend::Embedded {
        return Err(BackupCliError::NotEmbedded);
    }
    Ok(EmbeddedStore::restore(input, &config.store.data_dir, force)?)
}
