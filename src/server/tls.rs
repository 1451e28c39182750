//! HTTPS and WSS served by the node itself (`server.tls_cert_file`, `server.tls_key_file`),
//! for deployments without a TLS-terminating load balancer.
//!
//! The certificate is reloaded without a restart: every `server.tls_reload_ms` the two files
//! are read and, when their bytes changed, parsed and checked (the key must match the
//! certificate); a good pair replaces the one new handshakes get, a bad one is logged and the
//! old pair stays. Open connections keep the certificate they were made with. The files are
//! read whole rather than judged by mtime, so a Kubernetes Secret's symlink swap, an editor's
//! rename and a same-second rewrite are all seen; a cert written before its key fails once
//! (mismatch) and loads on the next poll after the key arrives.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest as _, Sha256};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;

/// A certificate or key that cannot be served. Messages name files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{}: no usable certificate in PEM", path.display())]
    NoCert {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key (no detail: it would quote the key).
    #[error("{}: no usable private key in PEM", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
    },
    /// The key is of an unsupported kind or does not belong to the certificate.
    #[error("{}: the key does not fit the certificate: {source}", path.display())]
    Mismatch {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// Building the rustls configuration failed.
    #[error("cannot build the https configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The node's HTTPS side: an acceptor whose certificate can be swapped.
#[derive(Clone)]
pub(super) struct ServerTls {
    acceptor: TlsAcceptor,
    certs: Arc<Reloading>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("cert_file", &self.certs.cert_file).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the pair `[server]` names; `None` when TLS is off (no files set).
    pub(super) fn from_config(config: &ServerConfig) -> Result<Option<ServerTls>, HttpsError> {
        if config.tls_cert_file.as_os_str().is_empty() {
            return Ok(None);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = Arc::new(Reloading::load(
            config.tls_cert_file.clone(),
            config.tls_key_file.clone(),
            Arc::clone(&provider),
        )?);
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        // The node speaks HTTP/1.1 only (WebSockets upgrade from it).
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(ServerTls { acceptor: TlsAcceptor::from(Arc::new(server)), certs }))
    }

    /// The acceptor for new connections (it sees every reload).
    pub(super) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Looks at the files every `every` until `stop`, swapping in a changed good pair.
    pub(super) async fn watch(self, every: Duration, stop: CancellationToken) {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = stop.cancelled() => return,
            }
            let certs = Arc::clone(&self.certs);
            // Small files, but still blocking reads: off the runtime's workers.
            if let Err(e) = tokio::task::spawn_blocking(move || certs.reload()).await {
                tracing::error!(error = %e, "https certificate reload task failed");
            }
        }
    }
}

/// The two files' bytes, hashed: what was last looked at (loaded or refused).
type Stamp = [u8; 32];

/// The current certificate and key, and where they come from.
struct Reloading {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<Stamp>,
}

impl fmt::Debug for Reloading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading").field("cert_file", &self.cert_file).finish_non_exhaustive()
    }
}

impl Reloading {
    fn load(
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, HttpsError> {
        let (cert, key) = (read(&cert_file)?, read(&key_file)?);
        let certified = certified_key(&cert_file, &cert, &key_file, &key, &provider)?;
        Ok(Self {
            seen: Mutex::new(stamp(&cert, &key)),
            cert_file,
            key_file,
            provider,
            current: RwLock::new(Arc::new(certified)),
        })
    }

    /// Reads both files; a changed good pair is swapped in, a changed bad one logged once.
    fn reload(&self) {
        let files = read(&self.cert_file).and_then(|cert| Ok((cert, read(&self.key_file)?)));
        let (cert, key) = match files {
            Ok(files) => files,
            Err(e) => {
                // A file briefly missing mid-rotation: looked at again next time.
                tracing::warn!(error = %e, "cannot read the https certificate; keeping the current one");
                return;
            }
        };
        let now = stamp(&cert, &key);
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return;
            }
            *seen = now;
        }
        match certified_key(&self.cert_file, &cert, &self.key_file, &key, &self.provider) {
            Ok(certified) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
                crate::metrics::metrics().tls_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(cert_file = %self.cert_file.display(), "https certificate reloaded");
            }
            Err(e) => {
                crate::metrics::metrics().tls_reloads.with_label_values(&["refused"]).inc();
                tracing::error!(error = %e, "new https certificate refused; keeping the current one");
            }
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, HttpsError> {
    std::fs::read(path).map_err(|source| HttpsError::Io { path: path.to_owned(), source })
}

fn stamp(cert: &[u8], key: &[u8]) -> Stamp {
    let mut hash = Sha256::new();
    hash.update((cert.len() as u64).to_le_bytes());
    hash.update(cert);
    hash.update(key);
    hash.finalize().into()
}

fn certified_key(
    cert_file: &Path,
    cert: &[u8],
    key_file: &Path,
    key: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, HttpsError> {
    let no_cert = || HttpsError::NoCert { path: cert_file.to_owned() };
    let chain = CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>().map_err(|_| no_cert())?;
    if chain.is_empty() {
        return Err(no_cert());
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|_| HttpsError::BadKey { path: key_file.to_owned() })?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|source| HttpsError::Mismatch { path: key_file.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name` and its key, in PEM.
    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn served(certs: &Reloading) -> Vec<u8> {
        certs.current.read().unwrap().cert[0].to_vec()
    }

    #[test]
    fn a_changed_pair_is_swapped_in_and_a_broken_one_kept_out() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let (cert, key) = pair("one");
        std::fs::write(&cert_file, &cert).unwrap();
        std::fs::write(&key_file, &key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = Reloading::load(cert_file.clone(), key_file.clone(), provider).unwrap();
        let first = served(&certs);

        // Only the new certificate written: it does not fit the old key, so it is refused.
        let (cert2, key2) = pair("two");
        std::fs::write(&cert_file, &cert2).unwrap();
        certs.reload();
        assert_eq!(served(&certs), first);
        // Then its key: the pair now fits and is served.
        std::fs::write(&key_file, &key2).unwrap();
        certs.reload();
        let second = served(&certs);
        assert_ne!(second, first);
        // Unchanged files are not parsed again; garbage keeps the last good pair.
        certs.reload();
        std::fs::write(&cert_file, "not pem").unwrap();
        certs.reload();
        assert_eq!(served(&certs), second);
        // A missing file keeps it too.
        std::fs::remove_file(&key_file).unwrap();
        certs.reload();
        assert_eq!(served(&certs), second);
    }

    #[test]
    fn errors_name_the_file_and_never_quote_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair("one");
        let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // The key given as the certificate and the other way round.
        std::fs::write(&cert_file, &key).unwrap();
        std::fs::write(&key_file, &cert).unwrap();
        let err = Reloading::load(cert_file.clone(), key_file.clone(), Arc::clone(&provider)).unwrap_err();
        assert!(matches!(err, HttpsError::NoCert { .. }), "{err}");
        assert!(!err.to_string().contains("PRIVATE"), "{err}");
        std::fs::write(&cert_file, &cert).unwrap();
        let err = Reloading::load(cert_file, key_file, provider).unwrap_err();
        assert!(matches!(err, HttpsError::BadKey { .. }) && err.to_string().contains("k.pem"), "{err}");
    }
}
