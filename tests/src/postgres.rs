//! PostgreSQL for tests. `TestDatabase::create` gives a fresh, uniquely named database, dropped
//! (`WITH (FORCE)`) with the value, on the test server: the one `PODCONNECT_TEST_POSTGRES` names
//! (an admin database's URL, or `start`), else the machine's own on 127.0.0.1:5432 (user
//! postgres, trust) when it answers, else one this process starts once. `TestPostgres` is a
//! private server from Debian's `postgresql` binaries, for what a shared server cannot do: TLS,
//! passwords, going down. It runs as the `postgres` user when the tests run as root.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::{Connection as _, PgConnection};
use tokio::sync::OnceCell;

use crate::pki::ClientCert;
use crate::wait::try_eventually;

/// Names the server `TestDatabase` uses: an admin database's URL, or `start` for one of this
/// process's own.
pub const SERVER_ENV: &str = "PODCONNECT_TEST_POSTGRES";

/// The machine's own server, as it runs here and in CI.
const LOCAL_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long the machine's server may take to answer before the harness starts its own.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a started server may take to accept connections (initdb not included).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh database on the test server, dropped with the value.
pub struct TestDatabase {
    pub name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// A database on the shared test server.
    pub async fn create() -> anyhow::Result<TestDatabase> {
        let admin = shared_admin_url().await?;
        TestDatabase::create_on(&admin, "").await
    }

    /// A database on the shared test server whose default collation is ICU's `locale` (say
    /// `en-US`, where "a" sorts before "B"): what a production database often has.
    pub async fn create_with_icu_locale(locale: &str) -> anyhow::Result<TestDatabase> {
        let admin = shared_admin_url().await?;
        TestDatabase::create_on(&admin, &format!(" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{locale}'")).await
    }

    /// A database on `server`.
    pub async fn create_on_server(server: &TestPostgres) -> anyhow::Result<TestDatabase> {
        TestDatabase::create_on(&server.admin_url(), "").await
    }

    async fn create_on(admin_url: &str, clauses: &str) -> anyhow::Result<TestDatabase> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut random = [0u8; 4];
        getrandom::fill(&mut random).map_err(|err| anyhow::anyhow!("no randomness: {err}"))?;
        let name = format!(
            "podconnect_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            random.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let mut admin = PgConnection::connect(admin_url).await.context("connecting to the test server")?;
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\"{clauses}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        admin.close().await?;
        Ok(TestDatabase { url: with_database(admin_url, &name), name, admin_url: admin_url.to_owned() })
    }

    /// The URL of this database (with the server's user and password).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and may run on a runtime's thread: a thread of its own with a small
        // runtime drops the database, and is waited for, so nothing is left when the test ends.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin).await?;
                admin.close().await?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            // A server a test stopped took its databases with it.
            Ok(Err(err)) => eprintln!("could not drop test database {}: {err:#}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}

/// `url` with its database (path) replaced by `database`; the query stays.
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(end);
    let query = after.find(['?', '#']).map_or("", |i| &after[i..]);
    format!("{scheme}://{authority}/{database}{query}")
}

/// Where `TestDatabase::create` makes its databases.
enum Shared {
    Url(String),
    /// Kept for the process's life: when the process exits, its pipe to the supervisor closes,
    /// and the supervisor stops the server and removes its files.
    Started(TestPostgres),
}

static SHARED: OnceCell<Shared> = OnceCell::const_new();

async fn shared_admin_url() -> anyhow::Result<String> {
    let shared = SHARED
        .get_or_try_init(|| async {
            match std::env::var(SERVER_ENV) {
                Ok(value) if value == "start" => {
                    return Ok(Shared::Started(TestPostgres::start(PgOptions::new()).await?));
                }
                Ok(url) if !url.is_empty() => return Ok(Shared::Url(url)),
                _ => {}
            }
            if answers(LOCAL_ADMIN_URL).await {
                return Ok(Shared::Url(LOCAL_ADMIN_URL.to_owned()));
            }
            anyhow::Ok(Shared::Started(TestPostgres::start(PgOptions::new()).await?))
        })
        .await?;
    Ok(match shared {
        Shared::Url(url) => url.clone(),
        Shared::Started(server) => server.admin_url(),
    })
}

async fn answers(url: &str) -> bool {
    match tokio::time::timeout(PROBE_TIMEOUT, PgConnection::connect(url)).await {
        Ok(Ok(connection)) => connection.close().await.is_ok(),
        _ => false,
    }
}

/// How a private server is set up.
#[derive(Default)]
pub struct PgOptions {
    tls: Option<ClientCert>,
    password: Option<String>,
}

impl PgOptions {
    pub fn new() -> PgOptions {
        PgOptions::default()
    }

    /// Serves TLS (`ssl = on`) with this certificate and key; plain connections still work.
    pub fn tls(mut self, certificate: ClientCert) -> PgOptions {
        self.tls = Some(certificate);
        self
    }

