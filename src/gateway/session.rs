//! One WebSocket session: authenticate, then one loop over {client frame,
//! outbox, heartbeat tick, slow-consumer cut, shutdown}. The loop owns the
//! socket's reads; everything else reaches the client through the bounded
//! outbox, which, while the session has nothing queued, lets the fan-out
//! write a live frame to a plain TCP socket itself (`delivery::outbox`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Query, State};
use axum::http::header::CONNECTION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures::future::Either;
use futures::{SinkExt as _, StreamExt as _};

use super::GatewayState;
use super::budget::Budget;
use super::caps::{caps, refuse_over};
use super::expiry::{Due, Expiry};
use super::handlers::{Answers, Handled, Step, step};
use super::pipeline::Sends;
use super::reads::Reads;
use crate::auth::bearer;
use crate::chat::{Authenticated, ErrorKind, Refusal, Service};
use crate::delivery::{Cut, Flushed, Outbox, SessionHandle, SessionId, Slot, Wake, Wire};
use crate::ids::{Timestamp, UserId};
use crate::model::Application;
use crate::protocol::{RequestId, Resume};
use crate::protocol::{ServerFrame, close};

/// Frames written to the socket before one flush, at most.
const WRITE_BATCH: usize = 64;
/// A session's read buffer: every idle session holds one, and a client frame
/// (a `send` of a few hundred bytes) fits; a larger frame grows it.
const READ_BUFFER: usize = 512;
/// Frames written to a session are gathered up to this many bytes and then
/// written in one syscall (or at the flush after each batch), rather than
/// one syscall each. A session that never writes much keeps a smaller buffer.
const WRITE_BUFFER: usize = 16 * 1024;
/// How far over `max_frame_bytes` a frame is still read whole (to be refused cleanly).
const OVERSIZE_SLACK: usize = 16 * 1024;
/// How long a closing session waits to write its close, then for the client's.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// The window over which error answers count toward flooding.
const FLOOD_WINDOW: Duration = Duration::from_secs(10);

/// The WebSocket endpoint, routed and documented by one attribute.
pub fn routes() -> utoipa_axum::router::OpenApiRouter<GatewayState> {
    utoipa_axum::router::OpenApiRouter::default().routes(utoipa_axum::routes!(ws_handler))
}

