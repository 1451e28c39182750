//! A user's devices and notification settings (the application's token
//! authorizes them, as its other requests), and the email unsubscribe link.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ApiState;
use super::error::ApiError;
use super::input::{Fields, Input, Resource};
use super::params::{PathParams, chat_number, token, user_id};
use crate::chat::SettingsChanges;
use crate::ids::{DeviceId, Timestamp};
use crate::model::{ChatLevel, Device, NotificationSettings, QuietHours};

/// The body of device requests.
pub struct DeviceBody;

impl Resource for DeviceBody {
    const ROOT: &'static str = "device";
}

/// The body of settings requests.
pub struct SettingsBody;

impl Resource for SettingsBody {
    const ROOT: &'static str = "notification_settings";
}

/// A device as the API shows it (never its token).
#[derive(Serialize)]
pub struct DeviceOut {
    id: DeviceId,
    provider: &'static str,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<Device> for DeviceOut {
    fn from(d: Device) -> Self {
        Self { id: d.id, provider: d.provider.as_str(), created_at: d.created_at, updated_at: d.updated_at }
    }
}

/// A user's devices.
#[derive(Serialize)]
pub struct DevicesOut {
    devices: Vec<DeviceOut>,
}

/// Settings as the API shows them.
#[derive(Serialize)]
pub struct SettingsOut {
    email: bool,
    email_address: Option<String>,
    push: bool,
    chats: BTreeMap<String, &'static str>,
    quiet_hours: Option<QuietHoursOut>,
}

/// Quiet hours as the API shows them.
#[derive(Serialize)]
pub struct QuietHoursOut {
    from: String,
    to: String,
    tz: String,
}

impl From<NotificationSettings> for SettingsOut {
    fn from(s: NotificationSettings) -> Self {
        Self {
            email: s.email,
            email_address: s.email_address,
            push: s.push,
            chats: s.chats.into_iter().map(|(c, l)| (c.to_string(), l.as_str())).collect(),
            quiet_hours: s.quiet_hours.map(|q| QuietHoursOut { from: q.from, to: q.to, tz: q.tz }),
        }
    }
}

fn device_id(raw: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(raw).map_err(|e| ApiError::InvalidField(format!("`device_id`: {e}")))
}

/// `PUT /applications/:token/users/:user/devices/:device_id {"provider","token"}`.
pub async fn put_device(
    State(state): State<ApiState>,
    PathParams((raw, user, device)): PathParams<(String, String, String)>,
    Input(fields, _): Input<DeviceBody>,
) -> Result<Json<DeviceOut>, ApiError> {
    let (user, device) = (user_id(&user)?, device_id(&device)?);
    let provider = fields.required_string("provider", 16)?;
    let push_token = fields.required_string("token", 8_192)?;
    let app = state.chat.app_id(&token(raw)).await?;
    let device = state.chat.put_device(&app, &user, device, &provider, &push_token).await?;
    Ok(Json(device.into()))
}

/// `GET /applications/:token/users/:user/devices`.
pub async fn devices(
    State(state): State<ApiState>,
    PathParams((raw, user)): PathParams<(String, String)>,
) -> Result<Json<DevicesOut>, ApiError> {
    let user = user_id(&user)?;
    let app = state.chat.app_id(&token(raw)).await?;
    let devices = state.chat.devices(&app, &user).await?;
    Ok(Json(DevicesOut { devices: devices.into_iter().map(DeviceOut::from).collect() }))
}

