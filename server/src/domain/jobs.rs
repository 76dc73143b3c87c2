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
use crate::domain::session::{DeviceId, Session, SessionManager};
use crate::domain::usage::{JobOutcome, UsageEvent, UsageKind, UsageSink};

/// Scope of one-time pull links, each named by the SHA-256 of its token and pointing to the
/// session that holds the document; the entry expires with the link.
const PULL_SCOPE: &str = "pull-links";
/// A link's document lives this much longer than the link, in the session's scope, so that when
/// the link expires the job can still tell whether it was fetched (gone) or not (still there).
const PULL_DOCUMENT_GRACE: Duration = Duration::from_secs(60);
/// Unfinished jobs one session may have (the contract promises at least 5).
pub const MAX_UNFINISHED_JOBS: usize = 8;
/// WatchJob streams one session may have open at once (the contract promises at least 4).
pub const MAX_WATCHES_PER_SESSION: usize = 4;
/// An open WatchJob stream counts as activity of its session at least this often (and notices
/// within this time that the session has ended).
const WATCH_KEEP_ALIVE: Duration = Duration::from_secs(5);

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
    /// When the pull link stops working.
    pull_expires_ms: Option<u64>,
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
    /// Open WatchJob streams per session scope.
    watches: Arc<Mutex<HashMap<String, usize>>>,
    policy: JobPolicy,
    /// `{base}/{token}` is a pull link; the base is where `PullServer` is reachable.
    pull_base_url: String,
}

/// State changes of running jobs, for watchers.
#[derive(Default)]
struct Hub(Mutex<HashMap<String, broadcast::Sender<Job>>>);

impl Hub {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Job>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subscribe(&self, id: &str) -> broadcast::Receiver<Job> {
        self.map().entry(id.to_owned()).or_insert_with(|| broadcast::channel(64).0).subscribe()
    }

    /// Sends a change to the job's watchers, if it has any; a terminal change is the last.
    fn publish(&self, job: &Job) {
        let mut map = self.map();
        if let Some(sender) = map.get(&job.id) {
            let _ = sender.send(job.clone());
        }
        if job.state.is_terminal() {
            map.remove(&job.id);
        }
    }

    /// Ends every watch of a job without a last change (its session ended).
    fn forget(&self, id: &str) {
        self.map().remove(id);
    }

