//! `GatewayError`, the gateway's one error enum, and `status_headers`, the one place a failure
//! becomes a grpc-web answer: the details go to the log, the browser gets a code and a short message,
//! as the response headers of a call that has not answered yet (`rescue`) or as the trailers of one
//! already streaming.

use http::{HeaderMap, HeaderValue, Response, header};
use tonic::body::Body;
use tonic::{Code, Status};

/// Everything that can stop a call inside the gateway itself.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The core could not be reached (connection refused, TLS failure, reset).
    #[error("the core is unreachable: {0}")]
    Upstream(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No core can take the call: none is serving (or every one tried handed it back unsent).
    #[error("every core is unreachable or unhealthy: {0}")]
    NoCore(String),
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
    /// The method streams requests, which grpc-web cannot carry.
    #[error("a client-streaming method was called over grpc-web")]
    ClientStreaming,
}

impl GatewayError {
    /// The code and the message the browser sees; never internal details.
    pub fn public_status(&self) -> Status {
        match self {
            GatewayError::Upstream(_) | GatewayError::UpstreamHttp(_) => {
                Status::unavailable("the print service is unavailable, try again shortly")
            }
            GatewayError::NoCore(_) => {
                Status::unavailable("the print service is unavailable (no server is reachable), try again shortly")
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
            GatewayError::ClientStreaming => Status::unimplemented(
                "this method streams its request, which grpc-web cannot carry; call the core over gRPC instead",
            ),
        }
    }
}

/// Logs a gateway failure with its details and returns what the browser sees of it: the public
/// code, and the `grpc-status`/`grpc-message` headers that carry it.
pub fn status_headers(method: &str, err: &GatewayError) -> (Code, HeaderMap) {
    let status = err.public_status();
    match err {
        GatewayError::Upstream(_) | GatewayError::UpstreamHttp(_) | GatewayError::NoCore(_) => {
            tracing::warn!(method, error = %err, "call failed at the gateway")
        }
        _ => tracing::info!(method, error = %err, "call refused at the gateway"),
    }
    let mut headers = HeaderMap::with_capacity(3);
    // Public messages are plain ASCII, which always makes a header value.
    let _ = status.add_header(&mut headers);
    (status.code(), headers)
}

/// A failure before the core answered, as a trailers-only gRPC answer (HTTP 200, status in the
/// headers); the grpc-web edge then adds the matching trailer frame.
pub fn rescue(method: &str, err: &GatewayError) -> (Code, Response<Body>) {
    let (code, headers) = status_headers(method, err);
    let mut response = Response::new(Body::empty());
    *response.headers_mut() = headers;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    (code, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_carries_the_public_status_and_never_the_details() {
        let err = GatewayError::Upstream("connection refused by 10.0.0.7:50443".into());
        let (code, headers) = status_headers("/podconnect.v1.CatalogService/ListProducts", &err);
        assert_eq!(code, Code::Unavailable);
        assert_eq!(headers["grpc-status"], "14");
        let message = headers["grpc-message"].to_str().unwrap();
        assert!(message.contains("unavailable") && !message.contains("10.0.0.7"), "{message}");

        // Before the core answered, the same headers are the whole (trailers-only) response.
        let (code, response) = rescue("/podconnect.v1.CatalogService/ListProducts", &GatewayError::Overloaded(4));
        assert_eq!(code, Code::ResourceExhausted);
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "8");
        assert_eq!(response.headers()["content-type"], "application/grpc");
    }
}
