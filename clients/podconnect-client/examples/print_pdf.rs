//! A headless print of a local PDF to a named device, with no person at the printer: a session on
//! the device, the file uploaded as a print file, the job submitted and followed until it ends.
//!
//! ```sh
//! cargo run -p podconnect-client --example print_pdf -- \
//!   https://127.0.0.1:50443 .data/podconnect/tls/dev-ca.pem mfd-lobby flyer.pdf [copies]
//! ```

use futures::StreamExt as _;
use podconnect_client::{Client, Document, JobState, PrintOptions};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, ca, device, pdf, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: print_pdf <endpoint> <ca.pem> <device-id> <file.pdf> [copies]");
    };
    let copies: u32 = rest.first().map(|c| c.parse()).transpose()?.unwrap_or(1);

    let client = Client::builder(endpoint).ca_file(ca).user_agent("print-pdf-example/1.0").connect().await?;
    client.start_session(device).await?;
    let result = print(&client, pdf, copies).await;
    // The session goes whatever happened: it holds the uploaded file until closed.
    client.close_session().await?;
    let state = result?;
    anyhow::ensure!(state == JobState::Completed, "the job ended {}", state.name());
    Ok(())
}

async fn print(client: &Client, pdf: &str, copies: u32) -> anyhow::Result<JobState> {
    // Checked before the upload, so a bad option costs no transfer.
    let options = PrintOptions { copies, ..PrintOptions::default() };
    let printer = client.printer().await?;
    printer.check(&options).map_err(anyhow::Error::msg)?;

    let file = client.upload_print_file_from(pdf).await?;
    println!("{pdf}: {} pages, sha256 {}", file.page_count, file.sha256);
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
