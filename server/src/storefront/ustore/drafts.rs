//! uStore's side of customization: a draft is an order item of the session's own uStore user;
//! its property form maps onto our `Form`; values go through uStore's form-state call so its own
//! validation reaches the person per field; previews and the proof (the print-ready PDF) are
//! asked for, polled the way uStore's storefront polls them, and downloaded, within a deadline
//! and backing off when uStore throttles.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::Method;
use serde_json::json;

use crate::domain::catalog::{ProductId, ProductKind, Shopper, Visit};
use crate::domain::customization::{Customizer, DraftRef, PageImage, PrintReady};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::form::{FieldError, Form};
use crate::storefront::ustore::catalog::{decode_image, encode_png, product_model, to_product};
use crate::storefront::ustore::client::{Call, MAX_FILE_BYTES, UpstreamError};
use crate::storefront::ustore::form::{self, MappedForm};
use crate::storefront::ustore::models::{OrderItemModel, RenderJob, STATUS_COMPLETED, STATUS_IN_PROGRESS};
use crate::storefront::ustore::{Budget, UstoreStorefront, Who, upstream_error};

/// How often a preview is polled (uStore's own storefront: 300 ms).
const PREVIEW_POLL: Duration = Duration::from_millis(300);
/// How often a proof is asked again (uStore's own storefront: 2 s).
const PROOF_POLL: Duration = Duration::from_secs(2);
/// The first wait after "Too much requests."; doubled each time, at most `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// uStore's pseudo-dial carrying the quantity in form-state calls.
pub(crate) const QUANTITY_DIAL: &str = "uStoreOrderItemQuantity";

/// Which uStore user owns a draft's order item, kept in `backend_ref` as `a:` or `u:` + its id.
fn owner_of<'a>(visit: &Visit, backend_ref: Option<&'a str>) -> CoreResult<(Who, &'a str)> {
    let backend_ref =
        backend_ref.ok_or_else(|| CoreError::internal("a uStore draft has no order item", "no backend_ref"))?;
    let (who, id) = match backend_ref.split_once(':') {
        Some(("a", id)) => (Who::SessionAnonymous, id),
        Some(("u", id)) => (Who::Account, id),
        _ => return Err(CoreError::internal("a uStore draft's order item is unreadable", "bad backend_ref")),
    };
    if who == Who::Account && visit.shopper == Shopper::Anonymous {
        return Err(CoreError::FailedPrecondition(
            "this draft was made while logged in to the storefront; log in again to work on it".into(),
        ));
    }
    Ok((who, id))
}

fn item_path(id: &str, rest: &str) -> String {
    format!("v1/store/login/user/orders/unsubmitted/items/{id}{rest}")
}

impl UstoreStorefront {
    /// The product's mapped form, looked up once for everyone (cached): the form of a fresh order
    /// item of the core's shared anonymous user, which is deleted again.
    async fn mapped_form(&self, visit: &Visit, product: &ProductId) -> CoreResult<Arc<MappedForm>> {
        let key = product.as_str().to_owned();
        if let Some(form) = self.forms.get(&key) {
            return Ok(form);
        }
        let shared = Visit::without_session(Shopper::Anonymous);
        let _ = visit;
        let item: OrderItemModel = self
            .call_json(&shared, Who::Shared, |t| {
                Call::send(Method::POST, "v1/store/login/user/orders/draft/items", Some(t), json!(null))
                    .query("productID", product)
            })
            .await?;
        let form_path = item_path(&item.id, "/properties/form");
        let raw: Result<serde_json::Value, CoreError> =
            self.call_json(&shared, Who::Shared, |t| Call::get(&form_path, Some(t))).await;
        let delete_path = item_path(&item.id, "");
        let deleted = self
            .call_bytes(
                &shared,
                Who::Shared,
                |t| Call::send(Method::DELETE, &delete_path, Some(t), json!(null)),
                64 * 1024,
            )
            .await;
        if let Err(err) = deleted {
            tracing::warn!(error = %err, "a uStore order item made to read a form was not deleted");
        }
        let mapped = form::map_form(product, &raw?).map_err(|err| {
            CoreError::internal("the storefront's form for this product cannot be used", format!("uStore form: {err}"))
        })?;
        self.log_degraded(product, &mapped);
        let mapped = Arc::new(mapped);
        self.forms.put(key, mapped.clone());
        Ok(mapped)
    }

    /// Widgets shown as plain text instead, logged once per product.
    fn log_degraded(&self, product: &ProductId, mapped: &MappedForm) {
        if mapped.degraded.is_empty() {
            return;
        }
        let mut logged = self.degraded_logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.len() < 10_000 && logged.insert(product.as_str().to_owned()) {
            for (field, widget) in &mapped.degraded {
                tracing::warn!(product = %product, field = %field, widget = %widget, "uStore widget shown as a text field");
            }
        }
    }

    async fn is_static(&self, visit: &Visit, product: &ProductId) -> CoreResult<bool> {
        let model = product_model(self, visit, product).await?;
        Ok(to_product(&model, "")?.summary.kind == ProductKind::Static)
    }

