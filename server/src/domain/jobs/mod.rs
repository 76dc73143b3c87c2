//! Print jobs: a finalized draft sent to the session's device. `Jobs` checks the request against
//! what the printer can do, hands the document to the device's delivery mode, follows the job
//! through one state model (streamed to watchers), and when the job ends deletes its print-ready
//! file and pull link, as the security guide promises. A job belongs to its session only.
//!
//! One job per file: `lifecycle` (submit, cancel, reported and polled states, the end of a job),
//! `runner` (following a job at its printer, with a deadline), `watch` (the watcher hub and
//! WatchJob streams), `pull` (one-time pull links), `recovery` (jobs a restart interrupted) and
//! `ticket` (a request checked against the printer's capabilities; `request_id` retries) and
//! `lease` (one instance follows each running job; another takes over when it dies).

mod lease;
mod lifecycle;
mod plan;
mod pull;
mod recovery;
mod runner;
#[cfg(test)]
mod tests;
mod ticket;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::domain::customization::Customization;
use crate::domain::devices::{
    Capabilities, ColorMode, DeliveryMode, Device, DeviceStore, Media, Sides, default_capabilities,
};
use crate::domain::ephemeral::EphemeralStore;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::events::EventBus;
use crate::domain::ids::{DeviceId, ProductId};
use crate::domain::imposition::{Imposer, Layout, SheetPolicy};
use crate::domain::printing::{JobState, Printer};
use crate::domain::records::{check_id, decode_record, from_ms};
use crate::domain::session::{Session, SessionManager};
use crate::domain::usage::{UsageEvent, UsageKind, UsageSink};

pub use plan::{JobPlan, PlanRequest};
pub use pull::{PullDownload, PullLinks, PullTicket};
pub use recovery::{RunningJob, RunningJobs, recover_abandoned, recover_interrupted};
use watch::Hub;
pub use watch::Watch;

/// Unfinished jobs one session may have (the contract promises at least 5).
pub const MAX_UNFINISHED_JOBS: usize = 8;
/// WatchJob streams one session may have open at once (the contract promises at least 4).
pub const MAX_WATCHES_PER_SESSION: usize = 4;

/// What the caller wants printed and how.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub document: DocumentRef,
    /// 0 means the print file's suggested number of copies.
    pub copies: u32,
    pub sides: Option<Sides>,
    pub color_mode: Option<ColorMode>,
    pub media: Option<String>,
    /// Scale a product down to the sheet when it is larger than every sheet.
    pub fit: bool,
    /// Retrying with the same id returns the first job instead of printing twice.
    pub request_id: Option<String>,
}

/// Which finalized document to print.
#[derive(Debug, Clone)]
pub enum DocumentRef {
    File(String),
    /// Finalized first if it is not yet.
    Draft(String),
}

/// A job as callers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub state: JobState,
    pub reasons: Vec<String>,
    pub message: String,
    pub file_id: String,
    /// Empty for an uploaded file.
    pub draft_id: String,
    /// `None` for an uploaded file.
    pub product_id: Option<ProductId>,
    pub device_id: DeviceId,
    pub delivery: DeliveryMode,
    pub copies: u32,
    pub sides: Sides,
    pub color_mode: ColorMode,
    pub media: String,
    pub page_count: u32,
    pub pages_printed: Option<u32>,
    pub device_job_id: String,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub ended_ms: Option<u64>,
    /// The name of the job's pull link in the store, while it exists.
    pub(super) pull_link: Option<String>,
    /// When the pull link stops working.
    pub(super) pull_expires_ms: Option<u64>,
    /// The printer's handle, once submitted.
    pub(super) printer_ref: Option<String>,
    // Stored fields are only ever appended (`records::decode_record`); these came with imposition.
    /// How the pieces are laid out on the sheets.
    pub layout: Layout,
    /// SHA-256 (hex) of the document the printer gets.
    pub document_sha256: String,
}

impl Job {
    pub fn created_at(&self) -> SystemTime {
        from_ms(self.created_ms)
    }
    pub fn updated_at(&self) -> SystemTime {
        from_ms(self.updated_ms)
    }
    pub fn ended_at(&self) -> Option<SystemTime> {
        self.ended_ms.map(from_ms)
    }

