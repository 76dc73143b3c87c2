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
        layout: crate::domain::imposition::Layout::as_is(
            crate::domain::devices::default_capabilities().media[0].clone(),
            None,
            1,
            1,
            Sides::OneSided,
        ),
        document_sha256: String::new(),
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
    async fn drain_started_before(&self, _: u64) -> CoreResult<Vec<RunningJob>> {
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
        bus: crate::store::memory::LocalBus::new(),
        instance: "test-instance".into(),
        running: Arc::new(ForgetfulRunningJobs),
        usage: Arc::new(NoUsage),
        policy: JobPolicy {
            poll_every: Duration::from_millis(100),
            deadline: Duration::from_secs(60),
            pull_link_ttl: Duration::from_secs(60),
            lease: Duration::from_secs(6),
        },
        imposer: Arc::new(crate::printing::imposition::SheetImposer::new(
            crate::storefront::customizer::RenderPool::new(RenderLimits {
                concurrent: 1,
                wait: Duration::from_secs(10),
            }),
        )),
        sheets: crate::domain::imposition::SheetPolicy::default(),
        pull_base_url: "https://core.test/print-files".into(),
    });
    (Arc::new(jobs), session, file.id)
}

/// One session's data on a store of its own (kept alive by the returned store).
pub(super) async fn session_data() -> (crate::domain::session::SessionData, Arc<SessionManager>) {
    let limits = SessionLimits {
        idle: Duration::from_secs(60),
        absolute: Duration::from_secs(600),
        max_per_device: 8,
        max_total: 64,
    };
    let sessions = Arc::new(SessionManager::new(MemoryStore::new(), Key256::generate(), limits, Arc::new(NoUsage)));
    let (_, session) = sessions.start(DeviceId::parse("mfd-1").unwrap(), "").await.unwrap();
    (sessions.data(&session), sessions)
}

fn submit(file_id: &str) -> SubmitRequest {
    SubmitRequest {
        document: DocumentRef::File(file_id.into()),
        copies: 1,
        sides: None,
        color_mode: None,
        media: None,
        fit: false,
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

#[test]
fn pages_total_counts_the_printed_sides_of_sheets_not_pieces_times_pages() {
    let a4 = crate::domain::devices::default_capabilities().media[0].clone();
    // 100 two-page cards, 9 to a two-sided A4 sheet: 12 sheets, 24 impressions (not 200).
    let mut cards = job("cards", JobState::Processing);
    (cards.copies, cards.page_count) = (100, 2);
    cards.layout = Layout {
        imposed: true,
        per_sheet: 9,
        sheet_count: 12,
        sides: Sides::TwoSidedShortEdge,
        pieces: 100,
        sheets_one_per_sheet: 100,
        ..Layout::as_is(a4.clone(), None, 2, 100, Sides::TwoSidedShortEdge)
    };
    assert_eq!(cards.pages_total(), 24);
    // One-sided with the backs on sheets of their own: every sheet is one impression.
    cards.layout.sides = Sides::OneSided;
    cards.layout.backs_separate = true;
    cards.layout.sheet_count = 24;
    assert_eq!(cards.pages_total(), 24);
    // A three-page file printed as it is, 5 copies, two-sided: every page is an impression.
    let mut upload = job("upload", JobState::Processing);
    (upload.copies, upload.page_count) = (5, 3);
    upload.layout = Layout::as_is(a4, None, 3, 5, Sides::TwoSidedLongEdge);
    assert_eq!(upload.pages_total(), 15);
}

/// A job as cores stored it before jobs had layouts (the field order matters to postcard).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct StoredBeforeLayouts {
    id: String,
    state: JobState,
    reasons: Vec<String>,
    message: String,
    file_id: String,
    draft_id: String,
    product_id: Option<ProductId>,
    device_id: DeviceId,
    delivery: DeliveryMode,
    copies: u32,
    sides: Sides,
    color_mode: ColorMode,
    media: String,
    page_count: u32,
    pages_printed: Option<u32>,
    device_job_id: String,
    created_ms: u64,
    updated_ms: u64,
    ended_ms: Option<u64>,
    pull_link: Option<String>,
    pull_expires_ms: Option<u64>,
    printer_ref: Option<String>,
}

#[test]
fn cores_of_the_previous_version_and_this_one_read_each_others_jobs() {
    let mut job = job("j1", JobState::Processing);
    (job.copies, job.page_count, job.sides) = (3, 2, Sides::TwoSidedLongEdge);
    job.media = "iso_a4_210x297mm".into();
    (job.pull_link, job.printer_ref) = (Some("pull-1".into()), Some("ipp-7".into()));
    job.document_sha256 = "ab".repeat(32);
    let old = StoredBeforeLayouts {
        id: job.id.clone(),
        state: job.state,
        reasons: vec!["job-printing".into()],
        message: "Printing".into(),
        file_id: job.file_id.clone(),
        draft_id: job.draft_id.clone(),
        product_id: job.product_id.clone(),
        device_id: job.device_id.clone(),
        delivery: job.delivery,
        copies: job.copies,
        sides: job.sides,
        color_mode: job.color_mode,
        media: job.media.clone(),
        page_count: job.page_count,
        pages_printed: Some(4),
        device_job_id: "7".into(),
        created_ms: 1,
        updated_ms: 2,
        ended_ms: None,
        pull_link: job.pull_link.clone(),
        pull_expires_ms: Some(9),
        printer_ref: job.printer_ref.clone(),
    };
    // This core reads the older job: the same job, its file printed as it is on its media.
    let read = Job::read(&postcard::to_allocvec(&old).unwrap()).expect("an older job reads");
    assert_eq!((read.pull_link.as_deref(), read.printer_ref.as_deref()), (Some("pull-1"), Some("ipp-7")));
    assert_eq!((read.pages_printed, read.pull_expires_ms, read.reasons.len()), (Some(4), Some(9), 1));
    assert!(!read.layout.imposed);
    assert_eq!((read.layout.sheet.display_name.as_str(), read.layout.pieces, read.pages_total()), ("A4", 3, 6));
    assert!(read.document_sha256.is_empty());
    // The older core reads this one's job: its fields where they were.
    let new = postcard::to_allocvec(&job).unwrap();
    let seen: StoredBeforeLayouts = postcard::from_bytes(&new).expect("a newer job reads");
    assert_eq!((seen.pull_link, seen.printer_ref, seen.copies), (job.pull_link.clone(), job.printer_ref.clone(), 3));
    assert_eq!(Job::read(&new).unwrap(), job);
}
