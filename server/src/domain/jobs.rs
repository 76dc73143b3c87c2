//! Print jobs: a finalized draft sent to the session's device. `Jobs` checks the request against
//! what the printer can do, hands the document to the device's delivery mode, follows the job
//! through one state model (streamed to watchers), and when the job ends deletes its print-ready
//! file and pull link, as the security guide promises. A job belongs to its session only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::domain::catalog::{ProductId, Shopper};
use crate::domain::crypto::{Key256, random_bytes};
use crate::domain::customization::Customization;
use crate::domain::ephemeral::EphemeralStore;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::{
    Capabilities, ColorMode, DeliveryMode, Device, DeviceStore, JobDocument, JobState, JobTicket, Media, Printer,
    PrinterJobRef, PrinterJobStatus, PullSource, Sides,
};
use crate::domain::records::{check_id, from_ms, new_id, now_ms};
use crate::domain::session::{Session, SessionManager};
use crate::domain::usage::{JobOutcome, UsageEvent, UsageKind, UsageSink};

/// Scope of one-time pull links, each named by the SHA-256 of its token.
const PULL_SCOPE: &str = "pull-links";

/// What the caller wants printed and how.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub document: DocumentRef,
    /// 0 means the print file's suggested number of copies.
    pub copies: u32,
    pub sides: Option<Sides>,
    pub color_mode: Option<ColorMode>,
    pub media: Option<String>,
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
    pub draft_id: String,
    pub product_id: String,
    pub device_id: String,
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
    pull_link: Option<String>,
    /// The printer's handle, once submitted.
    printer_ref: Option<String>,
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

/// A job in flight, as remembered across restarts (no personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningJob {
    pub job_id: String,
    pub product_id: String,
    pub device_model: String,
    pub started_ms: u64,
}

/// Where jobs in flight are remembered, so a restart can report those it interrupted.
#[async_trait::async_trait]
pub trait RunningJobs: Send + Sync + 'static {
    async fn started(&self, job: &RunningJob) -> CoreResult<()>;
    async fn ended(&self, job_id: &str) -> CoreResult<()>;
    /// Removes and returns every remembered job.
    async fn drain(&self) -> CoreResult<Vec<RunningJob>>;
}

/// Reports the jobs a previous run left unfinished as aborted (`server-restarted`); their files
/// went with the ephemeral store. Returns how many there were.
pub async fn recover_interrupted(running: &dyn RunningJobs, usage: &dyn UsageSink) -> CoreResult<usize> {
    let interrupted = running.drain().await?;
    for job in &interrupted {
        tracing::warn!(job_id = %job.job_id, "a job was still running when the server stopped; it is reported aborted");
        let mut event = UsageEvent::new(UsageKind::JobEnded);
        event.product = ProductId::parse(&job.product_id).ok();
        event.device_model = Some(job.device_model.clone()).filter(|m| !m.is_empty());
        event.outcome = Some(JobOutcome::Aborted);
        event.duration = Some(Duration::from_millis(now_ms().saturating_sub(job.started_ms)));
        usage.record(event).await;
    }
    Ok(interrupted.len())
}

/// The print service.
pub struct Jobs {
    sessions: Arc<SessionManager>,
    customization: Arc<Customization>,
    devices: Arc<dyn DeviceStore>,
    unregistered: UnregisteredDevices,
    printers: Printers,
    store: Arc<dyn EphemeralStore>,
    running: Arc<dyn RunningJobs>,
    usage: Arc<dyn UsageSink>,
    hub: Hub,
    policy: JobPolicy,
    /// `{base}/{token}` is a pull link; the base is where `PullServer` is reachable.
    pull_base_url: String,
}

/// State changes of running jobs, for watchers.
#[derive(Default)]
struct Hub(Mutex<HashMap<String, broadcast::Sender<Job>>>);

