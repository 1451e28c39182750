//! Webhooks against a real receiver (a local HTTP server in the test): every
//! event type, signatures, retries after 500s and timeouts with one event id,
//! order per chat, give-up, disable and re-enable, rotation, deletion, and
//! clear errors for bad registrations. On one node (the local queue), on a
//! cluster node (the queue in Redis), and spread over three nodes (Redis
//! Cluster).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::hooks::{Answer, Received, Receiver, summary};
use common::server::{Mode, TestServer, code};
use common::ws::{connect, join, post};
use serde_json::{Value, json};

on_every_mode!(every_event_type_reaches_a_signed_webhook);
on_both_modes_configured!(
    failures_are_retried_in_order_with_one_event_id,
    a_webhook_that_keeps_failing_is_disabled_and_can_be_enabled_again,
    an_event_failing_past_its_retries_is_given_up_and_its_chat_goes_on,
    a_rotated_secret_signs_beside_the_old_one_and_a_deleted_webhook_hears_nothing,
);

const WAIT: Duration = Duration::from_secs(20);

fn hooks_path(token: &str) -> String {
    format!("/api/v1/applications/{token}/webhooks")
}

/// Registers a webhook at `url` for `events`; returns (id, secret).
async fn register(s: &TestServer, token: &str, url: &str, events: Value) -> (String, String) {
    let (status, hook) = s.post(&hooks_path(token), json!({ "url": url, "events": events })).await;
    assert_eq!(status, 201, "{hook}");
    (hook["id"].as_str().unwrap().to_owned(), hook["secret"].as_str().unwrap().to_owned())
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Checks the request's signature with `secret`, and that its headers match its body.
#[track_caller]
fn assert_signed(r: &Received, secret: &str) {
    assert!(weft::notify::sign::verify(secret, &r.signature, &r.raw, now_s(), 300), "bad signature: {r:?}");
    assert_eq!(r.body["id"], r.id.as_str(), "{r:?}");
    assert_eq!(r.body["type"], r.kind.as_str(), "{r:?}");
    assert!(r.body["app"].as_str().is_some_and(|a| !a.is_empty()), "{r:?}");
    assert!(r.body["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{r:?}");
    assert!(r.body["data"].is_object(), "{r:?}");
}

fn kinds(got: &[Received]) -> BTreeSet<String> {
    got.iter().map(|r| r.kind.clone()).collect()
}

/// The `data.message.seq` of a message event.
fn seq(r: &Received) -> u64 {
    r.body["data"]["message"]["seq"].as_u64().unwrap_or(0)
}

async fn every_event_type_reaches_a_signed_webhook(s: &TestServer) {
    let rx = Receiver::start().await;
    let token = s.new_app().await;
    let (id, secret) = register(s, &token, &rx.url, json!(["*"])).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (status, list) = s.get(&hooks_path(&token)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["webhooks"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["webhooks"][0]["events"].as_array().unwrap().len(), 12, "{list}");
    assert_eq!(list["webhooks"][0]["enabled"], true, "{list}");
    assert!(list["webhooks"][0].get("secret").is_none(), "the secret is shown once: {list}");

    // chat.created, member.added (the owner, then bob), chat.updated.
    let (status, chat) =
        s.post(&format!("/api/v1/applications/{token}/chats"), json!({"created_by": "alice"})).await;
    assert_eq!(status, 201, "{chat}");
    let chat = chat["number"].as_u64().unwrap();
    join(s, &token, chat, "bob").await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}");
    let (status, _) = s.send(s.http.patch(s.url(&path)).json(&json!({"name": "Team"}))).await;
    assert_eq!(status, 200);
    // user.connected and user.online.
    let mut bob = connect(s, &token, "bob").await;
    // message.created twice, message.edited, message.deleted.
    assert_eq!(post(s, &token, chat, "hello").await, 1);
    assert_eq!(post(s, &token, chat, "second").await, 2);
    let message = format!("{path}/messages/1");
    let (status, _) = s.send(s.http.patch(s.url(&message)).json(&json!({"body": "hello!"}))).await;
    assert_eq!(status, 200);
    assert_eq!(s.send(s.http.delete(s.url(&format!("{path}/messages/2")))).await.0, 204);
    // receipt.read.
    bob.send(json!({"type":"read","chat":chat,"seq":2})).await;
    // member.removed, then user.disconnected and (after the debounce) user.offline.
    assert_eq!(s.send(s.http.delete(s.url(&format!("{path}/members/bob")))).await.0, 204);
    bob.close().await;

    let all: BTreeSet<String> = weft::model::EventType::ALL.iter().map(|t| t.as_str().to_owned()).collect();
    let got = rx.wait(WAIT, "every event type arrived", |got| kinds(got) == all).await;
    for r in &got {
        assert_signed(r, &secret);
        assert_eq!(r.attempt, 1, "{r:?}");
    }
    let first = |kind: &str| got.iter().find(|r| r.kind == kind).unwrap().body["data"].clone();
    assert_eq!(first("chat.created")["chat"]["chat"], chat);
    assert_eq!(first("chat.updated")["chat"]["name"], "Team");
    assert_eq!(first("member.added")["user"], "alice");
    assert_eq!(first("member.added")["role"], "owner");
    assert_eq!(first("member.removed")["user"], "bob");
    assert_eq!(first("message.created")["message"]["body"], "hello");
    assert_eq!(first("message.edited")["message"]["body"], "hello!");
    assert_eq!(first("message.deleted")["message"]["seq"], 2);
    assert_eq!(first("message.deleted")["message"]["deleted"], true);
    assert_eq!(first("receipt.read"), json!({"chat": chat, "user": "bob", "seq": 2}));
    assert_eq!(first("user.online"), json!({"user": "bob"}));
    assert_eq!(first("user.connected")["user"], "bob");
    // A chat's events in the order they happened.
    let chat_events: Vec<&str> = got
        .iter()
        .filter(|r| r.body["data"]["chat"] == chat || r.body["data"]["chat"]["chat"] == chat)
        .map(|r| r.kind.as_str())
        .filter(|k| k.starts_with("message.") || k.starts_with("chat."))
        .collect();
    assert_eq!(
        chat_events,
        [
            "chat.created",
            "chat.updated",
            "message.created",
            "message.created",
            "message.edited",
            "message.deleted"
        ],
        "{:#?}",
        summary(&got)
    );
    let created: Vec<u64> = got.iter().filter(|r| r.kind == "message.created").map(seq).collect();
    assert_eq!(created, [1, 2]);
    // Every id once: nothing was delivered twice here.
    let ids: BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "{:#?}", summary(&got));

    // The delivery log names each attempt, newest first, with its status.
    let (status, log) = s.get(&format!("{}/{id}/deliveries", hooks_path(&token))).await;
    assert_eq!(status, 200, "{log}");
    let lines = log["deliveries"].as_array().unwrap();
    assert!(lines.len() >= 12, "{log}");
    assert!(lines.iter().all(|l| l["outcome"] == "delivered" && l["status"] == 200), "{log}");
    assert_eq!(log["webhook"]["id"], id.as_str());
}

/// A server whose webhook attempts time out after 300 ms.
async fn quick(mode: Mode, tweak: impl Fn(&mut weft::Config)) -> TestServer {
    TestServer::start_with(mode, |c| {
        c.webhooks.timeout_ms = 300;
        tweak(c);
    })
    .await
}

async fn failures_are_retried_in_order_with_one_event_id(mode: Mode) {
    let s = quick(mode, |_| {}).await;
    let rx = Receiver::start().await;
    // The first message fails twice (500), then times out, then gets through.
    rx.script(&[Answer::Status(500), Answer::Status(500), Answer::Slow(Duration::from_millis(700), 200)]);
    let token = s.new_app().await;
    let (id, secret) = register(&s, &token, &rx.url, json!(["message.created"])).await;
    let chat = s.new_chat(&token).await;
    for i in 1..=5 {
        assert_eq!(post(&s, &token, chat, &format!("m{i}")).await, i);
    }
    let got = rx
        .wait(WAIT, "the last of five delivered", |got| got.iter().any(|r| seq(r) == 5 && r.answered == 200))
        .await;
    for r in &got {
        assert_signed(r, &secret);
    }
    // The first message: four attempts, one id, attempts counted up.
    let first: Vec<&Received> = got.iter().filter(|r| seq(r) == 1).collect();
    assert!(first.len() >= 4, "{:#?}", summary(&got));
    assert!(first.iter().all(|r| r.id == first[0].id), "{:#?}", summary(&got));
    let attempts: Vec<u32> = first.iter().map(|r| r.attempt).collect();
    assert_eq!(&attempts[..4], [1, 2, 3, 4], "{:#?}", summary(&got));
    // Nothing of the chat overtook the failing head: first arrivals in order.
    let mut order = Vec::new();
    for r in &got {
        if !order.contains(&seq(r)) {
            order.push(seq(r));
        }
    }
    assert_eq!(order, [1, 2, 3, 4, 5], "{:#?}", summary(&got));
    // The log says what happened, with the next retry of each failure.
    let (_, log) = s.get(&format!("{}/{id}/deliveries", hooks_path(&token))).await;
    let lines = log["deliveries"].as_array().unwrap();
    let failed: Vec<&Value> = lines.iter().filter(|l| l["outcome"] == "failed").collect();
    assert_eq!(failed.iter().filter(|l| l["status"] == 500).count(), 2, "{log}");
    assert!(failed.iter().any(|l| l["error"] == "timeout"), "{log}");
    assert!(failed.iter().all(|l| l["next_retry_at"].as_str().is_some()), "{log}");
    assert_eq!(lines.iter().filter(|l| l["outcome"] == "delivered").count(), 5, "{log}");
    s.stop().await;
}

async fn a_webhook_that_keeps_failing_is_disabled_and_can_be_enabled_again(mode: Mode) {
    let s = quick(mode, |c| c.webhooks.disable_after_ms = 400).await;
    let rx = Receiver::start().await;
    rx.fallback(Answer::Status(503));
    let token = s.new_app().await;
    let (id, _) = register(&s, &token, &rx.url, json!(["message.created"])).await;
    let chat = s.new_chat(&token).await;
    post(&s, &token, chat, "lost").await;
    let path = format!("{}/{id}", hooks_path(&token));
    common::ws::wait_within(WAIT, "the webhook is disabled", || async {
        s.get(&path).await.1["enabled"] == false
    })
    .await;
    let (_, hook) = s.get(&path).await;
    assert!(hook["disabled_at"].as_str().is_some(), "{hook}");
    assert!(hook["disabled_reason"].as_str().unwrap().contains("HTTP 503"), "{hook}");
    let (_, log) = s.get(&format!("{path}/deliveries")).await;
    assert_eq!(log["deliveries"][0]["outcome"], "disabled", "{log}");
    let tries = rx.received().len();
    // Disabled: new events are not even queued.
    post(&s, &token, chat, "unheard").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), tries);
    // Back on: the next event gets through.
    rx.fallback(Answer::Status(200));
    let (status, hook) = s.send(s.http.patch(s.url(&path)).json(&json!({"enabled": true}))).await;
    assert_eq!((status, &hook["enabled"]), (200, &json!(true)), "{hook}");
    post(&s, &token, chat, "heard").await;
    rx.wait(WAIT, "the next event is delivered", |got| {
        got.iter().any(|r| r.body["data"]["message"]["body"] == "heard" && r.answered == 200)
    })
    .await;
    // What it missed, replayed from the chat's history with the ids it had.
    let (status, body) = s.post(&format!("{path}/replay"), json!({"chat": chat})).await;
    assert_eq!((status, &body), (202, &json!({"queued": 3, "through": 3})));
    let got = rx
        .wait(WAIT, "the replay is delivered", |got| {
            let heard =
                got.iter().filter(|r| r.body["data"]["message"]["body"] == "heard" && r.answered == 200);
            heard.count() == 2
        })
        .await;
    let delivered: Vec<&Received> = got.iter().filter(|r| r.answered == 200).collect();
    let bodies: Vec<&str> =
        delivered.iter().map(|r| r.body["data"]["message"]["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["heard", "lost", "unheard", "heard"], "{:#?}", summary(&got));
    assert_eq!(delivered[0].id, delivered[3].id, "a replayed event keeps its id");
    for (bad, status, code_) in
        [(json!({}), 422, "invalid_field"), (json!({"chat": 999}), 404, "chat_not_found")]
    {
        let (got_status, body) = s.post(&format!("{path}/replay"), bad.clone()).await;
        assert_eq!((got_status, code(&body)), (status, code_), "{bad}: {body}");
    }
    s.stop().await;
}

async fn an_event_failing_past_its_retries_is_given_up_and_its_chat_goes_on(mode: Mode) {
    let s = quick(mode, |c| c.webhooks.retry_for_ms = 300).await;
    let rx = Receiver::start().await;
    rx.poison("poison");
    let token = s.new_app().await;
    let (id, _) = register(&s, &token, &rx.url, json!(["message.created"])).await;
    let chat = s.new_chat(&token).await;
    post(&s, &token, chat, "poison").await;
    post(&s, &token, chat, "after").await;
    let got = rx
        .wait(WAIT, "the next message gets through", |got| {
            got.iter().any(|r| r.body["data"]["message"]["body"] == "after" && r.answered == 200)
        })
        .await;
    assert!(got.iter().filter(|r| seq(r) == 1).count() >= 2, "{:#?}", summary(&got));
    let (_, log) = s.get(&format!("{}/{id}/deliveries", hooks_path(&token))).await;
    let outcomes: Vec<&str> =
        log["deliveries"].as_array().unwrap().iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes[0], "delivered", "{log}");
    assert_eq!(outcomes[1], "gave_up", "{log}");
    // Still enabled: one bad event does not condemn the endpoint.
    assert_eq!(s.get(&format!("{}/{id}", hooks_path(&token))).await.1["enabled"], true);
    s.stop().await;
}

async fn a_rotated_secret_signs_beside_the_old_one_and_a_deleted_webhook_hears_nothing(mode: Mode) {
    let s = quick(mode, |_| {}).await;
    let rx = Receiver::start().await;
    let token = s.new_app().await;
    let (id, old) = register(&s, &token, &rx.url, json!(["message.created", "message.created"])).await;
    let path = format!("{}/{id}", hooks_path(&token));
    let (status, rotated) = s.post(&format!("{path}/rotate"), json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["events"], json!(["message.created"]), "duplicates are folded: {rotated}");
    assert!(s.get(&path).await.1.get("secret").is_none());
    let chat = s.new_chat(&token).await;
    post(&s, &token, chat, "signed twice").await;
    let got = rx.wait(WAIT, "the message arrived", |got| !got.is_empty()).await;
    assert_signed(&got[0], &new);
    assert_signed(&got[0], &old);
    assert_eq!(got[0].signature.matches("v1=").count(), 2, "{}", got[0].signature);

    assert_eq!(s.send(s.http.delete(s.url(&path))).await.0, 204);
    let (status, body) = s.get(&path).await;
    assert_eq!((status, code(&body)), (404, "webhook_not_found"));
    post(&s, &token, chat, "nobody hears").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 1, "{:#?}", summary(&rx.received()));
    s.stop().await;
}

