//! The TLS handshake matrix with real peers (`openssl s_client`, `curl`) against the three TLS
//! listeners: the core's gRPC port, the gateway's browser port and the core's pull-link port.
//! TLS 1.0 and 1.1 are refused by the server (the client is told to allow them), 1.2 and 1.3 are
//! accepted and 1.3 is chosen when both are offered, weak suites are refused, ALPN is as
//! documented (core h2; gateway h2 and http/1.1; pull links http/1.1), and the core's required
//! mTLS refuses a missing, foreign or expired client certificate. Every peer process is bounded in
//! time and killed when its test ends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tests::core::TestCore;
use tests::gateway::TestGateway;
use tests::pki::{ClientCert, TestCa};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::Command;

/// Upper bound for one peer process or one raw exchange.
const BOUND: Duration = Duration::from_secs(15);

/// TLS alert numbers (RFC 8446 §6) the servers send here.
const HANDSHAKE_FAILURE: u8 = 40;
const CERTIFICATE_EXPIRED: u8 = 45;
const UNKNOWN_CA: u8 = 48;
const PROTOCOL_VERSION: u8 = 70;
const CERTIFICATE_REQUIRED: u8 = 116;
const NO_APPLICATION_PROTOCOL: u8 = 120;

/// One TLS listener under test and what its documentation promises.
struct Listener {
    name: &'static str,
    addr: SocketAddr,
    /// The CA that signed its certificate.
    ca: PathBuf,
    /// The ALPN protocols it speaks, in its order of preference.
    alpn: &'static [&'static str],
}

/// The core (default options), a gateway in front of it, and the three listeners.
struct System {
    _core: TestCore,
    _gateway: TestGateway,
    listeners: Vec<Listener>,
}

async fn system() -> System {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let ca = core.dev_ca.clone().expect("the core made its development CA");
    let listeners = vec![
        Listener { name: "core", addr: core.addr, ca: ca.clone(), alpn: &["h2"] },
        Listener { name: "gateway", addr: gateway.addr, ca: gateway.ca.clone(), alpn: &["h2", "http/1.1"] },
        Listener { name: "pull links", addr: core.pull_addr, ca, alpn: &["http/1.1"] },
    ];
    System { _core: core, _gateway: gateway, listeners }
}

/// What a peer process printed and how it ended.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `program` with `args`, feeding `input` on stdin; killed if it outlives `BOUND`.
async fn run(program: &str, args: &[String], input: &[u8]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {program} (scripts/test.sh installs it): {err}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input).await.expect("write the peer's input");
    drop(stdin);
    let output = tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish within {BOUND:?}"))
        .expect("the peer process ran");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The outcome of one `openssl s_client` handshake.
#[derive(Debug)]
struct Handshake {
    /// `TLSv1.2`, `TLSv1.3`, or `None` when no session was established.
    version: Option<String>,
    /// The negotiated suite, OpenSSL's name.
    cipher: Option<String>,
    /// The ALPN protocol both sides settled on.
    alpn: Option<String>,
    /// The alert the server sent, when the handshake was refused.
    alert: Option<u8>,
    /// Everything the client printed, for assertion messages.
    transcript: String,
}

impl Handshake {
    /// A session both sides kept: in TLS 1.3 the server can still refuse after its ServerHello.
    fn established(&self) -> bool {
        self.version.is_some() && self.alert.is_none()
    }
}

/// Handshakes with `listener` through `openssl s_client` with the extra `args`, then closes.
/// The client's own security level is lowered so that any refusal seen is the server's.
async fn s_client(listener: &Listener, args: &[&str]) -> Handshake {
    s_client_sending(listener, args, b"").await
}

