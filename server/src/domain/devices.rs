//! Devices in one place: the devices people print on (`Device`, its `DeliveryMode` and the
//! names configuration uses for it, its `PrinterUri` and certificate pin), what their printers
//! can do (`Capabilities`), where they are registered (`DeviceStore`), and `Devices`, the
//! operators' registry service that applies every rule before a device is stored.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::domain::error::{CoreError, CoreResult};
use crate::domain::ids::DeviceId;

/// How a device's printer gets its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryMode {
    /// The core sends the PDF to the printer over IPP/IPPS (Validate-Job, Print-Job).
    IppPush,
    /// The printer fetches the PDF from a one-time URL (Xerox EIP print-from-URL, IPP Print-URI).
    DevicePull,
    /// The PDF is written to a folder; the embedded default, so the flow works with no printer.
    SpoolFolder,
}

impl DeliveryMode {
    /// Every mode, in the order messages list them.
    pub const ALL: [DeliveryMode; 3] = [DeliveryMode::IppPush, DeliveryMode::DevicePull, DeliveryMode::SpoolFolder];

    /// The mode's name in configuration files and the device registry.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryMode::IppPush => "ipp_push",
            DeliveryMode::DevicePull => "device_pull",
            DeliveryMode::SpoolFolder => "spool_folder",
        }
    }

    /// The mode a name stands for; the error lists the names there are.
    pub fn from_name(name: &str) -> CoreResult<DeliveryMode> {
        DeliveryMode::ALL.into_iter().find(|mode| mode.name() == name).ok_or_else(|| {
            CoreError::InvalidArgument(format!("delivery \"{name}\" must be ipp_push, device_pull or spool_folder"))
        })
    }
}

/// A registered device (the MFD the weblet runs on). Holds no personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub display_name: String,
    /// The printer model, e.g. "Xerox AltaLink C8170"; usage events name it.
    pub model: String,
    pub delivery: DeliveryMode,
    /// `ipp://host:port/path` or `ipps://host:port/path` (always with an explicit port).
    /// For device pull with IPP Print-URI, the printer to send Print-URI to.
    pub printer_uri: Option<PrinterUri>,
    /// SHA-256 of the printer's TLS certificate (DER), pinned for ipps.
    pub pinned_certificate_sha256: Option<[u8; 32]>,
    pub location: String,
    /// What the printer can do, when it cannot be asked (pull and spool devices).
    pub capabilities: Option<Capabilities>,
    /// When the device was registered and last changed; set by the registry.
    pub registered_at: Option<SystemTime>,
    pub updated_at: Option<SystemTime>,
}

/// The longest printer URI accepted.
const MAX_URI_CHARS: usize = 1024;

impl Device {
    /// The rules every registered device keeps (the contract's `Device`): checked once, for
    /// DeviceService and the devices file alike. The error names the field.
    pub fn check(&self) -> CoreResult<()> {
        let invalid = |message: String| Err(CoreError::InvalidArgument(message));
        let chars = |s: &str| s.chars().count();
        if self.display_name.trim().is_empty() || chars(&self.display_name) > 100 {
            return invalid("display_name must be 1 to 100 characters".into());
        }
        if chars(&self.model) > 100 {
            return invalid("model must be at most 100 characters".into());
        }
        if chars(&self.location) > 200 {
            return invalid("location must be at most 200 characters".into());
        }
        match (self.delivery, &self.printer_uri) {
            (DeliveryMode::IppPush, None) => {
                return invalid("an IPP push device needs printer_uri, e.g. ipp://printer:631/ipp/print".into());
            }
            (DeliveryMode::SpoolFolder, Some(_)) => {
                return invalid("printer_uri must be empty for a spool folder device".into());
            }
            _ => {}
        }
        if self.pinned_certificate_sha256.is_some() && !self.printer_uri.as_ref().is_some_and(PrinterUri::is_secure) {
            return invalid("pinned_certificate_sha256 is only for an ipps:// printer_uri".into());
        }
        if let Some(capabilities) = &self.capabilities {
            capabilities.check()?;
        }
        Ok(())
    }
}

/// A printer's address: `ipp://host:port/path` or `ipps://host:port/path`, always with the port
/// (ipps would otherwise silently mean 443 to some clients, where RFC 7472 says 631), without
/// user info, query or fragment. Checked once, here; whoever holds one can rely on its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterUri {
    raw: String,
    secure: bool,
    /// Where the authority (`host:port`) ends in `raw`.
    authority_end: usize,
}

