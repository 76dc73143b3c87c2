//! The embedded storefront's customization backend: forms from `template.toml`, copy fitting and
//! glyph checks through the renderer, previews and print-ready PDFs rendered locally. Rendering is
//! CPU work, so it runs on the blocking pool behind `RenderPool`, which bounds how many renders run
//! at once and refuses callers that would wait too long, so renders never starve other calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::domain::catalog::{ProductId, Visit};
use crate::domain::customization::{Customizer, DraftRef, PageImage, PrintReady};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::form::{FieldError, FieldErrorCode, FieldKind, Form};
use crate::render::{self, ChoiceAsset, ComposeError, FitProblem, RenderInput};
use crate::storefront::embedded::{EmbeddedStorefront, Printable};

/// How much rendering may happen at once.
#[derive(Debug, Clone, Copy)]
pub struct RenderLimits {
    /// Renders running at the same time.
    pub concurrent: usize,
    /// How long a caller waits for a free renderer before RESOURCE_EXHAUSTED.
    pub wait: Duration,
}

/// Runs rendering jobs on the blocking pool, at most `concurrent` at a time.
#[derive(Clone)]
pub struct RenderPool {
    permits: Arc<Semaphore>,
    limits: RenderLimits,
}

impl RenderPool {
    pub fn new(limits: RenderLimits) -> Self {
        RenderPool { permits: Arc::new(Semaphore::new(limits.concurrent.max(1))), limits }
    }

    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> CoreResult<T> {
        let permit = match tokio::time::timeout(self.limits.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                return Err(CoreError::ResourceExhausted(format!(
                    "all {} renderers are busy; try again in a moment",
                    self.limits.concurrent
                )));
            }
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| CoreError::internal("rendering failed", e))
    }
}

/// What the renderer gets: visible, non-empty text values and the chosen options' assets.
/// Public for the fuzz target `form_render` (fuzz/), which renders the way a draft does.
pub fn render_input(
    form: &Form,
    choices: &HashMap<String, HashMap<String, ChoiceAsset>>,
    draft: &DraftRef<'_>,
) -> RenderInput {
    let mut input = RenderInput { texts: HashMap::new(), choices: HashMap::new() };
    for field in &form.fields {
        let value = draft.values.get(&field.id).map_or(field.default.as_str(), String::as_str);
        if !form.is_visible(field, draft.values) {
            continue;
        }
        if field.kind == FieldKind::Choice {
            let options = choices.get(&field.id);
            let chosen =
                options.and_then(|o| o.get(value)).or_else(|| options.and_then(|o| o.get(field.default.as_str())));
            if let Some(asset) = chosen {
                input.choices.insert(field.id.clone(), asset.clone());
            }
        } else if !value.trim().is_empty() {
            input.texts.insert(field.id.clone(), value.to_owned());
        }
    }
    input
}

fn fit_errors(form: &Form, problems: Vec<FitProblem>) -> Vec<FieldError> {
    problems
        .into_iter()
        .map(|problem| match problem {
            FitProblem::TooLong { field, shorten_by } => {
                let label = form.field(&field).map_or(field.as_str(), |f| f.label.as_str()).to_owned();
                FieldError::new(
                    &field,
                    FieldErrorCode::DoesNotFit,
                    format!("{label} is too long to fit, shorten it by about {shorten_by} characters"),
                )
            }
            FitProblem::Unsupported { field, chars } => {
                let label = form.field(&field).map_or(field.as_str(), |f| f.label.as_str()).to_owned();
                let shown: Vec<String> = chars.iter().map(|c| format!("{c} (U+{:04X})", u32::from(*c))).collect();
                FieldError::new(
                    &field,
                    FieldErrorCode::UnsupportedCharacter,
                    format!("{label} contains characters the print fonts cannot show: {}", shown.join(", ")),
                )
            }
        })
        .collect()
}

/// Lays out a draft; fit problems become field errors, anything else is an internal error.
fn compose(
    store: &EmbeddedStorefront,
    product: &ProductId,
    draft: &DraftRef<'_>,
) -> CoreResult<Result<render::Document, Vec<FieldError>>> {
    let (template, form, input) = match store.printable(product)? {
        Printable::Customizable(loaded) => {
            (&loaded.template, Some(&loaded.form), render_input(&loaded.form, &loaded.choices, draft))
        }
        Printable::Static { preview, .. } => (preview, None, RenderInput::default()),
    };
    match render::compose(template, store.fonts(), &input) {
        Ok(document) => Ok(Ok(document)),
        Err(ComposeError::Fit(problems)) => match form {
            Some(form) => Ok(Err(fit_errors(form, problems))),
            None => Err(CoreError::internal("a static product's pages do not render", ComposeError::Fit(problems))),
        },
        Err(error @ ComposeError::Internal(_)) => Err(CoreError::internal("the product could not be laid out", error)),
    }
}

/// Lays out a draft for a preview: whatever its values, it renders (what does not fit is marked,
/// what cannot be printed shows a replacement glyph).
fn compose_preview(
    store: &EmbeddedStorefront,
    product: &ProductId,
    draft: &DraftRef<'_>,
) -> CoreResult<render::Document> {
    let (template, input) = match store.printable(product)? {
        Printable::Customizable(loaded) => (&loaded.template, render_input(&loaded.form, &loaded.choices, draft)),
        Printable::Static { preview, .. } => (preview, RenderInput::default()),
    };
    render::compose_preview(template, store.fonts(), &input)
        .map_err(|error| CoreError::internal("the product could not be laid out", error))
}

