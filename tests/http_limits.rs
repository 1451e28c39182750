//! The edges of the HTTP layer, over raw TCP: a slow or silent client cannot
//! hold a connection past `server.header_read_timeout_ms`, an idle keep-alive
//! is closed after `server.idle_timeout_ms`, a refused WebSocket handshake closes
//! its connection, request heads are bounded, and past
//! `server.max_pending_connections` a new connection is refused at once. A
//! `weft` process under 200 unfinished 390 KB headers keeps its memory.
//! Plus the smaller edges: the admin key is checked before the body, chat and
//! message numbers have one spelling, and `welcome` does not carry the pid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::server::{Mode, TestServer, code};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a test waits for something the server should do in well under a second.
const PATIENCE: Duration = Duration::from_secs(10);

async fn connect(s: &TestServer) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes (end of stream or reset); panics after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("the connection is still open after {limit:?}"));
    got
}

/// Reads one response (head and `content-length` body) off a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                if got.len() >= end + 4 + length {
                    return text;
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before a whole response: {text}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("no response")
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: weft\r\n\r\n";

#[tokio::test]
async fn slow_and_silent_clients_are_closed_after_the_header_read_bound() {
    let mode = Mode::Embedded;
    let bound = Duration::from_millis(300);
    let s = TestServer::start_with(mode, |c| {
        c.server.header_read_timeout_ms = 300;
        c.server.idle_timeout_ms = 60_000;
    })
    .await;
    // A silent connection.
    let started = Instant::now();
    let mut silent = connect(&s).await;
    let got = read_until_closed(&mut silent, PATIENCE).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(started.elapsed() >= bound, "closed before the bound: {:?}", started.elapsed());

    // Slowloris: a head that never ends, one byte at a time, keeps nothing open either.
    let started = Instant::now();
    let mut slow = connect(&s).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: weft\r\nx-slow: ").await.unwrap();
    let (mut reader, mut writer) = slow.into_split();
    let drip = tokio::spawn(async move {
        while writer.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let read = async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("the slow head is still being read after 10 s");
    assert!(started.elapsed() >= bound);
    drip.abort();

    // A client that finishes its head in time is served.
    let mut prompt = connect(&s).await;
    prompt.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut prompt).await.starts_with("HTTP/1.1 200"));
    s.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_is_closed_after_the_idle_bound() {
    let mode = Mode::Embedded;
    let idle = Duration::from_millis(1_500);
    let s = TestServer::start_with(mode, |c| {
        c.server.header_read_timeout_ms = 300;
        c.server.idle_timeout_ms = 1_500;
    })
    .await;
    let mut conn = connect(&s).await;
    conn.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    // The connection is kept alive: a second request on it is answered.
    let sent = Instant::now();
    conn.write_all(HEALTHZ).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    // Then it stays open for the idle bound (not the shorter header-read one), and no longer.
    let got = read_until_closed(&mut conn, PATIENCE).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(sent.elapsed() >= idle, "closed after {:?}, before the idle bound", sent.elapsed());
    s.stop().await;
}

#[tokio::test]
async fn a_refused_upgrade_closes_its_connection() {
    let mode = Mode::Embedded;
    // Long bounds: only the refusal itself may close these connections.
    let s = TestServer::start_with(mode, |c| {
        c.server.header_read_timeout_ms = 60_000;
        c.server.idle_timeout_ms = 60_000;
    })
    .await;
    for query in ["", "?token=not.a.token"] {
        let mut conn = connect(&s).await;
        let request = format!(
            "GET /ws{query} HTTP/1.1\r\nhost: weft\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
             sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        conn.write_all(request.as_bytes()).await.unwrap();
        let got = String::from_utf8(read_until_closed(&mut conn, PATIENCE).await).unwrap();
        assert!(got.starts_with("HTTP/1.1 401"), "{got}");
        assert!(got.to_ascii_lowercase().contains("connection: close"), "{got}");
        assert!(got.contains("invalid_token"), "{got}");
    }
    s.stop().await;
}

#[tokio::test]
async fn request_heads_are_bounded() {
    let mode = Mode::Embedded;
    let s = TestServer::start(mode).await;
    let limit = s_limit();
    // Under the limit: served.
    let mut conn = connect(&s).await;
    let big = format!("GET /healthz HTTP/1.1\r\nhost: weft\r\nx-big: {}\r\n\r\n", "a".repeat(limit - 1024));
    conn.write_all(big.as_bytes()).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    // Exactly the limit without an end (so the server reads every byte and
    // closes cleanly): 431 and closed.
    let mut conn = connect(&s).await;
    let mut head = b"GET /healthz HTTP/1.1\r\nhost: weft\r\nx-big: ".to_vec();
    head.resize(limit, b'a');
    conn.write_all(&head).await.unwrap();
    let got = String::from_utf8(read_until_closed(&mut conn, PATIENCE).await).unwrap();
    assert!(got.starts_with("HTTP/1.1 431"), "{got}");
    s.stop().await;
}

/// The default `server.max_header_bytes`.
fn s_limit() -> usize {
    weft::config::Config::default().server.max_header_bytes
}

/// Sends a request whose body never comes, with `expect: 100-continue`, and
/// waits for the `100 Continue`: the server has then accepted the connection and
/// runs its request, so it holds a pending slot until the client hangs up.
async fn held(s: &TestServer) -> TcpStream {
    let mut conn = connect(s).await;
    let request = "POST /api/v1/applications HTTP/1.1\r\nhost: weft\r\ncontent-type: application/json\r\n\
                   content-length: 20\r\nexpect: 100-continue\r\n\r\n";
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, conn.read(&mut buf)).await.expect("no 100 Continue").unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&got));
    conn
}

