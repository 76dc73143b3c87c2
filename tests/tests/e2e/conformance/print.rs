//! PrintService as print.proto documents it: capabilities, SubmitJob's argument checks,
//! idempotency and limits, files deleted after printing, WatchJob's stream, CancelJob, device
//! pull (one-time links that end with the session, `job-fetchable`, ABORTED when never fetched)
//! and ReportDeviceJobState's checks; PlanJob's checks and its layout of products and uploads;
//! a job's pages_total.

use proto::v1 as pb;
use tests::client::authed;
use tonic::Code;

use super::*;

/// A core whose spool printer takes an hour per job, so jobs stay unfinished.
async fn slow_printer() -> Conf {
    Conf::printing(Duration::from_secs(3600)).await
}

async fn capabilities(conf: &Conf) -> pb::GetPrinterCapabilitiesResponse {
    let response = conf.print().get_printer_capabilities(conf.req(pb::GetPrinterCapabilitiesRequest {})).await;
    response.expect("GetPrinterCapabilities succeeds").into_inner()
}

fn report(job_id: &str, state: pb::JobState, reasons: &[&str]) -> pb::ReportDeviceJobStateRequest {
    pb::ReportDeviceJobStateRequest {
        job_id: job_id.into(),
        state: state as i32,
        state_reasons: reasons.iter().map(|r| r.to_string()).collect(),
        device_job_id: "1042".into(),
        pages_printed: None,
    }
}

async fn try_report(conf: &Conf, request: pb::ReportDeviceJobStateRequest) -> Result<pb::Job, tonic::Status> {
    let response = conf.print().report_device_job_state(conf.req(request)).await;
    response.map(|r| r.into_inner().job.expect("a job"))
}

/// A pull job waiting for its printer, and its link.
async fn pull_job(conf: &Conf, request_id: &str) -> (pb::Job, pb::PullDelivery) {
    let (draft, _) = conf.finalized_static().await;
    let request = pb::SubmitJobRequest { request_id: request_id.into(), ..submit_draft(&draft.id) };
    let response = conf.try_submit(request).await.expect("SubmitJob succeeds");
    (response.job.expect("a job"), response.pull_delivery.expect("a pull device gets a link"))
}

#[tokio::test]
async fn get_printer_capabilities_describes_the_sessions_device() {
    let conf = Conf::start().await;
    let response = capabilities(&conf).await;
    assert_eq!(response.device_id, DEVICE, "always the session's device");
    assert_eq!(response.delivery_mode(), pb::DeliveryMode::SpoolFolder);
    let caps = response.capabilities.expect("capabilities");
    assert!(caps.copies_max >= 1);
    assert!(caps.document_formats_supported.iter().any(|f| f == "application/pdf"));
    assert!(caps.media_supported.iter().any(|m| m.keyword == caps.media_default), "the default media is offered");
    assert!(caps.sides_supported.contains(&caps.sides_default));
    assert!(caps.color_modes_supported.contains(&caps.color_mode_default));
}

#[tokio::test]
async fn a_deleted_devices_open_sessions_browse_but_cannot_print_when_registration_is_required() {
    // device.proto, DeleteDevice: "When the server requires registered devices, ... sessions
    // already open on it can browse but no longer print (FAILED_PRECONDITION)"; print.proto lists
    // it for GetPrinterCapabilities and SubmitJob.
    let conf = Conf::bare(|b| b.require_registered_devices()).await;
    let device = pb::Device {
        id: "mfd-to-delete".into(),
        display_name: "Soon gone".into(),
        delivery_mode: pb::DeliveryMode::SpoolFolder as i32,
        ..Default::default()
    };
    let register = pb::RegisterDeviceRequest { device: Some(device) };
    conf.devices().register_device(authed(OPERATOR_TOKEN, register)).await.expect("RegisterDevice");
    let token = conf.new_session_on("mfd-to-delete").await;
    let request = pb::CreateDraftRequest { product_id: STATIC_PRODUCT.into(), ..Default::default() };
    let draft_there = conf.customize().create_draft(authed(&token, request)).await.unwrap().into_inner().draft.unwrap();
    conf.customize()
        .finalize_draft(authed(&token, pb::FinalizeDraftRequest { draft_id: draft_there.id.clone() }))
        .await
        .expect("FinalizeDraft");
    let delete = pb::DeleteDeviceRequest { device_id: "mfd-to-delete".into() };
    conf.devices().delete_device(authed(OPERATOR_TOKEN, delete)).await.expect("DeleteDevice");

    conf.catalog().list_categories(authed(&token, pb::ListCategoriesRequest {})).await.expect("browsing still works");
    let caps = conf.print().get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await;
    expect_status(caps, Code::FailedPrecondition, &[]);
    let submitted = conf.print().submit_job(authed(&token, submit_draft(&draft_there.id))).await;
    expect_status(submitted, Code::FailedPrecondition, &[]);
}

