//! What a device may register: the checks the API runs on push tokens and
//! Web Push subscriptions (their messages are the client's error text), and
//! the parsed subscription the Web Push sender uses.

use base64::Engine as _;
use p256::PublicKey;
use reqwest::Url;
use serde::Deserialize;

use crate::notify::target::{MAX_URL, Policy, check_url};

/// The longest FCM registration token accepted.
pub const MAX_FCM_TOKEN: usize = 4096;

/// The longest Web Push subscription JSON accepted.
pub const MAX_SUBSCRIPTION: usize = 4096;

/// Checks an FCM registration token: 1 to 4096 characters of `A-Z a-z 0-9 _ : . -`.
pub fn check_fcm_token(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= MAX_FCM_TOKEN
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("an FCM token must be 1 to 4096 characters of letters, digits, '_', ':', '.' and '-'".into())
    }
}

/// Checks an APNs device token: 64 to 200 hexadecimal digits, whole bytes.
pub fn check_apns_token(t: &str) -> Result<(), String> {
    let ok = (64..=200).contains(&t.len())
        && t.len().is_multiple_of(2)
        && t.bytes().all(|b| b.is_ascii_hexdigit());
    if ok { Ok(()) } else { Err("an APNs token must be 64 to 200 hexadecimal digits (whole bytes)".into()) }
}

/// Checks a Web Push subscription, the JSON of the browser's
/// `PushSubscription` (`{"endpoint", "keys": {"p256dh", "auth"}}`, other
/// members such as `expirationTime` ignored): the endpoint https (or http
/// when `allow_http`), `p256dh` the base64url of an uncompressed P-256
/// point, `auth` the base64url of 16 bytes.
pub fn check_webpush_subscription(t: &str, allow_http: bool) -> Result<(), String> {
    Subscription::parse(t, allow_http).map(drop)
}

/// A Web Push subscription, checked.
#[derive(Debug, Clone)]
pub(super) struct Subscription {
    /// Where pushes are POSTed.
    pub endpoint: Url,
    /// The browser's ECDH key.
    pub p256dh: PublicKey,
    /// The browser's authentication secret.
    pub auth: [u8; 16],
}

#[derive(Deserialize)]
struct Raw {
    endpoint: String,
    keys: RawKeys,
}

#[derive(Deserialize)]
struct RawKeys {
    p256dh: String,
    auth: String,
}

impl Subscription {
    /// Parses and checks a subscription (the message says what is wrong).
    pub fn parse(t: &str, allow_http: bool) -> Result<Subscription, String> {
        if t.len() > MAX_SUBSCRIPTION {
            return Err(format!("a Web Push subscription must be at most {MAX_SUBSCRIPTION} bytes"));
        }
        let raw: Raw = serde_json::from_str(t).map_err(|_| {
            "a Web Push subscription must be the JSON {\"endpoint\": ..., \"keys\": {\"p256dh\": ..., \"auth\": ...}}"
                .to_owned()
        })?;
        // Private addresses are judged when a push is sent (`allow_private`).
        let policy = Policy { allow_http, allow_private: true };
        let endpoint = check_url(&raw.endpoint, policy).map_err(|_| {
            let scheme = if allow_http { "http(s)" } else { "https" };
            format!("the subscription's `endpoint` must be an absolute {scheme} URL of at most {MAX_URL} characters, without credentials")
        })?;
        let p256dh = decode(&raw.keys.p256dh)
            .filter(|b| b.len() == 65 && b[0] == 4)
            .and_then(|b| PublicKey::from_sec1_bytes(&b).ok())
            .ok_or("the subscription's `keys.p256dh` must be the base64url of an uncompressed P-256 public key (65 bytes)")?;
        let auth = decode(&raw.keys.auth)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or("the subscription's `keys.auth` must be the base64url of 16 bytes")?;
        Ok(Subscription { endpoint, p256dh, auth })
    }
}

/// Base64url, with or without padding (browsers leave it out, some libraries add it).
fn decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcm_tokens() {
        assert!(check_fcm_token("dGhpcyBpcyBub3Q:APA91bH-x_y.z").is_ok());
        assert!(check_fcm_token(&"a".repeat(4096)).is_ok());
        assert!(check_fcm_token("").is_err());
        assert!(check_fcm_token(&"a".repeat(4097)).is_err());
        for bad in ["a b", "a/b", "a+b", "a=b", "é", "a\n"] {
            assert!(check_fcm_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn apns_tokens() {
        assert!(check_apns_token(&"0a".repeat(32)).is_ok());
        assert!(check_apns_token(&"AF".repeat(100)).is_ok());
        assert!(check_apns_token(&"0a".repeat(31)).is_err());
        assert!(check_apns_token(&"0a".repeat(101)).is_err());
        assert!(check_apns_token(&format!("{}a", "0a".repeat(32))).is_err());
        assert!(check_apns_token(&"0g".repeat(32)).is_err());
    }

    // A subscription as Chrome serialises it (the keys of RFC 8291's example).
    const P256DH: &str =
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
    const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

    fn sub(endpoint: &str, p256dh: &str, auth: &str) -> String {
        serde_json::json!({"endpoint": endpoint, "expirationTime": null, "keys": {"p256dh": p256dh, "auth": auth}})
            .to_string()
    }

    #[test]
    fn webpush_subscriptions() {
        let good = sub("https://fcm.googleapis.com/fcm/send/abc:def", P256DH, AUTH);
        let parsed = Subscription::parse(&good, false).unwrap();
        assert_eq!(parsed.endpoint.as_str(), "https://fcm.googleapis.com/fcm/send/abc:def");
        assert_eq!(parsed.auth.len(), 16);
        assert!(
            check_webpush_subscription(
                &sub("https://push.example/x", &format!("{P256DH}="), &format!("{AUTH}==")),
                false
            )
            .is_ok()
        );

        let http = sub("http://127.0.0.1:9/wp/1", P256DH, AUTH);
        assert!(check_webpush_subscription(&http, true).is_ok());
        let err = check_webpush_subscription(&http, false).unwrap_err();
        assert!(err.contains("https"), "{err}");

        let compressed = {
            let point = PublicKey::from_sec1_bytes(&decode(P256DH).unwrap()).unwrap();
            use p256::elliptic_curve::sec1::ToEncodedPoint as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(point.to_encoded_point(true).as_bytes())
        };
        let off_curve = {
            let mut b = decode(P256DH).unwrap();
            b[64] ^= 1;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        for (bad, about) in [
            ("not json".to_owned(), "JSON"),
            (r#"{"endpoint":"https://push.example/x"}"#.to_owned(), "JSON"),
            (sub("ftp://push.example/x", P256DH, AUTH), "endpoint"),
            (sub("https://user:pw@push.example/x", P256DH, AUTH), "endpoint"),
            (sub("/relative", P256DH, AUTH), "endpoint"),
            (sub("https://push.example/x", &compressed, AUTH), "p256dh"),
            (sub("https://push.example/x", &off_curve, AUTH), "p256dh"),
            (sub("https://push.example/x", "not base64!", AUTH), "p256dh"),
            (sub("https://push.example/x", P256DH, "c2hvcnQ"), "auth"),
            (sub(&format!("https://push.example/{}", "x".repeat(3000)), P256DH, AUTH), "at most"),
        ] {
            let err = check_webpush_subscription(&bad, true).unwrap_err();
            assert!(err.contains(about), "{bad}: {err}");
        }
    }
}
