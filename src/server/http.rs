//! The HTTP accept loop: hyper's HTTP/1 with the bounds `axum::serve` leaves out.
//!
//! A connection that is not (yet) a WebSocket holds a file descriptor, a task and
//! a read buffer, and a client that sends nothing keeps them forever unless the
//! server ends it. Here:
//! - a request head is at most `server.max_header_bytes` and 100 header fields
//!   (431 and close past either);
//! - a new connection must deliver a complete request head within
//!   `server.header_read_timeout_ms`, and a keep-alive connection must start
//!   (and finish) its next head within `server.idle_timeout_ms` of the last
//!   response, or it is closed;
//! - at most `server.max_pending_connections` such connections are open at once,
//!   counted from accept until the connection ends or is upgraded to a WebSocket
//!   (sessions have their own cap, `gateway.max_connections`); past it a new
//!   connection gets a 503 `overloaded` and is closed at once.
//!
//! hyper's own `header_read_timeout` (1.12) restarts with one duration every time
//! a connection goes idle, so it cannot tell a slow head from a quiet keep-alive;
//! one timer per connection does both here. It is re-armed only when it fires
//! (the deadline can only move later), never per request. The body of a request
//! is not timed: its size is bounded by `server.max_body_bytes`.
//!
//! With `server.tls_cert_file` set the listener speaks TLS ([`super::tls`]): the
//! handshake must finish within the header-read bound too, and a connection whose
//! first byte is not a TLS handshake (plain HTTP sent to an HTTPS port) gets a
//! plain-text 400 `tls_required` and is closed.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::Response;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::plain::Plain;
use super::tls::ServerTls;
use crate::config::ServerConfig;
use crate::delivery::Wire;

/// The least read buffer hyper accepts (`max_buf_size` panics below it).
const MIN_BUFFER: usize = 8192;

/// The bounds on connections that are not WebSockets, from `[server]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct HttpLimits {
    header_read: Duration,
    idle: Duration,
    max_header_bytes: usize,
    max_pending: usize,
}

impl HttpLimits {
    pub(super) fn new(config: &ServerConfig) -> Self {
        Self {
            header_read: Duration::from_millis(config.header_read_timeout_ms),
            idle: Duration::from_millis(config.idle_timeout_ms),
            max_header_bytes: config.max_header_bytes,
            max_pending: config.max_pending_connections,
        }
    }
}

/// Serves `router` on `listener` until `stop` fires, then stops accepting, lets
/// every connection finish its request in flight (idle ones close at once) and
/// returns when all have ended. Upgraded WebSockets are not waited for: the hub
/// drains them.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<ServerTls>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The per-connection timer below replaces it (see the module doc).
        .header_read_timeout(None)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUFFER));
    let builder = Arc::new(builder);
    let pending = Arc::new(Semaphore::new(limits.max_pending));
    let overloaded = overloaded_response();
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
            refuse(&stream, &overloaded);
            continue;
        };
        // No Nagle: a small frame (an ack, a message) written while an earlier
        // one is unacknowledged would wait for the client's delayed ACK, up to
        // 40 ms on Linux. Writes are already gathered per wake-up.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let conn = Conn { builder: Arc::clone(&builder), router: router.clone(), limits, stop: stop.clone() };
        match &tls {
            None => connections.spawn(conn.run_plain(stream, permit)),
            Some(tls) => connections.spawn(conn.run_tls(stream, tls.clone(), permit)),
        };
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Errors that concern one connection are skipped; others (out of file
/// descriptors) would repeat at once, so the loop pauses as hyper 0.14 did.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Answers a connection past the pending cap without reading from it or
/// waiting for it, and closes it.
fn refuse(stream: &TcpStream, overloaded: &[u8]) {
    crate::metrics::metrics().rate_limited.with_label_values(&["http_connection"]).inc();
    tracing::debug!("connection refused: too many pending connections");
    // A fresh socket's send buffer takes these few bytes; if not, the close says enough.
    let _ = stream.try_write(overloaded);
}

/// What answers plain HTTP sent to the HTTPS listener: 400 `tls_required` to any
/// request, then the connection closes.
fn tls_required_router() -> Router {
    Router::new().fallback(|| async {
        let body = serde_json::json!({"error": {
            "code": "tls_required",
            "message": "this port serves https and wss: use https:// or wss://",
        }});
        (axum::http::StatusCode::BAD_REQUEST, [(axum::http::header::CONNECTION, "close")], axum::Json(body))
    })
}

fn overloaded_response() -> Vec<u8> {
    let body = r#"{"error":{"code":"overloaded","message":"too many connections waiting for a request; retry later"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What one connection's task needs.
struct Conn {
    builder: Arc<http1::Builder>,
    router: Router,
    limits: HttpLimits,
    stop: CancellationToken,
}

/// The first byte of a TLS record carrying a handshake (RFC 8446, 5.1).
const TLS_HANDSHAKE: u8 = 0x16;

impl Conn {
    /// Serves a plain connection as [`Conn::run`] does, its write side shared
    /// with the WebSocket session it may become (`delivery::wire`).
    async fn run_plain(self, stream: TcpStream, permit: OwnedSemaphorePermit) {
        let plain = Plain::new(stream);
        let wire = plain.wire();
        self.run(plain, Some(wire), permit).await;
    }

    /// Completes the TLS handshake within the header-read bound, then serves the
    /// connection as [`Conn::run`] does.
    async fn run_tls(self, stream: TcpStream, tls: ServerTls, permit: OwnedSemaphorePermit) {
        let handshake = async {
            let mut first = [0u8; 1];
            match stream.peek(&mut first).await {
                Ok(1) if first[0] == TLS_HANDSHAKE => {}
                Ok(1) => return Err(stream),
                _ => return Ok(None),
            }
            match tls.acceptor().accept(stream).await {
                Ok(stream) => Ok(Some(stream)),
                Err(e) => {
                    tracing::debug!(error = %e, "tls handshake failed");
                    Ok(None)
                }
            }
        };
        match tokio::time::timeout(self.limits.header_read, handshake).await {
            Ok(Ok(Some(stream))) => self.run(stream, None, permit).await,
            Ok(Ok(None)) => {}
            Ok(Err(plain)) => {
                tracing::debug!("plain http on the https listener: answered tls_required");
                Conn { router: tls_required_router(), ..self }.run(plain, None, permit).await;
            }
            Err(_) => tracing::debug!("tls handshake timed out"),
        }
    }

    /// Serves the connection until it ends, times out or is upgraded; the
    /// permit counts it as pending until then. Its requests carry `wire`, if any.
    async fn run<S>(self, stream: S, wire: Option<Arc<Wire>>, permit: OwnedSemaphorePermit)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let service = Tracked { router: self.router, activity: Arc::clone(&activity), wire };
        let conn = self.builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let mut expired = std::pin::pin!(activity.expired(self.limits));
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "http connection ended");
                    }
                    break;
                }
                // Nothing is in flight: dropping the connection closes the socket.
                () = &mut expired => {
                    tracing::debug!("http connection timed out");
                    break;
                }
                () = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        drop(permit);
    }
}

