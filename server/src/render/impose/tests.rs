//! Tests of imposition: plan counts on the sizes that matter, slot and mark geometry, the sheet PDF
//! as poppler reads and rasterizes it (trims where the marks say, fronts and backs lining up through
//! the paper, nothing outside the printable area), and sheet previews.

use std::path::{Path, PathBuf};
use std::process::Command;

use pdf_writer::{Content, Finish, Pdf, Rect, Ref};

use super::*;

const A4: Sheet = Sheet { width_mm: 210.0, height_mm: 297.0, margin_mm: 4.2 };
const A3: Sheet = Sheet { width_mm: 297.0, height_mm: 420.0, margin_mm: 4.2 };
const LETTER: Sheet = Sheet { width_mm: 215.9, height_mm: 279.4, margin_mm: 4.2 };
const CARD: Piece = Piece { trim_width_mm: 85.0, trim_height_mm: 55.0, bleed_mm: 3.0, pages: 2 };
const POSTCARD: Piece = Piece { trim_width_mm: 148.0, trim_height_mm: 105.0, bleed_mm: 2.0, pages: 2 };
const A5_FLYER: Piece = Piece { trim_width_mm: 148.0, trim_height_mm: 210.0, bleed_mm: 3.0, pages: 1 };
const A3_POSTER: Piece = Piece { trim_width_mm: 297.0, trim_height_mm: 420.0, bleed_mm: 3.0, pages: 1 };
const A4_FLYER: Piece = Piece { trim_width_mm: 210.0, trim_height_mm: 297.0, bleed_mm: 0.0, pages: 1 };

fn options(duplex: Duplex, quantity: u32) -> PlanOptions {
    PlanOptions { duplex, quantity, fit: false, gutter_mm: 0.0 }
}

