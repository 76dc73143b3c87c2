//! The sheet PDF: each page of the print-ready PDF becomes one Form XObject, defined once and drawn
//! in every slot of every sheet side, so fonts and images are embedded once whatever the quantity.
//! Sides with the same page and the same number of pieces share one content stream.

use std::collections::HashMap;
use std::fmt::Write as _;

use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use super::{ImposeError, Matrix, Plan, SIZE_TOLERANCE_MM, compose, quarter_turns};

/// Points per millimetre.
const PT_PER_MM: f64 = 72.0 / 25.4;
/// A content stream may decompress to this much at most (a decompression bomb is refused).
const MAX_CONTENT_BYTES: usize = 256 << 20;
/// Page-tree parents followed at most when looking for an inherited attribute.
const MAX_TREE_DEPTH: usize = 64;

/// Builds the sheet PDF of `plan` from the piece's print-ready PDF (one copy of the piece, one page
/// per page of the piece, with TrimBox and BleedBox, as `render::pdf` makes it or a shipped file).
pub fn impose(print_ready_pdf: &[u8], plan: &Plan) -> Result<Vec<u8>, ImposeError> {
    plan.check()?;
    let mut doc = load(print_ready_pdf)?;
    let source_pages: Vec<ObjectId> = doc.page_iter().collect();
    let pdf_pages = u32::try_from(source_pages.len()).unwrap_or(u32::MAX);
    if pdf_pages != plan.piece.pages {
        return Err(ImposeError::PageCount { pdf_pages, piece_pages: plan.piece.pages });
    }

    // One form per source page and the map from its space to the piece's (mm from the trim's
    // top-left, upright).
    let mut forms = Vec::with_capacity(source_pages.len());
    for (index, &page_id) in source_pages.iter().enumerate() {
        let (form, to_piece) = page_form(&doc, page_id, index as u32 + 1, plan)?;
        forms.push((doc.add_object(form), to_piece));
    }

    let mut xobjects = Dictionary::new();
    for (index, (form_id, _)) in forms.iter().enumerate() {
        xobjects.set(form_name(index), Object::Reference(*form_id));
    }
    let resources_id = doc.add_object(Dictionary::from_iter([("XObject", Object::Dictionary(xobjects))]));

    let (sheet_w, sheet_h) = (plan.sheet.width_mm * PT_PER_MM, plan.sheet.height_mm * PT_PER_MM);
    // Sheet mm (top-left, y down) to PDF points (bottom-left, y up).
    let to_pdf: Matrix = [PT_PER_MM, 0.0, 0.0, -PT_PER_MM, 0.0, sheet_h];
    let marks = marks_content(plan, to_pdf);

    let pages_id = doc.new_object_id();
    let mut contents: HashMap<(Option<u32>, bool, u32), ObjectId> = HashMap::new();
    let mut kids = Vec::with_capacity(plan.page_count as usize);
    for side in plan.sides() {
        let key = (side.page, side.back, if side.page.is_some() { side.filled } else { 0 });
        let content_id = match contents.get(&key) {
            Some(id) => *id,
            None => {
                let mut content = String::new();
                if let Some(page) = side.page {
                    let (_, to_piece) = forms[page as usize];
                    for i in 0..side.filled {
                        let Some(slot) = plan.slot(i, side.back) else { break };
                        let m = compose(to_pdf, compose(slot.transform, to_piece));
                        let _ = writeln!(
                            content,
                            "q {} {} {} {} {} {} cm /{} Do Q",
                            num(m[0]),
                            num(m[1]),
                            num(m[2]),
                            num(m[3]),
                            num(m[4]),
                            num(m[5]),
                            form_name(page as usize)
                        );
                    }
                    content.push_str(&marks);
                }
                let mut stream = Stream::new(Dictionary::new(), content.into_bytes());
                stream.compress().map_err(|e| ImposeError::Pdf(format!("compressing a sheet: {e}")))?;
                let id = doc.add_object(stream);
                contents.insert(key, id);
                id
            }
        };
        let page = Dictionary::from_iter([
            ("Type", Object::Name(b"Page".to_vec())),
            ("Parent", Object::Reference(pages_id)),
            ("MediaBox", rect([0.0, 0.0, sheet_w, sheet_h])),
            ("Resources", Object::Reference(resources_id)),
            ("Contents", Object::Reference(content_id)),
        ]);
        kids.push(Object::Reference(doc.add_object(page)));
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(Dictionary::from_iter([
            ("Type", Object::Name(b"Pages".to_vec())),
            ("Kids", Object::Array(kids)),
            ("Count", Object::Integer(count)),
        ])),
    );
    let mut catalog =
        Dictionary::from_iter([("Type", Object::Name(b"Catalog".to_vec())), ("Pages", Object::Reference(pages_id))]);
    // What the pages' content may rely on: optional content (layers) and the output intent.
    if let Ok(source_catalog) = doc.catalog() {
        for key in [&b"OCProperties"[..], b"OutputIntents"] {
            if let Ok(value) = source_catalog.get(key) {
                catalog.set(key, value.clone());
            }
        }
    }
    let catalog_id = doc.add_object(catalog);
    let info_id = doc.add_object(Dictionary::from_iter([
        ("Producer", Object::string_literal("podconnect")),
        ("Creator", Object::string_literal("podconnect imposition")),
    ]));
    // A new trailer: the source's catalog, pages, outlines and annotations are dropped with it.
    doc.trailer =
        Dictionary::from_iter([("Root", Object::Reference(catalog_id)), ("Info", Object::Reference(info_id))]);
    doc.prune_objects();
    doc.renumber_objects();
    doc.version = "1.7".into();

    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| ImposeError::Pdf(format!("writing the sheets: {e}")))?;
    Ok(out)
}

