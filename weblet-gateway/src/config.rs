//! The gateway's configuration: clap flags with `PODCONNECT_GATEWAY_*` environment variables,
//! resolved once into `Config` with typed fields and the development defaults filled in.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use http::HeaderValue;

/// grpc-web gateway of podconnect: serves the weblet to the printer's browser over HTTPS and
/// forwards its grpc-web calls to the core over gRPC with TLS.
#[derive(Debug, Parser)]
#[command(name = "weblet-gateway", version)]
pub struct Cli {
    /// Address browsers connect to.
    #[arg(long, env = "PODCONNECT_GATEWAY_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,

    /// The core's gRPC address (https://, or http:// for a core run with --insecure-plaintext).
    /// Repeat it, or separate addresses with commas, to balance calls over several cores; a host
    /// name stands for every address it resolves to (resolved again every --resolve-interval).
    #[arg(
        long = "core",
        visible_alias = "upstream",
        env = "PODCONNECT_GATEWAY_UPSTREAM",
        value_delimiter = ',',
        default_value = "https://127.0.0.1:50443",
        value_name = "URL"
    )]
    pub cores: Vec<String>,

    /// How often each core's health is checked (grpc.health.v1 Check on the calls' connection).
    /// A core that answers NOT_SERVING, fails two checks in a row or loses its connection gets no
    /// calls until a check passes again.
    #[arg(long, env = "PODCONNECT_GATEWAY_HEALTH_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub health_interval: Duration,

    /// How long a core may take to answer a health check.
    #[arg(long, env = "PODCONNECT_GATEWAY_HEALTH_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub health_timeout: Duration,

    /// How often host names given with --core are resolved again.
    #[arg(long, env = "PODCONNECT_GATEWAY_RESOLVE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub resolve_interval: Duration,

    /// CA certificate (PEM) trusted for the core [default: <core-data-dir>/tls/dev-ca.pem].
    #[arg(long, env = "PODCONNECT_GATEWAY_UPSTREAM_CA")]
    pub upstream_ca: Option<PathBuf>,

    /// The core's pull-link listener, where printers that pull fetch their documents through the
    /// gateway (`/print-files/...`); trusted with --upstream-ca when https.
    #[arg(long, env = "PODCONNECT_GATEWAY_PULL_UPSTREAM", default_value = "https://127.0.0.1:50480")]
    pub pull_upstream: String,

    /// The core's data folder, where its development CA lives (used for the defaults of
    /// --tls-cert, --tls-key and --upstream-ca).
    #[arg(long, env = "PODCONNECT_GATEWAY_CORE_DATA_DIR", default_value = ".data/podconnect")]
    pub core_data_dir: PathBuf,

    /// Certificate chain (PEM) shown to browsers [default: <core-data-dir>/tls/localhost.pem].
    #[arg(long, env = "PODCONNECT_GATEWAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert [default: <core-data-dir>/tls/localhost.key].
    #[arg(long, env = "PODCONNECT_GATEWAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Serve browsers over plain HTTP instead of HTTPS (development only).
    #[arg(long, env = "PODCONNECT_GATEWAY_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,

    /// An origin (e.g. https://mfd.example:8443) whose pages may call the gateway cross-origin;
    /// repeatable. The weblet served by the gateway itself needs none.
    #[arg(long = "allowed-origin", env = "PODCONNECT_GATEWAY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Largest request message accepted, in bytes (checked from the frame header).
    #[arg(long, env = "PODCONNECT_GATEWAY_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Calls in flight at once (streams included); more are refused at once with RESOURCE_EXHAUSTED.
    /// Keep it at or below the core's --max-calls-per-peer (256): to the core, every browser's
    /// call comes from the gateway's one address.
    #[arg(long, env = "PODCONNECT_GATEWAY_MAX_CONCURRENT_CALLS", default_value_t = 256)]
    pub max_concurrent_calls: usize,

    /// Calls in flight at once from one IP address, so one browser (or attacker) cannot take all
    /// of --max-concurrent-calls; more are refused at once with RESOURCE_EXHAUSTED.
    #[arg(long, env = "PODCONNECT_GATEWAY_MAX_CALLS_PER_PEER", default_value_t = 64)]
    pub max_calls_per_peer: usize,

    /// HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, env = "PODCONNECT_GATEWAY_MAX_STREAMS_PER_CONNECTION", default_value_t = 32)]
    pub max_streams_per_connection: u32,

    /// Largest request header list forwarded to the core, in bytes as HTTP/2 counts it (name +
    /// value + 32 per field); a call over it is refused with RESOURCE_EXHAUSTED, other requests with
    /// 431. Keep it below the core's own limit (16 KiB), which would otherwise reset the connection
    /// every browser's calls share.
    #[arg(long, env = "PODCONNECT_GATEWAY_MAX_HEADER_BYTES", default_value_t = 8 * 1024)]
    pub max_header_bytes: usize,

    /// Time a browser has to finish its TLS handshake.
    #[arg(long, env = "PODCONNECT_GATEWAY_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Duration,

    /// Time to receive a request's headers over HTTP/1.1 (including the wait for the next request
    /// on a kept-alive connection).
    #[arg(long, env = "PODCONNECT_GATEWAY_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub header_timeout: Duration,

    /// Time to receive a call's whole request body; a call still sending after it ends with
    /// DEADLINE_EXCEEDED and frees its slot.
    #[arg(long, env = "PODCONNECT_GATEWAY_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub body_timeout: Duration,

    /// A connection with no request in flight for this long is closed; one that has not sent its
    /// first request is closed after --header-timeout.
    #[arg(long, env = "PODCONNECT_GATEWAY_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,

    /// Interval of HTTP/2 PINGs to browsers; a browser that does not answer one within
    /// --keepalive-timeout is disconnected.
    #[arg(long, env = "PODCONNECT_GATEWAY_KEEPALIVE_INTERVAL", default_value = "20s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub keepalive_interval: Duration,

    /// How long a browser may take to answer an HTTP/2 PING.
    #[arg(long, env = "PODCONNECT_GATEWAY_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub keepalive_timeout: Duration,

    /// On SIGTERM or SIGINT, how long open calls may go on before every connection is closed.
    #[arg(long, env = "PODCONNECT_GATEWAY_SHUTDOWN_GRACE", default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Duration,

    /// Operator listener serving `/metrics` (plain HTTP; keep it on loopback or a management
    /// network), or `off`. The browsers' port answers 404 for `/metrics`.
    #[arg(long, env = "PODCONNECT_GATEWAY_METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    pub metrics_listen: String,

    /// Threads serving browsers and the core. One thread (the default) handles a call's tasks
    /// without cross-thread wake-ups, which measured cheaper per call than a pool and is ample for
    /// forwarding; more threads suit a dedicated many-core gateway host.
    #[arg(long, env = "PODCONNECT_GATEWAY_WORKER_THREADS", default_value_t = 1)]
    pub worker_threads: usize,

    /// Folder of the weblet's built files, served instead of the weblet built into the binary
    /// [default: the built-in weblet]
    #[arg(long, env = "PODCONNECT_GATEWAY_WEBLET_DIR", value_name = "DIR")]
    pub weblet_dir: Option<PathBuf>,
}

