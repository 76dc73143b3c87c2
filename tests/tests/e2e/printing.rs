//! Printing through the gRPC PrintService: capabilities, jobs streamed state by state, cancel,
//! device pull with one-time links, files deleted when a job ends, jobs private to their session,
//! and the operators' device registry.

use std::time::Duration;

use proto::v1 as pb;
use proto::v1::customization_service_client::CustomizationServiceClient;
use proto::v1::device_service_client::DeviceServiceClient;
use proto::v1::print_service_client::PrintServiceClient;
use proto::v1::session_service_client::SessionServiceClient;
use server::domain::ephemeral::EphemeralStore as _;
use tests::client::{authed, start_session};
use tests::core::TestCore;
use tests::wait::eventually;
use tonic::Code;
use tonic::transport::Channel;

const OPERATOR_TOKEN: &str = "an-operator-token-for-the-printing-tests-0123456789";

fn print(channel: &Channel) -> PrintServiceClient<Channel> {
    PrintServiceClient::new(channel.clone())
}

/// A finalized static product's draft id (static products are valid at once).
async fn finalized_draft(channel: &Channel, token: &str) -> String {
    let mut customize = CustomizationServiceClient::new(channel.clone());
    let request = pb::CreateDraftRequest { product_id: "fire-action-notice".into(), ..Default::default() };
    let id = customize.create_draft(authed(token, request)).await.unwrap().into_inner().draft.unwrap().id;
    customize.finalize_draft(authed(token, pb::FinalizeDraftRequest { draft_id: id.clone() })).await.unwrap();
    id
}

fn submit(draft_id: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::DraftId(draft_id.into())),
        copies: 1,
        ..Default::default()
    }
}

/// Every state `WatchJob` streams, until the stream ends by itself.
async fn watch(channel: &Channel, token: &str, job_id: &str) -> Vec<pb::Job> {
    let request = authed(token, pb::WatchJobRequest { job_id: job_id.into() });
    let mut stream = print(channel).watch_job(request).await.unwrap().into_inner();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Some(message) =
        tokio::time::timeout_at(deadline, stream.message()).await.expect("the stream ends").unwrap()
    {
        seen.push(message.job.unwrap());
    }
    seen
}

