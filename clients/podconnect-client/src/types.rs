//! Plain Rust types for what the core answers where the generated ones are awkward: enums instead
//! of `i32`, `SystemTime` instead of protobuf timestamps, `Option` instead of empty strings.
//! Every one converts from its generated counterpart here and nowhere else.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// A protobuf timestamp as `SystemTime` (`None` when unset or before 1970).
pub(crate) fn time(ts: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    let ts = ts?;
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `SystemTime` as a protobuf timestamp.
pub(crate) fn timestamp(at: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(at)
}

fn non_empty(text: String) -> Option<String> {
    if text.is_empty() { None } else { Some(text) }
}

/// An enum with names for people and scripts: `name()` and `from_name()` use the same words as
/// `--json` output and command-line values.
pub trait Named: Sized + Copy + 'static {
    /// Every value with its name.
    const NAMES: &'static [(&'static str, Self)];

    /// This value's name.
    fn name(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::NAMES.iter().find(|(_, v)| *v == self).map_or("unknown", |(n, _)| n)
    }

    /// The value with this name (ASCII case-insensitive, `-` and `_` alike).
    fn from_name(name: &str) -> Option<Self> {
        let wanted = name.to_ascii_lowercase().replace('-', "_");
        Self::NAMES.iter().find(|(n, _)| n.replace('-', "_") == wanted).map(|(_, v)| *v)
    }
}

/// Whether a product is printed as is or customized first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// A fixed PDF, printed as is.
    Static,
    /// Has a form whose values go into the document.
    Customizable,
    /// A kind this library does not know.
    Unknown,
}

impl From<i32> for ProductKind {
    fn from(value: i32) -> Self {
        match pb::ProductKind::try_from(value) {
            Ok(pb::ProductKind::Static) => ProductKind::Static,
            Ok(pb::ProductKind::Customizable) => ProductKind::Customizable,
            _ => ProductKind::Unknown,
        }
    }
}

/// A category with its subcategories.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Category {
    /// The category's id.
    pub id: String,
    /// Its name for people.
    pub display_name: String,
    /// A plain-text description, may be empty.
    pub description: String,
    /// Products directly in this category.
    pub product_count: i32,
    /// Its children, in the storefront's order.
    pub subcategories: Vec<Category>,
}

impl From<pb::Category> for Category {
    fn from(c: pb::Category) -> Self {
        Category {
            id: c.id,
            display_name: c.display_name,
            description: c.description,
            product_count: c.product_count,
            subcategories: c.subcategories.into_iter().map(Category::from).collect(),
        }
    }
}

/// A price in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Price {
    /// ISO 4217 code, e.g. "EUR".
    pub currency_code: String,
    /// The amount in minor units (cents for EUR).
    pub amount_minor: i64,
    /// The price is for this many units.
    pub per_quantity: i32,
}

impl Price {
    /// The amount as people read it, e.g. "19.90 EUR" (ISO 4217 exponents of 0 and 3 included).
    pub fn display(&self) -> String {
        let exponent = match self.currency_code.as_str() {
            "JPY" | "KRW" | "CLP" | "ISK" | "VND" | "UGX" | "PYG" | "XAF" | "XOF" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
            _ => 2,
        };
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let amount = self.amount_minor.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{amount} {}", self.currency_code);
        }
        let scale = 10u64.pow(exponent);
        let width = exponent as usize;
        format!("{sign}{}.{:0width$} {}", amount / scale, amount % scale, self.currency_code)
    }
}

impl From<pb::Price> for Price {
    fn from(p: pb::Price) -> Self {
        Price { currency_code: p.currency_code, amount_minor: p.amount_minor, per_quantity: p.per_quantity }
    }
}

/// A product as a list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductSummary {
    /// The product's id.
    pub id: String,
    /// Its name for people.
    pub display_name: String,
    /// One or two sentences, may be empty.
    pub short_description: String,
    /// Static or customizable.
    pub kind: ProductKind,
    /// The category it is directly in.
    pub category_id: String,
    /// Its price, when the storefront shows one.
    pub price: Option<Price>,
    /// Whether `Client::thumbnail` has an image for it.
    pub has_thumbnail: bool,
}

