//! The REST API under `/api/v1`, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Handlers parse and validate, call the [`ChatService`], and map its errors
//! through [`ApiError`]; they never touch Redis or the store directly.

mod applications;
mod attachments;
mod chats;
mod error;
mod health;
mod input;
mod messages;
mod notifications;
mod observe;
mod params;
mod realtime;
mod search;
mod tokens;
mod views;
mod webhooks;

use axum::Router;
use axum::routing::{get, post, put};

use crate::auth::AdminKey;
use crate::chat::ChatService;
use crate::delivery::presence::Presence;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

/// What every handler can reach: one shared [`ApiParts`], so a clone (one per
/// request, and one held by every WebSocket session) is a reference count.
#[derive(Clone)]
pub struct ApiState(std::sync::Arc<ApiParts>);

impl ApiState {
    /// Shares `parts` with every handler.
    pub fn new(parts: ApiParts) -> Self {
        Self(std::sync::Arc::new(parts))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiParts;

    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

/// The parts of the [`ApiState`].
pub struct ApiParts {
    /// The domain.
    pub chat: ChatService,
    /// Guards application creation when set.
    pub admin_key: Option<AdminKey>,
    /// Guards `/metrics` when set (the admin key is accepted too).
    pub metrics_key: Option<AdminKey>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// Who is online on this node (read by `GET …/presence`).
    pub presence: Presence,
    /// The node's Redis connection, for readiness checks (none on one node).
    pub redis: Option<crate::redis_conn::RedisConn>,
    /// This node's name.
    pub node_id: String,
    /// Fires when the node starts draining: `/readyz` turns 503.
    pub shutdown: CancellationToken,
    /// The cluster's membership, when this node is part of one.
    pub membership: Option<crate::cluster::membership::Membership>,
}

impl ApiParts {
    /// Checks the admin key when one is configured (without one, nothing is guarded).
    pub fn check_admin(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        let Some(key) = &self.admin_key else {
            return Ok(());
        };
        key.check(headers).map_err(|e| match e {
            crate::auth::AuthError::Missing => ApiError::Unauthorized,
            crate::auth::AuthError::Invalid => ApiError::Forbidden,
        })
    }
}

/// The whole HTTP surface: the REST API, health and metrics, and `sessions`
/// (the WebSocket endpoint, with its own state), all under one request span.
pub fn router(state: ApiState, sessions: Router) -> Router {
    let app = "/api/v1/applications/{token}";
    let chat = "/api/v1/applications/{token}/chats/{number}";
    let api = Router::new()
        .route("/api/v1/applications", post(applications::create))
        .route(app, get(applications::show).put(applications::update).patch(applications::update))
        .route("/api/v1/me", get(tokens::me))
        .route("/api/v1/cluster", get(health::cluster))
        .route(&format!("{app}/secret"), post(tokens::rotate_secret))
        .route(&format!("{app}/users/{{user}}/tokens"), post(tokens::mint))
        .route(&format!("{app}/chats"), post(chats::create).get(chats::list))
        .route(chat, get(chats::show).patch(chats::update))
        .route(&format!("{chat}/messages"), post(messages::create).get(messages::list))
        .route(&format!("{chat}/messages/search"), get(search::in_chat))
        .route(
            &format!("{chat}/messages/{{message}}"),
            get(messages::show).patch(messages::update).delete(messages::destroy),
        )
        .route(&format!("{chat}/messages/{{message}}/versions"), get(messages::versions))
        .route(&format!("{chat}/messages/{{message}}/replies"), get(messages::replies))
        .route(&format!("{chat}/attachments"), post(attachments::create))
        .route(
            &format!("{}/{{*key}}", crate::attachments::FILES_ROUTE),
            get(attachments::get_file).put(attachments::put_file),
        )
        .route(&format!("{chat}/messages/{{message}}/reactions"), get(messages::reactions))
        .route(
            &format!("{chat}/messages/{{message}}/reactions/{{emoji}}/{{user}}"),
            put(messages::react).delete(messages::unreact),
        )
        .route(&format!("{chat}/members"), get(chats::members))
        .route(&format!("{chat}/members/{{user}}"), put(chats::add_member).delete(chats::remove_member))
        .route(&format!("{app}/users/{{user}}/chats"), get(chats::user_chats))
        .route(&format!("{app}/users/{{user}}/presence"), get(realtime::presence))
        .route(&format!("{app}/users/{{user}}/messages/search"), get(search::of_user))
        .route(&format!("{chat}/read_state"), get(realtime::read_state))
        .route(&format!("{app}/webhooks"), post(webhooks::create).get(webhooks::list))
        .route(
            &format!("{app}/webhooks/{{id}}"),
            get(webhooks::show).patch(webhooks::update).delete(webhooks::destroy),
        )
        .route(&format!("{app}/webhooks/{{id}}/rotate"), post(webhooks::rotate))
        .route(&format!("{app}/webhooks/{{id}}/replay"), post(webhooks::replay))
        .route(&format!("{app}/webhooks/{{id}}/deliveries"), get(webhooks::deliveries))
        .route(&format!("{app}/users/{{user}}/devices"), get(notifications::devices))
        .route(
            &format!("{app}/users/{{user}}/devices/{{device}}"),
            put(notifications::put_device).delete(notifications::delete_device),
        )
        .route(
            &format!("{app}/users/{{user}}/notification_settings"),
            get(notifications::settings).put(notifications::put_settings).patch(notifications::put_settings),
        )
        .route("/api/v1/unsubscribe", get(notifications::unsubscribe_page).post(notifications::unsubscribe))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::scrape))
        .fallback(|| async { ApiError::NotFound("not_found") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state);
    api.merge(sessions).layer(axum::middleware::from_fn(observe::track))
}
