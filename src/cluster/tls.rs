//! Mutual TLS between nodes: one cluster CA, and a certificate per node (or one
//! shared by all) that serves both as server and as client certificate.
//!
//! Every node certificate carries the DNS name [`SERVER_NAME`], and clients always
//! connect with that name: a certificate proves membership of the cluster, not which
//! node it is. Peers tell each other their node id in the transport's first frame.
//!
//! [`generate`] writes a development CA and node pairs (`weft cluster-ca`); in
//! Kubernetes they come from Helm or cert-manager instead.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::client::danger::ServerCertVerifier as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

/// The one DNS name in every node certificate, and the name clients ask for.
pub const SERVER_NAME: &str = "weft-node";
/// The ALPN protocol of the node-to-node transport.
pub const ALPN: &[u8] = b"weft-cluster/1";

/// Where a node finds its TLS material (`[cluster.tls]`, to be wired).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsPaths {
    /// The cluster CA certificate (PEM): the only issuer whose node certificates are
    /// accepted. Several certificates are all trusted (to rotate the CA).
    pub ca_cert: PathBuf,
    /// This node's certificate chain (PEM), leaf first.
    pub node_cert: PathBuf,
    /// This node's private key (PEM, PKCS#8, SEC1 or PKCS#1).
    pub node_key: PathBuf,
}

impl Default for TlsPaths {
    /// What `weft cluster-ca --out certs` writes.
    fn default() -> Self {
        Self {
            ca_cert: PathBuf::from("certs/ca.pem"),
            node_cert: PathBuf::from("certs/node.pem"),
            node_key: PathBuf::from("certs/node.key"),
        }
    }
}

/// TLS material that cannot be used. Messages name files, never their contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A certificate file is not valid PEM, or holds no certificate.
    #[error("{}: no usable certificate in PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The key file is not valid PEM, or holds no private key. (No detail: it would
    /// quote the key file.)
    #[error("{}: no usable private key in PEM", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
    },
    /// The CA certificate cannot be a trust anchor.
    #[error("{}: not a usable CA certificate: {source}", path.display())]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// This node's certificate would be refused by its peers (wrong CA, no `weft-node`
    /// name, expired, missing server or client usage), or does not match its key.
    #[error("{}: this node's certificate would be refused by its peers: {source}", path.display())]
    NodeCertRejected {
        /// The node certificate file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// Building the rustls configuration failed.
    #[error("cannot build the tls configuration: {0}")]
    Config(#[from] rustls::Error),
    /// Building a certificate verifier failed (e.g. no usable trust anchor).
    #[error("cannot build a certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// `generate` would replace an existing CA key.
    #[error("{} exists; refusing to replace the cluster CA key", path.display())]
    Exists {
        /// The existing key file.
        path: PathBuf,
    },
    /// A node name for `generate` is not a plain file name.
    #[error("invalid node name {name:?}: use letters, digits, '-', '_' or '.', not \"ca\"")]
    BadName {
        /// The name.
        name: String,
    },
    /// Generating a key or certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[source] rcgen::Error),
}

/// A node's loaded TLS identity: rustls configurations for both directions.
#[derive(Clone)]
pub struct NodeTls {
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeTls { .. }")
    }
}

impl NodeTls {
    /// Loads the CA, the node chain and key, and checks that peers would accept this node.
    pub fn load(paths: &TlsPaths) -> Result<NodeTls, TlsError> {
        let ca = read_certs(&paths.ca_cert)?;
        let chain = read_certs(&paths.node_cert)?;
        let key = PrivateKeyDer::from_pem_file(&paths.node_key).map_err(|e| match e {
            rustls::pki_types::pem::Error::Io(source) => {
                TlsError::Io { path: paths.node_key.clone(), source }
            }
            _ => TlsError::BadKey { path: paths.node_key.clone() },
        })?;
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|source| TlsError::BadCa { path: paths.ca_cert.clone(), source })?;
        }
        let roots = Arc::new(roots);
        let provider = provider();
        let rejected = |source| TlsError::NodeCertRejected { path: paths.node_cert.clone(), source };

        // Peers verify our certificate with exactly these two verifiers: find out now.
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let server_verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()?;
        let (leaf, intermediates) =
            chain.split_first().ok_or_else(|| rejected(rustls::Error::NoCertificatesPresented))?;
        let now = UnixTime::now();
        let name = ServerName::try_from(SERVER_NAME).map_err(|e| rustls::Error::General(e.to_string()))?;
        server_verifier.verify_server_cert(leaf, intermediates, &name, &[], now).map_err(rejected)?;
        client_verifier.verify_client_cert(leaf, intermediates, now).map_err(rejected)?;

        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(rejected)?;
        server.alpn_protocols = vec![ALPN.to_vec()];

        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(rejected)?;
        client.alpn_protocols = vec![ALPN.to_vec()];

        Ok(NodeTls { server: Arc::new(server), client: Arc::new(client) })
    }

    /// The server side: TLS 1.3, ALPN `weft-cluster/1`, client certificates required
    /// and verified against the cluster CA only.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// The client side: trusts the cluster CA only and presents this node's certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }
}

/// The crypto provider, passed explicitly so that no process-wide default is needed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Io { path: path.to_owned(), source },
        source => TlsError::Pem { path: path.to_owned(), source },
    }
}

/// The files [`generate`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// The CA certificate, for every node's `ca_cert`.
    pub ca_cert: PathBuf,
    /// The CA private key (mode 0600); keep it off the nodes.
    pub ca_key: PathBuf,
    /// One entry per node pair, with its name (`node` when no names were given).
    pub nodes: Vec<(String, TlsPaths)>,
}

