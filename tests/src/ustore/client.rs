//! A minimal HTTPS client for calling the double directly from tests (one connection per call),
//! e.g. with one user's token on another user's order item.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Which HTTP version a call uses (chosen by ALPN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    H1,
    H2,
}

/// An answer: status, content type and the whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| format!("not JSON ({}): {:?}", self.status, self.body))
    }
}

/// `method` on `target` (a path below the API base such as `v1/store`, or an absolute path
/// starting with `/`), with `Authorization: uStore <token>` when given and a JSON body.
pub async fn call(
    addr: SocketAddr,
    ca_pem: &str,
    version: Version,
    method: Method,
    target: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Reply> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![match version {
        Version::H1 => b"http/1.1".to_vec(),
        Version::H2 => b"h2".to_vec(),
    }];
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("127.0.0.1")?.to_owned(), tcp).await?;

    let path = match target.strip_prefix('/') {
        Some(_) => target.to_string(),
        None => format!("/uStoreRestAPI/{target}"),
    };
    let uri = format!("https://127.0.0.1:{}{path}", addr.port());
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::ACCEPT, "application/json")
        .header(header::ACCEPT_LANGUAGE, "en-US");
    if version == Version::H1 {
        request = request.header(header::HOST, format!("127.0.0.1:{}", addr.port()));
    }
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("uStore {token}"));
    }
    let bytes = match body {
        Some(value) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Bytes::from(serde_json::to_vec(value)?)
        }
        None => Bytes::new(),
    };
    let request = request.body(Full::new(bytes))?;
    let io = TokioIo::new(tls);
    match version {
        Version::H1 => {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            let driver = tokio::spawn(connection);
            let response = sender.send_request(request).await;
            let reply = read(response?).await;
            driver.abort();
            reply
        }
        Version::H2 => {
            let (mut sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            let driver = tokio::spawn(connection);
            let response = sender.send_request(request).await;
            let reply = read(response?).await;
            driver.abort();
            reply
        }
    }
}

async fn read(response: http::Response<hyper::body::Incoming>) -> anyhow::Result<Reply> {
    let status = response.status();
    let content_type =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Reply { status, content_type, body })
}
