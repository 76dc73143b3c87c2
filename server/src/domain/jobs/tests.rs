//! The print service end to end in the domain, with a fake printer: what a watch leaves behind,
//! and the reason a refused job reports.

use std::path::Path;

use async_trait::async_trait;

use super::*;
use crate::domain::catalog::Storefront;
use crate::domain::crypto::Key256;
use crate::domain::devices::PrinterUri;
use crate::domain::form::Values;
use crate::domain::printing::{JobDocument, JobTicket, PrinterJobRef, PrinterJobStatus, Refusal, Refused};
use crate::domain::session::SessionLimits;
use crate::store::memory::MemoryStore;
use crate::storefront::customizer::{EmbeddedCustomizer, RenderLimits};
use crate::storefront::embedded::EmbeddedStorefront;

/// A job in `state` with nothing else set, for the hub's tests.
pub(super) fn job(id: &str, state: JobState) -> Job {
    Job {
        id: id.into(),
        state,
        reasons: Vec::new(),
        message: String::new(),
        file_id: String::new(),
        draft_id: String::new(),
        product_id: Some(ProductId::parse("product").unwrap()),
        device_id: DeviceId::parse("device").unwrap(),
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

struct NoUsage;

#[async_trait]
impl UsageSink for NoUsage {
    async fn record(&self, _event: UsageEvent) {}
}

/// No device is registered: every session prints on the stand-in device.
struct NoDevices;

#[async_trait]
impl DeviceStore for NoDevices {
    async fn get(&self, _: &DeviceId) -> CoreResult<Option<Device>> {
        Ok(None)
    }
    async fn list(&self, _: Option<&DeviceId>, _: u32) -> CoreResult<Vec<Device>> {
        Ok(Vec::new())
    }
    async fn insert(&self, _: &Device) -> CoreResult<()> {
        Ok(())
    }
    async fn upsert(&self, _: &Device) -> CoreResult<()> {
        Ok(())
    }
    async fn update(&self, _: &Device) -> CoreResult<()> {
        Ok(())
    }
    async fn delete(&self, _: &DeviceId) -> CoreResult<bool> {
        Ok(false)
    }
    async fn device_count(&self) -> CoreResult<u64> {
        Ok(0)
    }
}

struct ForgetfulRunningJobs;

#[async_trait]
impl RunningJobs for ForgetfulRunningJobs {
    async fn started(&self, _: &RunningJob) -> CoreResult<()> {
        Ok(())
    }
    async fn ended(&self, _: &str) -> CoreResult<()> {
        Ok(())
    }
    async fn drain(&self) -> CoreResult<Vec<RunningJob>> {
        Ok(Vec::new())
    }
}

/// An ipps printer whose certificate is not the pinned one: it can describe itself (as if
/// asked before the certificate changed) but refuses every job, saying why.
struct WrongCertificate;

#[async_trait]
impl Printer for WrongCertificate {
    async fn capabilities(&self, _: &Device) -> CoreResult<Capabilities> {
        Ok(default_capabilities())
    }
    async fn submit(&self, _: &Device, _: &JobTicket, _: JobDocument) -> Result<PrinterJobRef, Refused> {
        let error =
            CoreError::FailedPrecondition("the printer presented a certificate that is not the pinned one".into());
        Err(Refused::new(Refusal::CertificateMismatch, error))
    }
    async fn status(&self, _: &Device, _: &PrinterJobRef) -> CoreResult<PrinterJobStatus> {
        Err(CoreError::Unavailable("not in this test".into()))
    }
    async fn cancel(&self, _: &Device, _: &PrinterJobRef) -> CoreResult<()> {
        Ok(())
    }
}

/// The print service over an ipps printer that refuses with `WrongCertificate`, and a session
/// with one finalized print file.
async fn service() -> (Arc<Jobs>, Session, String) {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("storefront/sample");
    let shop = Arc::new(EmbeddedStorefront::load(&shop).unwrap());
    let catalog: Arc<dyn Storefront> = shop.clone();
    let backend = EmbeddedCustomizer::new(shop, RenderLimits { concurrent: 1, wait: Duration::from_secs(10) });
    let limits = SessionLimits {
        idle: Duration::from_secs(60),
        absolute: Duration::from_secs(600),
        max_per_device: 8,
        max_total: 64,
    };
    let store = MemoryStore::new();
    let sessions = Arc::new(SessionManager::new(store.clone(), Key256::generate(), limits, Arc::new(NoUsage)));
    let (_, session) = sessions.start(DeviceId::parse("mfd-1").unwrap(), "").await.unwrap();
    let customization = Arc::new(Customization::new(catalog, Arc::new(backend), sessions.clone(), Arc::new(NoUsage)));
    // A static product: its print-ready file is the shipped PDF, nothing is rendered.
    let product = ProductId::parse("fire-action-notice").unwrap();
    let (draft, _) = customization.create_draft(&session, &product, None, Values::new()).await.unwrap();
    let (file, _) = customization.finalize(&session, &draft.id).await.unwrap();
    let printer: Arc<dyn Printer> = Arc::new(WrongCertificate);
    let stand_in = Device {
        id: DeviceId::parse("unregistered").unwrap(),
        display_name: "Front desk".into(),
        model: "Test".into(),
        delivery: DeliveryMode::IppPush,
        printer_uri: Some(PrinterUri::parse("ipps://printer.test:631/ipp/print").unwrap()),
        pinned_certificate_sha256: Some([7; 32]),
        location: String::new(),
        capabilities: None,
        registered_at: None,
        updated_at: None,
    };
    let jobs = Jobs::new(JobsDeps {
        sessions,
        customization,
        devices: Arc::new(NoDevices),
        unregistered: UnregisteredDevices::Use(Box::new(stand_in)),
        printers: Printers { ipp: printer.clone(), spool: printer },
        store,
        running: Arc::new(ForgetfulRunningJobs),
        usage: Arc::new(NoUsage),
        policy: JobPolicy {
            poll_every: Duration::from_millis(100),
            deadline: Duration::from_secs(60),
            pull_link_ttl: Duration::from_secs(60),
        },
        pull_base_url: "https://core.test/print-files".into(),
    });
    (Arc::new(jobs), session, file.id)
}

fn submit(file_id: &str) -> SubmitRequest {
    SubmitRequest {
        document: DocumentRef::File(file_id.into()),
        copies: 1,
        sides: None,
        color_mode: None,
        media: None,
        request_id: Some("0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d11".into()),
    }
}

#[tokio::test]
async fn a_job_refused_for_a_certificate_pin_mismatch_reports_that_reason() {
    let (jobs, session, file_id) = service().await;
    let refused = jobs.submit(&session, submit(&file_id)).await.unwrap_err();
    assert!(matches!(&refused, CoreError::FailedPrecondition(m) if m.contains("pinned")), "{refused:?}");

    // The same request again returns the job it made: aborted, with the printer's reason.
    let (job, link) = jobs.submit(&session, submit(&file_id)).await.unwrap();
    assert!(link.is_none());
    assert_eq!(job.state, JobState::Aborted);
    assert_eq!(job.reasons, ["printer-certificate-mismatch"], "not document-format-not-supported");
    assert!(job.message.contains("pinned"), "{}", job.message);
}

#[tokio::test]
async fn watching_an_unknown_or_ended_job_leaves_nothing_in_the_hub() {
    let (jobs, session, file_id) = service().await;
    for unknown in ["no-such-job", crate::domain::records::new_id().as_str()] {
        let err = jobs.watch(&session, unknown).await.err().expect("an unknown job cannot be watched");
        assert!(matches!(err, CoreError::NotFound(_)), "{err:?}");
        assert_eq!(jobs.hub.len(), 0, "a watch on {unknown:?} left a channel behind");
    }

    let _ = jobs.submit(&session, submit(&file_id)).await.unwrap_err();
    let (ended, _) = jobs.submit(&session, submit(&file_id)).await.unwrap();
    for _ in 0..3 {
        let (job, watch) = jobs.watch(&session, &ended.id).await.unwrap();
        assert_eq!(job.state, JobState::Aborted);
        assert!(watch.is_none(), "an ended job has no changes to stream");
    }
    assert_eq!(jobs.hub.len(), 0, "watches on an ended job left channels behind");
    assert!(jobs.watches.lock().unwrap().is_empty(), "no watch slot is held");
}
