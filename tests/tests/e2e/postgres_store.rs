//! The persistent store and the SSO vault on a real PostgreSQL: `PostgresStore` answers exactly
//! as `SqliteStore` does (usage counts, the device registry, running jobs), draining is exactly
//! once across instances, migrations run once however often the store opens, `PgVault` keeps the
//! vault's contract and only the bytes it was given, TLS is verified against the URL's CA, the
//! password never shows in an error, and a server that is down makes calls unavailable.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use server::domain::devices::{DeliveryMode, Device, DeviceStore, PrinterUri, default_capabilities};
use server::domain::error::CoreError;
use server::domain::ids::{DeviceId, ProductId};
use server::domain::jobs::{RunningJob, RunningJobs};
use server::domain::usage::{JobOutcome, UsageEvent, UsageGrouping, UsageKind, UsageQuery, UsageStore};
use server::store::postgres::{MAX_CONNECTIONS, PostgresStore};
use server::store::sqlite::SqliteStore;
use sqlx::{Connection as _, PgConnection, Row as _};
use tests::pki::TestCa;
use tests::postgres::{PgOptions, TestDatabase, TestPostgres, with_database};
use vault::{MAX_ENVELOPE, MAX_PAGE, PgVault, VaultAddress, VaultEntry, VaultError, VaultStore};

const UNAVAILABLE: &str = "the database is unavailable; try again shortly";

async fn fresh() -> (TestDatabase, PostgresStore) {
    let db = TestDatabase::create().await.expect("a test database");
    let store = PostgresStore::open(db.url()).await.expect("the store opens");
    (db, store)
}

// === usage events ===

/// Events on several days, of several kinds, for products and models whose names sort
/// differently by bytes and by language ("Card" < "a-card" < "card" by bytes), some without a
/// product or model.
fn varied_events() -> Vec<UsageEvent> {
    let day = UNIX_EPOCH + Duration::from_secs(1_764_000_000); // 2025-11-24 UTC
    let products = [None, Some("card"), Some("Card"), Some("a-card"), Some("flyer_A5"), Some("z.1")];
    let models = [None, Some("Xerox AltaLink C8170"), Some("xerox altalink"), Some("Canon")];
    let mut events = Vec::new();
    for i in 0..600u64 {
        let kind = UsageKind::ALL[(i as usize * 7) % UsageKind::ALL.len()];
        let mut event = UsageEvent::new(kind);
        // Spread over four days, some right at midnight and a millisecond before it.
        event.at = day + Duration::from_millis((i % 4) * 86_400_000 + (i % 3) * 43_200_000 - (i % 2));
        event.product = products[(i as usize) % products.len()].map(|p| ProductId::parse(p).unwrap());
        event.device_model = models[(i as usize * 5) % models.len()].map(str::to_owned);
        if kind == UsageKind::JobEnded {
            event.outcome = Some([JobOutcome::Completed, JobOutcome::Canceled, JobOutcome::Aborted][i as usize % 3]);
            event.pages = Some((i % 40) as u32);
            event.duration = Some(Duration::from_millis(i * 13));
        }
        events.push(event);
    }
    events
}

/// Every combination of grouping keys, with and without a time window and a kind filter.
fn queries() -> Vec<UsageQuery> {
    let day = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    let keys = [UsageGrouping::Kind, UsageGrouping::Product, UsageGrouping::Day, UsageGrouping::DeviceModel];
    let windows = [
        (None, None),
        (Some(day + Duration::from_secs(86_400)), None),
        (None, Some(day + Duration::from_secs(2 * 86_400))),
        (Some(day + Duration::from_millis(43_199_999)), Some(day + Duration::from_millis(3 * 86_400_000 - 1))),
        (Some(day + Duration::from_secs(100 * 86_400)), None),
    ];
    let kinds = [vec![], vec![UsageKind::JobEnded], vec![UsageKind::ProductViewed, UsageKind::SessionStarted]];
    let mut queries = Vec::new();
    for mask in 0..16usize {
        let mut group_by: Vec<UsageGrouping> =
            keys.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, k)| *k).collect();
        // The caller's order and repeats must not matter.
        group_by.reverse();
        if let Some(first) = group_by.first().copied() {
            group_by.push(first);
        }
        for (start, end) in windows {
            for kinds in &kinds {
                queries.push(UsageQuery { start, end, kinds: kinds.clone(), group_by: group_by.clone() });
            }
        }
    }
    queries
}

