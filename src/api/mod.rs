//! The REST API under `/api/v1`, plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Handlers parse and validate, call the [`ChatService`], and map its errors
//! through [`ApiError`]; they never touch Redis or the store directly.

mod access;
mod applications;
mod attachments;
mod audit;
mod backup;
mod chats;
mod error;
mod health;
mod input;
mod keys;
mod messages;
mod notifications;
mod observe;
mod openapi;
mod params;
mod realtime;
mod search;
mod sessions;
mod tokens;
mod views;
mod webhooks;

use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use crate::auth::AdminKey;
use crate::chat::ChatService;
use crate::delivery::presence::Presence;
use tokio_util::sync::CancellationToken;

pub use backup::Snapshots;
pub use error::ApiError;
pub use sessions::client_info;

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
    /// The embedded store, for `GET /api/v1/backup` (none on CQL).
    pub snapshots: Option<Snapshots>,
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

/// Every route of the REST API, health and metrics, each declared once: by its
/// handler's `#[utoipa::path]`, which `routes!` reads for both the route and the
/// document (handlers sharing a path share a `routes!`).
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(applications::create))
        .routes(routes!(applications::show, applications::replace, applications::update))
        .routes(routes!(tokens::rotate_secret))
        .routes(routes!(tokens::mint))
        .routes(routes!(tokens::me))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(sessions::create, sessions::list, sessions::revoke_all))
        .routes(routes!(sessions::revoke))
        .routes(routes!(sessions::refresh))
        .routes(routes!(chats::create, chats::list))
        .routes(routes!(chats::show, chats::update))
        .routes(routes!(chats::members))
        .routes(routes!(chats::add_member, chats::remove_member))
        .routes(routes!(chats::user_chats))
        .routes(routes!(messages::create, messages::list))
        .routes(routes!(messages::show, messages::update, messages::destroy))
        .routes(routes!(messages::versions))
        .routes(routes!(messages::replies))
        .routes(routes!(messages::reactions))
        .routes(routes!(messages::react, messages::unreact))
        .routes(routes!(search::in_chat))
        .routes(routes!(search::of_user))
        .routes(routes!(attachments::create))
        .routes(routes!(attachments::get_file, attachments::put_file))
        .routes(routes!(realtime::presence))
        .routes(routes!(realtime::read_state))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::show, webhooks::update, webhooks::destroy))
        .routes(routes!(webhooks::rotate))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(notifications::devices))
        .routes(routes!(notifications::put_device, notifications::delete_device))
        .routes(routes!(
            notifications::settings,
            notifications::replace_settings,
            notifications::put_settings
        ))
        .routes(routes!(notifications::unsubscribe_page, notifications::unsubscribe))
        .routes(routes!(health::cluster))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(observe::scrape))
        .routes(routes!(backup::backup))
}

/// The whole HTTP surface, all under one request span: the REST API, health and
/// metrics, `GET /api/v1/openapi.json`, and `sessions`: routes with their own state
/// (the WebSocket endpoint, which `sessions_doc` describes, and the web chat's).
pub fn router(state: ApiState, sessions: Router, sessions_doc: utoipa::openapi::OpenApi) -> Router {
    let document = openapi::Document::default();
    let mut api = routes().routes(routes!(openapi::serve).with_state(document.clone())).with_state(state);
    api.get_openapi_mut().merge(sessions_doc);
    let (api, doc) = api.split_for_parts();
    document.set(&openapi::finish(doc));
    api.merge(sessions)
        .fallback(|| async { ApiError::NotFound("not_found") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn(observe::track))
}