fn load(bytes: &[u8]) -> Result<Document, ImposeError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(ImposeError::Pdf("the file is not a PDF".into()));
    }
    let doc = match Document::load_mem(bytes) {
        Ok(doc) => doc,
        Err(lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword) => return Err(encrypted()),
        Err(e) => return Err(ImposeError::Pdf(format!("it can not be read ({e})"))),
    };
    // lopdf opens files locked with an empty password; a printer may not, so both are refused.
    if doc.was_encrypted() || doc.is_encrypted() {
        return Err(encrypted());
    }
    Ok(doc)
}

fn encrypted() -> ImposeError {
    ImposeError::Pdf("it is encrypted (password-protected); export it again without a password".into())
}

fn form_name(index: usize) -> String {
    format!("P{}", index + 1)
}

/// A number for a content stream: short, and never in exponent notation.
fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn rect(r: [f64; 4]) -> Object {
    Object::Array(r.iter().map(|v| Object::Real(*v as f32)).collect())
}

/// The cut marks as content-stream operators (empty without marks).
fn marks_content(plan: &Plan, to_pdf: Matrix) -> String {
    let marks = plan.marks();
    if marks.is_empty() {
        return String::new();
    }
    let mut content = format!("q {} w 0 0 0 1 K\n", num(super::MARK_WIDTH_PT));
    for [x0, y0, x1, y1] in marks {
        let (a, b) = super::apply(to_pdf, (x0, y0));
        let (c, d) = super::apply(to_pdf, (x1, y1));
        let _ = writeln!(content, "{} {} m {} {} l", num(a), num(b), num(c), num(d));
    }
    content.push_str("S Q\n");
    content
}

