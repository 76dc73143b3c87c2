//! A headless print to a named device, with no person at the printer: a session on the device,
//! a PDF product made print-ready, the job submitted and followed until it ends.
//!
//! ```sh
//! cargo run -p podconnect-client --example print_pdf -- \
//!   https://127.0.0.1:50443 .data/podconnect/tls/dev-ca.pem mfd-lobby fire-action-notice [copies]
//! ```
//!
//! What it prints is a static product: a PDF the storefront holds, printed as is. The
//! podconnect.v1 contract has no call that uploads a local PDF (SubmitJob takes only a print file
//! or a draft of the session), so a file from this machine cannot be printed yet.

use std::collections::BTreeMap;

use futures::StreamExt as _;
use podconnect_client::{Client, Document, JobState, PrintOptions, ProductKind};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, ca, device, product, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: print_pdf <endpoint> <ca.pem> <device-id> <static-product-id> [copies]");
    };
    let copies: u32 = rest.first().map(|c| c.parse()).transpose()?.unwrap_or(1);

    let client = Client::builder(endpoint).ca_file(ca).user_agent("print-pdf-example/1.0").connect().await?;
    client.start_session(device).await?;
    let result = print(&client, product, copies).await;
    // The session goes whatever happened: it holds the print file until closed.
    client.close_session().await?;
    let state = result?;
    anyhow::ensure!(state == JobState::Completed, "the job ended {}", state.name());
    Ok(())
}

async fn print(client: &Client, product_id: &str, copies: u32) -> anyhow::Result<JobState> {
    let product = client.get_product(product_id).await?;
    anyhow::ensure!(product.kind == ProductKind::Static, "{product_id} is customizable, not a PDF printed as is");
    let draft = client.create_draft(product_id, 0, &BTreeMap::new()).await?.draft;
    let (file, _) = client.finalize_draft(&draft.id).await?;
    println!("{}: {} pages, sha256 {}", product.display_name, file.page_count, file.sha256);

    let options = PrintOptions { copies, ..PrintOptions::default() };
    let printer = client.printer().await?;
    printer.check(&options).map_err(anyhow::Error::msg)?;
    let job = client.submit_job(&Document::File(file.file_id), &options).await?.job;
    println!("job {} on {}", job.id, printer.display_name);

    let mut watch = client.watch_job(&job.id);
    let mut last = job.state;
    while let Some(state) = watch.next().await {
        let state = state?;
        println!("  {} {}", state.state.name(), state.state_reasons.join(","));
        last = state.state;
    }
    Ok(last)
}
