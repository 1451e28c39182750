//! The web chat at `/demo` and its API: served with the right types and
//! headers when on, absent when off; a session for any valid user id of the
//! one demo application, kept across restarts; the chat endpoints answer for
//! members of the demo application only; and no answer ever carries the demo
//! application's token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use base64::Engine as _;
use common::server::{Mode, TestServer, code};
use common::ws::{Client, send_to};
use serde_json::{Value, json};

/// Everything the test read from the node, to check for the app token at the end.
#[derive(Default)]
struct Seen(String);

impl Seen {
    async fn request(&mut self, req: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        for (name, value) in &headers {
            self.0.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or_default()));
        }
        self.0.push_str(&text);
        (status, headers, text)
    }

    async fn json(&mut self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let (status, _, text) = self.request(req).await;
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    async fn session(&mut self, s: &TestServer, user: &str) -> String {
        let (status, body) =
            self.json(s.http.post(s.url("/demo/api/session")).json(&json!({ "user": user }))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["user"], user);
        body["token"].as_str().unwrap().to_owned()
    }

    async fn get(&mut self, s: &TestServer, path: &str, jwt: &str) -> (u16, Value) {
        self.json(s.http.get(s.url(path)).bearer_auth(jwt)).await
    }
}

/// The `app` claim of a user token.
fn app_claim(jwt: &str) -> String {
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
    let claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["app"].as_str().unwrap().to_owned()
}

