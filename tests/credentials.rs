//! Credentials never cross, route by route, on every row of the authorization
//! table of docs/security.md (so a new route is covered as soon as it is
//! listed), on the embedded store and on Redis + Cassandra: one application's
//! token or key never works on another's paths; a user token (plain or a
//! session's access token) never works where a server credential is needed;
//! the application token, a server key and a refresh token never work where a
//! user token is needed (REST, the WebSocket connect, its in-band `refresh`)
//! nor as a refresh token; and the admin-key routes refuse all of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use common::auth_table::{Row, table, url_for};
use common::server::{Mode, TestServer, code};
use common::ws::Client;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;

/// The node's admin key: every scenario runs with one configured.
const ADMIN: &str = "credentials-test-admin-key";

/// Runs each `scenario(&TestServer)` on a node with an admin key, embedded and on Redis + Cassandra.
macro_rules! on_both_modes_with_admin {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let server = super::start(super::Mode::Embedded).await;
                super::$scenario(&server).await;
                server.stop().await;
            }
        )*}
        mod cluster {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let server = super::start(super::Mode::Cluster).await;
                super::$scenario(&server).await;
                server.stop().await;
            }
        )*}
    };
}

async fn start(mode: Mode) -> TestServer {
    TestServer::start_with(mode, |c| c.server.admin_key = ADMIN.to_owned()).await
}

/// An application with chat 1 (alice a member, message 1 in it), an
/// `admin`-scoped key, a user token and a session of alice.
struct App {
    token: String,
    id: String,
    key: String,
    jwt: String,
    access: String,
    refresh: String,
}

