//! The persistent store on PostgreSQL (`--database-url postgres://…`), for several core instances
//! sharing one database: the tables and semantics of `sqlite.rs`, migrations in
//! `server/migrations-postgres/`, a bounded pool, and TLS when the URL asks for it
//! (`sslmode=verify-full&sslrootcert=ca.pem`). Errors never carry the URL's password.

use std::fmt::Display;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection as _, PgConnection, PgPool, QueryBuilder, Row};

use super::{DEVICE_COLUMNS, DeviceRow};
use crate::domain::devices::{Device, DeviceStore, PrinterUri};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::ids::DeviceId;
use crate::domain::jobs::{RunningJob, RunningJobs};
use crate::domain::usage::{UsageCount, UsageEvent, UsageGrouping, UsageKind, UsageQuery, UsageStore};

/// Connections one instance keeps at most: every instance takes its share of the server's own
/// limit (`max_connections`, 100 by default).
pub const MAX_CONNECTIONS: u32 = 8;

/// How long a call waits for a connection, a new one included, before the store reports itself
/// unavailable: a database that is down fails calls in this time, not in a TCP timeout.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one statement may run on the server before it is cancelled there.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The query parameters sqlx understands. sqlx logs any other parameter with its value, which
/// could be a misspelt `password`, so the URL is refused instead.
const KNOWN_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// A PostgreSQL database holding the persistent store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database?…`) and
    /// brings its schema up to date. Instances opening one database at once take turns: sqlx
    /// holds an advisory lock while it migrates.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let secrets = Secrets::of(url);
        check_parameters(url)?;
        let mut options =
            PgConnectOptions::from_str(url).map_err(|err| secrets.error("the database URL is not valid", &err))?;
        let place = match options.get_socket() {
            Some(socket) => format!("{}:{}", socket.display(), options.get_port()),
            None => format!("{}:{}", options.get_host(), options.get_port()),
        };
        let place = format!("{place}/{}", options.get_database().unwrap_or(options.get_username()));
        // An operator's own `options=-c statement_timeout=…` wins over the default.
        if !options.get_options().is_some_and(|o| o.contains("statement_timeout")) {
            options = options.options([("statement_timeout", STATEMENT_TIMEOUT.as_millis())]);
        }
        if options.get_application_name().is_none() {
            options = options.application_name("podconnect-server");
        }
        let cannot_connect = format!("cannot connect to the database at {place}");
        // One connection by hand first: the pool retries a refused connection until its timeout
        // and then says only that it timed out, while this says why (refused, TLS, password).
        match tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(first)) => first.close().await.map_err(|err| secrets.error(&cannot_connect, &err))?,
            Ok(Err(err)) => return Err(secrets.error(&cannot_connect, &err)),
            Err(_) => anyhow::bail!("{cannot_connect}: no answer within {ACQUIRE_TIMEOUT:?}"),
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|err| secrets.error(&cannot_connect, &err))?;
        sqlx::migrate!("./migrations-postgres")
            .run(&pool)
            .await
            .map_err(|err| secrets.error(&format!("cannot migrate the database at {place}"), &err))?;
        Ok(PostgresStore { pool })
    }

    /// The connection pool, for stores that keep their own table in the same database (the
    /// SSO vault).
    pub fn pool(&self) -> PgPool {
        self.pool.clone()
    }
}

/// The password a database URL carries, spelt as in the URL and decoded: an error that repeats
/// either is scrubbed before anyone sees it.
struct Secrets(Vec<String>);

impl Secrets {
    fn of(url: &str) -> Secrets {
        let mut found = Vec::new();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            found.push(password.to_owned());
        }
        for (key, value) in query_pairs(url) {
            if key == "password" {
                found.push(value.to_owned());
            }
        }
        let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
        found.extend(decoded);
        found.retain(|s| !s.is_empty());
        // Longest first, so a password that contains another is scrubbed whole.
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        found.dedup();
        Secrets(found)
    }

    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.0 {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }

    /// `what` and the cause's message, scrubbed; the cause itself is not kept, so no chain or
    /// `Debug` of it can show the password either.
    fn error(&self, what: &str, cause: &dyn Display) -> anyhow::Error {
        anyhow::anyhow!("{what}: {}", self.scrub(&cause.to_string()))
    }
}

