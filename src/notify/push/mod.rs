//! Push notifications to devices: the transport. The pipeline above (who
//! gets a push, coalescing, settings) hands a [`PushMessage`] and a device's
//! token to [`Pushers`], which sends it through the device's provider:
//!
//! - `fcm`: Firebase Cloud Messaging's HTTP v1 API (Android, and iOS through
//!   Firebase), authorised by a service account (OAuth 2.0 JWT bearer grant);
//! - `webpush`: Web Push (RFC 8030) to a browser's subscription, encrypted
//!   for it (RFC 8291) and signed by this server (VAPID, RFC 8292);
//! - `tokens`: the checks on what devices register ([`check_fcm_token`],
//!   [`check_apns_token`], [`check_webpush_subscription`]).
//!
//! Every send answers `Ok`, or a [`PushError`] that tells the caller what to
//! do: remove the device, retry later, or give the push up. Nothing here
//! logs a token, a key or a message's content.
//!
//! | answer | FCM | Web Push |
//! | --- | --- | --- |
//! | `Ok` | 2xx | 200, 201, 202 |
//! | `InvalidToken` | `UNREGISTERED` (404); 400 `INVALID_ARGUMENT` about the registration token; a token [`check_fcm_token`] refuses | 404, 410; a subscription [`check_webpush_subscription`] refuses, or whose endpoint is a private address (unless `allow_private`) |
//! | `Retry` | 429, 5xx (`Retry-After` honoured, at most 1 h), timeouts, connection errors, the token endpoint's 429/5xx | 429, 5xx, timeouts, connection errors |
//! | `Rejected` | other 4xx (a bad message, `SENDER_ID_MISMATCH`, `THIRD_PARTY_AUTH_ERROR`, an unknown project), a second 401 after a fresh token, the token endpoint refusing the key | 400, 401/403 (VAPID refused), 413, other statuses; a payload over [`MAX_WEBPUSH_PAYLOAD`] |
//! | `NotConfigured` | `fcm_credentials` empty | `vapid_private_key` empty |
//!
//! A 401 from FCM about the access token renews it and sends once more.
//! Access tokens are kept until five minutes before they expire.
//!
//! Setting up:
//! - FCM: the Firebase project's service-account key (Project settings →
//!   Service accounts → Generate new private key), the whole JSON as
//!   `fcm_credentials`;
//! - Web Push: a P-256 key pair, the private key as the base64url of its
//!   32 raw bytes in `vapid_private_key` (`npx web-push generate-vapid-keys`
//!   prints it; from a PEM made by `openssl ecparam -genkey -name prime256v1
//!   -noout -out vapid.pem`: `openssl ec -in vapid.pem -outform DER | tail -c
//!   +8 | head -c 32 | basenc --base64url | tr -d '=\n'`), a contact in
//!   `vapid_subject`; browsers subscribe with [`Pushers::vapid_public_key`]
//!   as `applicationServerKey`. Changing the key orphans every subscription.

mod config;
mod error;
mod fcm;
mod http;
mod tokens;
mod vapid;
mod webpush;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use config::PushConfig;
pub use error::{PushConfigError, PushError};
pub use tokens::{
    MAX_FCM_TOKEN, MAX_SUBSCRIPTION, check_apns_token, check_fcm_token, check_webpush_subscription,
};
pub use webpush::MAX_PLAINTEXT as MAX_WEBPUSH_PAYLOAD;

/// What a device shows (and what its app gets).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PushMessage {
    /// The notification's title.
    pub title: String,
    /// The notification's text.
    pub body: String,
    /// Key-value data for the app (the chat to open...).
    pub data: BTreeMap<String, String>,
    /// Pushes with one key replace each other at the provider while the device
    /// is offline (FCM's `collapse_key`, APNs' `apns-collapse-id`, Web Push's
    /// `Topic`); empty: none.
    pub collapse_key: String,
}

/// Only the sizes: the content is the users'.
impl std::fmt::Debug for PushMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushMessage")
            .field("title_len", &self.title.len())
            .field("body_len", &self.body.len())
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("collapse_key", &self.collapse_key)
            .finish()
    }
}

/// The senders of every configured provider; cheap to clone.
#[derive(Clone)]
pub struct Pushers {
    fcm: Option<Arc<fcm::Fcm>>,
    webpush: Option<Arc<webpush::WebPush>>,
}

impl std::fmt::Debug for Pushers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pushers")
            .field("fcm", &self.fcm.is_some())
            .field("webpush", &self.webpush.is_some())
            .finish()
    }
}

impl Pushers {
    /// Reads the keys of the configured providers; fails, naming the
    /// setting, when one is malformed.
    pub fn new(config: &PushConfig) -> Result<Pushers, PushConfigError> {
        if config.ttl_secs > config::MAX_TTL_SECS {
            return Err(PushConfigError::Setting(format!(
                "ttl_secs must be at most {}",
                config::MAX_TTL_SECS
            )));
        }
        let fcm = match config.fcm_credentials.trim() {
            "" => None,
            _ => Some(Arc::new(fcm::Fcm::new(config)?)),
        };
        let webpush = match config.vapid_private_key.trim() {
            "" => None,
            _ => Some(Arc::new(webpush::WebPush::new(config)?)),
        };
        Ok(Pushers { fcm, webpush })
    }

    /// Sends `msg` through FCM to the device with registration token `token`.
    pub async fn send_fcm(&self, token: &str, msg: &PushMessage) -> Result<(), PushError> {
        let Some(fcm) = &self.fcm else {
            return Err(PushError::NotConfigured);
        };
        if check_fcm_token(token).is_err() {
            return Err(PushError::InvalidToken);
        }
        fcm.send(token, msg).await
    }

