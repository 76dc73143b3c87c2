//! Connecting: `ClientBuilder` (endpoint, trust, client certificate, operator token, user agent,
//! deadlines, retries) and the secrets it carries, which never show in `Debug`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::client::{Client, Inner};
use crate::error::{Error, Result};

/// A bearer secret (session or operator token): `Debug` prints `Secret(…)`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a token.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The token itself, to store it (e.g. in a file readable only by its owner).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The kinds of call, each with its own default deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// Reads: catalog, forms, jobs, devices, usage, capabilities (10 s).
    Read,
    /// Changes: sessions, drafts, devices, keys (15 s).
    Write,
    /// Previews and print-ready files, which a slow storefront makes in seconds (60 s, as the
    /// contract advises).
    Render,
    /// Submitting a job, which may wait for the printer's answer (45 s).
    Print,
}

/// Default deadlines per kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// For [`CallKind::Read`].
    pub read: Duration,
    /// For [`CallKind::Write`].
    pub write: Duration,
    /// For [`CallKind::Render`].
    pub render: Duration,
    /// For [`CallKind::Print`].
    pub print: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            read: Duration::from_secs(10),
            write: Duration::from_secs(15),
            render: Duration::from_secs(60),
            print: Duration::from_secs(45),
        }
    }
}

impl Deadlines {
    pub(crate) fn of(&self, kind: CallKind) -> Duration {
        match kind {
            CallKind::Read => self.read,
            CallKind::Write => self.write,
            CallKind::Render => self.render,
            CallKind::Print => self.print,
        }
    }
}

/// How idempotent reads are retried on `UNAVAILABLE`: exponential backoff with full jitter.
/// Calls that change something (CreateDraft, SubmitJob, Login, …) are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retries).
    pub max_attempts: u32,
    /// The backoff before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A random wait in `[0, min(max, initial · 2^retry)]` ("full jitter"), so many clients
    /// retrying after one outage do not arrive together.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.initial_backoff.saturating_mul(1 << retry.min(16)).min(self.max_backoff);
        let fraction = f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
        ceiling.mul_f64(fraction)
    }
}

/// Where the core's certificate must chain to.
#[derive(Debug, Clone)]
enum Trust {
    System,
    CaFile(PathBuf),
}

/// Builds a [`Client`]: where the core is, whom to trust, which credentials to present.
///
/// ```no_run
/// # async fn run() -> podconnect_client::Result<()> {
/// use podconnect_client::Client;
///
/// let client = Client::builder("https://127.0.0.1:50443")
///     .ca_file(".data/podconnect/tls/dev-ca.pem")
///     .user_agent("monthly-report/1.0")
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    trust: Trust,
    server_name: Option<String>,
    identity: Option<(PathBuf, PathBuf)>,
    operator_token: Option<Secret>,
    operator_token_file: Option<PathBuf>,
    user_agent: String,
    deadlines: Deadlines,
    retry: RetryPolicy,
    watch_resumes: u32,
    connect_timeout: Duration,
}

impl ClientBuilder {
    pub(crate) fn new(endpoint: &str) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.to_owned(),
            trust: Trust::System,
            server_name: None,
            identity: None,
            operator_token: None,
            operator_token_file: None,
            user_agent: concat!("podconnect-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            deadlines: Deadlines::default(),
            retry: RetryPolicy::default(),
            watch_resumes: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Trusts only this CA (PEM) for the core's certificate, e.g. the development CA. Without it
    /// the system's roots are trusted.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.trust = Trust::CaFile(path.as_ref().to_path_buf());
        self
    }

    /// Trusts the system's roots (the default).
    pub fn system_roots(mut self) -> Self {
        self.trust = Trust::System;
        self
    }

    /// The name the core's certificate must carry, when it differs from the endpoint's host.
    pub fn server_name(mut self, name: &str) -> Self {
        self.server_name = Some(name.to_owned());
        self
    }

    /// Presents this client certificate and key (PEM files) for mutual TLS; a certificate the
    /// core lists as an operator authorizes operator calls.
    pub fn client_certificate(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.identity = Some((cert.as_ref().to_path_buf(), key.as_ref().to_path_buf()));
        self
    }

    /// Authorizes operator calls with this token.
    pub fn operator_token(mut self, token: Secret) -> Self {
        self.operator_token = Some(token);
        self
    }

