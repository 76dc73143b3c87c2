//! The whole print path against a real IPP printer (`ippeveprinter`): a customized product is
//! finalized, submitted through PrintService, followed on WatchJob, and arrives byte-identical;
//! over ipps with a pinned certificate; canceled; refused when the printer cannot take it; and
//! pulled by the printer itself with IPP Print-URI from a one-time link.

use std::time::Duration;

use proto::v1 as pb;
use proto::v1::customization_service_client::CustomizationServiceClient;
use proto::v1::print_service_client::PrintServiceClient;
use tests::client::{authed, start_session};
use tests::core::TestCore;
use tests::ipp::TestPrinter;
use tonic::Code;
use tonic::transport::Channel;

const CARD: &[(&str, &str)] =
    &[("initials", "AK"), ("company", "Keller Architects"), ("name", "Anna Keller"), ("email", "anna@keller.de")];

/// A core whose device `mfd-ipp` prints to `uri` (pinned with `pin` for ipps) by `delivery`.
async fn core_for(uri: &str, pin: Option<[u8; 32]>, delivery: &str) -> (TestCore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pin = pin.map(|p| format!("pinned_certificate_sha256 = \"{}\"\n", hex(&p))).unwrap_or_default();
    let file = dir.path().join("devices.toml");
    std::fs::write(
        &file,
        format!(
            "[[device]]\nid = \"mfd-ipp\"\ndisplay_name = \"Test printer\"\nmodel = \"ippeveprinter\"\ndelivery = \"{delivery}\"\nprinter_uri = \"{uri}\"\n{pin}"
        ),
    )
    .unwrap();
    let core = TestCore::builder()
        .devices_file(&file)
        .job_poll(Duration::from_millis(100))
        .pull_plaintext()
        .in_process()
        .await
        .unwrap();
    (core, dir)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Finalizes a customized business card and returns its file id and the PDF bytes.
async fn finalized_card(core: &TestCore, channel: &Channel, token: &str) -> (String, Vec<u8>) {
    let mut customize = CustomizationServiceClient::new(channel.clone());
    let values = CARD.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let request = pb::CreateDraftRequest { product_id: "classic-business-card".into(), quantity: 0, values };
    let draft = customize.create_draft(authed(token, request)).await.unwrap().into_inner().draft.unwrap();
    let finalized =
        customize.finalize_draft(authed(token, pb::FinalizeDraftRequest { draft_id: draft.id })).await.unwrap();
    let file = finalized.into_inner().print_file.unwrap();
    let session = core.services().sessions.authenticate(token).await.unwrap();
    let bytes = core.services().customization.print_file_bytes(&session, &file.file_id).await.unwrap();
    (file.file_id, bytes.to_vec())
}

/// The printer got the card's imposed sheets: the job's document, not the one-card print file,
/// with a page per side of each sheet the layout names.
fn assert_imposed(kept: &[u8], print_file: &[u8], job: &pb::Job) {
    use sha2::Digest as _;
    let layout = job.layout.as_ref().expect("a layout");
    assert!(layout.imposed, "{layout:?}");
    assert_ne!(kept, print_file, "the card is laid out on the printer's sheet");
    let digest: String = sha2::Sha256::digest(kept).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, job.document_sha256, "the printer got exactly the job's document");
    let sides = if layout.sides() == pb::Sides::OneSided { 1 } else { 2 };
    assert_eq!(tests::pdf::pdfinfo(kept).pages, (layout.sheet_count * sides) as u32, "{layout:?}");
}

fn submit_file(file_id: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::FileId(file_id.into())),
        copies: 1,
        ..Default::default()
    }
}

async fn watch_to_end(channel: &Channel, token: &str, job_id: &str) -> Vec<pb::Job> {
    let request = authed(token, pb::WatchJobRequest { job_id: job_id.into() });
    let mut stream = PrintServiceClient::new(channel.clone()).watch_job(request).await.unwrap().into_inner();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(message) = tokio::time::timeout_at(deadline, stream.message()).await.expect("the job ends").unwrap()
    {
        seen.push(message.job.unwrap());
    }
    seen
}