/// `GET /ws`: authenticates the user token, then upgrades.
#[utoipa::path(
    get,
    path = "/ws",
    operation_id = "open_websocket",
    tag = "realtime",
    description = "Opens a WebSocket session (docs/protocol.md). Send the user token as \
        `Authorization: Bearer` or, where a client cannot set headers (browsers), as `?token=`; \
        the handshake is refused before the upgrade when it does not authenticate.",
    security(("user_token" = []), ("user_token_query" = [])),
    params(
        ("token" = Option<String>, Query, description = "The user token, when not sent as a bearer header"),
        ("batch" = Option<bool>, Query, description = "`1` or `true`: the node may write several frames \
            in one WebSocket text frame, one JSON object a line (docs/protocol.md, \"Batched frames\")"),
    ),
    responses(
        (status = 101, description = "Switching protocols: the session speaks docs/protocol.md"),
        (status = 400, description = "`websocket_required`: not a WebSocket handshake"),
        (status = 401, description = "`invalid_token`, `session_revoked`: no user token, or one forged, expired, for no application or signed before a rotation; or its session was revoked"),
        (status = 405, description = "`websocket_required`: a WebSocket handshake is a GET"),
        (status = 422, description = "`invalid_parameter`: a query that cannot be read, or a `batch` other than 1, true, 0 or false"),
        (status = 426, description = "`websocket_required`: the connection cannot be upgraded"),
        (status = 500, description = "`internal`: a bug or unreadable data (logged on the node)"),
        (status = 503, description = "`draining`, `store_unavailable`, `redis_unavailable`, `identity_provider_unavailable`: the node is shutting down (connect to another), or a service does not answer"),
    )
)]
pub async fn ws_handler(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    wire: Option<Extension<Arc<Wire>>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // In the order axum's own rejections came: query, then the handshake.
    let Ok(Query(query)) = query else {
        let bad = crate::edge::http_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
            "the query string cannot be read",
        );
        return refused(bad);
    };
    let batch = match query.get("batch").map(String::as_str) {
        None | Some("0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => {
            let bad = crate::edge::http_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_parameter",
                "batch must be 1 (or true) to batch frames, 0 (or false) not to",
            );
            return refused(bad);
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(e) => return refused(crate::edge::http_error(e.status(), "websocket_required", &e.body_text())),
    };
    if state.shutdown.is_cancelled() {
        return refused(crate::edge::refusal(
            ErrorKind::Unavailable(Service::Node),
            "the node is draining; connect to another node",
        ));
    }
    let jwt = bearer(&headers).map(str::to_owned).or_else(|| query.get("token").cloned());
    let Some(jwt) = jwt else {
        return refused(crate::edge::refusal(
            ErrorKind::Forbidden(Refusal::InvalidToken),
            "send Authorization: Bearer <user token> or ?token=",
        ));
    };
    let who = match state.chat.authenticate(&jwt).await {
        Ok(who) => who,
        Err(e) => return refused(crate::edge::chat_error_response(&e)),
    };
    if let Some(claim) = who.session.clone() {
        // Where the session was seen, off the handshake's path.
        let (chat, client) = (state.chat.clone(), crate::api::client_info(&headers));
        tokio::spawn(async move { chat.touch_session(&claim, &client).await });
    }
    // Frames up to OVERSIZE_SLACK over the limit are read whole and refused
    // by the session (`frame_too_large`, then 1009): a frame the socket
    // refused half-read would leave bytes unread, and closing a socket with
    // unread bytes resets it, so the client would never see why.
    let max = state.config.max_frame_bytes.saturating_add(OVERSIZE_SLACK);
    let slot = state.hub.reserve(state.config.max_connections);
    // Boxed: axum's upgrade task keeps the callback's captures for the
    // session's whole life, so they are one pointer, not the session.
    let session = slot.map(|slot| Box::new((Session::new(state, who, wire.map(|w| w.0), batch), slot)));
    upgrade
        .max_frame_size(max)
        .max_message_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Plain closures and `Either` rather than async blocks: each async
        // layer would keep its own copy of what it hands down (rust#62958),
        // and every idle session holds this future.
        .on_upgrade(move |socket| match session {
            Some(session) => {
                let (session, slot) = *session;
                Either::Left(session.run(socket, slot))
            }
            // Upgraded first so that browsers see why: they cannot read a refused handshake.
            None => Either::Right(refuse(socket)),
        })
}