/// Owned copy of a draft, so a render job can run on another thread.
struct OwnedDraft {
    product: ProductId,
    values: crate::domain::form::Values,
    quantity: u32,
}

impl OwnedDraft {
    fn of(draft: &DraftRef<'_>) -> Self {
        OwnedDraft { product: draft.product.clone(), values: draft.values.clone(), quantity: draft.quantity }
    }

    fn as_ref(&self) -> DraftRef<'_> {
        DraftRef { product: &self.product, backend_ref: None, values: &self.values, quantity: self.quantity }
    }
}

/// The embedded storefront shared with render jobs.
#[derive(Clone)]
pub struct EmbeddedCustomizer {
    store: Arc<EmbeddedStorefront>,
    pool: RenderPool,
}

impl EmbeddedCustomizer {
    pub fn new(store: Arc<EmbeddedStorefront>, limits: RenderLimits) -> Self {
        EmbeddedCustomizer { store, pool: RenderPool::new(limits) }
    }
}

#[async_trait]
impl Customizer for EmbeddedCustomizer {
    async fn form(&self, _visit: &Visit, product: &ProductId) -> CoreResult<Form> {
        Ok(match self.store.printable(product)? {
            Printable::Customizable(loaded) => loaded.form.clone(),
            Printable::Static { .. } => Form { product: product.clone(), sections: Vec::new(), fields: Vec::new() },
        })
    }

    async fn open_draft(&self, _visit: &Visit, product: &ProductId) -> CoreResult<Option<String>> {
        self.store.printable(product)?;
        Ok(None)
    }

    async fn check(&self, _visit: &Visit, draft: DraftRef<'_>) -> CoreResult<Vec<FieldError>> {
        let store = self.store.clone();
        let draft = OwnedDraft::of(&draft);
        self.pool.run(move || Ok(compose(&store, &draft.product, &draft.as_ref())?.err().unwrap_or_default())).await?
    }

    async fn preview(
        &self,
        _visit: &Visit,
        draft: DraftRef<'_>,
        width_px: u32,
        pages: &[u32],
    ) -> CoreResult<Vec<PageImage>> {
        let store = self.store.clone();
        let draft = OwnedDraft::of(&draft);
        let pages: Vec<usize> = pages.iter().map(|&p| p as usize).collect();
        self.pool
            .run(move || {
                let document = compose_preview(&store, &draft.product, &draft.as_ref())?;
                let images = render::preview(&document, store.fonts(), width_px, &pages)
                    .map_err(|e| CoreError::internal("the preview could not be rendered", e))?;
                Ok(images
                    .into_iter()
                    .map(|image| PageImage {
                        page_number: image.page_number as u32,
                        content_type: "image/png".into(),
                        data: Bytes::from(image.png),
                        width_px: image.width_px,
                        height_px: image.height_px,
                    })
                    .collect())
            })
            .await?
    }

    async fn print_ready(&self, _visit: &Visit, draft: DraftRef<'_>) -> CoreResult<PrintReady> {
        if let Printable::Static { document, pages, .. } = self.store.printable(draft.product)? {
            let pdf = (self.store.files().read_async(document).await)
                .map_err(|e| CoreError::internal("the product's PDF is unreadable", e))?;
            return Ok(PrintReady { pdf, page_count: *pages });
        }
        let store = self.store.clone();
        let draft = OwnedDraft::of(&draft);
        self.pool
            .run(move || {
                let document =
                    compose(&store, &draft.product, &draft.as_ref())?.map_err(|errors| not_printable(&errors))?;
                let page_count = document.page_count() as u32;
                let pdf =
                    render::pdf(&document).map_err(|e| CoreError::internal("the PDF could not be rendered", e))?;
                Ok(PrintReady { pdf: Bytes::from(pdf), page_count })
            })
            .await?
    }
}

/// Only finalizing reaches this, and it checks the draft first: a problem here means the values
/// changed meaning between the check and the render (a storefront change), so the person is told
/// to look at the draft's errors again.
fn not_printable(errors: &[FieldError]) -> CoreError {
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    CoreError::FailedPrecondition(format!(
        "the draft has problems to fix first ({}); UpdateDraft lists them",
        fields.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn renders_beyond_the_limit_are_refused_without_blocking_other_work() {
        let pool = RenderPool::new(RenderLimits { concurrent: 1, wait: Duration::from_millis(100) });
        let (release, hold) = mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    let _ = started_tx.send(());
                    // A long render: blocks its (blocking-pool) thread until released.
                    hold.recv().unwrap();
                    "first"
                })
                .await
            }
        });
        started.await.unwrap();

        // The async runtime is free while the render runs.
        let ticks = tokio::time::timeout(Duration::from_secs(1), async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        assert!(ticks.await.is_ok(), "other calls keep running while rendering");

        // A second render waits its allowance, then is refused with a clear message.
        let refused = pool.run(|| "second").await;
        match refused {
            Err(CoreError::ResourceExhausted(message)) => assert!(message.contains("busy"), "{message}"),
            other => panic!("expected RESOURCE_EXHAUSTED, got {other:?}"),
        }

        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap().unwrap(), "first");
        assert_eq!(pool.run(|| "third").await.unwrap(), "third", "the slot is free again");
    }
}
