//! Gateway overhead benchmark: unary GetProduct through the release `weblet-gateway` (grpc-web
//! binary, HTTP/2 over TLS) against the same call straight to the release core (tonic client), at
//! concurrency 1 and 64. When Debian's `haproxy` is installed, a third path relays the tonic client's
//! calls through HAProxy (HTTP/2 with TLS on both sides, one thread, no grpc-web translation): a
//! mature proxy measured on the same machine, as a yardstick for what any hop in front of the core
//! costs here. Run
//! `cargo build --release --workspace --bins && cargo bench -p tests --bench gateway`.
//! Loopback only; `BENCH_SECONDS` sets the measured seconds per run (default 5, warm-up 1 s),
//! `BENCH_CONCURRENCY` the concurrencies (default `1,64`), `BENCH_ROUNDS` the alternating rounds
//! per concurrency (default 3), `BENCH_CONNECTIONS` the connections each path spreads its callers
//! over (default 1), `BENCH_GATEWAY_THREADS` the gateway's `--worker-threads`. Each row also gives
//! the CPU time the bench client, the core and the proxy in between spent per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use http::Method;
use proto::v1 as pb;
use tests::client::{authed, catalog, start_session};
use tests::core::TestCore;
use tests::gateway::{Http, Mode, TestGateway, WebClient, frame, full};
use tests::haproxy::ReferenceProxy;
use tonic::transport::Channel;

const WARMUP: Duration = Duration::from_secs(1);
const TARGET_ADDED_P50_MS: f64 = 0.5;
const TARGET_RATIO: f64 = 0.70;

fn main() -> std::process::ExitCode {
    tests::bench::main("gateway", run)
}

/// One run's latencies, and the CPU each process spent during the measured window.
struct Run {
    latencies_us: Vec<f64>,
    elapsed: Duration,
    cpu: Cpu,
}

/// CPU time used so far by the bench client, the core and the proxy in between (if any).
#[derive(Clone, Copy)]
struct Cpu {
    client: Duration,
    core: Duration,
    proxy: Duration,
}

impl Cpu {
    fn read(pids: Pids) -> Cpu {
        Cpu {
            client: cpu_time(std::process::id()),
            core: cpu_time(pids.core),
            proxy: pids.proxy.map_or(Duration::ZERO, cpu_time),
        }
    }

    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            client: self.client.saturating_sub(earlier.client),
            core: self.core.saturating_sub(earlier.core),
            proxy: self.proxy.saturating_sub(earlier.proxy),
        }
    }
}

