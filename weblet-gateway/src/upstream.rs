//! The cores calls go to, and the balancer over them. Every core address is a `Backend` with one
//! HTTP/2 connection of its own (hyper's client directly: a call goes from its task to the
//! connection, with no buffer task between), watched by its health checks (`backend.rs`). A call
//! goes to the serving core with the fewest calls outstanding (ties in turn), and is tried on
//! another core only when none of it left the gateway: the connection was gone before the call
//! was written, or the core refused the stream (REFUSED_STREAM, which promises it did nothing).
//! A host name given with `--core` stands for all its addresses and is resolved again every
//! `--resolve-interval`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use rustls::pki_types::ServerName;
use tokio::sync::watch;

use crate::backend::{Backend, Dial};
use crate::config::{BalanceSettings, CoreHost, CoreTarget};
use crate::error::GatewayError;

/// A call is sent at most this many times, each time to another core, and only while none of
/// it has left the gateway.
const MAX_ATTEMPTS: usize = 3;
/// Most addresses one host name may stand for; a bigger answer is cut (sorted, so the same ones
/// stay), each address being a connection and a health check.
pub const MAX_ADDRESSES_PER_NAME: usize = 16;
/// How long one resolution of a host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How soon a name that resolved to nothing is tried again.
const RESOLVE_RETRY: Duration = Duration::from_secs(5);

/// How connections to the cores are made.
pub enum Transport {
    /// TCP, with TLS (ALPN `h2`) when the cores are `https://`.
    Tcp { tls: Option<tokio_rustls::TlsConnector> },
    /// Connections the embedder makes (in-memory cores for tests and the fuzz target).
    Custom(Dial),
}

/// What every backend's connection manager needs.
pub(crate) struct Shared {
    pub(crate) transport: Transport,
    pub(crate) balance: BalanceSettings,
    /// Bumped whenever a backend's state changes, for `settled`.
    pub(crate) changed: watch::Sender<()>,
}

/// One `--core` address as the connections use it.
pub(crate) struct Target {
    pub(crate) core: CoreTarget,
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// The name the core's certificate must carry: the host as given (a name or an IP address).
    pub(crate) server_name: ServerName<'static>,
}

/// The balancer and its backends.
pub struct Upstream {
    shared: Arc<Shared>,
    targets: Vec<Arc<Target>>,
    /// Every backend now known; replaced whole when a name resolves to other addresses.
    backends: RwLock<Vec<Arc<Backend>>>,
    /// Where the next pick starts looking, so ties go round in turn.
    cursor: AtomicUsize,
    /// Host names not yet resolved once (for `settled`).
    unresolved: AtomicUsize,
}

/// A call the core has answered: its response (the body still streaming), and its place in the
/// core's count of outstanding calls, to be held until the call ends.
pub struct Sent {
    pub response: Response<Incoming>,
    pub in_flight: InFlight,
}

/// A call counted as outstanding on its backend until dropped.
pub struct InFlight(Arc<Backend>);

