//! A WebSocket client for the real-time tests (tokio-tungstenite), and the REST
//! calls that set up users and chats for them.

/// Runs each `scenario(Mode)`, which starts its own server with the config it
/// needs, once per mode, as two tests (`configured::embedded::x`, `configured::cluster::x`).
/// The calling test file imports `Mode`.
macro_rules! on_both_modes_configured {
    ($($scenario:ident),* $(,)?) => {
        mod configured {
            mod embedded {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $scenario() {
                        super::super::$scenario(super::super::Mode::Embedded).await;
                    }
                )*
            }
            mod cluster {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $scenario() {
                        super::super::$scenario(super::super::Mode::Cluster).await;
                    }
                )*
            }
        }
    };
}

/// Like [`on_both_modes_configured`], plus `configured::spread::x` on three
/// nodes with the clients spread over them (for behaviour that must hold
/// cluster-wide; the per-node limits run on the first two modes only).
macro_rules! on_all_modes_configured {
    ($($scenario:ident),* $(,)?) => {
        on_both_modes_configured!($($scenario),*);
        mod spread_configured {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Mode::Spread).await;
                }
            )*
        }
    };
}

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::server::TestServer;

/// A client socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for one frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// How long a client listens to conclude that nothing was sent to it.
pub const QUIET: Duration = Duration::from_millis(300);

/// A connected client that has read its `welcome`.
pub struct Client {
    /// The socket, for tests that read raw WebSocket messages.
    pub ws: Socket,
    /// The `welcome` frame.
    pub welcome: Value,
}

impl Client {
    /// Connects with a user token and reads the `welcome`.
    pub async fn connect(s: &TestServer, jwt: &str) -> Client {
        let mut client = Client { ws: open(s, jwt).await, welcome: Value::Null };
        let welcome = client.next_any().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        client.welcome = welcome;
        client
    }