#[tokio::test]
async fn a_spooled_job_streams_every_state_then_its_files_are_gone() {
    let spool = tempfile::tempdir().unwrap();
    let core = TestCore::builder()
        .spool_dir(spool.path())
        .spool_print_time(Duration::from_millis(600))
        .job_poll(Duration::from_millis(100))
        .in_process()
        .await
        .unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;

    let caps = print(&channel)
        .get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(caps.delivery_mode(), pb::DeliveryMode::SpoolFolder);
    let capabilities = caps.capabilities.unwrap();
    assert!(capabilities.document_formats_supported.contains(&"application/pdf".to_string()));
    assert!(capabilities.copies_max > 1);

    let draft = finalized_draft(&channel, &token).await;
    let submitted = print(&channel).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner();
    let job = submitted.job.unwrap();
    assert!(submitted.pull_delivery.is_none());
    assert!(!job.file_id.is_empty());

    let states: Vec<pb::JobState> = watch(&channel, &token, &job.id).await.iter().map(|j| j.state()).collect();
    assert_eq!(states.last(), Some(&pb::JobState::Completed), "{states:?}");
    assert!(states.contains(&pb::JobState::Processing), "{states:?}");
    assert!(states.windows(2).all(|w| (w[0] as i32) <= (w[1] as i32)), "states arrive in order: {states:?}");

    let done = print(&channel).get_job(authed(&token, pb::GetJobRequest { job_id: job.id.clone() })).await.unwrap();
    let done = done.into_inner().job.unwrap();
    assert_eq!(done.state(), pb::JobState::Completed);
    assert!(done.state_reasons.contains(&"job-completed-successfully".to_string()));
    assert!(done.end_time.is_some());

    // The printer got exactly the shipped PDF.
    let spooled: Vec<_> = std::fs::read_dir(spool.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    let shipped = server::config::default_storefront_dir().join("products/fire-action-notice/document.pdf");
    assert_eq!(std::fs::read(&spooled[0]).unwrap(), std::fs::read(shipped).unwrap());

    // The print-ready file is gone from the session's data; only drafts and the job remain.
    let services = core.services();
    let session = services.sessions.authenticate(&token).await.unwrap();
    let names = core.store().names(&session.scope()).await.unwrap();
    assert!(!names.iter().any(|n| n.starts_with("file")), "{names:?}");
    let err = services.customization.print_file_bytes(&session, &job.file_id).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn requests_are_checked_against_the_printer_first() {
    let core = TestCore::builder().spool_print_time(Duration::from_secs(5)).spawn().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let draft = finalized_draft(&channel, &token).await;

    let too_many = pb::SubmitJobRequest { copies: 100_000, ..submit(&draft) };
    let err = print(&channel).submit_job(authed(&token, too_many)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("copies must be between 1 and 999"), "{}", err.message());

    let bad_media = pb::SubmitJobRequest { media: "na_ledger_11x17in".into(), ..submit(&draft) };
    let err = print(&channel).submit_job(authed(&token, bad_media)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("iso_a4_210x297mm"), "the message lists what is loaded: {}", err.message());

    let nothing = pb::SubmitJobRequest { document: None, ..submit(&draft) };
    assert_eq!(print(&channel).submit_job(authed(&token, nothing)).await.unwrap_err().code(), Code::InvalidArgument);

    let unknown_draft = submit("AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(print(&channel).submit_job(authed(&token, unknown_draft)).await.unwrap_err().code(), Code::NotFound);

    // A draft the person has not finalized is not printed: the message says what to do.
    let request = pb::CreateDraftRequest { product_id: "classic-business-card".into(), ..Default::default() };
    let editing = CustomizationServiceClient::new(channel.clone()).create_draft(authed(&token, request)).await.unwrap();
    let editing = editing.into_inner().draft.unwrap().id;
    let err = print(&channel).submit_job(authed(&token, submit(&editing))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("FinalizeDraft"), "{}", err.message());

    // Retrying with the same request id does not print twice.
    let once = pb::SubmitJobRequest { request_id: "5f0e3c2a-9b1d-4e6f-8a7b-1c2d3e4f5a6b".into(), ..submit(&draft) };
    let first = print(&channel).submit_job(authed(&token, once.clone())).await.unwrap().into_inner().job.unwrap();
    let again = print(&channel).submit_job(authed(&token, once)).await.unwrap().into_inner().job.unwrap();
    assert_eq!(first.id, again.id);
}

#[tokio::test]
async fn a_job_can_be_canceled_and_belongs_to_its_session() {
    let core = TestCore::builder()
        .spool_print_time(Duration::from_secs(30))
        .job_poll(Duration::from_millis(100))
        .spawn()
        .await
        .unwrap();
    let channel = core.channel().await;
    let alice = start_session(&channel, "mfd-lobby").await;
    let bob = start_session(&channel, "mfd-lobby").await;
    let draft = finalized_draft(&channel, &alice).await;
    let job = print(&channel).submit_job(authed(&alice, submit(&draft))).await.unwrap().into_inner().job.unwrap();

    // Bob can neither see nor cancel it.
    let err = print(&channel).get_job(authed(&bob, pb::GetJobRequest { job_id: job.id.clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err =
        print(&channel).cancel_job(authed(&bob, pb::CancelJobRequest { job_id: job.id.clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err =
        print(&channel).watch_job(authed(&bob, pb::WatchJobRequest { job_id: job.id.clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    print(&channel).cancel_job(authed(&alice, pb::CancelJobRequest { job_id: job.id.clone() })).await.unwrap();
    let states = watch(&channel, &alice, &job.id).await;
    let last = states.last().unwrap();
    assert_eq!(last.state(), pb::JobState::Canceled);
    assert!(last.state_reasons.contains(&"job-canceled-by-user".to_string()));

    let err =
        print(&channel).cancel_job(authed(&alice, pb::CancelJobRequest { job_id: job.id.clone() })).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "an ended job cannot be canceled again");
}

/// A devices file with one pulling (EIP) device.
/// A core whose session is on a pulling device (plaintext links working for `link_ttl`), and a
/// job of a static product submitted there.
async fn pull_job(dir: &std::path::Path, link_ttl: Duration) -> (TestCore, Channel, String, pb::SubmitJobResponse) {
    let core = TestCore::builder()
        .devices_file(&pull_devices_file(dir))
        .pull_plaintext()
        .pull_link_ttl(link_ttl)
        .in_process()
        .await
        .unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-eip").await;
    let draft = finalized_draft(&channel, &token).await;
    let submitted = print(&channel).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner();
    (core, channel, token, submitted)
}

fn pull_devices_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("devices.toml");
    std::fs::write(
        &path,
        "[[device]]\nid = \"mfd-eip\"\ndisplay_name = \"EIP device\"\nmodel = \"Xerox VersaLink C7130\"\ndelivery = \"device_pull\"\n",
    )
    .unwrap();
    path
}

async fn fetch(url: &str) -> (u16, Vec<u8>) {
    fetch_with(url, "").await
}

/// GET with extra header lines (each ending in CRLF).
async fn fetch_with(url: &str, headers: &str) -> (u16, Vec<u8>) {
    tests::raw::plain_get(url, headers).await
}

#[tokio::test]
async fn a_pulling_device_gets_a_one_time_link_and_reports_states() {
    let dir = tempfile::tempdir().unwrap();
    let (core, channel, token, submitted) = pull_job(dir.path(), Duration::from_secs(60)).await;
    let job = submitted.job.unwrap();
    assert_eq!(job.delivery_mode(), pb::DeliveryMode::DevicePull);
    let link = submitted.pull_delivery.expect("a pull device gets a link");
    assert!(link.expire_time.is_some());

    // The printer downloads it once; the second download is refused.
    let (status, body) = fetch(&link.document_url).await;
    assert_eq!(status, 200);
    let shipped = server::config::default_storefront_dir().join("products/fire-action-notice/document.pdf");
    assert_eq!(body, std::fs::read(shipped).unwrap());
    assert_eq!(fetch(&link.document_url).await.0, 410, "a link works once");
    let (status, _) = fetch(&link.document_url.replace(".pdf", "x.pdf")).await;
    assert_eq!(status, 410, "made-up links get the same answer");

    // The weblet relays what the printer says.
    let report = |state: pb::JobState, reasons: &[&str]| pb::ReportDeviceJobStateRequest {
        job_id: job.id.clone(),
        state: state as i32,
        state_reasons: reasons.iter().map(|r| r.to_string()).collect(),
        device_job_id: "1042".into(),
        pages_printed: None,
    };
    let processing = print(&channel)
        .report_device_job_state(authed(&token, report(pb::JobState::Processing, &["job-printing"])))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!((processing.state(), processing.device_job_id.as_str()), (pb::JobState::Processing, "1042"));
    let err = print(&channel)
        .report_device_job_state(authed(&token, report(pb::JobState::Completed, &["Printed fine!"])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "reasons are keywords, not free text");
    let done = print(&channel)
        .report_device_job_state(authed(&token, report(pb::JobState::Completed, &["job-completed-successfully"])))
        .await
        .unwrap()
        .into_inner()
        .job
        .unwrap();
    assert_eq!(done.state(), pb::JobState::Completed);

    // A second job's link dies unused when the link's time is up.
    let draft = finalized_draft(&channel, &token).await;
    let link =
        print(&channel).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner().pull_delivery.unwrap();
    core.clock().advance(Duration::from_secs(61));
    assert_eq!(fetch(&link.document_url).await.0, 410, "an expired link is refused");
    let still = print(&channel).get_job(authed(&token, pb::GetJobRequest { job_id: job.id.clone() })).await;
    still.expect("the session is still open: the link died of its own time limit");
}

#[tokio::test]
async fn a_pull_link_is_spent_only_by_a_download_that_sends_the_whole_document() {
    let dir = tempfile::tempdir().unwrap();
    let (_core, _, _, submitted) = pull_job(dir.path(), Duration::from_secs(300)).await;
    let url = submitted.pull_delivery.unwrap().document_url;
    let shipped =
        std::fs::read(server::config::default_storefront_dir().join("products/fire-action-notice/document.pdf"))
            .unwrap();

    // A printer that fetches in parts: a part short of the end leaves the link usable.
    let (status, head) = fetch_with(&url, "Range: bytes=0-99\r\n").await;
    assert_eq!(status, 206);
    assert_eq!(head, shipped[..100]);
    let (status, _) = fetch_with(&url, "Range: bytes=999999-\r\n").await;
    assert_eq!(status, 416, "a range outside the document");
    // The whole document spends it.
    let (status, body) = fetch(&url).await;
    assert_eq!(status, 200);
    assert_eq!(body, shipped);
    eventually("the link to be spent after a complete download", Duration::from_secs(10), || async {
        let (status, _) = fetch(&url).await;
        if status == 410 { Ok(()) } else { Err(status) }
    })
    .await;
}

#[tokio::test]
async fn operators_manage_devices_and_sessions_use_them() {
    let core = TestCore::builder().operator_token(OPERATOR_TOKEN).require_registered_devices().spawn().await.unwrap();
    let channel = core.channel().await;
    let devices = |token: &str| (DeviceServiceClient::new(channel.clone()), token.to_owned());

    // Unregistered devices are refused when the server requires registration.
    let request = pb::StartSessionRequest { device_id: "mfd-new".into(), ..Default::default() };
    let err = SessionServiceClient::new(channel.clone()).start_session(request).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("register"), "{}", err.message());
    let (mut client, _) = devices(OPERATOR_TOKEN);

    let device = pb::Device {
        id: "mfd-new".into(),
        display_name: "New MFD".into(),
        model: "Xerox AltaLink C8170".into(),
        delivery_mode: pb::DeliveryMode::SpoolFolder as i32,
        ..Default::default()
    };
    client
        .register_device(authed(OPERATOR_TOKEN, pb::RegisterDeviceRequest { device: Some(device.clone()) }))
        .await
        .unwrap();
    let err = client
        .register_device(authed(OPERATOR_TOKEN, pb::RegisterDeviceRequest { device: Some(device.clone()) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let ipp_without_port = pb::Device {
        id: "mfd-ipp".into(),
        delivery_mode: pb::DeliveryMode::IppPush as i32,
        printer_uri: "ipps://printer.example/ipp/print".into(),
        ..device.clone()
    };
    let err = client
        .register_device(authed(OPERATOR_TOKEN, pb::RegisterDeviceRequest { device: Some(ipp_without_port) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("port"), "{}", err.message());

    // The device can start sessions now, and they print on it.
    let token = start_session(&channel, "mfd-new").await;
    // A session token is not an operator credential.
    let err = client.list_devices(authed(&token, pb::ListDevicesRequest::default())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let caps =
        print(&channel).get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await.unwrap();
    assert_eq!(caps.into_inner().device_display_name, "New MFD");

    let update = pb::UpdateDeviceRequest {
        device: Some(pb::Device { location: "Lobby".into(), ..device.clone() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["location".into()] }),
    };
    let updated = client.update_device(authed(OPERATOR_TOKEN, update)).await.unwrap().into_inner().device.unwrap();
    assert_eq!((updated.location.as_str(), updated.display_name.as_str()), ("Lobby", "New MFD"));
    let listed =
        client.list_devices(authed(OPERATOR_TOKEN, pb::ListDevicesRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.devices.len(), 1);
    client
        .delete_device(authed(OPERATOR_TOKEN, pb::DeleteDeviceRequest { device_id: "mfd-new".into() }))
        .await
        .unwrap();
    // A session whose device is no longer registered is told so.
    let err = print(&channel)
        .get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("no longer registered"), "{}", err.message());
    let err = client
        .get_device(authed(OPERATOR_TOKEN, pb::GetDeviceRequest { device_id: "mfd-new".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn count(
    channel: &Channel,
    kind: pb::UsageEventKind,
    group: Option<pb::UsageGrouping>,
) -> pb::CountUsageEventsResponse {
    let request = pb::CountUsageEventsRequest {
        kinds: vec![kind as i32],
        group_by: group.map(|g| vec![g as i32]).unwrap_or_default(),
        ..Default::default()
    };
    proto::v1::usage_service_client::UsageServiceClient::new(channel.clone())
        .count_usage_events(authed(OPERATOR_TOKEN, request))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn jobs_are_counted_and_a_restart_never_leaves_one_running() {
    let data = tempfile::tempdir().unwrap();
    let devices = pull_devices_file(data.path());
    let start = |print_time: Duration| {
        TestCore::builder()
            .data_dir(&data.path().join("data"))
            .operator_token(OPERATOR_TOKEN)
            .devices_file(&devices)
            .spool_print_time(print_time)
            .session_idle(Duration::from_secs(3600))
            .job_poll(Duration::from_millis(50))
            .spawn()
    };

    // A completed job is counted with its outcome's printer model, never a person.
    let core = start(Duration::from_millis(100)).await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let draft = finalized_draft(&channel, &token).await;
    let job = print(&channel).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner().job.unwrap();
    assert_eq!(watch(&channel, &token, &job.id).await.last().unwrap().state(), pb::JobState::Completed);
    assert_eq!(count(&channel, pb::UsageEventKind::JobSubmitted, None).await.total, 1);
    assert_eq!(count(&channel, pb::UsageEventKind::JobEnded, None).await.total, 1);

    drop(channel);
    drop(core);

    // A job still printing when the server dies...
    let core = start(Duration::from_secs(3600)).await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let draft = finalized_draft(&channel, &token).await;
    let job = print(&channel).submit_job(authed(&token, submit(&draft))).await.unwrap().into_inner().job.unwrap();
    let now = print(&channel).get_job(authed(&token, pb::GetJobRequest { job_id: job.id })).await.unwrap();
    assert!(!now.into_inner().job.unwrap().state().eq(&pb::JobState::Completed));
    assert_eq!(count(&channel, pb::UsageEventKind::JobSubmitted, None).await.total, 2);
    drop(channel);
    drop(core);

    // ...is reported ended (aborted) by the next start, not left running.
    let core = start(Duration::from_millis(100)).await.unwrap();
    let channel = core.channel().await;
    let ended = count(&channel, pb::UsageEventKind::JobEnded, None).await.total;
    assert_eq!(ended, 2, "the interrupted job is counted as ended after the restart");
    assert_eq!(count(&channel, pb::UsageEventKind::JobSubmitted, None).await.total, 2);
    assert!(
        core.log().contains("still running when the server stopped"),
        "the restart says what it did:\n{}",
        core.log()
    );
}
