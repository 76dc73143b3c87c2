//! TLS on the gRPC listener, as clients see it: the protocol floor (1.2) and preference (1.3),
//! client certificates (mTLS) required or optional, plaintext only behind its explicit flag, the
//! development CA made once and reused, and a silent connection not blocking anyone else.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use proto::v1 as pb;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use tests::client::{sessions, start_session};
use tests::core::TestCore;
use tests::pki::TestCa;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::Channel;

/// Upper bound for one connection attempt or call, so a broken server fails the test instead of
/// hanging it.
const BOUND: Duration = Duration::from_secs(10);

/// Connects (optionally presenting a client certificate) and calls StartSession; `Ok` holds the
/// session token, `Err` says what failed (connecting or the call).
async fn try_start_session(core: &TestCore, identity: Option<(&str, &str)>) -> Result<String, String> {
    let attempt = async {
        let channel = core.channel_with(identity).await.map_err(|err| format!("connect: {err:#}"))?;
        call_start_session(channel).await
    };
    tokio::time::timeout(BOUND, attempt).await.map_err(|_| "timed out".to_string())?
}

async fn call_start_session(channel: Channel) -> Result<String, String> {
    let request = pb::StartSessionRequest { device_id: "tls-test-printer".into(), ..Default::default() };
    let response = sessions(&channel).start_session(request).await.map_err(|status| format!("call: {status:?}"))?;
    Ok(response.into_inner().session_token)
}

