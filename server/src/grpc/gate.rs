//! The gate every call passes before any handler runs: admission and authentication.
//!
//! Admission: a global cap on calls in flight and a cap per peer address (a call counts until its
//! response ends, so open streams count too), with excess refused at once rather than queued; health checks have a small pool of their own, so they answer even
//! when ordinary calls fill every slot. Every request must arrive whole within the request time
//! limit (a call that sends its headers and stalls its body ends with DEADLINE_EXCEEDED and gives
//! its slot back), a method that takes one request message refuses a second, and a caller's
//! `grpc-timeout` ends the call with DEADLINE_EXCEEDED. Authentication: a session token for app
//! calls, an operator credential for operator calls. Secure by default: a method not listed as
//! public or operator-only needs a session.

use std::collections::HashMap;
use std::future::Future as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Request, Status};
use tower::{Layer, Service};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::OperatorAuth;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::session::{Session, SessionManager};
use crate::grpc::status::refusal;
use crate::serve::ConnInfo;

/// Marker put in a call's extensions once an operator credential checked out.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

/// The session the gate authenticated for this call (every app call's adapter starts here).
pub fn session<T>(request: &Request<T>) -> CoreResult<Session> {
    request
        .extensions()
        .get::<Session>()
        .cloned()
        .ok_or_else(|| CoreError::internal("the call was not authenticated", "no session in the call's extensions"))
}

/// The operator credential the gate checked for this call (every operator call's adapter
/// starts here).
pub fn operator<T>(request: &Request<T>) -> CoreResult<Operator> {
    request.extensions().get::<Operator>().copied().ok_or_else(|| {
        CoreError::internal(
            "the call was not authenticated as an operator",
            "no operator marker in the call's extensions",
        )
    })
}

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    Session,
    Operator,
}

fn access(path: &str) -> Access {
    const PUBLIC: &[&str] =
        &["/podconnect.v1.SessionService/StartSession", "/grpc.health.v1.Health/", "/grpc.reflection."];
    const OPERATOR: &[&str] = &[
        "/podconnect.v1.UsageService/",
        "/podconnect.v1.DeviceService/",
        "/podconnect.v1.SsoService/RotateKey",
        "/podconnect.v1.SsoService/Rewrap",
        "/podconnect.v1.SsoService/SetMinDecryptionVersion",
    ];
    if PUBLIC.iter().any(|p| path.starts_with(p)) {
        Access::Public
    } else if OPERATOR.iter().any(|p| path.starts_with(p)) {
        Access::Operator
    } else {
        Access::Session
    }
}

/// Health checks answered at once, apart from ordinary calls.
const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// Health checks in flight at once; they are quick, so a few dozen is plenty.
const HEALTH_CHECKS_IN_FLIGHT: usize = 32;

/// Whether a method's caller sends a stream of messages. Every method of the contract and of
/// health takes exactly one request message but UploadPrintFile (its stream still arrives whole
/// within the request time limit); reflection streams requests too.
fn streams_requests(path: &str) -> bool {
    path.starts_with("/grpc.reflection.") || path == UPLOAD_PRINT_FILE_PATH
}

/// The contract's one client-streaming method.
const UPLOAD_PRINT_FILE_PATH: &str = "/podconnect.v1.CustomizationService/UploadPrintFile";

/// How calls are admitted.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Calls in flight across all connections.
    pub max_in_flight: usize,
    /// Calls in flight from one peer address.
    pub max_per_peer: usize,
    /// Time for a request (headers and every message) to arrive.
    pub request_timeout: Duration,
}

/// What the gate needs to decide.
pub struct GateState {
    pub sessions: Arc<SessionManager>,
    pub operators: OperatorAuth,
    pub limits: CallLimits,
    in_flight: Arc<Semaphore>,
    health: Arc<Semaphore>,
    peers: Mutex<HashMap<IpAddr, usize>>,
}

impl GateState {
    pub fn new(sessions: Arc<SessionManager>, operators: OperatorAuth, limits: CallLimits) -> Self {
        GateState {
            sessions,
            operators,
            limits,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            health: Arc::new(Semaphore::new(HEALTH_CHECKS_IN_FLIGHT)),
            peers: Mutex::new(HashMap::new()),
        }
    }
}

/// One call counted against its peer address until dropped.
struct PeerPermit {
    state: Arc<GateState>,
    ip: IpAddr,
}