#[tokio::test]
async fn a_deleted_device_prints_to_the_spool_folder_when_registration_is_not_required() {
    // device.proto, DeleteDevice: "otherwise it is an unregistered device again, which prints to
    // the server's spool folder".
    let conf = Conf::start().await;
    let device = pb::Device {
        id: "mfd-to-delete".into(),
        display_name: "Soon gone".into(),
        delivery_mode: pb::DeliveryMode::DevicePull as i32,
        ..Default::default()
    };
    let register = pb::RegisterDeviceRequest { device: Some(device) };
    conf.devices().register_device(authed(OPERATOR_TOKEN, register)).await.expect("RegisterDevice");
    let token = conf.new_session_on("mfd-to-delete").await;
    let caps = conf.print().get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await;
    assert_eq!(caps.expect("capabilities").into_inner().delivery_mode(), pb::DeliveryMode::DevicePull);
    let delete = pb::DeleteDeviceRequest { device_id: "mfd-to-delete".into() };
    conf.devices().delete_device(authed(OPERATOR_TOKEN, delete)).await.expect("DeleteDevice");
    let caps = conf.print().get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await;
    assert_eq!(caps.expect("capabilities").into_inner().delivery_mode(), pb::DeliveryMode::SpoolFolder);
    conf.new_session_on("mfd-to-delete").await;
}

#[tokio::test]
async fn submit_job_without_a_document_is_invalid_argument() {
    let conf = Conf::start().await;
    let request = pb::SubmitJobRequest { document: None, copies: 1, ..Default::default() };
    expect_status(conf.try_submit(request).await, Code::InvalidArgument, &[]);
}

#[tokio::test]
async fn submit_job_with_negative_copies_or_more_than_copies_max_is_invalid_argument() {
    let conf = Conf::start().await;
    let max = capabilities(&conf).await.capabilities.unwrap().copies_max;
    let (draft, _) = conf.finalized_static().await;
    for copies in [-1, max + 1] {
        let request = pb::SubmitJobRequest { copies, ..submit_draft(&draft.id) };
        expect_status(conf.try_submit(request).await, Code::InvalidArgument, &["copies"]);
    }
}

#[tokio::test]
async fn submit_job_with_zero_copies_prints_the_files_suggested_copies() {
    let conf = Conf::start().await;
    let (draft, file) = conf.finalized_static().await;
    let job = conf.submit(pb::SubmitJobRequest { copies: 0, ..submit_draft(&draft.id) }).await;
    assert_eq!(job.copies, file.suggested_copies);
}

#[tokio::test]
async fn submit_job_with_sides_color_mode_or_media_the_device_lacks_is_invalid_argument() {
    let conf = Conf::start().await;
    let caps = capabilities(&conf).await.capabilities.unwrap();
    let (draft, _) = conf.finalized_static().await;
    // A value outside the supported list: one the device lacks, or else one no device has.
    let sides = [1, 2, 3].into_iter().find(|s| !caps.sides_supported.contains(s)).unwrap_or(99);
    let color = [1, 2].into_iter().find(|c| !caps.color_modes_supported.contains(c)).unwrap_or(99);
    let media = "na_ledger_11x17in";
    assert!(!caps.media_supported.iter().any(|m| m.keyword == media));
    let cases = [
        ("sides", pb::SubmitJobRequest { sides, ..submit_draft(&draft.id) }),
        ("color_mode", pb::SubmitJobRequest { color_mode: color, ..submit_draft(&draft.id) }),
        ("media", pb::SubmitJobRequest { media: media.into(), ..submit_draft(&draft.id) }),
    ];
    for (field, request) in cases {
        let status = conf.try_submit(request).await;
        let status = status.expect_err(field);
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {}", status.message());
        assert!(!status.message().is_empty());
    }
}

