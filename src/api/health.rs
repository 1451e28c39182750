//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiError;
use crate::ids::AppToken;
use axum::http::HeaderMap;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store and Redis answer, gossip has joined (in a
/// cluster), and the node is not draining.
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Value>) {
    if state.shutdown.is_cancelled() {
        let body = json!({ "status": "draining", "checks": { "draining": true } });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let probe = AppToken::new("readiness-probe");
    let store_ok = state.chat.store().application_by_token(&probe).await.is_ok();
    let redis_ok = match &state.redis {
        None => true,
        Some(conn) => conn.ping().await.is_ok(),
    };
    let gossip_ok = state.membership.as_ref().is_none_or(crate::cluster::membership::Membership::joined);
    let ready = store_ok && redis_ok && gossip_ok;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "store": store_ok, "redis": redis_ok, "gossip": gossip_ok },
    });
    (status, Json(body))
}

/// `GET /api/v1/cluster` (admin key): the live members of the cluster.
pub async fn cluster(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    state.check_admin(&headers)?;
    let Some(membership) = &state.membership else {
        return Ok(Json(json!({ "clustered": false, "node_id": state.node_id, "members": [] })));
    };
    Ok(Json(json!({
        "clustered": true,
        "node_id": membership.node_id(),
        "gossip": membership.gossip_advertise_addr().to_string(),
        "members": membership.snapshot(),
    })))
}
