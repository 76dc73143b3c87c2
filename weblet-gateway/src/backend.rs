//! One core address and its connection: a task per backend connects (TCP within
//! `CONNECT_TIMEOUT`, TLS and the HTTP/2 handshake within `HANDSHAKE_TIMEOUT`), keeps the one
//! HTTP/2 connection up (keepalive PINGs; connected again with jittered backoff when lost), and
//! checks the core's health (grpc.health.v1 Check) on that same connection every
//! `--health-interval`. A core gets calls only after a check answered SERVING; it is ejected when
//! its connection ends, when it answers NOT_SERVING, or after `EJECT_AFTER_FAILED_CHECKS` checks in
//! a row fail, and comes back with the next SERVING answer.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Version, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::upstream::{Shared, Target, Transport};

/// Time to open a TCP connection to a core.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for the TLS and HTTP/2 handshakes once connected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 PINGs to a core, also while idle; a core that does not answer one in time has its
/// connection closed (and is ejected).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response header list accepted from a core.
const MAX_RESPONSE_HEADER_BYTES: u32 = 64 * 1024;
/// Failed (unanswered or erroneous) health checks in a row that eject a serving core. One is
/// not enough: a single slow answer should not move every call elsewhere.
const EJECT_AFTER_FAILED_CHECKS: u32 = 2;
/// Reconnection backoff: the first wait, doubled after each failure up to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The health check's path.
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// Makes a connection to a core address (tests and the fuzz target: in-memory cores).
pub type Dial = Arc<dyn Fn(SocketAddr) -> Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send>> + Send + Sync>;

/// What a connection made by a `Dial` must be.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A connection's sending half as the pool holds it.
pub type Sender = SendRequest<Full<Bytes>>;

/// Backend ids, unique in the process, so a call can remember which cores it tried.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One core address.
pub struct Backend {
    pub(crate) id: u64,
    pub(crate) target: Arc<Target>,
    pub(crate) addr: SocketAddr,
    /// How logs and `/metrics` name it: the address, after the host name if one was given.
    pub label: String,
    pub(crate) outstanding: AtomicUsize,
    serving: AtomicBool,
    /// It has had its first connection attempt and, if connected, its first health check.
    settled: AtomicBool,
    sender: Mutex<Option<Sender>>,
    /// What it is doing, or why it gets no calls, for logs and the error of a call nobody takes.
    state: Mutex<String>,
    stop: watch::Sender<bool>,
}

/// One health check's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Health {
    Serving,
    NotServing,
    /// No answer in time, no connection, or an answer that is not a health status.
    Failed(String),
}

