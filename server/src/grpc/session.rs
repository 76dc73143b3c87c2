//! `SessionService` over gRPC: a thin adapter over `SessionManager`.

use std::sync::Arc;

use proto::v1 as pb;
use proto::v1::session_service_server::SessionService;
use tonic::{Request, Response};

use crate::domain::jobs::Jobs;
use crate::domain::session::SessionManager;
use crate::domain::signin::{Login, SignIn};
use crate::grpc::convert;
use crate::grpc::gate::session;
use crate::grpc::status::GrpcResult;

/// Sessions, the print service that knows which devices may start one, and signing in.
pub struct SessionAdapter {
    pub sessions: Arc<SessionManager>,
    pub jobs: Arc<Jobs>,
    pub sign_in: Arc<SignIn>,
}

#[tonic::async_trait]
impl SessionService for SessionAdapter {
    async fn start_session(&self, request: Request<pb::StartSessionRequest>) -> GrpcResult<pb::StartSessionResponse> {
        let (device, assertion) = convert::start_session(request.get_ref())?;
        let device_user = self.sign_in.verify_device_user(assertion).await?;
        let model = self.jobs.admit_device(&device).await?;
        let (token, session) = self.sessions.start_as(device, &model, device_user).await?;
        Ok(Response::new(pb::StartSessionResponse {
            session_token: token.expose().to_owned(),
            expire_time: Some(convert::timestamp(session.expires_at())),
            idle_timeout: Some(convert::duration(self.sessions.limits().idle)),
            sso_available: self.sign_in.sso_available(&session).await,
        }))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> GrpcResult<pb::LoginResponse> {
        let session = session(&request)?;
        let req = request.get_ref();
        let login = Login { username: &req.username, password: &req.password };
        let done = self.sign_in.login(&session, login, req.remember).await?;
        Ok(Response::new(pb::LoginResponse {
            display_name: done.display_name,
            remembered: done.remembered,
            session_token: done.token.expose().to_owned(),
        }))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> GrpcResult<pb::LogoutResponse> {
        self.sign_in.logout(&session(&request)?).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn close_session(&self, request: Request<pb::CloseSessionRequest>) -> GrpcResult<pb::CloseSessionResponse> {
        let session = session(&request)?;
        self.sessions.close(&session).await?;
        Ok(Response::new(pb::CloseSessionResponse {}))
    }
}