async fn healthz_on_a_fresh_connection(s: &TestServer) -> String {
    let mut conn = connect(s).await;
    // A refused connection may be closed before the request is written.
    let _ = conn.write_all(HEALTHZ).await;
    String::from_utf8_lossy(&read_until_closed_or_answered(&mut conn).await).to_string()
}

/// Reads a first response (or whatever comes before the close).
async fn read_until_closed_or_answered(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if got.windows(4).any(|w| w == b"\r\n\r\n") && got.ends_with(b"}") {
                return;
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.expect("neither an answer nor a close");
    got
}

#[tokio::test]
async fn past_the_pending_cap_new_connections_are_refused() {
    let mode = Mode::Embedded;
    let s = TestServer::start_with(mode, |c| {
        c.server.max_pending_connections = 3;
        c.server.header_read_timeout_ms = 300;
        c.server.idle_timeout_ms = 300;
    })
    .await;
    // Fill the cap with connections that are certainly counted (and stay so).
    let holders = [held(&s).await, held(&s).await, held(&s).await];
    // A further silent connection is answered 503 `overloaded` and closed at once.
    let mut silent = connect(&s).await;
    let got = String::from_utf8(read_until_closed(&mut silent, PATIENCE).await).unwrap();
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    assert!(got.contains("overloaded"), "{got}");
    // The hung-up holders free their slots: /healthz answers again.
    drop(holders);
    let deadline = Instant::now() + PATIENCE;
    while !healthz_on_a_fresh_connection(&s).await.starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "/healthz still refused after the holders left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Silent sockets filling the cap free it after the header-read bound, so
    // /healthz on a fresh connection answers again (without a bound they
    // would hold the cap, and the node, forever).
    let mut silent: Vec<TcpStream> = Vec::new();
    for _ in 0..6 {
        silent.push(connect(&s).await);
    }
    let deadline = Instant::now() + PATIENCE;
    while !healthz_on_a_fresh_connection(&s).await.starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "/healthz still refused 10 s after the silent sockets came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for conn in &mut silent {
        read_until_closed(conn, PATIENCE).await;
    }
    s.stop().await;
}

// The smaller edges of the REST surface.

