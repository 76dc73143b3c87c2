//! The one place where domain errors become gRPC statuses. Internal details are logged here and
//! never sent to the caller.

use tonic::body::Body;
use tonic::codegen::http;
use tonic::{Code, Status};

use crate::domain::error::CoreError;

impl From<CoreError> for Status {
    fn from(err: CoreError) -> Self {
        let code = match &err {
            CoreError::InvalidArgument(_) => Code::InvalidArgument,
            CoreError::NotFound(_) => Code::NotFound,
            CoreError::Unauthenticated(_) => Code::Unauthenticated,
            CoreError::PermissionDenied(_) => Code::PermissionDenied,
            CoreError::AlreadyExists(_) => Code::AlreadyExists,
            CoreError::FailedPrecondition(_) => Code::FailedPrecondition,
            CoreError::ResourceExhausted(_) => Code::ResourceExhausted,
            CoreError::Unavailable(_) => Code::Unavailable,
            CoreError::Unimplemented(_) => Code::Unimplemented,
            CoreError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            CoreError::Internal { public, detail } => {
                tracing::error!(%detail, public = %public, "internal error");
                Code::Internal
            }
        };
        Status::new(code, err.to_string())
    }
}

/// A whole gRPC answer (trailers only) for a call refused before any handler runs: the gate
/// answers HTTP itself.
pub fn refusal(err: CoreError) -> http::Response<Body> {
    Status::from(err).into_http()
}

/// Shorthand for handler results.
pub type GrpcResult<T> = Result<tonic::Response<T>, Status>;