impl InFlight {
    fn new(backend: Arc<Backend>) -> InFlight {
        backend.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(backend)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A call's method, path and headers, sent to whichever core takes it.
pub struct Head {
    pub method: Method,
    pub path: PathAndQuery,
    pub headers: HeaderMap,
}

/// One core's state, for `/metrics` and logs.
pub struct CoreState {
    pub label: String,
    pub outstanding: usize,
    pub serving: bool,
}

impl Upstream {
    /// Starts a connection manager for every core address (host names are resolved in the
    /// background) and returns at once; `settled` waits for the first round of connections.
    /// Must run inside the tokio runtime.
    pub fn start(
        cores: &[CoreTarget],
        balance: BalanceSettings,
        transport: Transport,
    ) -> anyhow::Result<Arc<Upstream>> {
        let (changed, _) = watch::channel(());
        let shared = Arc::new(Shared { transport, balance, changed });
        let mut targets = Vec::new();
        for core in cores {
            targets.push(Arc::new(Target::new(core)?));
        }
        let upstream = Arc::new(Upstream {
            shared,
            targets,
            backends: RwLock::new(Vec::new()),
            cursor: AtomicUsize::new(0),
            unresolved: AtomicUsize::new(0),
        });
        let mut initial = Vec::new();
        for target in &upstream.targets {
            match &target.core.host {
                CoreHost::Ip(ip) => initial.push(Backend::start(
                    target.clone(),
                    SocketAddr::new(*ip, target.core.port),
                    &upstream.shared,
                )),
                CoreHost::Name(_) => {
                    upstream.unresolved.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(resolve_loop(Arc::downgrade(&upstream), target.clone()));
                }
            }
        }
        *upstream.backends.write().unwrap_or_else(std::sync::PoisonError::into_inner) = initial;
        Ok(upstream)
    }

    /// Waits, at most `bound`, until every host name was resolved once and every backend has
    /// had its first connection attempt and health check; whether it got that far.
    pub async fn settled(&self, bound: Duration) -> bool {
        let mut changed = self.shared.changed.subscribe();
        let all_settled =
            || self.unresolved.load(Ordering::Relaxed) == 0 && self.backends_now().iter().all(|b| b.is_settled());
        tokio::time::timeout(bound, async {
            while !all_settled() {
                if changed.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && all_settled()
    }

    /// Sends a call to the least loaded serving core, and to another one when the first never got
    /// any of it; returns once the core's response headers arrived.
    pub async fn send(&self, head: Head, body: Bytes) -> Result<Sent, GatewayError> {
        let mut tried: [u64; MAX_ATTEMPTS] = [0; MAX_ATTEMPTS];
        // A request the connection handed back unsent goes out as it is to the next core.
        let mut unsent: Option<Request<Full<Bytes>>> = None;
        for attempt in 0..MAX_ATTEMPTS {
            let Some((backend, mut sender)) = self.pick(&tried[..attempt]) else {
                return Err(GatewayError::NoCore(self.why_none(attempt)));
            };
            tried[attempt] = backend.id;
            let uri = backend.target.uri(&head.path);
            let request = match unsent.take() {
                Some(mut request) => {
                    *request.uri_mut() = uri;
                    request
                }
                None => {
                    let mut request = Request::new(Full::new(body.clone()));
                    *request.method_mut() = head.method.clone();
                    *request.uri_mut() = uri;
                    *request.version_mut() = Version::HTTP_2;
                    *request.headers_mut() = head.headers.clone();
                    request
                }
            };
            let in_flight = InFlight::new(backend.clone());
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(Sent { response, in_flight }),
                Err(mut err) => {
                    if let Some(request) = err.take_message() {
                        tracing::debug!(core = %backend.label, "connection closed before the call was written; next core");
                        backend.connection_closed();
                        unsent = Some(request);
                        continue;
                    }
                    if refused_stream(err.error()) {
                        tracing::debug!(core = %backend.label, "the core refused the stream unprocessed; next core");
                        continue;
                    }
                    return Err(GatewayError::Upstream(err.into_error().into()));
                }
            }
        }
        Err(GatewayError::NoCore(format!("{MAX_ATTEMPTS} cores in turn could not take the call")))
    }

    /// The serving backend with the fewest outstanding calls among those not `tried`, with a live
    /// connection.
    fn pick(&self, tried: &[u64]) -> Option<(Arc<Backend>, hyper::client::conn::http2::SendRequest<Full<Bytes>>)> {
        let backends = self.backends.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A backend whose connection turns out closed is marked down and the pick made again.
        loop {
            let eligible = |backend: &Arc<Backend>| backend.is_serving() && !tried.contains(&backend.id);
            let (mut least, mut tied) = (usize::MAX, 0);
            for backend in backends.iter().filter(|backend| eligible(backend)) {
                let load = backend.outstanding.load(Ordering::Relaxed);
                if load < least {
                    (least, tied) = (load, 1);
                } else if load == least {
                    tied += 1;
                }
            }
            if tied == 0 {
                return None;
            }
            // Ties go in turn: the cursor picks which of the tied backends, so each gets its share
            // whichever others are ejected or busier.
            let mut nth = if tied == 1 { 0 } else { self.cursor.fetch_add(1, Ordering::Relaxed) % tied };
            let mut chosen = None;
            for backend in backends.iter().filter(|backend| eligible(backend)) {
                // A load that changed meanwhile (another thread's call) still gets a backend.
                if backend.outstanding.load(Ordering::Relaxed) <= least {
                    chosen = Some(backend);
                    if nth == 0 {
                        break;
                    }
                    nth -= 1;
                }
            }
            let backend = chosen?;
            match backend.live_sender() {
                Some(sender) => return Some((backend.clone(), sender)),
                None => backend.connection_closed(),
            }
        }
    }

    /// Why no core could take a call, for the log.
    fn why_none(&self, attempt: usize) -> String {
        let backends = self.backends_now();
        if backends.is_empty() {
            return format!("none of {} --core address(es) has resolved to an address yet", self.targets.len());
        }
        let mut why = if attempt == 0 {
            format!("{} of {} core(s) serving", backends.iter().filter(|b| b.is_serving()).count(), backends.len())
        } else {
            format!("{attempt} core(s) tried, none of the others serving")
        };
        for backend in backends.iter().take(4) {
            why.push_str(&format!("; {}: {}", backend.label, backend.state_text()));
        }
        why
    }

    /// The backends as they are now.
    pub fn backends_now(&self) -> Vec<Arc<Backend>> {
        self.backends.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Every core's state, for `/metrics`.
    pub fn states(&self) -> Vec<CoreState> {
        self.backends_now()
            .iter()
            .map(|backend| CoreState {
                label: backend.label.clone(),
                outstanding: backend.outstanding.load(Ordering::Relaxed),
                serving: backend.is_serving(),
            })
            .collect()
    }

    /// Replaces the backends of `target` with one per address in `resolved`, keeping those
    /// already known (and their connections).
    fn reconcile(&self, target: &Arc<Target>, resolved: &[SocketAddr]) {
        let mut backends = self.backends.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current: Vec<SocketAddr> =
            backends.iter().filter(|b| Arc::ptr_eq(&b.target, target)).map(|b| b.addr).collect();
        let (added, removed) = diff(&current, resolved);
        if added.is_empty() && removed.is_empty() {
            return;
        }
        tracing::info!(core = %target.core, ?added, ?removed, "the core's name resolves to other addresses");
        backends.retain(|backend| {
            let gone = Arc::ptr_eq(&backend.target, target) && removed.contains(&backend.addr);
            if gone {
                backend.stop();
            }
            !gone
        });
        for addr in added {
            backends.push(Backend::start(target.clone(), addr, &self.shared));
        }
        drop(backends);
        self.shared.changed.send_replace(());
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for backend in self.backends.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
            backend.stop();
        }
    }
}

impl Target {
    fn new(core: &CoreTarget) -> anyhow::Result<Target> {
        let authority = Authority::try_from(core.authority())
            .map_err(|_| anyhow::anyhow!("--core {core}: not a valid host and port"))?;
        let server_name = match &core.host {
            CoreHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
            CoreHost::Name(name) => ServerName::try_from(name.clone())
                .map_err(|_| anyhow::anyhow!("--core {core}: the host is not a valid TLS name"))?,
        };
        let scheme = if core.tls { Scheme::HTTPS } else { Scheme::HTTP };
        Ok(Target { core: core.clone(), scheme, authority, server_name })
    }

    /// The absolute URI of `path` at this core (HTTP/2 sends scheme and authority with each call).
    pub(crate) fn uri(&self, path: &PathAndQuery) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path.clone());
        Uri::from_parts(parts).unwrap_or_default()
    }
}

/// Whether a failed call was refused by the core with REFUSED_STREAM, which HTTP/2 defines as
/// "not processed at all", so it may go to another core.
fn refused_stream(err: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(h2) = current.downcast_ref::<h2::Error>() {
            return h2.is_reset() && h2.is_remote() && h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = current.source();
    }
    false
}

/// Resolves a host name, again every `--resolve-interval`, and keeps its backends in line with
/// the answer; an answer that fails or is empty keeps the backends it had.
async fn resolve_loop(upstream: Weak<Upstream>, target: Arc<Target>) {
    let CoreHost::Name(name) = &target.core.host else { return };
    let mut first = true;
    loop {
        let resolved = resolve(name, target.core.port).await;
        let Some(upstream) = upstream.upgrade() else { return };
        let interval = upstream.shared.balance.resolve_interval;
        let wait = match resolved {
            Ok(addresses) if !addresses.is_empty() => {
                upstream.reconcile(&target, &addresses);
                interval
            }
            Ok(_) => {
                tracing::warn!(core = %target.core, "the core's name resolves to no address");
                interval.min(RESOLVE_RETRY)
            }
            Err(err) => {
                tracing::warn!(core = %target.core, error = %err, "cannot resolve the core's name");
                interval.min(RESOLVE_RETRY)
            }
        };
        if first {
            first = false;
            upstream.unresolved.fetch_sub(1, Ordering::Relaxed);
            upstream.shared.changed.send_replace(());
        }
        drop(upstream);
        tokio::time::sleep(wait).await;
    }
}

/// Every address `host` resolves to with `port`, sorted, without duplicates, at most
/// `MAX_ADDRESSES_PER_NAME`, within `RESOLVE_TIMEOUT`.
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let lookup = tokio::net::lookup_host((host, port));
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {RESOLVE_TIMEOUT:?}")))??;
    let mut addresses: Vec<SocketAddr> = found.collect();
    addresses.sort();
    addresses.dedup();
    addresses.truncate(MAX_ADDRESSES_PER_NAME);
    Ok(addresses)
}

/// The addresses in `resolved` not in `current`, and those in `current` no longer resolved.
fn diff(current: &[SocketAddr], resolved: &[SocketAddr]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let added = resolved.iter().filter(|addr| !current.contains(addr)).copied().collect();
    let removed = current.iter().filter(|addr| !resolved.contains(addr)).copied().collect();
    (added, removed)
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[tokio::test]
    async fn a_name_stands_for_every_address_it_resolves_to() {
        // /etc/hosts names localhost; whatever else it lists, 127.0.0.1 is among them.
        let addresses = resolve("localhost", 50443).await.unwrap();
        assert!(addresses.contains(&addr("127.0.0.1:50443")), "{addresses:?}");
        assert!(addresses.windows(2).all(|pair| pair[0] < pair[1]), "sorted, no duplicates: {addresses:?}");
        let err = resolve("no-such-core.invalid", 1).await.unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    }

    #[test]
    fn a_new_answer_adds_and_removes_only_what_changed() {
        let (a, b, c) = (addr("10.0.0.1:443"), addr("10.0.0.2:443"), addr("10.0.0.3:443"));
        assert_eq!(diff(&[a, b], &[b, c]), (vec![c], vec![a]));
        assert_eq!(diff(&[a, b], &[b, a]), (vec![], vec![]));
        assert_eq!(diff(&[], &[a]), (vec![a], vec![]));
    }

    /// How an in-memory core answers calls (health checks always answer `serving`).
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Behaviour {
        /// OK, trailers-only.
        Answer,
        /// RST_STREAM REFUSED_STREAM, before reading anything.
        Refuse,
        /// Reads the call whole, then resets it (INTERNAL_ERROR): the call reached the core.
        ResetAfterReading,
    }

    /// An in-memory core: an HTTP/2 server (the h2 crate, so it can refuse streams) counting the
    /// calls it received, health checks aside.
    #[derive(Clone)]
    struct FakeCore {
        behaviour: Behaviour,
        serving: bool,
        calls: Arc<AtomicUsize>,
    }

    impl FakeCore {
        fn new(behaviour: Behaviour, serving: bool) -> FakeCore {
            FakeCore { behaviour, serving, calls: Arc::new(AtomicUsize::new(0)) }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        async fn serve(self, io: tokio::io::DuplexStream) {
            let Ok(mut connection) = h2::server::handshake(io).await else { return };
            while let Some(Ok((request, respond))) = connection.accept().await {
                tokio::spawn(self.clone().answer(request, respond));
            }
        }

        async fn answer(self, request: Request<h2::RecvStream>, mut respond: h2::server::SendResponse<Bytes>) {
            let grpc = |status: &str| {
                Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", status)
                    .body(())
                    .unwrap()
            };
            if request.uri().path() == "/grpc.health.v1.Health/Check" {
                let status = if self.serving { 1 } else { 2 };
                let message = tonic_health::pb::HealthCheckResponse { status }.encode_to_vec();
                let mut frame = vec![0, 0, 0, 0, message.len() as u8];
                frame.extend(message);
                let head = Response::builder().header("content-type", "application/grpc").body(()).unwrap();
                let Ok(mut stream) = respond.send_response(head, false) else { return };
                let _ = stream.send_data(frame.into(), false);
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                let _ = stream.send_trailers(trailers);
                return;
            }
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.behaviour {
                Behaviour::Refuse => respond.send_reset(h2::Reason::REFUSED_STREAM),
                Behaviour::ResetAfterReading => {
                    let mut body = request.into_body();
                    while let Some(Ok(_)) = body.data().await {}
                    respond.send_reset(h2::Reason::INTERNAL_ERROR);
                }
                Behaviour::Answer => {
                    let _ = respond.send_response(grpc("0"), true);
                }
            }
        }
    }

    /// A balancer over `cores`, at 127.0.0.1:1, :2, ..., reached in memory; their first health
    /// checks done.
    async fn balancer(cores: &[FakeCore]) -> Arc<Upstream> {
        let by_port: Vec<FakeCore> = cores.to_vec();
        let dial: Dial = Arc::new(move |addr: SocketAddr| {
            let core = by_port[usize::from(addr.port()) - 1].clone();
            Box::pin(async move {
                let (client, server) = tokio::io::duplex(64 * 1024);
                tokio::spawn(core.serve(server));
                Ok(Box::new(client) as Box<dyn crate::backend::Io>)
            })
        });
        let targets: Vec<CoreTarget> =
            (1..=cores.len()).map(|port| CoreTarget::parse(&format!("http://127.0.0.1:{port}")).unwrap()).collect();
        let upstream = Upstream::start(&targets, BalanceSettings::default(), Transport::Custom(dial)).unwrap();
        assert!(upstream.settled(Duration::from_secs(10)).await, "the first health checks end");
        upstream
    }

    async fn call(upstream: &Upstream) -> Result<Sent, GatewayError> {
        let head = Head {
            method: Method::POST,
            path: PathAndQuery::from_static("/podconnect.v1.SessionService/StartSession"),
            headers: HeaderMap::new(),
        };
        upstream.send(head, Bytes::from_static(&[0, 0, 0, 0, 0])).await
    }

    #[tokio::test]
    async fn calls_go_to_the_core_with_the_fewest_outstanding_and_ties_go_in_turn() {
        let cores = [0, 1, 2].map(|_| FakeCore::new(Behaviour::Answer, true));
        let upstream = balancer(&cores).await;
        for _ in 0..9 {
            call(&upstream).await.unwrap();
        }
        assert_eq!(cores.each_ref().map(FakeCore::calls), [3, 3, 3]);
        // Core 1 with calls outstanding gets none while the others have fewer.
        let busy = upstream.backends_now()[0].clone();
        busy.outstanding.fetch_add(5, Ordering::Relaxed);
        for _ in 0..10 {
            call(&upstream).await.unwrap();
        }
        assert_eq!(cores.each_ref().map(FakeCore::calls), [3, 8, 8]);
        busy.outstanding.fetch_sub(5, Ordering::Relaxed);
        let states = upstream.states();
        assert!(states.iter().all(|core| core.serving && core.outstanding == 0), "every call ended");
    }

    #[tokio::test]
    async fn a_stream_the_core_refused_unprocessed_goes_to_another_core() {
        let cores = [FakeCore::new(Behaviour::Refuse, true), FakeCore::new(Behaviour::Answer, true)];
        let upstream = balancer(&cores).await;
        for _ in 0..4 {
            let sent = call(&upstream).await.expect("the other core answers");
            assert_eq!(sent.response.headers()["grpc-status"], "0");
        }
        assert_eq!(cores[1].calls(), 4, "every call was answered by the core that takes them");
        assert!(cores[0].calls() >= 2, "ties go in turn, so the refusing core was tried: {}", cores[0].calls());
    }

    #[tokio::test]
    async fn a_call_the_core_has_read_is_never_sent_again() {
        let cores = [FakeCore::new(Behaviour::ResetAfterReading, true), FakeCore::new(Behaviour::Answer, true)];
        let upstream = balancer(&cores).await;
        let mut failed = 0;
        for _ in 0..4 {
            match call(&upstream).await {
                Ok(_) => {}
                Err(GatewayError::Upstream(_)) => failed += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(failed, cores[0].calls(), "each call the first core read failed, none was repeated");
        assert_eq!(cores[1].calls(), 4 - failed);
        assert!(failed >= 2, "ties go in turn: {failed}");
    }

    #[tokio::test]
    async fn with_no_core_serving_a_call_fails_at_once_saying_why() {
        let cores = [FakeCore::new(Behaviour::Answer, false), FakeCore::new(Behaviour::Answer, false)];
        let upstream = balancer(&cores).await;
        let Err(GatewayError::NoCore(why)) = call(&upstream).await else { panic!("no core serves") };
        assert!(why.contains("0 of 2 core(s) serving") && why.contains("NOT_SERVING"), "{why}");
        assert_eq!(cores[0].calls() + cores[1].calls(), 0);
    }

    #[test]
    fn the_tls_name_is_the_host_as_given() {
        let named = Target::new(&CoreTarget::parse("https://localhost:50443").unwrap()).unwrap();
        assert_eq!(named.server_name, ServerName::try_from("localhost").unwrap());
        assert_eq!(named.uri(&PathAndQuery::from_static("/a.B/C")).to_string(), "https://localhost:50443/a.B/C");
        let ip = Target::new(&CoreTarget::parse("https://[::1]:50443").unwrap()).unwrap();
        assert_eq!(ip.server_name, ServerName::IpAddress("::1".parse::<std::net::IpAddr>().unwrap().into()));
        assert_eq!(ip.authority.as_str(), "[::1]:50443");
    }
}
