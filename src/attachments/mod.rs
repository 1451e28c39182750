//! Attachment files: where their bytes live and the URLs clients use to put
//! and get them.
//!
//! Two backends behind `object_store`: the local filesystem under
//! `<store.data_dir>/attachments` (the embedded default; the node signs its
//! own URLs with [`UrlSigner`] and serves them at `/files/…`), or any
//! S3-compatible store (presigned URLs; the bytes never pass through weft).
//! The object key is `<app>/<chat>/<attachment id>`. The records (who may
//! attach what to which chat) are the store's; this module only holds bytes.

mod config;
mod sign;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer as _};
use object_store::{ObjectStore, ObjectStoreExt as _};

pub use config::{AttachmentBackend, AttachmentsConfig, is_media_token};
pub use sign::{SignatureError, Signed, UrlSigner};

use crate::ids::{AppId, AttachmentId, ChatNumber, Timestamp};
use crate::model::AttachedFile;

/// Where the node serves its own signed URLs (filesystem backend).
pub const FILES_ROUTE: &str = "/files";

/// Why an attachment's bytes could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentsError {
    /// Attachments are off on this node.
    #[error("attachments are not configured")]
    Disabled,
    /// The object store failed.
    #[error("the attachment store failed")]
    Store(#[from] object_store::Error),
    /// The signing key could not be read or kept.
    #[error("cannot read or keep the attachment signing key")]
    Key(#[source] std::io::Error),
}

/// An upload URL and when it stops working.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Where the client PUTs the bytes.
    pub url: String,
    /// When the URL expires.
    pub expires_at: Timestamp,
}

enum Backend {
    Local { store: Box<object_store::local::LocalFileSystem>, signer: Box<UrlSigner>, base: String },
    S3 { store: object_store::aws::AmazonS3 },
}

struct Inner {
    config: AttachmentsConfig,
    backend: Backend,
}

/// The attachment files of a node: cheap to clone.
#[derive(Clone)]
pub struct Attachments(Option<Arc<Inner>>);

impl std::fmt::Debug for Attachments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0.as_deref().map(|i| &i.backend) {
            None => "none",
            Some(Backend::Local { .. }) => "filesystem",
            Some(Backend::S3 { .. }) => "s3",
        };
        f.debug_tuple("Attachments").field(&kind).finish()
    }
}

impl Attachments {
    /// No attachments.
    pub fn disabled() -> Self {
        Self(None)
    }

    /// The backend `config` names (`cql_store`: the messages are in CQL, so
    /// `auto` means S3 when a bucket is set, else none).
    pub fn open(
        config: &AttachmentsConfig,
        cql_store: bool,
        data_dir: &Path,
    ) -> Result<Self, AttachmentsError> {
        let backend = match (config.backend, cql_store) {
            (AttachmentBackend::None, _) => return Ok(Self::disabled()),
            (AttachmentBackend::Auto, true) if config.s3_bucket.is_empty() => {
                tracing::info!("attachments are off (a cql store and no [attachments] s3_bucket)");
                return Ok(Self::disabled());
            }
            (AttachmentBackend::Auto, true) | (AttachmentBackend::S3, _) => {
                Backend::S3 { store: s3(config)? }
            }
            (AttachmentBackend::Auto, false) | (AttachmentBackend::Filesystem, _) => {
                let dir = data_dir.join("attachments");
                std::fs::create_dir_all(&dir).map_err(AttachmentsError::Key)?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
                let signer =
                    UrlSigner::load_or_create(&config.signing_key, &data_dir.join("attachments.key"))
                        .map_err(AttachmentsError::Key)?;
                Backend::Local {
                    store: Box::new(store),
                    signer: Box::new(signer),
                    base: config.public_url.trim_end_matches('/').to_owned(),
                }
            }
        };
        Ok(Self(Some(Arc::new(Inner { config: config.clone(), backend }))))
    }

    /// The configuration, when attachments are on.
    pub fn config(&self) -> Result<&AttachmentsConfig, AttachmentsError> {
        self.0.as_deref().map(|i| &i.config).ok_or(AttachmentsError::Disabled)
    }

    fn inner(&self) -> Result<&Inner, AttachmentsError> {
        self.0.as_deref().ok_or(AttachmentsError::Disabled)
    }

    /// The object key of an attachment.
    pub fn key(app: &AppId, chat: ChatNumber, id: &AttachmentId) -> ObjectPath {
        ObjectPath::from(format!("{}/{}/{}", app.as_str(), chat.get(), id.as_str()))
    }

    /// A URL to PUT the file's bytes to: only this size and media type, until it expires.
    pub async fn upload_url(
        &self,
        app: &AppId,
        chat: ChatNumber,
        file: &AttachedFile,
    ) -> Result<Grant, AttachmentsError> {
        let inner = self.inner()?;
        let ttl = inner.config.upload_url_ttl_secs;
        let url = self.signed(inner, Method::PUT, &Self::key(app, chat, &file.id), file, ttl).await?;
        Ok(Grant { url, expires_at: Timestamp(Timestamp::now().millis().saturating_add(secs_to_ms(ttl))) })
    }

