//! The grpc-web gateway: serves the weblet's files and forwards its grpc-web calls to the core.
//!
//! Modules:
//! - `config`: command line and `PODCONNECT_GATEWAY_*` environment, resolved into `Config`.
//! - `web`: the browser edge of RPC paths (CORS, method, content types, trailer frames).
//! - `proxy`: the generic forwarder to the core, with the per-call limits.
//! - `error`: `GatewayError` and `rescue`, the one place failures become grpc-web answers.
//! - `statics`: the weblet's files with their security and cache headers.
//! - `health`, `metrics`: `/healthz` and `/metrics`.
//! - `pull`: one-time print-file downloads for printers that pull, passed to the core.
//! - `tls`: rustls toward browsers, the TLS channel toward the core.

pub mod config;
pub mod error;
pub mod health;
pub mod metrics;
pub mod proxy;
pub mod pull;
pub mod statics;
pub mod tls;
pub mod web;

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt as _;

use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxyService};
use crate::web::{HttpService, plain};

/// RPC paths forwarded to the core; reflection and health are not for browsers.
const RPC_PREFIX: &str = "/podconnect.v1.";
/// A browser that has not finished its TLS handshake by then is disconnected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open calls (e.g. server streams) may go on after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the router needs; every field is a decision, so there is no `Default`.
pub struct RouterOptions {
    pub upstream: Channel,
    pub allowed_origins: Vec<HeaderValue>,
    pub max_message_bytes: usize,
    pub max_concurrent_calls: usize,
    pub weblet_dir: PathBuf,
    pub pull: pull::PullForwarder,
}

/// The whole gateway as one service, built without binding anything. Cloned for every request, so
/// it is one shared pointer; each request clones only the service it is routed to.
#[derive(Clone)]
pub struct Router(Arc<Routes>);

struct Routes {
    rpc: HttpService,
    files: HttpService,
    upstream: Channel,
    metrics: Arc<Metrics>,
    pull: pull::PullForwarder,
}

pub fn router(options: RouterOptions) -> Router {
    let metrics = Arc::new(Metrics::new());
    let proxy =
        Proxy::new(options.upstream.clone(), options.max_message_bytes, options.max_concurrent_calls, metrics.clone());
    Router(Arc::new(Routes {
        rpc: web::rpc_service(ProxyService(Arc::new(proxy)), options.allowed_origins),
        files: statics::static_service(&options.weblet_dir),
        upstream: options.upstream,
        metrics,
        pull: options.pull,
    }))
}

impl Router {
    /// Routes one request: RPC paths, `/healthz`, `/metrics`, then the weblet's files.
    pub async fn handle(self, request: Request<Body>) -> Response<Body> {
        let routes = &*self.0;
        let path = request.uri().path();
        if path.starts_with(RPC_PREFIX) {
            let Ok(response) = routes.rpc.clone().oneshot(request).await;
            return response;
        }
        // The rarer routes are boxed: hyper moves this future into a task for every request, and
        // inline their state would make every RPC's future several kilobytes.
        if path.starts_with(pull::PREFIX) {
            return Box::pin(routes.pull.forward(request)).await;
        }
        match path {
            "/healthz" => Box::pin(health::healthz(routes.upstream.clone())).await,
            "/metrics" => {
                let mut response = Response::new(Body::new(http_body_util::Full::new(routes.metrics.render().into())));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                );
                response
            }
            _ if looks_like_rpc(path) => plain(StatusCode::NOT_FOUND, "this service is not exposed\n"),
            _ => {
                let Ok(response) = routes.files.clone().oneshot(request).await;
                response
            }
        }
    }
}

/// `/<package.Service>/<Method>` outside our package (e.g. reflection, health).
fn looks_like_rpc(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    matches!((segments.next(), segments.next(), segments.next()), (Some(service), Some(method), None)
        if service.contains('.') && !method.is_empty() && !method.contains('.'))
}

/// Serves `router` on `listener` (TLS when `tls` is given, else plaintext HTTP/1.1 and h2c) until
/// `shutdown` resolves, then lets open calls finish for a short while.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let router = router.clone();
                async move { Ok::<_, Infallible>(router.handle(request.map(Body::new)).await) }
            });
            let result = match acceptor {
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(err)) => return tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await
                }
                None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await,
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::info!("open calls did not finish in time; closing them");
    }
    Ok(())
}