    /// Reads a stored job, also one an older or newer core stored (`records::decode_record`);
    /// one stored before jobs had layouts printed its file as it is.
    pub(super) fn read(bytes: &[u8]) -> Result<Job, postcard::Error> {
        let mut job: Job = decode_record(bytes)?;
        if job.layout.sheet.keyword.is_empty() {
            let sheet = default_capabilities().media.into_iter().find(|m| m.keyword == job.media);
            let sheet = sheet.unwrap_or_else(|| Media {
                keyword: job.media.clone(),
                display_name: job.media.clone(),
                width_mm: 0.0,
                height_mm: 0.0,
            });
            job.layout = Layout::as_is(sheet, None, job.page_count, job.copies, job.sides);
        }
        Ok(job)
    }

    /// Pages (impressions, one per printed side of a sheet) the printer prints for the whole
    /// job, what `pages_printed` counts up to: the sides of the imposed sheets, or the file's
    /// pages times its copies when it prints as it is.
    pub fn pages_total(&self) -> u32 {
        if self.layout.imposed {
            let sides = if self.layout.sides == Sides::OneSided { 1 } else { 2 };
            self.layout.sheet_count.saturating_mul(sides)
        } else {
            self.page_count.saturating_mul(self.copies)
        }
    }
}

/// A one-time pull link handed to the device.
#[derive(Debug, Clone)]
pub struct PullLink {
    pub url: String,
    pub expires_at: SystemTime,
}

/// How jobs are followed.
#[derive(Debug, Clone, Copy)]
pub struct JobPolicy {
    /// Between two status questions to the printer.
    pub poll_every: Duration,
    /// A job not ended by then is canceled at the printer and reported aborted.
    pub deadline: Duration,
    /// How long a pull link works.
    pub pull_link_ttl: Duration,
    /// How long a job's follower may go without renewing its lease before another instance
    /// takes the job over.
    pub lease: Duration,
}

/// The delivery modes, one printer implementation each.
#[derive(Clone)]
pub struct Printers {
    pub ipp: Arc<dyn Printer>,
    pub spool: Arc<dyn Printer>,
}

/// Devices that are not registered, when the server allows them.
#[derive(Debug, Clone)]
pub enum UnregisteredDevices {
    Refuse,
    /// Print on this device's settings instead.
    Use(Box<Device>),
}

/// Everything the print service works with, wired once by the composition root.
pub struct JobsDeps {
    pub sessions: Arc<SessionManager>,
    pub customization: Arc<Customization>,
    /// Where devices are registered.
    pub devices: Arc<dyn DeviceStore>,
    pub unregistered: UnregisteredDevices,
    pub printers: Printers,
    /// Pull links' index (their documents live in the sessions' scopes).
    pub store: Arc<dyn EphemeralStore>,
    /// Where job changes travel to watchers on every instance.
    pub bus: Arc<dyn EventBus>,
    /// This instance's name in job leases (unique among the instances sharing the store).
    pub instance: String,
    pub running: Arc<dyn RunningJobs>,
    pub usage: Arc<dyn UsageSink>,
    pub policy: JobPolicy,
    /// Lays products out on the printer's sheets.
    pub imposer: Arc<dyn Imposer>,
    /// Which sheets imposition prefers, and the margin it keeps.
    pub sheets: SheetPolicy,
    /// `{base}/{token}.pdf` is a pull link; the base is where `PullServer` is reachable.
    pub pull_base_url: String,
}

/// The print service.
pub struct Jobs {
    deps: JobsDeps,
    hub: Hub,
    /// Open WatchJob streams per session scope.
    watches: Arc<Mutex<HashMap<String, usize>>>,
    /// The jobs this instance follows now (a lease of its own that lapsed, say while the store
    /// could not be reached, is taken again, not followed twice).
    following: lease::Following,
}

impl Jobs {
    pub fn new(mut deps: JobsDeps) -> Self {
        deps.pull_base_url = deps.pull_base_url.trim_end_matches('/').to_owned();
        let hub = Hub::new(deps.bus.clone());
        Jobs { deps, hub, watches: Arc::default(), following: lease::Following::default() }
    }

    /// Whether a session may start on this device (NOT_FOUND when the server requires registered
    /// devices and none has this id); its model as registered (empty when unknown).
    pub async fn admit_device(&self, id: &DeviceId) -> CoreResult<String> {
        match (self.deps.devices.get(id).await?, &self.deps.unregistered) {
            (Some(device), _) => Ok(device.model),
            (None, UnregisteredDevices::Use(template)) => Ok(template.model.clone()),
            (None, UnregisteredDevices::Refuse) => Err(CoreError::NotFound(format!(
                "device \"{}\" is not registered, and this server requires registered devices; ask an operator to \
                 register it",
                id.as_str()
            ))),
        }
    }

