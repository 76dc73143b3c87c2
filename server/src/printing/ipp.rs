//! IPP push delivery: the core talks IPP (RFC 8011) to the printer itself over `ipp://` or
//! `ipps://` with a pinned certificate — Get-Printer-Attributes, Validate-Job, Print-Job,
//! Print-URI (the printer pulls), Get-Job-Attributes, Cancel-Job. Polling is the job runner's.
//!
//! The `ipp` crate only encodes requests and parses answers. HTTP goes through our own reqwest
//! client because the crate's client cannot take a rustls config, and a printer's self-signed
//! certificate is trusted by its SHA-256 pin, never by a CA.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use ipp::attribute::IppAttribute;
use ipp::model::{DelimiterTag, IppVersion, Operation};
use ipp::parser::{IppParseError, IppParser};
use ipp::prelude::Uri;
use ipp::reader::IppReader;
use ipp::request::IppRequestResponse;
use ipp::value::IppValue;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::{
    Capabilities, ColorMode, Device, JobDocument, JobState, JobTicket, Media, Printer, PrinterJobRef, PrinterJobStatus,
    Sides,
};

/// `requesting-user-name` of every request: jobs are never tied to a person on the printer.
const USER_NAME: &str = "podconnect";
/// Printers answer with a few KiB (a large Get-Printer-Attributes is ~100 KiB); more is not IPP.
const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// How much of a printer's own `status-message` a caller sees.
const MAX_PRINTER_MESSAGE: usize = 200;

/// IPP `server-error-busy`: the printer is handling another job.
const STATUS_BUSY: u16 = 0x0507;
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

    /// Sends one IPP request (plus the document, if any) and parses the answer.
    async fn exchange(
        &self,
        target: &Target,
        request: IppRequestResponse,
        document: Option<&Bytes>,
    ) -> CoreResult<IppRequestResponse> {
        let seen_wrong_cert = Arc::new(OnceLock::new());
        let client = self.client(target, seen_wrong_cert.clone())?;

        let head = request.to_bytes();
        let mut body = BytesMut::with_capacity(head.len() + document.map_or(0, |d| d.len()));
        body.put(head);
        if let Some(document) = document {
            body.put(document.clone());
        }

        let sent =
            client.post(&target.http_url).header("content-type", "application/ipp").body(body.freeze()).send().await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return Err(transport_error(target, &seen_wrong_cert, &err)),
        };
        let http_status = response.status();
        if !http_status.is_success() {
            return Err(http_error(target, http_status.as_u16()));
        }

        let mut answer = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if answer.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(not_ipp(target, "the answer is larger than any IPP answer"));
                    }
                    answer.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => return Err(transport_error(target, &seen_wrong_cert, &err)),
            }
        }
        parse_answer(answer).map_err(|detail| not_ipp(target, &detail))
    }

    /// One HTTP client for one call: TLS is always our rustls config (ring, pin check), so
    /// reqwest never looks for a process-wide crypto provider or the system's roots.
    fn client(&self, target: &Target, seen_wrong_cert: Arc<OnceLock<[u8; 32]>>) -> CoreResult<reqwest::Client> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let verifier = PinnedCertVerifier { pin: target.pin, algorithms, seen_wrong_cert };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| CoreError::internal("cannot set up TLS for the printer", err))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            // Printers are on the local network: never through a proxy, never elsewhere.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("podconnect/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| CoreError::internal("cannot set up the printer connection", err))
    }

    /// Validate-Job: the printer checks the ticket before any document travels.
    async fn validate(&self, target: &Target, ticket: &JobTicket) -> CoreResult<()> {
        let mut request = new_request(Operation::ValidateJob, target)?;
        add_ticket(&mut request, ticket)?;
        let answer = self.exchange(target, request, None).await?;
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

        let answer = self.exchange(&target, request, None).await?;
        if !is_success(&answer) {
            return Err(status_error(&target, "Get-Printer-Attributes", &answer));
        }
        Ok(read_capabilities(&answer))
    }

    async fn submit(&self, device: &Device, ticket: &JobTicket, document: JobDocument) -> CoreResult<PrinterJobRef> {
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
            if status_code(&answer) != STATUS_BUSY || tokio::time::Instant::now() + pause > give_up {
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
            _ => Err(not_ipp(&target, &format!("{label} succeeded but the answer has no job-id"))),
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

        let answer = self.exchange(&target, request, None).await?;
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

/// Get-Job-Attributes' answer as a job status.
fn read_job_status(target: &Target, answer: &IppRequestResponse, job_id: i32) -> CoreResult<PrinterJobStatus> {
    if !is_success(answer) {
        return Err(job_status_error(target, "Get-Job-Attributes", answer, job_id));
    }
    let raw_state = job_value(answer, "job-state").and_then(|value| value.as_enum().copied());
    let Some(state) = raw_state.and_then(JobState::from_ipp) else {
        let seen = raw_state.map_or("none".to_string(), |state| state.to_string());
        return Err(not_ipp(target, &format!("job {job_id} has job-state {seen}, which IPP does not define")));
    };
    let reasons = job_value(answer, "job-state-reasons")
        .map(|value| each(value).filter_map(text).filter(|reason| reason != "none").collect())
        .unwrap_or_default();
    let message = job_value(answer, "job-state-message").and_then(text).map(|m| clean(&m)).filter(|m| !m.is_empty());
    let pages_printed = job_value(answer, "job-impressions-completed")
        .and_then(|value| value.as_integer().copied())
        .and_then(|pages| u32::try_from(pages).ok());
    Ok(PrinterJobStatus { state, reasons, message, pages_printed })
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
        capabilities.ok_or_else(|| status_error(&target, "Get-Printer-Attributes", &answer)),
        check_job_answer(&target, "Print-Job", &answer, &ticket).map(|()| "accepted".into()),
        read_job_status(&target, &answer, 7).map(|status| format!("{status:?}")),
        Err(job_status_error(&target, "Cancel-Job", &answer, 7)),
        Ok(job_value(&answer, "job-id").map(|value| value.to_string()).unwrap_or_default()),
    ])
}

