//! IPP push delivery: the core talks IPP (RFC 8011) to the printer itself over `ipp://` or
//! `ipps://` with a pinned certificate — Get-Printer-Attributes, Validate-Job, Print-Job,
//! Print-URI (the printer pulls), Get-Job-Attributes, Cancel-Job. Polling is the job runner's.
//!
//! The `ipp` crate only encodes requests and parses answers. HTTP goes through our own reqwest
//! client because the crate's client cannot take a rustls config. One job per file: `transport`
//! (reaching the printer, certificate pinning), `request` (building requests), `answer` (parsing
//! answers safely), `status` (named status codes, refusals and their reasons), `capabilities`
//! (capabilities and media names).

mod answer;
mod capabilities;
mod request;
mod status;
mod transport;

use std::time::Duration;

use async_trait::async_trait;
use ipp::model::{DelimiterTag, Operation};
use ipp::value::IppValue;

use crate::domain::devices::{Capabilities, ColorMode, Device, Sides};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::{JobDocument, JobTicket, Printer, PrinterJobRef, PrinterJobStatus, Refused};
use answer::{job_value, parse_answer};
pub use capabilities::parse_media;
use capabilities::read_capabilities;
use request::{add, add_ticket, check_pull_url, job_id_of, new_request};
use status::{check_job_answer, is_success, job_status_error, not_ipp, read_job_status, status_code, status_error};
use transport::Target;

/// How long a job waits for a busy printer before the refusal is passed on.
const BUSY_PATIENCE: Duration = Duration::from_secs(15);

/// Sends jobs to IPP printers. Each call opens its own connection: printers are few and calls
/// rare, and a fresh TLS handshake re-checks the pin every time.
pub struct IppPrinter {
    /// Bound on one whole IPP exchange, the upload of the document included.
    request_timeout: Duration,
    /// Bound on reaching the printer, so a printer that is off fails fast.
    connect_timeout: Duration,
}

impl Default for IppPrinter {
    fn default() -> Self {
        IppPrinter::new(Duration::from_secs(30))
    }
}

impl IppPrinter {
    /// A client whose IPP exchanges each take at most `request_timeout`; connecting takes at
    /// most 5 s (or `request_timeout` if shorter).
    pub fn new(request_timeout: Duration) -> Self {
        IppPrinter { request_timeout, connect_timeout: request_timeout.min(Duration::from_secs(5)) }
    }

    /// Changes the bound on reaching the printer.
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Validate-Job: the printer checks the ticket before any document travels.
    async fn validate(&self, target: &Target, ticket: &JobTicket) -> Result<(), Refused> {
        let mut request = new_request(Operation::ValidateJob, target)?;
        add_ticket(&mut request, ticket)?;
        let answer = self.ask(target, request).await?;
        check_job_answer(target, "Validate-Job", &answer, ticket)
    }
}

#[async_trait]
impl Printer for IppPrinter {
    async fn capabilities(&self, device: &Device) -> CoreResult<Capabilities> {
        let target = Target::of(device)?;
        let mut request = new_request(Operation::GetPrinterAttributes, &target)?;
        let wanted = [
            "media-supported",
            "media-default",
            "media-ready",
            "media-col-ready",
            "sides-supported",
            "sides-default",
            "print-color-mode-supported",
            "print-color-mode-default",
            "color-supported",
            "copies-supported",
            "document-format-supported",
            "printer-is-accepting-jobs",
            "printer-state-reasons",
        ];
        let wanted = wanted.iter().map(|name| IppValue::new_keyword(*name)).collect::<Result<Vec<_>, _>>();
        let wanted = wanted.map_err(|err| CoreError::internal("cannot build the printer request", err))?;
        add(&mut request, DelimiterTag::OperationAttributes, "requested-attributes", IppValue::Array(wanted))?;

        let answer = self.ask(&target, request).await?;
        if !is_success(&answer) {
            return Err(status_error(&target, "Get-Printer-Attributes", &answer).into());
        }
        Ok(read_capabilities(&answer))
    }

