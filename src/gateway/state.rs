//! What every WebSocket session can reach: one shared [`GatewayParts`], so a
//! session holds one reference count, not a copy of each part.

use tokio_util::sync::CancellationToken;

use super::{GatewayConfig, Limits};
use crate::chat::ChatService;
use crate::delivery::Hub;

/// The gateway's shared state; cheap to clone.
#[derive(Clone)]
pub struct GatewayState(std::sync::Arc<GatewayParts>);

impl GatewayState {
    /// Shares `parts` with every session.
    pub fn new(parts: GatewayParts) -> Self {
        Self(std::sync::Arc::new(parts))
    }
}

impl std::ops::Deref for GatewayState {
    type Target = GatewayParts;

    fn deref(&self) -> &GatewayParts {
        &self.0
    }
}

/// The parts of the [`GatewayState`].
pub struct GatewayParts {
    /// The domain.
    pub chat: ChatService,
    /// This node's sessions.
    pub hub: Hub,
    /// Session tuning.
    pub config: GatewayConfig,
    /// Per-user send and typing limits.
    pub limits: Limits,
    /// This node's name, shown in `welcome`.
    pub node_id: String,
    /// Fires when the node starts draining: new sockets are refused (503 `draining`).
    pub shutdown: CancellationToken,
}
