//! A picture of one side of a plan's first sheet: the piece's page images in their slots, turned as
//! they print, with the cut marks, on white, as PNG.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};
use tiny_skia::{FilterQuality, Paint, PathBuilder, Pixmap, PixmapPaint, Stroke, Transform};

use super::{Duplex, ImposeError, MARK_WIDTH_PT, Matrix, Plan, compose};
use crate::render::{MAX_PREVIEW_WIDTH, MIN_PREVIEW_WIDTH};

/// A page image may decode to this much memory at most.
const MAX_IMAGE_BYTES: u64 = 256 << 20;

/// An image of one side of the plan's first sheet (front = false / back = true), `width_px` wide
/// (clamped to 64..=2000, as page previews are), composed from the piece's page images (`pages[i]`
/// = PNG of page i+1 of one piece, trim + bleed, any size, stretched to its slot) with the cut
/// marks, as PNG. The back of a one-sided one-page job is a blank sheet.
pub fn sheet_preview(plan: &Plan, back: bool, pages: &[Vec<u8>], width_px: u32) -> Result<Vec<u8>, ImposeError> {
    plan.check()?;
    let expected = plan.piece.pages as usize;
    if pages.len() != expected {
        return Err(ImposeError::Preview(format!(
            "{} page images were given for a piece of {expected} pages",
            pages.len()
        )));
    }
    let width = width_px.clamp(MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH);
    let px_per_mm = f64::from(width) / plan.sheet.width_mm;
    // At least one pixel high; the sheet's aspect ratio is bounded by plan()'s size checks.
    let height = ((plan.sheet.height_mm * px_per_mm).round() as u32).max(1);
    let mut canvas =
        Pixmap::new(width, height).ok_or_else(|| ImposeError::Preview(format!("a {width}×{height} image")))?;
    canvas.fill(tiny_skia::Color::WHITE);

    // Which page this side prints: the first sheet of the first batch.
    let page = match (back, plan.duplex, plan.piece.pages) {
        (false, ..) => Some(0),
        (true, Duplex::OneSided, 1) => None,
        (true, ..) => Some(1),
    };
    let Some(page) = page else { return encode(&canvas) };
    let image = decode(&pages[page], page + 1)?;

    let (w, h, bleed) = (plan.piece.trim_width_mm, plan.piece.trim_height_mm, plan.piece.bleed_mm);
    // Image pixels → piece mm (the image spans trim + bleed; the piece's origin is the trim corner).
    let to_piece: Matrix = [
        (w + 2.0 * bleed) / f64::from(image.width()),
        0.0,
        0.0,
        (h + 2.0 * bleed) / f64::from(image.height()),
        -bleed,
        -bleed,
    ];
    let to_px: Matrix = [px_per_mm, 0.0, 0.0, px_per_mm, 0.0, 0.0];
    let paint = PixmapPaint { quality: FilterQuality::Bilinear, ..PixmapPaint::default() };
    for i in 0..plan.per_sheet.min(plan.quantity) {
        let Some(slot) = plan.slot(i, back) else { break };
        let [a, b, c, d, e, f] = compose(to_px, compose(slot.transform, to_piece));
        let transform = Transform::from_row(a as f32, b as f32, c as f32, d as f32, e as f32, f as f32);
        canvas.draw_pixmap(0, 0, image.as_ref(), &paint, transform, None);
    }

    let mut path = PathBuilder::new();
    for [x0, y0, x1, y1] in plan.marks() {
        path.move_to((x0 * px_per_mm) as f32, (y0 * px_per_mm) as f32);
        path.line_to((x1 * px_per_mm) as f32, (y1 * px_per_mm) as f32);
    }
    if let Some(path) = path.finish() {
        let mut ink = Paint::default();
        ink.set_color_rgba8(0, 0, 0, 255);
        // A hairline at true size would vanish in a small picture.
        let width = (MARK_WIDTH_PT * 25.4 / 72.0 * px_per_mm).max(1.0) as f32;
        let stroke = Stroke { width, ..Stroke::default() };
        canvas.stroke_path(&path, &ink, &stroke, Transform::identity(), None);
    }
    encode(&canvas)
}

/// A PNG page image as a premultiplied pixmap.
fn decode(png: &[u8], page: usize) -> Result<Pixmap, ImposeError> {
    let bad = |e: String| ImposeError::Preview(format!("the image of page {page} can not be read ({e})"));
    let mut reader = ImageReader::with_format(Cursor::new(png), ImageFormat::Png);
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let rgba = reader.decode().map_err(|e| bad(e.to_string()))?.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut data = rgba.into_raw();
    for px in data.chunks_exact_mut(4) {
        let alpha = u16::from(px[3]);
        for channel in &mut px[..3] {
            *channel = ((u16::from(*channel) * alpha + 127) / 255) as u8;
        }
    }
    let size = tiny_skia::IntSize::from_wh(w, h).ok_or_else(|| bad("it is empty".into()))?;
    Pixmap::from_vec(data, size).ok_or_else(|| bad("unexpected pixel layout".into()))
}

fn encode(canvas: &Pixmap) -> Result<Vec<u8>, ImposeError> {
    canvas.encode_png().map_err(|e| ImposeError::Preview(format!("encoding the PNG: {e}")))
}
