//! Attachments: uploads granted over REST (the backend) and the WebSocket (a
//! member), bytes PUT to the real store through the granted URL (the node's
//! own filesystem on the embedded store, SeaweedFS's S3 on CQL), sent with a
//! message, seen live on every node with download URLs that serve the same
//! bytes, in history and `sync`; refused when foreign, missing, too big, of
//! a refused type or too many, with nothing half-applied; gone with their message.
// Test code: a panic is a failed check (clippy's allow-unwrap-in-tests only covers #[test] fns).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::server::{Mode, TestServer, code, with_attachments};
use common::ws::{assert_error, chat_with, connect};
use serde_json::{Value, json};

on_all_modes_configured!(
    attachments_are_uploaded_sent_seen_downloaded_and_deleted,
    foreign_missing_and_bad_attachments_are_refused_and_nothing_is_half_applied,
    expired_urls_are_refused,
);

fn limits(config: &mut weft::Config) {
    with_attachments(config);
    config.attachments.max_size = 1024;
    config.attachments.max_per_message = 3;
    config.attachments.allowed_content_types = vec!["image/*".into(), "text/plain".into()];
}

/// A URL as a client resolves it: the node's paths against its address.
fn absolute(s: &TestServer, url: &str) -> String {
    if url.starts_with('/') { s.url(url) } else { url.to_owned() }
}

async fn grant(s: &TestServer, token: &str, chat: u64, body: Value) -> (u16, Value) {
    s.post(&format!("/api/v1/applications/{token}/chats/{chat}/attachments"), body).await
}

async fn put(s: &TestServer, url: &str, content_type: &str, bytes: Vec<u8>) -> u16 {
    let resp =
        s.http.put(absolute(s, url)).header("content-type", content_type).body(bytes).send().await.unwrap();
    let status = resp.status().as_u16();
    if status >= 500 {
        // The store's own words (S3's error XML) tell its fault from weft's in a failed run.
        eprintln!("PUT {url} → {status}: {}", resp.text().await.unwrap_or_default());
    }
    status
}

async fn download(s: &TestServer, url: &str) -> (u16, Vec<u8>) {
    let resp = s.http.get(absolute(s, url)).send().await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
}

/// Grants an upload over REST and PUTs `bytes`; returns the id.
async fn uploaded(s: &TestServer, token: &str, chat: u64, name: &str, bytes: &[u8]) -> String {
    let body = json!({"name": name, "content_type": "text/plain", "size": bytes.len()});
    let (status, upload) = grant(s, token, chat, body).await;
    assert_eq!(status, 201, "{upload}");
    assert_eq!(put(s, upload["upload_url"].as_str().unwrap(), "text/plain", bytes.to_vec()).await, 200);
    upload["id"].as_str().unwrap().to_owned()
}