#[tokio::test]
async fn submit_job_resolves_unset_options_to_the_devices_defaults_and_describes_the_job() {
    let conf = slow_printer().await;
    let caps = capabilities(&conf).await.capabilities.unwrap();
    let (draft, file) = conf.finalized_static().await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    assert!(!job.id.is_empty() && job.id.len() <= 128);
    assert_eq!(
        (job.sides, job.color_mode, job.media.as_str()),
        (caps.sides_default, caps.color_mode_default, caps.media_default.as_str())
    );
    assert_eq!((job.file_id.as_str(), job.draft_id.as_str()), (file.file_id.as_str(), draft.id.as_str()));
    assert_eq!((job.product_id.as_str(), job.device_id.as_str()), (STATIC_PRODUCT, DEVICE));
    assert_eq!(job.delivery_mode(), pb::DeliveryMode::SpoolFolder);
    assert_eq!((job.copies, job.page_count), (1, file.page_count));
    assert!(job.create_time.is_some());
    assert!(job.end_time.is_none(), "unset until the job ends");
    assert!((job.state as i32) < pb::JobState::Canceled as i32, "not terminal yet: {:?}", job.state());
}

#[tokio::test]
async fn submit_job_of_a_valid_draft_that_was_never_finalized_is_failed_precondition() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    expect_status(conf.try_submit(submit_draft(&draft.id)).await, Code::FailedPrecondition, &[]);
    assert!(conf.spooled().is_empty(), "nothing was printed");
    // The draft is still VALID and editable.
    let updated = conf
        .try_update(pb::UpdateDraftRequest {
            draft_id: draft.id.clone(),
            values: values(&[("company", "Keller Studio")]),
            ..Default::default()
        })
        .await
        .expect("still editable");
    assert_eq!(updated.draft.unwrap().state(), pb::DraftState::Valid);
}

#[tokio::test]
async fn submit_job_reusing_request_id_with_other_parameters_is_invalid_argument() {
    let conf = slow_printer().await;
    let (draft, _) = conf.finalized_static().await;
    let first = pb::SubmitJobRequest { request_id: REQUEST_ID.into(), ..submit_draft(&draft.id) };
    conf.submit(first.clone()).await;
    let other = pb::SubmitJobRequest { copies: 2, ..first };
    expect_status(conf.try_submit(other).await, Code::InvalidArgument, &["request_id"]);
}

#[tokio::test]
async fn submit_job_with_a_malformed_request_id_is_invalid_argument() {
    let conf = Conf::start().await;
    let (draft, _) = conf.finalized_static().await;
    for bad in ["retry-1", "0b6f0b0e4c2a4f1e9a552c7f4f0e8d11", "0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d1z", " "] {
        let request = pb::SubmitJobRequest { request_id: bad.into(), ..submit_draft(&draft.id) };
        expect_status(conf.try_submit(request).await, Code::InvalidArgument, &["request_id"]);
    }
    assert!(conf.spooled().is_empty(), "nothing was printed");
}

#[tokio::test]
async fn submit_job_retried_with_the_same_request_id_returns_the_first_job_and_prints_once() {
    let conf = slow_printer().await;
    let (draft, _) = conf.finalized_static().await;
    // Either case is a UUID.
    let request = pb::SubmitJobRequest { request_id: REQUEST_ID.to_uppercase(), ..submit_draft(&draft.id) };
    let first = conf.submit(request.clone()).await;
    let again = conf.submit(request).await;
    assert_eq!(again.id, first.id);
    let spooled = eventually("the first job's file in the spool folder", POLL_BOUND, || async {
        let files = conf.spooled();
        (!files.is_empty()).then_some(files)
    })
    .await;
    assert_eq!(spooled.len(), 1, "one job, one file: {spooled:?}");
}

