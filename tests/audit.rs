//! The audit trail, on the embedded store, on Redis + Cassandra and on three
//! nodes of a cluster: every administrative act done through the REST API
//! appends exactly one entry naming the actor, action, object, client address
//! and request id; the `action` filter and paging work; no entry holds a
//! message body, the application token or secret, a server key, a refresh or
//! access token or a webhook secret. On three nodes act `i` goes through node
//! `i % 3` and every node answers the same trail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::server::{Mode, TestServer};
use serde_json::{Value, json};

const IP: &str = "203.0.113.7";
const BODY: &str = "a very private message body 5d1c";

/// One act through the API with a request id and a client address; act `i`
/// goes through node `i % n` of the `n` nodes.
struct Client<'a> {
    nodes: Vec<&'a TestServer>,
    sent: usize,
}

impl Client<'_> {
    /// Sends `method path` (with `body` when given, with `key` as bearer when
    /// given); returns (status, body, request id).
    async fn act(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value, String) {
        let node = self.nodes[self.sent % self.nodes.len()];
        self.sent += 1;
        let request_id = format!("audit-test-{}", self.sent);
        let mut request = node
            .http
            .request(method.parse().unwrap(), node.url(path))
            .header("x-request-id", &request_id)
            .header("x-forwarded-for", format!("{IP}, 10.0.0.1"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let echoed = response.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
        assert_eq!(echoed, request_id, "the request id is answered");
        let text = response.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        (status, body, request_id)
    }
}

/// Every entry of the trail, following `next`, `limit` at a time.
async fn pages(s: &TestServer, token: &str, query: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    let mut count = 0;
    loop {
        let mut path = format!("/api/v1/applications/{token}/audit?limit={limit}{query}");
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let (status, page) = s.get(&path).await;
        assert_eq!(status, 200, "{page}");
        count += 1;
        let got = page["entries"].as_array().unwrap();
        assert!(got.len() <= limit, "{page}");
        entries.extend(got.iter().cloned());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return (entries, count),
        }
        assert!(count < 100, "paging does not end");
    }
}

