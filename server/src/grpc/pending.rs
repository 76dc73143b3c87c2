//! Services the contract declares but this build does not implement yet. Each call answers
//! `UNIMPLEMENTED` with a message naming the call and the work that brings it, so a caller
//! (or grpcurl) sees the whole contract and a clear reason instead of an unknown-service error.

use proto::v1 as pb;
use tonic::{Request, Status};

use crate::domain::error::CoreError;
use crate::grpc::status::GrpcResult;

fn pending(call: &str, arrives_with: &str) -> Status {
    CoreError::Unimplemented(format!("{call} is not implemented in this build yet; it arrives with {arrives_with}"))
        .into()
}

const SSO: &str = "single sign-on";

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
