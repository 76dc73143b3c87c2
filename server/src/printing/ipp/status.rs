//! What a printer's IPP answer means: status codes by name (RFC 8011 §B), the refusals of each
//! operation mapped to errors a person can act on and to the job's refusal reason, and
//! Get-Job-Attributes' answer read as a job status.

use ipp::model::DelimiterTag;
use ipp::request::IppRequestResponse;

use super::answer::{clean, each, job_value, text, truncate, unsupported_attributes};
use super::transport::Target;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::{JobState, JobTicket, PrinterJobStatus, Refusal, Refused};

/// How much of a printer's own `status-message` a caller sees.
const MAX_PRINTER_MESSAGE: usize = 200;

/// The last successful status code (RFC 8011 §B.1.2: 0x0000 to 0x00ff).
const LAST_SUCCESS: u16 = 0x00FF;
/// The last client-error code (0x0400 to 0x04ff).
const LAST_CLIENT_ERROR: u16 = 0x04FF;

// RFC 8011 §B.1.4 and §B.1.5 (and PWG 5100.x) status codes, named as the RFC names them.
pub(super) const BAD_REQUEST: u16 = 0x0400;
pub(super) const FORBIDDEN: u16 = 0x0401;
pub(super) const NOT_AUTHENTICATED: u16 = 0x0402;
pub(super) const NOT_AUTHORIZED: u16 = 0x0403;
pub(super) const NOT_POSSIBLE: u16 = 0x0404;
pub(super) const CLIENT_TIMEOUT: u16 = 0x0405;
pub(super) const NOT_FOUND: u16 = 0x0406;
pub(super) const GONE: u16 = 0x0407;
pub(super) const REQUEST_ENTITY_TOO_LARGE: u16 = 0x0408;
pub(super) const REQUEST_VALUE_TOO_LONG: u16 = 0x0409;
pub(super) const DOCUMENT_FORMAT_NOT_SUPPORTED: u16 = 0x040A;
pub(super) const ATTRIBUTES_OR_VALUES_NOT_SUPPORTED: u16 = 0x040B;
pub(super) const URI_SCHEME_NOT_SUPPORTED: u16 = 0x040C;
pub(super) const CHARSET_NOT_SUPPORTED: u16 = 0x040D;
pub(super) const CONFLICTING_ATTRIBUTES: u16 = 0x040E;
pub(super) const COMPRESSION_NOT_SUPPORTED: u16 = 0x040F;
pub(super) const COMPRESSION_ERROR: u16 = 0x0410;
pub(super) const DOCUMENT_FORMAT_ERROR: u16 = 0x0411;
pub(super) const DOCUMENT_ACCESS_ERROR: u16 = 0x0412;
pub(super) const INTERNAL_ERROR: u16 = 0x0500;
pub(super) const OPERATION_NOT_SUPPORTED: u16 = 0x0501;
pub(super) const SERVICE_UNAVAILABLE: u16 = 0x0502;
pub(super) const VERSION_NOT_SUPPORTED: u16 = 0x0503;
pub(super) const DEVICE_ERROR: u16 = 0x0504;
pub(super) const TEMPORARY_ERROR: u16 = 0x0505;
pub(super) const NOT_ACCEPTING_JOBS: u16 = 0x0506;
pub(super) const BUSY: u16 = 0x0507;
pub(super) const JOB_CANCELED: u16 = 0x0508;
pub(super) const MULTIPLE_DOCUMENT_JOBS_NOT_SUPPORTED: u16 = 0x0509;

