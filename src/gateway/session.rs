//! One WebSocket session: authenticate, then one loop over {client frame,
//! outbox, slow-consumer cut, shutdown}. The loop owns the socket; everything
//! else reaches the client through the bounded outbox.

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::hub::{SessionHandle, SessionId, message_out};
use super::protocol::{self, ClientFrame, FrameError, RequestId, ServerFrame, close};
use crate::api::{ApiError, ApiState};
use crate::auth::bearer;
use crate::chat::{ChatError, SendRequest};
use crate::ids::UserId;
use crate::model::Application;

/// Tuning of WebSocket sessions (`[gateway]` in the config).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Frames that may wait for a slow client before it is cut off (close 4200).
    pub outbox_frames: usize,
    /// Largest frame a client may send, in bytes.
    pub max_frame_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self { outbox_frames: 1024, max_frame_bytes: 64 * 1024 }
    }
}

/// `GET /ws`: authenticates the user token, then upgrades.
pub async fn ws_handler(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let jwt = bearer(&headers).map(str::to_owned).or_else(|| query.get("token").cloned());
    let Some(jwt) = jwt else {
        return ApiError::InvalidToken("send Authorization: Bearer <user token> or ?token=".into())
            .into_response();
    };
    let (app, user) = match state.chat.authenticate(&jwt).await {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let max = state.gateway.max_frame_bytes;
    upgrade
        .max_frame_size(max)
        .max_message_size(max)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| Session::new(state, app, user).run(socket))
}

struct Session {
    state: ApiState,
    app: Application,
    user: UserId,
    id: SessionId,
}

enum Flow {
    Continue,
    Close(u16, &'static str),
}

impl Session {
    fn new(state: ApiState, app: Application, user: UserId) -> Self {
        let id = state.hub.next_session_id();
        Self { state, app, user, id }
    }

    async fn run(self, socket: WebSocket) {
        let span = tracing::info_span!("session", app = %self.app.id, user = %self.user, session = self.id);
        let _entered = span.enter();
        let (mut sink, mut stream) = socket.split();
        let (outbox, mut pending) = mpsc::channel(self.state.gateway.outbox_frames.max(1));
        let slow = CancellationToken::new();
        let handle = SessionHandle { id: self.id, outbox: outbox.clone(), slow: slow.clone() };
        self.state.hub.register(&self.app.id, &self.user, handle);
        let welcome = ServerFrame::Welcome {
            user: self.user.clone(),
            session: format!("s{}", self.id),
            node: self.state.node_id.clone(),
        };
        let shutdown = self.state.shutdown.clone();
        let mut result = sink.send(WsMessage::Text(welcome.to_text().into())).await.map(|()| Flow::Continue);
        while let Ok(Flow::Continue) = result {
            result = tokio::select! {
                incoming = stream.next() => match incoming {
                    Some(Ok(message)) => self.on_client(message, &outbox).await,
                    Some(Err(_)) | None => Ok(Flow::Close(close::NORMAL, "")),
                },
                Some(frame) = pending.recv() => tokio::select! {
                    // A client that stops reading must not hold this task forever.
                    sent = sink.send(WsMessage::Text(frame)) => sent.map(|()| Flow::Continue),
                    () = slow.cancelled() => Ok(Flow::Close(close::SLOW_CONSUMER, "slow consumer: reconnect and resync")),
                },
                () = slow.cancelled() => Ok(Flow::Close(close::SLOW_CONSUMER, "slow consumer: reconnect and resync")),
                () = shutdown.cancelled() => Ok(Flow::Close(close::SERVICE_RESTART, "service restart")),
            };
        }
        self.state.hub.unregister(&self.app.id, &self.user, self.id);
        if let Ok(Flow::Close(code, reason)) = result {
            let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
            let closing = sink.send(WsMessage::Close(Some(frame)));
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), closing).await;
        }
    }

    /// Handles one client message; answers go through the outbox so the loop stays the only writer.
    async fn on_client(
        &self,
        message: WsMessage,
        outbox: &mpsc::Sender<Utf8Bytes>,
    ) -> Result<Flow, axum::Error> {
        let answer = match message {
            WsMessage::Text(text) => match protocol::decode(&text) {
                Ok(frame) => self.on_frame(frame).await,
                Err((e, id)) => Some(ServerFrame::from_frame_error(&e, id)),
            },
            WsMessage::Binary(_) => Some(ServerFrame::from_frame_error(&FrameError::Binary, None)),
            WsMessage::Close(_) => return Ok(Flow::Close(close::NORMAL, "")),
            WsMessage::Ping(_) | WsMessage::Pong(_) => None,
        };
        if let Some(frame) = answer
            && outbox.try_send(frame.to_text().into()).is_err()
        {
            return Ok(Flow::Close(close::SLOW_CONSUMER, "slow consumer: reconnect and resync"));
        }
        Ok(Flow::Continue)
    }

    async fn on_frame(&self, frame: ClientFrame) -> Option<ServerFrame> {
        match frame {
            ClientFrame::Send { id, chat: Some(chat), body, client_msg_id, reply_to, .. } => {
                let request = SendRequest { chat, body, client_msg_id, reply_to };
                Some(match self.state.chat.send(&self.app, &self.user, request, Some(self.id)).await {
                    Ok(sent) => ServerFrame::Ack { id, chat: sent.chat, seq: sent.seq },
                    Err(e) => error_frame(id, &e),
                })
            }
            ClientFrame::Send { id, .. } => Some(ServerFrame::Error {
                id,
                code: "not_supported",
                message: "sending to `recipients` is not supported yet; name a `chat`".into(),
            }),
            ClientFrame::Sync { id, chat, after, limit } => {
                let limit = limit.unwrap_or(100) as usize;
                Some(match self.state.chat.sync(&self.app.id, &self.user, chat, after, limit).await {
                    Ok((items, has_more)) => ServerFrame::Messages {
                        id,
                        chat,
                        items: items.iter().map(message_out).collect(),
                        has_more,
                    },
                    Err(e) => error_frame(id, &e),
                })
            }
            ClientFrame::Hello { id, .. } => Some(ServerFrame::Error {
                id,
                code: "not_supported",
                message: "`hello` is not supported yet; use `sync` per chat".into(),
            }),
            ClientFrame::Typing { .. } | ClientFrame::Delivered { .. } | ClientFrame::Read { .. } => None,
        }
    }
}

/// The `error` frame for a failed request.
fn error_frame(id: Option<RequestId>, e: &ChatError) -> ServerFrame {
    let (code, message) = match e {
        ChatError::NotAMember => ("forbidden", "you are not a member of this chat".to_owned()),
        ChatError::ChatNotFound | ChatError::ApplicationNotFound | ChatError::MessageNotFound => {
            ("not_found", e.to_string())
        }
        ChatError::Token(_) => ("forbidden", e.to_string()),
        ChatError::Store(_) | ChatError::Sequence(_) | ChatError::Write(_) => {
            tracing::warn!(error = %e, "request failed");
            ("unavailable", "the store or Redis is unavailable; retry with the same client_msg_id".to_owned())
        }
    };
    ServerFrame::Error { id, code, message }
}
