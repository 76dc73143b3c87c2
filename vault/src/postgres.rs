//! A vault in PostgreSQL: one table, `vault_entries`, in the core's persistent store when that is
//! PostgreSQL (several core instances share it), created when missing so it needs no migration of
//! the host database. The same contract as `sqlite.rs`; rows hold only what the SSO manager
//! sealed.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::{MAX_PAGE, VaultAddress, VaultEntry, VaultError, VaultResult, VaultStore, check_entry};

/// The table. Addresses are lower-case hex compared byte by byte (`COLLATE "C"`), so their text
/// order is their byte order (the order `page` promises) whatever the database's collation.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS vault_entries (\
     address TEXT COLLATE \"C\" PRIMARY KEY, \
     key_version BIGINT NOT NULL, \
     envelope BYTEA NOT NULL, \
     updated_ms BIGINT NOT NULL)";

/// Held while the table is created: two instances running `CREATE TABLE IF NOT EXISTS` at the
/// same moment can otherwise both try to create it, and one fails. Any fixed number will do.
const CREATE_LOCK: i64 = 0x706f_6476_6175_6c74; // "podvault"

/// How often `put` retries when another writer inserts or deletes the same address between its
/// two statements; each retry means someone else made progress, so a few are plenty.
const PUT_ATTEMPTS: usize = 4;

/// The vault on a PostgreSQL pool.
#[derive(Clone)]
pub struct PgVault {
    pool: PgPool,
}

impl PgVault {
    /// The vault in an existing database (the core's persistent store): creates its table there
    /// when missing and shares the pool.
    pub async fn with_pool(pool: PgPool) -> VaultResult<Self> {
        let mut tx = pool.begin().await.map_err(db_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CREATE_LOCK).execute(&mut *tx).await.map_err(db_error)?;
        sqlx::query(CREATE_TABLE).execute(&mut *tx).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(PgVault { pool })
    }

    /// How many entries are stored.
    pub async fn len(&self) -> VaultResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM vault_entries").fetch_one(&self.pool).await.map_err(db_error)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    /// Replaces the entry at `address` if there is one; true when it did.
    async fn update(&self, address: &str, entry: &VaultEntry) -> VaultResult<bool> {
        let done =
            sqlx::query("UPDATE vault_entries SET key_version = $1, envelope = $2, updated_ms = $3 WHERE address = $4")
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
            "INSERT INTO vault_entries (address, key_version, envelope, updated_ms) VALUES ($1, $2, $3, $4) \
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
impl VaultStore for PgVault {
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
        let row = sqlx::query("SELECT key_version, envelope FROM vault_entries WHERE address = $1")
            .bind(address.to_hex())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref().map(entry_from_row).transpose()
    }

    async fn delete(&self, address: &VaultAddress) -> VaultResult<bool> {
        let done = sqlx::query("DELETE FROM vault_entries WHERE address = $1")
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
            "UPDATE vault_entries SET key_version = $1, envelope = $2, updated_ms = $3 \
             WHERE address = $4 AND key_version = $5 AND envelope = $6",
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
            "SELECT address, key_version, envelope FROM vault_entries WHERE address > $1 ORDER BY address LIMIT $2",
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

fn entry_from_row(row: &PgRow) -> VaultResult<VaultEntry> {
    let key_version: i64 = row.try_get("key_version").map_err(db_error)?;
    let envelope: Vec<u8> = row.try_get("envelope").map_err(db_error)?;
    let key_version = u32::try_from(key_version).map_err(|_| corrupt("a key version out of range"))?;
    Ok(VaultEntry { key_version, envelope })
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// PostgreSQL's error messages name tables and constraints; the values of a row appear only in
/// an error's detail field, which sqlx does not display, so no envelope reaches the message.
fn db_error(err: sqlx::Error) -> VaultError {
    tracing::error!(error = %err, "vault database error");
    VaultError::Unavailable(format!("the vault's database failed: {err}"))
}

fn corrupt(what: &str) -> VaultError {
    tracing::error!(problem = what, "vault database holds a malformed row");
    VaultError::Unavailable(format!("the vault's database holds {what}; it was changed outside the vault"))
}
