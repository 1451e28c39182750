//! A user's devices and notification settings (the application's token
//! authorizes them, as its other requests), and the email unsubscribe link.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::access::{Access, need};
use super::error::ApiError;
use super::input::{Fields, Input, Resource};
use super::openapi::{BAD_BODY, INTERNAL, NO_APP, TOO_LARGE, UNAVAILABLE};
use super::params::{PathParams, QueryParams, UserPath, chat_number, user_id};
use crate::chat::SettingsChanges;
use crate::ids::{DeviceId, Timestamp, UserId};
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

/// `{token}/users/{user}/devices/{device}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DevicePath {
    /// The application's token (a secret: it authorizes every request under it), or the
    /// application's id with a server key in `Authorization` (read by `Access`).
    #[allow(dead_code, reason = "`Access` reads it; here it describes the path")]
    token: String,
    /// The user.
    #[param(value_type = UserId)]
    user: String,
    /// The device, named by the client.
    #[param(value_type = DeviceId)]
    device: String,
}

/// The body of `PUT …/devices/{device}`.
#[derive(ToSchema)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct DeviceIn {
    /// `fcm`, `webpush` or `apns`.
    #[schema(example = "fcm")]
    provider: String,
    /// The provider's token (for `webpush`, the `PushSubscription` JSON).
    #[schema(min_length = 1, max_length = 8192)]
    token: String,
}

/// The body of `PUT`/`PATCH …/notification_settings`: at least one field.
#[derive(ToSchema)]
#[schema(min_properties = 1)]
#[allow(dead_code, reason = "the document's description of what `Input` reads")]
pub struct SettingsIn {
    /// Email digests of unread messages while away.
    email: Option<bool>,
    /// Where digests go; null or "" clears it.
    #[schema(max_length = 254)]
    email_address: Option<String>,
    /// Push notifications to the user's devices while away.
    push: Option<bool>,
    /// Levels per chat number: `all`, `mentions` or `none`; null clears them all.
    #[schema(value_type = Option<Object>, example = json!({"3": "mentions"}))]
    chats: Option<Map<String, Value>>,
    /// `{"from":"22:00","to":"07:00","tz":"Europe/Paris"}`, or null for none.
    quiet_hours: Option<QuietHoursOut>,
}

