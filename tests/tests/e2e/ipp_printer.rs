//! The IPP delivery mode (`server::printing::ipp::IppPrinter`) against a real IPP Everywhere
//! printer, CUPS's `ippeveprinter`, on loopback: capabilities, printing over ipp and over ipps
//! with a pinned certificate, cancel, refusals mapped to clear errors, Print-URI (the printer
//! pulls the PDF), and a sequential run for timing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use server::domain::devices::{ColorMode, DeliveryMode, Device, PrinterUri, Sides};
use server::domain::error::CoreError;
use server::domain::ids::DeviceId;
use server::domain::printing::{
    JobDocument, JobState, JobTicket, Printer, PrinterJobRef, PrinterJobStatus, PullSource, Refusal, Refused,
};
use server::printing::ipp::IppPrinter;
use tests::ipp::{TestPrinter, TestPrinterBuilder};
use tests::wait::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A job on an idle loopback printer finishes within this; a poll loop never runs longer.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

async fn start(builder: TestPrinterBuilder) -> TestPrinter {
    builder.start().await.unwrap_or_else(|err| panic!("the test printer must start: {err:#}"))
}

fn ipp() -> IppPrinter {
    // The server installs the provider in main; reqwest wants one process-wide.
    let _ = rustls::crypto::ring::default_provider().install_default();
    IppPrinter::new(Duration::from_secs(10))
}

fn device(uri: &str, pin: Option<[u8; 32]>) -> Device {
    Device {
        id: DeviceId::parse("ipp-e2e").expect("a valid device id"),
        display_name: "IPP e2e".into(),
        model: "ippeveprinter".into(),
        delivery: DeliveryMode::IppPush,
        printer_uri: Some(PrinterUri::parse(uri).expect("a valid printer URI")),
        pinned_certificate_sha256: pin,
        location: "loopback".into(),
        capabilities: None,
        registered_at: None,
        updated_at: None,
    }
}

fn ticket() -> JobTicket {
    JobTicket {
        job_name: "fire-action-notice".into(),
        copies: 1,
        sides: Sides::OneSided,
        color_mode: ColorMode::Color,
        media: Some("iso_a4_210x297mm".into()),
        document_format: "application/pdf".into(),
    }
}

/// A real product PDF from the sample storefront.
fn sample_pdf() -> Vec<u8> {
    let path =
        concat!(env!("CARGO_MANIFEST_DIR"), "/../server/storefront/sample/products/fire-action-notice/document.pdf");
    std::fs::read(path).expect("the sample product PDF exists")
}

/// Polls the job until it is terminal (bounded), returning the last status and every state seen.
async fn wait_terminal(ipp: &IppPrinter, device: &Device, job: &PrinterJobRef) -> (PrinterJobStatus, Vec<JobState>) {
    let seen = std::cell::RefCell::new(Vec::new());
    let status = eventually(&format!("job {} to end", job.0), JOB_TIMEOUT, || async {
        let status = ipp.status(device, job).await.expect("Get-Job-Attributes works");
        let mut seen = seen.borrow_mut();
        if seen.last() != Some(&status.state) {
            seen.push(status.state);
        }
        if status.state.is_terminal() { Ok(status) } else { Err(status) }
    })
    .await;
    (status, seen.into_inner())
}

fn assert_completed(status: &PrinterJobStatus) {
    assert_eq!(status.state, JobState::Completed, "{status:?}");
    assert!(status.reasons.iter().any(|r| r == "job-completed-successfully"), "{status:?}");
}