/// A refused handshake closes its connection: a client that failed to
/// authenticate has no reason to keep it, and it would count against
/// `server.max_pending_connections` until its idle timeout.
fn refused(mut response: Response) -> Response {
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn refuse(mut socket: WebSocket) {
    crate::metrics::metrics().rate_limited.with_label_values(&["connection"]).inc();
    let frame = CloseFrame {
        code: close::TOO_MANY_CONNECTIONS,
        reason: Utf8Bytes::from_static("node at its connection limit: back off and reconnect"),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(WsMessage::Close(Some(frame)))).await;
}

/// An authenticated session.
pub(super) struct Session {
    pub(super) state: GatewayState,
    pub(super) app: Arc<Application>,
    pub(super) user: UserId,
    pub(super) id: SessionId,
    /// The session (refresh-token family) of the token it opened with, if any.
    pub(super) auth: Option<crate::auth::SessionClaim>,
    /// When its token expires (an in-band `refresh` renews it).
    pub(super) expiry: Expiry,
    /// Its socket's write side, when the connection is plain TCP (not TLS).
    wire: Option<Arc<Wire>>,
    /// Whether the client asked for batched frames (`?batch=1`): frames written
    /// together share a WebSocket frame, a line each (`lines`).
    batch: bool,
}

/// Why the loop ends: the close code and reason to send, if any.
pub(super) type Closing = Option<(u16, &'static str)>;

const SLOW: Closing = Some((close::SLOW_CONSUMER, "slow consumer: reconnect and resync"));

/// How a session cut off from outside closes.
fn closing_for(why: Cut) -> Closing {
    match why {
        Cut::Slow => SLOW,
        Cut::Revoked => Some((close::TOKEN_EXPIRED, "the application's secret was rotated")),
        Cut::Drain => Some((close::SERVICE_RESTART, "service restart")),
        Cut::SessionRevoked => Some((close::TOKEN_EXPIRED, "the session was revoked")),
    }
}

/// What the loop keeps between frames.
pub(super) struct LoopState {
    pub(super) last_heard: Instant,
    strikes: u32,
    strikes_since: Instant,
    /// The frame budget, and what the last refusals announced.
    budget: Budget,
    /// The last heartbeat tick handled (see `Hub::tick`).
    tick: u64,
}

/// The session's socket: read in the loop's wait, written between.
pub(super) type Sink = WebSocket;

/// A request being handled.
type Pending<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Handled> + Send + 'a>>;

/// How long a closing session goes on persisting and publishing the sends it numbered.
const FINISH_WAIT: Duration = Duration::from_secs(5);

/// What a client message calls for.
enum Incoming {
    /// Answers to write now.
    Answer(Answers),
    /// A catch-up.
    Hello(Option<RequestId>, Vec<Resume>),
    /// A request to run alongside live traffic.
    Request(crate::protocol::ClientFrame),
    /// A frame over `max_frame_bytes`: refused, then the close (1009).
    TooLarge,
    /// The loop's next state (`None`: go on).
    Close(Closing),
}

impl Session {
    fn new(state: GatewayState, who: Authenticated, wire: Option<Arc<Wire>>, batch: bool) -> Self {
        let id = state.hub.next_session_id();
        let expiry = Expiry::new(who.expires_at, state.chat.sessions_config().expiry_notice_secs);
        Self { state, app: who.app, user: who.user, id, auth: who.session, expiry, wire, batch }
    }

    fn run(self, socket: WebSocket, slot: Slot) -> impl Future<Output = ()> + Send {
        // One span per session, carried by its task across every await.
        let span = tracing::info_span!("session", app = %self.app.id, user = %self.user, session = %self.id);
        tracing::Instrument::instrument(self.serve(socket, slot), span)
    }

    /// The session's loop. Every idle session is one such future, so the
    /// rarer steps (catch-ups, answers, writes, ticks, the close) are boxed:
    /// the future keeps only the loop's own state, not the largest step's.
    /// An `async move` block rather than an `async fn`: an async fn moves its
    /// arguments into locals, and the future would hold the session and its
    /// socket twice (rust#62958). The socket is not split: the loop reads it
    /// only while waiting and writes it only in between, so a split's lock
    /// (taken on every read and write) buys nothing.
    #[allow(clippy::manual_async_fn, reason = "an async fn would hold its arguments twice")]
    fn serve(self, mut sink: Sink, slot: Slot) -> impl Future<Output = ()> + Send {
        async move {
            // Without a wire the outbox never lets the fan-out write.
            let wire = self.wire.clone().filter(|_| self.state.config.direct_writes);
            let outbox = Outbox::new(self.state.config.outbox_frames, self.state.config.outbox_bytes, wire);
            let auth = self.auth.as_ref().map(|claim| claim.id.clone());
            let handle = SessionHandle { id: self.id, outbox: outbox.clone(), auth };
            if let Err(over) =
                self.state.hub.register(&self.app.id, &self.user, handle, caps(&self.state.config))
            {
                return Box::pin(refuse_over(sink, over)).await;
            }
            crate::metrics::metrics().sessions_opened.inc();
            // Routed here before the welcome, so a `hello` sent after it misses nothing from other nodes.
            Box::pin(self.presence_opened()).await;
            // Only its text is kept: the frame would stay in the future for the session's life.
            let welcome = ServerFrame::Welcome {
                user: self.user.clone(),
                session: self.id.to_string(),
                node: self.state.node_id.clone(),
            }
            .to_text();
            // The heartbeat reaches the session through its outbox (`Wake::Tick`),
            // and at shutdown the hub cuts the sessions off one by one over the
            // drain window (`Cut::Drain`): no timer per session.
            let ticks = self.state.hub.ticks();
            let now = Instant::now();
            let mut live = LoopState {
                last_heard: now,
                strikes: 0,
                strikes_since: now,
                budget: Budget::new(now),
                tick: ticks.load(std::sync::atomic::Ordering::Acquire),
            };
            let mut closing =
                Box::pin(self.write(&mut sink, &outbox, vec![WsMessage::Text(welcome.into())])).await;
            // Live frames queued before the welcome are written by the loop; then the fan-out writes.
            outbox.go_direct();
            // The request being handled: one at a time, in order, while live
            // traffic keeps flowing to the client (its own sends must not make
            // it look like a slow consumer). A send leaves this step once
            // numbered, for `sends`: made on the first send, as idle sessions never need it.
            let mut request: Option<Pending<'_>> = None;
            let mut sends: Option<Box<Sends<'_>>> = None;
            let max_sends = self.state.config.max_inflight_sends;
            // Polled only when its own waker fired: most wake-ups are for frames to write.
            let reads = Reads::new();
            while closing.is_none() {
                let in_flight = sends.as_ref().map_or(0, |s| s.len());
                closing = tokio::select! {
                    incoming = std::future::poll_fn(|cx| reads.poll_next(&mut sink, cx)),
                        if request.is_none() && in_flight < max_sends => match incoming {
                        Some(Ok(message)) => {
                            live.last_heard = Instant::now();
                            match self.on_client(message, &mut live) {
                                Incoming::Answer(answers) => Box::pin(self.answer(answers, &mut live, &mut sink, &outbox)).await,
                                Incoming::Hello(id, resume) => {
                                    // The catch-up comes before the live frames it covers: they queue meanwhile.
                                    outbox.stop_direct();
                                    let closing = Box::pin(self.hello(id, resume, &mut live, &mut sink, &outbox)).await;
                                    outbox.go_direct();
                                    closing
                                }
                                Incoming::Request(frame) => {
                                    request = Some(Box::pin(self.on_request(frame)));
                                    None
                                }
                                Incoming::TooLarge => Box::pin(self.too_large(&mut sink, &outbox)).await,
                                Incoming::Close(closing) => closing,
                            }
                        }
                        Some(Err(e)) => Box::pin(self.on_read_error(&e, &mut sink, &outbox)).await,
                        None => Some((close::NORMAL, "")),
                    },
                    handled = async {
                        match request.as_mut() {
                            Some(pending) => pending.await,
                            None => std::future::pending().await,
                        }
                    }, if request.is_some() => {
                        request = None;
                        match handled {
                            Handled::SendAnswered(answers) if in_flight > 0 => {
                                if let Some(sends) = sends.as_mut() {
                                    sends.push_answered(answers);
                                }
                                None
                            }
                            Handled::Done(answers) | Handled::SendAnswered(answers) => {
                                Box::pin(self.answer(answers, &mut live, &mut sink, &outbox)).await
                            }
                            Handled::Persist(id, numbered) => {
                                sends.get_or_insert_with(|| Box::new(Sends::new(&self.state.chat))).push(id, numbered);
                                None
                            }
                        }
                    },
                    answers = std::future::poll_fn(|cx| match sends.as_mut() {
                        Some(sends) => sends.poll_answer(cx),
                        None => std::task::Poll::Pending,
                    }), if in_flight > 0 => Box::pin(self.answer(answers, &mut live, &mut sink, &outbox)).await,
                    wake = outbox.ready(ticks, live.tick) => match wake {
                        Wake::Cut(why) => closing_for(why),
                        Wake::Frames => {
                            let now = Timestamp::now().millis();
                            let mut frames = Vec::new();
                            let mut done = Flushed::default();
                            outbox.take_each(WRITE_BATCH, |item| {
                                done.count(&item, now);
                                frames.push(WsMessage::Text(item.into_frame().text));
                            });
                            // One atomic add per batch: every session shares these counters.
                            done.record();
                            let frames = super::lines::pack(frames, self.batch);
                            let closing = Box::pin(self.write(&mut sink, &outbox, frames)).await;
                            // Everything taken is written: if nothing is left queued, the fan-out writes.
                            outbox.go_direct();
                            closing
                        }
                        Wake::Tick(tick) => {
                            live.tick = tick;
                            Box::pin(self.on_tick(&live, &mut sink, &outbox)).await
                        }
                    },
                };
            }
            // Nothing more is written to the socket but by this task (the close follows).
            outbox.stop_direct();
            Box::pin(self.wind_up(request, sends, closing, &mut sink)).await;
            drop(slot);
        }
    }

    /// The session's end: what it had under way is carried through, then it
    /// leaves the hub and closes its socket with `closing`'s code.
    async fn wind_up<'a>(
        &'a self,
        mut request: Option<Pending<'a>>,
        mut sends: Option<Box<Sends<'a>>>,
        closing: Closing,
        sink: &mut Sink,
    ) {
        // The request under way and the sends already numbered are carried
        // through though their client will not see the answers: a send
        // dropped halfway would hold its `client_msg_id` until the claim is
        // abandoned, and one numbered would be stored but never delivered
        // live. A retry with the same `client_msg_id` gets its ack.
        let finishing = async {
            if let Some(pending) = request.take()
                && let Handled::Persist(id, numbered) = pending.await
            {
                sends.get_or_insert_with(|| Box::new(Sends::new(&self.state.chat))).push(id, numbered);
            }
            if let Some(sends) = sends.take() {
                sends.finish().await;
            }
        };
        if tokio::time::timeout(FINISH_WAIT, finishing).await.is_err() {
            tracing::warn!("a closing session's sends were not all published in time");
        }
        self.state.hub.unregister(&self.app.id, &self.user, self.id);
        count_close(closing.map(|c| c.0));
        Box::pin(self.presence_closed()).await;
        if let Some((code, reason)) = closing
            && code != close::NORMAL
        {
            let frame = CloseFrame { code, reason: Utf8Bytes::from_static(reason) };
            let closing = sink.send(WsMessage::Close(Some(frame)));
            if let Ok(Ok(())) = tokio::time::timeout(CLOSE_WAIT, closing).await {
                // Waits (briefly) for the client's close, reading what it
                // still sends: a socket closed with unread bytes is reset,
                // and the reset can destroy the close frame before the
                // client reads it (a flooding client, say).
                let _ =
                    tokio::time::timeout(CLOSE_WAIT, async { while let Some(Ok(_)) = sink.next().await {} })
                        .await;
            }
        }
        tracing::debug!(code = closing.map(|c| c.0), "session closed");
    }

    /// Writes frames in order, then flushes; a client that does not take
    /// them within `write_timeout_ms` (or overflows its outbox meanwhile) is slow.
    /// What the fan-out left unsent in the socket's wire is flushed too.
    pub(super) async fn write(&self, sink: &mut Sink, outbox: &Outbox, frames: Vec<WsMessage>) -> Closing {
        if frames.is_empty() && !outbox.has_unsent() {
            return None;
        }
        let timeout = Duration::from_millis(self.state.config.write_timeout_ms);
        let writing = async {
            for frame in frames {
                sink.feed(frame).await?;
            }
            sink.flush().await
        };
        // Biased, the write first: a write the socket takes at once (the
        // common case) never polls the timer, so it registers none.
        tokio::select! {
            biased;
            written = writing => match written {
                Ok(()) => None,
                Err(_) => Some((close::NORMAL, "")),
            },
            // Cut off meanwhile: its outbox overflowed, its secret was rotated, or the node drains.
            why = outbox.cut_off() => closing_for(why),
            () = tokio::time::sleep(timeout) => SLOW,
        }
    }

    /// Sorts one client message: answered now, a `hello`, or a request to run.
    /// Every message but a pong or a close spends the session's frame budget first.
    fn on_client(&self, message: WsMessage, live: &mut LoopState) -> Incoming {
        if !matches!(message, WsMessage::Pong(_) | WsMessage::Close(_))
            && let Err(refused) = live.budget.spend(self.state.limits.frames(), live.last_heard)
        {
            return Incoming::Answer(refused.answers(&message));
        }
        let len = match &message {
            WsMessage::Text(text) => text.len(),
            WsMessage::Binary(bytes) => bytes.len(),
            _ => 0,
        };
        if len > self.state.config.max_frame_bytes {
            return Incoming::TooLarge;
        }
        match message {
            WsMessage::Text(text) => match step(&text) {
                Step::Answer(answers) => Incoming::Answer(answers),
                Step::Hello(id, resume) => Incoming::Hello(id, resume),
                Step::Request(frame) => Incoming::Request(frame),
            },
            WsMessage::Binary(_) => {
                crate::metrics::metrics().frames_in.with_label_values(&["binary"]).inc();
                Incoming::Answer(Answers::bad(&crate::protocol::FrameError::Binary, None))
            }
            WsMessage::Close(_) => Incoming::Close(Some((close::NORMAL, ""))),
            WsMessage::Ping(_) | WsMessage::Pong(_) => Incoming::Close(None),
        }
    }

    /// Writes answers directly, ahead of queued live frames (a catch-up must
    /// precede the live traffic it covers); counts errors toward flooding.
    pub(super) async fn answer(
        &self,
        answers: Answers,
        live: &mut LoopState,
        sink: &mut Sink,
        outbox: &Outbox,
    ) -> Closing {
        let early = answers.refused_send.is_some_and(|refused| live.budget.send_refused(refused));
        let strikes = answers.strikes + u32::from(early);
        if strikes > 0 && self.strike(live, strikes) {
            return Some((close::FLOODING, "too many bad frames: back off"));
        }
        let m = crate::metrics::metrics();
        let frames = answers
            .frames
            .into_iter()
            .map(|f| {
                m.frames_out.with_label_values(&[f.kind()]).inc();
                WsMessage::Text(f.to_text().into())
            })
            .collect();
        self.write(sink, outbox, frames).await
    }

    /// Counts error answers; true when the client floods.
    fn strike(&self, live: &mut LoopState, strikes: u32) -> bool {
        if live.strikes_since.elapsed() > FLOOD_WINDOW {
            live.strikes = 0;
            live.strikes_since = Instant::now();
        }
        live.strikes = live.strikes.saturating_add(strikes);
        live.strikes > self.state.config.max_bad_frames
    }

    /// A read failed: a frame far over the limit (past the slack) gets its
    /// error before the close, as far as the socket still carries it; a text
    /// frame that is not UTF-8 gets 1007.
    async fn on_read_error(&self, e: &axum::Error, sink: &mut Sink, outbox: &Outbox) -> Closing {
        match std::error::Error::source(e).and_then(|s| s.downcast_ref::<tungstenite::Error>()) {
            Some(tungstenite::Error::Capacity(_)) => self.too_large(sink, outbox).await,
            Some(tungstenite::Error::Utf8(_)) => Some((close::INVALID_PAYLOAD, "text frame is not UTF-8")),
            _ => Some((close::NORMAL, "")),
        }
    }

    /// Refuses a frame over `max_frame_bytes`: the error, then the close (1009).
    async fn too_large(&self, sink: &mut Sink, outbox: &Outbox) -> Closing {
        let error = crate::protocol::FrameError::TooLarge(self.state.config.max_frame_bytes);
        let frame = ServerFrame::from_frame_error(&error, None);
        self.write(sink, outbox, vec![WsMessage::Text(frame.to_text().into())]).await;
        Some((close::MESSAGE_TOO_BIG, "frame too large"))
    }

    /// The heartbeat: ping a quiet client, close a silent one or one whose token expired.
    async fn on_tick(&self, live: &LoopState, sink: &mut Sink, outbox: &Outbox) -> Closing {
        match self.expiry.due(Timestamp::now()) {
            Due::Expired => {
                return Some((close::TOKEN_EXPIRED, "token expired: get a new one, then reconnect"));
            }
            Due::Notice(expires_at) => {
                let frame = ServerFrame::TokenExpiring { expires_at };
                crate::metrics::metrics().frames_out.with_label_values(&[frame.kind()]).inc();
                let notice = vec![WsMessage::Text(frame.to_text().into())];
                if let Some(closing) = self.write(sink, outbox, notice).await {
                    return Some(closing);
                }
            }
            Due::Nothing => {}
        }
        let quiet = live.last_heard.elapsed();
        if quiet >= Duration::from_millis(self.state.config.idle_timeout_ms) {
            return Some((close::IDLE_TIMEOUT, "idle timeout: reconnect and resync"));
        }
        if quiet >= Duration::from_millis(self.state.config.heartbeat_ms) {
            return self.write(sink, outbox, vec![WsMessage::Ping(Default::default())]).await;
        }
        None
    }

    /// Registers the session with the fabric and, when the user was offline
    /// everywhere, announces them online.
    async fn presence_opened(&self) {
        let announce = self.state.hub.presence().opened(&self.app.id, &self.user);
        let chat = self.state.chat.clone();
        let chats = match chat.chats_of(&self.app.id, &self.user).await {
            Ok(chats) => chats,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the user's chats; routing by user only");
                Vec::new()
            }
        };
        let first = chat.fabric().session_opened(&self.app.id, &self.user, chats).await;
        chat.notify_session(&self.app.id, &self.user, &self.state.node_id, true);
        if announce && first {
            let (app, user) = (self.app.id.clone(), self.user.clone());
            tokio::spawn(async move {
                if let Err(e) = chat.announce_presence(&app, &user, true).await {
                    tracing::warn!(error = %e, "cannot announce presence");
                }
            });
        }
    }

    /// Unregisters the session and, after the debounce, announces the user
    /// offline unless a session of theirs opened meanwhile (on any node).
    async fn presence_closed(&self) {
        let chat = self.state.chat.clone();
        chat.fabric().session_closed(&self.app.id, &self.user).await;
        chat.notify_session(&self.app.id, &self.user, &self.state.node_id, false);
        let presence = self.state.hub.presence().clone();
        let Some(pending) = presence.closed(&self.app.id, &self.user) else {
            return;
        };
        let (app, user) = (self.app.id.clone(), self.user.clone());
        let debounce = Duration::from_millis(self.state.config.presence_debounce_ms);
        let shutdown = self.state.shutdown.clone();
        // A draining cluster node waits the debounce out (`Presence::settled`):
        // its users may be watched from other nodes, and may reconnect there
        // meanwhile. A lone node's watchers all close with it.
        let elsewhere = chat.fabric().spans_nodes();
        presence.clone().spawn_pending(async move {
            tokio::select! {
                () = tokio::time::sleep(debounce) => {}
                () = shutdown.cancelled(), if !elsewhere => return,
            }
            if !presence.settle(&app, &user, pending) || chat.fabric().is_online(&app, &user).await {
                return;
            }
            if let Err(e) = chat.announce_presence(&app, &user, false).await {
                tracing::warn!(error = %e, "cannot announce presence");
            }
        });
    }
}

/// Counts a closed session by why it closed.
fn count_close(code: Option<u16>) {
    let m = crate::metrics::metrics();
    let reason = match code {
        Some(close::MESSAGE_TOO_BIG) => "frame_too_large",
        Some(close::INVALID_PAYLOAD) => "invalid_payload",
        Some(close::SERVICE_RESTART) => "drain",
        Some(close::TOKEN_EXPIRED) => "token_expired",
        Some(close::FLOODING) => "flooding",
        Some(close::SLOW_CONSUMER) => {
            m.slow_consumer_disconnects.inc();
            "slow_consumer"
        }
        Some(close::IDLE_TIMEOUT) => "idle_timeout",
        _ => "normal",
    };
    m.sessions_closed.with_label_values(&[reason]).inc();
}
