//! `TestGateway`: starts the real `weblet-gateway` binary in front of a `TestCore` (or balancing over
//! several) and stops it when dropped; `WebClient` speaks grpc-web to it over TLS with HTTP/1.1 or HTTP/2 forced by ALPN, and
//! decodes the frames itself (no grpc-web client library is trusted as the oracle).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_rustls::TlsConnector;

use crate::core::TestCore;
use crate::wait::try_eventually;

/// How long the gateway may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a wait for the gateway's own bookkeeping may take.
const WAIT_BOUND: Duration = Duration::from_secs(10);

/// The request body type of `WebClient`.
pub type ReqBody = BoxBody<Bytes, std::io::Error>;

/// Options for a gateway under test, one typed method per option the tests use; each becomes a
/// flag.
#[derive(Default)]
pub struct GatewayBuilder {
    args: Vec<String>,
    weblet_dir: Option<PathBuf>,
    built_in_weblet: bool,
    binary: Option<PathBuf>,
    current_dir: Option<PathBuf>,
    metrics_off: bool,
    /// `--core` addresses in place of the core given to `spawn`.
    cores: Option<Vec<String>>,
}

/// A duration as the gateway's flags take it ("1s", "60s").
fn flag_duration(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

impl GatewayBuilder {
    fn flag(mut self, flag: &str, value: String) -> Self {
        self.args.push(flag.to_owned());
        self.args.push(value);
        self
    }

    pub fn allowed_origin(self, origin: &str) -> Self {
        self.flag("--allowed-origin", origin.to_owned())
    }

    pub fn worker_threads(self, threads: usize) -> Self {
        self.flag("--worker-threads", threads.to_string())
    }

    pub fn max_concurrent_calls(self, calls: u32) -> Self {
        self.flag("--max-concurrent-calls", calls.to_string())
    }

    pub fn max_calls_per_peer(self, calls: u32) -> Self {
        self.flag("--max-calls-per-peer", calls.to_string())
    }

    pub fn max_streams_per_connection(self, streams: u32) -> Self {
        self.flag("--max-streams-per-connection", streams.to_string())
    }

    pub fn handshake_timeout(self, limit: Duration) -> Self {
        self.flag("--handshake-timeout", flag_duration(limit))
    }

    pub fn header_timeout(self, limit: Duration) -> Self {
        self.flag("--header-timeout", flag_duration(limit))
    }

    pub fn body_timeout(self, limit: Duration) -> Self {
        self.flag("--body-timeout", flag_duration(limit))
    }

    pub fn idle_timeout(self, limit: Duration) -> Self {
        self.flag("--idle-timeout", flag_duration(limit))
    }

    /// HTTP/2 keep-alive: a PING every `interval`, and the peer is dropped if it does not answer
    /// within `timeout`.
    pub fn keepalive(self, interval: Duration, timeout: Duration) -> Self {
        self.flag("--keepalive-interval", flag_duration(interval)).flag("--keepalive-timeout", flag_duration(timeout))
    }

    pub fn shutdown_grace(self, grace: Duration) -> Self {
        self.flag("--shutdown-grace", flag_duration(grace))
    }

    /// Balances over these cores (`--core`, each `https://host:port`) instead of forwarding to the
    /// one core given to `spawn` (whose CA, certificate and pull-link listener are still used).
    pub fn cores(mut self, urls: &[String]) -> Self {
        self.cores = Some(urls.to_vec());
        self
    }

    /// Each core's health checked every `interval`, each check answered within `timeout`.
    pub fn health_checks(self, interval: Duration, timeout: Duration) -> Self {
        self.flag("--health-interval", flag_duration(interval)).flag("--health-timeout", flag_duration(timeout))
    }

    /// No operator listener (`--metrics-listen off`); otherwise it is on an ephemeral loopback port.
    pub fn metrics_off(mut self) -> Self {
        self.metrics_off = true;
        self
    }

    pub fn weblet_dir(mut self, dir: &Path) -> Self {
        self.weblet_dir = Some(dir.to_path_buf());
        self
    }

    /// Serves the weblet built into the binary (no `--weblet-dir`; by default the gateway under
    /// test serves an empty folder, or the one given with `weblet_dir`).
    pub fn built_in_weblet(mut self) -> Self {
        self.built_in_weblet = true;
        self
    }

    /// Runs this copy of the `weblet-gateway` binary.
    pub fn binary(mut self, path: &Path) -> Self {
        self.binary = Some(path.to_path_buf());
        self
    }

    /// Starts the binary in `dir` (where relative paths and defaults resolve) instead of here.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.current_dir = Some(dir.to_path_buf());
        self
    }

    /// Starts the binary in front of `core`, trusting its development CA and showing browsers
    /// the core's localhost certificate.
    pub async fn spawn(self, core: &TestCore) -> anyhow::Result<TestGateway> {
        let temp = tempfile::tempdir()?;
        let ca = core.dev_ca.clone().context("the core must run with its development CA")?;
        let tls = core.data_dir.join("tls");
        let weblet_dir = self.weblet_dir.clone().unwrap_or_else(|| temp.path().join("weblet"));
        let log_path = temp.path().join("gateway.log");
        let mut command = crate::process::command(&match &self.binary {
            Some(binary) => binary.clone(),
            None => gateway_binary()?,
        });
        if !self.built_in_weblet {
            std::fs::create_dir_all(&weblet_dir)?;
            command.arg("--weblet-dir").arg(&weblet_dir);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        // Metrics on an ephemeral loopback port, so gateways under test never collide.
        command.args(["--metrics-listen", if self.metrics_off { "off" } else { "127.0.0.1:0" }]);
        match &self.cores {
            Some(urls) => urls.iter().for_each(|url| {
                command.args(["--core", url]);
            }),
            None => {
                command.args(["--upstream", &format!("https://{}", core.addr)]);
            }
        }
        command
            .args(["--listen", "127.0.0.1:0", "--upstream-ca"])
            .arg(&ca)
            .arg("--tls-cert")
            .arg(tls.join("localhost.pem"))
            .arg("--tls-key")
            .arg(tls.join("localhost.key"))
            .arg("--pull-upstream")
            .arg(format!("https://{}", core.pull_addr))
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path)?);
        let mut child = command.spawn().context("cannot start weblet-gateway")?;
        let Some(ready) = crate::process::ready_line::<ReadyLine>(&mut child, START_TIMEOUT).await? else {
            let status = child.wait().await?;
            bail!("the gateway exited ({status}):\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
        };
        Ok(TestGateway { addr: ready.listen, metrics_addr: ready.metrics, ca, log_path, child, _temp: temp })
    }
}

