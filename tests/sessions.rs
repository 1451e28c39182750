//! Session lifecycle: token expiry and secret rotation close sessions with
//! 4001; a draining node refuses new sockets and closes the open ones with
//! 1012 over its drain window; a send whose first try died is settled from
//! the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::server::{Mode, TestServer};
use common::ws::{Client, chat_with, connect, history, send, user_token};
use serde_json::json;
use tokio_tungstenite::connect_async;

on_all_modes_configured!(
    a_session_closes_with_4001_when_its_token_expires,
    rotating_the_secret_closes_the_applications_sessions_with_4001,
    a_draining_node_refuses_new_sockets_and_closes_open_ones_with_1012,
);

async fn a_session_closes_with_4001_when_its_token_expires(mode: Mode) {
    let s = TestServer::start_with(mode, |c| {
        c.gateway.heartbeat_ms = 100;
        c.gateway.idle_timeout_ms = 60_000;
    })
    .await;
    let token = s.new_app().await;
    let url = s.url(&format!("/api/v1/applications/{token}/users/alice/tokens"));
    let (status, body) = s.send(s.http.post(url).json(&json!({"ttl_seconds": 1}))).await;
    assert_eq!(status, 201, "{body}");
    let mut alice = Client::connect(&s, body["token"].as_str().unwrap()).await;
    // The token's `exp` has whole seconds: the close comes within about two.
    let (close, _) = alice.close_code().await;
    assert_eq!(close, 4001);
    // A token that lives on keeps its session.
    let mut bob = connect(&s, &token, "bob").await;
    let chat = chat_with(&s, &token, &["bob"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bob.request(send(1, chat, "still here", "b1")).await["type"], "ack");
    s.stop().await;
}

async fn rotating_the_secret_closes_the_applications_sessions_with_4001(mode: Mode) {
    let s = TestServer::start(mode).await;
    let token = s.new_app().await;
    let other_app = s.new_app().await;
    let old_jwt = user_token(&s, &token, "alice").await;
    // Two devices: in spread mode on two nodes, one of them not the node
    // that rotates the secret.
    let mut alice = Client::connect(&s, &old_jwt).await;
    let mut alice_phone = Client::connect(&s, &old_jwt).await;
    let mut outsider = connect(&s, &other_app, "alice").await;

    let (status, body) = s.post(&format!("/api/v1/applications/{token}/secret"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(alice.close_code().await.0, 4001);
    assert_eq!(alice_phone.close_code().await.0, 4001);
    // Refused on every node at once, although each had the application (and
    // its old secret) cached from the connects above.
    for _ in 0..3 {
        let url = format!("{}/ws?token={old_jwt}", s.ws_base());
        match connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
            other => panic!("the old token still opens a session: {other:?}"),
        }
    }
    // A new token works; another application's sessions were not touched.
    let _fresh = connect(&s, &token, "alice").await;
    let chat = chat_with(&s, &other_app, &["alice"]).await;
    assert_eq!(outsider.request(send(1, chat, "unaffected", "o1")).await["type"], "ack");
    s.stop().await;
}

async fn a_draining_node_refuses_new_sockets_and_closes_open_ones_with_1012(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.server.drain_window_ms = 500).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;
    let late_jwt = user_token(&s, &token, "carol").await;
    assert_eq!(alice.request(send(1, chat, "before the drain", "a1")).await["type"], "ack");

    s.begin_stop();
    // Not ready any more, while the listener still answers during the window.
    let (status, body) = s.get("/readyz").await;
    assert_eq!((status, body["status"].as_str()), (503, Some("draining")), "{body}");
    let url = format!("{}/ws?token={late_jwt}", s.base.replace("http://", "ws://"));
    match connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
        other => panic!("a draining node accepted a socket: {other:?}"),
    }
    let (a, before_a) = alice.close_code().await;
    let (b, before_b) = bob.close_code().await;
    assert_eq!((a, b), (1012, 1012), "{before_a:?} {before_b:?}");
    s.stop().await;
}

/// A send whose first try claimed its key and then died (its node was killed)
/// is settled by the retry: from the store when the message was persisted,
/// taken over when the claim is old and nothing was stored, and refused as
/// still in flight while the claim is fresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_settles_a_claim_whose_first_try_died() {
    let prefix = format!("weft-test-{:016x}", rand::random::<u64>());
    let p = prefix.clone();
    let s = TestServer::start_with(Mode::Cluster, move |c| c.redis.key_prefix.clone_from(&p)).await;
    let token = s.new_app().await;
    let (_, app) = s.get(&format!("/api/v1/applications/{token}")).await;
    let app_id = app["id"].as_str().unwrap().to_owned();
    let chat = chat_with(&s, &token, &["alice"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let client = redis::Client::open(common::server::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let key = |id: &str| format!("{prefix}:{{{app_id}}}:idem:alice:{id}");
    let now = || {
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
            .unwrap()
    };
    let mut set = async |id: &str, value: String| {
        let () = redis::cmd("SET").arg(key(id)).arg(value).query_async(&mut redis).await.unwrap();
    };

    // Persisted, but the node died before marking the claim committed.
    assert_eq!(
        alice.request(send(1, chat, "first", "m1")).await,
        json!({"type":"ack","id":1,"chat":chat,"seq":1})
    );
    set("m1", format!("P:{chat}:1:{}", now())).await;
    assert_eq!(
        alice.request(send(2, chat, "first", "m1")).await,
        json!({"type":"ack","id":2,"chat":chat,"seq":1})
    );

    // Claimed a minute ago for number 77, never stored: the retry takes over.
    set("m2", format!("P:{chat}:77:{}", now() - 60_000)).await;
    let ack = alice.request(send(3, chat, "second", "m2")).await;
    assert_eq!((ack["type"].as_str(), ack["seq"].as_u64()), (Some("ack"), Some(2)), "{ack}");

    // Claimed just now by a send that may still commit: not acked, not duplicated.
    set("m3", format!("P:{chat}:88:{}", now())).await;
    let answer = alice.request(send(4, chat, "third", "m3")).await;
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("in_flight")),
        "{answer}"
    );

    let stored = history(&s, &token, chat, 0).await;
    let bodies: Vec<&str> = stored.values().map(|(_, body)| body.as_str()).collect();
    assert_eq!(bodies, ["first", "second"], "{stored:?}");
    s.stop().await;
}
