//! Who follows a running job: exactly one instance at a time, through a lease in the ephemeral
//! store that its holder renews while it follows the job. Every instance looks for jobs whose
//! lease has lapsed (their instance died) and takes them over, so a job started on one instance
//! still ends, its file deleted, when that instance is gone.
//!
//! A job is registered as running (under the name of its session's record, which is how the
//! taker finds the session and its keys) before its printer gets it; whoever ends it takes that
//! registration, so a job's end is recorded once however many instances saw it.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Job, Jobs};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::JobState;
use crate::domain::session::Session;

/// Scope of the leases, one per running job, holding the id of the instance that follows it.
const LEASE_SCOPE: &str = "job-leases";
/// Scope of the running jobs, one entry per job that has not ended.
const RUNNING_SCOPE: &str = "running-jobs";
/// How long a running job's registration outlives its deadline (its follower ends it by then).
const RUNNING_GRACE: Duration = Duration::from_secs(120);

/// The jobs this instance follows, each until its follower stops (dropping its [`Follow`]).
#[derive(Default, Clone)]
pub(super) struct Following(Arc<std::sync::Mutex<std::collections::HashSet<String>>>);

/// This instance's following of one job; ends when dropped.
pub(super) struct Follow {
    following: Following,
    job_id: String,
}

impl Following {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts following `job_id`; `None` when this instance already does.
    pub(super) fn start(&self, job_id: &str) -> Option<Follow> {
        self.lock().insert(job_id.to_owned()).then(|| Follow { following: self.clone(), job_id: job_id.to_owned() })
    }

    fn contains(&self, job_id: &str) -> bool {
        self.lock().contains(job_id)
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.following.lock().remove(&self.job_id);
    }
}

/// A running job's registration.
#[derive(Serialize, Deserialize)]
struct RunningEntry {
    /// The session's record name when the job started (logins rename it; renames are followed).
    record: String,
}

impl Jobs {
    fn lease_ttl(&self) -> Duration {
        self.deps.policy.lease
    }

    /// Registers a job as running and takes its lease for this instance.
    pub(super) async fn register_running(&self, session: &Session, job: &Job) -> CoreResult<()> {
        let entry = postcard::to_allocvec(&RunningEntry { record: session.record_name().to_owned() })
            .map_err(|e| CoreError::internal("cannot register a running job", e))?;
        let store = &self.deps.store;
        store.put(RUNNING_SCOPE, &job.id, entry, self.deps.policy.deadline + RUNNING_GRACE).await?;
        store.put(LEASE_SCOPE, &job.id, self.deps.instance.as_bytes().to_vec(), self.lease_ttl()).await?;
        Ok(())
    }

    /// Claims the end of a job: true for exactly one caller across all instances.
    pub(super) async fn claim_end(&self, job_id: &str) -> CoreResult<bool> {
        let claimed = self.deps.store.take(RUNNING_SCOPE, job_id).await?.is_some();
        let _ = self.deps.store.delete_if(LEASE_SCOPE, job_id, self.deps.instance.as_bytes()).await;
        Ok(claimed)
    }

    /// Stops following a job without ending it (its session ended: the printer finishes alone).
    pub(super) async fn let_go(&self, job_id: &str) {
        let _ = self.deps.store.delete(RUNNING_SCOPE, job_id).await;
        let _ = self.deps.store.delete_if(LEASE_SCOPE, job_id, self.deps.instance.as_bytes()).await;
    }

