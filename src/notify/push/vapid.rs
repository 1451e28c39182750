//! VAPID (RFC 8292): the server's identity on every Web Push request, an
//! ES256 JWT `{aud: <endpoint's origin>, exp, sub}` and the public key, in
//! `Authorization: vapid t=<jwt>, k=<base64url public key>`.

use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::Url;

use super::PushConfigError;

/// How long a VAPID token is valid (RFC 8292 allows at most 24 hours).
const VALIDITY_SECS: i64 = 12 * 3600;

/// The VAPID key and subject.
pub(super) struct Vapid {
    key: SigningKey,
    /// The public key, base64url of the uncompressed point.
    public: String,
    subject: String,
}

impl Vapid {
    /// Reads the key (base64url of the raw 32-byte scalar) and checks the
    /// subject (`mailto:` or `https:`).
    pub fn new(private_key: &str, subject: &str) -> Result<Vapid, PushConfigError> {
        let raw = b64()
            .decode(private_key.trim().trim_end_matches('='))
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                PushConfigError::VapidKey(
                    "must be the base64url of a raw 32-byte P-256 private key (as `npx web-push generate-vapid-keys` prints it)"
                        .into(),
                )
            })?;
        let key = SigningKey::from_slice(&raw)
            .map_err(|_| PushConfigError::VapidKey("is not a valid P-256 private key".into()))?;
        let subject = subject.trim();
        if subject.is_empty() {
            return Err(PushConfigError::VapidSubject(
                "is required with a VAPID key (a mailto: or https: URI push services can reach the operator at)".into(),
            ));
        }
        let ok = subject.strip_prefix("mailto:").is_some_and(|rest| rest.contains('@'))
            || Url::parse(subject).is_ok_and(|url| url.scheme() == "https");
        if !ok || subject.chars().any(char::is_whitespace) {
            return Err(PushConfigError::VapidSubject("must be a mailto: or https: URI".into()));
        }
        let public = b64().encode(key.verifying_key().to_encoded_point(false).as_bytes());
        Ok(Vapid { key, public, subject: subject.to_owned() })
    }

    /// The public key, base64url of the uncompressed point: the browser's
    /// `applicationServerKey`.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` value for a push to `endpoint` at `now` (unix seconds).
    pub fn authorization(&self, endpoint: &Url, now: i64) -> String {
        let header = b64().encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": endpoint.origin().ascii_serialization(),
            "exp": now + VALIDITY_SECS,
            "sub": self.subject,
        });
        let claims = b64().encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        // ES256 in a JWS is r || s, 64 bytes (RFC 7518 §3.4); RFC 6979 nonces.
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        let signature = b64().encode(signature.to_bytes());
        format!("vapid t={signing_input}.{signature}, k={}", self.public)
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier as _;

    use super::*;

    // RFC 8291's example application-server key, as a VAPID key.
    const KEY: &str = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
    const PUBLIC: &str =
        "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";

    #[test]
    fn keys_and_subjects_are_checked() {
        let vapid = Vapid::new(KEY, "mailto:ops@example.com").unwrap();
        assert_eq!(vapid.public_key(), PUBLIC);
        assert!(Vapid::new(&format!("{KEY}="), "https://example.com/contact").is_ok());
        for bad in ["", "short", &KEY[..40], "-----BEGIN PRIVATE KEY-----", &"A".repeat(43)] {
            assert!(
                matches!(Vapid::new(bad, "mailto:ops@example.com"), Err(PushConfigError::VapidKey(_))),
                "{bad}"
            );
        }
        for bad in ["", "ops@example.com", "mailto:nobody", "http://example.com", "mailto:a b@example.com"] {
            assert!(matches!(Vapid::new(KEY, bad), Err(PushConfigError::VapidSubject(_))), "{bad}");
        }
    }

    #[test]
    fn the_token_is_an_es256_jwt_for_the_origin() {
        let vapid = Vapid::new(KEY, "mailto:ops@example.com").unwrap();
        let url = Url::parse("http://127.0.0.1:8080/wp/1?x=y").unwrap();
        let value = vapid.authorization(&url, 1_000);
        let (t, k) = value.strip_prefix("vapid t=").unwrap().split_once(", k=").unwrap();
        assert_eq!(k, PUBLIC);
        let (input, signature) = t.rsplit_once('.').unwrap();
        let (header, claims) = input.split_once('.').unwrap();
        let header: serde_json::Value = serde_json::from_slice(&b64().decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        let claims: serde_json::Value = serde_json::from_slice(&b64().decode(claims).unwrap()).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"aud": "http://127.0.0.1:8080", "exp": 1_000 + 12 * 3600, "sub": "mailto:ops@example.com"})
        );
        let verifying = VerifyingKey::from_sec1_bytes(&b64().decode(k).unwrap()).unwrap();
        let signature = Signature::from_slice(&b64().decode(signature).unwrap()).unwrap();
        verifying.verify(input.as_bytes(), &signature).unwrap();
        // The default port is left out of the origin.
        let url = Url::parse("https://push.example:443/x").unwrap();
        let value = vapid.authorization(&url, 0);
        let claims = value.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&b64().decode(claims).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example");
    }
}