fn planned(piece: Piece, sheet: Sheet, duplex: Duplex, quantity: u32) -> Plan {
    let p = plan(&piece, &sheet, &options(duplex, quantity)).expect("a plan");
    p.check().expect("plan() makes consistent plans");
    p
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

// ---------------------------------------------------------------------------------------------
// Plans

#[test]
fn business_cards_on_a4_are_nine_up_turned() {
    let p = planned(CARD, A4, Duplex::LongEdge, 100);
    assert_eq!((p.columns, p.rows, p.per_sheet, p.rotated), (3, 3, 9, true));
    assert!(p.cut_marks);
    assert_eq!(p.scale, 1.0);
    assert_eq!((p.batches, p.sheet_count, p.page_count), (12, 12, 24));
    assert!(!p.backs_separate);
    let sides = p.sides();
    assert_eq!(sides.len(), 24);
    assert_eq!(sides[0], Side { sheet: 0, back: false, page: Some(0), filled: 9 });
    assert_eq!(sides[1], Side { sheet: 0, back: true, page: Some(1), filled: 9 });
    // 11 full sheets hold 99: the last one carries a single card.
    assert_eq!(sides[23], Side { sheet: 11, back: true, page: Some(1), filled: 1 });
}

#[test]
fn business_cards_without_bleed_on_a4_are_ten_up() {
    let p = planned(Piece { bleed_mm: 0.0, ..CARD }, A4, Duplex::LongEdge, 100);
    assert_eq!((p.columns, p.rows, p.per_sheet, p.rotated), (2, 5, 10, false));
    // Butted: the two columns share one cut, so three vertical cuts and six horizontal ones.
    let marks = p.marks();
    let vertical = marks.iter().filter(|m| m[0] == m[2]).count();
    let horizontal = marks.iter().filter(|m| m[1] == m[3]).count();
    assert_eq!((vertical, horizontal), (2 * 3, 2 * 6));

    // With a gutter each trim edge is its own cut (and turned cards fit better).
    let gutter = PlanOptions { gutter_mm: 4.0, ..options(Duplex::LongEdge, 100) };
    let p = plan(&Piece { bleed_mm: 0.0, ..CARD }, &A4, &gutter).unwrap();
    assert_eq!((p.columns, p.rows, p.rotated), (3, 3, true));
    assert!(close(p.pitch_mm[0], 59.0, 1e-9) && close(p.pitch_mm[1], 89.0, 1e-9), "{:?}", p.pitch_mm);
    let vertical = p.marks().iter().filter(|m| m[0] == m[2]).count();
    assert_eq!(vertical, 2 * 6);
}

#[test]
fn business_cards_on_us_letter() {
    let p = planned(CARD, LETTER, Duplex::LongEdge, 100);
    assert_eq!((p.columns, p.rows, p.per_sheet, p.rotated), (2, 4, 8, false));
    let p = planned(Piece { bleed_mm: 0.0, ..CARD }, LETTER, Duplex::LongEdge, 100);
    assert_eq!((p.columns, p.rows, p.per_sheet, p.rotated), (3, 3, 9, true));
}

#[test]
fn postcards_and_flyers_on_a4() {
    let p = planned(POSTCARD, A4, Duplex::ShortEdge, 10);
    assert_eq!((p.columns, p.rows, p.per_sheet, p.rotated), (1, 2, 2, false));
    assert_eq!((p.sheet_count, p.page_count), (5, 10));

    let p = planned(A5_FLYER, A4, Duplex::LongEdge, 3);
    assert_eq!((p.per_sheet, p.rotated, p.cut_marks), (1, false, true));
    // A one-page piece is printed one-sided whatever was asked.
    assert_eq!((p.duplex, p.sheet_count, p.page_count), (Duplex::OneSided, 3, 3));
    let slot = p.front_slot(0).unwrap();
    assert!(close(slot.x_mm, 31.0, 1e-9) && close(slot.y_mm, 43.5, 1e-9), "centred: {slot:?}");
}

#[test]
fn a_piece_the_size_of_the_sheet_is_printed_alone_uncut() {
    for (piece, sheet) in [(A3_POSTER, A3), (A4_FLYER, A4)] {
        let p = planned(piece, sheet, Duplex::OneSided, 2);
        assert_eq!((p.per_sheet, p.scale, p.cut_marks, p.rotated), (1, 1.0, false, false), "{piece:?}");
        let slot = p.front_slot(0).unwrap();
        assert!(close(slot.x_mm, 0.0, 1e-9) && close(slot.y_mm, 0.0, 1e-9));
        assert!(p.marks().is_empty());
    }
}

#[test]
fn a_piece_larger_than_the_sheet_does_not_fit_unless_fit_is_chosen() {
    let err = plan(&A3_POSTER, &A4, &options(Duplex::OneSided, 1)).unwrap_err();
    assert!(matches!(err, ImposeError::DoesNotFit { .. }));
    let text = err.to_string();
    assert!(text.contains("297×420 mm piece") && text.contains("210×297 mm sheet"), "{text}");
    assert!(text.contains("fit to sheet"), "{text}");

    let fit = PlanOptions { fit: true, ..options(Duplex::OneSided, 1) };
    let p = plan(&A3_POSTER, &A4, &fit).unwrap();
    assert_eq!((p.per_sheet, p.rotated, p.cut_marks), (1, false, true));
    assert!(p.scale < 1.0 && p.scale > 0.6, "{}", p.scale);
    assert_inside_printable(&p);

    // Much larger than the sheet, and landscape: turned to be as large as possible.
    let banner = Piece { trim_width_mm: 1000.0, trim_height_mm: 500.0, bleed_mm: 5.0, pages: 1 };
    assert!(matches!(plan(&banner, &A3, &options(Duplex::OneSided, 1)), Err(ImposeError::DoesNotFit { .. })));
    let p = plan(&banner, &A3, &fit).unwrap();
    assert!(p.rotated && p.scale < 0.4, "{p:?}");
    assert_inside_printable(&p);
}

#[test]
fn fit_never_scales_up() {
    let fit = PlanOptions { fit: true, ..options(Duplex::LongEdge, 10) };
    let p = plan(&CARD, &A4, &fit).unwrap();
    assert_eq!((p.scale, p.per_sheet), (1.0, 9));
}

#[test]
fn sides_and_sheets_follow_the_duplex_mode() {
    // Two pages one-sided: the backs come on their own sheets.
    let p = planned(CARD, A4, Duplex::OneSided, 20);
    assert!(p.backs_separate);
    assert_eq!((p.batches, p.sheet_count, p.page_count), (3, 6, 6));
    assert!(p.sides().iter().all(|s| !s.back));
    assert_eq!(p.sides()[5], Side { sheet: 5, back: false, page: Some(1), filled: 2 });

    // Three pages duplex: the third page's sheet has a blank back.
    let p = planned(Piece { pages: 3, ..CARD }, A4, Duplex::ShortEdge, 9);
    assert_eq!((p.sheet_count, p.page_count), (2, 4));
    assert_eq!(p.sides()[3], Side { sheet: 1, back: true, page: None, filled: 9 });

    // One-page piece: one side per sheet even when duplex was asked.
    let p = planned(Piece { pages: 1, ..CARD }, A4, Duplex::ShortEdge, 10);
    assert_eq!((p.duplex, p.sheet_count, p.page_count, p.backs_separate), (Duplex::OneSided, 2, 2, false));
}

#[test]
fn bad_input_is_an_error_with_a_reason() {
    let err = plan(&CARD, &A4, &options(Duplex::LongEdge, 0)).unwrap_err();
    assert!(err.to_string().contains("quantity"), "{err}");
    // 5,000 sheets hold 45,000 cards; one more needs another sheet.
    assert_eq!(planned(CARD, A4, Duplex::LongEdge, 45_000).sheet_count, MAX_SHEETS);
    let err = plan(&CARD, &A4, &options(Duplex::LongEdge, 45_001)).unwrap_err();
    assert!(matches!(err, ImposeError::TooManySheets { sheets: 5001, max_quantity: 45_000, .. }), "{err:?}");
    assert!(err.to_string().contains("at most 45000 pieces"), "{err}");
    let err = plan(&CARD, &A4, &options(Duplex::OneSided, 22_501)).unwrap_err();
    assert!(matches!(err, ImposeError::TooManySheets { max_quantity: 22_500, .. }), "{err:?}");

    for piece in [
        Piece { trim_width_mm: f64::NAN, ..CARD },
        Piece { trim_height_mm: -1.0, ..CARD },
        Piece { bleed_mm: f64::INFINITY, ..CARD },
        Piece { pages: 0, ..CARD },
    ] {
        assert!(matches!(plan(&piece, &A4, &options(Duplex::LongEdge, 1)), Err(ImposeError::Invalid(_))), "{piece:?}");
    }
    for sheet in [Sheet { margin_mm: 200.0, ..A4 }, Sheet { width_mm: 0.0, ..A4 }, Sheet { margin_mm: -1.0, ..A4 }] {
        assert!(
            matches!(plan(&CARD, &sheet, &options(Duplex::LongEdge, 1)), Err(ImposeError::Invalid(_))),
            "{sheet:?}"
        );
    }
    let gutter = PlanOptions { gutter_mm: f64::NAN, ..options(Duplex::LongEdge, 1) };
    assert!(matches!(plan(&CARD, &A4, &gutter), Err(ImposeError::Invalid(_))));
}

/// Everything printed (each piece with its bleed, each mark) lies in the printable area, and no
/// mark crosses a piece.
fn assert_inside_printable(p: &Plan) {
    p.check().expect("plan() makes consistent plans");
    let m = p.sheet.margin_mm;
    let (lo_x, hi_x, lo_y, hi_y) = (m, p.sheet.width_mm - m, m, p.sheet.height_mm - m);
    let inside = |x: f64, y: f64| x >= lo_x - 1e-9 && x <= hi_x + 1e-9 && y >= lo_y - 1e-9 && y <= hi_y + 1e-9;
    let bleed = p.piece.bleed_mm * p.scale;
    let mut pieces = Vec::new();
    for i in 0..p.per_sheet {
        for back in [false, true] {
            let s = p.slot(i, back).unwrap();
            let r = [s.x_mm - bleed, s.y_mm - bleed, s.x_mm + s.width_mm + bleed, s.y_mm + s.height_mm + bleed];
            assert!(inside(r[0], r[1]) && inside(r[2], r[3]), "slot {i} {r:?} outside the printable area");
            pieces.push(r);
        }
    }
    for [x0, y0, x1, y1] in p.marks() {
        assert!(inside(x0, y0) && inside(x1, y1), "mark outside the printable area");
        for r in &pieces {
            let crosses = x0.max(x1) > r[0] && x0.min(x1) < r[2] && y0.max(y1) > r[1] && y0.min(y1) < r[3];
            assert!(!crosses, "mark {:?} over a piece {r:?}", [x0, y0, x1, y1]);
        }
    }
}

#[test]
fn everything_printed_stays_inside_the_printable_area() {
    for (piece, sheet) in [
        (CARD, A4),
        (Piece { bleed_mm: 0.0, ..CARD }, A4),
        (CARD, LETTER),
        (POSTCARD, A4),
        (A5_FLYER, A4),
        (CARD, A3),
        (Piece { trim_width_mm: 20.0, trim_height_mm: 20.0, bleed_mm: 1.0, pages: 1 }, A4),
    ] {
        for duplex in [Duplex::LongEdge, Duplex::ShortEdge] {
            assert_inside_printable(&planned(piece, sheet, duplex, 50));
        }
    }
}

#[test]
fn marks_continue_every_trim_edge_outside_the_block() {
    let p = planned(CARD, A4, Duplex::LongEdge, 9);
    let marks = p.marks();
    let mut xs: Vec<f64> = marks.iter().filter(|m| m[0] == m[2]).map(|m| m[0]).collect();
    let mut ys: Vec<f64> = marks.iter().filter(|m| m[1] == m[3]).map(|m| m[1]).collect();
    xs.dedup_by(|a, b| close(*a, *b, 1e-9));
    ys.dedup_by(|a, b| close(*a, *b, 1e-9));
    // With bleed, every column has its own two cuts.
    assert_eq!((xs.len(), ys.len()), (6, 6));
    for i in 0..p.per_sheet {
        let s = p.front_slot(i).unwrap();
        for x in [s.x_mm, s.x_mm + s.width_mm] {
            assert!(xs.iter().any(|m| close(*m, x, 1e-9)), "no mark continues x = {x}");
        }
        for y in [s.y_mm, s.y_mm + s.height_mm] {
            assert!(ys.iter().any(|m| close(*m, y, 1e-9)), "no mark continues y = {y}");
        }
    }
    for m in &marks {
        let length = (m[2] - m[0]).abs() + (m[3] - m[1]).abs();
        assert!(close(length, MARK_LENGTH_MM, 1e-9));
    }
}

/// Backs line up through the paper: the back of a piece's corner is where the front's corner is
/// once the sheet is turned over, and the back is turned, never mirrored.
#[test]
fn back_slots_are_the_fronts_seen_through_the_paper() {
    let cases = [
        (CARD, Duplex::LongEdge, true, 3),
        (CARD, Duplex::ShortEdge, true, 1),
        (POSTCARD, Duplex::LongEdge, false, 0),
        (POSTCARD, Duplex::ShortEdge, false, 2),
    ];
    for (piece, duplex, rotated, back_turns) in cases {
        let p = planned(piece, A4, duplex, 100);
        assert_eq!(p.rotated, rotated);
        let (w, h) = (piece.trim_width_mm, piece.trim_height_mm);
        let (sw, sh) = (A4.width_mm, A4.height_mm);
        let turn_over = |(x, y): (f64, f64)| match duplex {
            Duplex::LongEdge => (sw - x, y),
            _ => (x, sh - y),
        };
        for i in 0..p.per_sheet {
            let front = p.front_slot(i).unwrap();
            let back = p.back_slot(i).unwrap();
            assert_eq!(back.turns, back_turns, "{duplex:?} slot {i}");
            let [a, b, c, d, ..] = back.transform;
            assert!(a * d - b * c > 0.0, "the back is mirrored");
            // A point of the piece at (u, v) seen from the front is at (w - u, v) seen from the back.
            for (u, v) in [(0.0, 0.0), (w, 0.0), (0.0, h), (w, h), (10.0, 3.0)] {
                let on_front = apply(front.transform, (u, v));
                let on_back = turn_over(apply(back.transform, (w - u, v)));
                assert!(
                    close(on_front.0, on_back.0, 1e-9) && close(on_front.1, on_back.1, 1e-9),
                    "{duplex:?} slot {i} ({u}, {v}): front {on_front:?} back {on_back:?}"
                );
            }
            // The back's trim is the front's, mirrored by the turn of the sheet.
            let (x, y) = turn_over((front.x_mm, front.y_mm));
            let (bx, by) = match duplex {
                Duplex::LongEdge => (x - front.width_mm, y),
                _ => (x, y - front.height_mm),
            };
            assert!(close(back.x_mm, bx, 1e-9) && close(back.y_mm, by, 1e-9), "{back:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Source PDFs and poppler

/// Grey levels of the test pages: the bleed, each page's trim area, and the corner marker.
const BLEED_GRAY: f32 = 0.8;
const TRIM_GRAYS: [f32; 4] = [0.3, 0.5, 0.4, 0.6];
const MARKER_GRAY: f32 = 0.0;
const MARKER_MM: f64 = 6.0;

fn pt(mm: f64) -> f32 {
    (mm * 72.0 / 25.4) as f32
}

/// Where a page's corner marker sits, in piece mm (its centre): top-right on odd pages (fronts),
/// top-left on even pages (backs), so the two are back to back through the paper.
fn marker_centre(piece: &Piece, page: usize) -> (f64, f64) {
    let inset = 2.0 + MARKER_MM / 2.0;
    if page.is_multiple_of(2) { (piece.trim_width_mm - inset, inset) } else { (inset, inset) }
}

/// A print-ready PDF of `piece` as pdf-writer makes it: each page's bleed a light grey, its trim
/// area a darker grey of its own, a black marker square at a top corner; with `slug_mm` a dark slug
/// with crop marks around the bleed (which must never show on the sheet).
fn source_pdf(piece: &Piece, slug_mm: f64) -> Vec<u8> {
    source_pdf_made(piece, slug_mm, Made::Plainly)
}

/// How a test PDF is put together: the same pages, written as other producers write them.
#[derive(Clone, Copy, PartialEq)]
enum Made {
    Plainly,
    /// MediaBox and Resources on the page tree, the content in two streams.
    Inherited,
    /// Each page stored turned a quarter turn with `/Rotate 90`, so it is seen as the others.
    Rotated,
}

fn source_pdf_made(piece: &Piece, slug_mm: f64, made: Made) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let (catalog, tree) = (Ref::new(1), Ref::new(2));
    let pages: Vec<(Ref, Ref)> = (0..piece.pages as i32).map(|i| (Ref::new(3 + 2 * i), Ref::new(4 + 2 * i))).collect();
    pdf.catalog(catalog).pages(tree);
    let (w, h, b) = (piece.trim_width_mm, piece.trim_height_mm, piece.bleed_mm);
    let (media_w, media_h) = (w + 2.0 * (b + slug_mm), h + 2.0 * (b + slug_mm));
    let media = match made {
        Made::Rotated => Rect::new(0.0, 0.0, pt(media_h), pt(media_w)),
        _ => Rect::new(0.0, 0.0, pt(media_w), pt(media_h)),
    };
    let mut node = pdf.pages(tree);
    node.kids(pages.iter().map(|p| p.0)).count(pages.len() as i32);
    if made == Made::Inherited {
        node.media_box(media);
        node.resources().finish();
    }
    node.finish();
    // A box as seen, in page space: turned back for a page stored turned.
    let stored = |x0: f64, y0: f64, x1: f64, y1: f64| match made {
        Made::Rotated => Rect::new(pt(media_h - y1), pt(x0), pt(media_h - y0), pt(x1)),
        _ => Rect::new(pt(x0), pt(y0), pt(x1), pt(y1)),
    };
    for (i, &(page_id, content_id)) in pages.iter().enumerate() {
        let mut c = Content::new();
        if made == Made::Rotated {
            // Drawn as seen; the viewer turns the page a quarter turn clockwise.
            c.transform([0.0, 1.0, -1.0, 0.0, pt(media_h), 0.0]);
        }
        if slug_mm > 0.0 {
            c.set_fill_gray(0.1).rect(0.0, 0.0, pt(media_w), pt(media_h)).fill_nonzero();
            c.set_stroke_gray(0.0).set_line_width(0.25);
            for x in [slug_mm + b, slug_mm + b + w] {
                c.move_to(pt(x), 0.0).line_to(pt(x), pt(slug_mm)).stroke();
            }
        }
        c.set_fill_gray(BLEED_GRAY).rect(pt(slug_mm), pt(slug_mm), pt(w + 2.0 * b), pt(h + 2.0 * b)).fill_nonzero();
        let mut second = Content::new();
        let part = if made == Made::Inherited { &mut second } else { &mut c };
        part.set_fill_gray(TRIM_GRAYS[i % 4]).rect(pt(slug_mm + b), pt(slug_mm + b), pt(w), pt(h)).fill_nonzero();
        // The marker, from piece mm (top-left, y down) to page points.
        let (mx, my) = marker_centre(piece, i);
        let half = MARKER_MM / 2.0;
        let (x0, y0) = (slug_mm + b + mx - half, slug_mm + b + (h - my) - half);
        part.set_fill_gray(MARKER_GRAY).rect(pt(x0), pt(y0), pt(MARKER_MM), pt(MARKER_MM)).fill_nonzero();
        pdf.stream(content_id, &c.finish());
        let second_id = Ref::new(100 + i as i32);
        if made == Made::Inherited {
            pdf.stream(second_id, &second.finish());
        }
        let mut page = pdf.page(page_id);
        page.parent(tree);
        if made == Made::Inherited {
            page.insert(pdf_writer::Name(b"Contents")).array().items([content_id, second_id]);
        } else {
            page.contents(content_id);
            page.media_box(media);
            page.resources().finish();
        }
        if made == Made::Rotated {
            page.pair(pdf_writer::Name(b"Rotate"), 90);
        }
        let (s, t) = (slug_mm, slug_mm + b);
        page.bleed_box(stored(s, s, s + w + 2.0 * b, s + h + 2.0 * b));
        page.trim_box(stored(t, t, t + w, t + h));
        page.finish();
    }
    pdf.finish()
}

/// Poppler's tools are needed: the README's test command installs them (scripts/test.sh); a
/// check that cannot run fails rather than passing unchecked.
fn poppler() -> bool {
    let found = Command::new("pdfinfo").arg("-v").output().is_ok();
    assert!(found, "poppler-utils (pdfinfo, pdftoppm, pdffonts) is not installed: run the README's test command");
    found
}

/// IMPOSE_TEST_DUMP=<dir> keeps the sheets a test made, to look at.
fn dump(name: &str, pdf: &[u8]) {
    if let Some(dir) = std::env::var_os("IMPOSE_TEST_DUMP") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.pdf")), pdf).unwrap();
    }
}

fn write_temp(dir: &Path, pdf: &[u8]) -> PathBuf {
    let path = dir.join("sheets.pdf");
    std::fs::write(&path, pdf).unwrap();
    path
}

/// `pdfinfo`'s page count and first page size in points; it must have nothing to complain about.
fn pdfinfo(pdf: &[u8]) -> (u32, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), pdf);
    let out = Command::new("pdfinfo").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "pdfinfo: {stderr}");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_else(|| panic!("no {name}"))
    };
    let pages = field("Pages:").parse().unwrap();
    let size: Vec<f64> = field("Page size:").split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (pages, size[0], size[1])
}

