//! Gateway overhead benchmark: unary GetProduct through the release `weblet-gateway` (grpc-web
//! binary, HTTP/2 over TLS) against the same call straight to the release core (tonic client), at
//! concurrency 1 and 64. When Debian's `haproxy` is installed, a third path relays the tonic client's
//! calls through HAProxy (HTTP/2 with TLS on both sides, one thread, no grpc-web translation): a
//! mature proxy measured on the same machine, as a yardstick for what any hop in front of the core
//! costs here; the summary compares the CPU the gateway and HAProxy spend per forwarded call (the
//! goal of issue 15: the gateway at or below HAProxy). A second table balances the gateway over
//! `BENCH_CORES` cores (default 3; 1 leaves it out): StartSession (which any core answers, unlike
//! GetProduct, whose session lives on one core) through HAProxy to one core, the gateway to one
//! core and the gateway over all of them. Run
//! `cargo build --release --workspace --bins && cargo bench -p tests --bench gateway`.
//! Loopback only; `BENCH_SECONDS` sets the measured seconds per run (default 5, warm-up 1 s),
//! `BENCH_CONCURRENCY` the concurrencies (default `1,64`), `BENCH_ROUNDS` the alternating rounds
//! per concurrency (default 3), `BENCH_CONNECTIONS` the connections each path spreads its callers
//! over (default 1), `BENCH_GATEWAY_THREADS` the gateway's `--worker-threads`,
//! `BENCH_GATEWAY_BINARY` another `weblet-gateway` build (a before/after comparison; the balanced
//! table needs one that takes several `--core`). Each row also gives the CPU time the bench client,
//! the cores and the proxy in between spent per call: from each thread's run time
//! (`/proc/<pid>/task/*/schedstat`), and for the proxy also from the process's own count
//! (`utime + stime` of `/proc/<pid>/stat`, which keeps the time of threads that ended, in clock
//! ticks).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use http::Method;
use proto::v1 as pb;
use proto::v1::session_service_client::SessionServiceClient;
use tests::client::{authed, catalog, start_session};
use tests::core::TestCore;
use tests::gateway::{GatewayBuilder, Http, Mode, TestGateway, WebClient, frame, full};
use tests::haproxy::ReferenceProxy;
use tonic::transport::Channel;

const WARMUP: Duration = Duration::from_secs(1);
const TARGET_ADDED_P50_MS: f64 = 0.5;
const TARGET_RATIO: f64 = 0.70;
/// The device of the balanced table's sessions: one device, so each core keeps at most its
/// per-device number of sessions (the oldest makes room) however many calls the run makes.
const BENCH_DEVICE: &str = "gateway-bench";

fn main() -> std::process::ExitCode {
    tests::bench::main("gateway", run)
}

/// One run's latencies, and the CPU each process spent during the measured window.
struct Run {
    latencies_us: Vec<f64>,
    elapsed: Duration,
    cpu: Cpu,
}

/// CPU time used so far by the bench client, the cores and the proxy in between (if any); the
/// proxy's also as the process counts it.
#[derive(Clone, Copy)]
struct Cpu {
    client: Duration,
    core: Duration,
    proxy: Duration,
    proxy_stat: Duration,
}

impl Cpu {
    fn read(pids: &Pids) -> Cpu {
        Cpu {
            client: cpu_time(std::process::id()),
            core: pids.cores.iter().map(|pid| cpu_time(*pid)).sum(),
            proxy: pids.proxy.map_or(Duration::ZERO, cpu_time),
            proxy_stat: pids.proxy.map_or(Duration::ZERO, stat_cpu_time),
        }
    }

    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            client: self.client.saturating_sub(earlier.client),
            core: self.core.saturating_sub(earlier.core),
            proxy: self.proxy.saturating_sub(earlier.proxy),
            proxy_stat: self.proxy_stat.saturating_sub(earlier.proxy_stat),
        }
    }
}

/// The processes a run's calls pass through.
#[derive(Clone)]
struct Pids {
    cores: Vec<u32>,
    proxy: Option<u32>,
}

