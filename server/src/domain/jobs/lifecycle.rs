//! A job's life: submitted (checked, handed to the delivery mode, or refused with the printer's
//! reason), read and watched, canceled, moved on by reported or polled states, and ended (its
//! print file and pull link deleted, usage recorded, watchers told).

use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;

use super::plan::{LayoutOptions, PieceOf};
use super::ticket::{RequestRecord, check_request_id, check_ticket, request_key};
use super::watch::{Watch, WatchSlot};
use super::{DocumentRef, Job, Jobs, MAX_UNFINISHED_JOBS, PullLink, SubmitRequest, describe, job_event};
use crate::domain::devices::{DeliveryMode, Device};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::ids::ProductId;
use crate::domain::jobs::RunningJob;
use crate::domain::printing::{JobDocument, JobState, JobTicket, PrinterJobRef, PrinterJobStatus, PullSource};
use crate::domain::records::{new_id, now_ms};
use crate::domain::session::Session;
use crate::domain::usage::{JobOutcome, UsageKind};

impl Jobs {
    /// Checks and submits a job; for pull devices, also returns the one-time link.
    pub async fn submit(
        self: &Arc<Self>,
        session: &Session,
        request: SubmitRequest,
    ) -> CoreResult<(Job, Option<PullLink>)> {
        let fingerprint = request.fingerprint();
        if let Some(request_id) = &request.request_id {
            check_request_id(request_id)?;
            if let Some(existing) = self.deps.sessions.data(session).get(&request_key(request_id)).await? {
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
            DocumentRef::File(id) => (id.clone(), self.deps.customization.print_file_meta(session, id).await?),
            DocumentRef::Draft(id) => {
                let file = self.deps.customization.finalized_file(session, id).await?;
                let meta = self.deps.customization.print_file_meta(session, &file.id).await?;
                (file.id, meta)
            }
        };
        let copies = if request.copies == 0 { meta.quantity.max(1) } else { request.copies };
        let options = LayoutOptions { copies, sides: request.sides, media: request.media.as_deref(), fit: request.fit };
        let (spec, layout) =
            self.layout(&capabilities, PieceOf::new(meta.trim, meta.page_count), meta.page_count, options)?;
        let ticket = JobTicket {
            // An uploaded file's name stays with the session: the printer's job list is public.
            job_name: match meta.product_id.as_str() {
                "" => "podconnect upload".to_owned(),
                product => format!("podconnect {product}"),
            },
            // Imposed sheets hold every piece: the printer prints the document once.
            copies: if layout.imposed { 1 } else { copies },
            sides: layout.sides,
            color_mode: request.color_mode.unwrap_or(capabilities.color_default()),
            media: Some(layout.sheet.keyword.clone()).filter(|m| !m.is_empty()),
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
            product_id: match meta.product_id.as_str() {
                "" => None,
                product => Some(
                    ProductId::parse(product)
                        .map_err(|e| CoreError::internal("a stored print file names a bad product", e))?,
                ),
            },
            device_id: device.id.clone(),
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
            layout,
            document_sha256: String::new(),
            pull_link: None,
            pull_expires_ms: None,
            printer_ref: None,
        };
        let mut pdf = self.deps.customization.print_file_bytes(session, &file_id).await?;
        if let Some(spec) = &spec {
            pdf = self.deps.imposer.impose(pdf, spec).await?;
        }
        // Up to 64 MiB: hashed off the async workers, so other calls are not held up meanwhile.
        let hashed = pdf.clone();
        job.document_sha256 = tokio::task::spawn_blocking(move || hex::encode(sha2::Sha256::digest(&hashed)))
            .await
            .map_err(|e| CoreError::internal("cannot hash the print document", e))?;
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
            self.deps.sessions.data(session).put(&request_key(request_id), &record).await?;
        }
        self.deps.usage.record(job_event(UsageKind::JobSubmitted, &job, &device)).await;
        let remembered = RunningJob {
            job_id: job.id.clone(),
            product_id: job.product_id.as_ref().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            device_model: device.model.clone(),
            started_ms: job.created_ms,
        };
        self.deps.running.started(&remembered).await?;
        self.register_running(session, &job).await?;

        match self.printer(&device) {
            Some(printer) => match self.holding(&job.id, printer.submit(&device, &ticket, document)).await {
                Ok(reference) => {
                    job.printer_ref = Some(reference.0.clone());
                    job.device_job_id = reference.0;
                    job.message = "The printer has the job".into();
                    job.updated_ms = now_ms();
                    self.save(session, &job).await?;
                    self.spawn_runner(session.clone(), device, printer.clone(), job.clone());
                }
                Err(refused) => {
                    // The printer refused or cannot be reached: the job ends here, with the reason
                    // the delivery mode found.
                    let reasons = vec![refused.why.reason().into()];
                    let message = refused.error.to_string();
                    self.finish(session, &mut job, &device, JobState::Aborted, reasons, message).await?;
                    return Err(refused.error);
                }
            },
            // An EIP device pulls the link itself; its weblet reports the states.
            None => self.spawn_pull_follower(session.clone(), device, job.id.clone()),
        }
        self.hub.publish(&self.deps.sessions.data(session), &job).await;
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
        let watch = Watch {
            receiver,
            sessions: self.deps.sessions.clone(),
            session: session.clone(),
            last: job.clone(),
            _slot: slot,
        };
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
                self.hub.publish(&self.deps.sessions.data(session), &job).await;
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

    pub(super) async fn apply(
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
        self.hub.publish(&self.deps.sessions.data(session), job).await;
        Ok(())
    }

    /// Ends a job: records it, deletes its print-ready file and pull link, tells watchers. Only
    /// the first to end a job does this (instances may race: a device's report and a follower).
    pub(super) async fn finish(
        &self,
        session: &Session,
        job: &mut Job,
        device: &Device,
        state: JobState,
        reasons: Vec<String>,
        message: String,
    ) -> CoreResult<()> {
        if !self.claim_end(&job.id).await? {
            if let Ok(ended) = self.load(session, &job.id).await {
                *job = ended;
            }
            return Ok(());
        }
        let now = now_ms();
        job.state = state;
        job.reasons = reasons;
        job.message = message;
        job.updated_ms = now;
        job.ended_ms = Some(now);
        if let Some(link) = job.pull_link.take() {
            self.delete_pull_link(session, &link).await?;
        }
        self.deps.running.ended(&job.id).await?;
        self.deps.customization.release_print_file(session, &job.file_id).await?;
        if self.deps.sessions.is_open(session).await? {
            self.save(session, job).await?;
        }
        let mut event = job_event(UsageKind::JobEnded, job, device);
        event.outcome = Some(match state {
            JobState::Completed => JobOutcome::Completed,
            JobState::Canceled => JobOutcome::Canceled,
            _ => JobOutcome::Aborted,
        });
        event.pages = job.pages_printed.or(Some(job.pages_total()));
        event.duration = Some(Duration::from_millis(now.saturating_sub(job.created_ms)));
        self.deps.usage.record(event).await;
        self.hub.publish(&self.deps.sessions.data(session), job).await;
        Ok(())
    }
}
