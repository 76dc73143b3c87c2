//! Customization: drafts of a product with the person's values, validated per field, previewed
//! and finalized into a print-ready PDF. `Customizer` is the narrow backend trait: the embedded
//! storefront lays out and renders locally; the XMPie uStore backend keeps the draft ("order
//! item") remotely and renders asynchronously, which `backend_ref` and the async calls allow.
//! Drafts and print files live in the session's encrypted ephemeral data.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::catalog::{Price, Product, ProductKind, Storefront, TrimSize, Visit};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::form::{FieldError, Form, Values, check_quantity, normalize};
use crate::domain::ids::ProductId;
use crate::domain::records::{check_id, decode_record, from_ms, new_id, now_ms};
use crate::domain::session::{Session, SessionManager};
use crate::domain::usage::{UsageEvent, UsageKind, UsageSink};

/// Narrowest and widest preview the server renders; requests outside are clamped.
pub const MIN_PREVIEW_WIDTH: u32 = 64;
pub const MAX_PREVIEW_WIDTH: u32 = 2000;
/// Width used when the caller leaves it at 0.
pub const DEFAULT_PREVIEW_WIDTH: u32 = 800;
/// The most image bytes one preview response may carry: gRPC's usual 4 MiB message limit, less
/// room for the message's own fields.
pub const MAX_PREVIEW_BYTES: usize = 4 * 1024 * 1024 - 16 * 1024;
/// Drafts one session may make (the contract promises at least 20). Drafts live as long as their
/// session, so this bounds what one session can store.
pub const MAX_DRAFTS_PER_SESSION: u32 = 30;
/// The largest PDF a session may upload (the contract promises 64 MiB): the whole file is held in
/// memory while it is checked and sealed.
pub const MAX_UPLOAD_BYTES: u64 = 64 * 1024 * 1024;
/// The most bytes one upload message may carry, well inside gRPC's usual 4 MiB message limit.
pub const MAX_UPLOAD_CHUNK_BYTES: usize = 1024 * 1024;
/// Uploaded files one session may hold at once (each released when a job that printed it ends),
/// so one session cannot fill the ephemeral store.
pub const MAX_UPLOADED_FILES_PER_SESSION: usize = 4;
/// The longest display name of an uploaded file, in characters.
pub const MAX_UPLOAD_NAME_CHARS: usize = 256;
/// Uploads in progress at once across the core, each held in memory until it is checked: so at
/// most 8 × 64 MiB, whatever the callers do. A session has one upload in progress at a time.
pub const MAX_UPLOADS_IN_FLIGHT: usize = 8;

/// The core's upload slots: a total and one per session.
#[derive(Default)]
struct UploadSlots {
    total: std::sync::Mutex<usize>,
    sessions: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl UploadSlots {
    fn take(self: &Arc<Self>, scope: String) -> CoreResult<UploadSlot> {
        if !self.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(scope.clone()) {
            return Err(CoreError::ResourceExhausted(
                "this session is already uploading a file; wait for that upload to end, then send the next".into(),
            ));
        }
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        if *total >= MAX_UPLOADS_IN_FLIGHT {
            drop(total);
            self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&scope);
            return Err(CoreError::ResourceExhausted(format!(
                "{MAX_UPLOADS_IN_FLIGHT} uploads are in progress on this core; try again in a moment"
            )));
        }
        *total += 1;
        Ok(UploadSlot { slots: self.clone(), scope })
    }
}

/// An upload's place among the slots, given back when the upload ends however it ends.
struct UploadSlot {
    slots: Arc<UploadSlots>,
    scope: String,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        *self.slots.total.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.slots.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.scope);
    }
}

/// What a backend needs to know about a draft to work on it.
#[derive(Debug, Clone, Copy)]
pub struct DraftRef<'a> {
    pub product: &'a ProductId,
    /// The backend's own handle (a uStore order item id); `None` for backends without one.
    pub backend_ref: Option<&'a str>,
    pub values: &'a Values,
    pub quantity: u32,
}

/// One rendered preview page.
#[derive(Debug, Clone)]
pub struct PageImage {
    /// 1-based.
    pub page_number: u32,
    pub content_type: String,
    pub data: Bytes,
    pub width_px: u32,
    pub height_px: u32,
}

/// The print-ready file a backend produced.
#[derive(Debug, Clone)]
pub struct PrintReady {
    pub pdf: Bytes,
    pub page_count: u32,
}

