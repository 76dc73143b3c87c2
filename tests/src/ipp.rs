//! `TestPrinter`: a real IPP Everywhere printer (CUPS `ippeveprinter`) on loopback for the IPP
//! delivery tests, over `ipp://` and, with a throwaway self-signed certificate, `ipps://`.
//!
//! `ippeveprinter` will not start without an Avahi daemon even with `-r off`, so the harness
//! also makes sure one runs, on the loopback interface only and publishing nothing, started
//! once per machine (a lock file guards it across test processes) and left running for the
//! next test run.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::wait::try_eventually;

/// What to do when the printer tools are missing. Tests fail with it; they never skip.
pub const INSTALL_HINT: &str = "ippeveprinter, avahi-daemon or dbus-daemon is missing: run the README test command: \
     it installs cups-ipp-utils and avahi-daemon (Debian packages cups-ipp-utils avahi-daemon dbus)";

/// How long a printer may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the system D-Bus and Avahi may take to come up.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(15);
/// Where the shared Avahi's configuration, log and start lock live.
const MDNS_DIR: &str = "/tmp/podconnect-test-mdns";
const DBUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// The loopback-only Avahi configuration: no other interface, no address or host records.
const AVAHI_CONF: &str = "\
[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=lo
enable-dbus=yes

[wide-area]
enable-wide-area=no

[publish]
publish-addresses=no
publish-hinfo=no
publish-workstation=no
publish-domain=no
publish-aaaa-on-ipv4=no
publish-a-on-ipv6=no

[reflector]
enable-reflector=no
";

/// Whether the tools the harness runs are on this machine. Not a skip switch: `start` fails
/// with `INSTALL_HINT` when this is false.
pub fn ippeveprinter_installed() -> bool {
    ["ippeveprinter", "avahi-daemon", "dbus-daemon"].iter().all(|tool| find_tool(tool).is_some())
}

/// A tool on PATH or in the sbin folders, which a non-login PATH may lack.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn tool(name: &str) -> anyhow::Result<PathBuf> {
    find_tool(name).with_context(|| format!("{name} not found. {INSTALL_HINT}"))
}

/// Options for a printer under test.
#[derive(Clone, Debug)]
pub struct TestPrinterBuilder {
    formats: Vec<String>,
    tls: bool,
    keep_files: bool,
    processing_time: Duration,
    duplex: bool,
    color: bool,
    loaded: Vec<(String, String)>,
}

impl Default for TestPrinterBuilder {
    fn default() -> Self {
        TestPrinterBuilder {
            formats: vec!["application/pdf".into(), "image/jpeg".into(), "image/pwg-raster".into()],
            tls: false,
            keep_files: true,
            processing_time: Duration::ZERO,
            duplex: true,
            color: true,
            loaded: Vec::new(),
        }
    }
}

impl TestPrinterBuilder {
    /// The document formats the printer accepts (`-f`); it always adds application/octet-stream.
    pub fn formats(mut self, formats: &[&str]) -> Self {
        self.formats = formats.iter().map(|f| f.to_string()).collect();
        self
    }

    /// Also serve `ipps://` with a fresh self-signed certificate (`-K`).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Whether printed documents stay in the spool folder (`-k`); on by default.
    pub fn keep_files(mut self, keep: bool) -> Self {
        self.keep_files = keep;
        self
    }

    /// How long the print engine takes per job. The printer runs a command per job (`-c`) that
    /// takes this long; zero completes jobs at once. A job canceled meanwhile ends `canceled`.
    pub fn processing_time(mut self, time: Duration) -> Self {
        self.processing_time = time;
        self
    }

    /// Report two-sided printing (`-2`); on by default.
    pub fn duplex(mut self, duplex: bool) -> Self {
        self.duplex = duplex;
        self
    }