/// Browser-facing TLS files, or none.
#[derive(Debug, Clone)]
pub enum BrowserTls {
    Files { cert: PathBuf, key: PathBuf },
    Plaintext,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The cores calls are balanced over; all https or all http.
    pub cores: Vec<CoreTarget>,
    pub balance: BalanceSettings,
    pub upstream_ca: Option<PathBuf>,
    pub pull_upstream: String,
    pub tls: BrowserTls,
    pub allowed_origins: Vec<HeaderValue>,
    pub max_message_bytes: usize,
    pub max_concurrent_calls: usize,
    pub limits: Limits,
    pub metrics_listen: Option<SocketAddr>,
    pub worker_threads: usize,
    /// `None`: the weblet built into the binary.
    pub weblet_dir: Option<PathBuf>,
}

/// One `--core` address: a host (an IP address, or a name that stands for all its addresses) and
/// a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreTarget {
    pub host: CoreHost,
    pub port: u16,
    /// TLS (https://); plaintext HTTP/2 otherwise.
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreHost {
    Ip(IpAddr),
    Name(String),
}

impl CoreTarget {
    /// Parses `https://host:port` or `http://host:port` (the port defaults to 443 or 80).
    pub fn parse(url: &str) -> anyhow::Result<CoreTarget> {
        let uri: http::Uri = url.trim().parse().with_context(|| format!("--core {url:?} is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("--core {url:?} must start with https:// or http://"),
        };
        if uri.path_and_query().is_some_and(|path| path.as_str() != "/") {
            bail!("--core {url:?} must be scheme://host[:port], without a path");
        }
        let host = uri.host().with_context(|| format!("--core {url:?} needs a host"))?;
        let host = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => CoreHost::Ip(ip),
            Err(_) => CoreHost::Name(host.to_ascii_lowercase()),
        };
        Ok(CoreTarget { host, port: uri.port_u16().unwrap_or(if tls { 443 } else { 80 }), tls })
    }

