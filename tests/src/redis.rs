//! Redis for tests: a standalone server or a three-node Redis Cluster, each node a local
//! `redis-server` process (Debian's `redis-server` package) on a free loopback port, in a folder
//! of its own, killed when dropped. Each test gets servers of its own, so what a test finds in
//! Redis is what its cores wrote.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use crate::wait::try_eventually;

/// How long a server may take to answer PING, and a cluster to agree on its slots.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One `redis-server` process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    cluster: bool,
    /// Serves TLS only (its certificate and key files in `dir`).
    tls: bool,
    _temp: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// A standalone server.
    pub async fn start() -> anyhow::Result<RedisServer> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().to_owned();
        let mut server =
            RedisServer { child: None, port: free_port()?, dir, cluster: false, tls: false, _temp: Some(temp) };
        server.run().await?;
        Ok(server)
    }

    /// A standalone server speaking only TLS, with `certificate` (for localhost), answering at
    /// `rediss://localhost:<port>`.
    pub async fn start_tls(certificate: &crate::pki::ClientCert) -> anyhow::Result<RedisServer> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().to_owned();
        std::fs::write(dir.join("server.pem"), &certificate.cert_pem)?;
        std::fs::write(dir.join("server.key"), &certificate.key_pem)?;
        let mut server =
            RedisServer { child: None, port: free_port()?, dir, cluster: false, tls: true, _temp: Some(temp) };
        server.run().await?;
        Ok(server)
    }

    async fn cluster_node(dir: PathBuf) -> anyhow::Result<RedisServer> {
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer { child: None, port: free_port()?, dir, cluster: true, tls: false, _temp: None };
        server.run().await?;
        Ok(server)
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(redis_server_binary()?);
        if self.tls {
            command.args(["--port", "0", "--tls-port", &self.port.to_string(), "--tls-auth-clients", "no"]);
            command.arg("--tls-cert-file").arg(self.dir.join("server.pem"));
            command.arg("--tls-key-file").arg(self.dir.join("server.key"));
        } else {
            command.args(["--port", &self.port.to_string()]);
        }
        command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--loglevel", "warning", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir);
        if self.cluster {
            command.args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
            command.args(["--cluster-node-timeout", "2000"]);
        }
        let log = std::fs::File::create(self.dir.join("redis.log"))?;
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
        let mut child = command.spawn().context("cannot start redis-server")?;
        let port = self.port;
        try_eventually("redis-server to listen", START_TIMEOUT, || {
            let exited = child.try_wait();
            async move {
                if let Ok(Some(status)) = exited {
                    bail!("redis-server exited ({status})");
                }
                Ok(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok())
            }
        })
        .await?;
        if !self.tls {
            let url = self.url();
            try_eventually("redis-server to answer PING", START_TIMEOUT, || {
                let url = url.clone();
                async move { anyhow::Ok(ping(&url).await) }
            })
            .await?;
        }
        self.child = Some(child);
        Ok(())
    }

    pub fn url(&self) -> String {
        if self.tls { format!("rediss://localhost:{}", self.port) } else { format!("redis://127.0.0.1:{}", self.port) }
    }

    /// The server's process id while it runs (for benchmarks reading its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Kills the server at once (SIGKILL): connections drop, nothing is saved.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port (empty, as a restart without persistence is).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await;
        self.run().await
    }

    /// Every key on this server with its time to live in milliseconds (-1: none).
    pub async fn keys_with_ttl(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) =
                redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000).query_async(&mut connection).await?;
            for key in batch {
                let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut connection).await?;
                keys.push((key, ttl));
            }
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Every value on this server (strings and set members), for searching plaintext.
    pub async fn values(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let client = redis::Client::open(self.url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let mut values = Vec::new();
        for (key, _) in self.keys_with_ttl().await? {
            let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut connection).await?;
            match kind.as_str() {
                "string" => values.push(redis::cmd("GET").arg(&key).query_async(&mut connection).await?),
                "set" => {
                    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(&key).query_async(&mut connection).await?;
                    values.extend(members);
                }
                _ => {}
            }
        }
        Ok(values)
    }
}

/// Three primaries, no replicas, every slot assigned.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _temp: tempfile::TempDir,
}

impl RedisCluster {
    pub async fn start() -> anyhow::Result<RedisCluster> {
        let temp = tempfile::tempdir()?;
        let mut nodes = Vec::new();
        for i in 0..3 {
            nodes.push(RedisServer::cluster_node(temp.path().join(format!("node-{i}"))).await?);
        }
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .context("cannot run redis-cli (apt-get install redis-tools)")?;
        if !created.status.success() {
            bail!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&created.stdout));
        }
        for node in &nodes {
            let url = node.url();
            try_eventually("the Redis Cluster to agree on its slots", START_TIMEOUT, || {
                let url = url.clone();
                async move {
                    let client = redis::Client::open(url)?;
                    let info: Option<String> = match client.get_multiplexed_async_connection().await {
                        Ok(mut c) => redis::cmd("CLUSTER").arg("INFO").query_async(&mut c).await.ok(),
                        Err(_) => None,
                    };
                    Ok(match info {
                        Some(info) if info.contains("cluster_state:ok") => Ok(()),
                        other => Err(other),
                    })
                }
            })
            .await?;
        }
        Ok(RedisCluster { nodes, _temp: temp })
    }

    /// The URLs as `--ephemeral-store` takes them: every node, comma-separated.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(RedisServer::url).collect::<Vec<_>>().join(",")
    }

    /// Every key of every node with its time to live in milliseconds.
    pub async fn keys_with_ttl(&self) -> anyhow::Result<Vec<(String, i64)>> {
        let mut keys = Vec::new();
        for node in &self.nodes {
            keys.extend(node.keys_with_ttl().await?);
        }
        Ok(keys)
    }

    /// Every value of every node.
    pub async fn values(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut values = Vec::new();
        for node in &self.nodes {
            values.extend(node.values().await?);
        }
        Ok(values)
    }
}

async fn ping(url: &str) -> Option<()> {
    let client = redis::Client::open(url).ok()?;
    let mut connection =
        tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await.ok()?.ok()?;
    let pong: String = redis::cmd("PING").query_async(&mut connection).await.ok()?;
    (pong == "PONG").then_some(())
}

fn redis_server_binary() -> anyhow::Result<PathBuf> {
    for candidate in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if std::path::Path::new(candidate).exists() {
            return Ok(candidate.into());
        }
    }
    bail!("redis-server is not installed: apt-get install redis-server (scripts/test.sh does)")
}

/// A loopback port nobody listens on now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
