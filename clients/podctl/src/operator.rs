//! The operators' commands: the device registry (with import and export of a devices file in the
//! core's `--devices` format), usage counts as a table, CSV or JSON, SSO key rotation and rewrap,
//! and the health of a core and of a weblet gateway.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use podconnect_client::{Code, DeliveryMode, Device, Grouping, Named, UsageKind, UsageQuery, parse_time};
use serde::{Deserialize, Serialize};

use crate::output::{self, Failure};
use crate::shop::Context;

#[derive(Subcommand, Debug)]
pub(crate) enum DevicesCommand {
    /// List every registered device.
    List,
    /// Show one device.
    Show {
        /// The device's id.
        id: String,
    },
    /// Register a device.
    Add(DeviceFields),
    /// Change a device's fields (those given).
    Update(DeviceFields),
    /// Remove a device from the registry.
    Remove {
        /// The device's id.
        id: String,
    },
    /// Register or update every device of a devices file (TOML `[[device]]`, or JSON).
    Import {
        /// The devices file.
        file: PathBuf,
    },
    /// Write every device as a devices file (TOML; JSON with --json).
    Export {
        /// The file to write (default: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct DeviceFields {
    /// The device's id.
    id: String,
    /// Its name for operators and the print screen.
    #[arg(long)]
    name: Option<String>,
    /// Make and model.
    #[arg(long)]
    model: Option<String>,
    /// ipp_push, device_pull or spool_folder.
    #[arg(long)]
    delivery: Option<String>,
    /// The printer's IPP URI with its port ("" removes it).
    #[arg(long)]
    printer_uri: Option<String>,
    /// SHA-256 of an ipps printer's certificate ("" removes it).
    #[arg(long)]
    pin: Option<String>,
    /// Where it stands.
    #[arg(long)]
    location: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Args, Debug)]
pub(crate) struct UsageArgs {
    /// Events at or after this time: YYYY-MM-DD (UTC) or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    from: Option<String>,
    /// Events before this time.
    #[arg(long)]
    to: Option<String>,
    /// Only these kinds, e.g. job_submitted (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    kind: Vec<String>,
    /// Group by kind, product, day and/or device_model, in this order.
    #[arg(long, value_delimiter = ',')]
    group_by: Vec<String>,
    /// How to print the counts (--json means json).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Subcommand, Debug)]
pub(crate) enum SsoCommand {
    /// Make a new key-encryption key version the one that seals.
    Rotate,
    /// Seal every stored credential again under the newest key version.
    Rewrap,
}

#[derive(Args, Debug)]
pub(crate) struct HealthArgs {
    /// Also check a weblet gateway's /healthz, e.g. https://localhost:8443 (default: the
    /// profile's `gateway`).
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
}

/// A devices file: the core's `--devices` format.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicesFile {
    #[serde(default)]
    device: Vec<Device>,
}

fn delivery(value: &str) -> anyhow::Result<DeliveryMode> {
    DeliveryMode::from_name(value).ok_or_else(|| {
        Failure::new(Code::InvalidArgument, format!("--delivery {value:?}: use ipp_push, device_pull or spool_folder"))
            .into()
    })
}

fn device_rows(devices: &[Device]) -> Vec<Vec<String>> {
    devices
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.delivery.name().into(),
                d.model.clone(),
                d.printer_uri.clone().unwrap_or_default(),
                d.location.clone(),
                d.display_name.clone(),
            ]
        })
        .collect()
}

const DEVICE_HEADER: &[&str] = &["ID", "DELIVERY", "MODEL", "PRINTER", "LOCATION", "NAME"];

fn show_device(ctx: &Context, device: &Device) -> anyhow::Result<()> {
    if ctx.json {
        output::json(&serde_json::json!({ "device": device }))
    } else {
        output::table(DEVICE_HEADER, &device_rows(std::slice::from_ref(device)));
        Ok(())
    }
}

