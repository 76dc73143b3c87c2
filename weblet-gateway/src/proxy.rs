//! The generic forwarder: any `POST /<package.Service>/<Method>` (already turned into plain gRPC by
//! tonic-web) goes to a core through the balancer (`upstream`), the answer streaming back. No method
//! is written out here, so a new RPC needs no gateway change. It also holds the per-call limits:
//! message size from the frame header, one message per call, header size, time to send the body,
//! concurrent calls in total and per client address, and `grpc-timeout` over the whole call.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::body::Body;
use tonic::{Code, Status};
use tower::Service;

use crate::config::Limits;
use crate::conn::Peer;
use crate::error::{GatewayError, rescue, status_headers};
use crate::metrics::{MethodMetrics, Metrics};
use crate::upstream::{Head, InFlight, Upstream};

/// The contract's client-streaming methods, which grpc-web cannot call.
const CLIENT_STREAMING: &[&str] = &["/podconnect.v1.CustomizationService/UploadPrintFile"];

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The forwarder's shared state.
pub struct Proxy {
    upstream: Arc<Upstream>,
    max_message_bytes: usize,
    max_header_bytes: usize,
    body_timeout: Duration,
    max_calls: usize,
    calls: Arc<Semaphore>,
    peers: Arc<PeerCalls>,
    metrics: Arc<Metrics>,
}

impl Proxy {
    pub fn new(
        upstream: Arc<Upstream>,
        max_message_bytes: usize,
        max_calls: usize,
        limits: &Limits,
        metrics: Arc<Metrics>,
    ) -> Proxy {
        Proxy {
            upstream,
            max_message_bytes,
            max_header_bytes: limits.max_header_bytes,
            body_timeout: limits.body_timeout,
            max_calls,
            calls: Arc::new(Semaphore::new(max_calls)),
            peers: Arc::new(PeerCalls { limit: limits.max_calls_per_peer, calls: Mutex::new(HashMap::new()) }),
            metrics,
        }
    }

    /// Forwards one call; every failure is rescued into a gRPC answer, so this never fails.
    pub async fn forward(self: Arc<Self>, request: Request<Body>) -> Response<Body> {
        // A clone of the URI shares its bytes; the path is kept for the log of a failed call.
        let uri = request.uri().clone();
        let path = uri.path();
        let mut call = CallRecord::start(self.metrics.clone(), self.metrics.method(path));
        let (mut parts, body) = request.into_parts();
        sanitize_request_headers(&mut parts.headers);
        // What the core would refuse by resetting the connection every caller shares is refused
        // here, for this call alone. The pseudo-headers are counted with the path and a margin.
        let header_bytes = header_list_size(&parts.headers) + path.len() + PSEUDO_HEADER_MARGIN;
        if header_bytes > self.max_header_bytes {
            let err = GatewayError::HeadersTooLarge { size: header_bytes, limit: self.max_header_bytes };
            return call.refuse(path, &err);
        }
        // grpc-web carries one request message; a client-streaming method would reach the core
        // with its first message only, so it is refused by name before taking any slot.
        if CLIENT_STREAMING.contains(&path) {
            return call.refuse(path, &GatewayError::ClientStreaming);
        }
        // Load shedding: a caller over a cap is told at once instead of queueing. The per-peer cap
        // comes first, so one address cannot take the global slots.
        if let Some(Peer(peer)) = parts.extensions.get::<Peer>() {
            let Some(permit) = self.peers.try_acquire(peer.ip()) else {
                return call.refuse(path, &GatewayError::PeerOverloaded(self.peers.limit));
            };
            call.peer = Some(permit);
        }
        let Ok(permit) = self.calls.clone().try_acquire_owned() else {
            return call.refuse(path, &GatewayError::Overloaded(self.max_calls));
        };
        call.permit = Some(permit);
        let deadline = grpc_timeout(&parts.headers).map(|timeout| tokio::time::Instant::now() + timeout);

        let started = self.clone().start_call(parts, body);
        let outcome = match deadline {
            Some(deadline) => {
                tokio::time::timeout_at(deadline, started).await.unwrap_or(Err(GatewayError::DeadlineExceeded))
            }
            None => started.await,
        };
        match outcome {
            Ok((response, in_flight)) => {
                // Trailers-only: the call is over already, and its empty body need not be kept.
                if let Some(code) = status_code(response.headers()) {
                    call.finish(code);
                    return response.map(|_| Body::empty());
                }
                call.in_flight = Some(in_flight);
                let (parts, body) = response.into_parts();
                let body = Guarded {
                    inner: body,
                    call: Some(call),
                    deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
                    done: false,
                };
                Response::from_parts(parts, Body::new(body))
            }
            Err(err) => call.refuse(path, &err),
        }
    }

