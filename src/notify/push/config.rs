//! The push providers' settings (`[push]` once the pipeline wires them into the config).

use serde::Deserialize;

/// How this node reaches the push providers. Each provider is off while its
/// key is empty: sends to it answer [`PushError::NotConfigured`](super::PushError::NotConfigured).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// The Firebase project's service-account key: the JSON file Google gives
    /// (`project_id`, `client_email`, `private_key` as a PEM RSA key,
    /// `token_uri`), as a string. Empty: FCM is off.
    pub fcm_credentials: String,
    /// Where the FCM HTTP v1 API is (tests point it at a fake).
    pub fcm_base_url: String,
    /// The VAPID private key (RFC 8292): the base64url of the raw 32-byte
    /// P-256 scalar, as `npx web-push generate-vapid-keys` prints it. Empty:
    /// Web Push is off.
    pub vapid_private_key: String,
    /// Who runs this server, for push services to reach (the VAPID `sub`
    /// claim): `mailto:` or `https:` URI. Required with a VAPID key.
    pub vapid_subject: String,
    /// Accept `http://` Web Push endpoints (tests); browsers only hand out https.
    pub allow_http: bool,
    /// Send Web Push to loopback, private and link-local addresses (tests);
    /// refused otherwise, so a forged subscription cannot aim at the internal network.
    pub allow_private: bool,
    /// One request to a provider (connect and answer) may take this long, in ms.
    pub timeout_ms: u64,
    /// How long a provider keeps a push for an offline device before dropping
    /// it, in seconds (at most 2419200, FCM's four weeks).
    pub ttl_secs: u32,
}

/// The longest time to live FCM accepts (four weeks).
pub(super) const MAX_TTL_SECS: u32 = 2_419_200;

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            fcm_credentials: String::new(),
            fcm_base_url: "https://fcm.googleapis.com".into(),
            vapid_private_key: String::new(),
            vapid_subject: String::new(),
            allow_http: false,
            allow_private: false,
            timeout_ms: 10_000,
            ttl_secs: 86_400,
        }
    }
}

/// The keys are never printed.
impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &str| if s.is_empty() { "(empty)" } else { "(set)" };
        f.debug_struct("PushConfig")
            .field("fcm_credentials", &set(&self.fcm_credentials))
            .field("fcm_base_url", &self.fcm_base_url)
            .field("vapid_private_key", &set(&self.vapid_private_key))
            .field("vapid_subject", &self.vapid_subject)
            .field("allow_http", &self.allow_http)
            .field("allow_private", &self.allow_private)
            .field("timeout_ms", &self.timeout_ms)
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}
