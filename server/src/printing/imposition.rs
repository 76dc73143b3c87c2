//! `SheetImposer`: the domain's `Imposer` over the renderer's imposition (`render::impose`),
//! its PDF and image work on the render pool, so imposing shares the renderers' bounds.

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::customization::PageImage;
use crate::domain::devices::Sides;
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::imposition::{Imposer, Layout, LayoutSpec, sheets_one_per_sheet};
use crate::render::impose::{self, Duplex, ImposeError, Piece, Plan, PlanOptions, Sheet};
use crate::storefront::customizer::RenderPool;

pub struct SheetImposer {
    pool: RenderPool,
}

impl SheetImposer {
    pub fn new(pool: RenderPool) -> Self {
        SheetImposer { pool }
    }
}

fn geometry(spec: &LayoutSpec) -> CoreResult<Plan> {
    let piece = Piece {
        trim_width_mm: spec.trim.width_mm,
        trim_height_mm: spec.trim.height_mm,
        bleed_mm: spec.trim.bleed_mm,
        pages: spec.pages,
    };
    let sheet = Sheet { width_mm: spec.sheet.width_mm, height_mm: spec.sheet.height_mm, margin_mm: spec.margin_mm };
    let duplex = match spec.sides {
        Sides::OneSided => Duplex::OneSided,
        Sides::TwoSidedLongEdge => Duplex::LongEdge,
        Sides::TwoSidedShortEdge => Duplex::ShortEdge,
    };
    let options = PlanOptions { duplex, quantity: spec.quantity, fit: spec.fit, gutter_mm: 0.0 };
    impose::plan(&piece, &sheet, &options).map_err(|err| error(err, spec))
}

/// A piece that does not fit the sheet, or more copies than one job may print, is the caller's
/// to change; a PDF that cannot be imposed is ours.
fn error(err: ImposeError, spec: &LayoutSpec) -> CoreError {
    match err {
        ImposeError::DoesNotFit { .. } => CoreError::FailedPrecondition(format!("{err} ({})", spec.sheet.display_name)),
        ImposeError::TooManySheets { .. } => CoreError::InvalidArgument(format!("copies: {err}")),
        other => CoreError::internal("the print file could not be laid out on the printer's sheets", other),
    }
}

#[async_trait]
impl Imposer for SheetImposer {
    fn plan(&self, spec: &LayoutSpec) -> CoreResult<Layout> {
        let plan = geometry(spec)?;
        let sides = match plan.duplex {
            Duplex::OneSided => Sides::OneSided,
            Duplex::LongEdge => Sides::TwoSidedLongEdge,
            Duplex::ShortEdge => Sides::TwoSidedShortEdge,
        };
        Ok(Layout {
            imposed: true,
            sheet: spec.sheet.clone(),
            source: spec.source.clone(),
            pieces: spec.quantity,
            per_sheet: plan.per_sheet,
            sheet_count: plan.sheet_count,
            sides,
            backs_separate: plan.backs_separate,
            rotated: plan.rotated,
            scale: plan.scale,
            sheets_one_per_sheet: sheets_one_per_sheet(spec.pages, spec.quantity, sides),
        })
    }

    async fn impose(&self, print_ready: Bytes, spec: &LayoutSpec) -> CoreResult<Bytes> {
        let plan = geometry(spec)?;
        let spec = spec.clone();
        self.pool.run(move || impose::impose(&print_ready, &plan).map(Bytes::from).map_err(|e| error(e, &spec))).await?
    }

    async fn sheet_previews(&self, spec: &LayoutSpec, pages: Vec<Bytes>, width_px: u32) -> CoreResult<Vec<PageImage>> {
        let plan = geometry(spec)?;
        let spec = spec.clone();
        let sides = if plan.page_count > 1 && spec.pages > 1 { 2 } else { 1 };
        self.pool
            .run(move || {
                let pages: Vec<Vec<u8>> = pages.iter().map(|p| p.to_vec()).collect();
                (0..sides)
                    .map(|side| {
                        let png =
                            impose::sheet_preview(&plan, side == 1, &pages, width_px).map_err(|e| error(e, &spec))?;
                        let size = imagesize::blob_size(&png)
                            .map_err(|e| CoreError::internal("a sheet preview is unreadable", e))?;
                        Ok(PageImage {
                            page_number: side + 1,
                            content_type: "image/png".into(),
                            data: Bytes::from(png),
                            width_px: u32::try_from(size.width).unwrap_or(0),
                            height_px: u32::try_from(size.height).unwrap_or(0),
                        })
                    })
                    .collect::<CoreResult<Vec<_>>>()
            })
            .await?
    }
}
