//! `SsoService` over gRPC: a thin adapter over `SignIn` (enroll, vault keys, silent login,
//! forget) and, for operators, the SSO manager's key rotation and rewrap.

use std::sync::Arc;

use proto::v1 as pb;
use proto::v1::sso_service_server::SsoService;
use tonic::{Request, Response};

use crate::domain::signin::{Login, SignIn};
use crate::grpc::convert;
use crate::grpc::gate::{operator, session};
use crate::grpc::status::GrpcResult;

pub struct SsoAdapter(pub Arc<SignIn>);

#[tonic::async_trait]
impl SsoService for SsoAdapter {
    async fn enroll(&self, request: Request<pb::EnrollRequest>) -> GrpcResult<pb::EnrollResponse> {
        let session = session(&request)?;
        let login =
            request.get_ref().credentials.as_ref().map(|c| Login { username: &c.username, password: &c.password });
        let (display_name, replaced) = self.0.enroll(&session, login).await?;
        Ok(Response::new(pb::EnrollResponse { display_name, replaced }))
    }

    async fn get_vault_key(&self, request: Request<pb::GetVaultKeyRequest>) -> GrpcResult<pb::GetVaultKeyResponse> {
        let (vault_key, expires) = self.0.vault_key(&session(&request)?).await?;
        Ok(Response::new(pb::GetVaultKeyResponse { vault_key, expire_time: Some(convert::timestamp(expires)) }))
    }

    async fn silent_login(&self, request: Request<pb::SilentLoginRequest>) -> GrpcResult<pb::SilentLoginResponse> {
        let session = session(&request)?;
        let done = self.0.silent_login(&session, &request.get_ref().vault_key).await?;
        Ok(Response::new(pb::SilentLoginResponse {
            display_name: done.display_name,
            session_token: done.token.expose().to_owned(),
        }))
    }

    async fn forget(&self, request: Request<pb::ForgetRequest>) -> GrpcResult<pb::ForgetResponse> {
        let deleted = self.0.forget(&session(&request)?).await?;
        Ok(Response::new(pb::ForgetResponse { deleted }))
    }

    async fn rotate_key(&self, request: Request<pb::RotateKeyRequest>) -> GrpcResult<pb::RotateKeyResponse> {
        operator(&request)?;
        let version = self.0.rotate_key().await?;
        Ok(Response::new(pb::RotateKeyResponse {
            key_version: version.version,
            create_time: Some(convert::timestamp(version.created)),
        }))
    }

    async fn rewrap(&self, request: Request<pb::RewrapRequest>) -> GrpcResult<pb::RewrapResponse> {
        operator(&request)?;
        let report = self.0.rewrap().await?;
        Ok(Response::new(pb::RewrapResponse {
            key_version: report.key_version,
            rewrapped: convert::count64(report.rewrapped),
            already_current: convert::count64(report.already_current),
            failed: convert::count64(report.failed),
        }))
    }

    async fn set_min_decryption_version(
        &self,
        request: Request<pb::SetMinDecryptionVersionRequest>,
    ) -> GrpcResult<pb::SetMinDecryptionVersionResponse> {
        operator(&request)?;
        let (key_version, min_decryption_version) =
            self.0.set_min_decryption_version(request.get_ref().min_decryption_version)?;
        Ok(Response::new(pb::SetMinDecryptionVersionResponse { key_version, min_decryption_version }))
    }
}