impl From<pb::ProductSummary> for ProductSummary {
    fn from(p: pb::ProductSummary) -> Self {
        ProductSummary {
            id: p.id,
            display_name: p.display_name,
            short_description: p.short_description,
            kind: p.kind.into(),
            category_id: p.category_id,
            price: p.price.map(Price::from),
            has_thumbnail: p.thumbnail.is_some(),
        }
    }
}

/// What to list: a category and/or a search text, and which page.
#[derive(Debug, Clone, Default)]
pub struct ProductQuery {
    /// Only products directly in this category.
    pub category_id: Option<String>,
    /// Only products matching every word of this text.
    pub search: Option<String>,
    /// At most this many (0 = the core's default, 20).
    pub page_size: u32,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// One page of products.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductPage {
    /// The products of this page.
    pub products: Vec<ProductSummary>,
    /// The token of the next page; `None` on the last.
    pub next_page_token: Option<String>,
    /// How many products match over all pages.
    pub total_size: i32,
}

/// Everything about one product.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    /// The product's id.
    pub id: String,
    /// Its name for people.
    pub display_name: String,
    /// One or two sentences.
    pub short_description: String,
    /// The full description.
    pub description: String,
    /// Static or customizable.
    pub kind: ProductKind,
    /// The category it is directly in.
    pub category_id: String,
    /// Its price, when shown.
    pub price: Option<Price>,
    /// Finished width × height and bleed in millimetres, when known.
    pub trim_size_mm: Option<(f64, f64, f64)>,
    /// Pages of the print-ready document (0 = unknown).
    pub page_count: i32,
    /// The smallest quantity.
    pub quantity_min: i32,
    /// The largest quantity (0 = no limit).
    pub quantity_max: i32,
    /// The quantity to preselect.
    pub quantity_default: i32,
    /// When non-empty, the only quantities allowed.
    pub quantity_options: Vec<i32>,
}

impl From<pb::Product> for Product {
    fn from(p: pb::Product) -> Self {
        let quantity = p.quantity.unwrap_or_default();
        Product {
            id: p.id,
            display_name: p.display_name,
            short_description: p.short_description,
            description: p.description,
            kind: p.kind.into(),
            category_id: p.category_id,
            price: p.price.map(Price::from),
            trim_size_mm: p.trim_size.map(|t| (t.width_mm, t.height_mm, t.bleed_mm)),
            page_count: p.page_count,
            quantity_min: quantity.minimum,
            quantity_max: quantity.maximum,
            quantity_default: quantity.default_quantity,
            quantity_options: quantity.options,
        }
    }
}

/// An encoded image: a thumbnail or a preview page.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    /// "image/png" or "image/jpeg".
    pub content_type: String,
    /// The encoded bytes.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// Width in pixels.
    pub width_px: i32,
    /// Height in pixels.
    pub height_px: i32,
    /// The page number (from 1) for a preview page; 0 for a thumbnail.
    pub page_number: i32,
}

/// A preview page or sheet image as the core sends it.
impl From<pb::PreviewPage> for Image {
    fn from(p: pb::PreviewPage) -> Self {
        Image {
            content_type: p.content_type,
            data: p.data,
            width_px: p.width_px,
            height_px: p.height_px,
            page_number: p.page_number,
        }
    }
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}, {}x{}, {} bytes)", self.content_type, self.width_px, self.height_px, self.data.len())
    }
}

/// Where a draft is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftState {
    /// Has field errors.
    Editing,
    /// Every field is valid; can be finalized.
    Valid,
    /// Has its print-ready file; never changes again.
    Finalized,
    /// A state this library does not know.
    Unknown,
}

/// A draft of a product with its values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Draft {
    /// The draft's id.
    pub id: String,
    /// The product it is of.
    pub product_id: String,
    /// How many units.
    pub quantity: i32,
    /// Every value by field id.
    pub values: BTreeMap<String, String>,
    /// Editing, valid or finalized.
    pub state: DraftState,
    /// The price of this quantity, when shown.
    pub price: Option<Price>,
    /// The price is only a lower bound.
    pub price_is_minimum: bool,
    /// When the core deletes it at the latest.
    #[serde(serialize_with = "serialize_time")]
    pub expire_time: Option<SystemTime>,
}