    /// Sends a JSON text frame.
    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Ws::text(frame.to_string())).await.unwrap();
    }

    /// Sends any WebSocket message.
    pub async fn send_raw(&mut self, msg: Ws) {
        self.ws.send(msg).await.unwrap();
    }

    /// The next text frame but `presence` (which arrives whenever a chat
    /// partner connects) and `member_joined` (whenever the backend adds a
    /// member to a chat of the user), within [`FRAME_WAIT`].
    pub async fn next(&mut self) -> Value {
        self.next_before(Instant::now() + FRAME_WAIT, false).await.expect("no frame within 10 s")
    }

    /// The next text frame of any type, within [`FRAME_WAIT`]; pings and pongs are skipped.
    pub async fn next_any(&mut self) -> Value {
        self.next_before(Instant::now() + FRAME_WAIT, true).await.expect("no frame within 10 s")
    }

    /// The next text frame (but `presence` and `member_joined` unless asked
    /// for) before `deadline`, if any.
    pub async fn next_before(&mut self, deadline: Instant, with_presence: bool) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()?;
            match msg.expect("the socket closed").unwrap() {
                Ws::Text(text) => {
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    if with_presence || (frame["type"] != "presence" && frame["type"] != "member_joined") {
                        return Some(frame);
                    }
                }
                Ws::Ping(_) | Ws::Pong(_) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame that answers request `id` (an `ack`, `messages` or
    /// `error`), skipping live traffic meanwhile.
    pub async fn answer(&mut self, id: &Value) -> Value {
        loop {
            let frame = self.next().await;
            if frame.get("id") == Some(id) && frame["type"] != "message" {
                return frame;
            }
        }
    }

    /// Asserts that nothing but `presence` was queued for this client before
    /// now, with a positive signal instead of a wait: a message posted now to
    /// a chat of the client's user alone must be its next frame, since a
    /// session's frames leave in the order they were queued. (Frames still in
    /// flight from another node are not covered: across nodes use [`Self::nothing`].)
    pub async fn nothing_queued(&mut self, s: &TestServer, token: &str) {
        let user = self.welcome["user"].as_str().expect("the welcome names the user").to_owned();
        let chat = chat_with(s, token, &[&user]).await;
        let body = format!("marker-{:08x}", rand::random::<u32>());
        let seq = post(s, token, chat, &body).await;
        assert_message(&self.next().await, chat, seq, &body);
    }

    /// Asserts that no frame but `presence` (or `member_joined`) arrives for [`QUIET`].
    pub async fn nothing(&mut self) {
        self.quiet(true).await;
    }

    /// Asserts that no frame at all (not even `presence`) arrives for [`QUIET`].
    pub async fn silent(&mut self) {
        self.quiet(false).await;
    }

    async fn quiet(&mut self, presence_allowed: bool) {
        self.quiet_until(Instant::now() + QUIET, presence_allowed).await;
    }

    /// Asserts that no frame (but `presence` when allowed) arrives before `deadline`.
    pub async fn quiet_until(&mut self, deadline: Instant, presence_allowed: bool) {
        loop {
            let Ok(msg) = tokio::time::timeout_at(deadline, self.ws.next()).await else {
                return;
            };
            match msg {
                Some(Ok(Ws::Ping(_) | Ws::Pong(_))) => {}
                Some(Ok(Ws::Text(text)))
                    if presence_allowed
                        && (text.contains(r#""type":"presence""#)
                            || text.contains(r#""type":"member_joined""#)) => {}
                other => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Reads until the server's Close frame and returns its code, with the
    /// text frames that came before it.
    pub async fn close_code(&mut self) -> (u16, Vec<Value>) {
        close_code(&mut self.ws).await
    }

    /// Sends `frame` and returns its answer, which must be the next frame (but presence).
    pub async fn request(&mut self, frame: Value) -> Value {
        let id = frame["id"].clone();
        self.send(frame).await;
        let answer = self.next().await;
        assert_eq!(answer["id"], id, "expected the answer to request {id} first, got {answer}");
        answer
    }

    /// Sends `frame`; returns its answer and the frames (but presence) that came before it.
    pub async fn request_collect(&mut self, frame: Value) -> (Value, Vec<Value>) {
        let id = frame["id"].clone();
        self.send(frame).await;
        let mut before = Vec::new();
        loop {
            let next = self.next().await;
            if next["id"] == id && next["type"] != "message" {
                return (next, before);
            }
            before.push(next);
        }
    }

    /// Reads until the `message` numbered `seq` of `chat`; returns the frames (but presence) before it.
    pub async fn until_message(&mut self, chat: u64, seq: u64) -> Vec<Value> {
        let mut before = Vec::new();
        loop {
            let next = self.next().await;
            if next["type"] == "message" && next["chat"] == chat && next["seq"] == seq {
                return before;
            }
            before.push(next);
        }
    }

    /// Closes the socket and waits until the server has answered or hung up.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let drain = async { while let Some(Ok(_)) = self.ws.next().await {} };
        let _ = tokio::time::timeout(FRAME_WAIT, drain).await;
    }
}

/// Connects `user` of application `token`.
pub async fn connect(s: &TestServer, token: &str, user: &str) -> Client {
    Client::connect(s, &user_token(s, token, user).await).await
}

/// Opens a socket with a user token without reading anything.
pub async fn open(s: &TestServer, jwt: &str) -> Socket {
    let url = format!("{}/ws?token={jwt}", s.ws_base());
    let (ws, _) = connect_async(url).await.unwrap();
    ws
}

/// Reads `ws` until the server's Close frame and returns its code, with the
/// text frames that came before it.
pub async fn close_code(ws: &mut Socket) -> (u16, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let msg = tokio::time::timeout(FRAME_WAIT, ws.next()).await.expect("no close frame within 10 s");
        match msg {
            Some(Ok(Ws::Close(Some(frame)))) => return (u16::from(frame.code), before),
            Some(Ok(Ws::Text(text))) => before.push(serde_json::from_str(&text).unwrap()),
            Some(Ok(Ws::Ping(_) | Ws::Pong(_))) => {}
            other => panic!("expected a close frame with a code, got {other:?} after {before:?}"),
        }
    }
}

/// Mints a user token through the REST API.
pub async fn user_token(s: &TestServer, token: &str, user: &str) -> String {
    let url = s.url(&format!("/api/v1/applications/{token}/users/{user}/tokens"));
    let (status, body) = s.send(s.http.post(url).json(&json!({}))).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Adds `user` to `chat` through the REST API.
pub async fn join(s: &TestServer, token: &str, chat: u64, user: &str) {
    let url = s.url(&format!("/api/v1/applications/{token}/chats/{chat}/members/{user}"));
    assert_eq!(s.send(s.http.put(url)).await.0, 204);
}

/// Creates a chat with these members and returns its number.
pub async fn chat_with(s: &TestServer, token: &str, members: &[&str]) -> u64 {
    let chat = s.new_chat(token).await;
    for user in members {
        join(s, token, chat, user).await;
    }
    chat
}

/// Posts a message through the REST API and returns its number.
pub async fn post(s: &TestServer, token: &str, chat: u64, body: &str) -> u64 {
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    let (status, message) = s.post(&path, json!({ "body": body })).await;
    assert_eq!(status, 201, "{message}");
    message["number"].as_u64().unwrap()
}

/// A `send` frame to a chat.
pub fn send(id: u64, chat: u64, body: &str, client_msg_id: &str) -> Value {
    json!({"type":"send","id":id,"chat":chat,"body":body,"client_msg_id":client_msg_id})
}

/// A `send` frame to recipients.
pub fn send_to(id: u64, recipients: &[&str], body: &str, client_msg_id: &str) -> Value {
    json!({"type":"send","id":id,"recipients":recipients,"body":body,"client_msg_id":client_msg_id})
}

/// Asserts that `frame` is a `message` of `chat` numbered `seq` with `body`.
#[track_caller]
pub fn assert_message(frame: &Value, chat: u64, seq: u64, body: &str) {
    assert_eq!(
        (frame["type"].as_str(), frame["chat"].as_u64(), frame["seq"].as_u64(), frame["body"].as_str()),
        (Some("message"), Some(chat), Some(seq), Some(body)),
        "{frame}"
    );
}

/// Asserts that `frame` is an `error` with `code` answering `id`.
#[track_caller]
pub fn assert_error(frame: &Value, id: &Value, code: &str) {
    assert_eq!(
        (frame["type"].as_str(), &frame["id"], frame["code"].as_str()),
        (Some("error"), id, Some(code)),
        "{frame}"
    );
}

/// The numbers of a `messages` frame's items, in order.
pub fn item_seqs(page: &Value) -> Vec<u64> {
    page["items"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect()
}

/// Posts a message through REST and checks that it is the next frame (but
/// presence) of every client: nothing else was queued for them before it.
pub async fn barrier(s: &TestServer, token: &str, chat: u64, clients: &mut [&mut Client]) {
    let body = format!("barrier-{:08x}", rand::random::<u32>());
    let seq = post(s, token, chat, &body).await;
    for client in clients.iter_mut() {
        let frame = client.next().await;
        assert_message(&frame, chat, seq, &body);
    }
}

/// The REST path of one message.
pub fn message_path(token: &str, chat: u64, seq: u64) -> String {
    format!("/api/v1/applications/{token}/chats/{chat}/messages/{seq}")
}

/// Every copy of a message `user` can read: REST (one message, and the
/// history page, both read as `user`, whose `me` the reactions show), `sync`
/// and `hello` (both from the recent cache when it holds them), the latter
/// two on a fresh session of `user` (a catch-up leaves out what a session
/// already got live).
pub async fn every_read(s: &TestServer, token: &str, chat: u64, seq: u64, user: &str) -> Vec<Value> {
    let mut client = connect(s, token, user).await;
    let (status, one) = s.get(&format!("{}?user={user}", message_path(token, chat, seq))).await;
    assert_eq!(status, 200, "{one}");
    let (_, page) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}/messages?user={user}")).await;
    let listed = page.as_array().unwrap().iter().find(|m| m["number"] == json!(seq)).unwrap().clone();
    let synced = client.request(json!({"type":"sync","id":"s","chat":chat,"after":0})).await;
    let synced = synced["items"].as_array().unwrap().iter().find(|m| m["seq"] == json!(seq)).unwrap().clone();
    let resumed = client.request(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":0}]})).await;
    let resumed =
        resumed["items"].as_array().unwrap().iter().find(|m| m["seq"] == json!(seq)).unwrap().clone();
    client.close().await;
    vec![one, listed, synced, resumed]
}

/// The chat numbers of an application, through REST.
pub async fn chat_numbers(s: &TestServer, token: &str) -> Vec<u64> {
    let (status, chats) = s.get(&format!("/api/v1/applications/{token}/chats?per_page=500")).await;
    assert_eq!(status, 200, "{chats}");
    chats.as_array().unwrap().iter().map(|c| c["number"].as_u64().unwrap()).collect()
}

/// The members of a chat, through REST.
pub async fn members(s: &TestServer, token: &str, chat: u64) -> BTreeSet<String> {
    let (status, members) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}/members")).await;
    assert_eq!(status, 200, "{members}");
    members.as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap().to_owned()).collect()
}

/// A user's presence on the node, through REST.
pub async fn presence(s: &TestServer, token: &str, user: &str) -> Value {
    let (status, body) = s.get(&format!("/api/v1/applications/{token}/users/{user}/presence")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the node holds `sessions` sessions of `user`.
pub async fn wait_for_sessions(s: &TestServer, token: &str, user: &str, sessions: u64) {
    wait_until(&format!("{user} has {sessions} sessions"), || async move {
        presence(s, token, user).await["sessions"].as_u64() == Some(sessions)
    })
    .await;
}

/// A chat's messages after `after` (at most 500) through REST: number → (sender, body).
pub async fn history(s: &TestServer, token: &str, chat: u64, after: u64) -> BTreeMap<u64, (Value, String)> {
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages?after={after}&per_page=500");
    let (status, list) = s.get(&path).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let sender = m.get("sender").cloned().unwrap_or(Value::Null);
            (m["number"].as_u64().unwrap(), (sender, m["body"].as_str().unwrap().to_owned()))
        })
        .collect()
}

/// Waits until `check` holds, polling every 20 ms; panics after [`FRAME_WAIT`].
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_within(FRAME_WAIT, what, check).await;
}

/// Waits until `check` holds, polling every 20 ms; panics after `limit`.
pub async fn wait_within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