    /// Sends `msg` by Web Push to a browser's subscription (its JSON as
    /// registered; one this server would not accept is an invalid token).
    pub async fn send_webpush(&self, subscription_json: &str, msg: &PushMessage) -> Result<(), PushError> {
        let Some(webpush) = &self.webpush else {
            return Err(PushError::NotConfigured);
        };
        webpush.send(subscription_json, msg).await
    }

    /// The VAPID public key, base64url of the uncompressed P-256 point: what a
    /// browser's `pushManager.subscribe({applicationServerKey})` needs. None
    /// when Web Push is off.
    pub fn vapid_public_key(&self) -> Option<String> {
        self.webpush.as_ref().map(|w| w.public_key().to_owned())
    }

    /// Whether FCM is configured.
    pub fn has_fcm(&self) -> bool {
        self.fcm.is_some()
    }

    /// Whether Web Push is configured.
    pub fn has_webpush(&self) -> bool {
        self.webpush.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE_KEY: &str = include_str!("../../../tests/fixtures/push/service-account.pem");

    fn credentials(private_key: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "weft-test",
            "private_key_id": "k1",
            "private_key": private_key,
            "client_email": "push@weft-test.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    }

    fn fcm_err(config: &PushConfig) -> String {
        match Pushers::new(config) {
            Err(e @ PushConfigError::FcmCredentials(_)) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn off_by_default() {
        let pushers = Pushers::new(&PushConfig::default()).unwrap();
        assert!(!pushers.has_fcm() && !pushers.has_webpush());
        assert_eq!(pushers.vapid_public_key(), None);
    }

    #[test]
    fn malformed_credentials_are_refused_clearly() {
        let ok = PushConfig { fcm_credentials: credentials(SERVICE_KEY), ..PushConfig::default() };
        assert!(Pushers::new(&ok).unwrap().has_fcm());

        let with = |credentials: String| PushConfig { fcm_credentials: credentials, ..PushConfig::default() };
        assert!(fcm_err(&with("{not json".into())).contains("JSON key file"));
        assert!(fcm_err(&with(r#"{"project_id": "p"}"#.into())).contains("client_email"));
        let err = fcm_err(&with(credentials("not a pem")));
        assert!(err.starts_with("push.fcm_credentials: ") && err.contains("PEM RSA private key"), "{err}");
        // A PEM whose inside is not an RSA key.
        let garbled = SERVICE_KEY.replacen("MII", "MIJ", 1);
        assert!(fcm_err(&with(credentials(&garbled))).contains("private_key"));
        let ec = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEyXFvicou0XeU2e1\nTxXtGG3eTSWwegaS4vDa+nSaTlGhRANCAATMjveM1vHOLxP/IJp+7AdpczZYe16S\n-----END PRIVATE KEY-----\n";
        assert!(fcm_err(&with(credentials(ec))).contains("private_key"));
        let mut wrong_type: serde_json::Value = serde_json::from_str(&credentials(SERVICE_KEY)).unwrap();
        wrong_type["type"] = "authorized_user".into();
        assert!(fcm_err(&with(wrong_type.to_string())).contains("service_account"));
        // No key material in the message.
        assert!(!fcm_err(&with(credentials(&garbled))).contains("MI"));

        let bad_url = PushConfig { fcm_base_url: "fcm.googleapis.com".into(), ..ok.clone() };
        assert_eq!(Pushers::new(&bad_url).unwrap_err(), PushConfigError::FcmBaseUrl);
        let long_ttl = PushConfig { ttl_secs: 3_000_000, ..ok.clone() };
        assert!(matches!(Pushers::new(&long_ttl), Err(PushConfigError::Setting(_))));
        let no_timeout = PushConfig { timeout_ms: 0, ..ok };
        assert!(matches!(Pushers::new(&no_timeout), Err(PushConfigError::Setting(_))));
    }

    #[test]
    fn malformed_vapid_settings_are_refused_clearly() {
        let key = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
        let ok = PushConfig {
            vapid_private_key: key.into(),
            vapid_subject: "mailto:ops@example.com".into(),
            ..PushConfig::default()
        };
        let pushers = Pushers::new(&ok).unwrap();
        assert_eq!(
            pushers.vapid_public_key().as_deref(),
            Some("BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8")
        );
        let pem = PushConfig { vapid_private_key: "-----BEGIN EC PRIVATE KEY-----".into(), ..ok.clone() };
        let err = Pushers::new(&pem).unwrap_err().to_string();
        assert!(err.starts_with("push.vapid_private_key: must be the base64url"), "{err}");
        let no_subject = PushConfig { vapid_subject: String::new(), ..ok };
        assert!(matches!(Pushers::new(&no_subject), Err(PushConfigError::VapidSubject(_))));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let config = PushConfig {
            fcm_credentials: credentials(SERVICE_KEY),
            vapid_private_key: "secret-key".into(),
            ..PushConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("BEGIN") && !printed.contains("secret-key"), "{printed}");
        let msg = PushMessage { title: "t".into(), body: "the body".into(), ..PushMessage::default() };
        assert!(!format!("{msg:?}").contains("the body"));
    }

    #[tokio::test]
    async fn unconfigured_providers_say_so() {
        let pushers = Pushers::new(&PushConfig::default()).unwrap();
        let msg = PushMessage::default();
        assert_eq!(pushers.send_fcm("tok", &msg).await, Err(PushError::NotConfigured));
        assert_eq!(pushers.send_webpush("{}", &msg).await, Err(PushError::NotConfigured));
    }
}
