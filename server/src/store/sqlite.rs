//! The persistent store on SQLite (the embedded default), through sqlx with embedded migrations.
//! It keeps only what may be kept: non-personal usage events now; vault ciphertext and the
//! device registry later.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};

use crate::domain::error::{CoreError, CoreResult};
use crate::domain::usage::{UsageCount, UsageEvent, UsageGrouping, UsageKind, UsageQuery, UsageStore};

/// A SQLite database holding the persistent store.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and brings its schema up to date.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        if let Some(parent) = Path::new(options.get_filename()).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
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
    CoreError::Unavailable("the usage database is unavailable; try again shortly".into())
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn append(&self, events: &[UsageEvent]) -> CoreResult<()> {
        // One multi-row INSERT per chunk: SQLite allows 32766 bound variables, 7 per row.
        for chunk in events.chunks(1000) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO usage_events (kind, occurred_at_ms, product_id, device_model, outcome, pages, duration_ms) ",
            );
            insert.push_values(chunk, |mut row, event| {
                row.push_bind(event.kind.as_str())
                    .push_bind(unix_ms(event.at))
                    .push_bind(event.product.as_ref().map(|p| p.as_str().to_owned()))
                    .push_bind(event.device_model.clone())
                    .push_bind(event.outcome.map(|o| o.as_str()))
                    .push_bind(event.pages.map(i64::from))
                    .push_bind(event.duration.map(|d| d.as_millis() as i64));
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
    use crate::domain::catalog::ProductId;

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
}
