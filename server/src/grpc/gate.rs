//! The gate every call passes before any handler runs: admission (a global cap on calls in
//! flight, with excess refused at once rather than queued) and authentication (a session token
//! for app calls, an operator credential for operator calls). Secure by default: a method not
//! listed as public or operator-only needs a session.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::config::OperatorAuth;
use crate::domain::error::CoreError;
use crate::domain::session::{Session, SessionManager};

/// Marker put in a call's extensions once an operator credential checked out.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

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
    ];
    if PUBLIC.iter().any(|p| path.starts_with(p)) {
        Access::Public
    } else if OPERATOR.iter().any(|p| path.starts_with(p)) {
        Access::Operator
    } else {
        Access::Session
    }
}

/// What the gate needs to decide.
pub struct GateState {
    pub sessions: Arc<SessionManager>,
    pub operators: OperatorAuth,
    pub in_flight: Semaphore,
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

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let Ok(_permit) = state.in_flight.try_acquire() else {
                let status = Status::resource_exhausted("the server is at its limit of calls in flight; retry shortly");
                return Ok(status.into_http());
            };
            match admit(&state, &mut request).await {
                Ok(()) => inner.call(request).await,
                Err(err) => Ok(Status::from(err).into_http()),
            }
        })
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

/// Whether the connection's verified client certificate names an operator.
fn operator_certificate(state: &GateState, request: &http::Request<Body>) -> bool {
    if state.operators.cert_names.is_empty() {
        return false;
    }
    let Some(info) = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>() else { return false };
    let Some(chain) = info.peer_certs() else { return false };
    // rustls has verified the chain against the client CA; only the name is left to check.
    let Some(leaf) = chain.first() else { return false };
    certificate_names(leaf.as_ref()).iter().any(|name| state.operators.cert_names.contains(name))
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
        let limits = SessionLimits { idle: Duration::from_secs(60), absolute: Duration::from_secs(600) };
        GateState {
            sessions: Arc::new(SessionManager::new(MemoryStore::new(), Key256::generate(), limits, Arc::new(Discard))),
            operators: OperatorAuth::default(),
            in_flight: Semaphore::new(limit),
        }
    }

    fn call(path: &str) -> http::Request<Body> {
        http::Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    fn grpc_status(response: &http::Response<Body>) -> Option<tonic::Code> {
        Status::from_header_map(response.headers()).map(|s| s.code())
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