/// A rustls client trusting only `ca_file`, offering ALPN h2 and the given TLS versions.
fn rustls_client(ca_file: &Path, versions: &[&'static rustls::SupportedProtocolVersion]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).expect("read the CA file") {
        roots.add(cert.expect("a PEM certificate")).expect("a usable CA certificate");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("the versions are supported")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// A TLS 1.1 ClientHello, as an old client would send it, in one TLS record.
fn tls11_client_hello() -> Vec<u8> {
    fn with_u16_len(body: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(body.len()).expect("short").to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }
    // server_name (type 0x0000): one host_name (0x00) entry, "localhost".
    let sni_name = with_u16_len(b"localhost");
    let mut sni_entry = vec![0x00];
    sni_entry.extend_from_slice(&sni_name);
    let mut extensions = vec![0x00, 0x00];
    extensions.extend_from_slice(&with_u16_len(&with_u16_len(&sni_entry)));
    // signature_algorithms (type 0x000d): rsa_pkcs1_sha256 (0x0401), ecdsa_secp256r1_sha256
    // (0x0403). Many TLS 1.1 clients omit it, but rustls checks for it before the version, and
    // without it the refusal is handshake_failure (40) rather than protocol_version (70).
    extensions.extend_from_slice(&[0x00, 0x0d]);
    extensions.extend_from_slice(&with_u16_len(&with_u16_len(&[0x04, 0x01, 0x04, 0x03])));
    // No supported_versions extension: client_version alone says "at most TLS 1.1".

    let mut hello = vec![0x03, 0x02]; // client_version: TLS 1.1
    hello.extend_from_slice(&[0x42; 32]); // random (any 32 bytes)
    hello.push(0x00); // session_id: empty
    // cipher_suites: TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_128_CBC_SHA,
    // TLS_RSA_WITH_AES_256_CBC_SHA (all usable with TLS 1.0/1.1).
    hello.extend_from_slice(&with_u16_len(&[0xc0, 0x13, 0x00, 0x2f, 0x00, 0x35]));
    hello.extend_from_slice(&[0x01, 0x00]); // compression_methods: one, null
    hello.extend_from_slice(&with_u16_len(&extensions));

    let mut handshake = vec![0x01]; // handshake type: client_hello
    handshake.extend_from_slice(&u32::try_from(hello.len()).expect("short").to_be_bytes()[1..]); // u24 length
    handshake.extend_from_slice(&hello);

    let mut record = vec![0x16, 0x03, 0x02]; // record: handshake, version TLS 1.1
    record.extend_from_slice(&with_u16_len(&handshake));
    record
}

#[tokio::test]
async fn a_tls_1_1_client_gets_a_protocol_version_alert() {
    let core = TestCore::start().await;
    let mut tcp = TcpStream::connect(core.addr).await.expect("connect");
    tcp.write_all(&tls11_client_hello()).await.expect("send the ClientHello");

    let mut reply = [0u8; 7];
    tokio::time::timeout(BOUND, tcp.read_exact(&mut reply))
        .await
        .expect("the server answers a TLS 1.1 ClientHello in time")
        .expect("the server answers with a full alert record before closing");
    assert_eq!(reply[0], 21, "content type must be alert (21), got {reply:02x?}");
    assert_eq!(reply[1], 3, "record major version must be 3, got {reply:02x?}");
    assert_eq!(&reply[3..5], &[0, 2], "an alert record holds 2 bytes, got {reply:02x?}");
    assert_eq!(reply[5], 2, "alert level must be fatal (2), got {reply:02x?}");
    assert_eq!(reply[6], 70, "alert must be protocol_version (70), got {reply:02x?}");

    // And nothing more: the server closes the connection.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(BOUND, tcp.read_to_end(&mut rest)).await.expect("the server closes in time");
    assert!(read.is_err() || rest.is_empty(), "no handshake continues after the alert: {rest:02x?}");
}

#[tokio::test]
async fn tls_1_2_clients_are_served_and_tls_1_3_is_preferred() {
    let core = TestCore::start().await;
    let ca = core.dev_ca.clone().expect("a development CA");
    let localhost = ServerName::try_from("localhost").expect("a DNS name");

    let cases: [(&[&'static rustls::SupportedProtocolVersion], ProtocolVersion); 2] =
        [(&[&rustls::version::TLS12], ProtocolVersion::TLSv1_2), (rustls::DEFAULT_VERSIONS, ProtocolVersion::TLSv1_3)];
    for (versions, expected) in cases {
        let connector = rustls_client(&ca, versions);
        let tcp = TcpStream::connect(core.addr).await.expect("connect");
        let mut tls = tokio::time::timeout(BOUND, connector.connect(localhost.clone(), tcp))
            .await
            .expect("handshake in time")
            .unwrap_or_else(|err| panic!("a client offering {versions:?} completes the handshake: {err}"));
        let (_, connection) = tls.get_ref();
        assert_eq!(connection.protocol_version(), Some(expected), "client offering {versions:?}");
        assert_eq!(connection.alpn_protocol(), Some(&b"h2"[..]), "ALPN must settle on h2");

        // The connection really serves HTTP/2: after the client preface, the server's first
        // frame is its SETTINGS (frame type 4).
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .expect("send the HTTP/2 preface");
        let mut frame_header = [0u8; 9];
        tokio::time::timeout(BOUND, tls.read_exact(&mut frame_header))
            .await
            .expect("the server answers the preface in time")
            .expect("the server sends an HTTP/2 frame");
        assert_eq!(frame_header[3], 4, "first server frame must be SETTINGS over {expected:?}: {frame_header:02x?}");
    }
}

#[tokio::test]
async fn required_client_certificates_must_come_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("podconnect internal callers");
    let ca_file = dir.path().join("client-ca.pem");
    ca.write(&ca_file);
    let foreign = TestCa::new("someone else's CA");
    let core = TestCore::builder()
        .client_certificates(&ca_file, "required")
        .spawn()
        .await
        .expect("the core starts with required client certificates");

    let without = try_start_session(&core, None).await;
    assert!(without.is_err(), "a client without a certificate must not be served: {without:?}");

    let stranger = foreign.client("weblet-gateway");
    let with_foreign = try_start_session(&core, Some((&stranger.cert_pem, &stranger.key_pem))).await;
    assert!(with_foreign.is_err(), "a certificate from a foreign CA must be refused: {with_foreign:?}");

    let insider = ca.client("weblet-gateway");
    let token = try_start_session(&core, Some((&insider.cert_pem, &insider.key_pem)))
        .await
        .expect("a certificate from the client CA is accepted");
    assert!(!token.is_empty(), "StartSession returns a token");
}

#[tokio::test]
async fn optional_client_certificates_still_refuse_foreign_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("podconnect internal callers");
    let ca_file = dir.path().join("client-ca.pem");
    ca.write(&ca_file);
    let core = TestCore::builder()
        .client_certificates(&ca_file, "optional")
        .spawn()
        .await
        .expect("the core starts with optional client certificates");

    try_start_session(&core, None).await.expect("a client without a certificate is served");

    let insider = ca.client("weblet-gateway");
    try_start_session(&core, Some((&insider.cert_pem, &insider.key_pem)))
        .await
        .expect("a certificate from the client CA is accepted");

    let stranger = TestCa::new("someone else's CA").client("weblet-gateway");
    let with_foreign = try_start_session(&core, Some((&stranger.cert_pem, &stranger.key_pem))).await;
    assert!(with_foreign.is_err(), "a certificate from a foreign CA must be refused: {with_foreign:?}");
}

#[tokio::test]
async fn plaintext_is_served_only_with_the_explicit_flag() {
    let core = TestCore::start().await;
    let plaintext = tokio::time::timeout(BOUND, async {
        let channel = core.plaintext_channel().await.map_err(|err| format!("connect: {err:#}"))?;
        call_start_session(channel).await
    })
    .await
    .expect("the plaintext attempt ends in time");
    assert!(plaintext.is_err(), "a TLS core must not serve a plaintext client: {plaintext:?}");

    let insecure = TestCore::builder().insecure_plaintext().spawn().await.expect("the core starts");
    assert!(insecure.dev_ca.is_none(), "a plaintext core announces no development CA");
    assert!(
        !insecure.data_dir.join("tls").exists(),
        "a plaintext core must not generate a development CA in {}",
        insecure.data_dir.display()
    );
    let channel = insecure.plaintext_channel().await.expect("plaintext connects");
    let token = start_session(&channel, "plaintext-printer").await;
    assert!(!token.is_empty());
}

#[tokio::test]
async fn the_development_ca_is_made_once_with_private_keys_and_reused() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first = TestCore::builder().data_dir(&data_dir).spawn().await.expect("the core starts");
    let ca_path = first.dev_ca.clone().expect("the core announces its development CA");
    assert_eq!(ca_path, data_dir.join("tls/dev-ca.pem"), "the CA lives in the data folder");
    let ca_pem = std::fs::read(&ca_path).expect("the CA file exists");
    assert!(String::from_utf8_lossy(&ca_pem).contains("BEGIN CERTIFICATE"), "the CA file is a PEM certificate");
    for key in ["dev-ca.key", "localhost.key"] {
        let mode = std::fs::metadata(data_dir.join("tls").join(key)).expect("the key file exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{key} must be readable by its owner only, has mode {:o}", mode & 0o777);
    }
    // What a client installed after the first start: a copy of that CA, outside the data folder.
    let trusted = dir.path().join("trusted-ca.pem");
    std::fs::write(&trusted, &ca_pem).unwrap();
    assert_eq!(first.terminate().await.expect("the core stops"), Some(0));

    let second = TestCore::builder().data_dir(&data_dir).spawn().await.expect("the core restarts");
    assert_eq!(second.dev_ca.as_deref(), Some(ca_path.as_path()));
    assert_eq!(std::fs::read(&ca_path).unwrap(), ca_pem, "a restart must keep the same CA");
    let channel = second.channel_trusting(&trusted, None).await.expect("the first CA still verifies the core");
    let token = call_start_session(channel).await.expect("a client trusting the first CA is served after a restart");
    assert!(!token.is_empty());
}

#[tokio::test]
async fn a_silent_connection_does_not_hold_up_other_clients() {
    let core = TestCore::start().await;
    // Connections that never send a ClientHello.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(core.addr).await.expect("connect"));
    }
    let token = tokio::time::timeout(Duration::from_secs(5), async {
        let channel = core.channel().await;
        start_session(&channel, "busy-printer").await
    })
    .await
    .expect("a normal client is served while other connections stay silent");
    assert!(!token.is_empty());
    drop(silent);
}
