//! The REST API, end to end over HTTP, on both modes: the embedded default
//! and Cassandra + Redis. Every scenario runs on both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;

use common::server::{Mode, TestServer, code};
use serde_json::{Value, json};

on_every_mode!(
    applications_are_created_read_and_renamed,
    chats_are_numbered_listed_and_counted,
    messages_are_posted_and_listed_newest_first,
    members_are_added_listed_and_removed,
    user_tokens_are_minted_verified_and_revoked_by_rotation,
    concurrent_creators_get_gap_free_unique_numbers,
    bad_input_gets_precise_errors,
);

async fn applications_are_created_read_and_renamed(s: &TestServer) {
    // Flat JSON, Rails-nested JSON and both form styles all work.
    let (status, flat) = s.post("/api/v1/applications", json!({"name": "flat"})).await;
    assert_eq!(status, 201, "{flat}");
    assert_eq!(flat["name"], "flat");
    assert_eq!(flat["chats_count"], 0);
    let token = flat["token"].as_str().unwrap();
    assert!(token.len() >= 22, "a token carries at least 128 random bits");
    assert!(flat["created_at"].is_string() && flat["updated_at"].is_string());
    assert!(flat["id"].as_str().is_some_and(|id| !id.is_empty()), "the public id is shown: {flat}");
    let secret = flat["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "a signing secret carries 256 random bits");

    let (status, nested) = s.post("/api/v1/applications", json!({"application": {"name": "nested"}})).await;
    assert_eq!((status, nested["name"].as_str()), (201, Some("nested")));
    let form = s.http.post(s.url("/api/v1/applications")).form(&[("application[name]", "form")]);
    let (status, form) = s.send(form).await;
    assert_eq!((status, form["name"].as_str()), (201, Some("form")));
    let flat_form = s.http.post(s.url("/api/v1/applications")).form(&[("name", "flat form")]);
    assert_eq!(s.send(flat_form).await.1["name"], "flat form");
    assert_ne!(nested["token"], flat["token"]);

    let (status, got) = s.get(&format!("/api/v1/applications/{token}")).await;
    assert_eq!(status, 200);
    let mut without_secret = flat.clone();
    without_secret.as_object_mut().unwrap().remove("secret");
    assert_eq!(got, without_secret, "the secret is shown once, at creation");

    let put = s.http.put(s.url(&format!("/api/v1/applications/{token}"))).json(&json!({"name": "renamed"}));
    let (status, renamed) = s.send(put).await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("renamed")));
    assert_eq!(renamed["token"], flat["token"]);
    // As instants: RFC 3339 strings with trimmed fractions ("…05.1Z", "…05.12Z") do not sort as text.
    let instant = |v: &serde_json::Value| {
        let text = v.as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert!(instant(&renamed["updated_at"]) >= instant(&flat["updated_at"]), "{renamed} {flat}");
    let patch = s
        .http
        .patch(s.url(&format!("/api/v1/applications/{token}")))
        .json(&json!({"application": {"name": "patched"}}));
    assert_eq!(s.send(patch).await.1["name"], "patched");
    assert_eq!(s.get(&format!("/api/v1/applications/{token}")).await.1["name"], "patched");

    // Tokens are secrets: there is no listing.
    let (status, body) = s.get("/api/v1/applications").await;
    assert_eq!((status, code(&body)), (405, "method_not_allowed"));
}

