//! Step-and-repeat imposition: plans how many copies of a finished piece fit on a printer's sheet,
//! where each one goes (front and back), and where the cut marks are; then builds the sheet PDF from
//! the piece's print-ready PDF ([`impose`]) or a picture of one sheet side ([`sheet_preview`]).
//!
//! Coordinates: sheet millimetres from the sheet's top-left corner (x right, y down), the sheet as
//! fed (portrait as its media keyword says). A piece's own coordinates are millimetres from the
//! top-left corner of its trim, upright as its page is seen. [`Slot::transform`] maps one onto the other.

mod pdf;
mod preview;
#[cfg(test)]
mod tests;

pub use pdf::impose;
pub use preview::sheet_preview;

/// The most sheets one job may hold. A large production printer's trays and stacker hold a few
/// thousand sheets, and 5,000 sheets is several hours of printing: a larger order should be sent
/// as several jobs, so a jam or a wrong paper stops one of them, not the whole run. It also bounds
/// what one request may cost (the PDF grows by one small page object per sheet side).
pub const MAX_SHEETS: u32 = 5_000;

/// Cut marks start this far beyond the outer edge of the block (the outer bleed, or the trim
/// without bleed), so a slightly off cut never shows a mark on the piece.
pub const MARK_GAP_MM: f64 = 2.0;
/// Length of each cut mark. 4 mm is easy to line a guillotine up with and, with the gap, keeps the
/// marks within 6 mm of the block (ten 85×55 cards without bleed still fit on A4).
pub const MARK_LENGTH_MM: f64 = 4.0;
/// Cut marks are hairlines in registration-free 100 % black.
pub const MARK_WIDTH_PT: f64 = 0.25;
/// Room the marks need on each side of the block.
const MARK_ROOM_MM: f64 = MARK_GAP_MM + MARK_LENGTH_MM;

/// Smaller pieces can not be cut reliably (and would put tens of thousands of copies on a sheet).
pub const MIN_TRIM_MM: f64 = 5.0;
/// Larger sheets or pieces than this (5 m) are a typing error, not a product.
pub const MAX_SIZE_MM: f64 = 5_000.0;
/// Sizes this close count as equal (floating-point sums of millimetres).
const EPSILON_MM: f64 = 1e-6;
/// The print-ready PDF's trim may differ from the product's by this much (rounding to points).
pub const SIZE_TOLERANCE_MM: f64 = 0.5;

/// One finished piece: trim size and bleed in mm, pages per piece (1 = one-sided product, 2 =
/// front+back, more = a multi-page piece).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece {
    pub trim_width_mm: f64,
    pub trim_height_mm: f64,
    pub bleed_mm: f64,
    pub pages: u32,
}

/// The printer's sheet as its media keyword says (width, height in mm, usually portrait) and the
/// unprintable margin on every edge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sheet {
    pub width_mm: f64,
    pub height_mm: f64,
    pub margin_mm: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplex {
    OneSided,
    LongEdge,
    ShortEdge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    pub duplex: Duplex,
    pub quantity: u32,
    /// Scale a piece larger than the sheet down to fit it (never up).
    pub fit: bool,
    /// Space between neighbouring trims when the piece has no bleed (0 = butted, one cut).
    pub gutter_mm: f64,
}

/// Where the copies of a piece go on the sheets of one job. Made by [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub piece: Piece,
    pub sheet: Sheet,
    /// `OneSided` for a one-page piece whatever was asked.
    pub duplex: Duplex,
    pub quantity: u32,
    pub columns: u32,
    pub rows: u32,
    pub per_sheet: u32,
    /// Pieces turned a quarter turn (clockwise) on the sheet.
    pub rotated: bool,
    /// 1.0 = true size; below 1 only when `fit` asked for it.
    pub scale: f64,
    pub cut_marks: bool,
    /// Physical sheets.
    pub sheet_count: u32,
    /// PDF pages = sheet sides printed.
    pub page_count: u32,
    /// A piece of 2+ pages printed one-sided: its backs come on separate sheets.
    pub backs_separate: bool,
    /// Groups of up to `per_sheet` pieces; each gets one sheet side per page of the piece.
    pub batches: u32,
    /// Top-left corner of the first slot's trim on the sheet (mm).
    pub origin_mm: [f64; 2],
    /// From one slot's trim corner to its right-hand and lower neighbour's (mm).
    pub pitch_mm: [f64; 2],
}

