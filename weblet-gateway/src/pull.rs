//! One-time print-file downloads for printers that pull: `GET /print-files/<token>.pdf` is passed
//! through to the core's pull-link listener, streamed, so printers only ever talk to the gateway.
//! The core decides everything (one download, expiry); the gateway keeps nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tonic::body::Body;

use crate::web::plain;

/// The path prefix of pull links.
pub const PREFIX: &str = "/print-files/";
/// A pull that has not produced its response headers by then is given up.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where pull links are forwarded.
#[derive(Clone)]
pub struct PullForwarder {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl PullForwarder {
    /// `upstream` is the core's pull-link listener, `https://host:port` (trusting `ca`) or `http://host:port`.
    pub fn new(upstream: &str, ca: Option<&Path>) -> anyhow::Result<Self> {
        let uri: Uri = upstream.parse().with_context(|| format!("--pull-upstream {upstream:?} is not a URL"))?;
        let host = uri.host().context("--pull-upstream needs a host")?.trim_matches(['[', ']']).to_owned();
        let secure = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("--pull-upstream must start with https:// or http://"),
        };
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tls = if secure {
            let ca = ca.context("an https --pull-upstream needs a CA to trust (--upstream-ca)")?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("cannot read {}", ca.display()))? {
                roots.add(cert?).with_context(|| format!("{}: not a usable CA certificate", ca.display()))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let name = ServerName::try_from(host.clone()).context("--pull-upstream host is not a valid TLS name")?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(PullForwarder { host, port, tls })
    }

    /// Passes one pull-link request to the core and streams its answer back.
    pub async fn forward(&self, request: Request<Body>) -> Response<Body> {
        if request.method() != Method::GET {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
            return response;
        }
        let path = request.uri().path().to_owned();
        match tokio::time::timeout(TIMEOUT, self.fetch(&path)).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "pull link could not be fetched from the core");
                plain(StatusCode::BAD_GATEWAY, "the print service is not reachable; try again shortly\n")
            }
            Err(_) => plain(StatusCode::GATEWAY_TIMEOUT, "the print service did not answer in time\n"),
        }
    }

    async fn fetch(&self, path: &str) -> anyhow::Result<Response<Body>> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await?;
        let _ = tcp.set_nodelay(true);
        let request = Request::get(path)
            .header(header::HOST, format!("{}:{}", self.host, self.port))
            .body(http_body_util::Empty::<bytes::Bytes>::new())?;
        let response = match &self.tls {
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), tcp).await?;
                send(TokioIo::new(stream), request).await?
            }
            None => send(TokioIo::new(tcp), request).await?,
        };
        let (parts, body) = response.into_parts();
        let mut answer = Response::new(Body::new(body));
        *answer.status_mut() = parts.status;
        for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CACHE_CONTROL] {
            if let Some(value) = parts.headers.get(&name) {
                answer.headers_mut().insert(name, value.clone());
            }
        }
        Ok(answer)
    }
}

async fn send<IO>(
    io: IO,
    request: Request<http_body_util::Empty<bytes::Bytes>>,
) -> anyhow::Result<Response<hyper::body::Incoming>>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender.send_request(request).await?)
}