    /// Drops a job's channel that no watcher uses (a watch that found the job already ended).
    fn release(&self, id: &str) {
        let mut map = self.map();
        if map.get(id).is_some_and(|sender| sender.receiver_count() == 0) {
            map.remove(id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

/// One WatchJob stream: the job's changes until it ends, while the session stays open.
pub struct Watch {
    receiver: broadcast::Receiver<Job>,
    sessions: Arc<SessionManager>,
    session: Session,
    _slot: WatchSlot,
}

impl Watch {
    /// The next change; `None` after the terminal one. An error when the session has ended.
    pub async fn next(&mut self) -> Option<CoreResult<Job>> {
        let every = WATCH_KEEP_ALIVE.min(self.sessions.limits().idle / 2).max(Duration::from_millis(10));
        let mut keep_alive = tokio::time::interval(every);
        keep_alive.tick().await;
        loop {
            tokio::select! {
                change = self.receiver.recv() => match change {
                    Ok(job) => return Some(Ok(job)),
                    // A slow watcher skipped some changes; the next one still arrives.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    // Dropped without a terminal change: the session ended (or the server stops).
                    Err(broadcast::error::RecvError::Closed) => return Some(Err(session_ended())),
                },
                _ = keep_alive.tick() => match self.sessions.keep_alive(&self.session).await {
                    Ok(true) => continue,
                    Ok(false) => return Some(Err(session_ended())),
                    Err(err) => return Some(Err(err)),
                },
            }
        }
    }
}

fn session_ended() -> CoreError {
    CoreError::Unauthenticated(
        "the session ended while the job was being watched; start a new session to see the printer's jobs".into(),
    )
}

/// A place among a session's open watches, given back when the stream ends.
struct WatchSlot {
    watches: Arc<Mutex<HashMap<String, usize>>>,
    scope: String,
}

impl WatchSlot {
    fn take(watches: &Arc<Mutex<HashMap<String, usize>>>, session: &Session) -> CoreResult<WatchSlot> {
        let scope = session.scope();
        let mut map = watches.lock().unwrap_or_else(|p| p.into_inner());
        let open = map.entry(scope.clone()).or_default();
        if *open >= MAX_WATCHES_PER_SESSION {
            return Err(CoreError::ResourceExhausted(format!(
                "this session already watches {MAX_WATCHES_PER_SESSION} jobs, the most it may; end a watch first"
            )));
        }
        *open += 1;
        Ok(WatchSlot { watches: watches.clone(), scope })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut map = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = map.get_mut(&self.scope) {
            *open -= 1;
            if *open == 0 {
                map.remove(&self.scope);
            }
        }
    }
}

/// Where a pull link's document is: the session that made it, and that session's record, which
/// must still be open for the link to work.
#[derive(Serialize, Deserialize)]
struct PullIndex {
    scope: String,
    record: String,
    /// Downloads that ended before the whole document was sent.
    attempts: u32,
    /// When the link stops working.
    expires_ms: u64,
}

/// Downloads of a pull link that may end early (a broken connection, a part asked for) before
/// the link is refused: a printer can retry, but not forever.
const MAX_PULL_ATTEMPTS: u32 = 8;

/// What a `request_id` stands for: the job it made and the request that made it.
#[derive(Serialize, Deserialize)]
struct RequestRecord {
    job_id: String,
    fingerprint: [u8; 32],
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
        default_sides: None,
        default_color: None,
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
            watches: Arc::default(),
            policy,
            pull_base_url: pull_base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Whether a session may start on this device (NOT_FOUND when the server requires registered
    /// devices and none has this id); its model as registered (empty when unknown).
    pub async fn admit_device(&self, id: &DeviceId) -> CoreResult<String> {
        match (self.devices.get(id).await?, &self.unregistered) {
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
        if let Some(device) = self.devices.get(session.device_id()).await? {
            return Ok(device);
        }
        match &self.unregistered {
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
        let fingerprint = request.fingerprint();
        if let Some(request_id) = &request.request_id {
            check_request_id(request_id)?;
            if let Some(existing) = self.sessions.data(session).get(&request_key(request_id)).await? {
                let earlier: RequestRecord =
                    postcard::from_bytes(&existing).map_err(|e| CoreError::internal("bad job index", e))?;
                if earlier.fingerprint != fingerprint {
                    return Err(CoreError::InvalidArgument(
                        "request_id was already used for a different print request (another document, copies or \
                         options); use a new request_id for a new print action"
                            .into(),
                    ));
                }
                let mut job = self.load(session, &earlier.job_id).await?;
                let link = self.renew_pull_link(session, &mut job).await?;
                return Ok((job, link));
            }
        }
        let mut unfinished = self.unfinished_jobs(session).await?;
        if unfinished.len() >= MAX_UNFINISHED_JOBS {
            return Err(CoreError::ResourceExhausted(format!(
                "this session already has {MAX_UNFINISHED_JOBS} unfinished jobs, the most it may; wait for one to end \
                 or cancel one"
            )));
        }
        let (device, capabilities) = self.capabilities(session).await?;
        let (file_id, meta) = match &request.document {
            DocumentRef::File(id) => (id.clone(), self.customization.print_file_meta(session, id).await?),
            DocumentRef::Draft(id) => {
                let file = self.customization.finalized_file(session, &Shopper::Anonymous, id).await?;
                let meta = self.customization.print_file_meta(session, &file.id).await?;
                (file.id, meta)
            }
        };
        let copies = if request.copies == 0 { meta.quantity.max(1) } else { request.copies };
        let ticket = JobTicket {
            job_name: format!("podconnect {}", meta.product_id),
            copies,
            sides: request.sides.unwrap_or(capabilities.sides_default()),
            color_mode: request.color_mode.unwrap_or(capabilities.color_default()),
            media: request.media.clone().or(capabilities.default_media.clone()),
            document_format: "application/pdf".into(),
        };
        check_ticket(&ticket, &capabilities)?;

        let now = now_ms();
        let pulled = device.delivery == DeliveryMode::DevicePull;
        let mut job = Job {
            id: new_id(),
            state: JobState::Pending,
            // A pulling printer has to fetch the file first; others get it now.
            reasons: vec![if pulled { "job-fetchable" } else { "job-incoming" }.into()],
            message: if pulled {
                "Waiting for the printer to fetch the document"
            } else {
                "Sending the document to the printer"
            }
            .into(),
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
            pull_expires_ms: None,
            printer_ref: None,
        };
        let pdf = self.customization.print_file_bytes(session, &file_id).await?;
        let mut link = None;
        let document = if pulled {
            let pull = self.create_pull_link(session, &mut job, &pdf).await?;
            link = Some(pull.clone());
            JobDocument::Pull(PullSource { url: pull.url, expires_at: pull.expires_at })
        } else {
            JobDocument::Bytes(pdf)
        };
        self.save(session, &job).await?;
        unfinished.push(job.id.clone());
        self.save_job_ids(session, &unfinished).await?;
        if let Some(request_id) = &request.request_id {
            let record = RequestRecord { job_id: job.id.clone(), fingerprint };
            let record = postcard::to_allocvec(&record).map_err(|e| CoreError::internal("cannot store a job", e))?;
            self.sessions.data(session).put(&request_key(request_id), &record).await?;
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
                        _ => "aborted-by-system",
                    };
                    let message = err.to_string();
                    self.finish(session, &mut job, &device, JobState::Aborted, vec![reason.into()], message).await?;
                    return Err(err);
                }
            },
            // An EIP device pulls the link itself; its weblet reports the states.
            None => self.spawn_pull_follower(session.clone(), device, job.id.clone()),
        }
        self.hub.publish(&job);
        Ok((job, link))
    }

    pub async fn get(&self, session: &Session, job_id: &str) -> CoreResult<Job> {
        self.load(session, job_id).await
    }

    /// The job now, then (for a job that has not ended) every change until it ends. Reads again
    /// after subscribing, so no change is missed between the two.
    pub async fn watch(&self, session: &Session, job_id: &str) -> CoreResult<(Job, Option<Watch>)> {
        let job = self.load(session, job_id).await?;
        if job.state.is_terminal() {
            return Ok((job, None));
        }
        let slot = WatchSlot::take(&self.watches, session)?;
        let receiver = self.hub.subscribe(job_id);
        let job = match self.load(session, job_id).await {
            Ok(job) if !job.state.is_terminal() => job,
            ended => {
                drop(receiver);
                self.hub.release(job_id);
                return Ok((ended?, None));
            }
        };
        let watch = Watch { receiver, sessions: self.sessions.clone(), session: session.clone(), _slot: slot };
        Ok((job, Some(watch)))
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
            if !job.device_job_id.is_empty() && job.device_job_id != id {
                return Err(CoreError::InvalidArgument(format!(
                    "device_job_id \"{id}\" differs from the one reported before (\"{}\"); once reported it cannot change",
                    job.device_job_id
                )));
            }
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
            self.delete_pull_link(session, &link).await?;
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
                    this.hub.forget(&job.id);
                    return;
                }
                tokio::time::sleep(this.policy.poll_every).await;
            }
        });
    }