    /// Reads the whole request body within the body time limit (refusing an oversized message
    /// from its frame header, and a second message, before reading on), then sends the call
    /// upstream and waits for the response headers. A body that stalls therefore never reaches
    /// the core, and holds its slots no longer than the limit.
    async fn start_call(
        self: Arc<Self>,
        parts: http::request::Parts,
        body: Body,
    ) -> Result<(Response<Incoming>, InFlight), GatewayError> {
        let body = tokio::time::timeout(self.body_timeout, self.read_body(body))
            .await
            .map_err(|_| GatewayError::BodyTimeout(self.body_timeout))??;

        // The core gets only the path: query parameters (e.g. `$httpHeaders`) stay here.
        let path = match parts.uri.path_and_query() {
            Some(path) if path.query().is_none() => path.clone(),
            _ => {
                PathAndQuery::try_from(parts.uri.path()).map_err(|err| GatewayError::MalformedBody(err.to_string()))?
            }
        };
        let head = Head { method: parts.method, path, headers: parts.headers };
        let sent = self.upstream.send(head, body).await?;
        if sent.response.status() != StatusCode::OK && status_code(sent.response.headers()).is_none() {
            return Err(GatewayError::UpstreamHttp(sent.response.status()));
        }
        Ok((sent.response, sent.in_flight))
    }

    /// The body, which grpc-web makes exactly one message: browsers cannot stream requests, and
    /// the core would silently drop a second message of a unary call.
    async fn read_body(&self, body: Body) -> Result<Bytes, GatewayError> {
        let mut body = FrameLimit::new(body, self.max_message_bytes);
        let mut chunks = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| match err.downcast::<FrameError>() {
                Ok(err) => err.into_gateway_error(self.max_message_bytes),
                Err(err) => GatewayError::MalformedBody(err.to_string()),
            })?;
            if let Ok(data) = frame.into_data() {
                chunks.push(data);
            }
        }
        body.finish().map_err(|err| err.into_gateway_error(self.max_message_bytes))?;
        Ok(match chunks.len() {
            1 => chunks.remove(0),
            _ => chunks.concat().into(),
        })
    }
}

/// Header bytes counted for the pseudo-headers besides the path (method, scheme, authority).
const PSEUDO_HEADER_MARGIN: usize = 256;

/// A header list's size as HTTP/2 counts it against SETTINGS_MAX_HEADER_LIST_SIZE: name and value
/// lengths plus 32 per field.
pub fn header_list_size(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum()
}

/// Calls in flight per client address (IPv6 by /64, what one host usually holds).
struct PeerCalls {
    limit: usize,
    calls: Mutex<HashMap<IpAddr, usize>>,
}

impl PeerCalls {
    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PeerPermit> {
        let key = match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        };
        let mut calls = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = calls.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(PeerPermit { peers: self.clone(), key })
    }
}

/// One call's place in its address's count.
struct PeerPermit {
    peers: Arc<PeerCalls>,
    key: IpAddr,
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut calls = self.peers.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = calls.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                calls.remove(&self.key);
            }
        }
    }
}

/// A `tower::Service` view of the forwarder, for tonic-web to wrap.
#[derive(Clone)]
pub struct ProxyService(pub Arc<Proxy>);

impl Service<Request<Body>> for ProxyService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let proxy = self.0.clone();
        Box::pin(async move { Ok(proxy.forward(request).await) })
    }
}