/// Every status code with a name, for messages and logs.
const STATUS_NAMES: &[(u16, &str)] = &[
    (BAD_REQUEST, "client-error-bad-request"),
    (FORBIDDEN, "client-error-forbidden"),
    (NOT_AUTHENTICATED, "client-error-not-authenticated"),
    (NOT_AUTHORIZED, "client-error-not-authorized"),
    (NOT_POSSIBLE, "client-error-not-possible"),
    (CLIENT_TIMEOUT, "client-error-timeout"),
    (NOT_FOUND, "client-error-not-found"),
    (GONE, "client-error-gone"),
    (REQUEST_ENTITY_TOO_LARGE, "client-error-request-entity-too-large"),
    (REQUEST_VALUE_TOO_LONG, "client-error-request-value-too-long"),
    (DOCUMENT_FORMAT_NOT_SUPPORTED, "client-error-document-format-not-supported"),
    (ATTRIBUTES_OR_VALUES_NOT_SUPPORTED, "client-error-attributes-or-values-not-supported"),
    (URI_SCHEME_NOT_SUPPORTED, "client-error-uri-scheme-not-supported"),
    (CHARSET_NOT_SUPPORTED, "client-error-charset-not-supported"),
    (CONFLICTING_ATTRIBUTES, "client-error-conflicting-attributes"),
    (COMPRESSION_NOT_SUPPORTED, "client-error-compression-not-supported"),
    (COMPRESSION_ERROR, "client-error-compression-error"),
    (DOCUMENT_FORMAT_ERROR, "client-error-document-format-error"),
    (DOCUMENT_ACCESS_ERROR, "client-error-document-access-error"),
    (INTERNAL_ERROR, "server-error-internal-error"),
    (OPERATION_NOT_SUPPORTED, "server-error-operation-not-supported"),
    (SERVICE_UNAVAILABLE, "server-error-service-unavailable"),
    (VERSION_NOT_SUPPORTED, "server-error-version-not-supported"),
    (DEVICE_ERROR, "server-error-device-error"),
    (TEMPORARY_ERROR, "server-error-temporary-error"),
    (NOT_ACCEPTING_JOBS, "server-error-not-accepting-jobs"),
    (BUSY, "server-error-busy"),
    (JOB_CANCELED, "server-error-job-canceled"),
    (MULTIPLE_DOCUMENT_JOBS_NOT_SUPPORTED, "server-error-multiple-document-jobs-not-supported"),
];

pub(super) fn status_code(answer: &IppRequestResponse) -> u16 {
    answer.header().operation_or_status as u16
}

/// IPP status codes 0x0000 to 0x00ff are all successes (RFC 8011 §B.1.2).
pub(super) fn is_success(answer: &IppRequestResponse) -> bool {
    status_code(answer) <= LAST_SUCCESS
}

/// The RFC 8011 keyword of a status code, for messages and logs.
pub(super) fn status_name(code: u16) -> String {
    match STATUS_NAMES.iter().find(|(known, _)| *known == code) {
        Some((_, name)) => (*name).to_string(),
        None => format!("IPP status 0x{code:04x}"),
    }
}

/// The answer to Validate-Job, Print-Job or Print-URI: a refused format or an unsupported
/// ticket value gets its own message, naming the format or the attribute.
pub(super) fn check_job_answer(
    target: &Target,
    label: &str,
    answer: &IppRequestResponse,
    ticket: &JobTicket,
) -> Result<(), Refused> {
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
        let error = CoreError::FailedPrecondition(format!(
            "the printer at {} does not accept {format} documents",
            target.address
        ));
        Refused::new(Refusal::DocumentFormat, error)
    };
    match code {
        DOCUMENT_FORMAT_NOT_SUPPORTED => Err(refused_format()),
        // Printers answer this for a refused format too (ippeveprinter does); the unsupported
        // attributes group tells which attribute it was.
        ATTRIBUTES_OR_VALUES_NOT_SUPPORTED => {
            let unsupported = unsupported_attributes(answer);
            let format_named = unsupported.iter().any(|attribute| attribute.starts_with("document-format"));
            if unsupported.is_empty() || format_named {
                Err(refused_format())
            } else {
                Err(CoreError::InvalidArgument(format!(
                    "the printer at {} does not support {}",
                    target.address,
                    unsupported.join(", ")
                ))
                .into())
            }
        }
        CONFLICTING_ATTRIBUTES => Err(CoreError::InvalidArgument(format!(
            "the printer at {} refuses this combination of job settings ({})",
            target.address,
            unsupported_attributes(answer).join(", ")
        ))
        .into()),
        DOCUMENT_ACCESS_ERROR => Err(Refused::new(
            Refusal::DocumentAccess,
            CoreError::FailedPrecondition(format!(
                "the printer at {} could not fetch the document from its URL{}",
                target.address,
                printer_says(answer)
            )),
        )),
        URI_SCHEME_NOT_SUPPORTED => Err(CoreError::FailedPrecondition(format!(
            "the printer at {} cannot fetch documents over this kind of URL{}",
            target.address,
            printer_says(answer)
        ))
        .into()),
        _ => Err(status_error(target, label, answer)),
    }
}

