//! The core under cheap attacks (issue 17): stalled calls, session floods, silent and idle
//! connections, extra request messages, expired deadlines and shutdown with all of them open.
//! Raw HTTP/2 (hyper) and raw TLS clients play the attacker; every wait has a bound.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use proto::v1 as pb;
use tests::client::{authed, catalog, sessions, start_session};
use tests::core::TestCore;
use tests::raw::{
    H2_PREFACE, HEALTH_CHECK, START_SESSION, grpc_code, grpc_request, h2_frame, h2_from, h2_request_headers,
    health_message, stalled_body, start_session_message, tcp_from, tls_to, unary,
};
use tests::wait::eventually;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tonic::Code;

/// Upper bound for anything a test waits on, so a regression fails instead of hanging.
const BOUND: Duration = Duration::from_secs(20);

#[tokio::test]
async fn stalled_calls_cannot_lock_out_other_callers_or_health_checks() {
    let core = TestCore::builder()
        .max_concurrent_calls(64)
        .max_calls_per_peer(16)
        .request_timeout(Duration::from_secs(5))
        .spawn()
        .await
        .expect("the core starts");

    // The attack: 512 StartSession calls over two connections that send headers and then nothing.
    let mut held = Vec::new();
    let (results_tx, mut results) = mpsc::unbounded_channel();
    for _ in 0..2 {
        let (sender, _) = h2_from(&core, [127, 0, 0, 1]).await;
        for _ in 0..256 {
            let (tx, body) = stalled_body();
            held.push(tx);
            let (mut sender, results_tx) = (sender.clone(), results_tx.clone());
            tokio::spawn(async move {
                sender.ready().await.expect("the connection is open");
                let response = sender.send_request(grpc_request(START_SESSION, body)).await.expect("a response");
                let _ = results_tx.send(grpc_code(response).await);
            });
        }
    }
    drop(results_tx);

    // The attacker's address gets its 16 slots; every other call is refused at once.
    let refused = tokio::time::timeout(BOUND, async {
        for _ in 0..512 - 16 {
            let (code, message) = results.recv().await.expect("a result");
            assert_eq!(code, Code::ResourceExhausted, "{message}");
            assert!(message.contains("limit of calls in flight"), "{message}");
        }
    })
    .await;
    assert!(refused.is_ok(), "the calls past the per-address cap are refused at once");

    // While 16 calls stall, another peer is served, and so is a health check from the attacker's
    // own address (health checks have slots of their own).
    let (mut other, _) = h2_from(&core, [127, 0, 0, 2]).await;
    let (code, message) = tokio::time::timeout(BOUND, unary(&mut other, START_SESSION, start_session_message("lobby")))
        .await
        .expect("another peer is answered while the attack runs");
    assert_eq!(code, Code::Ok, "another peer's StartSession: {message}");
    let (mut health, _) = h2_from(&core, [127, 0, 0, 1]).await;
    let (code, message) = tokio::time::timeout(BOUND, unary(&mut health, HEALTH_CHECK, health_message()))
        .await
        .expect("a health check is answered while the attack runs");
    assert_eq!(code, Code::Ok, "health check: {message}");

    // The stalled calls end by themselves when their requests are late, with a status that says so.
    let cut_off = tokio::time::timeout(BOUND, async {
        for _ in 0..16 {
            let (code, message) = results.recv().await.expect("a result");
            assert_eq!(code, Code::DeadlineExceeded, "{message}");
            assert!(message.contains("did not arrive within"), "{message}");
        }
    })
    .await;
    assert!(cut_off.is_ok(), "the stalled calls end within the request time limit");
    drop(held);
}