/// A process's CPU time: the sum of its threads' run time in `/proc/<pid>/task/*/schedstat`
/// (nanoseconds, unlike the clock ticks of `/proc/<pid>/stat`). A thread that exits during a run
/// takes its time with it, so short-lived threads are under-counted.
fn cpu_time(pid: u32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Duration::ZERO };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// A process's CPU time as `/proc/<pid>/stat` counts it: user plus system time (fields 14 and
/// 15), threads that ended included, in clock ticks.
fn stat_cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12].iter().filter_map(|index| fields.get(*index)?.parse::<u64>().ok()).sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

/// `getconf CLK_TCK` (100 on Linux), asked once.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

impl Run {
    fn rps(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// CPU microseconds per call of one process.
    fn cpu_us_per_call(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.latencies_us.len().max(1) as f64
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(index).copied().unwrap_or(f64::NAN) / 1000.0
    }
}

/// Where a run's calls go: gRPC channels (to the core, or through HAProxy) or grpc-web connections
/// to the gateway; the callers are spread over them.
enum Target {
    Grpc(Vec<Channel>),
    Gateway(Vec<Arc<WebClient>>),
}

/// The one connection a caller uses.
enum Connection {
    Grpc(Channel),
    Gateway(Arc<WebClient>),
}

impl Target {
    /// The connection the `index`-th caller uses.
    fn pick(&self, index: usize) -> Connection {
        match self {
            Target::Grpc(channels) => Connection::Grpc(channels[index % channels.len()].clone()),
            Target::Gateway(clients) => Connection::Gateway(clients[index % clients.len()].clone()),
        }
    }
}

/// The call a table measures.
#[derive(Clone)]
enum Rpc {
    /// GetProduct in an open session (on the one core that opened it).
    GetProduct { token: String, request: pb::GetProductRequest },
    /// StartSession, which any core answers.
    StartSession,
}

impl Rpc {
    fn path(&self) -> &'static str {
        match self {
            Rpc::GetProduct { .. } => "/podconnect.v1.CatalogService/GetProduct",
            Rpc::StartSession => "/podconnect.v1.SessionService/StartSession",
        }
    }

    /// The grpc-web request body.
    fn body(&self) -> Bytes {
        match self {
            Rpc::GetProduct { request, .. } => frame(0, &prost::Message::encode_to_vec(request)),
            Rpc::StartSession => frame(0, &prost::Message::encode_to_vec(&start_request())),
        }
    }
}

fn start_request() -> pb::StartSessionRequest {
    pb::StartSessionRequest { device_id: BENCH_DEVICE.into(), ..Default::default() }
}

/// One path the bench measures.
struct Path {
    name: String,
    target: Target,
    pids: Pids,
    /// Whether the targets apply (the gateway's path).
    judged: bool,
}

/// The bench's settings from the environment.
struct Settings {
    seconds: u64,
    rounds: usize,
    connections: usize,
}

