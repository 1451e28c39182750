//! Sessions and refresh tokens, on the embedded store, on Cassandra + Redis,
//! and across three in-process cluster nodes: rotation, reuse detection
//! revoking the whole session, revocation closing the session's sockets on
//! every node (4001) and its tokens refused everywhere, an in-band
//! `refresh` keeping a WebSocket alive past its first token's expiry, and a
//! session's `online` in the list holding whichever node answers it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::server::{Mode, TestServer, code};
use common::ws::{Client, wait_within};
use serde_json::{Value, json};

on_all_modes_configured!(
    refresh_rotates_and_a_reused_token_revokes_the_session,
    two_refreshes_racing_on_one_token_give_one_pair,
    revoking_closes_the_sessions_sockets_on_every_node_and_refuses_its_tokens,
    an_in_band_refresh_keeps_a_socket_alive_past_its_tokens_expiry,
);

async fn create_session(s: &TestServer, token: &str, user: &str, device: &str) -> Value {
    let path = format!("/api/v1/applications/{token}/users/{user}/sessions");
    let (status, body) = s.post(&path, json!({"device": device, "user_agent": "test-agent/1"})).await;
    assert_eq!(status, 201, "{body}");
    for key in ["access_token", "refresh_token", "session_id"] {
        assert!(body[key].is_string(), "{key} in {body}");
    }
    body
}

async fn refresh(s: &TestServer, refresh_token: &Value) -> (u16, Value) {
    s.post("/api/v1/auth/refresh", json!({"refresh_token": refresh_token})).await
}

/// Waits until every node refuses `jwt` as of a revoked session (a
/// revocation reaches the other nodes over the cluster, asynchronously).
async fn refused_everywhere(s: &TestServer, jwt: &Value) {
    for node in s.nodes() {
        wait_within(Duration::from_secs(10), "the token is refused", || async {
            let (status, body) = me(node, jwt).await;
            status == 401 && code(&body) == "session_revoked"
        })
        .await;
    }
}

/// `GET /api/v1/me` with `jwt` on `s`.
async fn me(s: &TestServer, jwt: &Value) -> (u16, Value) {
    let request = s.http.get(s.url("/api/v1/me")).bearer_auth(jwt.as_str().unwrap());
    s.send(request).await
}

async fn refresh_rotates_and_a_reused_token_revokes_the_session(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let first = create_session(&s, &token, "alice", "phone").await;
    assert_eq!(first["expires_in"], 900, "{first}");
    let (status, who) = me(&s, &first["access_token"]).await;
    assert_eq!((status, who["user"].as_str()), (200, Some("alice")), "{who}");

    // A refresh hands out a new pair of the same session.
    let (status, second) = refresh(&s, &first["refresh_token"]).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["session_id"], first["session_id"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    // The old token again before the new pair is used: refused, the session kept.
    let (status, body) = refresh(&s, &first["refresh_token"]).await;
    assert_eq!((status, code(&body)), (401, "invalid_refresh_token"), "{body}");
    // The new pair is used (its access token accepted) on every node...
    for node in s.nodes() {
        assert_eq!(me(node, &second["access_token"]).await.0, 200);
    }
    // ...so the old refresh token is now reuse: the whole session is revoked.
    let (status, body) = refresh(&s, &first["refresh_token"]).await;
    assert_eq!((status, code(&body)), (401, "session_revoked"), "{body}");
    let (status, body) = refresh(&s, &second["refresh_token"]).await;
    assert_eq!((status, code(&body)), (401, "invalid_refresh_token"), "{body}");
    for pair in [&first, &second] {
        refused_everywhere(&s, &pair["access_token"]).await;
    }
    let path = format!("/api/v1/applications/{token}/users/alice/sessions");
    assert_eq!(s.get(&path).await.1["sessions"], json!([]));

    // Tokens minted the old way, without a session, work as before.
    let (status, old) = s.post(&format!("/api/v1/applications/{token}/users/alice/tokens"), json!({})).await;
    assert_eq!(status, 201, "{old}");
    assert_eq!(me(&s, &old["token"]).await.0, 200);
    // Garbage is refused without revoking anything.
    let (status, body) = refresh(&s, &json!("not.a-token")).await;
    assert_eq!((status, code(&body)), (401, "invalid_refresh_token"), "{body}");
    s.stop().await;
}

async fn two_refreshes_racing_on_one_token_give_one_pair(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    for round in 0..5 {
        let pair = create_session(&s, &token, "bob", &format!("tab-{round}")).await;
        let racing = (0..4).map(|_| refresh(&s, &pair["refresh_token"]));
        let answers = futures::future::join_all(racing).await;
        let won: Vec<&Value> = answers.iter().filter(|(status, _)| *status == 200).map(|(_, b)| b).collect();
        assert_eq!(won.len(), 1, "round {round}: {answers:?}");
        for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
            assert_eq!((*status, code(body)), (401, "invalid_refresh_token"), "{body}");
        }
        // The losers did not revoke the session: the winner's pair goes on.
        let (status, next) = refresh(&s, &won[0]["refresh_token"]).await;
        assert_eq!(status, 200, "{next}");
    }
    s.stop().await;
}