#[tokio::test]
async fn submit_job_beyond_the_sessions_unfinished_job_limit_is_resource_exhausted() {
    // print.proto: "at least 5; the embedded server allows 8".
    let conf = slow_printer().await;
    let (_, file) = conf.finalized_static().await;
    for n in 1..=8 {
        conf.try_submit(submit_file(&file.file_id)).await.unwrap_or_else(|s| panic!("job {n} of 8: {s:?}"));
    }
    expect_status(conf.try_submit(submit_file(&file.file_id)).await, Code::ResourceExhausted, &[]);
}

#[tokio::test]
async fn a_print_file_is_deleted_when_its_job_completes_and_its_draft_makes_it_again() {
    let conf = Conf::start().await;
    let (draft, file) = conf.finalized_static().await;
    let job = conf.submit(submit_file(&file.file_id)).await;
    let (states, _) = conf.watch(&conf.token, &job.id).await;
    assert_eq!(states.last().map(|j| j.state()), Some(pb::JobState::Completed));
    expect_status(conf.try_submit(submit_file(&file.file_id)).await, Code::NotFound, &[]);
    // The FINALIZED draft prints again: its file is made again first.
    let again = conf.submit(submit_draft(&draft.id)).await;
    let (states, _) = conf.watch(&conf.token, &again.id).await;
    assert_eq!(states.last().map(|j| j.state()), Some(pb::JobState::Completed));
    let refinalized = conf.finalize(&draft.id).await;
    assert_eq!(refinalized.draft.unwrap().state(), pb::DraftState::Finalized);
}

#[tokio::test]
async fn watch_job_on_a_terminal_job_sends_one_message_and_ends_with_ok() {
    let conf = Conf::start().await;
    let (draft, _) = conf.finalized_static().await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    let (first, _) = conf.watch(&conf.token, &job.id).await;
    assert_eq!(first.last().map(|j| j.state()), Some(pb::JobState::Completed));
    let (states, end) = conf.watch(&conf.token, &job.id).await;
    end.expect("the stream ends with OK");
    assert_eq!(states.iter().map(|j| j.state()).collect::<Vec<_>>(), [pb::JobState::Completed]);
    let done = &states[0];
    assert!(done.end_time.is_some(), "a terminal job has its end_time");
}

#[tokio::test]
async fn watch_job_beyond_four_open_streams_is_resource_exhausted() {
    let conf = slow_printer().await;
    let (_, file) = conf.finalized_static().await;
    let mut streams = Vec::new();
    for _ in 0..4 {
        let job = conf.submit(submit_file(&file.file_id)).await;
        let request = conf.req(pb::WatchJobRequest { job_id: job.id });
        let mut stream = conf.print().watch_job(request).await.expect("WatchJob").into_inner();
        stream.message().await.expect("the first message").expect("the job as it is now");
        streams.push(stream);
    }
    // The fifth fails, on the call or as the stream's first answer.
    let job = conf.submit(submit_file(&file.file_id)).await;
    let fifth = match conf.print().watch_job(conf.req(pb::WatchJobRequest { job_id: job.id })).await {
        Ok(stream) => stream.into_inner().message().await.map(|first| first.map(|m| m.job)),
        Err(status) => Err(status),
    };
    expect_status(fifth, Code::ResourceExhausted, &[]);
    drop(streams);
}

#[tokio::test]
async fn watch_job_ends_unauthenticated_when_the_session_closes_while_it_is_open() {
    let conf = slow_printer().await;
    let (draft, _) = conf.finalized_static().await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    let mut stream =
        conf.print().watch_job(conf.req(pb::WatchJobRequest { job_id: job.id })).await.expect("WatchJob").into_inner();
    stream.message().await.expect("the first message").expect("the job as it is now");
    conf.sessions().close_session(conf.req(pb::CloseSessionRequest {})).await.expect("CloseSession");
    let end = loop {
        match tokio::time::timeout(POLL_BOUND, stream.message()).await.expect("the stream ends by itself") {
            Ok(Some(_)) => continue,
            Ok(None) => break Ok(()),
            Err(status) => break Err::<(), _>(status),
        }
    };
    expect_status(end, Code::Unauthenticated, &[]);
}