    /// Follows a job a device pulls itself: aborted when its link expires unfetched, and at the
    /// deadline when the device never reports its end. Stops when the session ends.
    fn spawn_pull_follower(self: &Arc<Self>, session: Session, device: Device, job_id: String) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok(mut job) = this.load(&session, &job_id).await else { return };
                if job.state.is_terminal() {
                    return;
                }
                let now = now_ms();
                if let (Some(link), Some(expires)) = (job.pull_link.clone(), job.pull_expires_ms) {
                    if now < expires {
                        tokio::time::sleep(Duration::from_millis(expires - now)).await;
                        continue;
                    }
                    // Still there when the link expired: never fetched, and now nobody can.
                    if matches!(this.store.delete(&session.scope(), &pull_document(&link)).await, Ok(true)) {
                        let reasons = vec!["aborted-by-system".into()];
                        let message = "The printer did not fetch the document before its link expired".to_string();
                        let _ = this.finish(&session, &mut job, &device, JobState::Aborted, reasons, message).await;
                        return;
                    }
                }
                let deadline = job.created_ms + this.policy.deadline.as_millis() as u64;
                if now < deadline {
                    tokio::time::sleep(Duration::from_millis(deadline - now)).await;
                    continue;
                }
                let reasons = vec!["job-timeout".into()];
                let message = "The printer never reported that it printed the job".to_string();
                let _ = this.finish(&session, &mut job, &device, JobState::Aborted, reasons, message).await;
                return;
            }
        });
    }

    /// Seals the PDF under a key derived from a fresh token and keeps it in the session's scope,
    /// so it goes with the session; the link's index keeps just the token's hash.
    async fn create_pull_link(&self, session: &Session, job: &mut Job, pdf: &Bytes) -> CoreResult<PullLink> {
        let token = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let name = hex::encode(Sha256::digest(token.as_bytes()));
        let ttl = self.policy.pull_link_ttl;
        let sealed = pull_key(&token).seal(name.as_bytes(), pdf);
        self.store.put(&session.scope(), &pull_document(&name), sealed, ttl + PULL_DOCUMENT_GRACE).await?;
        let expires_ms = now_ms() + ttl.as_millis() as u64;
        let index =
            PullIndex { scope: session.scope(), record: session.record_name().to_owned(), attempts: 0, expires_ms };
        let index = postcard::to_allocvec(&index).map_err(|e| CoreError::internal("cannot store a pull link", e))?;
        self.store.put(PULL_SCOPE, &name, index, ttl).await?;
        let expires_at = SystemTime::now() + ttl;
        job.pull_link = Some(name);
        job.pull_expires_ms = Some(expires_ms);
        Ok(PullLink { url: format!("{}/{token}.pdf", self.pull_base_url), expires_at })
    }

    async fn delete_pull_link(&self, session: &Session, name: &str) -> CoreResult<()> {
        self.store.delete(PULL_SCOPE, name).await?;
        self.store.delete(&session.scope(), &pull_document(name)).await?;
        Ok(())
    }

    /// For a retried SubmitJob: a new link in place of one that was not fetched yet.
    async fn renew_pull_link(&self, session: &Session, job: &mut Job) -> CoreResult<Option<PullLink>> {
        let Some(old) = job.pull_link.clone() else { return Ok(None) };
        let unfetched = self.store.get(&session.scope(), &pull_document(&old)).await?.is_some();
        if job.state.is_terminal() || !unfetched || job.pull_expires_ms.is_some_and(|t| t <= now_ms()) {
            return Ok(None);
        }
        self.delete_pull_link(session, &old).await?;
        let pdf = self.customization.print_file_bytes(session, &job.file_id).await?;
        let link = self.create_pull_link(session, job, &pdf).await?;
        job.updated_ms = now_ms();
        self.save(session, job).await?;
        Ok(Some(link))
    }

    /// The session's jobs that have not ended (ended ones are dropped from the list).
    async fn unfinished_jobs(&self, session: &Session) -> CoreResult<Vec<String>> {
        let Some(bytes) = self.sessions.data(session).get(JOB_IDS_KEY).await? else { return Ok(Vec::new()) };
        let ids: Vec<String> = postcard::from_bytes(&bytes).map_err(|e| CoreError::internal("bad job list", e))?;
        let mut unfinished = Vec::with_capacity(ids.len());
        for id in ids {
            if self.load(session, &id).await.is_ok_and(|job| !job.state.is_terminal()) {
                unfinished.push(id);
            }
        }
        Ok(unfinished)
    }

    async fn save_job_ids(&self, session: &Session, ids: &[String]) -> CoreResult<()> {
        let bytes = postcard::to_allocvec(ids).map_err(|e| CoreError::internal("cannot store the job list", e))?;
        self.sessions.data(session).put(JOB_IDS_KEY, &bytes).await
    }

    async fn load(&self, session: &Session, job_id: &str) -> CoreResult<Job> {
        let not_found = || CoreError::NotFound(format!("job \"{job_id}\" does not exist in this session"));
        if !check_id("job_id", job_id)? {
            return Err(not_found());
        }
        let bytes = self.sessions.data(session).get(&job_key(job_id)).await?.ok_or_else(not_found)?;
        postcard::from_bytes(&bytes).map_err(|e| CoreError::internal("a stored job is unreadable", e))
    }

    async fn save(&self, session: &Session, job: &Job) -> CoreResult<()> {
        let bytes = postcard::to_allocvec(job).map_err(|e| CoreError::internal("cannot store the job", e))?;
        self.sessions.data(session).put(&job_key(&job.id), &bytes).await
    }
}

