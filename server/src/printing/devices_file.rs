//! The devices file: printers registered from configuration at start-up (the embedded default's
//! way to name its devices), so a print shop can describe its fleet without calling DeviceService.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::domain::devices::{DeliveryMode, Device, PrinterUri, parse_pin};
use crate::domain::ids::DeviceId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DevicesFile {
    #[serde(default, rename = "device")]
    devices: Vec<DeviceEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEntry {
    id: String,
    display_name: String,
    #[serde(default)]
    model: String,
    delivery: String,
    printer_uri: Option<String>,
    pinned_certificate_sha256: Option<String>,
    #[serde(default)]
    location: String,
}

/// Reads and checks a devices file; an error names the file and the device at fault.
pub fn load(path: &Path) -> anyhow::Result<Vec<Device>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the devices file {}", path.display()))?;
    let file: DevicesFile =
        toml::from_str(&text).with_context(|| format!("invalid devices file {}", path.display()))?;
    let mut devices = Vec::with_capacity(file.devices.len());
    for entry in file.devices {
        let at = format!("{}: device \"{}\"", path.display(), entry.id);
        let id = DeviceId::parse(&entry.id).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        let delivery = DeliveryMode::from_name(&entry.delivery).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        let printer_uri = entry.printer_uri.as_deref().map(PrinterUri::parse).transpose();
        let printer_uri = printer_uri.map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        let pin = entry.pinned_certificate_sha256.as_deref().map(parse_pin).transpose();
        let pin = pin.map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        if devices.iter().any(|d: &Device| d.id == id) {
            bail!("{at}: declared twice");
        }
        let device = Device {
            id,
            display_name: entry.display_name,
            model: entry.model,
            delivery,
            printer_uri,
            pinned_certificate_sha256: pin,
            location: entry.location,
            capabilities: None,
            registered_at: None,
            updated_at: None,
        };
        device.check().map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
        devices.push(device);
    }
    Ok(devices)
}