/// Where a device's printer is and how to reach it.
#[derive(Debug, Clone)]
struct Target {
    /// The configured URI, sent as `printer-uri`.
    printer_uri: String,
    /// The same printer as `http://` or `https://`, where the request goes.
    http_url: String,
    /// `host:port`, for messages.
    address: String,
    /// The certificate pin for `ipps`; `None` for plain `ipp`.
    pin: Option<[u8; 32]>,
}

impl Target {
    fn of(device: &Device) -> CoreResult<Target> {
        let Some(raw) = device.printer_uri.as_deref() else {
            return Err(CoreError::FailedPrecondition(format!(
                "device {} has no printer URI; set one like ipps://printer:631/ipp/print",
                device.display_name
            )));
        };
        let example = "e.g. ipps://printer:631/ipp/print";
        let invalid = |why: &str| CoreError::InvalidArgument(format!("printer URI {raw:?}: {why} ({example})"));
        let uri: Uri = raw.trim().parse().map_err(|_| invalid("not a URI"))?;
        let secure = match uri.scheme_str() {
            Some("ipps") => true,
            Some("ipp") => false,
            _ => return Err(invalid("use ipp:// or ipps://")),
        };
        let authority = uri.authority().ok_or_else(|| invalid("no printer host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("remove the user name and password"));
        }
        if authority.host().is_empty() {
            return Err(invalid("no printer host"));
        }
        // The ipp crate and some stacks guess 443 for ipps, RFC 7472 says 631: never guess.
        if authority.port_u16().is_none() {
            return Err(invalid("add the port"));
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let pin = if secure {
            let Some(pin) = device.pinned_certificate_sha256 else {
                return Err(CoreError::FailedPrecondition(format!(
                    "an ipps printer needs a pinned certificate: pin the SHA-256 of the certificate of {authority}"
                )));
            };
            Some(pin)
        } else {
            None
        };
        Ok(Target {
            printer_uri: format!("{}://{authority}{}", if secure { "ipps" } else { "ipp" }, uri.path()),
            http_url: format!("{}://{authority}{path}", if secure { "https" } else { "http" }),
            address: authority.to_string(),
            pin,
        })
    }
}

/// Trusts exactly one certificate: the one whose DER has the pinned SHA-256. The handshake
/// signatures are still verified, so the printer must hold that certificate's key. Names and
/// dates are not checked: printers' self-signed certificates rarely have either right.
#[derive(Debug)]
struct PinnedCertVerifier {
    /// `None` for plain `ipp`, where every certificate is refused (a redirect to https, say).
    pin: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
    /// The fingerprint of a refused certificate, so the error can say "wrong certificate".
    seen_wrong_cert: Arc<OnceLock<[u8; 32]>>,
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.pin == Some(seen) {
            return Ok(ServerCertVerified::assertion());
        }
        let _ = self.seen_wrong_cert.set(seen);
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A request with the operation attributes every operation needs, in the order RFC 8011
/// requires (the crate puts charset, language and printer-uri first on encoding).
fn new_request(operation: Operation, target: &Target) -> CoreResult<IppRequestResponse> {
    let mut request = IppRequestResponse::new(IppVersion::v2_0(), operation, None)
        .map_err(|err| CoreError::internal("cannot build the printer request", err))?;
    let uri = IppValue::new_uri(target.printer_uri.as_str())
        .map_err(|_| CoreError::InvalidArgument("the printer URI is longer than IPP allows".into()))?;
    add(&mut request, DelimiterTag::OperationAttributes, "printer-uri", uri)?;
    let user = IppValue::new_name_without_language(USER_NAME)
        .map_err(|err| CoreError::internal("cannot build the printer request", err))?;
    add(&mut request, DelimiterTag::OperationAttributes, "requesting-user-name", user)?;
    Ok(request)
}

fn add(request: &mut IppRequestResponse, group: DelimiterTag, name: &str, value: IppValue) -> CoreResult<()> {
    let attribute = IppAttribute::with_name(name, value)
        .map_err(|err| CoreError::internal("cannot build the printer request", err))?;
    request.attributes_mut().add(group, attribute);
    Ok(())
}

/// The job's operation attributes (name, format) and Job Template attributes (copies, sides,
/// colour, media), the same for Validate-Job, Print-Job and Print-URI.
fn add_ticket(request: &mut IppRequestResponse, ticket: &JobTicket) -> CoreResult<()> {
    let bad = |field: &str, why: &str| CoreError::InvalidArgument(format!("job ticket {field}: {why}"));
    let format = ticket.document_format.trim();
    if !is_mime_type(format) {
        return Err(bad("document_format", "must be a MIME type such as application/pdf"));
    }
    if ticket.copies == 0 {
        return Err(bad("copies", "must be at least 1"));
    }
    let copies = i32::try_from(ticket.copies).map_err(|_| bad("copies", "is too large"))?;
    let name = IppValue::new_name_without_language(truncate(&clean(&ticket.job_name), 255))
        .map_err(|_| bad("job_name", "is not a valid name"))?;
    let format = IppValue::new_mime_media_type(format).map_err(|_| bad("document_format", "is too long"))?;

    add(request, DelimiterTag::OperationAttributes, "job-name", name)?;
    add(request, DelimiterTag::OperationAttributes, "document-format", format)?;
    add(request, DelimiterTag::JobAttributes, "copies", IppValue::Integer(copies))?;
    add(request, DelimiterTag::JobAttributes, "sides", keyword(ticket.sides.keyword())?)?;
    add(request, DelimiterTag::JobAttributes, "print-color-mode", keyword(ticket.color_mode.keyword())?)?;
    if let Some(media) = &ticket.media {
        let valid = !media.is_empty() && media.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(bad("media", "must be a media keyword such as iso_a4_210x297mm"));
        }
        let media = IppValue::new_keyword(media.as_str()).map_err(|_| bad("media", "is too long"))?;
        add(request, DelimiterTag::JobAttributes, "media", media)?;
    }
    Ok(())
}

fn keyword(value: &str) -> CoreResult<IppValue> {
    IppValue::new_keyword(value).map_err(|err| CoreError::internal("cannot build the printer request", err))
}

/// The printer fetches the document itself, so only web URLs that are still valid are sent.
fn check_pull_url(url: &str, expires_at: SystemTime) -> CoreResult<()> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(CoreError::InvalidArgument("the document URL for the printer must be http:// or https://".into()));
    }
    if expires_at <= SystemTime::now() {
        return Err(CoreError::FailedPrecondition(
            "the document's one-time URL has expired; submit the job again".into(),
        ));
    }
    Ok(())
}