    /// Report colour printing (`-s 10,10`); on by default.
    pub fn color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    /// The paper loaded, as (PWG media keyword, tray) pairs, e.g. `("iso_a4_210x297mm", "tray-1")`:
    /// the printer reports them in `media-ready` and `media-col-ready` (with 5 mm margins), the
    /// first as its default. Without this it reports ippeveprinter's own (Letter in "main").
    /// The printer is then described by an attributes file (`-a`), which also carries the
    /// formats, sides and colour set on this builder.
    pub fn loaded(mut self, media: &[(&str, &str)]) -> Self {
        self.loaded = media.iter().map(|(m, tray)| (m.to_string(), tray.to_string())).collect();
        self
    }

    /// The `-a` attributes file for `loaded` printers (ippeveprinter takes no `-f`, `-2` or `-s`
    /// with it).
    fn attributes_file(&self) -> anyhow::Result<String> {
        let mut conf = String::new();
        let formats: Vec<&str> = self.formats.iter().map(String::as_str).chain(["application/octet-stream"]).collect();
        conf += &format!("ATTR mimeMediaType document-format-supported {}\n", formats.join(","));
        conf += "ATTR mimeMediaType document-format-default application/octet-stream\n";
        let mut supported = vec!["iso_a4_210x297mm", "na_letter_8.5x11in", "iso_a3_297x420mm"];
        for (media, _) in &self.loaded {
            if !supported.contains(&media.as_str()) {
                supported.push(media);
            }
        }
        conf += &format!("ATTR keyword media-supported {}\n", supported.join(","));
        conf += &format!("ATTR keyword media-default {}\n", self.loaded[0].0);
        let ready: Vec<&str> = self.loaded.iter().map(|(m, _)| m.as_str()).collect();
        conf += &format!("ATTR keyword media-ready {}\n", ready.join(","));
        let mut collections = Vec::new();
        for (media, tray) in &self.loaded {
            let size = media.rsplit('_').next().unwrap_or_default();
            let (unit, per_mm) = if size.ends_with("in") { ("in", 2540.0) } else { ("mm", 100.0) };
            let (w, h) = size
                .trim_end_matches(unit)
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse::<f64>().ok()?, h.parse::<f64>().ok()?)))
                .with_context(|| format!("{media} is not a PWG media keyword with a size"))?;
            collections.push(format!(
                "{{\n  MEMBER collection media-size {{\n    MEMBER integer x-dimension {}\n    MEMBER integer \
                 y-dimension {}\n  }}\n  MEMBER keyword media-size-name {media}\n  MEMBER keyword media-source \
                 {tray}\n  MEMBER integer media-bottom-margin 500\n  MEMBER integer media-left-margin 500\n  \
                 MEMBER integer media-right-margin 500\n  MEMBER integer media-top-margin 500\n}}",
                (w * per_mm).round() as i64,
                (h * per_mm).round() as i64
            ));
        }
        conf += &format!("ATTR collection media-col-ready {}\n", collections.join(","));
        let sides = if self.duplex { "one-sided,two-sided-long-edge,two-sided-short-edge" } else { "one-sided" };
        conf += &format!("ATTR keyword sides-supported {sides}\nATTR keyword sides-default one-sided\n");
        let colors = if self.color { "auto,monochrome,color" } else { "auto,monochrome" };
        conf += &format!("ATTR keyword print-color-mode-supported {colors}\n");
        conf += "ATTR keyword print-color-mode-default auto\nATTR rangeOfInteger copies-supported 1-999\n";
        Ok(conf)
    }

    /// Starts the printer and waits until it answers an IPP request.
    pub async fn start(self) -> anyhow::Result<TestPrinter> {
        tool("ippeveprinter")?;
        ensure_mdns().await?;
        // A port picked free on 127.0.0.1 can still be taken on ::1 (ippeveprinter binds both),
        // or taken again before the printer binds it: try a few.
        let mut last_error = None;
        for _ in 0..3 {
            match self.start_once().await {
                Ok(printer) => return Ok(printer),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the printer did not start")))
    }

    async fn start_once(&self) -> anyhow::Result<TestPrinter> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("podconnect test {}-{n}", std::process::id());

        let temp = tempfile::tempdir()?;
        let spool_dir = temp.path().join("spool");
        std::fs::create_dir(&spool_dir)?;
        let log_path = temp.path().join("ippeveprinter.log");
        let command_path = temp.path().join("print-engine.sh");
        write_engine(&command_path, self.processing_time)?;

        let log = File::create(&log_path)?;
        let port = free_port()?;
        let mut command = Command::new(tool("ippeveprinter")?);
        command
            .args(["-v", "-r", "off", "-n", "localhost", "-p", &port.to_string(), "-d"])
            .arg(&spool_dir)
            .arg("-c")
            .arg(&command_path);
        if self.loaded.is_empty() {
            command.args(["-f", &self.formats.join(",")]).args(["-s", if self.color { "10,10" } else { "10,0" }]);
            if self.duplex {
                command.arg("-2");
            }
        } else {
            let conf = temp.path().join("printer.conf");
            std::fs::write(&conf, self.attributes_file()?)?;
            command.arg("-a").arg(&conf);
        }
        if self.keep_files {
            command.arg("-k");
        }
        let mut cert_sha256 = None;
        if self.tls {
            let keys = temp.path().join("keys");
            cert_sha256 = Some(write_localhost_cert(&keys)?);
            command.arg("-K").arg(&keys);
        }
        command
            .arg(&name)
            .current_dir(temp.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command.spawn().context("cannot start ippeveprinter")?;

        let uri = format!("ipp://localhost:{port}/ipp/print");
        let mut printer = TestPrinter {
            ipps_uri: self.tls.then(|| format!("ipps://localhost:{port}/ipp/print")),
            uri,
            cert_sha256,
            spool_dir,
            name,
            port,
            child: Some(child),
            log_path,
            _temp: temp,
        };
        printer.wait_ready().await?;
        Ok(printer)
    }
}

/// A running `ippeveprinter`. Dropping it kills the printer.
pub struct TestPrinter {
    /// `ipp://localhost:PORT/ipp/print` (also served by a TLS printer, on the same port).
    pub uri: String,
    /// `ipps://localhost:PORT/ipp/print` for a printer started with `tls()`.
    pub ipps_uri: Option<String>,
    /// SHA-256 of the TLS certificate's DER, the pin for `ipps_uri`.
    pub cert_sha256: Option<[u8; 32]>,
    /// Where the printer keeps the documents it printed (`-k`).
    pub spool_dir: PathBuf,
    /// The printer's (unique) service name.
    pub name: String,
    pub port: u16,
    child: Option<Child>,
    log_path: PathBuf,
    _temp: tempfile::TempDir,
}

/// A document the printer kept.
#[derive(Debug, Clone)]
pub struct SpooledFile {
    /// The file name, `<job-id>-<job-name>.<ext>`.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl SpooledFile {
    /// The IPP job id in the name.
    pub fn job_id(&self) -> Option<&str> {
        self.name.split_once('-').map(|(id, _)| id)
    }
}

impl TestPrinter {
    pub fn builder() -> TestPrinterBuilder {
        TestPrinterBuilder::default()
    }

    /// A PDF printer over `ipp://`.
    pub async fn start() -> anyhow::Result<TestPrinter> {
        TestPrinterBuilder::default().start().await
    }

    /// A PDF printer over `ipp://` and `ipps://` with a pinned self-signed certificate.
    pub async fn start_tls() -> anyhow::Result<TestPrinter> {
        TestPrinterBuilder::default().tls().start().await
    }

    /// The documents the printer kept, in job order; the print engine's `.prn` output is left
    /// out. A document that is still arriving may be short: use `wait_for_job_file`.
    pub fn spooled_files(&self) -> anyhow::Result<Vec<SpooledFile>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.spool_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".prn") || !entry.file_type()?.is_file() {
                continue;
            }
            files.push(SpooledFile { bytes: std::fs::read(entry.path())?, name });
        }
        files.sort_by_key(|file| file.job_id().and_then(|id| id.parse::<u64>().ok()));
        Ok(files)
    }

    /// The kept document of one job, waiting (bounded) until it has `expected_len` bytes.
    pub async fn wait_for_job_file(
        &self,
        job_id: &str,
        expected_len: usize,
        timeout: Duration,
    ) -> anyhow::Result<SpooledFile> {
        try_eventually(&format!("job {job_id}'s file to reach {expected_len} bytes"), timeout, || async {
            let found = self.spooled_files()?.into_iter().find(|file| file.job_id() == Some(job_id));
            anyhow::Ok(match found {
                Some(file) if file.bytes.len() >= expected_len => Ok(file),
                found => Err(found.map(|f| format!("{} bytes", f.bytes.len())).unwrap_or_else(|| "no file".into())),
            })
        })
        .await
    }

    /// The kept document of one job once it is the document whose SHA-256 (hex) is `sha256`
    /// (Job.document_sha256), waiting (bounded) while the printer writes it.
    pub async fn wait_for_job_document(
        &self,
        job_id: &str,
        sha256: &str,
        timeout: Duration,
    ) -> anyhow::Result<SpooledFile> {
        use sha2::Digest as _;
        try_eventually(&format!("job {job_id}'s document with SHA-256 {sha256}"), timeout, || async {
            let found = self.spooled_files()?.into_iter().find(|file| file.job_id() == Some(job_id));
            anyhow::Ok(match found {
                Some(file) if hex_digest(&sha2::Sha256::digest(&file.bytes)) == sha256 => Ok(file),
                found => {
                    Err(found.map(|f| format!("{} other bytes", f.bytes.len())).unwrap_or_else(|| "no file".into()))
                }
            })
        })
        .await
    }

    /// What the printer logged so far (`-v`), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the printer and waits for it to exit.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Polls until the printer answers Get-Printer-Attributes over plain HTTP, or fails if it
    /// exits first (a port clash, a bad option, no Avahi).
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("the printer is stopped")?;
        let this = &*self;
        let answered = try_eventually("ippeveprinter to answer", START_TIMEOUT, || {
            let exited = child.try_wait();
            async move {
                if let Some(status) = exited? {
                    bail!("ippeveprinter exited ({status}) before answering");
                }
                anyhow::Ok(this.answers_ipp().await.then_some(()))
            }
        })
        .await;
        self.child = Some(child);
        answered.with_context(|| format!("ippeveprinter's log:\n{}", self.log()))
    }

    async fn answers_ipp(&self) -> bool {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            let body = get_printer_attributes(&self.uri);
            let head = format!(
                "POST /ipp/print HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: application/ipp\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                self.port,
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            // The printer keeps the connection open whatever we ask: read the status line only.
            let mut answer = Vec::new();
            let mut buf = [0u8; 256];
            while answer.len() < 12 {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => answer.extend_from_slice(&buf[..n]),
                }
            }
            std::io::Result::Ok(answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.0 200"))
        };
        matches!(tokio::time::timeout(Duration::from_secs(2), exchange).await, Ok(Ok(true)))
    }
}

