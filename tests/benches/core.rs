//! Performance benchmark of the podconnect core against the release `podconnect-server` binary:
//! GetProduct throughput and latency over TLS, memory held per idle session, the time from
//! process start to SERVING, and printing against a real IPP printer (`ippeveprinter`, see
//! `tests::ipp`). Run `cargo build --release -p server` first, then
//! `cargo bench -p tests --bench core`. Loopback only; stops by itself (about two minutes). The
//! core is started as the tests start it (`tests::core::TestCore` on the release binary): ready
//! once it prints its ready line.
//!
//! Environment: `BENCH_SECONDS` (measured seconds per GetProduct run, default 10; warm-up is 2 s),
//! `BENCH_SESSIONS` (idle sessions to hold, default 100000), `BENCH_STARTS` (start-ups per data
//! folder kind, default 20), `BENCH_IDLE_HOLD` (seconds to keep the idle sessions afterwards while
//! watching the server's CPU and memory, for example 35 to see one session sweep; default 0),
//! `BENCH_JOBS` (print jobs per printing run, sequential and 4 sessions in parallel, default 30).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use proto::v1 as pb;
use proto::v1::catalog_service_client::CatalogServiceClient;
use proto::v1::customization_service_client::CustomizationServiceClient;
use proto::v1::print_service_client::PrintServiceClient;
use proto::v1::session_service_client::SessionServiceClient;
use proto::v1::usage_service_client::UsageServiceClient;
use tests::core::{CoreBuilder, TestCore};
use tests::ipp::TestPrinter;
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const WARMUP: Duration = Duration::from_secs(2);
const CONCURRENT_STREAMS: usize = 64;
const SESSION_STREAMS: usize = 16;
const SESSION_WARMUP: u64 = 2_000;
const SESSION_TARGET_BYTES: f64 = 2048.0;
const STARTUP_TARGET_MS: f64 = 200.0;
const OPERATOR_TOKEN: &str = "bench-operator-token-0123456789abcdef0123";

/// The release core in `data_dir`, its sessions kept for hours (idle 1h, absolute 2h).
fn long_sessions(binary: &Path, data_dir: &Path) -> CoreBuilder {
    TestCore::builder()
        .binary(binary)
        .data_dir(data_dir)
        .session_idle(Duration::from_secs(3600))
        .session_absolute(Duration::from_secs(7200))
}

/// The core's process id, for the /proc readings.
fn pid(core: &TestCore) -> anyhow::Result<u32> {
    core.pid().context("the core exited")
}

fn main() -> std::process::ExitCode {
    tests::bench::main("core", run)
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let binary = release_binary()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let bench_started = Instant::now();

    println!("podconnect core benchmark");
    println!("  cores (available_parallelism): {cores}; client and server share them (loopback)");
    println!("  server binary: {}", binary.display());
    if let Some(warning) = staleness_warning(&binary) {
        println!("  WARNING: {warning}");
    }
    println!(
        "  GetProduct: {} s warm-up + {} s measured per run (BENCH_SECONDS); sessions: {} (BENCH_SESSIONS); \
         start-ups: {} per kind (BENCH_STARTS); print jobs: {} per run (BENCH_JOBS)",
        WARMUP.as_secs(),
        settings.measure.as_secs(),
        settings.sessions,
        settings.starts,
        settings.jobs
    );
    println!();

    let throughput = bench_get_product(&binary, &settings).await.context("GetProduct benchmark")?;
    let memory = bench_session_memory(&binary, settings.sessions, settings.idle_hold)
        .await
        .context("session memory benchmark")?;
    let startup = bench_startup(&binary, settings.starts).await.context("start-up benchmark")?;
    let printing = bench_printing(&binary, settings.jobs).await.context("printing benchmark")?;

    println!("total bench time: {:.1} s", bench_started.elapsed().as_secs_f64());
    println!();
    println!("{}", json_line(cores, &settings, &throughput, &memory, &startup, &printing));
    Ok(())
}

struct Settings {
    measure: Duration,
    sessions: u64,
    starts: usize,
    /// How long to keep the idle sessions after measuring memory, watching the server (0 = no).
    idle_hold: Duration,
    /// Print jobs per printing run.
    jobs: usize,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
            match std::env::var(name) {
                Ok(raw) => raw.trim().parse().ok().with_context(|| format!("{name}={raw:?} is not a number")),
                Err(_) => Ok(default),
            }
        }
        let seconds: u64 = var("BENCH_SECONDS", 10)?;
        let sessions: u64 = var("BENCH_SESSIONS", 100_000)?;
        let starts: usize = var("BENCH_STARTS", 20)?;
        let jobs: usize = var("BENCH_JOBS", 30)?;
        ensure!(
            seconds > 0 && sessions > 0 && starts > 0 && jobs > 0,
            "BENCH_SECONDS, BENCH_SESSIONS, BENCH_STARTS and BENCH_JOBS must be > 0"
        );
        let idle_hold = Duration::from_secs(var("BENCH_IDLE_HOLD", 0)?);
        Ok(Settings { measure: Duration::from_secs(seconds), sessions, starts, idle_hold, jobs })
    }
}

// ---------------------------------------------------------------------------------------------
// 1. GetProduct over TLS
// ---------------------------------------------------------------------------------------------

struct LoadResult {
    label: String,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    measured: Duration,
    /// Latencies of the successful calls in the measured window, sorted, in nanoseconds.
    latencies: Vec<u64>,
    server_cpu: CpuUse,
    client_cpu: CpuUse,
}

impl LoadResult {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.measured.as_secs_f64()
    }

    fn percentile_us(&self, q: f64) -> f64 {
        percentile(&self.latencies, q) as f64 / 1000.0
    }
}

struct Throughput {
    runs: Vec<LoadResult>,
    server_rss_kib: u64,
}