    /// The session's device, as registered (or the stand-in for unregistered devices).
    pub async fn device(&self, session: &Session) -> CoreResult<Device> {
        if let Some(device) = self.deps.devices.get(session.device_id()).await? {
            return Ok(device);
        }
        match &self.deps.unregistered {
            UnregisteredDevices::Use(template) => {
                Ok(Device { id: session.device_id().clone(), ..(**template).clone() })
            }
            // It was registered when the session started (StartSession checks).
            UnregisteredDevices::Refuse => Err(CoreError::FailedPrecondition(format!(
                "device \"{}\" is no longer registered; ask an operator to register it again",
                session.device_id().as_str()
            ))),
        }
    }

    pub(super) fn printer(&self, device: &Device) -> Option<&Arc<dyn Printer>> {
        match device.delivery {
            DeliveryMode::IppPush => Some(&self.deps.printers.ipp),
            DeliveryMode::SpoolFolder => Some(&self.deps.printers.spool),
            // Pull through IPP Print-URI when a printer is named; otherwise the weblet reports.
            DeliveryMode::DevicePull => device.printer_uri.as_ref().map(|_| &self.deps.printers.ipp),
        }
    }

    /// What the session's printer can do.
    pub async fn capabilities(&self, session: &Session) -> CoreResult<(Device, Capabilities)> {
        let device = self.device(session).await?;
        let capabilities = match (&device.capabilities, device.delivery) {
            (_, DeliveryMode::IppPush) => self.deps.printers.ipp.capabilities(&device).await?,
            (Some(described), _) => described.clone(),
            (None, _) => default_capabilities(),
        };
        Ok((device, capabilities))
    }
    /// The session's jobs that have not ended (ended ones are dropped from the list).
    pub(super) async fn unfinished_jobs(&self, session: &Session) -> CoreResult<Vec<String>> {
        let Some(bytes) = self.deps.sessions.data(session).get(JOB_IDS_KEY).await? else { return Ok(Vec::new()) };
        let ids: Vec<String> = postcard::from_bytes(&bytes).map_err(|e| CoreError::internal("bad job list", e))?;
        let mut unfinished = Vec::with_capacity(ids.len());
        for id in ids {
            if self.load(session, &id).await.is_ok_and(|job| !job.state.is_terminal()) {
                unfinished.push(id);
            }
        }
        Ok(unfinished)
    }

    pub(super) async fn save_job_ids(&self, session: &Session, ids: &[String]) -> CoreResult<()> {
        let bytes = postcard::to_allocvec(ids).map_err(|e| CoreError::internal("cannot store the job list", e))?;
        self.deps.sessions.data(session).put(JOB_IDS_KEY, &bytes).await
    }

    pub(super) async fn load(&self, session: &Session, job_id: &str) -> CoreResult<Job> {
        let not_found = || CoreError::NotFound(format!("job \"{job_id}\" does not exist in this session"));
        if !check_id("job_id", job_id)? {
            return Err(not_found());
        }
        let bytes = self.deps.sessions.data(session).get(&job_key(job_id)).await?.ok_or_else(not_found)?;
        Job::read(&bytes).map_err(|e| CoreError::internal("a stored job is unreadable", e))
    }

    pub(super) async fn save(&self, session: &Session, job: &Job) -> CoreResult<()> {
        let bytes = postcard::to_allocvec(job).map_err(|e| CoreError::internal("cannot store the job", e))?;
        self.deps.sessions.data(session).put(&job_key(&job.id), &bytes).await
    }
}

pub(super) fn job_event(kind: UsageKind, job: &Job, device: &Device) -> UsageEvent {
    let mut event = UsageEvent::new(kind);
    event.product = job.product_id.clone();
    event.device_model = Some(device.model.clone()).filter(|m| !m.is_empty());
    event
}

pub(super) fn describe(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "Waiting for the printer",
        JobState::Held => "Held at the printer",
        JobState::Processing => "Printing",
        JobState::Stopped => "The printer stopped; it may need attention",
        JobState::Canceled => "Canceled",
        JobState::Aborted => "The job could not be printed",
        JobState::Completed => "Printed",
    }
}

/// The ids of the session's jobs that may not have ended yet.
const JOB_IDS_KEY: &str = "job-ids";

pub(super) fn job_key(id: &str) -> String {
    format!("job/{id}")
}
