//! Building IPP requests: the operation attributes every request carries, in the order RFC 8011
//! requires, and a job's ticket as Job Template attributes, refused here when it could not be a
//! valid IPP value.

use std::time::SystemTime;

use ipp::attribute::IppAttribute;
use ipp::model::{DelimiterTag, IppVersion, Operation};
use ipp::request::IppRequestResponse;
use ipp::value::IppValue;

use super::answer::{clean, truncate};
use super::transport::Target;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::{JobTicket, PrinterJobRef};

/// `requesting-user-name` of every request: jobs are never tied to a person on the printer.
const USER_NAME: &str = "podconnect";

/// A request with the operation attributes every operation needs, in the order RFC 8011
/// requires (the crate puts charset, language and printer-uri first on encoding).
pub(super) fn new_request(operation: Operation, target: &Target) -> CoreResult<IppRequestResponse> {
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

pub(super) fn add(
    request: &mut IppRequestResponse,
    group: DelimiterTag,
    name: &str,
    value: IppValue,
) -> CoreResult<()> {
    let attribute = IppAttribute::with_name(name, value)
        .map_err(|err| CoreError::internal("cannot build the printer request", err))?;
    request.attributes_mut().add(group, attribute);
    Ok(())
}

/// The job's operation attributes (name, format) and Job Template attributes (copies, sides,
/// colour, media), the same for Validate-Job, Print-Job and Print-URI.
pub(super) fn add_ticket(request: &mut IppRequestResponse, ticket: &JobTicket) -> CoreResult<()> {
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
pub(super) fn check_pull_url(url: &str, expires_at: SystemTime) -> CoreResult<()> {
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

pub(super) fn job_id_of(job: &PrinterJobRef) -> CoreResult<i32> {
    match job.0.parse::<i32>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(CoreError::InvalidArgument(format!("{:?} is not an IPP job id", job.0))),
    }
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