    /// The `host:port` the core is addressed as (the `:authority` of calls and the TLS name's host).
    pub fn authority(&self) -> String {
        match &self.host {
            CoreHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            CoreHost::Ip(ip) => format!("{ip}:{}", self.port),
            CoreHost::Name(name) => format!("{name}:{}", self.port),
        }
    }
}

impl std::fmt::Display for CoreTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", if self.tls { "https" } else { "http" }, self.authority())
    }
}

/// How calls are balanced over the cores and how their health is watched.
#[derive(Debug, Clone)]
pub struct BalanceSettings {
    pub health_interval: Duration,
    pub health_timeout: Duration,
    pub resolve_interval: Duration,
}

impl Default for BalanceSettings {
    /// The defaults of the command line, for embedding and unit tests.
    fn default() -> Self {
        BalanceSettings {
            health_interval: Duration::from_secs(2),
            health_timeout: Duration::from_secs(1),
            resolve_interval: Duration::from_secs(30),
        }
    }
}

/// The bounds on browsers' connections and calls, besides message size and the global call cap.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_calls_per_peer: usize,
    pub max_streams_per_connection: u32,
    pub max_header_bytes: usize,
    pub handshake_timeout: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    /// The defaults of the command line, for embedding and unit tests.
    fn default() -> Self {
        Limits {
            max_calls_per_peer: 64,
            max_streams_per_connection: 32,
            max_header_bytes: 8 * 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(20),
            keepalive_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Config {
    pub fn resolve(cli: Cli) -> anyhow::Result<Config> {
        let dev_tls = cli.core_data_dir.join("tls");
        let tls = if cli.insecure_plaintext {
            BrowserTls::Plaintext
        } else {
            BrowserTls::Files {
                cert: cli.tls_cert.unwrap_or_else(|| dev_tls.join("localhost.pem")),
                key: cli.tls_key.unwrap_or_else(|| dev_tls.join("localhost.key")),
            }
        };
        let cores = parse_cores(&cli.cores)?;
        let upstream_ca = match cli.upstream_ca {
            Some(ca) => Some(ca),
            None if cores[0].tls || cli.pull_upstream.starts_with("https://") => Some(dev_tls.join("dev-ca.pem")),
            None => None,
        };
        let mut allowed_origins = Vec::new();
        for origin in &cli.allowed_origins {
            if origin == "*" || !(origin.starts_with("https://") || origin.starts_with("http://")) {
                bail!("--allowed-origin must be a scheme://host[:port] origin, not {origin:?}");
            }
            let origin = origin.trim_end_matches('/');
            allowed_origins.push(HeaderValue::from_str(origin).with_context(|| format!("bad origin {origin:?}"))?);
        }
        if cli.max_concurrent_calls == 0 || cli.max_message_bytes == 0 {
            bail!("--max-concurrent-calls and --max-message-bytes must be positive");
        }
        if cli.max_calls_per_peer == 0 || cli.max_streams_per_connection == 0 {
            bail!("--max-calls-per-peer and --max-streams-per-connection must be positive");
        }
        if cli.max_header_bytes < 1024 {
            bail!("--max-header-bytes must be at least 1024");
        }
        let timeouts = [
            ("--handshake-timeout", cli.handshake_timeout),
            ("--header-timeout", cli.header_timeout),
            ("--body-timeout", cli.body_timeout),
            ("--idle-timeout", cli.idle_timeout),
            ("--keepalive-interval", cli.keepalive_interval),
            ("--keepalive-timeout", cli.keepalive_timeout),
            ("--health-interval", cli.health_interval),
            ("--health-timeout", cli.health_timeout),
            ("--resolve-interval", cli.resolve_interval),
        ];
        if let Some((flag, _)) = timeouts.iter().find(|(_, value)| value.is_zero()) {
            bail!("{flag} must be longer than zero");
        }
        let metrics_listen = match cli.metrics_listen.as_str() {
            "off" => None,
            addr => {
                Some(addr.parse().with_context(|| format!("--metrics-listen {addr:?} is not an address or `off`"))?)
            }
        };
        if cli.worker_threads == 0 {
            bail!("--worker-threads must be at least 1");
        }
        Ok(Config {
            listen: cli.listen,
            cores,
            balance: BalanceSettings {
                health_interval: cli.health_interval,
                health_timeout: cli.health_timeout,
                resolve_interval: cli.resolve_interval,
            },
            upstream_ca,
            pull_upstream: cli.pull_upstream,
            tls,
            allowed_origins,
            max_message_bytes: cli.max_message_bytes,
            max_concurrent_calls: cli.max_concurrent_calls,
            limits: Limits {
                max_calls_per_peer: cli.max_calls_per_peer,
                max_streams_per_connection: cli.max_streams_per_connection,
                max_header_bytes: cli.max_header_bytes,
                handshake_timeout: cli.handshake_timeout,
                header_timeout: cli.header_timeout,
                body_timeout: cli.body_timeout,
                idle_timeout: cli.idle_timeout,
                keepalive_interval: cli.keepalive_interval,
                keepalive_timeout: cli.keepalive_timeout,
                shutdown_grace: cli.shutdown_grace,
            },
            metrics_listen,
            worker_threads: cli.worker_threads,
            weblet_dir: cli.weblet_dir,
        })
    }
}

/// Most `--core` addresses; each is a connection and a health check of its own.
pub const MAX_CORES: usize = 64;

/// The `--core` values, each `scheme://host[:port]`, duplicates dropped; all must share a scheme.
fn parse_cores(urls: &[String]) -> anyhow::Result<Vec<CoreTarget>> {
    let mut cores: Vec<CoreTarget> = Vec::new();
    for url in urls.iter().filter(|url| !url.trim().is_empty()) {
        let core = CoreTarget::parse(url)?;
        if !cores.contains(&core) {
            cores.push(core);
        }
    }
    let Some(first) = cores.first() else { bail!("--core needs at least one address") };
    if cores.iter().any(|core| core.tls != first.tls) {
        bail!("--core addresses must all be https:// or all http://");
    }
    if cores.len() > MAX_CORES {
        bail!("--core takes at most {MAX_CORES} addresses");
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from([&["weblet-gateway"], args].concat()).unwrap()
    }

    #[test]
    fn cores_are_repeated_or_comma_separated_and_the_old_flag_still_works() {
        let config = Config::resolve(cli(&[
            "--core",
            "https://127.0.0.1:50443,https://localhost:50444",
            "--upstream",
            "https://[::1]:50445",
            "--core",
            "https://127.0.0.1:50443",
        ]))
        .unwrap();
        let cores: Vec<String> = config.cores.iter().map(ToString::to_string).collect();
        assert_eq!(cores, ["https://127.0.0.1:50443", "https://localhost:50444", "https://[::1]:50445"]);
        assert_eq!(config.cores[1].host, CoreHost::Name("localhost".into()));
        assert_eq!(config.cores[2].host, CoreHost::Ip("::1".parse().unwrap()));

        let default = Config::resolve(cli(&[])).unwrap();
        assert_eq!(default.cores, [CoreTarget::parse("https://127.0.0.1:50443").unwrap()]);
        assert_eq!(CoreTarget::parse("http://core.internal").unwrap().port, 80);
    }

    #[test]
    fn bad_core_addresses_are_refused_by_name() {
        for (args, expected) in [
            (&["--core", "grpc://127.0.0.1:1"][..], "must start with https:// or http://"),
            (&["--core", "https://127.0.0.1:1/podconnect"], "without a path"),
            (&["--core", "https://127.0.0.1:1,http://127.0.0.1:2"], "all be https:// or all http://"),
        ] {
            let err = Config::resolve(cli(args)).unwrap_err();
            assert!(format!("{err:#}").contains(expected), "{args:?}: {err:#}");
        }
    }
}
