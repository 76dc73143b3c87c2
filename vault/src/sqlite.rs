//! A vault in SQLite: one table, `vault_entries`, in a database file of its own (the vault
//! service's) or in the core's persistent store (the embedded default), created on open so it
//! needs no migration of the host database.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::{MAX_PAGE, VaultAddress, VaultEntry, VaultError, VaultResult, VaultStore, check_entry};

/// The table, as every backend on SQLite shares it. Addresses are lower-case hex, so their text
/// order is their byte order (the order `page` promises).
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS vault_entries (\
     address TEXT PRIMARY KEY, \
     key_version INTEGER NOT NULL, \
     envelope BLOB NOT NULL, \
     updated_ms INTEGER NOT NULL)";

/// How often `put` retries when another writer inserts or deletes the same address between its
/// two statements; each retry means someone else made progress, so a few are plenty.
const PUT_ATTEMPTS: usize = 4;

/// The vault on a SQLite pool.
#[derive(Clone)]
pub struct SqliteVault {
    pool: SqlitePool,
}

impl SqliteVault {
    /// Opens (creating if needed) the vault's own database file at `path`: its folder is created
    /// 0700 when missing and the file is kept 0600. Deleted entries are overwritten on disk
    /// (`secure_delete`), not just unlinked from the table.
    pub async fn open(path: &Path) -> VaultResult<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            private_dir(parent).map_err(|err| file_error(parent, &err))?;
        }
        // Created (or narrowed) 0600 before SQLite opens it; SQLite gives its WAL and
        // shared-memory files the database file's permissions.
        private_file(path).map_err(|err| file_error(path, &err))?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Self::with_pool(pool).await
    }

    /// The vault in an existing database (the core's persistent store): creates its table there
    /// when missing and shares the pool.
    pub async fn with_pool(pool: SqlitePool) -> VaultResult<Self> {
        sqlx::query(CREATE_TABLE).execute(&pool).await.map_err(db_error)?;
        Ok(SqliteVault { pool })
    }

    /// How many entries are stored.
    pub async fn len(&self) -> VaultResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM vault_entries").fetch_one(&self.pool).await.map_err(db_error)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Closes the pool, waiting for connections in use; later calls fail as unavailable.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Replaces the entry at `address` if there is one; true when it did.
    async fn update(&self, address: &str, entry: &VaultEntry) -> VaultResult<bool> {
        let done =
            sqlx::query("UPDATE vault_entries SET key_version = ?1, envelope = ?2, updated_ms = ?3 WHERE address = ?4")
                .bind(i64::from(entry.key_version))
                .bind(&entry.envelope)
                .bind(now_ms())
                .bind(address)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores the entry at `address` unless there is one; true when it did.
    async fn insert(&self, address: &str, entry: &VaultEntry) -> VaultResult<bool> {
        let done = sqlx::query(
            "INSERT INTO vault_entries (address, key_version, envelope, updated_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (address) DO NOTHING",
        )
        .bind(address)
        .bind(i64::from(entry.key_version))
        .bind(&entry.envelope)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl VaultStore for SqliteVault {
    async fn put(&self, address: &VaultAddress, entry: VaultEntry) -> VaultResult<bool> {
        check_entry(&entry)?;
        let address = address.to_hex();
        // Two atomic statements rather than one upsert, because an upsert cannot tell whether
        // it replaced something; whichever statement succeeds decides the answer.
        for _ in 0..PUT_ATTEMPTS {
            if self.update(&address, &entry).await? {
                return Ok(true);
            }
            if self.insert(&address, &entry).await? {
                return Ok(false);
            }
        }
        Err(VaultError::Unavailable("the entry kept changing under concurrent writes; try again".into()))
    }

    async fn get(&self, address: &VaultAddress) -> VaultResult<Option<VaultEntry>> {
        let row = sqlx::query("SELECT key_version, envelope FROM vault_entries WHERE address = ?1")
            .bind(address.to_hex())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(entry_from_row).transpose()
    }

    async fn delete(&self, address: &VaultAddress) -> VaultResult<bool> {
        let done = sqlx::query("DELETE FROM vault_entries WHERE address = ?1")
            .bind(address.to_hex())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn replace_if(&self, address: &VaultAddress, expected: &VaultEntry, entry: VaultEntry) -> VaultResult<bool> {
        check_entry(&entry)?;
        // One statement: the comparison and the write cannot be separated by another writer.
        let done = sqlx::query(
            "UPDATE vault_entries SET key_version = ?1, envelope = ?2, updated_ms = ?3 \
             WHERE address = ?4 AND key_version = ?5 AND envelope = ?6",
        )
        .bind(i64::from(entry.key_version))
        .bind(&entry.envelope)
        .bind(now_ms())
        .bind(address.to_hex())
        .bind(i64::from(expected.key_version))
        .bind(&expected.envelope)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn page(&self, after: Option<&VaultAddress>, limit: usize) -> VaultResult<Vec<(VaultAddress, VaultEntry)>> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(VaultError::Invalid(format!("page size must be 1 to {MAX_PAGE}")));
        }
        // Every address is greater than the empty string.
        let after = after.map(VaultAddress::to_hex).unwrap_or_default();
        let rows = sqlx::query(
            "SELECT address, key_version, envelope FROM vault_entries WHERE address > ?1 ORDER BY address LIMIT ?2",
        )
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let text: String = row.try_get("address").map_err(db_error)?;
            let address =
                VaultAddress::from_hex(&text).ok_or_else(|| corrupt("an address that is not 64 hex digits"))?;
            page.push((address, entry_from_row(row)?));
        }
        Ok(page)
    }
}

fn entry_from_row(row: &SqliteRow) -> VaultResult<VaultEntry> {
    let key_version: i64 = row.try_get("key_version").map_err(db_error)?;
    let envelope: Vec<u8> = row.try_get("envelope").map_err(db_error)?;
    let key_version = u32::try_from(key_version).map_err(|_| corrupt("a key version out of range"))?;
    Ok(VaultEntry { key_version, envelope })
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// SQLite's errors name tables and constraints, never bound values, so they carry no envelope.
fn db_error(err: sqlx::Error) -> VaultError {
    tracing::error!(error = %err, "vault database error");
    VaultError::Unavailable(format!("the vault's database failed: {err}"))
}

fn corrupt(what: &str) -> VaultError {
    tracing::error!(problem = what, "vault database holds a malformed row");
    VaultError::Unavailable(format!("the vault's database holds {what}; it was changed outside the vault"))
}

fn file_error(path: &Path, err: &std::io::Error) -> VaultError {
    VaultError::Unavailable(format!("cannot prepare {}: {err}", path.display()))
}

/// Creates `dir` and its missing parents readable only by this user (0700).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `path` empty if missing, and narrows it to this user (0600) either way.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::MAX_ENVELOPE;

    fn address(byte: u8) -> VaultAddress {
        VaultAddress::from_bytes([byte; 32])
    }

    fn entry(key_version: u32, envelope: &[u8]) -> VaultEntry {
        VaultEntry { key_version, envelope: envelope.to_vec() }
    }

    async fn open() -> (SqliteVault, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let vault = SqliteVault::open(&dir.path().join("vault").join("vault.db")).await.expect("the vault opens");
        (vault, dir)
    }

    #[tokio::test]
    async fn put_get_delete() {
        let (vault, _dir) = open().await;
        let at = address(1);
        assert_eq!(vault.get(&at).await.unwrap(), None);
        assert!(!vault.put(&at, entry(1, b"first")).await.unwrap(), "nothing to replace yet");
        assert_eq!(vault.get(&at).await.unwrap(), Some(entry(1, b"first")));
        assert!(vault.put(&at, entry(2, b"second")).await.unwrap(), "the first entry is replaced");
        assert_eq!(vault.get(&at).await.unwrap(), Some(entry(2, b"second")));
        assert_eq!(vault.get(&address(2)).await.unwrap(), None, "other addresses stay empty");
        assert_eq!(vault.len().await.unwrap(), 1);
        assert!(vault.delete(&at).await.unwrap());
        assert!(!vault.delete(&at).await.unwrap(), "deleting twice finds nothing the second time");
        assert_eq!(vault.get(&at).await.unwrap(), None);
    }

    #[tokio::test]
    async fn entries_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("vault.db");
        let vault = SqliteVault::open(&path).await.unwrap();
        vault.put(&address(7), entry(u32::MAX, b"kept")).await.unwrap();
        vault.close().await;
        let vault = SqliteVault::open(&path).await.unwrap();
        assert_eq!(vault.get(&address(7)).await.unwrap(), Some(entry(u32::MAX, b"kept")));
    }

    #[tokio::test]
    async fn replace_if_swaps_only_what_was_expected() {
        let (vault, _dir) = open().await;
        let at = address(3);
        let old = entry(1, b"old");
        let new = entry(2, b"new");
        assert!(!vault.replace_if(&at, &old, new.clone()).await.unwrap(), "nothing stored: nothing replaced");
        assert_eq!(vault.get(&at).await.unwrap(), None, "and nothing created");

        vault.put(&at, old.clone()).await.unwrap();
        assert!(!vault.replace_if(&at, &entry(1, b"other"), new.clone()).await.unwrap(), "other envelope");
        assert!(!vault.replace_if(&at, &entry(9, b"old"), new.clone()).await.unwrap(), "other key version");
        assert_eq!(vault.get(&at).await.unwrap(), Some(old.clone()), "a failed swap changes nothing");

        assert!(vault.replace_if(&at, &old, new.clone()).await.unwrap());
        assert_eq!(vault.get(&at).await.unwrap(), Some(new.clone()));
        assert!(!vault.replace_if(&at, &old, entry(3, b"late")).await.unwrap(), "a second swap from old loses");
        assert_eq!(vault.get(&at).await.unwrap(), Some(new));
    }

    #[tokio::test]
    async fn pages_come_in_address_order() {
        let (vault, _dir) = open().await;
        // Stored out of order; 0x0a < 0x10 < 0xa0 < 0xff as bytes and as hex.
        for byte in [0xff, 0x10, 0xa0, 0x0a, 0x55] {
            vault.put(&address(byte), entry(u32::from(byte), &[byte])).await.unwrap();
        }
        let first = vault.page(None, 2).await.unwrap();
        let bytes = |page: &[(VaultAddress, VaultEntry)]| page.iter().map(|(a, _)| a.as_bytes()[0]).collect::<Vec<_>>();
        assert_eq!(bytes(&first), [0x0a, 0x10]);
        assert_eq!(first[0].1, entry(0x0a, &[0x0a]));
        let second = vault.page(Some(&first[1].0), 2).await.unwrap();
        assert_eq!(bytes(&second), [0x55, 0xa0]);
        let third = vault.page(Some(&second[1].0), 2).await.unwrap();
        assert_eq!(bytes(&third), [0xff]);
        assert!(vault.page(Some(&third[0].0), 2).await.unwrap().is_empty());
        assert_eq!(bytes(&vault.page(None, MAX_PAGE).await.unwrap()), [0x0a, 0x10, 0x55, 0xa0, 0xff]);
    }

    #[tokio::test]
    async fn page_sizes_are_bounded() {
        let (vault, _dir) = open().await;
        assert!(matches!(vault.page(None, 0).await, Err(VaultError::Invalid(_))));
        assert!(matches!(vault.page(None, MAX_PAGE + 1).await, Err(VaultError::Invalid(_))));
    }

    #[tokio::test]
    async fn oversized_and_empty_envelopes_are_refused() {
        let (vault, _dir) = open().await;
        let at = address(4);
        let too_big = vec![0u8; MAX_ENVELOPE + 1];
        assert!(matches!(vault.put(&at, entry(1, &too_big)).await, Err(VaultError::Invalid(_))));
        assert!(matches!(vault.put(&at, entry(1, b"")).await, Err(VaultError::Invalid(_))));
        assert_eq!(vault.get(&at).await.unwrap(), None, "nothing was stored");

        vault.put(&at, entry(1, &vec![7u8; MAX_ENVELOPE])).await.expect("the largest envelope fits");
        let stored = entry(1, &vec![7u8; MAX_ENVELOPE]);
        assert!(matches!(vault.replace_if(&at, &stored, entry(2, &too_big)).await, Err(VaultError::Invalid(_))));
        assert_eq!(vault.get(&at).await.unwrap(), Some(stored), "a refused swap changes nothing");
    }

    #[tokio::test]
    async fn its_files_are_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path().join("state").join("vault");
        let path = folder.join("vault.db");
        let vault = SqliteVault::open(&path).await.unwrap();
        vault.put(&address(5), entry(1, b"x")).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&folder), 0o700);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        for file in std::fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    #[tokio::test]
    async fn shares_a_pool_without_migrations() {
        let pool = SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE host (id INTEGER PRIMARY KEY)").execute(&pool).await.unwrap();
        let vault = SqliteVault::with_pool(pool.clone()).await.unwrap();
        vault.put(&address(6), entry(1, b"shared")).await.unwrap();
        // Opening again on the same pool keeps what is there.
        let again = SqliteVault::with_pool(pool.clone()).await.unwrap();
        assert_eq!(again.get(&address(6)).await.unwrap(), Some(entry(1, b"shared")));
        let host: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM host").fetch_one(&pool).await.unwrap();
        assert_eq!(host, 0, "the host's own tables are untouched");
    }

    #[tokio::test]
    async fn concurrent_puts_report_one_creation() {
        let (vault, _dir) = open().await;
        let at = address(8);
        let mut tasks = Vec::new();
        for i in 0..16u8 {
            let vault = vault.clone();
            let at = at.clone();
            tasks.push(tokio::spawn(async move { vault.put(&at, entry(1, &[i])).await }));
        }
        let mut created = 0;
        for task in tasks {
            if !task.await.unwrap().unwrap() {
                created += 1;
            }
        }
        assert_eq!(created, 1, "exactly one put found the address empty");
    }
}
