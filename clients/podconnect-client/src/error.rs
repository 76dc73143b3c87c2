//! The library's one error type: what the core answered (its gRPC code and message), or what went
//! wrong before a call could be made. Neither shape ever holds a token or a password.

use std::path::PathBuf;

pub use tonic::Code;

/// What a call or the connection setup failed with.
///
/// `Display` is one line for people: the gRPC code's name and the core's message (which the
/// contract promises never carries secrets). `code()` is for programs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The core (or the transport on the way to it) answered with a gRPC status.
    #[error("{}: {message}", code_name(*code))]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The status message, written for the person or operator.
        message: String,
    },
    /// A file the configuration names could not be read (CA, certificate, key, token).
    #[error("cannot read the {what} file {}: {source}", path.display())]
    File {
        /// What the file was for, e.g. "CA".
        what: &'static str,
        /// The file's path.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The configuration is not usable (a malformed endpoint, an empty token file, …).
    #[error("{0}")]
    Config(String),
    /// A call that needs a session was made before one was started or set.
    #[error("no session: start one first (Client::start_session or Client::set_session_token)")]
    NoSession,
}

impl Error {
    /// The gRPC code this error stands for: the core's for `Status`, `INVALID_ARGUMENT` for a
    /// configuration that cannot work, `FAILED_PRECONDITION` for a missing session.
    pub fn code(&self) -> Code {
        match self {
            Error::Status { code, .. } => *code,
            Error::File { .. } | Error::Config(_) => Code::InvalidArgument,
            Error::NoSession => Code::FailedPrecondition,
        }
    }

    /// The core's status message, or this error's own words.
    pub fn message(&self) -> String {
        match self {
            Error::Status { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// True when the core answered this (rather than the error arising on this side).
    pub fn is_status(&self) -> bool {
        matches!(self, Error::Status { .. })
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status { code: status.code(), message: status.message().to_owned() }
    }
}

impl From<tonic::transport::Error> for Error {
    fn from(error: tonic::transport::Error) -> Self {
        // A transport error is the connection failing: the same as the core being unreachable.
        Error::Status { code: Code::Unavailable, message: describe_transport(&error) }
    }
}

/// The transport error with its causes on one line (tonic's own `Display` says only "transport
/// error").
fn describe_transport(error: &(dyn std::error::Error + 'static)) -> String {
    let mut words = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        words.push_str(": ");
        words.push_str(&cause.to_string());
        source = cause.source();
    }
    words
}

/// The name gRPC gives a code, as in the specification ("NOT_FOUND").
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;
