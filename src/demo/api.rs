//! `/demo/api`: what the demo's page needs beside the WebSocket, for the demo
//! application only.
//!
//! - `POST /demo/api/session {"user"}`: a user token of the demo application
//!   (`demo.token_ttl_secs`), with what the node offers (attachments or not);
//! - `GET /demo/api/chats`: the signed-in user's chats, newest activity first,
//!   each with its members, newest message and the user's read position;
//! - `GET /demo/api/chats/:number`: one of them with every member's role,
//!   presence and receipt positions.
//!
//! The last two take the session's token (`Authorization: Bearer`) and refuse
//! a token of any other application. Answers never carry the application token.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::{DemoApp, DemoAppError};
use crate::chat::{Authenticated, ChatError, ChatService, ChatView};
use crate::ids::{AppId, AppToken, ChatNumber, InvalidUserId, UserId};
use crate::model::{MessageRange, Page};

/// Chats listed at most.
const MAX_CHATS: usize = 100;
/// Members shown with each chat at most.
const MAX_MEMBERS: usize = 500;
/// The largest session request body, in bytes.
const MAX_BODY: usize = 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct DemoState(Arc<Parts>);

struct Parts {
    chat: ChatService,
    app: DemoApp,
    token_ttl_secs: u64,
}

impl DemoState {
    /// The demo API over `chat`, for the application `app` keeps.
    pub fn new(chat: ChatService, app: DemoApp, token_ttl_secs: u64) -> Self {
        Self(Arc::new(Parts { chat, app, token_ttl_secs }))
    }
}