#[tokio::test]
async fn capabilities_are_read_from_the_printer() {
    let printer = start(TestPrinter::builder()).await;
    let caps = ipp().capabilities(&device(&printer.uri, None)).await.expect("Get-Printer-Attributes works");

    assert!(caps.document_formats.iter().any(|f| f == "application/pdf"), "{caps:?}");
    let a4 = caps.media.iter().find(|m| m.keyword == "iso_a4_210x297mm").expect("A4 is listed");
    assert_eq!((a4.display_name.as_str(), a4.width_mm, a4.height_mm), ("A4", 210.0, 297.0));
    let letter = caps.media.iter().find(|m| m.keyword == "na_letter_8.5x11in").expect("Letter is listed");
    assert_eq!((letter.width_mm, letter.height_mm), (215.9, 279.4));
    assert!(caps.default_media.is_some(), "{caps:?}");
    assert!(caps.copies_max > 1, "{caps:?}");
    for sides in [Sides::OneSided, Sides::TwoSidedLongEdge, Sides::TwoSidedShortEdge] {
        assert!(caps.sides.contains(&sides), "{sides:?} in {caps:?}");
    }
    assert!(caps.color_modes.contains(&ColorMode::Color) && caps.color_modes.contains(&ColorMode::Monochrome));
    assert!(caps.accepting_jobs, "{caps:?}");
    assert!(caps.state_reasons.is_empty(), "an idle printer reports no reasons: {caps:?}");
}

#[tokio::test]
async fn a_pdf_prints_over_ipp_and_arrives_byte_identical() {
    let printer = start(TestPrinter::builder()).await;
    let ipp = ipp();
    let device = device(&printer.uri, None);
    let pdf = sample_pdf();

    let started = Instant::now();
    let job = ipp.submit(&device, &ticket(), JobDocument::Bytes(pdf.clone().into())).await.expect("the job is taken");
    let submitted = started.elapsed();
    let file = printer.wait_for_job_file(&job.0, pdf.len(), JOB_TIMEOUT).await.expect("the printer keeps the file");
    let on_printer = started.elapsed();
    let (status, seen) = wait_terminal(&ipp, &device, &job).await;
    eprintln!(
        "ipp: {} bytes, submit (Validate-Job + Print-Job) {submitted:?}, file on the printer after {on_printer:?}, \
         completed after {:?}; states {seen:?}",
        pdf.len(),
        started.elapsed()
    );

    assert_completed(&status);
    assert!(file.name.ends_with(".pdf"), "{}", file.name);
    assert!(file.bytes == pdf, "the spooled file differs from the PDF sent");
}

#[tokio::test]
async fn a_pdf_prints_over_ipps_only_with_the_pinned_certificate() {
    let printer = start(TestPrinter::builder().tls()).await;
    let ipps_uri = printer.ipps_uri.clone().expect("a TLS printer has an ipps URI");
    let pin = printer.cert_sha256.expect("a TLS printer has a certificate");
    let ipp = ipp();
    let pdf = sample_pdf();

    // A wrong pin: the handshake fails before any IPP, so nothing reaches the printer.
    let mut wrong = pin;
    wrong[0] ^= 0xff;
    let err = ipp.submit(&device(&ipps_uri, Some(wrong)), &ticket(), JobDocument::Bytes(pdf.clone().into())).await;
    match err {
        Err(Refused { why, error: CoreError::FailedPrecondition(message) }) => {
            assert!(message.contains("not the pinned one") && message.contains(&hex(&pin)), "{message}");
            assert_eq!(why, Refusal::CertificateMismatch, "the job's reason is the pin mismatch");
        }
        other => panic!("a wrong pin must be refused, got {other:?}"),
    }
    let err = ipp.capabilities(&device(&ipps_uri, None)).await.expect_err("ipps without a pin is refused");
    assert!(matches!(&err, CoreError::FailedPrecondition(m) if m.contains("pinned certificate")), "{err:?}");
    assert!(printer.spooled_files().expect("the spool folder is readable").is_empty(), "no job may arrive");

    let device = device(&ipps_uri, Some(pin));
    let caps = ipp.capabilities(&device).await.expect("Get-Printer-Attributes over ipps works");
    assert!(caps.document_formats.iter().any(|f| f == "application/pdf"));
    let started = Instant::now();
    let job = ipp.submit(&device, &ticket(), JobDocument::Bytes(pdf.clone().into())).await.expect("the job is taken");
    let file = printer.wait_for_job_file(&job.0, pdf.len(), JOB_TIMEOUT).await.expect("the printer keeps the file");
    let on_printer = started.elapsed();
    let (status, _) = wait_terminal(&ipp, &device, &job).await;
    eprintln!("ipps: file on the printer after {on_printer:?}, completed after {:?}", started.elapsed());
    assert_completed(&status);
    assert!(file.bytes == pdf, "the spooled file differs from the PDF sent");
    assert_eq!(printer.spooled_files().expect("the spool folder is readable").len(), 1, "exactly the pinned job");
}