async fn every_administrative_act_is_audited_once_without_secrets(s: &TestServer) {
    let mut c = Client { nodes: s.nodes(), sent: 0 };
    // (action, object, request id, actor), oldest first.
    let mut expected: Vec<(String, String, String, String)> = Vec::new();
    let mut secrets: Vec<String> = vec![BODY.to_owned()];

    let (status, app, rid) =
        c.act("POST", "/api/v1/applications", Some(json!({"name": "audited"})), None).await;
    assert_eq!(status, 201, "{app}");
    let token = app["token"].as_str().unwrap().to_owned();
    let app_id = app["id"].as_str().unwrap().to_owned();
    secrets.extend([token.clone(), app["secret"].as_str().unwrap().to_owned()]);
    let base = format!("/api/v1/applications/{token}");
    let as_app = "application_token".to_owned();
    expected.push(("application.create".into(), format!("application:{app_id}"), rid, "admin".into()));

    let (status, body, rid) = c.act("PATCH", &base, Some(json!({"name": "renamed"})), None).await;
    assert_eq!(status, 200, "{body}");
    expected.push(("application.update".into(), format!("application:{app_id}"), rid, as_app.clone()));

    let (status, body, rid) = c.act("POST", &format!("{base}/secret"), None, None).await;
    assert_eq!(status, 200, "{body}");
    secrets.push(body["secret"].as_str().unwrap().to_owned());
    expected.push(("application.rotate_secret".into(), format!("application:{app_id}"), rid, as_app.clone()));

    let scopes = json!({"name": "ops", "scopes": ["admin", "messages:write"]});
    let (status, key, rid) = c.act("POST", &format!("{base}/keys"), Some(scopes), None).await;
    assert_eq!(status, 201, "{key}");
    let key_id = key["id"].as_str().unwrap().to_owned();
    let key_secret = key["secret"].as_str().unwrap().to_owned();
    secrets.push(key_secret.clone());
    expected.push(("key.create".into(), format!("key:{key_id}"), rid, as_app.clone()));

    let chat = s.new_chat(&token).await;
    let member = format!("{base}/chats/{chat}/members/bob");
    let (status, body, rid) = c.act("PUT", &member, Some(json!({"role": "admin"})), None).await;
    assert_eq!(status, 204, "{body}");
    expected.push(("member.put".into(), format!("chat:{chat}/member:bob"), rid, as_app.clone()));
    let (status, body, rid) = c.act("DELETE", &member, None, None).await;
    assert_eq!(status, 204, "{body}");
    expected.push(("member.remove".into(), format!("chat:{chat}/member:bob"), rid, as_app.clone()));

    let (status, message) =
        s.post(&format!("{base}/chats/{chat}/messages"), json!({"body": BODY, "sender": "alice"})).await;
    assert_eq!(status, 201, "{message}");
    let number = message["number"].as_u64().unwrap();
    // Deleted with the server key: the actor is the key.
    let by_key = format!("/api/v1/applications/{app_id}/chats/{chat}/messages/{number}");
    let (status, body, rid) = c.act("DELETE", &by_key, None, Some(&key_secret)).await;
    assert_eq!(status, 204, "{body}");
    expected.push((
        "message.delete".into(),
        format!("chat:{chat}/message:{number}"),
        rid,
        format!("key:{key_id}"),
    ));

    let sessions = format!("{base}/users/alice/sessions");
    let (status, pair) = s.post(&sessions, json!({"device": "phone"})).await;
    assert_eq!(status, 201, "{pair}");
    secrets.extend([
        pair["refresh_token"].as_str().unwrap().to_owned(),
        pair["access_token"].as_str().unwrap().to_owned(),
    ]);
    let session = pair["session_id"].as_str().unwrap().to_owned();
    let (status, body, rid) = c.act("DELETE", &format!("{sessions}/{session}"), None, None).await;
    assert_eq!(status, 204, "{body}");
    expected.push(("session.revoke".into(), format!("user:alice/session:{session}"), rid, as_app.clone()));
    let (status, pair) = s.post(&sessions, json!({})).await;
    assert_eq!(status, 201, "{pair}");
    secrets.push(pair["refresh_token"].as_str().unwrap().to_owned());
    let (status, body, rid) = c.act("DELETE", &sessions, None, None).await;
    assert_eq!(status, 204, "{body}");
    expected.push(("session.revoke_all".into(), "user:alice".into(), rid, as_app.clone()));

    let hook = json!({"url": "http://127.0.0.1:9/hook?sig=querysecret77", "events": ["message.created"]});
    let (status, hook, rid) = c.act("POST", &format!("{base}/webhooks"), Some(hook), None).await;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    secrets.extend([hook["secret"].as_str().unwrap().to_owned(), "querysecret77".to_owned()]);
    let hook_path = format!("{base}/webhooks/{hook_id}");
    expected.push(("webhook.create".into(), format!("webhook:{hook_id}"), rid, as_app.clone()));
    let change = json!({"events": ["message.created", "message.deleted"]});
    let (status, body, rid) = c.act("PATCH", &hook_path, Some(change), None).await;
    assert_eq!(status, 200, "{body}");
    expected.push(("webhook.update".into(), format!("webhook:{hook_id}"), rid, as_app.clone()));
    let (status, body, rid) = c.act("POST", &format!("{hook_path}/rotate"), None, None).await;
    assert_eq!(status, 200, "{body}");
    secrets.push(body["secret"].as_str().unwrap().to_owned());
    expected.push(("webhook.rotate".into(), format!("webhook:{hook_id}"), rid, as_app.clone()));
    let (status, body, rid) = c.act("DELETE", &hook_path, None, None).await;
    assert_eq!(status, 204, "{body}");
    expected.push(("webhook.delete".into(), format!("webhook:{hook_id}"), rid, as_app.clone()));

    let (status, body, rid) = c.act("DELETE", &format!("{base}/keys/{key_id}"), None, None).await;
    assert_eq!(status, 200, "{body}");
    expected.push(("key.revoke".into(), format!("key:{key_id}"), rid, as_app.clone()));

    // Every node answers the same trail, whichever node each act went through.
    let mut first: Option<Value> = None;
    for node in s.nodes() {
        let page = the_trail_is(node, &token, chat, &expected, &secrets).await;
        match &first {
            None => first = Some(page),
            Some(first) => assert_eq!(&page, first, "the nodes answer different trails"),
        }
    }
}