async fn bench_get_product(binary: &Path, settings: &Settings) -> anyhow::Result<Throughput> {
    let dir = tempfile::tempdir()?;
    let server = long_sessions(binary, &dir.path().join("data")).spawn().await?;
    let channel = server.channel().await;

    let token = start_session(&channel, "mfd-bench").await?;
    let bearer: MetadataValue<Ascii> = format!("Bearer {token}").parse()?;
    let product = first_product(&channel, &bearer).await?;
    // One call up front, so a broken setup fails loudly instead of producing a table of errors.
    let mut request = Request::new(pb::GetProductRequest { product_id: product.clone() });
    request.metadata_mut().insert("authorization", bearer.clone());
    CatalogServiceClient::new(channel.clone()).get_product(request).await.context("GetProduct fails")?;

    let mut runs = Vec::new();
    for (label, call, streams) in [
        ("sequential (1 stream)", Call::GetProduct, 1),
        ("64 concurrent streams", Call::GetProduct, CONCURRENT_STREAMS),
        ("ref: unknown id seq.", Call::GetMissingProduct, 1),
        ("ref: Health/Check seq.", Call::Health, 1),
    ] {
        let load = Load { call, streams, measure: settings.measure, server_pid: pid(&server)? };
        runs.push(load.run(&channel, &bearer, &product, label).await?);
    }
    let server_rss_kib = read_memory(pid(&server)?)?.rss_kib;
    drop(channel);
    server.terminate().await?;

    println!("1. GetProduct(\"{product}\") over TLS, one connection (one tonic Channel, HTTP/2), release server");
    println!(
        "  {:<24} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12} {:>11}",
        "mode", "calls", "req/s", "p50 µs", "p90 µs", "p99 µs", "max µs", "errors", "server CPU", "srv µs/call"
    );
    for run in &runs {
        let server_cores = run.server_cpu.total_ns as f64 / run.measured.as_nanos() as f64;
        let per_call_us = if run.ok == 0 { 0.0 } else { run.server_cpu.total_ns as f64 / run.ok as f64 / 1000.0 };
        println!(
            "  {:<24} {:>9} {:>10.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>8.2} core {:>11.1}",
            run.label,
            run.ok,
            run.rps(),
            run.percentile_us(0.50),
            run.percentile_us(0.90),
            run.percentile_us(0.99),
            run.percentile_us(1.0),
            run.errors,
            server_cores,
            per_call_us
        );
    }
    for run in &runs {
        println!("  {}:", run.label);
        println!("    server threads: {}", run.server_cpu.describe(run.measured));
        println!("    bench threads:  {}", run.client_cpu.describe(run.measured));
        if let Some(error) = &run.first_error {
            println!("    first error: {error}");
        }
    }
    println!(
        "  (ref rows, same connection: \"unknown id\" = GetProduct answered NOT_FOUND: gate, session check and \
         lookup, but no usage event; \"Health/Check\" = no session check, no handler work, no usage event)"
    );
    println!("  server RSS after the runs: {} KiB", server_rss_kib);
    println!();
    Ok(Throughput { runs, server_rss_kib })
}

async fn first_product(channel: &Channel, bearer: &MetadataValue<Ascii>) -> anyhow::Result<String> {
    let mut request = Request::new(pb::ListProductsRequest { page_size: 1, ..Default::default() });
    request.metadata_mut().insert("authorization", bearer.clone());
    let page = CatalogServiceClient::new(channel.clone()).list_products(request).await?.into_inner();
    page.products.into_iter().next().map(|p| p.id).context("the storefront has no products")
}

/// What a load run calls.
#[derive(Clone, Copy)]
enum Call {
    /// `CatalogService/GetProduct` with the session token: the gate's session check, the
    /// handler, and one usage event per call.
    GetProduct,
    /// `CatalogService/GetProduct` of an id that does not exist, answered NOT_FOUND (counted as
    /// a success): the same gate, session check and lookup, but no usage event and no product
    /// to encode. A reference for what the usage event costs.
    GetMissingProduct,
    /// `grpc.health.v1.Health/Check`: the same TLS, HTTP/2 and gate, with no session check,
    /// handler work or usage event. A reference for what the transport alone costs.
    Health,
}

struct Load {
    call: Call,
    streams: usize,
    measure: Duration,
    server_pid: u32,
}

