//! weft: a horizontally clustered chat fabric.
//!
//! The crate is a library with a thin binary (`src/main.rs`). Modules:
//!
//! - [`cluster`]: cluster membership over gossip (chitchat);
//! - [`config`]: the one typed configuration, from file + `WEFT_*` env;
//! - [`ids`] and [`model`]: identifiers and the records weft keeps;
//! - `store`: the [`Store`] trait, its embedded (redb) and CQL backends, the batch writer;
//! - `sequence`: per-application chat numbers and per-chat message numbers;
//! - `chat`: the domain — applications, chats, messages, members;
//! - [`gateway`]: the WebSocket wire protocol (sessions to follow);
//! - `api`: the REST API (axum) and its error mapping;
//! - [`auth`]: the admin key and user tokens (HS256 JWTs);
//! - [`cluster`]: running as one of many nodes — mutual TLS and the node-to-node transport;
//! - `server`: wiring it together and serving until told to stop.

pub mod auth;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod gateway;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod redis_conn;
pub mod store;

mod api;

mod chat;
mod sequence;
mod server;

pub use chat::{
    Audience, Author, Caches, CatchUp, ChatError, ChatService, Event, Fabric, SendRequest, Sent, Target,
};
pub use config::{Config, ConfigError};
pub use sequence::{SequenceError, Sequencer};
pub use server::{Node, StartError, run};
pub use store::{
    BatchConfig, BatchStats, BatchWriter, CqlConfig, CqlStore, DynStore, EmbeddedStore, MESSAGE_BUCKET,
    SCHEMA_VERSION, Store, StoreError,
};
