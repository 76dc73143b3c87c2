//! `ustore-double`: runs the uStore REST API test double by hand (for the core or a browser),
//! writes its CA file, prints one JSON ready line and serves until Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tests::ustore::UstoreDouble;

#[derive(Parser)]
#[command(about = "An XMPie uStore storefront REST API test double on 127.0.0.1")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the CA certificate (PEM) that the core must trust.
    #[arg(long)]
    ca_out: PathBuf,
    /// A fixed delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let double =
        UstoreDouble::builder().port(args.port).latency(Duration::from_millis(args.latency_ms)).start().await?;
    double.write_ca(&args.ca_out)?;
    let ready = serde_json::json!({"ready": {
        "base_url": double.base_url(),
        "storefront_url": double.storefront_url(),
        "store_id": double.store_id(),
        "ca_file": args.ca_out,
    }});
    println!("{ready}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