    /// TCP connections must log in with a password (SCRAM); the `postgres` user's is this one.
    pub fn password(mut self, password: &str) -> PgOptions {
        self.password = Some(password.to_owned());
        self
    }
}

/// A PostgreSQL server of the test's own, on a free loopback port, its files and unix socket in
/// a temporary folder. Dropping it (or `stop`) stops it and removes the folder.
pub struct TestPostgres {
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    /// Closing it tells the supervisor to stop the server and remove its folder.
    pipe: Option<ChildStdin>,
    supervisor: Option<Child>,
}

/// Runs the server and waits for its standard input to close (the value is dropped, or the test
/// process exits however it does); then stops the server with a fast shutdown and removes the
/// folder. The server's pid is written for `exited`.
const SUPERVISOR: &str = r#"dir=$1; shift
"$@" 2>"$dir/log" &
pid=$!
echo "$pid" >"$dir/pid"
cat >/dev/null
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir""#;

impl TestPostgres {
    /// Initialises and starts a server, and returns once it accepts connections.
    pub async fn start(options: PgOptions) -> anyhow::Result<TestPostgres> {
        let bin = server_binaries()?;
        let owner = server_owner()?;
        let dir = tempfile::Builder::new().prefix("podconnect-postgres-").tempdir()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let data = dir.path().join("data");

        let mut initdb = tokio::process::Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]);
        initdb.arg("--auth-local=trust");
        if let Some(password) = &options.password {
            let file = dir.path().join("password");
            write_owned(&file, password.as_bytes(), owner)?;
            initdb.arg(format!("--pwfile={}", file.display())).arg("--auth-host=scram-sha-256");
        } else {
            initdb.arg("--auth-host=trust");
        }
        as_owner(&mut initdb, owner, dir.path());
        let done = initdb.output().await.context("running initdb")?;
        if !done.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&done.stderr));
        }

        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={port}"),
            format!("unix_socket_directories={}", dir.path().display()),
            // A throwaway cluster: durability costs time and buys nothing.
            "fsync=off".to_owned(),
            "full_page_writes=off".to_owned(),
            "synchronous_commit=off".to_owned(),
        ];
        if let Some(certificate) = &options.tls {
            let cert = dir.path().join("server.crt");
            let key = dir.path().join("server.key");
            write_owned(&cert, certificate.cert_pem.as_bytes(), owner)?;
            write_owned(&key, certificate.key_pem.as_bytes(), owner)?;
            settings.push("ssl=on".to_owned());
            settings.push(format!("ssl_cert_file={}", cert.display()));
            settings.push(format!("ssl_key_file={}", key.display()));
        }
        let mut command = std::process::Command::new("sh");
        command.arg("-c").arg(SUPERVISOR).arg("sh").arg(dir.path()).arg(bin.join("postgres")).arg("-D").arg(&data);
        for setting in &settings {
            command.arg("-c").arg(setting);
        }
        command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).current_dir(dir.path());
        if let Some((uid, gid)) = owner {
            use std::os::unix::process::CommandExt as _;
            command.uid(uid).gid(gid);
        }
        // From here on the supervisor removes the folder.
        let dir = dir.keep();
        let mut supervisor = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(err).context("starting the PostgreSQL supervisor (sh)");
            }
        };
        let server = TestPostgres {
            port,
            dir,
            password: options.password,
            pipe: supervisor.stdin.take(),
            supervisor: Some(supervisor),
        };

        let admin_url = server.admin_url();
        try_eventually("PostgreSQL to accept connections", START_TIMEOUT, || async {
            if server.exited() {
                bail!("PostgreSQL exited while starting: {}", server.log());
            }
            Ok(match PgConnection::connect(&admin_url).await {
                Ok(connection) => connection.close().await.map_err(|err| err.to_string()),
                Err(err) => Err(err.to_string()),
            })
        })
        .await?;
        Ok(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `postgres` superuser's URL for `database`, with the password if there is one.
    pub fn url(&self, database: &str) -> String {
        let password = self.password.as_deref().map(|p| format!(":{}", percent_encode(p))).unwrap_or_default();
        format!("postgres://postgres{password}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// Stops the server (fast shutdown: open connections are cut) and removes its files.
    pub fn stop(&mut self) {
        drop(self.pipe.take());
        if let Some(mut supervisor) = self.supervisor.take() {
            let _ = supervisor.wait();
        }
    }

    /// Whether the server process has ended (it stays a zombie until the supervisor reaps it,
    /// so its pid is not reused meanwhile).
    fn exited(&self) -> bool {
        let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) else { return false };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) else { return true };
        // "pid (comm) S …": the state follows the last parenthesis.
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start()).unwrap_or_default();
        state.starts_with('Z') || state.starts_with('X')
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_else(|err| format!("(no log: {err})"))
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<version>/bin`).
fn server_binaries() -> anyhow::Result<PathBuf> {
    let missing = "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/postgres); \
                   install them with `apt-get install postgresql`";
    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir("/usr/lib/postgresql").context(missing)? {
        let entry = entry?;
        let bin = entry.path().join("bin");
        let version = entry.file_name().to_string_lossy().parse::<u32>().ok();
        if let Some(version) = version
            && bin.join("postgres").is_file()
            && bin.join("initdb").is_file()
        {
            found.push((version, bin));
        }
    }
    found.into_iter().max().map(|(_, bin)| bin).context(missing)
}

/// The `postgres` user's uid and gid when the tests run as root (initdb and postgres refuse to
/// run as root); `None` when they run as anyone else, who runs the server as themselves.
fn server_owner() -> anyhow::Result<Option<(u32, u32)>> {
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self")?.uid() != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if let [name, _, uid, gid, ..] = fields[..]
            && name == "postgres"
        {
            return Ok(Some((uid.parse()?, gid.parse()?)));
        }
    }
    bail!(
        "the tests run as root and there is no postgres user to run PostgreSQL as; `apt-get install postgresql` creates it"
    )
}

fn as_owner(command: &mut tokio::process::Command, owner: Option<(u32, u32)>, dir: &Path) {
    command.current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}

/// Writes a file only its owner (the server's user) can read: PostgreSQL refuses a key others
/// can read.
fn write_owned(path: &Path, contents: &[u8], owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    std::fs::write(path, contents)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Everything but ASCII letters and digits as `%XX`, for a password in a URL.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