#[tokio::test]
async fn one_request_message_per_unary_call_and_deadlines_answer_deadline_exceeded() {
    let core = TestCore::start().await;
    let (mut sender, _) = h2_from(&core, [127, 0, 0, 1]).await;

    let (code, message) = unary(&mut sender, START_SESSION, start_session_message("lobby")).await;
    assert_eq!(code, Code::Ok, "{message}");

    // Two messages in one unary call: refused, not half-read.
    let mut two = BytesMut::from(&start_session_message("lobby")[..]);
    two.extend_from_slice(&start_session_message("other"));
    let (code, message) = unary(&mut sender, START_SESSION, two.freeze()).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("exactly one request message"), "{message}");

    // A caller whose deadline passes while its request is still arriving hears DEADLINE_EXCEEDED.
    let (_tx, body) = stalled_body();
    let mut request = grpc_request(START_SESSION, body);
    request.headers_mut().insert("grpc-timeout", "300m".parse().expect("a header value"));
    sender.ready().await.expect("open");
    let response =
        tokio::time::timeout(BOUND, sender.send_request(request)).await.expect("answered").expect("a response");
    let (code, message) = grpc_code(response).await;
    assert_eq!(code, Code::DeadlineExceeded, "{message}");
    assert!(message.contains("grpc-timeout"), "{message}");
}

#[tokio::test]
async fn a_session_flood_is_capped_per_device_and_in_total() {
    let core =
        TestCore::builder().max_sessions_per_device(4).max_sessions(10).in_process().await.expect("the core starts");
    let channel = core.channel().await;
    let open_on = |device: &str| {
        let device = server::domain::ids::DeviceId::parse(device).expect("a device id");
        core.services().sessions.open_sessions(Some(&device))
    };

    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(start_session(&channel, "kiosk").await);
    }
    // The first person is still using theirs; the second walked away.
    catalog(&channel).list_categories(authed(&tokens[0], pb::ListCategoriesRequest::default())).await.expect("in use");

    // Two more on the same device: the least recently used sessions make room, in that order.
    tokens.push(start_session(&channel, "kiosk").await);
    tokens.push(start_session(&channel, "kiosk").await);
    assert_eq!(open_on("kiosk"), 4, "the device stays at its cap");
    let works = |token: String| {
        let channel = channel.clone();
        async move { catalog(&channel).list_categories(authed(&token, pb::ListCategoriesRequest::default())).await }
    };
    for (i, token) in tokens.iter().enumerate() {
        let result = works(token.clone()).await;
        let pushed_out = i == 1 || i == 2;
        assert_eq!(result.is_err(), pushed_out, "session {i}: {result:?}");
        if let Err(status) = result {
            assert_eq!(status.code(), Code::Unauthenticated);
        }
    }

    // Another device is unaffected, until the server as a whole is full.
    for n in 0..6 {
        start_session(&channel, &format!("lobby-{n}")).await;
    }
    assert_eq!(core.services().sessions.open_sessions(None), 10);
    let refused = sessions(&channel)
        .start_session(pb::StartSessionRequest { device_id: "lobby-new".into(), ..Default::default() })
        .await
        .expect_err("the server is at its total cap");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("retry in about"), "{}", refused.message());
    // A device already at home on the server still gets in: its oldest session makes room.
    start_session(&channel, "kiosk").await;
}

/// Waits (bounded) until the peer closes `stream`; returns how long that took.
async fn closed_by_server(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection");
    started.elapsed()
}

#[tokio::test]
async fn silent_and_idle_connections_are_closed_on_both_listeners() {
    let core = TestCore::builder()
        .handshake_timeout(Duration::from_secs(1))
        .idle_connection_timeout(Duration::from_secs(2))
        .spawn()
        .await
        .expect("the core starts");
    let pull = core.pull_addr;

    // TCP that never says hello, and TLS that never says anything after the handshake.
    for addr in [core.addr, pull] {
        closed_by_server(tcp_from([127, 0, 0, 1], addr).await).await;
    }
    closed_by_server(tls_to(&core, core.addr, [127, 0, 0, 1], b"h2").await).await;
    closed_by_server(tls_to(&core, pull, [127, 0, 0, 1], b"http/1.1").await).await;

    // An HTTP/2 connection that made a call and then sits idle is closed after the idle limit.
    let (mut sender, conn) = h2_from(&core, [127, 0, 0, 1]).await;
    let (code, _) = unary(&mut sender, HEALTH_CHECK, health_message()).await;
    assert_eq!(code, Code::Ok);
    tokio::time::timeout(BOUND, conn).await.expect("the idle connection is closed").expect("the task ran");
}