/// The URL's query as `key=value` pairs, undecoded.
fn query_pairs(url: &str) -> impl Iterator<Item = (&str, &str)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').filter(|pair| !pair.is_empty()).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Refuses a URL with a query parameter sqlx does not know; the error names the key only.
fn check_parameters(url: &str) -> anyhow::Result<()> {
    for (key, _) in query_pairs(url) {
        let known = KNOWN_PARAMETERS.contains(&key) || (key.starts_with("options[") && key.ends_with(']'));
        if !known {
            anyhow::bail!(
                "the database URL has an unknown parameter {key:?}; known: {}, options[NAME]",
                KNOWN_PARAMETERS.join(", ")
            );
        }
    }
    Ok(())
}

/// `%XX` escapes decoded as UTF-8 (lossily); anything malformed is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if bytes[i] == b'%' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(i64::MAX)
}

fn db_error(err: sqlx::Error) -> CoreError {
    tracing::error!(error = %err, "persistent store error");
    CoreError::Unavailable("the database is unavailable; try again shortly".into())
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn append(&self, events: &[UsageEvent]) -> CoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // One multi-row INSERT per chunk: PostgreSQL allows 65535 bound values, 7 per row.
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
            insert.build().execute(&mut *tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)
    }

    async fn count(&self, query: &UsageQuery) -> CoreResult<Vec<UsageCount>> {
        let mut groups = query.group_by.clone();
        groups.sort();
        groups.dedup();

        let mut sql = QueryBuilder::new("SELECT ");
        for group in &groups {
            sql.push(column(*group)).push(", ");
        }
        sql.push("COUNT(*) AS n FROM usage_events WHERE TRUE");
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
        if !groups.is_empty() {
            // By position, and with NULLs first as SQLite sorts them, so both stores answer alike.
            let positions: Vec<String> = (1..=groups.len()).map(|i| i.to_string()).collect();
            let ordered: Vec<String> = positions.iter().map(|p| format!("{p} NULLS FIRST")).collect();
            sql.push(format!(" GROUP BY {} ORDER BY {}", positions.join(", "), ordered.join(", ")));
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

/// The SQL expression for a grouping key; fixed strings only, never caller input. Text compares
/// byte by byte (the columns are `COLLATE "C"`), as in SQLite.
fn column(group: UsageGrouping) -> &'static str {
    match group {
        UsageGrouping::Kind => "kind",
        UsageGrouping::Product => "product_id",
        UsageGrouping::Day => {
            "to_char(to_timestamp(occurred_at_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') COLLATE \"C\""
        }
        UsageGrouping::DeviceModel => "device_model",
    }
}

impl PostgresStore {
    /// Inserts a device, or with `replace` changes an existing one, keeping when it was
    /// registered.
    async fn write_device(&self, device: &Device, replace: bool) -> Result<u64, sqlx::Error> {
        let upsert = if replace {
            " ON CONFLICT (id) DO UPDATE SET display_name = EXCLUDED.display_name, model = EXCLUDED.model, \
             delivery = EXCLUDED.delivery, printer_uri = EXCLUDED.printer_uri, \
             pinned_certificate_sha256 = EXCLUDED.pinned_certificate_sha256, location = EXCLUDED.location, \
             capabilities = EXCLUDED.capabilities, updated_ms = EXCLUDED.updated_ms"
        } else {
            ""
        };
        let sql =
            format!("INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10){upsert}");
        let now = now_ms();
        let done = sqlx::query(&sql)
            .bind(device.id.as_str())
            .bind(&device.display_name)
            .bind(&device.model)
            .bind(device.delivery.name())
            .bind(device.printer_uri.as_ref().map(PrinterUri::as_str))
            .bind(device.pinned_certificate_sha256.map(hex::encode))
            .bind(&device.location)
            .bind(capabilities_bytes(device))
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn capabilities_bytes(device: &Device) -> Option<Vec<u8>> {
    device.capabilities.as_ref().map(|c| postcard::to_allocvec(c).unwrap_or_default())
}

#[async_trait]
impl DeviceStore for PostgresStore {
    async fn get(&self, id: &DeviceId) -> CoreResult<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1");
        let row = sqlx::query_as::<_, DeviceRow>(&sql).bind(id.as_str()).fetch_optional(&self.pool).await;
        row.map_err(db_error)?.map(|row| row.into_device()).transpose()
    }

    async fn list(&self, after: Option<&DeviceId>, limit: u32) -> CoreResult<Vec<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id > $1 ORDER BY id LIMIT $2");
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
        // One statement: a device deleted meanwhile is not brought back, unlike get-then-upsert.
        let done = sqlx::query(
            "UPDATE devices SET display_name = $2, model = $3, delivery = $4, printer_uri = $5, \
             pinned_certificate_sha256 = $6, location = $7, capabilities = $8, updated_ms = $9 WHERE id = $1",
        )
        .bind(device.id.as_str())
        .bind(&device.display_name)
        .bind(&device.model)
        .bind(device.delivery.name())
        .bind(device.printer_uri.as_ref().map(PrinterUri::as_str))
        .bind(device.pinned_certificate_sha256.map(hex::encode))
        .bind(&device.location)
        .bind(capabilities_bytes(device))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound(format!("device \"{}\" is not registered", device.id.as_str())));
        }
        Ok(())
    }

    async fn delete(&self, id: &DeviceId) -> CoreResult<bool> {
        let done = sqlx::query("DELETE FROM devices WHERE id = $1").bind(id.as_str()).execute(&self.pool).await;
        Ok(done.map_err(db_error)?.rows_affected() > 0)
    }

    async fn device_count(&self) -> CoreResult<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM devices").fetch_one(&self.pool).await.map_err(db_error)?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

