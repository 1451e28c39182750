//! The push senders (src/notify/push) against a fake provider on loopback
//! (tests/common/push_service.rs): FCM's OAuth grant, send and error answers,
//! and Web Push bodies the fake decrypts itself (RFC 8291) under a VAPID
//! signature it verifies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use common::push_service::{self, Failure, PushService};
use serde_json::{Value, json};
use weft::notify::push::{PushConfig, PushError, PushMessage, Pushers, check_webpush_subscription};

fn message(title: &str, collapse_key: &str) -> PushMessage {
    PushMessage {
        title: title.into(),
        body: "Ada: are you coming? ☕".into(),
        data: BTreeMap::from([
            ("chat".to_owned(), "42".to_owned()),
            ("message".to_owned(), "m-7".to_owned()),
        ]),
        collapse_key: collapse_key.into(),
    }
}

async fn setup() -> (PushService, Pushers) {
    let fake = PushService::start().await;
    let pushers = Pushers::new(&fake.config()).unwrap();
    (fake, pushers)
}

#[tokio::test]
async fn fcm_sends_the_v1_message_and_reuses_one_grant() {
    let (fake, pushers) = setup().await;
    let msg = message("Ada", "chat-42");
    pushers.send_fcm("device-token:one", &msg).await.unwrap();
    pushers.send_fcm("device-token:two", &message("Grace", "")).await.unwrap();

    assert_eq!(fake.grants(), 1, "the access token is kept");
    assert_eq!(fake.refusals(), Vec::<String>::new());
    let sent = fake.fcm_messages();
    assert_eq!(sent.len(), 2);
    let first = &sent[0];
    assert_eq!(first.project, push_service::PROJECT);
    assert_eq!(first.token, "device-token:one");
    assert_eq!(first.title, "Ada");
    assert_eq!(first.body, msg.body);
    assert_eq!(first.data, msg.data);
    assert_eq!(first.collapse_key.as_deref(), Some("chat-42"));
    let m = &first.raw["message"];
    assert_eq!(m["android"], json!({"collapse_key": "chat-42", "ttl": "3600s"}));
    assert_eq!(m["apns"]["headers"]["apns-collapse-id"], "chat-42");
    assert_eq!(m["webpush"]["headers"], json!({"TTL": "3600", "Topic": "chat-42"}));
    let expiration: i64 = m["apns"]["headers"]["apns-expiration"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((expiration - now - 3600).abs() < 60, "{expiration}");
    assert_eq!(sent[1].token, "device-token:two");
    assert_eq!(sent[1].collapse_key, None);
    assert!(sent[1].raw["message"]["webpush"]["headers"].get("Topic").is_none());
}

#[tokio::test]
async fn fcm_dead_tokens_are_invalid() {
    let (fake, pushers) = setup().await;
    fake.unregister("uninstalled");
    fake.invalidate("garbled");
    let msg = message("Ada", "");
    assert_eq!(pushers.send_fcm("uninstalled", &msg).await, Err(PushError::InvalidToken));
    assert_eq!(pushers.send_fcm("garbled", &msg).await, Err(PushError::InvalidToken));
    // A token no provider would issue is not sent at all.
    let calls = fake.fcm_calls();
    assert_eq!(pushers.send_fcm("not a token", &msg).await, Err(PushError::InvalidToken));
    assert_eq!(fake.fcm_calls(), calls);
    assert_eq!(fake.fcm_messages().len(), 0);
}

#[tokio::test]
async fn fcm_a_bad_message_is_rejected_not_blamed_on_the_token() {
    let (fake, pushers) = setup().await;
    let mut msg = message("Ada", "");
    msg.data.insert("google.reserved".into(), "x".into());
    let Err(PushError::Rejected(reason)) = pushers.send_fcm("device", &msg).await else { panic!() };
    assert!(reason.contains("400") && reason.contains("message.data"), "{reason}");
    assert!(!reason.contains("Invalid value"), "FCM's free text stays out: {reason}");
    assert_eq!(fake.fcm_messages().len(), 0);
}

#[tokio::test]
async fn fcm_outages_and_quotas_are_retried() {
    let (fake, pushers) = setup().await;
    let msg = message("Ada", "");
    fake.fail_fcm(&[Failure::Unavailable]);
    let Err(PushError::Retry { after: None, reason }) = pushers.send_fcm("device", &msg).await else {
        panic!()
    };
    assert!(reason.contains("503"), "{reason}");

    fake.fail_fcm(&[Failure::RateLimited(42)]);
    assert_eq!(
        pushers.send_fcm("device", &msg).await,
        Err(PushError::Retry {
            after: Some(Duration::from_secs(42)),
            reason: "FCM answered 429 (QUOTA_EXCEEDED)".into()
        })
    );
    fake.fail_fcm(&[Failure::Status(500)]);
    assert!(matches!(pushers.send_fcm("device", &msg).await, Err(PushError::Retry { .. })));

    // Past the timeout (here 500 ms): retry.
    let slow = Pushers::new(&PushConfig { timeout_ms: 500, ..fake.config() }).unwrap();
    fake.fail_fcm(&[Failure::Stall(Duration::from_secs(3))]);
    let Err(PushError::Retry { reason, .. }) = slow.send_fcm("device", &msg).await else { panic!() };
    assert!(reason.contains("timed out"), "{reason}");

    // And the next send goes through.
    pushers.send_fcm("device", &msg).await.unwrap();
    assert_eq!(fake.fcm_messages().len(), 1);
}

#[tokio::test]
async fn fcm_a_revoked_access_token_is_renewed_once() {
    let (fake, pushers) = setup().await;
    let msg = message("Ada", "");
    pushers.send_fcm("device", &msg).await.unwrap();
    assert_eq!(fake.grants(), 1);
    fake.revoke_tokens();
    pushers.send_fcm("device", &msg).await.unwrap();
    assert_eq!(fake.grants(), 2, "a 401 fetched a new token");
    assert_eq!(fake.fcm_calls(), 3, "one refused, one retried");
    pushers.send_fcm("device", &msg).await.unwrap();
    assert_eq!(fake.grants(), 2, "the new token is kept");
    assert_eq!(fake.fcm_messages().len(), 3);
}

#[tokio::test]
async fn fcm_a_token_about_to_expire_is_renewed_before_use() {
    let (fake, pushers) = setup().await;
    // Granted for 2 s: renewed after 1 s (halfway through a short lifetime).
    fake.token_lifetime(2);
    let msg = message("Ada", "");
    pushers.send_fcm("device", &msg).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    pushers.send_fcm("device", &msg).await.unwrap();
    assert_eq!(fake.grants(), 2);
    assert_eq!(fake.fcm_calls(), 2, "no 401 on the way");
}

#[tokio::test]
async fn fcm_the_token_endpoint_down_is_a_retry_and_refusing_is_a_rejection() {
    let (fake, pushers) = setup().await;
    let msg = message("Ada", "");
    fake.fail_token(&[Failure::Unavailable]);
    let Err(PushError::Retry { reason, .. }) = pushers.send_fcm("device", &msg).await else { panic!() };
    assert!(reason.contains("OAuth token endpoint answered 503"), "{reason}");
    assert_eq!(fake.fcm_calls(), 0);

    // A key the endpoint does not know (another account's): invalid_grant.
    let mut account: Value = serde_json::from_str(&fake.service_account()).unwrap();
    account["client_email"] = "someone-else@weft-push-test.iam.gserviceaccount.com".into();
    let stranger =
        Pushers::new(&PushConfig { fcm_credentials: account.to_string(), ..fake.config() }).unwrap();
    let Err(PushError::Rejected(reason)) = stranger.send_fcm("device", &msg).await else { panic!() };
    assert!(reason.contains("invalid_grant"), "{reason}");

    // Nothing listening: a connection error, retried.
    account["token_uri"] = "http://127.0.0.1:9/token".into();
    let nowhere =
        Pushers::new(&PushConfig { fcm_credentials: account.to_string(), ..fake.config() }).unwrap();
    assert!(matches!(nowhere.send_fcm("device", &msg).await, Err(PushError::Retry { .. })));

    pushers.send_fcm("device", &msg).await.unwrap();
    assert_eq!(fake.grants(), 1);
}

#[tokio::test]
async fn webpush_is_encrypted_for_the_browser_and_signed() {
    let (fake, pushers) = setup().await;
    let server_key = pushers.vapid_public_key().unwrap();
    let subscription = fake.subscribe("browser-1", Some(&server_key));
    check_webpush_subscription(&subscription, true).unwrap();

    let msg = message("Ada", "chat:42/with:odd+chars");
    pushers.send_webpush(&subscription, &msg).await.unwrap();
    assert_eq!(fake.refusals(), Vec::<String>::new());
    let got = fake.webpushes();
    assert_eq!(got.len(), 1);
    let push = &got[0];
    assert_eq!(push.id, "browser-1");
    let expected = json!({"title": "Ada", "body": msg.body, "data": {"chat": "42", "message": "m-7"}});
    assert_eq!(String::from_utf8(push.plaintext.clone()).unwrap(), expected.to_string());
    assert_eq!(push.content_encoding, "aes128gcm");
    assert_eq!(push.ttl, 3600);
    assert_eq!(push.urgency.as_deref(), Some("normal"));
    let topic = push.topic.as_deref().unwrap();
    assert_eq!(topic.len(), 32, "an unsafe collapse key becomes a 32-character digest");
    assert_eq!(push.vapid_subject, "mailto:ops@weft.example");
    assert_eq!(push.vapid_key, server_key);
    assert!((0..=24 * 3600).contains(&push.vapid_valid_for));

    // The same key and subscription again: a fresh encryption, the same topic.
    pushers.send_webpush(&subscription, &msg).await.unwrap();
    let again = &fake.webpushes()[1];
    assert_eq!(again.plaintext, push.plaintext);
    assert_eq!(again.topic, push.topic);
    // A safe collapse key is the topic as it is; none, no topic.
    pushers.send_webpush(&subscription, &message("Ada", "chat-42")).await.unwrap();
    pushers.send_webpush(&subscription, &message("Ada", "")).await.unwrap();
    let got = fake.webpushes();
    assert_eq!(got[2].topic.as_deref(), Some("chat-42"));
    assert_eq!(got[3].topic, None);
}

#[tokio::test]
async fn webpush_dead_subscriptions_are_invalid() {
    let (fake, pushers) = setup().await;
    let server_key = pushers.vapid_public_key().unwrap();
    let gone = fake.subscribe("gone", Some(&server_key));
    fake.gone("gone");
    let msg = message("Ada", "");
    assert_eq!(pushers.send_webpush(&gone, &msg).await, Err(PushError::InvalidToken));
    // An endpoint the push service does not know: 404.
    let unknown = gone.replace("/wp/gone", "/wp/never-made");
    assert_eq!(pushers.send_webpush(&unknown, &msg).await, Err(PushError::InvalidToken));
    // A subscription this server would not accept is not sent.
    let calls = fake.webpush_calls();
    assert_eq!(pushers.send_webpush("{\"endpoint\": 1}", &msg).await, Err(PushError::InvalidToken));
    assert_eq!(fake.webpush_calls(), calls);
}

#[tokio::test]
async fn webpush_failures_map_to_retry_and_rejection() {
    let (fake, pushers) = setup().await;
    let server_key = pushers.vapid_public_key().unwrap();
    let subscription = fake.subscribe("b", Some(&server_key));
    let msg = message("Ada", "");
    fake.fail_webpush(&[Failure::Status(429)]);
    assert!(matches!(
        pushers.send_webpush(&subscription, &msg).await,
        Err(PushError::Retry { after: None, .. })
    ));
    fake.fail_webpush(&[Failure::RateLimited(7)]);
    assert!(matches!(
        pushers.send_webpush(&subscription, &msg).await,
        Err(PushError::Retry { after: Some(d), .. }) if d == Duration::from_secs(7)
    ));
    fake.fail_webpush(&[Failure::Status(502)]);
    assert!(matches!(pushers.send_webpush(&subscription, &msg).await, Err(PushError::Retry { .. })));
    fake.fail_webpush(&[Failure::Status(413)]);
    assert!(matches!(pushers.send_webpush(&subscription, &msg).await, Err(PushError::Rejected(_))));
    fake.fail_webpush(&[Failure::Status(400)]);
    assert!(matches!(pushers.send_webpush(&subscription, &msg).await, Err(PushError::Rejected(_))));

    // Signed by another server key than the subscription's: the push service refuses (403).
    let other = Pushers::new(&fake.config()).unwrap();
    let Err(PushError::Rejected(reason)) = other.send_webpush(&subscription, &msg).await else { panic!() };
    assert!(reason.contains("403"), "{reason}");

    // Too large for one push: refused before sending.
    let calls = fake.webpush_calls();
    let big = PushMessage { body: "x".repeat(4000), ..msg.clone() };
    assert!(
        matches!(pushers.send_webpush(&subscription, &big).await, Err(PushError::Rejected(r)) if r.contains("bytes"))
    );
    assert_eq!(fake.webpush_calls(), calls);
    // The largest that fits goes through, and decrypts.
    let overhead = json!({"title": "Ada", "body": "", "data": msg.data}).to_string().len();
    let largest = PushMessage { body: "y".repeat(weft::notify::push::MAX_WEBPUSH_PAYLOAD - overhead), ..msg };
    pushers.send_webpush(&subscription, &largest).await.unwrap();
    assert_eq!(fake.webpushes().last().unwrap().plaintext.len(), weft::notify::push::MAX_WEBPUSH_PAYLOAD);
    assert_eq!(fake.refusals(), Vec::<String>::new());
}

#[tokio::test]
async fn webpush_private_endpoints_and_http_are_refused_unless_allowed() {
    let fake = PushService::start().await;
    let strict = Pushers::new(&PushConfig { allow_private: false, ..fake.config() }).unwrap();
    let subscription = fake.subscribe("b", None);
    assert_eq!(strict.send_webpush(&subscription, &message("Ada", "")).await, Err(PushError::InvalidToken));
    let https_only = Pushers::new(&PushConfig { allow_http: false, ..fake.config() }).unwrap();
    assert_eq!(
        https_only.send_webpush(&subscription, &message("Ada", "")).await,
        Err(PushError::InvalidToken)
    );
    assert_eq!(fake.webpush_calls(), 0);
}

#[tokio::test]
async fn unconfigured_providers_are_not_configured() {
    let fake = PushService::start().await;
    let fcm_only = Pushers::new(&PushConfig { vapid_private_key: String::new(), ..fake.config() }).unwrap();
    let subscription = fake.subscribe("b", None);
    assert_eq!(
        fcm_only.send_webpush(&subscription, &message("Ada", "")).await,
        Err(PushError::NotConfigured)
    );
    assert_eq!(fcm_only.vapid_public_key(), None);
    let webpush_only = Pushers::new(&PushConfig { fcm_credentials: String::new(), ..fake.config() }).unwrap();
    assert_eq!(webpush_only.send_fcm("device", &message("Ada", "")).await, Err(PushError::NotConfigured));
}

#[test]
fn malformed_subscriptions_are_refused() {
    let key = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    let auth = "BTBZMqHH6r4Tts7J_aSIgg";
    let sub = |endpoint: &str, p256dh: &str, auth: &str| {
        json!({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}).to_string()
    };
    assert!(
        check_webpush_subscription(
            &sub("https://updates.push.services.mozilla.com/wpush/v2/gAAA", key, auth),
            false
        )
        .is_ok()
    );
    for (bad, allow_http) in [
        (String::new(), true),
        ("[]".to_owned(), true),
        (json!({"endpoint": "https://push.example/x"}).to_string(), true),
        (json!({"endpoint": "https://push.example/x", "keys": {"p256dh": key}}).to_string(), true),
        (sub("http://push.example/x", key, auth), false),
        (sub("javascript:alert(1)", key, auth), true),
        (sub("https://push.example/x", &key[..40], auth), true),
        (sub("https://push.example/x", key, &format!("{auth}AAAA")), true),
    ] {
        let err = check_webpush_subscription(&bad, allow_http).unwrap_err();
        assert!(!err.is_empty(), "{bad}");
    }
}

#[test]
fn the_fake_decrypts_rfc_8291s_example() {
    // RFC 8291 Appendix A: the browser's private key, its auth secret, the message.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let ua_secret =
        p256::SecretKey::from_slice(&b64.decode("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94").unwrap())
            .unwrap();
    let auth: [u8; 16] = b64.decode("BTBZMqHH6r4Tts7J_aSIgg").unwrap().try_into().unwrap();
    let body = b64
        .decode(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        )
        .unwrap();
    let plaintext = push_service::decrypt(&body, &ua_secret, &auth).unwrap();
    assert_eq!(plaintext, b"When I grow up, I want to be a watermelon");
    // A flipped bit anywhere fails authentication.
    let mut tampered = body.clone();
    *tampered.last_mut().unwrap() ^= 1;
    assert!(push_service::decrypt(&tampered, &ua_secret, &auth).is_err());
    let mut wrong_auth = auth;
    wrong_auth[0] ^= 1;
    assert!(push_service::decrypt(&body, &ua_secret, &wrong_auth).is_err());
}