    async fn submit(
        &self,
        device: &Device,
        ticket: &JobTicket,
        document: JobDocument,
    ) -> Result<PrinterJobRef, Refused> {
        let target = Target::of(device)?;
        self.validate(&target, ticket).await?;

        // A printer busy with another job says so (server-error-busy); like other IPP clients we
        // wait and send again, with a growing pause, for a bounded time.
        let give_up = tokio::time::Instant::now() + BUSY_PATIENCE;
        let mut pause = Duration::from_millis(25);
        let (operation, label, answer) = loop {
            let (operation, label, answer) = match &document {
                JobDocument::Bytes(pdf) => {
                    let mut request = new_request(Operation::PrintJob, &target)?;
                    add_ticket(&mut request, ticket)?;
                    (Operation::PrintJob, "Print-Job", self.exchange(&target, request, Some(pdf)).await?)
                }
                JobDocument::Pull(source) => {
                    check_pull_url(&source.url, source.expires_at)?;
                    let mut request = new_request(Operation::PrintUri, &target)?;
                    let uri = IppValue::new_uri(source.url.as_str())
                        .map_err(|_| CoreError::InvalidArgument("the document URL is longer than IPP allows".into()))?;
                    add(&mut request, DelimiterTag::OperationAttributes, "document-uri", uri)?;
                    add_ticket(&mut request, ticket)?;
                    (Operation::PrintUri, "Print-URI", self.exchange(&target, request, None).await?)
                }
            };
            if status_code(&answer) != status::BUSY || tokio::time::Instant::now() + pause > give_up {
                break (operation, label, answer);
            }
            tracing::debug!(printer = %target.address, "printer busy; sending the job again shortly");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        };
        check_job_answer(&target, label, &answer, ticket)?;
        let job_id = job_value(&answer, "job-id").and_then(|value| value.as_integer().copied());
        match job_id {
            Some(id) if id > 0 => {
                tracing::debug!(printer = %target.address, ?operation, job_id = id, "printer took the job");
                Ok(PrinterJobRef(id.to_string()))
            }
            _ => Err(not_ipp(&target, &format!("{label} succeeded but the answer has no job-id")).into()),
        }
    }

    async fn status(&self, device: &Device, job: &PrinterJobRef) -> CoreResult<PrinterJobStatus> {
        let target = Target::of(device)?;
        let job_id = job_id_of(job)?;
        let mut request = new_request(Operation::GetJobAttributes, &target)?;
        add(&mut request, DelimiterTag::OperationAttributes, "job-id", IppValue::Integer(job_id))?;
        let wanted = ["job-state", "job-state-reasons", "job-state-message", "job-impressions-completed"];
        let wanted = wanted.iter().map(|name| IppValue::new_keyword(*name)).collect::<Result<Vec<_>, _>>();
        let wanted = wanted.map_err(|err| CoreError::internal("cannot build the printer request", err))?;
        add(&mut request, DelimiterTag::OperationAttributes, "requested-attributes", IppValue::Array(wanted))?;

        let answer = self.ask(&target, request).await?;
        read_job_status(&target, &answer, job_id)
    }

    async fn cancel(&self, device: &Device, job: &PrinterJobRef) -> CoreResult<()> {
        let target = Target::of(device)?;
        let job_id = job_id_of(job)?;
        let mut request = new_request(Operation::CancelJob, &target)?;
        add(&mut request, DelimiterTag::OperationAttributes, "job-id", IppValue::Integer(job_id))?;
        let answer = self.exchange(&target, request, None).await?;
        if !is_success(&answer) {
            return Err(job_status_error(&target, "Cancel-Job", &answer, job_id));
        }
        Ok(())
    }
}