impl PrinterUri {
    pub fn parse(raw: &str) -> CoreResult<PrinterUri> {
        let bad = || {
            CoreError::InvalidArgument(format!(
                "printer_uri \"{}\" must look like ipp://host:port/path or ipps://host:port/path, with the port and \
                 without user info, query or fragment (at most {MAX_URI_CHARS} characters)",
                raw.chars().take(80).collect::<String>()
            ))
        };
        if raw.chars().count() > MAX_URI_CHARS || raw.contains(['?', '#']) || raw.chars().any(char::is_whitespace) {
            return Err(bad());
        }
        let (secure, rest) = match (raw.strip_prefix("ipps://"), raw.strip_prefix("ipp://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return Err(bad()),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || host.contains(['[', ']']) && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(bad());
        }
        port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        let authority_end = raw.len() - rest.len() + authority.len();
        Ok(PrinterUri { raw: raw.to_owned(), secure, authority_end })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// `ipps`: TLS, with the printer's certificate pinned.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        let start = if self.secure { "ipps://".len() } else { "ipp://".len() };
        &self.raw[start..self.authority_end]
    }

    /// The path on the printer, `/` when the URI names none.
    pub fn path(&self) -> &str {
        match &self.raw[self.authority_end..] {
            "" => "/",
            path => path,
        }
    }

    /// The same printer as the `http://` or `https://` URL its IPP requests go to.
    pub fn http_url(&self) -> String {
        format!("{}://{}{}", if self.secure { "https" } else { "http" }, self.authority(), self.path())
    }
}

impl std::fmt::Display for PrinterUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

/// A certificate pin as the contract writes it: 64 lowercase hex digits.
pub fn parse_pin(raw: &str) -> CoreResult<[u8; 32]> {
    let well_formed = raw.len() == 64 && raw.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    well_formed.then(|| hex::decode(raw).ok().and_then(|b| <[u8; 32]>::try_from(b).ok())).flatten().ok_or_else(|| {
        CoreError::InvalidArgument(
            "pinned_certificate_sha256 must be 64 lowercase hex digits (the SHA-256 of the certificate's DER), e.g. \
             from: openssl x509 -in cert.pem -outform der | sha256sum"
                .into(),
        )
    })
}

/// Which sides of the sheet are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sides {
    OneSided,
    TwoSidedLongEdge,
    TwoSidedShortEdge,
}

impl Sides {
    /// The IPP keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Sides::OneSided => "one-sided",
            Sides::TwoSidedLongEdge => "two-sided-long-edge",
            Sides::TwoSidedShortEdge => "two-sided-short-edge",
        }
    }

    /// The sides an IPP keyword names, if any.
    pub fn from_keyword(keyword: &str) -> Option<Sides> {
        [Sides::OneSided, Sides::TwoSidedLongEdge, Sides::TwoSidedShortEdge]
            .into_iter()
            .find(|s| s.keyword() == keyword)
    }
}

/// Colour or black and white.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColorMode {
    Color,
    Monochrome,
}

impl ColorMode {
    /// The IPP `print-color-mode` keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            ColorMode::Color => "color",
            ColorMode::Monochrome => "monochrome",
        }
    }

    /// The colour mode an IPP `print-color-mode` keyword names, if any.
    pub fn from_keyword(keyword: &str) -> Option<ColorMode> {
        [ColorMode::Color, ColorMode::Monochrome].into_iter().find(|c| c.keyword() == keyword)
    }
}

/// A paper size the printer has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// PWG 5101.1 self-describing name, e.g. `iso_a4_210x297mm`.
    pub keyword: String,
    pub display_name: String,
    pub width_mm: f64,
    pub height_mm: f64,
}

/// Media loaded in the printer now, and the tray it is in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadyMedia {
    pub media: Media,
    /// IPP `media-source`, e.g. `tray-1`; `None` when the printer does not say.
    pub source: Option<String>,
    /// How far from each edge the printer can print (the largest of its four margins).
    pub margin_mm: Option<f64>,
}

/// What a printer can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    pub media: Vec<Media>,
    pub default_media: Option<String>,
    pub sides: Vec<Sides>,
    pub color_modes: Vec<ColorMode>,
    /// Largest `copies` value accepted.
    pub copies_max: u32,
    /// MIME types the printer accepts.
    pub document_formats: Vec<String>,
    /// Whether the printer takes jobs now, and if not, why (IPP `printer-state-reasons`).
    pub accepting_jobs: bool,
    pub state_reasons: Vec<String>,
    /// Used when a job names none; `None`: one-sided, and the first colour mode.
    pub default_sides: Option<Sides>,
    pub default_color: Option<ColorMode>,
    /// Loaded now (imposition picks its sheet from these); empty = not known.
    pub media_ready: Vec<ReadyMedia>,
}

