//! Scoped server keys: every operation under an application, on every mode,
//! allows a key holding its scope and refuses (403 `insufficient_scope`, naming
//! the scope) one without it, as the authorization table of docs/security.md
//! says; the application token keeps working everywhere; a key of another
//! application, a revoked or unknown key and a user token are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::auth_table::{SCOPES, table, url_for};
use common::server::{Mode, TestServer, code};
use serde_json::{Value, json};

async fn call(s: &TestServer, method: &str, url: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = s.http.request(method.parse().unwrap(), s.url(url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    s.send(request).await
}

/// A new key of the application `token` with `scopes`: (id, secret, app id).
async fn new_key(s: &TestServer, token: &str, scopes: &[&str]) -> (String, String, String) {
    let url = format!("/api/v1/applications/{token}/keys");
    let (status, body) = s.post(&url, json!({"name": format!("{scopes:?}"), "scopes": scopes})).await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("wk_"), "{secret}");
    (body["id"].as_str().unwrap().to_owned(), secret, body["app_id"].as_str().unwrap().to_owned())
}

fn is_refusal(status: u16, body: &Value) -> bool {
    status == 401
        || (status == 403 && code(body) == "insufficient_scope")
        || (status == 404 && code(body) == "application_not_found")
}

/// Every operation of the document has one row of the table, and every row an operation.
async fn the_table_is_the_document(s: &TestServer) {
    let (status, doc) = s.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let mut listed = BTreeSet::new();
    for row in table() {
        let op = format!("{} {}", row.method, row.path);
        assert!(listed.insert(op.clone()), "{op} is listed twice");
        assert_eq!(
            row.scope.is_some(),
            row.path.starts_with("/api/v1/applications/{token}"),
            "{op}: a scope exactly for the operations under an application"
        );
    }
    let missing: Vec<_> = documented.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&documented).collect();
    assert!(missing.is_empty(), "operations missing from docs/security.md: {missing:?}");
    assert!(extra.is_empty(), "docs/security.md lists operations that do not exist: {extra:?}");
}

/// Route by route: a key with only the row's scope passes the check, a key
/// with every other scope is refused naming it, the application token passes.
async fn each_scope_allows_its_routes_and_refuses_the_rest(s: &TestServer) {
    let token = s.new_app().await;
    let mut only = std::collections::BTreeMap::new();
    let mut without = std::collections::BTreeMap::new();
    let mut app = String::new();
    for scope in SCOPES {
        let (_, key, id) = new_key(s, &token, &[scope]).await;
        only.insert(scope, key);
        let others: Vec<&str> = SCOPES.iter().copied().filter(|o| *o != scope && *o != "admin").collect();
        without.insert(scope, new_key(s, &token, &others).await.1);
        app = id;
    }
    let mut checked = 0;
    for row in table() {
        let Some(scope) = row.scope.as_deref() else { continue };
        let op = format!("{} {}", row.method, row.path);
        let (status, body) = call(s, &row.method, &url_for(&row.path, &app), Some(&without[scope])).await;
        assert_eq!((status, code(&body)), (403, "insufficient_scope"), "{op} without `{scope}`: {body}");
        assert_eq!(body["error"]["scope"], scope, "{op}: the refusal names the scope: {body}");
        let (status, body) = call(s, &row.method, &url_for(&row.path, &app), Some(&only[scope])).await;
        assert!(!is_refusal(status, &body), "{op} with only `{scope}`: {status} {body}");
        let (status, body) = call(s, &row.method, &url_for(&row.path, &token), None).await;
        assert!(!is_refusal(status, &body), "{op} with the application token: {status} {body}");
        checked += 1;
    }
    assert!(checked >= 45, "only {checked} operations checked");
}