fn job_id_of(job: &PrinterJobRef) -> CoreResult<i32> {
    match job.0.parse::<i32>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(CoreError::InvalidArgument(format!("{:?} is not an IPP job id", job.0))),
    }
}

/// Parses an IPP answer. The crate has panicked on malformed values before (and still does, see
/// `check_with_language_values`); a printer's bytes must never take the server down, so a panic
/// becomes an error too.
fn parse_answer(answer: Vec<u8>) -> Result<IppRequestResponse, String> {
    check_with_language_values(&answer)?;
    let parsed =
        std::panic::catch_unwind(AssertUnwindSafe(move || IppParser::new(IppReader::new(Cursor::new(answer))).parse()));
    match parsed {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(parse_error_text(&err)),
        Err(_) => Err("the IPP parser failed on the answer".into()),
    }
}

/// The `ipp` crate (8.0) slices a textWithLanguage or nameWithLanguage value by the lengths inside
/// it without checking them, and panics when they overrun the value (found by the `ipp_answers`
/// fuzz target). Such values are refused here, walking the attributes the way its parser does;
/// anything else malformed is left for the parser to report.
fn check_with_language_values(answer: &[u8]) -> Result<(), String> {
    fn split_u16(bytes: &[u8]) -> Option<(usize, &[u8])> {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        Some((usize::from(u16::from_be_bytes(*len)), rest))
    }
    fn fits(value: &[u8]) -> bool {
        let Some((language, rest)) = split_u16(value) else { return false };
        let Some((text, rest)) = rest.get(language..).and_then(split_u16) else { return false };
        rest.len() >= text
    }
    let mut rest = answer.get(8..).unwrap_or_default(); // version, status code, request id
    while let Some((&tag, tail)) = rest.split_first() {
        match tag {
            0x03 => break, // end-of-attributes-tag
            0x01..=0x0a => rest = tail,
            0x10..=0x4a => {
                let Some((name, tail)) = split_u16(tail) else { break };
                let Some((value, tail)) = tail.get(name..).and_then(split_u16) else { break };
                let Some(bytes) = tail.get(..value) else { break };
                if matches!(tag, 0x35 | 0x36) && !fits(bytes) {
                    return Err("the answer is not valid IPP (a text or name with language overruns its value)".into());
                }
                rest = &tail[value..];
            }
            _ => break,
        }
    }
    Ok(())
}