impl From<pb::Draft> for Draft {
    fn from(d: pb::Draft) -> Self {
        let state = match pb::DraftState::try_from(d.state) {
            Ok(pb::DraftState::Editing) => DraftState::Editing,
            Ok(pb::DraftState::Valid) => DraftState::Valid,
            Ok(pb::DraftState::Finalized) => DraftState::Finalized,
            _ => DraftState::Unknown,
        };
        Draft {
            expire_time: time(d.expire_time.as_ref()),
            id: d.id,
            product_id: d.product_id,
            quantity: d.quantity,
            values: d.values.into_iter().collect(),
            state,
            price: d.price.map(Price::from),
            price_is_minimum: d.price_is_minimum,
        }
    }
}

/// Why one field's value (or the quantity) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's id; `None` for the draft's quantity.
    pub field_id: Option<String>,
    /// The kind of error, e.g. "too_long", "required".
    pub code: String,
    /// What is wrong and how to fix it, for people.
    pub message: String,
}

impl From<pb::FieldError> for FieldError {
    fn from(e: pb::FieldError) -> Self {
        let code = pb::FieldErrorCode::try_from(e.code)
            .map(|c| c.as_str_name().trim_start_matches("FIELD_ERROR_CODE_").to_ascii_lowercase())
            .unwrap_or_else(|_| "unknown".into());
        FieldError { field_id: non_empty(e.field_id), code, message: e.message }
    }
}

/// A draft and every error it has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DraftWithErrors {
    /// The draft after the call.
    pub draft: Draft,
    /// Every error of the draft; empty when it is valid.
    pub field_errors: Vec<FieldError>,
}

/// Values to change in a draft.
#[derive(Debug, Clone, Default)]
pub struct DraftChange {
    /// New values by field id.
    pub values: BTreeMap<String, String>,
    /// A new quantity.
    pub quantity: Option<i32>,
    /// Fields to empty.
    pub clear: Vec<String>,
}

/// A print-ready file made from a draft (its bytes never travel over the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrintFile {
    /// The file's id.
    pub file_id: String,
    /// The draft it was made from; empty for an uploaded file.
    pub draft_id: String,
    /// The name given when it was uploaded; empty for a draft's file.
    pub display_name: String,
    /// Its size in bytes.
    pub size_bytes: i64,
    /// Its pages.
    pub page_count: i32,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Copies that make the draft's quantity.
    pub suggested_copies: i32,
}

impl From<pb::PrintFile> for PrintFile {
    fn from(f: pb::PrintFile) -> Self {
        PrintFile {
            file_id: f.file_id,
            draft_id: f.draft_id,
            display_name: f.display_name,
            size_bytes: f.size_bytes,
            page_count: f.page_count,
            sha256: f.sha256,
            suggested_copies: f.suggested_copies,
        }
    }
}

/// Which sides of the sheet are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sides {
    /// IPP "one-sided".
    OneSided,
    /// IPP "two-sided-long-edge".
    TwoSidedLongEdge,
    /// IPP "two-sided-short-edge".
    TwoSidedShortEdge,
}

impl Named for Sides {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("one-sided", Sides::OneSided),
        ("two-sided-long-edge", Sides::TwoSidedLongEdge),
        ("two-sided-short-edge", Sides::TwoSidedShortEdge),
    ];
}

impl Sides {
    fn from_wire(value: i32) -> Option<Sides> {
        match pb::Sides::try_from(value).ok()? {
            pb::Sides::OneSided => Some(Sides::OneSided),
            pb::Sides::TwoSidedLongEdge => Some(Sides::TwoSidedLongEdge),
            pb::Sides::TwoSidedShortEdge => Some(Sides::TwoSidedShortEdge),
            pb::Sides::Unspecified => None,
        }
    }

    pub(crate) fn wire(side: Option<Sides>) -> i32 {
        (match side {
            None => pb::Sides::Unspecified,
            Some(Sides::OneSided) => pb::Sides::OneSided,
            Some(Sides::TwoSidedLongEdge) => pb::Sides::TwoSidedLongEdge,
            Some(Sides::TwoSidedShortEdge) => pb::Sides::TwoSidedShortEdge,
        }) as i32
    }
}

/// How colors are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColorMode {
    /// Full color.
    Color,
    /// Shades of one color.
    Monochrome,
}

impl Named for ColorMode {
    const NAMES: &'static [(&'static str, Self)] =
        &[("color", ColorMode::Color), ("monochrome", ColorMode::Monochrome)];
}

