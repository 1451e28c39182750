//! Helpers shared by the integration tests.
//!
//! Each test binary compiles this module on its own and uses only part of it.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(dead_code, unused_macros, clippy::unwrap_used, clippy::expect_used)]

/// Runs each `scenario(&TestServer)` once per mode, as three tests (`embedded::x`,
/// `cluster::x`, and `spread::x` on three nodes with clients spread over them).
/// The calling test file imports `TestServer` and `Mode`.
macro_rules! on_every_mode {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let server = super::TestServer::start(super::Mode::Embedded).await;
                    super::$scenario(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let server = super::TestServer::start(super::Mode::Cluster).await;
                    super::$scenario(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod spread {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let server = super::TestServer::start(super::Mode::Spread).await;
                    super::$scenario(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

pub mod auth_table;
pub mod contract;
pub mod fault_cluster;
pub mod hooks;
pub mod impair;
pub mod mail;
pub mod netns;
pub mod process;
pub mod proxy;
pub mod push_service;
pub mod relay;
#[macro_use]
pub mod search_contract;
pub mod server;
pub mod traffic;
pub mod trio;
#[macro_use]
pub mod ws;

/// A CQL keyspace name no other test or run uses: `weft_<kind>_<unix seconds>_<random>`.
/// The seconds let the test command drop what earlier runs left behind
/// (`scripts/cassandra/cql_ping.py --prune`): a Cassandra node that keeps every
/// keyspace of every run runs out of heap.
pub fn test_keyspace(kind: &str) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("weft_{kind}_{secs}_{:08x}", rand::random::<u32>())
}