#[tokio::test]
async fn sigterm_drains_within_the_grace_period_with_attackers_connected() {
    let core = TestCore::builder()
        .shutdown_grace(Duration::from_secs(1))
        .request_timeout(Duration::from_secs(60))
        .handshake_timeout(Duration::from_secs(60))
        .max_calls_per_peer(1)
        .spawn()
        .await
        .expect("the core starts");
    // A connection that never starts TLS, one that stops after the handshake, an idle HTTP/2
    // connection, and a call whose body never comes.
    let _tcp = tcp_from([127, 0, 0, 1], core.addr).await;
    let _tls = tls_to(&core, core.addr, [127, 0, 0, 1], b"h2").await;
    let (mut idle, _idle_conn) = h2_from(&core, [127, 0, 0, 1]).await;
    assert_eq!(unary(&mut idle, HEALTH_CHECK, health_message()).await.0, Code::Ok);
    let (mut stalled, _stalled_conn) = h2_from(&core, [127, 0, 0, 1]).await;
    // With one slot per address, the stalled call is in once a probe from the same address is
    // refused; a probe that got there first refuses the stalled call instead, which then retries.
    let arrived = tokio::time::timeout(BOUND, async {
        loop {
            let (tx, body) = stalled_body();
            stalled.ready().await.expect("open");
            let pending = tokio::spawn(stalled.send_request(grpc_request(START_SESSION, body)));
            while !pending.is_finished() {
                if unary(&mut idle, START_SESSION, start_session_message("probe")).await.0 == Code::ResourceExhausted {
                    return (tx, pending);
                }
                tokio::task::yield_now().await;
            }
        }
    })
    .await;
    let Ok((_tx, pending)) = arrived else { panic!("the stalled call reaches the core") };

    let started = Instant::now();
    // `terminate` sends SIGTERM and waits for the exit with its own bound (20 s); before the fix
    // the core was still running after 60 s with these connections open.
    let (code, log) = core.terminate_with_log().await.expect("the core exits after SIGTERM");
    eprintln!("SIGTERM to exit with stalled clients connected: {:?}", started.elapsed());
    assert_eq!(code, Some(0), "a clean exit:\n{log}");
    pending.abort();
}

