//! `[attachments]`: where files are kept, how big and how many, and how long
//! their URLs live.

use serde::Deserialize;

/// Where attachments are stored.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentBackend {
    /// `filesystem` on the embedded store; `s3` on CQL when `s3_bucket` is
    /// set, else attachments are off (files on one node's disk would be
    /// missing on every other node).
    #[default]
    Auto,
    /// Files under `<store.data_dir>/attachments`, served by the node itself
    /// through URLs it signs (one node).
    Filesystem,
    /// Any S3-compatible store; clients PUT and GET through presigned URLs.
    S3,
    /// No attachments: the endpoints answer 503 `attachments_unavailable`.
    None,
}

/// `[attachments]`.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentsConfig {
    /// Which store.
    pub backend: AttachmentBackend,
    /// Largest file, in bytes.
    pub max_size: u64,
    /// Most attachments on one message.
    pub max_per_message: usize,
    /// Media types accepted: exact (`image/png`) or a whole kind (`image/*`);
    /// `*/*` or empty: any.
    pub allowed_content_types: Vec<String>,
    /// How long an upload URL is valid, in seconds.
    pub upload_url_ttl_secs: u64,
    /// How long a download URL is valid, in seconds.
    pub download_url_ttl_secs: u64,
    /// Filesystem backend: the base of the URLs the node signs, as clients
    /// reach it (e.g. `https://chat.example.com`); empty: the URLs are paths
    /// (`/files/…`), relative to the node's own address.
    pub public_url: String,
    /// Filesystem backend: the HMAC key of the node's URLs (at least 32
    /// bytes); empty: one is generated and kept in `<store.data_dir>/attachments.key`.
    pub signing_key: String,
    /// S3 endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://seaweedfs:8333`.
    pub s3_endpoint: String,
    /// S3 bucket.
    pub s3_bucket: String,
    /// S3 region.
    pub s3_region: String,
    /// S3 access key id.
    pub s3_access_key: String,
    /// S3 secret access key.
    pub s3_secret_key: String,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible servers need.
    pub s3_path_style: bool,
    /// Allow a plain `http://` endpoint.
    pub s3_allow_http: bool,
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        Self {
            backend: AttachmentBackend::Auto,
            max_size: 25 * 1024 * 1024,
            max_per_message: 10,
            allowed_content_types: Vec::new(),
            upload_url_ttl_secs: 15 * 60,
            download_url_ttl_secs: 60 * 60,
            public_url: String::new(),
            signing_key: String::new(),
            s3_endpoint: String::new(),
            s3_bucket: String::new(),
            s3_region: "us-east-1".into(),
            s3_access_key: String::new(),
            s3_secret_key: String::new(),
            s3_path_style: true,
            s3_allow_http: false,
        }
    }
}

impl std::fmt::Debug for AttachmentsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AttachmentsConfig")
            .field("backend", &self.backend)
            .field("max_size", &self.max_size)
            .field("max_per_message", &self.max_per_message)
            .field("allowed_content_types", &self.allowed_content_types)
            .field("upload_url_ttl_secs", &self.upload_url_ttl_secs)
            .field("download_url_ttl_secs", &self.download_url_ttl_secs)
            .field("public_url", &self.public_url)
            .field("signing_key", &redact(&self.signing_key))
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key", &self.s3_access_key)
            .field("s3_secret_key", &redact(&self.s3_secret_key))
            .field("s3_path_style", &self.s3_path_style)
            .field("s3_allow_http", &self.s3_allow_http)
            .finish()
    }
}

impl AttachmentsConfig {
    /// Checks what types alone cannot: `(key, reason)` of the first problem.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.max_size == 0 {
            return Err(("attachments.max_size", "must be at least 1"));
        }
        if self.max_per_message == 0 || self.max_per_message > 100 {
            return Err(("attachments.max_per_message", "must be from 1 to 100"));
        }
        if self.upload_url_ttl_secs == 0 || self.upload_url_ttl_secs > 7 * 24 * 3600 {
            return Err(("attachments.upload_url_ttl_secs", "must be from 1 to 604800 (S3's limit)"));
        }
        if self.download_url_ttl_secs == 0 || self.download_url_ttl_secs > 7 * 24 * 3600 {
            return Err(("attachments.download_url_ttl_secs", "must be from 1 to 604800 (S3's limit)"));
        }
        if self.allowed_content_types.iter().any(|p| !valid_pattern(p)) {
            return Err(("attachments.allowed_content_types", "each must be type/subtype, type/* or */*"));
        }
        if !self.signing_key.is_empty() && self.signing_key.len() < 32 {
            return Err(("attachments.signing_key", "must be at least 32 bytes (or empty: generated)"));
        }
        let url = &self.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(("attachments.public_url", "must start with http:// or https://"));
        }
        if self.backend == AttachmentBackend::S3 {
            if self.s3_bucket.is_empty() {
                return Err(("attachments.s3_bucket", "is required for the s3 backend"));
            }
            if self.s3_endpoint.starts_with("http://") && !self.s3_allow_http {
                return Err(("attachments.s3_endpoint", "is plain http: set attachments.s3_allow_http"));
            }
        }
        Ok(())
    }

    /// Whether `content_type` is one of the allowed types.
    pub fn allows(&self, content_type: &str) -> bool {
        if self.allowed_content_types.is_empty() {
            return true;
        }
        let ct = content_type.to_ascii_lowercase();
        let kind = ct.split('/').next().unwrap_or_default();
        self.allowed_content_types.iter().any(|p| {
            let p = p.to_ascii_lowercase();
            p == "*/*" || p == ct || p.strip_suffix("/*").is_some_and(|k| k == kind)
        })
    }
}

/// `type/subtype`, `type/*` or `*/*`.
fn valid_pattern(p: &str) -> bool {
    p == "*/*"
        || p.split_once('/').is_some_and(|(kind, sub)| {
            !kind.is_empty()
                && kind != "*"
                && !sub.is_empty()
                && is_media_token(kind)
                && (sub == "*" || is_media_token(sub))
        })
}

/// A media type token (RFC 6838's restricted name, lowercase or not).
pub fn is_media_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 127
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_kinds_and_exact_types() {
        let config = AttachmentsConfig {
            allowed_content_types: vec!["image/*".into(), "application/pdf".into()],
            ..AttachmentsConfig::default()
        };
        assert!(config.allows("image/png"));
        assert!(config.allows("IMAGE/JPEG"));
        assert!(config.allows("application/pdf"));
        assert!(!config.allows("application/zip"));
        assert!(!config.allows("imagex/png"));
        assert!(AttachmentsConfig::default().allows("anything/at-all"));
        let bad =
            AttachmentsConfig { allowed_content_types: vec!["image".into()], ..AttachmentsConfig::default() };
        assert_eq!(bad.check().unwrap_err().0, "attachments.allowed_content_types");
    }
}
