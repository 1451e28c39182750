//! `/applications/:token/webhooks`: register, list, show, change, rotate,
//! delete, and the delivery log. The application's token authorizes them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::input::{Input, Resource};
use super::openapi::{BAD_BODY, INTERNAL, NO_APP, TOO_LARGE, UNAVAILABLE};
use super::params::{AppPath, PathParams};
use crate::ids::{Timestamp, WebhookId};
use crate::model::{EventType, Webhook};
use crate::notify::queue::LogRecord;

/// The body of webhook requests.
pub struct WebhookBody;

impl Resource for WebhookBody {
    const ROOT: &'static str = "webhook";
}

/// `{token}/webhooks/{id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    token: String,
    /// The webhook.
    #[param(value_type = WebhookId)]
    id: String,
}

/// The body of `POST …/webhooks`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct NewWebhookIn {
    /// An https URL on a public address (http and private addresses only as configured).
    #[schema(example = "https://example.com/weft")]
    url: String,
    /// Event types (docs/webhooks.md), or `["*"]` for all.
    #[schema(min_items = 1, max_items = 64, example = json!(["message.created"]))]
    events: Vec<String>,
}

/// The body of `PATCH …/webhooks/{id}`: at least one field.
#[derive(ToSchema)]
#[schema(min_properties = 1)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct WebhookChangeIn {
    #[schema(required = false)]
    url: String,
    #[schema(required = false, min_items = 1, max_items = 64)]
    events: Vec<String>,
    /// Only `true`: turns a disabled webhook back on.
    enabled: Option<bool>,
}

/// The body of `POST …/webhooks/{id}/replay`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct ReplayIn {
    /// The chat whose messages are sent again.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_u64)]
    chat: u64,
    /// Only messages numbered above this (default 0).
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_u64)]
    after: Option<u64>,
}

/// A webhook as the API shows it: the secret only when it was just made.
#[derive(Serialize, ToSchema)]
pub struct WebhookOut {
    id: WebhookId,
    url: String,
    events: Vec<&'static str>,
    /// Signs each delivery (`Weft-Signature`): shown at creation and rotation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    /// False once it failed for `webhooks.disable_after_ms`.
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    disabled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
}

impl WebhookOut {
    fn of(w: Webhook, with_secret: bool) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events.iter().map(|e| EventType::as_str(*e)).collect(),
            secret: with_secret.then_some(w.secret),
            created_at: w.created_at.to_rfc3339(),
            enabled: w.disabled_at.is_none(),
            disabled_at: w.disabled_at.map(Timestamp::to_rfc3339),
            disabled_reason: w.disabled_reason,
        }
    }
}

/// A line of the delivery log.
#[derive(Serialize, ToSchema)]
pub struct DeliveryOut {
    event_id: String,
    /// The event type.
    #[serde(rename = "type")]
    kind: String,
    attempt: u32,
    /// `delivered`, `failed`, `gave_up` or `disabled`.
    outcome: String,
    /// The receiver's HTTP status, if it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[schema(format = DateTime)]
    at: String,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    next_retry_at: Option<String>,
}

impl From<LogRecord> for DeliveryOut {
    fn from(r: LogRecord) -> Self {
        Self {
            event_id: r.event_id,
            kind: r.kind,
            attempt: r.attempt,
            outcome: r.outcome,
            status: r.status,
            error: r.error,
            at: Timestamp(r.at).to_rfc3339(),
            duration_ms: r.duration_ms,
            next_retry_at: r.next_retry_at.map(|t| Timestamp(t).to_rfc3339()),
        }
    }
}

/// Event names a webhook may list at most (there are 12; duplicates allowed).
const MAX_EVENTS: usize = 64;

fn webhook_id(raw: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(raw)
        .map_err(|_| ApiError::Chat(crate::chat::ChatError::Webhook(crate::notify::WebhookError::NotFound)))
}

/// 404 answers of requests about a webhook.
const NO_WEBHOOK: &str = "`application_not_found`, `webhook_not_found`";

