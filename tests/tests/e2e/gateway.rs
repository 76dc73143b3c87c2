//! The weblet-gateway in front of a real core, called the way a printer's browser does: grpc-web
//! binary and text over HTTP/1.1 and HTTP/2, server streams, errors as trailer frames, CORS, limits,
//! the core going away, health, static files and metrics.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use proto::v1 as pb;
use tests::core::TestCore;
use tests::gateway::{Http, Mode, TestGateway, WebClient, encode_body, frame, full};

const START: &str = "/podconnect.v1.SessionService/StartSession";
const LIST: &str = "/podconnect.v1.CatalogService/ListProducts";

async fn session(client: &mut WebClient, mode: Mode) -> String {
    let start = pb::StartSessionRequest { device_id: "gateway-test".into(), ..Default::default() };
    let reply = client.call(START, None, &start, mode).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
    reply.message::<pb::StartSessionResponse>().session_token
}

/// FinalizeDraft through the gateway: only a finalized draft is printed.
async fn finalize(client: &mut WebClient, token: &str, draft_id: &str, mode: Mode) {
    let request = pb::FinalizeDraftRequest { draft_id: draft_id.into() };
    let reply =
        client.call("/podconnect.v1.CustomizationService/FinalizeDraft", Some(token), &request, mode).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
}

/// Creates a draft of the static fire-action notice through the gateway and submits it on the
/// session's device; the submit reply.
async fn submit_fire_notice(client: &mut WebClient, token: &str) -> pb::SubmitJobResponse {
    let create = pb::CreateDraftRequest { product_id: "fire-action-notice".into(), ..Default::default() };
    let reply = client
        .call("/podconnect.v1.CustomizationService/CreateDraft", Some(token), &create, Mode::Binary)
        .await
        .unwrap();
    let draft_id = reply.message::<pb::CreateDraftResponse>().draft.unwrap().id;
    finalize(client, token, &draft_id, Mode::Binary).await;
    let submit = pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::DraftId(draft_id)),
        copies: 1,
        ..Default::default()
    };
    let reply = client.call("/podconnect.v1.PrintService/SubmitJob", Some(token), &submit, Mode::Binary).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
    reply.message::<pb::SubmitJobResponse>()
}

#[tokio::test]
async fn an_upload_which_grpc_web_cannot_stream_is_unimplemented_and_says_to_call_the_core() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let mut client = gateway.client(Http::H2).await;
    let token = session(&mut client, Mode::Binary).await;
    let upload = pb::UploadPrintFileRequest {
        part: Some(pb::upload_print_file_request::Part::Metadata(pb::UploadPrintFileMetadata {
            size_bytes: 5,
            ..Default::default()
        })),
    };
    let reply = client
        .call("/podconnect.v1.CustomizationService/UploadPrintFile", Some(&token), &upload, Mode::Binary)
        .await
        .unwrap();
    assert_eq!(reply.grpc_status(), Some(tonic::Code::Unimplemented as i32), "{reply:?}");
    assert!(reply.grpc_message().unwrap_or_default().contains("gRPC"), "says to call the core over gRPC: {reply:?}");
}

#[tokio::test]
async fn unary_calls_work_in_binary_and_text_over_http1_and_http2() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    for http in [Http::H1, Http::H2] {
        for mode in [Mode::Binary, Mode::Text] {
            let mut client = gateway.client(http).await;
            let token = session(&mut client, mode).await;
            let reply = client.call(LIST, Some(&token), &pb::ListProductsRequest::default(), mode).await.unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.grpc_status(), Some(0), "{http:?} {mode:?}: {reply:?}");
            let content_type = reply.headers["content-type"].to_str().unwrap();
            let expected = if mode == Mode::Text { "application/grpc-web-text" } else { "application/grpc-web" };
            assert!(content_type.starts_with(expected), "{content_type}");
            let products = reply.message::<pb::ListProductsResponse>().products;
            assert!(products.iter().any(|p| p.id == "fire-action-notice"), "{http:?} {mode:?}: {products:?}");
        }
    }
}