/// One copy's place on a sheet side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// The trim rectangle on the sheet (mm from the top-left corner), as the piece lies there.
    pub x_mm: f64,
    pub y_mm: f64,
    pub width_mm: f64,
    pub height_mm: f64,
    /// Clockwise quarter turns of the piece's page (as seen upright) on the sheet, 0..=3.
    pub turns: u8,
    /// Piece coordinates (mm from the trim's top-left, upright) to sheet coordinates:
    /// `x = a·u + c·v + e`, `y = b·u + d·v + f` for `[a, b, c, d, e, f]`.
    pub transform: [f64; 6],
}

/// One side of one sheet in the output, in print order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    /// 0-based physical sheet.
    pub sheet: u32,
    pub back: bool,
    /// 0-based page of the piece printed on this side; `None` for the blank back of an odd page.
    pub page: Option<u32>,
    /// Slots used (`per_sheet`, fewer on the last batch).
    pub filled: u32,
}

/// Why a job can not be imposed; the texts are for the person who ordered or runs it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImposeError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "a {piece_width_mm}×{piece_height_mm} mm piece with {bleed_mm} mm bleed does not fit on a {sheet_width_mm}×{sheet_height_mm} mm sheet ({margin_mm} mm unprintable margin); choose \"fit to sheet\" to scale it down, or a larger sheet"
    )]
    DoesNotFit {
        piece_width_mm: f64,
        piece_height_mm: f64,
        bleed_mm: f64,
        sheet_width_mm: f64,
        sheet_height_mm: f64,
        margin_mm: f64,
    },
    #[error(
        "{quantity} pieces need {sheets} sheets, more than the {max} one job may hold; split the order into jobs of at most {max_quantity} pieces"
    )]
    TooManySheets { quantity: u32, sheets: u64, max: u32, max_quantity: u64 },
    #[error("the print-ready PDF can not be imposed: {0}")]
    Pdf(String),
    #[error(
        "page {page} of the print-ready PDF is trimmed to {pdf_width_mm:.1}×{pdf_height_mm:.1} mm but the product is {piece_width_mm}×{piece_height_mm} mm; make the PDF at the product's size"
    )]
    SizeMismatch { page: u32, pdf_width_mm: f64, pdf_height_mm: f64, piece_width_mm: f64, piece_height_mm: f64 },
    #[error(
        "the print-ready PDF has {pdf_pages} pages but the product has {piece_pages}; one copy of the piece is expected"
    )]
    PageCount { pdf_pages: u32, piece_pages: u32 },
    #[error("the sheet preview can not be made: {0}")]
    Preview(String),
}

/// An affine map `[a, b, c, d, e, f]`: `x' = a·x + c·y + e`, `y' = b·x + d·y + f` (PDF's order).
pub(crate) type Matrix = [f64; 6];

/// `outer ∘ inner`: first `inner`, then `outer`.
pub(crate) fn compose(outer: Matrix, inner: Matrix) -> Matrix {
    let [a, b, c, d, e, f] = outer;
    let [p, q, r, s, t, u] = inner;
    [a * p + c * q, b * p + d * q, a * r + c * s, b * r + d * s, a * t + c * u + e, b * t + d * u + f]
}

pub(crate) fn apply(m: Matrix, (x, y): (f64, f64)) -> (f64, f64) {
    (m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5])
}

