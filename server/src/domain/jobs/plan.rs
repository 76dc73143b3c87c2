//! How a job prints before it is printed: the layout (sheet, pieces per sheet, sheets, sides)
//! that SubmitJob will use and PlanJob shows, with images of the first sheet.

use bytes::Bytes;

use super::{DocumentRef, Jobs};
use crate::domain::catalog::TrimSize;
use crate::domain::customization::PageImage;
use crate::domain::devices::{Capabilities, Media, Sides};
use crate::domain::error::CoreResult;
use crate::domain::imposition::{Layout, LayoutSpec, PieceRequest, choose};
use crate::domain::session::Session;

/// What PlanJob is asked: SubmitJob's document and options, and the sheet images' width.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub document: DocumentRef,
    /// 0 = the file's (or draft's) quantity.
    pub copies: u32,
    pub sides: Option<Sides>,
    pub media: Option<String>,
    pub fit: bool,
    /// 0 = no images.
    pub preview_width_px: u32,
}

/// A job's layout, and images of its first sheet when asked.
#[derive(Debug, Clone)]
pub struct JobPlan {
    pub layout: Layout,
    pub previews: Vec<PageImage>,
}

/// The printable piece of a document: `None` for a file printed as it is.
#[derive(Debug, Clone, Copy)]
pub(super) struct PieceOf {
    pub(super) trim: TrimSize,
    pub(super) pages: u32,
}

impl PieceOf {
    /// A product's file is imposed; one without a known finished size (an upload) is not.
    pub(super) fn new(trim: Option<TrimSize>, pages: u32) -> Option<PieceOf> {
        trim.filter(|t| t.width_mm > 0.0 && t.height_mm > 0.0 && pages > 0).map(|trim| PieceOf { trim, pages })
    }
}

/// The options of a print request that shape its layout.
#[derive(Debug, Clone, Copy)]
pub(super) struct LayoutOptions<'a> {
    pub(super) copies: u32,
    pub(super) sides: Option<Sides>,
    pub(super) media: Option<&'a str>,
    pub(super) fit: bool,
}

impl Jobs {
    /// How SubmitJob with these options would print; nothing is printed or recorded.
    pub async fn plan(&self, session: &Session, request: PlanRequest) -> CoreResult<JobPlan> {
        let (_, capabilities) = self.capabilities(session).await?;
        let (piece, pages, quantity, draft_id) = match &request.document {
            DocumentRef::File(id) => {
                let meta = self.deps.customization.print_file_meta(session, id).await?;
                let draft = Some(meta.draft_id.clone()).filter(|d| !d.is_empty());
                (PieceOf::new(meta.trim, meta.page_count), meta.page_count, meta.quantity, draft)
            }
            DocumentRef::Draft(id) => {
                let piece = self.deps.customization.draft_piece(session, id).await?;
                (PieceOf::new(Some(piece.trim), piece.pages), piece.pages, piece.quantity, Some(id.clone()))
            }
        };
        let copies = if request.copies == 0 { quantity.max(1) } else { request.copies };
        let options = LayoutOptions { copies, sides: request.sides, media: request.media.as_deref(), fit: request.fit };
        let (spec, layout) = self.layout(&capabilities, piece, pages, options)?;
        let mut previews = Vec::new();
        if let (Some(spec), Some(draft_id), true) = (spec, draft_id, request.preview_width_px > 0) {
            let width = request.preview_width_px.clamp(64, 2000);
            // Each piece is drawn from its own preview at about the size it takes on the sheet.
            let longest = spec.trim.width_mm.max(spec.trim.height_mm) + 2.0 * spec.trim.bleed_mm;
            let piece_px = (f64::from(width) * longest / spec.sheet.width_mm * layout.scale).ceil() as u32;
            let pages: Vec<u32> = (1..=spec.pages.min(2)).collect();
            let (images, _) =
                self.deps.customization.preview(session, &draft_id, piece_px.clamp(64, 2000), &pages).await?;
            let images: Vec<Bytes> = images.into_iter().map(|image| image.data).collect();
            previews = self.deps.imposer.sheet_previews(&spec, images, width).await?;
        }
        Ok(JobPlan { layout, previews })
    }

    /// The layout of a document on this printer: imposed for a product's piece (the imposition's
    /// spec with it), as it is otherwise.
    pub(super) fn layout(
        &self,
        capabilities: &Capabilities,
        piece: Option<PieceOf>,
        file_pages: u32,
        options: LayoutOptions<'_>,
    ) -> CoreResult<(Option<LayoutSpec>, Layout)> {
        if let Some(piece) = piece {
            let request = PieceRequest {
                trim: piece.trim,
                pages: piece.pages,
                quantity: options.copies,
                sides: options.sides,
                media: options.media,
                fit: options.fit,
            };
            // A page that is the sheet goes to the printer untouched (`imposed` false).
            let (spec, layout) = choose(self.deps.imposer.as_ref(), &self.deps.sheets, capabilities, request)?;
            return Ok((Some(spec).filter(|_| layout.imposed), layout));
        }
        let sides = options.sides.unwrap_or(capabilities.sides_default());
        let keyword = options.media.map(str::to_owned).or(capabilities.default_media.clone()).unwrap_or_default();
        let sheet = capabilities.media.iter().find(|m| m.keyword == keyword).cloned().unwrap_or(Media {
            display_name: keyword.clone(),
            keyword,
            width_mm: 0.0,
            height_mm: 0.0,
        });
        let source = capabilities.media_ready.iter().find(|r| r.media.keyword == sheet.keyword);
        let source = source.and_then(|r| r.source.clone());
        Ok((None, Layout::as_is(sheet, source, file_pages, options.copies, sides)))
    }
}