/// `DELETE /applications/:token/users/:user/devices/:device_id` → 204.
pub async fn delete_device(
    State(state): State<ApiState>,
    PathParams((raw, user, device)): PathParams<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (user, device) = (user_id(&user)?, device_id(&device)?);
    let app = state.chat.app_id(&token(raw)).await?;
    state.chat.delete_device(&app, &user, &device).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /applications/:token/users/:user/notification_settings`.
pub async fn settings(
    State(state): State<ApiState>,
    PathParams((raw, user)): PathParams<(String, String)>,
) -> Result<Json<SettingsOut>, ApiError> {
    let user = user_id(&user)?;
    let app = state.chat.app_id(&token(raw)).await?;
    Ok(Json(state.chat.notification_settings(&app, &user).await?.into()))
}

/// `PUT /applications/:token/users/:user/notification_settings {"email"?,
/// "email_address"?, "push"?, "chats"?, "quiet_hours"?}`: the fields given
/// change; `chats` sets the levels it names.
pub async fn put_settings(
    State(state): State<ApiState>,
    PathParams((raw, user)): PathParams<(String, String)>,
    Input(fields, _): Input<SettingsBody>,
) -> Result<Json<SettingsOut>, ApiError> {
    let user = user_id(&user)?;
    let changes = settings_changes(&fields)?;
    let app = state.chat.app_id(&token(raw)).await?;
    Ok(Json(state.chat.change_notification_settings(&app, &user, changes).await?.into()))
}

/// Reads a settings change from a request body (REST or a WebSocket frame).
pub fn settings_changes(fields: &Fields) -> Result<SettingsChanges, ApiError> {
    let changes = SettingsChanges {
        email: fields.optional_bool("email")?,
        email_address: fields.clearable_string("email_address", 254)?,
        push: fields.optional_bool("push")?,
        chats: fields.clearable_object("chats")?.map(|m| chat_levels(m.unwrap_or_default())).transpose()?,
        quiet_hours: fields
            .clearable_object("quiet_hours")?
            .map(|q| q.map(quiet_hours).transpose())
            .transpose()?,
    };
    if changes.email.is_none()
        && changes.email_address.is_none()
        && changes.push.is_none()
        && changes.chats.is_none()
        && changes.quiet_hours.is_none()
    {
        return Err(ApiError::InvalidField(
            "give `email`, `email_address`, `push`, `chats` or `quiet_hours`".into(),
        ));
    }
    Ok(changes)
}

fn chat_levels(
    map: serde_json::Map<String, Value>,
) -> Result<BTreeMap<crate::ids::ChatNumber, ChatLevel>, ApiError> {
    let mut levels = BTreeMap::new();
    for (chat, level) in map {
        let number = chat_number(&chat)
            .map_err(|_| ApiError::InvalidField(format!("`chats`: `{}` is not a chat number", cut(&chat))))?;
        let level = level.as_str().and_then(ChatLevel::parse).ok_or_else(|| {
            ApiError::InvalidField(format!("`chats.{number}` must be \"all\", \"mentions\" or \"none\""))
        })?;
        levels.insert(number, level);
    }
    Ok(levels)
}

fn quiet_hours(map: serde_json::Map<String, Value>) -> Result<QuietHours, ApiError> {
    let field = |name: &str| {
        map.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::InvalidField(format!("`quiet_hours.{name}` is required (a string)")))
    };
    Ok(QuietHours { from: field("from")?, to: field("to")?, tz: field("tz")? })
}

fn cut(s: &str) -> String {
    s.chars().take(32).collect()
}

/// The query of an unsubscribe link.
#[derive(Deserialize)]
pub struct UnsubscribeQuery {
    app: String,
    user: String,
    token: String,
}

/// `GET /api/v1/unsubscribe?app&user&token`: a page with one button that
/// POSTs the same URL (a link scanner following the email's links changes nothing).
pub async fn unsubscribe_page(Query(q): Query<UnsubscribeQuery>) -> axum::response::Html<String> {
    let query = serde_urlencoded::to_string([("app", &q.app), ("user", &q.user), ("token", &q.token)])
        .unwrap_or_default();
    axum::response::Html(format!(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
         <form method=post action=\"/api/v1/unsubscribe?{}\"><p>Stop the unread-message emails?</p>\
         <button type=submit>Unsubscribe</button></form>",
        query.replace('&', "&amp;").replace('"', "&quot;")
    ))
}

/// `POST /api/v1/unsubscribe?app&user&token` (the page's button, and RFC 8058
/// one-click from the mail client): email digests off for that user. 403
/// `forbidden` for a wrong token.
pub async fn unsubscribe(
    State(state): State<ApiState>,
    Query(q): Query<UnsubscribeQuery>,
) -> Result<Json<Value>, ApiError> {
    if !state.chat.unsubscribe(&q.app, &q.user, &q.token).await? {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(serde_json::json!({ "unsubscribed": true })))
}