/// Bad registrations get 4xx with a precise message, on a server that wants
/// https and public addresses (production's defaults).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_get_clear_errors() {
    let s = TestServer::start_with(Mode::Embedded, |c| {
        c.webhooks.allow_http = false;
        c.webhooks.allow_private = false;
    })
    .await;
    let token = s.new_app().await;
    let path = hooks_path(&token);
    let refused = |url: &'static str, events: Value, says: &'static str| {
        let (s, path) = (&s, &path);
        async move {
            let (status, body) = s.post(path, json!({"url": url, "events": events})).await;
            assert_eq!((status, code(&body)), (422, "invalid_field"), "{url}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{url}: {message}");
        }
    };
    let ok = json!(["message.created"]);
    refused("ftp://hooks.example.com/x", ok.clone(), "http(s)").await;
    refused("not a url", ok.clone(), "http(s)").await;
    refused("http://hooks.example.com/x", ok.clone(), "https").await;
    refused("https://user:pw@hooks.example.com/x", ok.clone(), "credentials").await;
    for private in [
        "https://127.0.0.1/x",
        "https://10.0.0.8/x",
        "https://169.254.169.254/",
        "https://[::1]/",
        "https://localhost/x",
    ] {
        refused(private, ok.clone(), "private").await;
    }
    refused("https://hooks.example.com/x", json!(["message.sent"]), "unknown event `message.sent`").await;
    refused("https://hooks.example.com/x", json!([]), "at least one event").await;
    refused("https://hooks.example.com/x", json!("message.created"), "must be a list").await;
    refused("https://hooks.example.com/x", json!([1]), "must be a list").await;
    let (status, body) = s.post(&path, json!({"events": ["message.created"]})).await;
    assert_eq!((status, code(&body)), (422, "invalid_field"), "{body}");
    let (status, body) = s.post(&path, json!({"url": "https://hooks.example.com/x"})).await;
    assert_eq!((status, code(&body)), (422, "invalid_field"), "{body}");
    let raw = s.http.post(s.url(&path)).header("content-type", "application/json").body("{\"url\":");
    let (status, body) = s.send(raw).await;
    assert_eq!((status, code(&body)), (400, "malformed_json"), "{body}");
    let (status, body) =
        s.post(&hooks_path("no-such-token"), json!({"url": "https://a.example/", "events": ok})).await;
    assert_eq!((status, code(&body)), (404, "application_not_found"), "{body}");

    // A good one, then the ways to misname or misuse it.
    let (id, _) = register(&s, &token, "https://hooks.example.com/weft", ok.clone()).await;
    for bad in ["AAAAAAAAAAAAAAAAAAAAAA", "short", "..%2F..%2Fx"] {
        let (status, body) = s.get(&format!("{path}/{bad}")).await;
        assert_eq!((status, code(&body)), (404, "webhook_not_found"), "{bad}: {body}");
    }
    let one = format!("{path}/{id}");
    for (patch, says) in [
        (json!({}), "give `url`"),
        (json!({"enabled": false}), "`enabled` can only be true"),
        (json!({"url": "http://hooks.example.com/"}), "https"),
        (json!({"events": ["nope"]}), "unknown event"),
    ] {
        let (status, body) = s.send(s.http.patch(s.url(&one)).json(&patch)).await;
        assert_eq!((status, code(&body)), (422, "invalid_field"), "{patch}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{patch}: {body}");
    }
    let (status, body) =
        s.send(s.http.patch(s.url(&one)).json(&json!({"events": ["member.added", "member.removed"]}))).await;
    assert_eq!((status, &body["events"]), (200, &json!(["member.added", "member.removed"])), "{body}");
    // At most 20 per application.
    for _ in 1..20 {
        register(&s, &token, "https://hooks.example.com/more", ok.clone()).await;
    }
    let (status, body) = s.post(&path, json!({"url": "https://hooks.example.com/21", "events": ok})).await;
    assert_eq!((status, code(&body)), (422, "invalid_field"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("at most 20"), "{body}");
    // Deleted: gone, and a second delete is 404.
    assert_eq!(s.send(s.http.delete(s.url(&one))).await.0, 204);
    let (status, body) = s.send(s.http.delete(s.url(&one))).await;
    assert_eq!((status, code(&body)), (404, "webhook_not_found"), "{body}");
    s.stop().await;
}