fn print(channel: &Channel) -> PrintServiceClient<Channel> {
    PrintServiceClient::new(channel.clone())
}

#[tokio::test]
async fn a_customized_card_prints_on_a_real_ipp_printer() {
    let printer = TestPrinter::start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri, None, "ipp_push").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;

    let caps = print(&channel).get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await;
    let caps = caps.unwrap().into_inner();
    assert_eq!(caps.delivery_mode(), pb::DeliveryMode::IppPush);
    assert!(caps.capabilities.unwrap().document_formats_supported.contains(&"application/pdf".to_string()));

    let (file_id, pdf) = finalized_card(&core, &channel, &token).await;
    let job =
        print(&channel).submit_job(authed(&token, submit_file(&file_id))).await.unwrap().into_inner().job.unwrap();
    assert!(!job.device_job_id.is_empty(), "the printer's job id is known");
    let states = watch_to_end(&channel, &token, &job.id).await;
    let kinds: Vec<pb::JobState> = states.iter().map(|j| j.state()).collect();
    assert_eq!(kinds.last(), Some(&pb::JobState::Completed), "{kinds:?}");
    assert!(kinds.windows(2).all(|w| (w[0] as i32) <= (w[1] as i32)), "in order: {kinds:?}");
    assert!(states.last().unwrap().state_reasons.contains(&"job-completed-successfully".to_string()));

    let done = states.last().unwrap();
    let kept = printer.wait_for_job_document(&job.device_job_id, &done.document_sha256, Duration::from_secs(10)).await;
    let kept = kept.unwrap();
    assert_imposed(&kept.bytes, &pdf, done);

    let session = core.services().sessions.authenticate(&token).await.unwrap();
    assert!(core.services().customization.print_file_bytes(&session, &file_id).await.is_err(), "deleted when done");
}

#[tokio::test]
async fn ipps_prints_only_with_the_pinned_certificate() {
    let printer = TestPrinter::start_tls().await.unwrap();
    let ipps = printer.ipps_uri.clone().unwrap();
    let pin = printer.cert_sha256.unwrap();

    let (core, _dir) = core_for(&ipps, Some(pin), "ipp_push").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let (file_id, pdf) = finalized_card(&core, &channel, &token).await;
    let job =
        print(&channel).submit_job(authed(&token, submit_file(&file_id))).await.unwrap().into_inner().job.unwrap();
    let states = watch_to_end(&channel, &token, &job.id).await;
    let done = states.last().unwrap();
    assert_eq!(done.state(), pb::JobState::Completed);
    let kept = printer.wait_for_job_document(&job.device_job_id, &done.document_sha256, Duration::from_secs(10)).await;
    assert_imposed(&kept.unwrap().bytes, &pdf, done);

    let mut wrong = pin;
    wrong[0] ^= 0xff;
    let (core, _dir) = core_for(&ipps, Some(wrong), "ipp_push").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let err = print(&channel).get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await;
    let err = err.unwrap_err();
    assert!(matches!(err.code(), Code::Unavailable | Code::FailedPrecondition), "{err:?}");
}

#[tokio::test]
async fn a_job_refused_for_a_pin_mismatch_says_so_not_that_the_format_was_refused() {
    // A pulling device whose ipps printer gets Print-URI: its capabilities are not asked, so the
    // wrong pin shows first when the job is handed over.
    let printer = TestPrinter::start_tls().await.unwrap();
    let ipps = printer.ipps_uri.clone().unwrap();
    let mut wrong = printer.cert_sha256.unwrap();
    wrong[0] ^= 0xff;
    let (core, _dir) = core_for(&ipps, Some(wrong), "device_pull").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let (file_id, _) = finalized_card(&core, &channel, &token).await;
    let request =
        pb::SubmitJobRequest { request_id: "0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d11".into(), ..submit_file(&file_id) };
    let err = print(&channel).submit_job(authed(&token, request.clone())).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("not the pinned one"), "{}", err.message());

    // Retrying the same request shows the job it made.
    let job = print(&channel).submit_job(authed(&token, request)).await.unwrap().into_inner().job.unwrap();
    assert_eq!(job.state(), pb::JobState::Aborted);
    assert_eq!(job.state_reasons, ["printer-certificate-mismatch"]);
}

