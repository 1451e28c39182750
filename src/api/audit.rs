//! The audit trail of administrative acts: where a request came from
//! ([`Origin`]: its request id and client address), and `GET
//! /applications/:token/audit`, newest first (docs/security.md).

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::openapi::{BAD_PARAMETER, INTERNAL, NO_APP, UNAVAILABLE};
use super::params::QueryParams;
use crate::chat::ChatError;
use crate::ids::{AppId, Timestamp};
use crate::store::DynStore;
use crate::store::audit::{AuditEntry, AuditPosition, day_of};

/// How many UTC days back from the newest one a listing walks: entries
/// older than this are kept but not listed.
pub const RETENTION_DAYS: i64 = 90;
/// The most entries a page holds (and the default).
const MAX_LIMIT: usize = 200;
/// How many entries of a day are read at once while filtering by action.
const READ_CHUNK: usize = 200;
/// The longest client-sent `x-request-id` kept.
const MAX_REQUEST_ID: usize = 64;

/// The request's id: the client's `x-request-id` when short and printable,
/// else a fresh one; `observe::track` sets it on every request and answers it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    /// The client's id if acceptable, else a fresh one.
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        let sent = headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        });
        Self(sent.map_or_else(|| crate::ids::random_url_safe(12), str::to_owned))
    }
}

/// Where a request came from: its id and the client's address.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// The request id.
    pub request_id: Option<String>,
    /// The client's address (`X-Forwarded-For`, `X-Real-IP`).
    pub ip: Option<String>,
}

impl Origin {
    /// Reads it from a request.
    pub fn of(parts: &Parts) -> Self {
        Self {
            request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
            ip: super::client_info(&parts.headers).ip,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

/// One administrative act to record.
pub struct Act<'a> {
    /// The application.
    pub app: &'a AppId,
    /// Who (`admin`, `application_token`, `key:<id>`).
    pub actor: String,
    /// What.
    pub action: &'static str,
    /// On what.
    pub object: String,
    /// The changed fields before.
    pub before: Option<serde_json::Value>,
    /// The changed fields after.
    pub after: Option<serde_json::Value>,
}

/// Appends an act to the trail; a failure answers 503 (the act itself is done).
pub async fn record(store: &DynStore, origin: &Origin, act: Act<'_>) -> Result<(), ApiError> {
    let entry = AuditEntry {
        app: act.app.clone(),
        at: Timestamp::now(),
        id: crate::ids::random_url_safe(9),
        actor: act.actor,
        action: act.action.to_owned(),
        object: act.object,
        before: act.before,
        after: act.after,
        request_id: origin.request_id.clone(),
        ip: origin.ip.clone(),
    };
    store.append_audit(&entry).await.map_err(ChatError::from)?;
    tracing::info!(action = act.action, object = %entry.object, actor = %entry.actor, "audited");
    Ok(())
}

/// `?after=&action=&limit=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The `next` cursor of the previous page: entries older than it.
    after: Option<String>,
    /// Only entries of this action (`key.create`, `member.remove`, …).
    action: Option<String>,
    /// Entries per page (default and maximum 200).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// One entry of the trail.
#[derive(Serialize, ToSchema)]
pub struct AuditEntryOut {
    /// The entry's id.
    id: String,
    /// When (RFC 3339).
    at: String,
    /// Who: `admin` (the operator's key), `application_token`, `key:<id>`.
    actor: String,
    /// What: `application.create`, `application.update`, `application.rotate_secret`,
    /// `key.create`, `key.revoke`, `member.put`, `member.remove`, `message.delete`,
    /// `session.revoke`, `session.revoke_all`, `webhook.create`, `webhook.update`,
    /// `webhook.rotate`, `webhook.delete`.
    action: String,
    /// On what (`key:<id>`, `chat:3/member:alice`, `chat:3/message:7`, …).
    object: String,
    /// The changed fields before the act; secrets appear as a marker, never themselves.
    #[schema(value_type = Option<Object>)]
    before: Option<serde_json::Value>,
    /// The changed fields after the act.
    #[schema(value_type = Option<Object>)]
    after: Option<serde_json::Value>,
    /// The request's `x-request-id`.
    request_id: Option<String>,
    /// The client's address as the proxy gave it.
    ip: Option<String>,
}

/// A page of the trail, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPageOut {
    /// The entries.
    entries: Vec<AuditEntryOut>,
    /// Give it as `after` for the next (older) page; null at the end.
    next: Option<String>,
}

fn cursor(e: &AuditEntry) -> String {
    format!("{}.{}", e.at.millis(), e.id)
}

fn parse_cursor(text: &str) -> Option<AuditPosition> {
    let (at, id) = text.split_once('.')?;
    Some(AuditPosition { at: Timestamp(at.parse().ok()?), id: id.to_owned() })
}

fn out(e: AuditEntry) -> AuditEntryOut {
    AuditEntryOut {
        at: e.at.to_rfc3339(),
        id: e.id,
        actor: e.actor,
        action: e.action,
        object: e.object,
        before: e.before,
        after: e.after,
        request_id: e.request_id,
        ip: e.ip,
    }
}

/// `GET /applications/:token/audit`: the trail, newest first, walking back
/// day by day up to [`RETENTION_DAYS`] from today (or from the cursor's day).
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/audit",
    operation_id = "list_audit_entries",
    tag = "applications",
    params(super::params::AppPath, AuditQuery),
    responses(
        (status = 200, description = "A page of the audit trail, newest first", body = AuditPageOut),
        (status = 404, description = NO_APP),
        (status = 422, description = BAD_PARAMETER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    access: Access<need::Admin>,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<AuditPageOut>, ApiError> {
    let limit = query.limit.unwrap_or(MAX_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::InvalidParameter(format!("`limit` must be 1–{MAX_LIMIT}")));
    }
    let mut position = match query.after.as_deref() {
        Some(text) => Some(
            parse_cursor(text).ok_or_else(|| ApiError::InvalidParameter("`after` is not a cursor".into()))?,
        ),
        None => None,
    };
    let newest_day = day_of(Timestamp::now());
    let first_day = position.as_ref().map_or(newest_day, |p| day_of(p.at));
    let store = state.chat.store();
    let app = &access.app().id;
    let mut entries = Vec::new();
    let mut more = false;
    'days: for day in (newest_day - RETENTION_DAYS + 1..=first_day).rev() {
        loop {
            let chunk = store.audit_entries(app, day, position.as_ref(), READ_CHUNK).await;
            let chunk = chunk.map_err(ChatError::from)?;
            let full = chunk.len() == READ_CHUNK;
            for entry in chunk {
                position = Some(AuditPosition { at: entry.at, id: entry.id.clone() });
                if query.action.as_deref().is_some_and(|a| a != entry.action) {
                    continue;
                }
                if entries.len() == limit {
                    more = true;
                    break 'days;
                }
                entries.push(entry);
            }
            if !full {
                break;
            }
        }
        position = None;
    }
    let next = if more { entries.last().map(cursor) } else { None };
    Ok(Json(AuditPageOut { entries: entries.into_iter().map(out).collect(), next }))
}