/// The Python verifier docs/webhooks.md shows accepts a real delivery, and
/// refuses it with another secret or an altered body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_verifier_accepts_a_real_delivery() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webhooks.md")).unwrap();
    let snippet = doc.split("```python\n").nth(1).unwrap().split("```").next().unwrap();
    let s = TestServer::start(Mode::Embedded).await;
    let rx = Receiver::start().await;
    let token = s.new_app().await;
    let (_, secret) = register(&s, &token, &rx.url, json!(["message.created"])).await;
    let chat = s.new_chat(&token).await;
    post(&s, &token, chat, "verify me").await;
    let got = rx.wait(WAIT, "the message arrived", |got| !got.is_empty()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &got[0].raw).unwrap();
    let script = format!(
        "{snippet}\nimport sys\nbody = open(sys.argv[3], 'rb').read() + sys.argv[4].encode()\nprint(verify(sys.argv[1], sys.argv[2], body))\n"
    );
    let run = |secret: &str, extra: &str| {
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(&script)
            .arg(secret)
            .arg(&got[0].signature)
            .arg(dir.path().join("body"))
            .arg(extra)
            .output()
            .expect("python3 runs the documented verifier");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(run(&secret, ""), "True");
    assert_eq!(run("whsec_wrong", ""), "False");
    assert_eq!(run(&secret, " "), "False");
    s.stop().await;
}

/// The nice values of this process's threads named `name` (Linux's /proc).
fn nice_of_threads(name: &str) -> Vec<i64> {
    let mut nices = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(stat)) =
            (std::fs::read_to_string(dir.join("comm")), std::fs::read_to_string(dir.join("stat")))
        else {
            continue; // the thread ended meanwhile
        };
        if comm.trim_end() != name {
            continue;
        }
        // After "pid (comm) " come the fields from the third on; nice is the 19th.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        nices.push(fields[16].parse().unwrap());
    }
    nices
}

/// Deliveries run on a thread of their own at a lower priority
/// (`webhooks.delivery_nice`, 10 by default), and a nice value out of range is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_run_on_a_lower_priority_thread() {
    let server = TestServer::start(Mode::Embedded).await;
    let nices = nice_of_threads("weft-deliver");
    assert!(!nices.is_empty(), "no delivery thread");
    assert!(nices.iter().all(|n| *n == 10), "{nices:?}");
    server.stop().await;
    let mut config = weft::Config::default();
    config.webhooks.delivery_nice = 20;
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("webhooks.delivery_nice"), "{error}");
}
