//! How stored records name and date things: random 128-bit ids (22 characters of base64url) that
//! callers must hand back unchanged, and millisecond Unix timestamps; and how a record that an
//! older or newer core wrote is read (instances of two versions share Redis during an upgrade).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::domain::crypto::random_bytes;
use crate::domain::error::{CoreError, CoreResult};

/// A fresh random id.
pub fn new_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// The longest id a caller may send; the contract promises ids of at most this many characters.
pub const MAX_ID_CHARS: usize = 128;

/// Checks an id a caller sent in `field`: present and at most 128 characters, else
/// INVALID_ARGUMENT. Ids are opaque to callers, so any other id is acceptable input: returns
/// whether it has the shape `new_id` makes, and one that has not names nothing (NOT_FOUND).
pub fn check_id(field: &str, id: &str) -> CoreResult<bool> {
    check_opaque_id(field, id)?;
    Ok(id.len() == 22 && URL_SAFE_NO_PAD.decode(id).is_ok_and(|b| b.len() == 16))
}

/// The contract's rule for every id a caller sends back: required, and at most 128 characters.
pub fn check_opaque_id(field: &str, id: &str) -> CoreResult<()> {
    if id.is_empty() {
        return Err(CoreError::InvalidArgument(format!("{field} is required")));
    }
    if id.chars().count() > MAX_ID_CHARS {
        return Err(CoreError::InvalidArgument(format!("{field} is longer than {MAX_ID_CHARS} characters")));
    }
    Ok(())
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

pub fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Zero bytes enough for every field appended to a record since an older core wrote it.
const APPENDED_FIELDS_BYTES: usize = 256;

/// Reads a postcard record written by this core, an older one or a newer one. The rule that
/// makes this work: fields are only ever appended to a stored record, each with a value whose
/// postcard encoding is zero bytes (`false`, 0, `None`, empty, the first enum variant). An older
/// core reads a newer record's prefix (postcard ignores what follows); a newer core reads an
/// older, shorter record with the appended fields at those zero values, which the caller may
/// then fill in.
pub fn decode_record<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    match postcard::from_bytes(bytes) {
        Err(postcard::Error::DeserializeUnexpectedEnd) => {
            let mut padded = Vec::with_capacity(bytes.len() + APPENDED_FIELDS_BYTES);
            padded.extend_from_slice(bytes);
            padded.resize(bytes.len() + APPENDED_FIELDS_BYTES, 0);
            postcard::from_bytes(&padded)
        }
        read => read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Before {
        id: String,
        copies: u32,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct After {
        id: String,
        copies: u32,
        trim: Option<(f64, f64)>,
        sheets: Vec<String>,
        imposed: bool,
        scale: f64,
    }

    #[test]
    fn records_read_across_versions_that_appended_fields() {
        let before = Before { id: "j1".into(), copies: 3 };
        let old = postcard::to_allocvec(&before).unwrap();
        let read: After = decode_record(&old).unwrap();
        let appended = After { id: "j1".into(), copies: 3, trim: None, sheets: vec![], imposed: false, scale: 0.0 };
        assert_eq!(read, appended, "a newer core reads an older record");
        let after =
            After { trim: Some((85.0, 55.0)), sheets: vec!["A4".into()], imposed: true, scale: 1.0, ..appended };
        let new = postcard::to_allocvec(&after).unwrap();
        assert_eq!(decode_record::<Before>(&new).unwrap(), before, "an older core reads a newer record");
        assert_eq!(decode_record::<After>(&new).unwrap(), after);
        // What is not a record at all stays an error.
        assert!(decode_record::<After>(&[0xff; 3]).is_err());
    }

    #[test]
    fn ids_check_out_and_strangers_name_nothing() {
        assert!(check_id("draft_id", &new_id()).unwrap());
        for stranger in ["short", "!!!!!!!!!!!!!!!!!!!!!!", &"A".repeat(23), &"x".repeat(128)] {
            assert!(!check_id("draft_id", stranger).unwrap(), "{stranger:?}");
        }
        assert!(check_id("job_id", "").unwrap_err().to_string().contains("job_id is required"));
        assert!(check_id("job_id", &"x".repeat(129)).unwrap_err().to_string().contains("longer than 128"));
    }
}