async fn run() -> anyhow::Result<()> {
    let settings = Settings {
        seconds: env_number("BENCH_SECONDS", 5)?,
        rounds: env_number("BENCH_ROUNDS", 3)?.max(1),
        connections: env_number("BENCH_CONNECTIONS", 1)?.max(1),
    };
    let core_count: usize = env_number("BENCH_CORES", 3)?.max(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let core = bench_core(None).spawn().await?;
    let gateway = gateway_builder()?.spawn(&core).await?;
    let core_pid = core.pid().context("the core runs as a process")?;
    let channel = core.channel().await;
    let token = start_session(&channel, "gateway-bench").await;
    let listed = catalog(&channel).list_products(authed(&token, pb::ListProductsRequest::default())).await?;
    let product_id = listed.into_inner().products.first().context("the catalog is empty")?.id.clone();
    let rpc = Rpc::GetProduct { token, request: pb::GetProductRequest { product_id: product_id.clone() } };

    let mut direct = Vec::new();
    let mut web = Vec::new();
    for _ in 0..settings.connections {
        direct.push(core.channel().await);
        web.push(gateway_connection(&gateway, &rpc).await?);
    }
    let mut paths = vec![Path {
        name: "direct (tonic, h2)".into(),
        target: Target::Grpc(direct),
        pids: Pids { cores: vec![core_pid], proxy: None },
        judged: false,
    }];
    let reference = if ReferenceProxy::available() { Some(ReferenceProxy::start(&core).await?) } else { None };
    if let Some(proxy) = &reference {
        let mut channels = Vec::new();
        for _ in 0..settings.connections {
            channels.push(proxy.channel().await?);
        }
        paths.push(Path {
            name: "HAProxy (tonic, h2)".into(),
            target: Target::Grpc(channels),
            pids: Pids { cores: vec![core_pid], proxy: proxy.pid() },
            judged: false,
        });
    }
    paths.push(Path {
        name: "gateway (grpc-web, h2)".into(),
        target: Target::Gateway(web),
        pids: Pids { cores: vec![core_pid], proxy: Some(gateway.pid().context("the gateway runs as a process")?) },
        judged: true,
    });

    println!(
        "GetProduct(\"{product_id}\"), unary, {} connection(s) per path, release binaries, loopback, {} s per run, \
         {} rounds",
        settings.connections, settings.seconds, settings.rounds
    );
    if reference.is_none() {
        println!("(HAProxy is not installed, so there is no reference row: `apt-get install haproxy` adds it)");
    }
    measure_table(&paths, &rpc, &settings, true).await?;

    if core_count > 1 {
        // More cores sharing the first one's CA, so the gateway trusts them all.
        let mut others = Vec::new();
        for _ in 1..core_count {
            let data = tempfile::tempdir()?;
            let tls = data.path().join("tls");
            std::fs::create_dir(&tls)?;
            for file in ["dev-ca.pem", "dev-ca.key", "localhost.pem", "localhost.key"] {
                std::fs::copy(core.data_dir.join("tls").join(file), tls.join(file))?;
            }
            others.push((bench_core(Some(data.path().to_path_buf())).spawn().await?, data));
        }
        let mut urls = vec![format!("https://{}", core.addr)];
        urls.extend(others.iter().map(|(other, _)| format!("https://{}", other.addr)));
        let balanced = gateway_builder()?.cores(&urls).spawn(&core).await?;
        let mut all_pids = vec![core_pid];
        all_pids.extend(others.iter().filter_map(|(other, _)| other.pid()));
        let mut paths = Vec::new();
        if let Some(proxy) = &reference {
            let mut channels = Vec::new();
            for _ in 0..settings.connections {
                channels.push(proxy.channel().await?);
            }
            paths.push(Path {
                name: "HAProxy, 1 core (tonic, h2)".into(),
                target: Target::Grpc(channels),
                pids: Pids { cores: vec![core_pid], proxy: proxy.pid() },
                judged: false,
            });
        }
        for (name, gateway, cores) in
            [("gateway, 1 core", &gateway, vec![core_pid]), ("gateway, {n} cores", &balanced, all_pids)]
        {
            let mut web = Vec::new();
            for _ in 0..settings.connections {
                web.push(gateway_connection(gateway, &Rpc::StartSession).await?);
            }
            paths.push(Path {
                name: format!("{} (grpc-web, h2)", name.replace("{n}", &core_count.to_string())),
                target: Target::Gateway(web),
                pids: Pids { cores, proxy: Some(gateway.pid().context("the gateway runs as a process")?) },
                judged: false,
            });
        }
        println!();
        println!("StartSession, the gateway balanced over {core_count} cores (HAProxy relays to one)");
        measure_table(&paths, &Rpc::StartSession, &settings, false).await?;
    }
    Ok(())
}

/// A connection to the gateway that has made one call: the gateway closes a connection whose first
/// request does not come within its header time limit, and the other paths run first.
async fn gateway_connection(gateway: &TestGateway, rpc: &Rpc) -> anyhow::Result<Arc<WebClient>> {
    let client = Arc::new(gateway.client(Http::H2).await);
    call_once(&Connection::Gateway(client.clone()), rpc, &rpc.body()).await?;
    Ok(client)
}

/// The bench's core: sessions that outlive the run, and no cap in its way.
fn bench_core(data_dir: Option<PathBuf>) -> tests::core::CoreBuilder {
    let builder = TestCore::builder().session_idle(Duration::from_secs(3600)).max_concurrent_calls(4096);
    match data_dir {
        Some(dir) => builder.data_dir(&dir),
        None => builder,
    }
}

/// The bench's gateway: one client address drives every call here, over few connections, so the
/// per-address and per-connection caps that protect browsers from each other are lifted, or they
/// would throttle the bench.
fn gateway_builder() -> anyhow::Result<GatewayBuilder> {
    let mut gateway =
        TestGateway::builder().max_concurrent_calls(4096).max_calls_per_peer(4096).max_streams_per_connection(4096);
    if let Ok(threads) = std::env::var("BENCH_GATEWAY_THREADS") {
        gateway = gateway.worker_threads(threads.parse().context("BENCH_GATEWAY_THREADS is a number")?);
    }
    if let Some(binary) = std::env::var_os("BENCH_GATEWAY_BINARY") {
        gateway = gateway.binary(std::path::Path::new(&binary));
    }
    Ok(gateway)
}

/// Measures every path at every concurrency in alternating rounds, prints a row per run, then
/// the summary: against the first path (`versus_first`), and the proxies' CPU per call.
async fn measure_table(paths: &[Path], rpc: &Rpc, settings: &Settings, versus_first: bool) -> anyhow::Result<()> {
    let measure = Duration::from_secs(settings.seconds);
    println!(
        "{:<40} {:>11} {:>9} {:>9}   CPU µs per call: {:>6} {:>6} {:>7} {:>10}",
        "path", "req/s", "p50 ms", "p99 ms", "client", "cores", "proxy", "proxy/stat"
    );
    let mut summary = Vec::new();
    for concurrency in concurrencies()? {
        // Rounds alternate the paths so drift on a shared machine hits all alike; the verdict
        // uses the median of the rounds' own comparisons with the first path.
        let mut compared: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); paths.len()];
        let mut proxy_cpu: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); paths.len()];
        for round in 1..=settings.rounds {
            let mut runs = Vec::new();
            for (index, path) in paths.iter().enumerate() {
                let run = measure_run(&path.target, &path.pids, rpc, concurrency, measure).await?;
                let proxied = path.pids.proxy.is_some();
                let proxy = |cpu| if proxied { format!("{:.1}", run.cpu_us_per_call(cpu)) } else { "-".into() };
                println!(
                    "{:<40} {:>11.0} {:>9.3} {:>9.3}   {:>22.1} {:>6.1} {:>7} {:>10}",
                    format!("{}, c={concurrency} #{round}", path.name),
                    run.rps(),
                    run.percentile_ms(0.5),
                    run.percentile_ms(0.99),
                    run.cpu_us_per_call(run.cpu.client),
                    run.cpu_us_per_call(run.cpu.core),
                    proxy(run.cpu.proxy),
                    proxy(run.cpu.proxy_stat),
                );
                proxy_cpu[index].0.push(run.cpu_us_per_call(run.cpu.proxy));
                proxy_cpu[index].1.push(run.cpu_us_per_call(run.cpu.proxy_stat));
                runs.push(run);
            }
            for (index, run) in runs.iter().enumerate().skip(1) {
                compared[index].0.push(run.percentile_ms(0.5) - runs[0].percentile_ms(0.5));
                compared[index].1.push(run.rps() / runs[0].rps());
            }
        }
        summary.push((concurrency, compared, proxy_cpu));
    }
    println!();
    for (concurrency, mut compared, mut proxy_cpu) in summary {
        if versus_first {
            for (index, (added, ratios)) in compared.iter_mut().enumerate().skip(1) {
                let (added_p50, ratio, (low, high)) = (median(added), median(ratios), spread(ratios));
                let verdict = if paths[index].judged {
                    format!(
                        " (targets: <= {TARGET_ADDED_P50_MS} ms {}, >= {:.0} % {})",
                        verdict(added_p50 <= TARGET_ADDED_P50_MS),
                        TARGET_RATIO * 100.0,
                        verdict(ratio >= TARGET_RATIO)
                    )
                } else {
                    String::new()
                };
                println!(
                    "c={concurrency}: {} adds {added_p50:.3} ms at p50, throughput {:.0} % of direct (rounds {:.0}-{:.0} %){verdict}",
                    paths[index].name,
                    ratio * 100.0,
                    low * 100.0,
                    high * 100.0,
                );
            }
        }
        // The proxies' CPU per forwarded call, medians of the rounds: the gateway's against
        // HAProxy's in the same run (issue 15's goal: at or below).
        let mut proxies = Vec::new();
        for (index, path) in paths.iter().enumerate().filter(|(_, path)| path.pids.proxy.is_some()) {
            let (schedstat, stat) = &mut proxy_cpu[index];
            proxies.push((path.name.as_str(), median(schedstat), median(stat)));
        }
        let line: Vec<String> =
            proxies.iter().map(|(name, schedstat, stat)| format!("{name} {schedstat:.1} ({stat:.1})")).collect();
        let haproxy = proxies.iter().find(|(name, ..)| name.starts_with("HAProxy")).map(|(_, cpu, _)| *cpu);
        let verdicts: Vec<String> = match haproxy {
            Some(haproxy) => proxies
                .iter()
                .filter(|(name, ..)| name.starts_with("gateway"))
                .map(|(name, cpu, _)| {
                    format!("{name}: {:.0} % of HAProxy's, {}", cpu / haproxy * 100.0, verdict(*cpu <= haproxy))
                })
                .collect(),
            None => Vec::new(),
        };
        println!(
            "c={concurrency}: proxy CPU µs per forwarded call, schedstat (stat): {}{}",
            line.join(", "),
            if verdicts.is_empty() { String::new() } else { format!("; target <= HAProxy: {}", verdicts.join("; ")) }
        );
    }
    Ok(())
}

