//! `ReferenceProxy`: a real HAProxy (Debian's `haproxy`) in front of a `TestCore`, relaying gRPC
//! over HTTP/2 with TLS on both sides on one thread. The gateway bench measures it beside the
//! gateway, so the gateway's cost is judged against a mature proxy on the same machine.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

use crate::core::TestCore;
use crate::wait::try_eventually;

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running HAProxy. Dropping it kills the process.
pub struct ReferenceProxy {
    pub addr: std::net::SocketAddr,
    ca: PathBuf,
    child: Child,
    _temp: tempfile::TempDir,
}

impl ReferenceProxy {
    /// Whether `haproxy` can be run here.
    pub fn available() -> bool {
        std::process::Command::new("haproxy")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Starts HAProxy on a free loopback port, serving the core's development certificate and
    /// verifying the core's, with one thread and upstream HTTP/2 connections reused across calls.
    pub async fn start(core: &TestCore) -> anyhow::Result<ReferenceProxy> {
        let temp = tempfile::tempdir()?;
        let ca = core.dev_ca.clone().context("the core must run with its development CA")?;
        let tls = core.data_dir.join("tls");
        // HAProxy reads the certificate and its key from one file.
        let bundle = temp.path().join("localhost.pem");
        let pem =
            std::fs::read_to_string(tls.join("localhost.pem"))? + &std::fs::read_to_string(tls.join("localhost.key"))?;
        std::fs::write(&bundle, pem)?;
        // HAProxy cannot report a port it picked, so take a free one (bench use only).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let config = format!(
            "global\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  \
             timeout server 60s\nfrontend browsers\n  bind {addr} ssl crt {bundle} alpn h2\n  \
             default_backend core\nbackend core\n  http-reuse always\n  \
             server core {core} ssl verify required ca-file {ca} verifyhost localhost sni str(localhost) alpn h2\n",
            bundle = bundle.display(),
            core = core.addr,
            ca = ca.display(),
        );
        let config_path = temp.path().join("haproxy.cfg");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(temp.path().join("haproxy.log"))?;
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&config_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start haproxy")?;
        let mut proxy = ReferenceProxy { addr, ca, child, _temp: temp };
        let log = proxy._temp.path().join("haproxy.log");
        let child = &mut proxy.child;
        try_eventually(&format!("haproxy to listen on {addr}"), START_TIMEOUT, || {
            let exited = child.try_wait();
            let log = &log;
            async move {
                if let Some(status) = exited? {
                    bail!("haproxy exited ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
                }
                anyhow::Ok(tokio::net::TcpStream::connect(addr).await)
            }
        })
        .await?;
        Ok(proxy)
    }

    /// The process id (`None` once it exited).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A gRPC channel to the core through the proxy, trusting the development CA.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        let ca = std::fs::read_to_string(&self.ca)?;
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
        Ok(Channel::from_shared(format!("https://{}", self.addr))?.tls_config(tls)?.connect().await?)
    }
}