/// What the gateway's ready line says (see the README); fields the harness does not use are left out.
#[derive(serde::Deserialize)]
struct ReadyLine {
    listen: std::net::SocketAddr,
    metrics: Option<std::net::SocketAddr>,
}

/// A running gateway. Dropping it kills the process.
pub struct TestGateway {
    pub addr: std::net::SocketAddr,
    /// The operator listener serving `/metrics` (plain HTTP), unless `--metrics-listen off`.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The CA that signed the gateway's certificate.
    pub ca: PathBuf,
    log_path: PathBuf,
    child: Child,
    _temp: tempfile::TempDir,
}

impl TestGateway {
    pub async fn start(core: &TestCore) -> TestGateway {
        GatewayBuilder::default().spawn(core).await.expect("the gateway starts")
    }

    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    /// The process id (`None` once it exited).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM without waiting.
    pub async fn signal_terminate(&self) -> anyhow::Result<()> {
        let pid = self.pid().context("the gateway already exited")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        anyhow::ensure!(status.success(), "kill failed");
        Ok(())
    }

    /// Waits at most `bound` for the process to exit; its status, or `None` if it is still running.
    pub async fn wait_exit(&mut self, bound: Duration) -> anyhow::Result<Option<std::process::ExitStatus>> {
        match tokio::time::timeout(bound, self.child.wait()).await {
            Ok(status) => Ok(Some(status?)),
            Err(_) => Ok(None),
        }
    }

