//! TLS to the CQL nodes: on when `cql.tls_ca_file` is set, with an optional client
//! certificate (`cql.tls_cert_file`, `cql.tls_key_file`) for nodes that require one.
//!
//! The driver connects to each node by IP address (it learns the others from the
//! cluster's peer tables), so every node's certificate must name its IP address
//! (an IP subject alternative name), not only a host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::CqlConfig;

/// TLS material for CQL that cannot be used. Messages name files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum CqlTlsError {
    /// A file could not be read.
    #[error("{key} {}: {source}", path.display())]
    Io {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate file holds no PEM certificate.
    #[error("{key} {}: no usable certificate in PEM", path.display())]
    NoCert {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("cql.tls_key_file {}: no usable private key in PEM", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
    },
    /// A client certificate while TLS is off.
    #[error("cql.tls_cert_file needs cql.tls_ca_file (TLS to the CQL nodes is off without it)")]
    CertWithoutCa,
    /// A client certificate without its key, or the other way round.
    #[error("set both cql.tls_cert_file and cql.tls_key_file, or neither")]
    HalfClientCert,
    /// rustls refused the material (a CA it cannot use, a key that does not fit).
    #[error("cannot build the cql tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls client configuration `[cql]` asks for; `None` when TLS is off.
pub(super) fn client_config(cfg: &CqlConfig) -> Result<Option<Arc<rustls::ClientConfig>>, CqlTlsError> {
    if cfg.tls_ca_file.as_os_str().is_empty() {
        if !cfg.tls_cert_file.as_os_str().is_empty() {
            return Err(CqlTlsError::CertWithoutCa);
        }
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs("cql.tls_ca_file", &cfg.tls_ca_file)? {
        roots.add(cert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (cfg.tls_cert_file.as_os_str().is_empty(), cfg.tls_key_file.as_os_str().is_empty()) {
        (true, true) => builder.with_no_client_auth(),
        (false, false) => {
            let chain = certs("cql.tls_cert_file", &cfg.tls_cert_file)?;
            let key = read("cql.tls_key_file", &cfg.tls_key_file)?;
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|_| CqlTlsError::BadKey { path: cfg.tls_key_file.clone() })?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => return Err(CqlTlsError::HalfClientCert),
    };
    Ok(Some(Arc::new(config)))
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, CqlTlsError> {
    std::fs::read(path).map_err(|source| CqlTlsError::Io { key, path: path.to_owned(), source })
}

fn certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, CqlTlsError> {
    let no_cert = || CqlTlsError::NoCert { key, path: path.to_owned() };
    let bytes = read(key, path)?;
    let certs =
        CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|_| no_cert())?;
    if certs.is_empty() {
        return Err(no_cert());
    }
    Ok(certs)
}