/// A greyscale raster of one page (1-based).
struct Raster {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
    px_per_mm: f64,
}

impl Raster {
    fn get(&self, x: usize, y: usize) -> u8 {
        self.pixels[y * self.width + x]
    }

    /// The pixel at a point in sheet mm.
    fn at(&self, (x, y): (f64, f64)) -> u8 {
        let px = ((x * self.px_per_mm) as usize).min(self.width - 1);
        let py = ((y * self.px_per_mm) as usize).min(self.height - 1);
        self.get(px, py)
    }
}

fn rasterize(pdf: &[u8], page: u32, dpi: u32) -> Raster {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), pdf);
    let prefix = dir.path().join("page");
    let out = Command::new("pdftoppm")
        .args(["-gray", "-r", &dpi.to_string(), "-f", &page.to_string(), "-l", &page.to_string(), "-singlefile"])
        .arg(&path)
        .arg(&prefix)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "pdftoppm: {stderr}");
    let bytes = std::fs::read(dir.path().join("page.pgm")).unwrap();
    // P5 <width> <height> 255 <pixels>
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P5");
    let (width, height): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let pixels = bytes[at + 1..].to_vec();
    assert_eq!(pixels.len(), width * height);
    Raster { width, height, pixels, px_per_mm: f64::from(dpi) / 25.4 }
}

