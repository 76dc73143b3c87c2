//! The cross-cutting rules at the top of session.proto: session tokens, operator credentials
//! (UNAUTHENTICATED vs PERMISSION_DENIED), one session never seeing another's ids, and opaque ids
//! (empty or over 128 characters INVALID_ARGUMENT, anything else unknown NOT_FOUND).

use proto::v1 as pb;
use tests::client::authed;
use tests::pki::TestCa;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::*;

/// `message`, with `authorization: Bearer <token>` when a token is given.
fn maybe_authed<T>(token: Option<&str>, message: T) -> Request<T> {
    match token {
        Some(token) => authed(token, message),
        None => Request::new(message),
    }
}

/// Calls every RPC that needs a session token, with well-formed arguments; each call's outcome.
async fn every_session_rpc(conf: &Conf, token: Option<&str>) -> Vec<(&'static str, Result<(), Status>)> {
    let id = "conformance-some-id".to_string();
    let mut out = Vec::new();
    macro_rules! call {
        ($name:literal, $client:expr, $method:ident, $message:expr) => {
            out.push(($name, $client.$method(maybe_authed(token, $message)).await.map(|_| ())))
        };
    }
    call!("ListCategories", conf.catalog(), list_categories, pb::ListCategoriesRequest {});
    call!("ListProducts", conf.catalog(), list_products, pb::ListProductsRequest::default());
    call!("GetProduct", conf.catalog(), get_product, pb::GetProductRequest { product_id: CARD_PRODUCT.into() });
    call!("GetThumbnail", conf.catalog(), get_thumbnail, pb::GetThumbnailRequest { product_id: CARD_PRODUCT.into() });
    call!("GetForm", conf.customize(), get_form, pb::GetFormRequest { product_id: CARD_PRODUCT.into() });
    call!(
        "CreateDraft",
        conf.customize(),
        create_draft,
        pb::CreateDraftRequest { product_id: CARD_PRODUCT.into(), ..Default::default() }
    );
    call!(
        "UpdateDraft",
        conf.customize(),
        update_draft,
        pb::UpdateDraftRequest { draft_id: id.clone(), ..Default::default() }
    );
    call!(
        "RenderPreview",
        conf.customize(),
        render_preview,
        pb::RenderPreviewRequest { draft_id: id.clone(), ..Default::default() }
    );
    call!("FinalizeDraft", conf.customize(), finalize_draft, pb::FinalizeDraftRequest { draft_id: id.clone() });
    call!("UploadPrintFile", conf.customize(), upload_print_file, upload_stream(upload(&tests::pdf::pdf(1))));
    call!("GetPrinterCapabilities", conf.print(), get_printer_capabilities, pb::GetPrinterCapabilitiesRequest {});
    call!("SubmitJob", conf.print(), submit_job, submit_draft(&id));
    call!("GetJob", conf.print(), get_job, pb::GetJobRequest { job_id: id.clone() });
    call!("WatchJob", conf.print(), watch_job, pb::WatchJobRequest { job_id: id.clone() });
    call!("CancelJob", conf.print(), cancel_job, pb::CancelJobRequest { job_id: id.clone() });
    call!(
        "ReportDeviceJobState",
        conf.print(),
        report_device_job_state,
        pb::ReportDeviceJobStateRequest {
            job_id: id.clone(),
            state: pb::JobState::Processing as i32,
            ..Default::default()
        }
    );
    call!(
        "Login",
        conf.sessions(),
        login,
        pb::LoginRequest { username: "ana".into(), password: "secret".into(), remember: false }
    );
    call!("Logout", conf.sessions(), logout, pb::LogoutRequest {});
    call!("Enroll", conf.sso(), enroll, pb::EnrollRequest::default());
    call!("GetVaultKey", conf.sso(), get_vault_key, pb::GetVaultKeyRequest::default());
    call!("SilentLogin", conf.sso(), silent_login, pb::SilentLoginRequest::default());
    call!("Forget", conf.sso(), forget, pb::ForgetRequest::default());
    // Last: on a valid token it would end the session.
    call!("CloseSession", conf.sessions(), close_session, pb::CloseSessionRequest {});
    out
}

