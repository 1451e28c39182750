//! Helpers shared by the integration tests.
//!
//! Each test binary compiles this module on its own and uses only part of it.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod contract;
pub mod server;