/// Hands out the document behind a one-time pull link: until one download has sent all of it,
/// within the link's time and a few attempts, and only while the session that printed it is
/// open. One attempt at a time: while a download runs, the link answers nobody else.
pub struct PullLinks {
    store: Arc<dyn EphemeralStore>,
    sessions: Arc<SessionManager>,
}

/// One download attempt: the document, and the ticket `PullLinks::finish` takes to spend or
/// reopen the link.
pub struct PullDownload {
    pub pdf: Bytes,
    pub ticket: PullTicket,
}

/// Which link a download attempt holds.
pub struct PullTicket {
    name: String,
    index: PullIndex,
}

impl PullLinks {
    pub fn new(store: Arc<dyn EphemeralStore>, sessions: Arc<SessionManager>) -> Self {
        PullLinks { store, sessions }
    }

    /// Starts a download of the document behind `token`; `None` for a link that was used,
    /// expired, ran out of attempts, belongs to an ended job or session, or is being downloaded.
    pub async fn open(&self, token: &str) -> CoreResult<Option<PullDownload>> {
        if token.len() != 43 || URL_SAFE_NO_PAD.decode(token).is_err() {
            return Ok(None);
        }
        let name = hex::encode(Sha256::digest(token.as_bytes()));
        let Some(index) = self.store.take(PULL_SCOPE, &name).await? else { return Ok(None) };
        let index: PullIndex =
            postcard::from_bytes(&index).map_err(|e| CoreError::internal("a pull link is unreadable", e))?;
        if !self.sessions.is_record_open(&index.record).await? {
            // The person closed the app (or it expired): their file is no longer to be had.
            self.store.delete(&index.scope, &pull_document(&name)).await?;
            return Ok(None);
        }
        let Some(sealed) = self.store.get(&index.scope, &pull_document(&name)).await? else { return Ok(None) };
        let pdf = pull_key(token)
            .open(name.as_bytes(), &sealed)
            .map_err(|e| CoreError::internal("a pull link's document is unreadable", e))?;
        Ok(Some(PullDownload { pdf: Bytes::from(pdf), ticket: PullTicket { name, index } }))
    }