/// Errors of Get-Job-Attributes and Cancel-Job: a job the printer does not know is `NotFound`.
pub(super) fn job_status_error(target: &Target, label: &str, answer: &IppRequestResponse, job_id: i32) -> CoreError {
    match status_code(answer) {
        NOT_FOUND | GONE => {
            CoreError::NotFound(format!("the printer at {} does not know job {job_id} (any more)", target.address))
        }
        NOT_POSSIBLE if label == "Cancel-Job" => CoreError::FailedPrecondition(format!(
            "the printer at {} cannot cancel job {job_id}, most likely because it has finished{}",
            target.address,
            printer_says(answer)
        )),
        _ => status_error(target, label, answer).error,
    }
}

/// Any other refusal: busy-like answers are `Unavailable` (retrying can work) and the printer
/// counts as unreachable, the rest `FailedPrecondition` (the printer or its configuration must
/// change).
pub(super) fn status_error(target: &Target, label: &str, answer: &IppRequestResponse) -> Refused {
    let code = status_code(answer);
    let name = status_name(code);
    let says = printer_says(answer);
    tracing::warn!(printer = %target.address, operation = label, status = %name, "printer refused the request");
    let address = &target.address;
    let unreachable = |error| Refused::new(Refusal::Unreachable, error);
    match code {
        SERVICE_UNAVAILABLE | DEVICE_ERROR | TEMPORARY_ERROR | NOT_ACCEPTING_JOBS | BUSY => unreachable(
            CoreError::Unavailable(format!("the printer at {address} cannot take {label} right now ({name}){says}")),
        ),
        OPERATION_NOT_SUPPORTED => {
            CoreError::FailedPrecondition(format!("the printer at {address} does not support {label} ({name})")).into()
        }
        FORBIDDEN..=NOT_AUTHORIZED => CoreError::FailedPrecondition(format!(
            "the printer at {address} refused {label} ({name}): it asks for a login podconnect does not have{says}"
        ))
        .into(),
        BAD_REQUEST..=LAST_CLIENT_ERROR => {
            CoreError::FailedPrecondition(format!("the printer at {address} refused {label} ({name}){says}")).into()
        }
        _ => unreachable(CoreError::Unavailable(format!("the printer at {address} failed {label} ({name}){says}"))),
    }
}

/// `": <status-message>"` when the printer sent one.
pub(super) fn printer_says(answer: &IppRequestResponse) -> String {
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

/// Get-Job-Attributes' answer as a job status.
pub(super) fn read_job_status(
    target: &Target,
    answer: &IppRequestResponse,
    job_id: i32,
) -> CoreResult<PrinterJobStatus> {
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

/// An answer that is not IPP: the URI names something else.
pub(super) fn not_ipp(target: &Target, detail: &str) -> CoreError {
    tracing::warn!(printer = %target.address, %detail, "printer answer not understood");
    CoreError::FailedPrecondition(format!(
        "the device at {} did not answer like an IPP printer ({detail}); check the printer URI",
        target.address
    ))
}
