//! `/healthz`: the core's own `grpc.health.v1.Health/Check`, as 200 "SERVING" or 503, over a
//! channel of its own and with a cap of its own, so checks neither wait behind calls nor, flooded,
//! load the core without bound. A core that serves but cannot reach its storefront is reported
//! as 200 "DEGRADED" (not 503: the weblet still tells people what is wrong, and a balancer should
//! not take every gateway out because the storefront is down).

use std::sync::Arc;
use std::time::Duration;

use http::Response;
use http::StatusCode;
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::web::plain;

/// The core's service that is NOT_SERVING while its storefront cannot be reached.
const STOREFRONT_SERVICE: &str = "podconnect.v1.CatalogService";
/// How long the core may take to answer a health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Health checks in flight at once; a monitor needs one, more is a flood.
pub const MAX_CHECKS: usize = 16;

/// The health checker: the channel and the cap on checks in flight.
#[derive(Clone)]
pub struct Health {
    channel: Channel,
    checks: Arc<Semaphore>,
}

impl Health {
    pub fn new(channel: Channel) -> Health {
        Health { channel, checks: Arc::new(Semaphore::new(MAX_CHECKS)) }
    }

    /// One `/healthz` answer; 503 at once when `MAX_CHECKS` are already in flight.
    pub async fn healthz(&self) -> Response<Body> {
        let Ok(_check) = self.checks.try_acquire() else {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "BUSY: too many health checks at once\n");
        };
        healthz(self.channel.clone()).await
    }
}

async fn healthz(channel: Channel) -> Response<Body> {
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest { service: String::new() });
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => {
            // The core serves; the catalog also needs the storefront, which the core watches.
            let catalog = client.check(HealthCheckRequest { service: STOREFRONT_SERVICE.into() });
            match tokio::time::timeout(CHECK_TIMEOUT, catalog).await {
                Ok(Ok(response)) if response.get_ref().status == ServingStatus::NotServing as i32 => {
                    plain(StatusCode::OK, "DEGRADED: the storefront cannot be reached\n")
                }
                _ => plain(StatusCode::OK, "SERVING\n"),
            }
        }
        Ok(Ok(_)) => plain(StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING\n"),
        Ok(Err(status)) => {
            tracing::debug!(code = ?status.code(), "core health check failed");
            plain(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE\n")
        }
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE\n"),
    }
}