/// Turns a `w`×`h` rectangle (top-left origin, y down) `turns` quarter turns clockwise, keeping
/// its top-left corner at the origin.
pub(crate) fn quarter_turns(turns: u8, w: f64, h: f64) -> Matrix {
    match turns % 4 {
        0 => [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        1 => [0.0, 1.0, -1.0, 0.0, h, 0.0],
        2 => [-1.0, 0.0, 0.0, -1.0, w, h],
        _ => [0.0, -1.0, 1.0, 0.0, 0.0, w],
    }
}

/// Plans the job: how many pieces per sheet, which way round, how many sheets.
pub fn plan(piece: &Piece, sheet: &Sheet, options: &PlanOptions) -> Result<Plan, ImposeError> {
    validate(piece, sheet, options)?;
    let (w, h, bleed) = (piece.trim_width_mm, piece.trim_height_mm, piece.bleed_mm);
    let (sw, sh, margin) = (sheet.width_mm, sheet.height_mm, sheet.margin_mm);
    // Each piece keeps its own bleed; without bleed the gutter separates the trims.
    let gap = if bleed > 0.0 { 0.0 } else { options.gutter_mm };
    let (avail_w, avail_h) = (sw - 2.0 * margin - 2.0 * MARK_ROOM_MM, sh - 2.0 * margin - 2.0 * MARK_ROOM_MM);

    // (on-sheet trim width, height, rotated); unrotated first so it wins ties.
    let orientations = [(w, h, false), (h, w, true)];
    let mut best: Option<(u32, u32, f64, f64, bool)> = None;
    for (tw, th, rotated) in orientations {
        let columns = fits(avail_w, tw + 2.0 * bleed, gap);
        let rows = fits(avail_h, th + 2.0 * bleed, gap);
        if columns * rows > best.map_or(0, |b| b.0 * b.1) {
            best = Some((columns, rows, tw, th, rotated));
        }
    }

    let (columns, rows, tw, th, rotated, scale, cut_marks) = if let Some((columns, rows, tw, th, rotated)) = best {
        (columns, rows, tw, th, rotated, 1.0, true)
    } else if let Some(&(tw, th, rotated)) =
        orientations.iter().find(|(tw, th, _)| *tw <= sw + EPSILON_MM && *th <= sh + EPSILON_MM)
    {
        // As large as the sheet: printed alone, centred, uncut (the printer clips what it can not print).
        (1, 1, tw, th, rotated, 1.0, false)
    } else if options.fit {
        // Scaled down, bleed and all, to fit the printable area with room for the marks.
        let mut chosen = (0.0, w, h, false);
        for (tw, th, rotated) in orientations {
            let s = (avail_w / (tw + 2.0 * bleed)).min(avail_h / (th + 2.0 * bleed)).min(1.0);
            if s > chosen.0 {
                chosen = (s, tw, th, rotated);
            }
        }
        let (scale, tw, th, rotated) = chosen;
        if scale <= 0.0 {
            return Err(does_not_fit(piece, sheet));
        }
        (1, 1, tw, th, rotated, scale, true)
    } else {
        return Err(does_not_fit(piece, sheet));
    };

    let per_sheet = columns * rows;
    let pitch = [(tw + 2.0 * bleed + gap) * scale, (th + 2.0 * bleed + gap) * scale];
    let block_w = f64::from(columns) * pitch[0] - gap * scale;
    let block_h = f64::from(rows) * pitch[1] - gap * scale;
    let origin = [(sw - block_w) / 2.0 + bleed * scale, (sh - block_h) / 2.0 + bleed * scale];

    let duplex = if piece.pages == 1 { Duplex::OneSided } else { options.duplex };
    let batches = options.quantity.div_ceil(per_sheet);
    let (sheets_per_batch, sides_per_batch) = per_batch(piece.pages, duplex);
    let sheets = u64::from(batches) * u64::from(sheets_per_batch);
    if sheets > u64::from(MAX_SHEETS) {
        let max_quantity = u64::from(MAX_SHEETS / sheets_per_batch) * u64::from(per_sheet);
        return Err(ImposeError::TooManySheets { quantity: options.quantity, sheets, max: MAX_SHEETS, max_quantity });
    }
    // Both fit in u32: sheets ≤ MAX_SHEETS and there are at most two sides to a sheet.
    let sheet_count = batches * sheets_per_batch;
    let page_count = batches * sides_per_batch;

    Ok(Plan {
        piece: *piece,
        sheet: *sheet,
        duplex,
        quantity: options.quantity,
        columns,
        rows,
        per_sheet,
        rotated,
        scale,
        cut_marks,
        sheet_count,
        page_count,
        backs_separate: duplex == Duplex::OneSided && piece.pages >= 2,
        batches,
        origin_mm: origin,
        pitch_mm: pitch,
    })
}

/// Physical sheets and printed sides for one batch of pieces.
fn per_batch(pages: u32, duplex: Duplex) -> (u32, u32) {
    match duplex {
        Duplex::OneSided => (pages, pages),
        Duplex::LongEdge | Duplex::ShortEdge => {
            let sheets = pages.div_ceil(2);
            (sheets, 2 * sheets)
        }
    }
}

/// How many cells of `cell` mm, `gap` mm apart, fit in `avail` mm.
fn fits(avail: f64, cell: f64, gap: f64) -> u32 {
    if avail + EPSILON_MM < cell {
        return 0;
    }
    // Bounded by validate(): at most MAX_SIZE_MM / MIN_TRIM_MM cells.
    ((avail + gap + EPSILON_MM) / (cell + gap)).floor() as u32
}

fn does_not_fit(piece: &Piece, sheet: &Sheet) -> ImposeError {
    ImposeError::DoesNotFit {
        piece_width_mm: piece.trim_width_mm,
        piece_height_mm: piece.trim_height_mm,
        bleed_mm: piece.bleed_mm,
        sheet_width_mm: sheet.width_mm,
        sheet_height_mm: sheet.height_mm,
        margin_mm: sheet.margin_mm,
    }
}

fn validate(piece: &Piece, sheet: &Sheet, options: &PlanOptions) -> Result<(), ImposeError> {
    let invalid = |what: String| Err(ImposeError::Invalid(what));
    for (name, value) in [("trim width", piece.trim_width_mm), ("trim height", piece.trim_height_mm)] {
        if !(MIN_TRIM_MM..=MAX_SIZE_MM).contains(&value) {
            return invalid(format!(
                "the piece's {name} is {value} mm; it must be between {MIN_TRIM_MM} and {MAX_SIZE_MM} mm"
            ));
        }
    }
    if !(0.0..=50.0).contains(&piece.bleed_mm) {
        return invalid(format!("the piece's bleed is {} mm; it must be between 0 and 50 mm", piece.bleed_mm));
    }
    if piece.pages == 0 {
        return invalid("the piece has no pages".into());
    }
    for (name, value) in [("width", sheet.width_mm), ("height", sheet.height_mm)] {
        if !(MIN_TRIM_MM..=MAX_SIZE_MM).contains(&value) {
            return invalid(format!(
                "the sheet's {name} is {value} mm; it must be between {MIN_TRIM_MM} and {MAX_SIZE_MM} mm"
            ));
        }
    }
    if !(sheet.margin_mm >= 0.0 && 2.0 * sheet.margin_mm < sheet.width_mm.min(sheet.height_mm)) {
        return invalid(format!(
            "the sheet's unprintable margin is {} mm; it must be at least 0 and leave a printable area",
            sheet.margin_mm
        ));
    }
    if !(0.0..=100.0).contains(&options.gutter_mm) {
        return invalid(format!("the gutter is {} mm; it must be between 0 and 100 mm", options.gutter_mm));
    }
    if options.quantity == 0 {
        return invalid("the quantity is 0; at least one piece must be ordered".into());
    }
    Ok(())
}

impl Plan {
    /// Whether this is a plan [`plan`] could have made (the fields are public): [`impose`] and
    /// [`sheet_preview`] refuse any other rather than divide by zero or fill a sheet a million times.
    pub fn check(&self) -> Result<(), ImposeError> {
        let options = PlanOptions { duplex: self.duplex, quantity: self.quantity, fit: true, gutter_mm: 0.0 };
        validate(&self.piece, &self.sheet, &options)?;
        let broken = |what: &str| {
            Err(ImposeError::Invalid(format!("the imposition plan is inconsistent ({what}); make it with plan()")))
        };
        if self.columns == 0 || self.rows == 0 || self.columns.checked_mul(self.rows) != Some(self.per_sheet) {
            return broken("columns × rows is not per_sheet");
        }
        if self.batches != self.quantity.div_ceil(self.per_sheet) {
            return broken("the batches do not hold the quantity");
        }
        let (sheets, sides) = per_batch(self.piece.pages, self.duplex);
        let expected = (u64::from(self.batches) * u64::from(sheets), u64::from(self.batches) * u64::from(sides));
        if expected != (u64::from(self.sheet_count), u64::from(self.page_count)) || self.sheet_count > MAX_SHEETS {
            return broken("the sheet or page count");
        }
        if !(self.scale > 0.0 && self.scale <= 1.0) {
            return broken("the scale is not in (0, 1]");
        }
        // The block must lie on the sheet: this bounds the slots by the sheet's size.
        let (tw, th) = self.trim_on_sheet();
        let [x, y] = self.origin_mm;
        let [px, py] = self.pitch_mm;
        let right = x + f64::from(self.columns - 1) * px + tw;
        let bottom = y + f64::from(self.rows - 1) * py + th;
        let slack = self.piece.bleed_mm + EPSILON_MM;
        // Written so that NaN anywhere fails.
        let on_sheet = px >= tw - EPSILON_MM
            && py >= th - EPSILON_MM
            && x >= -slack
            && y >= -slack
            && right <= self.sheet.width_mm + slack
            && bottom <= self.sheet.height_mm + slack;
        if !on_sheet {
            return broken("the pieces do not lie on the sheet");
        }
        Ok(())
    }

    /// The `i`th slot (row by row from the top left) on a front side, `None` past `per_sheet`.
    pub fn front_slot(&self, i: u32) -> Option<Slot> {
        if i >= self.per_sheet || self.columns == 0 {
            return None;
        }
        let (column, row) = (i % self.columns, i / self.columns);
        let (w, h) = (self.piece.trim_width_mm, self.piece.trim_height_mm);
        let x = self.origin_mm[0] + f64::from(column) * self.pitch_mm[0];
        let y = self.origin_mm[1] + f64::from(row) * self.pitch_mm[1];
        let s = self.scale;
        let place = [s, 0.0, 0.0, s, x, y];
        Some(slot(compose(place, quarter_turns(u8::from(self.rotated), w, h)), w, h))
    }

    /// Where the back of the piece in front slot `i` is printed: the front placement seen through
    /// the paper. With `M` the piece turned over around its vertical axis and `S` the sheet turned
    /// over as the duplex mode does it, `T_back = S ∘ T_front ∘ M` (a rotation, never a mirror).
    pub fn back_slot(&self, i: u32) -> Option<Slot> {
        let front = self.front_slot(i)?;
        let (w, h) = (self.piece.trim_width_mm, self.piece.trim_height_mm);
        let piece_flip = [-1.0, 0.0, 0.0, 1.0, w, 0.0];
        let t = compose(self.sheet_flip(), compose(front.transform, piece_flip));
        Some(slot(t, w, h))
    }

    /// How the duplex mode turns the sheet over: long edge mirrors left and right of a portrait
    /// sheet, short edge top and bottom. One-sided: no turn (backs are separate sheets).
    pub fn sheet_flip(&self) -> Matrix {
        match self.duplex {
            Duplex::LongEdge | Duplex::OneSided => [-1.0, 0.0, 0.0, 1.0, self.sheet.width_mm, 0.0],
            Duplex::ShortEdge => [1.0, 0.0, 0.0, -1.0, 0.0, self.sheet.height_mm],
        }
    }

    /// The slot of piece `i` on a side; backs of one-sided jobs are laid out like fronts (each
    /// is its own sheet, cut on its own).
    pub fn slot(&self, i: u32, back: bool) -> Option<Slot> {
        if back && self.duplex != Duplex::OneSided { self.back_slot(i) } else { self.front_slot(i) }
    }

    /// The cut marks, the same on every printed side: `[x0, y0, x1, y1]` line segments in sheet
    /// mm. Every trim edge of every column and row is continued outside the block of pieces,
    /// starting [`MARK_GAP_MM`] beyond it, [`MARK_LENGTH_MM`] long. Empty without cut marks.
    pub fn marks(&self) -> Vec<[f64; 4]> {
        if !self.cut_marks {
            return Vec::new();
        }
        let (tw, th) = self.trim_on_sheet();
        let bleed = self.piece.bleed_mm * self.scale;
        let span = |origin: f64, pitch: f64, n: u32, size: f64| {
            let mut edges: Vec<f64> = Vec::new();
            for k in 0..n {
                let start = origin + f64::from(k) * pitch;
                for edge in [start, start + size] {
                    // Butted trims share one cut.
                    if edges.last().is_none_or(|last| (edge - last).abs() > 0.01) {
                        edges.push(edge);
                    }
                }
            }
            let first = origin - bleed;
            let last = origin + f64::from(n.saturating_sub(1)) * pitch + size + bleed;
            (edges, first, last)
        };
        let (xs, left, right) = span(self.origin_mm[0], self.pitch_mm[0], self.columns, tw);
        let (ys, top, bottom) = span(self.origin_mm[1], self.pitch_mm[1], self.rows, th);
        let (near, far) = (MARK_GAP_MM, MARK_GAP_MM + MARK_LENGTH_MM);
        let mut marks = Vec::with_capacity(2 * (xs.len() + ys.len()));
        for x in xs {
            marks.push([x, top - near, x, top - far]);
            marks.push([x, bottom + near, x, bottom + far]);
        }
        for y in ys {
            marks.push([left - near, y, left - far, y]);
            marks.push([right + near, y, right + far, y]);
        }
        marks
    }

    /// Size of one trim as it lies on the sheet (turned and scaled), mm.
    pub fn trim_on_sheet(&self) -> (f64, f64) {
        let (w, h) = (self.piece.trim_width_mm * self.scale, self.piece.trim_height_mm * self.scale);
        if self.rotated { (h, w) } else { (w, h) }
    }

    /// Every side of the output in print order (one PDF page each).
    pub fn sides(&self) -> Vec<Side> {
        // Capacity bounded: a plan from plan() has at most 2 × MAX_SHEETS sides.
        let mut sides = Vec::with_capacity(self.page_count.min(2 * MAX_SHEETS) as usize);
        let mut sheet = 0;
        for batch in 0..self.batches {
            let filled = self.per_sheet.min(self.quantity.saturating_sub(batch.saturating_mul(self.per_sheet)));
            match self.duplex {
                Duplex::OneSided => {
                    for page in 0..self.piece.pages {
                        sides.push(Side { sheet, back: false, page: Some(page), filled });
                        sheet += 1;
                    }
                }
                Duplex::LongEdge | Duplex::ShortEdge => {
                    for page in (0..self.piece.pages).step_by(2) {
                        sides.push(Side { sheet, back: false, page: Some(page), filled });
                        let back = Some(page + 1).filter(|p| *p < self.piece.pages);
                        sides.push(Side { sheet, back: true, page: back, filled });
                        sheet += 1;
                    }
                }
            }
        }
        sides
    }
}

/// The slot a piece transform puts the `w`×`h` trim in.
fn slot(transform: Matrix, w: f64, h: f64) -> Slot {
    let (x0, y0) = apply(transform, (0.0, 0.0));
    let (x1, y1) = apply(transform, (w, h));
    let [a, b, ..] = transform;
    let turns = if a > EPSILON_MM {
        0
    } else if b > EPSILON_MM {
        1
    } else if a < -EPSILON_MM {
        2
    } else {
        3
    };
    Slot { x_mm: x0.min(x1), y_mm: y0.min(y1), width_mm: (x1 - x0).abs(), height_mm: (y1 - y0).abs(), turns, transform }
}
