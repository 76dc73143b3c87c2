//! Raw clients for attacking the core in tests and measurements: TCP from a chosen loopback
//! address (so one test can be two peers), TLS that stops after the handshake, and HTTP/2 (hyper)
//! calls with hand-built gRPC bodies, including bodies that never end; and a bare HTTP/1.1 GET
//! for pull links.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::{BufMut as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proto::v1 as pb;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject as _;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tonic::Code;

use crate::core::TestCore;

pub const START_SESSION: &str = "/podconnect.v1.SessionService/StartSession";
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// A request or response body of these clients.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
/// Sends requests on one HTTP/2 connection.
pub type Sender = hyper::client::conn::http2::SendRequest<Body>;

/// A TLS connector trusting `ca` (PEM), offering `alpn`.
pub fn connector(ca: &Path, alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("the CA file") {
        roots.add(cert.expect("a certificate")).expect("a usable CA");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A TCP connection to `addr` from the loopback address `from`.
pub async fn tcp_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.bind(SocketAddr::from((from, 0))).expect("loopback addresses bind");
    socket.connect(addr).await.expect("the server accepts the connection")
}

/// A TLS connection to `addr` (one of the core's listeners) from `from`, trusting the core's CA.
pub async fn tls_to(
    core: &TestCore,
    addr: SocketAddr,
    from: [u8; 4],
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = tcp_from(from, addr).await;
    let name = ServerName::try_from("localhost").expect("a name");
    let ca = core.dev_ca.as_ref().expect("the core made a development CA");
    connector(ca, alpn).connect(name, tcp).await.expect("the TLS handshake succeeds")
}

/// An HTTP/2 connection to the core's gRPC listener from `from`, driven in the background. The
/// returned task ends when the server closes the connection.
pub async fn h2_from(core: &TestCore, from: [u8; 4]) -> (Sender, tokio::task::JoinHandle<()>) {
    let tls = tls_to(core, core.addr, from, b"h2").await;
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .expect("the HTTP/2 handshake succeeds");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, task)
}

/// One gRPC message with its 5-byte length prefix.
pub fn framed(message: &impl prost::Message) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(0);
    out.put_u32(u32::try_from(message.encoded_len()).expect("small"));
    message.encode(&mut out).expect("encodes");
    out.freeze()
}

pub fn start_session_message(device: &str) -> Bytes {
    framed(&pb::StartSessionRequest { device_id: device.into(), ..Default::default() })
}

pub fn health_message() -> Bytes {
    framed(&tonic_health::pb::HealthCheckRequest { service: String::new() })
}

pub fn grpc_request(path: &str, body: Body) -> http::Request<Body> {
    http::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .expect("a valid request")
}

/// The gRPC status of a response: from its headers (trailers-only) or its trailers.
pub async fn grpc_code(response: http::Response<hyper::body::Incoming>) -> (Code, String) {
    let read = |headers: &http::HeaderMap| {
        headers.get("grpc-status").map(|code| {
            let code = Code::from_i32(code.to_str().unwrap_or("2").parse().unwrap_or(2));
            let message = headers.get("grpc-message").and_then(|m| m.to_str().ok()).unwrap_or("").to_owned();
            (code, percent_decode(&message))
        })
    };
    if let Some(status) = read(response.headers()) {
        return status;
    }
    let collected = response.into_body().collect().await.expect("the response body arrives");
    collected.trailers().and_then(read).expect("a gRPC status in the trailers")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A unary call with a whole body; returns its status.
pub async fn unary(sender: &mut Sender, path: &str, body: Bytes) -> (Code, String) {
    sender.ready().await.expect("the connection is open");
    let response = sender.send_request(grpc_request(path, Full::new(body).boxed())).await.expect("a response");
    grpc_code(response).await
}

/// A body that sends nothing and never ends while its sender is kept.
pub fn stalled_body() -> (mpsc::Sender<Result<Frame<Bytes>, std::convert::Infallible>>, Body) {
    let (tx, rx) = mpsc::channel(1);
    (tx, StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed())
}

/// The HTTP/2 client connection preface.
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One HTTP/2 frame: 9-byte header and payload.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("short payload");
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A HEADERS frame (END_HEADERS) opening a gRPC call to `path` on `stream`, its header block
/// HPACK literals without indexing (short names and values only).
pub fn h2_request_headers(stream: u32, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0x00);
        block.push(u8::try_from(name.len()).expect("short name"));
        block.extend_from_slice(name.as_bytes());
        block.push(u8::try_from(value.len()).expect("short value"));
        block.extend_from_slice(value.as_bytes());
    }
    h2_frame(0x1, 0x4, stream, &block)
}

/// GET over plaintext HTTP/1.1 (a pull listener with `--pull-plaintext`), with extra header lines
/// (each ending in CRLF): the status and the body.
pub async fn plain_get(url: &str, headers: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").expect("a plaintext link");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("the listener answers");
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("the request goes out");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("the answer comes back");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    (status, response[split + 4..].to_vec())
}