async fn counts_match_sqlite(db: &TestDatabase) {
    let postgres = PostgresStore::open(db.url()).await.unwrap();
    let sqlite = SqliteStore::open("sqlite::memory:").await.unwrap();
    let events = varied_events();
    for batch in events.chunks(250) {
        postgres.append(batch).await.unwrap();
        sqlite.append(batch).await.unwrap();
    }
    for query in queries() {
        let expected = sqlite.count(&query).await.unwrap();
        let got = postgres.count(&query).await.unwrap();
        assert_eq!(got, expected, "{query:?}");
    }
}

#[tokio::test]
async fn usage_counts_equal_sqlites() {
    let db = TestDatabase::create().await.unwrap();
    counts_match_sqlite(&db).await;
}

#[tokio::test]
async fn usage_counts_equal_sqlites_under_a_language_collation() {
    // en-US sorts "a-card" < "Card" < "card"; the store's columns compare bytes, as SQLite does.
    let db = TestDatabase::create_with_icu_locale("en-US").await.unwrap();
    counts_match_sqlite(&db).await;
}

#[tokio::test]
async fn usage_counts_group_by_kind_product_and_day() {
    // sqlite.rs's own test, on PostgreSQL.
    let (_db, store) = fresh().await;
    let day = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
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
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].kind, all[0].count), (None, 4));

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

    let empty = store.count(&UsageQuery { kinds: vec![UsageKind::SsoUsed], ..Default::default() }).await.unwrap();
    assert!(empty.is_empty(), "no row for nothing counted, as in SQLite: {empty:?}");
}

#[tokio::test]
async fn a_large_append_is_one_transaction() {
    let (db, store) = fresh().await;
    // More rows than one INSERT carries.
    let events: Vec<UsageEvent> = (0..2500).map(|_| UsageEvent::new(UsageKind::PreviewRendered)).collect();
    store.append(&events).await.unwrap();
    assert_eq!(store.count(&UsageQuery::default()).await.unwrap()[0].count, 2500);

    // Every event the domain makes fits the table, so a constraint refuses one here: the
    // batch fails whole, its first chunk included.
    let mut admin = PgConnection::connect(db.url()).await.unwrap();
    sqlx::raw_sql("ALTER TABLE usage_events ADD CONSTRAINT no_sso CHECK (kind <> 'sso_used')")
        .execute(&mut admin)
        .await
        .unwrap();
    let mut mixed: Vec<UsageEvent> = (0..1500).map(|_| UsageEvent::new(UsageKind::PreviewRendered)).collect();
    mixed.push(UsageEvent::new(UsageKind::SsoUsed));
    let err = store.append(&mixed).await.unwrap_err();
    assert!(matches!(&err, CoreError::Unavailable(m) if m == UNAVAILABLE), "{err:?}");
    assert_eq!(store.count(&UsageQuery::default()).await.unwrap()[0].count, 2500, "nothing of the batch stayed");
}

// === devices ===

fn device(id: &str) -> Device {
    Device {
        id: DeviceId::parse(id).unwrap(),
        display_name: format!("Device {id}"),
        model: "Xerox AltaLink C8170".into(),
        delivery: DeliveryMode::IppPush,
        printer_uri: Some(PrinterUri::parse("ipps://printer.example:631/ipp/print").unwrap()),
        pinned_certificate_sha256: Some([0xab; 32]),
        location: "Floor 2".into(),
        capabilities: Some(default_capabilities()),
        registered_at: None,
        updated_at: None,
    }
}

/// A device as stored, without the times the store sets.
fn untimed(mut device: Device) -> Device {
    device.registered_at = None;
    device.updated_at = None;
    device
}

