//! `TestCore`: starts the core with chosen options and stops it when dropped. Readiness comes from
//! the binary's JSON ready line on standard output, or the ready callback of `app::run` (in-process):
//! no sleeps, no scraping of logs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser as _;
use server::config::{Cli, Config};
use server::domain::clock::ShiftedClock;
use server::store::memory::MemoryStore;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// How long a server may take to print its ready line before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for a core under test, one typed method per option the tests use; each becomes the
/// command-line flag an operator would type.
#[derive(Default, Clone)]
pub struct CoreBuilder {
    args: Vec<String>,
    operator_token: Option<String>,
    data_dir: Option<PathBuf>,
    binary: Option<PathBuf>,
    current_dir: Option<PathBuf>,
}

/// A duration as the core's flags take it ("1h", "700ms").
fn flag_duration(value: Duration) -> String {
    humantime::format_duration(value).to_string()
}

impl CoreBuilder {
    pub fn new() -> Self {
        CoreBuilder::default()
    }

    fn flag(mut self, flag: &str, value: Option<String>) -> Self {
        self.args.push(flag.to_owned());
        self.args.extend(value);
        self
    }

    fn path(path: &Path) -> Option<String> {
        Some(path.display().to_string())
    }

    /// The operator token, given the way the README asks for it (PODCONNECT_OPERATOR_TOKEN).
    pub fn operator_token(mut self, token: &str) -> Self {
        self.operator_token = Some(token.to_owned());
        self
    }

    /// A configuration file (`--config`); the harness's own flags win over its values.
    pub fn config_file(self, file: &Path) -> Self {
        self.flag("--config", Self::path(file))
    }

    /// The log filter (`--log`), e.g. "debug".
    pub fn log_filter(self, filter: &str) -> Self {
        self.flag("--log", Some(filter.to_owned()))
    }

    pub fn session_idle(self, limit: Duration) -> Self {
        self.flag("--session-idle-timeout", Some(flag_duration(limit)))
    }

    pub fn session_absolute(self, limit: Duration) -> Self {
        self.flag("--session-absolute-timeout", Some(flag_duration(limit)))
    }

    /// How often the core looks for sessions past their limits.
    pub fn session_sweep(self, every: Duration) -> Self {
        self.flag("--session-sweep-interval", Some(flag_duration(every)))
    }

    pub fn max_sessions(self, sessions: u32) -> Self {
        self.flag("--max-sessions", Some(sessions.to_string()))
    }

    pub fn max_sessions_per_device(self, sessions: u32) -> Self {
        self.flag("--max-sessions-per-device", Some(sessions.to_string()))
    }

    pub fn max_concurrent_calls(self, calls: u32) -> Self {
        self.flag("--max-concurrent-calls", Some(calls.to_string()))
    }

    pub fn max_calls_per_peer(self, calls: u32) -> Self {
        self.flag("--max-calls-per-peer", Some(calls.to_string()))
    }

    pub fn max_concurrent_renders(self, renders: u32) -> Self {
        self.flag("--max-concurrent-renders", Some(renders.to_string()))
    }

    pub fn request_timeout(self, limit: Duration) -> Self {
        self.flag("--request-timeout", Some(flag_duration(limit)))
    }

    pub fn handshake_timeout(self, limit: Duration) -> Self {
        self.flag("--handshake-timeout", Some(flag_duration(limit)))
    }

    pub fn idle_connection_timeout(self, limit: Duration) -> Self {
        self.flag("--idle-connection-timeout", Some(flag_duration(limit)))
    }

    /// HTTP/2 keep-alive: a PING every `interval`, and the peer is dropped if it does not answer
    /// within `timeout`.
    pub fn keepalive(self, interval: Duration, timeout: Duration) -> Self {
        self.flag("--keepalive-interval", Some(flag_duration(interval)))
            .flag("--keepalive-timeout", Some(flag_duration(timeout)))
    }

    pub fn shutdown_grace(self, grace: Duration) -> Self {
        self.flag("--shutdown-grace", Some(flag_duration(grace)))
    }

    /// Serves gRPC without TLS (`--insecure-plaintext`).
    pub fn insecure_plaintext(self) -> Self {
        self.flag("--insecure-plaintext", None)
    }

    /// Client certificates from the CA in `ca_file`: `mode` is "required" or "optional".
    pub fn client_certificates(self, ca_file: &Path, mode: &str) -> Self {
        self.flag("--client-ca", Self::path(ca_file)).flag("--client-auth", Some(mode.to_owned()))
    }

    /// Client certificates with this common name are operators.
    pub fn operator_cert_name(self, name: &str) -> Self {
        self.flag("--operator-cert-name", Some(name.to_owned()))
    }

