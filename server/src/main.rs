//! `podconnect-server`: parses the configuration once, sets up logging, binds the listener and
//! runs the core until SIGINT or SIGTERM. Standard output carries one line, the JSON ready line;
//! everything for people goes to standard error. `podconnect-server dev-assertion` instead prints
//! one device-user assertion from the development issuer.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use server::app::{self, Ephemeral, Ready};
use server::config::{Cli, Command, Config, DevAssertionArgs, LogFormat};
use server::domain::clock::SystemClock;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // One process-wide TLS provider, so every rustls user (tonic, the IPP client) agrees.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::DevAssertion(args)) => return dev_assertion(&args),
        Some(Command::HashPassword) => return hash_password(),
        None => {}
    }
    let config = match Config::resolve(cli, std::env::var("PODCONNECT_OPERATOR_TOKEN").ok()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("podconnect-server: {err:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("podconnect-server: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("podconnect-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.listen))?;
    let ephemeral = Ephemeral::from_config(&config).await?;
    let log_format = config.log_format;
    app::run(config, listener, ephemeral, Arc::new(SystemClock), shutdown_signal()?, |ready| {
        announce(ready, log_format)
    })
    .await
}

/// Prints one assertion for `args.user`, signed by the development issuer under the data folder.
#[allow(clippy::print_stdout)]
fn dev_assertion(args: &DevAssertionArgs) -> ExitCode {
    let assertion = server::identity::dev::DevIssuer::load_or_create(&args.data_dir)
        .and_then(|issuer| issuer.with_audience(&args.audience).issue(&args.user, args.ttl));
    match assertion {
        Ok(assertion) => {
            println!("{assertion}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("podconnect-server dev-assertion: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints the argon2id hash of the password on standard input's first line.
#[allow(clippy::print_stdout)]
fn hash_password() -> ExitCode {
    let mut line = zeroize::Zeroizing::new(String::new());
    let read = std::io::stdin().read_line(&mut line);
    let password = line.trim_end_matches(['\r', '\n']);
    if read.is_err() || password.is_empty() {
        eprintln!(
            "podconnect-server hash-password: give the password on standard input, e.g. `read -rs P; echo \"$P\" | podconnect-server hash-password`"
        );
        return ExitCode::from(2);
    }
    match server::storefront::accounts::hash_password(password.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("podconnect-server hash-password: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Says where the core listens once every listener is bound: one JSON line on standard output for
/// scripts and supervisors (the only thing the core ever writes there), and the same for people on
/// standard error beside the logs.
#[allow(clippy::print_stdout)]
fn announce(ready: &Ready, log_format: LogFormat) {
    // A reader started elsewhere can still open the CA file.
    let dev_ca = ready.dev_ca.as_ref().map(|ca| std::path::absolute(ca).unwrap_or_else(|_| ca.clone()));
    tracing::info!(
        addr = %ready.addr,
        pull_addr = %ready.pull_addr,
        dev_ca = dev_ca.as_ref().map(|ca| ca.display().to_string()),
        storefront = %ready.storefront,
        products = ready.products,
        startup_ms = ready.startup.as_secs_f64() * 1000.0,
        "serving"
    );
    if log_format == LogFormat::Text {
        let scheme = if ready.tls { "https" } else { "http" };
        eprintln!("podconnect-server listening on {scheme}://{}", ready.addr);
        eprintln!("pull links: {}://{}/print-files", if ready.pull_tls { "https" } else { "http" }, ready.pull_addr);
        if let Some(ca) = &dev_ca {
            eprintln!(
                "development CA: {} (for example: grpcurl -cacert {} {} list)",
                ca.display(),
                ca.display(),
                ready.addr
            );
        }
    }
    let line = serde_json::json!({
        "ready": {
            "grpc": ready.addr.to_string(),
            "tls": ready.tls,
            "pull": ready.pull_addr.to_string(),
            "pull_tls": ready.pull_tls,
            "dev_ca": dev_ca.map(|ca| ca.display().to_string()),
        }
    });
    println!("{line}");
}

fn init_logging(config: &Config) {
    // The filter was checked when the configuration was resolved.
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed now, before the server
/// announces itself, so a signal that arrives right after start-up still shuts down gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("shutting down: finishing calls in flight");
    })
}
