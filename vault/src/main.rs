//! `podconnect-vault`: the vault service as its own process. Serves podconnect.vault.v1 over gRPC
//! with mutual TLS only (every caller presents a client certificate from `--client-ca`) on the
//! vault's own SQLite file, with every resource bounded. It holds no key but its TLS identity.
//! Standard output carries one line, the JSON ready line; everything for people goes to standard
//! error, and no log line ever carries an envelope.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tracing_subscriber::EnvFilter;
use vault::{SqliteVault, VaultServer};
use zeroize::Zeroizing;

/// Name of the vault's database file in `--data-dir`.
const DATABASE_FILE: &str = "vault.db";

/// The podconnect vault service: stores the ciphertext of single sign-on by vault address, for
/// the podconnect core, over gRPC with mutual TLS. It never holds or sees a key.
///
/// Every option can also be set with the environment variable shown. Flags win.
#[derive(Debug, Parser)]
#[command(name = "podconnect-vault", version)]
struct Cli {
    /// Address to serve gRPC on (port 0 picks a free port)
    #[arg(long, env = "PODCONNECT_VAULT_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8470")]
    listen: SocketAddr,

    /// Folder of the vault's SQLite database (created 0700 if missing; the file is kept 0600)
    #[arg(long, env = "PODCONNECT_VAULT_DATA_DIR", value_name = "DIR", default_value = ".data/podconnect-vault")]
    data_dir: PathBuf,

    /// The vault's server certificate chain (PEM)
    #[arg(long, env = "PODCONNECT_VAULT_TLS_CERT", value_name = "FILE")]
    tls_cert: PathBuf,

    /// Private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "PODCONNECT_VAULT_TLS_KEY", value_name = "FILE")]
    tls_key: PathBuf,

    /// CA certificates (PEM) the callers' client certificates must chain to. Required: the vault
    /// serves no one without a client certificate, and never without TLS.
    #[arg(long, env = "PODCONNECT_VAULT_CLIENT_CA", value_name = "FILE")]
    client_ca: PathBuf,

    /// Open connections at once; more are closed as soon as they are accepted
    #[arg(long, env = "PODCONNECT_VAULT_MAX_CONNECTIONS", value_name = "N", default_value_t = 64)]
    max_connections: usize,

    /// Calls served at once across all connections; more are refused with RESOURCE_EXHAUSTED
    #[arg(long, env = "PODCONNECT_VAULT_MAX_CONCURRENT_CALLS", value_name = "N", default_value_t = 64)]
    max_concurrent_calls: usize,

    /// A call that takes longer than this ends with CANCELLED, e.g. "5s"
    #[arg(long, env = "PODCONNECT_VAULT_REQUEST_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "5s")]
    request_timeout: Duration,

    /// A new connection must finish its TLS handshake within this, e.g. "10s"
    #[arg(long, env = "PODCONNECT_VAULT_HANDSHAKE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    handshake_timeout: Duration,

    /// On SIGTERM, calls in flight get this long to finish before the process exits, e.g. "10s"
    #[arg(long, env = "PODCONNECT_VAULT_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    shutdown_grace: Duration,

    /// Log format
    #[arg(long, env = "PODCONNECT_VAULT_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. "info" or "vault=debug"
    #[arg(long, env = "PODCONNECT_VAULT_LOG", value_name = "FILTER", default_value = "info")]
    log: String,
}