/// Writes a new cluster CA (`ca.pem`, `ca.key`) and node pairs signed by it into `dir`
/// (created if missing): `node.pem`/`node.key` when `names` is empty, else
/// `<name>.pem`/`<name>.key` per name. Node certificates carry the names `weft-node`,
/// `localhost` and `127.0.0.1` and both server and client usage. Keys are mode 0600.
///
/// Refuses to replace an existing `ca.key` unless `overwrite`.
pub fn generate(dir: &Path, names: &[&str], overwrite: bool) -> Result<Generated, TlsError> {
    let names: Vec<&str> = if names.is_empty() { vec!["node"] } else { names.to_vec() };
    if let Some(bad) = names.iter().find(|name| !valid_name(name)) {
        return Err(TlsError::BadName { name: (*bad).to_owned() });
    }
    let ca_cert = dir.join("ca.pem");
    let ca_key = dir.join("ca.key");
    if !overwrite && ca_key.exists() {
        return Err(TlsError::Exists { path: ca_key });
    }
    fs::create_dir_all(dir).map_err(|source| TlsError::Io { path: dir.to_owned(), source })?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(TlsError::Generate)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.distinguished_name.push(DnType::CommonName, "weft cluster CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut ca_params);
    let ca_keypair = KeyPair::generate().map_err(TlsError::Generate)?;
    let ca = ca_params.self_signed(&ca_keypair).map_err(TlsError::Generate)?;
    write_file(&ca_key, ca_keypair.serialize_pem().as_bytes(), true)?;
    write_file(&ca_cert, ca.pem().as_bytes(), false)?;
    let issuer = Issuer::new(ca_params, ca_keypair);

    let mut nodes = Vec::with_capacity(names.len());
    for name in names {
        let sans = vec![SERVER_NAME.to_owned(), "localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut params = CertificateParams::new(sans).map_err(TlsError::Generate)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        set_validity(&mut params);
        let keypair = KeyPair::generate().map_err(TlsError::Generate)?;
        let cert = params.signed_by(&keypair, &issuer).map_err(TlsError::Generate)?;
        let paths = TlsPaths {
            ca_cert: ca_cert.clone(),
            node_cert: dir.join(format!("{name}.pem")),
            node_key: dir.join(format!("{name}.key")),
        };
        write_file(&paths.node_key, keypair.serialize_pem().as_bytes(), true)?;
        write_file(&paths.node_cert, cert.pem().as_bytes(), false)?;
        nodes.push((name.to_owned(), paths));
    }
    Ok(Generated { ca_cert, ca_key, nodes })
}

/// Valid from a day ago (clock skew between nodes) for ten years: development material.
fn set_validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "ca"
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Writes `contents` to `path`, readable by the owner only when `secret`.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let io_error = |source| TlsError::Io { path: path.to_owned(), source };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error)?;
    // `mode` applies to new files only: tighten a replaced one before writing the key.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_error)?;
    }
    file.write_all(contents).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_material_loads_and_names_each_node() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(dir.path(), &["a", "b"], false).unwrap();
        assert_eq!(generated.nodes.len(), 2);
        for (_, paths) in &generated.nodes {
            NodeTls::load(paths).unwrap();
        }
        assert!(matches!(generate(dir.path(), &[], false), Err(TlsError::Exists { .. })));
        let again = generate(dir.path(), &[], true).unwrap();
        assert_eq!(again.nodes[0].0, "node");
        NodeTls::load(&again.nodes[0].1).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(dir.path(), &[], false).unwrap();
        for key in [&generated.ca_key, &generated.nodes[0].1.node_key] {
            assert_eq!(fs::metadata(key).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_node_cert_from_another_ca_is_refused_at_load() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        let ours = generate(ours.path(), &[], false).unwrap();
        let theirs = generate(theirs.path(), &[], false).unwrap();
        let mixed = TlsPaths { ca_cert: ours.ca_cert, ..theirs.nodes[0].1.clone() };
        let err = NodeTls::load(&mixed).unwrap_err();
        assert!(matches!(err, TlsError::NodeCertRejected { .. }), "{err}");
    }

    #[test]
    fn a_key_that_does_not_match_the_cert_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(dir.path(), &["a", "b"], false).unwrap();
        let mixed =
            TlsPaths { node_key: generated.nodes[1].1.node_key.clone(), ..generated.nodes[0].1.clone() };
        let err = NodeTls::load(&mixed).unwrap_err();
        assert!(matches!(err, TlsError::NodeCertRejected { .. }), "{err}");
    }

    #[test]
    fn errors_name_the_file_not_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate(dir.path(), &[], false).unwrap();
        let missing = TlsPaths { node_key: dir.path().join("nope.key"), ..generated.nodes[0].1.clone() };
        let err = NodeTls::load(&missing).unwrap_err().to_string();
        assert!(err.contains("nope.key"), "{err}");
        // A key file given as the certificate: the message names the file, not the key.
        let swapped = TlsPaths { node_cert: generated.ca_key.clone(), ..generated.nodes[0].1.clone() };
        let err = NodeTls::load(&swapped).unwrap_err().to_string();
        assert!(err.contains("ca.key"), "{err}");
        assert!(!err.contains("PRIVATE"), "{err}");
        // A certificate given as the key.
        let swapped = TlsPaths { node_key: generated.ca_cert.clone(), ..generated.nodes[0].1.clone() };
        let err = NodeTls::load(&swapped).unwrap_err();
        assert!(matches!(err, TlsError::BadKey { .. }), "{err}");
        assert!(matches!(generate(dir.path(), &["../x"], true), Err(TlsError::BadName { .. })));
    }
}