/// When a connection last changed between idle and busy.
struct Activity {
    state: Mutex<Phase>,
}

struct Phase {
    /// Requests whose response has not been written whole.
    in_flight: u32,
    /// No request yet: the first head is due within the header-read bound.
    fresh: bool,
    /// Accepted, or the last response written.
    since: Instant,
}

impl Activity {
    fn new() -> Self {
        Self { state: Mutex::new(Phase { in_flight: 0, fresh: true, since: Instant::now() }) }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut phase = self.phase();
        phase.in_flight += 1;
        phase.fresh = false;
        Busy(Arc::clone(self))
    }

    /// Resolves once the connection has been idle past its bound.
    async fn expired(&self, limits: HttpLimits) {
        let mut at = self.phase().since + limits.header_read;
        loop {
            tokio::time::sleep_until(at).await;
            match self.next_check(limits, Instant::now()) {
                Some(later) => at = later,
                None => return,
            }
        }
    }

    /// When to look again, or `None` if the connection is past its bound. A busy
    /// connection cannot expire before `now + idle` (the bound starts when its
    /// response is written, which is later).
    fn next_check(&self, limits: HttpLimits, now: Instant) -> Option<Instant> {
        let phase = self.phase();
        if phase.in_flight > 0 {
            return Some(now + limits.idle);
        }
        let deadline = phase.since + if phase.fresh { limits.header_read } else { limits.idle };
        (deadline > now).then_some(deadline)
    }
}

/// A request in flight, until its response body is written (or dropped).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        phase.in_flight = phase.in_flight.saturating_sub(1);
        phase.since = Instant::now();
    }
}

/// The router as a hyper service that marks the connection busy per request.
#[derive(Clone)]
struct Tracked {
    router: Router,
    activity: Arc<Activity>,
    /// The connection's write side, when plain: a WebSocket upgrade shares it with the fan-out.
    wire: Option<Arc<Wire>>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for Tracked {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        use tower_service::Service as _;
        if let Some(wire) = &self.wire {
            request.extensions_mut().insert(Arc::clone(wire));
        }
        let busy = self.activity.begin();
        let response = self.router.clone().call(request.map(Body::new));
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Body::new(Guarded { body, _busy: busy })))
        })
    }
}

/// A response body that keeps its connection busy until hyper has written it.
struct Guarded {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_header_bytes: 16384,
            max_pending: 1,
        }
    }

    #[test]
    fn a_fresh_connection_has_the_header_read_bound_then_the_idle_one() {
        let secs = Duration::from_secs;
        let activity = Arc::new(Activity::new());
        let start = activity.phase().since;
        assert_eq!(activity.next_check(limits(), start), Some(start + secs(10)));
        assert_eq!(activity.next_check(limits(), start + secs(10)), None);
        // A request in flight never expires; it is looked at again an idle bound later.
        let busy = activity.begin();
        let later = start + secs(30);
        assert_eq!(activity.next_check(limits(), later), Some(later + secs(60)));
        drop(busy);
        // Then the idle bound runs from the end of the response.
        let idle_since = activity.phase().since;
        assert!(idle_since >= start);
        assert_eq!(activity.next_check(limits(), idle_since + secs(10)), Some(idle_since + secs(60)));
        assert_eq!(activity.next_check(limits(), idle_since + secs(60)), None);
    }
}