#[tokio::test]
async fn state_folders_and_secret_files_are_private_to_the_server_user() {
    use std::os::unix::fs::PermissionsExt as _;
    let core = TestCore::start().await;
    let mode = |path: std::path::PathBuf| {
        let meta = std::fs::metadata(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        (path, meta.permissions().mode() & 0o777)
    };
    for folder in [core.data_dir.clone(), core.data_dir.join("tls")] {
        let (path, mode) = mode(folder);
        assert_eq!(mode, 0o700, "{}", path.display());
    }
    for file in ["podconnect.db", "tls/dev-ca.key", "tls/localhost.key"] {
        let (path, mode) = mode(core.data_dir.join(file));
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}

#[tokio::test]
async fn rapid_reset_and_settings_and_ping_floods_end_the_flooding_connection_only() {
    let core = TestCore::builder()
        .idle_connection_timeout(Duration::from_secs(2))
        .shutdown_grace(Duration::from_secs(1))
        .spawn()
        .await
        .expect("the core starts");
    let empty_settings = h2_frame(0x4, 0, 0, &[]);
    // Rapid reset: a thousand calls opened and cancelled at once.
    let mut rapid_reset = H2_PREFACE.to_vec();
    rapid_reset.extend_from_slice(&empty_settings);
    for n in 0..1000u32 {
        let stream = 2 * n + 1;
        rapid_reset.extend_from_slice(&h2_request_headers(stream, HEALTH_CHECK));
        rapid_reset.extend_from_slice(&h2_frame(0x3, 0, stream, &8u32.to_be_bytes()));
    }
    // SETTINGS and PING floods: a hundred thousand frames each, answered or not.
    let flood = |frame: Vec<u8>| {
        let mut bytes = H2_PREFACE.to_vec();
        bytes.extend_from_slice(&empty_settings);
        for _ in 0..100_000 {
            bytes.extend_from_slice(&frame);
        }
        bytes
    };
    let attacks = [
        ("rapid reset", rapid_reset),
        ("SETTINGS flood", flood(h2_frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]))),
        ("PING flood", flood(h2_frame(0x6, 0, 0, b"pingpong"))),
    ];
    let mut attackers = tokio::task::JoinSet::new();
    for (name, bytes) in attacks {
        let tls = tls_to(&core, core.addr, [127, 0, 0, 1], b"h2").await;
        let (mut reader, mut writer) = tokio::io::split(tls);
        attackers.spawn(async move {
            // The attacker writes as fast as the server reads, and reads whatever comes back.
            let write = tokio::spawn(async move {
                let _ = writer.write_all(&bytes).await;
                writer
            });
            let mut buf = vec![0u8; 64 * 1024];
            let closed = tokio::time::timeout(BOUND, async {
                loop {
                    match reader.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            write.abort();
            (name, closed.is_ok())
        });
    }

    // Meanwhile others are served.
    let (mut other, _) = h2_from(&core, [127, 0, 0, 2]).await;
    let (code, message) = tokio::time::timeout(BOUND, unary(&mut other, START_SESSION, start_session_message("lobby")))
        .await
        .expect("another peer is answered during the floods");
    assert_eq!(code, Code::Ok, "{message}");

    // Rapid reset ends at h2's cap on streams reset before they are served (GOAWAY); the SETTINGS
    // and PING floods open no call, so the idle limit ends them.
    while let Some(result) = attackers.join_next().await {
        let (name, closed) = result.expect("the attacker ran");
        assert!(closed, "the server closes the connection of the {name}");
    }
    // (The first connection may have been closed meanwhile as idle; a new one is served.)
    let (mut after, _) = h2_from(&core, [127, 0, 0, 2]).await;
    let (code, message) = unary(&mut after, HEALTH_CHECK, health_message()).await;
    assert_eq!(code, Code::Ok, "still served after the floods: {message}");
}

#[tokio::test]
async fn open_streams_count_against_the_call_caps_until_they_end() {
    let core = TestCore::builder().max_calls_per_peer(4).spawn().await.expect("the core starts");
    let channel = core.channel().await;
    let watch = || {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        async move { health.watch(tonic_health::pb::HealthCheckRequest { service: String::new() }).await }
    };
    // Health Watch streams stay open: four fill this address's slots.
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut stream = watch().await.expect("a watch within the cap").into_inner();
        stream.message().await.expect("a first status").expect("the stream is open");
        open.push(stream);
    }
    let refused = watch().await.expect_err("a fifth open stream is over the cap");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("limit of calls in flight"), "{}", refused.message());

    // Ending one stream gives its slot back.
    drop(open.pop());
    eventually("a stream to be admitted once another ended", BOUND, || async {
        match watch().await {
            Err(status) if status.code() == Code::ResourceExhausted => Err(status),
            Err(status) => panic!("unexpected {status:?}"),
            Ok(stream) => Ok(stream),
        }
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_disconnected_even_with_a_stream_open() {
    let core = TestCore::builder()
        .keepalive(Duration::from_secs(1), Duration::from_secs(1))
        .spawn()
        .await
        .expect("the core starts");
    // A health Watch stream stays open, so the connection is never idle; after opening it the
    // peer goes dead: it reads what arrives but never answers a PING.
    let mut tls = tls_to(&core, core.addr, [127, 0, 0, 1], b"h2").await;
    let mut opening = H2_PREFACE.to_vec();
    opening.extend_from_slice(&h2_frame(0x4, 0, 0, &[]));
    opening.extend_from_slice(&h2_frame(0x4, 0x1, 0, &[]));
    opening.extend_from_slice(&h2_request_headers(1, "/grpc.health.v1.Health/Watch"));
    opening.extend_from_slice(&h2_frame(0x0, 0x1, 1, &health_message()));
    tls.write_all(&opening).await.expect("the request is sent");
    closed_by_server(tls).await;
}
