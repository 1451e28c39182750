//! `/applications/:token/webhooks`: register, list, show, change, rotate,
//! delete, and the delivery log. The application's token authorizes them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::ApiState;
use super::error::ApiError;
use super::input::{Input, Resource};
use super::params::{PathParams, token};
use crate::ids::{Timestamp, WebhookId};
use crate::model::{EventType, Webhook};
use crate::notify::queue::LogRecord;

/// The body of webhook requests.
pub struct WebhookBody;

impl Resource for WebhookBody {
    const ROOT: &'static str = "webhook";
}

/// A webhook as the API shows it: the secret only when it was just made.
#[derive(Serialize)]
pub struct WebhookOut {
    id: WebhookId,
    url: String,
    events: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    created_at: String,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Serialize)]
pub struct DeliveryOut {
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    attempt: u32,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    at: String,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
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

/// `POST /applications/:token/webhooks {"url","events":[…]}` → 201 with the secret (shown once).
pub async fn create(
    State(state): State<ApiState>,
    PathParams(raw): PathParams<String>,
    Input(fields, _): Input<WebhookBody>,
) -> Result<(StatusCode, Json<WebhookOut>), ApiError> {
    let url = fields.required_string("url", crate::notify::target::MAX_URL)?;
    let events = fields
        .optional_strings("events", MAX_EVENTS, 64)?
        .ok_or_else(|| ApiError::InvalidField("`events` is required".into()))?;
    let webhook = state.chat.create_webhook(&token(raw), &url, &events).await?;
    Ok((StatusCode::CREATED, Json(WebhookOut::of(webhook, true))))
}

/// The list of webhooks.
#[derive(Serialize)]
pub struct WebhooksOut {
    webhooks: Vec<WebhookOut>,
}

/// `GET /applications/:token/webhooks`.
pub async fn list(
    State(state): State<ApiState>,
    PathParams(raw): PathParams<String>,
) -> Result<Json<WebhooksOut>, ApiError> {
    let hooks = state.chat.webhooks(&token(raw)).await?;
    Ok(Json(WebhooksOut { webhooks: hooks.into_iter().map(|w| WebhookOut::of(w, false)).collect() }))
}

/// `GET /applications/:token/webhooks/:id`.
pub async fn show(
    State(state): State<ApiState>,
    PathParams((raw, id)): PathParams<(String, String)>,
) -> Result<Json<WebhookOut>, ApiError> {
    let webhook = state.chat.webhook(&token(raw), &webhook_id(&id)?).await?;
    Ok(Json(WebhookOut::of(webhook, false)))
}

/// `PATCH /applications/:token/webhooks/:id {"url"?, "events"?, "enabled": true?}`:
/// `enabled: true` turns a disabled webhook back on.
pub async fn update(
    State(state): State<ApiState>,
    PathParams((raw, id)): PathParams<(String, String)>,
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
        state.chat.update_webhook(&token(raw), &id, url.as_deref(), events.as_deref(), enable).await?;
    Ok(Json(WebhookOut::of(webhook, false)))
}

/// `POST /applications/:token/webhooks/:id/rotate` → the new secret (the old
/// one signs as well for `webhooks.rotation_overlap_ms`).
pub async fn rotate(
    State(state): State<ApiState>,
    PathParams((raw, id)): PathParams<(String, String)>,
) -> Result<Json<WebhookOut>, ApiError> {
    let webhook = state.chat.rotate_webhook(&token(raw), &webhook_id(&id)?).await?;
    Ok(Json(WebhookOut::of(webhook, true)))
}

/// `DELETE /applications/:token/webhooks/:id` → 204.
pub async fn destroy(
    State(state): State<ApiState>,
    PathParams((raw, id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.chat.delete_webhook(&token(raw), &webhook_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a replay queued.
#[derive(Serialize)]
pub struct ReplayOut {
    queued: usize,
    through: u64,
}

/// `POST /applications/:token/webhooks/:id/replay {"chat","after"?}` → 202: queues
/// `message.created` again for this webhook for the chat's messages numbered
/// above `after` (default 0), at most 10,000 per call, with their first ids;
/// `through` is the last number covered (call again from there for more).
pub async fn replay(
    State(state): State<ApiState>,
    PathParams((raw, id)): PathParams<(String, String)>,
    Input(fields, _): Input<WebhookBody>,
) -> Result<(StatusCode, Json<ReplayOut>), ApiError> {
    let id = webhook_id(&id)?;
    let chat = crate::ids::ChatNumber(fields.required_u64("chat", 1, i64::MAX as u64)?);
    let after = crate::ids::MessageNumber(fields.optional_u64("after", 0, i64::MAX as u64)?.unwrap_or(0));
    let (queued, through) = state.chat.replay_webhook(&token(raw), &id, chat, after).await?;
    Ok((StatusCode::ACCEPTED, Json(ReplayOut { queued, through: through.get() })))
}

/// The delivery log.
#[derive(Serialize)]
pub struct DeliveriesOut {
    webhook: WebhookOut,
    deliveries: Vec<DeliveryOut>,
}

/// `GET /applications/:token/webhooks/:id/deliveries`: the newest 100
/// attempts, newest first, with status codes and the next retry.
pub async fn deliveries(
    State(state): State<ApiState>,
    PathParams((raw, id)): PathParams<(String, String)>,
) -> Result<Json<DeliveriesOut>, ApiError> {
    let (webhook, log) = state.chat.webhook_deliveries(&token(raw), &webhook_id(&id)?).await?;
    Ok(Json(DeliveriesOut {
        webhook: WebhookOut::of(webhook, false),
        deliveries: log.into_iter().map(DeliveryOut::from).collect(),
    }))
}
