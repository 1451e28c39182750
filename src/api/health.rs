//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiState;
use crate::ids::AppToken;
use crate::sequence::Sequencer;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store and Redis answer, and the node is not draining.
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    if state.shutdown.is_cancelled() {
        let body = json!({ "status": "draining", "checks": { "draining": true } });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let probe = AppToken::new("readiness-probe");
    let store_ok = state.chat.store().application_by_token(&probe).await.is_ok();
    let redis_ok = match state.chat.sequencer() {
        Sequencer::Local(_) => true,
        Sequencer::Redis(r) => r.ping().await.is_ok(),
    };
    let status = if store_ok && redis_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "checks": { "store": store_ok, "redis": redis_ok },
    });
    (status, Json(body))
}