    /// `GET /metrics` from the operator listener, as text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let (status, _, body) = self.operator_get("/metrics").await?;
        anyhow::ensure!(status == StatusCode::OK, "metrics answered {status}");
        Ok(String::from_utf8(body.to_vec())?)
    }

    /// Waits (bounded) until the gateway's metrics count `calls` gRPC calls in flight; panics with
    /// the gateway's log if they never do.
    pub async fn wait_in_flight(&self, calls: u32) {
        const NAME: &str = "weblet_gateway_grpc_calls_in_flight ";
        let expected = format!("{NAME}{calls}");
        let counted = try_eventually(&format!("{calls} calls in flight"), WAIT_BOUND, || async {
            let metrics = self.metrics().await?;
            let line = metrics.lines().find(|line| line.starts_with(NAME)).unwrap_or_default();
            anyhow::Ok(if line == expected { Ok(()) } else { Err(line.to_owned()) })
        })
        .await;
        if let Err(err) = counted {
            panic!("{err:#}; the gateway's log:\n{}", self.log());
        }
    }

    /// A per-core series of the metrics (`weblet_gateway_core_<name>{core="..."} <value>`): each
    /// core's label with its value.
    pub async fn core_metric(&self, name: &str) -> anyhow::Result<HashMap<String, i64>> {
        let prefix = format!("weblet_gateway_core_{name}{{core=\"");
        let mut values = HashMap::new();
        for line in self.metrics().await?.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else { continue };
            let (core, value) = rest.split_once("\"} ").context("a per-core line")?;
            values.insert(core.to_owned(), value.trim().parse()?);
        }
        Ok(values)
    }

    /// Waits (bounded) until the core labelled `core` is serving (`true`) or ejected; panics with
    /// the gateway's log if it never is.
    pub async fn wait_core_serving(&self, core: &str, serving: bool, bound: Duration) {
        let what = format!("core {core} {}", if serving { "serving" } else { "ejected" });
        let seen = try_eventually(&what, bound, || async {
            let states = self.core_metric("serving").await?;
            anyhow::Ok(if states.get(core) == Some(&i64::from(serving)) { Ok(()) } else { Err(states) })
        })
        .await;
        if let Err(err) = seen {
            panic!("{err:#}; the gateway's log:\n{}", self.log());
        }
    }

    /// `GET path` on the operator listener (plain HTTP/1.1).
    pub async fn operator_get(&self, path: &str) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        let addr = self.metrics_addr.context("metrics are off")?;
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(connection);
        let request = Request::get(path).header(http::header::HOST, addr.to_string()).body(full(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(20), body.collect()).await??.to_bytes();
        Ok((parts.status, parts.headers, body))
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// One TLS connection with `http` forced by ALPN.
    pub async fn client(&self, http: Http) -> WebClient {
        WebClient::connect(self.addr, &self.ca, http).await.expect("the gateway accepts a TLS connection")
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The `weblet-gateway` binary next to this test executable.
pub fn gateway_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("unexpected test executable location")?;
    let binary = profile_dir.join("weblet-gateway");
    anyhow::ensure!(binary.exists(), "{} is missing: run `cargo build --workspace --bins`", binary.display());
    Ok(binary)
}

/// The HTTP version a client forces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    H1,
    H2,
}

/// The grpc-web wire mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Binary,
    Text,
}

impl Mode {
    pub fn content_type(self) -> &'static str {
        match self {
            Mode::Binary => "application/grpc-web+proto",
            Mode::Text => "application/grpc-web-text",
        }
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<ReqBody>),
    H2(hyper::client::conn::http2::SendRequest<ReqBody>),
}

/// One connection to the gateway.
pub struct WebClient {
    sender: Sender,
    authority: String,
}

impl WebClient {
    pub async fn connect(addr: std::net::SocketAddr, ca: &Path, http: Http) -> anyhow::Result<WebClient> {
        WebClient::connect_from(None, addr, ca, http).await
    }

    /// Like `connect`, from the local address `from` (e.g. 127.0.0.2, another peer on loopback).
    pub async fn connect_from(
        from: Option<IpAddr>,
        addr: std::net::SocketAddr,
        ca: &Path,
        http: Http,
    ) -> anyhow::Result<WebClient> {
        let tls = tls_connect(from, addr, ca, Some(http)).await?;
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(tls);
        let sender = match http {
            Http::H1 => {
                anyhow::ensure!(negotiated.as_deref() == Some(b"http/1.1"), "ALPN did not pick http/1.1");
                let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
                tokio::spawn(connection);
                Sender::H1(sender)
            }
            Http::H2 => {
                anyhow::ensure!(negotiated.as_deref() == Some(b"h2"), "ALPN did not pick h2");
                let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                Sender::H2(sender)
            }
        };
        Ok(WebClient { sender, authority: format!("localhost:{}", addr.port()) })
    }

    /// Another handle on the same HTTP/2 connection (calls multiplex); `None` over HTTP/1.1.
    pub fn multiplexed(&self) -> Option<WebClient> {
        match &self.sender {
            Sender::H2(sender) => {
                Some(WebClient { sender: Sender::H2(sender.clone()), authority: self.authority.clone() })
            }
            Sender::H1(_) => None,
        }
    }

    /// A request builder for `path` on this gateway.
    pub fn request(&self, method: Method, path: &str) -> http::request::Builder {
        let builder = Request::builder().method(method);
        match self.sender {
            Sender::H1(_) => builder.uri(path).header(http::header::HOST, &self.authority),
            Sender::H2(_) => builder.uri(format!("https://{}{path}", self.authority)),
        }
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send(&mut self, request: Request<ReqBody>) -> anyhow::Result<Response<Incoming>> {
        Ok(match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::H2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        })
    }

    /// Sends a request with a whole body and reads the whole reply.
    pub async fn fetch(&mut self, request: Request<ReqBody>) -> anyhow::Result<(StatusCode, HeaderMap, Bytes)> {
        let response = self.send(request).await?;
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(20), body.collect()).await??.to_bytes();
        Ok((parts.status, parts.headers, body))
    }

    /// A grpc-web call with one request message, read to its end.
    pub async fn call(
        &mut self,
        path: &str,
        token: Option<&str>,
        message: &impl prost::Message,
        mode: Mode,
    ) -> anyhow::Result<WebReply> {
        let mut request = self.request(Method::POST, path).header("content-type", mode.content_type());
        request = request.header("x-grpc-web", "1");
        if mode == Mode::Text {
            request = request.header("accept", "application/grpc-web-text");
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = encode_body(&frame(0, &message.encode_to_vec()), mode);
        let (status, headers, body) = self.fetch(request.body(full(body))?).await?;
        WebReply::parse(status, headers, &body, mode)
    }
}