/// A storefront backend's customization side.
#[async_trait]
pub trait Customizer: Send + Sync + 'static {
    /// The product's form; static products have an empty one.
    async fn form(&self, visit: &Visit, product: &ProductId) -> CoreResult<Form>;
    /// Starts the backend's side of a draft; returns its handle, if it keeps one.
    async fn open_draft(&self, visit: &Visit, product: &ProductId) -> CoreResult<Option<String>>;
    /// Checks the backend can print these values (copy fitting, glyph coverage, remote rules),
    /// beyond the rules the form states. Only called when the form's own rules pass.
    async fn check(&self, visit: &Visit, draft: DraftRef<'_>) -> CoreResult<Vec<FieldError>>;
    /// Preview images of the requested pages (0-based; empty = all) at `width_px`.
    async fn preview(
        &self,
        visit: &Visit,
        draft: DraftRef<'_>,
        width_px: u32,
        pages: &[u32],
    ) -> CoreResult<Vec<PageImage>>;
    /// The print-ready PDF.
    async fn print_ready(&self, visit: &Visit, draft: DraftRef<'_>) -> CoreResult<PrintReady>;
}

/// Where a draft stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DraftState {
    /// Some value is missing or wrong.
    Editing,
    /// Every value passes every rule; it can be finalized.
    Valid,
    /// A print-ready file exists for exactly these values.
    Finalized,
}

/// A draft as callers see it.
#[derive(Debug, Clone)]
pub struct Draft {
    pub id: String,
    pub product: ProductId,
    pub quantity: u32,
    pub values: Values,
    pub state: DraftState,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub expires_at: SystemTime,
    /// The price of the draft's quantity; `None` when the product shows no price. The embedded
    /// storefront prices linearly, so it is never only a lower bound.
    pub price: Option<Price>,
}

/// The price of `quantity` units at a product's price (rounded half up to the minor unit).
fn price_of(price: &Price, quantity: u32) -> Price {
    let per = i128::from(price.per_quantity.max(1));
    let total = (i128::from(price.amount_minor) * i128::from(quantity) * 2 + per) / (2 * per);
    Price {
        currency: price.currency.clone(),
        amount_minor: i64::try_from(total).unwrap_or(i64::MAX),
        per_quantity: quantity,
    }
}

/// A finalized print-ready file, kept in the session's data until printed or expired.
#[derive(Debug, Clone)]
pub struct PrintFile {
    pub id: String,
    /// Empty for an uploaded file.
    pub draft_id: String,
    /// The name the uploader gave it; empty for a draft's file.
    pub display_name: String,
    pub size_bytes: u64,
    pub page_count: u32,
    pub sha256: String,
    /// `None` for an uploaded file: the core does not impose a finished size on it.
    pub trim: Option<TrimSize>,
    pub suggested_copies: u32,
    pub expires_at: SystemTime,
}

/// What is stored for a draft (sealed in the session's data). Its values are wiped from memory
/// when it is dropped.
#[derive(Serialize, Deserialize)]
struct StoredDraft {
    product: String,
    backend_ref: Option<String>,
    quantity: u32,
    values: Values,
    state: DraftState,
    created_ms: u64,
    updated_ms: u64,
    file: Option<StoredFileInfo>,
}

impl Drop for StoredDraft {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        for value in self.values.values_mut() {
            value.zeroize();
        }
    }
}

/// What a print file is, for printing it by its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrintFileMeta {
    /// Empty for an uploaded file.
    pub draft_id: String,
    /// Empty for an uploaded file.
    pub product_id: String,
    pub page_count: u32,
    pub quantity: u32,
    // Stored fields are only ever appended (`records::decode_record`).
    /// The finished size of a draft's file (what imposition goes by); `None` for an upload.
    pub trim: Option<TrimSize>,
}

/// What a draft prints as: its product's finished size, pages and the quantity ordered.
#[derive(Debug, Clone)]
pub struct DraftPiece {
    pub product_id: ProductId,
    pub trim: TrimSize,
    pub pages: u32,
    pub quantity: u32,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredFileInfo {
    id: String,
    size_bytes: u64,
    page_count: u32,
    sha256: String,
}

/// A PDF upload as it arrives: its bytes are counted against the declared size and the limits
/// chunk by chunk, so an oversized upload is refused as soon as it shows.
pub struct Upload {
    declared: u64,
    display_name: String,
    bytes: Vec<u8>,
    _slot: Option<UploadSlot>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes and the name are the person's; only the sizes show.
        f.debug_struct("Upload").field("declared", &self.declared).field("received", &self.bytes.len()).finish()
    }
}

