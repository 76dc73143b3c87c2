//! The gateway under cheap attacks from a browser's side (issue 17): stalled calls, silent and
//! dead connections, SIGTERM with all of those open, oversized headers next to other people's
//! calls, two messages on one call; and the headers and listeners that keep answers safe
//! (`nosniff` everywhere, `/metrics` only on the operator listener). Limits are set small by each
//! test; every wait is bounded.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use proto::v1 as pb;
use tests::core::TestCore;
use tests::gateway::{
    Http, Mode, ReqBody, TestGateway, WebClient, WebReply, encode_body, frame, full, tcp_connect, tls_connect,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

const START: &str = "/podconnect.v1.SessionService/StartSession";
const LIST: &str = "/podconnect.v1.CatalogService/ListProducts";
/// Another client on loopback: Linux routes all of 127.0.0.0/8 to lo.
const OTHER_PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The longest any test here waits for something that should happen.
const BOUND: Duration = Duration::from_secs(30);

fn start_session() -> pb::StartSessionRequest {
    pb::StartSessionRequest { device_id: "abuse-test".into(), ..Default::default() }
}

/// A request body that sends the first byte of a frame header and then nothing, while the returned
/// sender lives.
fn stalled_body() -> (mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>, ReqBody) {
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(Ok(Frame::data(Bytes::from_static(&[0])))).expect("room for one frame");
    (tx, StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed())
}

fn grpc_web(client: &WebClient, path: &str, body: ReqBody) -> http::Request<ReqBody> {
    client.request(Method::POST, path).header("content-type", "application/grpc-web+proto").body(body).unwrap()
}

async fn healthz(client: &mut WebClient) -> StatusCode {
    client.fetch(client.request(Method::GET, "/healthz").body(full(Bytes::new())).unwrap()).await.unwrap().0
}

/// Reads until the peer closes (EOF or reset); false if it is still open after `BOUND`.
async fn closed_by_peer(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_calls_from_one_address_cannot_lock_out_other_browsers_or_healthz() {
    let core = TestCore::start().await;
    let gateway = TestGateway::builder()
        .max_concurrent_calls(100)
        .max_calls_per_peer(40)
        .max_streams_per_connection(20)
        .body_timeout(Duration::from_secs(2))
        .spawn(&core)
        .await
        .unwrap();
    // 4 connections x 30 calls from 127.0.0.1 that send one byte of body and stall: more than a
    // connection may carry, than one address may have in flight, and than the other peer could
    // ever wait behind.
    let mut senders = Vec::new();
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut attacker = gateway.client(Http::H2).await;
        // One answer first, so the client knows the connection's stream cap and queues beyond it
        // (a stream sent over the cap is refused with REFUSED_STREAM, also a clear answer).
        assert_eq!(healthz(&mut attacker).await, StatusCode::OK);
        for _ in 0..30 {
            let (tx, body) = stalled_body();
            senders.push(tx);
            let mut handle = attacker.multiplexed().unwrap();
            let request = grpc_web(&handle, START, body);
            stalled.push(tokio::spawn(async move {
                match handle.send(request).await {
                    Ok(response) => response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned()),
                    Err(err) => Some(format!("{err:#}")),
                }
            }));
        }
    }
    // The stalled calls fill the address's cap.
    gateway.wait_in_flight(40).await;

    // Another browser is served at once, and so is the health check.
    let mut other = WebClient::connect_from(Some(OTHER_PEER), gateway.addr, &gateway.ca, Http::H2).await.unwrap();
    let reply = other.call(START, None, &start_session(), Mode::Binary).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "another peer is not locked out: {reply:?}");
    assert_eq!(healthz(&mut other).await, StatusCode::OK);
    let mut other_h1 = WebClient::connect_from(Some(OTHER_PEER), gateway.addr, &gateway.ca, Http::H1).await.unwrap();
    assert_eq!(healthz(&mut other_h1).await, StatusCode::OK);

    // Every stalled call ends with a clear status: over the address's cap at once, the others
    // when the body time limit passes.
    let mut codes = std::collections::BTreeMap::new();
    for call in stalled {
        let code = tokio::time::timeout(BOUND, call).await.expect("a stalled call ended").unwrap();
        *codes.entry(code).or_insert(0) += 1;
    }
    // (Calls that queued behind their connection's stream cap may be admitted in a second wave.)
    let deadline_exceeded = codes.get(&Some("4".to_owned())).copied().unwrap_or(0);
    let over_cap = codes.get(&Some("8".to_owned())).copied().unwrap_or(0);
    let refused_streams =
        codes.iter().filter(|(code, _)| code.as_deref().is_some_and(|c| c.contains("refused"))).count();
    assert!(deadline_exceeded >= 40, "DEADLINE_EXCEEDED for the admitted: {codes:?}");
    assert!(over_cap >= 1, "RESOURCE_EXHAUSTED past the cap: {codes:?}");
    assert_eq!(codes.values().sum::<usize>(), 120);
    assert_eq!(codes.len(), 2 + refused_streams, "no other outcome: {codes:?}");
    drop(senders);

    // The slots came back: the attacking address itself is served again.
    let mut client = gateway.client(Http::H1).await;
    let reply = client.call(START, None, &start_session(), Mode::Binary).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
    assert!(gateway.log().contains("the request body did not arrive within 2s"), "{}", gateway.log());
}

