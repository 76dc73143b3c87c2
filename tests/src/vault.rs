//! `TestVault`: starts the real `podconnect-vault` binary on `127.0.0.1:0` with a throwaway PKI
//! (a server CA and the vault's localhost certificate, and a client CA from `pki` whose client
//! certificates the vault trusts), and hands out clients that reach it over mutual TLS.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use proto::vault::v1::vault_service_client::VaultServiceClient;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use tokio::process::{Child, Command};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use vault::{GrpcVault, GrpcVaultConfig};

use crate::pki::{ClientCert, TestCa};

/// How long the vault may take to print its ready line before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The time limit of every call a test client makes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for a vault under test; each becomes the flag an operator would type.
#[derive(Default, Clone)]
pub struct VaultBuilder {
    args: Vec<String>,
    data_dir: Option<PathBuf>,
}

impl VaultBuilder {
    pub fn new() -> Self {
        VaultBuilder::default()
    }

    fn flag(mut self, flag: &str, value: String) -> Self {
        self.args.push(flag.to_owned());
        self.args.push(value);
        self
    }

    pub fn max_connections(self, connections: u32) -> Self {
        self.flag("--max-connections", connections.to_string())
    }

    pub fn max_concurrent_calls(self, calls: u32) -> Self {
        self.flag("--max-concurrent-calls", calls.to_string())
    }

    pub fn request_timeout(self, limit: Duration) -> Self {
        self.flag("--request-timeout", humantime::format_duration(limit).to_string())
    }

    /// The log filter (`--log`), e.g. "debug".
    pub fn log_filter(self, filter: &str) -> Self {
        self.flag("--log", filter.to_owned())
    }

    /// Reuses a data folder (to test what persists across restarts).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Starts the real `podconnect-vault` binary.
    pub async fn spawn(self) -> anyhow::Result<TestVault> {
        let temp = tempfile::tempdir()?;
        let data_dir = self.data_dir.clone().unwrap_or_else(|| temp.path().join("data"));
        let server = ServerPki::new();
        let client_ca = TestCa::new("podconnect vault client CA");
        let tls_cert = temp.path().join("vault.pem");
        let tls_key = temp.path().join("vault.key");
        let client_ca_file = temp.path().join("client-ca.pem");
        std::fs::write(&tls_cert, &server.cert_pem)?;
        std::fs::write(&tls_key, &server.key_pem)?;
        client_ca.write(&client_ca_file);

        let log_path = temp.path().join("vault.log");
        let log = std::fs::File::create(&log_path)?;
        let mut command = crate::process::command(&vault_binary()?);
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .arg("--tls-cert")
            .arg(&tls_cert)
            .arg("--tls-key")
            .arg(&tls_key)
            .arg("--client-ca")
            .arg(&client_ca_file)
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = command.spawn().context("cannot start podconnect-vault")?;
        let Some(ready) = crate::process::ready_line::<ReadyLine>(&mut child, START_TIMEOUT).await? else {
            let status = child.wait().await?;
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!("the vault exited ({status}) before listening:\n{log}");
        };
        let client = client_ca.client("podconnect core");
        Ok(TestVault {
            addr: ready.grpc,
            data_dir,
            server_ca_pem: server.ca_pem,
            client_ca,
            client,
            log_path,
            child,
            _temp: temp,
        })
    }
}

/// What the vault's ready line says.
#[derive(serde::Deserialize)]
struct ReadyLine {
    grpc: std::net::SocketAddr,
}

/// A running vault. Dropping it kills the process.
pub struct TestVault {
    pub addr: std::net::SocketAddr,
    /// Where the vault keeps its SQLite file.
    pub data_dir: PathBuf,
    /// The CA that signed the vault's server certificate (what its clients trust).
    pub server_ca_pem: String,
    /// The CA the vault trusts for client certificates.
    pub client_ca: TestCa,
    /// A client certificate the vault trusts.
    pub client: ClientCert,
    log_path: PathBuf,
    child: Child,
    _temp: tempfile::TempDir,
}

impl TestVault {
    /// Starts the binary with default options.
    pub async fn start() -> TestVault {
        VaultBuilder::new().spawn().await.expect("the vault starts")
    }

    pub fn builder() -> VaultBuilder {
        VaultBuilder::new()
    }

    /// `https://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The configuration the core would use, presenting `client`.
    pub fn config_for(&self, client: &ClientCert) -> GrpcVaultConfig {
        GrpcVaultConfig {
            endpoint: self.endpoint(),
            ca_pem: self.server_ca_pem.clone().into_bytes(),
            client_cert_pem: client.cert_pem.clone().into_bytes(),
            client_key_pem: client.key_pem.clone().into_bytes(),
            timeout: CALL_TIMEOUT,
        }
    }

    /// The vault as the core reaches it, with a trusted client certificate.
    pub fn grpc_vault(&self) -> GrpcVault {
        GrpcVault::connect(self.config_for(&self.client)).expect("a valid vault configuration")
    }

    /// The generated client over TLS trusting the vault's CA, presenting `identity` if any: for
    /// requests `GrpcVault` would never send.
    pub fn raw_client(&self, identity: Option<&ClientCert>) -> anyhow::Result<VaultServiceClient<Channel>> {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.server_ca_pem));
        if let Some(client) = identity {
            tls = tls.identity(Identity::from_pem(&client.cert_pem, &client.key_pem));
        }
        let channel =
            Channel::from_shared(self.endpoint())?.tls_config(tls)?.timeout(CALL_TIMEOUT).connect_timeout(CALL_TIMEOUT);
        Ok(VaultServiceClient::new(channel.connect_lazy()))
    }

    /// The generated client over plaintext HTTP/2 (which the vault must refuse).
    pub fn plaintext_client(&self) -> anyhow::Result<VaultServiceClient<Channel>> {
        let channel =
            Channel::from_shared(format!("http://{}", self.addr))?.timeout(CALL_TIMEOUT).connect_timeout(CALL_TIMEOUT);
        Ok(VaultServiceClient::new(channel.connect_lazy()))
    }

    /// Every file in the data folder with its bytes (the database and its WAL).
    pub fn files_on_disk(&self) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        Ok(crate::disk::files_below(&self.data_dir))
    }

    /// What the binary wrote to standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub async fn terminate(&mut self) -> anyhow::Result<Option<i32>> {
        let pid = self.child.id().context("the vault already exited")?;
        let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        anyhow::ensure!(status.success(), "kill failed");
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await??;
        Ok(exit.code())
    }
}

impl Drop for TestVault {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The vault's server identity: a CA of its own and a certificate for localhost and 127.0.0.1.
struct ServerPki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl ServerPki {
    fn new() -> ServerPki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("valid params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca.distinguished_name.push(DnType::CommonName, "podconnect vault server CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("key generation");
        let ca_pem = ca.self_signed(&ca_key).expect("self-signed CA").pem();
        let issuer = Issuer::new(ca, ca_key);

        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("valid params");
        leaf.distinguished_name.push(DnType::CommonName, "podconnect vault");
        leaf.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("key generation");
        let cert_pem = leaf.signed_by(&key, &issuer).expect("signed server certificate").pem();
        ServerPki { ca_pem, cert_pem, key_pem: key.serialize_pem() }
    }
}

/// The `podconnect-vault` binary next to this test executable (built by `cargo build`).
pub fn vault_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("unexpected test executable location")?;
    let binary = profile_dir.join("podconnect-vault");
    anyhow::ensure!(
        binary.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins`",
        binary.display()
    );
    Ok(binary)
}