#[tokio::test]
async fn devices_crud() {
    let (_db, store) = fresh().await;
    let kiosk = device("kiosk-1");
    assert_eq!(store.get(&kiosk.id).await.unwrap(), None);
    assert_eq!(store.device_count().await.unwrap(), 0);

    store.insert(&kiosk).await.unwrap();
    let stored = store.get(&kiosk.id).await.unwrap().expect("stored");
    assert_eq!(untimed(stored.clone()), kiosk, "every field round-trips");
    let registered = stored.registered_at.expect("registered time");
    assert_eq!(stored.updated_at, Some(registered));

    let again = store.insert(&kiosk).await.unwrap_err();
    assert!(matches!(&again, CoreError::AlreadyExists(m) if m.contains("kiosk-1")), "{again:?}");

    let mut changed = kiosk.clone();
    changed.display_name = "Renamed".into();
    changed.delivery = DeliveryMode::SpoolFolder;
    changed.printer_uri = None;
    changed.pinned_certificate_sha256 = None;
    changed.capabilities = None;
    store.update(&changed).await.unwrap();
    let stored = store.get(&kiosk.id).await.unwrap().unwrap();
    assert_eq!(untimed(stored.clone()), changed);
    assert_eq!(stored.registered_at, Some(registered), "an update keeps when it was registered");

    let missing = store.update(&device("nobody")).await.unwrap_err();
    assert!(matches!(&missing, CoreError::NotFound(m) if m.contains("nobody")), "{missing:?}");
    assert_eq!(store.get(&DeviceId::parse("nobody").unwrap()).await.unwrap(), None, "update creates nothing");

    store.upsert(&device("lobby")).await.unwrap();
    store.upsert(&kiosk).await.unwrap();
    let stored = store.get(&kiosk.id).await.unwrap().unwrap();
    assert_eq!(untimed(stored.clone()), kiosk, "upsert replaces");
    assert_eq!(stored.registered_at, Some(registered), "and keeps the registration time");
    assert_eq!(store.device_count().await.unwrap(), 2);

    assert!(store.delete(&kiosk.id).await.unwrap());
    assert!(!store.delete(&kiosk.id).await.unwrap(), "deleting twice finds nothing");
    assert_eq!(store.device_count().await.unwrap(), 1);
}

#[tokio::test]
async fn device_pages_come_in_the_order_sqlite_gives() {
    let db = TestDatabase::create_with_icu_locale("en-US").await.unwrap();
    let postgres = PostgresStore::open(db.url()).await.unwrap();
    let sqlite = SqliteStore::open("sqlite::memory:").await.unwrap();
    let ids = ["b", "A", "a_1", "a-1", "a.1", "B", "a", "Z9", "0", "a1", "_x", "-y"];
    for id in ids {
        postgres.insert(&device(id)).await.unwrap();
        sqlite.insert(&device(id)).await.unwrap();
    }
    for size in [1, 3, 5, 12, 50] {
        let mut pages = Vec::new();
        for store in [&postgres as &dyn DeviceStore, &sqlite] {
            let mut seen = Vec::new();
            let mut after: Option<DeviceId> = None;
            loop {
                let page = store.list(after.as_ref(), size).await.unwrap();
                assert!(page.len() <= size as usize);
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                seen.push(page.iter().map(|d| d.id.as_str().to_owned()).collect::<Vec<_>>());
            }
            pages.push(seen);
        }
        assert_eq!(pages[0], pages[1], "page size {size}");
        assert_eq!(pages[0].concat().len(), ids.len());
    }
}

