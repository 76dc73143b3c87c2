//! `/healthz`: the core's own `grpc.health.v1.Health/Check`, as 200 "SERVING" or 503.

use std::time::Duration;

use http::Response;
use http::StatusCode;
use tonic::body::Body;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::web::plain;

/// How long the core may take to answer a health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz(channel: Channel) -> Response<Body> {
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest { service: String::new() });
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => {
            plain(StatusCode::OK, "SERVING\n")
        }
        Ok(Ok(_)) => plain(StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING\n"),
        Ok(Err(status)) => {
            tracing::debug!(code = ?status.code(), "core health check failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE\n")
        }
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE\n"),
    }
}