impl Load {
    /// Runs `streams` callers in a loop on one channel: `WARMUP`, then `measure`. Only calls that
    /// start and end inside the measured window count.
    async fn run(
        &self,
        channel: &Channel,
        bearer: &MetadataValue<Ascii>,
        product: &str,
        label: &str,
    ) -> anyhow::Result<LoadResult> {
        let Load { call, streams, measure, server_pid } = *self;
        let measure_start = Instant::now() + WARMUP;
        let end = measure_start + measure;
        let mut tasks = Vec::with_capacity(streams);
        for _ in 0..streams {
            let mut catalog = CatalogServiceClient::new(channel.clone());
            let mut health = HealthClient::new(channel.clone());
            let bearer = bearer.clone();
            let product = product.to_owned();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                let mut errors = 0u64;
                let mut first_error = None;
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let result = match call {
                        Call::GetProduct => {
                            let mut request = Request::new(pb::GetProductRequest { product_id: product.clone() });
                            request.metadata_mut().insert("authorization", bearer.clone());
                            catalog.get_product(request).await.map(drop)
                        }
                        Call::GetMissingProduct => {
                            let mut request =
                                Request::new(pb::GetProductRequest { product_id: "no-such-product".into() });
                            request.metadata_mut().insert("authorization", bearer.clone());
                            match catalog.get_product(request).await {
                                Err(status) if status.code() == tonic::Code::NotFound => Ok(()),
                                Ok(_) => Err(tonic::Status::internal("an unknown product was found")),
                                Err(status) => Err(status),
                            }
                        }
                        Call::Health => health.check(HealthCheckRequest { service: String::new() }).await.map(drop),
                    };
                    let t1 = Instant::now();
                    if t0 < measure_start || t1 > end {
                        continue;
                    }
                    match result {
                        Ok(_) => latencies.push((t1 - t0).as_nanos() as u64),
                        Err(status) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
                        }
                    }
                }
                (latencies, errors, first_error)
            }));
        }
        tokio::time::sleep_until(measure_start.into()).await;
        let server_before = thread_cpu(server_pid);
        let client_before = thread_cpu(std::process::id());
        tokio::time::sleep_until(end.into()).await;
        let server_after = thread_cpu(server_pid);
        let client_after = thread_cpu(std::process::id());

        let mut latencies = Vec::new();
        let (mut errors, mut first_error) = (0, None);
        for task in tasks {
            let (lat, errs, first) = task.await?;
            latencies.extend(lat);
            errors += errs;
            first_error = first_error.or(first);
        }
        latencies.sort_unstable();
        Ok(LoadResult {
            label: label.to_owned(),
            ok: latencies.len() as u64,
            errors,
            first_error,
            measured: measure,
            latencies,
            server_cpu: CpuUse::between(&server_before, &server_after),
            client_cpu: CpuUse::between(&client_before, &client_after),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Memory per idle session
// ---------------------------------------------------------------------------------------------

struct MemoryResult {
    sessions: u64,
    errors: u64,
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    before: Memory,
    after: Memory,
    usage_events: i64,
    db_bytes: u64,
}

impl MemoryResult {
    fn bytes_per_session(&self) -> f64 {
        (self.after.rss_kib as f64 - self.before.rss_kib as f64) * 1024.0 / self.sessions as f64
    }

    fn anon_bytes_per_session(&self) -> f64 {
        (self.after.anon_kib as f64 - self.before.anon_kib as f64) * 1024.0 / self.sessions as f64
    }
}

async fn bench_session_memory(binary: &Path, sessions: u64, hold: Duration) -> anyhow::Result<MemoryResult> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    let server = long_sessions(binary, &data_dir).operator_token(OPERATOR_TOKEN).spawn().await?;
    let channel = server.channel().await;
    let server_pid = pid(&server)?;

    // Warm up the connection, the allocator and the usage writer, so the baseline holds them.
    let warm = start_sessions(&channel, SESSION_WARMUP, SESSION_STREAMS).await?;
    ensure!(warm.errors == 0, "StartSession failed during warm-up: {}", warm.first_error.unwrap_or_default());
    flush_usage(&channel).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = read_memory(server_pid)?;

    let run = start_sessions(&channel, sessions, SESSION_STREAMS).await?;
    let usage_events = flush_usage(&channel).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = read_memory(server_pid)?;
    let held = match hold {
        Duration::ZERO => None,
        hold => Some(hold_idle(server_pid, hold).await?),
    };
    let db_bytes = ["podconnect.db", "podconnect.db-wal", "podconnect.db-shm"]
        .iter()
        .filter_map(|name| std::fs::metadata(data_dir.join(name)).ok())
        .map(|m| m.len())
        .sum();
    drop(channel);
    server.terminate().await?;

    let result = MemoryResult {
        sessions: run.ok,
        errors: run.errors,
        rate: run.ok as f64 / run.elapsed.as_secs_f64(),
        p50_us: percentile(&run.latencies, 0.50) as f64 / 1000.0,
        p99_us: percentile(&run.latencies, 0.99) as f64 / 1000.0,
        before,
        after,
        usage_events,
        db_bytes,
    };
    println!(
        "2. Memory held per idle session (StartSession over {SESSION_STREAMS} concurrent streams, one connection; \
         idle 1h / absolute 2h)"
    );
    println!(
        "  created {} sessions in {:.1} s ({:.0}/s, p50 {:.0} µs, p99 {:.0} µs), {} errors{}",
        result.sessions,
        run.elapsed.as_secs_f64(),
        result.rate,
        result.p50_us,
        result.p99_us,
        result.errors,
        run.first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()
    );
    println!(
        "  {:<12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "", "VmRSS KiB", "RssAnon KiB", "RssFile KiB", "RssShmem KiB", "VmHWM KiB"
    );
    for (name, m) in [("before", &result.before), ("after", &result.after)] {
        println!(
            "  {:<12} {:>12} {:>12} {:>12} {:>12} {:>12}",
            name, m.rss_kib, m.anon_kib, m.file_kib, m.shmem_kib, m.hwm_kib
        );
    }
    let verdict = if result.bytes_per_session() < SESSION_TARGET_BYTES { "OK" } else { "OVER TARGET" };
    println!(
        "  bytes per session (VmRSS delta): {:.0} B   (RssAnon delta: {:.0} B)   target < {} B: {verdict}",
        result.bytes_per_session(),
        result.anon_bytes_per_session(),
        SESSION_TARGET_BYTES
    );
    println!(
        "  usage events in SQLite: {} (one per StartSession, incl. {SESSION_WARMUP} warm-up); database files on disk: {} KiB",
        result.usage_events,
        result.db_bytes / 1024
    );
    if let Some(held) = &held {
        println!(
            "  held idle {:.0} s (BENCH_IDLE_HOLD): server CPU {:.1} ms in total, busiest {} ms window {:.1} ms \
             (at +{:.1} s); VmRSS then {} KiB, VmHWM {} KiB",
            held.duration.as_secs_f64(),
            held.cpu_ns as f64 / 1e6,
            HOLD_WINDOW.as_millis(),
            held.busiest_ns as f64 / 1e6,
            held.busiest_at.as_secs_f64(),
            held.memory.rss_kib,
            held.memory.hwm_kib
        );
    }
    println!();
    Ok(result)
}

const HOLD_WINDOW: Duration = Duration::from_millis(50);

/// What the server did while the sessions sat idle.
struct Held {
    duration: Duration,
    cpu_ns: u64,
    busiest_ns: u64,
    /// Since the hold began.
    busiest_at: Duration,
    memory: Memory,
}

/// Watches the server's CPU in `HOLD_WINDOW` steps for `hold` (background work such as the
/// session sweep shows up as a burst).
async fn hold_idle(pid: u32, hold: Duration) -> anyhow::Result<Held> {
    let total = |threads: &ThreadCpu| threads.values().map(|(_, ns)| *ns).sum::<u64>();
    let started = Instant::now();
    let first = total(&thread_cpu(pid));
    let mut previous = first;
    let (mut busiest_ns, mut busiest_at) = (0, Duration::ZERO);
    let mut tick = tokio::time::interval(HOLD_WINDOW);
    tick.tick().await;
    while started.elapsed() < hold {
        tick.tick().await;
        let now = total(&thread_cpu(pid));
        let used = now.saturating_sub(previous);
        if used > busiest_ns {
            (busiest_ns, busiest_at) = (used, started.elapsed());
        }
        previous = now;
    }
    Ok(Held {
        duration: started.elapsed(),
        cpu_ns: previous.saturating_sub(first),
        busiest_ns,
        busiest_at,
        memory: read_memory(pid)?,
    })
}

struct SessionRun {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    latencies: Vec<u64>,
}

/// Starts `count` sessions over `streams` concurrent callers on one channel.
async fn start_sessions(channel: &Channel, count: u64, streams: usize) -> anyhow::Result<SessionRun> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    for _ in 0..streams {
        let mut client = SessionServiceClient::new(channel.clone());
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let request =
                    pb::StartSessionRequest { device_id: format!("mfd-bench-{:02}", i % 100), ..Default::default() };
                let t0 = Instant::now();
                match client.start_session(request).await {
                    Ok(_) => latencies.push(t0.elapsed().as_nanos() as u64),
                    Err(status) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for task in tasks {
        let (lat, errs, first) = task.await?;
        latencies.extend(lat);
        errors += errs;
        first_error = first_error.or(first);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(SessionRun { ok: latencies.len() as u64, errors, first_error, elapsed, latencies })
}

/// Waits until every usage event recorded so far is in SQLite (CountUsageEvents flushes the
/// writer first); returns how many events the database holds.
async fn flush_usage(channel: &Channel) -> anyhow::Result<i64> {
    let mut request = Request::new(pb::CountUsageEventsRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {OPERATOR_TOKEN}").parse()?);
    let response = UsageServiceClient::new(channel.clone()).count_usage_events(request).await?;
    Ok(response.into_inner().total)
}

async fn start_session(channel: &Channel, device_id: &str) -> anyhow::Result<String> {
    let response = SessionServiceClient::new(channel.clone())
        .start_session(pb::StartSessionRequest { device_id: device_id.into(), ..Default::default() })
        .await
        .context("StartSession fails")?;
    Ok(response.into_inner().session_token)
}

// ---------------------------------------------------------------------------------------------
// 3. Start-up to SERVING
// ---------------------------------------------------------------------------------------------

struct StartupSeries {
    label: &'static str,
    /// Spawn to the first SERVING health check, milliseconds, sorted.
    wall_ms: Vec<f64>,
    /// Spawn to the ready line on standard output, milliseconds, sorted.
    ready_ms: Vec<f64>,
    /// The server's own `startup_ms` log field (from `app::run` to SERVING), sorted.
    server_ms: Vec<f64>,
}

impl StartupSeries {
    fn new(label: &'static str) -> Self {
        StartupSeries { label, wall_ms: vec![], ready_ms: vec![], server_ms: vec![] }
    }
}

struct StartupResult {
    fresh: StartupSeries,
    reused: StartupSeries,
}

async fn bench_startup(binary: &Path, starts: usize) -> anyhow::Result<StartupResult> {
    let root = tempfile::tempdir()?;
    let mut fresh = StartupSeries::new("fresh data dir");
    for i in 0..starts {
        start_once(binary, &root.path().join(format!("fresh-{i}")), &mut fresh).await?;
    }
    let reused_dir = root.path().join("reused");
    // The first start creates the dev CA and the database; it is not counted.
    start_once(binary, &reused_dir, &mut StartupSeries::new("")).await?;
    let mut reused = StartupSeries::new("reused data dir");
    for _ in 0..starts {
        start_once(binary, &reused_dir, &mut reused).await?;
    }
    for series in [&mut fresh, &mut reused] {
        series.wall_ms.sort_by(f64::total_cmp);
        series.ready_ms.sort_by(f64::total_cmp);
        series.server_ms.sort_by(f64::total_cmp);
    }

    println!(
        "3. Start-up: spawn of the release binary to its ready line, then to the first \
         grpc.health.v1.Health/Check = SERVING over a new TLS connection"
    );
    println!(
        "  {:<16} {:>4} {:>9} {:>10} {:>9}   {:>22}   {:>14}  target",
        "data dir", "n", "min ms", "median ms", "max ms", "server startup_ms med", "ready line med"
    );
    for series in [&fresh, &reused] {
        let server_ms =
            if series.server_ms.is_empty() { "n/a".to_owned() } else { format!("{:.1}", median(&series.server_ms)) };
        let mid = median(&series.wall_ms);
        let verdict = if mid < STARTUP_TARGET_MS { "OK" } else { "OVER TARGET" };
        println!(
            "  {:<16} {:>4} {:>9.1} {:>10.1} {:>9.1}   {:>22}   {:>14.1}  < {} ms: {verdict}",
            series.label,
            series.wall_ms.len(),
            series.wall_ms.first().copied().unwrap_or(f64::NAN),
            mid,
            series.wall_ms.last().copied().unwrap_or(f64::NAN),
            server_ms,
            median(&series.ready_ms),
            STARTUP_TARGET_MS
        );
    }
    println!(
        "  (server startup_ms covers app::run only: storefront load, SQLite open + migrations, dev CA, TLS config)"
    );
    println!();
    Ok(StartupResult { fresh, reused })
}

async fn start_once(binary: &Path, data_dir: &Path, series: &mut StartupSeries) -> anyhow::Result<()> {
    let spawned = Instant::now();
    let server = TestCore::builder().binary(binary).data_dir(data_dir).spawn().await?;
    let ready = spawned.elapsed();
    let channel = server.channel().await;
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest { service: String::new() })
        .await?
        .into_inner()
        .status;
    ensure!(status == ServingStatus::Serving as i32, "health status {status} after the ready line");
    series.wall_ms.push(spawned.elapsed().as_secs_f64() * 1000.0);
    series.ready_ms.push(ready.as_secs_f64() * 1000.0);
    if let Some(ms) = parse_startup_ms(&server.log()) {
        series.server_ms.push(ms);
    }
    drop(channel);
    server.terminate().await?;
    Ok(())
}

/// The `startup_ms` field of the server's "serving" log line (text format, colours or not).
fn parse_startup_ms(log: &str) -> Option<f64> {
    let plain = strip_ansi(log);
    let rest = &plain[plain.find("startup_ms=")? + "startup_ms=".len()..];
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters, ending with a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 4. Printing against ippeveprinter
// ---------------------------------------------------------------------------------------------

const PRINT_DEVICE: &str = "mfd-ipp";
/// A static product: its draft is VALID at once and its print file is the shipped PDF.
const PRINT_PRODUCT: &str = "fire-action-notice";
const PRINT_PDF: &str = "../server/storefront/sample/products/fire-action-notice/document.pdf";
const JOB_POLL: Duration = Duration::from_millis(50);
const PRINT_SESSIONS: usize = 4;
/// How long one job may take from SubmitJob to COMPLETED (and to its file at the printer).
const JOB_TIMEOUT: Duration = Duration::from_secs(20);
/// No new job starts after this long in one run, so a slow printer cannot stall the bench.
const PRINT_RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long a caller that retries waits after the printer was busy (SubmitJob UNAVAILABLE).
const BUSY_RETRY: Duration = Duration::from_millis(20);

/// What a print run talks to.
struct PrintBench {
    channel: Channel,
    printer: Arc<TestPrinter>,
    /// The shipped PDF of `PRINT_PRODUCT`.
    pdf: Arc<Vec<u8>>,
    server_pid: u32,
}

/// One job's times, from just before the (first) SubmitJob was sent, in nanoseconds.
struct JobTiming {
    /// The round trip of the SubmitJob that was accepted (finalize, Validate-Job, Print-Job).
    submit_ns: u64,
    /// SubmitJob calls refused UNAVAILABLE before one was accepted (only when retrying).
    busy_refusals: u64,
    /// Until the printer's spool held the complete file (polled every `tests::wait::INTERVAL`).
    file_ns: u64,
    /// Until WatchJob delivered the COMPLETED message.
    completed_ns: u64,
    /// The job's own end_time minus create_time, as the server recorded them (milliseconds).
    server_ms: f64,
    /// Whether the printer received exactly the shipped PDF.
    same_bytes: bool,
}

struct PrintRun {
    label: &'static str,
    sessions: usize,
    /// Whether SubmitJob was sent again when the printer was busy.
    retry_busy: bool,
    ok: u64,
    errors: u64,
    /// SubmitJob calls refused UNAVAILABLE and sent again (jobs that then completed).
    busy_refusals: u64,
    first_error: Option<String>,
    /// Jobs not started because the run hit `PRINT_RUN_LIMIT`.
    skipped: usize,
    different_bytes: u64,
    elapsed: Duration,
    /// Sorted, nanoseconds.
    submit: Vec<u64>,
    file: Vec<u64>,
    completed: Vec<u64>,
    /// Sorted, milliseconds.
    server_ms: Vec<f64>,
    server_cpu: CpuUse,
}

impl PrintRun {
    fn jobs_per_minute(&self) -> f64 {
        self.ok as f64 * 60.0 / self.elapsed.as_secs_f64()
    }

    fn server_cpu_ms_per_job(&self) -> f64 {
        if self.ok == 0 { f64::NAN } else { self.server_cpu.total_ns as f64 / 1e6 / self.ok as f64 }
    }
}

struct PrintResult {
    jobs: usize,
    pdf_bytes: usize,
    /// The core's first job (not counted).
    first: JobTiming,
    sequential: PrintRun,
    concurrent: PrintRun,
    concurrent_retry: PrintRun,
    server_rss_kib: u64,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The `q` quantile (0..=1) of sorted values, nearest rank; NaN when empty.
fn percentile_f64(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn bench_printing(binary: &Path, jobs: usize) -> anyhow::Result<PrintResult> {
    let pdf_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PRINT_PDF);
    let pdf = std::fs::read(&pdf_path).with_context(|| format!("cannot read {}", pdf_path.display()))?;
    let printer = Arc::new(TestPrinter::start().await.context("cannot start the IPP printer (ippeveprinter)")?);
    let pdf = Arc::new(pdf);

    let dir = tempfile::tempdir()?;
    let devices = dir.path().join("devices.toml");
    std::fs::write(
        &devices,
        format!(
            "[[device]]\nid = \"{PRINT_DEVICE}\"\ndisplay_name = \"Bench printer\"\nmodel = \"ippeveprinter\"\n\
             delivery = \"ipp_push\"\nprinter_uri = \"{}\"\n",
            printer.uri
        ),
    )?;
    let server = TestCore::builder()
        .binary(binary)
        .data_dir(&dir.path().join("data"))
        .devices_file(&devices)
        .job_poll(JOB_POLL)
        .spawn()
        .await?;
    let channel = server.channel().await;

    let mut bearers = Vec::with_capacity(PRINT_SESSIONS);
    for _ in 0..PRINT_SESSIONS {
        let token = start_session(&channel, PRINT_DEVICE).await?;
        bearers.push(format!("Bearer {token}").parse::<MetadataValue<Ascii>>()?);
    }
    // One job up front, so a broken setup fails loudly instead of producing a table of errors.
    let bench = PrintBench { channel, printer, pdf, server_pid: pid(&server)? };
    let first = match print_job(&bench, &bearers[0], false).await {
        Ok(first) => first,
        Err(err) => {
            let server_log = server.log();
            bail!(
                "the first print job failed: {err:#}\n--- server log (tail) ---\n{}\n--- printer log (tail) ---\n{}",
                tail(&strip_ansi(&server_log), 30),
                tail(&bench.printer.log(), 30)
            );
        }
    };

    let sequential = print_run(&bench, &bearers[..1], jobs, "sequential (1 session)", false).await?;
    let concurrent = print_run(&bench, &bearers, jobs, "4 sessions in parallel", false).await?;
    let concurrent_retry = print_run(&bench, &bearers, jobs, "4 parallel, retry busy", true).await?;
    let server_rss_kib = read_memory(pid(&server)?)?.rss_kib;
    let PrintBench { channel, printer, pdf, .. } = bench;
    drop(channel);
    server.terminate().await?;
    if let Ok(printer) = Arc::try_unwrap(printer) {
        printer.stop().await;
    }

    println!(
        "4. Printing against ippeveprinter: CreateDraft(\"{PRINT_PRODUCT}\") + SubmitJob(draft, 1 copy) + WatchJob to \
         the end; ipp_push over loopback, --job-poll {}, {} B PDF, one connection",
        humantime::format_duration(JOB_POLL),
        pdf.len()
    );
    println!(
        "  first job of the core (not counted): submit {:.1} ms, file at printer {:.1} ms, COMPLETED seen {:.1} ms",
        ms(first.submit_ns),
        ms(first.file_ns),
        ms(first.completed_ns)
    );
    println!(
        "  {:<24} {:>5} {:>6} {:>8} {:>17} {:>17} {:>19} {:>17} {:>10}",
        "mode",
        "ok",
        "errors",
        "jobs/min",
        "submit p50/p99 ms",
        "file p50/p99 ms",
        "COMPLETED p50/p99",
        "srv end p50/p99",
        "srv CPU/job"
    );
    for run in [&sequential, &concurrent, &concurrent_retry] {
        println!(
            "  {:<24} {:>5} {:>6} {:>8.1} {:>8.1}/{:<8.1} {:>8.1}/{:<8.1} {:>9.1}/{:<9.1} {:>8.1}/{:<8.1} {:>7.1} ms",
            run.label,
            run.ok,
            run.errors,
            run.jobs_per_minute(),
            ms(percentile(&run.submit, 0.50)),
            ms(percentile(&run.submit, 0.99)),
            ms(percentile(&run.file, 0.50)),
            ms(percentile(&run.file, 0.99)),
            ms(percentile(&run.completed, 0.50)),
            ms(percentile(&run.completed, 0.99)),
            percentile_f64(&run.server_ms, 0.50),
            percentile_f64(&run.server_ms, 0.99),
            run.server_cpu_ms_per_job()
        );
    }
    for run in [&sequential, &concurrent, &concurrent_retry] {
        let retries = if run.retry_busy {
            format!(", {} SubmitJob calls refused busy and sent again", run.busy_refusals)
        } else {
            String::new()
        };
        println!(
            "  {}: {} jobs in {:.2} s over {} session(s){retries}; server threads {}",
            run.label,
            run.ok + run.errors,
            run.elapsed.as_secs_f64(),
            run.sessions,
            run.server_cpu.describe(run.elapsed)
        );
        if let Some(error) = &run.first_error {
            println!("    first error: {error}");
        }
        if run.skipped > 0 {
            println!("    WARNING: {} jobs not started: the run reached its {PRINT_RUN_LIMIT:?} limit", run.skipped);
        }
        if run.different_bytes > 0 {
            println!("    WARNING: {} jobs reached the printer with bytes other than {PRINT_PDF}", run.different_bytes);
        }
    }
    println!(
        "  (times from just before SubmitJob is sent, the first one when retrying; \"submit\" = the accepted \
         SubmitJob's round trip; \"file\" = the printer's spool holds all {} bytes, polled every {:?} by the \
         harness; \"srv end\" = the job's end_time - create_time as the server recorded them; p99 of {jobs} jobs \
         is their maximum; \"retry busy\" sends SubmitJob again {} ms after UNAVAILABLE, up to {:?} per job)",
        pdf.len(),
        tests::wait::INTERVAL,
        BUSY_RETRY.as_millis(),
        JOB_TIMEOUT
    );
    println!("  server RSS after the runs: {server_rss_kib} KiB");
    println!();
    Ok(PrintResult { jobs, pdf_bytes: pdf.len(), first, sequential, concurrent, concurrent_retry, server_rss_kib })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `jobs` print jobs, one at a time per session, the sessions in parallel on one connection.
async fn print_run(
    bench: &PrintBench,
    bearers: &[MetadataValue<Ascii>],
    jobs: usize,
    label: &'static str,
    retry_busy: bool,
) -> anyhow::Result<PrintRun> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let server_before = thread_cpu(bench.server_pid);
    let mut tasks = Vec::with_capacity(bearers.len());
    for bearer in bearers {
        let bench = PrintBench {
            channel: bench.channel.clone(),
            printer: bench.printer.clone(),
            pdf: bench.pdf.clone(),
            server_pid: bench.server_pid,
        };
        let (bearer, next) = (bearer.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut timings = Vec::new();
            let (mut errors, mut first_error, mut skipped) = (0u64, None, 0usize);
            while next.fetch_add(1, Ordering::Relaxed) < jobs as u64 {
                if started.elapsed() > PRINT_RUN_LIMIT {
                    skipped += 1;
                    continue;
                }
                match print_job(&bench, &bearer, retry_busy).await {
                    Ok(timing) => timings.push(timing),
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{err:#}"));
                    }
                }
            }
            (timings, errors, first_error, skipped)
        }));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await?);
    }
    let elapsed = started.elapsed();
    let server_cpu = CpuUse::between(&server_before, &thread_cpu(bench.server_pid));

    let mut run = PrintRun {
        label,
        sessions: bearers.len(),
        retry_busy,
        ok: 0,
        errors: 0,
        busy_refusals: 0,
        first_error: None,
        skipped: 0,
        different_bytes: 0,
        elapsed,
        submit: vec![],
        file: vec![],
        completed: vec![],
        server_ms: vec![],
        server_cpu,
    };
    for (timings, errors, first_error, skipped) in results {
        run.errors += errors;
        run.first_error = run.first_error.or(first_error);
        run.skipped += skipped;
        for timing in timings {
            run.ok += 1;
            run.busy_refusals += timing.busy_refusals;
            run.different_bytes += u64::from(!timing.same_bytes);
            run.submit.push(timing.submit_ns);
            run.file.push(timing.file_ns);
            run.completed.push(timing.completed_ns);
            run.server_ms.push(timing.server_ms);
        }
    }
    run.submit.sort_unstable();
    run.file.sort_unstable();
    run.completed.sort_unstable();
    run.server_ms.sort_by(f64::total_cmp);
    Ok(run)
}

fn authed<T>(bearer: &MetadataValue<Ascii>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", bearer.clone());
    request
}

fn timestamp_ms(timestamp: Option<&prost_types::Timestamp>) -> Option<f64> {
    timestamp.map(|t| t.seconds as f64 * 1000.0 + f64::from(t.nanos) / 1e6)
}

/// One job: CreateDraft, SubmitJob of the draft, then WatchJob until it ends (it must be
/// COMPLETED) while waiting for the complete file in the printer's spool. With `retry_busy`, a
/// SubmitJob refused UNAVAILABLE (e.g. ippeveprinter's server-error-busy while it prints another
/// job) is sent again, for the same draft, after `BUSY_RETRY`.
async fn print_job(bench: &PrintBench, bearer: &MetadataValue<Ascii>, retry_busy: bool) -> anyhow::Result<JobTiming> {
    let PrintBench { channel, printer, pdf, .. } = bench;
    let mut customize = CustomizationServiceClient::new(channel.clone());
    let mut print = PrintServiceClient::new(channel.clone());
    let request = pb::CreateDraftRequest { product_id: PRINT_PRODUCT.into(), ..Default::default() };
    let draft = customize.create_draft(authed(bearer, request)).await.context("CreateDraft")?.into_inner();
    let draft = draft.draft.context("CreateDraft returned no draft")?;
    let request = pb::FinalizeDraftRequest { draft_id: draft.id.clone() };
    customize.finalize_draft(authed(bearer, request)).await.context("FinalizeDraft")?;

    let request = pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::DraftId(draft.id)),
        copies: 1,
        ..Default::default()
    };
    let t0 = Instant::now();
    let mut busy_refusals = 0;
    let (job, submit_ns) = loop {
        let sent = Instant::now();
        match print.submit_job(authed(bearer, request.clone())).await {
            Ok(response) => break (response.into_inner(), sent.elapsed().as_nanos() as u64),
            Err(status) if retry_busy && status.code() == tonic::Code::Unavailable && t0.elapsed() < JOB_TIMEOUT => {
                busy_refusals += 1;
                tokio::time::sleep(BUSY_RETRY).await;
            }
            Err(status) => return Err(anyhow::Error::from(status).context("SubmitJob")),
        }
    };
    let job = job.job.context("SubmitJob returned no job")?;
    ensure!(!job.device_job_id.is_empty(), "SubmitJob returned no device_job_id");

    let file = async {
        let file = printer.wait_for_job_file(&job.device_job_id, pdf.len(), JOB_TIMEOUT).await?;
        anyhow::Ok((t0.elapsed().as_nanos() as u64, file.bytes == **pdf))
    };
    let watch = async {
        let request = authed(bearer, pb::WatchJobRequest { job_id: job.id.clone() });
        let mut stream = print.watch_job(request).await.context("WatchJob")?.into_inner();
        let mut last = None;
        let deadline = tokio::time::Instant::from_std(t0 + JOB_TIMEOUT);
        loop {
            let message = tokio::time::timeout_at(deadline, stream.message())
                .await
                .with_context(|| {
                    let state = last.as_ref().map(|(job, _): &(pb::Job, u64)| job.state());
                    format!("the job did not end within {JOB_TIMEOUT:?} (last state seen: {state:?})")
                })?
                .context("WatchJob stream")?;
            let Some(message) = message else { break };
            let seen = message.job.context("WatchJob message without a job")?;
            let end = matches!(seen.state(), pb::JobState::Completed | pb::JobState::Canceled | pb::JobState::Aborted);
            last = Some((seen, t0.elapsed().as_nanos() as u64));
            if end {
                break;
            }
        }
        let (job, at) = last.context("WatchJob ended without a message")?;
        ensure!(
            job.state() == pb::JobState::Completed,
            "the job ended {:?} ({:?}: {})",
            job.state(),
            job.state_reasons,
            job.state_message
        );
        let server_ms = match (timestamp_ms(job.create_time.as_ref()), timestamp_ms(job.end_time.as_ref())) {
            (Some(created), Some(ended)) => ended - created,
            _ => f64::NAN,
        };
        anyhow::Ok((at, server_ms))
    };
    let (file, watched) = tokio::join!(file, watch);
    let (completed_ns, server_ms) = watched?;
    let (file_ns, same_bytes) = file?;
    Ok(JobTiming { submit_ns, busy_refusals, file_ns, completed_ns, server_ms, same_bytes })
}

