//! Measures the core under the cheap attacks of issue 17, for before/after numbers: how long
//! 512 stalled calls lock other callers out, how many sessions one loop opens in 10 s and what
//! memory that costs, how long a silent TLS peer stays connected, and how long SIGTERM takes to
//! end the process with attackers connected, and the memory an idle connection holds. Each core
//! runs with its default limits.
//!
//! `cargo build -p server && cargo bench -p tests --bench abuse --profile dev` measures the
//! `podconnect-server` next to the bench; `ABUSE_SERVER=<path>` measures another build (say one
//! of `main` before the fix). `ABUSE_ONLY=lockout,flood,silent,shutdown,idle,ramp` picks measurements;
//! `ABUSE_IDLE_CONNECTIONS` (default 2000) is how many idle connections to hold;
//! `ABUSE_FLOOD_SECONDS` (default 10) how long the session flood runs; `ABUSE_RAMP_SECONDS`
//! (default 3) how long each step of the load ramp (`ramp`: 64 to 2,048 concurrent callers) runs.
//! `ABUSE_WAIT_CAP` (seconds, default 90) bounds each observation;
//! a figure shown as "> cap" did not happen within it. Loopback only; stops by itself.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use tests::core::TestCore;
use tests::raw::{
    HEALTH_CHECK, START_SESSION, grpc_code, grpc_request, h2_from, health_message, stalled_body, start_session_message,
    tcp_from, tls_to, unary,
};
use tokio::io::AsyncReadExt as _;
use tonic::Code;

fn builder() -> tests::core::CoreBuilder {
    match std::env::var_os("ABUSE_SERVER") {
        Some(path) => TestCore::builder().binary(&PathBuf::from(path)),
        None => TestCore::builder(),
    }
}

