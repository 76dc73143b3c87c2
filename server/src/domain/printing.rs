//! Printing: the devices people print on, what their printers can do, jobs with one state model
//! for every delivery mode, and `Printer`, the narrow trait each delivery mode implements (IPP
//! push, device pull, spool folder).

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::error::CoreResult;
use crate::domain::session::DeviceId;

/// How a device's printer gets its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryMode {
    /// The core sends the PDF to the printer over IPP/IPPS (Validate-Job, Print-Job).
    IppPush,
    /// The printer fetches the PDF from a one-time URL (Xerox EIP print-from-URL, IPP Print-URI).
    DevicePull,
    /// The PDF is written to a folder; the embedded default, so the flow works with no printer.
    SpoolFolder,
}

/// A registered device (the MFD the weblet runs on). Holds no personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub display_name: String,
    /// The printer model, e.g. "Xerox AltaLink C8170"; usage events name it.
    pub model: String,
    pub delivery: DeliveryMode,
    /// `ipp://host:port/path` or `ipps://host:port/path` (always with an explicit port).
    /// For device pull with IPP Print-URI, the printer to send Print-URI to.
    pub printer_uri: Option<String>,
    /// SHA-256 of the printer's TLS certificate (DER), pinned for ipps.
    pub pinned_certificate_sha256: Option<[u8; 32]>,
    pub location: String,
    /// What the printer can do, when it cannot be asked (pull and spool devices).
    pub capabilities: Option<Capabilities>,
}

/// Which sides of the sheet are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sides {
    OneSided,
    TwoSidedLongEdge,
    TwoSidedShortEdge,
}

impl Sides {
    /// The IPP keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Sides::OneSided => "one-sided",
            Sides::TwoSidedLongEdge => "two-sided-long-edge",
            Sides::TwoSidedShortEdge => "two-sided-short-edge",
        }
    }
}

/// Colour or black and white.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColorMode {
    Color,
    Monochrome,
}

impl ColorMode {
    /// The IPP `print-color-mode` keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            ColorMode::Color => "color",
            ColorMode::Monochrome => "monochrome",
        }
    }
}

/// A paper size the printer has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// PWG 5101.1 self-describing name, e.g. `iso_a4_210x297mm`.
    pub keyword: String,
    pub display_name: String,
    pub width_mm: f64,
    pub height_mm: f64,
}

/// What a printer can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    pub media: Vec<Media>,
    pub default_media: Option<String>,
    pub sides: Vec<Sides>,
    pub color_modes: Vec<ColorMode>,
    /// Largest `copies` value accepted.
    pub copies_max: u32,
    /// MIME types the printer accepts.
    pub document_formats: Vec<String>,
    /// Whether the printer takes jobs now, and if not, why (IPP `printer-state-reasons`).
    pub accepting_jobs: bool,
    pub state_reasons: Vec<String>,
}

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

/// Where devices are registered (the persistent store). Operators manage it.
#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    async fn get(&self, id: &DeviceId) -> CoreResult<Option<Device>>;
    /// Devices ordered by id, `limit` of them after `after` (exclusive).
    async fn list(&self, after: Option<&DeviceId>, limit: u32) -> CoreResult<Vec<Device>>;
    /// Adds a device; `AlreadyExists` when the id is taken.
    async fn insert(&self, device: &Device) -> CoreResult<()>;
    /// Adds or replaces a device (configuration files at start-up).
    async fn upsert(&self, device: &Device) -> CoreResult<()>;
    /// Replaces an existing device; `NotFound` when there is none.
    async fn update(&self, device: &Device) -> CoreResult<()>;
    /// Removes a device; false when there was none.
    async fn delete(&self, id: &DeviceId) -> CoreResult<bool>;
}

/// A delivery mode. Each call may go over the network, so all are async; every failure becomes
/// a `CoreError` with a message a person can act on.
#[async_trait]
pub trait Printer: Send + Sync + 'static {
    /// What the device's printer can do (asked from the printer where the mode allows).
    async fn capabilities(&self, device: &Device) -> CoreResult<Capabilities>;
    /// Checks the ticket with the printer (IPP Validate-Job) and hands it the document.
    async fn submit(&self, device: &Device, ticket: &JobTicket, document: JobDocument) -> CoreResult<PrinterJobRef>;
    /// The job's current state as the printer sees it.
    async fn status(&self, device: &Device, job: &PrinterJobRef) -> CoreResult<PrinterJobStatus>;
    /// Asks the printer to cancel the job (IPP Cancel-Job); the state change follows in `status`.
    async fn cancel(&self, device: &Device, job: &PrinterJobRef) -> CoreResult<()>;
}