/// Hop-by-hop and browser-only headers, which never go to the core.
const DROPPED: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::COOKIE,
    header::CONTENT_LENGTH,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
];
// Named constants, not strings: a string is parsed into a header name on every call.
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

fn sanitize_request_headers(headers: &mut HeaderMap) {
    // Scan the few headers a call has and remove only those present: removing an absent name
    // still hashes it, and that was ten times per call.
    while let Some(name) = headers.keys().find(|name| DROPPED.contains(name)).cloned() {
        headers.remove(name);
    }
    // grpc-web has no per-message compression: ask the core for plain frames.
    headers.insert(GRPC_ACCEPT_ENCODING, HeaderValue::from_static("identity"));
}

/// The code in a `grpc-status` header, without decoding the message and details: the metrics and
/// the checks here need only the code, and the headers go on to the browser untouched.
fn status_code(headers: &HeaderMap) -> Option<Code> {
    headers.get(GRPC_STATUS).map(|value| Code::from_bytes(value.as_bytes()))
}

/// The `grpc-timeout` header (`<digits><unit>`, at most 8 digits), if present and well formed.
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    proto::grpc_timeout(headers.get(GRPC_TIMEOUT)?.to_str().ok()?)
}

/// One call's bookkeeping: metrics on the way out, and the concurrency permit while it runs.
struct CallRecord {
    metrics: Arc<Metrics>,
    method: Arc<MethodMetrics>,
    started: Instant,
    permit: Option<OwnedSemaphorePermit>,
    peer: Option<PeerPermit>,
    /// The call's place in its core's count of outstanding calls.
    in_flight: Option<InFlight>,
    finished: bool,
}

impl CallRecord {
    fn start(metrics: Arc<Metrics>, method: Arc<MethodMetrics>) -> CallRecord {
        metrics.call_started();
        CallRecord {
            metrics,
            method,
            started: Instant::now(),
            permit: None,
            peer: None,
            in_flight: None,
            finished: false,
        }
    }

    /// Ends the call with a gateway failure, answered before the core answered anything.
    fn refuse(&mut self, path: &str, err: &GatewayError) -> Response<Body> {
        let (code, response) = rescue(path, err);
        self.finish(code);
        response
    }

    fn finish(&mut self, code: Code) {
        if !self.finished {
            self.finished = true;
            self.metrics.call_finished(&self.method, code, self.started.elapsed());
            self.permit = None;
            self.peer = None;
            self.in_flight = None;
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        // The browser went away before the end.
        self.finish(Code::Cancelled);
    }
}

/// What the framing of a request body breaks.
#[derive(Debug)]
enum FrameError {
    /// A frame header announced more than the limit.
    TooLarge(u64),
    /// A second message began.
    SecondMessage,
    /// The body ended with no message, or inside one.
    Incomplete,
}

impl FrameError {
    fn into_gateway_error(self, limit: usize) -> GatewayError {
        match self {
            FrameError::TooLarge(announced) => GatewayError::MessageTooLarge { announced, limit },
            FrameError::SecondMessage => GatewayError::MessageCount("more than one"),
            FrameError::Incomplete => GatewayError::MessageCount("no complete"),
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge(announced) => write!(f, "a frame announces {announced} bytes"),
            FrameError::SecondMessage => f.write_str("a second message began"),
            FrameError::Incomplete => f.write_str("the body holds no complete message"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Follows the gRPC framing of a request body and fails as soon as a header announces more than
/// the limit, before that message's bytes are read, or a second message begins.
struct FrameLimit {
    inner: Body,
    limit: usize,
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
    frames: usize,
}

impl FrameLimit {
    fn new(inner: Body, limit: usize) -> FrameLimit {
        FrameLimit { inner, limit, header: [0; 5], header_len: 0, remaining: 0, frames: 0 }
    }

    fn check(&mut self, mut data: &[u8]) -> Result<(), FrameError> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= take as u64;
                data.advance(take);
                continue;
            }
            if self.frames == 1 {
                return Err(FrameError::SecondMessage);
            }
            self.header[self.header_len] = data[0];
            self.header_len += 1;
            data.advance(1);
            if self.header_len == 5 {
                self.header_len = 0;
                let announced =
                    u64::from(u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]));
                if announced > self.limit as u64 {
                    return Err(FrameError::TooLarge(announced));
                }
                self.remaining = announced;
                self.frames += 1;
            }
        }
        Ok(())
    }