impl PeerPermit {
    fn take(state: &Arc<GateState>, ip: IpAddr) -> Option<PeerPermit> {
        let mut peers = state.peers.lock().unwrap_or_else(|p| p.into_inner());
        let count = peers.entry(ip).or_default();
        if *count >= state.limits.max_per_peer {
            return None;
        }
        *count += 1;
        Some(PeerPermit { state: state.clone(), ip })
    }
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut peers = self.state.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = peers.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                peers.remove(&self.ip);
            }
        }
    }
}

/// Tower layer installing the gate in front of every service.
#[derive(Clone)]
pub struct GateLayer {
    state: Arc<GateState>,
}

impl GateLayer {
    pub fn new(state: GateState) -> Self {
        GateLayer { state: Arc::new(state) }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    state: Arc<GateState>,
}

impl<S> Service<http::Request<Body>> for Gate<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let path = request.uri().path();
            // Held until the response ends, so an open stream (WatchJob, health Watch) counts.
            let permits = if path == HEALTH_CHECK_PATH {
                let Ok(permit) = state.health.clone().try_acquire_owned() else {
                    let busy = CoreError::ResourceExhausted("too many health checks at once; retry shortly".into());
                    return Ok(refusal(busy));
                };
                (permit, None)
            } else {
                let Ok(permit) = state.in_flight.clone().try_acquire_owned() else {
                    let full = "the server is at its limit of calls in flight; retry shortly";
                    return Ok(refusal(CoreError::ResourceExhausted(full.into())));
                };
                let peer = request.extensions().get::<ConnInfo>().map(|info| info.peer.ip());
                let peer_permit = match peer {
                    Some(ip) => match PeerPermit::take(&state, ip) {
                        Some(permit) => Some(permit),
                        None => {
                            let full = "this address is at its limit of calls in flight; retry shortly";
                            return Ok(refusal(CoreError::ResourceExhausted(full.into())));
                        }
                    },
                    None => None,
                };
                (permit, peer_permit)
            };
            let deadline = match caller_deadline(request.headers()) {
                Ok(deadline) => deadline,
                Err(err) => return Ok(refusal(err)),
            };
            let single = !streams_requests(path);
            let timeout = state.limits.request_timeout;
            let mut request = request.map(|body| Body::new(RequestBody::new(body, timeout, single)));
            // Work that waits on the caller's behalf (uStore previews) ends within the deadline.
            let call = crate::domain::deadline::within(deadline, async {
                match admit(&state, &mut request).await {
                    Ok(()) => inner.call(request).await,
                    Err(err) => Ok(refusal(err)),
                }
            });
            let response = match deadline {
                None => call.await?,
                Some(deadline) => match tokio::time::timeout(deadline, call).await {
                    Ok(result) => result?,
                    Err(_) => refusal(CoreError::DeadlineExceeded(
                        "the call's deadline (grpc-timeout) passed before it finished".into(),
                    )),
                },
            };
            Ok(response.map(|body| Body::new(Held { inner: body, _permits: permits })))
        })
    }
}

/// A response body holding its call's admission slots until it ends or is dropped.
struct Held {
    inner: Body,
    _permits: (tokio::sync::OwnedSemaphorePermit, Option<PeerPermit>),
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The caller's deadline from `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
fn caller_deadline(headers: &http::HeaderMap) -> CoreResult<Option<Duration>> {
    let Some(value) = headers.get("grpc-timeout") else { return Ok(None) };
    let invalid =
        || CoreError::InvalidArgument("grpc-timeout must be up to 8 digits and a unit (H, M, S, m, u or n)".into());
    let value = value.to_str().map_err(|_| invalid())?;
    proto::grpc_timeout(value).map(Some).ok_or_else(invalid)
}

/// A request body that must arrive whole before its time limit, and that holds one gRPC
/// message when the method takes one. Its errors are statuses, which tonic answers as they are.
struct RequestBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    single: bool,
    /// gRPC framing: bytes of the current message header seen, and message bytes still to come.
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
    messages: u32,
    ended: bool,
}

