//! weft-load: a load generator for weft's real-time delivery.
//!
//! It drives one running node over its public interfaces only (REST to set up
//! and to read history, WebSockets to send and receive), so it measures what a
//! client sees. Modules:
//!
//! - [`node`]: the node under test (loopback only) and the REST calls that set up
//!   applications, chats, members and user tokens;
//! - `socket`: opening many WebSockets with a concurrency limit, each past its `welcome`;
//! - `client`: one socket's task — paced or windowed sends, acks, deliveries, latencies;
//! - `run`: the phases of a run (warm-up, measure, drain) and live progress;
//! - [`scenario`]: `fanout` (one chat, many members) and `dm` (many direct chats);
//! - [`idle`]: many held connections and what they cost the node;
//! - [`storm`]: a node killed under its clients, who reconnect and resume;
//! - [`soak`]: many clients sending random valid and invalid frames for a bounded time;
//!   the node must stay ready, answer every bad frame as documented, lose no acked send,
//!   and keep its memory flat ([`launch`] starts the node when no `--url` is given);
//! - [`history`]: REST reads of a chat's history, old pages (the store) and the newest one;
//! - [`report`]: results as JSON and a markdown row, and the median of several runs;
//! - [`centrifugo`]: the same `fanout`, `cluster` and `idle` scenarios against Centrifugo
//!   (`--target centrifugo`), for the side-by-side benchmark;
//! - [`proc`]: the CPU the server's processes used in the measured window;
//! - [`versus`]: the side-by-side table: weft's row, Centrifugo's and their ratios;
//! - [`receiver`]: a webhook receiver inside the generator (`webhooks`, `--webhook`);
//! - [`webhooks`]: `message.created` webhooks of many chats: throughput, completeness,
//!   order, and the latency from the message's `sent_at` to its webhook.

pub mod centrifugo;
pub mod history;
pub mod idle;
pub mod launch;
pub mod node;
pub mod proc;
pub mod receiver;
pub mod report;
pub mod scenario;
pub mod soak;
pub mod storm;
pub mod versus;
pub mod webhooks;

mod client;
mod run;
mod seqset;
mod socket;

pub use node::Node;
pub use report::Report;
pub use run::Timing;
pub use scenario::{Dm, Fanout, Load};