    pub fn database_url(self, url: &str) -> Self {
        self.flag("--database-url", Some(url.to_owned()))
    }

    /// The shared ephemeral store (`redis://…`, comma-separated for a cluster).
    pub fn ephemeral_store(self, urls: &str) -> Self {
        self.flag("--ephemeral-store", Some(urls.to_owned()))
    }

    /// The session record key every instance sharing a store must read.
    pub fn session_key_file(self, file: &Path) -> Self {
        self.flag("--session-key-file", Self::path(file))
    }

    /// The region recorded in the core's usage events.
    pub fn region(self, region: &str) -> Self {
        self.flag("--region", Some(region.to_owned()))
    }

    pub fn instance_id(self, id: &str) -> Self {
        self.flag("--instance-id", Some(id.to_owned()))
    }

    /// How long a job's follower may be silent before another instance takes the job over.
    pub fn job_lease(self, lease: Duration) -> Self {
        self.flag("--job-lease", Some(flag_duration(lease)))
    }

    /// The CA trusted for a `rediss://` ephemeral store.
    pub fn redis_ca(self, file: &Path) -> Self {
        self.flag("--redis-ca", Self::path(file))
    }

    pub fn redis_timeout(self, limit: Duration) -> Self {
        self.flag("--redis-timeout", Some(flag_duration(limit)))
    }

    /// The spool printer's folder.
    pub fn spool_dir(self, dir: &Path) -> Self {
        self.flag("--spool-dir", Self::path(dir))
    }

    /// How long the spool printer takes per job.
    pub fn spool_print_time(self, time: Duration) -> Self {
        self.flag("--spool-print-time", Some(flag_duration(time)))
    }

    /// How often running jobs are polled at their printer.
    pub fn job_poll(self, every: Duration) -> Self {
        self.flag("--job-poll", Some(flag_duration(every)))
    }

    pub fn printer_timeout(self, limit: Duration) -> Self {
        self.flag("--printer-timeout", Some(flag_duration(limit)))
    }

    /// Devices registered at start (`--devices`).
    pub fn devices_file(self, file: &Path) -> Self {
        self.flag("--devices", Self::path(file))
    }

    /// Only registered devices may start sessions and print.
    pub fn require_registered_devices(self) -> Self {
        self.flag("--require-registered-devices", None)
    }

    /// Pull links over plain HTTP.
    pub fn pull_plaintext(self) -> Self {
        self.flag("--pull-plaintext", None)
    }

    pub fn pull_link_ttl(self, ttl: Duration) -> Self {
        self.flag("--pull-link-ttl", Some(flag_duration(ttl)))
    }

    /// Keeps SSO ciphertext in the vault service at `url` (`--vault-url`), trusting `ca` for its
    /// certificate and presenting `client_cert`/`client_key` (PEM files).
    pub fn vault_service(self, url: &str, ca: &Path, client_cert: &Path, client_key: &Path) -> Self {
        self.flag("--vault-url", Some(url.to_owned()))
            .flag("--vault-ca", Self::path(ca))
            .flag("--vault-client-cert", Self::path(client_cert))
            .flag("--vault-client-key", Self::path(client_key))
    }

    /// A storefront folder instead of the built-in sample (`--storefront-dir`).
    /// Serves the catalog and customization from an XMPie uStore storefront (the test double),
    /// trusting `ca_file` for its certificate. Short breaker and cache times keep tests quick.
    pub fn ustore(self, base_url: &str, store_id: &str, storefront_url: &str, ca_file: &Path) -> Self {
        self.flag("--storefront", Some("ustore".into()))
            .flag("--ustore-base-url", Some(base_url.to_owned()))
            .flag("--ustore-store-id", Some(store_id.to_owned()))
            .flag("--ustore-storefront-url", Some(storefront_url.to_owned()))
            .flag("--ustore-ca", Self::path(ca_file))
    }

    /// The longest wait for one uStore answer (`--ustore-timeout`); the finer uStore settings
    /// (breaker, cache, preview and proof limits) come from a config file's `[storefront.ustore]`.
    pub fn ustore_timeout(self, limit: Duration) -> Self {
        self.flag("--ustore-timeout", Some(format!("{}ms", limit.as_millis())))
    }

    pub fn storefront_dir(self, dir: &Path) -> Self {
        self.flag("--storefront-dir", Self::path(dir))
    }

    /// Reuses a data folder (to test what persists across restarts).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Runs another build of `podconnect-server` (a measurement comparing before and after).
    pub fn binary(mut self, path: &Path) -> Self {
        self.binary = Some(path.to_path_buf());
        self
    }