#[tokio::test]
async fn the_admin_key_is_checked_before_the_body_is_read() {
    let s = TestServer::start_with(Mode::Embedded, |c| c.server.admin_key = "k3y-for-tests".into()).await;
    let url = s.url("/api/v1/applications");
    let bad = s.http.post(&url).header("content-type", "application/json").body("{not json");
    let (status, body) = s.send(bad).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    let huge = s.http.post(&url).json(&json!({"name": "x".repeat(100_000)}));
    let (status, body) = s.send(huge).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"), "{body}");
    let wrong = s.http.post(&url).bearer_auth("nope").header("content-type", "text/plain").body("x");
    let (status, body) = s.send(wrong).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    // With the key, the body is checked.
    let keyed = s.http.post(&url).bearer_auth("k3y-for-tests").header("content-type", "application/json");
    let (status, body) = s.send(keyed.body("{not json")).await;
    assert_eq!((status, code(&body)), (400, "malformed_json"), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn chat_and_message_numbers_have_one_spelling() {
    let s = TestServer::start(Mode::Embedded).await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    assert_eq!(chat, 1);
    let app = format!("/api/v1/applications/{token}");
    let (status, body) = s.post(&format!("{app}/chats/1/messages"), json!({"body": "hi"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(s.get(&format!("{app}/chats/1")).await.0, 200);
    assert_eq!(s.get(&format!("{app}/chats/1/messages/1")).await.0, 200);
    // RFC 3986 §6.2.2.2: a percent-encoded digit is the digit.
    assert_eq!(s.get(&format!("{app}/chats/%31")).await.0, 200);
    assert_eq!(s.get(&format!("{app}/chats/1/messages/%31")).await.0, 200);
    for alias in ["+1", "%2B1", "01", "001", "1.0", "%201"] {
        let (status, body) = s.get(&format!("{app}/chats/{alias}")).await;
        assert_eq!((status, code(&body)), (404, "chat_not_found"), "{alias}: {body}");
        let (status, body) = s.get(&format!("{app}/chats/{alias}/messages")).await;
        assert_eq!((status, code(&body)), (404, "chat_not_found"), "{alias}: {body}");
        let (status, body) = s.get(&format!("{app}/chats/1/messages/{alias}")).await;
        assert_eq!((status, code(&body)), (404, "message_not_found"), "{alias}: {body}");
    }
    s.stop().await;
}

#[tokio::test]
async fn welcome_names_the_node_without_its_process_id() {
    let s = TestServer::start(Mode::Embedded).await;
    let token = s.new_app().await;
    let client = common::ws::connect(&s, &token, "alice").await;
    let node = client.welcome["node"].as_str().unwrap().to_owned();
    assert_ne!(node, format!("node-{}", std::process::id()));
    let hex = node.strip_prefix("node-").unwrap_or_else(|| panic!("{node}"));
    assert!(hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{node}");
    // Made once per node: every session sees the same.
    let again = common::ws::connect(&s, &token, "bob").await;
    assert_eq!(again.welcome["node"], Value::String(node));
    client.close().await;
    again.close().await;
    s.stop().await;
}

// A separate process under a slow-header attack.

/// The `weft` binary, alone (embedded store), with short header bounds.
struct Process {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Process {
    fn start() -> Process {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = common::process::weft_command();
        cmd.env("RUST_LOG", "info")
            .env("WEFT_LOG_FORMAT", "json")
            .env("WEFT_SERVER_LISTEN", "127.0.0.1:0")
            .env("WEFT_SERVER_HEADER_READ_TIMEOUT_MS", "2000")
            .env("WEFT_STORE_DATA_DIR", dir.path());
        let (child, addr) = common::process::serve(cmd);
        Process { child, addr, _dir: dir }
    }

    /// Resident memory, in KiB.
    fn rss_kib(&self) -> u64 {
        common::process::rss_kib(self.child.id())
    }

    async fn healthz(&self) -> String {
        let mut conn = TcpStream::connect(&self.addr).await.unwrap();
        conn.write_all(HEALTHZ).await.unwrap();
        String::from_utf8_lossy(&read_until_closed_or_answered(&mut conn).await).to_string()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_large_headers_do_not_pin_a_process_s_memory() {
    const CONNECTIONS: usize = 200;
    const HEADER: usize = 390 * 1024;
    // Unbounded, 200 x 390 KB would pin ~78 MB; the bound keeps ~16 KiB each.
    const MARGIN_KIB: u64 = 30 * 1024;
    let node = Process::start();
    for _ in 0..20 {
        assert!(node.healthz().await.starts_with("HTTP/1.1 200"));
    }
    let baseline = node.rss_kib();
    let mut attackers = Vec::new();
    for _ in 0..CONNECTIONS {
        let addr = node.addr.clone();
        attackers.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(&addr).await.unwrap();
            let mut head = b"GET /healthz HTTP/1.1\r\nhost: weft\r\nx-pad: ".to_vec();
            head.resize(HEADER, b'a');
            // The server stops reading at its bound; the rest may not be taken.
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.write_all(&head)).await;
            // Never finished: wait for the server to close it.
            let mut buf = [0u8; 1024];
            let closed = async {
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(30), closed).await.is_ok()
        }));
    }
    let mut closed = 0;
    for attacker in attackers {
        closed += usize::from(attacker.await.unwrap());
    }
    assert_eq!(closed, CONNECTIONS, "some unfinished heads were still open after 30 s");
    // Memory returns to the allocator's pools once the connections end; allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rss = node.rss_kib();
        if rss <= baseline + MARGIN_KIB {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RSS {rss} KiB stays above the baseline {baseline} KiB + {MARGIN_KIB} KiB"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(node.healthz().await.starts_with("HTTP/1.1 200"));
}