#[tokio::test]
async fn a_job_canceled_right_away_ends_canceled() {
    // The print engine takes 4 s per job, so the cancel always lands while the job runs.
    let printer = start(TestPrinter::builder().processing_time(Duration::from_secs(4))).await;
    let ipp = ipp();
    let device = device(&printer.uri, None);

    let job = ipp.submit(&device, &ticket(), JobDocument::Bytes(sample_pdf().into())).await.expect("the job is taken");
    ipp.cancel(&device, &job).await.expect("Cancel-Job is accepted");
    let (status, seen) = wait_terminal(&ipp, &device, &job).await;
    assert_eq!(status.state, JobState::Canceled, "{status:?} after {seen:?}");
    assert!(status.reasons.iter().any(|r| r == "job-canceled-by-user"), "{status:?}");

    // Canceling a finished job is refused with a reason, not ignored. ippeveprinter reports the
    // job canceled slightly before its print engine has wound down and still takes a Cancel-Job
    // in that window, so ask until it settles (bounded).
    let again = eventually("the printer to refuse Cancel-Job for a canceled job", Duration::from_secs(10), || async {
        ipp.cancel(&device, &job).await.err()
    })
    .await;
    assert!(matches!(again, CoreError::FailedPrecondition(_)), "{again:?}");
}

#[tokio::test]
async fn a_format_the_printer_does_not_take_is_refused_by_name() {
    let printer = start(TestPrinter::builder().formats(&["image/jpeg"])).await;
    let ipp = ipp();
    let device = device(&printer.uri, None);

    let caps = ipp.capabilities(&device).await.expect("Get-Printer-Attributes works");
    assert!(!caps.document_formats.iter().any(|f| f == "application/pdf"), "{caps:?}");
    for format in ["application/pdf", "text/plain"] {
        let ticket = JobTicket { document_format: format.into(), ..ticket() };
        let refused = ipp.submit(&device, &ticket, JobDocument::Bytes(sample_pdf().into())).await.expect_err("refused");
        assert_eq!(refused.why, Refusal::DocumentFormat, "{format}");
        let err = refused.error;
        let expected = format!("does not accept {format} documents");
        assert!(matches!(&err, CoreError::FailedPrecondition(m) if m.contains(&expected)), "{format}: {err:?}");
    }
    assert!(printer.spooled_files().expect("the spool folder is readable").is_empty(), "no job may arrive");
}

#[tokio::test]
async fn a_printer_that_is_down_is_unavailable_quickly() {
    let ipp = ipp().with_connect_timeout(Duration::from_secs(2));

    // Nothing listens: refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let device_down = device(&format!("ipp://{closed}/ipp/print"), None);
    let started = Instant::now();
    let err = ipp.capabilities(&device_down).await.expect_err("nothing listens there");
    let refused_after = started.elapsed();
    let expected = format!("the printer at {closed} cannot be reached; check it is on and connected");
    assert!(matches!(&err, CoreError::Unavailable(m) if *m == expected), "{err:?}");
    assert!(refused_after < Duration::from_secs(2), "took {refused_after:?}");
    let err =
        ipp.submit(&device_down, &ticket(), JobDocument::Bytes(sample_pdf().into())).await.expect_err("down").error;
    assert!(matches!(&err, CoreError::Unavailable(m) if m.contains(&closed.to_string())), "{err:?}");

    // Something accepts but never answers: the request timeout bounds the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let impatient = IppPrinter::new(Duration::from_secs(1));
    let started = Instant::now();
    let err =
        impatient.status(&device(&format!("ipp://{silent_addr}/ipp/print"), None), &PrinterJobRef("1".into())).await;
    let waited = started.elapsed();
    hold.abort();
    assert!(matches!(&err, Err(CoreError::Unavailable(m)) if m.contains(&silent_addr.to_string())), "{err:?}");
    assert!(waited < Duration::from_secs(3), "took {waited:?}");
    eprintln!("down printer: refused after {refused_after:?}, silent printer given up after {waited:?}");
}

