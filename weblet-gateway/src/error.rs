//! `GatewayError`, the gateway's one error enum, and `rescue`, the one edge where failures become
//! grpc-web answers: the details go to the log, the browser gets a code and a short message.

use http::Response;
use tonic::body::Body;
use tonic::{Code, Status};

/// Everything that can stop a call inside the gateway itself.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The core could not be reached (connection refused, TLS failure, reset).
    #[error("the core is unreachable: {0}")]
    Upstream(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The core answered something that is not gRPC.
    #[error("the core answered HTTP {0} without a gRPC status")]
    UpstreamHttp(http::StatusCode),
    /// A frame header announced more than the limit.
    #[error("a request message of {announced} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge { announced: u64, limit: usize },
    /// The request body could not be read or decoded (e.g. malformed base64).
    #[error("the request body is malformed: {0}")]
    MalformedBody(String),
    /// A call sent more or less than the one request message grpc-web carries.
    #[error("the request body holds {0} message")]
    MessageCount(&'static str),
    /// The request headers are larger than what is forwarded.
    #[error("the request headers take {size} bytes, over the limit of {limit} bytes")]
    HeadersTooLarge { size: usize, limit: usize },
    /// The request body did not arrive in time.
    #[error("the request body did not arrive within {0:?}")]
    BodyTimeout(std::time::Duration),
    /// Too many calls from one client address are in flight.
    #[error("too many concurrent calls from one address (limit {0})")]
    PeerOverloaded(usize),
    /// Too many calls are in flight.
    #[error("too many concurrent calls (limit {0})")]
    Overloaded(usize),
    /// The caller's `grpc-timeout` passed.
    #[error("the call's deadline passed")]
    DeadlineExceeded,
}

impl GatewayError {
    /// The code and the message the browser sees; never internal details.
    pub fn public_status(&self) -> Status {
        match self {
            GatewayError::Upstream(_) | GatewayError::UpstreamHttp(_) => {
                Status::unavailable("the print service is unavailable, try again shortly")
            }
            GatewayError::MessageTooLarge { limit, .. } => {
                Status::resource_exhausted(format!("the request message exceeds the limit of {limit} bytes"))
            }
            GatewayError::MalformedBody(_) => Status::invalid_argument("malformed grpc-web request body"),
            GatewayError::MessageCount(_) => {
                Status::invalid_argument("a grpc-web call must carry exactly one request message")
            }
            GatewayError::HeadersTooLarge { limit, .. } => {
                Status::resource_exhausted(format!("the request headers exceed the limit of {limit} bytes"))
            }
            GatewayError::BodyTimeout(limit) => Status::deadline_exceeded(format!(
                "the request body did not arrive within {}",
                humantime::format_duration(*limit)
            )),
            GatewayError::PeerOverloaded(limit) => Status::resource_exhausted(format!(
                "too many calls from your address at once (limit {limit}), try again shortly"
            )),
            GatewayError::Overloaded(_) => Status::resource_exhausted("the gateway is busy, try again shortly"),
            GatewayError::DeadlineExceeded => Status::deadline_exceeded("the call's deadline passed"),
        }
    }
}

/// Turns a gateway failure into a trailers-only gRPC answer (HTTP 200, status in the headers);
/// the grpc-web edge then adds the matching trailer frame.
pub fn rescue(method: &str, err: &GatewayError) -> Response<Body> {
    let status = err.public_status();
    match status.code() {
        Code::Unavailable => tracing::warn!(method, error = %err, "call failed at the gateway"),
        _ => tracing::info!(method, error = %err, "call refused at the gateway"),
    }
    let mut response = status.into_http::<Body>();
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
    response
}
