//! Configuration, parsed once at start-up from flags, environment variables and an optional TOML
//! file (in that order of precedence) into typed values. Secrets come from files or the
//! environment, never from flags (which other users can read in the process list).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::imposition::SheetPolicy;
use crate::domain::session::SessionLimits;
use crate::domain::signin::LoginLimits;
use crate::storefront::customizer::RenderLimits;

/// Default gRPC address of the core.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50443";

/// The podconnect gRPC core: sessions, catalog, customization, rendering, SSO, printing and usage.
///
/// Every option can also be set with the environment variable shown, or in the TOML file given with
/// --config (keys as in `server/podconnect.example.toml`). Flags win over the environment, which
/// wins over the file.
#[derive(Debug, Parser)]
#[command(name = "podconnect-server", version)]
pub struct Cli {
    /// TOML configuration file. Unknown keys are an error.
    #[arg(long, env = "PODCONNECT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to serve gRPC on (port 0 picks a free port) [default: 127.0.0.1:50443]
    #[arg(long, env = "PODCONNECT_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Folder for the development CA, the SQLite database and other state [default: .data/podconnect]
    #[arg(long, env = "PODCONNECT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Server certificate chain (PEM). Without it, a development CA and a localhost certificate are
    /// generated in the data folder on first start.
    #[arg(long, env = "PODCONNECT_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert (PEM, PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "PODCONNECT_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM) that sign the client certificates of internal callers (mTLS).
    #[arg(long, env = "PODCONNECT_CLIENT_CA", value_name = "FILE")]
    pub client_ca: Option<PathBuf>,

    /// Whether callers must present a client certificate signed by --client-ca [default: none,
    /// or optional when --client-ca is set]
    #[arg(long, env = "PODCONNECT_CLIENT_AUTH", value_enum)]
    pub client_auth: Option<ClientAuth>,

    /// Client-certificate names (subject CN or DNS SAN) that count as operators, for operator-only
    /// calls such as UsageService. Repeat the flag or separate with commas.
    #[arg(
        long = "operator-cert-name",
        env = "PODCONNECT_OPERATOR_CERT_NAMES",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub operator_cert_names: Vec<String>,

    /// File holding the operator token, sent as `authorization: Bearer <token>` on operator-only
    /// calls. The token can also come from the PODCONNECT_OPERATOR_TOKEN environment variable.
    #[arg(long, env = "PODCONNECT_OPERATOR_TOKEN_FILE", value_name = "FILE")]
    pub operator_token_file: Option<PathBuf>,

    /// Serve without TLS. Only for local debugging behind another TLS terminator; never on a network.
    #[arg(long, env = "PODCONNECT_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,

    /// Folder of the embedded storefront [default: the sample shop built into the server]
    #[arg(long, env = "PODCONNECT_STOREFRONT_DIR", value_name = "DIR")]
    pub storefront_dir: Option<PathBuf>,

    /// Which storefront backend serves the catalog and customization [default: embedded]
    #[arg(long, env = "PODCONNECT_STOREFRONT", value_name = "KIND")]
    pub storefront: Option<StorefrontKind>,

    /// XMPie uStore: the REST API's base URL, e.g. https://shop.example.com/uStoreRestAPI/
    #[arg(long, env = "PODCONNECT_USTORE_BASE_URL", value_name = "URL")]
    pub ustore_base_url: Option<String>,

    /// XMPie uStore: the store's id (a GUID), sent with registered users' logins
    #[arg(long, env = "PODCONNECT_USTORE_STORE_ID", value_name = "GUID")]
    pub ustore_store_id: Option<String>,

    /// XMPie uStore: the storefront's URL, which anonymous shoppers log in by
    #[arg(long, env = "PODCONNECT_USTORE_STOREFRONT_URL", value_name = "URL")]
    pub ustore_storefront_url: Option<String>,

    /// XMPie uStore: the culture sent as Accept-Language [default: en-US]
    #[arg(long, env = "PODCONNECT_USTORE_CULTURE", value_name = "TAG")]
    pub ustore_culture: Option<String>,

    /// XMPie uStore: CA certificate (PEM) the server's certificate must chain to [default: the system's roots]
    #[arg(long, env = "PODCONNECT_USTORE_CA", value_name = "FILE")]
    pub ustore_ca: Option<PathBuf>,

    /// XMPie uStore: longest wait for one answer, e.g. "10s" [default: 10s]
    #[arg(long, env = "PODCONNECT_USTORE_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub ustore_timeout: Option<Duration>,

    /// A session ends after this long without a call, e.g. "10m" [default: 10m]
    #[arg(long, env = "PODCONNECT_SESSION_IDLE_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub session_idle_timeout: Option<Duration>,

    /// A session ends this long after it started, whatever happens, e.g. "1h" [default: 1h]
    #[arg(long, env = "PODCONNECT_SESSION_ABSOLUTE_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub session_absolute_timeout: Option<Duration>,

    /// How often sessions past their limits are looked for, their data deleted and their end
    /// counted (Redis expires the records themselves), e.g. "30s" [default: 30s]
    #[arg(long, env = "PODCONNECT_SESSION_SWEEP_INTERVAL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub session_sweep_interval: Option<Duration>,

    /// Persistent store URL: sqlite://FILE, or postgres://USER@HOST/DB for several instances
    /// (add ?sslmode=verify-full&sslrootcert=CA.pem for TLS) [default: sqlite://<data-dir>/podconnect.db]
    #[arg(long, env = "PODCONNECT_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Where sessions, drafts, previews, jobs and pull links live: "memory" (one instance) or
    /// redis://HOST:PORT (rediss:// for TLS) shared by every instance; several comma-separated URLs
    /// name the nodes of a Redis Cluster [default: memory]
    #[arg(long, env = "PODCONNECT_EPHEMERAL_STORE", value_name = "memory|URL[,URL...]")]
    pub ephemeral_store: Option<String>,

    /// CA certificates (PEM) trusted for rediss:// servers [default: the system's roots]
    #[arg(long, env = "PODCONNECT_REDIS_CA", value_name = "FILE")]
    pub redis_ca: Option<PathBuf>,

    /// Limit on connecting to Redis and on each of its answers, e.g. "3s" [default: 3s]
    #[arg(long, env = "PODCONNECT_REDIS_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub redis_timeout: Option<Duration>,

    /// Key sealing session records in a shared ephemeral store: every instance must read the same
    /// file (made on first start, 0600) [default: <data-dir>/session-records.key]
    #[arg(long, env = "PODCONNECT_SESSION_KEY_FILE", value_name = "FILE")]
    pub session_key_file: Option<PathBuf>,

    /// This instance's name among those sharing the stores, in job leases and logs [default: the
    /// host name and a random suffix]
    #[arg(long, env = "PODCONNECT_INSTANCE_ID", value_name = "NAME")]
    pub instance_id: Option<String>,

    /// Region this stack serves (e.g. "us", "eu"), recorded in usage events [default: none]
    #[arg(long, env = "PODCONNECT_REGION", value_name = "NAME")]
    pub region: Option<String>,

    /// Calls served at once across all connections; more are refused with RESOURCE_EXHAUSTED [default: 512]
    #[arg(long, env = "PODCONNECT_MAX_CONCURRENT_CALLS", value_name = "N")]
    pub max_concurrent_calls: Option<usize>,

    /// Previews and PDFs rendered at the same time [default: the number of CPU cores]
    #[arg(long, env = "PODCONNECT_MAX_CONCURRENT_RENDERS", value_name = "N")]
    pub max_concurrent_renders: Option<usize>,

    /// How long a render waits for a free renderer before RESOURCE_EXHAUSTED, e.g. "5s" [default: 5s]
    #[arg(long, env = "PODCONNECT_RENDER_WAIT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub render_wait: Option<Duration>,

    /// TOML file of devices to register at start-up (`[[device]]` entries, see
    /// `server/devices.example.toml`)
    #[arg(long, env = "PODCONNECT_DEVICES", value_name = "FILE")]
    pub devices: Option<PathBuf>,

    /// Refuse sessions from devices that are not registered (otherwise they print to the spool folder)
    #[arg(long, env = "PODCONNECT_REQUIRE_REGISTERED_DEVICES")]
    pub require_registered_devices: bool,

