//! The spool-folder printer, the embedded default: each job's PDF is written into a folder (as a
//! hot folder for a RIP, or just to see the result) and walks pending → processing → completed,
//! so the whole flow works with no printer attached.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::domain::crypto::random_bytes;
use crate::domain::devices::{Capabilities, Device, default_capabilities};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::{
    JobDocument, JobState, JobTicket, Printer, PrinterJobRef, PrinterJobStatus, Refusal, Refused,
};

/// Writes documents into a folder.
pub struct SpoolPrinter {
    dir: PathBuf,
    /// How long a job stays "processing", like a real device would take.
    print_time: Duration,
    jobs: Mutex<HashMap<String, SpoolJob>>,
}

struct SpoolJob {
    started: Instant,
    canceled: bool,
}

impl SpoolPrinter {
    pub fn new(dir: PathBuf, print_time: Duration) -> Self {
        SpoolPrinter { dir, print_time, jobs: Mutex::new(HashMap::new()) }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, SpoolJob>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Printer for SpoolPrinter {
    async fn capabilities(&self, device: &Device) -> CoreResult<Capabilities> {
        Ok(device.capabilities.clone().unwrap_or_else(default_capabilities))
    }

    async fn submit(
        &self,
        _device: &Device,
        ticket: &JobTicket,
        document: JobDocument,
    ) -> Result<PrinterJobRef, Refused> {
        let JobDocument::Bytes(pdf) = document else {
            return Err(
                CoreError::FailedPrecondition("a spool folder cannot fetch documents from a link".into()).into()
            );
        };
        let name = format!("{}-{}.pdf", job_file_stem(ticket), hex::encode(random_bytes::<6>()));
        let final_path = self.dir.join(&name);
        let partial = self.dir.join(format!(".{name}.part"));
        let dir = self.dir.clone();
        // Written under a temporary name and renamed, so a reader never sees half a file. The
        // PDF carries the names people typed: the folder is 0700 and the file 0600.
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            crate::store::private_dir(&dir)?;
            let written =
                crate::store::write_private(&partial, &pdf).and_then(|()| std::fs::rename(&partial, &final_path));
            if written.is_err() {
                // A full disk leaves half a file: never leave it for a RIP to pick up.
                let _ = std::fs::remove_file(&partial);
            }
            written
        })
        .await
        .map_err(|e| CoreError::internal("spooling failed", e))?
        .map_err(|e| {
            tracing::error!(error = %e, dir = %self.dir.display(), "cannot write to the spool folder");
            let error = CoreError::Unavailable(
                "the spool folder cannot be written; an operator must check its disk and permissions".into(),
            );
            Refused::new(Refusal::Unreachable, error)
        })?;
        self.jobs().insert(name.clone(), SpoolJob { started: Instant::now(), canceled: false });
        Ok(PrinterJobRef(name))
    }

    async fn status(&self, _device: &Device, job: &PrinterJobRef) -> CoreResult<PrinterJobStatus> {
        let jobs = self.jobs();
        let Some(spooled) = jobs.get(&job.0) else {
            return Err(CoreError::NotFound(format!("the spool folder knows no job \"{}\"", job.0)));
        };
        let (state, reason) = if spooled.canceled {
            (JobState::Canceled, "job-canceled-by-user")
        } else if spooled.started.elapsed() < self.print_time {
            (JobState::Processing, "job-printing")
        } else {
            (JobState::Completed, "job-completed-successfully")
        };
        Ok(PrinterJobStatus { state, reasons: vec![reason.into()], message: None, pages_printed: None })
    }

    async fn cancel(&self, _device: &Device, job: &PrinterJobRef) -> CoreResult<()> {
        let mut jobs = self.jobs();
        let Some(spooled) = jobs.get_mut(&job.0) else {
            return Err(CoreError::NotFound(format!("the spool folder knows no job \"{}\"", job.0)));
        };
        if spooled.started.elapsed() >= self.print_time {
            return Err(CoreError::FailedPrecondition("the job has already been printed".into()));
        }
        spooled.canceled = true;
        // A canceled job must not be picked up from the hot folder.
        let _ = std::fs::remove_file(self.dir.join(&job.0));
        Ok(())
    }
}

/// A file name from the job name: letters, digits and dashes only.
fn job_file_stem(ticket: &JobTicket) -> String {
    ticket.job_name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(48).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::domain::devices::{ColorMode, DeliveryMode, Sides};
    use crate::domain::ids::DeviceId;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn spooled_documents_are_readable_only_by_the_server_user() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("spool");
        let printer = SpoolPrinter::new(dir.clone(), Duration::from_secs(1));
        let device = Device {
            id: DeviceId::parse("mfd-1").unwrap(),
            display_name: "Spool".into(),
            model: String::new(),
            delivery: DeliveryMode::SpoolFolder,
            printer_uri: None,
            pinned_certificate_sha256: None,
            location: String::new(),
            capabilities: None,
            registered_at: None,
            updated_at: None,
        };
        let ticket = JobTicket {
            job_name: "Business card".into(),
            copies: 1,
            sides: Sides::OneSided,
            color_mode: ColorMode::Color,
            media: None,
            document_format: "application/pdf".into(),
        };
        let job = printer.submit(&device, &ticket, JobDocument::Bytes(b"%PDF-1.7 Anna Keller".to_vec().into())).await;
        let job = job.unwrap();
        assert_eq!(mode(&dir), 0o700, "the spool folder");
        assert_eq!(mode(&dir.join(&job.0)), 0o600, "the spooled PDF");
    }
}