async fn attachments_are_uploaded_sent_seen_downloaded_and_deleted(mode: Mode) {
    let s = TestServer::start_with(mode, limits).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice", "bob"]).await;
    let mut alice = connect(&s, &token, "alice").await;
    let mut bob = connect(&s, &token, "bob").await;

    let from_backend = b"report from the backend".to_vec();
    let by_rest = uploaded(&s, &token, chat, "report.txt", &from_backend).await;
    let photo: Vec<u8> = (0..=255u8).cycle().take(700).collect();
    let ready = alice
        .request(json!({"type":"upload","id":"u","chat":chat,"name":"cat.png","content_type":"image/png","size":photo.len()}))
        .await;
    assert_eq!(ready["type"], "upload_ready", "{ready}");
    let by_ws = ready["attachment"]["id"].as_str().unwrap().to_owned();
    assert!(ready["attachment"]["expires_at"].is_string(), "{ready}");
    assert_eq!(
        put(&s, ready["attachment"]["upload_url"].as_str().unwrap(), "image/png", photo.clone()).await,
        200
    );

    let ack = alice
        .request(json!({"type":"send","id":1,"chat":chat,"body":"look","client_msg_id":"c1","attachments":[by_rest, by_ws]}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let seq = ack["seq"].as_u64().unwrap();
    let live = bob.next().await;
    assert_eq!((live["type"].as_str(), live["seq"].as_u64()), (Some("message"), Some(seq)), "{live}");
    let files = live["attachments"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2, "{live}");
    assert_eq!(
        (files[0]["id"].as_str(), files[0]["name"].as_str()),
        (Some(by_rest.as_str()), Some("report.txt"))
    );
    assert_eq!(
        (files[1]["content_type"].as_str(), files[1]["size"].as_u64()),
        (Some("image/png"), Some(700))
    );
    for (file, bytes) in files.iter().zip([&from_backend, &photo]) {
        let (status, got) = download(&s, file["url"].as_str().unwrap()).await;
        assert_eq!((status, &got), (200, bytes), "{file}");
    }

    // History, sync (forward and backward) and a hello's catch-up render them too, with URLs that work.
    let (_, page) = s.get(&format!("/api/v1/applications/{token}/chats/{chat}/messages")).await;
    let listed = page.as_array().unwrap().iter().find(|m| m["number"] == json!(seq)).unwrap().clone();
    let synced = bob.request(json!({"type":"sync","id":"s","chat":chat,"after":0})).await;
    let synced = synced["items"].as_array().unwrap().iter().find(|m| m["seq"] == json!(seq)).unwrap().clone();
    let newest = bob.request(json!({"type":"sync","id":"n","chat":chat,"latest":true})).await;
    let newest = newest["items"].as_array().unwrap().iter().find(|m| m["seq"] == json!(seq)).unwrap().clone();
    let older = bob.request(json!({"type":"sync","id":"o","chat":chat,"before":seq + 1})).await;
    let older = older["items"].as_array().unwrap().iter().find(|m| m["seq"] == json!(seq)).unwrap().clone();
    let mut late = connect(&s, &token, "bob").await;
    let resumed = late.request(json!({"type":"hello","id":"h","resume":[{"chat":chat,"after":0}]})).await;
    let resumed =
        resumed["items"].as_array().unwrap().iter().find(|m| m["seq"] == json!(seq)).unwrap().clone();
    late.close().await;
    for copy in [&listed, &synced, &newest, &older, &resumed] {
        let url = copy["attachments"][1]["url"].as_str().unwrap();
        assert_eq!(download(&s, url).await, (200, photo.clone()), "{copy}");
    }

    // Deleting the message deletes its files: the URLs find nothing, the message shows none.
    let old_urls: Vec<String> = files.iter().map(|f| f["url"].as_str().unwrap().to_owned()).collect();
    let path = format!("/api/v1/applications/{token}/chats/{chat}/messages/{seq}");
    assert_eq!(s.send(s.http.delete(s.url(&path))).await.0, 204);
    for url in &old_urls {
        assert_eq!(download(&s, url).await.0, 404, "{url}");
    }
    let (_, gone) = s.get(&path).await;
    assert!(gone.get("attachments").is_none(), "{gone}");
    assert_eq!(alice.next().await["type"], "message_deleted");
    // And an id of a deleted message cannot be sent again.
    let again = alice
        .request(json!({"type":"send","id":2,"chat":chat,"body":"again","client_msg_id":"c2","attachments":[by_ws]}))
        .await;
    assert_error(&again, &json!(2), "invalid_attachment");
    alice.close().await;
    bob.close().await;
    s.stop().await;
}

async fn foreign_missing_and_bad_attachments_are_refused_and_nothing_is_half_applied(mode: Mode) {
    let s = TestServer::start_with(mode, limits).await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice"]).await;
    let other_chat = chat_with(&s, &token, &["alice"]).await;
    let other_app = s.new_app().await;
    let foreign_chat = chat_with(&s, &other_app, &["alice"]).await;
    let messages = format!("/api/v1/applications/{token}/chats/{chat}/messages");

    // Bad uploads: 422, nothing granted.
    for (body, want) in [
        (json!({"name":"big.txt","content_type":"text/plain","size":1025}), "invalid_attachment"),
        (json!({"name":"a.zip","content_type":"application/zip","size":10}), "invalid_attachment"),
        (json!({"name":"a.txt","content_type":"not a type","size":10}), "invalid_attachment"),
        (json!({"name":"a.txt","content_type":"text/plain","size":0}), "invalid_field"),
        (json!({"content_type":"text/plain","size":10}), "invalid_field"),
    ] {
        let (status, answer) = grant(&s, &token, chat, body.clone()).await;
        assert_eq!((status, code(&answer)), (422, want), "{body} → {answer}");
    }
    let (status, answer) =
        grant(&s, &token, 999, json!({"name":"a","content_type":"text/plain","size":1})).await;
    assert_eq!((status, code(&answer)), (404, "chat_not_found"), "{answer}");
    let mut alice = connect(&s, &token, "alice").await;
    let bad = alice
        .request(json!({"type":"upload","id":"b","chat":chat,"name":"big","content_type":"text/plain","size":5000}))
        .await;
    assert_error(&bad, &json!("b"), "invalid_attachment");
    let bad = alice.request(json!({"type":"upload","id":"c","chat":chat,"name":"x"})).await;
    assert_error(&bad, &json!("c"), "invalid_frame");
    let bad = alice
        .request(json!({"type":"send","id":"d","chat":chat,"body":"x","client_msg_id":"d","attachments":["short"]}))
        .await;
    assert_error(&bad, &json!("d"), "invalid_frame");

    // A PUT larger than declared, or with another type, or through a tampered URL, stores nothing.
    let (_, upload) =
        grant(&s, &token, chat, json!({"name":"n.txt","content_type":"text/plain","size":5})).await;
    let url = upload["upload_url"].as_str().unwrap().to_owned();
    // (The node refuses it at once; a presigned S3 URL cannot bind the length, so
    // there the send's HEAD finds the wrong size and refuses the id below.)
    let too_big = put(&s, &url, "text/plain", b"123456".to_vec()).await;
    assert!(too_big == 413 || (too_big == 200 && !url.starts_with('/')), "{too_big}");
    let wrong_type = put(&s, &url, "image/png", b"12345".to_vec()).await;
    assert!(wrong_type == 415 || (wrong_type == 403 && !url.starts_with('/')), "{wrong_type}");
    let tampered = url.replacen("size=5", "size=6", 1).replacen("Expires=", "Expires=1", 1);
    let refused = put(&s, &tampered, "text/plain", b"123456".to_vec()).await;
    assert!(refused == 403 || (refused == 400 && !url.starts_with('/')), "{refused}");
    let never_uploaded = upload["id"].as_str().unwrap().to_owned();

    let good = uploaded(&s, &token, chat, "good.txt", b"hello").await;
    let of_other_chat = uploaded(&s, &token, other_chat, "other.txt", b"other").await;
    let of_other_app = uploaded(&s, &other_app, foreign_chat, "foreign.txt", b"foreign").await;
    let unknown = "AAAAAAAAAAAAAAAAAAAAAA".to_owned();
    for (ids, what) in [
        (vec![good.clone(), unknown], "unknown"),
        (vec![good.clone(), of_other_chat], "another chat's"),
        (vec![good.clone(), of_other_app], "another application's"),
        (vec![good.clone(), never_uploaded], "never uploaded"),
        (vec![good.clone(), good.clone()], "named twice"),
        (vec![good.clone(), good.clone(), good.clone(), good.clone()], "too many"),
    ] {
        let (status, answer) = s.post(&messages, json!({"body":"x","attachments":ids})).await;
        assert_eq!((status, code(&answer)), (422, "invalid_attachment"), "{what}: {answer}");
    }
    let (status, answer) = s.post(&messages, json!({"body":"x","attachments":["bad id"]})).await;
    assert_eq!((status, code(&answer)), (422, "invalid_field"), "{answer}");
    // Nothing was half-applied: no message stored, and the good file is still free to attach.
    let (_, page) = s.get(&messages).await;
    assert_eq!(page.as_array().unwrap().len(), 0, "{page}");
    let post = |ids: Value| {
        s.http
            .post(s.url(&messages))
            .header("idempotency-key", "k1")
            .json(&json!({"body":"ok","attachments":ids}))
    };
    let (status, sent) = s.send(post(json!([good]))).await;
    assert_eq!(status, 201, "{sent}");
    // The same key again answers the same message; with other files it is another request.
    assert_eq!(s.send(post(json!([good]))).await.1["number"], sent["number"]);
    let (status, reused) = s.send(post(json!([]))).await;
    assert_eq!((status, code(&reused)), (422, "idempotency_key_reused"), "{reused}");
    // Only members may upload.
    let mut carol = connect(&s, &token, "carol").await;
    let refused = carol
        .request(
            json!({"type":"upload","id":"e","chat":chat,"name":"x.txt","content_type":"text/plain","size":1}),
        )
        .await;
    assert_error(&refused, &json!("e"), "not_a_member");
    carol.close().await;
    let url = sent["attachments"][0]["url"].as_str().unwrap().to_owned();
    assert_eq!(download(&s, &url).await, (200, b"hello".to_vec()));
    // A tampered download URL is refused.
    let tampered = if url.contains("sig=") {
        url.replacen("sig=", "sig=A", 1)
    } else {
        url.replacen("Signature=", "Signature=0", 1)
    };
    assert_eq!(download(&s, &tampered).await.0, 403);
    alice.close().await;
    s.stop().await;
}

/// When a URL made now with a lifetime of `ttl` seconds has surely expired
/// (either store's rounding), in unix seconds.
fn expired_after(ttl: u64) -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + ttl + 2
}

async fn expired_urls_are_refused(mode: Mode) {
    let s = TestServer::start_with(mode, |config| {
        with_attachments(config);
        config.attachments.upload_url_ttl_secs = 1;
        config.attachments.download_url_ttl_secs = 1;
    })
    .await;
    let token = s.new_app().await;
    let chat = chat_with(&s, &token, &["alice"]).await;
    let messages = format!("/api/v1/applications/{token}/chats/{chat}/messages");
    // A 1 s URL can expire before a loaded machine uses it: a fresh grant each try.
    let mut id = None;
    for _ in 0..10 {
        let body = json!({"name": "a.txt", "content_type": "text/plain", "size": 3});
        let (status, upload) = grant(&s, &token, chat, body).await;
        assert_eq!(status, 201, "{upload}");
        if put(&s, upload["upload_url"].as_str().unwrap(), "text/plain", b"abc".to_vec()).await == 200 {
            id = upload["id"].as_str().map(str::to_owned);
            break;
        }
    }
    let id = id.expect("an upload within its URL's second");
    let (status, sent) = s.post(&messages, json!({"body":"x","attachments":[id]})).await;
    assert_eq!(status, 201, "{sent}");
    let url = sent["attachments"][0]["url"].as_str().unwrap().to_owned();
    let (_, upload) =
        grant(&s, &token, chat, json!({"name":"b.txt","content_type":"text/plain","size":3})).await;
    let upload_url = upload["upload_url"].as_str().unwrap().to_owned();
    // Past the URLs' time (the clock's, not this machine's speed): both are refused.
    let after = expired_after(1);
    while SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() <= after {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(download(&s, &url).await.0, 403);
    assert_eq!(put(&s, &upload_url, "text/plain", b"abc".to_vec()).await, 403);
    if url.starts_with('/') {
        let resp = s.http.get(s.url(&url)).send().await.unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "url_expired", "{body}");
    }
    // A fresh read signs a fresh URL (read again if a loaded machine let it expire).
    let mut downloaded = (0, Vec::new());
    for _ in 0..10 {
        let (_, again) = s.get(&messages).await;
        downloaded = download(&s, again[0]["attachments"][0]["url"].as_str().unwrap()).await;
        if downloaded.0 != 403 {
            break;
        }
    }
    assert_eq!(downloaded, (200, b"abc".to_vec()));
    s.stop().await;
}
