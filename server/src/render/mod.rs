//! The rendering engine: lays out customer text in template text boxes (copy fitting), composes each
//! page as one usvg tree, and renders that same document as watermarked PNG previews and as a vector PDF.
//!
//! Flow: [`compose`] substitutes choice placeholders, fits every text box, writes the text layer with
//! xmlwriter and parses each page once with usvg into a [`Document`]; [`preview`] rasterizes it with resvg
//! and [`pdf`] converts it with svg2pdf. Values are data only: they never reach the SVG unescaped, no
//! file or URL is ever read by usvg, and characters no shipped font covers are reported instead of
//! printed as tofu.

mod check;
mod compose;
mod fit;
mod fonts;
pub mod impose;
mod pdf;
mod preview;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use check::check_template;
pub use compose::{compose, compose_preview, data_uri};
pub use fonts::Fonts;
pub use pdf::pdf;
pub use preview::{MAX_PREVIEW_HEIGHT, MAX_PREVIEW_WIDTH, MIN_PREVIEW_WIDTH, PreviewImage, preview};

/// Values longer than this (in characters) are refused at once, without shaping them.
pub const MAX_TEXT_CHARS: usize = 5_000;

/// The finished piece and what is printed around it, in millimetres.
#[derive(Debug, Clone, Copy)]
pub struct PageGeometry {
    pub trim_width_mm: f64,
    pub trim_height_mm: f64,
    pub bleed_mm: f64,
    pub crop_marks: bool,
}

impl PageGeometry {
    /// Width of a template page: trim plus bleed on both sides.
    pub fn page_width_mm(&self) -> f64 {
        self.trim_width_mm + 2.0 * self.bleed_mm
    }

    /// Height of a template page: trim plus bleed on both sides.
    pub fn page_height_mm(&self) -> f64 {
        self.trim_height_mm + 2.0 * self.bleed_mm
    }
}

/// A customizable product's pages and text boxes, as parsed from its folder.
#[derive(Debug, Clone)]
pub struct Template {
    pub geometry: PageGeometry,
    /// SVG source of each page, in order.
    pub pages: Vec<String>,
    pub boxes: Vec<TextBox>,
}

/// A rectangle on a page that prints one text field.
#[derive(Debug, Clone)]
pub struct TextBox {
    pub field: String,
    /// 0-based page index.
    pub page: usize,
    /// Position and size from the page's top-left corner (bleed included), in millimetres.
    pub x_mm: f64,
    pub y_mm: f64,
    pub width_mm: f64,
    pub height_mm: f64,
    pub font_family: String,
    pub weight: u16,
    pub italic: bool,
    pub size_pt: f64,
    pub min_size_pt: f64,
    pub color: BoxColor,
    pub align: Align,
    pub valign: VAlign,
    /// Distance between baselines as a multiple of the font size.
    pub line_height: f64,
    pub multiline: bool,
    /// Literal text printed before the value, e.g. "Tel. ".
    pub prefix: String,
    pub uppercase: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BoxColor {
    /// An SVG colour: `#rgb`, `#rrggbb` or a colour keyword.
    Fixed(String),
    /// The colour of the option chosen in this choice field.
    FromChoice(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Center,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VAlign {
    Top,
    Middle,
    Bottom,
}

/// Values to print, already validated by the caller (visible, non-empty fields only).
#[derive(Debug, Clone, Default)]
pub struct RenderInput {
    pub texts: HashMap<String, String>,
    pub choices: HashMap<String, ChoiceAsset>,
}

/// What one option of a choice field contributes to the artwork.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChoiceAsset {
    /// `#rrggbb`.
    pub color: Option<String>,
    /// A PNG or JPEG as a `data:` URI (`data_uri`), loaded by the storefront at start-up: the
    /// renderer reads no file.
    pub image: Option<Arc<str>>,
}

/// Why a field's value can not be printed; shown to the customer next to the field.
#[derive(Debug, Clone, PartialEq)]
pub enum FitProblem {
    /// Does not fit even at the minimum size; removing about `shorten_by` characters would make it fit.
    TooLong { field: String, shorten_by: usize },
    /// Characters no shipped font can print (or control characters), each listed once.
    Unsupported { field: String, chars: Vec<char> },
}

impl FitProblem {
    pub fn field(&self) -> &str {
        match self {
            FitProblem::TooLong { field, .. } | FitProblem::Unsupported { field, .. } => field,
        }
    }
}

impl fmt::Display for FitProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FitProblem::TooLong { shorten_by, .. } => {
                write!(f, "too long to fit, shorten by about {shorten_by} characters")
            }
            FitProblem::Unsupported { chars, .. } => {
                let list: Vec<String> = chars
                    .iter()
                    .map(|c| if c.is_control() { format!("U+{:04X}", *c as u32) } else { format!("{c}") })
                    .collect();
                write!(f, "these characters can not be printed: {}", list.join(" "))
            }
        }
    }
}

/// Why [`compose`] failed: problems with the customer's values, or a fault in the template or engine.
#[derive(Debug, Clone, PartialEq)]
pub enum ComposeError {
    /// Per-field problems to show to the customer.
    Fit(Vec<FitProblem>),
    /// Not the customer's fault (a template page that does not parse, a missing image, ...).
    Internal(String),
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComposeError::Fit(problems) => {
                let parts: Vec<String> = problems.iter().map(|p| format!("{}: {p}", p.field())).collect();
                write!(f, "{}", parts.join("; "))
            }
            ComposeError::Internal(message) => write!(f, "rendering failed: {message}"),
        }
    }
}

impl std::error::Error for ComposeError {}

/// How one text box was filled: the size copy fitting chose and the lines it printed.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedText {
    pub field: String,
    pub page: usize,
    pub size_pt: f64,
    pub lines: Vec<String>,
}

/// The laid-out document: one usvg tree per page. Preview and PDF are both made from it.
pub struct Document {
    pages: Vec<usvg::Tree>,
    geometry: PageGeometry,
    fitted: Vec<FittedText>,
    /// The final SVG of each page (what `pages` was parsed from), kept for diagnostics and tests.
    sources: Vec<String>,
}

impl Document {
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    pub fn geometry(&self) -> PageGeometry {
        self.geometry
    }

    /// The text boxes that were printed, in template order.
    pub fn fitted(&self) -> &[FittedText] {
        &self.fitted
    }

    /// The composed SVG of a page (0-based), exactly as parsed into the document.
    pub fn page_svg(&self, page: usize) -> Option<&str> {
        self.sources.get(page).map(String::as_str)
    }
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("pages", &self.pages.len())
            .field("geometry", &self.geometry)
            .field("fitted", &self.fitted)
            .finish()
    }
}

/// Runs `f` on every item (pages are independent), spread over the available cores; results in order.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, f(item)));
        }
        done
    };
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for helper in helpers {
            all.extend(helper.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        for (i, r) in all {
            results[i] = Some(r);
        }
    });
    results.into_iter().map(|r| r.expect("every item was processed")).collect()
}

/// Points to millimetres (1 pt = 1/72 in).
fn pt_to_mm(pt: f64) -> f64 {
    pt * 25.4 / 72.0
}

/// Millimetres to points.
fn mm_to_pt(mm: f64) -> f64 {
    mm * 72.0 / 25.4
}
