//! `SessionService` over gRPC: a thin adapter over `SessionManager`.

use std::sync::Arc;

use proto::v1 as pb;
use proto::v1::session_service_server::SessionService;
use tonic::{Request, Response};

use crate::domain::error::CoreError;
use crate::domain::jobs::Jobs;
use crate::domain::session::SessionManager;
use crate::grpc::convert;
use crate::grpc::gate::session;
use crate::grpc::status::GrpcResult;

/// Sessions, and the print service that knows which devices may start one.
pub struct SessionAdapter(pub Arc<SessionManager>, pub Arc<Jobs>);

#[tonic::async_trait]
impl SessionService for SessionAdapter {
    async fn start_session(&self, request: Request<pb::StartSessionRequest>) -> GrpcResult<pb::StartSessionResponse> {
        let (device, asserted) = convert::start_session(request.get_ref())?;
        if asserted {
            // Nothing can verify a device user yet; an identity that cannot be verified is refused,
            // never taken on trust.
            return Err(CoreError::Unauthenticated(
                "the device_user_assertion cannot be verified: this server has no device-user verification \
                 configured; start the session without one"
                    .into(),
            )
            .into());
        }
        let model = self.1.admit_device(&device).await?;
        let (token, session) = self.0.start(device, &model).await?;
        Ok(Response::new(pb::StartSessionResponse {
            session_token: token.expose().to_owned(),
            expire_time: Some(convert::timestamp(session.expires_at())),
            idle_timeout: Some(convert::duration(self.0.limits().idle)),
            // No SSO vault exists yet, so nothing is ever stored for a device user.
            sso_available: false,
        }))
    }

    async fn login(&self, _request: Request<pb::LoginRequest>) -> GrpcResult<pb::LoginResponse> {
        Err(CoreError::Unimplemented(
            "SessionService.Login is not available yet: the embedded storefront has no accounts; storefront \
             login arrives with the XMPie uStore backend and single sign-on"
                .into(),
        )
        .into())
    }

    async fn logout(&self, _request: Request<pb::LogoutRequest>) -> GrpcResult<pb::LogoutResponse> {
        Err(CoreError::Unimplemented(
            "SessionService.Logout is not available yet: storefront login arrives with the XMPie uStore backend".into(),
        )
        .into())
    }

    async fn close_session(&self, request: Request<pb::CloseSessionRequest>) -> GrpcResult<pb::CloseSessionResponse> {
        let session = session(&request)?;
        self.0.close(&session).await?;
        Ok(Response::new(pb::CloseSessionResponse {}))
    }
}
