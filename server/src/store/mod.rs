//! Implementations of the domain's store contracts: the in-memory ephemeral store and the SQLite
//! persistent store, and the helpers that keep state on disk private to the server's user.

pub mod memory;
pub mod sqlite;

use std::path::Path;

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