#[tokio::test]
async fn concurrent_inserts_of_one_device_let_one_win() {
    let (db, first) = fresh().await;
    let second = PostgresStore::open(db.url()).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = if i % 2 == 0 { first.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move { store.insert(&device("contested")).await }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(CoreError::AlreadyExists(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);
}

// === running jobs ===

fn job(id: &str, started_ms: u64) -> RunningJob {
    RunningJob { job_id: id.into(), product_id: "card".into(), device_model: "Model".into(), started_ms }
}

fn sorted(mut jobs: Vec<RunningJob>) -> Vec<RunningJob> {
    jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    jobs
}

#[tokio::test]
async fn running_jobs_are_remembered_until_they_end() {
    let (_db, store) = fresh().await;
    store.started(&job("a", 1)).await.unwrap();
    store.started(&job("b", 2)).await.unwrap();
    store.started(&job("a", 3)).await.unwrap();
    store.started(&job("far", u64::MAX)).await.unwrap();
    store.ended("b").await.unwrap();
    store.ended("never-started").await.unwrap();
    assert_eq!(sorted(store.drain().await.unwrap()), vec![job("a", 3), job("far", u64::MAX)], "a replaced");
    assert!(store.drain().await.unwrap().is_empty(), "drained once");
}

#[tokio::test]
async fn drain_started_before_takes_only_older_jobs() {
    let (_db, store) = fresh().await;
    for (id, started) in [("a", 1_000), ("b", 2_000), ("c", 3_000)] {
        store.started(&job(id, started)).await.unwrap();
    }
    assert_eq!(sorted(store.drain_started_before(2_001).await.unwrap()), vec![job("a", 1_000), job("b", 2_000)]);
    assert!(store.drain_started_before(2_001).await.unwrap().is_empty(), "taken once");
    assert!(store.drain_started_before(3_000).await.unwrap().is_empty(), "the cutoff is exclusive");
    assert_eq!(store.drain().await.unwrap(), vec![job("c", 3_000)], "newer jobs stay");
}

#[tokio::test]
async fn two_instances_draining_at_once_each_get_distinct_jobs() {
    let db = TestDatabase::create().await.unwrap();
    // Two stores, two pools: two core instances on one database.
    let one = PostgresStore::open(db.url()).await.unwrap();
    let two = PostgresStore::open(db.url()).await.unwrap();
    for round in 0..5 {
        let jobs: Vec<RunningJob> = (0..300).map(|i| job(&format!("r{round}-{i:03}"), i)).collect();
        for job in &jobs {
            one.started(job).await.unwrap();
        }
        let (a, b) = if round % 2 == 0 {
            tokio::join!(one.drain(), two.drain())
        } else {
            tokio::join!(one.drain_started_before(u64::MAX), two.drain_started_before(u64::MAX))
        };
        let (a, b) = (a.unwrap(), b.unwrap());
        let ids = |jobs: &[RunningJob]| jobs.iter().map(|j| j.job_id.clone()).collect::<BTreeSet<_>>();
        assert!(ids(&a).is_disjoint(&ids(&b)), "round {round}: a job drained twice");
        assert_eq!(sorted([a, b].concat()), jobs, "round {round}: every job drained");
    }
}

// === migrations ===

#[tokio::test]
async fn migrations_run_once_however_often_the_store_opens() {
    let (db, store) = fresh().await;
    store.insert(&device("kept")).await.unwrap();
    drop(store);
    // Three instances starting at once, then one more.
    let (a, b, c) =
        tokio::join!(PostgresStore::open(db.url()), PostgresStore::open(db.url()), PostgresStore::open(db.url()));
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let store = PostgresStore::open(db.url()).await.unwrap();
    assert!(store.get(&DeviceId::parse("kept").unwrap()).await.unwrap().is_some(), "data survives reopening");
    let applied: Vec<(i64, bool)> = sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&store.pool())
        .await
        .unwrap();
    // Every migration shipped, each applied once.
    let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../server/migrations-postgres"))
        .unwrap()
        .filter(|entry| entry.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql")))
        .count() as i64;
    assert!(shipped >= 5, "the migrations folder is found");
    let expected: Vec<(i64, bool)> = (1..=shipped).map(|version| (version, true)).collect();
    assert_eq!(applied, expected);
}

#[tokio::test]
async fn the_pool_is_bounded_and_statements_time_out() {
    let (_db, store) = fresh().await;
    let pool = store.pool();
    assert_eq!(pool.options().get_max_connections(), MAX_CONNECTIONS);
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&pool).await.unwrap();
    assert_eq!(timeout, "30s");
    let name: String = sqlx::query_scalar("SHOW application_name").fetch_one(&pool).await.unwrap();
    assert_eq!(name, "podconnect-server");
}

#[tokio::test]
async fn an_operators_statement_timeout_wins() {
    let db = TestDatabase::create().await.unwrap();
    let url = format!("{}?options=-c%20statement_timeout%3D5s", db.url());
    let store = PostgresStore::open(&url).await.unwrap();
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&store.pool()).await.unwrap();
    assert_eq!(timeout, "5s");
}