impl Hub {
    fn sender(&self, id: &str) -> broadcast::Sender<Job> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_owned()).or_insert_with(|| broadcast::channel(64).0).clone()
    }

    fn publish(&self, job: &Job) {
        let sender = self.sender(&job.id);
        let _ = sender.send(job.clone());
        if job.state.is_terminal() {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.id);
        }
    }
}

/// Sensible defaults for printers that cannot be asked and were not described.
pub fn default_capabilities() -> Capabilities {
    let media = |keyword: &str, name: &str, w: f64, h: f64| Media {
        keyword: keyword.into(),
        display_name: name.into(),
        width_mm: w,
        height_mm: h,
    };
    Capabilities {
        media: vec![
            media("iso_a4_210x297mm", "A4", 210.0, 297.0),
            media("iso_a3_297x420mm", "A3", 297.0, 420.0),
            media("na_letter_8.5x11in", "US Letter", 215.9, 279.4),
        ],
        default_media: Some("iso_a4_210x297mm".into()),
        sides: vec![Sides::OneSided, Sides::TwoSidedLongEdge, Sides::TwoSidedShortEdge],
        color_modes: vec![ColorMode::Color, ColorMode::Monochrome],
        copies_max: 999,
        document_formats: vec!["application/pdf".into()],
        accepting_jobs: true,
        state_reasons: vec!["none".into()],
    }
}