#[tokio::test]
async fn cancel_job_asked_again_while_the_cancel_is_under_way_is_not_an_error() {
    let conf = slow_printer().await;
    let (draft, _) = conf.finalized_static().await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    let cancel = || {
        let (mut client, request) = (conf.print(), conf.req(pb::CancelJobRequest { job_id: job.id.clone() }));
        async move { client.cancel_job(request).await }
    };
    let first = cancel().await.expect("CancelJob").into_inner().job.unwrap();
    if first.state() == pb::JobState::Canceled {
        // Canceled at once: now terminal.
        expect_status(cancel().await, Code::FailedPrecondition, &[]);
    } else {
        assert!(first.state_reasons.iter().any(|r| r == "processing-to-stop-point"), "{first:?}");
        let again = cancel().await;
        assert!(
            again.is_ok() || again.as_ref().is_err_and(|s| s.code() == Code::FailedPrecondition),
            "asking again is no error while under way: {again:?}"
        );
    }
    let (states, _) = conf.watch(&conf.token, &job.id).await;
    assert_eq!(states.last().map(|j| j.state()), Some(pb::JobState::Canceled));
}

#[tokio::test]
async fn a_waiting_pull_job_is_pending_with_the_reason_job_fetchable() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (job, _) = pull_job(&conf, "").await;
    let now = conf.get_job(&job.id).await;
    assert_eq!(now.delivery_mode(), pb::DeliveryMode::DevicePull);
    assert_eq!(now.state(), pb::JobState::Pending);
    assert!(now.state_reasons.iter().any(|r| r == "job-fetchable"), "{:?}", now.state_reasons);
}

#[tokio::test]
async fn a_pull_link_answers_410_once_the_session_closes() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (_, link) = pull_job(&conf, "").await;
    conf.sessions().close_session(conf.req(pb::CloseSessionRequest {})).await.expect("CloseSession");
    let (status, body) = fetch(&link.document_url).await;
    assert_eq!(status, 410, "the file can no longer be fetched ({} bytes served)", body.len());
}

#[tokio::test]
async fn a_pull_link_answers_410_once_the_session_expires() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b.session_absolute(Duration::from_secs(1))).await;
    let (job, link) = pull_job(&conf, "").await;
    eventually("the session's absolute limit", POLL_BOUND, || async {
        let outcome = conf.print().get_job(conf.req(pb::GetJobRequest { job_id: job.id.clone() })).await;
        outcome.err().filter(|s| s.code() == Code::Unauthenticated)
    })
    .await;
    let (status, body) = fetch(&link.document_url).await;
    assert_eq!(status, 410, "the file can no longer be fetched ({} bytes served)", body.len());
}

#[tokio::test]
async fn cancel_job_of_an_unfetched_pull_job_cancels_it_at_once_and_its_link_stops() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (job, link) = pull_job(&conf, "").await;
    let canceled = conf.print().cancel_job(conf.req(pb::CancelJobRequest { job_id: job.id.clone() })).await;
    assert_eq!(canceled.expect("CancelJob").into_inner().job.unwrap().state(), pb::JobState::Canceled);
    assert_eq!(fetch(&link.document_url).await.0, 410);
}

#[tokio::test]
async fn a_pull_job_not_fetched_before_its_link_expires_is_aborted() {
    let conf = Conf::pull(Duration::from_secs(1), |b| b).await;
    let (job, link) = pull_job(&conf, "").await;
    assert!(link.expire_time.is_some());
    let ended = eventually("the job to end once its link expired", POLL_BOUND, || async {
        let now = conf.get_job(&job.id).await;
        if now.state() as i32 >= pb::JobState::Canceled as i32 { Ok(now) } else { Err(now) }
    })
    .await;
    assert_eq!(ended.state(), pb::JobState::Aborted, "{ended:?}");
    assert_eq!(fetch(&link.document_url).await.0, 410);
}

#[tokio::test]
async fn a_pull_job_retried_with_its_request_id_gets_a_fresh_link_and_the_first_stops() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (draft, _) = conf.finalized_static().await;
    let request = pb::SubmitJobRequest { request_id: REQUEST_ID.into(), ..submit_draft(&draft.id) };
    let first = conf.try_submit(request.clone()).await.expect("SubmitJob");
    let again = conf.try_submit(request).await.expect("the retry");
    assert_eq!(again.job.unwrap().id, first.job.unwrap().id, "the same job");
    let old = first.pull_delivery.expect("the first call's link").document_url;
    let new = again.pull_delivery.expect("the retry carries a fresh link").document_url;
    assert_ne!(old, new, "a fresh URL");
    assert_eq!(fetch(&old).await.0, 410, "the first URL stopped");
    assert_eq!(fetch(&new).await.0, 200);
}

