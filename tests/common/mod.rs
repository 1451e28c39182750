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

pub mod contract;
pub mod hooks;
pub mod mail;
pub mod process;
pub mod proxy;
pub mod push_service;
#[macro_use]
pub mod search_contract;
pub mod server;
pub mod trio;
#[macro_use]
pub mod ws;