#[tokio::test]
async fn the_per_address_cap_refuses_with_a_message_and_frees_its_slots() {
    let core = TestCore::start().await;
    let gateway = TestGateway::builder().max_calls_per_peer(1).spawn(&core).await.unwrap();
    let mut holder = gateway.client(Http::H2).await;
    let (tx, body) = stalled_body();
    let request = grpc_web(&holder, START, body);
    let held = tokio::spawn(async move {
        let response = holder.send(request).await?;
        let status = response.headers().get("grpc-status").cloned();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    });
    gateway.wait_in_flight(1).await;
    let mut client = gateway.client(Http::H1).await;
    let reply = client.call(START, None, &start_session(), Mode::Binary).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(8), "{reply:?}");
    assert!(
        reply.grpc_message().unwrap().replace("%20", " ").contains("too many calls from your address"),
        "{reply:?}"
    );

    // The held call completes normally once its body arrives.
    let message = prost::Message::encode_to_vec(&start_session());
    tx.send(Ok(Frame::data(encode_body(&frame(0, &message), Mode::Binary).slice(1..)))).await.unwrap();
    drop(tx);
    let (status, body) = held.await.unwrap().unwrap();
    assert!(status.is_none(), "not trailers-only: {status:?}");
    let reply = WebReply::parse(StatusCode::OK, http::HeaderMap::new(), &body, Mode::Binary).unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
    let reply = client.call(START, None, &start_session(), Mode::Binary).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "the slot is free again: {reply:?}");
}

#[tokio::test]
async fn silent_and_dead_peers_are_disconnected() {
    let core = TestCore::start().await;
    let gateway = TestGateway::builder()
        .handshake_timeout(Duration::from_secs(1))
        .header_timeout(Duration::from_secs(1))
        .idle_timeout(Duration::from_secs(2))
        .keepalive(Duration::from_secs(1), Duration::from_secs(1))
        .body_timeout(Duration::from_secs(60))
        .spawn(&core)
        .await
        .unwrap();
    // TCP only, no TLS handshake.
    let mut tcp = tcp_connect(None, gateway.addr).await.unwrap();
    assert!(closed_by_peer(&mut tcp).await, "a TCP-only peer stays connected");
    // A TLS handshake, then nothing, whatever the ALPN.
    for http in [Some(Http::H2), Some(Http::H1), None] {
        let mut tls = tls_connect(None, gateway.addr, &gateway.ca, http).await.unwrap();
        assert!(closed_by_peer(&mut tls).await, "a silent TLS peer ({http:?}) stays connected");
    }
    // HTTP/1.1 kept alive after a request, then idle.
    let mut tls = tls_connect(None, gateway.addr, &gateway.ca, Some(Http::H1)).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n").await.unwrap();
    assert!(closed_by_peer(&mut tls).await, "an idle HTTP/1.1 connection stays open");
    // HTTP/2 after a request, then idle.
    let mut tls = tls_connect(None, gateway.addr, &gateway.ca, Some(Http::H2)).await.unwrap();
    tls.write_all(&h2_preface_and_get("/healthz")).await.unwrap();
    assert!(closed_by_peer(&mut tls).await, "an idle HTTP/2 connection stays open");
    // HTTP/2 with a call in flight (its body stalled, far from its own limit) whose peer answers
    // no PING: the keepalive closes it.
    let mut tls = tls_connect(None, gateway.addr, &gateway.ca, Some(Http::H2)).await.unwrap();
    tls.write_all(&h2_preface_and_stalled_post(START)).await.unwrap();
    assert!(closed_by_peer(&mut tls).await, "a peer that ignores PINGs stays connected");
}

