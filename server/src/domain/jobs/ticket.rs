//! Checks of a print request: the ticket against what the printer can do, and `request_id`
//! retries (a UUID, standing for one request's fingerprint: the document and every option).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DocumentRef, SubmitRequest};
use crate::domain::devices::{Capabilities, ColorMode, Sides};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::printing::JobTicket;

/// What a `request_id` stands for: the job it made and the request that made it.
#[derive(Serialize, Deserialize)]
pub(super) struct RequestRecord {
    pub(super) job_id: String,
    pub(super) fingerprint: [u8; 32],
}

pub(super) fn check_ticket(ticket: &JobTicket, capabilities: &Capabilities) -> CoreResult<()> {
    if !capabilities.accepting_jobs {
        return Err(CoreError::FailedPrecondition(format!(
            "the printer is not accepting jobs right now ({}); try again later or ask staff",
            capabilities.state_reasons.join(", ")
        )));
    }
    if !capabilities.document_formats.iter().any(|f| f == &ticket.document_format) {
        return Err(CoreError::FailedPrecondition("this printer does not accept PDF documents".into()));
    }
    if ticket.copies == 0 || ticket.copies > capabilities.copies_max {
        return Err(CoreError::InvalidArgument(format!(
            "copies must be between 1 and {} on this printer",
            capabilities.copies_max
        )));
    }
    if !capabilities.sides.contains(&ticket.sides) {
        return Err(CoreError::InvalidArgument(format!("this printer cannot print {}", ticket.sides.keyword())));
    }
    if !capabilities.color_modes.contains(&ticket.color_mode) {
        return Err(CoreError::InvalidArgument(format!(
            "this printer cannot print in {}",
            ticket.color_mode.keyword()
        )));
    }
    if let Some(media) = &ticket.media
        && !capabilities.media.is_empty()
        && !capabilities.media.iter().any(|m| &m.keyword == media)
    {
        let names: Vec<&str> = capabilities.media.iter().map(|m| m.keyword.as_str()).collect();
        return Err(CoreError::InvalidArgument(format!(
            "media \"{media}\" is not loaded in this printer; choose one of {}",
            names.join(", ")
        )));
    }
    Ok(())
}

/// A UUID in its 36-character hyphenated form, as the contract asks (any version, either case).
pub(super) fn check_request_id(id: &str) -> CoreResult<()> {
    let ok = id.len() == 36
        && id.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() });
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidArgument(
            "request_id must be a UUID like 0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d11 (36 characters), or empty".into(),
        ))
    }
}

impl SubmitRequest {
    /// What makes two requests the same print action: the document and every option.
    pub(super) fn fingerprint(&self) -> [u8; 32] {
        let document = match &self.document {
            DocumentRef::File(id) => format!("file:{id}"),
            DocumentRef::Draft(id) => format!("draft:{id}"),
        };
        let options = format!(
            "{document}\n{}\n{:?}\n{:?}\n{}\n{}",
            self.copies,
            self.sides.map(Sides::keyword),
            self.color_mode.map(ColorMode::keyword),
            self.media.as_deref().unwrap_or_default(),
            self.fit
        );
        Sha256::digest(options.as_bytes()).into()
    }
}

pub(super) fn request_key(id: &str) -> String {
    format!("job-request/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuids_and_fingerprints_tell_requests_apart() {
        assert!(check_request_id("0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d11").is_ok());
        assert!(check_request_id("0B6F0B0E-4C2A-4F1E-9A55-2C7F4F0E8D11").is_ok());
        for bad in ["", "retry-1", "0b6f0b0e4c2a4f1e9a552c7f4f0e8d11", "0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d1g"] {
            assert!(check_request_id(bad).is_err(), "{bad:?}");
        }
        let one = SubmitRequest {
            document: DocumentRef::Draft("d".into()),
            copies: 1,
            sides: None,
            color_mode: None,
            media: None,
            fit: false,
            request_id: Some("x".into()),
        };
        let two = SubmitRequest { copies: 2, ..one.clone() };
        let file = SubmitRequest { document: DocumentRef::File("d".into()), ..one.clone() };
        assert_eq!(one.fingerprint(), one.clone().fingerprint());
        assert_ne!(one.fingerprint(), two.fingerprint());
        assert_ne!(one.fingerprint(), file.fingerprint());
    }
}
