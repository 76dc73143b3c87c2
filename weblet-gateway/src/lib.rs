//! The grpc-web gateway: serves the weblet's files and forwards its grpc-web calls to the core.
//!
//! Modules:
//! - `config`: command line and `PODCONNECT_GATEWAY_*` environment, resolved into `Config`.
//! - `web`: the browser edge of RPC paths (CORS, method, content types, trailer frames).
//! - `proxy`: the generic forwarder to the cores, with the per-call limits.
//! - `upstream`, `backend`: the balancer over the cores, and each core's connection and health
//!   checks.
//! - `error`: `GatewayError` and `status_headers`, the one place failures become grpc-web answers.
//! - `statics`: the weblet's files (built into the binary, or `--weblet-dir`) with their security and
//!   cache headers.
//! - `conn`: connections, with their time, stream and header limits, and the bounded shutdown.
//! - `health`, `metrics`: `/healthz` (browsers' port) and `/metrics` (operator listener).
//! - `pull`: one-time print-file downloads for printers that pull, passed to the core.
//! - `tls`: rustls toward browsers and toward the cores.

pub mod backend;
pub mod config;
pub mod conn;
pub mod error;
pub mod health;
pub mod metrics;
pub mod proxy;
pub mod pull;
pub mod statics;
pub mod tls;
pub mod upstream;
pub mod web;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use tokio::net::TcpListener;
use tonic::body::Body;
use tower::ServiceExt as _;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxyService};
use crate::upstream::Upstream;
use crate::web::{HttpService, plain};

/// RPC paths forwarded to the core; reflection and health are not for browsers.
const RPC_PREFIX: &str = "/podconnect.v1.";

/// What the router needs; every field is a decision, so there is no `Default`.
pub struct RouterOptions {
    /// The cores, and the balancer over them.
    pub upstream: Arc<Upstream>,
    pub allowed_origins: Vec<HeaderValue>,
    pub max_message_bytes: usize,
    pub max_concurrent_calls: usize,
    pub limits: Limits,
    /// The weblet's files from this folder; `None`: the ones built into the binary.
    pub weblet_dir: Option<PathBuf>,
    pub pull: pull::PullForwarder,
}

/// The whole gateway as one service, built without binding anything. Cloned for every request, so
/// it is one shared pointer; each request clones only the service it is routed to.
#[derive(Clone)]
pub struct Router(Arc<Routes>);

struct Routes {
    rpc: HttpService,
    files: HttpService,
    health: health::Health,
    max_header_bytes: usize,
    metrics: Arc<Metrics>,
    pull: pull::PullForwarder,
}

pub fn router(options: RouterOptions) -> Router {
    let metrics = Arc::new(Metrics::new());
    metrics.watch_cores(options.upstream.clone());
    let health = health::Health::new(options.upstream.clone());
    let proxy = Proxy::new(
        options.upstream,
        options.max_message_bytes,
        options.max_concurrent_calls,
        &options.limits,
        metrics.clone(),
    );
    Router(Arc::new(Routes {
        rpc: web::rpc_service(ProxyService(Arc::new(proxy)), options.allowed_origins),
        files: statics::static_service(options.weblet_dir.as_deref()),
        health,
        max_header_bytes: options.limits.max_header_bytes,
        metrics,
        pull: options.pull,
    }))
}

impl Router {
    /// The gateway's metrics, served on the operator listener.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.0.metrics.clone()
    }

    /// Routes one request: RPC paths, `/healthz`, pull links, then the weblet's files. `/metrics`
    /// is not among them: it is on the operator listener.
    pub async fn handle(self, request: Request<Body>) -> Response<Body> {
        let routes = &*self.0;
        let path = request.uri().path();
        if path.starts_with(RPC_PREFIX) {
            // The forwarder checks the header size itself, to answer in grpc-web.
            let Ok(response) = routes.rpc.clone().oneshot(request).await;
            return response;
        }
        if proxy::header_list_size(request.headers()) > routes.max_header_bytes {
            return plain(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "the request headers are too large\n");
        }
        // The rarer routes are boxed: hyper moves this future into a task for every request, and
        // inline their state would make every RPC's future several kilobytes.
        if path.starts_with(pull::PREFIX) {
            return Box::pin(routes.pull.forward(request)).await;
        }
        match path {
            "/healthz" => Box::pin(routes.health.healthz()).await,
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

/// Serves `router` to browsers on `listener` (TLS when `tls` is given, else plaintext HTTP/1.1 and
/// h2c) until `shutdown` resolves, then drains for `limits.shutdown_grace` and closes the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    conn::serve(listener, move |request| router.clone().handle(request), tls, limits, shutdown).await
}

/// Serves `/metrics` (and 404 for anything else) on the operator listener, plain HTTP.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let handler = move |request: Request<Body>| {
        let metrics = metrics.clone();
        async move {
            match (request.method(), request.uri().path()) {
                (&http::Method::GET, "/metrics") => metrics_answer(&metrics),
                _ => plain(StatusCode::NOT_FOUND, "only GET /metrics here\n"),
            }
        }
    };
    conn::serve(listener, handler, None, limits, shutdown).await
}

fn metrics_answer(metrics: &Metrics) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(metrics.render().into())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