impl Upload {
    /// Checks what the first message declares.
    fn start(size_bytes: i64, display_name: String) -> CoreResult<Upload> {
        let declared = u64::try_from(size_bytes).unwrap_or(0);
        if declared == 0 {
            return Err(CoreError::InvalidArgument(
                "size_bytes must be the file's size in bytes, at least 1; send it in the first message".into(),
            ));
        }
        if declared > MAX_UPLOAD_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "the file is {declared} bytes; print files may be at most {} MiB",
                MAX_UPLOAD_BYTES / (1024 * 1024)
            )));
        }
        if display_name.chars().count() > MAX_UPLOAD_NAME_CHARS || display_name.chars().any(char::is_control) {
            return Err(CoreError::InvalidArgument(format!(
                "display_name must be at most {MAX_UPLOAD_NAME_CHARS} characters without control characters"
            )));
        }
        // Grown as chunks arrive: the declared size is the caller's word, not yet the bytes.
        Ok(Upload { declared, display_name, bytes: Vec::new(), _slot: None })
    }

    /// Takes the next chunk; refuses it when it is too large or brings more than declared.
    pub fn push(&mut self, chunk: &[u8]) -> CoreResult<()> {
        if chunk.len() > MAX_UPLOAD_CHUNK_BYTES {
            return Err(CoreError::InvalidArgument(format!(
                "a chunk of {} bytes is larger than the {} KiB one message may carry; send smaller chunks",
                chunk.len(),
                MAX_UPLOAD_CHUNK_BYTES / 1024
            )));
        }
        let total = self.bytes.len() as u64 + chunk.len() as u64;
        if total > self.declared {
            return Err(CoreError::InvalidArgument(format!(
                "the chunks bring more than the {} bytes size_bytes declared; declare the file's exact size",
                self.declared
            )));
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole file, once every declared byte arrived.
    fn finish(mut self) -> CoreResult<(Vec<u8>, String)> {
        if self.bytes.len() as u64 != self.declared {
            return Err(CoreError::InvalidArgument(format!(
                "the upload ended after {} of the {} bytes size_bytes declared; send the whole file",
                self.bytes.len(),
                self.declared
            )));
        }
        Ok((std::mem::take(&mut self.bytes), std::mem::take(&mut self.display_name)))
    }
}

/// Changes asked of a draft.
#[derive(Debug, Clone, Default)]
pub struct DraftChanges {
    pub values: Values,
    pub quantity: Option<u32>,
    pub clear: Vec<String>,
}

/// The customization service as callers use it.
pub struct Customization {
    catalog: Arc<dyn Storefront>,
    backend: Arc<dyn Customizer>,
    sessions: Arc<SessionManager>,
    usage: Arc<dyn UsageSink>,
    /// One queue per draft with previews in flight: previews of a draft render one at a time, in
    /// the order asked (tokio's mutex is fair). An entry lives only while someone waits on it.
    previews: std::sync::Mutex<HashMap<String, PreviewQueue>>,
    uploads: Arc<UploadSlots>,
}

/// A draft's preview queue and the last preview rendered through it: one waiting for the same
/// values, width and pages shares it instead of rendering again (a remote backend's previews take
/// seconds, and a person tapping "preview" twice should not wait twice).
type PreviewQueue = Arc<tokio::sync::Mutex<Option<LastPreview>>>;

struct LastPreview {
    values: Values,
    quantity: u32,
    width: u32,
    pages: Vec<u32>,
    images: Vec<PageImage>,
}

impl LastPreview {
    fn shows(&self, stored: &StoredDraft, width: u32, pages: &[u32]) -> bool {
        self.values == stored.values && self.quantity == stored.quantity && self.width == width && self.pages == pages
    }
}

impl Customization {
    pub fn new(
        catalog: Arc<dyn Storefront>,
        backend: Arc<dyn Customizer>,
        sessions: Arc<SessionManager>,
        usage: Arc<dyn UsageSink>,
    ) -> Self {
        Customization { catalog, backend, sessions, usage, previews: Default::default(), uploads: Default::default() }
    }

    pub async fn form(&self, session: &Session, product: &ProductId) -> CoreResult<Form> {
        let visit = self.sessions.visit(session);
        // A product the shopper may not see (another account's private category) has no form.
        self.catalog.product(&visit, product).await?;
        self.backend.form(&visit, product).await
    }

    /// Creates a draft with the form's defaults overlaid by `values`; returns it with every
    /// problem its values have.
    pub async fn create_draft(
        &self,
        session: &Session,
        product_id: &ProductId,
        quantity: Option<u32>,
        values: Values,
    ) -> CoreResult<(Draft, Vec<FieldError>)> {
        let visit = self.sessions.visit(session);
        let product = self.catalog.product(&visit, product_id).await?;
        let form = self.backend.form(&visit, product_id).await?;
        let mut values = values;
        form.screen(&values).map_err(|problem| CoreError::InvalidArgument(problem.message()))?;
        normalize(&mut values);
        self.count_new_draft(session).await?;
        let mut merged = form.defaults();
        merged.extend(values);
        let backend_ref = self.backend.open_draft(&visit, product_id).await?;
        let now = now_ms();
        let mut stored = StoredDraft {
            product: product_id.as_str().to_owned(),
            backend_ref,
            quantity: quantity.unwrap_or(product.quantity.default),
            values: merged,
            state: DraftState::Editing,
            created_ms: now,
            updated_ms: now,
            file: None,
        };
        let errors = self.evaluate(&visit, &product, &form, &mut stored).await?;
        let id = new_id();
        self.save(session, &id, &stored).await?;
        self.usage.record(UsageEvent::new(UsageKind::DraftCreated).with_product(product_id.clone())).await;
        Ok((self.view(session, &id, &stored, &product), errors))
    }

    /// Applies changes to a draft of this session; values are kept as typed even when they have
    /// problems, which are all reported.
    pub async fn update_draft(
        &self,
        session: &Session,
        draft_id: &str,
        changes: DraftChanges,
    ) -> CoreResult<(Draft, Vec<FieldError>)> {
        let visit = self.sessions.visit(session);
        let mut stored = self.load(session, draft_id).await?;
        if stored.state == DraftState::Finalized {
            // Its print file is what FinalizeDraft reported; changing the values would break that.
            return Err(CoreError::FailedPrecondition(
                "the draft is finalized and can no longer change; create a new draft to make changes".into(),
            ));
        }
        let product_id = ProductId::parse(&stored.product)?;
        let product = self.catalog.product(&visit, &product_id).await?;
        let form = self.backend.form(&visit, &product_id).await?;
        let mut values = changes.values;
        form.screen(&values).map_err(|problem| CoreError::InvalidArgument(problem.message()))?;
        normalize(&mut values);
        for id in &changes.clear {
            match form.field(id) {
                None => {
                    return Err(CoreError::InvalidArgument(format!(
                        "clear_field_ids names \"{id}\", which is not a field of this product"
                    )));
                }
                Some(field) if field.read_only => {
                    return Err(CoreError::InvalidArgument(format!(
                        "clear_field_ids names \"{id}\", which is read-only and cannot be cleared"
                    )));
                }
                Some(_) => {}
            }
        }
        for id in &changes.clear {
            stored.values.remove(id);
        }
        stored.values.extend(values);
        if let Some(quantity) = changes.quantity {
            stored.quantity = quantity;
        }
        stored.updated_ms = now_ms();
        let errors = self.evaluate(&visit, &product, &form, &mut stored).await?;
        self.save(session, draft_id, &stored).await?;
        Ok((self.view(session, draft_id, &stored, &product), errors))
    }

    /// Preview pages of a draft, whatever its state (a person sees problems as they type).
    pub async fn preview(
        &self,
        session: &Session,
        draft_id: &str,
        width_px: u32,
        pages: &[u32],
    ) -> CoreResult<(Vec<PageImage>, u32)> {
        let visit = self.sessions.visit(session);
        let stored = self.load(session, draft_id).await?;
        let product_id = ProductId::parse(&stored.product)?;
        let product = self.catalog.product(&visit, &product_id).await?;
        if let Some(&bad) = pages.iter().find(|&&p| p == 0 || p > product.page_count) {
            return Err(CoreError::InvalidArgument(format!(
                "page_numbers contains {bad}; this product has pages 1 to {}",
                product.page_count
            )));
        }
        let width = match width_px {
            0 => DEFAULT_PREVIEW_WIDTH,
            w => w.clamp(MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH),
        };
        let zero_based: Vec<u32> = pages.iter().map(|p| p - 1).collect();
        let key = format!("{}/{draft_id}", session.scope());
        let queue = self.previews.lock().unwrap_or_else(|p| p.into_inner()).entry(key.clone()).or_default().clone();
        let mut last = queue.lock().await;
        // Read again in turn: a change made while this preview waited is shown, and the newest
        // values win over a render of older ones.
        let rendered = match self.load(session, draft_id).await {
            Ok(stored) => match last.as_ref().filter(|last| last.shows(&stored, width, &zero_based)) {
                Some(same) => Ok(same.images.clone()),
                None => {
                    let rendered =
                        self.backend.preview(&visit, draft_ref(&product_id, &stored), width, &zero_based).await;
                    *last = rendered.as_ref().ok().map(|images| LastPreview {
                        values: stored.values.clone(),
                        quantity: stored.quantity,
                        width,
                        pages: zero_based.clone(),
                        images: images.clone(),
                    });
                    rendered
                }
            },
            Err(err) => Err(err),
        };
        drop(last);
        {
            let mut map = self.previews.lock().unwrap_or_else(|p| p.into_inner());
            // Ours and the map's: nobody else waits, so the queue can go.
            if Arc::strong_count(&queue) == 2 {
                map.remove(&key);
            }
        }
        let images = rendered?;
        let bytes: usize = images.iter().map(|image| image.data.len()).sum();
        if bytes > MAX_PREVIEW_BYTES {
            return Err(CoreError::ResourceExhausted(format!(
                "the preview images are {} KiB, more than one response may carry (4 MiB); ask for fewer pages \
                 (page_numbers) or a smaller width_px",
                bytes / 1024
            )));
        }
        self.usage.record(UsageEvent::new(UsageKind::PreviewRendered).with_product(product_id)).await;
        Ok((images, product.page_count))
    }

    /// Produces the print-ready PDF of a valid draft and keeps it, encrypted, in the session. A
    /// finalized draft gets its file back, or a new one from the same values once it was deleted.
    pub async fn finalize(&self, session: &Session, draft_id: &str) -> CoreResult<(PrintFile, Draft)> {
        let visit = self.sessions.visit(session);
        let mut stored = self.load(session, draft_id).await?;
        let product_id = ProductId::parse(&stored.product)?;
        let product = self.catalog.product(&visit, &product_id).await?;
        if let Some(file) = stored.file.clone().filter(|_| stored.state == DraftState::Finalized) {
            return Ok((
                self.file_view(session, draft_id, &product, &stored, &file),
                self.view(session, draft_id, &stored, &product),
            ));
        }
        let form = self.backend.form(&visit, &product_id).await?;
        let errors = self.evaluate(&visit, &product, &form, &mut stored).await?;
        if !errors.is_empty() {
            let fields = errors.iter().map(|e| if e.field.is_empty() { "quantity" } else { e.field.as_str() });
            return Err(CoreError::FailedPrecondition(format!(
                "the draft has problems to fix first ({}); UpdateDraft lists them",
                fields.collect::<Vec<_>>().join(", ")
            )));
        }
        let ready = self.backend.print_ready(&visit, draft_ref(&product_id, &stored)).await?;
        let file = StoredFileInfo {
            id: new_id(),
            size_bytes: ready.pdf.len() as u64,
            page_count: ready.page_count,
            sha256: hex::encode(Sha256::digest(&ready.pdf)),
        };
        let data = self.sessions.data(session);
        data.put(&file_key(&file.id), &ready.pdf).await?;
        let meta = PrintFileMeta {
            draft_id: draft_id.to_owned(),
            product_id: product_id.as_str().to_owned(),
            page_count: ready.page_count,
            quantity: stored.quantity,
            trim: Some(product.trim),
        };
        let meta = postcard::to_allocvec(&meta).map_err(|e| CoreError::internal("cannot store the print file", e))?;
        data.put(&file_meta_key(&file.id), &meta).await?;
        stored.file = Some(file.clone());
        stored.state = DraftState::Finalized;
        stored.updated_ms = now_ms();
        self.save(session, draft_id, &stored).await?;
        self.usage.record(UsageEvent::new(UsageKind::DraftFinalized).with_product(product_id)).await;
        Ok((
            self.file_view(session, draft_id, &product, &stored, &file),
            self.view(session, draft_id, &stored, &product),
        ))
    }

    /// Starts an upload: checks the declared size and that the session may hold another file,
    /// before any byte is read.
    pub async fn begin_upload(&self, session: &Session, size_bytes: i64, display_name: String) -> CoreResult<Upload> {
        let mut upload = Upload::start(size_bytes, display_name)?;
        self.check_upload_room(session).await?;
        upload._slot = Some(self.uploads.take(session.scope())?);
        Ok(upload)
    }

    /// Keeps an uploaded PDF as a print file of the session, sealed like a finalized draft's,
    /// once it is a printable PDF.
    pub async fn finish_upload(&self, session: &Session, mut upload: Upload) -> CoreResult<PrintFile> {
        // The slot stays taken while the file is checked and sealed: the bytes are still here.
        let _slot = upload._slot.take();
        let (pdf, display_name) = upload.finish()?;
        let pdf = Bytes::from(pdf);
        // Read and hashed off the async workers: up to 64 MiB.
        let (page_count, sha256) = tokio::task::spawn_blocking({
            let pdf = pdf.clone();
            move || crate::domain::pdf::page_count(&pdf).map(|pages| (pages, hex::encode(Sha256::digest(&pdf))))
        })
        .await
        .map_err(|e| CoreError::internal("cannot check the uploaded file", e))?
        .map_err(|problem| {
            CoreError::InvalidArgument(format!(
                "the file is {problem}; upload an unencrypted PDF with at least one page (export or print it to PDF \
                 again if needed)"
            ))
        })?;
        // Checked again: another upload of this session may have finished meanwhile.
        let mut uploads = self.check_upload_room(session).await?;
        let file = StoredFileInfo { id: new_id(), size_bytes: pdf.len() as u64, page_count, sha256 };
        let data = self.sessions.data(session);
        data.put(&file_key(&file.id), &pdf).await?;
        let meta =
            PrintFileMeta { draft_id: String::new(), product_id: String::new(), page_count, quantity: 1, trim: None };
        let meta = postcard::to_allocvec(&meta).map_err(|e| CoreError::internal("cannot store the print file", e))?;
        data.put(&file_meta_key(&file.id), &meta).await?;
        uploads.push(file.id.clone());
        self.save_uploads(session, &uploads).await?;
        Ok(PrintFile {
            id: file.id,
            draft_id: String::new(),
            display_name,
            size_bytes: file.size_bytes,
            page_count,
            sha256: file.sha256,
            trim: None,
            suggested_copies: 1,
            expires_at: session.expires_at(),
        })
    }

    /// The session's uploaded files still kept, refused when there is no room for another.
    async fn check_upload_room(&self, session: &Session) -> CoreResult<Vec<String>> {
        let uploads = self.uploads(session).await?;
        if uploads.len() >= MAX_UPLOADED_FILES_PER_SESSION {
            return Err(CoreError::ResourceExhausted(format!(
                "this session already holds {MAX_UPLOADED_FILES_PER_SESSION} uploaded files, the most it may; print \
                 them (a file is released when its job ends) or start a new session"
            )));
        }
        Ok(uploads)
    }

    async fn uploads(&self, session: &Session) -> CoreResult<Vec<String>> {
        match self.sessions.data(session).get(UPLOADS_KEY).await? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| CoreError::internal("bad upload index", e)),
            None => Ok(Vec::new()),
        }
    }

    async fn save_uploads(&self, session: &Session, uploads: &[String]) -> CoreResult<()> {
        let bytes = postcard::to_allocvec(uploads).map_err(|e| CoreError::internal("cannot store the uploads", e))?;
        self.sessions.data(session).put(UPLOADS_KEY, &bytes).await
    }

    /// What a print file of this session is.
    pub async fn print_file_meta(&self, session: &Session, file_id: &str) -> CoreResult<PrintFileMeta> {
        let not_found = || {
            CoreError::NotFound(format!(
                "print file \"{file_id}\" does not exist in this session (it may have been printed or expired)"
            ))
        };
        if !check_id("file_id", file_id)? {
            return Err(not_found());
        }
        let bytes = self.sessions.data(session).get(&file_meta_key(file_id)).await?.ok_or_else(not_found)?;
        // Also one an older core stored (`records::decode_record`): without `trim` it prints as it is.
        decode_record(&bytes).map_err(|e| CoreError::internal("a stored print file is unreadable", e))
    }

    /// Deletes a print file once it is printed (or its job ended otherwise). Its draft stays
    /// finalized: finalizing it again makes a fresh file from the same values.
    pub async fn release_print_file(&self, session: &Session, file_id: &str) -> CoreResult<()> {
        let meta = self.print_file_meta(session, file_id).await.ok();
        let data = self.sessions.data(session);
        data.delete(&file_key(file_id)).await?;
        data.delete(&file_meta_key(file_id)).await?;
        let mut uploads = self.uploads(session).await?;
        if uploads.iter().any(|id| id == file_id) {
            uploads.retain(|id| id != file_id);
            self.save_uploads(session, &uploads).await?;
        }
        if let Some(meta) = meta
            && let Ok(mut stored) = self.load(session, &meta.draft_id).await
            && stored.file.as_ref().is_some_and(|f| f.id == file_id)
        {
            stored.file = None;
            self.save(session, &meta.draft_id, &stored).await?;
        }
        Ok(())
    }

    /// The bytes of a finalized print file of this session (for printing).
    pub async fn print_file_bytes(&self, session: &Session, file_id: &str) -> CoreResult<Bytes> {
        let not_found = || CoreError::NotFound(format!("print file \"{file_id}\" does not exist in this session"));
        if !check_id("file_id", file_id)? {
            return Err(not_found());
        }
        let data = self.sessions.data(session).get(&file_key(file_id)).await?;
        data.map(|pdf| Bytes::copy_from_slice(&pdf)).ok_or_else(not_found)
    }

    /// What a draft prints as, whatever its state (the print screen shows the layout before the
    /// person confirms).
    pub async fn draft_piece(&self, session: &Session, draft_id: &str) -> CoreResult<DraftPiece> {
        let visit = self.sessions.visit(session);
        let stored = self.load(session, draft_id).await?;
        let product_id = ProductId::parse(&stored.product)?;
        let product = self.catalog.product(&visit, &product_id).await?;
        let pages = stored.file.as_ref().map_or(product.page_count, |file| file.page_count);
        Ok(DraftPiece { product_id, trim: product.trim, pages, quantity: stored.quantity })
    }

    /// The print file of a FINALIZED draft, made again from its values if it was deleted; a draft
    /// that is not finalized is not printed (the person has not confirmed it).
    pub async fn finalized_file(&self, session: &Session, draft_id: &str) -> CoreResult<PrintFile> {
        let stored = self.load(session, draft_id).await?;
        if stored.state != DraftState::Finalized {
            return Err(CoreError::FailedPrecondition(
                "the draft is not finalized; call FinalizeDraft first, then print the file it returns".into(),
            ));
        }
        Ok(self.finalize(session, draft_id).await?.0)
    }

    /// Counts a new draft against the session's allowance.
    async fn count_new_draft(&self, session: &Session) -> CoreResult<()> {
        let data = self.sessions.data(session);
        let made = match data.get(DRAFT_COUNT_KEY).await? {
            Some(bytes) => <[u8; 4]>::try_from(bytes.as_slice()).map(u32::from_le_bytes).unwrap_or(u32::MAX),
            None => 0,
        };
        if made >= MAX_DRAFTS_PER_SESSION {
            return Err(CoreError::ResourceExhausted(format!(
                "this session already has {MAX_DRAFTS_PER_SESSION} drafts, the most it may have; finish or reuse one, \
                 or close the app and start again"
            )));
        }
        data.put(DRAFT_COUNT_KEY, &(made + 1).to_le_bytes()).await
    }

    /// Applies the form's rules, then the backend's, and sets the draft's state accordingly.
    async fn evaluate(
        &self,
        visit: &Visit,
        product: &Product,
        form: &Form,
        stored: &mut StoredDraft,
    ) -> CoreResult<Vec<FieldError>> {
        let mut errors = form.check(&stored.values);
        if let Some(error) = check_quantity(&product.quantity, stored.quantity) {
            errors.push(error);
        }
        if errors.is_empty() && product.summary.kind == ProductKind::Customizable {
            let product_id = &product.summary.id;
            errors = self.backend.check(visit, draft_ref(product_id, stored)).await?;
        }
        stored.state = if errors.is_empty() { DraftState::Valid } else { DraftState::Editing };
        Ok(errors)
    }

    async fn load(&self, session: &Session, draft_id: &str) -> CoreResult<StoredDraft> {
        let not_found = || {
            CoreError::NotFound(format!("draft \"{draft_id}\" does not exist in this session (it may have expired)"))
        };
        if !check_id("draft_id", draft_id)? {
            return Err(not_found());
        }
        let bytes = self.sessions.data(session).get(&draft_key(draft_id)).await?.ok_or_else(not_found)?;
        postcard::from_bytes(&bytes).map_err(|e| CoreError::internal("a stored draft is unreadable", e))
    }

    async fn save(&self, session: &Session, draft_id: &str, stored: &StoredDraft) -> CoreResult<()> {
        let bytes = postcard::to_allocvec(stored).map_err(|e| CoreError::internal("cannot store the draft", e))?;
        self.sessions.data(session).put(&draft_key(draft_id), &bytes).await
    }

    fn view(&self, session: &Session, id: &str, stored: &StoredDraft, product: &Product) -> Draft {
        Draft {
            id: id.to_owned(),
            product: ProductId::parse(&stored.product).expect("stored ids were checked"),
            quantity: stored.quantity,
            values: stored.values.clone(),
            state: stored.state,
            created_at: from_ms(stored.created_ms),
            updated_at: from_ms(stored.updated_ms),
            expires_at: session.expires_at(),
            price: product.summary.price.as_ref().map(|price| price_of(price, stored.quantity)),
        }
    }

    fn file_view(
        &self,
        session: &Session,
        draft_id: &str,
        product: &Product,
        stored: &StoredDraft,
        file: &StoredFileInfo,
    ) -> PrintFile {
        PrintFile {
            id: file.id.clone(),
            draft_id: draft_id.to_owned(),
            display_name: String::new(),
            size_bytes: file.size_bytes,
            page_count: file.page_count,
            sha256: file.sha256.clone(),
            trim: Some(product.trim),
            suggested_copies: stored.quantity,
            expires_at: session.expires_at(),
        }
    }
}