    /// Ends a download attempt. One that sent the whole document spends the link; another
    /// (the printer's connection broke, or it asked for a part) leaves it usable while attempts
    /// and time remain.
    pub async fn finish(&self, ticket: PullTicket, sent_all: bool) -> CoreResult<()> {
        let PullTicket { name, mut index } = ticket;
        if sent_all {
            self.store.delete(&index.scope, &pull_document(&name)).await?;
            return Ok(());
        }
        index.attempts += 1;
        let left = Duration::from_millis(index.expires_ms.saturating_sub(now_ms()));
        if index.attempts >= MAX_PULL_ATTEMPTS || left.is_zero() {
            // No more tries: the document stays until the link's time is up, so the job is
            // reported as never fetched.
            return Ok(());
        }
        let bytes = postcard::to_allocvec(&index).map_err(|e| CoreError::internal("cannot store a pull link", e))?;
        self.store.put(PULL_SCOPE, &name, bytes, left).await?;
        Ok(())
    }
}

/// The name of a pull link's document in its session's scope.
fn pull_document(name: &str) -> String {
    format!("pull/{name}")
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

/// A UUID in its 36-character hyphenated form, as the contract asks (any version, either case).
fn check_request_id(id: &str) -> CoreResult<()> {
    let ok = id.len() == 36
        && id.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() });
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidArgument(
            "request_id must be a UUID like 0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d11 (36 characters), or empty".into(),
        ))
    }
}