/// `POST /applications/:token/webhooks {"url","events":[…]}` → 201 with the secret (shown once).
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    params(AppPath),
    request_body = NewWebhookIn,
    responses(
        (status = 201, description = "The webhook, with its secret (shown once)", body = WebhookOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: a URL refused (not https, credentials, a private address), unknown or no `events`, or a 21st webhook"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn create(
    State(state): State<ApiState>,
    access: Access<need::Webhooks>,
    Input(fields, _): Input<WebhookBody>,
) -> Result<(StatusCode, Json<WebhookOut>), ApiError> {
    let url = fields.required_string("url", crate::notify::target::MAX_URL)?;
    let events = fields
        .optional_strings("events", MAX_EVENTS, 64)?
        .ok_or_else(|| ApiError::InvalidField("`events` is required".into()))?;
    let webhook = state.chat.create_webhook(access.token(), &url, &events).await?;
    let object = format!("webhook:{}", webhook.id.as_str());
    access.audit(&state, "webhook.create", object, None, Some(audited(&webhook))).await?;
    Ok((StatusCode::CREATED, Json(WebhookOut::of(webhook, true))))
}

/// The list of webhooks.
#[derive(Serialize, ToSchema)]
pub struct WebhooksOut {
    webhooks: Vec<WebhookOut>,
}

/// `GET /applications/:token/webhooks`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    params(AppPath),
    responses(
        (status = 200, description = "The application's webhooks, without their secrets", body = WebhooksOut),
        (status = 404, description = NO_APP),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn list(
    State(state): State<ApiState>,
    access: Access<need::Webhooks>,
) -> Result<Json<WebhooksOut>, ApiError> {
    let hooks = state.chat.webhooks(access.token()).await?;
    Ok(Json(WebhooksOut { webhooks: hooks.into_iter().map(|w| WebhookOut::of(w, false)).collect() }))
}

/// `GET /applications/:token/webhooks/:id`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/webhooks/{id}",
    operation_id = "get_webhook",
    tag = "webhooks",
    params(WebhookPath),
    responses(
        (status = 200, description = "The webhook, without its secret", body = WebhookOut),
        (status = 404, description = NO_WEBHOOK),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn show(
    State(state): State<ApiState>,
    access: Access<need::Webhooks>,
    PathParams(WebhookPath { id, .. }): PathParams<WebhookPath>,
) -> Result<Json<WebhookOut>, ApiError> {
    let webhook = state.chat.webhook(access.token(), &webhook_id(&id)?).await?;
    Ok(Json(WebhookOut::of(webhook, false)))
}

/// `PATCH /applications/:token/webhooks/:id {"url"?, "events"?, "enabled": true?}`:
/// `enabled: true` turns a disabled webhook back on.
#[utoipa::path(
    patch,
    path = "/api/v1/applications/{token}/webhooks/{id}",
    operation_id = "update_webhook",
    tag = "webhooks",
    params(WebhookPath),
    request_body = WebhookChangeIn,
    responses(
        (status = 200, description = "The changed webhook", body = WebhookOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_WEBHOOK),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: no field, a bad one, or `enabled: false`"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn update(
    State(state): State<ApiState>,
    access: Access<need::Webhooks>,
    PathParams(WebhookPath { id, .. }): PathParams<WebhookPath>,
    Input(fields, _): Input<WebhookBody>,
) -> Result<Json<WebhookOut>, ApiError> {
    let id = webhook_id(&id)?;
    let url = fields
        .has("url")
        .then(|| fields.required_string("url", crate::notify::target::MAX_URL))
        .transpose()?;
    let events = fields.optional_strings("events", MAX_EVENTS, 64)?;
    let enable = match fields.optional_bool("enabled")? {
        Some(false) => {
            return Err(ApiError::InvalidField(
                "`enabled` can only be true (delete a webhook to stop it for good)".into(),
            ));
        }
        Some(true) => true,
        None => false,
    };
    if url.is_none() && events.is_none() && !enable {
        return Err(ApiError::InvalidField("give `url`, `events` or `enabled`".into()));
    }
    let webhook =
        state.chat.update_webhook(access.token(), &id, url.as_deref(), events.as_deref(), enable).await?;
    let object = format!("webhook:{}", webhook.id.as_str());
    access.audit(&state, "webhook.update", object, None, Some(audited(&webhook))).await?;
    Ok(Json(WebhookOut::of(webhook, false)))
}

/// `POST /applications/:token/webhooks/:id/rotate` → the new secret (the old
/// one signs as well for `webhooks.rotation_overlap_ms`).
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/webhooks/{id}/rotate",
    operation_id = "rotate_webhook_secret",
    tag = "webhooks",
    params(WebhookPath),
    responses(
        (status = 200, description = "The webhook with its new secret", body = WebhookOut),
        (status = 404, description = NO_WEBHOOK),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn rotate(
    State(state): State<ApiState>,
    access: Access<need::Webhooks>,
    PathParams(WebhookPath { id, .. }): PathParams<WebhookPath>,
) -> Result<Json<WebhookOut>, ApiError> {
    let webhook = state.chat.rotate_webhook(access.token(), &webhook_id(&id)?).await?;
    let object = format!("webhook:{}", webhook.id.as_str());
    let after = serde_json::json!({ "secret": "rotated" });
    access.audit(&state, "webhook.rotate", object, None, Some(after)).await?;
    Ok(Json(WebhookOut::of(webhook, true)))
}

/// `DELETE /applications/:token/webhooks/:id` → 204.
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{token}/webhooks/{id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    params(WebhookPath),
    responses(
        (status = 204, description = "Nothing more is delivered to it"),
        (status = 404, description = NO_WEBHOOK),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn destroy(
    State(state): State<ApiState>,
    access: Access<need::Webhooks>,
    PathParams(WebhookPath { id, .. }): PathParams<WebhookPath>,
) -> Result<StatusCode, ApiError> {
    let id = webhook_id(&id)?;
    state.chat.delete_webhook(access.token(), &id).await?;
    let (before, after) = (serde_json::json!({ "deleted": false }), serde_json::json!({ "deleted": true }));
    access
        .audit(&state, "webhook.delete", format!("webhook:{}", id.as_str()), Some(before), Some(after))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a replay queued.
#[derive(Serialize, ToSchema)]
pub struct ReplayOut {
    /// Events queued.
    queued: usize,
    /// The last message number covered: call again with `after` = this for more.
    through: u64,
}

/// `POST /applications/:token/webhooks/:id/replay {"chat","after"?}` → 202: queues
/// `message.created` again for this webhook for the chat's messages numbered
/// above `after` (default 0), at most 10,000 per call, with their first ids;
/// `through` is the last number covered (call again from there for more).
#[utoipa::path(
    post,
    path = "/api/v1/applications/{token}/webhooks/{id}/replay",
    operation_id = "replay_webhook",
    tag = "webhooks",
    params(WebhookPath),
    request_body = ReplayIn,
    responses(
        (status = 202, description = "`message.created` queued again for this webhook", body = ReplayOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = "`application_not_found`, `webhook_not_found`, `chat_not_found`"),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = "`invalid_field`: a bad field, a disabled webhook, or one without `message.created`"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn replay(
    State(state): State<ApiState>,
    access: Access<need::Webhooks>,
    PathParams(WebhookPath { id, .. }): PathParams<WebhookPath>,
    Input(fields, _): Input<WebhookBody>,
) -> Result<(StatusCode, Json<ReplayOut>), ApiError> {
    let id = webhook_id(&id)?;
    let chat = crate::ids::ChatNumber(fields.required_u64("chat", 1, i64::MAX as u64)?);
    let after = crate::ids::MessageNumber(fields.optional_u64("after", 0, i64::MAX as u64)?.unwrap_or(0));
    let (queued, through) = state.chat.replay_webhook(access.token(), &id, chat, after).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayOut { queued, through: through.get() })))
}

/// The delivery log.
#[derive(Serialize, ToSchema)]
pub struct DeliveriesOut {
    webhook: WebhookOut,
    deliveries: Vec<DeliveryOut>,
}

/// `GET /applications/:token/webhooks/:id/deliveries`: the newest 100
/// attempts, newest first, with status codes and the next retry.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/webhooks/{id}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    params(WebhookPath),
    responses(
        (status = 200, description = "The webhook and its newest 100 delivery attempts, newest first", body = DeliveriesOut),
        (status = 404, description = NO_WEBHOOK),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn deliveries(
    State(state): State<ApiState>,
    access: Access<need::Webhooks>,
    PathParams(WebhookPath { id, .. }): PathParams<WebhookPath>,
) -> Result<Json<DeliveriesOut>, ApiError> {
    let (webhook, log) = state.chat.webhook_deliveries(access.token(), &webhook_id(&id)?).await?;
    Ok(Json(DeliveriesOut {
        webhook: WebhookOut::of(webhook, false),
        deliveries: log.into_iter().map(DeliveryOut::from).collect(),
    }))
}

/// What the audit trail keeps of a webhook: where (without the query, which
/// may carry credentials), its events and whether it is enabled; never its secret.
fn audited(webhook: &crate::model::Webhook) -> serde_json::Value {
    let url = webhook.url.split(['?', '#']).next().unwrap_or_default();
    let events: Vec<&str> = webhook.events.iter().map(|e| e.as_str()).collect();
    serde_json::json!({ "url": url, "events": events, "enabled": webhook.disabled_at.is_none() })
}