/// Checks the trail as `s` answers it: exactly `expected` (oldest first), no
/// secret, the action filter, paging, refusals; returns the whole page.
async fn the_trail_is(
    s: &TestServer,
    token: &str,
    chat: u64,
    expected: &[(String, String, String, String)],
    secrets: &[String],
) -> Value {
    let base = format!("/api/v1/applications/{token}");
    // The whole trail in one page, newest first: exactly one entry per act.
    let (status, page) = s.get(&format!("{base}/audit")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["next"].is_null(), "{page}");
    let entries = page["entries"].as_array().unwrap();
    // Newest first by time; acts stamped in the same millisecond (on one node
    // or on several) have no order of their own, so they are put back in the
    // order they were made (the request ids count up) before comparing.
    let at = |e: &Value| {
        let text = e["at"].as_str().unwrap_or_else(|| panic!("no at in {e}"));
        let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
        at.unwrap_or_else(|err| panic!("at {text}: {err}")).unix_timestamp_nanos()
    };
    assert!(entries.windows(2).all(|w| at(&w[0]) >= at(&w[1])), "not newest first: {page}");
    let act_number = |e: &Value| -> u64 {
        e["request_id"].as_str().and_then(|r| r.strip_prefix("audit-test-")).unwrap().parse().unwrap()
    };
    let mut oldest_first: Vec<&Value> = entries.iter().collect();
    oldest_first.sort_by_key(|e| (at(e), act_number(e)));
    let got: Vec<(String, String, String, String)> = oldest_first
        .into_iter()
        .map(|e| {
            assert_eq!(e["ip"], IP, "{e}");
            let field = |name: &str| e[name].as_str().unwrap().to_owned();
            (field("action"), field("object"), field("request_id"), field("actor"))
        })
        .collect();
    assert_eq!(got, expected, "{page}");
    let put = entries.iter().find(|e| e["action"] == "member.put").unwrap();
    assert_eq!(put["before"], json!({"member": false, "role": null}), "{put}");
    assert_eq!(put["after"], json!({"member": true, "role": "admin"}), "{put}");
    let removed = entries.iter().find(|e| e["action"] == "member.remove").unwrap();
    assert_eq!(removed["before"], json!({"member": true, "role": "admin"}), "{removed}");
    let update = entries.iter().find(|e| e["action"] == "application.update").unwrap();
    assert_eq!(update["before"]["name"], "audited", "{update}");
    assert_eq!(update["after"]["name"], "renamed", "{update}");

    // Nothing secret anywhere in the trail.
    let text = page.to_string();
    for secret in secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the audit trail holds a secret or a body ({secret}): {text}"
        );
    }

    // The action filter.
    let (status, filtered) = s.get(&format!("{base}/audit?action=member.remove")).await;
    assert_eq!(status, 200, "{filtered}");
    let only = filtered["entries"].as_array().unwrap();
    assert_eq!(only.len(), 1, "{filtered}");
    assert_eq!(only[0]["object"], format!("chat:{chat}/member:bob"));

    // Paging: three at a time gives the same entries in the same order.
    let (paged, count) = pages(s, token, "", 3).await;
    assert_eq!(count, expected.len().div_ceil(3), "pages");
    assert_eq!(&paged, entries, "paging lists the trail once, in order");
    let (paged, _) = pages(s, token, "&action=webhook.update", 1).await;
    assert_eq!(paged.len(), 1, "{paged:?}");

    // A bad cursor or limit is refused.
    let (status, _) = s.get(&format!("{base}/audit?after=nonsense")).await;
    assert_eq!(status, 422);
    let (status, _) = s.get(&format!("{base}/audit?limit=0")).await;
    assert_eq!(status, 422);
    page
}

mod embedded {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_administrative_act_is_audited_once_without_secrets() {
        let server = super::TestServer::start(super::Mode::Embedded).await;
        super::every_administrative_act_is_audited_once_without_secrets(&server).await;
        server.stop().await;
    }
}

mod cluster {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_administrative_act_is_audited_once_without_secrets() {
        let server = super::TestServer::start(super::Mode::Cluster).await;
        super::every_administrative_act_is_audited_once_without_secrets(&server).await;
        server.stop().await;
    }
}

mod spread {
    /// Three nodes on Cassandra and a Redis Cluster; the acts go through
    /// the three in turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_administrative_act_is_audited_once_without_secrets() {
        let server = super::TestServer::start(super::Mode::Spread).await;
        assert_eq!(server.nodes().len(), 3);
        super::every_administrative_act_is_audited_once_without_secrets(&server).await;
        server.stop().await;
    }
}
