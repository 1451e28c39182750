//! weft: a horizontally clustered chat fabric.
//!
//! The crate is a library with a thin binary (`src/main.rs`). Its modules, from
//! the bottom up (a module imports only from modules above it in this list;
//! `scripts/check-layers.py` checks it in CI, see `docs/design.md`):
//!
//! - [`ids`], [`model`] and [`metrics`]: identifiers, the records weft keeps, every metric;
//! - [`auth`]: the admin key and user tokens (HS256, or an application's identity provider);
//! - [`redis_conn`], [`store`], `sequence`, [`cache`]: Redis, the [`Store`] trait with its
//!   embedded (redb) and CQL backends and the batch writer, numbering and idempotency
//!   claims, the caches;
//! - [`attachments`]: attachment files in the filesystem or S3, and the URLs to put and get them;
//! - [`search`]: the full-text index seam (`SearchIndex`), its tantivy and OpenSearch
//!   backends, the query language, and the indexer that follows the batch writer;
//! - [`protocol`]: the WebSocket frames, a pure codec;
//! - [`delivery`]: events to live sessions — the hub, outboxes, the [`Fabric`] seam;
//! - `chat`: the domain — applications, chats, messages, members, the send path;
//! - [`cluster`]: running as one of many nodes — gossip, the directory, mutual TLS, QUIC;
//! - `edge`: the one table from a domain failure to an HTTP status and a stable code;
//! - [`gateway`] and `api`: the WebSocket sessions and the REST API (axum);
//! - [`demo`]: the web chat at `/demo` and its narrow API for one demo application;
//! - [`config`]: the one typed configuration, from file + `WEFT_*` env;
//! - `server`: wiring it together and serving until told to stop.

pub mod attachments;
pub mod auth;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod gateway;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod protocol;
pub mod redis_conn;
pub mod search;
pub mod store;

mod api;
mod chat;
mod edge;
mod sequence;
mod server;

pub use chat::{Author, CatchUp, ChatError, ChatService, ErrorKind, HistoryPage, SendRequest, Sent, Target};
pub use config::{Config, ConfigError};
pub use delivery::{Audience, Event, Fabric};
pub use sequence::SequenceError;
pub use server::backup::{BackupCliError, backup, create_private_file, restore};
pub use server::reindex::{Progress as ReindexProgress, ReindexError, Scope as ReindexScope, reindex};
pub use server::transfer::{
    InputError as ImportInputError, Summary as TransferSummary, TransferError, export, export_file, import,
};
pub use server::{Node, StartError, run};
pub use store::{
    BatchConfig, BatchStats, BatchWriter, CqlConfig, CqlStore, DynStore, EmbeddedStore, MESSAGE_BUCKET,
    SCHEMA_VERSION, Store, StoreError,
};
