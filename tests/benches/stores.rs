//! What the shared ephemeral store costs per call: GetForm and UpdateDraft against the release core
//! on the in-memory store and on Redis (a `redis-server` of the bench's own), one session, calls
//! one after another over TLS. For each: p50 and p90 latency, the core's CPU per call, and on Redis
//! also the Redis server's CPU per call. Then several instances on one Redis: UpdateDraft
//! throughput with 1, 2 and 3 instances (64 calls in flight, spread over the instances), and the
//! CPU per call of all instances together; then the same through one gateway in front of them
//! (grpc-web, as the weblet calls), with the gateway's CPU per call.
//!
//! Run `cargo build --release --workspace --bins` first, then `cargo bench -p tests --bench stores`.
//! Environment: `BENCH_CALLS` (calls per row, default 2000), `BENCH_SECONDS` (seconds per
//! throughput row, default 5).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use http::Method;
use proto::v1 as pb;
use tests::client::{VALID_CARD, authed, customize, start_session, values};
use tests::core::TestCore;
use tests::gateway::{Http, Mode, TestGateway, WebClient, WebReply, frame, full};
use tests::redis::RedisServer;
use tonic::transport::Channel;

fn main() -> std::process::ExitCode {
    tests::bench::main("stores", run)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU time (user + system) a process used so far, in nanoseconds.
fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return 0 };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks * 10_000_000
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run() -> anyhow::Result<()> {
    let binary = tests::core::server_binary()?;
    let calls = env("BENCH_CALLS", 2000) as usize;
    println!("stores bench: release core, {calls} sequential calls per row, one session, TLS on loopback");
    println!(
        "{:<8} {:<12} {:>9} {:>9} {:>14} {:>15}",
        "store", "call", "p50 µs", "p90 µs", "core µs/call", "redis µs/call"
    );
    let redis = RedisServer::start().await?;
    let redis_pid = redis.pid();
    for store in ["memory", "redis"] {
        let mut builder = TestCore::builder().binary(&binary);
        if store == "redis" {
            builder = builder.ephemeral_store(&redis.url());
        }
        let core = builder.spawn().await?;
        let channel = core.channel().await;
        let token = start_session(&channel, "mfd-bench").await;
        let draft = tests::client::create_draft(&channel, &token, "classic-business-card", VALID_CARD).await;
        let draft_id = draft.draft.unwrap().id;
        for call in ["GetForm", "UpdateDraft"] {
            let (pid, rpid) = (core.pid().unwrap_or(0), redis_pid.unwrap_or(0));
            let (cpu0, rcpu0) = (process_cpu_ns(pid), process_cpu_ns(rpid));
            let mut times = Vec::with_capacity(calls);
            for i in 0..calls {
                let started = Instant::now();
                one_call(&channel, &token, &draft_id, call, i).await?;
                times.push(started.elapsed());
            }
            let (cpu, rcpu) = (process_cpu_ns(pid) - cpu0, process_cpu_ns(rpid) - rcpu0);
            times.sort();
            let redis_column =
                if store == "redis" { format!("{:.1}", rcpu as f64 / calls as f64 / 1000.0) } else { "-".to_owned() };
            println!(
                "{:<8} {:<12} {:>9} {:>9} {:>14.1} {:>15}",
                store,
                call,
                percentile(&times, 0.5).as_micros(),
                percentile(&times, 0.9).as_micros(),
                cpu as f64 / calls as f64 / 1000.0,
                redis_column
            );
        }
    }

    let seconds = env("BENCH_SECONDS", 5);
    println!(
        "\nUpdateDraft throughput on one Redis, 64 calls in flight spread over the instances, {seconds} s per row"
    );
    println!("{:<10} {:>9} {:>9} {:>16} {:>15}", "instances", "calls", "calls/s", "cores µs/call", "redis µs/call");
    let shared = tempfile::tempdir()?;
    let mut cores: Vec<TestCore> = Vec::new();
    let mut data_dirs = Vec::new();
    for instances in 1..=3 {
        while cores.len() < instances {
            let mut builder = TestCore::builder()
                .binary(&binary)
                .ephemeral_store(&redis.url())
                .session_key_file(&shared.path().join("session.key"))
                .instance_id(&format!("bench-{}", cores.len()));
            if let Some(first) = cores.first() {
                // One CA and certificate for all, as the gateway in front of them trusts one.
                let data = tempfile::tempdir()?;
                std::fs::create_dir(data.path().join("tls"))?;
                for file in ["dev-ca.pem", "dev-ca.key", "localhost.pem", "localhost.key"] {
                    std::fs::copy(first.data_dir.join("tls").join(file), data.path().join("tls").join(file))?;
                }
                builder = builder.data_dir(data.path());
                data_dirs.push(data);
            }
            cores.push(builder.spawn().await?);
        }
        let mut channels = Vec::new();
        for core in &cores {
            channels.push(core.channel().await);
        }
        let token = start_session(&channels[0], "mfd-bench").await;
        let draft = tests::client::create_draft(&channels[0], &token, "classic-business-card", VALID_CARD).await;
        let draft_id = draft.draft.unwrap().id;
        let cpu0: u64 = cores.iter().map(|c| process_cpu_ns(c.pid().unwrap_or(0))).sum();
        let rcpu0 = process_cpu_ns(redis_pid.unwrap_or(0));
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut workers = Vec::new();
        for w in 0..64 {
            let (channel, token, draft_id) = (channels[w % channels.len()].clone(), token.clone(), draft_id.clone());
            workers.push(tokio::spawn(async move {
                let mut done = 0u64;
                let mut i = w * 1_000_000;
                while Instant::now() < until {
                    if one_call(&channel, &token, &draft_id, "UpdateDraft", i).await.is_ok() {
                        done += 1;
                    }
                    i += 1;
                }
                done
            }));
        }
        let mut done = 0;
        for worker in workers {
            done += worker.await?;
        }
        let cpu: u64 = cores.iter().map(|c| process_cpu_ns(c.pid().unwrap_or(0))).sum::<u64>() - cpu0;
        let rcpu = process_cpu_ns(redis_pid.unwrap_or(0)) - rcpu0;
        println!(
            "{:<10} {:>9} {:>9.0} {:>16.1} {:>15.1}",
            instances,
            done,
            done as f64 / seconds as f64,
            cpu as f64 / done.max(1) as f64 / 1000.0,
            rcpu as f64 / done.max(1) as f64 / 1000.0
        );
    }

    println!(
        "\nThe same through one gateway in front of the instances (grpc-web over HTTP/2 as a browser sends it, \
         64 calls in flight on 4 connections), {seconds} s per row"
    );
    println!(
        "{:<10} {:>9} {:>9} {:>16} {:>16} {:>15}",
        "instances", "calls", "calls/s", "cores µs/call", "gateway µs/call", "redis µs/call"
    );
    for instances in 1..=3 {
        let urls: Vec<String> = cores[..instances].iter().map(|c| format!("https://{}", c.addr)).collect();
        let gateway = TestGateway::builder()
            .cores(&urls)
            .max_concurrent_calls(4096)
            .max_calls_per_peer(4096)
            .max_streams_per_connection(4096)
            .spawn(&cores[0])
            .await?;
        let channel = cores[0].channel().await;
        let token = start_session(&channel, "mfd-bench").await;
        let draft = tests::client::create_draft(&channel, &token, "classic-business-card", VALID_CARD).await;
        let draft_id = draft.draft.unwrap().id;
        let mut connections = Vec::new();
        for _ in 0..4 {
            connections.push(gateway.client(Http::H2).await);
        }
        let pids: Vec<u32> = cores[..instances].iter().map(|c| c.pid().unwrap_or(0)).collect();
        let (gateway_pid, redis_pid) = (gateway.pid().unwrap_or(0), redis_pid.unwrap_or(0));
        let cpu0: u64 = pids.iter().map(|&p| process_cpu_ns(p)).sum();
        let (gcpu0, rcpu0) = (process_cpu_ns(gateway_pid), process_cpu_ns(redis_pid));
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut workers = Vec::new();
        for w in 0..64 {
            let mut client = connections[w % connections.len()].multiplexed().context("HTTP/2 expected")?;
            let (token, draft_id) = (token.clone(), draft_id.clone());
            workers.push(tokio::spawn(async move {
                let mut done = 0u64;
                let mut i = w * 1_000_000;
                while Instant::now() < until {
                    if web_update(&mut client, &token, &draft_id, i).await.is_ok() {
                        done += 1;
                    }
                    i += 1;
                }
                done
            }));
        }
        let mut done = 0;
        for worker in workers {
            done += worker.await?;
        }
        let cpu = pids.iter().map(|&p| process_cpu_ns(p)).sum::<u64>() - cpu0;
        let (gcpu, rcpu) = (process_cpu_ns(gateway_pid) - gcpu0, process_cpu_ns(redis_pid) - rcpu0);
        let per_call = |ns: u64| ns as f64 / done.max(1) as f64 / 1000.0;
        println!(
            "{:<10} {:>9} {:>9.0} {:>16.1} {:>16.1} {:>15.1}",
            instances,
            done,
            done as f64 / seconds as f64,
            per_call(cpu),
            per_call(gcpu),
            per_call(rcpu)
        );
    }
    Ok(())
}