    /// Folder the spool printer writes documents to [default: <data-dir>/spool]
    #[arg(long, env = "PODCONNECT_SPOOL_DIR", value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// How long the spool printer takes to "print" a job, e.g. "2s" [default: 2s]
    #[arg(long, env = "PODCONNECT_SPOOL_PRINT_TIME", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub spool_print_time: Option<Duration>,

    /// Address of the pull-link server, where pulling printers download documents [default: 127.0.0.1:50480]
    #[arg(long, env = "PODCONNECT_PULL_LISTEN", value_name = "ADDR")]
    pub pull_listen: Option<SocketAddr>,

    /// Base URL of pull links as printers reach them [default: https://<pull-listen>/print-files]
    #[arg(long, env = "PODCONNECT_PULL_BASE_URL", value_name = "URL")]
    pub pull_base_url: Option<String>,

    /// Serve pull links without TLS, for printers that cannot fetch over HTTPS
    #[arg(long, env = "PODCONNECT_PULL_PLAINTEXT")]
    pub pull_plaintext: bool,

    /// How long the core waits for an IPP printer to answer one request, e.g. "30s"; a printer
    /// that hangs longer counts as unreachable [default: 30s]
    #[arg(long, env = "PODCONNECT_PRINTER_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub printer_timeout: Option<Duration>,

    /// How long a pull link works, e.g. "5m" [default: 5m]
    #[arg(long, env = "PODCONNECT_PULL_LINK_TTL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub pull_link_ttl: Option<Duration>,

    /// How often a printer is asked about a running job, e.g. "1s" [default: 1s]
    #[arg(long, env = "PODCONNECT_JOB_POLL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub job_poll: Option<Duration>,

    /// A job that has not ended by then is canceled and reported aborted, e.g. "10m" [default: 10m]
    #[arg(long, env = "PODCONNECT_JOB_DEADLINE", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub job_deadline: Option<Duration>,

    /// How long a running job's follower may go without renewing its lease before another
    /// instance takes the job over, e.g. "6s" [default: 6s]
    #[arg(long, env = "PODCONNECT_JOB_LEASE", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub job_lease: Option<Duration>,

    /// Media keywords imposition prefers, in order, comma separated: a product prints on the
    /// first loaded sheet it fits at true size [default:
    /// iso_a4_210x297mm,na_letter_8.5x11in,iso_a3_297x420mm,na_ledger_11x17in]
    #[arg(long, env = "PODCONNECT_SHEET_PREFERENCE", value_delimiter = ',', value_name = "MEDIA,...")]
    pub sheet_preference: Option<Vec<String>>,

    /// The edge of a sheet printers cannot print on, in millimetres; imposition keeps pieces
    /// and cut marks inside it [default: 4.2]
    #[arg(long, env = "PODCONNECT_SHEET_MARGIN", value_name = "MM")]
    pub sheet_margin: Option<f64>,

    // Connection and call limits (issue 17): kept together.
    /// Concurrent calls one peer address may have in flight; more are refused with
    /// RESOURCE_EXHAUSTED [default: 256]
    #[arg(long, env = "PODCONNECT_MAX_CALLS_PER_PEER", value_name = "N")]
    pub max_calls_per_peer: Option<usize>,

    /// Concurrent HTTP/2 streams one connection may open [default: 256]
    #[arg(long, env = "PODCONNECT_MAX_STREAMS_PER_CONNECTION", value_name = "N")]
    pub max_streams_per_connection: Option<u32>,

    /// Open connections in total on each listener; more are closed at once [default: 4096]
    #[arg(long, env = "PODCONNECT_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Open connections from one peer address on each listener [default: 256]
    #[arg(long, env = "PODCONNECT_MAX_CONNECTIONS_PER_PEER", value_name = "N")]
    pub max_connections_per_peer: Option<usize>,

    /// A call's request (headers and every message) must arrive within this, or the call ends
    /// with DEADLINE_EXCEEDED, e.g. "10s" [default: 10s]
    #[arg(long, env = "PODCONNECT_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,

    /// A new connection must finish its TLS handshake and start speaking within this, e.g. "10s"
    /// [default: 10s]
    #[arg(long, env = "PODCONNECT_HANDSHAKE_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub handshake_timeout: Option<Duration>,

    /// A connection with no call in flight for this long is closed, e.g. "5m" [default: 5m]
    #[arg(long, env = "PODCONNECT_IDLE_CONNECTION_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub idle_connection_timeout: Option<Duration>,

    /// How often an HTTP/2 connection is pinged to find dead peers, e.g. "30s" [default: 30s]
    #[arg(long, env = "PODCONNECT_KEEPALIVE_INTERVAL", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub keepalive_interval: Option<Duration>,

    /// A peer that does not answer a ping within this is disconnected, e.g. "10s" [default: 10s]
    #[arg(long, env = "PODCONNECT_KEEPALIVE_TIMEOUT", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub keepalive_timeout: Option<Duration>,

    /// On SIGTERM, calls in flight get this long to finish before every connection is closed,
    /// e.g. "10s" [default: 10s]
    #[arg(long, env = "PODCONNECT_SHUTDOWN_GRACE", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Option<Duration>,

    /// Sessions open at once on one device; starting another closes the device's least recently
    /// used one [default: 32]
    #[arg(long, env = "PODCONNECT_MAX_SESSIONS_PER_DEVICE", value_name = "N")]
    pub max_sessions_per_device: Option<usize>,

    /// Sessions open at once on this server; beyond it StartSession is refused with
    /// RESOURCE_EXHAUSTED [default: 100000, about 100 MB]
    #[arg(long, env = "PODCONNECT_MAX_SESSIONS", value_name = "N")]
    pub max_sessions: Option<usize>,

    // Device-user assertions (issue 12): kept together.
    /// The `iss` device-user assertions must carry [default: podconnect-dev-issuer, the development
    /// issuer, when no key set is configured]
    #[arg(long, env = "PODCONNECT_ASSERTION_ISSUER", value_name = "ISSUER")]
    pub assertion_issuer: Option<String>,

    /// The `aud` device-user assertions must carry [default: podconnect]
    #[arg(long, env = "PODCONNECT_ASSERTION_AUDIENCE", value_name = "AUDIENCE")]
    pub assertion_audience: Option<String>,

    /// JWKS file with the keys that sign device-user assertions [default: the development issuer's
    /// key under the data folder]
    #[arg(long, env = "PODCONNECT_ASSERTION_JWKS_FILE", value_name = "FILE", conflicts_with = "assertion_jwks_url")]
    pub assertion_jwks_file: Option<PathBuf>,

    /// https URL of the JWKS with the keys that sign device-user assertions (fetched at start and
    /// again when an assertion names an unknown key, at most once a minute)
    #[arg(long, env = "PODCONNECT_ASSERTION_JWKS_URL", value_name = "URL")]
    pub assertion_jwks_url: Option<String>,

    /// CA certificates (PEM) that --assertion-jwks-url's server certificate must chain to
    /// [default: the system's trusted roots]
    #[arg(long, env = "PODCONNECT_ASSERTION_JWKS_CA", value_name = "FILE")]
    pub assertion_jwks_ca: Option<PathBuf>,

    /// Log format
    #[arg(long, env = "PODCONNECT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter in tracing's EnvFilter syntax, e.g. "info" or "server=debug" [default: info]
    #[arg(long, env = "PODCONNECT_LOG", value_name = "FILTER")]
    pub log: Option<String>,

    /// The SSO manager's key file (versioned key-encryption keys; mode 0600, never in the
    /// database) [default: <data-dir>/sso-keys.json, created on first start]
    #[arg(long, env = "PODCONNECT_SSO_KEY_FILE", value_name = "FILE")]
    pub sso_key_file: Option<PathBuf>,

    /// The vault service to keep SSO ciphertext in, e.g. https://vault.internal:8470; without it
    /// the vault is a table in the database
    #[arg(long, env = "PODCONNECT_VAULT_URL", value_name = "URL")]
    pub vault_url: Option<String>,

