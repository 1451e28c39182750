//! Who may put users into new groups: an application's `user_groups` setting.
//! `open` (the default) lets a user's `send` to several `recipients` create a
//! group of them; `backend_only` keeps group creation to the backend's REST API
//! (direct chats still open from a `send`) and to adding members
//! (`add_members` is refused too).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::server::{Mode, TestServer, code};
use common::ws::{Client, assert_error, chat_numbers, chat_with, connect, members, send_to};
use serde_json::{Value, json};
use tokio::time::Instant;

on_all_modes_configured!(users_create_groups_unless_the_application_keeps_it_to_its_backend);

async fn set_user_groups(s: &TestServer, token: &str, value: Value) -> (u16, Value) {
    let url = s.url(&format!("/api/v1/applications/{token}"));
    s.send(s.http.patch(url).json(&json!({ "user_groups": value }))).await
}

/// Sends to `recipients` until the answer's type is `want` (other nodes see a
/// changed setting once their application cache expires); returns the answer.
async fn send_until(alice: &mut Client, recipients: &[&str], want: &str, tag: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in 0u64.. {
        let answer = alice.request(send_to(100 + n, recipients, "hi all", &format!("{tag}-{n}"))).await;
        if answer["type"] == want || Instant::now() > deadline {
            return answer;
        }
    }
    unreachable!()
}

async fn users_create_groups_unless_the_application_keeps_it_to_its_backend(mode: Mode) {
    let s = TestServer::start_with(mode, |c| c.cache.apps_ttl_ms = 100).await;
    let token = s.new_app().await;
    let (status, app) = s.get(&format!("/api/v1/applications/{token}")).await;
    assert_eq!((status, app["user_groups"].as_str()), (200, Some("open")), "{app}");
    let mut alice = connect(&s, &token, "alice").await;

    // Open: a send to two others makes a group of the three.
    let ack = alice.request(send_to(1, &["bob", "carol"], "hi all", "g-1")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let group = ack["chat"].as_u64().unwrap();
    assert_eq!(members(&s, &token, group).await.len(), 3);

    // Bad values change nothing.
    for bad in [json!("closed"), json!(5), json!(null), json!("")] {
        let (status, body) = set_user_groups(&s, &token, bad.clone()).await;
        assert_eq!((status, code(&body)), (422, "invalid_field"), "{bad}: {body}");
    }
    let (_, app) = s.get(&format!("/api/v1/applications/{token}")).await;
    assert_eq!(app["user_groups"], "open");

    // Backend only: the same send is refused and creates nothing.
    let (status, app) = set_user_groups(&s, &token, json!("backend_only")).await;
    assert_eq!((status, app["user_groups"].as_str()), (200, Some("backend_only")), "{app}");
    let (_, shown) = s.get(&format!("/api/v1/applications/{token}")).await;
    assert_eq!(shown["user_groups"], "backend_only");
    let refused = send_until(&mut alice, &["bob", "dave"], "error", "closed").await;
    assert_eq!(refused["code"], "user_groups_closed", "{refused}");
    let chats = chat_numbers(&s, &token).await;
    let answer = alice.request(send_to(2, &["bob", "dave"], "hi all", "g-2")).await;
    assert_error(&answer, &json!(2), "user_groups_closed");
    assert_eq!(chat_numbers(&s, &token).await, chats, "a refused send created a chat");
    // Nor may a user add members to a group, even its owner (a send made it hers).
    let frame = json!({"type":"add_members","id":"am","chat":group,"users":["dave"]});
    assert_error(&alice.request(frame).await, &json!("am"), "user_groups_closed");
    assert_eq!(members(&s, &token, group).await.len(), 3, "a refused add_members added someone");

    // A direct chat still opens from a send; the backend still makes groups.
    let ack = alice.request(send_to(3, &["bob"], "just you", "d-1")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let made = chat_with(&s, &token, &["alice", "bob", "dave"]).await;
    assert_eq!(members(&s, &token, made).await.len(), 3);

    // Open again.
    let (status, _) = set_user_groups(&s, &token, json!("open")).await;
    assert_eq!(status, 200);
    let ack = send_until(&mut alice, &["carol", "erin"], "ack", "reopened").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    s.stop().await;
}
