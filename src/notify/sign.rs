//! The `Weft-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
//! with one `v1=` per secret in use (two for a day after a rotation).
//!
//! A receiver recomputes the HMAC over the timestamp, a dot and the raw body
//! with its secret, compares it in constant time with any `v1`, and refuses a
//! timestamp too far from its clock (replays). docs/webhooks.md shows how.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

type HmacSha256 = Hmac<Sha256>;

/// The header's name.
pub const HEADER: &str = "Weft-Signature";

/// The hex HMAC-SHA256 of `"<t>.<body>"` under `secret`.
pub fn mac_hex(secret: &str, t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The header's value for `body` sent at `t` (unix seconds), signed with every secret in `secrets`.
pub fn header(secrets: &[&str], t: i64, body: &[u8]) -> String {
    let mut value = format!("t={t}");
    for secret in secrets {
        value.push_str(",v1=");
        value.push_str(&mac_hex(secret, t, body));
    }
    value
}

/// Whether `value` signs `body` with `secret` at a time within `tolerance_s`
/// seconds of `now` (unix seconds). What a receiver does; weft's tests use it.
pub fn verify(secret: &str, value: &str, body: &[u8], now: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut macs = Vec::new();
    for part in value.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => macs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else {
        return false;
    };
    if (now - t).abs() > tolerance_s {
        return false;
    }
    let expected = mac_hex(secret, t, body);
    macs.iter().any(|m| bool::from(m.as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_secret_only_and_within_the_tolerance() {
        let body = br#"{"id":"e1"}"#;
        let value = header(&["s3cret", "old"], 1_700_000_000, body);
        assert!(value.starts_with("t=1700000000,v1="));
        assert!(verify("s3cret", &value, body, 1_700_000_100, 300));
        assert!(verify("old", &value, body, 1_700_000_100, 300));
        assert!(!verify("other", &value, body, 1_700_000_100, 300));
        assert!(!verify("s3cret", &value, b"{\"id\":\"e2\"}", 1_700_000_100, 300));
        assert!(!verify("s3cret", &value, body, 1_700_001_000, 300));
        assert!(!verify("s3cret", "v1=00", body, 1_700_000_000, 300));
    }

    #[test]
    fn the_mac_matches_a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = HmacSha256::new_from_slice(b"Jefe").map_err(|_| ()).unwrap_or_else(|()| panic!("key"));
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
