//! Serves HTTP connections on a listener with every connection bounded: caps on connections in
//! total and per peer address, a time limit on the TLS handshake and on a peer that then says
//! nothing, HTTP/2 keepalive and a stream cap, connections without a call closed after an idle
//! limit, and a shutdown that drains for a bounded grace period and then closes what is left.
//! The gRPC listener and the pull-link listener both run on it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::http;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::Service;

use crate::config::ConnectionLimits;

/// The largest header block a request may carry (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE), hyper's
/// default stated: gRPC metadata is small, and the gateway checks against the same figure.
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// What a call knows about the connection it came on; put in every request's extensions.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client certificate chain rustls verified, when the peer presented one.
    pub client_certs: Option<Arc<[CertificateDer<'static>]>>,
}

/// The HTTP version a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC: HTTP/2 only.
    Http2,
    /// Pull links: HTTP/1.1 only (printers).
    Http1,
}

/// Serves `service` on every connection `listener` accepts (over TLS when `tls` is given) until
/// `shutdown` completes; then stops accepting, lets calls in flight finish for at most
/// `limits.shutdown_grace`, and closes every connection still open.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    protocol: Protocol,
    limits: ConnectionLimits,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let peers = Arc::new(PeerCounts::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if connections.len() >= limits.max_connections {
                    tracing::warn!(%peer, limit = limits.max_connections, "connection refused: too many connections are open");
                    continue;
                }
                let Some(slot) = PeerSlot::take(&peers, peer.ip(), limits.max_connections_per_peer) else {
                    tracing::warn!(%peer, limit = limits.max_connections_per_peer, "connection refused: too many connections from this address");
                    continue;
                };
                let (acceptor, service, stop) = (acceptor.clone(), service.clone(), stop_rx.clone());
                connections.spawn(async move {
                    let _slot = slot;
                    connection(tcp, peer, acceptor, protocol, limits, service, stop).await;
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(open = connections.len(), "grace period over: closing the connections still open");
        connections.shutdown().await;
    }
}

/// Open connections per peer address.
#[derive(Default)]
struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its peer address until dropped.
struct PeerSlot {
    peers: Arc<PeerCounts>,
    ip: IpAddr,
}

impl PeerSlot {
    fn take(peers: &Arc<PeerCounts>, ip: IpAddr, limit: usize) -> Option<PeerSlot> {
        let mut counts = peers.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(PeerSlot { peers: peers.clone(), ip })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.peers.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

async fn connection<S, B>(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    protocol: Protocol,
    limits: ConnectionLimits,
    service: S,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let _ = tcp.set_nodelay(true);
    let started = Instant::now();
    let activity = Arc::new(Activity::new());
    match acceptor {
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp));
            let tls = tokio::select! {
                result = handshake => match result {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => return tracing::debug!(%peer, error = %err, "TLS handshake refused"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                },
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let client_certs = tls.get_ref().1.peer_certificates().map(|chain| Arc::from(chain.to_vec()));
            let info = ConnInfo { peer, client_certs };
            drive(Watched::new(tls, activity.clone()), info, activity, started, protocol, limits, service, stop).await;
        }
        None => {
            let info = ConnInfo { peer, client_certs: None };
            drive(Watched::new(tcp, activity.clone()), info, activity, started, protocol, limits, service, stop).await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive<IO, S, B>(
    io: IO,
    info: ConnInfo,
    activity: Arc<Activity>,
    started: Instant,
    protocol: Protocol,
    limits: ConnectionLimits,
    service: S,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let peer = info.peer;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder = match protocol {
        Protocol::Http2 => builder.http2_only(),
        Protocol::Http1 => builder.http1_only(),
    };
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams_per_connection)
        // A call's headers above this get 431 on their stream; a header block far above it (about
        // 100 KB) is a connection error in h2, so a proxy in front must refuse such headers itself.
        .max_header_list_size(MAX_HEADER_LIST_BYTES)
        .keep_alive_interval(limits.keepalive_interval)
        .keep_alive_timeout(limits.keepalive_timeout)
        // Rapid reset (CVE-2023-44487): a peer that resets more streams than this before they
        // are served, or makes the server reset this many, gets GOAWAY (h2's defaults, stated).
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024);
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.request_timeout);
    let service = TowerToHyperService::new(Tracked { inner: service, info, activity: activity.clone() });
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), service));

    // A peer must start speaking within the handshake limit of connecting.
    let silent_deadline = tokio::time::Instant::from_std(started + limits.handshake_timeout);
    let mut silent_checked = false;
    let mut idle_check = tokio::time::interval((limits.idle_timeout / 4).max(Duration::from_millis(10)));
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Once closing, the connection gets the grace period to finish, then it is dropped.
    let mut closing_deadline: Option<tokio::time::Instant> = None;
    let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(silent_deadline), if !silent_checked => {
                silent_checked = true;
                if !activity.heard.load(Ordering::Relaxed) {
                    return tracing::debug!(%peer, "closed a connection that sent nothing");
                }
            }
            _ = idle_check.tick(), if closing_deadline.is_none() => {
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!(%peer, "closing an idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing_deadline = Some(tokio::time::Instant::now() + limits.shutdown_grace);
                }
            }
            _ = stop.wait_for(|stop| *stop), if closing_deadline.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing_deadline = Some(tokio::time::Instant::now() + limits.shutdown_grace);
            }
            () = tokio::time::sleep_until(closing_deadline.unwrap_or(far)), if closing_deadline.is_some() => {
                return tracing::debug!(%peer, "closed a connection that did not finish closing in time");
            }
        }
    }
}

/// Whether a connection has said anything, and the calls it has open.
struct Activity {
    heard: AtomicBool,
    calls: AtomicUsize,
    /// When the last call ended (or the connection opened).
    last_call: Mutex<Instant>,
}

impl Activity {
    fn new() -> Self {
        Activity { heard: AtomicBool::new(false), calls: AtomicUsize::new(0), last_call: Mutex::new(Instant::now()) }
    }

    fn idle_for(&self) -> Duration {
        if self.calls.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        self.last_call.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

/// Counts a call as open until its response body is finished or dropped.
struct CallGuard(Arc<Activity>);

impl CallGuard {
    fn new(activity: Arc<Activity>) -> Self {
        activity.calls.fetch_add(1, Ordering::AcqRel);
        CallGuard(activity)
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        *self.0.last_call.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The service of one connection: tags each request with the connection's `ConnInfo` and
/// counts the call as activity until its response ends.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    info: ConnInfo,
    activity: Arc<Activity>,
}

impl<S, B> Service<http::Request<Incoming>> for Tracked<S>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Guarded<B>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Incoming>) -> Self::Future {
        let guard = CallGuard::new(self.activity.clone());
        request.extensions_mut().insert(self.info.clone());
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|body| Guarded { inner: body, _guard: guard }))
        })
    }
}

/// A response body that keeps its call counted until it ends.
struct Guarded<B> {
    inner: B,
    _guard: CallGuard,
}

impl<B: Body + Unpin> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's byte stream, noting that the peer has said something.
struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Watched<IO> {
    fn new(io: IO, activity: Arc<Activity>) -> Self {
        Watched { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.heard.store(true, Ordering::Relaxed);
        }
        result
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