impl ColorMode {
    fn from_wire(value: i32) -> Option<ColorMode> {
        match pb::ColorMode::try_from(value).ok()? {
            pb::ColorMode::Color => Some(ColorMode::Color),
            pb::ColorMode::Monochrome => Some(ColorMode::Monochrome),
            pb::ColorMode::Unspecified => None,
        }
    }

    pub(crate) fn wire(mode: Option<ColorMode>) -> i32 {
        (match mode {
            None => pb::ColorMode::Unspecified,
            Some(ColorMode::Color) => pb::ColorMode::Color,
            Some(ColorMode::Monochrome) => pb::ColorMode::Monochrome,
        }) as i32
    }
}

/// How print-ready files reach a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// IPP or IPPS push.
    IppPush,
    /// The printer fetches a one-time link.
    DevicePull,
    /// A spool folder.
    SpoolFolder,
}

impl Named for DeliveryMode {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("ipp_push", DeliveryMode::IppPush),
        ("device_pull", DeliveryMode::DevicePull),
        ("spool_folder", DeliveryMode::SpoolFolder),
    ];
}

impl DeliveryMode {
    pub(crate) fn from_wire(value: i32) -> Option<DeliveryMode> {
        match pb::DeliveryMode::try_from(value).ok()? {
            pb::DeliveryMode::IppPush => Some(DeliveryMode::IppPush),
            pb::DeliveryMode::DevicePull => Some(DeliveryMode::DevicePull),
            pb::DeliveryMode::SpoolFolder => Some(DeliveryMode::SpoolFolder),
            pb::DeliveryMode::Unspecified => None,
        }
    }

    pub(crate) fn wire(self) -> i32 {
        (match self {
            DeliveryMode::IppPush => pb::DeliveryMode::IppPush,
            DeliveryMode::DevicePull => pb::DeliveryMode::DevicePull,
            DeliveryMode::SpoolFolder => pb::DeliveryMode::SpoolFolder,
        }) as i32
    }
}

/// A paper size a device can print on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Media {
    /// The PWG keyword, e.g. "iso_a4_210x297mm".
    pub keyword: String,
    /// Its name for people, e.g. "A4".
    pub display_name: String,
}

/// What the session's device can print, and whether it takes jobs now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrinterInfo {
    /// The device's id.
    pub device_id: String,
    /// Its name for people.
    pub display_name: String,
    /// How files reach it.
    pub delivery_mode: Option<DeliveryMode>,
    /// The media it prints on.
    pub media: Vec<Media>,
    /// The media used when a job names none.
    pub media_default: String,
    /// The sides it can print.
    pub sides: Vec<Sides>,
    /// The sides used by default.
    pub sides_default: Option<Sides>,
    /// The color modes it can print.
    pub color_modes: Vec<ColorMode>,
    /// The color mode used by default.
    pub color_mode_default: Option<ColorMode>,
    /// The most copies of one job.
    pub copies_max: i32,
    /// Whether it accepts jobs now (`None` = unknown).
    pub accepting_jobs: Option<bool>,
    /// IPP printer-state-reasons.
    pub state_reasons: Vec<String>,
    /// The printer's own message.
    pub state_message: String,
}

impl From<pb::GetPrinterCapabilitiesResponse> for PrinterInfo {
    fn from(r: pb::GetPrinterCapabilitiesResponse) -> Self {
        let caps = r.capabilities.unwrap_or_default();
        PrinterInfo {
            device_id: r.device_id,
            display_name: r.device_display_name,
            delivery_mode: DeliveryMode::from_wire(r.delivery_mode),
            media: caps
                .media_supported
                .into_iter()
                .map(|m| Media { keyword: m.keyword, display_name: m.display_name })
                .collect(),
            media_default: caps.media_default,
            sides: caps.sides_supported.into_iter().filter_map(Sides::from_wire).collect(),
            sides_default: Sides::from_wire(caps.sides_default),
            color_modes: caps.color_modes_supported.into_iter().filter_map(ColorMode::from_wire).collect(),
            color_mode_default: ColorMode::from_wire(caps.color_mode_default),
            copies_max: caps.copies_max,
            accepting_jobs: r.accepting_jobs,
            state_reasons: r.printer_state_reasons,
            state_message: r.printer_state_message,
        }
    }
}