/// A device as the API shows it (never its token).
#[derive(Serialize, ToSchema)]
pub struct DeviceOut {
    id: DeviceId,
    /// `fcm`, `webpush` or `apns`.
    #[schema(example = "fcm")]
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
#[derive(Serialize, ToSchema)]
pub struct DevicesOut {
    devices: Vec<DeviceOut>,
}

/// Settings as the API shows them.
#[derive(Serialize, ToSchema)]
pub struct SettingsOut {
    email: bool,
    #[schema(required = true)]
    email_address: Option<String>,
    push: bool,
    /// Levels per chat number: `all`, `mentions` or `none`.
    #[schema(value_type = BTreeMap<String, String>)]
    chats: BTreeMap<String, &'static str>,
    #[schema(required = true)]
    quiet_hours: Option<QuietHoursOut>,
}

/// Quiet hours, in the user's time zone.
#[derive(Serialize, ToSchema)]
pub struct QuietHoursOut {
    /// `HH:MM`.
    #[schema(example = "22:00")]
    from: String,
    /// `HH:MM`.
    #[schema(example = "07:00")]
    to: String,
    /// An IANA time zone.
    #[schema(example = "Europe/Paris")]
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

/// 422 answers of requests about a device.
const BAD_DEVICE: &str =
    "`invalid_field`: a bad user or device id, or a field missing or malformed (a malformed push token)";

/// `PUT /applications/:token/users/:user/devices/:device_id {"provider","token"}`.
#[utoipa::path(
    put,
    path = "/api/v1/applications/{token}/users/{user}/devices/{device}",
    operation_id = "put_device",
    tag = "notifications",
    params(DevicePath),
    request_body = DeviceIn,
    responses(
        (status = 200, description = "The device (a new token replaces the old)", body = DeviceOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = BAD_DEVICE),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn put_device(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(DevicePath { user, device, .. }): PathParams<DevicePath>,
    Input(fields, _): Input<DeviceBody>,
) -> Result<Json<DeviceOut>, ApiError> {
    let (user, device) = (user_id(&user)?, device_id(&device)?);
    let provider = fields.required_string("provider", 16)?;
    let push_token = fields.required_string("token", 8_192)?;
    let app = state.chat.app_id(access.token()).await?;
    let device = state.chat.put_device(&app, &user, device, &provider, &push_token).await?;
    Ok(Json(device.into()))
}

/// `GET /applications/:token/users/:user/devices`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/users/{user}/devices",
    operation_id = "list_devices",
    tag = "notifications",
    params(UserPath),
    responses(
        (status = 200, description = "The user's devices (never their tokens)", body = DevicesOut),
        (status = 404, description = NO_APP),
        (status = 422, description = super::openapi::BAD_USER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn devices(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
) -> Result<Json<DevicesOut>, ApiError> {
    let user = user_id(&user)?;
    let app = state.chat.app_id(access.token()).await?;
    let devices = state.chat.devices(&app, &user).await?;
    Ok(Json(DevicesOut { devices: devices.into_iter().map(DeviceOut::from).collect() }))
}

/// `DELETE /applications/:token/users/:user/devices/:device_id` → 204.
#[utoipa::path(
    delete,
    path = "/api/v1/applications/{token}/users/{user}/devices/{device}",
    operation_id = "delete_device",
    tag = "notifications",
    params(DevicePath),
    responses(
        (status = 204, description = "The device is gone"),
        (status = 404, description = "`application_not_found`, `device_not_found`"),
        (status = 422, description = "`invalid_field`: a bad user or device id"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn delete_device(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(DevicePath { user, device, .. }): PathParams<DevicePath>,
) -> Result<StatusCode, ApiError> {
    let (user, device) = (user_id(&user)?, device_id(&device)?);
    let app = state.chat.app_id(access.token()).await?;
    state.chat.delete_device(&app, &user, &device).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /applications/:token/users/:user/notification_settings`.
#[utoipa::path(
    get,
    path = "/api/v1/applications/{token}/users/{user}/notification_settings",
    operation_id = "get_notification_settings",
    tag = "notifications",
    params(UserPath),
    responses(
        (status = 200, description = "The user's settings", body = SettingsOut),
        (status = 404, description = NO_APP),
        (status = 422, description = super::openapi::BAD_USER),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn settings(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
) -> Result<Json<SettingsOut>, ApiError> {
    let user = user_id(&user)?;
    let app = state.chat.app_id(access.token()).await?;
    Ok(Json(state.chat.notification_settings(&app, &user).await?.into()))
}

/// 422 answers of a settings change.
const BAD_SETTINGS: &str = "`invalid_field`: no field, a bad user id, level, clock, time zone or address, or \
                            `email` without an address";

/// `PUT /applications/:token/users/:user/notification_settings {"email"?,
/// "email_address"?, "push"?, "chats"?, "quiet_hours"?}`: the same as `PATCH`.
#[utoipa::path(
    put,
    path = "/api/v1/applications/{token}/users/{user}/notification_settings",
    operation_id = "replace_notification_settings",
    tag = "notifications",
    params(UserPath),
    request_body = SettingsIn,
    responses(
        (status = 200, description = "The user's settings after the change", body = SettingsOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = BAD_SETTINGS),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn replace_settings(
    state: State<ApiState>,
    access: Access<need::UsersTokens>,
    path: PathParams<UserPath>,
    input: Input<SettingsBody>,
) -> Result<Json<SettingsOut>, ApiError> {
    put_settings(state, access, path, input).await
}

/// `PATCH /applications/:token/users/:user/notification_settings {"email"?,
/// "email_address"?, "push"?, "chats"?, "quiet_hours"?}`: the fields given
/// change; `chats` sets the levels it names.
#[utoipa::path(
    patch,
    path = "/api/v1/applications/{token}/users/{user}/notification_settings",
    operation_id = "update_notification_settings",
    tag = "notifications",
    params(UserPath),
    request_body = SettingsIn,
    responses(
        (status = 200, description = "The user's settings after the change", body = SettingsOut),
        (status = 400, description = BAD_BODY),
        (status = 404, description = NO_APP),
        (status = 413, description = TOO_LARGE),
        (status = 422, description = BAD_SETTINGS),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn put_settings(
    State(state): State<ApiState>,
    access: Access<need::UsersTokens>,
    PathParams(UserPath { user, .. }): PathParams<UserPath>,
    Input(fields, _): Input<SettingsBody>,
) -> Result<Json<SettingsOut>, ApiError> {
    let user = user_id(&user)?;
    let changes = settings_changes(&fields)?;
    let app = state.chat.app_id(access.token()).await?;
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
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnsubscribeQuery {
    /// The application's public id.
    app: String,
    /// The user.
    user: String,
    /// The link's signature.
    token: String,
}

/// An unsubscribe answer.
#[derive(Serialize, ToSchema)]
pub struct UnsubscribedOut {
    /// Always true: email digests are off for that user.
    unsubscribed: bool,
}

/// `GET /api/v1/unsubscribe?app&user&token`: a page with one button that
/// POSTs the same URL (a link scanner following the email's links changes nothing).
#[utoipa::path(
    get,
    path = "/api/v1/unsubscribe",
    operation_id = "unsubscribe_page",
    tag = "notifications",
    params(UnsubscribeQuery),
    responses(
        (status = 200, description = "A page with one button that POSTs the same URL", content_type = "text/html", body = String),
        (status = 422, description = "`invalid_parameter`: `app`, `user` or `token` is missing"),
    )
)]
pub async fn unsubscribe_page(QueryParams(q): QueryParams<UnsubscribeQuery>) -> axum::response::Html<String> {
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
#[utoipa::path(
    post,
    path = "/api/v1/unsubscribe",
    operation_id = "unsubscribe",
    tag = "notifications",
    params(UnsubscribeQuery),
    responses(
        (status = 200, description = "Email digests are off for that user", body = UnsubscribedOut),
        (status = 403, description = "`forbidden`: the link's token is wrong"),
        (status = 422, description = "`invalid_parameter`: `app`, `user` or `token` is missing"),
        (status = 500, description = INTERNAL),
        (status = 503, description = UNAVAILABLE),
    )
)]
pub async fn unsubscribe(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<UnsubscribeQuery>,
) -> Result<Json<UnsubscribedOut>, ApiError> {
    if !state.chat.unsubscribe(&q.app, &q.user, &q.token).await? {
        return Err(ApiError::Forbidden);
    }
    Ok(Json(UnsubscribedOut { unsubscribed: true }))
}
