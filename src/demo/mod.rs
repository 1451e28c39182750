//! The web chat at `/demo`: static files built into the binary, and a narrow
//! API for one *demo application* the node keeps for it.
//!
//! REST authenticates with the application token in the path, and that token
//! must never reach a browser. So the demo's pages never see it: the node keeps
//! the token of its demo application (created on first use, see [`app`]) and
//! offers, under `/demo/api`, only what the page needs and the WebSocket does
//! not give — a short-lived user token for a user id, the user's chats, a
//! chat's members and receipt positions — each acting on the demo application
//! alone. Anyone who reaches the node can sign in to the demo application as
//! any user (there are no passwords): it is a demo, on by default on a laptop
//! (`config/default.toml`) and off for clusters (`config/cluster.toml`).
//! Nothing under `/demo` touches another application.

mod api;
mod app;
mod assets;

use std::path::Path;

use axum::Router;
use serde::Deserialize;

use crate::chat::ChatService;

/// Where the demo lives.
pub const PREFIX: &str = "/demo";

/// `[demo]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Serve the web chat at `/demo` and its API at `/demo/api`.
    pub enabled: bool,
    /// The demo application's token; empty: the node creates one on first use
    /// and keeps it in `<store.data_dir>/demo-app.token` (nodes of a cluster
    /// that enable the demo must share one: set it, on every node).
    pub app_token: String,
    /// How long a user token the demo hands out lives, in seconds.
    pub token_ttl_secs: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { enabled: true, app_token: String::new(), token_ttl_secs: 3600 }
    }
}

impl DemoConfig {
    /// Checks what types alone cannot: `(key, reason)` of the first bad value.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(60..=86_400).contains(&self.token_ttl_secs) {
            return Err(("demo.token_ttl_secs", "must be from 60 to 86400"));
        }
        let token = &self.app_token;
        let looks_like_a_token =
            token.len() == 32 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !token.is_empty() && !looks_like_a_token {
            return Err((
                "demo.app_token",
                "must be an application token (32 characters of A-Z a-z 0-9 - _)",
            ));
        }
        Ok(())
    }
}

/// The routes of `/demo`, or none when the demo is off. `data_dir` is where
/// the demo application's token is kept when `config.app_token` is empty.
pub fn router(config: &DemoConfig, data_dir: &Path, chat: ChatService) -> Router {
    if !config.enabled {
        return Router::new();
    }
    let csp = assets::Csp::for_node(&chat);
    let keeper = app::DemoApp::new(config, data_dir);
    assets::router(csp).merge(api::router(api::DemoState::new(chat, keeper, config.token_ttl_secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_on() {
        let config = DemoConfig::default();
        assert!(config.enabled);
        assert_eq!(config.check(), Ok(()));
    }

    #[test]
    fn bad_values_are_named() {
        let config = DemoConfig { token_ttl_secs: 10, ..DemoConfig::default() };
        assert_eq!(config.check().map_err(|(key, _)| key), Err("demo.token_ttl_secs"));
        let config = DemoConfig { app_token: "short".into(), ..DemoConfig::default() };
        assert_eq!(config.check().map_err(|(key, _)| key), Err("demo.app_token"));
        let config = DemoConfig { app_token: "a".repeat(32), ..DemoConfig::default() };
        assert_eq!(config.check(), Ok(()));
    }
}
