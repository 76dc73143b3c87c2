//! `UsageService` over gRPC (operators only; the gate has checked the credential).

use proto::v1 as pb;
use proto::v1::usage_service_server::UsageService;
use tonic::{Request, Response};

use crate::domain::usage::UsageRecorder;
use crate::grpc::convert;
use crate::grpc::gate::operator;
use crate::grpc::status::GrpcResult;

pub struct UsageAdapter(pub UsageRecorder);

#[tonic::async_trait]
impl UsageService for UsageAdapter {
    async fn count_usage_events(
        &self,
        request: Request<pb::CountUsageEventsRequest>,
    ) -> GrpcResult<pb::CountUsageEventsResponse> {
        operator(&request)?;
        let query = convert::usage_query(request.into_inner())?;
        let counts = self.0.count(&query).await?;
        Ok(Response::new(convert::usage_counts(counts)))
    }
}
