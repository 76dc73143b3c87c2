//! Benchmark of storefront login and single sign-on against the release `podconnect-server`:
//! the latency of Login (argon2id against the embedded storefront, token rotation) and of a
//! silent login (GetVaultKey then SilentLogin: vault read, AES-256-GCM open, the storefront's
//! password check, token rotation), one person at a time and four at once. Run
//! `cargo build --release -p server` first, then `cargo bench -p tests --bench signin`. Loopback
//! only; `BENCH_LOGINS` (logins per run, default 200).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use proto::v1 as pb;
use proto::v1::session_service_client::SessionServiceClient;
use proto::v1::sso_service_client::SsoServiceClient;
use tests::client::{ANA, authed};
use tests::core::TestCore;
use tonic::transport::Channel;

const PARALLEL: usize = 4;

fn main() -> std::process::ExitCode {
    tests::bench::main("signin", run)
}

async fn run() -> anyhow::Result<()> {
    let logins: usize = match std::env::var("BENCH_LOGINS") {
        Ok(raw) => raw.trim().parse().with_context(|| format!("BENCH_LOGINS={raw:?} is not a number"))?,
        Err(_) => 200,
    };
    ensure!(logins >= 10, "BENCH_LOGINS must be at least 10");
    let binary = tests::core::server_binary()?;
    println!("podconnect sign-in benchmark: {logins} logins per run, server {}", binary.display());
    // Logins of one device are limited only when they fail; every login here succeeds.
    let core = TestCore::builder().binary(&binary).max_sessions_per_device(4096).spawn().await?;
    let channel = core.channel().await;
    let assertion = core.device_assertion("bench-employee").await;

    // Enrol once; every silent login below uses it.
    let token = start(&channel, &assertion).await?;
    login(&channel, &token, true).await?;

    for parallel in [1, PARALLEL] {
        let per_task = logins / parallel;
        let mut tasks = Vec::new();
        for _ in 0..parallel {
            let channel = channel.clone();
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let token = start(&channel, "").await?;
                    let started = Instant::now();
                    login(&channel, &token, false).await?;
                    times.push(started.elapsed());
                }
                anyhow::Ok(times)
            }));
        }
        report(&format!("Login, {parallel} at once"), collect(tasks).await?);

        let mut tasks = Vec::new();
        for _ in 0..parallel {
            let (channel, assertion) = (channel.clone(), assertion.clone());
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let token = start(&channel, &assertion).await?;
                    let started = Instant::now();
                    silent_login(&channel, &token).await?;
                    times.push(started.elapsed());
                }
                anyhow::Ok(times)
            }));
        }
        report(&format!("GetVaultKey + SilentLogin, {parallel} at once"), collect(tasks).await?);
    }
    Ok(())
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<Duration>>>>) -> anyhow::Result<Vec<Duration>> {
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1000.0;
    println!(
        "  {what:<36} n={:<5} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        times.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
}

async fn start(channel: &Channel, assertion: &str) -> anyhow::Result<String> {
    let request = pb::StartSessionRequest {
        device_id: "bench-mfd".into(),
        device_user_assertion: assertion.into(),
        ..Default::default()
    };
    Ok(SessionServiceClient::new(channel.clone()).start_session(request).await?.into_inner().session_token)
}

async fn login(channel: &Channel, token: &str, remember: bool) -> anyhow::Result<String> {
    let request = pb::LoginRequest { username: ANA.0.into(), password: ANA.1.into(), remember };
    let response = SessionServiceClient::new(channel.clone()).login(authed(token, request)).await?.into_inner();
    ensure!(!remember || response.remembered, "the login was not remembered");
    Ok(response.session_token)
}

async fn silent_login(channel: &Channel, token: &str) -> anyhow::Result<String> {
    let mut sso = SsoServiceClient::new(channel.clone());
    let key = sso.get_vault_key(authed(token, pb::GetVaultKeyRequest {})).await?.into_inner().vault_key;
    let response = sso.silent_login(authed(token, pb::SilentLoginRequest { vault_key: key })).await?.into_inner();
    Ok(response.session_token)
}