impl Capabilities {
    /// Described capabilities make sense: at least one copy, defaults among the supported
    /// values, and PDF among the formats (print files are PDF).
    pub fn check(&self) -> CoreResult<()> {
        let invalid = |message: &str| Err(CoreError::InvalidArgument(format!("capabilities: {message}")));
        if self.copies_max < 1 {
            return invalid("copies_max must be at least 1");
        }
        if let Some(media) = &self.default_media
            && !self.media.iter().any(|m| &m.keyword == media)
        {
            return invalid("media_default must be one of media_supported");
        }
        if self.default_sides.is_some_and(|s| !self.sides.contains(&s)) {
            return invalid("sides_default must be one of sides_supported");
        }
        if self.default_color.is_some_and(|c| !self.color_modes.contains(&c)) {
            return invalid("color_mode_default must be one of color_modes_supported");
        }
        if !self.document_formats.iter().any(|f| f == "application/pdf") {
            return invalid("document_formats_supported must contain application/pdf");
        }
        for ready in &self.media_ready {
            let sized = |mm: f64| mm.is_finite() && mm > 0.0 && mm <= 5_000.0;
            if !(sized(ready.media.width_mm) && sized(ready.media.height_mm)) {
                return invalid("every media_ready entry needs its width_mm and height_mm (up to 5000 mm)");
            }
            if ready.margin_mm.is_some_and(|m| !(0.0..=30.0).contains(&m)) {
                return invalid("a media_ready margin_mm must be between 0 and 30");
            }
        }
        Ok(())
    }

    /// The sides a job gets when it names none.
    pub fn sides_default(&self) -> Sides {
        self.default_sides.unwrap_or(Sides::OneSided)
    }

    /// The colour mode a job gets when it names none.
    pub fn color_default(&self) -> ColorMode {
        self.default_color.or(self.color_modes.first().copied()).unwrap_or(ColorMode::Color)
    }
}

/// Where devices are registered (the persistent store). Operators manage it.
#[async_trait]
pub trait DeviceStore: Send + Sync + 'static {
    async fn get(&self, id: &DeviceId) -> CoreResult<Option<Device>>;
    /// Devices ordered by id, `limit` of them after `after` (exclusive).
    async fn list(&self, after: Option<&DeviceId>, limit: u32) -> CoreResult<Vec<Device>>;
    /// Adds a device; `AlreadyExists` when the id is taken.
    async fn insert(&self, device: &Device) -> CoreResult<()>;
    /// Adds or replaces a device (configuration files at start-up).
    async fn upsert(&self, device: &Device) -> CoreResult<()>;
    /// Replaces an existing device; `NotFound` when there is none.
    async fn update(&self, device: &Device) -> CoreResult<()>;
    /// Removes a device; false when there was none.
    async fn delete(&self, id: &DeviceId) -> CoreResult<bool>;
    /// How many devices are registered.
    async fn device_count(&self) -> CoreResult<u64>;
}

/// Sensible capabilities for printers that cannot be asked and were not described.
pub fn default_capabilities() -> Capabilities {
    let media = |keyword: &str, name: &str, w: f64, h: f64| Media {
        keyword: keyword.into(),
        display_name: name.into(),
        width_mm: w,
        height_mm: h,
    };
    Capabilities {
        media: vec![
            media("iso_a4_210x297mm", "A4", 210.0, 297.0),
            media("iso_a3_297x420mm", "A3", 297.0, 420.0),
            media("na_letter_8.5x11in", "US Letter", 215.9, 279.4),
        ],
        default_media: Some("iso_a4_210x297mm".into()),
        sides: vec![Sides::OneSided, Sides::TwoSidedLongEdge, Sides::TwoSidedShortEdge],
        color_modes: vec![ColorMode::Color, ColorMode::Monochrome],
        copies_max: 999,
        document_formats: vec!["application/pdf".into()],
        accepting_jobs: true,
        state_reasons: vec!["none".into()],
        default_sides: None,
        default_color: None,
        media_ready: Vec::new(),
    }
}

/// Devices listed per page when the caller names no page size, and the most per page.
const DEFAULT_DEVICE_PAGE: u32 = 50;
const MAX_DEVICE_PAGE: u32 = 500;

/// One page of the registry.
#[derive(Debug)]
pub struct DevicePage {
    pub devices: Vec<Device>,
    /// Empty on the last page.
    pub next_page_token: String,
    /// Devices registered in all.
    pub total: u64,
}