/// A request the demo API refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The body is not JSON.
    #[error("send a JSON body (Content-Type: application/json)")]
    UnsupportedContentType,
    /// The body is larger than a session request can be.
    #[error("the request body is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The body is not JSON.
    #[error("the request body is not valid JSON")]
    Malformed(#[source] serde_json::Error),
    /// The body is JSON, but not `{"user": "…"}`.
    #[error("the body must be {{\"user\": \"<user id>\"}} and nothing else")]
    WrongShape(#[source] serde_json::Error),
    /// The user id is not one.
    #[error("`user`: {0}")]
    InvalidUser(#[source] InvalidUserId),
    /// No `Authorization: Bearer` header.
    #[error("sign in first: send Authorization: Bearer <token from POST /demo/api/session>")]
    MissingToken,
    /// A valid user token of another application.
    #[error("the token is not one of the demo application")]
    NotDemoToken,
    /// The path names no chat.
    #[error("chat not found")]
    NoSuchChat,
    /// The demo application cannot be had.
    #[error(transparent)]
    App(#[from] DemoAppError),
    /// The domain refused or failed.
    #[error(transparent)]
    Chat(#[from] ChatError),
}

impl IntoResponse for DemoError {
    fn into_response(self) -> Response {
        let mut response = match &self {
            DemoError::Chat(e) | DemoError::App(DemoAppError::Chat(e)) => crate::edge::chat_error_response(e),
            DemoError::App(e) => {
                let cause = std::error::Error::source(e).map(ToString::to_string);
                tracing::error!(error = %e, cause, "demo application unavailable");
                let message = "the demo application is unavailable; see the node's log";
                crate::edge::http_error(StatusCode::SERVICE_UNAVAILABLE, "demo_unavailable", message)
            }
            other => {
                let (status, code) = match other {
                    DemoError::UnsupportedContentType => {
                        (StatusCode::BAD_REQUEST, "unsupported_content_type")
                    }
                    DemoError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
                    DemoError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
                    DemoError::InvalidUser(_) | DemoError::WrongShape(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
                    }
                    DemoError::MissingToken | DemoError::NotDemoToken => {
                        (StatusCode::UNAUTHORIZED, "invalid_token")
                    }
                    _ => (StatusCode::NOT_FOUND, "chat_not_found"),
                };
                crate::edge::http_error(status, code, &other.to_string())
            }
        };
        response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The routes under `/demo/api`.
pub fn router(state: DemoState) -> Router {
    Router::new()
        .route("/demo/api/session", post(session))
        .route("/demo/api/chats", get(chats))
        .route("/demo/api/chats/{number}", get(chat))
        .with_state(state)
}

/// `{"user"}`: nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionBody {
    user: String,
}

/// `POST /demo/api/session {"user"}`.
async fn session(
    State(state): State<DemoState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, DemoError> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(DemoError::UnsupportedContentType);
    }
    if body.len() > MAX_BODY {
        return Err(DemoError::TooLarge);
    }
    let body: Value = serde_json::from_slice(&body).map_err(DemoError::Malformed)?;
    let SessionBody { user } = serde_json::from_value(body).map_err(DemoError::WrongShape)?;
    let user = UserId::parse(&user).map_err(DemoError::InvalidUser)?;
    let (token, _) = state.0.app.get(&state.0.chat).await?;
    let (jwt, expires_at) = state.0.chat.mint_user_token(token, &user, state.0.token_ttl_secs).await?;
    let attachments = state.0.chat.attachments().config().ok().map(|c| json!({ "max_size": c.max_size }));
    let answer = json!({
        "user": user,
        "token": jwt,
        "expires_at": expires_at,
        "attachments": attachments,
    });
    Ok(no_store((StatusCode::CREATED, axum::Json(answer))))
}

/// `GET /demo/api/chats`.
async fn chats(State(state): State<DemoState>, headers: HeaderMap) -> Result<Response, DemoError> {
    let (token, user) = state.signed_in(&headers).await?;
    let page = Page { skip: 0, limit: MAX_CHATS };
    let views = state.0.chat.user_chats(&token, &user, page).await?;
    let mut items = Vec::with_capacity(views.len());
    for view in views {
        items.push(state.describe(&token, &user, view, false).await?);
    }
    // Newest activity first: the last message's time, else the chat's creation.
    items.sort_by(|a, b| activity(b).cmp(activity(a)));
    Ok(no_store(axum::Json(json!({ "chats": items }))))
}

/// `GET /demo/api/chats/:number`.
async fn chat(
    State(state): State<DemoState>,
    headers: HeaderMap,
    Path(number): Path<String>,
) -> Result<Response, DemoError> {
    let (token, user) = state.signed_in(&headers).await?;
    let number = positive(&number).ok_or(DemoError::NoSuchChat)?;
    let view = state.0.chat.chat(&token, number).await?;
    Ok(no_store(axum::Json(state.describe(&token, &user, view, true).await?)))
}

impl DemoState {
    /// The demo application's token and the user the request's token names.
    async fn signed_in(&self, headers: &HeaderMap) -> Result<(AppToken, UserId), DemoError> {
        let jwt = crate::auth::bearer(headers).ok_or(DemoError::MissingToken)?;
        let (token, id): &(AppToken, AppId) = self.0.app.get(&self.0.chat).await?;
        let Authenticated { app, user, .. } = self.0.chat.authenticate(jwt).await?;
        if app.id != *id {
            return Err(DemoError::NotDemoToken);
        }
        Ok((token.clone(), user))
    }

    /// A chat as the page shows it; `detail` adds presence and every member's
    /// receipt positions. `NotAMember` unless `user` is one of its members.
    async fn describe(
        &self,
        token: &AppToken,
        user: &UserId,
        view: ChatView,
        detail: bool,
    ) -> Result<Value, DemoError> {
        let chat = &self.0.chat;
        let number = view.chat.number;
        let members = chat.members(token, number, Page { skip: 0, limit: MAX_MEMBERS }).await?;
        if !members.iter().any(|m| m.user == *user) {
            return Err(ChatError::NotAMember.into());
        }
        let newest = MessageRange { before: None, after: None, page: Page { skip: 0, limit: 1 } };
        let last = chat.messages(token, number, newest).await?.into_iter().next().map(|m| {
            let deleted = m.is_deleted();
            json!({
                "seq": m.number,
                "sender": m.sender,
                "body": if deleted { None } else { Some(m.body) },
                "sent_at": m.created_at,
                "deleted": deleted,
                "attachments": m.attachments.len(),
            })
        });
        let states = chat.read_states(token, number, Page { skip: 0, limit: MAX_MEMBERS }).await?;
        let mine = states.iter().find(|s| s.user == *user).map_or(0, |s| s.read.get());
        let users: Vec<UserId> = members.iter().map(|m| m.user.clone()).collect();
        let online =
            if detail { chat.fabric().online_among(&view.chat.app, &users).await } else { Vec::new() };
        let members: Vec<Value> = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut member = json!({ "user": m.user, "role": m.role.as_str() });
                if detail {
                    let state = states.iter().find(|s| s.user == m.user);
                    member["online"] = json!(online.get(i).copied().unwrap_or(false));
                    member["delivered"] = json!(state.map_or(0, |s| s.delivered.get()));
                    member["read"] = json!(state.map_or(0, |s| s.read.get()));
                }
                member
            })
            .collect();
        Ok(json!({
            "number": number,
            "kind": view.chat.kind.as_str(),
            "name": view.chat.name,
            "description": view.chat.description,
            "created_by": view.chat.created_by,
            "created_at": view.chat.created_at,
            "messages_count": view.messages_count,
            "members": members,
            "last": last,
            "read": mine,
        }))
    }
}

/// When a listed chat last saw activity, as its RFC 3339 text (which sorts by time).
fn activity(chat: &Value) -> &str {
    chat["last"]["sent_at"].as_str().or_else(|| chat["created_at"].as_str()).unwrap_or_default()
}

/// Only the canonical decimal form names a chat.
fn positive(raw: &str) -> Option<ChatNumber> {
    let canonical =
        raw.starts_with(|c: char| ('1'..='9').contains(&c)) && raw.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| raw.parse::<u64>().ok()).flatten().map(ChatNumber)
}

fn no_store(answer: impl IntoResponse) -> Response {
    let mut response = answer.into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