impl Backend {
    /// A backend for `addr` with its connection manager running.
    pub(crate) fn start(target: Arc<Target>, addr: SocketAddr, shared: &Arc<Shared>) -> Arc<Backend> {
        let label = match &target.core.host {
            crate::config::CoreHost::Name(name) => format!("{name} ({addr})"),
            crate::config::CoreHost::Ip(_) => addr.to_string(),
        };
        let backend = Arc::new(Backend {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            target,
            addr,
            label,
            outstanding: AtomicUsize::new(0),
            serving: AtomicBool::new(false),
            settled: AtomicBool::new(false),
            sender: Mutex::new(None),
            state: Mutex::new("connecting".to_owned()),
            stop: watch::channel(false).0,
        });
        tokio::spawn(manage(backend.clone(), shared.clone()));
        backend
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    pub(crate) fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Relaxed)
    }

    /// What it is doing, or why it gets no calls.
    pub fn state_text(&self) -> String {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A handle on its connection, unless it has none or it is closing.
    pub(crate) fn live_sender(&self) -> Option<Sender> {
        let slot = self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.as_ref().filter(|sender| !sender.is_closed()).cloned()
    }

    /// A call found its connection closed: no calls until it is connected and checked again
    /// (the manager sees the connection end and reconnects).
    pub(crate) fn connection_closed(&self) {
        if self.serving.swap(false, Ordering::Relaxed) {
            tracing::warn!(core = %self.label, "core ejected: its connection closed");
            self.set_state("its connection closed".to_owned());
        }
    }

    /// Stops its manager (its name no longer resolves to it); calls in flight finish.
    pub(crate) fn stop(&self) {
        self.serving.store(false, Ordering::Relaxed);
        self.stop.send_replace(true);
    }

    /// Asks the core, on the calls' connection, for the health of `service` ("" is the whole
    /// core); an answer must arrive within `timeout`.
    pub async fn check(&self, service: &str, timeout: Duration) -> Health {
        let Some(mut sender) = self.live_sender() else {
            return Health::Failed(format!("not connected ({})", self.state_text()));
        };
        let message = HealthCheckRequest { service: service.to_owned() }.encode_to_vec();
        let mut body = BytesMut::with_capacity(5 + message.len());
        body.put_u8(0);
        body.put_u32(message.len() as u32);
        body.put_slice(&message);
        let mut request = Request::new(Full::new(body.freeze()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.target.uri(&PathAndQuery::from_static(HEALTH_CHECK));
        *request.version_mut() = Version::HTTP_2;
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        if let Ok(value) = HeaderValue::from_str(&format!("{}m", timeout.as_millis())) {
            headers.insert("grpc-timeout", value);
        }
        let answer = async {
            let response = sender.send_request(request).await.map_err(|err| format!("the call failed: {err}"))?;
            let (parts, body) = response.into_parts();
            let collected = body.collect().await.map_err(|err| format!("the answer broke off: {err}"))?;
            let code = match parts.headers.get("grpc-status") {
                Some(code) => Some(code.clone()),
                None => collected.trailers().and_then(|trailers| trailers.get("grpc-status")).cloned(),
            };
            if code.as_ref().is_none_or(|code| code != "0") {
                return Err(format!("answered HTTP {} with gRPC status {code:?}", parts.status));
            }
            let mut data = collected.to_bytes();
            if data.len() < 5 {
                return Err("the answer holds no message".to_owned());
            }
            data.advance(5);
            let answer =
                HealthCheckResponse::decode(data).map_err(|err| format!("the answer does not decode: {err}"))?;
            Ok(if answer.status == ServingStatus::Serving as i32 { Health::Serving } else { Health::NotServing })
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(health)) => health,
            Ok(Err(reason)) => Health::Failed(reason),
            Err(_) => Health::Failed(format!("no answer within {}", humantime::format_duration(timeout))),
        }
    }

    fn set_state(&self, state: String) {
        *self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }

    /// A health check answered SERVING: calls may come.
    fn admit(&self, shared: &Shared) {
        if !self.serving.swap(true, Ordering::Relaxed) {
            tracing::info!(core = %self.label, "core admitted: it answers SERVING");
            self.set_state("serving".to_owned());
        }
        self.settle(shared);
    }

    /// No calls until a health check answers SERVING again, because of `reason`.
    fn eject(&self, shared: &Shared, reason: String) {
        let was_serving = self.serving.swap(false, Ordering::Relaxed);
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The same reason again (a core that stays down) is not logged again.
        if was_serving || *state != reason {
            let verb = if was_serving { "core ejected" } else { "core not available" };
            tracing::warn!(core = %self.label, %reason, "{verb}");
        }
        *state = reason;
        drop(state);
        self.settle(shared);
    }

    fn settle(&self, shared: &Shared) {
        self.settled.store(true, Ordering::Relaxed);
        shared.changed.send_replace(());
    }

    fn set_sender(&self, sender: Option<Sender>) {
        *self.sender.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = sender;
    }
}

/// The backend's life: connect, check, and connect again when the connection ends, until it is
/// stopped.
async fn manage(backend: Arc<Backend>, shared: Arc<Shared>) {
    let mut stopped = backend.stop.subscribe();
    let mut backoff = Backoff::default();
    loop {
        let connected = tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            connected = connect(&shared, &backend) => connected,
        };
        let (sender, connection) = match connected {
            Ok(pair) => pair,
            Err(reason) => {
                backend.eject(&shared, format!("cannot connect: {reason}"));
                if pause(&mut stopped, backoff.next()).await {
                    return;
                }
                continue;
            }
        };
        // The connection runs as a task of its own, so calls still streaming on it when the
        // backend is stopped or the connection is closing finish undisturbed.
        let mut connection = tokio::spawn(connection);
        backend.set_sender(Some(sender));
        let mut failed_checks = 0;
        let mut next_check = tokio::time::Instant::now();
        let ended = loop {
            let check = async {
                tokio::time::sleep_until(next_check).await;
                backend.check("", shared.balance.health_timeout).await
            };
            tokio::select! {
                _ = stopped.wait_for(|stop| *stop) => {
                    backend.set_sender(None);
                    return;
                }
                ended = &mut connection => break ended,
                health = check => {
                    next_check = tokio::time::Instant::now() + shared.balance.health_interval;
                    match health {
                        Health::Serving => {
                            failed_checks = 0;
                            backoff = Backoff::default();
                            backend.admit(&shared);
                        }
                        Health::NotServing => backend.eject(&shared, "it answers NOT_SERVING".to_owned()),
                        Health::Failed(reason) => {
                            failed_checks += 1;
                            if failed_checks >= EJECT_AFTER_FAILED_CHECKS || !backend.is_serving() {
                                backend.eject(&shared, format!("its health check failed: {reason}"));
                            }
                        }
                    }
                }
            }
        };
        backend.set_sender(None);
        let reason = match ended {
            Ok(Ok(())) => "the core closed the connection".to_owned(),
            Ok(Err(err)) => format!("the connection broke: {err}"),
            Err(err) => format!("the connection's task ended: {err}"),
        };
        backend.eject(&shared, reason);
        if pause(&mut stopped, backoff.next()).await {
            return;
        }
    }
}

