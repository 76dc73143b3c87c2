//! The pull-link server: printers that fetch their documents themselves (a Xerox EIP weblet's
//! print-from-URL, IPP Print-URI) download the print-ready PDF here, once, with the one-time link
//! `SubmitJob` handed out. Only `GET /print-files/<token>.pdf` exists; every other request is 404.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::config::ConnectionLimits;
use crate::domain::jobs::PullLinks;
use crate::serve::Protocol;

/// The path prefix of pull links.
pub const PATH_PREFIX: &str = "/print-files/";

/// Serves pull links on `listener` (over TLS when `tls` is given) until `shutdown` completes,
/// with the same connection bounds as the gRPC listener: silent and idle connections are closed,
/// a request's headers must arrive within the request time limit, and shutdown drains for at
/// most the grace period.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    links: Arc<PullLinks>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let service = tower::service_fn(move |request| answer(request, links.clone()));
    crate::serve::serve(listener, tls, Protocol::Http1, limits, service, shutdown).await;
}

async fn answer(request: Request<Incoming>, links: Arc<PullLinks>) -> Result<Response<Full<Bytes>>, Infallible> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert("content-type", "text/plain; charset=utf-8".parse().expect("static header"));
        response.headers_mut().insert("cache-control", "no-store".parse().expect("static header"));
        Ok(response)
    };
    let token = request.uri().path().strip_prefix(PATH_PREFIX).and_then(|rest| rest.strip_suffix(".pdf"));
    let Some(token) = token else { return plain(StatusCode::NOT_FOUND, "not found\n") };
    if request.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match links.take(token).await {
        Ok(Some(pdf)) => {
            tracing::info!("a printer fetched its document through a pull link");
            let mut response = Response::new(Full::new(pdf));
            let headers = response.headers_mut();
            headers.insert("content-type", "application/pdf".parse().expect("static header"));
            headers.insert("cache-control", "no-store".parse().expect("static header"));
            Ok(response)
        }
        // Used, expired, or never issued: the same answer, so links cannot be probed.
        Ok(None) => plain(StatusCode::GONE, "this print link has been used or has expired\n"),
        Err(err) => {
            tracing::error!(error = %err, "pull link lookup failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, "try again shortly\n")
        }
    }
}
