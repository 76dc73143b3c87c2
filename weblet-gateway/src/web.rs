//! The browser-facing edge of an RPC path: CORS (preflights answered here, never forwarded),
//! POST only, the grpc-web content types (any case, with parameters), replies in the request's
//! own encoding, and a trailers-only reply given also as a trailer frame so every client reads it.

use std::convert::Infallible;
use std::time::Duration;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use tonic::body::Body;
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, ServiceBuilder, ServiceExt as _};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::proxy::ProxyService;

/// A boxed HTTP service as the router holds it.
pub type HttpService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// The grpc-web stack for RPC paths: CORS → edge checks → tonic-web → the forwarder.
pub fn rpc_service(proxy: ProxyService, allowed_origins: Vec<HeaderValue>) -> HttpService {
    let grpc_web = tonic_web::GrpcWebLayer::new().layer(proxy);
    let edge = tower::service_fn(move |request: Request<Body>| {
        let grpc_web = grpc_web.clone();
        async move { Ok::<_, Infallible>(edge(grpc_web, request).await) }
    });
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed_origins))
        .allow_methods([Method::POST])
        // The allow-list is explicit, so mirroring the asked-for headers grants nothing wider.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(24 * 3600));
    BoxCloneSyncService::new(ServiceBuilder::new().layer(cors).service(edge))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Binary,
    Text,
}

async fn edge<S>(grpc_web: S, mut request: Request<Body>) -> Response<Body>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    if request.method() != Method::POST {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "RPC paths take POST only\n");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return response;
    }
    let Some(encoding) = encoding_of(request.headers()) else {
        return plain(StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected application/grpc-web(-text)(+proto)\n");
    };
    // tonic-web matches exact content types and picks the reply encoding from Accept only.
    let (content_type, accept) = match encoding {
        Encoding::Binary => ("application/grpc-web+proto", "application/grpc-web+proto"),
        Encoding::Text => ("application/grpc-web-text+proto", "application/grpc-web-text+proto"),
    };
    request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    request.headers_mut().insert(header::ACCEPT, HeaderValue::from_static(accept));

    let Ok(mut response) = grpc_web.oneshot(request).await;
    if response.headers().contains_key("grpc-status") {
        let frame = trailer_frame(response.headers());
        let body = match encoding {
            Encoding::Binary => frame,
            Encoding::Text => Bytes::from(base64::engine::general_purpose::STANDARD.encode(&frame)),
        };
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::new(http_body_util::Full::new(body));
    }
    response
}

/// The request's grpc-web mode, ignoring case and parameters; `None` for anything else.
fn encoding_of(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/grpc-web" | "application/grpc-web+proto" => Some(Encoding::Binary),
        "application/grpc-web-text" | "application/grpc-web-text+proto" => Some(Encoding::Text),
        _ => None,
    }
}

/// A 0x80 frame holding the status headers as `key:value\r\n` lines, lower-case keys.
fn trailer_frame(headers: &HeaderMap) -> Bytes {
    let mut block = Vec::new();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        if let Some(value) = headers.get(name) {
            block.extend_from_slice(name.as_bytes());
            block.push(b':');
            block.extend_from_slice(value.as_bytes());
            block.extend_from_slice(b"\r\n");
        }
    }
    let mut frame = BytesMut::with_capacity(5 + block.len());
    frame.put_u8(0x80);
    frame.put_u32(block.len() as u32);
    frame.put_slice(&block);
    frame.freeze()
}

/// A small plain-text answer for non-gRPC refusals.
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