fn level(gray: f32) -> f64 {
    f64::from(gray) * 255.0
}

/// Walks from `start` (px) in direction `step` along `profile` while the pixels are the inside
/// grey; returns where the edge to the outside grey lies, in px, from the partly covered pixel.
fn edge(profile: &[u8], start: usize, step: isize, inside: f64, outside: f64) -> f64 {
    let mut i = start as isize;
    loop {
        let v = f64::from(profile[i as usize]);
        if (v - inside).abs() > 6.0 {
            let covered = ((outside - v) / (outside - inside)).clamp(0.0, 1.0);
            return if step < 0 { i as f64 + 1.0 - covered } else { i as f64 + covered };
        }
        i += step;
        assert!(i >= 0 && (i as usize) < profile.len(), "no edge found");
    }
}

/// The trim rectangle (mm) of the piece whose trim contains `centre`, found from the raster alone:
/// where its trim grey meets the bleed grey on the row and column through `centre`.
fn trim_in_raster(r: &Raster, centre: (f64, f64), trim_gray: f32) -> [f64; 4] {
    let (cx, cy) = ((centre.0 * r.px_per_mm) as usize, (centre.1 * r.px_per_mm) as usize);
    let (inside, outside) = (level(trim_gray), level(BLEED_GRAY));
    assert!((f64::from(r.get(cx, cy)) - inside).abs() <= 6.0, "no trim grey at {centre:?}: {}", r.get(cx, cy));
    let row: Vec<u8> = (0..r.width).map(|x| r.get(x, cy)).collect();
    let column: Vec<u8> = (0..r.height).map(|y| r.get(cx, y)).collect();
    let mm = |px: f64| px / r.px_per_mm;
    [
        mm(edge(&row, cx, -1, inside, outside)),
        mm(edge(&column, cy, -1, inside, outside)),
        mm(edge(&row, cx, 1, inside, outside)),
        mm(edge(&column, cy, 1, inside, outside)),
    ]
}

