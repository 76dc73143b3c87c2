//! The persistent store on SQLite (the embedded default), through sqlx with embedded migrations.
//! It keeps only what may be kept: non-personal usage events now; vault ciphertext and the
//! device registry later.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};

use super::{DEVICE_COLUMNS, DeviceRow};
use crate::domain::devices::{Device, DeviceStore, PrinterUri};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::ids::DeviceId;
use crate::domain::jobs::{RunningJob, RunningJobs};
use crate::domain::usage::{UsageCount, UsageEvent, UsageGrouping, UsageKind, UsageQuery, UsageStore};

/// A SQLite database holding the persistent store.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and brings its schema up to date.
    /// The connection pool, for stores that keep their own table in the same database (the
    /// SSO vault).
    pub fn pool(&self) -> sqlx::SqlitePool {
        self.pool.clone()
    }

    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let file = Path::new(options.get_filename());
        if !url.contains(":memory:") {
            if let Some(parent) = file.parent()
                && !parent.as_os_str().is_empty()
                && !parent.exists()
            {
                super::private_dir(parent)?;
            }
            // Created (or narrowed) 0600 before SQLite opens it; SQLite gives its WAL and
            // shared-memory files the database file's permissions.
            use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
            let db = std::fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(file)?;
            db.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        // In-memory databases are per connection, so they get exactly one.
        let max = if url.contains(":memory:") { 1 } else { 4 };
        let pool = SqlitePoolOptions::new().max_connections(max).connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

fn db_error(err: sqlx::Error) -> CoreError {
    tracing::error!(error = %err, "persistent store error");
    CoreError::Unavailable("the database is unavailable; try again shortly".into())
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn append(&self, events: &[UsageEvent]) -> CoreResult<()> {
        // One multi-row INSERT per chunk: SQLite allows 32766 bound variables, 8 per row.
        for chunk in events.chunks(1000) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO usage_events (kind, occurred_at_ms, product_id, device_model, outcome, pages, duration_ms, region) ",
            );
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(event.kind.as_str())
                    .push_bind(unix_ms(event.at))
                    .push_bind(event.product.as_ref().map(|p| p.as_str().to_owned()))
                    .push_bind(event.device_model.clone())
                    .push_bind(event.outcome.map(|o| o.as_str()))
                    .push_bind(event.pages.map(i64::from))
                    .push_bind(event.duration.map(|d| d.as_millis() as i64))
                    .push_bind(event.region.clone());
            });
            insert.build().execute(&self.pool).await.map_err(db_error)?;
        }
        Ok(())
    }

    async fn count(&self, query: &UsageQuery) -> CoreResult<Vec<UsageCount>> {
        let mut groups = query.group_by.clone();
        groups.sort();
        groups.dedup();
        let columns: Vec<&str> = groups.iter().map(|g| column(*g)).collect();

        let mut sql = QueryBuilder::new("SELECT ");
        for col in &columns {
            sql.push(*col).push(", ");
        }
        sql.push("COUNT(*) AS n FROM usage_events WHERE 1 = 1");
        if let Some(start) = query.start {
            sql.push(" AND occurred_at_ms >= ").push_bind(unix_ms(start));
        }
        if let Some(end) = query.end {
            sql.push(" AND occurred_at_ms < ").push_bind(unix_ms(end));
        }
        if !query.kinds.is_empty() {
            sql.push(" AND kind IN (");
            let mut list = sql.separated(", ");
            for kind in &query.kinds {
                list.push_bind(kind.as_str());
            }
            sql.push(")");
        }
        if !columns.is_empty() {
            let keys = columns.join(", ");
            sql.push(format!(" GROUP BY {keys} ORDER BY {keys}"));
        }

        let rows = sql.build().fetch_all(&self.pool).await.map_err(db_error)?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            let n: i64 = row.try_get("n").map_err(db_error)?;
            if n == 0 {
                continue;
            }
            let mut count = UsageCount { kind: None, product: None, day: None, device_model: None, count: n as u64 };
            for (i, group) in groups.iter().enumerate() {
                let value: Option<String> = row.try_get(i).map_err(db_error)?;
                match group {
                    UsageGrouping::Kind => count.kind = value.as_deref().and_then(UsageKind::parse),
                    UsageGrouping::Product => count.product = value,
                    UsageGrouping::Day => count.day = value,
                    UsageGrouping::DeviceModel => count.device_model = value,
                }
            }
            counts.push(count);
        }
        Ok(counts)
    }
}

