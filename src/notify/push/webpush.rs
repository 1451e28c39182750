//! Web Push (RFC 8030): the message, encrypted for the browser (RFC 8291,
//! `aes128gcm`, by the `web-push-native` crate), POSTed to the
//! subscription's endpoint with a VAPID signature (RFC 8292, [`super::vapid`]).

use base64::Engine as _;
use sha2::Digest as _;

use super::http::{self, describe};
use super::tokens::Subscription;
use super::vapid::Vapid;
use super::{PushConfig, PushConfigError, PushError, PushMessage};
use crate::ids::Timestamp;
use crate::notify::target::{Policy, literal_allowed};

/// The largest plaintext one push carries: push services take at least 4096
/// bytes of body (RFC 8030 §7.2), less the aes128gcm header (86 bytes with
/// the key), the padding delimiter (1) and the tag (16).
pub const MAX_PLAINTEXT: usize = 4096 - 86 - 1 - 16;

/// The name in errors.
const PROVIDER: &str = "the Web Push service";

/// Sends Web Push messages.
pub(super) struct WebPush {
    client: reqwest::Client,
    vapid: Vapid,
    ttl_secs: u32,
    policy: Policy,
}

impl WebPush {
    /// Reads the VAPID key and builds the client.
    pub fn new(config: &PushConfig) -> Result<WebPush, PushConfigError> {
        let vapid = Vapid::new(&config.vapid_private_key, &config.vapid_subject)?;
        let client = http::client(config, !config.allow_private)?;
        let policy = Policy { allow_http: config.allow_http, allow_private: config.allow_private };
        Ok(WebPush { client, vapid, ttl_secs: config.ttl_secs, policy })
    }

    /// The VAPID public key (the browser's `applicationServerKey`).
    pub fn public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// Sends `msg` to the subscription (its JSON, as registered).
    pub async fn send(&self, subscription_json: &str, msg: &PushMessage) -> Result<(), PushError> {
        let subscription = match Subscription::parse(subscription_json, self.policy.allow_http) {
            Ok(subscription) => subscription,
            Err(why) => {
                tracing::debug!(why, "web push: a subscription this server would not accept");
                return Err(PushError::InvalidToken);
            }
        };
        if !literal_allowed(&subscription.endpoint, self.policy) {
            tracing::debug!("web push: a subscription whose endpoint is a private address");
            return Err(PushError::InvalidToken);
        }
        let plaintext = payload(msg);
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(PushError::Rejected(format!(
                "the message is {} bytes as Web Push JSON, over the {MAX_PLAINTEXT} a push carries",
                plaintext.len()
            )));
        }
        let body = web_push_native::encrypt(plaintext, &subscription.p256dh, &subscription.auth.into())
            .map_err(|e| PushError::Rejected(format!("cannot encrypt the message: {e}")))?;
        let authorization =
            self.vapid.authorization(&subscription.endpoint, Timestamp::now().millis() / 1000);
        let mut request = self
            .client
            .post(subscription.endpoint)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header("TTL", self.ttl_secs.to_string())
            .header("Urgency", "normal");
        if let Some(topic) = topic(&msg.collapse_key) {
            request = request.header("Topic", topic);
        }
        let response = request.body(body).send().await.map_err(|e| http::unanswered(PROVIDER, &e))?;
        outcome(response.status().as_u16(), response.headers())
    }
}

/// What the push service's answer means (RFC 8030 §5, §7; the body is not read).
fn outcome(status: u16, headers: &reqwest::header::HeaderMap) -> Result<(), PushError> {
    match status {
        200..=202 => Ok(()),
        // The subscription expired or was unsubscribed.
        404 | 410 => Err(PushError::InvalidToken),
        429 | 500..=599 => Err(http::retry(PROVIDER, status, None, headers)),
        // 400 a malformed request, 413 too large, 401/403 the VAPID
        // signature refused (or a key other than the subscription's).
        _ => Err(PushError::Rejected(describe(PROVIDER, status, None))),
    }
}

/// The push's plaintext: `{"title", "body", "data"}` as JSON.
fn payload(msg: &PushMessage) -> Vec<u8> {
    serde_json::json!({"title": msg.title, "body": msg.body, "data": msg.data}).to_string().into_bytes()
}

/// The `Topic` header for a collapse key (RFC 8030 §5.4: at most 32
/// characters of the base64url alphabet): the key itself when it is one,
/// else 32 characters of the base64url of its SHA-256. None for no key.
pub(super) fn topic(collapse_key: &str) -> Option<String> {
    if collapse_key.is_empty() {
        return None;
    }
    let safe = collapse_key.len() <= 32
        && collapse_key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if safe {
        return Some(collapse_key.to_owned());
    }
    let digest = sha2::Sha256::digest(collapse_key.as_bytes());
    // 24 bytes are 32 base64url characters.
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..24]))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use reqwest::header::HeaderMap;

    use super::*;

    #[test]
    fn topics_are_safe() {
        assert_eq!(topic(""), None);
        assert_eq!(topic("chat-42_x").as_deref(), Some("chat-42_x"));
        for key in ["chat:42", "c/1", &"a".repeat(33), "ünïcode"] {
            let t = topic(key).unwrap();
            assert_eq!(t.len(), 32, "{key}");
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{t}");
            assert_eq!(topic(key), Some(t), "stable");
        }
        assert_ne!(topic("chat:1"), topic("chat:2"));
    }

    #[test]
    fn the_payload_is_the_message_as_json() {
        let msg = PushMessage {
            title: "Ada".into(),
            body: "hi \"there\"".into(),
            data: BTreeMap::from([("chat".to_owned(), "7".to_owned())]),
            collapse_key: "c7".into(),
        };
        let value: serde_json::Value = serde_json::from_slice(&payload(&msg)).unwrap();
        assert_eq!(value, serde_json::json!({"title": "Ada", "body": "hi \"there\"", "data": {"chat": "7"}}));
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let none = HeaderMap::new();
        for ok in [200, 201, 202] {
            assert_eq!(outcome(ok, &none), Ok(()));
        }
        assert_eq!(outcome(404, &none), Err(PushError::InvalidToken));
        assert_eq!(outcome(410, &none), Err(PushError::InvalidToken));
        for rejected in [400, 401, 403, 413, 302] {
            assert!(matches!(outcome(rejected, &none), Err(PushError::Rejected(_))), "{rejected}");
        }
        for retry in [429, 500, 503] {
            assert!(matches!(outcome(retry, &none), Err(PushError::Retry { after: None, .. })), "{retry}");
        }
    }
}
