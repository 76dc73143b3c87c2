//! Imposition as the print service sees it: which of the printer's sheets a product prints on,
//! which sides, and how many pieces per sheet (`Layout`), decided here from the printer's
//! capabilities and the server's sheet preference; the geometry and the sheet PDF come from an
//! `Imposer` (the renderer's), wired in by the composition root.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::domain::catalog::TrimSize;
use crate::domain::customization::PageImage;
use crate::domain::devices::{Capabilities, Media, ReadyMedia, Sides};
use crate::domain::error::{CoreError, CoreResult};

/// What one imposition is asked for: a piece, a sheet, how to print it.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutSpec {
    pub trim: TrimSize,
    /// Pages of one piece (2 for a two-sided card).
    pub pages: u32,
    pub sheet: Media,
    /// The tray the sheet is in, where known.
    pub source: Option<String>,
    /// Unprintable margin on every edge of the sheet.
    pub margin_mm: f64,
    pub sides: Sides,
    /// Pieces wanted.
    pub quantity: u32,
    /// Scale a piece down when it is larger than the sheet.
    pub fit: bool,
}

/// How a job's pieces land on the printer's sheets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    /// False: the file prints as it is (an upload), `copies` times.
    pub imposed: bool,
    pub sheet: Media,
    pub source: Option<String>,
    /// Pieces printed in all (for a file printed as it is: its copies).
    pub pieces: u32,
    pub per_sheet: u32,
    pub sheet_count: u32,
    /// How the sheets are printed (a one-page piece prints one-sided whatever was asked).
    pub sides: Sides,
    /// A piece of two or more pages printed one-sided: its backs come on sheets of their own.
    pub backs_separate: bool,
    pub rotated: bool,
    /// 1 = true size.
    pub scale: f64,
    /// Sheets the same job would take with one piece per sheet.
    pub sheets_one_per_sheet: u32,
}

impl Layout {
    /// A file printed as it is, `copies` times, one page per side of a sheet.
    pub fn as_is(sheet: Media, source: Option<String>, pages: u32, copies: u32, sides: Sides) -> Layout {
        let sheets = sheets_one_per_sheet(pages, copies, sides);
        Layout {
            imposed: false,
            sheet,
            source,
            pieces: copies,
            per_sheet: 1,
            sheet_count: sheets,
            sides,
            backs_separate: false,
            rotated: false,
            scale: 1.0,
            sheets_one_per_sheet: sheets,
        }
    }
}

/// The renderer's imposition, behind a narrow trait so the domain stays free of PDF code.
#[async_trait]
pub trait Imposer: Send + Sync + 'static {
    /// The layout (geometry only, cheap). A piece larger than the sheet without `fit`, or a job
    /// of too many sheets, is FAILED_PRECONDITION with a message naming the sizes.
    fn plan(&self, spec: &LayoutSpec) -> CoreResult<Layout>;
    /// The sheets' PDF from the piece's print-ready PDF.
    async fn impose(&self, print_ready: Bytes, spec: &LayoutSpec) -> CoreResult<Bytes>;
    /// The first sheet's front and (when it has one) back, `width_px` wide, drawn from the
    /// piece's page images (PNG, one per page of the piece, from page 1).
    async fn sheet_previews(&self, spec: &LayoutSpec, pages: Vec<Bytes>, width_px: u32) -> CoreResult<Vec<PageImage>>;
}

/// How the core picks sheets.
#[derive(Debug, Clone, PartialEq)]
pub struct SheetPolicy {
    /// Media keywords in the order the shop prefers them (e.g. A4 before A3).
    pub preference: Vec<String>,
    /// Unprintable margin assumed on every edge of a sheet.
    pub margin_mm: f64,
}

impl Default for SheetPolicy {
    fn default() -> Self {
        SheetPolicy {
            preference: ["iso_a4_210x297mm", "na_letter_8.5x11in", "iso_a3_297x420mm", "na_ledger_11x17in"]
                .map(String::from)
                .to_vec(),
            // What most office printers cannot print on each edge (about 1/6 in).
            margin_mm: 4.2,
        }
    }
}

/// What is to be printed, as far as the layout goes.
#[derive(Debug, Clone, Copy)]
pub struct PieceRequest<'a> {
    pub trim: TrimSize,
    pub pages: u32,
    pub quantity: u32,
    pub sides: Option<Sides>,
    pub media: Option<&'a str>,
    pub fit: bool,
}