/// Centres (px) of the dark runs along a profile: the cut marks crossing it.
fn dark_lines(profile: &[u8]) -> Vec<f64> {
    let mut lines = Vec::new();
    let mut run: Option<(f64, f64)> = None;
    for (i, &v) in profile.iter().enumerate() {
        let ink = 255.0 - f64::from(v);
        if ink > 8.0 {
            let (sum, weight) = run.unwrap_or((0.0, 0.0));
            run = Some((sum + (i as f64 + 0.5) * ink, weight + ink));
        } else if let Some((sum, weight)) = run.take() {
            lines.push(sum / weight);
        }
    }
    lines.extend(run.map(|(sum, weight)| sum / weight));
    lines
}

/// Checks one side as poppler draws it: each of the `filled` pieces' trims is where the plan says
/// and where the marks, found in the raster, say; the unused slots are blank; nothing is printed
/// outside the printable area.
fn check_side(pdf: &[u8], p: &Plan, page: u32, dpi: u32, source_page: usize, filled: u32) {
    let r = rasterize(pdf, page, dpi);
    let px = 1.0 / r.px_per_mm;
    assert_eq!(r.width, (p.sheet.width_mm * r.px_per_mm).round() as usize);
    let mut edges_x = Vec::new();
    let mut edges_y = Vec::new();
    let back = page.is_multiple_of(2) && p.duplex != Duplex::OneSided;
    for i in 0..p.per_sheet {
        let s = p.slot(i, back).unwrap();
        let centre = (s.x_mm + s.width_mm / 2.0, s.y_mm + s.height_mm / 2.0);
        if i >= filled {
            assert_eq!(r.at(centre), 255, "slot {i} of page {page} should be empty");
            continue;
        }
        let found = trim_in_raster(&r, centre, TRIM_GRAYS[source_page % 4]);
        let expected = [s.x_mm, s.y_mm, s.x_mm + s.width_mm, s.y_mm + s.height_mm];
        for k in 0..4 {
            assert!(close(found[k], expected[k], px), "slot {i}: trim {found:?}, planned {expected:?}");
        }
        edges_x.extend([found[0], found[2]]);
        edges_y.extend([found[1], found[3]]);
        // The page's marker is in its corner, turned as the slot says.
        let marker = apply(s.transform, marker_centre(&p.piece, source_page));
        assert!(r.at(marker) < 40, "slot {i}: no marker at {marker:?}");
    }

    // The marks, read across the raster in the bands above and left of the block.
    let marks = p.marks();
    if let (Some(top), Some(left)) = (marks.iter().find(|m| m[0] == m[2]), marks.iter().find(|m| m[1] == m[3])) {
        let band_y = (((top[1] + top[3]) / 2.0) * r.px_per_mm) as usize;
        let band_x = (((left[0] + left[2]) / 2.0) * r.px_per_mm) as usize;
        let xs: Vec<f64> = dark_lines(&(0..r.width).map(|x| r.get(x, band_y)).collect::<Vec<_>>());
        let ys: Vec<f64> = dark_lines(&(0..r.height).map(|y| r.get(band_x, y)).collect::<Vec<_>>());
        let xs: Vec<f64> = xs.into_iter().map(|v| v * px).collect();
        let ys: Vec<f64> = ys.into_iter().map(|v| v * px).collect();
        let expected_x = marks.iter().filter(|m| m[0] == m[2]).count() / 2;
        let expected_y = marks.iter().filter(|m| m[1] == m[3]).count() / 2;
        assert_eq!((xs.len(), ys.len()), (expected_x, expected_y), "marks found: {xs:?} {ys:?}");
        // Every trim edge found in the raster is continued by a mark found in the raster.
        for (edges, lines) in [(&edges_x, &xs), (&edges_y, &ys)] {
            for e in edges {
                assert!(lines.iter().any(|l| close(*l, *e, px)), "trim edge {e} mm has no mark: {lines:?}");
            }
        }
    }

    // Nothing outside the printable area (one pixel of antialiasing allowed).
    let m = p.sheet.margin_mm * r.px_per_mm - 1.0;
    for y in 0..r.height {
        for x in 0..r.width {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            let outside = fx < m || fy < m || fx > r.width as f64 - m || fy > r.height as f64 - m;
            if outside && p.cut_marks {
                assert_eq!(r.get(x, y), 255, "ink at ({x}, {y}) px, outside the printable area");
            }
        }
    }
}

#[test]
fn business_cards_on_a4_print_where_the_marks_say() {
    if !poppler() {
        return;
    }
    let p = planned(CARD, A4, Duplex::LongEdge, 100);
    let source = source_pdf(&CARD, 10.0);
    let pdf = impose(&source, &p).unwrap();
    dump("cards-a4", &pdf);
    let (pages, w, h) = pdfinfo(&pdf);
    assert_eq!(pages, 24);
    assert!(close(w, 595.276, 0.01) && close(h, 841.89, 0.01), "{w} x {h}");
    check_side(&pdf, &p, 1, 100, 0, 9);
    check_side(&pdf, &p, 2, 100, 1, 9);
    // The last sheet carries the one card left.
    check_side(&pdf, &p, 23, 100, 0, 1);
    check_side(&pdf, &p, 24, 100, 1, 1);
}

