//! The domain's one error type. Each variant is a kind of failure a caller can act on; the gRPC
//! layer maps kinds to status codes in exactly one place (`grpc::status`).

use std::fmt;

/// Result of every domain operation.
pub type CoreResult<T> = Result<T, CoreError>;

/// A domain failure. Messages are written for the person who must act on them and never carry
/// secrets or user data.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The caller sent a value that can never be valid; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The thing asked for does not exist, or belongs to another session (the two look alike
    /// on purpose, so one session cannot probe another's ids).
    #[error("{0}")]
    NotFound(String),
    /// No valid session or operator credential came with the call.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is known but may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The thing to create exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the system is not in a state that allows it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was reached; retrying later can succeed.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (store, storefront backend, printer) cannot be reached right now.
    #[error("{0}")]
    Unavailable(String),
    /// The call ran out of time: its request did not arrive in time, or the caller's deadline
    /// passed before it finished.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The call exists in the contract but this build does not implement it yet.
    #[error("{0}")]
    Unimplemented(String),
    /// A bug or a broken invariant. The public message stays generic; `detail` goes to the log.
    #[error("internal error: {public}")]
    Internal { public: String, detail: Detail },
}

impl CoreError {
    /// An internal failure with a generic message for the caller and a detail for the log.
    pub fn internal(public: impl Into<String>, detail: impl fmt::Display) -> Self {
        CoreError::Internal { public: public.into(), detail: Detail(detail.to_string()) }
    }
}

/// Log-only detail of an internal error. Its `Display` is used for logs; callers never see it.
#[derive(Debug)]
pub struct Detail(pub String);

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
