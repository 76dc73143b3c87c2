//! `weblet-gateway`: parses the configuration, binds, announces readiness (one JSON line on
//! standard output), serves until SIGINT or SIGTERM. Everything else lives in the library.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use weblet_gateway::config::{BrowserTls, Cli, Config};
use weblet_gateway::upstream::{Transport, Upstream};
use weblet_gateway::{RouterOptions, backend, router, serve, serve_metrics, tls};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let result = Config::resolve(Cli::parse()).and_then(|config| {
        // One thread: a current-thread runtime, where a call's tasks wake each other without
        // crossing threads; more: tokio's work-stealing pool.
        let mut runtime = if config.worker_threads == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(config.worker_threads);
            builder
        };
        runtime.enable_all().build().context("cannot start the async runtime")?.block_on(run(config))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("weblet-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server_tls = match &config.tls {
        BrowserTls::Files { cert, key } => Some(tls::server_config(cert, key)?),
        BrowserTls::Plaintext => None,
    };
    let core_tls = match (config.cores[0].tls, config.upstream_ca.as_deref()) {
        (true, Some(ca)) => Some(tokio_rustls::TlsConnector::from(tls::core_client_config(ca)?)),
        (true, None) => anyhow::bail!("https:// cores need a CA to trust (--upstream-ca)"),
        (false, _) => None,
    };
    let upstream = Upstream::start(&config.cores, config.balance.clone(), Transport::Tcp { tls: core_tls })?;
    // The first round of connections and health checks, so calls right after the ready line
    // find the cores that are up; a core that is down does not hold the start longer than this.
    let first_round = backend::CONNECT_TIMEOUT + backend::HANDSHAKE_TIMEOUT + config.balance.health_timeout;
    if !upstream.settled(first_round).await {
        tracing::warn!("not every core answered its first health check in time; starting anyway");
    }
    let app = router(RouterOptions {
        upstream: upstream.clone(),
        allowed_origins: config.allowed_origins.clone(),
        max_message_bytes: config.max_message_bytes,
        max_concurrent_calls: config.max_concurrent_calls,
        limits: config.limits.clone(),
        weblet_dir: config.weblet_dir.clone(),
        pull: weblet_gateway::pull::PullForwarder::new(&config.pull_upstream, config.upstream_ca.as_deref())?,
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_listen {
        Some(metrics_addr) => Some(
            tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("cannot listen on {metrics_addr} for metrics (--metrics-listen)"))?,
        ),
        None => None,
    };
    // Handlers first, so a signal right after the ready line is not lost.
    let signal = shutdown_signal()?;
    let (stop, _) = tokio::sync::watch::channel(false);
    let stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    };
    let scheme = if server_tls.is_some() { "https" } else { "http" };
    let metrics_addr = metrics_listener.as_ref().map(tokio::net::TcpListener::local_addr).transpose()?;
    let metrics = match metrics_listener {
        Some(listener) => {
            let served = serve_metrics(listener, app.metrics(), config.limits.clone(), stopped(stop.subscribe()));
            Some(tokio::spawn(served))
        }
        None => None,
    };
    let weblet = config.weblet_dir.as_ref().map_or_else(|| "built in".to_owned(), |dir| dir.display().to_string());
    let cores: Vec<String> = config.cores.iter().map(ToString::to_string).collect();
    let serving = upstream.states().iter().filter(|core| core.serving).count();
    tracing::info!(
        %addr,
        metrics_addr = metrics_addr.map(|a| a.to_string()),
        cores = cores.join(","),
        serving,
        known = upstream.states().len(),
        weblet,
        "gateway ready"
    );
    announce(addr, scheme, metrics_addr);
    let browsers = serve(listener, app, server_tls, config.limits.clone(), stopped(stop.subscribe()));
    let browsers = tokio::spawn(browsers);
    signal.await;
    let _ = stop.send(true);
    if let Some(metrics) = metrics {
        metrics.await??;
    }
    browsers.await?
}

/// Says where the gateway listens once both listeners are bound: one JSON line on standard output
/// for scripts and supervisors (the only thing the gateway writes there), and the same for people
/// on standard error beside the logs.
#[allow(clippy::print_stdout)]
fn announce(addr: std::net::SocketAddr, scheme: &str, metrics_addr: Option<std::net::SocketAddr>) {
    if let Some(metrics_addr) = metrics_addr {
        eprintln!("weblet-gateway metrics on http://{metrics_addr}/metrics");
    }
    eprintln!("weblet-gateway listening on {scheme}://{addr}");
    eprintln!("open {scheme}://localhost:{}/ in a browser", addr.port());
    let line = serde_json::json!({
        "ready": {
            "listen": addr.to_string(),
            "tls": scheme == "https",
            "metrics": metrics_addr.map(|a| a.to_string()),
        }
    });
    println!("{line}");
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}