/// Picks the sheet and the sides for a product on this printer and plans the layout: the media
/// asked for, or the first loaded sheet, in the policy's order, that the piece fits at true size
/// (with `fit`, the most preferred sheet when none does).
pub fn choose(
    imposer: &dyn Imposer,
    policy: &SheetPolicy,
    capabilities: &Capabilities,
    piece: PieceRequest<'_>,
) -> CoreResult<(LayoutSpec, Layout)> {
    let candidates = sheets(policy, capabilities, piece.media)?;
    let spec = |sheet: &ReadyMedia, sides: Sides, fit: bool, quantity: u32| LayoutSpec {
        trim: piece.trim,
        pages: piece.pages,
        sheet: sheet.media.clone(),
        source: sheet.source.clone(),
        margin_mm: sheet.margin_mm.unwrap_or(policy.margin_mm),
        sides,
        quantity,
        fit,
    };
    let mut first_refusal = None;
    let mut chosen = None;
    for sheet in &candidates {
        // One piece: which sheet fits is a matter of geometry, not of how many are wanted.
        match imposer.plan(&spec(sheet, Sides::OneSided, false, 1)) {
            Ok(layout) => {
                chosen = Some((sheet, layout, false));
                break;
            }
            // Too small a sheet: try the next; anything else (too many sheets) holds for all.
            Err(err @ CoreError::FailedPrecondition(_)) => {
                first_refusal.get_or_insert(err);
            }
            Err(err) => return Err(err),
        }
    }
    if chosen.is_none() && piece.fit {
        let sheet = &candidates[0];
        chosen = Some((sheet, imposer.plan(&spec(sheet, Sides::OneSided, true, 1))?, true));
    }
    let Some((sheet, trial, fit)) = chosen else {
        return Err(match (candidates.len(), first_refusal) {
            (1, Some(err)) => err,
            _ => CoreError::FailedPrecondition(format!(
                "the product ({} × {} mm) is larger than every sheet this printer holds ({}); choose \"fit to \
                 sheet\" to scale it down, or ask staff to load larger paper",
                number(piece.trim.width_mm),
                number(piece.trim.height_mm),
                candidates.iter().map(|s| s.media.display_name.as_str()).collect::<Vec<_>>().join(", ")
            )),
        });
    };
    let sides = match piece.sides {
        Some(sides) => sides,
        None if piece.pages >= 2 => two_sided(capabilities, trial.rotated),
        None => capabilities.sides_default(),
    };
    let spec = spec(sheet, sides, fit, piece.quantity);
    if is_the_sheet(&spec, &trial) {
        // The page is the sheet: nothing to impose, and the printer makes the copies.
        let sides = if piece.pages < 2 { capabilities.sides_default() } else { sides };
        let layout = Layout::as_is(spec.sheet.clone(), spec.source.clone(), piece.pages, piece.quantity, sides);
        return Ok((LayoutSpec { sides, ..spec }, layout));
    }
    let layout = imposer.plan(&spec)?;
    Ok((spec, layout))
}

/// A piece whose page (trim and bleed) is the sheet itself, one per sheet at true size:
/// imposing would change nothing.
fn is_the_sheet(spec: &LayoutSpec, layout: &Layout) -> bool {
    let near = |a: f64, b: f64| (a - b).abs() <= 1.0;
    let page = (spec.trim.width_mm + 2.0 * spec.trim.bleed_mm, spec.trim.height_mm + 2.0 * spec.trim.bleed_mm);
    layout.per_sheet == 1
        && layout.scale == 1.0
        && !layout.rotated
        && near(page.0, spec.sheet.width_mm)
        && near(page.1, spec.sheet.height_mm)
}

/// A two-sided mode for a piece with a back: the one turned on the edge that keeps the pieces'
/// backs upright in the file (long edge for upright pieces on a portrait sheet, short edge for
/// pieces turned a quarter), else the other, else one-sided with backs on their own sheets.
fn two_sided(capabilities: &Capabilities, rotated: bool) -> Sides {
    let (fitting, other) = if rotated {
        (Sides::TwoSidedShortEdge, Sides::TwoSidedLongEdge)
    } else {
        (Sides::TwoSidedLongEdge, Sides::TwoSidedShortEdge)
    };
    [fitting, other].into_iter().find(|s| capabilities.sides.contains(s)).unwrap_or(Sides::OneSided)
}