/// Like `s_client`, then sends `input` and reads until the server closes (`-ign_eof`): in TLS 1.3
/// the server judges a client certificate after the client's handshake is done, so its alert
/// only shows when the client goes on reading.
async fn s_client_sending(listener: &Listener, args: &[&str], input: &[u8]) -> Handshake {
    let mut argv: Vec<String> = vec![
        "s_client".into(),
        "-connect".into(),
        listener.addr.to_string(),
        "-servername".into(),
        "localhost".into(),
        "-CAfile".into(),
        listener.ca.display().to_string(),
        "-verify_return_error".into(),
    ];
    if !args.contains(&"-cipher") {
        argv.extend(["-cipher".into(), "DEFAULT:@SECLEVEL=0".into()]);
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    if !input.is_empty() {
        argv.push("-ign_eof".into());
    }
    let run = run("openssl", &argv, input).await;
    parse_s_client(&run)
}

fn parse_s_client(run: &Run) -> Handshake {
    // "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384" (or "New, (NONE), Cipher is (NONE)").
    let new = run.stdout.lines().find_map(|line| line.strip_prefix("New, "));
    let (version, cipher) = match new.and_then(|rest| rest.split_once(", Cipher is ")) {
        Some((version, cipher)) if version != "(NONE)" => (Some(version.to_owned()), Some(cipher.trim().to_owned())),
        _ => (None, None),
    };
    let alpn = run.stdout.lines().find_map(|line| line.strip_prefix("ALPN protocol: ")).map(|p| p.trim().to_owned());
    // "...:SSL alert number 70" on stderr when the server sent an alert.
    let alert = run
        .stderr
        .split("SSL alert number ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    let transcript = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    Handshake { version, cipher, alpn, alert, transcript }
}

/// Runs curl against `url` on `listener` (name `localhost` pinned to its address), returning the
/// run; `-w` prints the HTTP version and status on stdout.
async fn curl(listener: &Listener, path: &str, args: &[&str]) -> Run {
    let port = listener.addr.port();
    let mut argv: Vec<String> = vec![
        "--silent".into(),
        "--show-error".into(),
        "--verbose".into(),
        "--max-time".into(),
        "10".into(),
        "--resolve".into(),
        format!("localhost:{port}:127.0.0.1"),
        "--cacert".into(),
        listener.ca.display().to_string(),
        "--output".into(),
        "/dev/null".into(),
        "--write-out".into(),
        "%{http_version} %{http_code}".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.push(format!("https://localhost:{port}{path}"));
    run("curl", &argv, b"").await
}

/// A path each listener answers over plain HTTP without a call body.
fn probe_path(listener: &Listener) -> &'static str {
    match listener.name {
        "gateway" => "/healthz",
        "pull links" => "/print-files/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.pdf",
        _ => "/grpc.health.v1.Health/Check",
    }
}

#[tokio::test]
async fn tls_1_0_and_1_1_are_refused_by_the_server() {
    let system = system().await;
    for listener in &system.listeners {
        for version in ["-tls1", "-tls1_1"] {
            let handshake = s_client(listener, &[version]).await;
            assert!(
                !handshake.established(),
                "{}: {version} must be refused:\n{}",
                listener.name,
                handshake.transcript
            );
            // rustls looks for signature_algorithms, which a TLS <= 1.1 ClientHello lacks, before the
            // version: OpenSSL's hello gets handshake_failure, one with the extension protocol_version
            // (see tls.rs). Either way it is the server's fatal alert.
            assert!(
                matches!(handshake.alert, Some(HANDSHAKE_FAILURE | PROTOCOL_VERSION)),
                "{}: {version} must be refused with the server's handshake_failure or protocol_version alert:\n{}",
                listener.name,
                handshake.transcript
            );
        }
        // curl allowed to go down to 1.0 but not above 1.1: the server refuses it too.
        let refused = curl(
            listener,
            probe_path(listener),
            &["--tlsv1.0", "--tls-max", "1.1", "--ciphers", "DEFAULT:@SECLEVEL=0"],
        )
        .await;
        assert!(!refused.ok, "{}: curl with TLS <= 1.1 must be refused:\n{}", listener.name, refused.stderr);
        assert!(
            refused.stderr.contains("alert handshake failure") || refused.stderr.contains("alert protocol version"),
            "{}: curl must see the server's alert:\n{}",
            listener.name,
            refused.stderr
        );
    }
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_accepted_and_1_3_is_chosen() {
    let system = system().await;
    for listener in &system.listeners {
        let v12 = s_client(listener, &["-tls1_2"]).await;
        assert_eq!(v12.version.as_deref(), Some("TLSv1.2"), "{}: TLS 1.2:\n{}", listener.name, v12.transcript);
        let v13 = s_client(listener, &["-tls1_3"]).await;
        assert_eq!(v13.version.as_deref(), Some("TLSv1.3"), "{}: TLS 1.3:\n{}", listener.name, v13.transcript);
        // A client offering 1.0 to 1.3 gets the newest.
        let both = s_client(listener, &[]).await;
        assert_eq!(both.version.as_deref(), Some("TLSv1.3"), "{}: 1.3 chosen:\n{}", listener.name, both.transcript);

        // And a real HTTP exchange over each accepted version.
        for (args, version) in [(&["--tlsv1.2", "--tls-max", "1.2"][..], "TLSv1.2"), (&["--tlsv1.2"][..], "TLSv1.3")] {
            let served = curl(listener, probe_path(listener), args).await;
            assert!(served.ok, "{}: curl {args:?} must be served:\n{}", listener.name, served.stderr);
            assert!(
                served.stderr.contains(&format!("SSL connection using {version}")),
                "{}: curl {args:?} must use {version}:\n{}",
                listener.name,
                served.stderr
            );
        }
    }
}

/// The TLS 1.2 suites the servers may choose: forward secret, authenticated encryption.
fn strong_tls12_suite(openssl_name: &str) -> bool {
    openssl_name.starts_with("ECDHE-")
        && (openssl_name.ends_with("-GCM-SHA256")
            || openssl_name.ends_with("-GCM-SHA384")
            || openssl_name.ends_with("-CHACHA20-POLY1305"))
}

#[tokio::test]
async fn weak_cipher_suites_are_refused() {
    let system = system().await;
    // Suites this OpenSSL can still offer at security level 0.
    let offered_by_openssl = [
        ("CBC with SHA-1", "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:AES128-SHA:AES256-SHA"),
        ("NULL encryption", "eNULL"),
        ("anonymous key exchange", "aNULL"),
        ("static RSA key exchange", "kRSA"),
    ];
    for listener in &system.listeners {
        for (what, suites) in offered_by_openssl {
            let cipher = format!("{suites}:@SECLEVEL=0");
            let handshake = s_client(listener, &["-tls1_2", "-cipher", &cipher]).await;
            assert!(!handshake.established(), "{}: {what} must be refused:\n{}", listener.name, handshake.transcript);
            assert_eq!(
                handshake.alert,
                Some(HANDSHAKE_FAILURE),
                "{}: {what} must be refused with the server's handshake_failure alert:\n{}",
                listener.name,
                handshake.transcript
            );
        }
        // A client offering everything, weak suites first, still gets a strong one.
        let all = s_client(listener, &["-tls1_2", "-cipher", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"]).await;
        let cipher = all.cipher.clone().unwrap_or_default();
        assert!(
            strong_tls12_suite(&cipher),
            "{}: TLS 1.2 suite {cipher:?} is not ECDHE+AEAD:\n{}",
            listener.name,
            all.transcript
        );

        // RC4, 3DES and export suites are gone from this OpenSSL, so a hand-made ClientHello offers them.
        for (what, suites) in [
            ("RC4", &[0x0005u16, 0x0004, 0xc011, 0xc007][..]),
            ("3DES", &[0x000a, 0xc012, 0xc008, 0x0016][..]),
            ("EXPORT", &[0x0003, 0x0006, 0x0008, 0x0014][..]),
        ] {
            let alert = raw_tls12_hello(listener.addr, suites).await;
            assert_eq!(
                alert,
                Some(HANDSHAKE_FAILURE),
                "{}: {what} suites must get a handshake_failure alert",
                listener.name
            );
        }
    }
}

/// Sends a TLS 1.2 ClientHello offering only `suites` and returns the alert the server answers
/// with (`None` if it answered anything else, e.g. a ServerHello).
async fn raw_tls12_hello(addr: SocketAddr, suites: &[u16]) -> Option<u8> {
    fn u16_prefixed(body: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(body.len()).expect("short").to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }
    let mut extensions = Vec::new();
    // server_name: localhost.
    let mut name = vec![0x00];
    name.extend_from_slice(&u16_prefixed(b"localhost"));
    extensions.extend_from_slice(&[0x00, 0x00]);
    extensions.extend_from_slice(&u16_prefixed(&u16_prefixed(&name)));
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
    extensions.extend_from_slice(&[0x00, 0x0d]);
    extensions.extend_from_slice(&u16_prefixed(&u16_prefixed(&[0x04, 0x03, 0x08, 0x04, 0x04, 0x01])));
    // supported_groups: x25519, secp256r1; ec_point_formats: uncompressed.
    extensions.extend_from_slice(&[0x00, 0x0a]);
    extensions.extend_from_slice(&u16_prefixed(&u16_prefixed(&[0x00, 0x1d, 0x00, 0x17])));
    extensions.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);

    let mut hello = vec![0x03, 0x03]; // client_version: TLS 1.2
    hello.extend_from_slice(&[0x5a; 32]);
    hello.push(0x00); // no session id
    let suite_bytes: Vec<u8> = suites.iter().flat_map(|s| s.to_be_bytes()).collect();
    hello.extend_from_slice(&u16_prefixed(&suite_bytes));
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    hello.extend_from_slice(&u16_prefixed(&extensions));

    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16_prefixed(&hello));
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16_prefixed(&handshake));

    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&record).await.expect("send the ClientHello");
    let mut reply = [0u8; 7];
    tokio::time::timeout(BOUND, tcp.read_exact(&mut reply)).await.expect("the server answers in time").ok()?;
    // An alert record (21) of two bytes, fatal (2).
    (reply[0] == 21 && reply[3..5] == [0, 2] && reply[5] == 2).then_some(reply[6])
}

#[tokio::test]
async fn alpn_is_as_documented() {
    let system = system().await;
    for listener in &system.listeners {
        // Each documented protocol alone is accepted and chosen.
        for protocol in listener.alpn {
            let handshake = s_client(listener, &["-alpn", protocol]).await;
            assert_eq!(
                handshake.alpn.as_deref(),
                Some(*protocol),
                "{}: ALPN {protocol}:\n{}",
                listener.name,
                handshake.transcript
            );
        }
        // Offered everything, the listener picks its first choice.
        let handshake = s_client(listener, &["-alpn", "http/1.1,h2"]).await;
        assert_eq!(
            handshake.alpn.as_deref(),
            Some(listener.alpn[0]),
            "{}: preferred ALPN:\n{}",
            listener.name,
            handshake.transcript
        );
        // A protocol it does not speak is refused rather than served as something else.
        let handshake = s_client(listener, &["-alpn", "spdy/3.1"]).await;
        assert!(!handshake.established(), "{}: unknown ALPN must be refused:\n{}", listener.name, handshake.transcript);
        assert_eq!(
            handshake.alert,
            Some(NO_APPLICATION_PROTOCOL),
            "{}: unknown ALPN gets no_application_protocol:\n{}",
            listener.name,
            handshake.transcript
        );
    }

    // The same through curl's real requests: the version it ends up speaking.
    let by_name = |name: &str| system.listeners.iter().find(|l| l.name == name).expect("listener");
    let gateway = by_name("gateway");
    for (flag, version) in [("--http2", "2 200"), ("--http1.1", "1.1 200")] {
        let served = curl(gateway, "/healthz", &[flag]).await;
        assert_eq!(served.stdout, version, "gateway with curl {flag}:\n{}", served.stderr);
    }
    let pull = by_name("pull links");
    // curl offers h2 first; the pull-link listener speaks HTTP/1.1, and an unknown link is gone.
    let served = curl(pull, probe_path(pull), &["--http2"]).await;
    assert_eq!(served.stdout, "1.1 410", "pull links with curl --http2:\n{}", served.stderr);
    let core = by_name("core");
    let served =
        curl(core, probe_path(core), &["--http2", "--request", "POST", "--header", "content-type: application/grpc"])
            .await;
    assert!(served.stdout.starts_with("2 "), "core with curl --http2: {}\n{}", served.stdout, served.stderr);
}

/// A core that requires client certificates from `ca`, and that CA's file.
async fn mtls_core(dir: &Path, ca: &TestCa) -> TestCore {
    let ca_file = dir.join("client-ca.pem");
    ca.write(&ca_file);
    TestCore::builder()
        .client_certificates(&ca_file, "required")
        .spawn()
        .await
        .expect("the core starts with required client certificates")
}

/// The paths of a certificate and its key.
type Pair = (String, String);

/// Writes a client certificate and key to files for the peers.
fn identity_files(dir: &Path, name: &str, cert: &ClientCert) -> Pair {
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    std::fs::write(&cert_path, &cert.cert_pem).expect("write the certificate");
    std::fs::write(&key_path, &cert.key_pem).expect("write the key");
    (cert_path.display().to_string(), key_path.display().to_string())
}

#[tokio::test]
async fn pull_links_need_no_client_certificate_even_when_the_core_requires_them() {
    // Printers cannot present one: the one-time link is the credential there.
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("podconnect test client CA");
    let core = mtls_core(dir.path(), &ca).await;
    let listener = Listener {
        name: "pull links of a core with required mTLS",
        addr: core.pull_addr,
        ca: core.dev_ca.clone().expect("a development CA"),
        alpn: &["http/1.1"],
    };
    let handshake = s_client_sending(&listener, &["-tls1_3"], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(handshake.established(), "no certificate asked for:\n{}", handshake.transcript);
}

#[tokio::test]
async fn required_mtls_refuses_missing_foreign_and_expired_certificates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("podconnect test client CA");
    let other = TestCa::new("someone else's CA");
    let core = mtls_core(dir.path(), &ca).await;
    let listener = Listener {
        name: "core with required mTLS",
        addr: core.addr,
        ca: core.dev_ca.clone().expect("a development CA"),
        alpn: &["h2"],
    };
    let good = identity_files(dir.path(), "good", &ca.client("podctl"));
    let foreign = identity_files(dir.path(), "foreign", &other.client("podctl"));
    let expired = identity_files(dir.path(), "expired", &ca.expired_client("podctl"));

    // The server's alert for each certificate, in TLS 1.2 (inside the handshake) and TLS 1.3
    // (after it; the client then sends bytes that are not HTTP/2, so that an accepted connection
    // is closed by the server instead of waiting for a request).
    let cases: [(&str, Option<&Pair>, Option<u8>); 4] = [
        ("no certificate", None, Some(CERTIFICATE_REQUIRED)),
        ("another CA's certificate", Some(&foreign), Some(UNKNOWN_CA)),
        ("an expired certificate", Some(&expired), Some(CERTIFICATE_EXPIRED)),
        ("a good certificate", Some(&good), None),
    ];
    for (version, flag) in [("TLSv1.2", "-tls1_2"), ("TLSv1.3", "-tls1_3")] {
        for (what, identity, alert) in cases {
            let mut args = vec![flag];
            if let Some((cert, key)) = identity {
                args.extend(["-cert", cert, "-key", key]);
            }
            let handshake = s_client_sending(&listener, &args, b"not HTTP/2\r\n\r\n").await;
            match alert {
                Some(alert) => {
                    assert!(!handshake.established(), "{version}, {what}: refused:\n{}", handshake.transcript);
                    assert_eq!(
                        handshake.alert,
                        Some(alert),
                        "{version}, {what}: the server's alert:\n{}",
                        handshake.transcript
                    );
                }
                None => {
                    assert_eq!(
                        handshake.version.as_deref(),
                        Some(version),
                        "{version}, {what}: accepted:\n{}",
                        handshake.transcript
                    );
                    assert!(handshake.established(), "{version}, {what}: no alert:\n{}", handshake.transcript);
                }
            }
        }
    }

    // Real HTTP/2 requests through curl: only the good certificate gets an answer. (Which error
    // curl reports for a refusal depends on whether it was still sending; the alerts are above.)
    for (what, identity, served) in [
        ("no certificate", None, false),
        ("another CA's certificate", Some(&foreign), false),
        ("an expired certificate", Some(&expired), false),
        ("a good certificate", Some(&good), true),
    ] {
        let mut args = vec!["--http2", "--request", "POST", "--header", "content-type: application/grpc"];
        if let Some((cert, key)) = identity {
            args.extend(["--cert", cert, "--key", key]);
        }
        let answered = curl(&listener, probe_path(&listener), &args).await;
        assert_eq!(answered.ok, served, "curl, {what}: served must be {served}:\n{}", answered.stderr);
        if served {
            assert!(answered.stdout.starts_with("2 "), "curl, {what}: an HTTP/2 answer: {}", answered.stdout);
        }
    }
}
