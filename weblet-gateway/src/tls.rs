//! TLS toward browsers (rustls, TLS 1.2 minimum, ALPN `h2` and `http/1.1` since a printer's browser
//! may speak only HTTP/1.1) and toward the core (a tonic channel trusting the upstream CA).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The browser-facing TLS configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("bad certificate in {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A lazily connected, reconnecting channel to the core. No request timeout: server streams
/// must live as long as the browser wants; HTTP/2 keepalive notices a dead core.
pub fn upstream_channel(upstream: &str, ca: Option<&Path>) -> anyhow::Result<Channel> {
    let mut endpoint = Endpoint::from_shared(upstream.to_owned())
        .with_context(|| format!("bad upstream URL {upstream}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if upstream.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = ca {
            let pem = std::fs::read_to_string(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).context("bad upstream TLS settings")?;
    }
    Ok(endpoint.connect_lazy())
}
