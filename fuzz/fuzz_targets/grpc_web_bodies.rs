//! Fuzz target: grpc-web request bodies, binary and text, cut into random chunks, through the
//! gateway's own RPC stack (`weblet_gateway::web::rpc_service`: edge checks, tonic-web's layer,
//! the forwarder's frame-size check, the balancer) to a fake core reached over an in-memory HTTP/2
//! connection.
//! Every call must end with an HTTP 200 grpc-web answer that carries a status, in time; whatever
//! reaches the core must be exactly the decoded body and hold no frame above the size limit.
#![no_main]

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Buf, Bytes};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use libfuzzer_sys::fuzz_target;
use tonic::body::Body;
use tower::ServiceExt as _;
use weblet_gateway::backend::{Dial, Io};
use weblet_gateway::config::{BalanceSettings, CoreTarget, Limits};
use weblet_gateway::metrics::Metrics;
use weblet_gateway::proxy::{Proxy, ProxyService};
use weblet_gateway::upstream::{Transport, Upstream};
use weblet_gateway::web::{HttpService, rpc_service};

/// The gateway's message-size limit in this harness (small, so the fuzzer reaches it).
const LIMIT: usize = 1024;
/// A call that takes longer has hung.
const BOUND: Duration = Duration::from_secs(5);

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime"));

/// The request bodies the fake core received in full, in order.
static RECEIVED: LazyLock<Arc<Mutex<Vec<Bytes>>>> = LazyLock::new(Arc::default);

/// The fake core: answers the balancer's health checks SERVING; for calls, reads the whole body,
/// remembers it, answers OK as a trailers-only reply.
async fn core(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/grpc.health.v1.Health/Check" {
        let mut response = Response::new(Full::new(Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01])));
        response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
        response.headers_mut().insert("grpc-status", http::HeaderValue::from_static("0"));
        return Ok(response);
    }
    if let Ok(body) = request.into_body().collect().await {
        RECEIVED.lock().expect("not poisoned").push(body.to_bytes());
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
    response.headers_mut().insert("grpc-status", http::HeaderValue::from_static("0"));
    Ok(response)
}

/// The balancer over the one fake core, reached in memory.
static UPSTREAM: LazyLock<Arc<Upstream>> = LazyLock::new(|| {
    let _entered = RUNTIME.enter();
    let dial: Dial = Arc::new(|_addr| {
        Box::pin(async {
            let (client, server) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(core);
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(server), service)
                    .await;
            });
            Ok(Box::new(client) as Box<dyn Io>)
        })
    });
    let core = CoreTarget::parse("http://127.0.0.1:1").expect("a core address");
    Upstream::start(&[core], BalanceSettings::default(), Transport::Custom(dial)).expect("the balancer starts")
});

/// Whether the balancer's first health check has ended (awaited once, in the first run).
static SETTLED: AtomicBool = AtomicBool::new(false);

static STACK: LazyLock<HttpService> = LazyLock::new(|| {
    let _entered = RUNTIME.enter();
    let proxy = Proxy::new(UPSTREAM.clone(), LIMIT, 64, &Limits::default(), Arc::new(Metrics::new()));
    rpc_service(ProxyService(Arc::new(proxy)), Vec::new())
});

/// Cuts `body` into chunks whose sizes (1 to 16 bytes) follow `seed`.
fn chunks(body: &[u8], seed: u8) -> Vec<Bytes> {
    let mut state = u32::from(seed) | 1;
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let size = ((state >> 16) % 16 + 1) as usize;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        out.push(Bytes::copy_from_slice(head));
        rest = tail;
    }
    out
}

/// The grpc-status of a grpc-web answer: from its headers, else from its trailer frame.
fn answer_status(headers: &http::HeaderMap, mut body: Bytes) -> Option<String> {
    if let Some(status) = headers.get("grpc-status") {
        return Some(status.to_str().ok()?.to_owned());
    }
    while body.len() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        if body.len() < len {
            return None;
        }
        let payload = body.split_to(len);
        if flag & 0x80 != 0 {
            let text = String::from_utf8_lossy(&payload).into_owned();
            return text.lines().find_map(|l| l.strip_prefix("grpc-status:")).map(|s| s.trim().to_owned());
        }
    }
    None
}

/// Every frame header in a gRPC body announces at most `LIMIT` bytes.
fn frames_within_limit(mut body: Bytes) -> bool {
    while body.len() >= 5 {
        body.advance(1);
        let len = body.get_u32() as usize;
        if len > LIMIT {
            return false;
        }
        body.advance(len.min(body.len()));
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let [mode, seed, body @ ..] = data else { return };
    let text = mode % 2 == 1;
    let content_type = if text { "application/grpc-web-text" } else { "application/grpc-web+proto" };
    let parts: Vec<Result<Frame<Bytes>, Infallible>> =
        chunks(body, *seed).into_iter().map(|c| Ok(Frame::data(c))).collect();
    let request = Request::post("/podconnect.v1.SessionService/StartSession")
        .header("content-type", content_type)
        .body(Body::new(StreamBody::new(futures::stream::iter(parts))))
        .expect("a request");

    RECEIVED.lock().expect("not poisoned").clear();
    let (status, headers, answer) = RUNTIME.block_on(async {
        if !SETTLED.swap(true, Ordering::Relaxed) {
            assert!(UPSTREAM.settled(BOUND).await, "the fake core's first health check ends");
        }
        tokio::time::timeout(BOUND, async {
            let response = STACK.clone().oneshot(request).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("the answer body ends cleanly").to_bytes();
            (parts.status, parts.headers, body)
        })
        .await
        .expect("the gateway answered in time")
    });
    assert_eq!(status, StatusCode::OK, "grpc-web answers are HTTP 200");
    let answer = if text {
        base64::engine::general_purpose::STANDARD.decode(&answer).map(Bytes::from).expect("a text answer is base64")
    } else {
        answer
    };
    let code = answer_status(&headers, answer).expect("the answer carries a grpc-status");
    // The fake core is always up: UNAVAILABLE would tell a browser to retry what it must fix.
    assert_ne!(code, "14", "a bad body is the caller's error, never UNAVAILABLE");

    let received = RECEIVED.lock().expect("not poisoned").clone();
    if code == "0" {
        assert_eq!(received.len(), 1, "an OK call reached the core exactly once");
        let expected = if text {
            base64::engine::general_purpose::STANDARD.decode(body).ok().map(Bytes::from)
        } else {
            Some(Bytes::copy_from_slice(body))
        };
        if let Some(expected) = expected {
            assert_eq!(received[0], expected, "the core got other bytes than the browser sent");
        }
    }
    for got in received {
        assert!(frames_within_limit(got), "a frame above the limit reached the core");
    }
});