/// What each operation makes of a printer's answer, without a printer: the entry point of the
/// fuzz target `ipp_answers` (fuzz/). `Err` is an answer that is not IPP; otherwise one outcome per
/// reading (capabilities, a job answer, a job status, a refusal), as the caller would see it.
#[doc(hidden)]
pub fn read_answer_offline(answer: Vec<u8>) -> Result<Vec<CoreResult<String>>, String> {
    let answer = parse_answer(answer)?;
    let target = Target {
        printer_uri: "ipp://printer.test:631/ipp/print".into(),
        http_url: "http://printer.test:631/ipp/print".into(),
        address: "printer.test:631".into(),
        pin: None,
    };
    let ticket = JobTicket {
        job_name: "Business cards".into(),
        copies: 1,
        sides: Sides::OneSided,
        color_mode: ColorMode::Color,
        media: None,
        document_format: "application/pdf".into(),
    };
    let capabilities = is_success(&answer).then(|| format!("{:?}", read_capabilities(&answer)));
    Ok(vec![
        capabilities.ok_or_else(|| status_error(&target, "Get-Printer-Attributes", &answer).error),
        check_job_answer(&target, "Print-Job", &answer, &ticket).map(|()| "accepted".into()).map_err(|r| r.error),
        read_job_status(&target, &answer, 7).map(|status| format!("{status:?}")),
        Err(job_status_error(&target, "Cancel-Job", &answer, 7)),
        Ok(job_value(&answer, "job-id").map(|value| value.to_string()).unwrap_or_default()),
    ])
}

#[cfg(test)]
mod tests {
    //! Parsing and mapping that need no printer; the real-printer tests are in tests/tests/e2e.

    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use ipp::model::{IppVersion, StatusCode};
    use ipp::request::IppRequestResponse;

    use super::answer::{printer_value, text, unsupported_attributes};
    use super::status::status_name;
    use super::*;
    use crate::domain::devices::PrinterUri;
    use crate::domain::printing::Refusal;

    fn device(uri: &str, pin: Option<[u8; 32]>) -> Device {
        Device {
            id: crate::domain::ids::DeviceId::parse("front-desk").unwrap(),
            display_name: "Front desk".into(),
            model: "Test".into(),
            delivery: crate::domain::devices::DeliveryMode::IppPush,
            printer_uri: Some(PrinterUri::parse(uri).unwrap()),
            pinned_certificate_sha256: pin,
            location: String::new(),
            capabilities: None,
            registered_at: None,
            updated_at: None,
        }
    }