    /// Waits `time` while keeping the job's lease; false when the lease went to another instance
    /// (this one stops following the job). A store that cannot be reached keeps the wait going:
    /// the lease may lapse, and whoever takes it over follows the job from then on.
    pub(super) async fn hold_for(&self, job_id: &str, time: Duration) -> bool {
        let end = tokio::time::Instant::now() + time;
        let step = self.lease_ttl() / 3;
        loop {
            match self.deps.store.touch_if(LEASE_SCOPE, job_id, self.deps.instance.as_bytes(), self.lease_ttl()).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(job_id, "another instance follows this job now");
                    return false;
                }
                Err(err) => tracing::warn!(error = %err, "cannot renew a job's lease"),
            }
            let now = tokio::time::Instant::now();
            if now >= end {
                return true;
            }
            tokio::time::sleep((end - now).min(step)).await;
        }
    }

    /// Runs `work` (handing a job to its printer) while keeping the job's lease, so a slow
    /// printer never makes another instance think this one died.
    pub(super) async fn holding<T>(&self, job_id: &str, work: impl std::future::Future<Output = T>) -> T {
        let renew = async {
            loop {
                tokio::time::sleep(self.lease_ttl() / 3).await;
                let me = self.deps.instance.as_bytes();
                if let Err(err) = self.deps.store.touch_if(LEASE_SCOPE, job_id, me, self.lease_ttl()).await {
                    tracing::warn!(error = %err, "cannot renew a job's lease");
                }
            }
        };
        tokio::select! {
            out = work => out,
            () = renew => unreachable!("renewing never ends"),
        }
    }

    /// Looks for running jobs nobody follows, every third of the lease time, and follows them.
    pub fn spawn_takeover(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = self.lease_ttl() / 3;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(jobs) = weak.upgrade() else { return };
                if let Err(err) = jobs.take_over_lapsed().await {
                    tracing::warn!(error = %err, "cannot look for running jobs without a follower");
                }
            }
        })
    }

    /// Takes the lease of every running job whose lease has lapsed; returns how many it took.
    pub async fn take_over_lapsed(self: &Arc<Self>) -> CoreResult<usize> {
        let mut taken = 0;
        for job_id in self.deps.store.names(RUNNING_SCOPE).await? {
            if self.deps.store.get(LEASE_SCOPE, &job_id).await?.is_some() {
                continue;
            }
            let me = self.deps.instance.as_bytes().to_vec();
            if self.following.contains(&job_id) {
                // Ours, lapsed while its renewal failed: take it back and keep following it.
                self.deps.store.put_new(LEASE_SCOPE, &job_id, me, self.lease_ttl()).await?;
                continue;
            }
            if !self.deps.store.put_new(LEASE_SCOPE, &job_id, me, self.lease_ttl()).await? {
                continue;
            }
            taken += 1;
            if let Err(err) = self.resume(&job_id).await {
                tracing::warn!(error = %err, job_id, "cannot take over a running job");
                // Let another instance (or this one, next time) try again.
                let _ = self.deps.store.delete_if(LEASE_SCOPE, &job_id, self.deps.instance.as_bytes()).await;
            }
        }
        Ok(taken)
    }

    /// Follows a job another instance started, from where it is.
    async fn resume(self: &Arc<Self>, job_id: &str) -> CoreResult<()> {
        let Some(entry) = self.deps.store.get(RUNNING_SCOPE, job_id).await? else {
            self.let_go(job_id).await;
            return Ok(());
        };
        let entry: RunningEntry =
            postcard::from_bytes(&entry).map_err(|e| CoreError::internal("a running job's entry is unreadable", e))?;
        let Some(session) = self.deps.sessions.by_record(&entry.record).await? else {
            // Its session ended, and with it the job's data: nothing is left to follow.
            self.let_go(job_id).await;
            return Ok(());
        };
        let mut job = match self.load(&session, job_id).await {
            Ok(job) if !job.state.is_terminal() => job,
            _ => {
                self.let_go(job_id).await;
                return Ok(());
            }
        };
        tracing::info!(job_id, "following a running job whose instance stopped");
        let device = self.device(&session).await?;
        match (self.printer(&device), job.printer_ref.clone()) {
            (Some(printer), Some(_)) => self.spawn_runner(session, device, printer.clone(), job),
            (None, _) => self.spawn_pull_follower(session, device, job.id.clone()),
            // Its instance died between registering the job and the printer's answer: whether
            // the printer has it cannot be known, so say so rather than print it twice.
            (Some(_), None) => {
                let reasons = vec!["aborted-by-system".into()];
                let message = "The server stopped while sending the job; check the printer before printing again";
                self.finish(&session, &mut job, &device, JobState::Aborted, reasons, message.into()).await?;
            }
        }
        Ok(())
    }
}