/// The sheets to try, in order: the one asked for, or the loaded ones (all supported ones when
/// the printer does not say what is loaded) in the policy's order, then the printer's.
fn sheets(policy: &SheetPolicy, capabilities: &Capabilities, asked: Option<&str>) -> CoreResult<Vec<ReadyMedia>> {
    let sized = |m: &Media| m.width_mm > 0.0 && m.height_mm > 0.0;
    let mut loaded: Vec<ReadyMedia> = if capabilities.media_ready.is_empty() {
        capabilities
            .media
            .iter()
            .map(|media| ReadyMedia { media: media.clone(), source: None, margin_mm: None })
            .collect()
    } else {
        capabilities.media_ready.clone()
    };
    loaded.retain(|ready| sized(&ready.media));
    if let Some(asked) = asked {
        if let Some(ready) = loaded.into_iter().find(|ready| ready.media.keyword == asked) {
            return Ok(vec![ready]);
        }
        return match capabilities.media.iter().find(|m| m.keyword == asked) {
            Some(media) if sized(media) => Ok(vec![ReadyMedia { media: media.clone(), source: None, margin_mm: None }]),
            Some(_) => Err(CoreError::FailedPrecondition(format!(
                "the size of media \"{asked}\" is not known, so the product cannot be laid out on it; choose \
                 another media"
            ))),
            None => {
                let names: Vec<&str> = capabilities.media.iter().map(|m| m.keyword.as_str()).collect();
                Err(CoreError::InvalidArgument(format!(
                    "media \"{asked}\" is not loaded in this printer; choose one of {}",
                    names.join(", ")
                )))
            }
        };
    }
    let rank = |ready: &ReadyMedia| {
        policy.preference.iter().position(|keyword| *keyword == ready.media.keyword).unwrap_or(usize::MAX)
    };
    // Stable: sheets the policy does not name keep the printer's order after the named ones.
    loaded.sort_by_key(rank);
    loaded.dedup_by(|a, b| a.media.keyword == b.media.keyword);
    if loaded.is_empty() {
        return Err(CoreError::FailedPrecondition(
            "the printer names no paper size the product could be laid out on; ask staff to check the printer's \
             media settings"
                .into(),
        ));
    }
    Ok(loaded)
}

/// Sheets one piece per sheet would take: every page its own side.
pub fn sheets_one_per_sheet(pages: u32, quantity: u32, sides: Sides) -> u32 {
    let per_piece = if sides == Sides::OneSided { pages } else { pages.div_ceil(2) };
    per_piece.max(1).saturating_mul(quantity)
}