/// Waits `wait`; true if the backend was stopped meanwhile.
async fn pause(stopped: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        _ = stopped.wait_for(|stop| *stop) => true,
        () = tokio::time::sleep(wait) => false,
    }
}

type Connection = http2::Connection<TokioIo<Conn>, Full<Bytes>, TokioExecutor>;

/// One HTTP/2 connection to the backend, handshakes done, each step within its time limit.
async fn connect(shared: &Shared, backend: &Backend) -> Result<(Sender, Connection), String> {
    let io = match &shared.transport {
        Transport::Tcp { tls } => {
            let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend.addr))
                .await
                .map_err(|_| format!("no TCP connection within {}", humantime::format_duration(CONNECT_TIMEOUT)))?
                .map_err(|err| err.to_string())?;
            let _ = tcp.set_nodelay(true);
            match tls {
                Some(connector) => {
                    let handshake = connector.connect(backend.target.server_name.clone(), tcp);
                    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
                        .await
                        .map_err(|_| {
                            format!("no TLS handshake within {}", humantime::format_duration(HANDSHAKE_TIMEOUT))
                        })?
                        .map_err(|err| format!("TLS: {err}"))?;
                    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                        return Err("the core did not agree to HTTP/2 (ALPN h2)".to_owned());
                    }
                    Conn::Tls(Box::new(tls))
                }
                None => Conn::Tcp(tcp),
            }
        }
        Transport::Custom(dial) => Conn::Custom(
            tokio::time::timeout(CONNECT_TIMEOUT, dial(backend.addr))
                .await
                .map_err(|_| "no connection in time".to_owned())?
                .map_err(|err| err.to_string())?,
        ),
    };
    let mut builder = http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .max_header_list_size(MAX_RESPONSE_HEADER_BYTES);
    tokio::time::timeout(HANDSHAKE_TIMEOUT, builder.handshake(TokioIo::new(io)))
        .await
        .map_err(|_| "no HTTP/2 handshake in time".to_owned())?
        .map_err(|err| format!("HTTP/2 handshake: {err}"))
}

/// Reconnection delays: doubling from `BACKOFF_FIRST` to `BACKOFF_MAX`, each cut by a random
/// part of up to a half, so gateways that lost a core together do not come back in step.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let full = BACKOFF_FIRST.saturating_mul(1 << self.failures.min(10)).min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        full.mul_f64(1.0 - random_unit() / 2.0)
    }
}

/// A number in [0, 1) from std's randomly keyed hasher (no random-number crate for jitter).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A connection to a core: TCP, TLS over TCP, or made by a `Dial`.
pub(crate) enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Custom(Box<dyn Io>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            Conn::Tls(io) => Pin::new(io).poll_read(cx, buf),
            Conn::Custom(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            Conn::Tls(io) => Pin::new(io).poll_write(cx, buf),
            Conn::Custom(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Conn::Tls(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Conn::Custom(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(io) => io.is_write_vectored(),
            Conn::Tls(io) => io.is_write_vectored(),
            Conn::Custom(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(io) => Pin::new(io).poll_flush(cx),
            Conn::Tls(io) => Pin::new(io).poll_flush(cx),
            Conn::Custom(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            Conn::Tls(io) => Pin::new(io).poll_shutdown(cx),
            Conn::Custom(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter_below_it() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..12).map(|_| backoff.next()).collect();
        assert!(waits[0] <= BACKOFF_FIRST && waits[0] >= BACKOFF_FIRST / 2, "{waits:?}");
        assert!(waits.iter().all(|wait| *wait <= BACKOFF_MAX), "{waits:?}");
        assert!(waits[11] >= BACKOFF_MAX / 2, "{waits:?}");
    }
}