fn parse_error_text(err: &IppParseError) -> String {
    format!("the answer is not valid IPP ({err})")
}

/// IPP status codes 0x0000 to 0x00ff are all successes (RFC 8011 §B.1.2).
fn is_success(answer: &IppRequestResponse) -> bool {
    (0..0x0100).contains(&status_code(answer))
}

fn status_code(answer: &IppRequestResponse) -> u16 {
    answer.header().operation_or_status as u16
}

/// The RFC 8011 keyword of a status code, for messages and logs.
fn status_name(code: u16) -> String {
    let name = match code {
        0x0400 => "client-error-bad-request",
        0x0401 => "client-error-forbidden",
        0x0402 => "client-error-not-authenticated",
        0x0403 => "client-error-not-authorized",
        0x0404 => "client-error-not-possible",
        0x0405 => "client-error-timeout",
        0x0406 => "client-error-not-found",
        0x0407 => "client-error-gone",
        0x0408 => "client-error-request-entity-too-large",
        0x0409 => "client-error-request-value-too-long",
        0x040A => "client-error-document-format-not-supported",
        0x040B => "client-error-attributes-or-values-not-supported",
        0x040C => "client-error-uri-scheme-not-supported",
        0x040D => "client-error-charset-not-supported",
        0x040E => "client-error-conflicting-attributes",
        0x040F => "client-error-compression-not-supported",
        0x0410 => "client-error-compression-error",
        0x0411 => "client-error-document-format-error",
        0x0412 => "client-error-document-access-error",
        0x0500 => "server-error-internal-error",
        0x0501 => "server-error-operation-not-supported",
        0x0502 => "server-error-service-unavailable",
        0x0503 => "server-error-version-not-supported",
        0x0504 => "server-error-device-error",
        0x0505 => "server-error-temporary-error",
        0x0506 => "server-error-not-accepting-jobs",
        0x0507 => "server-error-busy",
        0x0508 => "server-error-job-canceled",
        0x0509 => "server-error-multiple-document-jobs-not-supported",
        _ => return format!("IPP status 0x{code:04x}"),
    };
    name.to_string()
}

