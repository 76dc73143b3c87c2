//! The print-ready PDF: one page per composed page, each drawn from svg2pdf's vector XObject of the same
//! usvg tree the preview uses (fonts embedded as subsets), with trim/bleed boxes and optional crop marks.

use std::collections::HashMap;

use anyhow::anyhow;
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, TextStr};

use super::{Document, mm_to_pt};

/// Extra margin around the bleed that holds the crop marks.
const SLUG_MM: f64 = 10.0;
/// Crop marks start this far outside the bleed and are this long.
const MARK_GAP_MM: f64 = 2.0;
const MARK_LENGTH_MM: f64 = 7.0;
const MARK_WIDTH_PT: f32 = 0.25;

/// Builds the print-ready PDF of the document. No watermark: that is for previews only.
pub fn pdf(document: &Document) -> anyhow::Result<Vec<u8>> {
    let g = document.geometry;
    let slug = if g.crop_marks { mm_to_pt(SLUG_MM) } else { 0.0 };
    let bleed = mm_to_pt(g.bleed_mm);
    let (page_w, page_h) = (mm_to_pt(g.page_width_mm()), mm_to_pt(g.page_height_mm()));
    let (media_w, media_h) = (page_w + 2.0 * slug, page_h + 2.0 * slug);
    let trim = [slug + bleed, slug + bleed, media_w - slug - bleed, media_h - slug - bleed];
    let bleed_box = [slug, slug, media_w - slug, media_h - slug];

    let mut alloc = Ref::new(1);
    let catalog_id = alloc.bump();
    let page_tree_id = alloc.bump();
    let info_id = alloc.bump();
    let page_ids: Vec<Ref> = (0..document.page_count()).map(|_| alloc.bump()).collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id).pages(page_tree_id);
    pdf.pages(page_tree_id).kids(page_ids.iter().copied()).count(page_ids.len() as i32);
    pdf.document_info(info_id).producer(TextStr("podconnect")).creator(TextStr("podconnect"));

    let artwork = Name(b"Page");
    // Pages convert independently (each embeds its own font subsets).
    let converted = super::par_map(&document.pages, |tree| {
        svg2pdf::to_chunk(tree, svg2pdf::ConversionOptions::default())
            .map_err(|e| anyhow!("converting a page to PDF: {e}"))
    });
    for (result, &page_id) in converted.into_iter().zip(&page_ids) {
        let (chunk, xobject) = result?;
        // The chunk numbers its objects from 1; move them after ours.
        let mut map = HashMap::new();
        let chunk = chunk.renumber(|old| *map.entry(old).or_insert_with(|| alloc.bump()));
        let xobject = map[&xobject];
        let content_id = alloc.bump();

        let mut content = Content::new();
        // The XObject is 1 x 1 unit: scale it to the page (trim + bleed) and place it inside the slug.
        content.save_state();
        content.transform([page_w as f32, 0.0, 0.0, page_h as f32, slug as f32, slug as f32]);
        content.x_object(artwork);
        content.restore_state();
        if g.crop_marks {
            crop_marks(&mut content, trim, bleed);
        }
        pdf.stream(content_id, &content.finish());

        let mut page = pdf.page(page_id);
        page.parent(page_tree_id);
        page.media_box(Rect::new(0.0, 0.0, media_w as f32, media_h as f32));
        page.bleed_box(rect(bleed_box));
        page.trim_box(rect(trim));
        page.contents(content_id);
        page.resources().x_objects().pair(artwork, xobject);
        page.finish();
        pdf.extend(&chunk);
    }
    Ok(pdf.finish())
}

fn rect(r: [f64; 4]) -> Rect {
    Rect::new(r[0] as f32, r[1] as f32, r[2] as f32, r[3] as f32)
}

/// Thin black lines continuing the trim edges at each corner, outside the bleed so they are cut away.
fn crop_marks(content: &mut Content, trim: [f64; 4], bleed: f64) {
    let from = bleed + mm_to_pt(MARK_GAP_MM);
    let to = from + mm_to_pt(MARK_LENGTH_MM);
    content.save_state();
    content.set_line_width(MARK_WIDTH_PT);
    content.set_stroke_cmyk(0.0, 0.0, 0.0, 1.0);
    for (x, dx) in [(trim[0], -1.0), (trim[2], 1.0)] {
        for (y, dy) in [(trim[1], -1.0), (trim[3], 1.0)] {
            content.move_to((x + dx * from) as f32, y as f32);
            content.line_to((x + dx * to) as f32, y as f32);
            content.move_to(x as f32, (y + dy * from) as f32);
            content.line_to(x as f32, (y + dy * to) as f32);
        }
    }
    content.stroke();
    content.restore_state();
}
