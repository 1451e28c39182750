//! Per-user and per-application session caps on a node. Past
//! `gateway.max_connections` nobody can connect; these keep one user, or one
//! application's users, from taking every slot. A refused socket is upgraded
//! and closed with 4102 (back off), like the node cap's 4101, because browsers
//! cannot read a refused handshake.
//!
//! The caps hold per node: the hub counts and registers under one lock, so
//! a burst of connects cannot pass the check together. Cluster-wide caps
//! would need a count per user and per application in Redis on every
//! connect and close (`docs/design.md`, "Session caps").

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes};

use super::GatewayConfig;
use super::session::Sink;
use crate::delivery::{Caps, Over};
use crate::protocol::close;

/// The caps as configured.
pub(super) fn caps(config: &GatewayConfig) -> Caps {
    Caps { per_user: config.max_sessions_per_user, per_app: config.max_sessions_per_app }
}

/// Closes a session past a cap (4102), naming which.
pub(super) async fn refuse_over(mut sink: Sink, over: Over) {
    crate::metrics::metrics().rate_limited.with_label_values(&["connection"]).inc();
    let reason = match over {
        Over::User => "too many sessions of this user on the node: back off and reconnect",
        Over::App => "too many sessions of this application on the node: back off and reconnect",
    };
    tracing::debug!(?over, "session refused");
    let frame = CloseFrame { code: close::TOO_MANY_SESSIONS, reason: Utf8Bytes::from_static(reason) };
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(WsMessage::Close(Some(frame)))).await;
}