/// The HTTP/2 preface, empty SETTINGS, and one request's HEADERS on stream 1 (HPACK literals
/// without indexing), written by hand: this peer then never answers a PING or SETTINGS.
fn h2_request(method: &str, path: &str, end_stream: bool) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let mut block = Vec::new();
    for (name, value) in [
        (":method", method),
        (":scheme", "https"),
        (":path", path),
        (":authority", "localhost"),
        ("content-type", "application/grpc-web+proto"),
    ] {
        block.push(0);
        block.push(name.len() as u8);
        block.extend_from_slice(name.as_bytes());
        block.push(value.len() as u8);
        block.extend_from_slice(value.as_bytes());
    }
    let flags = 0x4 | if end_stream { 0x1 } else { 0 };
    out.extend_from_slice(&(block.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[0x1, flags, 0, 0, 0, 1]);
    out.extend_from_slice(&block);
    out
}

fn h2_preface_and_get(path: &str) -> Vec<u8> {
    h2_request("GET", path, true)
}

fn h2_preface_and_stalled_post(path: &str) -> Vec<u8> {
    let mut out = h2_request("POST", path, false);
    // One DATA byte on stream 1, no END_STREAM.
    out.extend_from_slice(&[0, 0, 1, 0x0, 0, 0, 0, 0, 1, 0]);
    out
}

#[tokio::test]
async fn sigterm_closes_handshake_only_idle_and_stalled_connections_within_the_grace_period() {
    let core = TestCore::start().await;
    let mut gateway = TestGateway::builder()
        .shutdown_grace(Duration::from_secs(2))
        .handshake_timeout(Duration::from_secs(60))
        .header_timeout(Duration::from_secs(60))
        .idle_timeout(Duration::from_secs(60))
        .body_timeout(Duration::from_secs(60))
        .spawn(&core)
        .await
        .unwrap();
    let _tcp_only = tcp_connect(None, gateway.addr).await.unwrap();
    let _handshake_only = tls_connect(None, gateway.addr, &gateway.ca, Some(Http::H2)).await.unwrap();
    let mut idle_h2 = gateway.client(Http::H2).await;
    assert_eq!(idle_h2.call(START, None, &start_session(), Mode::Binary).await.unwrap().grpc_status(), Some(0));
    let mut senders = Vec::new();
    let mut stalled = Vec::new();
    for http in [Http::H1, Http::H2] {
        let mut client = gateway.client(http).await;
        let (tx, body) = stalled_body();
        senders.push(tx);
        let request = grpc_web(&client, START, body);
        stalled.push(tokio::spawn(async move { client.send(request).await.map(|r| r.status()) }));
    }
    gateway.wait_in_flight(2).await;

    let signalled = Instant::now();
    gateway.signal_terminate().await.unwrap();
    let exit = gateway.wait_exit(Duration::from_secs(2) + BOUND).await.unwrap();
    let elapsed = signalled.elapsed();
    let exit = exit.unwrap_or_else(|| panic!("still running {elapsed:?} after SIGTERM:\n{}", gateway.log()));
    assert!(exit.success(), "{exit}:\n{}", gateway.log());
    eprintln!("SIGTERM to exit with handshake-only, idle HTTP/2 and stalled calls open: {elapsed:?}");
    assert!(gateway.log().contains("closing them"), "the stalled calls were cut:\n{}", gateway.log());
    for call in stalled {
        // Ended one way or another (a status or a closed connection), never left hanging.
        tokio::time::timeout(BOUND, call).await.expect("the stalled call ended").unwrap().ok();
    }
}