    /// Runs a preview or proof call, waiting and asking again while uStore throttles.
    async fn unthrottled<T: serde::de::DeserializeOwned>(
        &self,
        visit: &Visit,
        who: Who,
        budget: &Budget,
        doing: &str,
        call: impl Fn(&str) -> Call,
    ) -> CoreResult<T> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.call_json(visit, who, &call).await {
                Err(CoreError::ResourceExhausted(_)) => {
                    tracing::debug!(doing, ?backoff, "uStore throttles; waiting");
                    // Up to a quarter more, so sessions throttled together do not return together.
                    let jitter = backoff.mul_f32(f32::from(crate::domain::crypto::random_bytes::<1>()[0]) / 1020.0);
                    budget.pause(backoff + jitter, doing).await?;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                other => return other,
            }
        }
    }

    /// Downloads one file uStore listed (`Items[].Url`), only from the uStore server.
    async fn download(&self, visit: &Visit, who: Who, url: &str) -> CoreResult<Bytes> {
        let url = self.upstream.resolve(url).map_err(|e| upstream_error(e, "download the storefront's file"))?;
        self.call_bytes(visit, who, |t| Call::get_url(&url, Some(t)), MAX_FILE_BYTES).await
    }
}

#[async_trait]
impl Customizer for UstoreStorefront {
    async fn form(&self, visit: &Visit, product: &ProductId) -> CoreResult<Form> {
        if self.is_static(visit, product).await? {
            return Ok(Form { product: product.clone(), sections: Vec::new(), fields: Vec::new() });
        }
        Ok(self.mapped_form(visit, product).await?.form.clone())
    }

    async fn open_draft(&self, visit: &Visit, product: &ProductId) -> CoreResult<Option<String>> {
        let (who, tag) = match visit.shopper {
            Shopper::Account(_) => (Who::Account, "u"),
            Shopper::Anonymous => (Who::SessionAnonymous, "a"),
        };
        let item: OrderItemModel = self
            .call_json(visit, who, |t| {
                Call::send(Method::POST, "v1/store/login/user/orders/draft/items", Some(t), json!(null))
                    .query("productID", product)
            })
            .await?;
        if item.id.is_empty() || item.id.len() > 64 || !item.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(upstream_error(UpstreamError::Malformed("an order item id".into()), "start the draft"));
        }
        Ok(Some(format!("{tag}:{}", item.id)))
    }

    async fn check(&self, visit: &Visit, draft: DraftRef<'_>) -> CoreResult<Vec<FieldError>> {
        let (who, item) = owner_of(visit, draft.backend_ref)?;
        let mapped = self.mapped_form(visit, draft.product).await?;
        let body = form::state_body(&mapped, draft.values, Some(draft.quantity));
        let path = item_path(item, "/properties/form/state");
        let state: serde_json::Value =
            self.call_json(visit, who, |t| Call::send(Method::PUT, &path, Some(t), body.clone())).await?;
        Ok(form::field_errors(&mapped, &state))
    }

    async fn preview(
        &self,
        visit: &Visit,
        draft: DraftRef<'_>,
        width_px: u32,
        pages: &[u32],
    ) -> CoreResult<Vec<PageImage>> {
        let (who, item) = owner_of(visit, draft.backend_ref)?;
        let budget = Budget::new(self.settings.preview_timeout);
        let properties = if self.is_static(visit, draft.product).await? {
            json!([])
        } else {
            let mapped = self.mapped_form(visit, draft.product).await?;
            preview_properties(&form::state_body(&mapped, draft.values, None))
        };
        let create = item_path(item, "/preview");
        let body = json!({ "Properties": properties });
        let mut job: RenderJob = self
            .unthrottled(visit, who, &budget, "make the preview", |t| {
                Call::send(Method::POST, &create, Some(t), body.clone())
            })
            .await?;
        let preview_id = job.preview_id.clone().unwrap_or_default();
        if !preview_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') || preview_id.is_empty() {
            return Err(upstream_error(UpstreamError::Malformed("a preview id".into()), "make the preview"));
        }
        let poll = item_path(item, &format!("/preview/{preview_id}"));
        while job.status == STATUS_IN_PROGRESS {
            budget.pause(PREVIEW_POLL, "make the preview").await?;
            job = self.unthrottled(visit, who, &budget, "make the preview", |t| Call::get(&poll, Some(t))).await?;
        }
        if job.status != STATUS_COMPLETED {
            return Err(CoreError::Unavailable(
                "the storefront could not make the preview; change a value or try again".into(),
            ));
        }
        let wanted: Vec<(u32, &str)> = job
            .items
            .iter()
            .enumerate()
            .filter(|(index, _)| pages.is_empty() || pages.contains(&(*index as u32)))
            .map(|(index, item)| (index as u32 + 1, item.url.as_str()))
            .collect();
        let mut images = Vec::with_capacity(wanted.len());
        for (page_number, url) in wanted {
            let bytes = self.download(visit, who, url).await?;
            let image = tokio::task::spawn_blocking(move || scale_png(&bytes, width_px))
                .await
                .map_err(|e| CoreError::internal("cannot prepare the preview", e))??;
            images.push(PageImage { page_number, content_type: "image/png".into(), ..image });
        }
        Ok(images)
    }

    async fn print_ready(&self, visit: &Visit, draft: DraftRef<'_>) -> CoreResult<PrintReady> {
        let (who, item) = owner_of(visit, draft.backend_ref)?;
        let model = product_model(self, visit, draft.product).await?;
        if !matches!(model.kind, 1 | 2 | 6) {
            return Err(CoreError::FailedPrecondition(
                "this kind of storefront product (an email, upload or kit product) cannot be printed at the device"
                    .into(),
            ));
        }
        let budget = Budget::new(self.settings.proof_timeout);
        if model.kind != 2 {
            // Save the values and quantity on the order item, as uStore's storefront does before a proof.
            let mapped = self.mapped_form(visit, draft.product).await?;
            let values = form::state_body(&mapped, draft.values, None);
            let save = item_path(item, "/properties/form");
            self.call_bytes(visit, who, |t| Call::send(Method::PUT, &save, Some(t), values.clone()), 1024 * 1024)
                .await?;
        }
        let item_url = item_path(item, "");
        let order_item = json!({ "ID": item, "ProductID": draft.product.as_str(), "Quantity": draft.quantity });
        self.call_bytes(visit, who, |t| Call::send(Method::PUT, &item_url, Some(t), order_item.clone()), 1024 * 1024)
            .await?;
        let proof = item_path(item, "/proof");
        let mut job: RenderJob;
        loop {
            // uStore's storefront asks for the proof again until it is done.
            job = self
                .unthrottled(visit, who, &budget, "make the print-ready file", |t| {
                    Call::send(Method::POST, &proof, Some(t), json!({}))
                })
                .await?;
            if job.status != STATUS_IN_PROGRESS {
                break;
            }
            budget.pause(PROOF_POLL, "make the print-ready file").await?;
        }
        if job.status != STATUS_COMPLETED {
            return Err(CoreError::Unavailable(
                "the storefront could not make the print-ready file for this draft; try again, and if it fails again \
                 ask the shop to check the product in uStore"
                    .into(),
            ));
        }
        let Some(file) = job.items.first() else {
            return Err(upstream_error(
                UpstreamError::Malformed("a proof without files".into()),
                "make the print-ready file",
            ));
        };
        let pdf = self.download(visit, who, &file.url).await?;
        let page_count = tokio::task::spawn_blocking({
            let pdf = pdf.clone();
            move || pdf_pages(&pdf)
        })
        .await
        .map_err(|e| CoreError::internal("cannot check the print-ready file", e))??;
        Ok(PrintReady { pdf, page_count })
    }
}