impl PrinterInfo {
    /// Checks print options against what the device can do, naming the option that does not fit
    /// and what would (so a caller can refuse before submitting).
    /// Copies are left to the core: a product's copies are pieces, laid out on the sheets.
    pub fn check(&self, options: &PrintOptions) -> Result<(), String> {
        if let Some(sides) = options.sides
            && !self.sides.contains(&sides)
        {
            let names: Vec<_> = self.sides.iter().map(|s| s.name()).collect();
            return Err(format!(
                "sides: {} cannot print {}; use one of: {}",
                self.display_name,
                sides.name(),
                names.join(", ")
            ));
        }
        if let Some(mode) = options.color_mode
            && !self.color_modes.contains(&mode)
        {
            let names: Vec<_> = self.color_modes.iter().map(|s| s.name()).collect();
            return Err(format!(
                "color: {} cannot print {}; use one of: {}",
                self.display_name,
                mode.name(),
                names.join(", ")
            ));
        }
        if let Some(media) = &options.media
            && !self.media.iter().any(|m| &m.keyword == media)
        {
            let names: Vec<_> = self.media.iter().map(|m| m.keyword.as_str()).collect();
            return Err(format!("media: {} has no {media}; use one of: {}", self.display_name, names.join(", ")));
        }
        Ok(())
    }
}

/// What to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// A FINALIZED draft of the session.
    Draft(String),
    /// A print file of the session.
    File(String),
}

/// How to print a job; unset options take the device's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// Copies of the file; 0 = the file's suggested copies.
    pub copies: u32,
    /// Which sides.
    pub sides: Option<Sides>,
    /// Which color mode.
    pub color_mode: Option<ColorMode>,
    /// A media keyword.
    pub media: Option<String>,
    /// Scale a product down to the sheet when it is larger than every sheet.
    pub fit_to_sheet: bool,
}

/// How a job's pieces land on the printer's sheets (PrintLayout).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// False: the file prints as it is.
    pub imposed: bool,
    /// The sheet's media keyword and name.
    pub sheet: Media,
    /// The tray it comes from, where known.
    pub tray: String,
    /// Pieces printed in all.
    pub pieces: i32,
    /// Pieces on one sheet.
    pub pieces_per_sheet: i32,
    /// Sheets of paper.
    pub sheet_count: i32,
    /// How the sheets are printed.
    pub sides: Option<Sides>,
    /// A two-sided piece printed one-sided: the backs come on sheets of their own.
    pub backs_on_separate_sheets: bool,
    /// Pieces turned a quarter turn.
    pub rotated: bool,
    /// 1 = true size.
    pub scale: f64,
    /// Sheets one piece per sheet would take.
    pub sheets_one_per_sheet: i32,
}

impl From<pb::PrintLayout> for Layout {
    fn from(l: pb::PrintLayout) -> Self {
        let sheet = l.sheet.unwrap_or_default();
        Layout {
            imposed: l.imposed,
            tray: sheet.source.clone(),
            sheet: Media { keyword: sheet.keyword, display_name: sheet.display_name },
            pieces: l.pieces,
            pieces_per_sheet: l.pieces_per_sheet,
            sheet_count: l.sheet_count,
            sides: Sides::from_wire(l.sides),
            backs_on_separate_sheets: l.backs_on_separate_sheets,
            rotated: l.rotated,
            scale: l.scale,
            sheets_one_per_sheet: l.sheets_one_per_sheet,
        }
    }
}

/// What PlanJob says: the layout and, when asked, the first sheet's images.
#[derive(Clone, PartialEq, Serialize)]
pub struct JobPlan {
    pub layout: Layout,
    /// Front, then back (page_number 1 and 2).
    pub sheets: Vec<Image>,
}

/// A job's state (IPP's model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting.
    Pending,
    /// Held until something happens.
    Held,
    /// Printing.
    Processing,
    /// Stopped, e.g. out of paper.
    Stopped,
    /// Canceled (terminal).
    Canceled,
    /// Ended by an error (terminal).
    Aborted,
    /// Printed (terminal).
    Completed,
    /// A state this library does not know.
    Unknown,
}