/// `size` bytes of header value in `count` headers of equal length.
fn padded(request: http::request::Builder, size: usize) -> http::request::Builder {
    let chunk = 4000;
    let mut request = request;
    for i in 0..size.div_ceil(chunk) {
        request = request.header(format!("x-pad-{i}"), "a".repeat(chunk.min(size - i * chunk)));
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused_at_the_gateway_and_never_break_other_calls() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for (http, mode) in [(Http::H2, Mode::Binary), (Http::H2, Mode::Text), (Http::H1, Mode::Binary)] {
        let mut client = WebClient::connect_from(Some(OTHER_PEER), gateway.addr, &gateway.ca, http).await.unwrap();
        let stop = stop.clone();
        callers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match tokio::time::timeout(BOUND, client.call(START, None, &start_session(), mode)).await {
                    Ok(Ok(reply)) if reply.grpc_status() == Some(0) => ok += 1,
                    Ok(Ok(reply)) => failed.push(format!("{reply:?}")),
                    Ok(Err(err)) => failed.push(err.to_string()),
                    Err(_) => failed.push(format!("no answer within {BOUND:?}")),
                }
            }
            (ok, failed)
        }));
    }
    let message = prost::Message::encode_to_vec(&start_session());
    for round in 0..3 {
        for size in [20_000, 50_000, 100_000] {
            for http in [Http::H1, Http::H2] {
                let mut attacker = gateway.client(http).await;
                let request = padded(attacker.request(Method::POST, START), size)
                    .header("content-type", "application/grpc-web+proto")
                    .body(full(frame(0, &message)))
                    .unwrap();
                let (status, headers, body) =
                    tokio::time::timeout(BOUND, attacker.fetch(request)).await.expect("answered").unwrap();
                let reply = WebReply::parse(status, headers, &body, Mode::Binary).unwrap();
                assert_eq!(reply.grpc_status(), Some(8), "round {round}, {size} bytes over {http:?}: {reply:?}");
                assert!(
                    reply.grpc_message().unwrap().replace("%20", " ").contains("request headers exceed the limit"),
                    "{reply:?}"
                );
                // Plain HTTP gets 431.
                let request = padded(attacker.request(Method::GET, "/"), size).body(full(Bytes::new())).unwrap();
                let (status, _, _) =
                    tokio::time::timeout(BOUND, attacker.fetch(request)).await.expect("answered").unwrap();
                assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "{size} bytes over {http:?}");
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for caller in callers {
        let (ok, failed) = tokio::time::timeout(BOUND, caller).await.unwrap().unwrap();
        assert!(failed.is_empty(), "{} of the others' calls failed, e.g. {}", failed.len(), failed[0]);
        total += ok;
    }
    assert!(total > 0);
    eprintln!("{total} ordinary calls during the oversized-header attack, none failed");
    // A header list just under the limit still goes through.
    let mut client = gateway.client(Http::H2).await;
    let request = padded(client.request(Method::POST, START), 6_000)
        .header("content-type", "application/grpc-web+proto")
        .body(full(frame(0, &message)))
        .unwrap();
    let (status, headers, body) = client.fetch(request).await.unwrap();
    assert_eq!(WebReply::parse(status, headers, &body, Mode::Binary).unwrap().grpc_status(), Some(0));
}

#[tokio::test]
async fn a_call_with_two_messages_or_none_is_refused_before_the_core() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let message = prost::Message::encode_to_vec(&start_session());
    let two = [frame(0, &message), frame(0, &message)].concat();
    for http in [Http::H1, Http::H2] {
        for mode in [Mode::Binary, Mode::Text] {
            for body in [two.clone(), Vec::new(), frame(0, &message)[..7].to_vec()] {
                let mut client = gateway.client(http).await;
                let mut request = client.request(Method::POST, START).header("content-type", mode.content_type());
                if mode == Mode::Text {
                    request = request.header("accept", "application/grpc-web-text");
                }
                let request = request.body(full(encode_body(&body, mode))).unwrap();
                let (status, headers, reply) = client.fetch(request).await.unwrap();
                let reply = WebReply::parse(status, headers, &reply, mode).unwrap();
                assert_eq!(reply.grpc_status(), Some(3), "{http:?} {mode:?} {} bytes: {reply:?}", body.len());
                assert!(reply.messages.is_empty(), "no session was started: {reply:?}");
                assert!(
                    reply.grpc_message().unwrap().replace("%20", " ").contains("exactly one request message"),
                    "{reply:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_answer_says_nosniff() {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("devices.toml");
    std::fs::write(
        &devices,
        "[[device]]\nid = \"abuse-test\"\ndisplay_name = \"EIP device\"\nmodel = \"Xerox VersaLink C7130\"\ndelivery = \"device_pull\"\n",
    )
    .unwrap();
    let core = TestCore::builder().devices_file(&devices).spawn().await.unwrap();
    let weblet = tempfile::tempdir().unwrap();
    std::fs::write(weblet.path().join("index.html"), "<!doctype html><title>weblet</title>").unwrap();
    let origin = "https://mfd.example:8443";
    let gateway = TestGateway::builder().allowed_origin(origin).weblet_dir(weblet.path()).spawn(&core).await.unwrap();
    let mut client = gateway.client(Http::H1).await;
    let mut answers = Vec::new();

    let reply = client.call(START, None, &start_session(), Mode::Binary).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0));
    let token = reply.message::<pb::StartSessionResponse>().session_token;
    answers.push(("RPC answer", reply.headers));
    let reply = client.call(LIST, None, &pb::ListProductsRequest::default(), Mode::Binary).await.unwrap();
    assert_eq!(reply.header_status(), Some(16));
    answers.push(("RPC error", reply.headers));
    for (what, method, path) in [
        ("healthz", Method::GET, "/healthz"),
        ("weblet file", Method::GET, "/"),
        ("missing file", Method::GET, "/missing.js"),
        ("wrong method", Method::GET, LIST),
        ("browser /metrics", Method::GET, "/metrics"),
    ] {
        let (_, headers, _) =
            client.fetch(client.request(method, path).body(full(Bytes::new())).unwrap()).await.unwrap();
        answers.push((what, headers));
    }
    let preflight = client
        .request(Method::OPTIONS, LIST)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .body(full(Bytes::new()))
        .unwrap();
    let (status, headers, _) = client.fetch(preflight).await.unwrap();
    assert!(status.is_success());
    answers.push(("CORS preflight", headers));

    // A pull-link download, through the gateway.
    let create = pb::CreateDraftRequest { product_id: "fire-action-notice".into(), ..Default::default() };
    let reply = client
        .call("/podconnect.v1.CustomizationService/CreateDraft", Some(&token), &create, Mode::Binary)
        .await
        .unwrap();
    let draft_id = reply.message::<pb::CreateDraftResponse>().draft.unwrap().id;
    // Only a finalized draft is printed.
    let finalize = pb::FinalizeDraftRequest { draft_id: draft_id.clone() };
    let reply = client
        .call("/podconnect.v1.CustomizationService/FinalizeDraft", Some(&token), &finalize, Mode::Binary)
        .await
        .unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
    let submit = pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::DraftId(draft_id)),
        copies: 1,
        ..Default::default()
    };
    let reply =
        client.call("/podconnect.v1.PrintService/SubmitJob", Some(&token), &submit, Mode::Binary).await.unwrap();
    let link = reply.message::<pb::SubmitJobResponse>().pull_delivery.unwrap().document_url;
    let path = format!("/print-files/{}", link.rsplit('/').next().unwrap());
    let (status, headers, _) =
        client.fetch(client.request(Method::GET, &path).body(full(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    answers.push(("pull-link download", headers));

    let (status, headers, _) = gateway.operator_get("/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    answers.push(("operator /metrics", headers));

    for (what, headers) in answers {
        assert_eq!(headers.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{what}");
    }
}

#[tokio::test]
async fn metrics_are_served_on_the_operator_listener_and_not_to_browsers() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    for http in [Http::H1, Http::H2] {
        let mut client = gateway.client(http).await;
        client.call(START, None, &start_session(), Mode::Binary).await.unwrap();
        let (status, _, body) =
            client.fetch(client.request(Method::GET, "/metrics").body(full(Bytes::new())).unwrap()).await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{http:?}");
        assert!(!String::from_utf8_lossy(&body).contains("weblet_gateway"), "{http:?}");
    }
    let text = gateway.metrics().await.unwrap();
    assert!(text.contains(&format!(r#"weblet_gateway_grpc_calls_total{{method="{START}",code="Ok"}} 2"#)), "{text}");
    let (status, _, _) = gateway.operator_get("/").await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND, "the operator listener serves only /metrics");
    assert!(gateway.metrics_addr.unwrap().ip().is_loopback());

    // Off: no operator listener at all, and still nothing on the browsers' port.
    let gateway = TestGateway::builder().metrics_off().spawn(&core).await.unwrap();
    assert!(gateway.metrics_addr.is_none());
    let mut client = gateway.client(Http::H2).await;
    let (status, _, _) =
        client.fetch(client.request(Method::GET, "/metrics").body(full(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_flood_of_health_checks_is_capped_instead_of_piling_on_the_core() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let client = gateway.client(Http::H2).await;
    // A core that stops answering: each check waits out its own time limit.
    core.freeze().await;
    let mut checks = Vec::new();
    for _ in 0..24 {
        let mut handle = client.multiplexed().unwrap();
        checks.push(tokio::spawn(async move {
            let request = handle.request(Method::GET, "/healthz").body(full(Bytes::new())).unwrap();
            let (status, _, body) = handle.fetch(request).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }));
    }
    let mut answers = std::collections::BTreeMap::new();
    for check in checks {
        let (status, body) = tokio::time::timeout(BOUND, check).await.expect("every check is answered").unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        *answers.entry(body).or_insert(0) += 1;
    }
    core.thaw().await;
    assert_eq!(answers.get("UNAVAILABLE\n"), Some(&16), "16 checks reach the core: {answers:?}");
    assert_eq!(answers.get("BUSY: too many health checks at once\n"), Some(&8), "{answers:?}");
}