async fn node_on(dir: &Path) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::start_with(Mode::Embedded, move |c| c.store.data_dir = dir.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_served_with_their_types_and_headers() {
    let s = TestServer::start(Mode::Embedded).await;
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = no_redirect.get(s.url("/demo")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 308);
    assert_eq!(resp.headers()["location"], "/demo/");
    let host = s.base.trim_start_matches("http://");
    for (path, kind) in [
        ("/demo/", "text/html; charset=utf-8"),
        ("/demo/index.html", "text/html; charset=utf-8"),
        ("/demo/app.js", "text/javascript; charset=utf-8"),
        ("/demo/chat.js", "text/javascript; charset=utf-8"),
        ("/demo/view.js", "text/javascript; charset=utf-8"),
        ("/demo/weft-client.js", "text/javascript; charset=utf-8"),
        ("/demo/style.css", "text/css; charset=utf-8"),
        ("/demo/icon.svg", "image/svg+xml"),
    ] {
        let resp = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let headers = resp.headers().clone();
        assert_eq!(headers["content-type"], kind, "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "no inline or remote scripts: {csp}");
        assert!(csp.contains(&format!("connect-src 'self' ws://{host} wss://{host}")), "{csp}");
        assert!(!resp.bytes().await.unwrap().is_empty(), "{path}");
        // A browser's copy is checked with its ETag: 304, no body.
        let etag = headers["etag"].clone();
        let again = s.http.get(s.url(path)).header("if-none-match", etag.clone()).send().await.unwrap();
        assert_eq!(again.status().as_u16(), 304, "{path}");
        assert_eq!(again.headers()["etag"], etag);
    }
    let (status, body) = s.get("/demo/nope.js").await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_means_no_pages_and_no_api() {
    let s = TestServer::start_with(Mode::Embedded, |c| c.demo.enabled = false).await;
    for path in ["/demo", "/demo/", "/demo/app.js", "/demo/weft-client.js", "/demo/api/chats"] {
        assert_eq!(s.get(path).await.0, 404, "{path}");
    }
    let (status, _) = s.post("/demo/api/session", json!({ "user": "alice" })).await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_needs_a_json_body_with_a_valid_user_id() {
    let s = TestServer::start(Mode::Embedded).await;
    let url = s.url("/demo/api/session");
    let cases = [
        (s.http.post(&url).body(r#"{"user":"alice"}"#), 400, "unsupported_content_type"),
        (s.http.post(&url).header("content-type", "application/json").body("{"), 400, "malformed_json"),
        (s.http.post(&url).json(&json!({})), 422, "invalid_field"),
        (s.http.post(&url).json(&json!({ "user": "alice", "admin": true })), 422, "invalid_field"),
        (s.http.post(&url).json(&json!({ "user": 7 })), 422, "invalid_field"),
        (s.http.post(&url).json(&json!({ "user": "" })), 422, "invalid_field"),
        (s.http.post(&url).json(&json!({ "user": "al ice" })), 422, "invalid_field"),
        (s.http.post(&url).json(&json!({ "user": "x".repeat(129) })), 422, "invalid_field"),
        (s.http.post(&url).json(&json!({ "user": "x".repeat(2000) })), 413, "payload_too_large"),
    ];
    for (req, status, expected) in cases {
        let (got, body) = s.send(req).await;
        assert_eq!((got, code(&body)), (status, expected), "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    let (status, body) = s.post("/demo/api/session", json!({ "user": "a.b@c:d-e_f" })).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["expires_at"].is_string(), "{body}");
    assert_eq!(body["attachments"]["max_size"], 26_214_400, "the embedded node keeps files: {body}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_their_chats_and_the_app_token_never_leaves_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let s = node_on(dir.path()).await;
    let mut seen = Seen::default();
    let alice = seen.session(&s, "alice").await;
    let bob = seen.session(&s, "bob").await;
    let carol = seen.session(&s, "carol").await;
    let app_token = std::fs::read_to_string(dir.path().join("demo-app.token")).unwrap();
    assert_eq!(app_token.trim().len(), 32);
    assert_eq!(app_claim(&alice), app_claim(&bob), "one demo application");

    // The session's token opens a WebSocket, and a first message makes a direct chat.
    let (status, body) = seen.get(&s, "/demo/api/chats", &alice).await;
    assert_eq!((status, body.clone()), (200, json!({ "chats": [] })));
    let mut ws = Client::connect(&s, &alice).await;
    let ack = ws.request(send_to(1, &["bob"], "hi bob", "c-1")).await;
    let chat = ack["chat"].as_u64().unwrap();
    let mut bob_ws = Client::connect(&s, &bob).await;

    for jwt in [&alice, &bob] {
        let (status, body) = seen.get(&s, "/demo/api/chats", jwt).await;
        assert_eq!(status, 200, "{body}");
        let listed = &body["chats"][0];
        assert_eq!(listed["number"], chat);
        assert_eq!(listed["kind"], "direct");
        assert_eq!(listed["last"]["body"], "hi bob");
        assert_eq!(listed["last"]["sender"], "alice");
        let mut members: Vec<_> =
            listed["members"].as_array().unwrap().iter().map(|m| m["user"].as_str().unwrap()).collect();
        members.sort_unstable();
        assert_eq!(members, ["alice", "bob"]);
    }
    bob_ws.request(json!({"type": "read", "id": 2, "chat": chat, "seq": 1})).await;
    let (status, body) = seen.get(&s, &format!("/demo/api/chats/{chat}"), &alice).await;
    assert_eq!(status, 200, "{body}");
    let bob_member = body["members"].as_array().unwrap().iter().find(|m| m["user"] == "bob").unwrap().clone();
    assert_eq!(bob_member["online"], true, "{body}");
    assert_eq!(bob_member["read"], 1, "{body}");
    assert_eq!(body["messages_count"], 1);

    // Only members, only the demo application's users, only chat numbers.
    let (status, body) = seen.get(&s, &format!("/demo/api/chats/{chat}"), &carol).await;
    assert_eq!((status, code(&body)), (403, "not_a_member"));
    let (status, body) = seen.get(&s, "/demo/api/chats/99", &alice).await;
    assert_eq!((status, code(&body)), (404, "chat_not_found"));
    let (status, body) = seen.get(&s, &format!("/demo/api/chats/0{chat}"), &alice).await;
    assert_eq!((status, code(&body)), (404, "chat_not_found"));
    let (status, body) = seen.json(s.http.get(s.url("/demo/api/chats"))).await;
    assert_eq!((status, code(&body)), (401, "invalid_token"));
    let (status, body) = seen.get(&s, "/demo/api/chats", "not-a-jwt").await;
    assert_eq!((status, code(&body)), (401, "invalid_token"));
    let other_app = s.new_app().await;
    let outsider = common::ws::user_token(&s, &other_app, "alice").await;
    let (status, body) = seen.get(&s, "/demo/api/chats", &outsider).await;
    assert_eq!((status, code(&body)), (401, "invalid_token"), "a token of another application");

    // Every page and answer the test read, headers included.
    for path in ["/demo/", "/demo/app.js", "/demo/chat.js", "/demo/weft-client.js"] {
        seen.request(s.http.get(s.url(path))).await;
    }
    assert!(!seen.0.contains(app_token.trim()), "the demo application's token reached a client");
    ws.close().await;
    bob_ws.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_application_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = node_on(dir.path()).await;
    let mut seen = Seen::default();
    let before = seen.session(&s, "alice").await;
    let kept = std::fs::read_to_string(dir.path().join("demo-app.token")).unwrap();
    s.stop().await;

    let s = node_on(dir.path()).await;
    let after = seen.session(&s, "alice").await;
    assert_eq!(app_claim(&before), app_claim(&after), "the same application after a restart");
    assert_eq!(std::fs::read_to_string(dir.path().join("demo-app.token")).unwrap(), kept);
    // A token from before the restart still works: same application, same secret.
    let (status, body) = seen.get(&s, "/demo/api/chats", &before).await;
    assert_eq!(status, 200, "{body}");
    s.stop().await;

    // A configured token names the demo application instead of the file.
    let s = node_on(dir.path()).await;
    let app = s.new_app().await;
    s.stop().await;
    let configured = {
        let (dir, app) = (dir.path().to_path_buf(), app.clone());
        TestServer::start_with(Mode::Embedded, move |c| {
            c.store.data_dir = dir.clone();
            c.demo.app_token = app.clone();
        })
        .await
    };
    let jwt = seen.session(&configured, "alice").await;
    let minted = common::ws::user_token(&configured, &app, "alice").await;
    assert_eq!(app_claim(&jwt), app_claim(&minted));
    configured.stop().await;
}
