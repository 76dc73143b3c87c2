//! `/healthz`: the cores' own `grpc.health.v1.Health/Check`, asked of every core at once when the
//! request comes, as 200 "SERVING" when at least one core serves, or 503; the
//! `podconnect-cores-serving` header says how many of how many. With a cap of its own, so a flood
//! of checks does not load the cores without bound. When no serving core can reach its storefront
//! the answer is 200 "DEGRADED" (not 503: the weblet still tells people what is wrong, and a
//! balancer should not take every gateway out because the storefront is down).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::body::Body;

use crate::backend::Health as CoreHealth;
use crate::upstream::Upstream;
use crate::web::plain;

/// The core's service that is NOT_SERVING while its storefront cannot be reached.
const STOREFRONT_SERVICE: &str = "podconnect.v1.CatalogService";
/// How long a core may take to answer a health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Health checks in flight at once; a monitor needs one, more is a flood.
pub const MAX_CHECKS: usize = 16;
/// The header that says how many cores serve, as `<serving>/<known>`.
const CORES_SERVING: &str = "podconnect-cores-serving";

/// The health checker: the cores and the cap on checks in flight.
#[derive(Clone)]
pub struct Health {
    upstream: Arc<Upstream>,
    checks: Arc<Semaphore>,
}

/// One core's answer to `/healthz`'s questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Unavailable,
    NotServing,
    Degraded,
    Serving,
}

impl Health {
    pub fn new(upstream: Arc<Upstream>) -> Health {
        Health { upstream, checks: Arc::new(Semaphore::new(MAX_CHECKS)) }
    }

    /// One `/healthz` answer; 503 at once when `MAX_CHECKS` are already in flight.
    pub async fn healthz(&self) -> Response<Body> {
        let Ok(_check) = self.checks.try_acquire() else {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "BUSY: too many health checks at once\n");
        };
        let mut asked = JoinSet::new();
        for backend in self.upstream.backends_now() {
            asked.spawn(async move {
                match backend.check("", CHECK_TIMEOUT).await {
                    CoreHealth::Serving => {}
                    CoreHealth::NotServing => return Answer::NotServing,
                    CoreHealth::Failed(reason) => {
                        tracing::debug!(core = %backend.label, %reason, "core health check failed");
                        return Answer::Unavailable;
                    }
                }
                // The core serves; the catalog also needs the storefront, which the core watches.
                match backend.check(STOREFRONT_SERVICE, CHECK_TIMEOUT).await {
                    CoreHealth::NotServing => Answer::Degraded,
                    _ => Answer::Serving,
                }
            });
        }
        let (mut best, mut serving, mut known) = (Answer::Unavailable, 0, 0);
        while let Some(answer) = asked.join_next().await {
            let answer = answer.unwrap_or(Answer::Unavailable);
            known += 1;
            serving += usize::from(answer >= Answer::Degraded);
            best = best.max(answer);
        }
        let mut response = match best {
            Answer::Serving => plain(StatusCode::OK, "SERVING\n"),
            Answer::Degraded => plain(StatusCode::OK, "DEGRADED: the storefront cannot be reached\n"),
            Answer::NotServing => plain(StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING\n"),
            Answer::Unavailable => plain(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE\n"),
        };
        if let Ok(count) = HeaderValue::from_str(&format!("{serving}/{known}")) {
            response.headers_mut().insert(CORES_SERVING, count);
        }
        response
    }
}
