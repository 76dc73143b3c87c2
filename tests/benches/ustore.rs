//! Benchmark of the uStore backend against the test double at a fixed upstream latency (20 ms per
//! answer, `BENCH_USTORE_LATENCY_MS`): for each catalog call, its time through the release core
//! with the cache off and warm, how many uStore calls it made, and the core's overhead (the call's
//! time less that many direct calls to the double); and the time from a form change (UpdateDraft)
//! to the new preview (RenderPreview). Run `cargo build --release -p server` first, then
//! `cargo bench -p tests --bench ustore`. Loopback only; `BENCH_USTORE_CALLS` (calls per row,
//! default 50).

use std::time::{Duration, Instant};

use anyhow::Context;
use proto::v1 as pb;
use proto::v1::customization_service_client::CustomizationServiceClient;
use tests::client::{authed, catalog, start_session};
use tests::core::TestCore;
use tests::ustore::UstoreDouble;
use tests::ustore::fixtures::{CAT_MARKETING, PROD_BUSINESS_CARD};
use tonic::transport::Channel;

fn main() -> std::process::ExitCode {
    tests::bench::main("ustore", run)
}

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(raw) => raw.trim().parse().with_context(|| format!("{name}={raw:?} is not a number")),
        Err(_) => Ok(default),
    }
}

async fn run() -> anyhow::Result<()> {
    let calls = env_number("BENCH_USTORE_CALLS", 50)? as usize;
    let latency = Duration::from_millis(env_number("BENCH_USTORE_LATENCY_MS", 20)?);
    let binary = tests::core::server_binary()?;
    let double = UstoreDouble::builder().latency(latency).start().await?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("ustore-ca.pem");
    double.write_ca(&ca)?;
    println!(
        "podconnect uStore benchmark: double at {} ms per answer, {calls} calls per row, server {}",
        latency.as_millis(),
        binary.display()
    );

    // One direct answer of the double: the upstream's own time, measured the same way.
    let mut direct = Vec::new();
    let token = double.controls().token_for("ana@example.com").context("the double's token for ana")?;
    for _ in 0..calls {
        let started = Instant::now();
        double.call(http::Method::GET, "v1/store", Some(&token), None).await?;
        direct.push(started.elapsed());
    }
    let upstream = quantile(&mut direct, 0.5);
    report("direct call to the double", &mut direct, None);

    for (label, ttl) in [("cache off", "0s"), ("cache warm", "10m")] {
        let config = dir.path().join(format!("core-{ttl}.toml"));
        std::fs::write(&config, format!("[storefront.ustore]\ncache_ttl = \"{ttl}\"\n"))?;
        let core = TestCore::builder()
            .binary(&binary)
            .config_file(&config)
            .ustore(&double.base_url(), double.store_id(), &double.storefront_url(), &ca)
            .spawn()
            .await?;
        let channel = core.channel().await;
        let token = start_session(&channel, "bench-mfd").await;
        println!("{label}:");
        let controls = double.controls();
        for (name, row) in [
            ("ListCategories", Row::Categories),
            ("ListProducts (a category)", Row::Products),
            ("GetProduct", Row::Product),
            ("GetThumbnail", Row::Thumbnail),
        ] {
            row.call(&channel, &token).await?; // warms the cache (and the connections)
            controls.reset_counts();
            let mut times = Vec::with_capacity(calls);
            for _ in 0..calls {
                let started = Instant::now();
                row.call(&channel, &token).await?;
                times.push(started.elapsed());
            }
            let per_call = controls.counts().values().sum::<u64>() as f64 / calls as f64;
            report(name, &mut times, Some((per_call, upstream)));
        }
        if ttl == "0s" {
            preview_after_change(&channel, &token, calls.min(20)).await?;
        }
    }
    Ok(())
}

/// UpdateDraft (a changed name) then RenderPreview, as the weblet does after a keystroke pause.
async fn preview_after_change(channel: &Channel, token: &str, rounds: usize) -> anyhow::Result<()> {
    let mut customize = CustomizationServiceClient::new(channel.clone()).max_decoding_message_size(16 << 20);
    let values = [("Name".to_string(), "Anna Keller".to_string())].into();
    let request = pb::CreateDraftRequest { product_id: PROD_BUSINESS_CARD.into(), quantity: 0, values };
    let draft = customize.create_draft(authed(token, request)).await?.into_inner().draft.context("a draft")?;
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let started = Instant::now();
        let values = [("JobTitle".to_string(), format!("Architect {round}"))].into();
        let update = pb::UpdateDraftRequest { draft_id: draft.id.clone(), values, ..Default::default() };
        customize.update_draft(authed(token, update)).await?;
        let preview = pb::RenderPreviewRequest { draft_id: draft.id.clone(), width_px: 800, page_numbers: vec![1] };
        customize.render_preview(authed(token, preview)).await?;
        times.push(started.elapsed());
    }
    report("form change to new preview (page 1)", &mut times, None);
    Ok(())
}

/// The catalog calls measured.
#[derive(Clone, Copy)]
enum Row {
    Categories,
    Products,
    Product,
    Thumbnail,
}

impl Row {
    async fn call(self, channel: &Channel, token: &str) -> anyhow::Result<()> {
        let mut client = catalog(channel);
        match self {
            Row::Categories => drop(client.list_categories(authed(token, pb::ListCategoriesRequest {})).await?),
            Row::Products => {
                let request =
                    pb::ListProductsRequest { category_id: CAT_MARKETING.into(), page_size: 10, ..Default::default() };
                drop(client.list_products(authed(token, request)).await?)
            }
            Row::Product => {
                let request = pb::GetProductRequest { product_id: PROD_BUSINESS_CARD.into() };
                drop(client.get_product(authed(token, request)).await?)
            }
            Row::Thumbnail => {
                let request = pb::GetThumbnailRequest { product_id: PROD_BUSINESS_CARD.into() };
                drop(client.get_thumbnail(authed(token, request)).await?)
            }
        }
        Ok(())
    }
}

fn quantile(times: &mut [Duration], q: f64) -> Duration {
    times.sort();
    times[((times.len() as f64 * q) as usize).min(times.len() - 1)]
}

/// One row; with `(uStore calls per call, one upstream answer)`, also the core's overhead: the
/// call's time less that many upstream answers.
fn report(what: &str, times: &mut [Duration], upstream: Option<(f64, Duration)>) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99) = (ms(quantile(times, 0.5)), ms(quantile(times, 0.99)));
    match upstream {
        Some((per_call, one)) => {
            let spent = per_call * ms(one);
            println!(
                "  {what:<34} p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  uStore calls {per_call:>4.1}  overhead p50 {:>6.1} ms  p99 {:>6.1} ms",
                p50 - spent,
                p99 - spent
            );
        }
        None => println!("  {what:<34} p50 {p50:>7.1} ms  p99 {p99:>7.1} ms"),
    }
}