impl RequestBody {
    fn new(inner: Body, timeout: Duration, single: bool) -> Self {
        RequestBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            single,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            messages: 0,
            ended: false,
        }
    }

    /// Walks the length-prefixed messages in `data`; refuses a second message where one is due.
    fn count(&mut self, data: &Bytes) -> Result<(), Status> {
        let mut rest = &data[..];
        while !rest.is_empty() {
            if self.remaining > 0 {
                let skip = rest.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                rest = &rest[skip..];
                self.remaining -= skip as u64;
                continue;
            }
            let take = (5 - self.header_len).min(rest.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&rest[..take]);
            self.header_len += take;
            rest = &rest[take..];
            if self.header_len == 5 {
                self.messages += 1;
                if self.single && self.messages > 1 {
                    return Err(CoreError::InvalidArgument(
                        "this method takes exactly one request message, and the call sent more".into(),
                    )
                    .into());
                }
                self.remaining =
                    u64::from(u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]));
                self.header_len = 0;
            }
        }
        Ok(())
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                if let Some(data) = frame.data_ref().cloned()
                    && let Err(status) = self.count(&data)
                {
                    self.ended = true;
                    return Poll::Ready(Some(Err(status)));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(status))) => Poll::Ready(Some(Err(status))),
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.ended = true;
                    let secs = self.timeout.as_secs_f64();
                    let late = CoreError::DeadlineExceeded(format!(
                        "the request did not arrive within {secs} s; send each request whole and at once"
                    ));
                    Poll::Ready(Some(Err(late.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

async fn admit(state: &GateState, request: &mut http::Request<Body>) -> Result<(), CoreError> {
    match access(request.uri().path()) {
        Access::Public => Ok(()),
        Access::Session => {
            let token = bearer(request)?.ok_or_else(|| {
                CoreError::Unauthenticated(
                    "this call needs a session: send `authorization: Bearer <session_token>` from \
                     SessionService.StartSession"
                        .into(),
                )
            })?;
            let session: Session = state.sessions.authenticate(token).await?;
            request.extensions_mut().insert(session);
            Ok(())
        }
        Access::Operator => {
            if is_operator(state, request)? {
                request.extensions_mut().insert(Operator);
                return Ok(());
            }
            if client_certificate(request).is_some() {
                return Err(CoreError::PermissionDenied(
                    "this call is for operators only; your client certificate does not name an operator".into(),
                ));
            }
            if let Some(token) = bearer(request)?
                && state.sessions.is_live(token).await
            {
                return Err(CoreError::PermissionDenied(
                    "this call is for operators only; a session token does not grant it".into(),
                ));
            }
            Err(CoreError::Unauthenticated(
                "this call is for operators: present an operator client certificate or send \
                 `authorization: Bearer <operator token>`"
                    .into(),
            ))
        }
    }
}

/// The bearer token of the `authorization` header, if there is one.
fn bearer(request: &http::Request<Body>) -> Result<Option<&str>, CoreError> {
    let Some(value) = request.headers().get(http::header::AUTHORIZATION) else { return Ok(None) };
    let malformed = || CoreError::Unauthenticated("the authorization header must be `Bearer <token>`".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(malformed());
    }
    Ok(Some(token.trim()))
}

fn is_operator(state: &GateState, request: &http::Request<Body>) -> Result<bool, CoreError> {
    if operator_certificate(state, request) {
        return Ok(true);
    }
    if let (Some(expected), Some(token)) = (state.operators.token_sha256, bearer(request)?) {
        // Comparing digests: equal length, and a timing difference reveals nothing about the token.
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        return Ok(presented == expected);
    }
    Ok(false)
}

/// The leaf of the client certificate chain rustls verified for the call's connection.
fn client_certificate(request: &http::Request<Body>) -> Option<&[u8]> {
    let chain = request.extensions().get::<ConnInfo>()?.client_certs.as_ref()?;
    chain.first().map(|leaf| leaf.as_ref())
}

/// Whether the connection's verified client certificate names an operator.
fn operator_certificate(state: &GateState, request: &http::Request<Body>) -> bool {
    if state.operators.cert_names.is_empty() {
        return false;
    }
    // rustls has verified the chain against the client CA; only the name is left to check.
    let Some(leaf) = client_certificate(request) else { return false };
    certificate_names(leaf).iter().any(|name| state.operators.cert_names.contains(name))
}

/// Subject common names and DNS alternative names of a DER certificate.
fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else { return Vec::new() };
    let mut names: Vec<String> =
        cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok().map(str::to_owned)).collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::ServiceExt as _;

    use super::*;
    use crate::domain::crypto::Key256;
    use crate::domain::session::SessionLimits;
    use crate::domain::usage::{UsageEvent, UsageSink};
    use crate::store::memory::MemoryStore;

    struct Discard;

    #[async_trait::async_trait]
    impl UsageSink for Discard {
        async fn record(&self, _event: UsageEvent) {}
    }

    fn state(limit: usize) -> GateState {
        let limits = SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
            max_per_device: 8,
            max_total: 100,
        };
        GateState::new(
            Arc::new(SessionManager::new(MemoryStore::new(), Key256::generate(), limits, Arc::new(Discard))),
            OperatorAuth::default(),
            CallLimits { max_in_flight: limit, max_per_peer: limit, request_timeout: Duration::from_secs(10) },
        )
    }

    fn call(path: &str) -> http::Request<Body> {
        http::Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    fn grpc_status(response: &http::Response<Body>) -> Option<tonic::Code> {
        response.headers().get("grpc-status").map(|code| tonic::Code::from_bytes(code.as_bytes()))
    }

    #[tokio::test]
    async fn calls_beyond_the_limit_are_shed_at_once_and_admitted_again_later() {
        let release = Arc::new(tokio::sync::Notify::new());
        let inner = tower::service_fn({
            let release = release.clone();
            move |_req: http::Request<Body>| {
                let release = release.clone();
                async move {
                    release.notified().await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
                }
            }
        });
        let gate = GateLayer::new(state(1)).layer(inner);
        let path = "/podconnect.v1.SessionService/StartSession";

        let first = tokio::spawn(gate.clone().oneshot(call(path)));
        // Wait until the first call holds the only slot.
        while gate.state.in_flight.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let shed = gate.clone().oneshot(call(path)).await.unwrap();
        assert_eq!(grpc_status(&shed), Some(tonic::Code::ResourceExhausted));

        release.notify_one();
        let done = first.await.unwrap().unwrap();
        assert_eq!(grpc_status(&done), None, "the admitted call reached its handler");
        assert_eq!(gate.state.in_flight.available_permits(), 1, "the slot is free again");
    }

    #[tokio::test]
    async fn session_calls_without_a_token_never_reach_the_handler() {
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let inner = tower::service_fn({
            let reached = reached.clone();
            move |_req: http::Request<Body>| {
                reached.store(true, std::sync::atomic::Ordering::SeqCst);
                async { Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty())) }
            }
        });
        let gate = GateLayer::new(state(8)).layer(inner);
        let response = gate.oneshot(call("/podconnect.v1.CatalogService/ListCategories")).await.unwrap();
        assert_eq!(grpc_status(&response), Some(tonic::Code::Unauthenticated));
        assert!(!reached.load(std::sync::atomic::Ordering::SeqCst), "the handler must not run");
    }

    #[test]
    fn methods_are_session_only_unless_listed() {
        assert_eq!(access("/podconnect.v1.SessionService/StartSession"), Access::Public);
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Public);
        assert_eq!(access("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), Access::Public);
        assert_eq!(access("/podconnect.v1.SessionService/CloseSession"), Access::Session);
        assert_eq!(access("/podconnect.v1.CatalogService/GetProduct"), Access::Session);
        assert_eq!(access("/podconnect.v1.SomeFutureService/Anything"), Access::Session);
        assert_eq!(access("/podconnect.v1.UsageService/CountUsageEvents"), Access::Operator);
        assert_eq!(access("/podconnect.v1.SsoService/Rewrap"), Access::Operator);
        assert_eq!(access("/podconnect.v1.SsoService/GetVaultKey"), Access::Session);
    }

    #[test]
    fn caller_deadlines_follow_the_grpc_timeout_grammar() {
        let parse = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-timeout", value.parse().unwrap());
            caller_deadline(&headers).map_err(|err| matches!(err, CoreError::InvalidArgument(_)))
        };
        assert_eq!(parse("3H"), Ok(Some(Duration::from_secs(3 * 3600))));
        assert_eq!(parse("2M"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(parse("250m"), Ok(Some(Duration::from_millis(250))));
        assert_eq!(parse("99999999n"), Ok(Some(Duration::from_nanos(99_999_999))));
        for garbage in ["", "5", "123456789S", "-1S", "1s", "S"] {
            assert_eq!(parse(garbage), Err(true), "INVALID_ARGUMENT for {garbage:?}");
        }
        assert!(matches!(caller_deadline(&http::HeaderMap::new()), Ok(None)));
    }

    #[test]
    fn names_come_from_cn_and_dns_san() {
        let mut params = rcgen::CertificateParams::new(vec!["ops.example".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "operator-alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let names = certificate_names(cert.der());
        assert!(names.contains(&"operator-alice".to_string()));
        assert!(names.contains(&"ops.example".to_string()));
        assert!(certificate_names(b"not a certificate").is_empty());
    }
}