impl SubmitRequest {
    /// What makes two requests the same print action: the document and every option.
    fn fingerprint(&self) -> [u8; 32] {
        let document = match &self.document {
            DocumentRef::File(id) => format!("file:{id}"),
            DocumentRef::Draft(id) => format!("draft:{id}"),
        };
        let options = format!(
            "{document}\n{}\n{:?}\n{:?}\n{}",
            self.copies,
            self.sides.map(Sides::keyword),
            self.color_mode.map(ColorMode::keyword),
            self.media.as_deref().unwrap_or_default()
        );
        Sha256::digest(options.as_bytes()).into()
    }
}

/// The ids of the session's jobs that may not have ended yet.
const JOB_IDS_KEY: &str = "job-ids";

fn job_key(id: &str) -> String {
    format!("job/{id}")
}

fn request_key(id: &str) -> String {
    format!("job-request/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, state: JobState) -> Job {
        Job {
            id: id.into(),
            state,
            reasons: Vec::new(),
            message: String::new(),
            file_id: String::new(),
            draft_id: String::new(),
            product_id: String::new(),
            device_id: String::new(),
            delivery: DeliveryMode::SpoolFolder,
            copies: 1,
            sides: Sides::OneSided,
            color_mode: ColorMode::Color,
            media: String::new(),
            page_count: 1,
            pages_printed: None,
            device_job_id: String::new(),
            created_ms: 0,
            updated_ms: 0,
            ended_ms: None,
            pull_link: None,
            pull_expires_ms: None,
            printer_ref: None,
        }
    }

    #[test]
    fn the_watcher_hub_keeps_nothing_for_jobs_nobody_watches() {
        let hub = Hub::default();
        // Changes of unwatched jobs leave nothing behind.
        hub.publish(&job("a", JobState::Processing));
        assert_eq!(hub.len(), 0);
        // A watch that finds its job already ended gives its channel back.
        let receiver = hub.subscribe("b");
        drop(receiver);
        hub.release("b");
        assert_eq!(hub.len(), 0);
        // A watched job's channel goes with its terminal change, or when its session ends.
        let mut receiver = hub.subscribe("c");
        hub.publish(&job("c", JobState::Completed));
        assert_eq!(receiver.try_recv().unwrap().state, JobState::Completed);
        assert_eq!(hub.len(), 0);
        let mut receiver = hub.subscribe("d");
        hub.forget("d");
        assert!(matches!(receiver.try_recv(), Err(broadcast::error::TryRecvError::Closed)));
        assert_eq!(hub.len(), 0);
    }

    #[test]
    fn request_ids_are_uuids_and_fingerprints_tell_requests_apart() {
        assert!(check_request_id("0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d11").is_ok());
        assert!(check_request_id("0B6F0B0E-4C2A-4F1E-9A55-2C7F4F0E8D11").is_ok());
        for bad in ["", "retry-1", "0b6f0b0e4c2a4f1e9a552c7f4f0e8d11", "0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d1g"] {
            assert!(check_request_id(bad).is_err(), "{bad:?}");
        }
        let one = SubmitRequest {
            document: DocumentRef::Draft("d".into()),
            copies: 1,
            sides: None,
            color_mode: None,
            media: None,
            request_id: Some("x".into()),
        };
        let two = SubmitRequest { copies: 2, ..one.clone() };
        let file = SubmitRequest { document: DocumentRef::File("d".into()), ..one.clone() };
        assert_eq!(one.fingerprint(), one.clone().fingerprint());
        assert_ne!(one.fingerprint(), two.fingerprint());
        assert_ne!(one.fingerprint(), file.fingerprint());
    }
}