/// The answer to Validate-Job, Print-Job or Print-URI: a refused format or an unsupported
/// ticket value gets its own message, naming the format or the attribute.
fn check_job_answer(target: &Target, label: &str, answer: &IppRequestResponse, ticket: &JobTicket) -> CoreResult<()> {
    let code = status_code(answer);
    if is_success(answer) {
        let ignored = unsupported_attributes(answer);
        if !ignored.is_empty() {
            tracing::info!(printer = %target.address, operation = label, ignored = %ignored.join(", "),
                "printer ignored or substituted job attributes");
        }
        return Ok(());
    }
    let format = ticket.document_format.trim();
    let refused_format = || {
        CoreError::FailedPrecondition(format!("the printer at {} does not accept {format} documents", target.address))
    };
    match code {
        0x040A => Err(refused_format()),
        // Printers answer 0x040B for a refused format too (ippeveprinter does); the unsupported
        // attributes group tells which attribute it was.
        0x040B => {
            let unsupported = unsupported_attributes(answer);
            let format_named = unsupported.iter().any(|attribute| attribute.starts_with("document-format"));
            if unsupported.is_empty() || format_named {
                Err(refused_format())
            } else {
                Err(CoreError::InvalidArgument(format!(
                    "the printer at {} does not support {}",
                    target.address,
                    unsupported.join(", ")
                )))
            }
        }
        0x040E => Err(CoreError::InvalidArgument(format!(
            "the printer at {} refuses this combination of job settings ({})",
            target.address,
            unsupported_attributes(answer).join(", ")
        ))),
        0x0412 => Err(CoreError::FailedPrecondition(format!(
            "the printer at {} could not fetch the document from its URL{}",
            target.address,
            printer_says(answer)
        ))),
        0x040C => Err(CoreError::FailedPrecondition(format!(
            "the printer at {} cannot fetch documents over this kind of URL{}",
            target.address,
            printer_says(answer)
        ))),
        _ => Err(status_error(target, label, answer)),
    }
}

/// Errors of Get-Job-Attributes and Cancel-Job: a job the printer does not know is `NotFound`.
fn job_status_error(target: &Target, label: &str, answer: &IppRequestResponse, job_id: i32) -> CoreError {
    match status_code(answer) {
        0x0406 | 0x0407 => {
            CoreError::NotFound(format!("the printer at {} does not know job {job_id} (any more)", target.address))
        }
        0x0404 if label == "Cancel-Job" => CoreError::FailedPrecondition(format!(
            "the printer at {} cannot cancel job {job_id}, most likely because it has finished{}",
            target.address,
            printer_says(answer)
        )),
        _ => status_error(target, label, answer),
    }
}

/// Any other refusal: busy-like answers are `Unavailable` (retrying can work), the rest
/// `FailedPrecondition` (the printer or its configuration must change).
fn status_error(target: &Target, label: &str, answer: &IppRequestResponse) -> CoreError {
    let code = status_code(answer);
    let name = status_name(code);
    let says = printer_says(answer);
    tracing::warn!(printer = %target.address, operation = label, status = %name, "printer refused the request");
    let address = &target.address;
    match code {
        0x0502 | 0x0504 | 0x0505 | 0x0506 | 0x0507 => {
            CoreError::Unavailable(format!("the printer at {address} cannot take {label} right now ({name}){says}"))
        }
        0x0501 => CoreError::FailedPrecondition(format!("the printer at {address} does not support {label} ({name})")),
        0x0401..=0x0403 => CoreError::FailedPrecondition(format!(
            "the printer at {address} refused {label} ({name}): it asks for a login podconnect does not have{says}"
        )),
        0x0400..=0x04ff => {
            CoreError::FailedPrecondition(format!("the printer at {address} refused {label} ({name}){says}"))
        }
        _ => CoreError::Unavailable(format!("the printer at {address} failed {label} ({name}){says}")),
    }
}

/// `": <status-message>"` when the printer sent one.
fn printer_says(answer: &IppRequestResponse) -> String {
    let message = answer
        .attributes()
        .groups_of(DelimiterTag::OperationAttributes)
        .find_map(|group| group.get("status-message"))
        .and_then(|attribute| text(attribute.value()))
        .map(|message| truncate(&clean(&message), MAX_PRINTER_MESSAGE).to_string());
    match message {
        Some(message) if !message.is_empty() => format!(": the printer says \"{message}\""),
        _ => String::new(),
    }
}