    /// Starts the binary in `dir` (where relative paths and defaults resolve) instead of here.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.current_dir = Some(dir.to_path_buf());
        self
    }

    /// Starts the real `podconnect-server` binary.
    pub async fn spawn(mut self) -> anyhow::Result<TestCore> {
        let temp = tempfile::tempdir()?;
        // `PODCONNECT_TEST_STORES=shared` runs the suite's cores on the scaled deployment's
        // stores: a Redis server and a PostgreSQL database of the core's own (unless the test
        // names its own).
        let (mut redis, mut database) = (None, None);
        if std::env::var("PODCONNECT_TEST_STORES").as_deref() == Ok("shared") {
            if !self.args.iter().any(|a| a == "--ephemeral-store") {
                let server = crate::redis::RedisServer::start().await?;
                self = self.ephemeral_store(&server.url());
                redis = Some(server);
            }
            if !self.args.iter().any(|a| a == "--database-url") {
                let db = crate::postgres::TestDatabase::create().await?;
                self = self.database_url(db.url());
                database = Some(db);
            }
        }
        let data_dir = self.data_dir.clone().unwrap_or_else(|| temp.path().join("data"));
        let log_path = temp.path().join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let binary = match &self.binary {
            Some(binary) => binary.clone(),
            None => server_binary()?,
        };
        let mut command = crate::process::command(&binary);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        command
            .args(["--listen", "127.0.0.1:0", "--pull-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(&self.args)
            .envs(self.operator_token.iter().map(|token| ("PODCONNECT_OPERATOR_TOKEN", token)))
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command.spawn().context("cannot start podconnect-server")?;
        let Some(ready) = crate::process::ready_line::<ReadyLine>(&mut child, START_TIMEOUT).await? else {
            let status = child.wait().await?;
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the server exited ({status}) before listening:\n{log}");
        };
        Ok(TestCore {
            addr: ready.grpc,
            pull_addr: ready.pull,
            dev_ca: ready.dev_ca,
            data_dir,
            log_path: Some(log_path),
            running: Running::Process(child),
            store: None,
            clock: None,
            services: None,
            _redis: redis,
            _database: database,
            _temp: temp,
        })
    }

    /// Starts the core inside the test process with the same wiring as the binary, keeping a
    /// handle on its ephemeral store so the test can look inside.
    pub async fn in_process(self) -> anyhow::Result<TestCore> {
        let temp = tempfile::tempdir()?;
        let data_dir = self.data_dir.clone().unwrap_or_else(|| temp.path().join("data"));
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut args = vec![
            "podconnect-server".to_string(),
            "--pull-listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        args.extend(self.args.iter().cloned());
        let config = Config::resolve(Cli::try_parse_from(&args)?, self.operator_token.clone())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let clock = Arc::new(ShiftedClock::new());
        let store = MemoryStore::with_clock(clock.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(server::app::run(
            config,
            listener,
            server::app::Ephemeral::memory(store.clone()),
            clock.clone(),
            async move {
                let _ = stopped.await;
            },
            move |ready| {
                let _ = ready_tx.send(ready.clone());
            },
        ));
        let ready = tokio::time::timeout(START_TIMEOUT, ready_rx).await.context("in-process core did not start")?;
        let ready = match ready {
            Ok(ready) => ready,
            Err(_) => bail!("in-process core failed: {:?}", task.await),
        };
        Ok(TestCore {
            addr: ready.addr,
            pull_addr: ready.pull_addr,
            dev_ca: ready.dev_ca,
            data_dir,
            log_path: None,
            running: Running::Task { stop: Some(stop), task },
            store: Some(store),
            clock: Some(clock),
            services: Some(ready.services),
            _redis: None,
            _database: None,
            _temp: temp,
        })
    }
}

/// What the binary's ready line says (see the README); fields the harness does not use are left out.
#[derive(serde::Deserialize)]
struct ReadyLine {
    grpc: std::net::SocketAddr,
    pull: std::net::SocketAddr,
    dev_ca: Option<PathBuf>,
}

enum Running {
    Process(Child),
    Task { stop: Option<oneshot::Sender<()>>, task: tokio::task::JoinHandle<anyhow::Result<()>> },
}

/// A running core. Dropping it stops the server.
pub struct TestCore {
    pub addr: std::net::SocketAddr,
    /// The core's pull-link listener (over TLS unless started with --pull-plaintext).
    pub pull_addr: std::net::SocketAddr,
    /// The development CA the core generated (absent with --insecure-plaintext or --tls-cert).
    pub dev_ca: Option<PathBuf>,
    pub data_dir: PathBuf,
    log_path: Option<PathBuf>,
    running: Running,
    store: Option<Arc<MemoryStore>>,
    clock: Option<Arc<ShiftedClock>>,
    services: Option<server::app::Services>,
    /// The Redis server of a core run on the shared stores (stopped with the core).
    _redis: Option<crate::redis::RedisServer>,
    /// The PostgreSQL database of a core run on the shared stores (dropped after the core).
    _database: Option<crate::postgres::TestDatabase>,
    _temp: tempfile::TempDir,
}

impl TestCore {
    /// Starts the binary with default options.
    pub async fn start() -> TestCore {
        CoreBuilder::new().spawn().await.expect("the core starts")
    }

    pub fn builder() -> CoreBuilder {
        CoreBuilder::new()
    }

    /// The in-process core's ephemeral store.
    pub fn store(&self) -> &Arc<MemoryStore> {
        self.store.as_ref().expect("only in-process cores expose their store")
    }

    /// The in-process core's clock: `advance` it to pass a session or store time limit at once.
    pub fn clock(&self) -> &ShiftedClock {
        self.clock.as_ref().expect("only in-process cores run on a clock the test moves")
    }

    /// The in-process core's domain services.
    pub fn services(&self) -> &server::app::Services {
        self.services.as_ref().expect("only in-process cores expose their services")
    }

    /// The binary's process id (`None` for an in-process core or one that exited).
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Process(child) => child.id(),
            Running::Task { .. } => None,
        }
    }

    /// Stops the binary with SIGSTOP, as a hung core looks to its callers, and returns once every
    /// thread of it has stopped: a stop signal takes effect thread by thread, and on a loaded
    /// machine a thread may still answer a call well after `kill` returns.
    pub async fn freeze(&self) {
        let pid = self.pid().expect("only a core that runs as a process can be frozen");
        send_signal(pid, "-STOP").await;
        crate::wait::eventually("every thread of the core to stop", Duration::from_secs(10), || async move {
            threads_not_stopped(pid)
        })
        .await;
    }

    /// Lets a frozen binary run again (SIGCONT).
    pub async fn thaw(&self) {
        send_signal(self.pid().expect("only a core that runs as a process can be frozen"), "-CONT").await;
    }

    /// What the binary wrote to standard error so far.
    pub fn log(&self) -> String {
        self.log_path.as_ref().map(|p| std::fs::read_to_string(p).unwrap_or_default()).unwrap_or_default()
    }

    /// Sends SIGTERM to the binary and waits for it to exit; returns its exit code and what it
    /// logged.
    pub async fn terminate_with_log(mut self) -> anyhow::Result<(Option<i32>, String)> {
        let code = self.stop().await?;
        Ok((code, self.log()))
    }

    /// Sends SIGTERM to the binary and waits for it to exit; returns its exit code.
    pub async fn terminate(mut self) -> anyhow::Result<Option<i32>> {
        self.stop().await
    }

    async fn stop(&mut self) -> anyhow::Result<Option<i32>> {
        match &mut self.running {
            Running::Process(child) => {
                let pid = child.id().context("the server already exited")?;
                let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
                anyhow::ensure!(status.success(), "kill failed");
                let exit = tokio::time::timeout(Duration::from_secs(20), child.wait()).await??;
                Ok(exit.code())
            }
            Running::Task { stop, task } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                task.await??;
                Ok(Some(0))
            }
        }
    }
}