#[test]
fn business_cards_on_us_letter_print_where_the_marks_say() {
    if !poppler() {
        return;
    }
    let p = planned(CARD, LETTER, Duplex::ShortEdge, 20);
    let pdf = impose(&source_pdf(&CARD, 0.0), &p).unwrap();
    let (pages, w, h) = pdfinfo(&pdf);
    assert_eq!(pages, 6);
    assert!(close(w, 612.0, 0.01) && close(h, 792.0, 0.01), "{w} x {h}");
    check_side(&pdf, &p, 1, 100, 0, 8);
    check_side(&pdf, &p, 6, 100, 1, 4);
}

#[test]
fn postcards_and_an_a5_flyer_on_a4() {
    if !poppler() {
        return;
    }
    let p = planned(POSTCARD, A4, Duplex::LongEdge, 3);
    let pdf = impose(&source_pdf(&POSTCARD, 0.0), &p).unwrap();
    assert_eq!(pdfinfo(&pdf).0, 4);
    check_side(&pdf, &p, 1, 100, 0, 2);
    check_side(&pdf, &p, 4, 100, 1, 1);

    let p = planned(A5_FLYER, A4, Duplex::LongEdge, 2);
    let pdf = impose(&source_pdf(&A5_FLYER, 5.0), &p).unwrap();
    assert_eq!(pdfinfo(&pdf).0, 2);
    check_side(&pdf, &p, 2, 100, 0, 1);
}

#[test]
fn an_a3_poster_on_a3_is_centred_uncut_and_on_a4_only_when_fitted() {
    if !poppler() {
        return;
    }
    let source = source_pdf(&A3_POSTER, 0.0);
    let p = planned(A3_POSTER, A3, Duplex::OneSided, 1);
    let pdf = impose(&source, &p).unwrap();
    let (pages, w, h) = pdfinfo(&pdf);
    assert_eq!(pages, 1);
    assert!(close(w, 841.89, 0.01) && close(h, 1190.55, 0.01), "{w} x {h}");
    let r = rasterize(&pdf, 1, 36);
    // The trim grey fills the sheet from edge to edge: no bleed and no marks on it.
    let trim = level(TRIM_GRAYS[0]);
    for (x, y) in [(1, 1), (r.width - 2, r.height - 2), (r.width / 2, r.height / 2)] {
        assert!((f64::from(r.get(x, y)) - trim).abs() <= 6.0, "({x}, {y}): {}", r.get(x, y));
    }

    let fit = PlanOptions { fit: true, ..options(Duplex::OneSided, 2) };
    let p = plan(&A3_POSTER, &A4, &fit).unwrap();
    let pdf = impose(&source, &p).unwrap();
    let (pages, w, h) = pdfinfo(&pdf);
    assert_eq!(pages, 2);
    assert!(close(w, 595.276, 0.01) && close(h, 841.89, 0.01), "{w} x {h}");
    check_side(&pdf, &p, 2, 100, 0, 1);
}

/// Rasterizes a front and its back at 254 dpi (0.1 mm a pixel), turns the back over as the duplex
/// mode turns the sheet, and checks that every piece's trim and corner marker land on the front's.
fn check_backs_line_up(piece: Piece, sheet: Sheet, duplex: Duplex) {
    let p = planned(piece, sheet, duplex, 50);
    let pdf = impose(&source_pdf(&piece, 0.0), &p).unwrap();
    let (front, back) = (rasterize(&pdf, 1, 254), rasterize(&pdf, 2, 254));
    let px = 1.0 / front.px_per_mm;
    let (sw, sh) = (sheet.width_mm, sheet.height_mm);
    let turn_over = |(x, y): (f64, f64)| match duplex {
        Duplex::LongEdge => (sw - x, y),
        _ => (x, sh - y),
    };
    for i in 0..p.per_sheet {
        let s = p.front_slot(i).unwrap();
        let centre = (s.x_mm + s.width_mm / 2.0, s.y_mm + s.height_mm / 2.0);
        let on_front = trim_in_raster(&front, centre, TRIM_GRAYS[0]);
        let on_back = trim_in_raster(&back, turn_over(centre), TRIM_GRAYS[1]);
        // The back's rectangle turned over.
        let (a, b) = (turn_over((on_back[0], on_back[1])), turn_over((on_back[2], on_back[3])));
        let turned = [a.0.min(b.0), a.1.min(b.1), a.0.max(b.0), a.1.max(b.1)];
        for k in 0..4 {
            assert!(
                close(on_front[k], turned[k], px),
                "{duplex:?} slot {i}: front {on_front:?}, back turned over {turned:?}"
            );
        }
        // The front's marker (top right) is back to back with the back's (top left seen from behind).
        let marker = apply(s.transform, marker_centre(&piece, 0));
        assert!(front.at(marker) < 40, "{duplex:?} slot {i}: front marker");
        assert!(back.at(turn_over(marker)) < 40, "{duplex:?} slot {i}: back marker not behind the front's");
    }
}

#[test]
fn backs_line_up_with_fronts_long_edge() {
    if !poppler() {
        return;
    }
    check_backs_line_up(CARD, A4, Duplex::LongEdge);
    check_backs_line_up(POSTCARD, A4, Duplex::LongEdge);
}

#[test]
fn backs_line_up_with_fronts_short_edge() {
    if !poppler() {
        return;
    }
    check_backs_line_up(CARD, A4, Duplex::ShortEdge);
    check_backs_line_up(POSTCARD, A4, Duplex::ShortEdge);
}

fn sample_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("storefront/sample")
}

/// The real renderer's print-ready PDF of the sample business card, with plausible values.
fn rendered_card() -> Vec<u8> {
    use crate::domain::ids::ProductId;
    use crate::storefront::embedded::{EmbeddedStorefront, Printable};
    let store = EmbeddedStorefront::load(&sample_root()).unwrap();
    let id = ProductId::parse("classic-business-card").unwrap();
    let Ok(Printable::Customizable(loaded)) = store.printable(&id) else { panic!("not customizable") };
    let input = loaded.placeholder_input();
    let document = crate::render::compose(&loaded.template, store.fonts(), &input).unwrap();
    crate::render::pdf(&document).unwrap()
}

fn pdffonts(pdf: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), pdf);
    let out = Command::new("pdffonts").arg(&path).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "pdffonts: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().skip(2).map(str::to_owned).collect()
}