/// A whole number from the environment, or `default` when unset.
fn env_number<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().ok().with_context(|| format!("bad {name} {value:?}")),
        Err(_) => Ok(default),
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn spread(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| (low.min(*v), high.max(*v)))
}

/// `BENCH_CONCURRENCY` (comma-separated, default `1,64`).
fn concurrencies() -> anyhow::Result<Vec<usize>> {
    let Ok(list) = std::env::var("BENCH_CONCURRENCY") else { return Ok(vec![1, 64]) };
    list.split(',').map(|c| c.trim().parse().with_context(|| format!("bad BENCH_CONCURRENCY {list:?}"))).collect()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Warm-up, then `concurrency` loops of back-to-back calls for `measure`.
async fn measure_run(
    target: &Target,
    pids: &Pids,
    rpc: &Rpc,
    concurrency: usize,
    measure: Duration,
) -> anyhow::Result<Run> {
    let body = rpc.body();
    let warm_until = Instant::now() + WARMUP;
    let stop_at = warm_until + measure;
    let mut tasks = Vec::new();
    for index in 0..concurrency {
        let (connection, rpc, body) = (target.pick(index), rpc.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let started = Instant::now();
                if started >= stop_at {
                    break;
                }
                call_once(&connection, &rpc, &body).await?;
                if started >= warm_until {
                    latencies.push(started.elapsed().as_secs_f64() * 1e6);
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    tokio::time::sleep_until(warm_until.into()).await;
    let cpu_before = Cpu::read(pids);
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await??);
    }
    let cpu = Cpu::read(pids).since(cpu_before);
    Ok(Run { latencies_us, elapsed: measure, cpu })
}

async fn call_once(connection: &Connection, rpc: &Rpc, body: &Bytes) -> anyhow::Result<()> {
    match (connection, rpc) {
        (Connection::Grpc(channel), Rpc::GetProduct { token, request }) => {
            catalog(channel).get_product(authed(token, request.clone())).await?;
        }
        (Connection::Grpc(channel), Rpc::StartSession) => {
            SessionServiceClient::new(channel.clone()).start_session(start_request()).await?;
        }
        (Connection::Gateway(web), rpc) => {
            let mut client = web.multiplexed().context("HTTP/2 expected")?;
            let mut http_request =
                client.request(Method::POST, rpc.path()).header("content-type", Mode::Binary.content_type());
            if let Rpc::GetProduct { token, .. } = rpc {
                http_request = http_request.header("authorization", format!("Bearer {token}"));
            }
            let (status, headers, bytes) = client.fetch(http_request.body(full(body.clone()))?).await?;
            let reply = tests::gateway::WebReply::parse(status, headers, &bytes, Mode::Binary)?;
            ensure!(reply.grpc_status() == Some(0), "the call failed: {reply:?}");
        }
    }
    Ok(())
}