/// The processes a run's calls pass through.
#[derive(Clone, Copy)]
struct Pids {
    core: u32,
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

/// One path the bench measures.
struct Path {
    name: &'static str,
    target: Target,
    pids: Pids,
    /// Whether the targets apply (the gateway's path).
    judged: bool,
}

async fn run() -> anyhow::Result<()> {
    let seconds: u64 = env_number("BENCH_SECONDS", 5)?;
    let measure = Duration::from_secs(seconds);
    let rounds: usize = env_number("BENCH_ROUNDS", 3)?.max(1);
    let connections: usize = env_number("BENCH_CONNECTIONS", 1)?.max(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let core = TestCore::builder().session_idle(Duration::from_secs(3600)).max_concurrent_calls(4096).spawn().await?;
    // One client address drives every call here, over few connections: lift the per-address and
    // per-connection caps that protect browsers from each other, or they would throttle the bench.
    let mut gateway =
        TestGateway::builder().max_concurrent_calls(4096).max_calls_per_peer(4096).max_streams_per_connection(4096);
    if let Ok(threads) = std::env::var("BENCH_GATEWAY_THREADS") {
        gateway = gateway.worker_threads(threads.parse().context("BENCH_GATEWAY_THREADS is a number")?);
    }
    let gateway = gateway.spawn(&core).await?;
    let core_pid = core.pid().context("the core runs as a process")?;
    let channel = core.channel().await;
    let token = start_session(&channel, "gateway-bench").await;
    let listed = catalog(&channel).list_products(authed(&token, pb::ListProductsRequest::default())).await?;
    let product_id = listed.into_inner().products.first().context("the catalog is empty")?.id.clone();
    let request = pb::GetProductRequest { product_id: product_id.clone() };

    let mut direct = Vec::new();
    let mut web = Vec::new();
    for _ in 0..connections {
        direct.push(core.channel().await);
        web.push(Arc::new(gateway.client(Http::H2).await));
    }
    let mut paths = vec![Path {
        name: "direct (tonic, h2)",
        target: Target::Grpc(direct),
        pids: Pids { core: core_pid, proxy: None },
        judged: false,
    }];
    let reference = if ReferenceProxy::available() { Some(ReferenceProxy::start(&core).await?) } else { None };
    if let Some(proxy) = &reference {
        let mut channels = Vec::new();
        for _ in 0..connections {
            channels.push(proxy.channel().await?);
        }
        paths.push(Path {
            name: "HAProxy (tonic, h2)",
            target: Target::Grpc(channels),
            pids: Pids { core: core_pid, proxy: proxy.pid() },
            judged: false,
        });
    }
    paths.push(Path {
        name: "gateway (grpc-web, h2)",
        target: Target::Gateway(web),
        pids: Pids { core: core_pid, proxy: Some(gateway.pid().context("the gateway runs as a process")?) },
        judged: true,
    });

    println!(
        "GetProduct(\"{product_id}\"), unary, {connections} connection(s) per path, release binaries, loopback, \
         {seconds} s per run, {rounds} rounds"
    );
    if reference.is_none() {
        println!("(HAProxy is not installed, so there is no reference row: `apt-get install haproxy` adds it)");
    }
    println!(
        "{:<34} {:>11} {:>9} {:>9}   CPU µs per call: {:>6} {:>6} {:>7}",
        "path", "req/s", "p50 ms", "p99 ms", "client", "core", "proxy"
    );
    let mut summary = Vec::new();
    for concurrency in concurrencies()? {
        // Rounds alternate the paths so drift on a shared machine hits all alike; the verdict
        // uses the median of the rounds' own comparisons with the direct path.
        let mut compared: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); paths.len()];
        for round in 1..=rounds {
            let mut runs = Vec::new();
            for path in &paths {
                let run = measure_run(&path.target, path.pids, &token, &request, concurrency, measure).await?;
                println!(
                    "{:<34} {:>11.0} {:>9.3} {:>9.3}   {:>22.1} {:>6.1} {:>7}",
                    format!("{}, c={concurrency} #{round}", path.name),
                    run.rps(),
                    run.percentile_ms(0.5),
                    run.percentile_ms(0.99),
                    run.cpu_us_per_call(run.cpu.client),
                    run.cpu_us_per_call(run.cpu.core),
                    if path.pids.proxy.is_some() {
                        format!("{:.1}", run.cpu_us_per_call(run.cpu.proxy))
                    } else {
                        "-".into()
                    },
                );
                runs.push(run);
            }
            for (index, run) in runs.iter().enumerate().skip(1) {
                compared[index].0.push(run.percentile_ms(0.5) - runs[0].percentile_ms(0.5));
                compared[index].1.push(run.rps() / runs[0].rps());
            }
        }
        summary.push((concurrency, compared));
    }
    println!();
    for (concurrency, mut compared) in summary {
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
    pids: Pids,
    token: &str,
    request: &pb::GetProductRequest,
    concurrency: usize,
    measure: Duration,
) -> anyhow::Result<Run> {
    let body = frame(0, &prost::Message::encode_to_vec(request));
    let warm_until = Instant::now() + WARMUP;
    let stop_at = warm_until + measure;
    let mut tasks = Vec::new();
    for index in 0..concurrency {
        let (connection, token, request, body) = (target.pick(index), token.to_owned(), request.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let started = Instant::now();
                if started >= stop_at {
                    break;
                }
                call_once(&connection, &token, &request, &body).await?;
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

async fn call_once(
    connection: &Connection,
    token: &str,
    request: &pb::GetProductRequest,
    body: &Bytes,
) -> anyhow::Result<()> {
    match connection {
        Connection::Grpc(channel) => {
            catalog(channel).get_product(authed(token, request.clone())).await?;
        }
        Connection::Gateway(web) => {
            let mut client = web.multiplexed().context("HTTP/2 expected")?;
            let http_request = client
                .request(Method::POST, "/podconnect.v1.CatalogService/GetProduct")
                .header("content-type", Mode::Binary.content_type())
                .header("authorization", format!("Bearer {token}"))
                .body(full(body.clone()))?;
            let (status, headers, bytes) = client.fetch(http_request).await?;
            let reply = tests::gateway::WebReply::parse(status, headers, &bytes, Mode::Binary)?;
            ensure!(reply.grpc_status() == Some(0), "the call failed: {reply:?}");
        }
    }
    Ok(())
}
