//! Faults injected into a running system: the core killed (SIGKILL) mid-render, mid-print and
//! mid-WatchJob, a printer that stops answering, a full disk under the spool folder and under the
//! database, and a database that cannot be opened. Each ends in a clear status or log line and a
//! core that keeps (or starts again) serving, with nothing of a person left behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proto::v1 as pb;
use proto::v1::catalog_service_client::CatalogServiceClient;
use proto::v1::customization_service_client::CustomizationServiceClient;
use proto::v1::print_service_client::PrintServiceClient;
use proto::v1::usage_service_client::UsageServiceClient;
use tests::client::{authed, start_session};
use tests::core::TestCore;
use tests::wait::eventually;
use tokio::time::{Instant, timeout};
use tonic::Code;
use tonic::transport::Channel;

const OPERATOR_TOKEN: &str = "an-operator-token-for-the-fault-tests-0123456789abc";
/// How long any one step may take before the test fails instead of hanging.
const STEP: Duration = Duration::from_secs(20);

fn customize(channel: &Channel) -> CustomizationServiceClient<Channel> {
    CustomizationServiceClient::new(channel.clone()).max_decoding_message_size(64 * 1024 * 1024)
}

/// A finalized draft of a static product, ready to print.
async fn finalized_static_draft(channel: &Channel, token: &str) -> String {
    let request = pb::CreateDraftRequest { product_id: "fire-action-notice".into(), ..Default::default() };
    let id = customize(channel).create_draft(authed(token, request)).await.unwrap().into_inner().draft.unwrap().id;
    customize(channel).finalize_draft(authed(token, pb::FinalizeDraftRequest { draft_id: id.clone() })).await.unwrap();
    id
}

fn submit(draft_id: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::DraftId(draft_id.into())),
        copies: 1,
        ..Default::default()
    }
}

async fn usage_total(channel: &Channel, kind: pb::UsageEventKind) -> i64 {
    let request = pb::CountUsageEventsRequest { kinds: vec![kind as i32], ..Default::default() };
    let response = UsageServiceClient::new(channel.clone()).count_usage_events(authed(OPERATOR_TOKEN, request)).await;
    response.unwrap().into_inner().total
}

/// Usage events are written in batches off the request path: waits (bounded) until `kind` counts
/// `expected`.
async fn wait_for_usage(channel: &Channel, kind: pb::UsageEventKind, expected: i64) {
    eventually(&format!("{kind:?} to count {expected}"), STEP, || async {
        let total = usage_total(channel, kind).await;
        if total == expected { Ok(()) } else { Err(total) }
    })
    .await;
}

/// Every file below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { found.push(path) }
        }
    }
    found
}

fn sigkill(core: &TestCore) {
    let pid = core.pid().expect("the core runs as its own process");
    let status = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -KILL {pid}");
}

