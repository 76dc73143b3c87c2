//! What the client library costs per call over raw tonic: sequential `GetProduct` calls to one
//! core over TLS, through the generated client and through `podconnect_client::Client`, in
//! alternating rounds (`BENCH_ROUNDS`, `BENCH_CALLS`), reporting the median time per call of each.
//!
//! `cargo build -p server && cargo bench -p tests --bench client --profile dev` (or the default
//! bench profile for optimized numbers).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use podconnect_client::{Client, Secret};
use proto::v1 as pb;
use tests::client::{authed, catalog, start_session};
use tests::core::TestCore;

const PRODUCT: &str = "classic-business-card";

fn main() -> ExitCode {
    tests::bench::main("client", run)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run() -> anyhow::Result<()> {
    let rounds = env_number("BENCH_ROUNDS", 5);
    let calls = env_number("BENCH_CALLS", 1000);
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-bench").await;
    let mut raw = catalog(&channel);
    let library = Client::builder(&format!("https://{}", core.addr))
        .ca_file(core.dev_ca.as_ref().expect("the development CA"))
        .connect()
        .await?;
    library.set_session_token(Secret::new(token.clone()));

    let (mut raw_times, mut library_times) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let started = Instant::now();
        for _ in 0..calls {
            raw.get_product(authed(&token, pb::GetProductRequest { product_id: PRODUCT.into() })).await?;
        }
        raw_times.push(started.elapsed() / calls as u32);
        let started = Instant::now();
        for _ in 0..calls {
            library.get_product(PRODUCT).await?;
        }
        library_times.push(started.elapsed() / calls as u32);
        println!("round {round}: raw tonic {:?}/call, library {:?}/call", raw_times[round], library_times[round]);
    }
    let (raw, library) = (median(&mut raw_times), median(&mut library_times));
    println!(
        "median over {rounds} rounds of {calls} calls: raw tonic {raw:?}, library {library:?}, overhead {:?} per call",
        library.saturating_sub(raw)
    );
    Ok(())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
