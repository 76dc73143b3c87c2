//! Connections: the accept loop, the TLS handshake, HTTP/1.1 or HTTP/2 by ALPN, and the bounds on
//! a connection's life (handshake time, header time, idle time, HTTP/2 keepalive, streams and
//! header size), the `nosniff` header on every answer, and a shutdown that drains for a bounded
//! grace period and then closes whatever is left.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tonic::body::Body;

use crate::config::Limits;

/// The address a request came from, put in its extensions for the per-peer limits.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Browsers' HTTP layer reads header blocks up to this many times `--max-header-bytes`, so an
/// oversized call still gets the gateway's own grpc-web answer; beyond it, hyper answers 431.
const HEADER_CEILING_FACTOR: usize = 16;

/// How long an idle connection's graceful close may take before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// hyper's connection builders, one per protocol: TLS connections pick theirs by ALPN, so no
/// connection waits in protocol detection; plaintext (development) connections detect.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    detect: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &Limits) -> Builders {
        let ceiling = limits.max_header_bytes.saturating_mul(HEADER_CEILING_FACTOR);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            // hyper's smallest read buffer is 8 KiB; a request head larger than it gets 431.
            .max_buf_size(ceiling.max(8192));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_streams_per_connection)
            .max_header_list_size(u32::try_from(ceiling).unwrap_or(u32::MAX))
            .keep_alive_interval(limits.keepalive_interval)
            .keep_alive_timeout(limits.keepalive_timeout);
        Builders { h1: builder.clone().http1_only(), h2: builder.clone().http2_only(), detect: builder }
    }
}

/// Serves `handler` on `listener` (TLS when `tls` is given, else plaintext HTTP/1.1 and h2c) until
/// `shutdown` resolves; then open calls have `limits.shutdown_grace` to finish before every
/// connection still open is closed.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    H: Fn(Request<Body>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    let builders = Arc::new(Builders::new(&limits));
    let limits = Arc::new(limits);
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let connection = Connection {
            peer,
            handler: handler.clone(),
            builders: builders.clone(),
            limits: limits.clone(),
            stopped: stopped.clone(),
        };
        connections.spawn(connection.run(stream, acceptor.clone()));
    }
    drop(listener);
    let _ = stop.send(true);
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

struct Connection<H> {
    peer: SocketAddr,
    handler: H,
    builders: Arc<Builders>,
    limits: Arc<Limits>,
    stopped: watch::Receiver<bool>,
}

impl<H, F> Connection<H>
where
    H: Fn(Request<Body>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    async fn run(mut self, stream: TcpStream, acceptor: Option<TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        let peer = self.peer;
        let activity = Arc::new(Activity::new());
        let service = {
            let handler = self.handler.clone();
            let activity = activity.clone();
            hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let active = activity.begin();
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(Peer(peer));
                let answer = handler(request);
                async move {
                    let mut response = answer.await;
                    // One place for every answer of every route: browsers must not guess types.
                    response.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
                    Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { inner: body, _active: active })))
                }
            })
        };
        let builders = self.builders.clone();
        match acceptor {
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(stream));
                let stream = tokio::select! {
                    handshake = handshake => match handshake {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => return tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    },
                    _ = self.stopped.wait_for(|stopped| *stopped) => return,
                };
                let builder = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => &builders.h2,
                    _ => &builders.h1,
                };
                self.drive(builder.serve_connection(TokioIo::new(stream), service), &activity).await;
            }
            None => self.drive(builders.detect.serve_connection(TokioIo::new(stream), service), &activity).await,
        }
    }

    /// Runs one connection until it ends, closing it gracefully when it has been idle too long or
    /// the gateway shuts down, and dropping it if the peer does not go (it may ignore GOAWAY).
    async fn drive<C>(&mut self, connection: C, activity: &Activity)
    where
        C: GracefulConnection,
        C::Error: std::fmt::Display,
    {
        let peer = self.peer;
        let idle = self.limits.idle_timeout;
        // Until its first request, a connection has the header time limit: browsers open one
        // when they have something to send.
        let first = self.limits.header_timeout.min(idle);
        tokio::pin!(connection);
        let reason = loop {
            let wake = activity.idle_deadline(first, idle).unwrap_or_else(|| Instant::now() + idle);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep_until(wake) => {
                    if activity.idle_deadline(first, idle).is_some_and(|at| at <= Instant::now()) {
                        break "idle";
                    }
                }
                _ = self.stopped.wait_for(|stopped| *stopped) => break "shutdown",
            }
        };
        tracing::debug!(%peer, reason, "closing the connection");
        connection.as_mut().graceful_shutdown();
        // An idle connection has no call to finish: GOAWAY is a courtesy, not worth waiting for.
        let bound = if reason == "idle" {
            IDLE_CLOSE_GRACE.min(self.limits.shutdown_grace)
        } else {
            self.limits.shutdown_grace
        };
        if tokio::time::timeout(bound, connection).await.is_err() {
            tracing::debug!(%peer, "the connection did not close in time; dropped");
        }
    }
}

/// Requests in flight on one connection and since when it has had none.
struct Activity {
    opened: Instant,
    active: AtomicUsize,
    served: AtomicBool,
    /// Milliseconds from `opened` to the moment the last request ended.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            active: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Release);
        Active(self.clone())
    }

    /// When the connection will have been idle too long: `first` after opening without a request,
    /// `idle` after its last request ended; `None` while a request is in flight.
    fn idle_deadline(&self, first: Duration, idle: Duration) -> Option<Instant> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Acquire) {
            return Some(self.opened + first);
        }
        Some(self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire)) + idle)
    }
}

/// One request in flight, until its response body is done or dropped.
struct Active(Arc<Activity>);

impl Drop for Active {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since_ms.store(now, Ordering::Release);
        activity.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight.
struct Tracked {
    inner: Body,
    _active: Active,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
