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

/// Checks an id a caller sent in `field`: present, and of the shape `new_id` makes.
pub fn check_id(field: &str, id: &str) -> CoreResult<()> {
    if id.is_empty() {
        return Err(CoreError::InvalidArgument(format!("{field} is required")));
    }
    let ok = id.len() == 22 && URL_SAFE_NO_PAD.decode(id).is_ok_and(|b| b.len() == 16);
    if !ok {
        return Err(CoreError::InvalidArgument(format!("{field} is not an id this server issued")));
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
    fn ids_check_out_and_strangers_do_not() {
        assert!(check_id("draft_id", &new_id()).is_ok());
        for bad in ["", "short", "!!!!!!!!!!!!!!!!!!!!!!", &"A".repeat(23)] {
            assert!(check_id("draft_id", bad).is_err(), "{bad:?}");
        }
        assert!(check_id("job_id", "").unwrap_err().to_string().contains("job_id is required"));
    }
}