// ---------------------------------------------------------------------------------------------
// The server binary
// ---------------------------------------------------------------------------------------------

/// `target/release/podconnect-server`, next to the folder of this bench executable
/// (`target/release/deps/core-<hash>`).
fn release_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("unexpected bench executable location")?;
    let binary = profile_dir.join("podconnect-server");
    ensure!(
        binary.exists(),
        "{} is missing: build the release server first with `cargo build --release -p server`",
        binary.display()
    );
    Ok(binary)
}

/// Warns when a server source file is newer than the binary (other people edit server/).
fn staleness_warning(binary: &Path) -> Option<String> {
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    let server_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server");
    let newest = newest_mtime(&server_dir.join("src")).max(newest_mtime(&server_dir.join("Cargo.toml")))?;
    (newest > built).then(|| {
        let age = newest.duration_since(built).unwrap_or_default();
        format!(
            "files under server/ changed {:.0} s after this binary was built; if it is out of date, run \
             `cargo build --release -p server`",
            age.as_secs_f64()
        )
    })
}

fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.flatten().filter_map(|entry| newest_mtime(&entry.path())).max()
}

// ---------------------------------------------------------------------------------------------
// /proc readings
// ---------------------------------------------------------------------------------------------

struct Memory {
    rss_kib: u64,
    anon_kib: u64,
    file_kib: u64,
    shmem_kib: u64,
    hwm_kib: u64,
}