impl SqliteStore {
    /// Inserts a device, or with `replace` changes an existing one, keeping when it was
    /// registered.
    async fn write_device(&self, device: &Device, replace: bool) -> Result<u64, sqlx::Error> {
        let capabilities = device.capabilities.as_ref().map(|c| postcard::to_allocvec(c).unwrap_or_default());
        let upsert = if replace {
            " ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, model = excluded.model, \
             delivery = excluded.delivery, printer_uri = excluded.printer_uri, \
             pinned_certificate_sha256 = excluded.pinned_certificate_sha256, location = excluded.location, \
             capabilities = excluded.capabilities, updated_ms = excluded.updated_ms"
        } else {
            ""
        };
        let sql = format!("INSERT INTO devices ({DEVICE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?){upsert}");
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis())
            .unwrap_or(i64::MAX);
        let done = sqlx::query(&sql)
            .bind(device.id.as_str())
            .bind(&device.display_name)
            .bind(&device.model)
            .bind(device.delivery.name())
            .bind(device.printer_uri.as_ref().map(PrinterUri::as_str))
            .bind(device.pinned_certificate_sha256.map(hex::encode))
            .bind(&device.location)
            .bind(capabilities)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn get(&self, id: &DeviceId) -> CoreResult<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?");
        let row = sqlx::query_as::<_, DeviceRow>(&sql).bind(id.as_str()).fetch_optional(&self.pool).await;
        row.map_err(db_error)?.map(|row| row.into_device()).transpose()
    }

    async fn list(&self, after: Option<&DeviceId>, limit: u32) -> CoreResult<Vec<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id > ? ORDER BY id LIMIT ?");
        let rows = sqlx::query_as::<_, DeviceRow>(&sql)
            .bind(after.map_or("", |a| a.as_str()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(|row| row.into_device()).collect()
    }

    async fn insert(&self, device: &Device) -> CoreResult<()> {
        match self.write_device(device, false).await {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(CoreError::AlreadyExists(format!(
                "device \"{}\" is already registered; use UpdateDevice to change it",
                device.id.as_str()
            ))),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn upsert(&self, device: &Device) -> CoreResult<()> {
        self.write_device(device, true).await.map(|_| ()).map_err(db_error)
    }

    async fn update(&self, device: &Device) -> CoreResult<()> {
        if DeviceStore::get(self, &device.id).await?.is_none() {
            return Err(CoreError::NotFound(format!("device \"{}\" is not registered", device.id.as_str())));
        }
        self.upsert(device).await
    }

    async fn delete(&self, id: &DeviceId) -> CoreResult<bool> {
        let done = sqlx::query("DELETE FROM devices WHERE id = ?").bind(id.as_str()).execute(&self.pool).await;
        Ok(done.map_err(db_error)?.rows_affected() > 0)
    }

    async fn device_count(&self) -> CoreResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM devices").fetch_one(&self.pool).await.map_err(db_error)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

#[async_trait]
impl RunningJobs for SqliteStore {
    async fn started(&self, job: &RunningJob) -> CoreResult<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO running_jobs (job_id, product_id, device_model, started_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(&job.job_id)
        .bind(&job.product_id)
        .bind(&job.device_model)
        .bind(job.started_ms as i64)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn ended(&self, job_id: &str) -> CoreResult<()> {
        sqlx::query("DELETE FROM running_jobs WHERE job_id = ?")
            .bind(job_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn drain(&self) -> CoreResult<Vec<RunningJob>> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let rows = sqlx::query("SELECT job_id, product_id, device_model, started_ms FROM running_jobs")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM running_jobs").execute(&mut *tx).await.map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(RunningJob {
                    job_id: row.try_get("job_id").map_err(db_error)?,
                    product_id: row.try_get("product_id").map_err(db_error)?,
                    device_model: row.try_get("device_model").map_err(db_error)?,
                    started_ms: row.try_get::<i64, _>("started_ms").map_err(db_error)? as u64,
                })
            })
            .collect()
    }

    async fn drain_started_before(&self, cutoff_ms: u64) -> CoreResult<Vec<RunningJob>> {
        // One statement, so a job is removed and returned together or not at all.
        let rows = sqlx::query(
            "DELETE FROM running_jobs WHERE started_ms < ? RETURNING job_id, product_id, device_model, started_ms",
        )
        .bind(i64::try_from(cutoff_ms).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            jobs.push(RunningJob {
                job_id: row.try_get("job_id").map_err(db_error)?,
                product_id: row.try_get("product_id").map_err(db_error)?,
                device_model: row.try_get("device_model").map_err(db_error)?,
                started_ms: row.try_get::<i64, _>("started_ms").map_err(db_error)? as u64,
            });
        }
        Ok(jobs)
    }
}

/// The SQL expression for a grouping key; fixed strings only, never caller input.
fn column(group: UsageGrouping) -> &'static str {
    match group {
        UsageGrouping::Kind => "kind",
        UsageGrouping::Product => "product_id",
        UsageGrouping::Day => "strftime('%Y-%m-%d', occurred_at_ms / 1000, 'unixepoch')",
        UsageGrouping::DeviceModel => "device_model",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ProductId;

    #[tokio::test]
    async fn counts_group_by_kind_product_and_day() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let day = UNIX_EPOCH + Duration::from_secs(1_764_000_000); // 2025-11-24 UTC
        let card = ProductId::parse("card").unwrap();
        let mut events = Vec::new();
        for i in 0..3 {
            let mut e = UsageEvent::new(UsageKind::ProductViewed).with_product(card.clone());
            e.at = day + Duration::from_secs(i);
            events.push(e);
        }
        let mut started = UsageEvent::new(UsageKind::SessionStarted);
        started.at = day + Duration::from_secs(86_400);
        events.push(started);
        store.append(&events).await.unwrap();

        let all = store.count(&UsageQuery::default()).await.unwrap();
        assert_eq!(all, vec![UsageCount { kind: None, product: None, day: None, device_model: None, count: 4 }]);

        let by = store
            .count(&UsageQuery {
                group_by: vec![UsageGrouping::Day, UsageGrouping::Kind, UsageGrouping::Product],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(by.len(), 2);
        assert_eq!(by[0].kind, Some(UsageKind::ProductViewed));
        assert_eq!(by[0].product.as_deref(), Some("card"));
        assert_eq!(by[0].day.as_deref(), Some("2025-11-24"));
        assert_eq!(by[0].count, 3);
        assert_eq!(by[1].day.as_deref(), Some("2025-11-25"));

        let window = store
            .count(&UsageQuery {
                start: Some(day + Duration::from_secs(1)),
                end: Some(day + Duration::from_secs(2)),
                kinds: vec![UsageKind::ProductViewed],
                group_by: vec![],
            })
            .await
            .unwrap();
        assert_eq!(window[0].count, 1);
    }

    #[tokio::test]
    async fn drain_started_before_takes_only_older_jobs() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        let job = |id: &str, started_ms: u64| RunningJob {
            job_id: id.into(),
            product_id: "card".into(),
            device_model: "Model".into(),
            started_ms,
        };
        for (id, started) in [("a", 1_000), ("b", 2_000), ("c", 3_000)] {
            store.started(&job(id, started)).await.unwrap();
        }
        let mut older = store.drain_started_before(2_001).await.unwrap();
        older.sort_by(|x, y| x.job_id.cmp(&y.job_id));
        assert_eq!(older, vec![job("a", 1_000), job("b", 2_000)]);
        assert!(store.drain_started_before(2_001).await.unwrap().is_empty(), "taken once");
        assert!(store.drain_started_before(3_000).await.unwrap().is_empty(), "the cutoff is exclusive");
        assert_eq!(store.drain().await.unwrap(), vec![job("c", 3_000)], "newer jobs stay");
    }
}