    /// CA certificate (PEM) the vault service's certificate must chain to
    #[arg(long, env = "PODCONNECT_VAULT_CA", value_name = "FILE")]
    pub vault_ca: Option<PathBuf>,

    /// Client certificate (PEM) the core presents to the vault service
    #[arg(long, env = "PODCONNECT_VAULT_CLIENT_CERT", value_name = "FILE")]
    pub vault_client_cert: Option<PathBuf>,

    /// Private key (PEM) of the vault client certificate
    #[arg(long, env = "PODCONNECT_VAULT_CLIENT_KEY", value_name = "FILE")]
    pub vault_client_key: Option<PathBuf>,

    /// A tool to run instead of the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tools the binary runs instead of the server.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prints one device-user assertion signed by the development issuer (the key under the data
    /// folder, created if missing): for tests and trying single sign-on with a core that has no
    /// JWKS configured.
    DevAssertion(DevAssertionArgs),
    /// Reads a password from standard input (one line) and prints its argon2id hash, for a
    /// storefront's accounts.toml.
    HashPassword,
}

#[derive(Debug, Args)]
pub struct DevAssertionArgs {
    /// The data folder of the core that will check the assertion
    #[arg(long, env = "PODCONNECT_DATA_DIR", value_name = "DIR", default_value = ".data/podconnect")]
    pub data_dir: PathBuf,
    /// The device user the assertion names (its `sub`)
    #[arg(long, value_name = "NAME")]
    pub user: String,
    /// How long the assertion is valid, e.g. "5m" (at most a day)
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION", default_value = "5m")]
    pub ttl: Duration,
    /// The `aud` of the assertion: the core's assertion audience
    #[arg(long, env = "PODCONNECT_ASSERTION_AUDIENCE", value_name = "AUDIENCE", default_value = "podconnect")]
    pub audience: String,
}

/// Client-certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificates are asked for.
    None,
    /// A certificate is verified when presented; callers without one are still served.
    Optional,
    /// Every connection must present a certificate signed by --client-ca.
    Required,
}