async fn revoking_closes_the_sessions_sockets_on_every_node_and_refuses_its_tokens(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let laptop = create_session(&s, &token, "carol", "laptop").await;
    let phone = create_session(&s, &token, "carol", "phone").await;
    // The laptop's session on every node (spread: one socket per node), the phone on one.
    let mut laptops = Vec::new();
    for _ in s.nodes() {
        laptops.push(Client::connect(&s, laptop["access_token"].as_str().unwrap()).await);
    }
    let mut phone_socket = Client::connect(&s, phone["access_token"].as_str().unwrap()).await;

    let path = format!("/api/v1/applications/{token}/users/carol/sessions");
    let (status, listed) = s.get(&path).await;
    assert_eq!(status, 200, "{listed}");
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{listed}");
    let laptop_row = sessions.iter().find(|r| r["id"] == laptop["session_id"]).unwrap();
    assert_eq!(laptop_row["device"], "laptop");
    assert_eq!(laptop_row["user_agent"], "test-agent/1");
    for key in ["created_at", "last_seen_at", "expires_at"] {
        assert!(laptop_row[key].is_string(), "{key}: {laptop_row}");
    }
    assert_eq!(laptop_row["online"], true, "{laptop_row}");

    let one = format!("{path}/{}", laptop["session_id"].as_str().unwrap());
    assert_eq!(s.send(s.http.delete(s.url(&one))).await.0, 204);
    for socket in &mut laptops {
        assert_eq!(socket.close_code().await.0, 4001);
    }
    refused_everywhere(&s, &laptop["access_token"]).await;
    let (status, body) = refresh(&s, &laptop["refresh_token"]).await;
    assert_eq!((status, code(&body)), (401, "invalid_refresh_token"), "{body}");
    let (status, body) = s.send(s.http.delete(s.url(&one))).await;
    assert_eq!((status, code(&body)), (404, "session_not_found"), "{body}");
    // The phone's session is untouched.
    let settings = phone_socket.request(json!({"type": "notification_settings", "id": 1})).await;
    assert_eq!(settings["type"], "notification_settings", "{settings}");
    assert_eq!(me(&s, &phone["access_token"]).await.0, 200);

    // Revoking all of a user's sessions closes the rest.
    assert_eq!(s.send(s.http.delete(s.url(&path))).await.0, 204);
    assert_eq!(phone_socket.close_code().await.0, 4001);
    refused_everywhere(&s, &phone["access_token"]).await;
    assert_eq!(s.get(&path).await.1["sessions"], json!([]));
    s.stop().await;
}