#[tokio::test]
async fn test_databases_are_dropped() {
    let db = TestDatabase::create().await.unwrap();
    let name = db.name.clone();
    let admin = with_database(db.url(), "postgres");
    drop(db);
    let mut connection = PgConnection::connect(&admin).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

// === the vault ===

fn address(byte: u8) -> VaultAddress {
    VaultAddress::from_bytes([byte; 32])
}

fn entry(key_version: u32, envelope: &[u8]) -> VaultEntry {
    VaultEntry { key_version, envelope: envelope.to_vec() }
}

async fn vault() -> (TestDatabase, PostgresStore, PgVault) {
    let (db, store) = fresh().await;
    let vault = PgVault::with_pool(store.pool()).await.expect("the vault's table");
    (db, store, vault)
}

#[tokio::test]
async fn vault_put_get_delete() {
    let (_db, _store, vault) = vault().await;
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
    vault.put(&address(7), entry(u32::MAX, b"kept")).await.unwrap();
    assert_eq!(vault.get(&address(7)).await.unwrap(), Some(entry(u32::MAX, b"kept")), "the largest key version");
}

#[tokio::test]
async fn vault_replace_if_swaps_only_what_was_expected() {
    let (_db, _store, vault) = vault().await;
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
async fn vault_pages_come_in_address_order() {
    // A language collation would sort hex differently from bytes if the column followed it.
    let db = TestDatabase::create_with_icu_locale("en-US").await.unwrap();
    let store = PostgresStore::open(db.url()).await.unwrap();
    let vault = PgVault::with_pool(store.pool()).await.unwrap();
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
    assert!(matches!(vault.page(None, 0).await, Err(VaultError::Invalid(_))));
    assert!(matches!(vault.page(None, MAX_PAGE + 1).await, Err(VaultError::Invalid(_))));
}

#[tokio::test]
async fn vault_refuses_oversized_and_empty_envelopes() {
    let (_db, _store, vault) = vault().await;
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
async fn vault_shares_the_pool_without_migrations() {
    let (_db, store, vault) = vault().await;
    store.insert(&device("host-row")).await.unwrap();
    vault.put(&address(6), entry(1, b"shared")).await.unwrap();
    // Opening again, and twice at once (two instances starting), keeps what is there.
    let (a, b) = tokio::join!(PgVault::with_pool(store.pool()), PgVault::with_pool(store.pool()));
    a.unwrap();
    assert_eq!(b.unwrap().get(&address(6)).await.unwrap(), Some(entry(1, b"shared")));
    assert_eq!(store.device_count().await.unwrap(), 1, "the host's own tables are untouched");
}

#[tokio::test]
async fn vault_tables_created_by_instances_at_once() {
    let (db, store) = fresh().await;
    let other = PostgresStore::open(db.url()).await.unwrap();
    let (a, b) = tokio::join!(PgVault::with_pool(store.pool()), PgVault::with_pool(other.pool()));
    a.unwrap().put(&address(9), entry(1, b"x")).await.unwrap();
    assert_eq!(b.unwrap().len().await.unwrap(), 1);
}

#[tokio::test]
async fn vault_concurrent_puts_report_one_creation() {
    let (_db, _store, vault) = vault().await;
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

#[tokio::test]
async fn vault_rows_hold_only_the_envelope_given() {
    let (_db, store, vault) = vault().await;
    let envelope: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    vault.put(&address(0x5a), entry(42, &envelope)).await.unwrap();
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;

    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'vault_entries' \
         ORDER BY ordinal_position",
    )
    .fetch_all(&store.pool())
    .await
    .unwrap();
    assert_eq!(columns, ["address", "key_version", "envelope", "updated_ms"]);
    let rows = sqlx::query("SELECT address, key_version, envelope, updated_ms FROM vault_entries")
        .fetch_all(&store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.get::<String, _>("address"), address(0x5a).to_hex());
    assert_eq!(row.get::<i64, _>("key_version"), 42);
    assert_eq!(row.get::<Vec<u8>, _>("envelope"), envelope, "the very bytes, nothing added");
    assert!((1..=now_ms).contains(&row.get::<i64, _>("updated_ms")), "a time, not data");
}

// === TLS, passwords, outages: a server of the test's own ===

/// A password no error may show, with characters a URL must escape.
const PASSWORD: &str = "Sup3r/S3cret@pass";

#[tokio::test]
async fn tls_is_verified_against_the_urls_ca_and_the_password_never_shows() {
    let ca = TestCa::new("podconnect test database CA");
    let server = TestPostgres::start(PgOptions::new().tls(ca.server(&["localhost", "127.0.0.1"])).password(PASSWORD))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write(&ca_file);
    let other_ca_file = dir.path().join("other-ca.pem");
    TestCa::new("someone else's CA").write(&other_ca_file);
    let db = TestDatabase::create_on_server(&server).await.unwrap();

    let verified = format!("{}?sslmode=verify-full&sslrootcert={}", db.url(), ca_file.display());
    let store = PostgresStore::open(&verified).await.expect("verify-full with the right CA");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&store.pool())
        .await
        .unwrap();
    assert!(ssl, "the connection is encrypted");
    store.insert(&device("over-tls")).await.unwrap();

    let shown = |err: anyhow::Error| {
        let shown = format!("{err:#} | {err:?}");
        assert!(!shown.contains("S3cret"), "the password shows: {shown}");
        assert!(!shown.contains(&tests::postgres::percent_encode(PASSWORD)), "the password shows: {shown}");
        shown
    };
    let wrong_ca = format!("{}?sslmode=verify-full&sslrootcert={}", db.url(), other_ca_file.display());
    let refused = shown(PostgresStore::open(&wrong_ca).await.err().expect("a server the CA did not sign is refused"));
    assert!(refused.contains("cannot connect to the database at 127.0.0.1:"), "{refused}");
    assert!(refused.contains("UnknownIssuer") || refused.contains("certificate"), "names the certificate: {refused}");

    let bad_password = verified.replace(&tests::postgres::percent_encode(PASSWORD), "wrong");
    let refused = shown(PostgresStore::open(&bad_password).await.err().expect("a wrong password is refused"));
    assert!(refused.contains("password authentication failed"), "{refused}");

    let bad_option = format!("{}?sslmode=sometimes", db.url());
    let refused = shown(PostgresStore::open(&bad_option).await.err().expect("a bad sslmode is refused"));
    assert!(refused.contains("sometimes"), "{refused}");

    let misspelt = format!("{}?passwd={}", db.url(), PASSWORD);
    let refused = shown(PostgresStore::open(&misspelt).await.err().expect("an unknown parameter is refused"));
    assert!(refused.contains("\"passwd\""), "{refused}");
}

#[tokio::test]
async fn calls_are_unavailable_while_the_server_is_down() {
    let mut server = TestPostgres::start(PgOptions::new().password(PASSWORD)).await.unwrap();
    let db = TestDatabase::create_on_server(&server).await.unwrap();
    let store = PostgresStore::open(db.url()).await.unwrap();
    let vault = PgVault::with_pool(store.pool()).await.unwrap();
    store.insert(&device("before")).await.unwrap();

    server.stop();
    let unavailable =
        |err: CoreError| assert!(matches!(&err, CoreError::Unavailable(m) if m == UNAVAILABLE), "{err:?}");
    unavailable(store.get(&DeviceId::parse("before").unwrap()).await.unwrap_err());
    unavailable(store.append(&[UsageEvent::new(UsageKind::SessionStarted)]).await.unwrap_err());
    unavailable(store.drain().await.unwrap_err());
    let err = vault.get(&address(1)).await.unwrap_err();
    assert!(matches!(err, VaultError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("S3cret"), "{err}");

    let refused = PostgresStore::open(db.url()).await.err().expect("no server, no store");
    let shown = format!("{refused:#}");
    assert!(shown.contains("cannot connect to the database at 127.0.0.1:"), "{shown}");
    assert!(!shown.contains("S3cret"), "{shown}");
}