impl Jobs {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sessions: Arc<SessionManager>,
        customization: Arc<Customization>,
        devices: Arc<dyn DeviceStore>,
        unregistered: UnregisteredDevices,
        printers: Printers,
        store: Arc<dyn EphemeralStore>,
        running: Arc<dyn RunningJobs>,
        usage: Arc<dyn UsageSink>,
        policy: JobPolicy,
        pull_base_url: String,
    ) -> Self {
        Jobs {
            sessions,
            customization,
            devices,
            unregistered,
            printers,
            store,
            running,
            usage,
            hub: Hub::default(),
            policy,
            pull_base_url: pull_base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The session's device, as registered (or the stand-in for unregistered devices).
    pub async fn device(&self, session: &Session) -> CoreResult<Device> {
        if let Some(device) = self.devices.get(session.device_id()).await? {
            return Ok(device);
        }
        match &self.unregistered {
            UnregisteredDevices::Use(template) => {
                Ok(Device { id: session.device_id().clone(), ..(**template).clone() })
            }
            UnregisteredDevices::Refuse => Err(CoreError::NotFound(format!(
                "device \"{}\" is not registered, and this server requires registered devices; ask an operator to \
                 register it",
                session.device_id().as_str()
            ))),
        }
    }

    fn printer(&self, device: &Device) -> Option<&Arc<dyn Printer>> {
        match device.delivery {
            DeliveryMode::IppPush => Some(&self.printers.ipp),
            DeliveryMode::SpoolFolder => Some(&self.printers.spool),
            // Pull through IPP Print-URI when a printer is named; otherwise the weblet reports.
            DeliveryMode::DevicePull => device.printer_uri.as_ref().map(|_| &self.printers.ipp),
        }
    }

    /// What the session's printer can do.
    pub async fn capabilities(&self, session: &Session) -> CoreResult<(Device, Capabilities)> {
        let device = self.device(session).await?;
        let capabilities = match (&device.capabilities, device.delivery) {
            (_, DeliveryMode::IppPush) => self.printers.ipp.capabilities(&device).await?,
            (Some(described), _) => described.clone(),
            (None, _) => default_capabilities(),
        };
        Ok((device, capabilities))
    }

    /// Checks and submits a job; for pull devices, also returns the one-time link.
    pub async fn submit(
        self: &Arc<Self>,
        session: &Session,
        request: SubmitRequest,
    ) -> CoreResult<(Job, Option<PullLink>)> {
        if let Some(request_id) = &request.request_id {
            check_request_id(request_id)?;
            if let Some(existing) = self.sessions.data(session).get(&request_key(request_id)).await? {
                let job_id = String::from_utf8(existing).map_err(|e| CoreError::internal("bad job index", e))?;
                return Ok((self.load(session, &job_id).await?, None));
            }
        }
        let (device, capabilities) = self.capabilities(session).await?;
        let (file_id, meta) = match &request.document {
            DocumentRef::File(id) => (id.clone(), self.customization.print_file_meta(session, id).await?),
            DocumentRef::Draft(id) => {
                let (file, _) = self.customization.finalize(session, &Shopper::Anonymous, id).await?;
                let meta = self.customization.print_file_meta(session, &file.id).await?;
                (file.id, meta)
            }
        };
        let copies = if request.copies == 0 { meta.quantity.max(1) } else { request.copies };
        let ticket = JobTicket {
            job_name: format!("podconnect {}", meta.product_id),
            copies,
            sides: request.sides.unwrap_or(Sides::OneSided),
            color_mode: request.color_mode.unwrap_or(ColorMode::Color),
            media: request.media.clone().or(capabilities.default_media.clone()),
            document_format: "application/pdf".into(),
        };
        check_ticket(&ticket, &capabilities)?;

        let now = now_ms();
        let mut job = Job {
            id: new_id(),
            state: JobState::Pending,
            reasons: vec!["job-incoming".into()],
            message: "Sending the document to the printer".into(),
            file_id: file_id.clone(),
            draft_id: meta.draft_id.clone(),
            product_id: meta.product_id.clone(),
            device_id: device.id.as_str().to_owned(),
            delivery: device.delivery,
            copies,
            sides: ticket.sides,
            color_mode: ticket.color_mode,
            media: ticket.media.clone().unwrap_or_default(),
            page_count: meta.page_count,
            pages_printed: None,
            device_job_id: String::new(),
            created_ms: now,
            updated_ms: now,
            ended_ms: None,
            pull_link: None,
            printer_ref: None,
        };
        let pdf = self.customization.print_file_bytes(session, &file_id).await?;
        let mut link = None;
        let document = if device.delivery == DeliveryMode::DevicePull {
            let (name, pull) = self.create_pull_link(&pdf).await?;
            job.pull_link = Some(name);
            link = Some(pull.clone());
            JobDocument::Pull(PullSource { url: pull.url, expires_at: pull.expires_at })
        } else {
            JobDocument::Bytes(pdf)
        };
        self.save(session, &job).await?;
        if let Some(request_id) = &request.request_id {
            self.sessions.data(session).put(&request_key(request_id), job.id.as_bytes()).await?;
        }
        self.usage.record(job_event(UsageKind::JobSubmitted, &job, &device)).await;
        let remembered = RunningJob {
            job_id: job.id.clone(),
            product_id: job.product_id.clone(),
            device_model: device.model.clone(),
            started_ms: job.created_ms,
        };
        self.running.started(&remembered).await?;

        match self.printer(&device) {
            Some(printer) => match printer.submit(&device, &ticket, document).await {
                Ok(reference) => {
                    job.printer_ref = Some(reference.0.clone());
                    job.device_job_id = reference.0;
                    job.message = "The printer has the job".into();
                    job.updated_ms = now_ms();
                    self.save(session, &job).await?;
                    self.spawn_runner(session.clone(), device, printer.clone(), job.clone());
                }
                Err(err) => {
                    // The printer refused or cannot be reached: the job ends here, with the reason.
                    let reason = match &err {
                        CoreError::Unavailable(_) => "printer-unreachable",
                        CoreError::FailedPrecondition(_) => "document-format-not-supported",
                        _ => "job-aborted-by-system",
                    };
                    let message = err.to_string();
                    self.finish(session, &mut job, &device, JobState::Aborted, vec![reason.into()], message).await?;
                    return Err(err);
                }
            },
            // An EIP device pulls the link itself; its weblet reports the states.
            None => self.spawn_deadline(session.clone(), device, job.clone()),
        }
        self.hub.publish(&job);
        Ok((job, link))
    }

    pub async fn get(&self, session: &Session, job_id: &str) -> CoreResult<Job> {
        self.load(session, job_id).await
    }

    /// The job now, then every change until it ends. Subscribes before reading, so no change is
    /// missed between the two.
    pub async fn watch(&self, session: &Session, job_id: &str) -> CoreResult<(Job, Option<broadcast::Receiver<Job>>)> {
        check_id("job_id", job_id)?;
        let receiver = self.hub.sender(job_id).subscribe();
        let job = self.load(session, job_id).await?;
        Ok((job.clone(), (!job.state.is_terminal()).then_some(receiver)))
    }

    /// Cancels a job that has not ended.
    pub async fn cancel(&self, session: &Session, job_id: &str) -> CoreResult<Job> {
        let mut job = self.load(session, job_id).await?;
        if job.state.is_terminal() {
            return Err(CoreError::FailedPrecondition(format!("the job has already ended ({:?})", job.state)));
        }
        let device = self.device(session).await?;
        match (self.printer(&device), &job.printer_ref) {
            (Some(printer), Some(reference)) => {
                printer.cancel(&device, &PrinterJobRef(reference.clone())).await?;
                // The runner sees the printer's canceled state and ends the job; say it is on its way.
                job.reasons = vec!["processing-to-stop-point".into()];
                job.message = "Canceling".into();
                job.updated_ms = now_ms();
                self.save(session, &job).await?;
                self.hub.publish(&job);
            }
            _ => {
                let reasons = vec!["job-canceled-by-user".into()];
                self.finish(session, &mut job, &device, JobState::Canceled, reasons, "Canceled".into()).await?;
            }
        }
        Ok(job)
    }

    /// What the weblet relays from a printer that pulled its document.
    pub async fn report(
        &self,
        session: &Session,
        job_id: &str,
        status: PrinterJobStatus,
        device_job_id: Option<String>,
    ) -> CoreResult<Job> {
        let mut job = self.load(session, job_id).await?;
        if job.delivery != DeliveryMode::DevicePull {
            return Err(CoreError::FailedPrecondition(
                "only jobs a device pulls itself take reported states; this job's printer is followed by the server"
                    .into(),
            ));
        }
        if job.state.is_terminal() {
            return Err(CoreError::FailedPrecondition(format!("the job has already ended ({:?})", job.state)));
        }
        if let Some(id) = device_job_id.filter(|id| !id.is_empty()) {
            job.device_job_id = id;
        }
        job.pages_printed = status.pages_printed.or(job.pages_printed);
        let device = self.device(session).await?;
        self.apply(session, &mut job, &device, status).await?;
        Ok(job)
    }

    async fn apply(
        &self,
        session: &Session,
        job: &mut Job,
        device: &Device,
        status: PrinterJobStatus,
    ) -> CoreResult<()> {
        let message = status.message.clone().unwrap_or_else(|| describe(status.state).into());
        if status.state.is_terminal() {
            return self.finish(session, job, device, status.state, status.reasons, message).await;
        }
        if job.state == status.state && job.reasons == status.reasons {
            return Ok(());
        }
        job.state = status.state;
        job.reasons = status.reasons;
        job.message = message;
        job.pages_printed = status.pages_printed.or(job.pages_printed);
        job.updated_ms = now_ms();
        self.save(session, job).await?;
        self.hub.publish(job);
        Ok(())
    }

    /// Ends a job: records it, deletes its print-ready file and pull link, tells watchers.
    async fn finish(
        &self,
        session: &Session,
        job: &mut Job,
        device: &Device,
        state: JobState,
        reasons: Vec<String>,
        message: String,
    ) -> CoreResult<()> {
        let now = now_ms();
        job.state = state;
        job.reasons = reasons;
        job.message = message;
        job.updated_ms = now;
        job.ended_ms = Some(now);
        if let Some(link) = job.pull_link.take() {
            self.store.delete(PULL_SCOPE, &link).await?;
        }
        self.running.ended(&job.id).await?;
        self.customization.release_print_file(session, &job.file_id).await?;
        if self.sessions.is_open(session).await? {
            self.save(session, job).await?;
        }
        let mut event = job_event(UsageKind::JobEnded, job, device);
        event.outcome = Some(match state {
            JobState::Completed => JobOutcome::Completed,
            JobState::Canceled => JobOutcome::Canceled,
            _ => JobOutcome::Aborted,
        });
        event.pages = job.pages_printed.or(Some(job.page_count * job.copies));
        event.duration = Some(Duration::from_millis(now.saturating_sub(job.created_ms)));
        self.usage.record(event).await;
        self.hub.publish(job);
        Ok(())
    }

    /// Follows a job at its printer until it ends or the deadline passes.
    fn spawn_runner(self: &Arc<Self>, session: Session, device: Device, printer: Arc<dyn Printer>, job: Job) {
        let this = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + this.policy.deadline;
            let reference = PrinterJobRef(job.printer_ref.clone().unwrap_or_default());
            let mut job = job;
            let mut failures = 0u32;
            loop {
                if tokio::time::Instant::now() >= deadline {
                    let _ = printer.cancel(&device, &reference).await;
                    let reasons = vec!["job-timeout".into()];
                    let message = "The printer did not finish the job in time".to_string();
                    let _ = this.finish(&session, &mut job, &device, JobState::Aborted, reasons, message).await;
                    return;
                }
                match printer.status(&device, &reference).await {
                    Ok(status) => {
                        failures = 0;
                        let terminal = status.state.is_terminal();
                        if let Err(err) = this.apply(&session, &mut job, &device, status).await {
                            tracing::warn!(error = %err, "could not record a job state");
                        }
                        if terminal {
                            return;
                        }
                    }
                    Err(err) => {
                        failures += 1;
                        tracing::warn!(error = %err, failures, "cannot ask the printer about a job");
                        if failures >= 5 {
                            let reasons = vec!["printer-unreachable".into()];
                            let _ = this
                                .finish(&session, &mut job, &device, JobState::Aborted, reasons, err.to_string())
                                .await;
                            return;
                        }
                    }
                }
                if !matches!(this.sessions.is_open(&session).await, Ok(true)) {
                    // The app closed: its data is gone; let the printer finish on its own.
                    this.hub.publish(&Job { state: JobState::Aborted, ..job.clone() });
                    return;
                }
                tokio::time::sleep(this.policy.poll_every).await;
            }
        });
    }

    /// A pulled job the device never reports on ends at the deadline.
    fn spawn_deadline(self: &Arc<Self>, session: Session, device: Device, job: Job) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.policy.deadline).await;
            let Ok(mut job) = this.load(&session, &job.id).await else { return };
            if !job.state.is_terminal() {
                let reasons = vec!["job-timeout".into()];
                let message = "The printer never reported that it printed the job".to_string();
                let _ = this.finish(&session, &mut job, &device, JobState::Aborted, reasons, message).await;
            }
        });
    }

    /// Seals the PDF under a key derived from a fresh token; only the link's holder can open it,
    /// and the store keeps just the token's hash.
    async fn create_pull_link(&self, pdf: &Bytes) -> CoreResult<(String, PullLink)> {
        let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let name = hex::encode(Sha256::digest(token.as_bytes()));
        let sealed = pull_key(&token).seal(name.as_bytes(), pdf);
        self.store.put(PULL_SCOPE, &name, sealed, self.policy.pull_link_ttl).await?;
        let link = PullLink {
            url: format!("{}/{token}.pdf", self.pull_base_url),
            expires_at: SystemTime::now() + self.policy.pull_link_ttl,
        };
        Ok((name, link))
    }

    async fn load(&self, session: &Session, job_id: &str) -> CoreResult<Job> {
        check_id("job_id", job_id)?;
        let bytes = self
            .sessions
            .data(session)
            .get(&job_key(job_id))
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("job \"{job_id}\" does not exist in this session")))?;
        postcard::from_bytes(&bytes).map_err(|e| CoreError::internal("a stored job is unreadable", e))
    }

    async fn save(&self, session: &Session, job: &Job) -> CoreResult<()> {
        let bytes = postcard::to_allocvec(job).map_err(|e| CoreError::internal("cannot store the job", e))?;
        self.sessions.data(session).put(&job_key(&job.id), &bytes).await
    }
}