/// The device registry as operators use it: every device is checked before it is stored, and
/// ids that no device could have name nothing.
pub struct Devices {
    store: Arc<dyn DeviceStore>,
}

impl Devices {
    pub fn new(store: Arc<dyn DeviceStore>) -> Self {
        Devices { store }
    }

    /// Registers a new device; `AlreadyExists` when its id is taken. Returns it as stored.
    pub async fn register(&self, device: Device) -> CoreResult<Device> {
        device.check()?;
        self.store.insert(&device).await?;
        Ok(self.store.get(&device.id).await?.unwrap_or(device))
    }

    /// The device with this id, as a caller sent it.
    pub async fn get(&self, raw_id: &str) -> CoreResult<Device> {
        let id = existing_device_id(raw_id)?;
        self.store.get(&id).await?.ok_or_else(|| not_registered(&id))
    }

    /// A page of devices in id order: `page_size` 0 means 50, more than 500 means 500;
    /// `page_token` is empty or one a previous page handed out.
    pub async fn list(&self, page_size: u32, page_token: &str) -> CoreResult<DevicePage> {
        let limit = match page_size {
            0 => DEFAULT_DEVICE_PAGE,
            n => n.min(MAX_DEVICE_PAGE),
        };
        let after = match page_token {
            "" => None,
            token => Some(
                URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| DeviceId::parse(&s).ok())
                    .ok_or_else(|| CoreError::InvalidArgument("page_token is not one this server issued".into()))?,
            ),
        };
        let mut devices = self.store.list(after.as_ref(), limit + 1).await?;
        let next_page_token = if devices.len() > limit as usize {
            devices.truncate(limit as usize);
            devices.last().map(|d| URL_SAFE_NO_PAD.encode(d.id.as_str())).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(DevicePage { devices, next_page_token, total: self.store.device_count().await? })
    }

    /// Replaces a registered device with `device` (same id); returns it as stored.
    pub async fn update(&self, device: Device) -> CoreResult<Device> {
        device.check()?;
        self.store.update(&device).await?;
        Ok(self.store.get(&device.id).await?.unwrap_or(device))
    }

    /// Removes a device; NOT_FOUND when none has this id.
    pub async fn delete(&self, raw_id: &str) -> CoreResult<()> {
        let id = existing_device_id(raw_id)?;
        if !self.store.delete(&id).await? {
            return Err(not_registered(&id));
        }
        Ok(())
    }
}

/// A device id a caller sent to name an existing device: required; one no device could have
/// names none (NOT_FOUND, like an id that is not registered).
pub fn existing_device_id(raw: &str) -> CoreResult<DeviceId> {
    if raw.is_empty() {
        return Err(CoreError::InvalidArgument("device_id is required".into()));
    }
    DeviceId::parse(raw).map_err(|_| CoreError::NotFound(format!("no device has the id \"{raw}\"")))
}

fn not_registered(id: &DeviceId) -> CoreError {
    CoreError::NotFound(format!("device \"{}\" is not registered", id.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_uris_are_checked_once_and_keep_their_parts() {
        let plain = PrinterUri::parse("ipp://localhost:8631/ipp/print").unwrap();
        assert_eq!((plain.is_secure(), plain.authority(), plain.path()), (false, "localhost:8631", "/ipp/print"));
        assert_eq!(plain.http_url(), "http://localhost:8631/ipp/print");
        let secure = PrinterUri::parse("ipps://printer.local:631").unwrap();
        assert_eq!(secure.http_url(), "https://printer.local:631/");
        let v6 = PrinterUri::parse("ipp://[::1]:631/ipp/print").unwrap();
        assert_eq!(v6.authority(), "[::1]:631");
        for bad in [
            "ipps://printer/ipp/print",
            "http://printer:631/",
            "ipp://u:p@printer:631/",
            "not a uri",
            "ipp://:631/",
            "ipp://printer:0/",
            "ipp://printer:631/?q",
            "ipp://printer:631/#f",
        ] {
            let err = PrinterUri::parse(bad).unwrap_err();
            assert!(matches!(&err, CoreError::InvalidArgument(m) if m.contains("must look like")), "{bad}: {err:?}");
        }
    }

    #[test]
    fn delivery_mode_names_round_trip() {
        for mode in DeliveryMode::ALL {
            assert_eq!(DeliveryMode::from_name(mode.name()).unwrap(), mode);
        }
        let err = DeliveryMode::from_name("fax").unwrap_err();
        assert!(err.to_string().contains("ipp_push, device_pull or spool_folder"), "{err}");
    }
}