/// A millimetre figure for people: "85", "215.9".
pub fn number(mm: f64) -> String {
    let s = format!("{mm:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plans like the renderer does for the counts that matter here: a grid without margins,
    /// rotated when that fits more.
    struct GridImposer;

    #[async_trait]
    impl Imposer for GridImposer {
        fn plan(&self, spec: &LayoutSpec) -> CoreResult<Layout> {
            let (w, h) = (spec.trim.width_mm, spec.trim.height_mm);
            let (sw, sh) = (spec.sheet.width_mm, spec.sheet.height_mm);
            let upright = ((sw / w).floor() * (sh / h).floor()) as u32;
            let turned = ((sw / h).floor() * (sh / w).floor()) as u32;
            let per_sheet = upright.max(turned);
            if per_sheet == 0 && !spec.fit {
                return Err(CoreError::FailedPrecondition(format!("does not fit on {}", spec.sheet.display_name)));
            }
            let per_sheet = per_sheet.max(1);
            let sides = if spec.pages < 2 { Sides::OneSided } else { spec.sides };
            Ok(Layout {
                imposed: true,
                sheet: spec.sheet.clone(),
                source: spec.source.clone(),
                pieces: spec.quantity,
                per_sheet,
                sheet_count: spec.quantity.div_ceil(per_sheet),
                sides,
                backs_separate: spec.pages >= 2 && sides == Sides::OneSided,
                rotated: turned > upright,
                scale: 1.0,
                sheets_one_per_sheet: sheets_one_per_sheet(spec.pages, spec.quantity, sides),
            })
        }
        async fn impose(&self, pdf: Bytes, _: &LayoutSpec) -> CoreResult<Bytes> {
            Ok(pdf)
        }
        async fn sheet_previews(&self, _: &LayoutSpec, _: Vec<Bytes>, _: u32) -> CoreResult<Vec<PageImage>> {
            Ok(Vec::new())
        }
    }

    fn media(keyword: &str, name: &str, w: f64, h: f64) -> Media {
        Media { keyword: keyword.into(), display_name: name.into(), width_mm: w, height_mm: h }
    }

    fn printer(ready: &[(Media, &str)], sides: &[Sides]) -> Capabilities {
        let mut capabilities = crate::domain::devices::default_capabilities();
        capabilities.media_ready = ready
            .iter()
            .map(|(m, tray)| ReadyMedia { media: m.clone(), source: Some(tray.to_string()), margin_mm: None })
            .collect();
        capabilities.sides = sides.to_vec();
        capabilities
    }

    fn card(pages: u32) -> PieceRequest<'static> {
        PieceRequest {
            trim: TrimSize { width_mm: 85.0, height_mm: 55.0, bleed_mm: 0.0 },
            pages,
            quantity: 100,
            sides: None,
            media: None,
            fit: false,
        }
    }

    #[test]
    fn the_preferred_loaded_sheet_is_used_and_its_tray_named() {
        let a3 = media("iso_a3_297x420mm", "A3", 297.0, 420.0);
        let a4 = media("iso_a4_210x297mm", "A4", 210.0, 297.0);
        let caps = printer(&[(a3, "tray-2"), (a4, "tray-1")], &[Sides::OneSided, Sides::TwoSidedLongEdge]);
        let (spec, layout) = choose(&GridImposer, &SheetPolicy::default(), &caps, card(2)).unwrap();
        assert_eq!(spec.sheet.display_name, "A4", "A4 comes before A3 in the default preference");
        assert_eq!(layout.source.as_deref(), Some("tray-1"));
        assert_eq!(layout.sides, Sides::TwoSidedLongEdge, "a two-page card prints two-sided where it can");

        let policy = SheetPolicy { preference: vec!["iso_a3_297x420mm".into()], ..SheetPolicy::default() };
        let (spec, _) = choose(&GridImposer, &policy, &caps, card(2)).unwrap();
        assert_eq!(spec.sheet.display_name, "A3", "the shop's preference wins");
    }

    #[test]
    fn sides_follow_the_product_and_the_printer() {
        let a4 = media("iso_a4_210x297mm", "A4", 210.0, 297.0);
        let simplex = printer(&[(a4.clone(), "main")], &[Sides::OneSided]);
        let (_, layout) = choose(&GridImposer, &SheetPolicy::default(), &simplex, card(2)).unwrap();
        assert_eq!(layout.sides, Sides::OneSided);
        assert!(layout.backs_separate, "a one-sided printer prints the backs on sheets of their own");

        let short_only = printer(&[(a4.clone(), "main")], &[Sides::OneSided, Sides::TwoSidedShortEdge]);
        let (_, layout) = choose(&GridImposer, &SheetPolicy::default(), &short_only, card(2)).unwrap();
        assert_eq!(layout.sides, Sides::TwoSidedShortEdge);

        let duplex = printer(&[(a4, "main")], &[Sides::OneSided, Sides::TwoSidedLongEdge, Sides::TwoSidedShortEdge]);
        let (_, layout) = choose(&GridImposer, &SheetPolicy::default(), &duplex, card(1)).unwrap();
        assert_eq!(layout.sides, Sides::OneSided, "a one-page piece has no back");
        let (_, layout) = choose(&GridImposer, &SheetPolicy::default(), &duplex, card(2)).unwrap();
        assert!(!layout.rotated);
        assert_eq!(layout.sides, Sides::TwoSidedLongEdge, "upright pieces turn on the sheet's long edge");
        // 60 × 100 pieces fit 2 × 4 turned against 3 × 2 upright: short edge keeps backs upright.
        let tall = PieceRequest { trim: TrimSize { width_mm: 60.0, height_mm: 100.0, bleed_mm: 0.0 }, ..card(2) };
        let (_, layout) = choose(&GridImposer, &SheetPolicy::default(), &duplex, tall).unwrap();
        assert!(layout.rotated);
        assert_eq!(layout.sides, Sides::TwoSidedShortEdge);
    }

    #[test]
    fn a_product_larger_than_every_sheet_needs_fit_and_an_unknown_media_is_refused() {
        let a4 = media("iso_a4_210x297mm", "A4", 210.0, 297.0);
        let letter = media("na_letter_8.5x11in", "US Letter", 215.9, 279.4);
        let caps = printer(&[(a4, "main"), (letter, "manual")], &[Sides::OneSided]);
        let poster = PieceRequest {
            trim: TrimSize { width_mm: 297.0, height_mm: 420.0, bleed_mm: 3.0 },
            quantity: 2,
            ..card(1)
        };
        let err = choose(&GridImposer, &SheetPolicy::default(), &caps, poster).unwrap_err();
        assert!(
            matches!(&err, CoreError::FailedPrecondition(m) if m.contains("297 × 420 mm") && m.contains("A4, US Letter") && m.contains("fit to sheet")),
            "{err:?}"
        );
        let (spec, _) =
            choose(&GridImposer, &SheetPolicy::default(), &caps, PieceRequest { fit: true, ..poster }).unwrap();
        assert!(spec.fit);
        assert_eq!(spec.sheet.display_name, "A4");

        let err =
            choose(&GridImposer, &SheetPolicy::default(), &caps, PieceRequest { media: Some("iso_a9"), ..card(1) })
                .unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument(m) if m.contains("iso_a9")));
    }

    #[test]
    fn without_loaded_media_the_supported_ones_are_tried() {
        let mut caps = printer(&[], &[Sides::OneSided]);
        caps.media_ready.clear();
        let (spec, layout) = choose(&GridImposer, &SheetPolicy::default(), &caps, card(1)).unwrap();
        assert_eq!(spec.sheet.keyword, "iso_a4_210x297mm");
        assert_eq!(layout.source, None);
        assert_eq!(sheets_one_per_sheet(2, 100, Sides::OneSided), 200);
        assert_eq!(sheets_one_per_sheet(2, 100, Sides::TwoSidedLongEdge), 100);
    }
}
