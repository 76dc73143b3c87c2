//! The spool-folder printer, the embedded default: each job's PDF is written into a folder (as a
//! hot folder for a RIP, or just to see the result) and walks pending → processing → completed,
//! so the whole flow works with no printer attached.
//!
//! The folder is the job's whole state (its file's age, a cancel marker), so any instance of the
//! core sharing the folder can follow or cancel a job another one spooled.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

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
}

/// Where a spooled job is, read from the folder.
enum Spooled {
    /// Its file is there, written this long ago.
    Waiting(Duration),
    Canceled,
    /// Its file was taken from the folder (by a RIP).
    Taken,
}

impl SpoolPrinter {
    pub fn new(dir: PathBuf, print_time: Duration) -> Self {
        SpoolPrinter { dir, print_time }
    }

    fn canceled_marker(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.canceled"))
    }

    async fn look(&self, job: &PrinterJobRef) -> CoreResult<Spooled> {
        // Names come from `submit`; anything else is not a job of this folder.
        if job.0.is_empty() || job.0.contains(['/', '\\']) || job.0.starts_with('.') {
            return Err(CoreError::NotFound(format!("the spool folder knows no job \"{}\"", job.0)));
        }
        // The file before the marker: a cancel writes the marker and then removes the file, so a
        // file found missing was canceled exactly when the marker is there afterwards (read the
        // other way round, a cancel between the two looks would pass for the job being taken).
        let file = tokio::fs::metadata(self.dir.join(&job.0)).await;
        if tokio::fs::try_exists(self.canceled_marker(&job.0)).await.unwrap_or(false) {
            return Ok(Spooled::Canceled);
        }
        match file {
            Ok(meta) => {
                let written = meta.modified().unwrap_or_else(|_| SystemTime::now());
                Ok(Spooled::Waiting(SystemTime::now().duration_since(written).unwrap_or_default()))
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Spooled::Taken),
            Err(err) => {
                tracing::error!(error = %err, "cannot read the spool folder");
                Err(CoreError::Unavailable("the spool folder cannot be read; an operator must check it".into()))
            }
        }
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
        Ok(PrinterJobRef(name))
    }

    async fn status(&self, _device: &Device, job: &PrinterJobRef) -> CoreResult<PrinterJobStatus> {
        let (state, reason) = match self.look(job).await? {
            Spooled::Canceled => (JobState::Canceled, "job-canceled-by-user"),
            Spooled::Waiting(age) if age < self.print_time => (JobState::Processing, "job-printing"),
            Spooled::Waiting(_) | Spooled::Taken => (JobState::Completed, "job-completed-successfully"),
        };
        Ok(PrinterJobStatus { state, reasons: vec![reason.into()], message: None, pages_printed: None })
    }

    async fn cancel(&self, _device: &Device, job: &PrinterJobRef) -> CoreResult<()> {
        match self.look(job).await? {
            Spooled::Canceled => Ok(()),
            Spooled::Waiting(age) if age < self.print_time => {
                // The marker first: a job is never seen as taken between the two steps. A
                // canceled job must not be picked up from the hot folder.
                crate::store::write_private(&self.canceled_marker(&job.0), b"")
                    .map_err(|e| CoreError::internal("cannot cancel a spooled job", e))?;
                let _ = tokio::fs::remove_file(self.dir.join(&job.0)).await;
                Ok(())
            }
            Spooled::Waiting(_) | Spooled::Taken => {
                Err(CoreError::FailedPrecondition("the job has already been printed".into()))
            }
        }
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

    fn device() -> Device {
        Device {
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
        }
    }

    fn ticket() -> JobTicket {
        JobTicket {
            job_name: "Business card".into(),
            copies: 1,
            sides: Sides::OneSided,
            color_mode: ColorMode::Color,
            media: None,
            document_format: "application/pdf".into(),
        }
    }

    #[tokio::test]
    async fn spooled_documents_are_readable_only_by_the_server_user() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("spool");
        let printer = SpoolPrinter::new(dir.clone(), Duration::from_secs(1));
        let (device, ticket) = (device(), ticket());
        let job = printer.submit(&device, &ticket, JobDocument::Bytes(b"%PDF-1.7 Anna Keller".to_vec().into())).await;
        let job = job.unwrap();
        assert_eq!(mode(&dir), 0o700, "the spool folder");
        assert_eq!(mode(&dir.join(&job.0)), 0o600, "the spooled PDF");
    }

    #[tokio::test]
    async fn another_instance_sharing_the_folder_follows_and_cancels_a_job() {
        let temp = tempfile::tempdir().unwrap();
        let (a, b) = (
            SpoolPrinter::new(temp.path().to_owned(), Duration::from_secs(600)),
            SpoolPrinter::new(temp.path().to_owned(), Duration::from_secs(600)),
        );
        let (device, ticket) = (device(), ticket());
        let job = a.submit(&device, &ticket, JobDocument::Bytes(b"%PDF-1.7".to_vec().into())).await.unwrap();
        assert_eq!(b.status(&device, &job).await.unwrap().state, JobState::Processing);
        b.cancel(&device, &job).await.unwrap();
        assert_eq!(a.status(&device, &job).await.unwrap().state, JobState::Canceled);
        assert!(!temp.path().join(&job.0).exists(), "a canceled job leaves the hot folder");

        let done = SpoolPrinter::new(temp.path().to_owned(), Duration::ZERO);
        let job = done.submit(&device, &ticket, JobDocument::Bytes(b"%PDF-1.7".to_vec().into())).await.unwrap();
        assert_eq!(a.status(&device, &job).await.unwrap().state, JobState::Processing, "a's print time");
        assert_eq!(done.status(&device, &job).await.unwrap().state, JobState::Completed);
        assert!(done.cancel(&device, &job).await.is_err(), "printed jobs cannot be canceled");
        let made_up = PrinterJobRef("../etc/passwd".into());
        assert!(matches!(a.status(&device, &made_up).await, Err(CoreError::NotFound(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_canceled_while_its_status_is_read_is_never_seen_printed() {
        let temp = tempfile::tempdir().unwrap();
        let printer = std::sync::Arc::new(SpoolPrinter::new(temp.path().to_owned(), Duration::from_secs(600)));
        let (device, ticket) = (device(), ticket());
        for _ in 0..200 {
            let job = printer.submit(&device, &ticket, JobDocument::Bytes(b"%PDF-1.7".to_vec().into())).await.unwrap();
            let follower = tokio::spawn({
                let (printer, device, job) = (printer.clone(), device.clone(), job.clone());
                async move {
                    loop {
                        match printer.status(&device, &job).await.unwrap().state {
                            JobState::Processing => tokio::task::yield_now().await,
                            state => return state,
                        }
                    }
                }
            });
            tokio::task::yield_now().await;
            printer.cancel(&device, &job).await.unwrap();
            assert_eq!(follower.await.unwrap(), JobState::Canceled);
        }
    }
}