    /// A time-limited URL to GET the file.
    pub async fn download_url(
        &self,
        app: &AppId,
        chat: ChatNumber,
        file: &AttachedFile,
    ) -> Result<String, AttachmentsError> {
        let inner = self.inner()?;
        let ttl = inner.config.download_url_ttl_secs;
        self.signed(inner, Method::GET, &Self::key(app, chat, &file.id), file, ttl).await
    }

    async fn signed(
        &self,
        inner: &Inner,
        method: Method,
        key: &ObjectPath,
        file: &AttachedFile,
        ttl_secs: u64,
    ) -> Result<String, AttachmentsError> {
        match &inner.backend {
            Backend::Local { signer, base, .. } => {
                let expires =
                    (Timestamp::now().millis() / 1000).saturating_add(i64::try_from(ttl_secs).unwrap_or(0));
                let what = Signed {
                    method: method.as_str(),
                    key: key.as_ref(),
                    expires,
                    size: file.size,
                    content_type: &file.content_type,
                };
                let query = serde_urlencoded::to_string([
                    ("expires", expires.to_string()),
                    ("size", file.size.to_string()),
                    ("ct", file.content_type.clone()),
                    ("sig", signer.sign(&what)),
                ])
                .unwrap_or_default();
                Ok(format!("{base}{FILES_ROUTE}/{key}?{query}"))
            }
            Backend::S3 { store } => {
                let mut options = SignedUrlOptions::new();
                if method == Method::PUT
                    && let Ok(ct) = HeaderValue::from_str(&file.content_type)
                {
                    // Bound into the signature: S3 refuses a PUT of another type. (A
                    // presigned URL cannot bind the length: the size is checked by
                    // HEAD when the attachment is sent.)
                    options = options.with_signed_header(HeaderName::from_static("content-type"), ct);
                }
                let url = store.signed_url_opts(method, key, Duration::from_secs(ttl_secs), &options).await?;
                Ok(url.to_string())
            }
        }
    }

    /// The stored object's size, or `None` when nothing was uploaded.
    pub async fn size_of(&self, key: &ObjectPath) -> Result<Option<u64>, AttachmentsError> {
        match self.store()?.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object (nothing there is fine).
    pub async fn delete(&self, key: &ObjectPath) -> Result<(), AttachmentsError> {
        match self.store()?.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn store(&self) -> Result<&dyn ObjectStore, AttachmentsError> {
        Ok(match &self.inner()?.backend {
            Backend::Local { store, .. } => store.as_ref(),
            Backend::S3 { store } => store,
        })
    }

    /// Checks a signed URL of the node's own (filesystem backend) at `now`.
    pub fn verify_local(&self, what: &Signed<'_>, signature: &str) -> Result<(), LocalAccess> {
        let Ok(Inner { backend: Backend::Local { signer, .. }, .. }) = self.inner() else {
            return Err(LocalAccess::NotServed);
        };
        signer.verify(what, signature, Timestamp::now().millis() / 1000).map_err(LocalAccess::Refused)
    }

    /// Writes uploaded bytes (filesystem backend).
    pub async fn put_local(&self, key: &ObjectPath, bytes: Bytes) -> Result<(), AttachmentsError> {
        self.store()?.put(key, bytes.into()).await?;
        Ok(())
    }

    /// Reads a file (filesystem backend); `None` when it is not there.
    pub async fn get_local(&self, key: &ObjectPath) -> Result<Option<Bytes>, AttachmentsError> {
        match self.store()?.get(key).await {
            Ok(found) => Ok(Some(found.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Why the node will not serve a `/files/…` request.
#[derive(Debug, thiserror::Error)]
pub enum LocalAccess {
    /// This node keeps attachments elsewhere (or not at all).
    #[error("this node does not serve attachment files")]
    NotServed,
    /// The URL is expired or altered.
    #[error(transparent)]
    Refused(SignatureError),
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn s3(config: &AttachmentsConfig) -> Result<object_store::aws::AmazonS3, AttachmentsError> {
    // object_store's HTTP client takes rustls's process-wide provider: ring,
    // as everywhere else in weft (a provider installed before is kept).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&config.s3_bucket)
        .with_region(&config.s3_region)
        .with_allow_http(config.s3_allow_http)
        .with_virtual_hosted_style_request(!config.s3_path_style);
    if !config.s3_endpoint.is_empty() {
        builder = builder.with_endpoint(&config.s3_endpoint);
    }
    if !config.s3_access_key.is_empty() {
        builder =
            builder.with_access_key_id(&config.s3_access_key).with_secret_access_key(&config.s3_secret_key);
    }
    Ok(builder.build()?)
}