    /// A printer on loopback that answers every request in full, except the first request of
    /// operation `stall`: that one gets its headers and half its answer, and then nothing. Returns
    /// its address and the operation of each request it was sent.
    async fn stalling_printer(stall: Operation) -> (std::net::SocketAddr, Arc<Mutex<Vec<u16>>>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                // One request per connection (the client opens a new one each time).
                let mut request = Vec::new();
                let body_at = loop {
                    let mut buf = [0u8; 8192];
                    let n = stream.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the client sent a whole request");
                    request.extend_from_slice(&buf[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                        let length = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap();
                        let length: usize = length.trim().parse().unwrap();
                        while request.len() < end + 4 + length {
                            let n = stream.read(&mut buf).await.unwrap();
                            request.extend_from_slice(&buf[..n]);
                        }
                        break end + 4;
                    }
                };
                let body = &request[body_at..];
                let operation = u16::from_be_bytes([body[2], body[3]]);
                let id = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                let first_of_its_kind = !log.lock().unwrap().contains(&operation);
                log.lock().unwrap().push(operation);
                let mut answer =
                    IppRequestResponse::new_response(IppVersion::v2_0(), StatusCode::SuccessfulOk, id).unwrap();
                add(&mut answer, DelimiterTag::JobAttributes, "job-id", IppValue::Integer(7)).unwrap();
                let state = if operation == Operation::PrintJob as u16 { 3 } else { 9 };
                add(&mut answer, DelimiterTag::JobAttributes, "job-state", IppValue::Enum(state)).unwrap();
                let answer = answer.to_bytes();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/ipp\r\nContent-Length: {}\r\n\r\n",
                    answer.len()
                );
                stream.write_all(head.as_bytes()).await.unwrap();
                if operation == stall as u16 && first_of_its_kind {
                    stream.write_all(&answer[..answer.len() / 2]).await.unwrap();
                    held.push(stream);
                } else {
                    stream.write_all(&answer).await.unwrap();
                }
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn a_stalled_answer_to_a_read_is_asked_again_but_a_print_job_is_never_sent_twice() {
        let ticket = JobTicket {
            job_name: "Business card".into(),
            copies: 1,
            sides: crate::domain::devices::Sides::OneSided,
            color_mode: crate::domain::devices::ColorMode::Color,
            media: None,
            document_format: "application/pdf".into(),
        };
        let printer = IppPrinter::new(Duration::from_secs(2));
        let document = || JobDocument::Bytes(Bytes::from_static(b"%PDF-1.7"));

        // Validate-Job and Get-Job-Attributes stall once each: both are asked again and answered.
        let (addr, seen) = stalling_printer(Operation::ValidateJob).await;
        let device = device(&format!("ipp://{addr}/ipp/print"), None);
        let job = printer.submit(&device, &ticket, document()).await.map_err(|refused| refused.error).unwrap();
        assert_eq!(job.0, "7");
        let (validate, print) = (Operation::ValidateJob as u16, Operation::PrintJob as u16);
        assert_eq!(*seen.lock().unwrap(), [validate, validate, print]);
        let (addr, seen) = stalling_printer(Operation::GetJobAttributes).await;
        let device = self::device(&format!("ipp://{addr}/ipp/print"), None);
        let status = printer.status(&device, &job).await.unwrap();
        assert_eq!(status.state, crate::domain::printing::JobState::Completed);
        assert_eq!(seen.lock().unwrap().len(), 2, "asked twice");

        // A Print-Job whose answer stalls may have been taken: it fails within the bound, once.
        let (addr, seen) = stalling_printer(Operation::PrintJob).await;
        let device = self::device(&format!("ipp://{addr}/ipp/print"), None);
        let started = std::time::Instant::now();
        let refused = printer.submit(&device, &ticket, document()).await.expect_err("the answer never came");
        assert_eq!(refused.why, Refusal::Unreachable);
        let said = format!("the printer at {addr} did not answer in time");
        assert!(matches!(&refused.error, CoreError::Unavailable(m) if m.contains(&said)), "{refused:?}");
        assert_eq!(*seen.lock().unwrap(), [validate, print], "the document went once");
        assert!(started.elapsed() < Duration::from_secs(4), "within the printer timeout: {:?}", started.elapsed());
    }

    #[test]
    fn media_names_are_parsed() {
        let a4 = parse_media("iso_a4_210x297mm").unwrap();
        assert_eq!((a4.display_name.as_str(), a4.width_mm, a4.height_mm), ("A4", 210.0, 297.0));
        let letter = parse_media("na_letter_8.5x11in").unwrap();
        assert_eq!((letter.display_name.as_str(), letter.width_mm, letter.height_mm), ("US Letter", 215.9, 279.4));
        let photo = parse_media("oe_photo-l_3.5x5in").unwrap();
        assert_eq!(photo.display_name, "Photo l (3.5 × 5 in)");
        assert!(parse_media("custom_min_25.4x25.4mm").is_none());
        assert!(parse_media("iso_a4").is_none());
        assert!(parse_media("iso_a4_axbmm").is_none());
        assert!(parse_media("na_x_0x11in").is_none());
    }

    #[test]
    fn targets_come_from_the_printer_uri_and_ipps_needs_a_pin() {
        let plain = Target::of(&device("ipp://localhost:8631/ipp/print", None)).unwrap();
        assert_eq!(plain.http_url, "http://localhost:8631/ipp/print");
        assert_eq!(plain.address, "localhost:8631");
        let secure = Target::of(&device("ipps://printer.local:631/ipp/print", Some([7; 32]))).unwrap();
        assert_eq!(secure.http_url, "https://printer.local:631/ipp/print");
        assert_eq!(secure.pin, Some([7; 32]));
        let unpinned = Target::of(&device("ipps://printer:631/ipp/print", None)).unwrap_err();
        assert!(matches!(unpinned, CoreError::FailedPrecondition(ref m) if m.contains("pinned certificate")));
    }

    #[test]
    fn status_codes_are_named_and_refusals_carry_their_reason() {
        let answer = |code: u16| {
            let mut bytes = vec![2, 0];
            bytes.extend_from_slice(&code.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, 1, 0x01, 0x03]);
            parse_answer(bytes).unwrap()
        };
        let target = Target::of(&device("ipp://printer.test:631/ipp/print", None)).unwrap();
        let ticket = JobTicket {
            job_name: "cards".into(),
            copies: 1,
            sides: Sides::OneSided,
            color_mode: ColorMode::Color,
            media: None,
            document_format: "application/pdf".into(),
        };
        let why = |code| check_job_answer(&target, "Print-Job", &answer(code), &ticket).unwrap_err().why;
        assert_eq!(why(status::DOCUMENT_FORMAT_NOT_SUPPORTED), Refusal::DocumentFormat);
        assert_eq!(why(status::DOCUMENT_ACCESS_ERROR), Refusal::DocumentAccess);
        assert_eq!(why(status::BUSY), Refusal::Unreachable);
        assert_eq!(why(status::NOT_AUTHORIZED), Refusal::Other);
        assert!(check_job_answer(&target, "Print-Job", &answer(0x0001), &ticket).is_ok(), "successful-ok-ignored");
    }

