//! Reaching the printer: `Target` (where a device's printer is, from its `PrinterUri`), one
//! HTTP exchange per IPP request through reqwest with our own rustls configuration, and
//! certificate pinning (a printer's self-signed certificate is trusted by its SHA-256 pin, never
//! by a CA). Failures say why, for the job: a pin mismatch, a printer that cannot be reached.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use ipp::request::IppRequestResponse;
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use super::IppPrinter;
use super::answer::parse_answer;
use super::status::not_ipp;
use crate::domain::devices::Device;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::{Refusal, Refused};

/// Printers answer with a few KiB (a large Get-Printer-Attributes is ~100 KiB); more is not IPP.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Where a device's printer is and how to reach it.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// The configured URI, sent as `printer-uri`.
    pub(super) printer_uri: String,
    /// The same printer as `http://` or `https://`, where the request goes.
    pub(super) http_url: String,
    /// `host:port`, for messages.
    pub(super) address: String,
    /// The certificate pin for `ipps`; `None` for plain `ipp`.
    pub(super) pin: Option<[u8; 32]>,
}

impl Target {
    pub(super) fn of(device: &Device) -> CoreResult<Target> {
        let Some(uri) = &device.printer_uri else {
            return Err(CoreError::FailedPrecondition(format!(
                "device {} has no printer URI; set one like ipps://printer:631/ipp/print",
                device.display_name
            )));
        };
        let authority = uri.authority();
        let pin = match (uri.is_secure(), device.pinned_certificate_sha256) {
            (false, _) => None,
            (true, Some(pin)) => Some(pin),
            (true, None) => {
                return Err(CoreError::FailedPrecondition(format!(
                    "an ipps printer needs a pinned certificate: pin the SHA-256 of the certificate of {authority}"
                )));
            }
        };
        Ok(Target {
            printer_uri: format!("{}://{authority}{}", if uri.is_secure() { "ipps" } else { "ipp" }, uri.path()),
            http_url: uri.http_url(),
            address: authority.to_owned(),
            pin,
        })
    }
}

/// Why an exchange failed, and whether asking again can help.
enum Failed {
    /// The printer was reached but its answer stalled or broke off.
    Stalled(Refused),
    Other(Refused),
}

impl Failed {
    fn refused(self) -> Refused {
        match self {
            Failed::Stalled(refused) | Failed::Other(refused) => refused,
        }
    }
}

impl IppPrinter {
    /// Sends one IPP request (plus the document, if any) and parses the answer. Never repeated:
    /// a Print-Job or Print-URI sent twice could print twice.
    pub(super) async fn exchange(
        &self,
        target: &Target,
        request: IppRequestResponse,
        document: Option<&Bytes>,
    ) -> Result<IppRequestResponse, Refused> {
        self.send(target, request.to_bytes(), document, self.request_timeout).await.map_err(Failed::refused)
    }

    /// Sends a request that reads or checks and changes nothing at the printer (Validate-Job,
    /// Get-Printer-Attributes, Get-Job-Attributes). An answer that stalls or breaks off is asked
    /// for once more on a new connection, each try within half the bound, so the whole stays
    /// within it: some printers (we have seen it with ippeveprinter) now and then stall partway
    /// through an answer, and a second ask gets all of it.
    pub(super) async fn ask(
        &self,
        target: &Target,
        request: IppRequestResponse,
    ) -> Result<IppRequestResponse, Refused> {
        let head = request.to_bytes();
        let bound = self.request_timeout / 2;
        match self.send(target, head.clone(), None, bound).await {
            Err(Failed::Stalled(_)) => {
                tracing::debug!(printer = %target.address, "the printer's answer stalled; asking once more");
                self.send(target, head, None, bound).await.map_err(Failed::refused)
            }
            answered => answered.map_err(Failed::refused),
        }
    }

    async fn send(
        &self,
        target: &Target,
        head: Bytes,
        document: Option<&Bytes>,
        bound: Duration,
    ) -> Result<IppRequestResponse, Failed> {
        let seen_wrong_cert = Arc::new(OnceLock::new());
        let client = self.client(target, seen_wrong_cert.clone()).map_err(|err| Failed::Other(err.into()))?;
        let failed = |err: &reqwest::Error| {
            let refused = transport_error(target, &seen_wrong_cert, err);
            if !err.is_connect() && refused.why == Refusal::Unreachable {
                Failed::Stalled(refused)
            } else {
                Failed::Other(refused)
            }
        };

        let mut body = BytesMut::with_capacity(head.len() + document.map_or(0, |d| d.len()));
        body.put(head);
        if let Some(document) = document {
            body.put(document.clone());
        }

        let sent = client
            .post(&target.http_url)
            .header("content-type", "application/ipp")
            .timeout(bound)
            .body(body.freeze())
            .send()
            .await;
        let mut response = sent.map_err(|err| failed(&err))?;
        let http_status = response.status();
        if !http_status.is_success() {
            return Err(Failed::Other(http_error(target, http_status.as_u16())));
        }

        let mut answer = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if answer.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(Failed::Other(not_ipp(target, "the answer is larger than any IPP answer").into()));
                    }
                    answer.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => return Err(failed(&err)),
            }
        }
        parse_answer(answer).map_err(|detail| Failed::Other(not_ipp(target, &detail).into()))
    }

    /// One HTTP client for one call: TLS is always our rustls config (ring, pin check), so
    /// reqwest never looks for a process-wide crypto provider or the system's roots.
    pub(super) fn client(
        &self,
        target: &Target,
        seen_wrong_cert: Arc<OnceLock<[u8; 32]>>,
    ) -> CoreResult<reqwest::Client> {
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

/// A failed exchange: a refused pin, a TLS failure, or a printer that cannot be reached.
fn transport_error(target: &Target, seen_wrong_cert: &OnceLock<[u8; 32]>, err: &reqwest::Error) -> Refused {
    let detail = error_chain(err);
    tracing::warn!(printer = %target.address, error = %detail, "IPP exchange failed");
    if let Some(seen) = seen_wrong_cert.get() {
        let error = CoreError::FailedPrecondition(format!(
            "the printer at {} presented a certificate (SHA-256 {}) that is not the pinned one; if its certificate \
             was replaced on purpose, pin the new one",
            target.address,
            hex::encode(seen)
        ));
        return Refused::new(Refusal::CertificateMismatch, error);
    }
    if let Some(tls) = tls_error(err) {
        return CoreError::FailedPrecondition(format!(
            "a secure connection to the printer at {} failed ({tls}); check that the port speaks ipps",
            target.address
        ))
        .into();
    }
    let error = if err.is_connect() {
        CoreError::Unavailable(format!(
            "the printer at {} cannot be reached; check it is on and connected",
            target.address
        ))
    } else if err.is_timeout() {
        CoreError::Unavailable(format!(
            "the printer at {} did not answer in time; check it is on and not stuck, or raise the printer timeout",
            target.address
        ))
    } else {
        CoreError::Unavailable(format!(
            "the connection to the printer at {} broke off; check it is on and connected",
            target.address
        ))
    };
    Refused::new(Refusal::Unreachable, error)
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

fn http_error(target: &Target, status: u16) -> Refused {
    tracing::warn!(printer = %target.address, http_status = status, "printer answered HTTP error");
    let address = &target.address;
    let error = match status {
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
    };
    let why = if (500..=599).contains(&status) { Refusal::Unreachable } else { Refusal::Other };
    Refused::new(why, error)
}
