//! Gateway overhead benchmark: unary GetProduct through the release `weblet-gateway` (grpc-web
//! binary, HTTP/2 over TLS, one connection) against the same call straight to the release core
//! (tonic client, one connection), at concurrency 1 and 64. Run
//! `cargo build --release --workspace --bins && cargo bench -p tests --bench gateway`.
//! Loopback only; `BENCH_SECONDS` sets the measured seconds per run (default 5, warm-up 1 s),
//! `BENCH_CONCURRENCY` the concurrencies (default `1,64`), `BENCH_ROUNDS` the alternating
//! direct/gateway rounds per concurrency (default 3), `BENCH_GATEWAY_THREADS` the gateway's
//! `--worker-threads`. Each row also gives the CPU time the bench client, the core and the gateway
//! spent per call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use http::Method;
use proto::v1 as pb;
use tests::client::{authed, catalog, start_session};
use tests::core::TestCore;
use tests::gateway::{Http, Mode, TestGateway, WebClient, frame, full};
use tonic::transport::Channel;

const WARMUP: Duration = Duration::from_secs(1);
const TARGET_ADDED_P50_MS: f64 = 0.5;
const TARGET_RATIO: f64 = 0.70;

fn main() -> std::process::ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run()));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gateway bench failed: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// One run's latencies, and the CPU each process spent during the measured window.
struct Run {
    latencies_us: Vec<f64>,
    elapsed: Duration,
    cpu: Cpu,
}

/// CPU time used so far by the bench client, the core and the gateway.
#[derive(Clone, Copy)]
struct Cpu {
    client: Duration,
    core: Duration,
    gateway: Duration,
}

impl Cpu {
    fn read(pids: Pids) -> Cpu {
        Cpu { client: cpu_time(std::process::id()), core: cpu_time(pids.core), gateway: cpu_time(pids.gateway) }
    }

    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            client: self.client.saturating_sub(earlier.client),
            core: self.core.saturating_sub(earlier.core),
            gateway: self.gateway.saturating_sub(earlier.gateway),
        }
    }
}

#[derive(Clone, Copy)]
struct Pids {
    core: u32,
    gateway: u32,
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

#[derive(Clone)]
enum Target {
    Direct(Channel),
    Gateway(Arc<WebClient>),
}

async fn run() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let measure = Duration::from_secs(seconds);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let core = TestCore::builder()
        .arg("--session-idle-timeout")
        .arg("1h")
        .arg("--max-concurrent-calls")
        .arg("4096")
        .spawn()
        .await?;
    let mut gateway = TestGateway::builder().arg("--max-concurrent-calls").arg("4096");
    if let Ok(threads) = std::env::var("BENCH_GATEWAY_THREADS") {
        gateway = gateway.arg("--worker-threads").arg(threads);
    }
    let gateway = gateway.spawn(&core).await?;
    let channel = core.channel().await;
    let token = start_session(&channel, "gateway-bench").await;
    let listed = catalog(&channel).list_products(authed(&token, pb::ListProductsRequest::default())).await?;
    let product_id = listed.into_inner().products.first().context("the catalog is empty")?.id.clone();
    let web = Arc::new(gateway.client(Http::H2).await);
    let pids = Pids {
        core: core.pid().context("the core runs as a process")?,
        gateway: gateway.pid().context("the gateway runs as a process")?,
    };
    let request = pb::GetProductRequest { product_id: product_id.clone() };

    println!(
        "GetProduct(\"{product_id}\"), unary, one connection each, release binaries, loopback, {seconds} s per run, \
         {rounds} rounds"
    );
    println!(
        "{:<34} {:>11} {:>9} {:>9}   CPU µs per call: {:>6} {:>6} {:>7}",
        "path", "req/s", "p50 ms", "p99 ms", "client", "core", "gateway"
    );
    let mut summary = Vec::new();
    for concurrency in concurrencies()? {
        // Rounds alternate the two paths so drift on a shared machine hits both alike; the
        // verdict uses the median of the rounds' own comparisons.
        let (mut added, mut ratios) = (Vec::new(), Vec::new());
        for round in 1..=rounds {
            let direct =
                measure_run(Target::Direct(channel.clone()), pids, &token, &request, concurrency, measure).await?;
            let through =
                measure_run(Target::Gateway(web.clone()), pids, &token, &request, concurrency, measure).await?;
            for (name, run) in [("direct (tonic, h2)", &direct), ("gateway (grpc-web, h2)", &through)] {
                println!(
                    "{:<34} {:>11.0} {:>9.3} {:>9.3}   {:>22.1} {:>6.1} {:>7.1}",
                    format!("{name}, c={concurrency} #{round}"),
                    run.rps(),
                    run.percentile_ms(0.5),
                    run.percentile_ms(0.99),
                    run.cpu_us_per_call(run.cpu.client),
                    run.cpu_us_per_call(run.cpu.core),
                    run.cpu_us_per_call(run.cpu.gateway),
                );
            }
            added.push(through.percentile_ms(0.5) - direct.percentile_ms(0.5));
            ratios.push(through.rps() / direct.rps());
        }
        summary.push((concurrency, median(&mut added), median(&mut ratios), spread(&ratios)));
    }
    println!();
    for (concurrency, added_p50, ratio, (low, high)) in summary {
        println!(
            "c={concurrency}: gateway adds {added_p50:.3} ms at p50 (target <= {TARGET_ADDED_P50_MS} ms: {}), \
             throughput {:.0} % of direct (rounds {:.0}-{:.0} %; target >= {:.0} %: {})",
            verdict(added_p50 <= TARGET_ADDED_P50_MS),
            ratio * 100.0,
            low * 100.0,
            high * 100.0,
            TARGET_RATIO * 100.0,
            verdict(ratio >= TARGET_RATIO),
        );
    }
    Ok(())
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
    target: Target,
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
    for _ in 0..concurrency {
        let (target, token, request, body) = (target.clone(), token.to_owned(), request.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let started = Instant::now();
                if started >= stop_at {
                    break;
                }
                call_once(&target, &token, &request, &body).await?;
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

async fn call_once(target: &Target, token: &str, request: &pb::GetProductRequest, body: &Bytes) -> anyhow::Result<()> {
    match target {
        Target::Direct(channel) => {
            catalog(channel).get_product(authed(token, request.clone())).await?;
        }
        Target::Gateway(web) => {
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