fn shown(elapsed: Option<Duration>, cap: Duration) -> String {
    match elapsed {
        Some(d) => format!("{:.2} s", d.as_secs_f64()),
        None => format!("> {} s (cap)", cap.as_secs()),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 512 StartSession calls from 127.0.0.1 over two connections that never finish their bodies;
/// then a caller at `from` retries StartSession every 100 ms on a new connection. Returns how long
/// it was locked out.
async fn lockout(cap: Duration, from: [u8; 4]) -> Option<Duration> {
    let core = builder().spawn().await.expect("the core starts");
    let mut held = Vec::new();
    for _ in 0..2 {
        let (sender, _) = h2_from(&core, [127, 0, 0, 1]).await;
        for _ in 0..256 {
            let (tx, body) = stalled_body();
            held.push(tx);
            let mut sender = sender.clone();
            tokio::spawn(async move {
                if sender.ready().await.is_ok()
                    && let Ok(response) = sender.send_request(grpc_request(START_SESSION, body)).await
                {
                    let _ = grpc_code(response).await;
                }
            });
        }
    }
    // Let the stalled calls take their slots before the other caller starts asking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let (mut other, _) = h2_from(&core, from).await;
    while started.elapsed() < cap {
        if unary(&mut other, START_SESSION, start_session_message("lobby")).await.0 == Code::Ok {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// StartSession on one device for `seconds` from one client (64 calls at a time on one
/// connection): sessions accepted and the server's RSS before and after.
async fn flood(seconds: u64) -> (u64, u64, u64) {
    let core = builder().spawn().await.expect("the core starts");
    let pid = core.pid().expect("a process");
    let (mut sender, _) = h2_from(&core, [127, 0, 0, 1]).await;
    unary(&mut sender, START_SESSION, start_session_message("warm-up")).await;
    let before = rss_kib(pid);
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let mut sender = sender.clone();
        loops.spawn(async move {
            let mut accepted = 0;
            while started.elapsed() < Duration::from_secs(seconds) {
                if unary(&mut sender, START_SESSION, start_session_message("flooded")).await.0 == Code::Ok {
                    accepted += 1;
                }
            }
            accepted
        });
    }
    let mut accepted = 0;
    while let Some(count) = loops.join_next().await {
        accepted += count.expect("the loop ran");
    }
    (accepted, before, rss_kib(pid))
}

/// A peer that completes the TLS handshake and says nothing: time until the core hangs up.
async fn silent_peer(cap: Duration) -> Option<Duration> {
    let core = builder().spawn().await.expect("the core starts");
    let mut tls = tls_to(&core, core.addr, [127, 0, 0, 1], b"h2").await;
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(cap, async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

/// SIGTERM with a TCP-only, a handshake-only, an idle HTTP/2 connection and a stalled call open.
async fn shutdown(cap: Duration) -> Option<Duration> {
    let core = builder().spawn().await.expect("the core starts");
    let pid = core.pid().expect("a process");
    let _tcp = tcp_from([127, 0, 0, 1], core.addr).await;
    let _tls = tls_to(&core, core.addr, [127, 0, 0, 1], b"h2").await;
    let (mut idle, _idle) = h2_from(&core, [127, 0, 0, 1]).await;
    unary(&mut idle, START_SESSION, start_session_message("idle")).await;
    let (mut stalled, _stalled) = h2_from(&core, [127, 0, 0, 1]).await;
    let (_tx, body) = stalled_body();
    stalled.ready().await.expect("open");
    let _pending = tokio::spawn(stalled.send_request(grpc_request(START_SESSION, body)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
    while started.elapsed() < cap {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// One step of the load ramp: `concurrency` callers spread over eight loopback addresses (one
/// HTTP/2 connection each) call StartSession back to back for `seconds`.
struct RampStep {
    admitted: u64,
    shed: u64,
    other: u64,
    admitted_p99: Duration,
    shed_p99: Duration,
    rss_kib: u64,
}

async fn ramp_step(core: &TestCore, concurrency: usize, seconds: f64) -> RampStep {
    let mut senders = Vec::new();
    for n in 0..8u8 {
        senders.push(h2_from(core, [127, 0, 2, 1 + n]).await);
    }
    let started = Instant::now();
    let mut loops = tokio::task::JoinSet::new();
    for i in 0..concurrency {
        let mut sender = senders[i % senders.len()].0.clone();
        let device = format!("ramp-{}", i % 16);
        loops.spawn(async move {
            let (mut ok, mut shed, mut other) = (Vec::new(), Vec::new(), 0u64);
            while started.elapsed().as_secs_f64() < seconds {
                let t = Instant::now();
                let request = grpc_request(START_SESSION, Full::new(start_session_message(&device)).boxed());
                let answer = match sender.ready().await {
                    Ok(()) => sender.send_request(request).await.ok(),
                    Err(_) => None,
                };
                let Some(response) = answer else {
                    // The connection went away: count it and stop this caller.
                    other += 1;
                    break;
                };
                match grpc_code(response).await.0 {
                    Code::Ok => ok.push(t.elapsed()),
                    Code::ResourceExhausted => {
                        shed.push(t.elapsed());
                        // As a real client does: wait a moment before trying again.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    _ => other += 1,
                }
            }
            (ok, shed, other)
        });
    }
    let (mut ok, mut shed, mut other) = (Vec::new(), Vec::new(), 0);
    while let Some(result) = loops.join_next().await {
        let (o, s, x) = result.expect("the loop ran");
        ok.extend(o);
        shed.extend(s);
        other += x;
    }
    let p99 = |v: &mut Vec<Duration>| {
        v.sort();
        v.get((v.len() * 99 / 100).min(v.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    RampStep {
        admitted: ok.len() as u64,
        shed: shed.len() as u64,
        other,
        admitted_p99: p99(&mut ok),
        shed_p99: p99(&mut shed),
        rss_kib: rss_kib(core.pid().expect("a process")),
    }
}

/// Idle HTTP/2 connections (TLS done, one health check each, then nothing): the server's RSS
/// per connection. Spread over loopback addresses so no per-address cap is reached.
async fn idle_connections(count: usize) -> (usize, u64, u64) {
    let core = builder().spawn().await.expect("the core starts");
    let pid = core.pid().expect("a process");
    let (mut warm, _) = h2_from(&core, [127, 0, 0, 1]).await;
    unary(&mut warm, HEALTH_CHECK, health_message()).await;
    let before = rss_kib(pid);
    let mut held = Vec::with_capacity(count);
    for n in 0..count {
        let from = [127, 0, 1 + u8::try_from(n / 200).expect("fewer than 50000"), 1];
        let (mut sender, conn) = h2_from(&core, from).await;
        if unary(&mut sender, HEALTH_CHECK, health_message()).await.0 != Code::Ok {
            break;
        }
        held.push((sender, conn));
    }
    let after = rss_kib(pid);
    (held.len(), before, after)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cap = Duration::from_secs(std::env::var("ABUSE_WAIT_CAP").ok().and_then(|s| s.parse().ok()).unwrap_or(90));
    let which = std::env::var("ABUSE_SERVER").unwrap_or_else(|_| "the podconnect-server next to this bench".into());
    println!("measuring {which} with its default limits");
    // `ABUSE_ONLY=flood,silent` measures only those (lockout, flood, silent, shutdown).
    let only = std::env::var("ABUSE_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|n| n == name);
    if run("lockout") {
        let other = shown(lockout(cap, [127, 0, 0, 2]).await, cap);
        println!("  another address locked out by 512 stalled calls: {other}");
        let same = shown(lockout(cap, [127, 0, 0, 1]).await, cap);
        println!("  the attacker's own address locked out by them: {same}");
    }
    if run("flood") {
        let seconds = std::env::var("ABUSE_FLOOD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
        let (accepted, before, after) = flood(seconds).await;
        println!(
            "  StartSession on one device for {seconds} s (64 at a time): {accepted} sessions accepted; server RSS {before} KiB -> {after} KiB (+{} KiB)",
            after.saturating_sub(before)
        );
    }
    if run("silent") {
        println!("  a silent TLS peer cut off after: {}", shown(silent_peer(cap).await, cap));
    }
    if run("idle") {
        let count = std::env::var("ABUSE_IDLE_CONNECTIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(2000);
        let (open, before, after) = idle_connections(count).await;
        let per = (after.saturating_sub(before) * 1024) / u64::try_from(open.max(1)).expect("small");
        println!(
            "  {open} idle HTTP/2 connections: server RSS {before} KiB -> {after} KiB, about {per} B per connection"
        );
    }
    if run("ramp") {
        // Concurrency past the call caps (256 per address, 512 in total): the excess is refused at
        // once, admitted calls keep their latency, and memory comes back down afterwards.
        let seconds = std::env::var("ABUSE_RAMP_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
        let core = builder().spawn().await.expect("the core starts");
        let pid = core.pid().expect("a process");
        let (mut warm, _) = h2_from(&core, [127, 0, 0, 1]).await;
        unary(&mut warm, START_SESSION, start_session_message("warm-up")).await;
        println!("  load ramp, StartSession, {seconds} s per step (server RSS at start {} KiB):", rss_kib(pid));
        for concurrency in [64, 256, 512, 1024, 2048] {
            let step = ramp_step(&core, concurrency, seconds).await;
            println!(
                "    {concurrency:>5} callers: admitted {:>7.0}/s (p99 {:>6.1} ms), shed {:>7.0}/s (p99 {:>5.1} ms), failed or cut off {}, RSS {} KiB",
                step.admitted as f64 / seconds,
                step.admitted_p99.as_secs_f64() * 1e3,
                step.shed as f64 / seconds,
                step.shed_p99.as_secs_f64() * 1e3,
                step.other,
                step.rss_kib
            );
        }
        let step = ramp_step(&core, 64, seconds).await;
        println!(
            "    back to 64 callers: admitted {:.0}/s (p99 {:.1} ms), RSS {} KiB",
            step.admitted as f64 / seconds,
            step.admitted_p99.as_secs_f64() * 1e3,
            step.rss_kib
        );
    }
    if run("shutdown") {
        println!("  SIGTERM to exit with stalled clients connected: {}", shown(shutdown(cap).await, cap));
    }
}