impl Drop for TestCore {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Process(child) => {
                let _ = child.start_kill();
            }
            Running::Task { stop, task } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                task.abort();
            }
        }
    }
}

impl TestCore {
    /// A device-user assertion for `user` from the core's development issuer, as the README's
    /// `podconnect-server dev-assertion` command prints it.
    pub async fn device_assertion(&self, user: &str) -> String {
        let output = crate::process::command(&server_binary().expect("the server binary"))
            .args(["dev-assertion", "--user", user, "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .await
            .expect("dev-assertion runs");
        assert!(output.status.success(), "dev-assertion failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("an assertion is ASCII").trim().to_owned()
    }
}

async fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status().await.expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// `Ok` once every thread of `pid` is stopped ('T' in its `/proc` stat), else the threads that
/// still run.
fn threads_not_stopped(pid: u32) -> Result<(), Vec<String>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the core's threads are listed in /proc");
    let running: Vec<String> = tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            // The state follows the command name, which is in parentheses and may hold anything.
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            (state != 'T').then(|| format!("{}: {state}", path.display()))
        })
        .collect();
    if running.is_empty() { Ok(()) } else { Err(running) }
}

/// The `podconnect-server` binary next to this test executable (built by `cargo build`).
pub fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("unexpected test executable location")?;
    let binary = profile_dir.join("podconnect-server");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins`",
        binary.display()
    );
    Ok(binary)
}
