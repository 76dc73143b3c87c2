//! Implementations of the domain's store contracts: the ephemeral store and event bus in memory
//! or on Redis, the persistent store on SQLite or (for several instances sharing one database)
//! PostgreSQL, and the helpers that keep state on disk private to the server's user.

pub mod memory;
pub mod postgres;
pub mod redis;
pub mod sqlite;

use std::path::Path;

/// The columns of a device row, in the order both persistent stores write them.
const DEVICE_COLUMNS: &str = "id, display_name, model, delivery, printer_uri, pinned_certificate_sha256, location, \
                              capabilities, registered_ms, updated_ms";

/// Capabilities as any core stored them: fields were only ever appended (the sides and colour
/// defaults, then `media_ready`), so `records::decode_record` reads every layout.
fn decode_capabilities(bytes: &[u8]) -> Option<crate::domain::devices::Capabilities> {
    crate::domain::records::decode_record(bytes).ok()
}

/// A row of the `devices` table as both SQL stores read it; [`DeviceRow::into_device`] checks it.
#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    display_name: String,
    model: String,
    delivery: String,
    printer_uri: Option<String>,
    pinned_certificate_sha256: Option<String>,
    location: String,
    capabilities: Option<Vec<u8>>,
    registered_ms: i64,
    updated_ms: i64,
}

impl DeviceRow {
    /// The device, every column checked; capabilities in any layout a core stored them.
    fn into_device(self) -> crate::domain::error::CoreResult<crate::domain::devices::Device> {
        use crate::domain::devices::{DeliveryMode, Device, PrinterUri, parse_pin};
        use crate::domain::error::CoreError;
        use crate::domain::ids::DeviceId;
        let corrupt = |what: &str| CoreError::internal("the device registry is unreadable", format!("bad {what}"));
        let time = |ms: i64| {
            u64::try_from(ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        };
        let capabilities = match self.capabilities {
            Some(bytes) => Some(decode_capabilities(&bytes).ok_or_else(|| corrupt("capabilities"))?),
            None => None,
        };
        Ok(Device {
            id: DeviceId::parse(&self.id).map_err(|_| corrupt("id"))?,
            display_name: self.display_name,
            model: self.model,
            delivery: DeliveryMode::from_name(&self.delivery).map_err(|_| corrupt("delivery"))?,
            printer_uri: self
                .printer_uri
                .as_deref()
                .map(PrinterUri::parse)
                .transpose()
                .map_err(|_| corrupt("printer URI"))?,
            pinned_certificate_sha256: self
                .pinned_certificate_sha256
                .as_deref()
                .map(parse_pin)
                .transpose()
                .map_err(|_| corrupt("pin"))?,
            location: self.location,
            capabilities,
            registered_at: time(self.registered_ms),
            updated_at: time(self.updated_ms),
        })
    }
}

/// Creates `dir` (and missing parents) readable only by this user, and narrows it to 0700 if it
/// already exists: state folders hold keys, the database and spooled PDFs with people's names.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes `contents` to a new or truncated file readable only by this user (0600).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // `mode` applies only when the file is created; an older file is narrowed too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)
}

/// The 256-bit key in `path`, made (hex, 0600) when the file does not exist yet. Several
/// instances starting at once agree on one key: it is written under a temporary name and linked
/// into place, which fails for all but the first.
pub fn load_or_create_key(path: &Path) -> anyhow::Result<crate::domain::crypto::Key256> {
    use crate::domain::crypto::{Key256, random_bytes};
    use anyhow::Context as _;
    let read = |path: &Path| -> anyhow::Result<Key256> {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).context("the key file must hold 64 hex digits")?;
        let key = Key256::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        Ok(key)
    };
    if !path.exists() {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_dir(parent)?;
        }
        let temp = path.with_extension(format!("{}.tmp", hex::encode(random_bytes::<6>())));
        write_private(&temp, zeroize::Zeroizing::new(hex::encode(random_bytes::<32>())).as_bytes())?;
        let linked = std::fs::hard_link(&temp, path);
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err).with_context(|| format!("cannot create the key file {}", path.display())),
        }
    }
    read(path).with_context(|| format!("cannot read the key file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_starting_together_agree_on_one_private_key() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/session-records.key");
        let keys: Vec<_> = std::thread::scope(|scope| {
            let makers: Vec<_> = (0..4).map(|_| scope.spawn(|| load_or_create_key(&path).unwrap())).collect();
            makers.into_iter().map(|m| *m.join().unwrap().as_bytes()).collect()
        });
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "one key for all");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path().join("keys")).unwrap().count(), 1, "no temporary file is left");
        std::fs::write(&path, "not hex").unwrap();
        assert!(load_or_create_key(&path).unwrap_err().to_string().contains("cannot read the key file"));
    }

    #[test]
    fn devices_registered_by_older_cores_still_read() {
        use crate::domain::devices::{ReadyMedia, default_capabilities};
        let mut current = default_capabilities();
        current.default_sides = Some(crate::domain::devices::Sides::OneSided);
        // The layout before `media_ready`: the same fields, written by an older core.
        let mut before = postcard::to_allocvec(&current).unwrap();
        assert_eq!(before.pop(), Some(0), "an empty media_ready is one zero length at the end");
        assert_eq!(decode_capabilities(&before), Some(current.clone()));
        // The layout before the sides and colour defaults: three fewer zero bytes at the end.
        let mut oldest = current.clone();
        oldest.default_sides = None;
        let mut oldest_bytes = postcard::to_allocvec(&oldest).unwrap();
        assert_eq!(oldest_bytes.split_off(oldest_bytes.len() - 3), [0, 0, 0]);
        assert_eq!(decode_capabilities(&oldest_bytes), Some(oldest));

        current.media_ready =
            vec![ReadyMedia { media: current.media[0].clone(), source: Some("tray-1".into()), margin_mm: Some(5.0) }];
        let now = postcard::to_allocvec(&current).unwrap();
        assert_eq!(decode_capabilities(&now), Some(current));
        assert_eq!(decode_capabilities(b"\xff\xff"), None, "bytes of no layout are not guessed at");
    }
}