#[test]
fn fonts_are_embedded_once_however_many_cards() {
    if !poppler() {
        return;
    }
    let source = rendered_card();
    let source_fonts = pdffonts(&source);
    assert!(!source_fonts.is_empty(), "the sample card prints text");
    // 90 cards, 9 to a sheet: 10 sheets, 20 sides.
    let p = planned(CARD, A4, Duplex::LongEdge, 90);
    let pdf = impose(&source, &p).unwrap();
    dump("rendered-cards-a4", &pdf);
    assert_eq!(pdfinfo(&pdf).0, 20);
    let fonts = pdffonts(&pdf);
    assert_eq!(fonts.len(), source_fonts.len(), "{fonts:#?}");
    assert!(fonts.iter().all(|f| f.contains(" yes ")), "every font embedded: {fonts:#?}");
    // Ten sheets cost little more than one card.
    assert!(pdf.len() < source.len() + 20_000, "{} bytes from {}", pdf.len(), source.len());
}

#[test]
fn a_shipped_static_pdf_is_imposed_the_same_way() {
    let sign = Piece { trim_width_mm: 210.0, trim_height_mm: 148.0, bleed_mm: 3.0, pages: 2 };
    let source = std::fs::read(sample_root().join("products/door-sign-trade-pack/document.pdf")).unwrap();
    let p = planned(sign, A3, Duplex::LongEdge, 5);
    assert_eq!((p.per_sheet, p.rotated, p.sheet_count, p.page_count), (2, false, 3, 6));
    let pdf = impose(&source, &p).unwrap();
    dump("door-sign-a3", &pdf);
    if !poppler() {
        return;
    }
    let (pages, w, h) = pdfinfo(&pdf);
    assert_eq!(pages, 6);
    assert!(close(w, 841.89, 0.01) && close(h, 1190.55, 0.01), "{w} x {h}");
    // The sign is printed in both slots of the first sheet and in one of the last.
    let first = rasterize(&pdf, 1, 50);
    let last = rasterize(&pdf, 5, 50);
    for i in 0..2 {
        let s = p.front_slot(i).unwrap();
        let inked = |r: &Raster| {
            let (x0, y0) = ((s.x_mm * r.px_per_mm) as usize, (s.y_mm * r.px_per_mm) as usize);
            let (x1, y1) =
                (((s.x_mm + s.width_mm) * r.px_per_mm) as usize, ((s.y_mm + s.height_mm) * r.px_per_mm) as usize);
            (y0..y1).any(|y| (x0..x1).any(|x| r.get(x, y) < 200))
        };
        assert!(inked(&first), "slot {i} of the first sheet is blank");
        assert_eq!(inked(&last), i == 0, "slot {i} of the last sheet");
    }
}