pub(crate) async fn devices(ctx: &Context, command: DevicesCommand) -> anyhow::Result<Code> {
    let client = &ctx.client;
    match command {
        DevicesCommand::List => {
            let devices = client.list_devices().await?;
            if ctx.json {
                output::json(&serde_json::json!({ "devices": devices }))?;
            } else {
                output::table(DEVICE_HEADER, &device_rows(&devices));
            }
        }
        DevicesCommand::Show { id } => show_device(ctx, &client.get_device(&id).await?)?,
        DevicesCommand::Add(fields) => {
            let Some(name) = fields.name else {
                return Err(Failure::new(Code::InvalidArgument, "a new device needs --name").into());
            };
            let device = Device {
                id: fields.id,
                display_name: name,
                model: fields.model.unwrap_or_default(),
                delivery: delivery(fields.delivery.as_deref().unwrap_or("spool_folder"))?,
                printer_uri: fields.printer_uri.filter(|u| !u.is_empty()),
                pinned_certificate_sha256: fields.pin.filter(|p| !p.is_empty()),
                location: fields.location.unwrap_or_default(),
            };
            show_device(ctx, &client.register_device(&device).await?)?;
        }
        DevicesCommand::Update(fields) => {
            let mut device = client.get_device(&fields.id).await?;
            if let Some(name) = fields.name {
                device.display_name = name;
            }
            if let Some(model) = fields.model {
                device.model = model;
            }
            if let Some(mode) = fields.delivery {
                device.delivery = delivery(&mode)?;
            }
            if let Some(uri) = fields.printer_uri {
                device.printer_uri = Some(uri).filter(|u| !u.is_empty());
            }
            if let Some(pin) = fields.pin {
                device.pinned_certificate_sha256 = Some(pin).filter(|p| !p.is_empty());
            }
            if let Some(location) = fields.location {
                device.location = location;
            }
            show_device(ctx, &client.update_device(&device).await?)?;
        }
        DevicesCommand::Remove { id } => {
            client.delete_device(&id).await?;
            if ctx.json {
                output::json(&serde_json::json!({ "removed": id }))?;
            } else {
                output::line(&format!("removed {id}"));
            }
        }
        DevicesCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read the devices file {}", file.display()))?;
            let parsed: DevicesFile = if file.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
                serde_json::from_str(&text)
                    .with_context(|| format!("the devices file {} is not valid", file.display()))?
            } else {
                toml::from_str(&text).with_context(|| format!("the devices file {} is not valid", file.display()))?
            };
            let (mut added, mut updated) = (Vec::new(), Vec::new());
            for device in &parsed.device {
                match client.register_device(device).await {
                    Ok(_) => added.push(device.id.clone()),
                    Err(error) if error.code() == Code::AlreadyExists => {
                        client.update_device(device).await.map_err(|e| device_failure(&device.id, &e))?;
                        updated.push(device.id.clone());
                    }
                    Err(error) => return Err(device_failure(&device.id, &error).into()),
                }
            }
            if ctx.json {
                output::json(&serde_json::json!({ "added": added, "updated": updated }))?;
            } else {
                let rows: Vec<Vec<String>> = added
                    .iter()
                    .map(|id| vec![id.clone(), "added".into()])
                    .chain(updated.iter().map(|id| vec![id.clone(), "updated".into()]))
                    .collect();
                output::table(&["ID", "RESULT"], &rows);
            }
        }
        DevicesCommand::Export { output: file } => {
            let devices = DevicesFile { device: client.list_devices().await? };
            let text =
                if ctx.json { serde_json::to_string_pretty(&devices)? + "\n" } else { toml::to_string(&devices)? };
            match file {
                Some(file) => {
                    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?
                }
                None => print_raw(&text),
            }
        }
    }
    Ok(Code::Ok)
}

/// A failure about one device of a file, naming it.
fn device_failure(id: &str, error: &podconnect_client::Error) -> Failure {
    Failure::new(error.code(), format!("device {id:?}: {}", error.message()))
}