fn read_memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("cannot read /proc/<pid>/status")?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        rss_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
        shmem_kib: field("RssShmem:"),
        hwm_kib: field("VmHWM:"),
    })
}

/// CPU time of each thread of a process: thread id to (name, nanoseconds on CPU).
type ThreadCpu = BTreeMap<u32, (String, u64)>;

fn thread_cpu(pid: u32) -> ThreadCpu {
    let mut threads = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return threads };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else { continue };
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim().to_owned();
        // schedstat has nanoseconds; stat has clock ticks (USER_HZ, 100 on Linux).
        let ns = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .or_else(|| {
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
                let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
                Some(ticks * 10_000_000)
            });
        if let Some(ns) = ns {
            threads.insert(tid, (name, ns));
        }
    }
    threads
}

/// CPU used between two readings, in total and by thread name.
struct CpuUse {
    total_ns: u64,
    by_name: Vec<(String, u64)>,
}

impl CpuUse {
    fn between(before: &ThreadCpu, after: &ThreadCpu) -> CpuUse {
        let mut by_name: BTreeMap<String, u64> = BTreeMap::new();
        for (tid, (name, ns)) in after {
            let start = before.get(tid).map_or(0, |(_, ns)| *ns);
            *by_name.entry(name.clone()).or_default() += ns.saturating_sub(start);
        }
        let total_ns = by_name.values().sum();
        let mut by_name: Vec<_> = by_name.into_iter().filter(|(_, ns)| *ns > 0).collect();
        by_name.sort_by_key(|(_, ns)| std::cmp::Reverse(*ns));
        CpuUse { total_ns, by_name }
    }

