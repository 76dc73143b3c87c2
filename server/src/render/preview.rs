//! Previews: rasterizes the composed pages with resvg, trimmed to the finished size, on white, with a
//! diagonal PREVIEW watermark drawn through resvg too, and encodes them as PNG.

use anyhow::{Context, bail};

use super::fonts::Fonts;
use super::{Document, PageGeometry};

pub const MIN_PREVIEW_WIDTH: u32 = 64;
pub const MAX_PREVIEW_WIDTH: u32 = 2000;
/// Very tall pages get a narrower image rather than an unbounded one.
pub const MAX_PREVIEW_HEIGHT: u32 = 2 * MAX_PREVIEW_WIDTH;

/// One rendered page.
#[derive(Debug, Clone)]
pub struct PreviewImage {
    /// 1-based.
    pub page_number: usize,
    pub png: Vec<u8>,
    pub width_px: u32,
    pub height_px: u32,
}

/// `pages` are 0-based indexes; empty = all. `width_px` is clamped to the bounds. The image shows the
/// trimmed page (what the customer gets after cutting), so the bleed is not visible.
pub fn preview(
    document: &Document,
    fonts: &Fonts,
    width_px: u32,
    pages: &[usize],
) -> anyhow::Result<Vec<PreviewImage>> {
    let (width, height) = preview_size(document, width_px);
    let all: Vec<usize> = (0..document.page_count()).collect();
    let selected = if pages.is_empty() { &all[..] } else { pages };
    if let Some(bad) = selected.iter().find(|&&p| p >= document.page_count()) {
        bail!("page index {bad} is out of range: the document has {} pages", document.page_count());
    }
    // One watermark for all pages (they share the size), drawn once and blended onto each.
    let mut watermark = tiny_skia::Pixmap::new(width, height).context("allocating the watermark")?;
    resvg::render(&watermark_tree(fonts, width, height)?, tiny_skia::Transform::identity(), &mut watermark.as_mut());
    let images = super::par_map(selected, |&index| {
        let mut pixmap = rasterize(&document.pages[index], document.geometry, width, height)?;
        pixmap.draw_pixmap(
            0,
            0,
            watermark.as_ref(),
            &tiny_skia::PixmapPaint::default(),
            tiny_skia::Transform::identity(),
            None,
        );
        let png = pixmap.encode_png().context("encoding the preview PNG")?;
        Ok(PreviewImage { page_number: index + 1, png, width_px: width, height_px: height })
    });
    images.into_iter().collect()
}

/// The trimmed page on white, scaled to `width` x `height`.
pub(super) fn rasterize(
    tree: &usvg::Tree,
    geometry: PageGeometry,
    width: u32,
    height: u32,
) -> anyhow::Result<tiny_skia::Pixmap> {
    let mut pixmap = tiny_skia::Pixmap::new(width, height).context("allocating the preview image")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    // Tree units per mm (usvg converts the page's mm size to its own px); scale the trim width to the
    // image width and shift the bleed out of view.
    let units_per_mm = f64::from(tree.size().width()) / geometry.page_width_mm();
    let scale = f64::from(width) / (geometry.trim_width_mm * units_per_mm);
    let shift = -geometry.bleed_mm * units_per_mm * scale;
    let transform = tiny_skia::Transform::from_row(scale as f32, 0.0, 0.0, scale as f32, shift as f32, shift as f32);
    resvg::render(tree, transform, &mut pixmap.as_mut());
    Ok(pixmap)
}

/// Image size for a requested width: clamped, height by the trim's aspect ratio, height bounded too.
pub(super) fn preview_size(document: &Document, requested: u32) -> (u32, u32) {
    let g = document.geometry;
    let aspect = g.trim_height_mm / g.trim_width_mm;
    let mut width = requested.clamp(MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH);
    let mut height = (f64::from(width) * aspect).round();
    if height > f64::from(MAX_PREVIEW_HEIGHT) {
        height = f64::from(MAX_PREVIEW_HEIGHT);
        width = (height / aspect).round().max(1.0) as u32;
    }
    (width, height.max(1.0) as u32)
}

/// A diagonal, semi-transparent "PREVIEW" across the whole image, grey with a light outline so that it
/// shows on dark and light artwork alike.
pub(super) fn watermark_tree(fonts: &Fonts, width: u32, height: u32) -> anyhow::Result<usvg::Tree> {
    const WORD: &str = "PREVIEW";
    let face = fonts.watermark_face();
    let font = face.css_font().context("watermark font family can not be named in SVG")?;
    let word_em = face.shaper().map(|f| text_width_em(&f, WORD)).unwrap_or(4.5).max(1.0);
    let (w, h) = (f64::from(width), f64::from(height));
    let diagonal = w.hypot(h);
    // The word spans about 70 % of the diagonal, but never gets taller than the short side allows.
    let size = (0.7 * diagonal / word_em).min(0.45 * w.min(h));
    let angle = -(h.atan2(w).to_degrees());
    let (cx, cy) = (w / 2.0, h / 2.0);
    // Caps are about 0.72 em tall: lower the baseline by half of that to centre the word.
    let baseline = cy + 0.36 * size;

    let mut x = xmlwriter::XmlWriter::new(xmlwriter::Options::default());
    x.start_element("svg");
    x.write_attribute("xmlns", "http://www.w3.org/2000/svg");
    x.write_attribute("width", &width);
    x.write_attribute("height", &height);
    x.write_attribute_fmt("viewBox", format_args!("0 0 {width} {height}"));
    x.start_element("text");
    x.write_attribute_fmt("x", format_args!("{cx:.2}"));
    x.write_attribute_fmt("y", format_args!("{baseline:.2}"));
    x.write_attribute_fmt("transform", format_args!("rotate({angle:.3} {cx:.2} {cy:.2})"));
    x.write_attribute_fmt(
        "style",
        format_args!(
            "{font};font-size:{size:.2};text-anchor:middle;\
             fill:#7f7f7f;fill-opacity:0.4;stroke:#ffffff;stroke-opacity:0.6;stroke-width:{:.2}",
            (size * 0.02).max(0.5)
        ),
    );
    x.write_text(WORD);
    x.end_element();
    x.end_element();
    let svg = x.end_document();
    usvg::Tree::from_str(&svg, &fonts.usvg_options()).context("building the watermark")
}

fn text_width_em(face: &rustybuzz::Face<'_>, text: &str) -> f64 {
    let mut buffer = rustybuzz::UnicodeBuffer::new();
    buffer.push_str(text);
    let output = rustybuzz::shape(face, &[], buffer);
    let units: i32 = output.glyph_positions().iter().map(|p| p.x_advance).sum();
    f64::from(units) / f64::from(face.units_per_em().max(1))
}