/// The unsupported-attributes group as `name=value` strings.
fn unsupported_attributes(answer: &IppRequestResponse) -> Vec<String> {
    answer
        .attributes()
        .groups_of(DelimiterTag::UnsupportedAttributes)
        .flat_map(|group| group.attributes())
        .map(|attribute| {
            let values: Vec<String> = each(attribute.value()).map(|value| clean(&value.to_string())).collect();
            let values = values.join(",");
            // The name is the printer's text too: no control characters into messages and logs.
            let name = clean(attribute.name());
            if values.is_empty() { name } else { format!("{name}={values}") }
        })
        .collect()
}

fn printer_value<'a>(answer: &'a IppRequestResponse, name: &str) -> Option<&'a IppValue> {
    answer.attributes().groups_of(DelimiterTag::PrinterAttributes).find_map(|group| group.get(name)).map(|a| a.value())
}

fn job_value<'a>(answer: &'a IppRequestResponse, name: &str) -> Option<&'a IppValue> {
    answer.attributes().groups_of(DelimiterTag::JobAttributes).find_map(|group| group.get(name)).map(|a| a.value())
}

/// The values of a possibly multi-valued (1setOf) attribute.
fn each(value: &IppValue) -> Box<dyn Iterator<Item = &IppValue> + '_> {
    match value {
        IppValue::Array(values) => Box::new(values.iter()),
        single => Box::new(std::iter::once(single)),
    }
}

/// A string-like value (keyword, name, text, MIME type, URI) as a string.
fn text(value: &IppValue) -> Option<String> {
    Some(match value {
        IppValue::Keyword(s) | IppValue::MimeMediaType(s) | IppValue::NameWithoutLanguage(s) => s.to_string(),
        IppValue::TextWithoutLanguage(t) | IppValue::TextWithLanguage { text: t, .. } => t.as_ref().to_string(),
        IppValue::NameWithLanguage { name, .. } => name.to_string(),
        IppValue::Uri(s) => s.to_string(),
        _ => return None,
    })
}

fn read_capabilities(answer: &IppRequestResponse) -> Capabilities {
    let strings = |name: &str| -> Vec<String> {
        printer_value(answer, name).map(|value| each(value).filter_map(text).collect()).unwrap_or_default()
    };
    let media = strings("media-supported").iter().filter_map(|keyword| parse_media(keyword)).collect();
    let default_media = strings("media-default").into_iter().next().filter(|media| media != "none");
    let sides: Vec<Sides> = strings("sides-supported")
        .iter()
        .filter_map(|keyword| match keyword.as_str() {
            "one-sided" => Some(Sides::OneSided),
            "two-sided-long-edge" => Some(Sides::TwoSidedLongEdge),
            "two-sided-short-edge" => Some(Sides::TwoSidedShortEdge),
            _ => None,
        })
        .collect();
    let mut color_modes: Vec<ColorMode> = Vec::new();
    for mode in strings("print-color-mode-supported") {
        let mode = match mode.as_str() {
            "color" => ColorMode::Color,
            "monochrome" => ColorMode::Monochrome,
            _ => continue,
        };
        if !color_modes.contains(&mode) {
            color_modes.push(mode);
        }
    }
    // Printers older than print-color-mode (PWG 5100.13) only say whether they print colour.
    if color_modes.is_empty() {
        color_modes.push(ColorMode::Monochrome);
        if let Some(IppValue::Boolean(true)) = printer_value(answer, "color-supported") {
            color_modes.push(ColorMode::Color);
        }
    }
    // RFC 8011: a printer without copies-supported prints exactly one copy.
    let copies_max = match printer_value(answer, "copies-supported") {
        Some(IppValue::RangeOfInteger { max, .. }) => u32::try_from(*max).unwrap_or(1).max(1),
        Some(IppValue::Integer(max)) => u32::try_from(*max).unwrap_or(1).max(1),
        _ => 1,
    };
    let accepting_jobs = !matches!(printer_value(answer, "printer-is-accepting-jobs"), Some(IppValue::Boolean(false)));
    let state_reasons = strings("printer-state-reasons").into_iter().filter(|reason| reason != "none").collect();
    let default_sides = strings("sides-default").into_iter().next().and_then(|keyword| match keyword.as_str() {
        "one-sided" => Some(Sides::OneSided),
        "two-sided-long-edge" => Some(Sides::TwoSidedLongEdge),
        "two-sided-short-edge" => Some(Sides::TwoSidedShortEdge),
        _ => None,
    });
    let default_color =
        strings("print-color-mode-default").into_iter().next().and_then(|keyword| match keyword.as_str() {
            "color" => Some(ColorMode::Color),
            "monochrome" => Some(ColorMode::Monochrome),
            _ => None,
        });
    Capabilities {
        default_sides: default_sides.filter(|s| sides.contains(s)),
        default_color: default_color.filter(|c| color_modes.contains(c)),
        media,
        default_media,
        sides,
        color_modes,
        copies_max,
        document_formats: strings("document-format-supported"),
        accepting_jobs,
        state_reasons,
    }
}

