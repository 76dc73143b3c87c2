//! How stored records name and date things: random 128-bit ids (22 characters of base64url) that
//! callers must hand back unchanged, and millisecond Unix timestamps.

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

#[cfg(test)]
mod tests {
    use super::*;

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
