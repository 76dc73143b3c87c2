//! Jobs in flight remembered across restarts (no personal data), so the next start reports the
//! ones it interrupted as aborted.

use std::time::Duration;

use crate::domain::error::CoreResult;
use crate::domain::ids::ProductId;
use crate::domain::records::now_ms;
use crate::domain::usage::{JobOutcome, UsageEvent, UsageKind, UsageSink};

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
    /// Removes and returns the remembered jobs that started before `cutoff_ms` (milliseconds
    /// since the Unix epoch), leaving newer ones to the instance still running them. Each job is
    /// returned once even when several instances drain one store at the same time.
    async fn drain_started_before(&self, cutoff_ms: u64) -> CoreResult<Vec<RunningJob>>;
}

/// Reports the jobs a previous run left unfinished as aborted (`server-restarted`); their files
/// went with the ephemeral store. Returns how many there were.
pub async fn recover_interrupted(running: &dyn RunningJobs, usage: &dyn UsageSink) -> CoreResult<usize> {
    report_aborted(running.drain().await?, usage).await
}

/// With instances sharing the stores, the jobs still remembered long after their deadline: no
/// instance followed them to their end (their sessions ended first, or every instance died), so
/// they are reported aborted, each by exactly one instance. Returns how many there were.
pub async fn recover_abandoned(running: &dyn RunningJobs, usage: &dyn UsageSink, before_ms: u64) -> CoreResult<usize> {
    report_aborted(running.drain_started_before(before_ms).await?, usage).await
}

async fn report_aborted(interrupted: Vec<RunningJob>, usage: &dyn UsageSink) -> CoreResult<usize> {
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
