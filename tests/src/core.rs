//! `TestCore`: starts the core with chosen options and stops it when dropped. Readiness comes from
//! the server's own "listening on" line (binary) or its ready callback (in-process): no sleeps.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser as _;
use server::config::{Cli, Config};
use server::store::memory::MemoryStore;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// How long a server may take to say it is listening before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for a core under test; each becomes a command-line flag.
#[derive(Default, Clone)]
pub struct CoreBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    binary: Option<PathBuf>,
}

impl CoreBuilder {
    pub fn new() -> Self {
        CoreBuilder::default()
    }

    /// Adds a raw flag (and value), as an operator would type it.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn idle_timeout(self, value: &str) -> Self {
        self.arg("--session-idle-timeout").arg(value)
    }

    pub fn absolute_timeout(self, value: &str) -> Self {
        self.arg("--session-absolute-timeout").arg(value)
    }

    /// Client certificates from the CA in `ca_file`: `mode` is "required" or "optional".
    pub fn client_certificates(self, ca_file: &Path, mode: &str) -> Self {
        self.arg("--client-ca").arg(ca_file.display().to_string()).arg("--client-auth").arg(mode)
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
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

    /// Starts the real `podconnect-server` binary.
    pub async fn spawn(self) -> anyhow::Result<TestCore> {
        let temp = tempfile::tempdir()?;
        let data_dir = self.data_dir.clone().unwrap_or_else(|| temp.path().join("data"));
        let log_path = temp.path().join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let binary = match &self.binary {
            Some(binary) => binary.clone(),
            None => server_binary()?,
        };
        let mut command = Command::new(binary);
        command
            .args(["--listen", "127.0.0.1:0", "--pull-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        // A developer's own PODCONNECT_* settings must not leak into the server under test.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PODCONNECT_") && !self.env.iter().any(|(k, _)| key == k.as_str()) {
                command.env_remove(&key);
            }
        }
        let mut child = command.spawn().context("cannot start podconnect-server")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut dev_ca = None;
        let mut pull_addr = None;
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            let mut addr = None;
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("podconnect-server listening on ") {
                    let (scheme, host) = rest.split_once("://").unwrap_or(("https", rest));
                    addr = Some(host.to_owned());
                    // Over TLS the development CA line follows, unless a certificate was configured;
                    // the config may say which, so peek at the data folder.
                    let dev = data_dir.join("tls").join("dev-ca.pem");
                    if scheme == "http" || !dev.exists() {
                        break;
                    }
                } else if let Some(rest) = line.strip_prefix("pull links: ") {
                    let host = rest.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_default();
                    pull_addr = host.parse().ok();
                } else if let Some(rest) = line.strip_prefix("development CA: ") {
                    dev_ca = rest.split(" (").next().map(PathBuf::from);
                    break;
                }
            }
            anyhow::Ok(addr)
        })
        .await
        .context("the server did not report listening in time")??;
        let Some(addr) = addr else {
            let status = child.wait().await?;
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the server exited ({status}) before listening:\n{log}");
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(TestCore {
            addr: addr.parse()?,
            pull_addr,
            dev_ca,
            data_dir,
            log_path: Some(log_path),
            running: Running::Process(child),
            store: None,
            services: None,
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
        let operator_token = self.env.iter().find(|(k, _)| k == "PODCONNECT_OPERATOR_TOKEN").map(|(_, v)| v.clone());
        let config = Config::resolve(Cli::try_parse_from(&args)?, operator_token)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let store = MemoryStore::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(server::app::run(
            config,
            listener,
            store.clone(),
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
            pull_addr: Some(ready.pull_addr),
            dev_ca: ready.dev_ca,
            data_dir,
            log_path: None,
            running: Running::Task { stop: Some(stop), task },
            store: Some(store),
            services: Some(ready.services),
            _temp: temp,
        })
    }
}

enum Running {
    Process(Child),
    Task { stop: Option<oneshot::Sender<()>>, task: tokio::task::JoinHandle<anyhow::Result<()>> },
}

/// A running core. Dropping it stops the server.
pub struct TestCore {
    pub addr: std::net::SocketAddr,
    /// The core's pull-link listener (over TLS unless started with --pull-plaintext).
    pub pull_addr: Option<std::net::SocketAddr>,
    /// The development CA the core generated (absent with --insecure-plaintext or --tls-cert).
    pub dev_ca: Option<PathBuf>,
    pub data_dir: PathBuf,
    log_path: Option<PathBuf>,
    running: Running,
    store: Option<Arc<MemoryStore>>,
    services: Option<server::app::Services>,
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