/// Keys: invalid scopes, what a key can do and not, other applications, user
/// tokens, listing without secrets, revocation on every node, last use.
async fn keys_are_scoped_listed_and_revoked(s: &TestServer) {
    let token = s.new_app().await;
    let keys = format!("/api/v1/applications/{token}/keys");
    for (body, expected) in [
        (json!({"name": "k", "scopes": ["chats:delete"]}), "invalid_scope"),
        (json!({"name": "k", "scopes": []}), "invalid_scope"),
        (json!({"name": "k"}), "invalid_field"),
        (json!({"scopes": ["admin"]}), "invalid_field"),
    ] {
        let (status, answer) = s.post(&keys, body.clone()).await;
        assert_eq!((status, code(&answer)), (422, expected), "{body}: {answer}");
    }

    let (writer_id, writer, app) = new_key(s, &token, &["messages:write", "chats:write"]).await;
    let by_key = |path: &str| format!("/api/v1/applications/{app}{path}");
    let (status, chat) = s.send(s.http.post(s.url(&by_key("/chats"))).bearer_auth(&writer)).await;
    assert_eq!(status, 201, "{chat}");
    let number = chat["number"].as_u64().unwrap();
    let post = s.http.post(s.url(&by_key(&format!("/chats/{number}/messages"))));
    let (status, message) = s.send(post.bearer_auth(&writer).json(&json!({"body": "hi"}))).await;
    assert_eq!(status, 201, "{message}");
    let (status, refused) = call(s, "GET", &by_key("/chats"), Some(&writer)).await;
    assert_eq!(
        (status, code(&refused), refused["error"]["scope"].as_str()),
        (403, "insufficient_scope", Some("chats:read"))
    );
    let (status, refused) = s
        .send(
            s.http
                .post(s.url(&by_key("/keys")))
                .bearer_auth(&writer)
                .json(&json!({"name": "x", "scopes": ["admin"]})),
        )
        .await;
    assert_eq!((status, refused["error"]["scope"].as_str()), (403, Some("admin")), "{refused}");

    // The application token keeps every right, with or without keys about.
    let (status, list) = s.get(&format!("/api/v1/applications/{token}/chats/{number}/messages")).await;
    assert_eq!(status, 200, "{list}");

    // A key names its own application only; the id alone, or with a user token, names none.
    let other = s.new_app().await;
    let (_, stranger, other_app) = new_key(s, &other, &["admin"]).await;
    let (status, body) = call(s, "GET", &by_key("/chats"), Some(&stranger)).await;
    assert_eq!((status, code(&body)), (404, "application_not_found"), "{body}");
    let (status, body) =
        call(s, "GET", &format!("/api/v1/applications/{other_app}/chats"), Some(&writer)).await;
    assert_eq!((status, code(&body)), (404, "application_not_found"), "{body}");
    let (status, body) = call(s, "GET", &format!("/api/v1/applications/{token}/chats"), Some(&writer)).await;
    assert_eq!((status, code(&body)), (404, "application_not_found"), "a key goes with the id: {body}");
    let (status, body) = call(s, "GET", &by_key("/chats"), None).await;
    assert_eq!((status, code(&body)), (404, "application_not_found"), "{body}");
    let (status, minted) =
        s.post(&format!("/api/v1/applications/{token}/users/alice/tokens"), json!({})).await;
    assert_eq!(status, 201, "{minted}");
    let jwt = minted["token"].as_str().unwrap();
    let (status, body) = call(s, "GET", &by_key("/chats"), Some(jwt)).await;
    assert_eq!(
        (status, code(&body)),
        (404, "application_not_found"),
        "a user token is no server credential: {body}"
    );
    let (status, body) = call(s, "GET", &by_key("/chats"), Some("wk_not-a-key")).await;
    assert_eq!((status, code(&body)), (401, "invalid_key"), "{body}");

    // Listed without secrets; the use is recorded.
    let (status, list) = s.get(&keys).await;
    assert_eq!(status, 200, "{list}");
    let text = list.to_string();
    assert!(!text.contains(&writer) && !text.contains("secret") && !text.contains("hash"), "{text}");
    let listed = list["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["scopes"], json!(["chats:write", "messages:write"]));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.get(&keys).await.1["keys"][0]["last_used_at"].is_null() {
        assert!(std::time::Instant::now() < deadline, "the key's use was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Revoked: refused by every node at once.
    let (status, body) = s.send(s.http.delete(s.url(&format!("{keys}/{writer_id}")))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["revoked_at"].is_string(), "{body}");
    for node in s.nodes() {
        let (status, body) = call(node, "POST", &by_key("/chats"), Some(&writer)).await;
        assert_eq!((status, code(&body)), (401, "invalid_key"), "{} after revocation: {body}", node.base);
    }
    let (status, body) = s.send(s.http.delete(s.url(&format!("{keys}/nope")))).await;
    assert_eq!((status, code(&body)), (404, "key_not_found"), "{body}");
}

on_every_mode!(
    the_table_is_the_document,
    each_scope_allows_its_routes_and_refuses_the_rest,
    keys_are_scoped_listed_and_revoked
);