impl JobState {
    /// True for canceled, aborted and completed: a job never leaves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Canceled | JobState::Aborted | JobState::Completed)
    }

    /// The state's name, e.g. "processing".
    pub fn name(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Held => "held",
            JobState::Processing => "processing",
            JobState::Stopped => "stopped",
            JobState::Canceled => "canceled",
            JobState::Aborted => "aborted",
            JobState::Completed => "completed",
            JobState::Unknown => "unknown",
        }
    }
}

impl From<i32> for JobState {
    fn from(value: i32) -> Self {
        match pb::JobState::try_from(value) {
            Ok(pb::JobState::Pending) => JobState::Pending,
            Ok(pb::JobState::Held) => JobState::Held,
            Ok(pb::JobState::Processing) => JobState::Processing,
            Ok(pb::JobState::Stopped) => JobState::Stopped,
            Ok(pb::JobState::Canceled) => JobState::Canceled,
            Ok(pb::JobState::Aborted) => JobState::Aborted,
            Ok(pb::JobState::Completed) => JobState::Completed,
            _ => JobState::Unknown,
        }
    }
}

/// A print job of the session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// The job's id.
    pub id: String,
    /// Its state.
    pub state: JobState,
    /// IPP job-state-reasons keywords.
    pub state_reasons: Vec<String>,
    /// The state for people.
    pub state_message: String,
    /// The print file printed.
    pub file_id: String,
    /// The draft it was made from.
    pub draft_id: String,
    /// The product printed.
    pub product_id: String,
    /// The device it prints on.
    pub device_id: String,
    /// How the file reaches the device.
    pub delivery_mode: Option<DeliveryMode>,
    /// Copies.
    pub copies: i32,
    /// Sides.
    pub sides: Option<Sides>,
    /// Color mode.
    pub color_mode: Option<ColorMode>,
    /// Media keyword.
    pub media: String,
    /// Pages of one copy.
    pub page_count: i32,
    /// Pages printed so far, all copies (`None` = the printer does not say).
    pub pages_printed: Option<i32>,
    /// Pages (printed sides of sheets) the whole job prints: what `pages_printed` counts up to.
    pub pages_total: i32,
    /// How the pieces land on the sheets.
    pub layout: Option<Layout>,
    /// The printer's id for the job.
    pub device_job_id: String,
    /// When it was submitted.
    #[serde(serialize_with = "serialize_time")]
    pub create_time: Option<SystemTime>,
    /// When it last changed.
    #[serde(serialize_with = "serialize_time")]
    pub update_time: Option<SystemTime>,
    /// When it ended.
    #[serde(serialize_with = "serialize_time")]
    pub end_time: Option<SystemTime>,
}

impl From<pb::Job> for Job {
    fn from(j: pb::Job) -> Self {
        Job {
            create_time: time(j.create_time.as_ref()),
            update_time: time(j.update_time.as_ref()),
            end_time: time(j.end_time.as_ref()),
            id: j.id,
            state: j.state.into(),
            state_reasons: j.state_reasons,
            state_message: j.state_message,
            file_id: j.file_id,
            draft_id: j.draft_id,
            product_id: j.product_id,
            device_id: j.device_id,
            delivery_mode: DeliveryMode::from_wire(j.delivery_mode),
            copies: j.copies,
            sides: Sides::from_wire(j.sides),
            color_mode: ColorMode::from_wire(j.color_mode),
            media: j.media,
            page_count: j.page_count,
            pages_printed: j.pages_printed,
            pages_total: j.pages_total,
            layout: j.layout.map(Layout::from),
            device_job_id: j.device_job_id,
        }
    }
}

impl Job {
    /// Whether `other` shows the same moment of the job (what a resumed watch must not repeat).
    pub fn same_moment(&self, other: &Job) -> bool {
        self.state == other.state
            && self.state_reasons == other.state_reasons
            && self.pages_printed == other.pages_printed
            && self.state_message == other.state_message
            && self.update_time == other.update_time
    }
}

/// A submitted job, and for a pulling device where it fetches the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Submitted {
    /// The job.
    pub job: Job,
    /// For a DEVICE_PULL job: the one-time URL (a secret: hand it only to the printer).
    #[serde(skip)]
    pub pull_url: Option<String>,
}