fn print_raw(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn time_flag(flag: &str, value: Option<&str>) -> anyhow::Result<Option<std::time::SystemTime>> {
    match value {
        None => Ok(None),
        Some(text) => parse_time(text).map(Some).ok_or_else(|| {
            Failure::new(Code::InvalidArgument, format!("{flag} {text:?}: write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"))
                .into()
        }),
    }
}

fn names<T: Named + PartialEq>(flag: &str, values: &[String]) -> anyhow::Result<Vec<T>> {
    values
        .iter()
        .map(|v| {
            T::from_name(v.trim()).ok_or_else(|| {
                let known: Vec<&str> = T::NAMES.iter().map(|(n, _)| *n).collect();
                Failure::new(Code::InvalidArgument, format!("{flag} {v:?}: use one of {}", known.join(", "))).into()
            })
        })
        .collect()
}

pub(crate) async fn usage(ctx: &Context, args: UsageArgs) -> anyhow::Result<Code> {
    let query = UsageQuery {
        start: time_flag("--from", args.from.as_deref())?,
        end: time_flag("--to", args.to.as_deref())?,
        kinds: names::<UsageKind>("--kind", &args.kind)?,
        group_by: names::<Grouping>("--group-by", &args.group_by)?,
    };
    let report = ctx.client.count_usage(&query).await?;
    let format = if ctx.json { Format::Json } else { args.format };
    let header: Vec<&str> = query.group_by.iter().map(|g| g.name()).chain(["count"]).collect();
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| {
            let mut cells: Vec<String> = query
                .group_by
                .iter()
                .map(|g| match g {
                    Grouping::Kind => row.kind.map(|k| k.name().to_owned()).unwrap_or_default(),
                    Grouping::Product => row.product_id.clone().unwrap_or_default(),
                    Grouping::Day => row.day.clone().unwrap_or_default(),
                    Grouping::DeviceModel => row.device_model.clone().unwrap_or_default(),
                })
                .collect();
            cells.push(row.count.to_string());
            cells
        })
        .collect();
    match format {
        Format::Json => output::json(&report)?,
        Format::Csv => {
            let mut text = header.join(",") + "\n";
            for row in &rows {
                text.push_str(&row.iter().map(|c| output::csv_field(c)).collect::<Vec<_>>().join(","));
                text.push('\n');
            }
            print_raw(&text);
        }
        Format::Table => {
            let upper: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
            if !rows.is_empty() {
                output::table(&upper.iter().map(String::as_str).collect::<Vec<_>>(), &rows);
            }
            output::line(&format!("total {}", report.total));
        }
    }
    Ok(Code::Ok)
}

pub(crate) async fn sso(ctx: &Context, command: SsoCommand) -> anyhow::Result<Code> {
    match command {
        SsoCommand::Rotate => {
            let version = ctx.client.rotate_sso_key().await?;
            if ctx.json {
                output::json(&version)?;
            } else {
                output::line(&format!("now sealing with key version {}", version.key_version));
            }
        }
        SsoCommand::Rewrap => {
            let report = ctx.client.rewrap_sso().await?;
            if ctx.json {
                output::json(&report)?;
            } else {
                output::line(&format!(
                    "key version {}: {} rewrapped, {} already current, {} failed",
                    report.key_version, report.rewrapped, report.already_current, report.failed
                ));
            }
            if report.failed > 0 {
                return Ok(Code::DataLoss);
            }
        }
    }
    Ok(Code::Ok)
}

pub(crate) async fn health(ctx: &Context, args: HealthArgs) -> anyhow::Result<Code> {
    let core = match ctx.client.health().await {
        Ok(true) => "SERVING".to_owned(),
        Ok(false) => "NOT_SERVING".to_owned(),
        Err(error) => podconnect_client::code_name(error.code()).to_owned(),
    };
    let gateway_url = args.gateway.or(ctx.settings.gateway.clone());
    let gateway = match &gateway_url {
        Some(url) => Some(gateway_health(url, ctx.settings.ca.as_deref()).await),
        None => None,
    };
    if ctx.json {
        output::json(&serde_json::json!({ "core": core, "gateway": gateway }))?;
    } else {
        output::line(&format!("core     {}  {core}", ctx.settings.endpoint));
        if let (Some(url), Some(state)) = (&gateway_url, &gateway) {
            output::line(&format!("gateway  {url}  {state}"));
        }
    }
    let serving = |s: &str| s == "SERVING" || s.starts_with("DEGRADED");
    if serving(&core) && gateway.as_deref().is_none_or(serving) { Ok(Code::Ok) } else { Ok(Code::Unavailable) }
}

/// The first word of the gateway's `/healthz` answer ("SERVING", "DEGRADED", …), or what kept
/// it from answering.
async fn gateway_health(url: &str, ca: Option<&std::path::Path>) -> String {
    match fetch_healthz(url, ca).await {
        Ok(text) => text,
        Err(error) => format!("UNAVAILABLE ({error:#})"),
    }
}

async fn fetch_healthz(url: &str, ca: Option<&std::path::Path>) -> anyhow::Result<String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("cannot read the CA file {}", path.display()))?
            {
                roots.add(cert?)?;
            }
        }
        None => anyhow::bail!("give --ca for the gateway's certificate"),
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = http.get(format!("{}/healthz", url.trim_end_matches('/'))).send().await?;
    let status = answer.status();
    let text = answer.text().await?;
    let word = text.split(':').next().unwrap_or("").trim().to_owned();
    Ok(if word.is_empty() { format!("HTTP {status}") } else { word })
}