#[tokio::test]
async fn a_call_whose_url_has_a_query_string_reaches_its_method() {
    // grpc-web clients may put headers in the query (`$httpHeaders`) to avoid a CORS preflight;
    // the gateway forwards the path alone.
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let mut client = gateway.client(Http::H2).await;
    let token = session(&mut client, Mode::Binary).await;
    let path = format!("{LIST}?%24httpHeaders=x-a%3A%20b");
    let reply = client.call(&path, Some(&token), &pb::ListProductsRequest::default(), Mode::Binary).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "{reply:?}");
    assert!(!reply.message::<pb::ListProductsResponse>().products.is_empty());
}

#[tokio::test]
async fn a_gateway_on_a_thread_pool_forwards_the_same_and_zero_threads_is_refused() {
    let core = TestCore::start().await;
    // The default is one thread; a dedicated gateway host may ask for a pool.
    let gateway = TestGateway::builder().worker_threads(3).spawn(&core).await.unwrap();
    for http in [Http::H1, Http::H2] {
        let mut client = gateway.client(http).await;
        let token = session(&mut client, Mode::Binary).await;
        let reply = client.call(LIST, Some(&token), &pb::ListProductsRequest::default(), Mode::Binary).await.unwrap();
        assert_eq!(reply.grpc_status(), Some(0), "{http:?}: {reply:?}");
        assert!(!reply.message::<pb::ListProductsResponse>().products.is_empty(), "{http:?}");
    }
    let refused = TestGateway::builder().worker_threads(0).spawn(&core).await;
    let err = format!("{:#}", refused.err().expect("zero threads cannot serve"));
    assert!(err.contains("--worker-threads must be at least 1"), "{err}");
}

#[tokio::test]
async fn a_server_stream_arrives_as_frames_then_a_trailer_frame_over_http1_and_http2() {
    let core = TestCore::builder()
        .spool_print_time(Duration::from_millis(300))
        .job_poll(Duration::from_millis(50))
        .spawn()
        .await
        .unwrap();
    let gateway = TestGateway::start(&core).await;
    for (http, mode) in [(Http::H1, Mode::Text), (Http::H2, Mode::Binary), (Http::H2, Mode::Text)] {
        let mut client = gateway.client(http).await;
        let token = session(&mut client, mode).await;
        let create = pb::CreateDraftRequest { product_id: "fire-action-notice".into(), ..Default::default() };
        let reply =
            client.call("/podconnect.v1.CustomizationService/CreateDraft", Some(&token), &create, mode).await.unwrap();
        let draft_id = reply.message::<pb::CreateDraftResponse>().draft.unwrap().id;
        finalize(&mut client, &token, &draft_id, mode).await;
        let submit = pb::SubmitJobRequest {
            document: Some(pb::submit_job_request::Document::DraftId(draft_id)),
            copies: 1,
            ..Default::default()
        };
        let reply = client.call("/podconnect.v1.PrintService/SubmitJob", Some(&token), &submit, mode).await.unwrap();
        let job_id = reply.message::<pb::SubmitJobResponse>().job.unwrap().id;

        let watch = pb::WatchJobRequest { job_id };
        let reply = client.call("/podconnect.v1.PrintService/WatchJob", Some(&token), &watch, mode).await.unwrap();
        assert_eq!(reply.grpc_status(), Some(0), "{http:?} {mode:?}: {reply:?}");
        let states: Vec<i32> = reply
            .messages
            .iter()
            .map(|m| <pb::WatchJobResponse as prost::Message>::decode(m.clone()).unwrap().job.unwrap().state)
            .collect();
        assert!(states.len() >= 2, "{http:?} {mode:?}: several frames expected, got {states:?}");
        assert_eq!(*states.last().unwrap(), pb::JobState::Completed as i32, "{states:?}");
    }
}

#[tokio::test]
async fn an_error_reaches_the_browser_in_headers_and_a_trailer_frame() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    for http in [Http::H1, Http::H2] {
        for mode in [Mode::Binary, Mode::Text] {
            let mut client = gateway.client(http).await;
            let reply = client.call(LIST, None, &pb::ListProductsRequest::default(), mode).await.unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            assert_eq!(reply.header_status(), Some(16), "{reply:?}");
            assert_eq!(reply.grpc_status(), Some(16), "{http:?} {mode:?}: {reply:?}");
            assert!(reply.grpc_message().unwrap().contains("session"), "{reply:?}");
            assert!(reply.messages.is_empty());
        }
    }
}