/// How logs are written (to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The TOML file. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    max_concurrent_calls: Option<usize>,
    #[serde(default)]
    render: FileRender,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    operator: FileOperator,
    #[serde(default)]
    sessions: FileSessions,
    #[serde(default)]
    storefront: FileStorefront,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    store: FileStore,
    #[serde(default)]
    log: FileLog,
    #[serde(default)]
    connections: FileConnections,
    #[serde(default)]
    printing: FilePrinting,
    #[serde(default)]
    pull: FilePull,
    #[serde(default)]
    assertions: FileAssertions,
    #[serde(default)]
    sso: FileSso,
    #[serde(default)]
    login: FileLogin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSso {
    key_file: Option<PathBuf>,
    rotate_after_seals: Option<u64>,
    vault_url: Option<String>,
    vault_ca: Option<PathBuf>,
    vault_client_cert: Option<PathBuf>,
    vault_client_key: Option<PathBuf>,
    vault_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLogin {
    max_failures_per_device: Option<usize>,
    max_failures_per_account: Option<usize>,
    failure_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    client_auth: Option<ClientAuth>,
    insecure_plaintext: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRender {
    max_concurrent: Option<usize>,
    wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOperator {
    cert_names: Option<Vec<String>>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSessions {
    idle_timeout: Option<String>,
    absolute_timeout: Option<String>,
    max_per_device: Option<usize>,
    max_total: Option<usize>,
    sweep_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConnections {
    max_calls_per_peer: Option<usize>,
    max_streams_per_connection: Option<u32>,
    max: Option<usize>,
    max_per_peer: Option<usize>,
    request_timeout: Option<String>,
    handshake_timeout: Option<String>,
    idle_timeout: Option<String>,
    keepalive_interval: Option<String>,
    keepalive_timeout: Option<String>,
    shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePrinting {
    devices: Option<PathBuf>,
    require_registered_devices: Option<bool>,
    spool_dir: Option<PathBuf>,
    spool_print_time: Option<String>,
    printer_timeout: Option<String>,
    job_poll: Option<String>,
    job_deadline: Option<String>,
    job_lease: Option<String>,
    sheet_preference: Option<Vec<String>>,
    sheet_margin: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePull {
    listen: Option<SocketAddr>,
    base_url: Option<String>,
    plaintext: Option<bool>,
    link_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAssertions {
    issuer: Option<String>,
    audience: Option<String>,
    jwks_file: Option<PathBuf>,
    jwks_url: Option<String>,
    jwks_ca: Option<PathBuf>,
    jwks_refresh_min: Option<String>,
    leeway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStorefront {
    kind: Option<StorefrontKind>,
    dir: Option<PathBuf>,
    #[serde(default)]
    ustore: FileUstore,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUstore {
    base_url: Option<String>,
    store_id: Option<String>,
    storefront_url: Option<String>,
    culture: Option<String>,
    ca: Option<PathBuf>,
    timeout: Option<String>,
    connect_timeout: Option<String>,
    preview_timeout: Option<String>,
    proof_timeout: Option<String>,
    cache_ttl: Option<String>,
    renew_after: Option<String>,
    breaker_failures: Option<u32>,
    breaker_cooldown: Option<String>,
}

/// The storefront backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorefrontKind {
    /// The embedded shop (the sample, or a folder).
    Embedded,
    /// An XMPie uStore storefront over its REST API.
    Ustore,
}

/// How the core talks to an XMPie uStore storefront.
#[derive(Debug, Clone)]
pub struct UstoreSettings {
    /// The REST API's base, ending in `/`.
    pub base_url: reqwest::Url,
    /// The store's GUID.
    pub store_id: String,
    /// The storefront page anonymous shoppers log in by (`loginByUrl`).
    pub storefront_url: String,
    /// Sent as `Accept-Language`.
    pub culture: String,
    pub ca_file: Option<PathBuf>,
    /// One answer, headers and body.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// A preview, from asking to the last image downloaded.
    pub preview_timeout: Duration,
    /// A proof (the print-ready PDF), from asking to the file downloaded.
    pub proof_timeout: Duration,
    /// How long anonymous catalog answers are reused.
    pub cache_ttl: Duration,
    /// A token older than this is renewed before it is used.
    pub renew_after: Duration,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the open breaker refuses calls before one is let through to probe.
    pub breaker_cooldown: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStore {
    ephemeral: Option<String>,
    redis_timeout: Option<String>,
    redis_ca: Option<PathBuf>,
    session_key_file: Option<PathBuf>,
    instance_id: Option<String>,
    region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    format: Option<LogFormat>,
    filter: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub transport: Transport,
    pub operators: OperatorAuth,
    pub sessions: SessionLimits,
    /// Between two sweeps for ended sessions.
    pub session_sweep: Duration,
    /// `None`: the sample shop built into the binary.
    pub storefront_dir: Option<PathBuf>,
    /// `Some`: the catalog and customization come from XMPie uStore instead of the embedded shop.
    pub ustore: Option<UstoreSettings>,
    pub database_url: String,
    pub ephemeral: EphemeralBackend,
    /// This instance's name among those sharing the stores.
    pub instance_id: String,
    /// The region this stack serves, recorded in usage events.
    pub region: Option<String>,
    pub max_concurrent_calls: usize,
    pub connections: ConnectionLimits,
    pub render: RenderLimits,
    pub printing: PrintingSettings,
    pub assertions: AssertionSettings,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub sso: SsoSettings,
    pub login: LoginLimits,
}

/// Where the ephemeral store lives.
#[derive(Debug, Clone)]
pub enum EphemeralBackend {
    /// In this process: one instance (the embedded default).
    Memory,
    /// Redis, shared by every instance; session records are sealed with the key in `key_file`.
    Redis { settings: crate::store::redis::RedisSettings, key_file: PathBuf },
}

/// Where the SSO manager keeps its keys and the vault its ciphertext.
#[derive(Debug, Clone)]
pub struct SsoSettings {
    pub key_file: PathBuf,
    /// Seals one key version may make before a new one is created.
    pub rotate_after_seals: u64,
    pub vault: VaultBackend,
}

/// Where the vault lives.
#[derive(Debug, Clone)]
pub enum VaultBackend {
    /// A table in the core's persistent store (the embedded default).
    Database,
    /// The vault service, over gRPC with mutual TLS.
    Service { url: String, ca: PathBuf, client_cert: PathBuf, client_key: PathBuf, timeout: Duration },
}

/// How connections and calls are bounded on the gRPC and pull-link listeners.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_calls_per_peer: usize,
    pub max_streams_per_connection: u32,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub request_timeout: Duration,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Devices, delivery and job following.
#[derive(Debug, Clone)]
pub struct PrintingSettings {
    pub devices_file: Option<PathBuf>,
    pub require_registered_devices: bool,
    pub spool_dir: PathBuf,
    pub spool_print_time: Duration,
    pub pull_listen: SocketAddr,
    /// `None`: derived from the pull listener's bound address.
    pub pull_base_url: Option<String>,
    pub pull_plaintext: bool,
    pub pull_link_ttl: Duration,
    pub job_poll: Duration,
    pub job_deadline: Duration,
    pub job_lease: Duration,
    /// Longest wait for one answer of an IPP printer.
    pub printer_timeout: Duration,
    /// Which sheets imposition prefers, and the margin it keeps.
    pub sheets: SheetPolicy,
}

/// How device-user assertions (JWTs from the workplace's authentication solution) are checked.
#[derive(Debug, Clone)]
pub struct AssertionSettings {
    /// The one `iss` accepted.
    pub issuer: String,
    /// The `aud` that names this server.
    pub audience: String,
    pub keys: AssertionKeys,
    /// Clock skew allowed on `exp`, `nbf` and `iat`; at most [`MAX_ASSERTION_LEEWAY`].
    pub leeway: Duration,
}

/// The largest clock skew an assertion's times may have.
pub const MAX_ASSERTION_LEEWAY: Duration = Duration::from_secs(30);

/// Where the keys that sign assertions come from.
#[derive(Debug, Clone)]
pub enum AssertionKeys {
    /// The development issuer's key under the data folder (the embedded default).
    Dev,
    /// A JWKS file, read once at start.
    File(PathBuf),
    /// A JWKS fetched over https, cached, and fetched again on an unknown key id at most once per
    /// `refresh_min`.
    Url { url: reqwest::Url, ca_file: Option<PathBuf>, refresh_min: Duration },
}

/// Whether and how the listener speaks TLS.
#[derive(Debug, Clone)]
pub enum Transport {
    Tls(TlsSettings),
    /// Only with --insecure-plaintext.
    Plaintext,
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub identity: Identity,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// Where the server certificate comes from.
#[derive(Debug, Clone)]
pub enum Identity {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Generated on first start under `<data_dir>/tls`.
    Development,
}

/// Who counts as an operator.
#[derive(Clone, Default)]
pub struct OperatorAuth {
    /// SHA-256 of the operator token; the token itself is not kept.
    pub token_sha256: Option<[u8; 32]>,
    pub cert_names: Vec<String>,
}

impl std::fmt::Debug for OperatorAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorAuth")
            .field("token", &self.token_sha256.map(|_| "[redacted]"))
            .field("cert_names", &self.cert_names)
            .finish()
    }
}

impl Config {
    /// Resolves flags (with their environment variables already applied by clap), the file they
    /// name, and the operator token from the environment, into a checked configuration.
    pub fn resolve(cli: Cli, operator_token_env: Option<String>) -> anyhow::Result<Config> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("invalid configuration file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let connections = resolve_connections(&cli, &file.connections)?;
        let assertions = resolve_assertions(&cli, &file.assertions)?;
        let data_dir = cli.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from(".data/podconnect"));
        let plaintext = cli.insecure_plaintext || file.tls.insecure_plaintext.unwrap_or(false);
        let printing = resolve_printing(&cli, &file.printing, &file.pull, &data_dir, plaintext)?;
        let sso = resolve_sso(&cli, &file.sso, &data_dir)?;
        let login = resolve_login(&file.login)?;
        let ustore = resolve_ustore(&cli, &file.storefront)?;

        let cert = cli.tls_cert.or(file.tls.cert);
        let key = cli.tls_key.or(file.tls.key);
        let client_ca = cli.client_ca.or(file.tls.client_ca);
        let client_auth = cli.client_auth.or(file.tls.client_auth).unwrap_or(if client_ca.is_some() {
            ClientAuth::Optional
        } else {
            ClientAuth::None
        });

        let transport = if plaintext {
            ensure!(
                cert.is_none() && key.is_none() && client_ca.is_none(),
                "--insecure-plaintext cannot be combined with TLS certificate options"
            );
            Transport::Plaintext
        } else {
            let identity = match (cert, key) {
                (Some(cert), Some(key)) => Identity::Files { cert, key },
                (None, None) => Identity::Development,
                _ => bail!("a TLS certificate needs its key: set both tls cert and tls key, or neither"),
            };
            ensure!(
                client_auth == ClientAuth::None || client_ca.is_some(),
                "--client-auth {} needs --client-ca to verify certificates against",
                client_auth.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
            );
            Transport::Tls(TlsSettings { identity, client_ca, client_auth })
        };

        let cert_names = if cli.operator_cert_names.is_empty() {
            file.operator.cert_names.unwrap_or_default()
        } else {
            cli.operator_cert_names
        };
        ensure!(
            cert_names.is_empty() || matches!(&transport, Transport::Tls(t) if t.client_auth != ClientAuth::None),
            "operator certificate names need client certificates: set --client-ca and --client-auth optional or required"
        );
        let token = match (cli.operator_token_file.or(file.operator.token_file), operator_token_env) {
            (Some(path), _) => Some(read_secret(&path)?),
            (None, Some(env)) if !env.trim().is_empty() => Some(env.trim().to_owned()),
            _ => None,
        };
        if let Some(token) = &token {
            ensure!(token.len() >= 32, "the operator token must be at least 32 characters long");
        }
        let operators = OperatorAuth { token_sha256: token.map(|t| Sha256::digest(t.as_bytes()).into()), cert_names };

        let idle = match cli.session_idle_timeout {
            Some(d) => d,
            None => parse_duration(file.sessions.idle_timeout.as_deref(), "sessions.idle_timeout", "10m")?,
        };
        let absolute = match cli.session_absolute_timeout {
            Some(d) => d,
            None => parse_duration(file.sessions.absolute_timeout.as_deref(), "sessions.absolute_timeout", "1h")?,
        };
        ensure!(!idle.is_zero() && !absolute.is_zero(), "session timeouts must be longer than zero");
        let sessions = SessionLimits {
            idle,
            absolute,
            max_per_device: cli.max_sessions_per_device.or(file.sessions.max_per_device).unwrap_or(32),
            max_total: cli.max_sessions.or(file.sessions.max_total).unwrap_or(100_000),
        };
        ensure!(
            sessions.max_per_device > 0 && sessions.max_total > 0,
            "session caps (max sessions per device, max sessions) must be at least 1"
        );

        let session_sweep = match cli.session_sweep_interval {
            Some(d) => d,
            None => parse_duration(file.sessions.sweep_interval.as_deref(), "sessions.sweep_interval", "30s")?,
        };
        ensure!(!session_sweep.is_zero(), "the session sweep interval must be longer than zero");
        let database_url = cli
            .database_url
            .or(file.database.url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("podconnect.db").display()));
        ensure!(
            ["sqlite:", "postgres://", "postgresql://"].iter().any(|scheme| database_url.starts_with(scheme)),
            "the database URL must start with sqlite:, postgres:// or postgresql://"
        );
        let ephemeral = match cli.ephemeral_store.or(file.store.ephemeral).as_deref().map(str::trim) {
            None | Some("memory") => EphemeralBackend::Memory,
            Some(list) => {
                let urls: Vec<String> =
                    list.split(',').map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
                ensure!(
                    !urls.is_empty() && urls.iter().all(|u| u.starts_with("redis://") || u.starts_with("rediss://")),
                    "the ephemeral store is \"memory\" or redis:// (or rediss://) URLs separated by commas"
                );
                let timeout = match cli.redis_timeout {
                    Some(d) => d,
                    None => parse_duration(file.store.redis_timeout.as_deref(), "store.redis_timeout", "3s")?,
                };
                ensure!(!timeout.is_zero(), "the Redis timeout must be longer than zero");
                let key_file = cli
                    .session_key_file
                    .or(file.store.session_key_file)
                    .unwrap_or_else(|| data_dir.join("session-records.key"));
                let ca_pem = match cli.redis_ca.or(file.store.redis_ca) {
                    Some(path) => Some(
                        std::fs::read(&path).with_context(|| format!("cannot read the Redis CA {}", path.display()))?,
                    ),
                    None => None,
                };
                let settings = crate::store::redis::RedisSettings { urls, timeout, ca_pem };
                EphemeralBackend::Redis { settings, key_file }
            }
        };
        let instance_id = match cli.instance_id.or(file.store.instance_id) {
            Some(id) => {
                ensure!(
                    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()),
                    "the instance id is 1 to 64 visible ASCII characters"
                );
                id
            }
            None => default_instance_id(),
        };
        let region = cli.region.or(file.store.region).filter(|r| !r.trim().is_empty());
        if let Some(region) = &region {
            ensure!(
                region.len() <= 32 && region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "the region is up to 32 letters, digits and dashes, e.g. \"us\" or \"eu-west\""
            );
        }
        let log_filter = cli.log.or(file.log.filter).unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_filter).with_context(|| {
            format!("log filter \"{log_filter}\" is not valid; try \"info\" or \"info,server=debug\"")
        })?;
        let max_concurrent_calls = cli.max_concurrent_calls.or(file.max_concurrent_calls).unwrap_or(512);
        ensure!(max_concurrent_calls > 0, "max concurrent calls must be at least 1");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let render = RenderLimits {
            concurrent: cli.max_concurrent_renders.or(file.render.max_concurrent).unwrap_or(cores),
            wait: match cli.render_wait {
                Some(wait) => wait,
                None => parse_duration(file.render.wait.as_deref(), "render.wait", "5s")?,
            },
        };
        ensure!(render.concurrent > 0, "max concurrent renders must be at least 1");
        let storefront_dir = cli.storefront_dir.or(file.storefront.dir);
        ensure!(
            ustore.is_none() || storefront_dir.is_none(),
            "a storefront folder is for the embedded storefront; with uStore, leave it out"
        );
        Ok(Config {
            listen: cli.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            data_dir,
            transport,
            operators,
            sessions,
            session_sweep,
            storefront_dir,
            ustore,
            database_url,
            ephemeral,
            instance_id,
            region,
            max_concurrent_calls,
            connections,
            render,
            printing,
            assertions,
            log_format: cli.log_format.or(file.log.format).unwrap_or(LogFormat::Text),
            log_filter,
            sso,
            login,
        })
    }
}

/// The host name with a random suffix: unique among instances, and telling in a log.
fn default_instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(48).collect();
    let suffix = hex::encode(crate::domain::crypto::random_bytes::<4>());
    if host.is_empty() { suffix } else { format!("{host}-{suffix}") }
}

/// The SSO key file and vault, from flags or the `[sso]` table.
fn resolve_sso(cli: &Cli, file: &FileSso, data_dir: &Path) -> anyhow::Result<SsoSettings> {
    let key_file = cli.sso_key_file.clone().or(file.key_file.clone()).unwrap_or_else(|| data_dir.join("sso-keys.json"));
    // Far below the 2^32 seals NIST SP 800-38D allows one AES-GCM key with random nonces.
    let rotate_after_seals = file.rotate_after_seals.unwrap_or(1 << 30);
    ensure!(
        (1..=1u64 << 31).contains(&rotate_after_seals),
        "sso.rotate_after_seals must be 1 to 2147483648 (AES-GCM allows one key at most 2^32 random nonces)"
    );
    let url = cli.vault_url.clone().or(file.vault_url.clone());
    let vault = match url {
        None => {
            let certificates = [
                &cli.vault_ca,
                &cli.vault_client_cert,
                &cli.vault_client_key,
                &file.vault_ca,
                &file.vault_client_cert,
                &file.vault_client_key,
            ];
            ensure!(
                certificates.iter().all(|path| path.is_none()),
                "vault certificates are set but no vault URL: set sso.vault_url (--vault-url) or remove them"
            );
            VaultBackend::Database
        }
        Some(url) => {
            ensure!(
                url.starts_with("https://"),
                "the vault URL must start with https:// (it is always reached over TLS)"
            );
            let need = |flag: Option<&PathBuf>, key: Option<&PathBuf>, name: &str| {
                flag.or(key)
                    .cloned()
                    .with_context(|| format!("a vault URL needs sso.{name} (--{})", name.replace('_', "-")))
            };
            VaultBackend::Service {
                url,
                ca: need(cli.vault_ca.as_ref(), file.vault_ca.as_ref(), "vault_ca")?,
                client_cert: need(
                    cli.vault_client_cert.as_ref(),
                    file.vault_client_cert.as_ref(),
                    "vault_client_cert",
                )?,
                client_key: need(cli.vault_client_key.as_ref(), file.vault_client_key.as_ref(), "vault_client_key")?,
                timeout: parse_duration(file.vault_timeout.as_deref(), "sso.vault_timeout", "5s")?,
            }
        }
    };
    Ok(SsoSettings { key_file, rotate_after_seals, vault })
}

/// Failed-login limits, from the `[login]` table.
fn resolve_login(file: &FileLogin) -> anyhow::Result<LoginLimits> {
    let defaults = LoginLimits::default();
    let limits = LoginLimits {
        per_device: file.max_failures_per_device.unwrap_or(defaults.per_device),
        per_account: file.max_failures_per_account.unwrap_or(defaults.per_account),
        window: parse_duration(file.failure_window.as_deref(), "login.failure_window", "15m")?,
    };
    ensure!(
        limits.per_device > 0 && limits.per_account > 0 && !limits.window.is_zero(),
        "login.max_failures_per_device, login.max_failures_per_account and login.failure_window must be above zero"
    );
    Ok(limits)
}

/// Devices, delivery and job following, from flags or the `[printing]` and `[pull]` tables.
fn resolve_printing(
    cli: &Cli,
    file: &FilePrinting,
    pull: &FilePull,
    data_dir: &Path,
    plaintext: bool,
) -> anyhow::Result<PrintingSettings> {
    let duration = |flag: Option<Duration>, raw: &Option<String>, key: &str, default: &str| match flag {
        Some(d) => Ok(d),
        None => parse_duration(raw.as_deref(), key, default),
    };
    let printing = PrintingSettings {
        devices_file: cli.devices.clone().or_else(|| file.devices.clone()),
        require_registered_devices: cli.require_registered_devices || file.require_registered_devices.unwrap_or(false),
        spool_dir: cli.spool_dir.clone().or_else(|| file.spool_dir.clone()).unwrap_or_else(|| data_dir.join("spool")),
        spool_print_time: duration(cli.spool_print_time, &file.spool_print_time, "printing.spool_print_time", "2s")?,
        pull_listen: cli
            .pull_listen
            .or(pull.listen)
            .unwrap_or_else(|| "127.0.0.1:50480".parse().expect("valid default")),
        pull_base_url: cli.pull_base_url.clone().or_else(|| pull.base_url.clone()),
        // Without TLS on the gRPC listener there is no certificate for the pull links either.
        pull_plaintext: cli.pull_plaintext || pull.plaintext.unwrap_or(false) || plaintext,
        pull_link_ttl: duration(cli.pull_link_ttl, &pull.link_ttl, "pull.link_ttl", "5m")?,
        job_poll: duration(cli.job_poll, &file.job_poll, "printing.job_poll", "1s")?,
        job_deadline: duration(cli.job_deadline, &file.job_deadline, "printing.job_deadline", "10m")?,
        job_lease: duration(cli.job_lease, &file.job_lease, "printing.job_lease", "6s")?,
        printer_timeout: duration(cli.printer_timeout, &file.printer_timeout, "printing.printer_timeout", "30s")?,
        sheets: sheet_policy(cli, file)?,
    };
    ensure!(
        !printing.job_poll.is_zero() && !printing.pull_link_ttl.is_zero() && !printing.printer_timeout.is_zero(),
        "job poll, pull link and printer timeout times must be longer than zero"
    );
    Ok(printing)
}

/// Imposition's sheet preference and margin, from flags or the `[printing]` table.
fn sheet_policy(cli: &Cli, file: &FilePrinting) -> anyhow::Result<SheetPolicy> {
    let mut policy = SheetPolicy::default();
    if let Some(preference) = cli.sheet_preference.clone().or_else(|| file.sheet_preference.clone()) {
        let preference: Vec<String> =
            preference.into_iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect();
        for keyword in &preference {
            ensure!(
                crate::printing::ipp::parse_media(keyword).is_some(),
                "sheet preference \"{keyword}\" is not a PWG media keyword with a size, like iso_a4_210x297mm"
            );
        }
        policy.preference = preference;
    }
    if let Some(margin) = cli.sheet_margin.or(file.sheet_margin) {
        ensure!((0.0..=30.0).contains(&margin), "the sheet margin must be between 0 and 30 mm, not {margin}");
        policy.margin_mm = margin;
    }
    Ok(policy)
}

/// Device-user assertion checks, from flags or the `[assertions]` table.
fn resolve_assertions(cli: &Cli, file: &FileAssertions) -> anyhow::Result<AssertionSettings> {
    use crate::identity::dev::{DEFAULT_AUDIENCE, DEV_ISSUER};
    let jwks_file = cli.assertion_jwks_file.clone().or_else(|| file.jwks_file.clone());
    let jwks_url = cli.assertion_jwks_url.clone().or_else(|| file.jwks_url.clone());
    let jwks_ca = cli.assertion_jwks_ca.clone().or_else(|| file.jwks_ca.clone());
    let refresh_min = parse_duration(file.jwks_refresh_min.as_deref(), "assertions.jwks_refresh_min", "1m")?;
    let keys = match (jwks_file, jwks_url) {
        (Some(_), Some(_)) => bail!("assertion keys come from a JWKS file or a JWKS URL, not both"),
        (Some(path), None) => AssertionKeys::File(path),
        (None, Some(raw)) => {
            let url =
                reqwest::Url::parse(&raw).with_context(|| format!("the assertion JWKS URL \"{raw}\" is not a URL"))?;
            ensure!(url.scheme() == "https", "the assertion JWKS URL must be https://, not {}://", url.scheme());
            ensure!(!refresh_min.is_zero(), "assertions.jwks_refresh_min must be longer than zero");
            AssertionKeys::Url { url, ca_file: jwks_ca.clone(), refresh_min }
        }
        (None, None) => AssertionKeys::Dev,
    };
    ensure!(
        jwks_ca.is_none() || matches!(keys, AssertionKeys::Url { .. }),
        "the assertion JWKS CA file is only for a JWKS URL: set the URL too, or drop the CA file"
    );
    let issuer = cli.assertion_issuer.clone().or_else(|| file.issuer.clone());
    let issuer = match (&keys, issuer) {
        (AssertionKeys::Dev, None) => DEV_ISSUER.to_owned(),
        (AssertionKeys::Dev, Some(issuer)) if issuer == DEV_ISSUER => issuer,
        (AssertionKeys::Dev, Some(_)) => bail!(
            "an assertion issuer needs its keys: set the assertion JWKS file or URL (without them only the \
             development issuer, {DEV_ISSUER}, is trusted)"
        ),
        (_, Some(issuer)) if !issuer.trim().is_empty() => issuer,
        (_, _) => bail!("an assertion JWKS needs the issuer whose assertions it signs: set the assertion issuer"),
    };
    let audience =
        cli.assertion_audience.clone().or_else(|| file.audience.clone()).unwrap_or_else(|| DEFAULT_AUDIENCE.into());
    ensure!(!audience.trim().is_empty(), "the assertion audience must not be empty");
    let leeway = parse_duration(file.leeway.as_deref(), "assertions.leeway", "30s")?;
    ensure!(
        leeway <= MAX_ASSERTION_LEEWAY,
        "assertions.leeway may be at most {}: more lets expired assertions in",
        humantime::format_duration(MAX_ASSERTION_LEEWAY)
    );
    Ok(AssertionSettings { issuer, audience, keys, leeway })
}

/// The connection and call limits, from flags or the `[connections]` table.
fn resolve_connections(cli: &Cli, file: &FileConnections) -> anyhow::Result<ConnectionLimits> {
    let duration = |flag: Option<Duration>, raw: &Option<String>, key: &str, default: &str| match flag {
        Some(d) => Ok(d),
        None => parse_duration(raw.as_deref(), &format!("connections.{key}"), default),
    };
    let limits = ConnectionLimits {
        max_calls_per_peer: cli.max_calls_per_peer.or(file.max_calls_per_peer).unwrap_or(256),
        max_streams_per_connection: cli.max_streams_per_connection.or(file.max_streams_per_connection).unwrap_or(256),
        max_connections: cli.max_connections.or(file.max).unwrap_or(4096),
        max_connections_per_peer: cli.max_connections_per_peer.or(file.max_per_peer).unwrap_or(256),
        request_timeout: duration(cli.request_timeout, &file.request_timeout, "request_timeout", "10s")?,
        handshake_timeout: duration(cli.handshake_timeout, &file.handshake_timeout, "handshake_timeout", "10s")?,
        idle_timeout: duration(cli.idle_connection_timeout, &file.idle_timeout, "idle_timeout", "5m")?,
        keepalive_interval: duration(cli.keepalive_interval, &file.keepalive_interval, "keepalive_interval", "30s")?,
        keepalive_timeout: duration(cli.keepalive_timeout, &file.keepalive_timeout, "keepalive_timeout", "10s")?,
        shutdown_grace: duration(cli.shutdown_grace, &file.shutdown_grace, "shutdown_grace", "10s")?,
    };
    ensure!(
        limits.max_calls_per_peer > 0
            && limits.max_streams_per_connection > 0
            && limits.max_connections > 0
            && limits.max_connections_per_peer > 0,
        "connection and call caps must be at least 1"
    );
    ensure!(
        [
            limits.request_timeout,
            limits.handshake_timeout,
            limits.idle_timeout,
            limits.keepalive_interval,
            limits.keepalive_timeout
        ]
        .iter()
        .all(|d| !d.is_zero()),
        "request, handshake, idle and keepalive times must be longer than zero"
    );
    Ok(limits)
}

/// The sample shop's folder in the source tree, which the binary builds in (`--storefront-dir`
/// defaults to that built-in copy, not to this folder); tests read its files from here.
pub fn default_storefront_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("storefront/sample")
}

/// The uStore settings when `--storefront ustore` (or `[storefront] kind = "ustore"`) is chosen.
fn resolve_ustore(cli: &Cli, file: &FileStorefront) -> anyhow::Result<Option<UstoreSettings>> {
    let file_ustore = &file.ustore;
    if cli.storefront.or(file.kind).unwrap_or(StorefrontKind::Embedded) == StorefrontKind::Embedded {
        let set = cli.ustore_base_url.is_some() || cli.ustore_store_id.is_some() || cli.ustore_storefront_url.is_some();
        ensure!(!set, "uStore settings are given but the storefront is the embedded one: add --storefront ustore");
        return Ok(None);
    }
    let required = |flag: Option<&String>, key: Option<&String>, name: &str| {
        flag.or(key).cloned().with_context(|| {
            format!("the uStore storefront needs --ustore-{name} (or storefront.ustore.{})", name.replace('-', "_"))
        })
    };
    let base = required(cli.ustore_base_url.as_ref(), file_ustore.base_url.as_ref(), "base-url")?;
    let mut base_url =
        reqwest::Url::parse(&base).with_context(|| format!("the uStore base URL \"{base}\" is not a URL"))?;
    ensure!(
        base_url.scheme() == "https",
        "the uStore base URL must start with https:// (tokens and passwords cross it)"
    );
    ensure!(
        base_url.username().is_empty() && base_url.password().is_none() && base_url.query().is_none(),
        "the uStore base URL must not carry a user, password or query"
    );
    if !base_url.path().ends_with('/') {
        let path = format!("{}/", base_url.path());
        base_url.set_path(&path);
    }
    let store_id = required(cli.ustore_store_id.as_ref(), file_ustore.store_id.as_ref(), "store-id")?;
    ensure!(
        store_id.len() == 36 && store_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
        "the uStore store id must be a GUID such as 0f8fad5b-d9cb-469f-a165-70867728950e"
    );
    let storefront_url =
        required(cli.ustore_storefront_url.as_ref(), file_ustore.storefront_url.as_ref(), "storefront-url")?;
    ensure!(
        reqwest::Url::parse(&storefront_url).is_ok_and(|u| u.scheme() == "https"),
        "the uStore storefront URL must be an https:// URL"
    );
    let culture = cli.ustore_culture.clone().or(file_ustore.culture.clone()).unwrap_or_else(|| "en-US".into());
    ensure!(
        language_tags::LanguageTag::parse(&culture).is_ok(),
        "the uStore culture \"{culture}\" is not a language tag such as en-US"
    );
    let duration = |flag: Option<Duration>, key: &Option<String>, name: &str, default: &str| match flag {
        Some(d) => Ok(d),
        None => parse_duration(key.as_deref(), &format!("storefront.ustore.{name}"), default),
    };
    let settings = UstoreSettings {
        base_url,
        store_id: store_id.to_ascii_lowercase(),
        storefront_url,
        culture,
        ca_file: cli.ustore_ca.clone().or(file_ustore.ca.clone()),
        timeout: duration(cli.ustore_timeout, &file_ustore.timeout, "timeout", "10s")?,
        connect_timeout: duration(None, &file_ustore.connect_timeout, "connect_timeout", "3s")?,
        preview_timeout: duration(None, &file_ustore.preview_timeout, "preview_timeout", "20s")?,
        proof_timeout: duration(None, &file_ustore.proof_timeout, "proof_timeout", "2m")?,
        cache_ttl: duration(None, &file_ustore.cache_ttl, "cache_ttl", "30s")?,
        renew_after: duration(None, &file_ustore.renew_after, "renew_after", "15m")?,
        breaker_failures: file_ustore.breaker_failures.unwrap_or(5),
        breaker_cooldown: duration(None, &file_ustore.breaker_cooldown, "breaker_cooldown", "10s")?,
    };
    ensure!(
        [settings.timeout, settings.connect_timeout, settings.preview_timeout, settings.proof_timeout]
            .iter()
            .all(|d| !d.is_zero()),
        "uStore time limits must be longer than zero"
    );
    ensure!(settings.breaker_failures > 0, "storefront.ustore.breaker_failures must be at least 1");
    Ok(Some(settings))
}

fn parse_duration(raw: Option<&str>, key: &str, default: &str) -> anyhow::Result<Duration> {
    let raw = raw.unwrap_or(default);
    humantime::parse_duration(raw).with_context(|| format!("{key} = \"{raw}\" is not a duration such as \"10m\""))
}

fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the secret file {}", path.display()))?;
    let secret = text.trim();
    ensure!(!secret.is_empty(), "the secret file {} is empty", path.display());
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str]) -> anyhow::Result<Config> {
        let cli = Cli::try_parse_from(std::iter::once("podconnect-server").chain(args.iter().copied()))?;
        Config::resolve(cli, None)
    }

    #[test]
    fn ustore_is_chosen_explicitly_and_checked_once() {
        assert!(resolve(&[]).unwrap().ustore.is_none(), "the embedded shop is the default");
        let base = ["--ustore-store-id", "0f8fad5b-d9cb-469f-a165-70867728950e"];
        let err = resolve(&["--ustore-base-url", "https://shop.example.com/uStoreRestAPI"]).unwrap_err().to_string();
        assert!(err.contains("--storefront ustore"), "{err}");
        let err = resolve(&["--storefront", "ustore"]).unwrap_err().to_string();
        assert!(err.contains("--ustore-base-url"), "{err}");
        let full = |url: &str| {
            let mut args = vec!["--storefront", "ustore", "--ustore-base-url", url];
            args.extend(base);
            args.extend(["--ustore-storefront-url", "https://shop.example.com/ustore/6/home"]);
            resolve(&args)
        };
        let err = full("http://shop.example.com/uStoreRestAPI").unwrap_err().to_string();
        assert!(err.contains("https://"), "{err}");
        let config = full("https://shop.example.com/uStoreRestAPI").unwrap();
        let ustore = config.ustore.unwrap();
        assert_eq!(ustore.base_url.as_str(), "https://shop.example.com/uStoreRestAPI/", "a trailing slash is added");
        assert_eq!((ustore.culture.as_str(), ustore.timeout), ("en-US", Duration::from_secs(10)));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.toml");
        std::fs::write(
            &file,
            "[storefront]\nkind = \"ustore\"\n[storefront.ustore]\nbase_url = \"https://u.example/uStoreRestAPI/\"\n\
             store_id = \"0F8FAD5B-D9CB-469F-A165-70867728950E\"\nstorefront_url = \"https://u.example/ustore/6\"\n\
             culture = \"de-DE\"\nbreaker_cooldown = \"500ms\"\n",
        )
        .unwrap();
        let from_file = resolve(&["--config", file.to_str().unwrap()]).unwrap().ustore.unwrap();
        assert_eq!(from_file.store_id, "0f8fad5b-d9cb-469f-a165-70867728950e");
        assert_eq!((from_file.culture.as_str(), from_file.breaker_cooldown), ("de-DE", Duration::from_millis(500)));
        let err =
            resolve(&["--storefront", "ustore", "--ustore-base-url", "https://u.example/", "--ustore-store-id", "x"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("GUID"), "{err}");
    }

    #[test]
    fn the_vault_defaults_to_the_database_and_a_service_needs_its_certificates() {
        let config = resolve(&[]).unwrap();
        assert!(matches!(config.sso.vault, VaultBackend::Database));
        assert!(config.sso.key_file.ends_with("sso-keys.json"));
        let err = resolve(&["--vault-url", "https://vault:8470"]).unwrap_err().to_string();
        assert!(err.contains("--vault-ca"), "{err}");
        // A certificate without a URL is a mistake, never silently ignored.
        let err = resolve(&["--vault-client-cert", "c.pem"]).unwrap_err().to_string();
        assert!(err.contains("no vault URL"), "{err}");
        // A URL from a flag takes its certificates from the file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.toml");
        std::fs::write(
            &file,
            "[sso]\nvault_ca = \"ca.pem\"\nvault_client_cert = \"c.pem\"\nvault_client_key = \"c.key\"\n",
        )
        .unwrap();
        let mixed = resolve(&["--config", file.to_str().unwrap(), "--vault-url", "https://vault:8470"]).unwrap();
        assert!(matches!(mixed.sso.vault, VaultBackend::Service { .. }));
        let err = resolve(&[
            "--vault-url",
            "http://vault:8470",
            "--vault-ca",
            "ca.pem",
            "--vault-client-cert",
            "c.pem",
            "--vault-client-key",
            "c.key",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("https://"), "{err}");
        let service = resolve(&[
            "--vault-url",
            "https://vault:8470",
            "--vault-ca",
            "ca.pem",
            "--vault-client-cert",
            "c.pem",
            "--vault-client-key",
            "c.key",
        ])
        .unwrap();
        assert!(matches!(service.sso.vault, VaultBackend::Service { .. }));
    }

    #[test]
    fn login_limits_and_seal_counts_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.toml");
        for (toml, says) in [
            ("[login]\nmax_failures_per_device = 0\n", "login.max_failures_per_device"),
            ("[sso]\nrotate_after_seals = 0\n", "sso.rotate_after_seals"),
            ("[sso]\nrotate_after_seals = 4294967296\n", "2^32"),
        ] {
            std::fs::write(&file, toml).unwrap();
            let err = format!("{:#}", resolve(&["--config", file.to_str().unwrap()]).unwrap_err());
            assert!(err.contains(says), "{toml}: {err}");
        }
    }

    #[test]
    fn defaults_are_tls_with_a_development_ca() {
        let config = resolve(&[]).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert!(matches!(config.transport, Transport::Tls(TlsSettings { identity: Identity::Development, .. })));
        assert_eq!(config.sessions.idle, Duration::from_secs(600));
        assert_eq!(config.sessions.absolute, Duration::from_secs(3600));
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1234\"\n[sessions]\nidle_timeout = \"2m\"\n").unwrap();
        let path = file.to_str().unwrap();
        let config = resolve(&["--config", path]).unwrap();
        assert_eq!(config.listen.port(), 1234);
        assert_eq!(config.sessions.idle, Duration::from_secs(120));
        let config = resolve(&["--config", path, "--listen", "127.0.0.1:99"]).unwrap();
        assert_eq!(config.listen.port(), 99);
    }

    #[test]
    fn unknown_keys_and_contradictions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.toml");
        std::fs::write(&file, "[tls]\nciphers = \"all\"\n").unwrap();
        let err = resolve(&["--config", file.to_str().unwrap()]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown field `ciphers`"), "{err:#}");
        assert!(resolve(&["--client-auth", "required"]).is_err());
        assert!(resolve(&["--insecure-plaintext", "--client-ca", "x.pem"]).is_err());
        assert!(resolve(&["--session-idle-timeout", "soon"]).is_err());
    }

    #[test]
    fn the_shipped_example_file_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("podconnect.example.toml");
        let config = resolve(&["--config", example.to_str().unwrap()]).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.sessions.idle, Duration::from_secs(600));
    }

    #[test]
    fn connection_and_session_limits_come_from_flags_or_the_file() {
        let config = resolve(&[]).unwrap();
        assert_eq!(config.connections.request_timeout, Duration::from_secs(10));
        assert_eq!(config.connections.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.sessions.max_per_device, 32);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.toml");
        std::fs::write(
            &file,
            "[connections]\nidle_timeout = \"1m\"\nmax_calls_per_peer = 8\n[sessions]\nmax_per_device = 3\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let config = resolve(&["--config", path, "--max-calls-per-peer", "9"]).unwrap();
        assert_eq!(config.connections.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.connections.max_calls_per_peer, 9);
        assert_eq!(config.sessions.max_per_device, 3);
        assert!(resolve(&["--max-sessions-per-device", "0"]).is_err());
        assert!(resolve(&["--request-timeout", "0s"]).is_err());
    }

    /// A configuration file that sets every printing option, and the values it sets.
    fn printing_file(dir: &Path) -> PathBuf {
        let file = dir.join("core.toml");
        std::fs::write(
            &file,
            "[printing]\ndevices = \"devices.toml\"\nrequire_registered_devices = true\nspool_dir = \"/srv/spool\"\n\
             spool_print_time = \"3s\"\nprinter_timeout = \"9s\"\njob_poll = \"2s\"\njob_deadline = \"20m\"\n\
             [pull]\nlisten = \"127.0.0.1:50481\"\nbase_url = \"https://gw.example/print-files\"\nplaintext = true\n\
             link_ttl = \"1m\"\n",
        )
        .unwrap();
        file
    }

    #[test]
    fn printing_options_come_from_the_file_and_flags_win() {
        let defaults = resolve(&[]).unwrap().printing;
        assert_eq!(defaults.printer_timeout, Duration::from_secs(30));
        assert_eq!(defaults.spool_dir, Path::new(".data/podconnect/spool"));
        assert!(!defaults.require_registered_devices && !defaults.pull_plaintext);

        let dir = tempfile::tempdir().unwrap();
        let file = printing_file(dir.path());
        let path = file.to_str().unwrap();
        let printing = resolve(&["--config", path]).unwrap().printing;
        assert_eq!(printing.devices_file.as_deref(), Some(Path::new("devices.toml")));
        assert!(printing.require_registered_devices);
        assert_eq!(printing.spool_dir, Path::new("/srv/spool"));
        assert_eq!(printing.spool_print_time, Duration::from_secs(3));
        assert_eq!(printing.printer_timeout, Duration::from_secs(9));
        assert_eq!(printing.job_poll, Duration::from_secs(2));
        assert_eq!(printing.job_deadline, Duration::from_secs(1200));
        assert_eq!(printing.pull_listen.port(), 50481);
        assert_eq!(printing.pull_base_url.as_deref(), Some("https://gw.example/print-files"));
        assert!(printing.pull_plaintext);
        assert_eq!(printing.pull_link_ttl, Duration::from_secs(60));

        let flags = ["--config", path, "--printer-timeout", "4s", "--spool-dir", "/tmp/s", "--pull-link-ttl", "2m"];
        let printing = resolve(&flags).unwrap().printing;
        assert_eq!(printing.printer_timeout, Duration::from_secs(4));
        assert_eq!(printing.spool_dir, Path::new("/tmp/s"));
        assert_eq!(printing.pull_link_ttl, Duration::from_secs(120));

        std::fs::write(&file, "[printing]\nprinter_timeout = \"soon\"\n").unwrap();
        let err = resolve(&["--config", path]).unwrap_err();
        assert!(format!("{err:#}").contains("printing.printer_timeout"), "{err:#}");
        std::fs::write(&file, "[pull]\nlink_ttl = \"0s\"\n").unwrap();
        assert!(resolve(&["--config", path]).is_err());
    }

    /// Set in the child run of the test below: the configuration file it resolves.
    const CHILD_FILE: &str = "PODCONNECT_CONFIG_TEST_CHILD_FILE";

    /// The environment sits between flags and the file. clap applies it, and a test cannot set a
    /// variable in its own threaded process safely, so the test runs itself again in a child
    /// process with PODCONNECT_PRINTER_TIMEOUT set, over a file that says otherwise.
    #[test]
    fn the_environment_wins_over_the_file_and_flags_over_the_environment() {
        if let Some(file) = std::env::var_os(CHILD_FILE) {
            let path = file.to_str().unwrap();
            assert_eq!(resolve(&["--config", path]).unwrap().printing.printer_timeout, Duration::from_secs(7));
            let flag = resolve(&["--config", path, "--printer-timeout", "4s"]).unwrap();
            assert_eq!(flag.printing.printer_timeout, Duration::from_secs(4));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = printing_file(dir.path());
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "config::tests::the_environment_wins_over_the_file_and_flags_over_the_environment",
                "--exact",
                "--test-threads=1",
            ])
            .env(CHILD_FILE, &file)
            .env("PODCONNECT_PRINTER_TIMEOUT", "7s")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && stdout.contains("1 passed"), "{stdout}");
    }

    #[test]
    fn the_sheet_preference_and_margin_come_from_flags_or_the_file_and_are_checked() {
        let defaults = resolve(&[]).unwrap().printing.sheets;
        assert_eq!(defaults.preference[0], "iso_a4_210x297mm", "A4 before anything else by default");
        assert_eq!(defaults.margin_mm, 4.2);
        let flags = resolve(&["--sheet-preference", "na_letter_8.5x11in,iso_a3_297x420mm", "--sheet-margin", "3"]);
        let sheets = flags.unwrap().printing.sheets;
        assert_eq!(sheets.preference, ["na_letter_8.5x11in", "iso_a3_297x420mm"]);
        assert_eq!(sheets.margin_mm, 3.0);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("podconnect.toml");
        std::fs::write(&file, "[printing]\nsheet_preference = [\"iso_a3_297x420mm\"]\nsheet_margin = 5.5\n").unwrap();
        let sheets = resolve(&["--config", file.to_str().unwrap()]).unwrap().printing.sheets;
        assert_eq!((sheets.preference, sheets.margin_mm), (vec!["iso_a3_297x420mm".to_string()], 5.5));

        let err = resolve(&["--sheet-preference", "A4"]).unwrap_err();
        assert!(format!("{err:#}").contains("\"A4\" is not a PWG media keyword"), "{err:#}");
        let err = resolve(&["--sheet-margin", "80"]).unwrap_err();
        assert!(format!("{err:#}").contains("between 0 and 30 mm"), "{err:#}");
    }

    #[test]
    fn operator_token_is_kept_only_as_a_hash() {
        let cli = Cli::try_parse_from(["podconnect-server"]).unwrap();
        let token = "an-operator-token-that-is-long-enough-1234".to_string();
        let config = Config::resolve(cli, Some(token.clone())).unwrap();
        assert!(config.operators.token_sha256.is_some());
        assert!(!format!("{config:?}").contains(&token));
    }
}