async fn an_in_band_refresh_keeps_a_socket_alive_past_its_tokens_expiry(mode: Mode) {
    let s = TestServer::start_with(mode, |c| {
        c.sessions.access_ttl_secs = 6;
        c.gateway.heartbeat_ms = 200;
        c.gateway.idle_timeout_ms = 60_000;
    })
    .await;
    let token = s.new_app().await;
    let first = create_session(&s, &token, "dave", "web").await;
    let opened = tokio::time::Instant::now();
    let mut socket = Client::connect(&s, first["access_token"].as_str().unwrap()).await;
    let notice = socket.next().await;
    assert_eq!(notice["type"], "token_expiring", "{notice}");
    assert!(notice["expires_at"].is_string(), "{notice}");

    let (status, second) = refresh(&s, &first["refresh_token"]).await;
    assert_eq!(status, 200, "{second}");
    let answer =
        socket.request(json!({"type": "refresh", "id": "r1", "token": second["access_token"]})).await;
    assert_eq!(answer["type"], "refreshed", "{answer}");
    assert!(answer["expires_at"].is_string(), "{answer}");

    // Past the first token's expiry (6 s, whole seconds: at most 6 s after
    // the socket opened; the new one, refreshed half-way, lasts to 8 s at
    // least), the socket goes on (the new token's own notice may come meanwhile).
    tokio::time::sleep_until(opened + Duration::from_millis(6_500)).await;
    let (settings, mut seen) =
        socket.request_collect(json!({"type": "notification_settings", "id": 2})).await;
    assert_eq!(settings["type"], "notification_settings", "{settings}");

    // A token of another session is refused, and the socket goes on.
    let other = create_session(&s, &token, "dave", "other").await;
    let frame = json!({"type": "refresh", "id": "r2", "token": other["access_token"]});
    let (refused, before) = socket.request_collect(frame).await;
    seen.extend(before);
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("invalid_token")));

    // Without another refresh: told again, then closed with 4001.
    let (close, before) = socket.close_code().await;
    seen.extend(before);
    assert_eq!(close, 4001);
    assert!(seen.iter().any(|f| f["type"] == "token_expiring"), "{seen:?}");
    wait_within(Duration::from_secs(10), "the refresh token still works", || async {
        refresh(&s, &second["refresh_token"]).await.0 == 200
    })
    .await;
    s.stop().await;
}

/// `online` of each of the sessions listed through `node`, by session id.
async fn online_through(node: &TestServer, path: &str) -> std::collections::HashMap<String, bool> {
    let (status, listed) = node.get(path).await;
    assert_eq!(status, 200, "{listed}");
    let rows = listed["sessions"].as_array().unwrap();
    rows.iter().map(|r| (r["id"].as_str().unwrap().to_owned(), r["online"].as_bool().unwrap())).collect()
}

/// Three in-process nodes: a session whose only socket is on node B is
/// online in the list whichever node answers it (A and C ask B over the
/// cluster), and offline everywhere once that socket closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_socket_on_one_node_shows_it_online_through_every_node() {
    let s = TestServer::start(Mode::Spread).await;
    let nodes = s.nodes();
    let token = s.new_app().await;
    let tablet = create_session(&s, &token, "erin", "tablet").await;
    let idle = create_session(&s, &token, "erin", "idle").await;
    let (tablet_id, idle_id) = (tablet["session_id"].as_str().unwrap(), idle["session_id"].as_str().unwrap());
    let socket = Client::connect(nodes[1], tablet["access_token"].as_str().unwrap()).await;
    assert_eq!(socket.welcome["node"], "node-1", "{}", socket.welcome);

    // Registered before the welcome: every node sees it at once.
    let path = format!("/api/v1/applications/{token}/users/erin/sessions");
    for (i, node) in nodes.iter().enumerate() {
        let online = online_through(node, &path).await;
        assert_eq!(online.get(tablet_id), Some(&true), "through node-{i}: {online:?}");
        assert_eq!(online.get(idle_id), Some(&false), "through node-{i}: {online:?}");
    }

    socket.close().await;
    for (i, node) in nodes.iter().enumerate() {
        wait_within(Duration::from_secs(10), &format!("node-{i} lists the session offline"), || async {
            online_through(node, &path).await.get(tablet_id) == Some(&false)
        })
        .await;
    }
    s.stop().await;
}