/// Checks that every call failed with `code` and a non-empty message.
#[track_caller]
fn all_fail_with(outcomes: Vec<(&'static str, Result<(), Status>)>, code: Code) {
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|(_, outcome)| match outcome {
            Ok(()) => true,
            Err(status) => status.code() != code || status.message().trim().is_empty(),
        })
        .map(|(name, outcome)| format!("{name}: {outcome:?}"))
        .collect();
    assert!(wrong.is_empty(), "expected {code:?} with a message from every call, but:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn every_session_rpc_without_a_token_is_unauthenticated() {
    let conf = Conf::start().await;
    all_fail_with(every_session_rpc(&conf, None).await, Code::Unauthenticated);
}

#[tokio::test]
async fn every_session_rpc_with_an_unknown_token_is_unauthenticated() {
    let conf = Conf::start().await;
    let unknown = "A".repeat(43);
    all_fail_with(every_session_rpc(&conf, Some(&unknown)).await, Code::Unauthenticated);
}

#[tokio::test]
async fn every_session_rpc_with_an_operator_token_is_unauthenticated() {
    // An operator token is not a session token: no session comes with it.
    let conf = Conf::start().await;
    all_fail_with(every_session_rpc(&conf, Some(OPERATOR_TOKEN)).await, Code::Unauthenticated);
}

#[tokio::test]
async fn every_session_rpc_with_a_closed_sessions_token_is_unauthenticated() {
    let conf = Conf::start().await;
    conf.sessions().close_session(conf.req(pb::CloseSessionRequest {})).await.expect("CloseSession succeeds");
    all_fail_with(every_session_rpc(&conf, Some(&conf.token)).await, Code::Unauthenticated);
}

#[tokio::test]
async fn every_session_rpc_after_the_absolute_limit_is_unauthenticated() {
    // session.proto: "expired (idle or absolute limit)". The idle limit alone is covered by
    // sessions::idle_and_absolute_limits_end_sessions; the absolute one can be polled without
    // keeping the session alive.
    let conf = Conf::with(|b| b.session_absolute(Duration::from_secs(1))).await;
    eventually("the session's absolute limit", POLL_BOUND, || async {
        let outcome = conf.catalog().list_categories(conf.req(pb::ListCategoriesRequest {})).await;
        outcome.err().filter(|s| s.code() == Code::Unauthenticated)
    })
    .await;
    all_fail_with(every_session_rpc(&conf, Some(&conf.token)).await, Code::Unauthenticated);
}

/// Calls every operator-only RPC with well-formed arguments; each call's outcome.
async fn every_operator_rpc(channel: &Channel, token: Option<&str>) -> Vec<(&'static str, Result<(), Status>)> {
    use proto::v1::device_service_client::DeviceServiceClient;
    use proto::v1::sso_service_client::SsoServiceClient;
    use proto::v1::usage_service_client::UsageServiceClient;
    let devices = || DeviceServiceClient::new(channel.clone());
    let device = pb::Device {
        id: "mfd-operator-check".into(),
        display_name: "Operator check".into(),
        delivery_mode: pb::DeliveryMode::SpoolFolder as i32,
        ..Default::default()
    };
    let mut out = Vec::new();
    macro_rules! call {
        ($name:literal, $client:expr, $method:ident, $message:expr) => {
            out.push(($name, $client.$method(maybe_authed(token, $message)).await.map(|_| ())))
        };
    }
    call!("RegisterDevice", devices(), register_device, pb::RegisterDeviceRequest { device: Some(device.clone()) });
    call!("GetDevice", devices(), get_device, pb::GetDeviceRequest { device_id: device.id.clone() });
    call!("ListDevices", devices(), list_devices, pb::ListDevicesRequest::default());
    call!(
        "UpdateDevice",
        devices(),
        update_device,
        pb::UpdateDeviceRequest {
            device: Some(device.clone()),
            update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
        }
    );
    call!("DeleteDevice", devices(), delete_device, pb::DeleteDeviceRequest { device_id: device.id.clone() });
    call!(
        "CountUsageEvents",
        UsageServiceClient::new(channel.clone()),
        count_usage_events,
        pb::CountUsageEventsRequest::default()
    );
    call!("RotateKey", SsoServiceClient::new(channel.clone()), rotate_key, pb::RotateKeyRequest::default());
    call!("Rewrap", SsoServiceClient::new(channel.clone()), rewrap, pb::RewrapRequest::default());
    call!(
        "SetMinDecryptionVersion",
        SsoServiceClient::new(channel.clone()),
        set_min_decryption_version,
        pb::SetMinDecryptionVersionRequest { min_decryption_version: 1 }
    );
    out
}

#[tokio::test]
async fn operator_rpcs_without_a_credential_are_unauthenticated() {
    let conf = Conf::start().await;
    all_fail_with(every_operator_rpc(&conf.channel, None).await, Code::Unauthenticated);
}

#[tokio::test]
async fn operator_rpcs_with_a_session_token_are_permission_denied() {
    let conf = Conf::start().await;
    all_fail_with(every_operator_rpc(&conf.channel, Some(&conf.token)).await, Code::PermissionDenied);
}

#[tokio::test]
async fn operator_rpcs_with_a_non_operator_client_certificate_are_permission_denied() {
    // session.proto: "with a session token (or another non-operator credential) they fail with
    // PERMISSION_DENIED". A client certificate the server trusts, but not as an operator, is
    // such a credential.
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("conformance internal callers");
    let ca_file = dir.path().join("ca.pem");
    ca.write(&ca_file);
    let conf = Conf::with(|b| b.client_certificates(&ca_file, "optional").operator_cert_name("ops-console")).await;
    let weblet = ca.client("weblet-gateway");
    let channel = conf.core.channel_with(Some((&weblet.cert_pem, &weblet.key_pem))).await.expect("it connects");
    all_fail_with(every_operator_rpc(&channel, None).await, Code::PermissionDenied);
}

/// The ids one RPC call takes, by kind.
#[derive(Clone, Default)]
struct Ids {
    category: String,
    product: String,
    draft: String,
    file: String,
    job: String,
}

impl Ids {
    fn all(id: &str) -> Ids {
        Ids { category: id.into(), product: id.into(), draft: id.into(), file: id.into(), job: id.into() }
    }
}

/// Calls every RPC that takes an opaque id with `ids`; the RPC, the id field and the outcome.
/// `with_category` adds ListProducts, where an empty category means all.
async fn every_id_rpc(
    conf: &Conf,
    token: &str,
    ids: &Ids,
    with_category: bool,
) -> Vec<(&'static str, &'static str, Result<(), Status>)> {
    let mut out = Vec::new();
    macro_rules! call {
        ($name:literal, $field:literal, $client:expr, $method:ident, $message:expr) => {
            out.push(($name, $field, $client.$method(authed(token, $message)).await.map(|_| ())))
        };
    }
    if with_category {
        call!(
            "ListProducts",
            "category_id",
            conf.catalog(),
            list_products,
            pb::ListProductsRequest { category_id: ids.category.clone(), ..Default::default() }
        );
    }
    call!(
        "GetProduct",
        "product_id",
        conf.catalog(),
        get_product,
        pb::GetProductRequest { product_id: ids.product.clone() }
    );
    call!(
        "GetThumbnail",
        "product_id",
        conf.catalog(),
        get_thumbnail,
        pb::GetThumbnailRequest { product_id: ids.product.clone() }
    );
    call!("GetForm", "product_id", conf.customize(), get_form, pb::GetFormRequest { product_id: ids.product.clone() });
    call!(
        "CreateDraft",
        "product_id",
        conf.customize(),
        create_draft,
        pb::CreateDraftRequest { product_id: ids.product.clone(), ..Default::default() }
    );
    call!(
        "UpdateDraft",
        "draft_id",
        conf.customize(),
        update_draft,
        pb::UpdateDraftRequest { draft_id: ids.draft.clone(), ..Default::default() }
    );
    call!(
        "RenderPreview",
        "draft_id",
        conf.customize(),
        render_preview,
        pb::RenderPreviewRequest { draft_id: ids.draft.clone(), ..Default::default() }
    );
    call!(
        "FinalizeDraft",
        "draft_id",
        conf.customize(),
        finalize_draft,
        pb::FinalizeDraftRequest { draft_id: ids.draft.clone() }
    );
    call!("SubmitJob", "draft_id", conf.print(), submit_job, submit_draft(&ids.draft));
    call!("SubmitJob", "file_id", conf.print(), submit_job, submit_file(&ids.file));
    call!("GetJob", "job_id", conf.print(), get_job, pb::GetJobRequest { job_id: ids.job.clone() });
    call!("WatchJob", "job_id", conf.print(), watch_job, pb::WatchJobRequest { job_id: ids.job.clone() });
    call!("CancelJob", "job_id", conf.print(), cancel_job, pb::CancelJobRequest { job_id: ids.job.clone() });
    call!(
        "ReportDeviceJobState",
        "job_id",
        conf.print(),
        report_device_job_state,
        pb::ReportDeviceJobStateRequest {
            job_id: ids.job.clone(),
            state: pb::JobState::Processing as i32,
            ..Default::default()
        }
    );
    out
}

/// Checks that every call failed with `code`, a message, and (when `name_field`) the field's name
/// in the message.
#[track_caller]
fn all_ids_fail_with(outcomes: Vec<(&'static str, &'static str, Result<(), Status>)>, code: Code, name_field: bool) {
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|(_, field, outcome)| match outcome {
            Ok(()) => true,
            Err(status) => {
                status.code() != code
                    || status.message().trim().is_empty()
                    || (name_field && !status.message().contains(field))
            }
        })
        .map(|(name, field, outcome)| format!("{name} ({field}): {outcome:?}"))
        .collect();
    assert!(wrong.is_empty(), "expected {code:?} from every call, but:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn an_empty_required_id_is_invalid_argument_naming_the_field() {
    let conf = Conf::start().await;
    all_ids_fail_with(every_id_rpc(&conf, &conf.token, &Ids::all(""), false).await, Code::InvalidArgument, true);
}

#[tokio::test]
async fn an_id_longer_than_128_characters_is_invalid_argument_naming_the_field() {
    let conf = Conf::start().await;
    let long = "a".repeat(129);
    all_ids_fail_with(every_id_rpc(&conf, &conf.token, &Ids::all(&long), true).await, Code::InvalidArgument, true);
}

#[tokio::test]
async fn any_other_id_that_names_nothing_is_not_found_whatever_its_shape() {
    let conf = Conf::start().await;
    let longest = "b".repeat(128);
    let mut wrong = Vec::new();
    for id in ["no-such-thing", "../../etc/passwd", "a b", "\u{0}", "ünïcödé ✓", "%2e%2e", longest.as_str()] {
        for (name, field, outcome) in every_id_rpc(&conf, &conf.token, &Ids::all(id), true).await {
            match outcome {
                Err(s) if s.code() == Code::NotFound && !s.message().trim().is_empty() => {}
                Err(s) => wrong.push(format!("{name} ({field} = {id:?}): {:?} {:?}", s.code(), s.message())),
                Ok(()) => wrong.push(format!("{name} ({field} = {id:?}): succeeded")),
            }
        }
    }
    assert!(wrong.is_empty(), "each must be NOT_FOUND, but:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn another_sessions_drafts_files_and_jobs_are_not_found() {
    let conf = Conf::printing(Duration::from_secs(3600)).await;
    let (draft, file) = conf.finalized_static().await;
    let job = conf.submit(submit_file(&file.file_id)).await;
    let editing = conf.valid_card().await;
    let other = conf.new_session().await;

    // The owner's ids, with product and category ids every session may see.
    let theirs = Ids {
        category: "business-cards".into(),
        product: CARD_PRODUCT.into(),
        draft: draft.id.clone(),
        file: file.file_id.clone(),
        job: job.id.clone(),
    };
    let outcomes = every_id_rpc(&conf, &other, &theirs, false).await;
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|(_, field, _)| !["product_id", "category_id"].contains(field))
        .filter(|(_, _, o)| !matches!(o, Err(s) if s.code() == Code::NotFound && !s.message().trim().is_empty()))
        .map(|(name, field, outcome)| format!("{name} ({field}): {outcome:?}"))
        .collect();
    assert!(wrong.is_empty(), "another session's ids must be NOT_FOUND, but:\n{}", wrong.join("\n"));
    let err = conf
        .customize()
        .render_preview(authed(&other, pb::RenderPreviewRequest { draft_id: editing.id.clone(), ..Default::default() }))
        .await;
    expect_status(err, Code::NotFound, &[]);

    // The owner still has everything.
    assert_eq!(conf.get_job(&job.id).await.id, job.id);
    conf.try_update(pb::UpdateDraftRequest { draft_id: editing.id, ..Default::default() }).await.expect("still there");
}