/// A TLS connection to `addr` trusting `ca`, from `from` if given, offering `http` by ALPN (or no
/// ALPN); nothing is sent after the handshake.
pub async fn tls_connect(
    from: Option<IpAddr>,
    addr: std::net::SocketAddr,
    ca: &Path,
    http: Option<Http>,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = match http {
        Some(Http::H1) => vec![b"http/1.1".to_vec()],
        Some(Http::H2) => vec![b"h2".to_vec()],
        None => Vec::new(),
    };
    let tcp = tcp_connect(from, addr).await?;
    Ok(TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost")?, tcp).await?)
}

/// A TCP connection to `addr`, from the local address `from` if given.
pub async fn tcp_connect(from: Option<IpAddr>, addr: std::net::SocketAddr) -> anyhow::Result<TcpStream> {
    let tcp = match from {
        Some(ip) => {
            let socket = if ip.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            socket.bind(std::net::SocketAddr::new(ip, 0))?;
            socket.connect(addr).await?
        }
        None => TcpStream::connect(addr).await?,
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A whole request body.
pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// One gRPC frame: flag, big-endian length, payload.
pub fn frame(flag: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(flag);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

/// The body as sent in `mode`.
pub fn encode_body(frames: &[u8], mode: Mode) -> Bytes {
    match mode {
        Mode::Binary => Bytes::copy_from_slice(frames),
        Mode::Text => base64::engine::general_purpose::STANDARD.encode(frames).into(),
    }
}

/// A grpc-web reply taken apart: HTTP status and headers, messages, and the trailer frame.
#[derive(Debug)]
pub struct WebReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub messages: Vec<Bytes>,
    /// The trailer frame's entries; `None` if the body had none.
    pub trailers: Option<HashMap<String, String>>,
}

impl WebReply {
    pub fn parse(status: StatusCode, headers: HeaderMap, body: &[u8], mode: Mode) -> anyhow::Result<WebReply> {
        let bytes = match mode {
            Mode::Binary => Bytes::copy_from_slice(body),
            Mode::Text => decode_text(body)?,
        };
        let mut bytes = bytes;
        let mut messages = Vec::new();
        let mut trailers = None;
        while bytes.has_remaining() {
            anyhow::ensure!(bytes.remaining() >= 5, "a truncated frame header");
            let flag = bytes.get_u8();
            let len = bytes.get_u32() as usize;
            anyhow::ensure!(bytes.remaining() >= len, "a truncated frame");
            let payload = bytes.split_to(len);
            if flag & 0x80 != 0 {
                anyhow::ensure!(trailers.is_none(), "two trailer frames");
                let text = std::str::from_utf8(&payload)?;
                let mut map = HashMap::new();
                for line in text.split("\r\n").filter(|line| !line.is_empty()) {
                    let (key, value) = line.split_once(':').context("a trailer line without ':'")?;
                    map.insert(key.trim().to_owned(), value.trim().to_owned());
                }
                trailers = Some(map);
            } else {
                anyhow::ensure!(trailers.is_none(), "a message after the trailer frame");
                messages.push(payload);
            }
        }
        Ok(WebReply { status, headers, messages, trailers })
    }

    /// The grpc-status of the trailer frame.
    pub fn grpc_status(&self) -> Option<i32> {
        self.trailers.as_ref()?.get("grpc-status")?.parse().ok()
    }

    /// The grpc-status given in the HTTP headers (trailers-only replies).
    pub fn header_status(&self) -> Option<i32> {
        self.headers.get("grpc-status")?.to_str().ok()?.parse().ok()
    }

    pub fn grpc_message(&self) -> Option<&str> {
        self.trailers.as_ref()?.get("grpc-message").map(String::as_str)
    }

    /// The single message decoded as `M`.
    pub fn message<M: prost::Message + Default>(&self) -> M {
        assert_eq!(self.messages.len(), 1, "one message expected: {self:?}");
        M::decode(self.messages[0].clone()).expect("the message decodes")
    }
}

/// Base64 as a server may send it: each flushed chunk padded on its own.
pub fn decode_text(body: &[u8]) -> anyhow::Result<Bytes> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'=' {
            while i < body.len() && body[i] == b'=' {
                i += 1;
            }
            out.extend(engine.decode(&body[start..i])?);
            start = i;
        } else {
            i += 1;
        }
    }
    out.extend(engine.decode(&body[start..])?);
    Ok(out.into())
}
