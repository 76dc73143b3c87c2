//! Fuzz target: every request message of the contract, decoded with prost from arbitrary bytes and
//! converted to domain types the way the core's adapters do (`server::grpc::convert` and the id
//! parsers). Bad input must be an INVALID_ARGUMENT (NOT_FOUND for an opaque id that names
//! nothing) with a message, never a panic or an INTERNAL error, and whatever decodes must survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use proto::v1 as pb;
use server::domain::error::CoreResult;
use server::domain::ids::DeviceId;
use server::domain::records::check_id;
use server::grpc::convert;
use tonic::Code;

/// A conversion's outcome: success, or an error a caller can act on.
fn judged<T>(what: &str, result: CoreResult<T>) {
    if let Err(err) = result {
        let status = tonic::Status::from(err);
        // An opaque id that names nothing is NOT_FOUND (session.proto); anything else is refused.
        assert!(
            matches!(status.code(), Code::InvalidArgument | Code::NotFound),
            "{what}: bad input must be INVALID_ARGUMENT (or NOT_FOUND for an id naming nothing): {status:?}"
        );
        assert!(!status.message().is_empty(), "{what}: the refusal says nothing");
    }
}

/// Decodes `bytes` as `M`; a decoded message must round-trip through encode unchanged.
fn decode<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<M> {
    let message = M::decode(bytes).ok()?;
    let again = M::decode(message.encode_to_vec().as_slice()).expect("an encoded message decodes");
    assert_eq!(again, message, "encode/decode changed the message");
    Some(message)
}

fn device_id(raw: &str) -> CoreResult<DeviceId> {
    DeviceId::parse(raw)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 32 {
        // CatalogService
        0 => drop(decode::<pb::ListCategoriesRequest>(bytes)),
        1 => {
            if let Some(m) = decode::<pb::ListProductsRequest>(bytes) {
                judged("ListProducts", convert::list_products(m));
            }
        }
        2 => {
            if let Some(m) = decode::<pb::GetProductRequest>(bytes) {
                judged("GetProduct", convert::product_id(&m.product_id));
            }
        }
        3 => {
            if let Some(m) = decode::<pb::GetThumbnailRequest>(bytes) {
                judged("GetThumbnail", convert::product_id(&m.product_id));
            }
        }
        // CustomizationService
        4 => {
            if let Some(m) = decode::<pb::GetFormRequest>(bytes) {
                judged("GetForm", convert::product_id(&m.product_id));
            }
        }
        5 => {
            if let Some(m) = decode::<pb::CreateDraftRequest>(bytes) {
                judged("CreateDraft", convert::product_id(&m.product_id));
                judged("CreateDraft", convert::create_quantity(m.quantity));
            }
        }
        6 => {
            if let Some(m) = decode::<pb::UpdateDraftRequest>(bytes) {
                judged("UpdateDraft", check_id("draft_id", &m.draft_id));
                judged("UpdateDraft", convert::draft_changes(m));
            }
        }
        7 => {
            if let Some(m) = decode::<pb::RenderPreviewRequest>(bytes) {
                judged("RenderPreview", check_id("draft_id", &m.draft_id));
                judged("RenderPreview", convert::page_numbers(&m.page_numbers));
            }
        }
        8 => {
            if let Some(m) = decode::<pb::FinalizeDraftRequest>(bytes) {
                judged("FinalizeDraft", check_id("draft_id", &m.draft_id));
            }
        }
        // DeviceService
        9 => {
            if let Some(m) = decode::<pb::RegisterDeviceRequest>(bytes) {
                judged("RegisterDevice", convert::register_device(m).and_then(|d| d.check()));
            }
        }
        10 => {
            if let Some(m) = decode::<pb::GetDeviceRequest>(bytes) {
                judged("GetDevice", device_id(&m.device_id));
            }
        }
        11 => {
            if let Some(m) = decode::<pb::ListDevicesRequest>(bytes) {
                judged("ListDevices", convert::device_page(&m).map(|_| ()));
            }
        }
        12 => {
            if let Some(m) = decode::<pb::UpdateDeviceRequest>(bytes)
                && let Some(device) = m.device
            {
                judged("UpdateDevice", convert::device_from_wire(device).and_then(|d| d.check()));
            }
        }
        13 => {
            if let Some(m) = decode::<pb::DeleteDeviceRequest>(bytes) {
                judged("DeleteDevice", device_id(&m.device_id));
            }
        }
        // PrintService
        14 => drop(decode::<pb::GetPrinterCapabilitiesRequest>(bytes)),
        15 => {
            if let Some(m) = decode::<pb::SubmitJobRequest>(bytes) {
                judged("SubmitJob", convert::submit_request(m));
            }
        }
        16 => {
            if let Some(m) = decode::<pb::GetJobRequest>(bytes) {
                judged("GetJob", check_id("job_id", &m.job_id));
            }
        }
        17 => {
            if let Some(m) = decode::<pb::WatchJobRequest>(bytes) {
                judged("WatchJob", check_id("job_id", &m.job_id));
            }
        }
        18 => {
            if let Some(m) = decode::<pb::CancelJobRequest>(bytes) {
                judged("CancelJob", check_id("job_id", &m.job_id));
            }
        }
        19 => {
            if let Some(m) = decode::<pb::ReportDeviceJobStateRequest>(bytes) {
                judged("ReportDeviceJobState", check_id("job_id", &m.job_id));
                judged("ReportDeviceJobState", convert::reported_status(&m));
            }
        }
        // SessionService
        20 => {
            if let Some(m) = decode::<pb::StartSessionRequest>(bytes) {
                judged("StartSession", device_id(&m.device_id));
            }
        }
        21 => drop(decode::<pb::LoginRequest>(bytes)),
        22 => drop(decode::<pb::LogoutRequest>(bytes)),
        23 => drop(decode::<pb::CloseSessionRequest>(bytes)),
        // SsoService (not built yet: decoding only)
        24 => drop(decode::<pb::EnrollRequest>(bytes)),
        25 => drop(decode::<pb::GetVaultKeyRequest>(bytes)),
        26 => drop(decode::<pb::SilentLoginRequest>(bytes)),
        27 => drop(decode::<pb::ForgetRequest>(bytes)),
        28 => drop(decode::<pb::RotateKeyRequest>(bytes)),
        29 => drop(decode::<pb::RewrapRequest>(bytes)),
        // UsageService
        30 => {
            if let Some(m) = decode::<pb::CountUsageEventsRequest>(bytes) {
                judged("CountUsageEvents", convert::usage_query(m));
            }
        }
        31 => {
            if let Some(m) = decode::<pb::PlanJobRequest>(bytes) {
                judged("PlanJob", convert::plan_request(m));
            }
        }
        // A printer URI as RegisterDevice and UpdateDevice check it.
        _ => judged("printer_uri", server::domain::devices::PrinterUri::parse(&String::from_utf8_lossy(bytes))),
    }
});