    #[test]
    fn garbage_answers_are_errors_not_panics() {
        for answer in [vec![], vec![2, 0], vec![2, 0, 0, 0, 0, 0, 0, 1, 0x01, 0x47, 0xff, 0xff], vec![0xff; 64]] {
            assert!(parse_answer(answer).is_err());
        }
    }

    #[test]
    fn a_text_with_language_that_overruns_its_value_is_refused_before_the_parser() {
        // From the ipp_answers fuzz target: printer-info as textWithLanguage (0x35) whose text
        // announces 0x636f bytes in a 6-byte value; the ipp crate panics on it.
        let mut answer = vec![2, 0, 0, 0, 0, 0, 0, 1, 0x04, 0x35, 0, 12];
        answer.extend_from_slice(b"printer-info");
        answer.extend_from_slice(&[0, 6, 0, 2, b'e', b'n', 0x63, 0x6f, 0x03]);
        let Err(err) = parse_answer(answer) else { panic!("an overrunning textWithLanguage must be refused") };
        assert!(err.contains("text or name with language"), "{err}");

        // A well-formed one still parses.
        let mut answer = vec![2, 0, 0, 0, 0, 0, 0, 1, 0x04, 0x35, 0, 12];
        answer.extend_from_slice(b"printer-info");
        answer.extend_from_slice(&[0, 8, 0, 2, b'e', b'n', 0, 2, b'h', b'i', 0x03]);
        let parsed = parse_answer(answer).expect("a valid textWithLanguage");
        assert_eq!(printer_value(&parsed, "printer-info").and_then(text).as_deref(), Some("hi"));
    }

    #[test]
    fn unsupported_attribute_names_lose_their_control_characters() {
        // From the ipp_answers fuzz target: client-error-attributes-or-values-not-supported with
        // an unsupported attribute whose name holds control characters.
        let mut answer = vec![2, 0, 0x04, 0x0b, 0, 0, 0, 1, 0x05, 0x44, 0, 7];
        answer.extend_from_slice(b"si\x1bd\nes");
        answer.extend_from_slice(&[0, 4]);
        answer.extend_from_slice(b"x\ry\0");
        answer.push(0x03);
        let Ok(parsed) = parse_answer(answer) else { panic!("a parseable answer") };
        assert_eq!(unsupported_attributes(&parsed), ["sides=xy"]);
    }

    #[test]
    fn status_names_follow_rfc_8011() {
        assert_eq!(
            status_name(status::ATTRIBUTES_OR_VALUES_NOT_SUPPORTED),
            "client-error-attributes-or-values-not-supported"
        );
        assert_eq!(status_name(0x0777), "IPP status 0x0777");
    }
}