#[tokio::test]
async fn a_job_is_canceled_at_the_printer() {
    let printer = TestPrinter::builder().processing_time(Duration::from_secs(4)).start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri, None, "ipp_push").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let (file_id, _) = finalized_card(&core, &channel, &token).await;
    let job =
        print(&channel).submit_job(authed(&token, submit_file(&file_id))).await.unwrap().into_inner().job.unwrap();
    print(&channel).cancel_job(authed(&token, pb::CancelJobRequest { job_id: job.id.clone() })).await.unwrap();
    let last = watch_to_end(&channel, &token, &job.id).await.pop().unwrap();
    assert_eq!(last.state(), pb::JobState::Canceled, "{last:?}");
}

#[tokio::test]
async fn what_the_printer_cannot_take_is_refused_clearly() {
    // A printer that takes no PDF.
    let printer = TestPrinter::builder().formats(&["image/jpeg"]).start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri, None, "ipp_push").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let (file_id, _) = finalized_card(&core, &channel, &token).await;
    let err = print(&channel).submit_job(authed(&token, submit_file(&file_id))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("PDF"), "{}", err.message());

    // Copies beyond what the printer allows.
    let printer = TestPrinter::start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri, None, "ipp_push").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let (file_id, _) = finalized_card(&core, &channel, &token).await;
    let err = print(&channel)
        .submit_job(authed(&token, pb::SubmitJobRequest { copies: 100_000, ..submit_file(&file_id) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("copies"), "{}", err.message());

    // A printer that is down.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (core, _dir) = core_for(&format!("ipp://127.0.0.1:{closed}/ipp/print"), None, "ipp_push").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let started = std::time::Instant::now();
    let err = print(&channel).get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await;
    let err = err.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains(&closed.to_string()), "names the printer: {}", err.message());
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn an_ipp_printer_pulls_its_document_once_with_print_uri() {
    let printer = TestPrinter::start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri, None, "device_pull").await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let (file_id, pdf) = finalized_card(&core, &channel, &token).await;
    let submitted = print(&channel).submit_job(authed(&token, submit_file(&file_id))).await.unwrap().into_inner();
    let job = submitted.job.unwrap();
    let link = submitted.pull_delivery.expect("a pulled job has a link");
    assert_eq!(job.delivery_mode(), pb::DeliveryMode::DevicePull);

    let states = watch_to_end(&channel, &token, &job.id).await;
    let done = states.last().unwrap();
    assert_eq!(done.state(), pb::JobState::Completed);
    let kept = printer.wait_for_job_document(&job.device_job_id, &done.document_sha256, Duration::from_secs(10)).await;
    assert_imposed(&kept.unwrap().bytes, &pdf, done);

    // The link was spent by the printer's download.
    let url = link.document_url.strip_prefix("http://").unwrap();
    let (host, path) = url.split_once('/').unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream
        .write_all(format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 410"), "{response}");
}

#[tokio::test]
async fn jobs_sent_to_a_busy_printer_wait_their_turn() {
    let printer = TestPrinter::builder().processing_time(Duration::from_millis(300)).start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri, None, "ipp_push").await;
    let channel = core.channel().await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let token = start_session(&channel, "mfd-ipp").await;
        let (file_id, _) = finalized_card(&core, &channel, &token).await;
        sessions.push((token, file_id));
    }
    // All four at once: the printer answers server-error-busy while it prints the first.
    let submitted = futures::future::join_all(sessions.iter().map(|(token, file_id)| {
        let channel = channel.clone();
        let (token, file_id) = (token.clone(), file_id.clone());
        async move {
            let job = print(&channel).submit_job(authed(&token, submit_file(&file_id))).await;
            (token, job.map(|r| r.into_inner().job.unwrap()))
        }
    }))
    .await;
    for (token, job) in submitted {
        let job = job.expect("a busy printer is waited for, not reported as a failure");
        assert_eq!(watch_to_end(&channel, &token, &job.id).await.last().unwrap().state(), pb::JobState::Completed);
    }
    assert_eq!(printer.spooled_files().unwrap().len(), 4, "every job reached the printer once");
}