/// The preview call's body: uStore's `{ID, Value}` pairs from the form-state pairs.
fn preview_properties(state: &serde_json::Value) -> serde_json::Value {
    let pairs = state.as_array().map(Vec::as_slice).unwrap_or_default();
    serde_json::Value::Array(
        pairs
            .iter()
            .filter(|pair| pair["id"] != QUANTITY_DIAL)
            .map(|pair| json!({ "ID": pair["id"], "Value": pair["value"] }))
            .collect(),
    )
}

/// A preview page from uStore, decoded within bounds and re-encoded as a PNG `width_px` wide.
fn scale_png(bytes: &[u8], width_px: u32) -> CoreResult<PageImage> {
    let image = decode_image(bytes)?;
    let height =
        ((f64::from(image.height()) * f64::from(width_px) / f64::from(image.width().max(1))).round() as u32).max(1);
    let scaled = image.resize_exact(width_px, height, image::imageops::FilterType::Triangle);
    Ok(PageImage {
        page_number: 0,
        content_type: "image/png".into(),
        data: encode_png(&scaled)?,
        width_px,
        height_px: height,
    })
}

/// The page count of a print-ready file, which must be a printable PDF: anything else is not printed.
fn pdf_pages(pdf: &[u8]) -> CoreResult<u32> {
    crate::domain::pdf::page_count(pdf).map_err(|problem| {
        upstream_error(UpstreamError::Malformed(format!("print-ready file: {problem}")), "make the print-ready file")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pdfs_with_pages_are_print_ready() {
        assert!(pdf_pages(b"<html>not a pdf</html>").is_err());
        assert!(pdf_pages(b"%PDF-1.7\ngarbage").is_err());
    }

    #[test]
    fn preview_properties_leave_the_quantity_out() {
        let state = json!([{"id": "d1", "value": "Ana"}, {"id": QUANTITY_DIAL, "value": 100}]);
        assert_eq!(preview_properties(&state), json!([{"ID": "d1", "Value": "Ana"}]));
    }

    #[test]
    fn a_draft_made_logged_in_needs_the_login() {
        let anonymous = Visit::without_session(Shopper::Anonymous);
        assert!(matches!(owner_of(&anonymous, Some("a:x")), Ok((Who::SessionAnonymous, "x"))));
        assert!(matches!(owner_of(&anonymous, Some("u:x")), Err(CoreError::FailedPrecondition(_))));
        assert!(owner_of(&anonymous, Some("garbage")).is_err());
    }
}