#[tokio::test]
async fn a_core_killed_mid_render_mid_print_and_mid_watch_restarts_clean_and_reports_the_job() {
    let data = tempfile::tempdir().unwrap();
    let spool = data.path().join("spool");
    let start = || {
        TestCore::builder()
            .data_dir(&data.path().join("data"))
            .operator_token(OPERATOR_TOKEN)
            .spool_dir(&spool)
            .spool_print_time(Duration::from_secs(3600))
            .job_poll(Duration::from_millis(50))
            .max_concurrent_renders(1)
            .spawn()
    };
    let core = start().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;

    // A job the spool printer is printing, followed by a WatchJob stream.
    let draft = finalized_static_draft(&channel, &token).await;
    let job = PrintServiceClient::new(channel.clone()).submit_job(authed(&token, submit(&draft))).await.unwrap();
    let job = job.into_inner().job.unwrap();
    let request = authed(&token, pb::WatchJobRequest { job_id: job.id.clone() });
    let mut watch = PrintServiceClient::new(channel.clone()).watch_job(request).await.unwrap().into_inner();
    let first = timeout(STEP, watch.message()).await.unwrap().unwrap().unwrap();
    assert!(!matches!(first.job.unwrap().state(), pb::JobState::Completed | pb::JobState::Aborted));

    // Renders queued behind one renderer: once one is done, the others are in flight (each at
    // its own width, so none can share another's render).
    let request = pb::CreateDraftRequest { product_id: "newsletter-a4".into(), ..Default::default() };
    let newsletter = customize(&channel).create_draft(authed(&token, request)).await.unwrap();
    let newsletter = newsletter.into_inner().draft.unwrap().id;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(8);
    for width_px in 1200..1204 {
        let (channel, token, draft, done) = (channel.clone(), token.clone(), newsletter.clone(), done_tx.clone());
        tokio::spawn(async move {
            let request = pb::RenderPreviewRequest { draft_id: draft, width_px, ..Default::default() };
            let _ = done.send(customize(&channel).render_preview(authed(&token, request)).await.map(|_| ())).await;
        });
    }
    timeout(STEP, done_rx.recv()).await.unwrap().unwrap().expect("the first preview renders");

    sigkill(&core);

    // Nobody hangs: the watch and every render in flight end with an error.
    // Updates sent before the kill may still be in flight; the stream then ends with an error.
    let ended = timeout(STEP, async {
        loop {
            match watch.message().await {
                Ok(Some(update)) => assert!(
                    !matches!(update.job.unwrap().state(), pb::JobState::Completed | pb::JobState::Aborted),
                    "a job cannot end while its core is dead"
                ),
                other => return other,
            }
        }
    })
    .await
    .expect("the watch ends when the core dies");
    assert!(ended.is_err(), "{ended:?}");
    // On a loaded machine the kill can come a render late, so the second render may have
    // answered before it; the ones still queued behind it must fail.
    let mut failed = 0;
    for _ in 0..3 {
        let outcome = timeout(STEP, done_rx.recv()).await.expect("renders in flight end").unwrap();
        failed += usize::from(outcome.is_err());
    }
    assert!(failed >= 2, "previews in flight cannot succeed once the core died: {failed} of 3 failed");
    drop(core);

    // The next start reports the job as ended, and knows nothing of the person's session.
    let core = start().await.unwrap();
    let channel = core.channel().await;
    wait_for_usage(&channel, pb::UsageEventKind::JobEnded, 1).await;
    assert!(core.log().contains("still running when the server stopped"), "{}", core.log());
    let request = authed(&token, pb::ListCategoriesRequest::default());
    let err = CatalogServiceClient::new(channel.clone()).list_categories(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "the old session died with the process");
    let fresh = start_session(&channel, "mfd-lobby").await;
    CatalogServiceClient::new(channel.clone())
        .list_categories(authed(&fresh, pb::ListCategoriesRequest::default()))
        .await
        .expect("the restarted core serves");

    // Nothing half-written is left behind: no partial spool files, no temporary files.
    let leftovers: Vec<PathBuf> = files_below(data.path())
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".part") || name.ends_with(".tmp") || name.starts_with(".tmp")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A printer that accepts connections and reads requests but never answers.
async fn hanging_printer() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            // Read what is sent (so the transfer starts), then stall with the connection open.
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            held.push(stream);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_printer_that_stops_answering_is_unavailable_within_the_printer_timeout() {
    let (addr, printer) = hanging_printer().await;
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("devices.toml");
    std::fs::write(
        &devices,
        format!(
            "[[device]]\nid = \"mfd-hang\"\ndisplay_name = \"Hung printer\"\nmodel = \"Test\"\ndelivery = \"ipp_push\"\n\
             printer_uri = \"ipp://{addr}/ipp/print\"\n"
        ),
    )
    .unwrap();
    let core =
        TestCore::builder().devices_file(&devices).printer_timeout(Duration::from_secs(1)).spawn().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-hang").await;
    let draft = finalized_static_draft(&channel, &token).await;

    let started = Instant::now();
    let err = timeout(STEP, PrintServiceClient::new(channel.clone()).submit_job(authed(&token, submit(&draft))))
        .await
        .expect("the call ends instead of hanging with the printer")
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("printer"), "a message a person can act on: {}", err.message());
    eprintln!("a hung printer was reported after {waited:?} (--printer-timeout 1s)");

    // The core keeps serving everyone else.
    let other = start_session(&channel, "mfd-lobby").await;
    let other_draft = finalized_static_draft(&channel, &other).await;
    PrintServiceClient::new(channel.clone()).submit_job(authed(&other, submit(&other_draft))).await.unwrap();
    printer.abort();
}