#[tokio::test]
async fn copies_over_the_printers_limit_are_refused_naming_copies() {
    let printer = start(TestPrinter::builder()).await;
    let ipp = ipp();
    let device = device(&printer.uri, None);
    let caps = ipp.capabilities(&device).await.expect("Get-Printer-Attributes works");

    let too_many = JobTicket { copies: caps.copies_max + 1, ..ticket() };
    let err = ipp.submit(&device, &too_many, JobDocument::Bytes(sample_pdf().into())).await.expect_err("refused").error;
    let expected = format!("copies={}", caps.copies_max + 1);
    assert!(matches!(&err, CoreError::InvalidArgument(m) if m.contains(&expected)), "{err:?}");

    let odd_media = JobTicket { media: Some("iso_a0_841x1189mm".into()), ..ticket() };
    let err =
        ipp.submit(&device, &odd_media, JobDocument::Bytes(sample_pdf().into())).await.expect_err("refused").error;
    assert!(matches!(&err, CoreError::InvalidArgument(m) if m.contains("media=iso_a0_841x1189mm")), "{err:?}");
    assert!(printer.spooled_files().expect("the spool folder is readable").is_empty(), "no job may arrive");
}

#[tokio::test]
async fn print_uri_makes_the_printer_fetch_the_pdf() {
    let printer = start(TestPrinter::builder()).await;
    let ipp = ipp();
    let device = device(&printer.uri, None);
    let pdf = sample_pdf();
    let source = PdfServer::serve(pdf.clone()).await;

    let pull = PullSource { url: source.url.clone(), expires_at: SystemTime::now() + Duration::from_secs(60) };
    let job = ipp.submit(&device, &ticket(), JobDocument::Pull(pull)).await.expect("Print-URI is taken");
    let (status, _) = wait_terminal(&ipp, &device, &job).await;
    assert_completed(&status);

    let requests = source.requests();
    assert_eq!(requests.len(), 1, "the printer fetched the document once: {requests:?}");
    assert!(requests[0].starts_with("GET /one-time/0c5e1b.pdf HTTP/1."), "{requests:?}");
    let file = printer.wait_for_job_file(&job.0, pdf.len(), JOB_TIMEOUT).await.expect("the printer keeps the file");
    assert!(file.bytes == pdf, "the pulled document differs from the PDF served");

    // An expired one-time URL never reaches the printer.
    let expired = PullSource { url: source.url.clone(), expires_at: SystemTime::now() - Duration::from_secs(1) };
    let err = ipp.submit(&device, &ticket(), JobDocument::Pull(expired)).await.expect_err("expired").error;
    assert!(matches!(err, CoreError::FailedPrecondition(_)), "{err:?}");
}

#[tokio::test]
async fn twenty_jobs_in_a_row_all_complete() {
    let printer = start(TestPrinter::builder()).await;
    let ipp = ipp();
    let device = device(&printer.uri, None);
    let pdf = sample_pdf();

    let started = Instant::now();
    let mut submits = Vec::new();
    for _ in 0..20 {
        let submit_started = Instant::now();
        let job = ipp.submit(&device, &ticket(), JobDocument::Bytes(pdf.clone().into())).await.expect("taken");
        submits.push(submit_started.elapsed());
        let (status, _) = wait_terminal(&ipp, &device, &job).await;
        assert_completed(&status);
    }
    let total = started.elapsed();
    submits.sort();
    eprintln!(
        "20 jobs in {total:?} ({:.0} jobs/min, polling every {:?}); submit median {:?}, max {:?}",
        20.0 / total.as_secs_f64() * 60.0,
        tests::wait::INTERVAL,
        submits[10],
        submits[19]
    );
    let files = printer.spooled_files().expect("the spool folder is readable");
    assert_eq!(files.len(), 20);
    assert!(files.iter().all(|file| file.bytes == pdf));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tiny HTTP server on loopback that serves the PDF to whoever asks and records each request line.
struct PdfServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PdfServer {
    async fn serve(pdf: Vec<u8>) -> PdfServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/one-time/0c5e1b.pdf", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
                seen.lock().expect("not poisoned").push(line);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    pdf.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.write_all(&pdf).await;
                let _ = stream.shutdown().await;
            }
        });
        PdfServer { url, requests, task }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("not poisoned").clone()
    }
}

impl Drop for PdfServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
