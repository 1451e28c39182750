//! The filesystem backend's own signed URLs: HMAC-SHA256 over the method, the
//! object key, the expiry and what the URL fixes (size, media type), with a
//! per-node key. Verified in constant time; an expired or altered URL is refused.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signed URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// Its time is up.
    #[error("the URL has expired")]
    Expired,
    /// Its signature does not match what it names (altered, or another node's).
    #[error("the URL's signature is not valid")]
    Invalid,
}

/// What a signed URL fixes besides the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed<'a> {
    /// `PUT` or `GET`.
    pub method: &'a str,
    /// The object key.
    pub key: &'a str,
    /// Unix seconds after which the URL is refused.
    pub expires: i64,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's media type.
    pub content_type: &'a str,
}

impl Signed<'_> {
    fn message(&self) -> String {
        format!("{}\n{}\n{}\n{}\n{}", self.method, self.key, self.expires, self.size, self.content_type)
    }
}

/// Signs and checks the node's URLs.
#[derive(Clone)]
pub struct UrlSigner {
    /// The keyed MAC, cloned per signature.
    mac: HmacSha256,
}

impl UrlSigner {
    /// A signer with `key` (HMAC takes a key of any length, so this cannot fail in practice).
    pub fn new(key: &[u8]) -> std::io::Result<Self> {
        let mac = HmacSha256::new_from_slice(key)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        Ok(Self { mac })
    }

    /// The configured key, or the one kept in `file` (made on first use, readable by the owner only).
    pub fn load_or_create(configured: &str, file: &Path) -> std::io::Result<Self> {
        if !configured.is_empty() {
            return Self::new(configured.as_bytes());
        }
        match std::fs::read_to_string(file) {
            Ok(text) if text.trim().len() >= 32 => return Self::new(text.trim().as_bytes()),
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} holds fewer than 32 bytes", file.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let key = crate::ids::random_url_safe(32);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(file) {
            Ok(mut f) => {
                f.write_all(key.as_bytes())?;
                f.sync_all()?;
                Self::new(key.as_bytes())
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create("", file),
            Err(e) => Err(e),
        }
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// The signature of `what`, URL-safe base64.
    pub fn sign(&self, what: &Signed<'_>) -> String {
        let mut mac = self.mac();
        mac.update(what.message().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Checks `signature` for `what` at `now` (unix seconds).
    pub fn verify(&self, what: &Signed<'_>, signature: &str, now: i64) -> Result<(), SignatureError> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| SignatureError::Invalid)?;
        let mut mac = self.mac();
        mac.update(what.message().as_bytes());
        mac.verify_slice(&raw).map_err(|_| SignatureError::Invalid)?;
        // Checked after the signature, so an altered expiry is `Invalid`, not `Expired`.
        if now > what.expires { Err(SignatureError::Expired) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_every_field_and_expires() {
        let signer = UrlSigner::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let what = Signed { method: "PUT", key: "a/1/x", expires: 100, size: 5, content_type: "text/plain" };
        let sig = signer.sign(&what);
        assert_eq!(signer.verify(&what, &sig, 50), Ok(()));
        assert_eq!(signer.verify(&what, &sig, 101), Err(SignatureError::Expired));
        for other in [
            Signed { method: "GET", ..what.clone() },
            Signed { key: "a/1/y", ..what.clone() },
            Signed { expires: 1000, ..what.clone() },
            Signed { size: 6, ..what.clone() },
            Signed { content_type: "image/png", ..what.clone() },
        ] {
            assert_eq!(signer.verify(&other, &sig, 50), Err(SignatureError::Invalid));
        }
        assert_eq!(signer.verify(&what, "not base64!", 50), Err(SignatureError::Invalid));
        let other_node = UrlSigner::new(b"another key another key another key").unwrap();
        assert_eq!(other_node.verify(&what, &sig, 50), Err(SignatureError::Invalid));
    }

    #[test]
    fn the_generated_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("attachments.key");
        let a = UrlSigner::load_or_create("", &file).unwrap();
        let b = UrlSigner::load_or_create("", &file).unwrap();
        let what = Signed { method: "GET", key: "k", expires: 9, size: 1, content_type: "a/b" };
        assert_eq!(b.verify(&what, &a.sign(&what), 1), Ok(()));
        assert!(std::fs::read_to_string(&file).unwrap().len() >= 32);
    }
}
