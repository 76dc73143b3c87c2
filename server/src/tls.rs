//! TLS for the gRPC listener: rustls with TLS 1.2 as the floor and 1.3 preferred, optional or
//! required client certificates, and a development CA generated on first start when no
//! certificate is configured. Connections are served (handshake time limit included) by `serve`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{ClientAuth, Identity, TlsSettings};

/// Files of the development CA and its localhost certificate.
#[derive(Debug, Clone)]
pub struct DevCa {
    /// The CA certificate clients trust (e.g. `grpcurl -cacert`).
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl DevCa {
    pub fn in_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        DevCa {
            ca_cert: dir.join("dev-ca.pem"),
            ca_key: dir.join("dev-ca.key"),
            server_cert: dir.join("localhost.pem"),
            server_key: dir.join("localhost.key"),
        }
    }

    /// Creates the CA and the localhost certificate unless they exist; returns whether it did.
    pub fn ensure(&self) -> anyhow::Result<bool> {
        let all = [&self.ca_cert, &self.ca_key, &self.server_cert, &self.server_key];
        if all.iter().all(|path| path.exists()) {
            return Ok(false);
        }
        let dir = self.ca_cert.parent().expect("files live in a folder");
        crate::store::private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;

        // Any missing file means a fresh pair: clients must then trust the new CA file.
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.distinguished_name.push(DnType::CommonName, "podconnect development CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        write_file(&self.ca_cert, ca_cert.pem().as_bytes(), false)?;
        write_file(&self.ca_key, ca_key.serialize_pem().as_bytes(), true)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let mut leaf = CertificateParams::new(vec!["localhost".to_string()])?;
        leaf.distinguished_name.push(DnType::CommonName, "localhost");
        leaf.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        leaf.subject_alt_names.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let leaf_key = KeyPair::generate()?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
        write_file(&self.server_cert, leaf_cert.pem().as_bytes(), false)?;
        write_file(&self.server_key, leaf_key.serialize_pem().as_bytes(), true)?;
        Ok(true)
    }
}

fn write_file(path: &Path, contents: &[u8], secret: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mode = if secret { 0o600 } else { 0o644 };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents).with_context(|| format!("cannot write {}", path.display()))
}

/// The rustls provider every TLS object here uses.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS configuration of the core's outbound HTTPS clients (uStore, JWKS): the CA in
/// `ca_file`, or the system's roots when none is configured (`what` names the setting to fix).
pub fn outbound_client_config(ca_file: Option<&Path>, what: &str) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in load_certs(path)? {
                roots.add(cert).with_context(|| format!("{}: not a usable CA certificate", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // One unreadable system certificate must not stop the others.
                let _ = roots.add(cert);
            }
            anyhow::ensure!(!roots.is_empty(), "the system has no trusted root certificates; set the {what} CA file");
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Builds the listener's TLS configuration. Returns the development CA when one is in use.
pub fn server_config(settings: &TlsSettings, data_dir: &Path) -> anyhow::Result<(Arc<ServerConfig>, Option<DevCa>)> {
    let (cert_path, key_path, dev) = match &settings.identity {
        Identity::Files { cert, key } => (cert.clone(), key.clone(), None),
        Identity::Development => {
            let dev = DevCa::in_dir(data_dir);
            dev.ensure()?;
            (dev.server_cert.clone(), dev.server_key.clone(), Some(dev))
        }
    };
    let chain = load_certs(&cert_path)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("{}: no usable private key (PEM PKCS#8, PKCS#1 or SEC1)", key_path.display()))?;

    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match (settings.client_auth, &settings.client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (mode, Some(ca_path)) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca_path)? {
                roots.add(cert).with_context(|| format!("{}: not a usable CA certificate", ca_path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build()?)
        }
        (_, None) => bail!("client certificates need a client CA"),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .with_context(|| format!("{}: the key does not match the certificate", key_path.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(config), dev))
}

/// Every certificate in a PEM file; an error names the file when there is none.
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: invalid PEM", path.display()))?;
    if certs.is_empty() {
        bail!("{}: no certificate found", path.display());
    }
    Ok(certs)
}