/// Hands out the document behind a one-time pull link: once, before it expires.
pub struct PullLinks {
    store: Arc<dyn EphemeralStore>,
}

impl PullLinks {
    pub fn new(store: Arc<dyn EphemeralStore>) -> Self {
        PullLinks { store }
    }

    /// The PDF for `token`, taken atomically: a second download, an expired link or a job that
    /// ended all get `None`.
    pub async fn take(&self, token: &str) -> CoreResult<Option<Bytes>> {
        if token.len() != 43 || URL_SAFE_NO_PAD.decode(token).is_err() {
            return Ok(None);
        }
        let name = hex::encode(Sha256::digest(token.as_bytes()));
        let Some(sealed) = self.store.take(PULL_SCOPE, &name).await? else { return Ok(None) };
        let pdf = pull_key(token)
            .open(name.as_bytes(), &sealed)
            .map_err(|e| CoreError::internal("a pull link's document is unreadable", e))?;
        Ok(Some(Bytes::from(pdf)))
    }
}

fn pull_key(token: &str) -> Key256 {
    let mut hasher = Sha256::new();
    hasher.update(b"podconnect/pull-link-key/v1/");
    hasher.update(token.as_bytes());
    Key256::from_bytes(hasher.finalize().into())
}

fn check_ticket(ticket: &JobTicket, capabilities: &Capabilities) -> CoreResult<()> {
    if !capabilities.accepting_jobs {
        return Err(CoreError::FailedPrecondition(format!(
            "the printer is not accepting jobs right now ({}); try again later or ask staff",
            capabilities.state_reasons.join(", ")
        )));
    }
    if !capabilities.document_formats.iter().any(|f| f == &ticket.document_format) {
        return Err(CoreError::FailedPrecondition("this printer does not accept PDF documents".into()));
    }
    if ticket.copies == 0 || ticket.copies > capabilities.copies_max {
        return Err(CoreError::InvalidArgument(format!(
            "copies must be between 1 and {} on this printer",
            capabilities.copies_max
        )));
    }
    if !capabilities.sides.contains(&ticket.sides) {
        return Err(CoreError::InvalidArgument(format!("this printer cannot print {}", ticket.sides.keyword())));
    }
    if !capabilities.color_modes.contains(&ticket.color_mode) {
        return Err(CoreError::InvalidArgument(format!(
            "this printer cannot print in {}",
            ticket.color_mode.keyword()
        )));
    }
    if let Some(media) = &ticket.media
        && !capabilities.media.is_empty()
        && !capabilities.media.iter().any(|m| &m.keyword == media)
    {
        let names: Vec<&str> = capabilities.media.iter().map(|m| m.keyword.as_str()).collect();
        return Err(CoreError::InvalidArgument(format!(
            "media \"{media}\" is not loaded in this printer; choose one of {}",
            names.join(", ")
        )));
    }
    Ok(())
}

fn job_event(kind: UsageKind, job: &Job, device: &Device) -> UsageEvent {
    let mut event = UsageEvent::new(kind);
    event.product = ProductId::parse(&job.product_id).ok();
    event.device_model = Some(device.model.clone()).filter(|m| !m.is_empty());
    event
}

fn describe(state: JobState) -> &'static str {
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

fn check_request_id(id: &str) -> CoreResult<()> {
    let ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidArgument("request_id must be a UUID (1 to 64 of A-Z a-z 0-9 -)".into()))
    }
}

fn job_key(id: &str) -> String {
    format!("job/{id}")
}

fn request_key(id: &str) -> String {
    format!("job-request/{id}")
}