/// A registered device, as operators manage it. The same keys as the core's `--devices` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// The id the app sends in StartSession.
    pub id: String,
    /// The name shown to operators and on the print screen.
    pub display_name: String,
    /// Make and model (usage can be grouped by it).
    #[serde(default)]
    pub model: String,
    /// How jobs reach it.
    pub delivery: DeliveryMode,
    /// The printer's IPP URI with its port (IPP push; optional for pull).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printer_uri: Option<String>,
    /// SHA-256 of an ipps printer's certificate, pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_certificate_sha256: Option<String>,
    /// Where it stands.
    #[serde(default)]
    pub location: String,
}

impl From<pb::Device> for Device {
    fn from(d: pb::Device) -> Self {
        Device {
            id: d.id,
            display_name: d.display_name,
            model: d.model,
            delivery: DeliveryMode::from_wire(d.delivery_mode).unwrap_or(DeliveryMode::SpoolFolder),
            printer_uri: non_empty(d.printer_uri),
            pinned_certificate_sha256: non_empty(d.pinned_certificate_sha256),
            location: d.location,
        }
    }
}

impl Device {
    pub(crate) fn wire(&self) -> pb::Device {
        pb::Device {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            model: self.model.clone(),
            delivery_mode: self.delivery.wire(),
            printer_uri: self.printer_uri.clone().unwrap_or_default(),
            pinned_certificate_sha256: self.pinned_certificate_sha256.clone().unwrap_or_default(),
            location: self.location.clone(),
            ..Default::default()
        }
    }

    /// The field names of `Device` an update replaces (its capabilities stay as registered).
    pub(crate) const UPDATE_MASK: &'static [&'static str] =
        &["display_name", "model", "delivery_mode", "printer_uri", "pinned_certificate_sha256", "location"];
}

/// A kind of usage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum UsageKind {
    SessionStarted,
    SessionClosed,
    ProductViewed,
    LoginSucceeded,
    LoginFailed,
    DraftCreated,
    PreviewRendered,
    DraftFinalized,
    JobSubmitted,
    JobEnded,
    SsoEnrolled,
    SsoUsed,
    SsoForgotten,
}

impl Named for UsageKind {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("session_started", UsageKind::SessionStarted),
        ("session_closed", UsageKind::SessionClosed),
        ("product_viewed", UsageKind::ProductViewed),
        ("login_succeeded", UsageKind::LoginSucceeded),
        ("login_failed", UsageKind::LoginFailed),
        ("draft_created", UsageKind::DraftCreated),
        ("preview_rendered", UsageKind::PreviewRendered),
        ("draft_finalized", UsageKind::DraftFinalized),
        ("job_submitted", UsageKind::JobSubmitted),
        ("job_ended", UsageKind::JobEnded),
        ("sso_enrolled", UsageKind::SsoEnrolled),
        ("sso_used", UsageKind::SsoUsed),
        ("sso_forgotten", UsageKind::SsoForgotten),
    ];
}

impl UsageKind {
    // The contract numbers the kinds 1 to 13 in the order of NAMES.
    pub(crate) fn wire(self) -> i32 {
        Self::NAMES.iter().position(|(_, k)| *k == self).map_or(0, |i| i as i32 + 1)
    }

    fn from_wire(value: i32) -> Option<UsageKind> {
        let index = usize::try_from(value).ok()?.checked_sub(1)?;
        Self::NAMES.get(index).map(|(_, k)| *k)
    }
}

/// A key to group usage counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// By event kind.
    Kind,
    /// By product id.
    Product,
    /// By UTC day.
    Day,
    /// By device model.
    DeviceModel,
}

impl Named for Grouping {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("kind", Grouping::Kind),
        ("product", Grouping::Product),
        ("day", Grouping::Day),
        ("device_model", Grouping::DeviceModel),
    ];
}

impl Grouping {
    pub(crate) fn wire(self) -> i32 {
        (match self {
            Grouping::Kind => pb::UsageGrouping::Kind,
            Grouping::Product => pb::UsageGrouping::Product,
            Grouping::Day => pb::UsageGrouping::Day,
            Grouping::DeviceModel => pb::UsageGrouping::DeviceModel,
        }) as i32
    }
}

