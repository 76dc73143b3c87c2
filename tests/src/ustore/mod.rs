//! `UstoreDouble`: a stand-in for an XMPie uStore storefront REST API, served over HTTPS (HTTP/1.1
//! and h2) on loopback, speaking exactly the subset in /work/notes/ustore-spec.md.
//!
//! Tests start it, hand the core its `base_url()`, `storefront_url()`, `store_id()` and CA file, and
//! steer it through `controls()`: latency, throttling ("Too much requests."), token expiry, fail
//! modes (5xx or connections closed unanswered), broken catalog answers (malformed, oversized,
//! slow), render delays and failing proofs. Counters by endpoint label tell what the core called:
//! loginByUrl, login, renew, user, store, currencies, categories, products, search, product,
//! thumbnails, image, draft, item, put-item, delete-item, form, state, save-form, preview-create,
//! preview-poll, preview-download, proof, proof-download, unknown.
//!
//! The fixed store (users, categories, products, dials) is in `fixtures`.

mod api;
pub mod client;
mod controls;
pub mod fixtures;
mod render;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

pub use controls::{Controls, FailMode, OrderItemInfo};

use crate::pki::TestCa;
use controls::{Settings, Shared};

/// At most this many connections are served at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 512;
/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running double; dropping it stops the server and every connection.
pub struct UstoreDouble {
    addr: SocketAddr,
    ca_pem: String,
    controls: Controls,
    server: JoinHandle<()>,
}

/// Settings chosen before the double starts (all but the port can change later through
/// [`Controls`]).
pub struct Builder {
    port: u16,
    settings: Settings,
}

impl Builder {
    /// The port on 127.0.0.1 (default 0, any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// A fixed delay before every answer.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.settings.latency = latency;
        self
    }

    /// Tokens expire this long after their last use (default 20 minutes).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.settings.token_ttl = ttl;
        self
    }

    /// How long previews take (default 150 ms).
    pub fn preview_delay(mut self, delay: Duration) -> Self {
        self.settings.preview_delay = delay;
        self
    }

    /// How long proofs take (default 500 ms).
    pub fn proof_delay(mut self, delay: Duration) -> Self {
        self.settings.proof_delay = delay;
        self
    }

    pub async fn start(self) -> anyhow::Result<UstoreDouble> {
        let ca = TestCa::new("podconnect uStore double CA");
        let leaf = ca.server(&["localhost", "127.0.0.1"]);
        let certs = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .with_context(|| format!("binding the uStore double to 127.0.0.1:{}", self.port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(self.settings));
        let thumbnails: HashMap<&'static str, bytes::Bytes> =
            fixtures::PRODUCTS.iter().map(|p| (p.id, render::thumbnail(p).into())).collect();
        let ctx = Arc::new(api::Ctx {
            shared: shared.clone(),
            base_url: format!("https://127.0.0.1:{}/uStoreRestAPI/", addr.port()),
            storefront_url: storefront_url(addr),
            thumbnails,
        });
        let server = tokio::spawn(serve(listener, TlsAcceptor::from(Arc::new(tls)), ctx));
        Ok(UstoreDouble { addr, ca_pem: ca.cert_pem, controls: Controls { shared }, server })
    }
}

fn storefront_url(addr: SocketAddr) -> String {
    format!("https://127.0.0.1:{}/ustore/{}", addr.port(), fixtures::STORE_FRIENDLY_ID)
}

impl UstoreDouble {
    pub fn builder() -> Builder {
        Builder { port: 0, settings: Settings::default() }
    }

    /// A double on any free port with the default settings.
    pub async fn start() -> anyhow::Result<UstoreDouble> {
        Self::builder().start().await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT/uStoreRestAPI/` (with the trailing slash).
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}/uStoreRestAPI/", self.addr.port())
    }

    /// The storefront URL loginByUrl accepts (`FullURL` must start with it):
    /// `https://127.0.0.1:PORT/ustore/12`.
    pub fn storefront_url(&self) -> String {
        storefront_url(self.addr)
    }

    pub fn store_id(&self) -> &'static str {
        fixtures::STORE_ID
    }

    /// The CA that signed the double's certificate (for localhost and 127.0.0.1), in PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes [`Self::ca_pem`] to `path`, the file the core is told to trust.
    pub fn write_ca(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, &self.ca_pem).with_context(|| format!("writing the CA to {}", path.display()))
    }

    pub fn controls(&self) -> Controls {
        self.controls.clone()
    }

    /// Calls the double over HTTP/1.1 (see [`client::call`] for `target`); `token` goes in
    /// `Authorization: uStore <token>`.
    pub async fn call(
        &self,
        method: http::Method,
        target: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<client::Reply> {
        client::call(self.addr, &self.ca_pem, client::Version::H1, method, target, token, body).await
    }

    /// [`Self::call`] over h2.
    pub async fn call_h2(
        &self,
        method: http::Method,
        target: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<client::Reply> {
        client::call(self.addr, &self.ca_pem, client::Version::H2, method, target, token, body).await
    }
}

impl Drop for UstoreDouble {
    fn drop(&mut self) {
        // The accept loop owns every connection task: aborting it drops them all.
        self.server.abort();
    }
}

/// Accepts connections, each served on its own task in `connections`.
async fn serve(listener: TcpListener, tls: TlsAcceptor, ctx: Arc<api::Ctx>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let down = ctx.shared.lock().settings.fail == Some(FailMode::Down);
                if down || connections.len() >= MAX_CONNECTIONS {
                    drop(tcp);
                    continue;
                }
                connections.spawn(connection(tcp, tls.clone(), ctx.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(tcp: TcpStream, tls: TlsAcceptor, ctx: Arc<api::Ctx>) {
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await else { return };
    // h2 runs each stream on a spawned task: tie those to this connection so none outlives it.
    let (alive, connection_gone) = watch::channel(());
    let builder = auto::Builder::new(ConnectionExecutor(connection_gone));
    let service = service_fn(move |request| api::handle(ctx.clone(), request));
    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
    drop(alive);
}

/// Spawns h2 stream tasks that end when their connection's task ends (its `watch::Sender` drops).
#[derive(Clone)]
struct ConnectionExecutor(watch::Receiver<()>);

impl<F> hyper::rt::Executor<F> for ConnectionExecutor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        let mut gone = self.0.clone();
        TokioExecutor::new().execute(async move {
            tokio::select! {
                _ = future => {}
                _ = gone.changed() => {}
            }
        });
    }
}
