//! Devices, notification settings, push notifications to members who are
//! away (a fake FCM and a fake Web Push service that verify and decrypt what
//! they get), and email digests read back from a real SMTP server (Mailpit).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::time::Duration;

use common::push_service::PushService;
use common::server::{Mode, TestServer, code};
use common::ws::connect;
use serde_json::{Value, json};

fn user_path(token: &str, user: &str, rest: &str) -> String {
    format!("/api/v1/applications/{token}/users/{user}/{rest}")
}

async fn put(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    s.send(s.http.put(s.url(path)).json(&body)).await
}

/// A Web Push subscription of a made-up browser (well formed: a P-256 point and a 16-byte secret).
fn subscription(endpoint: &str) -> String {
    json!({
        "endpoint": endpoint,
        "keys": {
            "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
            "auth": "tBHItJI5svbpez7KI4CCXg"
        }
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_settings_round_trip_and_bad_input_gets_clear_errors() {
    let s = TestServer::start(Mode::Embedded).await;
    let token = s.new_app().await;
    let fcm = "dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx";

    // Devices: registered, listed without tokens, replaced, removed.
    let (status, device) =
        put(&s, &user_path(&token, "carol", "devices/pixel-7"), json!({"provider":"fcm","token":fcm})).await;
    assert_eq!(status, 200, "{device}");
    assert_eq!((device["id"].as_str(), device["provider"].as_str()), (Some("pixel-7"), Some("fcm")));
    assert!(device.get("token").is_none(), "tokens are never shown: {device}");
    let web = subscription("https://updates.push.services.mozilla.com/wpush/v2/gAAAA");
    let (status, _) =
        put(&s, &user_path(&token, "carol", "devices/firefox"), json!({"provider":"webpush","token":web}))
            .await;
    assert_eq!(status, 200);
    let apns = "a".repeat(64);
    let (status, _) =
        put(&s, &user_path(&token, "carol", "devices/iphone"), json!({"provider":"apns","token":apns})).await;
    assert_eq!(status, 200);
    let (_, list) = s.get(&user_path(&token, "carol", "devices")).await;
    let ids: Vec<&str> =
        list["devices"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["firefox", "iphone", "pixel-7"], "{list}");
    let (status, again) = put(
        &s,
        &user_path(&token, "carol", "devices/pixel-7"),
        json!({"provider":"fcm","token":format!("{fcm}x")}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again["created_at"], device["created_at"], "re-registering keeps the device: {again}");
    assert_eq!(s.send(s.http.delete(s.url(&user_path(&token, "carol", "devices/iphone")))).await.0, 204);
    let (status, body) = s.send(s.http.delete(s.url(&user_path(&token, "carol", "devices/iphone")))).await;
    assert_eq!((status, code(&body)), (404, "device_not_found"), "{body}");

    // Malformed registrations.
    for (device, body, says) in [
        ("d1", json!({"provider":"gcm","token":fcm}), "`provider`"),
        ("d1", json!({"provider":"fcm","token":"has spaces in it"}), "token"),
        ("d1", json!({"provider":"apns","token":"xyz"}), "token"),
        ("d1", json!({"provider":"webpush","token":"{\"endpoint\":\"https://push.example/1\"}"}), "keys"),
        ("d1", json!({"provider":"webpush","token":"not json"}), "subscription"),
        ("d1", json!({"provider":"webpush","token":subscription("http://push.example/1")}), "https"),
        ("d1", json!({"provider":"fcm"}), "`token`"),
        ("bad id!", json!({"provider":"fcm","token":fcm}), "device id"),
    ] {
        let (status, answer) =
            put(&s, &user_path(&token, "carol", &format!("devices/{device}")), body.clone()).await;
        assert_eq!((status, code(&answer)), (422, "invalid_field"), "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(&says.to_lowercase()), "{body}: {message}");
    }
    let (status, body) =
        put(&s, &user_path("nope", "carol", "devices/d1"), json!({"provider":"fcm","token":fcm})).await;
    assert_eq!((status, code(&body)), (404, "application_not_found"));

    // Settings: defaults, a change, the change read back.
    let path = user_path(&token, "carol", "notification_settings");
    let (status, defaults) = s.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(
        defaults,
        json!({"email":false,"email_address":null,"push":true,"chats":{},"quiet_hours":null})
    );
    let change = json!({
        "email": true, "email_address": "carol@example.com",
        "chats": {"3": "mentions", "9": "none", "4": "all"},
        "quiet_hours": {"from": "22:00", "to": "07:00", "tz": "Europe/Paris"}
    });
    let (status, changed) = put(&s, &path, change).await;
    assert_eq!(status, 200, "{changed}");
    let want = json!({
        "email": true, "email_address": "carol@example.com", "push": true,
        "chats": {"3": "mentions", "9": "none"},
        "quiet_hours": {"from": "22:00", "to": "07:00", "tz": "Europe/Paris"}
    });
    assert_eq!(changed, want);
    assert_eq!(s.get(&path).await.1, want);
    let (_, changed) =
        put(&s, &path, json!({"chats": {"9": "all"}, "quiet_hours": null, "push": false})).await;
    assert_eq!(changed["chats"], json!({"3": "mentions"}));
    assert_eq!((changed["quiet_hours"].clone(), changed["push"].clone()), (Value::Null, json!(false)));

    // Bad settings.
    for (body, says) in [
        (json!({}), "give"),
        (json!({"push": "yes"}), "`push`"),
        (json!({"chats": {"3": "some"}}), "all"),
        (json!({"chats": {"x": "all"}}), "chat number"),
        (json!({"chats": []}), "`chats`"),
        (json!({"quiet_hours": {"from": "25:00", "to": "07:00", "tz": "UTC"}}), "hh:mm"),
        (json!({"quiet_hours": {"from": "22:00", "to": "07:00", "tz": "Mars/Olympus"}}), "time zone"),
        (json!({"quiet_hours": {"from": "22:00"}}), "quiet_hours.to"),
        (json!({"email_address": "not an address"}), "address"),
        (json!({"email": true, "email_address": null}), "email_address"),
    ] {
        let (status, answer) =
            put(&s, &user_path(&token, "dave", "notification_settings"), body.clone()).await;
        assert_eq!((status, code(&answer)), (422, "invalid_field"), "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains(&says.to_lowercase()), "{body}: {message}");
    }
    assert_eq!(
        s.get(&user_path(&token, "dave", "notification_settings")).await.1,
        defaults,
        "nothing was kept"
    );

    // The same over the WebSocket, for the session's own user.
    let mut erin = connect(&s, &token, "erin").await;
    let answer = erin
        .request(
            json!({"type":"register_device","id":"d1","device_id":"laptop","provider":"webpush","token":web}),
        )
        .await;
    assert_eq!(
        answer,
        json!({"type":"device_registered","id":"d1","device_id":"laptop","provider":"webpush"})
    );
    let answer = erin
        .request(json!({"type":"register_device","id":"d2","device_id":"x","provider":"fcm","token":"a b"}))
        .await;
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("invalid_field")),
        "{answer}"
    );
    let answer = erin
        .request(json!({"type":"notification_settings","id":"n1","chats":{"5":"none"},"quiet_hours":{"from":"09:00","to":"17:00","tz":"UTC"}}))
        .await;
    assert_eq!(answer["type"], "notification_settings", "{answer}");
    assert_eq!((answer["id"].clone(), answer["chats"].clone()), (json!("n1"), json!({"5":"none"})));
    let answer = erin.request(json!({"type":"notification_settings","id":"n2"})).await;
    assert_eq!(answer["quiet_hours"], json!({"from":"09:00","to":"17:00","tz":"UTC"}), "a read: {answer}");
    let answer = erin.request(json!({"type":"unregister_device","id":"d3","device_id":"laptop"})).await;
    assert_eq!(answer, json!({"type":"device_unregistered","id":"d3","device_id":"laptop"}));
    let answer = erin.request(json!({"type":"unregister_device","id":"d4","device_id":"laptop"})).await;
    assert_eq!(answer["code"], "device_not_found", "{answer}");
    let (_, list) = s.get(&user_path(&token, "erin", "devices")).await;
    assert_eq!(list["devices"], json!([]));
    erin.close().await;
    s.stop().await;
}

const WAIT: Duration = Duration::from_secs(20);

on_all_modes_configured!(only_away_members_are_pushed_once_per_chat_window_as_they_chose);

/// A node whose pushes go to `push` and whose emails go to Mailpit, with short windows.
async fn notifying(mode: Mode, push: &PushService, email_after_ms: u64) -> TestServer {
    let push = push.config();
    let (smtp, _) = common::server::mailpit();
    TestServer::start_with(mode, move |c| {
        c.push = push.clone();
        c.notifications.coalesce_ms = 1_000;
        c.notifications.email_after_ms = email_after_ms;
        c.notifications.prefs_cache_ms = 0;
        c.email.smtp_url = smtp.clone();
        c.email.from = "weft <notify@weft.test>".into();
        c.email.public_url = "http://chat.example".into();
        c.email.unsubscribe_secret = "a shared unsubscribe key of the test cluster".into();
    })
    .await
}

/// Registers an FCM device `token` for `user`.
async fn fcm_device(s: &TestServer, token: &str, user: &str, fcm: &str) {
    let (status, body) =
        put(s, &user_path(token, user, "devices/phone"), json!({"provider":"fcm","token":fcm})).await;
    assert_eq!(status, 200, "{body}");
}

async fn settings(s: &TestServer, token: &str, user: &str, body: Value) {
    let (status, answer) = put(s, &user_path(token, user, "notification_settings"), body).await;
    assert_eq!(status, 200, "{answer}");
}

async fn only_away_members_are_pushed_once_per_chat_window_as_they_chose(mode: Mode) {
    let push = PushService::start().await;
    let s = notifying(mode, &push, 3_600_000).await;
    let token = s.new_app().await;
    let (status, chat) = s
        .post(&format!("/api/v1/applications/{token}/chats"), json!({"name":"Team","created_by":"alice"}))
        .await;
    assert_eq!(status, 201, "{chat}");
    let chat = chat["number"].as_u64().unwrap();
    let users = ["bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan", "judy"];
    for user in users {
        common::ws::join(&s, &token, chat, user).await;
    }
    // bob is online; every other one is away.
    for user in ["bob", "carol", "frank", "gina", "hank", "ivan", "judy"] {
        fcm_device(&s, &token, user, &format!("fcm-token-of-{user}")).await;
    }
    let subscription = push.subscribe("dave", None);
    let (status, _) = put(
        &s,
        &user_path(&token, "dave", "devices/firefox"),
        json!({"provider":"webpush","token":subscription}),
    )
    .await;
    assert_eq!(status, 200);
    settings(&s, &token, "frank", json!({"chats": {chat.to_string(): "none"}})).await;
    settings(&s, &token, "gina", json!({"chats": {chat.to_string(): "mentions"}})).await;
    settings(&s, &token, "hank", json!({"chats": {chat.to_string(): "mentions"}})).await;
    settings(&s, &token, "ivan", json!({"push": false})).await;
    // judy's quiet hours cover now, in UTC.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let minute = |offset: i64| {
        let m = ((now / 60) as i64 + offset).rem_euclid(24 * 60);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    settings(
        &s,
        &token,
        "judy",
        json!({"quiet_hours": {"from": minute(-60), "to": minute(60), "tz": "UTC"}}),
    )
    .await;

    let mut alice = connect(&s, &token, "alice").await;
    let bob = connect(&s, &token, "bob").await;
    // alice hears bob come online once the cluster knows where he is.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = alice.next_before(deadline, true).await.expect("bob's presence");
        if frame["type"] == "presence" && frame["user"] == "bob" && frame["online"] == true {
            break;
        }
    }
    // Ten messages, usually well under one window: windows are fixed ticks of
    // the gatherer, so the messages fall into one or two of them, more only
    // when the sends themselves took longer than a window (a loaded machine).
    let sending = std::time::Instant::now();
    for i in 1..=10u64 {
        let body = if i == 4 { "@gina have a look".to_owned() } else { format!("message {i}") };
        let ack = alice.request(common::ws::send(i, chat, &body, &format!("c{i}"))).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    let windows = 2 + sending.elapsed().as_millis() as usize / 1_000;
    let count = |data: &std::collections::BTreeMap<String, String>| data["count"].parse::<u64>().unwrap();
    let web_total = || -> u64 {
        push.webpushes()
            .iter()
            .map(|w| {
                serde_json::from_slice::<Value>(&w.plaintext).unwrap()["data"]["count"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
            .sum()
    };
    let fcm_of = |user: &str| -> Vec<_> {
        push.fcm_messages().into_iter().filter(|m| m.token == format!("fcm-token-of-{user}")).collect()
    };
    // carol and dave hear of every window, so their counts cover the ten
    // messages; gina (mentions only) hears of the one window with her mention.
    common::ws::wait_within(
        WAIT,
        "carol's and dave's pushes cover the ten messages, gina's came",
        || async {
            fcm_of("carol").iter().map(|m| count(&m.data)).sum::<u64>() == 10
                && web_total() == 10
                && !fcm_of("gina").is_empty()
        },
    )
    .await;
    // A window more: nothing else comes.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let carol = fcm_of("carol");
    assert!((1..=windows).contains(&carol.len()), "coalesced per window ({windows} at most): {carol:#?}");
    let last = carol.last().unwrap();
    assert_eq!(last.title, "Team");
    assert!(last.body.ends_with("new messages in Team") || last.body.starts_with("alice: "), "{}", last.body);
    assert_eq!(last.data["chat"], chat.to_string());
    assert_eq!(last.collapse_key.as_deref(), Some(format!("chat-{chat}").as_str()));
    if carol.len() == 1 {
        assert_eq!(last.body, "10 new messages in Team");
    }
    let gina = fcm_of("gina");
    assert_eq!(gina.len(), 1, "one window held the mention: {gina:#?}");
    assert!((1..=10).contains(&count(&gina[0].data)), "{gina:#?}");
    assert!(
        gina.iter().any(|m| m.body.contains("mentions you") || m.body.contains("mentioned you")),
        "{gina:#?}"
    );
    let tokens: std::collections::BTreeSet<String> =
        push.fcm_messages().into_iter().map(|m| m.token).collect();
    let want: std::collections::BTreeSet<String> =
        ["carol", "gina"].iter().map(|u| format!("fcm-token-of-{u}")).collect();
    assert_eq!(
        tokens, want,
        "bob is online, frank muted, hank not mentioned, ivan off, judy quiet, erin has no device"
    );
    let web = push.webpushes();
    assert!(web.iter().all(|w| w.id == "dave"), "{web:#?}");
    let payload: Value = serde_json::from_slice(&web.last().unwrap().plaintext).unwrap();
    assert_eq!(payload["title"], "Team", "{payload}");
    assert_eq!(payload["data"]["chat"], chat.to_string(), "{payload}");
    assert!((1..=windows).contains(&web.len()), "coalesced per window ({windows} at most): {web:#?}");

    // Dead tokens: the providers say so, and the devices are gone.
    push.unregister("fcm-token-of-carol");
    push.gone("dave");
    let ack = alice.request(common::ws::send(11, chat, "anyone?", "c11")).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for user in ["carol", "dave"] {
        common::ws::wait_within(WAIT, "the dead device is removed", || async {
            s.get(&user_path(&token, user, "devices")).await.1["devices"] == json!([])
        })
        .await;
    }
    assert_eq!(
        s.get(&user_path(&token, "gina", "devices")).await.1["devices"].as_array().map(Vec::len),
        Some(1),
        "a live device stays"
    );
    bob.close().await;
    alice.close().await;
    s.stop().await;
}

/// A member away with unread messages gets one digest email (read back from
/// Mailpit); one who came back does not; the email's unsubscribe link works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_away_member_gets_one_digest_email_and_can_unsubscribe() {
    let push = PushService::start().await;
    let http = reqwest::Client::new();
    let (_, api) = common::mail::mailpit_api(&http).await;
    let s = notifying(Mode::Embedded, &push, 1_500).await;
    let token = s.new_app().await;
    let chat = common::ws::chat_with(&s, &token, &["alice", "erin", "kate"]).await;
    let path = format!("/api/v1/applications/{token}/chats/{chat}");
    let (status, _) = s.send(s.http.patch(s.url(&path)).json(&json!({"name": "Launch <b>team</b>"}))).await;
    assert_eq!(status, 200);
    let (erin, kate) = (common::mail::unique_address(), common::mail::unique_address());
    settings(&s, &token, "erin", json!({"email": true, "email_address": erin})).await;
    settings(&s, &token, "kate", json!({"email": true, "email_address": kate})).await;
    common::ws::post(&s, &token, chat, "the first unread line").await;
    common::ws::post(&s, &token, chat, "and a second <script>").await;
    // kate comes back before her check is due: no email for her.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let kate_online = connect(&s, &token, "kate").await;
    let mail = common::mail::received(&http, &api, &erin).await;
    let text = mail["Text"].as_str().unwrap();
    assert!(mail["Subject"].as_str().unwrap().contains("2 unread messages"), "{}", mail["Subject"]);
    assert!(text.contains("Launch <b>team</b>") && text.contains("the first unread line"), "{text}");
    let html = mail["HTML"].as_str().unwrap();
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"), "{html}");
    // Nothing for kate, and no second email for erin.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let found = common::mail::search(&http, &api, &kate).await;
    assert_eq!(found["messages"], json!([]), "kate came back: {found}");
    let _ = common::mail::received(&http, &api, &erin).await;
    // The unsubscribe link: its page, then its POST turns email off.
    let link = text.split_whitespace().find(|w| w.contains("/api/v1/unsubscribe?")).unwrap();
    let query = link.split_once('?').unwrap().1;
    let page = s.http.get(s.url(&format!("/api/v1/unsubscribe?{query}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form method=post"), "a page with a button");
    assert_eq!(
        s.get(&user_path(&token, "erin", "notification_settings")).await.1["email"],
        true,
        "a GET changes nothing"
    );
    let forged = query.replace("token=", "token=x");
    let (status, body) = s.send(s.http.post(s.url(&format!("/api/v1/unsubscribe?{forged}")))).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
    let (status, body) = s.send(s.http.post(s.url(&format!("/api/v1/unsubscribe?{query}")))).await;
    assert_eq!((status, &body), (200, &json!({"unsubscribed": true})));
    assert_eq!(s.get(&user_path(&token, "erin", "notification_settings")).await.1["email"], false);
    common::mail::delete(&http, &api, &erin).await;
    kate_online.close().await;
    s.stop().await;
}