#[tokio::test]
async fn report_device_job_state_on_a_job_that_is_not_device_pull_is_failed_precondition() {
    let conf = slow_printer().await;
    let (draft, _) = conf.finalized_static().await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    expect_status(
        try_report(&conf, report(&job.id, pb::JobState::Processing, &[])).await,
        Code::FailedPrecondition,
        &[],
    );
}

#[tokio::test]
async fn report_device_job_state_with_state_unspecified_is_invalid_argument() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (job, _) = pull_job(&conf, "").await;
    expect_status(
        try_report(&conf, report(&job.id, pb::JobState::Unspecified, &[])).await,
        Code::InvalidArgument,
        &["state"],
    );
}

#[tokio::test]
async fn report_device_job_state_with_a_reason_that_is_no_ipp_keyword_is_invalid_argument() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (job, _) = pull_job(&conf, "").await;
    let mut wrong = Vec::new();
    let too_long = format!("a{}", "b".repeat(64));
    for bad in ["Printed fine!", "", "1st-reason", "Job-Printing", "-printing", "job printing", too_long.as_str()] {
        match try_report(&conf, report(&job.id, pb::JobState::Processing, &[bad])).await {
            Err(s) if s.code() == Code::InvalidArgument && !s.message().is_empty() => {}
            other => wrong.push(format!("{bad:?} must be INVALID_ARGUMENT: {other:?}")),
        }
    }
    // Keywords of 1 to 64 characters of [a-z0-9._-], starting with a letter.
    let longest = format!("a{}", "b".repeat(63));
    for good in ["job-printing", "x", "x.y_z-1", longest.as_str()] {
        if let Err(status) = try_report(&conf, report(&job.id, pb::JobState::Processing, &[good])).await {
            wrong.push(format!("{good:?} is a keyword: {status:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn report_device_job_state_with_more_than_16_reasons_is_invalid_argument() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (job, _) = pull_job(&conf, "").await;
    let reasons: Vec<String> = (0..17).map(|i| format!("reason-{i}")).collect();
    let refs: Vec<&str> = reasons.iter().map(String::as_str).collect();
    try_report(&conf, report(&job.id, pb::JobState::Processing, &refs[..16])).await.expect("16 reasons are allowed");
    expect_status(
        try_report(&conf, report(&job.id, pb::JobState::Processing, &refs)).await,
        Code::InvalidArgument,
        &[],
    );
}

#[tokio::test]
async fn report_device_job_state_with_a_device_job_id_too_long_or_changed_is_invalid_argument() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let mut wrong = Vec::new();
    let (job, _) = pull_job(&conf, "").await;
    let too_long = pb::ReportDeviceJobStateRequest {
        device_job_id: "9".repeat(129),
        ..report(&job.id, pb::JobState::Processing, &[])
    };
    match try_report(&conf, too_long).await {
        Err(s) if s.code() == Code::InvalidArgument && s.message().contains("device_job_id") => {}
        other => wrong.push(format!("129 characters: {other:?}")),
    }
    // Another job, so the check above cannot leave a device_job_id behind.
    let (job, _) = pull_job(&conf, "").await;
    try_report(&conf, report(&job.id, pb::JobState::Processing, &[])).await.expect("the first device_job_id");
    let changed = pb::ReportDeviceJobStateRequest {
        device_job_id: "2001".into(),
        ..report(&job.id, pb::JobState::Processing, &[])
    };
    match try_report(&conf, changed).await {
        Err(s) if s.code() == Code::InvalidArgument && s.message().contains("device_job_id") => {}
        other => wrong.push(format!("a changed device_job_id: {other:?}")),
    }
    assert!(wrong.is_empty(), "each must be INVALID_ARGUMENT naming device_job_id:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn report_device_job_state_with_negative_pages_printed_is_invalid_argument() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (job, _) = pull_job(&conf, "").await;
    let request =
        pb::ReportDeviceJobStateRequest { pages_printed: Some(-1), ..report(&job.id, pb::JobState::Processing, &[]) };
    expect_status(try_report(&conf, request).await, Code::InvalidArgument, &["pages_printed"]);
}

#[tokio::test]
async fn report_device_job_state_may_repeat_a_state_and_a_terminal_state_is_final() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (job, _) = pull_job(&conf, "").await;
    for pages in [1, 3] {
        let request = pb::ReportDeviceJobStateRequest {
            pages_printed: Some(pages),
            ..report(&job.id, pb::JobState::Processing, &["job-printing"])
        };
        let now = try_report(&conf, request).await.expect("the same state again, with more pages");
        assert_eq!((now.state(), now.pages_printed), (pb::JobState::Processing, Some(pages)));
    }
    let done = try_report(&conf, report(&job.id, pb::JobState::Completed, &["job-completed-successfully"])).await;
    let done = done.expect("COMPLETED");
    assert!(done.end_time.is_some());
    for state in [pb::JobState::Processing, pb::JobState::Completed] {
        expect_status(try_report(&conf, report(&job.id, state, &[])).await, Code::FailedPrecondition, &[]);
    }
    expect_status(
        conf.print().cancel_job(conf.req(pb::CancelJobRequest { job_id: job.id.clone() })).await,
        Code::FailedPrecondition,
        &[],
    );
}

#[tokio::test]
async fn an_unreachable_ipp_printer_is_unavailable_for_capabilities_and_jobs() {
    // A loopback port nothing listens on: the printer cannot be reached, nothing is cached.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = Conf::start().await;
    let device = pb::Device {
        id: "mfd-unreachable".into(),
        display_name: "Unreachable".into(),
        delivery_mode: pb::DeliveryMode::IppPush as i32,
        printer_uri: format!("ipp://127.0.0.1:{port}/ipp/print"),
        ..Default::default()
    };
    let register = pb::RegisterDeviceRequest { device: Some(device) };
    conf.devices().register_device(authed(OPERATOR_TOKEN, register)).await.expect("RegisterDevice");
    let token = conf.new_session_on("mfd-unreachable").await;
    let caps = conf.print().get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await;
    expect_status(caps, Code::Unavailable, &[]);
    let request = pb::CreateDraftRequest { product_id: STATIC_PRODUCT.into(), ..Default::default() };
    let draft = conf.customize().create_draft(authed(&token, request)).await.unwrap().into_inner().draft.unwrap();
    let finalize = pb::FinalizeDraftRequest { draft_id: draft.id.clone() };
    conf.customize().finalize_draft(authed(&token, finalize)).await.expect("FinalizeDraft");
    let submitted = conf.print().submit_job(authed(&token, submit_draft(&draft.id))).await;
    expect_status(submitted, Code::Unavailable, &[]);
}

#[tokio::test]
async fn a_pull_devices_acceptance_of_jobs_is_unknown() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let caps = capabilities(&conf).await;
    assert_eq!(caps.delivery_mode(), pb::DeliveryMode::DevicePull);
    assert_eq!(caps.accepting_jobs, None, "print.proto: unset = unknown, always for DEVICE_PULL");
}

#[tokio::test]
async fn a_pull_link_expires_the_link_time_after_submit_job() {
    let conf = Conf::pull(Duration::from_secs(300), |b| b).await;
    let (_, link) = pull_job(&conf, "").await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let expires = link.expire_time.expect("expire_time").seconds;
    assert!((expires - now - 300).abs() <= 30, "minutes after SubmitJob, as configured: {}", expires - now);
}

fn plan_draft(draft_id: &str, copies: i32) -> pb::PlanJobRequest {
    pb::PlanJobRequest {
        document: Some(pb::plan_job_request::Document::DraftId(draft_id.into())),
        copies,
        ..Default::default()
    }
}

#[tokio::test]
async fn plan_job_refuses_what_submit_job_refuses_and_plans_uploads_as_they_are() {
    let conf = Conf::start().await;
    let card = conf.valid_card().await.id;
    let unauthenticated = conf.print().plan_job(plan_draft(&card, 1)).await;
    expect_status(unauthenticated, Code::Unauthenticated, &[]);
    let cases = [
        (pb::PlanJobRequest { document: None, ..plan_draft(&card, 1) }, Code::InvalidArgument, "draft_id"),
        (plan_draft(&card, -1), Code::InvalidArgument, "copies"),
        (pb::PlanJobRequest { preview_width_px: -5, ..plan_draft(&card, 1) }, Code::InvalidArgument, "preview"),
        (plan_draft(&card, 100_000), Code::InvalidArgument, "copies"),
        (pb::PlanJobRequest { media: "iso_a9".into(), ..plan_draft(&card, 1) }, Code::InvalidArgument, "iso_a9"),
        (plan_draft("no-such-draft", 1), Code::NotFound, "draft"),
    ];
    for (request, code, named) in cases {
        expect_status(conf.print().plan_job(conf.req(request)).await, code, &[named]);
    }

    // Copies 0 = the draft's quantity; the embedded printer reports no loaded paper, so the
    // supported sizes are tried in the server's order (A4 first).
    let plan = conf.print().plan_job(conf.req(plan_draft(&card, 0))).await.expect("PlanJob").into_inner();
    let layout = plan.layout.expect("a layout");
    assert_eq!(layout.sheet.as_ref().expect("a sheet").keyword, "iso_a4_210x297mm");
    assert!(layout.imposed && layout.pieces > 0, "{layout:?}");
    let a3 = pb::PlanJobRequest { media: "iso_a3_297x420mm".into(), ..plan_draft(&card, 100) };
    let on_a3 = conf.print().plan_job(conf.req(a3)).await.expect("PlanJob").into_inner().layout.expect("a layout");
    assert!(on_a3.pieces_per_sheet >= 2 * layout.pieces_per_sheet, "A3 holds twice A4's cards: {on_a3:?}");

    // An uploaded PDF prints as it is: copies of the file, on the printer's default sheet.
    let file = conf.try_upload(upload(&tests::pdf::pdf(3))).await.expect("UploadPrintFile");
    let request = pb::PlanJobRequest {
        document: Some(pb::plan_job_request::Document::FileId(file.file_id)),
        copies: 2,
        preview_width_px: 200,
        ..Default::default()
    };
    let plan = conf.print().plan_job(conf.req(request)).await.expect("PlanJob").into_inner();
    let layout = plan.layout.expect("a layout");
    assert!(!layout.imposed);
    assert_eq!((layout.pieces, layout.pieces_per_sheet, layout.sheet_count), (2, 1, 6), "{layout:?}");
    assert!(plan.sheet_previews.is_empty(), "an upload has no piece to show on a sheet");
}

#[tokio::test]
async fn a_jobs_pages_total_is_the_printed_sides_of_its_sheets() {
    let conf = slow_printer().await;
    // 100 two-sided cards, several to a sheet: the sides of the sheets, not 100 × 2 pages.
    let card = conf.valid_card().await.id;
    conf.finalize(&card).await;
    let cards = conf.submit(pb::SubmitJobRequest { copies: 100, ..submit_draft(&card) }).await;
    let layout = cards.layout.clone().expect("a layout");
    assert!(layout.imposed && layout.pieces_per_sheet > 1, "{layout:?}");
    let sides = if layout.sides() == pb::Sides::OneSided { 1 } else { 2 };
    assert_eq!(cards.pages_total, layout.sheet_count * sides, "{cards:?}");
    assert!(cards.pages_total < cards.copies * cards.page_count);
    // A file printed as it is: every page of every copy.
    let file = conf.try_upload(upload(&tests::pdf::pdf(3))).await.expect("UploadPrintFile");
    let as_is = conf.submit(pb::SubmitJobRequest { copies: 2, ..submit_file(&file.file_id) }).await;
    assert_eq!((as_is.page_count, as_is.pages_total), (3, 6));
    // GetJob says the same.
    let got = conf.print().get_job(conf.req(pb::GetJobRequest { job_id: cards.id.clone() })).await;
    assert_eq!(got.expect("GetJob").into_inner().job.expect("a job").pages_total, cards.pages_total);
}