#[tokio::test]
async fn cors_grants_only_allowed_origins_and_preflights_stay_at_the_gateway() {
    let core = TestCore::start().await;
    let allowed = "https://mfd.example:8443";
    let gateway = TestGateway::builder().allowed_origin(allowed).spawn(&core).await.unwrap();
    let mut client = gateway.client(Http::H2).await;

    let preflight = |client: &WebClient, origin: &str| {
        client
            .request(Method::OPTIONS, LIST)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web,authorization,grpc-timeout")
            .body(full(Bytes::new()))
            .unwrap()
    };
    let (status, headers, _) = client.fetch(preflight(&client, allowed)).await.unwrap();
    assert!(status.is_success(), "{status}");
    assert_eq!(headers["access-control-allow-origin"], allowed);
    let allow_headers = headers["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    for name in ["content-type", "x-grpc-web", "authorization", "grpc-timeout"] {
        assert!(allow_headers.contains(name), "{allow_headers}");
    }
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));

    let (_, headers, _) = client.fetch(preflight(&client, "https://evil.example")).await.unwrap();
    assert!(headers.get("access-control-allow-origin").is_none(), "{headers:?}");

    // The real call from the allowed origin can read the status headers.
    let request = client
        .request(Method::POST, LIST)
        .header("origin", allowed)
        .header("content-type", "application/grpc-web+proto")
        .body(full(frame(0, &[])))
        .unwrap();
    let (_, headers, _) = client.fetch(request).await.unwrap();
    assert_eq!(headers["access-control-allow-origin"], allowed);
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    let request = client
        .request(Method::POST, LIST)
        .header("origin", "https://evil.example")
        .header("content-type", "application/grpc-web+proto")
        .body(full(frame(0, &[])))
        .unwrap();
    let (_, headers, _) = client.fetch(request).await.unwrap();
    assert!(headers.get("access-control-allow-origin").is_none(), "{headers:?}");
}

#[tokio::test]
async fn an_oversized_frame_is_refused_before_its_body_is_read() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    for http in [Http::H1, Http::H2] {
        let mut client = gateway.client(http).await;
        // The header claims 1 GiB; the body then stays open and empty.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        tx.send(Ok(Frame::data(Bytes::from_static(&[0, 0x40, 0, 0, 0])))).await.unwrap();
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
        let request =
            client.request(Method::POST, LIST).header("content-type", "application/grpc-web+proto").body(body).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), client.send(request))
            .await
            .expect("answered without waiting for the body")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "8", "{http:?}: RESOURCE_EXHAUSTED expected");
        drop(tx);
    }
}

#[tokio::test]
async fn malformed_base64_gets_a_clean_grpc_web_error() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let mut client = gateway.client(Http::H1).await;
    let request = client
        .request(Method::POST, START)
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .body(full(Bytes::from_static(b"!!!!not*base64")))
        .unwrap();
    let (status, headers, body) = client.fetch(request).await.unwrap();
    let reply = tests::gateway::WebReply::parse(status, headers, &body, Mode::Text).unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.grpc_status(), Some(3), "INVALID_ARGUMENT expected: {reply:?}");
    // The connection is still usable.
    session(&mut client, Mode::Text).await;
}

#[tokio::test]
async fn other_methods_on_rpc_paths_are_refused_and_internal_services_are_not_exposed() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    for http in [Http::H1, Http::H2] {
        let mut client = gateway.client(http).await;
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let request = client
                .request(method.clone(), LIST)
                .header("content-type", "application/grpc-web+proto")
                .body(full(Bytes::new()))
                .unwrap();
            let (status, _, _) = client.fetch(request).await.unwrap();
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{http:?} {method}");
        }
        let request = client
            .request(Method::POST, "/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc-web+proto")
            .body(full(frame(0, &[])))
            .unwrap();
        let (status, headers, _) = client.fetch(request).await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND, "{http:?}");
        assert!(headers.get("grpc-status").is_none());
    }
}

