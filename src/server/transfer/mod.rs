//! `weft export` and `weft import`: one application as JSON lines, from
//! either store to either store, every number kept.
//!
//! Both go through the [`Store`](crate::store::Store) trait and the
//! numbering, so they work the same on the embedded store and on CQL +
//! Redis. The format is in `format.rs` and `docs/operations.md`.
//!
//! Import reads its input twice: the first pass checks every line (the
//! header's version, each record, their order, the closing `end` line's
//! count) and writes nothing, so a bad or truncated file is refused with the
//! number of its first bad line before the store is touched. The second pass
//! writes as it reads, and writes the application's own record last: until it
//! is written the application does not exist for the API. Every write of the
//! second pass is idempotent or checks what is stored first, so an import
//! that failed half-way (the store went away) finishes when run again with
//! the same file.

mod export;
mod format;
mod import;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{StartError, open_store};
use crate::config::Config;
use crate::ids::{AppToken, ChatNumber, MessageNumber};
use crate::redis_conn::RedisConn;
use crate::sequence::{Numbering, SequenceError};
use crate::store::{DynStore, StoreError};

pub use format::{BadField, FORMAT, VERSION};

/// What an export wrote or an import read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records, the header and the `end` line not counted.
    pub records: u64,
    /// Chats.
    pub chats: u64,
    /// Messages (tombstones included).
    pub messages: u64,
}

impl Summary {
    fn count(&mut self, record: &format::Record) {
        self.records += 1;
        match record {
            format::Record::Chat(_) => self.chats += 1,
            format::Record::Message(_) => self.messages += 1,
            _ => {}
        }
    }
}

/// Why an export or an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The store or Redis could not be opened.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// Redis failed (a counter could not be read or moved).
    #[error("the numbering failed")]
    Numbers(#[from] SequenceError),
    /// `--app` names no application.
    #[error("no application has this token")]
    UnknownApp,
    /// The store already holds the application being imported.
    #[error("this store already holds the application (token or id); import only into a store without it")]
    AppExists,
    /// The store holds a message, chat or claim of the application that the
    /// file disagrees with (a leftover of a failed import of another file).
    #[error("the store already holds chat {chat} message {seq} unlike the file")]
    Diverged {
        /// The chat.
        chat: ChatNumber,
        /// The message (0: the chat itself).
        seq: MessageNumber,
    },
    /// The input could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The output could not be written.
    #[error("cannot write the export")]
    Write(#[source] std::io::Error),
    /// A line of the input is wrong: nothing was written.
    #[error("line {line} of the input")]
    Input {
        /// The line (1: the header).
        line: u64,
        /// What is wrong with it.
        #[source]
        reason: InputError,
    },
}

/// What is wrong with a line of an import's input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Line 1 is not a header.
    #[error("not a weft export header (expected {{\"format\":\"{FORMAT}\",\"version\":{VERSION},…}})")]
    Header(#[source] serde_json::Error),
    /// The header names another format or version.
    #[error("format `{format}` version {version}: this weft reads `{FORMAT}` version {VERSION}")]
    Version {
        /// The format found.
        format: String,
        /// The version found.
        version: u32,
    },
    /// The line is not JSON, or not a record this version knows.
    #[error("not a record of this format")]
    Json(#[source] serde_json::Error),
    /// A field holds a value weft does not take.
    #[error(transparent)]
    Field(#[from] BadField),
    /// The record is out of place.
    #[error("{0}")]
    Order(&'static str),
    /// The file stops before its `end` line.
    #[error("the input ends before its `end` line: truncated")]
    Truncated,
    /// The `end` line's count differs from the records read.
    #[error("the `end` line counts {expected} records but {found} came before it")]
    Count {
        /// The count the `end` line gives.
        expected: u64,
        /// The records read.
        found: u64,
    },
    /// Something follows the `end` line.
    #[error("a line follows the `end` line")]
    AfterEnd,
}

/// The store and the numbering `config` names (Redis counters when Redis is configured).
async fn open(config: &Config) -> Result<(DynStore, Numbering), TransferError> {
    let store = open_store(config).await?;
    let redis = RedisConn::connect(&config.redis).await.map_err(SequenceError::Redis)?;
    let numbers = match redis {
        None => Numbering::local(Arc::clone(&store)),
        Some(conn) => Numbering::redis(
            conn,
            config.redis.key_prefix.clone(),
            Arc::clone(&store),
            config.sequence.resume_gap,
        ),
    };
    Ok((store, numbers))
}

/// Writes the application `token` names, from the store `config` names, to `out`.
///
/// The embedded store must not be open in another process (stop the node, or
/// export from a restored backup).
pub async fn export(
    config: &Config,
    token: &AppToken,
    out: &mut (dyn Write + Send),
) -> Result<Summary, TransferError> {
    let (store, numbers) = open(config).await?;
    export::export(&store, &numbers, token, out).await
}

/// Writes the application `token` names to the file `out`, created readable by
/// its owner only (it holds the application's secrets) and complete or absent:
/// written as `out.partial`, renamed when the `end` line is written.
pub async fn export_file(config: &Config, token: &AppToken, out: &Path) -> Result<Summary, TransferError> {
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = super::backup::create_private_file(&partial).map_err(TransferError::Write)?;
    let mut writer = std::io::BufWriter::new(file);
    let done = export(config, token, &mut writer).await;
    drop(writer);
    match done {
        Ok(summary) => {
            std::fs::rename(&partial, out).map_err(TransferError::Write)?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Imports the export at `input` (stdin when `None`, spooled to a temporary
/// file for the checking pass) into the store `config` names.
pub async fn import(config: &Config, input: Option<&Path>) -> Result<Summary, TransferError> {
    let spooled;
    let path = match input {
        Some(path) => path,
        None => {
            spooled = import::Spool::stdin()?;
            spooled.path()
        }
    };
    import::check(path)?;
    let (store, numbers) = open(config).await?;
    import::import(&store, &numbers, path).await
}
