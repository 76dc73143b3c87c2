//! A service-to-service caller over mutual TLS: last month's usage report, counted by the core
//! and printed as a table of events per kind and product.
//!
//! ```sh
//! cargo run -p podconnect-client --example usage_report -- \
//!   https://core.internal:50443 ca.pem reporter.pem reporter.key [YYYY-MM]
//! ```
//!
//! The client certificate must be one the core lists with `--operator-cert-name`; no token is
//! needed. Without a month, the previous calendar month (UTC) is reported.

use podconnect_client::{Client, Grouping, Named as _, UsageQuery, parse_time, rfc3339};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, ca, cert, key, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: usage_report <endpoint> <ca.pem> <client.pem> <client.key> [YYYY-MM]");
    };
    let (start, end) = month_range(rest.first().map(String::as_str))?;

    let client = Client::builder(endpoint)
        .ca_file(ca)
        .client_certificate(cert, key)
        .user_agent("usage-report-example/1.0")
        .connect()
        .await?;
    let query = UsageQuery {
        start: Some(start),
        end: Some(end),
        kinds: Vec::new(),
        group_by: vec![Grouping::Kind, Grouping::Product],
    };
    let report = client.count_usage(&query).await?;

    println!("usage from {} to {}", rfc3339(start), rfc3339(end));
    for row in &report.rows {
        let kind = row.kind.map_or("?", |k| k.name());
        let product = row.product_id.as_deref().filter(|p| !p.is_empty()).unwrap_or("-");
        println!("{kind:<20} {product:<28} {:>8}", row.count);
    }
    println!("{:<49} {:>8}", "total", report.total);
    Ok(())
}

/// The first instants of the given month ("2026-11") and of the one after it; by default the
/// month before the current one.
fn month_range(month: Option<&str>) -> anyhow::Result<(std::time::SystemTime, std::time::SystemTime)> {
    let (year, month) = match month {
        Some(text) => {
            let (y, m) = text.split_once('-').ok_or_else(|| anyhow::anyhow!("write the month as YYYY-MM"))?;
            (y.parse::<i32>()?, m.parse::<u32>()?)
        }
        None => {
            let today = rfc3339(std::time::SystemTime::now());
            let (y, m): (i32, u32) = (today[0..4].parse()?, today[5..7].parse()?);
            if m == 1 { (y - 1, 12) } else { (y, m - 1) }
        }
    };
    let next = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    let at =
        |(y, m): (i32, u32)| parse_time(&format!("{y:04}-{m:02}-01")).ok_or_else(|| anyhow::anyhow!("no such month"));
    Ok((at((year, month))?, at(next)?))
}
