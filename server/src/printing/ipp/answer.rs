//! Reading a printer's answer: parsing that never panics on a printer's bytes, and the values
//! of its attribute groups as plain strings without control characters.

use std::io::Cursor;
use std::panic::AssertUnwindSafe;

use ipp::model::DelimiterTag;
use ipp::parser::{IppParseError, IppParser};
use ipp::reader::IppReader;
use ipp::request::IppRequestResponse;
use ipp::value::IppValue;

/// Parses an IPP answer. The crate has panicked on malformed values before (and still does, see
/// `check_with_language_values`); a printer's bytes must never take the server down, so a panic
/// becomes an error too.
pub(super) fn parse_answer(answer: Vec<u8>) -> Result<IppRequestResponse, String> {
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
pub(super) fn check_with_language_values(answer: &[u8]) -> Result<(), String> {
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

pub(super) fn parse_error_text(err: &IppParseError) -> String {
    format!("the answer is not valid IPP ({err})")
}

/// The unsupported-attributes group as `name=value` strings.
pub(super) fn unsupported_attributes(answer: &IppRequestResponse) -> Vec<String> {
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

pub(super) fn printer_value<'a>(answer: &'a IppRequestResponse, name: &str) -> Option<&'a IppValue> {
    answer.attributes().groups_of(DelimiterTag::PrinterAttributes).find_map(|group| group.get(name)).map(|a| a.value())
}

pub(super) fn job_value<'a>(answer: &'a IppRequestResponse, name: &str) -> Option<&'a IppValue> {
    answer.attributes().groups_of(DelimiterTag::JobAttributes).find_map(|group| group.get(name)).map(|a| a.value())
}

/// The values of a possibly multi-valued (1setOf) attribute.
pub(super) fn each(value: &IppValue) -> Box<dyn Iterator<Item = &IppValue> + '_> {
    match value {
        IppValue::Array(values) => Box::new(values.iter()),
        single => Box::new(std::iter::once(single)),
    }
}

/// A string-like value (keyword, name, text, MIME type, URI) as a string.
pub(super) fn text(value: &IppValue) -> Option<String> {
    Some(match value {
        IppValue::Keyword(s) | IppValue::MimeMediaType(s) | IppValue::NameWithoutLanguage(s) => s.to_string(),
        IppValue::TextWithoutLanguage(t) | IppValue::TextWithLanguage { text: t, .. } => t.as_ref().to_string(),
        IppValue::NameWithLanguage { name, .. } => name.to_string(),
        IppValue::Uri(s) => s.to_string(),
        _ => return None,
    })
}

/// Drops control characters: printer text ends up in messages and logs.
pub(super) fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_string()
}

/// At most `max` bytes, cut at a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