impl Drop for TestPrinter {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// A minimal IPP/2.0 Get-Printer-Attributes request (RFC 8010 encoding).
fn get_printer_attributes(printer_uri: &str) -> Vec<u8> {
    let mut body = vec![2, 0, 0x00, 0x0b, 0, 0, 0, 1, 0x01];
    for (tag, name, value) in [
        (0x47, "attributes-charset", "utf-8"),
        (0x48, "attributes-natural-language", "en"),
        (0x45, "printer-uri", printer_uri),
    ] {
        body.push(tag);
        body.extend((name.len() as u16).to_be_bytes());
        body.extend(name.as_bytes());
        body.extend((value.len() as u16).to_be_bytes());
        body.extend(value.as_bytes());
    }
    body.push(0x03);
    body
}

/// The print engine: ippeveprinter runs it per job with the document's path.
fn write_engine(path: &Path, time: Duration) -> anyhow::Result<()> {
    let script = if time.is_zero() {
        "#!/bin/sh\nexit 0\n".to_string()
    } else {
        format!("#!/bin/sh\nsleep {:.3}\n", time.as_secs_f64())
    };
    std::fs::write(path, script)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Writes `localhost.crt` and `localhost.key` (the names ippeveprinter's `-K` folder must hold
/// for `-n localhost`) and returns the SHA-256 of the certificate's DER.
fn write_localhost_cert(keys: &Path) -> anyhow::Result<[u8; 32]> {
    std::fs::create_dir_all(keys)?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::write(keys.join("localhost.crt"), cert.pem())?;
    std::fs::write(keys.join("localhost.key"), key.serialize_pem())?;
    Ok(Sha256::digest(cert.der()).into())
}

/// A port free on 127.0.0.1 right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Makes sure the system D-Bus and a loopback-only Avahi run: once per process, under a lock
/// file so parallel test processes do not start two.
async fn ensure_mdns() -> anyhow::Result<()> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let result =
        tokio::task::spawn_blocking(|| READY.get_or_init(|| start_mdns().map_err(|e| format!("{e:#}"))).clone())
            .await
            .context("the mDNS start-up task failed")?;
    result.map_err(anyhow::Error::msg)
}

fn start_mdns() -> anyhow::Result<()> {
    let avahi = tool("avahi-daemon")?;
    let dbus = tool("dbus-daemon")?;
    std::fs::create_dir_all(MDNS_DIR)?;
    let lock = File::create(Path::new(MDNS_DIR).join("start.lock"))?;
    lock.lock().context("cannot lock the mDNS start-up")?;

    if avahi_running(&avahi) {
        return Ok(());
    }
    if std::os::unix::net::UnixStream::connect(DBUS_SOCKET).is_err() {
        start_dbus(&dbus)?;
    }

    let conf = Path::new(MDNS_DIR).join("avahi-daemon.conf");
    std::fs::write(&conf, AVAHI_CONF)?;
    let log_path = Path::new(MDNS_DIR).join("avahi-daemon.log");
    let log = File::create(&log_path)?;
    // Its own process group: it outlives this test run (and a Ctrl-C of it) for the next one.
    let mut child = std::process::Command::new(&avahi)
        .arg("-f")
        .arg(&conf)
        .args(["--no-drop-root", "--no-chroot", "--no-rlimits"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", avahi.display()))?;
    let deadline = Instant::now() + DAEMON_TIMEOUT;
    loop {
        if avahi_running(&avahi) {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let mut log = String::new();
            let _ = File::open(&log_path).and_then(|mut f| f.read_to_string(&mut log));
            bail!("avahi-daemon exited ({status}):\n{log}");
        }
        if Instant::now() >= deadline {
            bail!("avahi-daemon did not come up within {DAEMON_TIMEOUT:?}; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn avahi_running(avahi: &Path) -> bool {
    std::process::Command::new(avahi)
        .arg("--check")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Starts the system bus (`dbus-daemon --system --fork`), as an init system would.
fn start_dbus(dbus: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all("/run/dbus").context("cannot create /run/dbus (the tests need root to start D-Bus)")?;
    // A pid file left by a killed daemon stops a new one from starting.
    let _ = std::fs::remove_file("/run/dbus/pid");
    if !Path::new("/etc/machine-id").exists()
        && !Path::new("/var/lib/dbus/machine-id").exists()
        && let Some(uuidgen) = find_tool("dbus-uuidgen")
    {
        let _ = std::process::Command::new(uuidgen).arg("--ensure").status();
    }
    let output = std::process::Command::new(dbus)
        .args(["--system", "--fork"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", dbus.display()))?;
    if !output.status.success() {
        bail!("dbus-daemon --system failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let deadline = Instant::now() + DAEMON_TIMEOUT;
    while std::os::unix::net::UnixStream::connect(DBUS_SOCKET).is_err() {
        if Instant::now() >= deadline {
            bail!("the system bus did not come up at {DBUS_SOCKET} within {DAEMON_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