#[tokio::test]
async fn the_core_going_down_gives_unavailable_in_grpc_web_and_fails_healthz() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let mut h1 = gateway.client(Http::H1).await;
    let mut h2 = gateway.client(Http::H2).await;
    let healthz = |client: &WebClient| client.request(Method::GET, "/healthz").body(full(Bytes::new())).unwrap();
    let (status, _, body) = h2.fetch(healthz(&h2)).await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"SERVING\n"[..]));
    session(&mut h1, Mode::Binary).await;

    core.terminate().await.unwrap();
    for (client, mode) in [(&mut h1, Mode::Binary), (&mut h2, Mode::Text)] {
        let reply = client.call(LIST, Some("anything"), &pb::ListProductsRequest::default(), mode).await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header_status(), Some(14), "{reply:?}");
        assert_eq!(reply.grpc_status(), Some(14), "{reply:?}");
        assert!(!reply.grpc_message().unwrap().contains("127.0.0.1"), "no internal details: {reply:?}");
    }
    let (status, _, _) = h2.fetch(healthz(&h2)).await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(gateway.log().contains("unreachable"), "the details go to the log");
}

#[tokio::test]
async fn the_weblet_files_are_served_compressed_with_a_strict_policy_and_no_cookies() {
    let core = TestCore::start().await;
    let weblet = tempfile::tempdir().unwrap();
    let page = format!("<!doctype html><title>weblet</title>{}", "<p>print here</p>".repeat(40));
    std::fs::write(weblet.path().join("index.html"), &page).unwrap();
    std::fs::write(weblet.path().join("app.js"), "console.log('weblet');".repeat(20)).unwrap();
    let gateway = TestGateway::builder().weblet_dir(weblet.path()).spawn(&core).await.unwrap();
    for http in [Http::H1, Http::H2] {
        let mut client = gateway.client(http).await;
        let request = client.request(Method::GET, "/").body(full(Bytes::new())).unwrap();
        let (status, headers, body) = client.fetch(request).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, page.as_bytes());
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-cache");
        assert!(headers.get("set-cookie").is_none());

        let request = client
            .request(Method::GET, "/app.js")
            .header("accept-encoding", "br, gzip")
            .body(full(Bytes::new()))
            .unwrap();
        let (status, headers, _) = client.fetch(request).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-encoding"], "br");
        assert!(headers.get("set-cookie").is_none());

        let request = client.request(Method::GET, "/missing.js").body(full(Bytes::new())).unwrap();
        assert_eq!(client.fetch(request).await.unwrap().0, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn the_weblet_bundle_is_served_from_its_precompressed_copies() {
    let core = TestCore::start().await;
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../weblet-gateway/weblet/dist");
    let gateway = TestGateway::builder().weblet_dir(&dist).spawn(&core).await.unwrap();
    let mut client = gateway.client(Http::H2).await;
    // The bytes of the build's own .br/.gz files: nothing is compressed per request.
    for (accept, encoding, suffix) in [("br, gzip", "br", ".br"), ("gzip", "gzip", ".gz")] {
        for file in ["app.js", "app.css", "index.html"] {
            let request = client
                .request(Method::GET, &format!("/{file}"))
                .header("accept-encoding", accept)
                .body(full(Bytes::new()))
                .unwrap();
            let (status, headers, body) = client.fetch(request).await.unwrap();
            assert_eq!(status, StatusCode::OK, "{file}");
            assert_eq!(headers["content-encoding"], encoding, "{file}");
            assert_eq!(body, std::fs::read(dist.join(format!("{file}{suffix}"))).unwrap(), "{file} ({encoding})");
        }
    }
    // A browser that takes no compression gets the plain file.
    let request = client.request(Method::GET, "/app.js").body(full(Bytes::new())).unwrap();
    let (status, headers, body) = client.fetch(request).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(body, std::fs::read(dist.join("app.js")).unwrap());
}

#[tokio::test]
async fn metrics_count_calls_per_method_and_status() {
    let core = TestCore::start().await;
    let gateway = TestGateway::start(&core).await;
    let mut client = gateway.client(Http::H2).await;
    let token = session(&mut client, Mode::Binary).await;
    client.call(LIST, Some(&token), &pb::ListProductsRequest::default(), Mode::Binary).await.unwrap();
    client.call(LIST, None, &pb::ListProductsRequest::default(), Mode::Binary).await.unwrap();
    let text = gateway.metrics().await.unwrap();
    let ok = format!(r#"weblet_gateway_grpc_calls_total{{method="{LIST}",code="Ok"}} 1"#);
    let unauthenticated = format!(r#"weblet_gateway_grpc_calls_total{{method="{LIST}",code="Unauthenticated"}} 1"#);
    assert!(text.contains(&ok), "{text}");
    assert!(text.contains(&unauthenticated), "{text}");
    assert!(text.contains("weblet_gateway_grpc_call_duration_seconds_bucket"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_cap_are_shed_at_once() {
    let core = TestCore::start().await;
    let gateway = TestGateway::builder().max_concurrent_calls(1).spawn(&core).await.unwrap();
    let mut client = gateway.client(Http::H2).await;
    let token = session(&mut client, Mode::Binary).await;
    // A call whose body stops after one byte holds the only slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    tx.send(Ok(Frame::data(Bytes::from_static(&[0])))).await.unwrap();
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    let request = client
        .request(Method::POST, LIST)
        .header("content-type", "application/grpc-web+proto")
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .unwrap();
    let mut holder = gateway.client(Http::H2).await;
    let held = tokio::spawn(async move {
        // Read to the end: the slot is freed when the call ends, not when its headers arrive.
        let response = holder.send(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        anyhow::Ok(status)
    });
    gateway.wait_in_flight(1).await;
    let reply = client.call(LIST, Some(&token), &pb::ListProductsRequest::default(), Mode::Binary).await.unwrap();
    assert_eq!(reply.header_status(), Some(8), "RESOURCE_EXHAUSTED at once: {reply:?}");
    assert_eq!(reply.grpc_status(), Some(8));

    tx.send(Ok(Frame::data(encode_body(&frame(0, &[]), Mode::Binary).slice(1..)))).await.unwrap();
    drop(tx);
    assert_eq!(held.await.unwrap().unwrap(), StatusCode::OK);
    let reply = client.call(LIST, Some(&token), &pb::ListProductsRequest::default(), Mode::Binary).await.unwrap();
    assert_eq!(reply.grpc_status(), Some(0), "the slot is free again: {reply:?}");
}

#[tokio::test]
async fn grpc_timeout_bounds_a_whole_server_stream() {
    let core = TestCore::builder()
        .spool_print_time(Duration::from_secs(30))
        .job_poll(Duration::from_millis(50))
        .spawn()
        .await
        .unwrap();
    let gateway = TestGateway::start(&core).await;
    let mut client = gateway.client(Http::H2).await;
    let token = session(&mut client, Mode::Binary).await;
    let job_id = submit_fire_notice(&mut client, &token).await.job.unwrap().id;

    let watch = prost::Message::encode_to_vec(&pb::WatchJobRequest { job_id });
    let request = client
        .request(Method::POST, "/podconnect.v1.PrintService/WatchJob")
        .header("content-type", "application/grpc-web+proto")
        .header("authorization", format!("Bearer {token}"))
        .header("grpc-timeout", "500m")
        .body(full(frame(0, &watch)))
        .unwrap();
    let started = std::time::Instant::now();
    let (status, headers, body) = client.fetch(request).await.unwrap();
    let reply = tests::gateway::WebReply::parse(status, headers, &body, Mode::Binary).unwrap();
    assert!(!reply.messages.is_empty(), "the stream started: {reply:?}");
    assert_eq!(reply.grpc_status(), Some(4), "DEADLINE_EXCEEDED in the trailer frame: {reply:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[tokio::test]
async fn printers_pull_their_document_through_the_gateway_once() {
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("devices.toml");
    std::fs::write(
        &devices,
        "[[device]]\nid = \"gateway-test\"\ndisplay_name = \"EIP device\"\nmodel = \"Xerox VersaLink C7130\"\ndelivery = \"device_pull\"\n",
    )
    .unwrap();
    let core = TestCore::builder().devices_file(&devices).spawn().await.unwrap();
    let gateway = TestGateway::start(&core).await;
    let mut client = gateway.client(Http::H1).await;
    let token = session(&mut client, Mode::Binary).await;

    let link = submit_fire_notice(&mut client, &token).await.pull_delivery.unwrap().document_url;
    let path = format!("/print-files/{}", link.rsplit('/').next().unwrap());

    // The printer asks the gateway, which passes the one-time link to the core.
    let (status, headers, body) =
        client.fetch(client.request(Method::GET, &path).body(full(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/pdf");
    let shipped = server::config::default_storefront_dir().join("products/fire-action-notice/document.pdf");
    assert_eq!(body, std::fs::read(shipped).unwrap());
    let (status, _, _) =
        client.fetch(client.request(Method::GET, &path).body(full(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(status, StatusCode::GONE, "the link works once, through the gateway too");
    let (status, _, _) =
        client.fetch(client.request(Method::PUT, &path).body(full(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