    /// Reads the operator token from a file (its first line) when connecting.
    pub fn operator_token_file(mut self, path: impl AsRef<Path>) -> Self {
        self.operator_token_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Takes the operator token from the environment variable `PODCONNECT_OPERATOR_TOKEN`, the
    /// one the core itself reads, when it is set and no token was given otherwise.
    pub fn operator_token_from_env(mut self) -> Self {
        if self.operator_token.is_none()
            && let Ok(token) = std::env::var("PODCONNECT_OPERATOR_TOKEN")
            && !token.trim().is_empty()
        {
            self.operator_token = Some(Secret::new(token.trim()));
        }
        self
    }

    /// The `user-agent` the core sees (gRPC's own version is appended).
    pub fn user_agent(mut self, agent: &str) -> Self {
        self.user_agent = agent.to_owned();
        self
    }

    /// Replaces the default deadlines.
    pub fn deadlines(mut self, deadlines: Deadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Replaces the retry policy of idempotent reads.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How many times in a row a [`crate::JobWatch`] re-issues WatchJob after a dropped
    /// connection before it gives up (default 8).
    pub fn watch_resumes(mut self, resumes: u32) -> Self {
        self.watch_resumes = resumes;
        self
    }

    /// How long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects now, so a wrong endpoint or CA shows at once (`UNAVAILABLE`).
    pub async fn connect(self) -> Result<Client> {
        let (endpoint, inner) = self.prepare()?;
        let channel = endpoint.connect().await?;
        Ok(inner(channel))
    }

    /// Connects on the first call (and again after the connection drops).
    pub fn connect_lazy(self) -> Result<Client> {
        let (endpoint, inner) = self.prepare()?;
        Ok(inner(endpoint.connect_lazy()))
    }

    #[allow(clippy::type_complexity)]
    fn prepare(self) -> Result<(Endpoint, Box<dyn FnOnce(Channel) -> Client>)> {
        let address =
            if self.endpoint.contains("://") { self.endpoint.clone() } else { format!("https://{}", self.endpoint) };
        let mut endpoint = Endpoint::from_shared(address.clone())
            .map_err(|e| Error::Config(format!("the endpoint {address:?} is not a URL: {e}")))?
            .user_agent(self.user_agent.clone())
            .map_err(|_| Error::Config("the user agent must be printable ASCII".into()))?
            .connect_timeout(self.connect_timeout)
            .keep_alive_while_idle(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        if address.starts_with("https://") {
            endpoint = endpoint.tls_config(self.tls()?)?;
        }
        let operator = match (&self.operator_token, &self.operator_token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(path)) => Some(read_token(path)?),
            (None, None) => None,
        };
        let (deadlines, retry, watch_resumes) = (self.deadlines, self.retry, self.watch_resumes);
        let build = move |channel: Channel| Client {
            inner: Arc::new(Inner { channel, session: Mutex::new(None), operator, deadlines, retry, watch_resumes }),
        };
        Ok((endpoint, Box::new(build)))
    }

    fn tls(&self) -> Result<ClientTlsConfig> {
        let mut tls = ClientTlsConfig::new();
        tls = match &self.trust {
            Trust::CaFile(path) => tls.ca_certificate(Certificate::from_pem(read(path, "CA")?)),
            Trust::System => tls.ca_certificates(system_roots()?),
        };
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(Identity::from_pem(read(cert, "client certificate")?, read(key, "client key")?));
        }
        Ok(tls)
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::File { what, path: path.to_path_buf(), source })
}

/// The first line of a token file.
pub(crate) fn read_token(path: &Path) -> Result<Secret> {
    let text = read(path, "token")?;
    let text =
        String::from_utf8(text).map_err(|_| Error::Config(format!("the token file {} is not text", path.display())))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(Error::Config(format!("the token file {} is empty", path.display())));
    }
    Ok(Secret::new(token))
}

/// The system's trusted roots as PEM certificates (tonic takes PEM only).
fn system_roots() -> Result<Vec<Certificate>> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        return Err(Error::Config("no system root certificates found; give a CA file".into()));
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let roots = found
        .certs
        .iter()
        .map(|der| {
            let body = engine.encode(der.as_ref());
            let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
            Certificate::from_pem(format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            ))
        })
        .collect();
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let secret = Secret::new("s3cr3t-token-value");
        assert_eq!(format!("{secret:?}"), "Secret(…)");
        let builder = ClientBuilder::new("https://core:50443").operator_token(secret);
        assert!(!format!("{builder:?}").contains("s3cr3t"));
    }

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let policy = RetryPolicy::default();
        for retry in 0..10 {
            let ceiling = (policy.initial_backoff * (1 << retry)).min(policy.max_backoff);
            assert!(policy.backoff(retry) <= ceiling);
        }
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let error =
            ClientBuilder::new("https://core:50443").ca_file("/nonexistent/ca.pem").connect_lazy().err().unwrap();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