fn running_job_from_row(row: &PgRow) -> CoreResult<RunningJob> {
    Ok(RunningJob {
        job_id: row.try_get("job_id").map_err(db_error)?,
        product_id: row.try_get("product_id").map_err(db_error)?,
        device_model: row.try_get("device_model").map_err(db_error)?,
        // Stored `as i64`, read back `as u64`: every value round-trips, as in SQLite.
        started_ms: row.try_get::<i64, _>("started_ms").map_err(db_error)? as u64,
    })
}

#[async_trait]
impl RunningJobs for PostgresStore {
    async fn started(&self, job: &RunningJob) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO running_jobs (job_id, product_id, device_model, started_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (job_id) DO UPDATE SET product_id = EXCLUDED.product_id, \
             device_model = EXCLUDED.device_model, started_ms = EXCLUDED.started_ms",
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
        sqlx::query("DELETE FROM running_jobs WHERE job_id = $1")
            .bind(job_id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn drain(&self) -> CoreResult<Vec<RunningJob>> {
        // One DELETE … RETURNING: when instances drain at once, a row locked by one is skipped
        // by the other once the first commits, so every job is reported exactly once.
        let rows = sqlx::query("DELETE FROM running_jobs RETURNING job_id, product_id, device_model, started_ms")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        rows.iter().map(running_job_from_row).collect()
    }

    async fn drain_started_before(&self, cutoff_ms: u64) -> CoreResult<Vec<RunningJob>> {
        let rows = sqlx::query(
            "DELETE FROM running_jobs WHERE started_ms < $1 RETURNING job_id, product_id, device_model, started_ms",
        )
        .bind(i64::try_from(cutoff_ms).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter().map(running_job_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_in_every_spelling() {
        let secrets = Secrets::of("postgres://app:p%40ss%2Fw0rd@db.example:5432/pod?sslmode=require&password=other");
        let text = "failed for p%40ss%2Fw0rd, p@ss/w0rd and other";
        assert_eq!(secrets.scrub(text), "failed for ***, *** and ***");
        assert!(Secrets::of("postgres://app@db/pod").0.is_empty(), "no password, nothing to scrub");
        assert_eq!(Secrets::of("postgres://a:b:c@db/pod").scrub("b:c"), "***", "a colon in the password");
    }

    #[test]
    fn unknown_parameters_are_refused_by_name_only() {
        check_parameters("postgres://db/pod?sslmode=verify-full&sslrootcert=/ca.pem&options[search_path]=x").unwrap();
        check_parameters("postgres://db/pod").unwrap();
        let err = check_parameters("postgres://db/pod?sslmode=require&pasword=hunter2").unwrap_err().to_string();
        assert!(err.contains("\"pasword\""), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn percent_decoding_keeps_what_is_malformed() {
        assert_eq!(percent_decode("a%20b%zz%2"), "a b%zz%2");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }

    #[tokio::test]
    async fn open_errors_never_show_the_password() {
        // Nothing listens on port 1: the connection is refused at once.
        for url in [
            "postgres://app:Sup3rS3cret@127.0.0.1:1/pod",
            "postgres://app:Sup3rS3cret@127.0.0.1:1/pod?sslmode=bogus",
            "postgres://app@127.0.0.1:1/pod?password=Sup3rS3cret&sslmode=disable",
            "postgres://app:Sup3rS3cret@127.0.0.1:1/pod?passwd=Sup3rS3cret",
        ] {
            let Err(err) = PostgresStore::open(url).await else { panic!("{url} opened") };
            let shown = format!("{err:#} {err:?}");
            assert!(!shown.contains("Sup3rS3cret"), "{shown}");
        }
    }
}
