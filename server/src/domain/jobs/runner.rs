//! Following jobs to their end: a runner polls the printer with a deadline (and cancels there
//! when it passes); a job a device pulls itself is aborted when its link expires unfetched, or
//! at the deadline when the device never reports its end. Both stop when the session ends, and
//! when another instance holds the job's lease; both start again from the stored job on the
//! instance that takes a lapsed lease over.

use std::sync::Arc;
use std::time::Duration;

use super::Jobs;
use super::pull::pull_document;
use crate::domain::devices::Device;
use crate::domain::jobs::Job;
use crate::domain::printing::{JobState, Printer, PrinterJobRef};
use crate::domain::records::now_ms;
use crate::domain::session::Session;

impl Jobs {
    /// Follows a job at its printer until it ends or the deadline passes.
    pub(super) fn spawn_runner(
        self: &Arc<Self>,
        session: Session,
        device: Device,
        printer: Arc<dyn Printer>,
        job: Job,
    ) {
        let this = self.clone();
        let Some(follow) = self.following.start(&job.id) else { return };
        tokio::spawn(async move {
            let _follow = follow;
            // From when the job was made, also for a job taken over from another instance.
            let left = Duration::from_millis(
                (job.created_ms + this.deps.policy.deadline.as_millis() as u64).saturating_sub(now_ms()),
            );
            let deadline = tokio::time::Instant::now() + left;
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
                if !matches!(this.deps.sessions.is_open(&session).await, Ok(true)) {
                    // The app closed: its data is gone; let the printer finish on its own.
                    this.hub.forget(&job.id).await;
                    this.let_go(&job.id).await;
                    return;
                }
                if !this.hold_for(&job.id, this.deps.policy.poll_every).await {
                    return;
                }
            }
        });
    }

    /// Follows a job a device pulls itself: aborted when its link expires unfetched, and at the
    /// deadline when the device never reports its end. Stops when the session ends.
    pub(super) fn spawn_pull_follower(self: &Arc<Self>, session: Session, device: Device, job_id: String) {
        let this = self.clone();
        let Some(follow) = self.following.start(&job_id) else { return };
        tokio::spawn(async move {
            let _follow = follow;
            loop {
                let Ok(mut job) = this.load(&session, &job_id).await else { return };
                if job.state.is_terminal() {
                    return;
                }
                let now = now_ms();
                if let (Some(link), Some(expires)) = (job.pull_link.clone(), job.pull_expires_ms) {
                    if now < expires {
                        if !this.hold_for(&job_id, Duration::from_millis(expires - now)).await {
                            return;
                        }
                        continue;
                    }
                    // Still there when the link expired: never fetched, and now nobody can.
                    if matches!(this.deps.store.delete(&session.scope(), &pull_document(&link)).await, Ok(true)) {
                        let reasons = vec!["aborted-by-system".into()];
                        let message = "The printer did not fetch the document before its link expired".to_string();
                        let _ = this.finish(&session, &mut job, &device, JobState::Aborted, reasons, message).await;
                        return;
                    }
                }
                let deadline = job.created_ms + this.deps.policy.deadline.as_millis() as u64;
                if now < deadline {
                    if !this.hold_for(&job_id, Duration::from_millis(deadline - now)).await {
                        return;
                    }
                    continue;
                }
                let reasons = vec!["job-timeout".into()];
                let message = "The printer never reported that it printed the job".to_string();
                let _ = this.finish(&session, &mut job, &device, JobState::Aborted, reasons, message).await;
                return;
            }
        });
    }
}
