//! What operators see of HTTP: one span per request, request metrics, and
//! `GET /metrics`.
//!
//! The span names the route template (`/api/v1/applications/{token}/chats`),
//! never the raw path or query, which carry application tokens and user
//! tokens (`/ws?token=`). Handlers add `app` (the public id), `chat` and
//! `user` to it once they know them.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument as _;

use super::{ApiError, ApiState};
use crate::metrics::metrics;

/// Wraps every request in a span and counts it by route and status.
pub async fn track(mut request: Request, next: Next) -> Response {
    let request_id = super::audit::RequestId::of(request.headers());
    request.extensions_mut().insert(request_id.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http",
        method = %method,
        route = %route,
        request_id = %request_id.0,
        app = tracing::field::Empty,
        chat = tracing::field::Empty,
        user = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&request_id.0) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    span.record("status", status);
    let m = metrics();
    let status_label = status.to_string();
    m.http_requests.with_label_values(&[route.as_str(), status_label.as_str()]).inc();
    m.http_request_seconds.with_label_values(&[route.as_str()]).observe(started.elapsed().as_secs_f64());
    span.in_scope(|| tracing::debug!(status, "request"));
    response
}

/// `GET /metrics`: the Prometheus text exposition. Needs the bearer
/// `metrics.token` (or the admin key) when either is configured.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "get_metrics",
    tag = "operations",
    security(("metrics_token" = []), ("admin_key" = []), ()),
    responses(
        (status = 200, description = "The Prometheus text exposition", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "`unauthorized`: a key is configured and none was sent"),
        (status = 403, description = "`forbidden`: the key sent is neither `metrics.token` nor the admin key"),
    )
)]
pub async fn scrape(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let keys: Vec<_> = [&state.metrics_key, &state.admin_key].into_iter().flatten().collect();
    if !keys.is_empty() {
        let mut answer = Err(ApiError::Unauthorized);
        for key in keys {
            match key.check(&headers) {
                Ok(()) => {
                    answer = Ok(());
                    break;
                }
                Err(crate::auth::AuthError::Invalid) => answer = Err(ApiError::Forbidden),
                Err(crate::auth::AuthError::Missing) => {}
            }
        }
        answer?;
    }
    let body = metrics().render();
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