#[test]
fn a_pdf_of_the_wrong_size_or_page_count_is_refused() {
    let source = source_pdf(&CARD, 0.0);
    let other = Piece { trim_width_mm: 90.0, trim_height_mm: 50.0, ..CARD };
    let err = impose(&source, &planned(other, A4, Duplex::LongEdge, 10)).unwrap_err();
    assert!(matches!(err, ImposeError::SizeMismatch { page: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("85.0×55.0 mm") && err.to_string().contains("90×50 mm"), "{err}");

    // Made the other way round is fine: the page is turned upright.
    let upright = Piece { trim_width_mm: 55.0, trim_height_mm: 85.0, ..CARD };
    assert!(impose(&source, &planned(upright, A4, Duplex::LongEdge, 10)).is_ok());

    let err = impose(&source, &planned(Piece { pages: 1, ..CARD }, A4, Duplex::LongEdge, 10)).unwrap_err();
    assert_eq!(err, ImposeError::PageCount { pdf_pages: 2, piece_pages: 1 });
}

#[test]
fn unreadable_input_is_a_pdf_error() {
    let p = planned(CARD, A4, Duplex::LongEdge, 10);
    for bytes in [&b"<html>no</html>"[..], b"%PDF-1.7\ngarbage", b""] {
        let err = impose(bytes, &p).unwrap_err();
        assert!(matches!(err, ImposeError::Pdf(_)), "{err:?}");
        assert!(err.to_string().starts_with("the print-ready PDF can not be imposed"), "{err}");
    }
}

#[test]
fn a_thousand_cards_take_milliseconds() {
    let source = source_pdf(&CARD, 0.0);
    let started = std::time::Instant::now();
    let p = planned(CARD, A4, Duplex::LongEdge, 1000);
    let pdf = impose(&source, &p).unwrap();
    let took = started.elapsed();
    // Generous for an unoptimised build; the bench measures the real figure.
    assert!(took.as_millis() < 2_000, "{took:?}");
    assert!(pdf.len() < 100_000, "{} bytes", pdf.len());
}

// ---------------------------------------------------------------------------------------------
// Sheet previews

fn solid_png(rgb: [u8; 3], w: u32, h: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    png
}

/// A red page image with a black top-right corner (as seen upright), to see which way it is turned.
fn cornered_png(w: u32, h: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(w, h, |x, y| {
        if x >= w * 3 / 4 && y < h / 4 { image::Rgb([0, 0, 0]) } else { image::Rgb([200, 0, 0]) }
    });
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    png
}

#[test]
fn sheet_preview_turns_the_pieces_as_they_print() {
    for duplex in [Duplex::LongEdge, Duplex::ShortEdge] {
        let p = planned(CARD, A4, duplex, 9);
        let pages = vec![cornered_png(182, 122), cornered_png(91, 61)];
        for back in [false, true] {
            let image = decode_png(&sheet_preview(&p, back, &pages, 840).unwrap());
            let px_per_mm = 840.0 / 210.0;
            let pixel = |(x, y): (f64, f64)| image.get_pixel((x * px_per_mm) as u32, (y * px_per_mm) as u32).0;
            // The image spans the bleed too: its black quarter covers the trim's top-right corner.
            let (w, h) = (CARD.trim_width_mm, CARD.trim_height_mm);
            for i in 0..p.per_sheet {
                let s = p.slot(i, back).unwrap();
                assert_eq!(pixel(apply(s.transform, (w - 4.0, 4.0))), [0, 0, 0], "{duplex:?} back {back} slot {i}");
                assert_eq!(pixel(apply(s.transform, (4.0, h - 4.0))), [200, 0, 0], "{duplex:?} back {back} slot {i}");
            }
        }
    }
}

fn decode_png(png: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap().into_rgb8()
}

#[test]
fn sheet_preview_shows_the_pieces_in_their_slots() {
    let p = planned(CARD, A4, Duplex::LongEdge, 4);
    let pages = vec![solid_png([200, 0, 0], 91, 61), solid_png([0, 0, 200], 182, 122)];
    for (back, colour) in [(false, [200, 0, 0]), (true, [0, 0, 200])] {
        let png = sheet_preview(&p, back, &pages, 420).unwrap();
        let image = decode_png(&png);
        assert_eq!(image.dimensions(), (420, 594));
        let px_per_mm = 420.0 / 210.0;
        let pixel = |(x, y): (f64, f64)| image.get_pixel((x * px_per_mm) as u32, (y * px_per_mm) as u32).0;
        for i in 0..p.per_sheet {
            let s = p.slot(i, back).unwrap();
            let centre = (s.x_mm + s.width_mm / 2.0, s.y_mm + s.height_mm / 2.0);
            // Four cards ordered: the other five slots stay white.
            let expected = if i < 4 { colour } else { [255, 255, 255] };
            assert_eq!(pixel(centre), expected, "back {back} slot {i}");
        }
        for corner in [(5.0, 5.0), (205.0, 292.0), (105.0, 3.0)] {
            assert_eq!(pixel(corner), [255, 255, 255], "{corner:?}");
        }
        // The marks are drawn.
        let [x0, y0, x1, y1] = p.marks()[0];
        assert!(pixel(((x0 + x1) / 2.0, (y0 + y1) / 2.0))[0] < 128);
    }
}

#[test]
fn sheet_preview_refuses_what_it_can_not_show() {
    let p = planned(CARD, A4, Duplex::LongEdge, 4);
    let red = solid_png([200, 0, 0], 10, 10);
    assert!(matches!(sheet_preview(&p, false, std::slice::from_ref(&red), 300), Err(ImposeError::Preview(_))));
    let front = sheet_preview(&p, false, &[red.clone(), b"not a png".to_vec()], 300);
    assert!(front.is_ok(), "only the page shown is decoded: {front:?}");
    let err = sheet_preview(&p, true, &[red.clone(), b"not a png".to_vec()], 300).unwrap_err();
    assert!(err.to_string().contains("page 2"), "{err}");
    // Widths are held to the preview bounds.
    let image = decode_png(&sheet_preview(&p, false, &[red.clone(), red.clone()], 10).unwrap());
    assert_eq!(image.width(), 64);
    // The back of a one-sided, one-page job is blank.
    let one = planned(A5_FLYER, A4, Duplex::OneSided, 1);
    let image = decode_png(&sheet_preview(&one, true, &[red], 100).unwrap());
    assert!(image.pixels().all(|p| p.0 == [255, 255, 255]));
}

#[test]
fn inherited_boxes_split_contents_and_turned_pages_impose_alike() {
    if !poppler() {
        return;
    }
    // The turned source is seen as the plain one: landscape, the front's marker at its top right.
    let turned = source_pdf_made(&CARD, 0.0, Made::Rotated);
    let r = rasterize(&turned, 1, 72);
    assert!(r.width > r.height, "{} x {}", r.width, r.height);
    let (mx, my) = marker_centre(&CARD, 0);
    assert!(r.at((mx + CARD.bleed_mm, my + CARD.bleed_mm)) < 40);
    assert!(r.at((CARD.trim_width_mm - mx + CARD.bleed_mm, my + CARD.bleed_mm)) > 40);

    let p = planned(CARD, A4, Duplex::ShortEdge, 9);
    let plain = impose(&source_pdf_made(&CARD, 5.0, Made::Plainly), &p).unwrap();
    for made in [Made::Inherited, Made::Rotated] {
        let other = impose(&source_pdf_made(&CARD, 5.0, made), &p).unwrap();
        for page in [1, 2] {
            let (a, b) = (rasterize(&plain, page, 72), rasterize(&other, page, 72));
            let differing = a.pixels.iter().zip(&b.pixels).filter(|(x, y)| x.abs_diff(**y) > 40).count();
            assert!(differing < a.pixels.len() / 1000, "page {page}: {differing} pixels differ");
        }
        check_side(&other, &p, 2, 100, 1, 9);
    }
}

/// The test card, locked with `user_password` as lopdf encrypts.
fn encrypted_card(user_password: &str) -> Vec<u8> {
    let mut doc = lopdf::Document::load_mem(&source_pdf(&CARD, 0.0)).unwrap();
    doc.trailer.set(
        "ID",
        lopdf::Object::Array(vec![
            lopdf::Object::string_literal(b"0123456789abcdef".to_vec()),
            lopdf::Object::string_literal(b"fedcba9876543210".to_vec()),
        ]),
    );
    let state = lopdf::EncryptionState::try_from(lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner",
        user_password,
        key_length: 128,
        permissions: lopdf::Permissions::all(),
    })
    .unwrap();
    doc.encrypt(&state).unwrap();
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

#[test]
fn an_encrypted_pdf_is_refused_with_a_reason() {
    let p = planned(CARD, A4, Duplex::LongEdge, 10);
    for password in ["", "secret"] {
        let err = impose(&encrypted_card(password), &p).unwrap_err();
        assert!(matches!(err, ImposeError::Pdf(_)), "{err:?}");
        assert!(err.to_string().contains("encrypted"), "{err}");
    }
}

#[test]
fn a_plan_not_made_by_plan_is_refused_not_a_panic() {
    let good = planned(CARD, A4, Duplex::LongEdge, 100);
    let source = source_pdf(&CARD, 0.0);
    let red = solid_png([200, 0, 0], 10, 10);
    let broken = [
        Plan { columns: 0, ..good.clone() },
        Plan { per_sheet: 1_000_000, ..good.clone() },
        Plan { columns: 1000, rows: 1000, per_sheet: 1_000_000, batches: 1, ..good.clone() },
        Plan { quantity: 0, ..good.clone() },
        Plan { batches: 1, ..good.clone() },
        Plan { page_count: 1, ..good.clone() },
        Plan { scale: 0.0, ..good.clone() },
        Plan { pitch_mm: [1.0, 1.0], ..good.clone() },
        Plan { origin_mm: [f64::NAN, 0.0], ..good.clone() },
        Plan { piece: Piece { pages: 0, ..CARD }, ..good.clone() },
    ];
    for plan in broken {
        // The geometry helpers answer something; only impose and the preview need a sound plan.
        let _ = (plan.sides(), plan.marks(), plan.front_slot(0), plan.back_slot(0));
        let err = impose(&source, &plan).unwrap_err();
        assert!(matches!(err, ImposeError::Invalid(_)), "{plan:?}: {err:?}");
        assert!(sheet_preview(&plan, false, &[red.clone(), red.clone()], 100).is_err(), "{plan:?}");
    }
    assert!(good.check().is_ok());
}