fn draft_ref<'a>(product: &'a ProductId, stored: &'a StoredDraft) -> DraftRef<'a> {
    DraftRef { product, backend_ref: stored.backend_ref.as_deref(), values: &stored.values, quantity: stored.quantity }
}

/// The ids of the session's uploaded files still kept.
const UPLOADS_KEY: &str = "uploads";

/// How many drafts the session has made.
const DRAFT_COUNT_KEY: &str = "draft-count";

fn draft_key(id: &str) -> String {
    format!("draft/{id}")
}

fn file_key(id: &str) -> String {
    format!("file/{id}")
}

fn file_meta_key(id: &str) -> String {
    format!("file-meta/{id}")
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::domain::crypto::Key256;
    use crate::domain::ids::DeviceId;
    use crate::domain::session::SessionLimits;
    use crate::store::memory::MemoryStore;
    use crate::storefront::embedded::EmbeddedStorefront;

    struct NoUsage;

    #[async_trait]
    impl UsageSink for NoUsage {
        async fn record(&self, _event: UsageEvent) {}
    }

    /// A backend whose previews are `page_bytes` per page and wait for the test's go (`go`
    /// permits), recording the order they ran in (by width) and how many ran at once.
    struct Previews {
        page_bytes: usize,
        go: tokio::sync::Semaphore,
        ran: std::sync::Mutex<Vec<u32>>,
        running: std::sync::atomic::AtomicUsize,
        most_at_once: std::sync::atomic::AtomicUsize,
    }

    impl Previews {
        fn new(page_bytes: usize, go: usize) -> Arc<Previews> {
            Arc::new(Previews {
                page_bytes,
                go: tokio::sync::Semaphore::new(go),
                ran: Default::default(),
                running: Default::default(),
                most_at_once: Default::default(),
            })
        }
    }

    #[async_trait]
    impl Customizer for Previews {
        async fn form(&self, _: &Visit, product: &ProductId) -> CoreResult<Form> {
            Ok(Form { product: product.clone(), sections: Vec::new(), fields: Vec::new() })
        }
        async fn open_draft(&self, _: &Visit, _: &ProductId) -> CoreResult<Option<String>> {
            Ok(None)
        }
        async fn check(&self, _: &Visit, _: DraftRef<'_>) -> CoreResult<Vec<FieldError>> {
            Ok(Vec::new())
        }
        async fn preview(&self, _: &Visit, _: DraftRef<'_>, width: u32, pages: &[u32]) -> CoreResult<Vec<PageImage>> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.running.fetch_add(1, SeqCst) + 1;
            self.most_at_once.fetch_max(now, SeqCst);
            self.go.acquire().await.expect("open").forget();
            self.ran.lock().unwrap().push(width);
            self.running.fetch_sub(1, SeqCst);
            let image = |n: u32| PageImage {
                page_number: n + 1,
                content_type: "image/png".into(),
                data: Bytes::from(vec![0u8; self.page_bytes]),
                width_px: width,
                height_px: width,
            };
            // Empty asks for every page; the sample newsletter has four.
            let all = [0, 1, 2, 3];
            Ok(if pages.is_empty() { &all[..] } else { pages }.iter().map(|&n| image(n)).collect())
        }
        async fn print_ready(&self, _: &Visit, _: DraftRef<'_>) -> CoreResult<PrintReady> {
            Err(CoreError::Unavailable("not in this test".into()))
        }
    }

    #[tokio::test]
    async fn previews_of_one_draft_render_one_at_a_time_in_the_order_asked() {
        let backend = Previews::new(0, 0);
        let (customization, session) = service(backend.clone()).await;
        let customization = Arc::new(customization);
        let product = ProductId::parse("newsletter-a4").unwrap();
        let (draft, _) = customization.create_draft(&session, &product, None, Values::new()).await.unwrap();
        // Three previews asked one after the other (told apart by their widths).
        let mut calls = Vec::new();
        for width in [100, 200, 300] {
            let (customization, session, id) = (customization.clone(), session.clone(), draft.id.clone());
            calls.push(tokio::spawn(async move { customization.preview(&session, &id, width, &[]).await.map(|_| ()) }));
            // Let it run until it renders or waits its turn.
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
        }
        backend.go.add_permits(3);
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert_eq!(*backend.ran.lock().unwrap(), vec![100, 200, 300], "in the order asked");
        assert_eq!(backend.most_at_once.load(std::sync::atomic::Ordering::SeqCst), 1, "one at a time");
        assert!(customization.previews.lock().unwrap().is_empty(), "no queue is kept once they are done");
    }

    async fn service(backend: Arc<dyn Customizer>) -> (Customization, Session) {
        let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("storefront/sample");
        let catalog: Arc<dyn Storefront> = Arc::new(EmbeddedStorefront::load(&shop).unwrap());
        let limits = SessionLimits {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(600),
            max_per_device: 8,
            max_total: 64,
        };
        let sessions = Arc::new(SessionManager::new(MemoryStore::new(), Key256::generate(), limits, Arc::new(NoUsage)));
        let (_, session) = sessions.start(DeviceId::parse("mfd-1").unwrap(), "").await.unwrap();
        (Customization::new(catalog, backend, sessions, Arc::new(NoUsage)), session)
    }

    #[tokio::test]
    async fn previews_beyond_one_response_are_refused_with_what_to_ask_for() {
        let (customization, session) = service(Previews::new(1536 * 1024, 1000)).await;
        let product = ProductId::parse("newsletter-a4").unwrap();
        let (draft, _) = customization.create_draft(&session, &product, None, Values::new()).await.unwrap();

        // Two pages of 1.5 MiB fit in one response; four do not, and the message says what to do.
        let (two, _) = customization.preview(&session, &draft.id, 2000, &[1, 2]).await.unwrap();
        assert_eq!(two.len(), 2);
        let refused = customization.preview(&session, &draft.id, 2000, &[]).await;
        match refused {
            Err(CoreError::ResourceExhausted(message)) => {
                assert!(message.contains("fewer pages") && message.contains("width_px"), "{message}")
            }
            other => panic!("expected RESOURCE_EXHAUSTED, got {:?}", other.map(|(pages, _)| pages.len())),
        }
    }
}