/// Which usage events to count and how to group them.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Events at or after this time.
    pub start: Option<SystemTime>,
    /// Events before this time.
    pub end: Option<SystemTime>,
    /// Only these kinds (empty = all).
    pub kinds: Vec<UsageKind>,
    /// Group by these keys, in this order (empty = only a total).
    pub group_by: Vec<Grouping>,
}

/// One row of grouped usage counts; keys not grouped by are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The events' kind.
    pub kind: Option<UsageKind>,
    /// The product.
    pub product_id: Option<String>,
    /// The UTC day, "YYYY-MM-DD".
    pub day: Option<String>,
    /// The device model.
    pub device_model: Option<String>,
    /// How many events.
    pub count: i64,
}

/// Usage counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReport {
    /// One row per combination of keys.
    pub rows: Vec<UsageRow>,
    /// All matching events.
    pub total: i64,
}

impl UsageReport {
    pub(crate) fn from_wire(r: pb::CountUsageEventsResponse, group_by: &[Grouping]) -> UsageReport {
        let grouped = |g: Grouping| group_by.contains(&g);
        let rows = r
            .counts
            .into_iter()
            .map(|c| UsageRow {
                kind: if grouped(Grouping::Kind) { UsageKind::from_wire(c.kind) } else { None },
                product_id: grouped(Grouping::Product).then_some(c.product_id),
                day: grouped(Grouping::Day).then_some(c.day),
                device_model: grouped(Grouping::DeviceModel).then_some(c.device_model),
                count: c.count,
            })
            .collect();
        UsageReport { rows, total: r.total }
    }
}

/// What starting a session told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The absolute limit.
    #[serde(serialize_with = "serialize_time")]
    pub expire_time: Option<SystemTime>,
    /// The idle limit.
    pub idle_timeout: Option<Duration>,
    /// Stored single sign-on credentials are available.
    pub sso_available: bool,
}

/// A new SSO key version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyVersion {
    /// The version now used to seal.
    pub key_version: u32,
    /// When it was made.
    #[serde(serialize_with = "serialize_time")]
    pub create_time: Option<SystemTime>,
}

/// What a rewrap did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RewrapReport {
    /// The version everything was rewrapped to.
    pub key_version: u32,
    /// Credentials sealed again.
    pub rewrapped: i64,
    /// Credentials already under the newest version.
    pub already_current: i64,
    /// Credentials that could not be opened.
    pub failed: i64,
}

/// Times as RFC 3339 in UTC ("2026-12-01T04:10:12Z"), or `null`.
fn serialize_time<S: serde::Serializer>(at: &Option<SystemTime>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&rfc3339(*at)),
        None => serializer.serialize_none(),
    }
}

/// A time as RFC 3339 in UTC with seconds.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Parses "YYYY-MM-DD" (midnight UTC) or "YYYY-MM-DDTHH:MM:SSZ" as a time; `None` for anything
/// else, including days a month does not have.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let full = if text.contains('T') { text.to_owned() } else { format!("{text}T00:00:00Z") };
    humantime::parse_rfc3339(&full).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_rfc3339() {
        let at = parse_time("2026-02-28T23:59:07Z").unwrap();
        assert_eq!(rfc3339(at), "2026-02-28T23:59:07Z");
        assert_eq!(rfc3339(parse_time("2024-02-29").unwrap()), "2024-02-29T00:00:00Z");
        assert!(parse_time("2026-02-30").is_none());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn prices_use_the_currency_exponent() {
        let price = |code: &str, amount| Price { currency_code: code.into(), amount_minor: amount, per_quantity: 1 };
        assert_eq!(price("EUR", 1990).display(), "19.90 EUR");
        assert_eq!(price("EUR", 5).display(), "0.05 EUR");
        assert_eq!(price("JPY", 1990).display(), "1990 JPY");
        assert_eq!(price("KWD", 1990).display(), "1.990 KWD");
    }

    #[test]
    fn usage_kinds_follow_the_contract_numbers() {
        assert_eq!(UsageKind::SessionStarted.wire(), pb::UsageEventKind::SessionStarted as i32);
        assert_eq!(UsageKind::JobEnded.wire(), pb::UsageEventKind::JobEnded as i32);
        assert_eq!(UsageKind::SsoForgotten.wire(), pb::UsageEventKind::SsoForgotten as i32);
        assert_eq!(UsageKind::from_wire(9), Some(UsageKind::JobSubmitted));
    }
}
