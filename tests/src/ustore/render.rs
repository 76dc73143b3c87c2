//! What the double draws: product thumbnails and preview pages (PNG) and proofs (PDF).
//!
//! Previews must change when the values change, and proofs must carry the values as text, so tests
//! can tell one customer's output from another's.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use sha2::{Digest, Sha256};

use super::fixtures::{Dial, Product};

/// A 200 x 150 card in the product's colour with a lighter band.
pub(crate) fn thumbnail(product: &Product) -> Vec<u8> {
    let [r, g, b] = product.rgb;
    let light = [r / 2 + 127, g / 2 + 127, b / 2 + 127];
    png_rgb(200, 150, |_, y| if (100..120).contains(&y) { light } else { [r, g, b] })
}

/// The product's page size in mm with bleed.
fn page_mm(product: &Product) -> (f64, f64) {
    (product.trim_mm.0 + 2.0 * product.bleed_mm, product.trim_mm.1 + 2.0 * product.bleed_mm)
}

/// Page `page` (1-based) of a preview: its longer side is 600 px and it keeps the product's aspect
/// ratio. The background colour comes from a hash of all values, the top band is the accent, and
/// each shown value is a bar as long as the text, so any change shows.
pub(crate) fn preview_page(product: &Product, values: &[(&Dial, String)], page: u32) -> Vec<u8> {
    let (w_mm, h_mm) = page_mm(product);
    let scale = 600.0 / w_mm.max(h_mm);
    let (w, h) = (((w_mm * scale).round() as u32).max(1), ((h_mm * scale).round() as u32).max(1));

    let mut hash = Sha256::new();
    hash.update(product.id);
    for (dial, value) in values {
        hash.update(dial.id);
        hash.update([0]);
        hash.update(value);
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut background = [digest[0] / 2 + 100, digest[1] / 2 + 100, digest[2] / 2 + 100];
    if page > 1 {
        background = background.map(|c| c / 2);
    }
    let accent = match values.iter().find(|(d, _)| d.key == "Accent").map(|(_, v)| v.as_str()) {
        Some("red") => [200, 30, 30],
        Some(_) => [20, 30, 90],
        None => product.rgb,
    };
    let band = h / 8;
    let bar_height = (h / 24).max(2);
    let bars: Vec<u32> = values.iter().map(|(_, v)| (v.chars().count() as u32 * w / 50).min(w * 9 / 10)).collect();
    png_rgb(w, h, |x, y| {
        if y < band {
            return accent;
        }
        let row = (y - band) / (bar_height * 2);
        let inside = (y - band) % (bar_height * 2) < bar_height;
        match bars.get(row as usize) {
            Some(&len) if inside && x >= w / 20 && x < w / 20 + len => [255, 255, 255],
            _ => background,
        }
    })
}

fn png_rgb(w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&pixel(x, y));
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Encoding into memory fails only on a wrong data length, which the loop above rules out.
    let mut writer = encoder.write_header().expect("PNG header");
    writer.write_image_data(&data).expect("PNG data");
    writer.finish().expect("PNG end");
    out
}

fn pt(mm: f64) -> f32 {
    (mm * 72.0 / 25.4) as f32
}

/// The proof: one page per product page, MediaBox = trim + bleed, TrimBox = trim, and Helvetica
/// text lines with the product name and the non-empty values shown on that page (front-section dials on
/// the first page, back-section dials on the last). A static product's proof is fixed.
pub(crate) fn proof_pdf(product: &Product, values: &[(&Dial, String)]) -> Vec<u8> {
    let (w_mm, h_mm) = page_mm(product);
    let bleed = pt(product.bleed_mm);
    let (w, h) = (pt(w_mm), pt(h_mm));
    let mut alloc = Ref::new(1);
    let (catalog, tree, font, info) = (alloc.bump(), alloc.bump(), alloc.bump(), alloc.bump());
    let pages: Vec<(Ref, Ref)> = (0..product.pages.max(1)).map(|_| (alloc.bump(), alloc.bump())).collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(pages.iter().map(|p| p.0)).count(pages.len() as i32);
    pdf.document_info(info).producer(TextStr("podconnect uStore double")).title(TextStr(product.name));
    pdf.type1_font(font).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));

    let size = (pt(product.trim_mm.0) / 35.0).clamp(6.0, 12.0);
    let count = pages.len();
    for (index, &(page_id, content_id)) in pages.iter().enumerate() {
        let number = index + 1;
        let mut lines = vec![format!("{} - page {number} of {count}", product.name)];
        if values.is_empty() {
            lines.push(format!("Static product {}", product.friendly_id));
        }
        let last = number == count;
        for (dial, value) in values.iter().filter(|(_, v)| !v.is_empty()) {
            let front = dial.section.1 == "front";
            if (front && number == 1) || (!front && last) {
                lines.push(format!("{}: {value}", dial.title));
            }
        }

        let mut content = Content::new();
        content.begin_text();
        content.set_font(Name(b"F1"), size);
        content.next_line(bleed + size, h - bleed - 1.5 * size);
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                content.next_line(0.0, -1.3 * size);
            }
            content.show(Str(&win_ansi(line)));
        }
        content.end_text();
        pdf.stream(content_id, &content.finish());

        let mut page = pdf.page(page_id);
        page.parent(tree).media_box(Rect::new(0.0, 0.0, w, h)).trim_box(Rect::new(bleed, bleed, w - bleed, h - bleed));
        page.contents(content_id);
        page.resources().fonts().pair(Name(b"F1"), font);
        page.finish();
    }
    pdf.finish()
}

/// Helvetica's WinAnsi bytes: Latin-1 passes through, anything else becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c as u32 {
            0x20..=0x7e | 0xa0..=0xff => c as u32 as u8,
            _ => b'?',
        })
        .collect()
}
