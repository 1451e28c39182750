//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::error::ApiError;
use crate::cluster::member::Member;
use crate::ids::AppToken;

/// The answer of `/healthz`.
#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// The answer of `/readyz`. Fields in the order they were always written (by name).
#[derive(Serialize, ToSchema)]
pub struct ReadyOut {
    checks: ReadyChecks,
    /// `ready`, `not_ready` or `draining`.
    #[schema(example = "ready")]
    status: &'static str,
}

/// What `/readyz` looked at: only `draining` while the node drains, else the other three.
#[derive(Serialize, ToSchema)]
pub struct ReadyChecks {
    #[serde(skip_serializing_if = "Option::is_none")]
    draining: Option<bool>,
    /// Gossip has joined (always true on one node).
    #[serde(skip_serializing_if = "Option::is_none")]
    gossip: Option<bool>,
    /// Redis answers (always true without Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<bool>,
    /// The store answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<bool>,
}

/// The answer of `/api/v1/cluster`.
#[derive(Serialize, ToSchema)]
pub struct ClusterOut {
    /// Whether this node is one of a cluster.
    clustered: bool,
    /// Where this node gossips (in a cluster).
    #[serde(skip_serializing_if = "Option::is_none")]
    gossip: Option<String>,
    /// The live members (none on one node).
    members: Vec<Member>,
    /// This node's name.
    node_id: String,
}

/// `GET /healthz`: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process answers", body = HealthOut))
)]
pub async fn healthz() -> Json<HealthOut> {
    Json(HealthOut { status: "ok" })
}

/// `GET /readyz`: the store and Redis answer, gossip has joined (in a
/// cluster), and the node is not draining.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready: the store and Redis answer, gossip has joined", body = ReadyOut),
        (status = 503, description = "Not ready, or draining", body = ReadyOut),
    )
)]
pub async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<ReadyOut>) {
    if state.shutdown.is_cancelled() {
        let checks = ReadyChecks { draining: Some(true), gossip: None, redis: None, store: None };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(ReadyOut { checks, status: "draining" }));
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
    let checks =
        ReadyChecks { draining: None, gossip: Some(gossip_ok), redis: Some(redis_ok), store: Some(store_ok) };
    (status, Json(ReadyOut { checks, status: if ready { "ready" } else { "not_ready" } }))
}

/// `GET /api/v1/cluster` (admin key): the live members of the cluster.
#[utoipa::path(
    get,
    path = "/api/v1/cluster",
    operation_id = "get_cluster",
    tag = "operations",
    security(("admin_key" = []), ()),
    responses(
        (status = 200, description = "The live members of the cluster", body = ClusterOut),
        (status = 401, description = "`unauthorized`: the admin key is configured and was not sent"),
        (status = 403, description = "`forbidden`: the admin key sent is not the node's"),
    )
)]
pub async fn cluster(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<ClusterOut>, ApiError> {
    state.check_admin(&headers)?;
    let Some(membership) = &state.membership else {
        return Ok(Json(ClusterOut {
            clustered: false,
            gossip: None,
            members: Vec::new(),
            node_id: state.node_id.clone(),
        }));
    };
    Ok(Json(ClusterOut {
        clustered: true,
        gossip: Some(membership.gossip_advertise_addr().to_string()),
        members: membership.snapshot(),
        node_id: membership.node_id().to_string(),
    }))
}
