//! The vault service as the core meets it: the real `podconnect-vault` binary, reached through
//! `GrpcVault` over mutual TLS. Entries round-trip and page in address order; callers without a
//! trusted client certificate, or without TLS, are refused; oversized envelopes are invalid; the
//! connection cap holds; and the vault's file on disk holds the envelopes it was given and
//! nothing else.

use std::sync::Arc;
use std::time::Duration;

use proto::vault::v1 as pb;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest as _, Sha256};
use tests::core::TestCore;
use tests::pki::TestCa;
use tests::vault::{TestVault, VaultBuilder};
use tests::wait::eventually;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vault::{MAX_ENVELOPE, MAX_PAGE, SqliteVault, VaultAddress, VaultEntry, VaultError, VaultStore};

fn address(byte: u8) -> VaultAddress {
    VaultAddress::from_bytes([byte; 32])
}

fn entry(key_version: u32, envelope: &[u8]) -> VaultEntry {
    VaultEntry { key_version, envelope: envelope.to_vec() }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `needle` occurs anywhere in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[tokio::test]
async fn entries_round_trip_over_mutual_tls() {
    let vault = TestVault::start().await;
    let client = vault.grpc_vault();
    let at = address(0x11);

    assert_eq!(client.get(&at).await.unwrap(), None);
    assert!(!client.put(&at, entry(1, b"sealed-1")).await.unwrap(), "nothing to replace yet");
    assert_eq!(client.get(&at).await.unwrap(), Some(entry(1, b"sealed-1")));
    assert!(client.put(&at, entry(2, b"sealed-2")).await.unwrap(), "the first entry is replaced");

    // Compare-and-swap: only from what is there now.
    assert!(!client.replace_if(&at, &entry(1, b"sealed-1"), entry(3, b"stale")).await.unwrap());
    assert_eq!(client.get(&at).await.unwrap(), Some(entry(2, b"sealed-2")), "a failed swap changes nothing");
    assert!(client.replace_if(&at, &entry(2, b"sealed-2"), entry(3, b"sealed-3")).await.unwrap());
    assert_eq!(client.get(&at).await.unwrap(), Some(entry(3, b"sealed-3")));
    assert!(!client.replace_if(&address(0x12), &entry(3, b"sealed-3"), entry(4, b"x")).await.unwrap());
    assert_eq!(client.get(&address(0x12)).await.unwrap(), None, "a swap never creates an entry");

    assert!(client.delete(&at).await.unwrap());
    assert!(!client.delete(&at).await.unwrap(), "the second delete finds nothing");
    assert_eq!(client.get(&at).await.unwrap(), None);
}

#[tokio::test]
async fn pages_come_in_address_order_across_responses() {
    let vault = TestVault::start().await;
    let client = vault.grpc_vault();
    // Large envelopes: one response holds only three, so a page of all of them takes several.
    let bytes: Vec<u8> = (0..12).map(|i| 0xf0 - i * 16).collect();
    for &byte in &bytes {
        client.put(&address(byte), entry(u32::from(byte), &vec![byte; MAX_ENVELOPE])).await.unwrap();
    }
    let mut sorted = bytes.clone();
    sorted.sort_unstable();

    let all = client.page(None, MAX_PAGE).await.unwrap();
    let listed: Vec<u8> = all.iter().map(|(a, _)| a.as_bytes()[0]).collect();
    assert_eq!(listed, sorted, "every entry, in address order");
    for (address, entry) in &all {
        let byte = address.as_bytes()[0];
        assert_eq!(entry, &self::entry(u32::from(byte), &vec![byte; MAX_ENVELOPE]));
    }

    let first = client.page(None, 5).await.unwrap();
    assert_eq!(first.len(), 5, "a full page even when it spans responses");
    let rest = client.page(Some(&first[4].0), MAX_PAGE).await.unwrap();
    let rest: Vec<u8> = rest.iter().map(|(a, _)| a.as_bytes()[0]).collect();
    assert_eq!(rest, sorted[5..], "the next page starts after the last address");
    assert!(client.page(Some(&address(0xff)), 10).await.unwrap().is_empty());
    assert!(matches!(client.page(None, 0).await, Err(VaultError::Invalid(_))));
}

/// Connects over TLS trusting the vault but presenting no client certificate, and returns how
/// the vault refused: with TLS 1.3 the client's side of the handshake completes first, and the
/// vault's alert arrives on the first read.
async fn handshake_without_certificate(vault: &TestVault) -> String {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(vault.server_ca_pem.as_bytes()) {
        roots.add(cert.expect("a PEM certificate")).expect("a usable CA certificate");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("the versions are supported")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let attempt = async {
        let tcp = TcpStream::connect(vault.addr).await.expect("the vault listens");
        let name = ServerName::try_from("localhost").expect("a server name");
        let mut tls = match TlsConnector::from(Arc::new(config)).connect(name, tcp).await {
            Ok(tls) => tls,
            Err(err) => return err.to_string(),
        };
        let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buf = [0u8; 64];
        match tls.read(&mut buf).await {
            Ok(0) => "closed without an alert".to_string(),
            Ok(_) => panic!("the vault answered a client without a certificate"),
            Err(err) => err.to_string(),
        }
    };
    tokio::time::timeout(Duration::from_secs(10), attempt).await.expect("the vault refuses in time")
}

/// Speaks plaintext HTTP/2 (the connection preface and an empty SETTINGS frame) and returns
/// every byte the vault sends back before it closes the connection.
async fn plaintext_http2(vault: &TestVault) -> Vec<u8> {
    let attempt = async {
        let mut tcp = TcpStream::connect(vault.addr).await.expect("the vault listens");
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let _ = tcp.write_all(&hello).await;
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer).await;
        answer
    };
    tokio::time::timeout(Duration::from_secs(10), attempt).await.expect("the vault closes the connection in time")
}

#[tokio::test]
async fn callers_without_a_trusted_certificate_are_refused() {
    let vault = TestVault::start().await;
    let at = address(0x21);

    // A certificate from another CA, and an expired one from the right CA.
    let stranger = TestCa::new("another CA").client("podconnect core");
    let expired = vault.client_ca.expired_client("podconnect core");
    for client in [stranger, expired] {
        let untrusted = vault::GrpcVault::connect(vault.config_for(&client)).unwrap();
        let refused = untrusted.put(&at, entry(1, b"intruder")).await;
        assert!(matches!(refused, Err(VaultError::Unavailable(_))), "{refused:?}");
    }

    // No certificate at all, and no TLS at all.
    let refusal = handshake_without_certificate(&vault).await;
    assert!(refusal.contains("CertificateRequired"), "{refusal}");
    let answer = plaintext_http2(&vault).await;
    assert!(answer.is_empty() || answer[0] == 0x15, "only a TLS alert, or nothing, answers plaintext: {answer:?}");
    let request = pb::GetRequest { address: at.to_hex() };
    vault.plaintext_client().unwrap().get(request).await.expect_err("plaintext gRPC is refused");

    // The trusted client is served, and none of the refused calls stored anything.
    let trusted = vault.grpc_vault();
    assert_eq!(trusted.get(&at).await.unwrap(), None);
    assert!(trusted.page(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn oversized_envelopes_are_invalid() {
    let vault = TestVault::start().await;
    let at = address(0x31);
    let client = vault.grpc_vault();
    let too_big = entry(1, &vec![0xaa; MAX_ENVELOPE + 1]);
    assert!(matches!(client.put(&at, too_big.clone()).await, Err(VaultError::Invalid(_))));

    // The vault checks too, whatever a client sends.
    let mut raw = vault.raw_client(Some(&vault.client)).unwrap();
    let put = |envelope_len: usize| pb::PutRequest {
        address: at.to_hex(),
        entry: Some(pb::VaultEntry { key_version: 1, envelope: vec![0xaa; envelope_len] }),
    };
    let status = raw.put(put(MAX_ENVELOPE + 1)).await.expect_err("over 16 KiB");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let status = raw.put(put(70 * 1024)).await.expect_err("over the 64 KiB message bound");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    let upper = address(0xab).to_hex().to_uppercase();
    let status = raw.get(pb::GetRequest { address: upper }).await.expect_err("upper case");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    assert_eq!(client.get(&at).await.unwrap(), None, "nothing was stored");
    client.put(&at, entry(1, &vec![0xaa; MAX_ENVELOPE])).await.expect("the largest envelope is stored");
}

#[tokio::test]
async fn the_file_on_disk_holds_the_envelopes_and_nothing_else() {
    let mut vault = VaultBuilder::new().log_filter("debug").spawn().await.expect("the vault starts");
    let client = vault.grpc_vault();

    // The test seals a plaintext with a pad it never sends (the vault sees only the result).
    let plaintext = b"storefront-password:correct horse battery staple";
    let pad: Vec<u8> = (0u8..2).flat_map(|i| Sha256::digest([b"pad".as_slice(), &[i]].concat())).collect();
    let sealed: Vec<u8> = plaintext.iter().zip(pad.iter().cycle()).map(|(p, k)| p ^ k).collect();
    let kept = address(0x41);
    client.put(&kept, entry(7, &sealed)).await.unwrap();

    // An entry that is deleted again must not linger in the file either.
    let forgotten_envelope = b"forgotten-envelope-bytes-0123456789".repeat(4);
    let forgotten = address(0x42);
    client.put(&forgotten, entry(7, &forgotten_envelope)).await.unwrap();
    assert!(client.delete(&forgotten).await.unwrap());

    assert_eq!(vault.terminate().await.unwrap(), Some(0), "a graceful stop:\n{}", vault.log());
    let files = vault.files_on_disk().unwrap();
    assert!(files.iter().any(|(_, bytes)| contains(bytes, &sealed)), "the envelope is stored as given");
    for (path, bytes) in &files {
        assert!(!contains(bytes, plaintext), "{} holds the plaintext", path.display());
        assert!(!contains(bytes, &forgotten_envelope), "{} still holds a deleted envelope", path.display());
    }

    // The table holds exactly what was given: the address, the key version and the envelope.
    let store = SqliteVault::open(&vault.data_dir.join("vault.db")).await.unwrap();
    assert_eq!(store.page(None, MAX_PAGE).await.unwrap(), vec![(kept.clone(), entry(7, &sealed))]);

    // The log says what happened, but shows neither an envelope nor a whole address.
    let log = vault.log();
    assert!(log.contains("put") && log.contains("delete"), "the calls are logged:\n{log}");
    for secret in [hex_of(&sealed), hex_of(&forgotten_envelope), kept.to_hex(), forgotten.to_hex()] {
        assert!(!log.contains(&secret), "the log shows {secret}:\n{log}");
    }
    assert!(!contains(log.as_bytes(), &forgotten_envelope), "the log shows an envelope:\n{log}");
}

#[tokio::test]
async fn connections_over_the_cap_are_closed() {
    let vault = VaultBuilder::new().max_connections(2).spawn().await.expect("the vault starts");
    let client = vault.grpc_vault();
    // Two connections that never finish their handshake take both slots.
    let idle = [TcpStream::connect(vault.addr).await.unwrap(), TcpStream::connect(vault.addr).await.unwrap()];
    let refused = client.get(&address(0x51)).await;
    assert!(matches!(refused, Err(VaultError::Unavailable(_))), "{refused:?}");

    drop(idle);
    eventually("the vault to serve again once the idle connections closed", Duration::from_secs(10), || async {
        client.get(&address(0x51)).await.ok()
    })
    .await;
}

#[tokio::test]
async fn the_vault_refuses_to_start_without_a_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let output = tests::process::command(&tests::vault::vault_binary().unwrap())
        .args(["--listen", "127.0.0.1:0", "--tls-cert", "cert.pem", "--tls-key", "key.pem", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "no ready line");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--client-ca"), "{stderr}");
}

/// The core with its vault in the vault service: single sign-on works end to end, the vault's
/// files hold only ciphertext, and a vault that goes away costs single sign-on, never a session.
#[tokio::test]
async fn the_core_keeps_sso_ciphertext_in_the_vault_service() {
    use proto::v1 as pb;
    use tests::client::{ANA, authed, sessions, sso};

    let mut vault = TestVault::start().await;
    let pem = tempfile::tempdir().unwrap();
    let (ca, cert, key) = (pem.path().join("ca.pem"), pem.path().join("client.pem"), pem.path().join("client.key"));
    std::fs::write(&ca, &vault.server_ca_pem).unwrap();
    std::fs::write(&cert, &vault.client.cert_pem).unwrap();
    std::fs::write(&key, &vault.client.key_pem).unwrap();
    let core = TestCore::builder().vault_service(&vault.endpoint(), &ca, &cert, &key).spawn().await.unwrap();
    let channel = core.channel().await;
    let assertion = core.device_assertion("employee-vault-1").await;
    let start = |assertion: String| {
        let channel = channel.clone();
        async move {
            let request = pb::StartSessionRequest {
                device_id: "mfd-1".into(),
                device_user_assertion: assertion,
                ..Default::default()
            };
            sessions(&channel).start_session(request).await.unwrap().into_inner()
        }
    };
    let login = |token: String| {
        let channel = channel.clone();
        async move {
            let request = pb::LoginRequest { username: ANA.0.into(), password: ANA.1.into(), remember: true };
            sessions(&channel).login(authed(&token, request)).await.unwrap().into_inner()
        }
    };

    assert!(login(start(assertion.clone()).await.session_token).await.remembered);
    let next = start(assertion.clone()).await;
    assert!(next.sso_available, "the core found the entry in the vault service");
    let key = sso(&channel).get_vault_key(authed(&next.session_token, pb::GetVaultKeyRequest {})).await.unwrap();
    let signed_in = sso(&channel)
        .silent_login(authed(&next.session_token, pb::SilentLoginRequest { vault_key: key.into_inner().vault_key }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed_in.display_name, ANA.2);

    // What the vault keeps: one entry, ciphertext only; the core's own files keep no credential.
    let files = vault.files_on_disk().unwrap();
    assert!(!files.is_empty(), "the vault wrote its database");
    for (path, bytes) in files.iter().chain(&tests::disk::files_below(&core.data_dir)) {
        for needle in [ANA.1, ANA.0, "employee-vault-1"] {
            assert!(!tests::disk::holds(bytes, needle), "{} holds {needle:?}", path.display());
        }
    }

    // The vault goes away: sessions still start (without single sign-on) and logins still work.
    vault.terminate().await.unwrap();
    let without = start(assertion).await;
    assert!(!without.sso_available, "a vault that cannot be reached means no single sign-on now");
    assert!(!login(without.session_token).await.remembered, "the login works; it is just not remembered");
}