/// How logs are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    // One process-wide TLS provider, the one tonic's server configuration picks up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    if let Err(err) = check(&cli) {
        eprintln!("podconnect-vault: {err}");
        return ExitCode::from(2);
    }
    let filter = match EnvFilter::try_new(&cli.log) {
        Ok(filter) => filter,
        Err(err) => {
            eprintln!("podconnect-vault: --log {:?} is not a log filter: {err}", cli.log);
            return ExitCode::from(2);
        }
    };
    init_logging(filter, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("podconnect-vault: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("podconnect-vault: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Refuses limits that would leave the vault unbounded or unable to serve.
fn check(cli: &Cli) -> Result<(), String> {
    let counts = [("--max-connections", cli.max_connections), ("--max-concurrent-calls", cli.max_concurrent_calls)];
    for (flag, value) in counts {
        if value == 0 || value > 100_000 {
            return Err(format!("{flag} must be 1 to 100000, not {value}"));
        }
    }
    let times = [
        ("--request-timeout", cli.request_timeout),
        ("--handshake-timeout", cli.handshake_timeout),
        ("--shutdown-grace", cli.shutdown_grace),
    ];
    for (flag, value) in times {
        if value.is_zero() || value > Duration::from_secs(3600) {
            return Err(format!("{flag} must be more than zero and at most 1h"));
        }
    }
    Ok(())
}

async fn serve(cli: Cli) -> Result<(), String> {
    let tls = tls_config(&cli)?;
    let database = cli.data_dir.join(DATABASE_FILE);
    let store = SqliteVault::open(&database).await.map_err(|err| format!("cannot open the vault database: {err}"))?;
    let listener =
        TcpListener::bind(cli.listen).await.map_err(|err| format!("cannot listen on {}: {err}", cli.listen))?;
    let addr = listener.local_addr().map_err(|err| format!("cannot read the listening address: {err}"))?;
    let shutdown = shutdown_signal().map_err(|err| format!("cannot install signal handlers: {err}"))?;

    let limit = tower::ServiceBuilder::new()
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(cli.max_concurrent_calls));
    let calls_per_connection = u32::try_from(cli.max_concurrent_calls).unwrap_or(u32::MAX);
    let router = Server::builder()
        .tls_config(tls)
        .map_err(|err| format!("{}: unusable TLS identity: {err}", cli.tls_cert.display()))?
        .timeout(cli.request_timeout)
        .max_concurrent_streams(calls_per_connection)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .http2_max_header_list_size(16 * 1024)
        .layer(limit)
        .add_service(VaultServer::new(Arc::new(store.clone())).into_service());
    let incoming = LimitedIncoming { listener, slots: Arc::new(Semaphore::new(cli.max_connections)) };

    announce(addr, &database, cli.log_format);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = router.serve_with_incoming_shutdown(incoming, async {
        let _ = stopped.await;
    });
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => served,
        () = shutdown => {
            tracing::info!("shutting down: finishing calls in flight");
            let _ = stop.send(());
            match tokio::time::timeout(cli.shutdown_grace, &mut server).await {
                Ok(served) => served,
                Err(_) => {
                    tracing::warn!(grace = ?cli.shutdown_grace, "calls still in flight after the grace period; closing");
                    Ok(())
                }
            }
        }
    };
    store.close().await;
    served.map_err(|err| format!("serving failed: {err}"))
}

/// The server's TLS: its identity, and client certificates required from `--client-ca`. The
/// files are checked here so a mistake is named at start-up.
fn tls_config(cli: &Cli) -> Result<ServerTlsConfig, String> {
    let cert = read(&cli.tls_cert)?;
    let key = Zeroizing::new(read(&cli.tls_key)?);
    let client_ca = read(&cli.client_ca)?;
    certificates(&cert, &cli.tls_cert)?;
    certificates(&client_ca, &cli.client_ca)?;
    PrivateKeyDer::from_pem_slice(&key)
        .map_err(|_| format!("{}: no usable private key (PEM PKCS#8, PKCS#1 or SEC1)", cli.tls_key.display()))?;
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(&cert, &*key))
        .client_ca_root(Certificate::from_pem(&client_ca))
        .client_auth_optional(false)
        .timeout(cli.handshake_timeout))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

fn certificates(pem: &[u8], path: &Path) -> Result<(), String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{}: invalid PEM: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(())
}

/// Says where the vault listens once it is ready: one JSON line on standard output for scripts
/// and supervisors (the only thing the vault writes there), and the same for people in the log.
#[allow(clippy::print_stdout)]
fn announce(addr: SocketAddr, database: &Path, log_format: LogFormat) {
    tracing::info!(%addr, database = %database.display(), "serving");
    if log_format == LogFormat::Text {
        eprintln!("podconnect-vault listening on https://{addr} (client certificates required)");
    }
    println!("{}", serde_json::json!({ "ready": { "grpc": addr.to_string() } }));
}

fn init_logging(filter: EnvFilter, format: LogFormat) {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed before the vault
/// announces itself, so a signal right after start-up still shuts it down gracefully.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Accepted connections, at most as many at once as there are slots: a connection over the cap
/// is closed as soon as it is accepted, so a flood of connections cannot exhaust the vault.
struct LimitedIncoming {
    listener: TcpListener,
    slots: Arc<Semaphore>,
}

impl Stream for LimitedIncoming {
    type Item = std::io::Result<Limited>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let (stream, peer) = match self.listener.poll_accept(cx) {
                Poll::Ready(Ok(accepted)) => accepted,
                Poll::Ready(Err(err)) => return Poll::Ready(Some(Err(err))),
                Poll::Pending => return Poll::Pending,
            };
            match self.slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let _ = stream.set_nodelay(true);
                    return Poll::Ready(Some(Ok(Limited { stream, _slot: slot })));
                }
                Err(_) => tracing::warn!(%peer, "connection refused: too many open connections"),
            }
        }
    }
}

/// A connection holding one slot until it closes.
struct Limited {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