/// UpdateDraft as the weblet sends it: grpc-web through the gateway.
async fn web_update(client: &mut WebClient, token: &str, draft_id: &str, i: usize) -> anyhow::Result<()> {
    let tagline = format!("Architecture & Interiors {}", i % 1000);
    let request = pb::UpdateDraftRequest {
        draft_id: draft_id.into(),
        values: values(&[("tagline", tagline.as_str())]),
        ..Default::default()
    };
    let body = frame(0, &prost::Message::encode_to_vec(&request));
    let http = client
        .request(Method::POST, "/podconnect.v1.CustomizationService/UpdateDraft")
        .header("content-type", Mode::Binary.content_type())
        .header("authorization", format!("Bearer {token}"))
        .body(full(body))?;
    let (status, headers, bytes) = client.fetch(http).await?;
    let reply = WebReply::parse(status, headers, &bytes, Mode::Binary)?;
    anyhow::ensure!(reply.grpc_status() == Some(0), "the call failed: {reply:?}");
    Ok(())
}

async fn one_call(channel: &Channel, token: &str, draft_id: &str, call: &str, i: usize) -> anyhow::Result<()> {
    match call {
        "GetForm" => {
            let request = pb::GetFormRequest { product_id: "classic-business-card".into() };
            customize(channel).get_form(authed(token, request)).await?;
        }
        _ => {
            let tagline = format!("Architecture & Interiors {}", i % 1000);
            let request = pb::UpdateDraftRequest {
                draft_id: draft_id.into(),
                values: values(&[("tagline", tagline.as_str())]),
                ..Default::default()
            };
            customize(channel).update_draft(authed(token, request)).await?;
        }
    }
    Ok(())
}