    fn describe(&self, over: Duration) -> String {
        let cores = |ns: u64| ns as f64 / over.as_nanos() as f64;
        let mut text = format!("{:.2} cores", cores(self.total_ns));
        let parts: Vec<String> = self.by_name.iter().map(|(name, ns)| format!("{name} {:.2}", cores(*ns))).collect();
        if !parts.is_empty() {
            let _ = write!(text, " ({})", parts.join(", "));
        }
        text
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics and the JSON line
// ---------------------------------------------------------------------------------------------

/// The `q` quantile (0..=1) of sorted values, nearest rank.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn json_number(value: f64) -> String {
    // At most two decimals.
    if value.is_finite() { format!("{}", (value * 100.0).round() / 100.0) } else { "null".into() }
}

fn json_line(
    cores: usize,
    settings: &Settings,
    throughput: &Throughput,
    memory: &MemoryResult,
    startup: &StartupResult,
    printing: &PrintResult,
) -> String {
    let load = |run: &LoadResult| {
        format!(
            r#"{{"streams_label":"{}","calls":{},"errors":{},"rps":{},"p50_us":{},"p90_us":{},"p99_us":{},"max_us":{},"server_cpu_cores":{},"server_cpu_us_per_call":{}}}"#,
            run.label,
            run.ok,
            run.errors,
            json_number(run.rps()),
            json_number(run.percentile_us(0.50)),
            json_number(run.percentile_us(0.90)),
            json_number(run.percentile_us(0.99)),
            json_number(run.percentile_us(1.0)),
            json_number(run.server_cpu.total_ns as f64 / run.measured.as_nanos() as f64),
            json_number(if run.ok == 0 { f64::NAN } else { run.server_cpu.total_ns as f64 / run.ok as f64 / 1000.0 }),
        )
    };
    let series = |s: &StartupSeries| {
        format!(
            r#"{{"n":{},"min_ms":{},"median_ms":{},"max_ms":{},"ready_line_ms_median":{},"server_startup_ms_median":{}}}"#,
            s.wall_ms.len(),
            json_number(s.wall_ms.first().copied().unwrap_or(f64::NAN)),
            json_number(median(&s.wall_ms)),
            json_number(s.wall_ms.last().copied().unwrap_or(f64::NAN)),
            json_number(median(&s.ready_ms)),
            json_number(median(&s.server_ms)),
        )
    };
    let print_run = |run: &PrintRun| {
        format!(
            r#"{{"sessions":{},"retry_busy":{},"ok":{},"errors":{},"busy_refusals":{},"skipped":{},"elapsed_s":{},"jobs_per_min":{},"submit_p50_ms":{},"submit_p99_ms":{},"file_at_printer_p50_ms":{},"file_at_printer_p99_ms":{},"completed_p50_ms":{},"completed_p99_ms":{},"server_end_p50_ms":{},"server_cpu_ms_per_job":{}}}"#,
            run.sessions,
            run.retry_busy,
            run.ok,
            run.errors,
            run.busy_refusals,
            run.skipped,
            json_number(run.elapsed.as_secs_f64()),
            json_number(run.jobs_per_minute()),
            json_number(ms(percentile(&run.submit, 0.50))),
            json_number(ms(percentile(&run.submit, 0.99))),
            json_number(ms(percentile(&run.file, 0.50))),
            json_number(ms(percentile(&run.file, 0.99))),
            json_number(ms(percentile(&run.completed, 0.50))),
            json_number(ms(percentile(&run.completed, 0.99))),
            json_number(percentile_f64(&run.server_ms, 0.50)),
            json_number(run.server_cpu_ms_per_job()),
        )
    };
    let printing_json = format!(
        r#"{{"jobs":{},"job_poll":"{}","pdf_bytes":{},"first_job":{{"submit_ms":{},"file_at_printer_ms":{},"completed_ms":{}}},"sequential":{},"concurrent4":{},"concurrent4_retry_busy":{},"server_rss_kib":{}}}"#,
        printing.jobs,
        humantime::format_duration(JOB_POLL),
        printing.pdf_bytes,
        json_number(ms(printing.first.submit_ns)),
        json_number(ms(printing.first.file_ns)),
        json_number(ms(printing.first.completed_ns)),
        print_run(&printing.sequential),
        print_run(&printing.concurrent),
        print_run(&printing.concurrent_retry),
        printing.server_rss_kib,
    );
    let runs: Vec<String> = throughput.runs.iter().map(load).collect();
    format!(
        r#"{{"bench":"core","cores":{cores},"measure_s":{},"warmup_s":{},"get_product":{{"sequential":{},"concurrent64":{},"unknown_id_ref_sequential":{},"health_ref_sequential":{},"server_rss_kib":{}}},"session_memory":{{"sessions":{},"errors":{},"start_session_per_s":{},"rss_before_kib":{},"rss_after_kib":{},"bytes_per_session":{},"anon_bytes_per_session":{},"usage_events":{},"db_kib":{}}},"startup":{{"fresh":{},"reused":{}}},"printing":{printing_json}}}"#,
        settings.measure.as_secs(),
        WARMUP.as_secs(),
        runs.first().map_or("null", String::as_str),
        runs.get(1).map_or("null", String::as_str),
        runs.get(2).map_or("null", String::as_str),
        runs.get(3).map_or("null", String::as_str),
        throughput.server_rss_kib,
        memory.sessions,
        memory.errors,
        json_number(memory.rate),
        memory.before.rss_kib,
        memory.after.rss_kib,
        json_number(memory.bytes_per_session()),
        json_number(memory.anon_bytes_per_session()),
        memory.usage_events,
        memory.db_bytes / 1024,
        series(&startup.fresh),
        series(&startup.reused),
    )
}