async fn new_app(s: &TestServer, name: &str) -> App {
    let create = s.http.post(s.url("/api/v1/applications")).bearer_auth(ADMIN).json(&json!({"name": name}));
    let (status, app) = s.send(create).await;
    assert_eq!(status, 201, "{app}");
    let token = app["token"].as_str().unwrap().to_owned();
    let id = app["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/applications/{token}");
    assert_eq!(s.new_chat(&token).await, 1);
    let (status, body) = s.send(s.http.put(s.url(&format!("{base}/chats/1/members/alice")))).await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let (status, body) =
        s.post(&format!("{base}/chats/1/messages"), json!({"body": "hi", "sender": "alice"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = s.post(&format!("{base}/keys"), json!({"name": "k", "scopes": ["admin"]})).await;
    assert_eq!(status, 201, "{body}");
    let key = body["secret"].as_str().unwrap().to_owned();
    let (status, body) = s.post(&format!("{base}/users/alice/tokens"), json!({})).await;
    assert_eq!(status, 201, "{body}");
    let jwt = body["token"].as_str().unwrap().to_owned();
    let (status, body) = s.post(&format!("{base}/users/alice/sessions"), json!({"device": "phone"})).await;
    assert_eq!(status, 201, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    App { token, id, key, jwt, access, refresh }
}

async fn call(s: &TestServer, method: &str, url: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut request = s.http.request(method.parse().unwrap(), s.url(url));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    s.send(request).await
}

fn under_an_application(row: &Row) -> bool {
    row.path.starts_with("/api/v1/applications/{token}")
}

/// What an application looks like from outside, every part a walk could touch.
async fn snapshot(s: &TestServer, a: &App) -> Value {
    let mut seen = serde_json::Map::new();
    for path in [
        "",
        "/chats",
        "/chats/1",
        "/chats/1/members",
        "/chats/1/messages",
        "/chats/1/messages/1/reactions",
        "/keys",
        "/webhooks",
        "/users/alice/sessions",
        "/users/alice/devices",
        "/users/alice/notification_settings",
    ] {
        let (status, mut body) = s.get(&format!("/api/v1/applications/{}{path}", a.token)).await;
        assert_eq!(status, 200, "{path}: {body}");
        // When a key or session was last used moves with the setup's own calls, not the walk's.
        for list in ["keys", "sessions"] {
            if let Some(items) = body.get_mut(list).and_then(Value::as_array_mut) {
                for item in items {
                    if let Some(item) = item.as_object_mut() {
                        item.remove("last_used_at");
                        item.remove("last_seen_at");
                        item.remove("online");
                    }
                }
            }
        }
        seen.insert(path.to_owned(), body);
    }
    Value::Object(seen)
}

/// Part 1: B's key with A's id, B's key with A's token, B's token as Bearer with
/// A's id, on every route under an application: 404 `application_not_found`;
/// B's token in the path with A's numbers reaches B's data only. A unchanged.
async fn another_applications_credentials_are_refused_on_every_route(s: &TestServer) {
    let a = new_app(s, "a").await;
    let b = new_app(s, "b").await;
    let before = snapshot(s, &a).await;
    let mut checked = 0;
    for row in table().iter().filter(|r| under_an_application(r)) {
        let op = format!("{} {}", row.method, row.path);
        for (slot, bearer, what) in [
            (&a.id, Some(&b.key), "A's id with B's key"),
            (&a.token, Some(&b.key), "A's token with B's key"),
            (&a.id, Some(&b.token), "A's id with B's token as Bearer"),
            (&b.id, Some(&a.token), "B's id with A's token as Bearer"),
        ] {
            let (status, body) =
                call(s, &row.method, &url_for(&row.path, slot), bearer.map(String::as_str)).await;
            assert_eq!((status, code(&body)), (404, "application_not_found"), "{op}, {what}: {body}");
        }
        checked += 1;
    }
    assert!(checked >= 45, "only {checked} operations checked");
    // B's token in the path with A's chat, message and user numbers acts on B's own.
    for row in table().iter().filter(|r| under_an_application(r)) {
        let (status, body) = call(s, &row.method, &url_for(&row.path, &b.token), None).await;
        assert!(status < 500, "{} {} with B's token: {status} {body}", row.method, row.path);
        assert!(!body.to_string().contains(&a.id), "{} {} showed A's id: {body}", row.method, row.path);
    }
    assert_eq!(snapshot(s, &a).await, before, "A changed while others' credentials walked its paths");
    // A's secret was not rotated: its user token still works.
    let (status, me) = call(s, "GET", "/api/v1/me", Some(&a.jwt)).await;
    assert_eq!((status, me["app"].as_str()), (200, Some(a.id.as_str())), "{me}");
}

/// Part 2: A user token and a session access token of A, as Bearer with A's id
/// and in the `{token}` slot, on every route under an application: 404
/// `application_not_found`; nothing of A changes.
async fn a_user_token_is_no_server_credential(s: &TestServer) {
    let a = new_app(s, "a").await;
    let before = snapshot(s, &a).await;
    for row in table().iter().filter(|r| under_an_application(r)) {
        let op = format!("{} {}", row.method, row.path);
        for (name, user_token) in [("user token", &a.jwt), ("session access token", &a.access)] {
            let (status, body) = call(s, &row.method, &url_for(&row.path, &a.id), Some(user_token)).await;
            assert_eq!(
                (status, code(&body)),
                (404, "application_not_found"),
                "{op}, {name} as Bearer: {body}"
            );
            let (status, body) = call(s, &row.method, &url_for(&row.path, user_token), None).await;
            assert_eq!(
                (status, code(&body)),
                (404, "application_not_found"),
                "{op}, {name} in the path: {body}"
            );
            let (status, body) =
                call(s, &row.method, &url_for(&row.path, user_token), Some(user_token)).await;
            assert_eq!((status, code(&body)), (404, "application_not_found"), "{op}, {name} in both: {body}");
        }
    }
    assert_eq!(snapshot(s, &a).await, before, "A changed while its user tokens walked its paths");
}

/// Part 3: Where a user token is needed (every row whose credential is a user
/// token, the WebSocket connect and its in-band `refresh`), and as a refresh
/// token, the server credentials and the wrong kind of token are refused.
async fn server_credentials_are_no_user_token(s: &TestServer) {
    let a = new_app(s, "a").await;
    let not_user_tokens =
        [("application token", &a.token), ("server key", &a.key), ("refresh token", &a.refresh)];
    let mut user_rows = 0;
    for row in table().iter().filter(|r| r.credential.starts_with("user token") && r.path != "/ws") {
        let op = format!("{} {}", row.method, row.path);
        for (name, credential) in not_user_tokens {
            let (status, body) = call(s, &row.method, &row.path, Some(credential)).await;
            assert_eq!((status, code(&body)), (401, "invalid_token"), "{op} with the {name}: {body}");
        }
        user_rows += 1;
    }
    assert!(user_rows >= 1, "no REST row takes a user token");
    assert!(table().iter().any(|r| r.path == "/ws"), "GET /ws is not in the table");

    // The WebSocket connect: as the query parameter and as the Authorization header.
    let ws = s.ws_base();
    for (name, credential) in not_user_tokens {
        let query = urlencoding(credential);
        match connect_async(format!("{ws}/ws?token={query}")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 401, "the {name} as ?token=")
            }
            other => panic!("the {name} as ?token= opened a socket: {other:?}"),
        }
        let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            format!("{ws}/ws"),
        )
        .unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {credential}").parse().unwrap());
        match connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status().as_u16(), 401, "the {name} as Bearer")
            }
            other => panic!("the {name} as Bearer opened a socket: {other:?}"),
        }
    }

    // The in-band refresh of a socket opened with a session's access token.
    let mut alice = Client::connect(s, &a.access).await;
    for (i, (name, credential)) in not_user_tokens.into_iter().enumerate() {
        let id = format!("r{i}");
        let answer = alice.request(json!({"type": "refresh", "id": id, "token": credential})).await;
        assert_eq!(
            (answer["type"].as_str(), code_of(&answer)),
            (Some("error"), "invalid_token"),
            "{name}: {answer}"
        );
    }
    let send = json!({"type": "send", "id": "s1", "chat": 1, "body": "still here", "client_msg_id": "c1"});
    let (answer, _) = alice.request_collect(send).await;
    assert_eq!(answer["type"], "ack", "the socket goes on after the refused refreshes: {answer}");
    alice.close().await;

    // POST /api/v1/auth/refresh takes a refresh token only.
    for (name, credential) in [
        ("application token", &a.token),
        ("server key", &a.key),
        ("user token", &a.jwt),
        ("session access token", &a.access),
    ] {
        let (status, body) = s.post("/api/v1/auth/refresh", json!({"refresh_token": credential})).await;
        assert_eq!((status, code(&body)), (401, "invalid_refresh_token"), "the {name}: {body}");
    }
    // The session was not disturbed: its refresh token still refreshes.
    let (status, body) = s.post("/api/v1/auth/refresh", json!({"refresh_token": a.refresh})).await;
    assert_eq!(status, 200, "{body}");
}

