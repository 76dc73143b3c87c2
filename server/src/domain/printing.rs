//! Printing: jobs with one state model for every delivery mode, the ticket that says how to
//! print, why a printer refused a job (`Refusal`), and `Printer`, the narrow trait each delivery
//! mode implements (IPP push, device pull, spool folder). Devices are in `domain::devices`.

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::devices::{Capabilities, ColorMode, Device, Sides};
use crate::domain::error::{CoreError, CoreResult};

/// One state model for every delivery mode (IPP `job-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum JobState {
    Pending,
    Held,
    Processing,
    Stopped,
    Canceled,
    Aborted,
    Completed,
}

impl JobState {
    /// Canceled, aborted and completed jobs never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Canceled | JobState::Aborted | JobState::Completed)
    }

    /// From an IPP `job-state` value (3 to 9).
    pub fn from_ipp(value: i32) -> Option<JobState> {
        Some(match value {
            3 => JobState::Pending,
            4 => JobState::Held,
            5 => JobState::Processing,
            6 => JobState::Stopped,
            7 => JobState::Canceled,
            8 => JobState::Aborted,
            9 => JobState::Completed,
            _ => return None,
        })
    }
}

/// What a printer reports about a job.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterJobStatus {
    pub state: JobState,
    /// IPP `job-state-reasons` keywords, e.g. `job-printing`, `job-completed-successfully`.
    pub reasons: Vec<String>,
    /// For people, when the printer says something.
    pub message: Option<String>,
    pub pages_printed: Option<u32>,
}

/// How to print a document: checked against the capabilities before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTicket {
    /// Shown on the printer's job list; never personal data (the product name).
    pub job_name: String,
    pub copies: u32,
    pub sides: Sides,
    pub color_mode: ColorMode,
    /// A media keyword from the capabilities, or `None` for the printer's default.
    pub media: Option<String>,
    pub document_format: String,
}

/// Where a printer fetches a document itself (device pull).
#[derive(Debug, Clone, PartialEq)]
pub struct PullSource {
    /// The one-time URL.
    pub url: String,
    pub expires_at: SystemTime,
}

/// The document of a job: the bytes for push, or where to fetch them for pull.
#[derive(Debug, Clone)]
pub enum JobDocument {
    Bytes(Bytes),
    Pull(PullSource),
}

/// The printer's handle of a submitted job (an IPP job-id, a spool file name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterJobRef(pub String);

/// Why a printer did not take a job. Decided where the failure is detected (the delivery mode
/// knows a pin mismatch from a refused format) and carried to the job as its reason, never
/// guessed back from the error's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The printer cannot be reached, or failed the request itself.
    Unreachable,
    /// The printer does not take the document's format.
    DocumentFormat,
    /// A pulling printer could not fetch the document from its link.
    DocumentAccess,
    /// The printer's TLS certificate is not the pinned one.
    CertificateMismatch,
    /// Anything else: a setting the printer refuses, a device set up wrong, an answer that is
    /// not IPP.
    Other,
}

impl Refusal {
    /// The job's reason: an IPP `job-state-reasons` keyword where IPP has one, otherwise a
    /// lowercase hyphenated keyword of our own, as print.proto allows.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Unreachable => "printer-unreachable",
            Refusal::DocumentFormat => "document-format-not-supported",
            Refusal::DocumentAccess => "document-access-error",
            Refusal::CertificateMismatch => "printer-certificate-mismatch",
            Refusal::Other => "aborted-by-system",
        }
    }
}

/// A printer's refusal of a job: the error the caller sees, and why, for the job's reasons.
#[derive(Debug)]
pub struct Refused {
    pub why: Refusal,
    pub error: CoreError,
}

impl Refused {
    pub fn new(why: Refusal, error: CoreError) -> Self {
        Refused { why, error }
    }
}

/// A failure with no more specific reason (a device set up wrong, a bug).
impl From<CoreError> for Refused {
    fn from(error: CoreError) -> Self {
        Refused { why: Refusal::Other, error }
    }
}

impl From<Refused> for CoreError {
    fn from(refused: Refused) -> Self {
        refused.error
    }
}

/// A delivery mode. Each call may go over the network, so all are async; every failure becomes
/// a `CoreError` with a message a person can act on.
#[async_trait]
pub trait Printer: Send + Sync + 'static {
    /// What the device's printer can do (asked from the printer where the mode allows).
    async fn capabilities(&self, device: &Device) -> CoreResult<Capabilities>;
    /// Checks the ticket with the printer (IPP Validate-Job) and hands it the document; a
    /// refusal says why, for the job.
    async fn submit(
        &self,
        device: &Device,
        ticket: &JobTicket,
        document: JobDocument,
    ) -> Result<PrinterJobRef, Refused>;
    /// The job's current state as the printer sees it.
    async fn status(&self, device: &Device, job: &PrinterJobRef) -> CoreResult<PrinterJobStatus>;
    /// Asks the printer to cancel the job (IPP Cancel-Job); the state change follows in `status`.
    async fn cancel(&self, device: &Device, job: &PrinterJobRef) -> CoreResult<()>;
}