/// The Form XObject of one source page, and the map from the page's space to piece mm.
fn page_form(doc: &Document, page_id: ObjectId, page: u32, plan: &Plan) -> Result<(Stream, Matrix), ImposeError> {
    let piece = plan.piece;
    let missing = |what: &str| ImposeError::Pdf(format!("page {page} has no {what}"));
    let media = page_box(doc, page_id, b"MediaBox", page)?.ok_or_else(|| missing("MediaBox"))?;
    let crop = page_box(doc, page_id, b"CropBox", page)?.unwrap_or(media);
    let bleed_box = page_box(doc, page_id, b"BleedBox", page)?.unwrap_or(crop);
    let trim = match page_box(doc, page_id, b"TrimBox", page)? {
        Some(trim) => trim,
        // No TrimBox: a page of trim plus the product's bleed is taken as such.
        None => {
            let b = piece.bleed_mm * PT_PER_MM;
            let inset = [bleed_box[0] + b, bleed_box[1] + b, bleed_box[2] - b, bleed_box[3] - b];
            if b > 0.0 && inset[2] > inset[0] && inset[3] > inset[1] { inset } else { bleed_box }
        }
    };
    let rotate = match inherited(doc, page_id, b"Rotate")? {
        Some(Object::Integer(r)) if r % 90 == 0 => r.rem_euclid(360) / 90,
        Some(Object::Integer(_)) => return Err(ImposeError::Pdf(format!("page {page} is turned by an odd angle"))),
        _ => 0,
    } as u8;

    // The trim as the page is seen (after /Rotate), in mm.
    let (w0, h0) = ((trim[2] - trim[0]) / PT_PER_MM, (trim[3] - trim[1]) / PT_PER_MM);
    let (seen_w, seen_h) = if rotate % 2 == 1 { (h0, w0) } else { (w0, h0) };
    let (pw, ph) = (piece.trim_width_mm, piece.trim_height_mm);
    let close = |a: f64, b: f64| (a - b).abs() <= SIZE_TOLERANCE_MM;
    let extra = if close(seen_w, pw) && close(seen_h, ph) {
        0
    } else if close(seen_w, ph) && close(seen_h, pw) {
        // Made the other way round: turned upright as the product is.
        1
    } else {
        return Err(ImposeError::SizeMismatch {
            page,
            pdf_width_mm: seen_w,
            pdf_height_mm: seen_h,
            piece_width_mm: pw,
            piece_height_mm: ph,
        });
    };
    // Page points (y up) → mm from the trim's top-left (y down), then /Rotate, then upright, then
    // scaled so the PDF's trim is exactly the product's (it may differ by rounding).
    let k = 1.0 / PT_PER_MM;
    let mut to_piece: Matrix = [k, 0.0, 0.0, -k, -trim[0] * k, trim[3] * k];
    to_piece = compose(quarter_turns(rotate, w0, h0), to_piece);
    to_piece = compose(quarter_turns(extra, seen_w, seen_h), to_piece);
    let (up_w, up_h) = if extra == 1 { (seen_h, seen_w) } else { (seen_w, seen_h) };
    to_piece = compose([pw / up_w, 0.0, 0.0, ph / up_h, 0.0, 0.0], to_piece);

    // Only the page's bleed shows, and no more of it than the product's (neighbours must not overlap).
    let b = piece.bleed_mm * PT_PER_MM;
    let bbox = [
        bleed_box[0].max(trim[0] - b),
        bleed_box[1].max(trim[1] - b),
        bleed_box[2].min(trim[2] + b),
        bleed_box[3].min(trim[3] + b),
    ];

    let mut dict = Dictionary::from_iter([
        ("Type", Object::Name(b"XObject".to_vec())),
        ("Subtype", Object::Name(b"Form".to_vec())),
        ("BBox", rect(bbox)),
    ]);
    if let Some(resources) = inherited(doc, page_id, b"Resources")? {
        dict.set("Resources", resources);
    }
    let page_dict = doc.get_dictionary(page_id).map_err(|e| ImposeError::Pdf(format!("page {page}: {e}")))?;
    if let Ok(group) = page_dict.get(b"Group") {
        dict.set("Group", group.clone());
    }

    let stream_ids = doc.get_page_contents(page_id);
    let streams: Vec<&Stream> =
        stream_ids.iter().filter_map(|id| doc.get_object(*id).and_then(Object::as_stream).ok()).collect();
    let stream = if let [only] = streams.as_slice() {
        // One stream: reused as it is, still compressed.
        for key in [&b"Filter"[..], b"DecodeParms"] {
            if let Ok(value) = only.dict.get(key) {
                dict.set(key, value.clone());
            }
        }
        Stream::new(dict, only.content.clone()).with_compression(false)
    } else {
        let mut content = Vec::new();
        for part in streams {
            let remaining = MAX_CONTENT_BYTES.saturating_sub(content.len());
            let data = part
                .decompressed_content_with_limit(remaining)
                .map_err(|e| ImposeError::Pdf(format!("page {page}'s content can not be read ({e})")))?;
            content.extend_from_slice(&data);
            content.push(b'\n');
        }
        let mut stream = Stream::new(dict, content);
        stream.compress().map_err(|e| ImposeError::Pdf(format!("compressing page {page}: {e}")))?;
        stream
    };
    Ok((stream, to_piece))
}

/// A page attribute, looked up the page tree when the page does not set it (ISO 32000-1, 7.7.3.4).
fn inherited(doc: &Document, page_id: ObjectId, key: &[u8]) -> Result<Option<Object>, ImposeError> {
    let mut node =
        doc.get_dictionary(page_id).map_err(|e| ImposeError::Pdf(format!("a page can not be read ({e})")))?;
    for _ in 0..MAX_TREE_DEPTH {
        if let Ok(value) = node.get(key) {
            return Ok(Some(value.clone()));
        }
        match node.get(b"Parent").and_then(Object::as_reference).and_then(|id| doc.get_dictionary(id)) {
            Ok(parent) => node = parent,
            Err(_) => return Ok(None),
        }
    }
    Err(ImposeError::Pdf("the page tree is too deep".into()))
}

/// A page box as `[x0, y0, x1, y1]` with x0 < x1 and y0 < y1, if the page (or its tree) sets it.
fn page_box(doc: &Document, page_id: ObjectId, key: &[u8], page: u32) -> Result<Option<[f64; 4]>, ImposeError> {
    let Some(value) = inherited(doc, page_id, key)? else { return Ok(None) };
    let bad = || ImposeError::Pdf(format!("page {page}'s {} is not a rectangle", String::from_utf8_lossy(key)));
    let value = match value {
        Object::Reference(id) => doc.get_object(id).map_err(|_| bad())?.clone(),
        other => other,
    };
    let items = value.as_array().map_err(|_| bad())?;
    let numbers: Vec<f64> = items
        .iter()
        .map(|item| match doc.dereference(item) {
            Ok((_, Object::Integer(i))) => Ok(*i as f64),
            Ok((_, Object::Real(r))) => Ok(f64::from(*r)),
            _ => Err(bad()),
        })
        .collect::<Result<_, _>>()?;
    let [x0, y0, x1, y1] = numbers.as_slice() else { return Err(bad()) };
    let r = [x0.min(*x1), y0.min(*y1), x0.max(*x1), y0.max(*y1)];
    if r.iter().any(|v| !v.is_finite()) || r[2] - r[0] < 1.0 || r[3] - r[1] < 1.0 {
        return Err(bad());
    }
    Ok(Some(r))
}
