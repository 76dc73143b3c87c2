//! Printing: the devices people print on, what their printers can do, jobs with one state model
//! for every delivery mode, and `Printer`, the narrow trait each delivery mode implements (IPP
//! push, device pull, spool folder).

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::error::{CoreError, CoreResult};
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
    /// When the device was registered and last changed; set by the registry.
    pub registered_at: Option<SystemTime>,
    pub updated_at: Option<SystemTime>,
}

/// The longest printer URI accepted.
const MAX_URI_CHARS: usize = 1024;

impl Device {
    /// The rules every registered device keeps (the contract's `Device`): checked once, for
    /// DeviceService and the devices file alike. The error names the field.
    pub fn check(&self) -> CoreResult<()> {
        let invalid = |message: String| Err(CoreError::InvalidArgument(message));
        let chars = |s: &str| s.chars().count();
        if self.display_name.trim().is_empty() || chars(&self.display_name) > 100 {
            return invalid("display_name must be 1 to 100 characters".into());
        }
        if chars(&self.model) > 100 {
            return invalid("model must be at most 100 characters".into());
        }
        if chars(&self.location) > 200 {
            return invalid("location must be at most 200 characters".into());
        }
        match (self.delivery, &self.printer_uri) {
            (DeliveryMode::IppPush, None) => {
                return invalid("an IPP push device needs printer_uri, e.g. ipp://printer:631/ipp/print".into());
            }
            (DeliveryMode::SpoolFolder, Some(_)) => {
                return invalid("printer_uri must be empty for a spool folder device".into());
            }
            _ => {}
        }
        if let Some(uri) = &self.printer_uri {
            check_printer_uri(uri)?;
        }
        if self.pinned_certificate_sha256.is_some()
            && !self.printer_uri.as_ref().is_some_and(|u| u.starts_with("ipps://"))
        {
            return invalid("pinned_certificate_sha256 is only for an ipps:// printer_uri".into());
        }
        if let Some(capabilities) = &self.capabilities {
            capabilities.check()?;
        }
        Ok(())
    }
}

/// `ipp://host:port/path` or `ipps://host:port/path`, always with the port (ipps would otherwise
/// silently mean 443 to some clients), without user info, query or fragment.
pub fn check_printer_uri(uri: &str) -> CoreResult<()> {
    let bad = || {
        CoreError::InvalidArgument(format!(
            "printer_uri \"{}\" must look like ipp://host:port/path or ipps://host:port/path, with the port and \
             without user info, query or fragment (at most {MAX_URI_CHARS} characters)",
            uri.chars().take(80).collect::<String>()
        ))
    };
    if uri.chars().count() > MAX_URI_CHARS || uri.contains(['?', '#']) {
        return Err(bad());
    }
    let rest = uri.strip_prefix("ipp://").or_else(|| uri.strip_prefix("ipps://")).ok_or_else(bad)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(bad());
    }
    let port = authority.rsplit_once(':').map(|(_, p)| p).ok_or_else(bad)?;
    port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    Ok(())
}

/// A certificate pin as the contract writes it: 64 lowercase hex digits.
pub fn parse_pin(raw: &str) -> CoreResult<[u8; 32]> {
    let well_formed = raw.len() == 64 && raw.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    well_formed.then(|| hex::decode(raw).ok().and_then(|b| <[u8; 32]>::try_from(b).ok())).flatten().ok_or_else(|| {
        CoreError::InvalidArgument(
            "pinned_certificate_sha256 must be 64 lowercase hex digits (the SHA-256 of the certificate's DER), e.g. \
             from: openssl x509 -in cert.pem -outform der | sha256sum"
                .into(),
        )
    })
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
    /// Used when a job names none; `None`: one-sided, and the first colour mode.
    pub default_sides: Option<Sides>,
    pub default_color: Option<ColorMode>,
}

impl Capabilities {
    /// Described capabilities make sense: at least one copy, defaults among the supported
    /// values, and PDF among the formats (print files are PDF).
    pub fn check(&self) -> CoreResult<()> {
        let invalid = |message: &str| Err(CoreError::InvalidArgument(format!("capabilities: {message}")));
        if self.copies_max < 1 {
            return invalid("copies_max must be at least 1");
        }
        if let Some(media) = &self.default_media
            && !self.media.iter().any(|m| &m.keyword == media)
        {
            return invalid("media_default must be one of media_supported");
        }
        if self.default_sides.is_some_and(|s| !self.sides.contains(&s)) {
            return invalid("sides_default must be one of sides_supported");
        }
        if self.default_color.is_some_and(|c| !self.color_modes.contains(&c)) {
            return invalid("color_mode_default must be one of color_modes_supported");
        }
        if !self.document_formats.iter().any(|f| f == "application/pdf") {
            return invalid("document_formats_supported must contain application/pdf");
        }
        Ok(())
    }

    /// The sides a job gets when it names none.
    pub fn sides_default(&self) -> Sides {
        self.default_sides.unwrap_or(Sides::OneSided)
    }

    /// The colour mode a job gets when it names none.
    pub fn color_default(&self) -> ColorMode {
        self.default_color.or(self.color_modes.first().copied()).unwrap_or(ColorMode::Color)
    }
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
    /// How many devices are registered.
    async fn device_count(&self) -> CoreResult<u64>;
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