    /// At the end of the body: exactly one whole message was read.
    fn finish(&self) -> Result<(), FrameError> {
        if self.frames == 1 && self.header_len == 0 && self.remaining == 0 {
            Ok(())
        } else {
            Err(FrameError::Incomplete)
        }
    }
}

impl http_body::Body for FrameLimit {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    self.check(&data)?;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// The core's response body on its way to the browser: ends with a status whatever happens
/// (deadline passed, core gone mid-stream), and records the call when it ends.
struct Guarded {
    inner: Incoming,
    call: Option<CallRecord>,
    deadline: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl Guarded {
    /// Ends a call already streaming with a gateway failure, as its trailers.
    fn end_with(&mut self, err: &GatewayError) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let method = self.call.as_ref().map(|call| call.method.label()).unwrap_or_default();
        let (code, trailers) = status_headers(method, err);
        self.finish(code);
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn finish(&mut self, code: Code) {
        self.done = true;
        if let Some(mut call) = self.call.take() {
            call.finish(code);
        }
    }
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return self.end_with(&GatewayError::DeadlineExceeded);
        }
        match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.finish(status_code(trailers).unwrap_or(Code::Unknown));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => self.end_with(&GatewayError::Upstream(err.to_string().into())),
            None => {
                if self.call.is_some() {
                    return self.end_with(&GatewayError::Upstream("the core ended the call without a status".into()));
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_call_headers_go_to_the_core() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("host", "mfd.example"),
            ("cookie", "a=b"),
            ("keep-alive", "timeout=5"),
            ("connection", "keep-alive"),
            ("content-length", "12"),
            ("accept", "application/grpc-web+proto"),
            ("accept-encoding", "gzip"),
            ("authorization", "Bearer t"),
            ("x-custom-bin", "AAEC"),
            ("grpc-accept-encoding", "gzip"),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        sanitize_request_headers(&mut headers);
        let mut left: Vec<(String, String)> =
            headers.iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())).collect();
        left.sort();
        assert_eq!(
            left,
            [("authorization", "Bearer t"), ("grpc-accept-encoding", "identity"), ("x-custom-bin", "AAEC")]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn the_per_address_cap_counts_an_ipv6_host_by_its_64_and_frees_on_drop() {
        let peers = Arc::new(PeerCalls { limit: 1, calls: Mutex::new(HashMap::new()) });
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let held = peers.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert!(peers.try_acquire(ip("2001:db8:1:2:ffff::9")).is_none(), "same /64");
        let other = peers.try_acquire(ip("2001:db8:1:3::1")).expect("another /64");
        let v4 = peers.try_acquire(ip("192.0.2.7")).unwrap();
        assert!(peers.try_acquire(ip("::ffff:192.0.2.7")).is_none(), "IPv4-mapped is the same address");
        drop((held, other, v4));
        assert!(peers.calls.lock().unwrap().is_empty(), "no entry outlives its calls");
        assert!(peers.try_acquire(ip("2001:db8:1:2::1")).is_some());
    }

    #[test]
    fn the_status_code_is_read_without_the_message() {
        let mut headers = HeaderMap::new();
        assert_eq!(status_code(&headers), None);
        headers.insert(GRPC_STATUS, HeaderValue::from_static("14"));
        assert_eq!(status_code(&headers), Some(Code::Unavailable));
        headers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        assert_eq!(status_code(&headers), Some(Code::Ok));
        // As tonic reads it: a status that is not a number is Unknown, not absent.
        headers.insert(GRPC_STATUS, HeaderValue::from_static("x"));
        assert_eq!(status_code(&headers), Some(Code::Unknown));
    }
}