/// A PWG 5101.1 self-describing media name (`class_name_WxHunit`, e.g. `iso_a4_210x297mm`,
/// `na_letter_8.5x11in`) as a `Media`; `None` for size ranges (`custom_min_…`) and names
/// without a size.
pub fn parse_media(keyword: &str) -> Option<Media> {
    let parts: Vec<&str> = keyword.split('_').collect();
    if parts.len() < 3 || parts[0] == "custom" || parts.iter().any(|part| part.is_empty()) {
        return None;
    }
    let size = parts[parts.len() - 1];
    let (dimensions, unit, per_unit_mm) = if let Some(d) = size.strip_suffix("mm") {
        (d, "mm", 1.0)
    } else if let Some(d) = size.strip_suffix("in") {
        (d, "in", 25.4)
    } else {
        return None;
    };
    let (width, height) = dimensions.split_once('x')?;
    let parse = |n: &str| n.parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0);
    let (width, height) = (parse(width)?, parse(height)?);
    let to_mm = |n: f64| (n * per_unit_mm * 10.0).round() / 10.0;

    let class_and_name = parts[..parts.len() - 1].join("_");
    let display_name = match known_media_name(&class_and_name) {
        Some(name) => name.to_string(),
        None => {
            let name = parts[1..parts.len() - 1].join(" ").replace('-', " ");
            let mut chars = name.chars();
            let name = match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => name,
            };
            format!("{name} ({} × {} {unit})", trim_number(width), trim_number(height))
        }
    };
    Some(Media { keyword: keyword.to_string(), display_name, width_mm: to_mm(width), height_mm: to_mm(height) })
}

fn known_media_name(class_and_name: &str) -> Option<&'static str> {
    Some(match class_and_name {
        "iso_a3" => "A3",
        "iso_a4" => "A4",
        "iso_a5" => "A5",
        "iso_a6" => "A6",
        "iso_b4" => "B4",
        "iso_b5" => "B5",
        "jis_b4" => "B4 (JIS)",
        "jis_b5" => "B5 (JIS)",
        "iso_c5" => "Envelope C5",
        "iso_c6" => "Envelope C6",
        "iso_dl" => "Envelope DL",
        "na_letter" => "US Letter",
        "na_legal" => "US Legal",
        "na_ledger" => "Ledger",
        "na_executive" => "Executive",
        "na_invoice" => "Statement",
        "na_number-10" => "Envelope #10",
        "na_monarch" => "Envelope Monarch",
        "na_index-4x6" => "Index card 4 × 6 in",
        "na_5x7" => "5 × 7 in",
        _ => return None,
    })
}

fn trim_number(n: f64) -> String {
    let s = format!("{n:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn is_mime_type(format: &str) -> bool {
    match format.split_once('/') {
        Some((kind, sub)) => {
            let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
            token(kind) && token(sub) && format.len() <= 255
        }
        None => false,
    }
}

/// Drops control characters: printer text ends up in messages and logs.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_string()
}