/// A small tmpfs mounted on a folder for one test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs (the tests run as root, as CI does)");
        assert!(status.success(), "mounting a {size} tmpfs on {} failed", path.display());
        SmallDisk { path: path.to_path_buf() }
    }

    /// Fills the disk up with a file, leaving nothing free.
    fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut file, &chunk).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test]
async fn a_full_spool_disk_refuses_the_job_clearly_leaves_no_partial_file_and_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // Smaller than the static product's PDF (about 17 KB).
    let disk = SmallDisk::mount(&spool, "8k");
    let core = TestCore::builder()
        .operator_token(OPERATOR_TOKEN)
        .spool_dir(&spool)
        .job_poll(Duration::from_millis(50))
        .spawn()
        .await
        .unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let draft = finalized_static_draft(&channel, &token).await;

    let err = PrintServiceClient::new(channel.clone()).submit_job(authed(&token, submit(&draft))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("spool folder"), "{}", err.message());
    assert!(core.log().contains("cannot write to the spool folder"), "the operator sees why:\n{}", core.log());
    let left = files_below(&spool);
    assert!(left.is_empty(), "no partial file stays in the spool folder: {left:?}");
    wait_for_usage(&channel, pb::UsageEventKind::JobEnded, 1).await;

    // The core keeps serving, and prints again once the disk has room.
    drop(disk);
    let job = PrintServiceClient::new(channel.clone()).submit_job(authed(&token, submit(&draft))).await.unwrap();
    assert_eq!(job.into_inner().job.unwrap().delivery_mode(), pb::DeliveryMode::SpoolFolder);
}

#[tokio::test]
async fn a_full_database_disk_loses_only_usage_events_says_so_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let disk = SmallDisk::mount(&data, "4m");
    let core = TestCore::builder().data_dir(&data).operator_token(OPERATOR_TOKEN).spawn().await.unwrap();
    let channel = core.channel().await;
    let filler = disk.fill();

    // People keep browsing while usage events cannot be written.
    eventually("a full disk to be logged", STEP, || async {
        if core.log().contains("could not write usage events") {
            return Some(());
        }
        let token = start_session(&channel, "mfd-lobby").await;
        let request = authed(&token, pb::GetProductRequest { product_id: "classic-business-card".into() });
        CatalogServiceClient::new(channel.clone()).get_product(request).await.expect("browsing works");
        None
    })
    .await;

    // Room again: new events are counted.
    std::fs::remove_file(filler).unwrap();
    let before = usage_total(&channel, pb::UsageEventKind::SessionStarted).await;
    start_session(&channel, "mfd-lobby").await;
    eventually("events to be written again once the disk has room", STEP, || async {
        let total = usage_total(&channel, pb::UsageEventKind::SessionStarted).await;
        if total > before { Ok(()) } else { Err(total) }
    })
    .await;
    drop(channel);
    drop(core);
    drop(disk);
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_stops_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // Its folder is a file: the database can be neither found nor created.
    std::fs::write(dir.path().join("not-a-folder"), b"").unwrap();
    let missing = dir.path().join("not-a-folder").join("podconnect.db");
    let err = TestCore::builder()
        .database_url(&format!("sqlite://{}", missing.display()))
        .spawn()
        .await
        .err()
        .expect("the core refuses to start");
    let message = format!("{err:#}");
    assert!(message.contains("cannot open the database"), "{message}");
}