async fn chats_are_numbered_listed_and_counted(s: &TestServer) {
    let token = s.new_app().await;
    for expected in 1..=5 {
        assert_eq!(s.new_chat(&token).await, expected);
    }
    let (status, app) = s.get(&format!("/api/v1/applications/{token}")).await;
    assert_eq!((status, app["chats_count"].as_u64()), (200, Some(5)));

    let (status, chat) = s.get(&format!("/api/v1/applications/{token}/chats/3")).await;
    assert_eq!(status, 200);
    assert_eq!((chat["number"].as_u64(), chat["messages_count"].as_u64()), (Some(3), Some(0)));

    let (_, all) = s.get(&format!("/api/v1/applications/{token}/chats")).await;
    let numbers: Vec<u64> = all.as_array().unwrap().iter().map(|c| c["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    let (_, page) = s.get(&format!("/api/v1/applications/{token}/chats?page=2&per_page=2")).await;
    let numbers: Vec<u64> = page.as_array().unwrap().iter().map(|c| c["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![3, 4]);

    // Another application numbers its chats from 1 again.
    let other = s.new_app().await;
    assert_eq!(s.new_chat(&other).await, 1);
}

async fn messages_are_posted_and_listed_newest_first(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    for n in 1..=12u64 {
        let (status, m) = s.post(&path, json!({"body": format!("hello {n}")})).await;
        assert_eq!(status, 201, "{m}");
        assert_eq!(m["number"].as_u64(), Some(n));
        assert_eq!(m["body"], format!("hello {n}"));
        assert!(m.get("sender").is_none());
    }
    let (status, m) = s.post(&path, json!({"message": {"body": "from bob", "sender": "bob"}})).await;
    assert_eq!((status, m["sender"].as_str(), m["number"].as_u64()), (201, Some("bob"), Some(13)));
    let form = s.http.post(s.url(&path)).form(&[("message[body]", "form body")]);
    assert_eq!(s.send(form).await.1["number"], 14);

    let (_, chat_view) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}")).await;
    assert_eq!(chat_view["messages_count"], 14);

    let numbers = |v: &Value| -> Vec<u64> {
        v.as_array().unwrap().iter().map(|m| m["number"].as_u64().unwrap()).collect()
    };
    let (_, all) = s.get(&path).await;
    assert_eq!(numbers(&all), (1..=14).rev().collect::<Vec<_>>());
    // The newest page comes from the recent cache; the same page read from the
    // store (`before` makes it a store read) is identical, field for field.
    let (_, newest) = s.get(&format!("{path}?per_page=6")).await;
    let (_, stored) = s.get(&format!("{path}?per_page=6&before=15")).await;
    assert_eq!(numbers(&newest), (9..=14).rev().collect::<Vec<_>>());
    assert_eq!(newest, stored);
    let (_, page) = s.get(&format!("{path}?per_page=5&page=2")).await;
    assert_eq!(numbers(&page), vec![9, 8, 7, 6, 5]);
    let (_, before) = s.get(&format!("{path}?before=5")).await;
    assert_eq!(numbers(&before), vec![4, 3, 2, 1]);
    let (_, after) = s.get(&format!("{path}?after=11")).await;
    assert_eq!(numbers(&after), vec![14, 13, 12]);
    let (_, between) = s.get(&format!("{path}?after=3&before=7&per_page=2")).await;
    assert_eq!(numbers(&between), vec![6, 5]);

    let (status, one) = s.get(&format!("{path}/13")).await;
    assert_eq!((status, one["body"].as_str()), (200, Some("from bob")));
    let (status, body) = s.get(&format!("{path}/99")).await;
    assert_eq!((status, code(&body)), (404, "message_not_found"));
}

async fn members_are_added_listed_and_removed(s: &TestServer) {
    let token = s.new_app().await;
    let c1 = s.new_chat(&token).await;
    let c2 = s.new_chat(&token).await;
    let member =
        |chat: u64, user: &str| s.url(&format!("/api/v1/applications/{token}/chats/{chat}/members/{user}"));
    for (chat, user) in [(c1, "alice"), (c1, "bob"), (c2, "alice"), (c1, "alice")] {
        let (status, _) = s.send(s.http.put(member(chat, user))).await;
        assert_eq!(status, 204);
    }
    let (status, members) = s.get(&format!("/api/v1/applications/{token}/chats/{c1}/members")).await;
    assert_eq!(status, 200);
    let users: Vec<&str> =
        members.as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    assert_eq!(users, vec!["alice", "bob"]);
    assert!(members[0]["joined_at"].is_string());

    let (status, chats) = s.get(&format!("/api/v1/applications/{token}/users/alice/chats")).await;
    assert_eq!(status, 200);
    let numbers: Vec<u64> = chats.as_array().unwrap().iter().map(|c| c["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![c1, c2]);

    let (status, _) = s.send(s.http.delete(member(c1, "alice"))).await;
    assert_eq!(status, 204);
    let (status, body) = s.send(s.http.delete(member(c1, "alice"))).await;
    assert_eq!((status, code(&body)), (404, "member_not_found"));
    let (_, chats) = s.get(&format!("/api/v1/applications/{token}/users/alice/chats")).await;
    assert_eq!(chats.as_array().unwrap().len(), 1);

    let (status, body) = s.send(s.http.put(member(c1, "not%20valid"))).await;
    assert_eq!((status, code(&body)), (422, "invalid_field"));
    let (status, body) = s.send(s.http.put(member(99, "alice"))).await;
    assert_eq!((status, code(&body)), (404, "chat_not_found"));
}

async fn user_tokens_are_minted_verified_and_revoked_by_rotation(s: &TestServer) {
    let (_, app) = s.post("/api/v1/applications", json!({"name": "tokens"})).await;
    let (token, id) = (app["token"].as_str().unwrap(), app["id"].as_str().unwrap());
    let secret = app["secret"].as_str().unwrap();
    let mint = |user: &str, body: Value| {
        s.http.post(s.url(&format!("/api/v1/applications/{token}/users/{user}/tokens"))).json(&body)
    };
    let me = |jwt: &str| s.http.get(s.url("/api/v1/me")).bearer_auth(jwt);

    let (status, minted) = s.send(mint("alice", json!({"ttl_seconds": 600}))).await;
    assert_eq!(status, 201, "{minted}");
    let jwt = minted["token"].as_str().unwrap().to_owned();
    assert!(minted["expires_at"].is_string());
    let (status, who) = s.send(me(&jwt)).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!((who["user"].as_str(), who["app"].as_str()), (Some("alice"), Some(id)));

    // The application's backend can mint the same token with its secret.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({"sub": "bob", "app": id, "iat": now, "exp": now + 60});
    let own = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(s.send(me(&own)).await.1["user"], "bob");

    // Forged, expired, foreign and garbage tokens are refused.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not the secret"),
    )
    .unwrap();
    let expired_claims = json!({"sub": "bob", "app": id, "iat": now - 600, "exp": now - 300});
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &expired_claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let unknown_claims = json!({"sub": "bob", "app": "no-such-app", "iat": now, "exp": now + 60});
    let unknown = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &unknown_claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    for (what, bad) in
        [("forged", forged), ("expired", expired), ("unknown app", unknown), ("garbage", "x.y.z".into())]
    {
        let (status, body) = s.send(me(&bad)).await;
        assert_eq!((status, code(&body)), (401, "invalid_token"), "{what}: {body}");
    }
    let (status, body) = s.send(s.http.get(s.url("/api/v1/me"))).await;
    assert_eq!((status, code(&body)), (401, "invalid_token"), "{body}");

    // Rotation: old tokens stop working, new ones work.
    let (status, rotated) = s.send(s.http.post(s.url(&format!("/api/v1/applications/{token}/secret")))).await;
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"].as_str(), Some(secret));
    let (status, body) = s.send(me(&jwt)).await;
    assert_eq!((status, code(&body)), (401, "invalid_token"), "{body}");
    let (_, fresh) = s.send(mint("alice", json!({}))).await;
    assert_eq!(s.send(me(fresh["token"].as_str().unwrap())).await.0, 200);

    // Bad requests.
    let (status, body) = s.send(mint("alice", json!({"ttl_seconds": 0}))).await;
    assert_eq!((status, code(&body)), (422, "invalid_field"));
    let (status, body) = s.send(mint("alice", json!({"ttl_seconds": "soon"}))).await;
    assert_eq!((status, code(&body)), (422, "invalid_field"));
    let (status, body) = s.send(mint("not%20valid", json!({}))).await;
    assert_eq!((status, code(&body)), (422, "invalid_field"));
    let url = s.url("/api/v1/applications/nope/users/alice/tokens");
    let (status, body) = s.send(s.http.post(url).json(&json!({}))).await;
    assert_eq!((status, code(&body)), (404, "application_not_found"));
}

/// `tasks` concurrent clients each POST `each` times to `url` (a JSON body unless
/// `body` gives null); returns every `number` answered, asserting 201s.
async fn post_concurrently(
    s: &TestServer,
    url: &str,
    tasks: usize,
    each: usize,
    body: fn(usize, usize) -> Value,
) -> Vec<u64> {
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let (http, url) = (s.http.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut got = Vec::new();
                for j in 0..each {
                    let mut req = http.post(&url);
                    let body = body(i, j);
                    if !body.is_null() {
                        req = req.json(&body);
                    }
                    let resp = req.send().await.unwrap();
                    assert_eq!(resp.status().as_u16(), 201);
                    got.push(resp.json::<Value>().await.unwrap()["number"].as_u64().unwrap());
                }
                got
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for h in handles {
        numbers.extend(h.await.unwrap());
    }
    numbers
}

async fn concurrent_creators_get_gap_free_unique_numbers(s: &TestServer) {
    const CREATORS: usize = 50;
    const EACH: usize = 4;
    let token = s.new_app().await;

    let url = s.url(&format!("/api/v1/applications/{token}/chats"));
    let chats = post_concurrently(s, &url, CREATORS, EACH, |_, _| Value::Null).await;
    let unique: BTreeSet<u64> = chats.iter().copied().collect();
    assert_eq!(unique.len(), chats.len(), "a chat number was handed out twice");
    assert_eq!(unique, (1..=(CREATORS * EACH) as u64).collect(), "chat numbers have a gap");
    let (_, app) = s.get(&format!("/api/v1/applications/{token}")).await;
    assert_eq!(app["chats_count"].as_u64(), Some((CREATORS * EACH) as u64));

    let path = format!("/api/v1/applications/{token}/chats/1/messages");
    let messages =
        post_concurrently(s, &s.url(&path), CREATORS, EACH, |i, j| json!({"body": format!("{i}/{j}")})).await;
    let unique: BTreeSet<u64> = messages.iter().copied().collect();
    assert_eq!(unique.len(), messages.len(), "a message number was handed out twice");
    assert_eq!(unique, (1..=(CREATORS * EACH) as u64).collect(), "message numbers have a gap");

    // Every acknowledged message is persisted and counted at once.
    let (_, chat) = s.get(&format!("/api/v1/applications/{token}/chats/1")).await;
    assert_eq!(chat["messages_count"].as_u64(), Some((CREATORS * EACH) as u64));
    let (_, listed) = s.get(&format!("{path}?per_page=500")).await;
    let listed: BTreeSet<u64> =
        listed.as_array().unwrap().iter().map(|m| m["number"].as_u64().unwrap()).collect();
    assert_eq!(listed, unique);
}

async fn bad_input_gets_precise_errors(s: &TestServer) {
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let apps = s.url("/api/v1/applications");
    let app = s.url(&format!("/api/v1/applications/{token}"));
    let messages = s.url(&format!("/api/v1/applications/{token}/chats/{chat}/messages"));
    let raw =
        |url: &str, ct: &str, body: &str| s.http.post(url).header("content-type", ct).body(body.to_owned());
    let json_ct = "application/json";

    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("malformed JSON", raw(&apps, json_ct, "{\"name\":"), 400, "malformed_json"),
        ("malformed JSON (message)", raw(&messages, json_ct, "{body"), 400, "malformed_json"),
        ("wrong content type", raw(&apps, "text/plain", "name=x"), 400, "unsupported_content_type"),
        ("XML", raw(&messages, "application/xml", "<m/>"), 400, "unsupported_content_type"),
        ("body not an object", raw(&apps, json_ct, "[1,2]"), 422, "invalid_field"),
        ("name missing", raw(&apps, json_ct, "{}"), 422, "invalid_field"),
        ("name empty", raw(&apps, json_ct, "{\"name\":\"  \"}"), 422, "invalid_field"),
        ("name a number", raw(&apps, json_ct, "{\"name\":5}"), 422, "invalid_field"),
        ("name null", raw(&apps, json_ct, "{\"name\":null}"), 422, "invalid_field"),
        (
            "name too long",
            raw(&apps, json_ct, &format!("{{\"name\":\"{}\"}}", "n".repeat(256))),
            422,
            "invalid_field",
        ),
        ("rename without name", s.http.put(&app).json(&json!({})), 422, "invalid_field"),
        ("rename with wrong type", s.http.put(&app).json(&json!({"name": ["x"]})), 422, "invalid_field"),
        ("body missing", raw(&messages, json_ct, "{\"sender\":\"bob\"}"), 422, "invalid_field"),
        ("body empty", raw(&messages, json_ct, "{\"body\":\"\"}"), 422, "invalid_field"),
        ("body an object", raw(&messages, json_ct, "{\"body\":{\"a\":1}}"), 422, "invalid_field"),
        ("sender a number", raw(&messages, json_ct, "{\"body\":\"x\",\"sender\":7}"), 422, "invalid_field"),
        (
            "sender invalid",
            raw(&messages, json_ct, "{\"body\":\"x\",\"sender\":\"a b\"}"),
            422,
            "invalid_field",
        ),
        (
            "oversized body",
            // Not reused afterwards: the server hangs up on a body it did not read,
            // which would break the next request sent on this connection.
            raw(&messages, json_ct, &format!("{{\"body\":\"{}\"}}", "x".repeat(70_000)))
                .header("connection", "close"),
            413,
            "payload_too_large",
        ),
        ("unknown token", s.http.get(s.url("/api/v1/applications/nope")), 404, "application_not_found"),
        (
            "unknown token (chats)",
            s.http.post(s.url("/api/v1/applications/nope/chats")),
            404,
            "application_not_found",
        ),
        (
            "unknown token (messages)",
            raw(&s.url("/api/v1/applications/nope/chats/1/messages"), json_ct, "{\"body\":\"x\"}"),
            404,
            "application_not_found",
        ),
        (
            "unknown chat",
            s.http.get(s.url(&format!("/api/v1/applications/{token}/chats/999"))),
            404,
            "chat_not_found",
        ),
        (
            "chat not a number",
            s.http.get(s.url(&format!("/api/v1/applications/{token}/chats/abc"))),
            404,
            "chat_not_found",
        ),
        (
            "chat zero",
            s.http.get(s.url(&format!("/api/v1/applications/{token}/chats/0/messages"))),
            404,
            "chat_not_found",
        ),
        (
            "post to unknown chat",
            raw(
                &s.url(&format!("/api/v1/applications/{token}/chats/999/messages")),
                json_ct,
                "{\"body\":\"x\"}",
            ),
            404,
            "chat_not_found",
        ),
        ("unknown message", s.http.get(format!("{messages}/777")), 404, "message_not_found"),
        ("message not a number", s.http.get(format!("{messages}/x")), 404, "message_not_found"),
        ("page zero", s.http.get(format!("{messages}?page=0")), 422, "invalid_parameter"),
        ("per_page too big", s.http.get(format!("{messages}?per_page=501")), 422, "invalid_parameter"),
        ("before not a number", s.http.get(format!("{messages}?before=yesterday")), 422, "invalid_parameter"),
        ("unknown route", s.http.get(s.url("/api/v2/things")), 404, "not_found"),
        ("wrong method", s.http.delete(&messages), 405, "method_not_allowed"),
    ];
    for (what, req, status, expected) in cases {
        let (got, body) = s.send(req).await;
        assert_eq!((got, code(&body)), (status, expected), "{what}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    }
    // Nothing above created anything or broke the node.
    let (_, chat_view) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}")).await;
    assert_eq!(chat_view["messages_count"], 0);
    assert_eq!(s.new_chat(&token).await, chat + 1);
}

#[tokio::test]
async fn the_admin_key_guards_application_creation() {
    for mode in [Mode::Embedded, Mode::Cluster] {
        let s = TestServer::start_with(mode, |c| c.server.admin_key = "k3y-for-tests".into()).await;
        let url = s.url("/api/v1/applications");
        let body = json!({"name": "x"});
        let (status, err) = s.send(s.http.post(&url).json(&body)).await;
        assert_eq!((status, code(&err)), (401, "unauthorized"), "{mode:?}");
        let (status, err) = s.send(s.http.post(&url).bearer_auth("wrong").json(&body)).await;
        assert_eq!((status, code(&err)), (403, "forbidden"), "{mode:?}");
        let (status, _) = s.send(s.http.post(&url).bearer_auth("k3y-for-tests").json(&body)).await;
        assert_eq!(status, 201, "{mode:?}");
        s.stop().await;
    }
}

#[tokio::test]
async fn data_survives_a_restart_of_the_embedded_node() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let s = TestServer::start_with(Mode::Embedded, |c| c.store.data_dir = data.clone()).await;
    let token = s.new_app().await;
    let chat = s.new_chat(&token).await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    for _ in 0..3 {
        assert_eq!(s.post(&path, json!({"body": "before"})).await.0, 201);
    }
    s.stop().await;

    let s = TestServer::start_with(Mode::Embedded, |c| c.store.data_dir = data.clone()).await;
    let (_, view) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}")).await;
    assert_eq!(view["messages_count"], 3);
    let (_, m) = s.post(&path, json!({"body": "after"})).await;
    assert_eq!(m["number"], 4, "numbering resumes after the stored messages");
    assert_eq!(s.new_chat(&token).await, chat + 1);
    s.stop().await;
}