/// At most `max` bytes, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A failed exchange: a refused pin, a TLS failure, or a printer that cannot be reached.
fn transport_error(target: &Target, seen_wrong_cert: &OnceLock<[u8; 32]>, err: &reqwest::Error) -> CoreError {
    let detail = error_chain(err);
    tracing::warn!(printer = %target.address, error = %detail, "IPP exchange failed");
    if let Some(seen) = seen_wrong_cert.get() {
        return CoreError::FailedPrecondition(format!(
            "the printer at {} presented a certificate (SHA-256 {}) that is not the pinned one; if its certificate \
             was replaced on purpose, pin the new one",
            target.address,
            hex::encode(seen)
        ));
    }
    if let Some(tls) = tls_error(err) {
        return CoreError::FailedPrecondition(format!(
            "a secure connection to the printer at {} failed ({tls}); check that the port speaks ipps",
            target.address
        ));
    }
    if err.is_connect() || err.is_timeout() {
        return CoreError::Unavailable(format!(
            "the printer at {} cannot be reached; check it is on and connected",
            target.address
        ));
    }
    CoreError::Unavailable(format!(
        "the connection to the printer at {} broke off; check it is on and connected",
        target.address
    ))
}

/// A rustls error somewhere in the cause chain (hyper wraps it in `io::Error`s).
fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls.clone());
        }
        cause = current.source();
    }
    None
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

fn http_error(target: &Target, status: u16) -> CoreError {
    tracing::warn!(printer = %target.address, http_status = status, "printer answered HTTP error");
    let address = &target.address;
    match status {
        401 | 403 => CoreError::FailedPrecondition(format!(
            "the printer at {address} asks for a login (HTTP {status}), which podconnect does not have"
        )),
        404 => CoreError::FailedPrecondition(format!(
            "the printer at {address} has no printer at this URI path (HTTP 404); check the path, e.g. /ipp/print"
        )),
        426 => CoreError::FailedPrecondition(format!(
            "the printer at {address} requires encryption (HTTP 426); use its ipps:// URI with a pinned certificate"
        )),
        500..=599 => CoreError::Unavailable(format!("the printer at {address} failed the request (HTTP {status})")),
        _ => CoreError::FailedPrecondition(format!("the printer at {address} refused the request (HTTP {status})")),
    }
}

fn not_ipp(target: &Target, detail: &str) -> CoreError {
    tracing::warn!(printer = %target.address, %detail, "printer answer not understood");
    CoreError::FailedPrecondition(format!(
        "the device at {} did not answer like an IPP printer ({detail}); check the printer URI",
        target.address
    ))
}

#[cfg(test)]
mod tests {
    //! Parsing and mapping that need no printer; the real-printer tests are in tests/tests/e2e.

    use super::*;

    fn device(uri: &str, pin: Option<[u8; 32]>) -> Device {
        Device {
            id: crate::domain::session::DeviceId::parse("front-desk").unwrap(),
            display_name: "Front desk".into(),
            model: "Test".into(),
            delivery: crate::domain::printing::DeliveryMode::IppPush,
            printer_uri: Some(uri.into()),
            pinned_certificate_sha256: pin,
            location: String::new(),
            capabilities: None,
            registered_at: None,
            updated_at: None,
        }
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
    fn uris_need_ipp_or_ipps_and_a_port() {
        let plain = Target::of(&device("ipp://localhost:8631/ipp/print", None)).unwrap();
        assert_eq!(plain.http_url, "http://localhost:8631/ipp/print");
        assert_eq!(plain.address, "localhost:8631");
        let secure = Target::of(&device("ipps://printer.local:631/ipp/print", Some([7; 32]))).unwrap();
        assert_eq!(secure.http_url, "https://printer.local:631/ipp/print");

        for bad in ["ipps://printer/ipp/print", "http://printer:631/", "ipp://u:p@printer:631/", "not a uri"] {
            let err = Target::of(&device(bad, Some([7; 32]))).unwrap_err();
            assert!(matches!(err, CoreError::InvalidArgument(_)), "{bad}: {err:?}");
        }
        let no_port = Target::of(&device("ipps://printer/ipp/print", Some([7; 32]))).unwrap_err();
        assert!(no_port.to_string().contains("add the port"), "{no_port}");
        let unpinned = Target::of(&device("ipps://printer:631/ipp/print", None)).unwrap_err();
        assert!(matches!(unpinned, CoreError::FailedPrecondition(ref m) if m.contains("pinned certificate")));
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
        assert_eq!(status_name(0x040B), "client-error-attributes-or-values-not-supported");
        assert_eq!(status_name(0x0777), "IPP status 0x0777");
    }
}
