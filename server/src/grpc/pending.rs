//! Services the contract declares but this build does not implement yet. Each call answers
//! `UNIMPLEMENTED` with a message naming the call and the work that brings it, so a caller
//! (or grpcurl) sees the whole contract and a clear reason instead of an unknown-service error.

use std::pin::Pin;

use futures::Stream;
use proto::v1 as pb;
use tonic::{Request, Status};

use crate::grpc::status::GrpcResult;

fn pending(call: &str, arrives_with: &str) -> Status {
    Status::unimplemented(format!("{call} is not implemented in this build yet; it arrives with {arrives_with}"))
}

const PRINTING: &str = "printing";
const SSO: &str = "single sign-on";

pub struct PendingPrint;

type JobStream = Pin<Box<dyn Stream<Item = Result<pb::WatchJobResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::print_service_server::PrintService for PendingPrint {
    type WatchJobStream = JobStream;

    async fn get_printer_capabilities(
        &self,
        _: Request<pb::GetPrinterCapabilitiesRequest>,
    ) -> GrpcResult<pb::GetPrinterCapabilitiesResponse> {
        Err(pending("PrintService.GetPrinterCapabilities", PRINTING))
    }
    async fn submit_job(&self, _: Request<pb::SubmitJobRequest>) -> GrpcResult<pb::SubmitJobResponse> {
        Err(pending("PrintService.SubmitJob", PRINTING))
    }
    async fn get_job(&self, _: Request<pb::GetJobRequest>) -> GrpcResult<pb::GetJobResponse> {
        Err(pending("PrintService.GetJob", PRINTING))
    }
    async fn watch_job(&self, _: Request<pb::WatchJobRequest>) -> GrpcResult<Self::WatchJobStream> {
        Err(pending("PrintService.WatchJob", PRINTING))
    }
    async fn cancel_job(&self, _: Request<pb::CancelJobRequest>) -> GrpcResult<pb::CancelJobResponse> {
        Err(pending("PrintService.CancelJob", PRINTING))
    }
    async fn report_device_job_state(
        &self,
        _: Request<pb::ReportDeviceJobStateRequest>,
    ) -> GrpcResult<pb::ReportDeviceJobStateResponse> {
        Err(pending("PrintService.ReportDeviceJobState", PRINTING))
    }
}

pub struct PendingDevices;

#[tonic::async_trait]
impl pb::device_service_server::DeviceService for PendingDevices {
    async fn register_device(&self, _: Request<pb::RegisterDeviceRequest>) -> GrpcResult<pb::RegisterDeviceResponse> {
        Err(pending("DeviceService.RegisterDevice", PRINTING))
    }
    async fn get_device(&self, _: Request<pb::GetDeviceRequest>) -> GrpcResult<pb::GetDeviceResponse> {
        Err(pending("DeviceService.GetDevice", PRINTING))
    }
    async fn list_devices(&self, _: Request<pb::ListDevicesRequest>) -> GrpcResult<pb::ListDevicesResponse> {
        Err(pending("DeviceService.ListDevices", PRINTING))
    }
    async fn update_device(&self, _: Request<pb::UpdateDeviceRequest>) -> GrpcResult<pb::UpdateDeviceResponse> {
        Err(pending("DeviceService.UpdateDevice", PRINTING))
    }
    async fn delete_device(&self, _: Request<pb::DeleteDeviceRequest>) -> GrpcResult<pb::DeleteDeviceResponse> {
        Err(pending("DeviceService.DeleteDevice", PRINTING))
    }
}

pub struct PendingSso;

#[tonic::async_trait]
impl pb::sso_service_server::SsoService for PendingSso {
    async fn enroll(&self, _: Request<pb::EnrollRequest>) -> GrpcResult<pb::EnrollResponse> {
        Err(pending("SsoService.Enroll", SSO))
    }
    async fn get_vault_key(&self, _: Request<pb::GetVaultKeyRequest>) -> GrpcResult<pb::GetVaultKeyResponse> {
        Err(pending("SsoService.GetVaultKey", SSO))
    }
    async fn silent_login(&self, _: Request<pb::SilentLoginRequest>) -> GrpcResult<pb::SilentLoginResponse> {
        Err(pending("SsoService.SilentLogin", SSO))
    }
    async fn forget(&self, _: Request<pb::ForgetRequest>) -> GrpcResult<pb::ForgetResponse> {
        Err(pending("SsoService.Forget", SSO))
    }
    async fn rotate_key(&self, _: Request<pb::RotateKeyRequest>) -> GrpcResult<pb::RotateKeyResponse> {
        Err(pending("SsoService.RotateKey", SSO))
    }
    async fn rewrap(&self, _: Request<pb::RewrapRequest>) -> GrpcResult<pb::RewrapResponse> {
        Err(pending("SsoService.Rewrap", SSO))
    }
}