/// Part 4: Every route that takes the admin key refuses the application token,
/// an `admin`-scoped server key and a user token: 403 `forbidden`.
async fn admin_key_routes_refuse_every_other_credential(s: &TestServer) {
    let a = new_app(s, "a").await;
    let mut checked = 0;
    for row in table().iter().filter(|r| r.credential.contains("admin key")) {
        let op = format!("{} {}", row.method, row.path);
        for (name, credential) in [
            ("application token", &a.token),
            ("admin-scoped server key", &a.key),
            ("user token", &a.jwt),
            ("session access token", &a.access),
        ] {
            let mut request =
                s.http.request(row.method.parse().unwrap(), s.url(&row.path)).bearer_auth(credential);
            if row.method == "POST" {
                request = request.json(&json!({"name": "intruder"}));
            }
            let (status, body) = s.send(request).await;
            assert_eq!((status, code(&body)), (403, "forbidden"), "{op} with the {name}: {body}");
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} admin-key routes");
}

/// The code of a WebSocket `error` frame.
fn code_of(frame: &Value) -> &str {
    frame["code"].as_str().unwrap_or("")
}

/// Percent-encodes a credential for a query string.
fn urlencoding(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

on_both_modes_with_admin!(
    another_applications_credentials_are_refused_on_every_route,
    a_user_token_is_no_server_credential,
    server_credentials_are_no_user_token,
    admin_key_routes_refuse_every_other_credential,
);
