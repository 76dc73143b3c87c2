//! `Client`: one typed method per RPC of the contract. Each attaches the right credential and the
//! deadline of its kind; idempotent reads retry on `UNAVAILABLE`, nothing else does. Login and
//! SilentLogin replace the session token they rotate.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proto::v1 as pb;
use proto::v1::catalog_service_client::CatalogServiceClient;
use proto::v1::customization_service_client::CustomizationServiceClient;
use proto::v1::device_service_client::DeviceServiceClient;
use proto::v1::print_service_client::PrintServiceClient;
use proto::v1::session_service_client::SessionServiceClient;
use proto::v1::sso_service_client::SsoServiceClient;
use proto::v1::usage_service_client::UsageServiceClient;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use crate::connect::{CallKind, ClientBuilder, Deadlines, RetryPolicy, Secret};
use crate::error::{Code, Error, Result};
use crate::types::*;

/// The most bytes one upload message carries: the contract's limit of 1 MiB.
pub const UPLOAD_CHUNK_BYTES: usize = 1024 * 1024;

/// A connection to the core with its credentials. Cheap to clone; clones share the connection
/// and the session token.
///
/// ```no_run
/// # async fn run() -> podconnect_client::Result<()> {
/// use podconnect_client::{Client, ProductQuery};
///
/// let client = Client::builder("https://127.0.0.1:50443").ca_file("dev-ca.pem").connect().await?;
/// client.start_session("mfd-lobby").await?;
/// for product in client.list_products(&ProductQuery::default()).await?.products {
///     println!("{} {}", product.id, product.display_name);
/// }
/// client.close_session().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) channel: Channel,
    pub(crate) session: Mutex<Option<Secret>>,
    pub(crate) operator: Option<Secret>,
    pub(crate) deadlines: Deadlines,
    pub(crate) retry: RetryPolicy,
    pub(crate) watch_resumes: u32,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("has_session", &self.session_token().is_some())
            .field("has_operator_token", &self.inner.operator.is_some())
            .finish_non_exhaustive()
    }
}

/// Which credential a call carries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    None,
    Session,
    /// The operator token when there is one; otherwise the client certificate speaks alone.
    Operator,
}

/// Whether a call may be sent again after `UNAVAILABLE`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    IdempotentRead,
    Never,
}

impl Client {
    /// Starts building a client for the core at `endpoint` ("https://host:port"; a bare
    /// "host:port" means https).
    pub fn builder(endpoint: &str) -> ClientBuilder {
        ClientBuilder::new(endpoint)
    }

    /// The session token in use, to keep it across processes (treat it as a secret).
    pub fn session_token(&self) -> Option<Secret> {
        self.inner.session.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Continues a session started elsewhere (e.g. by an earlier process).
    pub fn set_session_token(&self, token: Secret) {
        *self.inner.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(token);
    }

    fn forget_session(&self) {
        *self.inner.session.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn request<T>(&self, message: T, auth: Auth, kind: Option<CallKind>) -> Result<Request<T>> {
        let mut request = Request::new(message);
        let token = match auth {
            Auth::None => None,
            Auth::Session => Some(self.session_token().ok_or(Error::NoSession)?),
            Auth::Operator => self.inner.operator.clone(),
        };
        if let Some(token) = token {
            let value: MetadataValue<_> = format!("Bearer {}", token.expose())
                .parse()
                .map_err(|_| Error::Config("a token must be printable ASCII".into()))?;
            request.metadata_mut().insert("authorization", value);
        }
        if let Some(kind) = kind {
            request.set_timeout(self.inner.deadlines.of(kind));
        }
        Ok(request)
    }

    /// Sends one call, and again after `UNAVAILABLE` with backoff when it is an idempotent read.
    async fn call<Req, Resp, F, Fut>(
        &self,
        retry: Retry,
        auth: Auth,
        kind: CallKind,
        message: Req,
        send: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Channel, Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let policy = self.inner.retry;
        let attempts = if retry == Retry::IdempotentRead { policy.max_attempts.max(1) } else { 1 };
        let mut attempt = 0;
        loop {
            let request = self.request(message.clone(), auth, Some(kind))?;
            match send(self.inner.channel.clone(), request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if status.code() == Code::Unavailable && attempt + 1 < attempts => {
                    tokio::time::sleep(policy.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }

    // === SessionService ===

    /// Starts a session on the device `device_id` and keeps its token for later calls.
    pub async fn start_session(&self, device_id: &str) -> Result<SessionInfo> {
        self.start_session_with(device_id, "", "").await
    }

    /// Starts a session with a device user's assertion (single sign-on) and/or a locale.
    pub async fn start_session_with(&self, device_id: &str, assertion: &str, locale: &str) -> Result<SessionInfo> {
        let message = pb::StartSessionRequest {
            device_id: device_id.into(),
            device_user_assertion: assertion.into(),
            locale: locale.into(),
        };
        let response = self
            .call(Retry::Never, Auth::None, CallKind::Write, message, |ch, r| async move {
                SessionServiceClient::new(ch).start_session(r).await
            })
            .await?;
        self.set_session_token(Secret::new(response.session_token));
        Ok(SessionInfo {
            expire_time: time(response.expire_time.as_ref()),
            idle_timeout: response.idle_timeout.and_then(|d| u64::try_from(d.seconds).ok()).map(Duration::from_secs),
            sso_available: response.sso_available,
        })
    }

    /// Logs the session in to the storefront; the session token rotates and the client keeps the
    /// new one. Returns the account's display name and whether it was remembered for SSO.
    pub async fn login(&self, username: &str, password: &Secret, remember: bool) -> Result<(String, bool)> {
        let message = pb::LoginRequest { username: username.into(), password: password.expose().into(), remember };
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Write, message, |ch, r| async move {
                SessionServiceClient::new(ch).login(r).await
            })
            .await?;
        self.set_session_token(Secret::new(response.session_token));
        Ok((response.display_name, response.remembered))
    }

    /// Ends the storefront login; the session stays.
    pub async fn logout(&self) -> Result<()> {
        self.call(Retry::Never, Auth::Session, CallKind::Write, pb::LogoutRequest {}, |ch, r| async move {
            SessionServiceClient::new(ch).logout(r).await
        })
        .await?;
        Ok(())
    }

    /// Closes the session: the core deletes everything it made, and the token is forgotten.
    pub async fn close_session(&self) -> Result<()> {
        self.call(Retry::Never, Auth::Session, CallKind::Write, pb::CloseSessionRequest {}, |ch, r| async move {
            SessionServiceClient::new(ch).close_session(r).await
        })
        .await?;
        self.forget_session();
        Ok(())
    }

    // === CatalogService ===

    /// The category tree, roots first.
    pub async fn list_categories(&self) -> Result<Vec<Category>> {
        let response = self
            .call(
                Retry::IdempotentRead,
                Auth::Session,
                CallKind::Read,
                pb::ListCategoriesRequest {},
                |ch, r| async move { CatalogServiceClient::new(ch).list_categories(r).await },
            )
            .await?;
        Ok(response.categories.into_iter().map(Category::from).collect())
    }

    /// One page of products.
    pub async fn list_products(&self, query: &ProductQuery) -> Result<ProductPage> {
        let message = pb::ListProductsRequest {
            category_id: query.category_id.clone().unwrap_or_default(),
            query: query.search.clone().unwrap_or_default(),
            page_size: i32::try_from(query.page_size).unwrap_or(i32::MAX),
            page_token: query.page_token.clone().unwrap_or_default(),
        };
        let response = self
            .call(Retry::IdempotentRead, Auth::Session, CallKind::Read, message, |ch, r| async move {
                CatalogServiceClient::new(ch).list_products(r).await
            })
            .await?;
        Ok(ProductPage {
            products: response.products.into_iter().map(ProductSummary::from).collect(),
            next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
            total_size: response.total_size,
        })
    }

    /// One product.
    pub async fn get_product(&self, product_id: &str) -> Result<Product> {
        let message = pb::GetProductRequest { product_id: product_id.into() };
        let response = self
            .call(Retry::IdempotentRead, Auth::Session, CallKind::Read, message, |ch, r| async move {
                CatalogServiceClient::new(ch).get_product(r).await
            })
            .await?;
        let product = response.product.ok_or_else(|| missing("GetProduct", "product"))?;
        Ok(product.into())
    }

    /// A product's thumbnail image.
    pub async fn thumbnail(&self, product_id: &str) -> Result<Image> {
        let message = pb::GetThumbnailRequest { product_id: product_id.into() };
        let response = self
            .call(Retry::IdempotentRead, Auth::Session, CallKind::Read, message, |ch, r| async move {
                CatalogServiceClient::new(ch).get_thumbnail(r).await
            })
            .await?;
        Ok(Image {
            content_type: response.content_type,
            data: response.data,
            width_px: response.width_px,
            height_px: response.height_px,
            page_number: 0,
        })
    }

    // === CustomizationService ===

    /// A product's form (the generated type: its fields carry every rule the core checks).
    pub async fn form(&self, product_id: &str) -> Result<pb::Form> {
        let message = pb::GetFormRequest { product_id: product_id.into() };
        let response = self
            .call(Retry::IdempotentRead, Auth::Session, CallKind::Read, message, |ch, r| async move {
                CustomizationServiceClient::new(ch).get_form(r).await
            })
            .await?;
        response.form.ok_or_else(|| missing("GetForm", "form"))
    }

    /// Creates a draft (never retried: a retry would make a second draft). `quantity` 0 takes
    /// the product's default.
    pub async fn create_draft(
        &self,
        product_id: &str,
        quantity: i32,
        values: &std::collections::BTreeMap<String, String>,
    ) -> Result<DraftWithErrors> {
        let message = pb::CreateDraftRequest {
            product_id: product_id.into(),
            quantity,
            values: values.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Write, message, |ch, r| async move {
                CustomizationServiceClient::new(ch).create_draft(r).await
            })
            .await?;
        draft_with_errors("CreateDraft", response.draft, response.field_errors)
    }

    /// Changes a draft's values or quantity.
    pub async fn update_draft(&self, draft_id: &str, change: &DraftChange) -> Result<DraftWithErrors> {
        let message = pb::UpdateDraftRequest {
            draft_id: draft_id.into(),
            values: change.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            quantity: change.quantity,
            clear_field_ids: change.clear.clone(),
        };
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Write, message, |ch, r| async move {
                CustomizationServiceClient::new(ch).update_draft(r).await
            })
            .await?;
        draft_with_errors("UpdateDraft", response.draft, response.field_errors)
    }

    /// Preview images of a draft (`width_px` 0 = 800; `pages` empty = all).
    pub async fn render_preview(&self, draft_id: &str, width_px: u32, pages: &[u32]) -> Result<Vec<Image>> {
        let message = pb::RenderPreviewRequest {
            draft_id: draft_id.into(),
            width_px: i32::try_from(width_px).unwrap_or(i32::MAX),
            page_numbers: pages.iter().map(|&p| i32::try_from(p).unwrap_or(i32::MAX)).collect(),
        };
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Render, message, |ch, r| async move {
                CustomizationServiceClient::new(ch).render_preview(r).await
            })
            .await?;
        Ok(response.pages.into_iter().map(Image::from).collect())
    }

    /// Makes a valid draft's print-ready file; the draft becomes FINALIZED.
    pub async fn finalize_draft(&self, draft_id: &str) -> Result<(PrintFile, Draft)> {
        let message = pb::FinalizeDraftRequest { draft_id: draft_id.into() };
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Render, message, |ch, r| async move {
                CustomizationServiceClient::new(ch).finalize_draft(r).await
            })
            .await?;
        let file = response.print_file.ok_or_else(|| missing("FinalizeDraft", "print_file"))?;
        let draft = response.draft.ok_or_else(|| missing("FinalizeDraft", "draft"))?;
        Ok((file.into(), draft.into()))
    }

    /// Uploads a PDF as a print file of the session, to print with [`Client::submit_job`] and
    /// [`Document::File`]. The bytes go in chunks of [`UPLOAD_CHUNK_BYTES`]; the call is never
    /// retried (calling again uploads another file). The core refuses what is not a printable PDF
    /// with `INVALID_ARGUMENT`, and files over 64 MiB.
    ///
    /// ```no_run
    /// # async fn print(client: &podconnect_client::Client) -> podconnect_client::Result<()> {
    /// use podconnect_client::{Document, PrintOptions};
    /// let pdf = std::fs::read("flyer.pdf").expect("a local file");
    /// let file = client.upload_print_file(pdf, "flyer.pdf").await?;
    /// client.submit_job(&Document::File(file.file_id), &PrintOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn upload_print_file(&self, pdf: Vec<u8>, display_name: &str) -> Result<PrintFile> {
        let metadata = pb::UploadPrintFileMetadata {
            size_bytes: i64::try_from(pdf.len()).unwrap_or(i64::MAX),
            display_name: display_name.into(),
        };
        let first = pb::UploadPrintFileRequest { part: Some(pb::upload_print_file_request::Part::Metadata(metadata)) };
        let pdf = Arc::new(pdf);
        let chunks = (0..pdf.len().div_ceil(UPLOAD_CHUNK_BYTES)).map(move |n| {
            let chunk = pdf[n * UPLOAD_CHUNK_BYTES..pdf.len().min((n + 1) * UPLOAD_CHUNK_BYTES)].to_vec();
            pb::UploadPrintFileRequest { part: Some(pb::upload_print_file_request::Part::Chunk(chunk)) }
        });
        // Made chunk by chunk as the stream is read, so the file is not held twice.
        let stream = futures::stream::iter(std::iter::once(first).chain(chunks));
        let request = self.request(stream, Auth::Session, Some(CallKind::Render))?;
        let response = CustomizationServiceClient::new(self.inner.channel.clone()).upload_print_file(request).await?;
        let file = response.into_inner().print_file.ok_or_else(|| missing("UploadPrintFile", "print_file"))?;
        Ok(file.into())
    }

    /// Uploads a local PDF file as [`Client::upload_print_file`] does, named after the file.
    ///
    /// ```no_run
    /// # async fn print(client: &podconnect_client::Client) -> podconnect_client::Result<()> {
    /// let file = client.upload_print_file_from("flyer.pdf").await?;
    /// println!("{} pages", file.page_count);
    /// # Ok(()) }
    /// ```
    pub async fn upload_print_file_from(&self, path: impl AsRef<std::path::Path>) -> Result<PrintFile> {
        let path = path.as_ref();
        let pdf =
            tokio::fs::read(path).await.map_err(|source| Error::File { what: "PDF", path: path.to_owned(), source })?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.upload_print_file(pdf, &name).await
    }

    // === PrintService ===

    /// What the session's device can print.
    pub async fn printer(&self) -> Result<PrinterInfo> {
        let response = self
            .call(
                Retry::IdempotentRead,
                Auth::Session,
                CallKind::Read,
                pb::GetPrinterCapabilitiesRequest {},
                |ch, r| async move { PrintServiceClient::new(ch).get_printer_capabilities(r).await },
            )
            .await?;
        Ok(response.into())
    }

    /// Submits a job on the session's device. Never retried by the client; it carries a fresh
    /// `request_id`, so the core would not print twice even if a caller sent it again.
    pub async fn submit_job(&self, document: &Document, options: &PrintOptions) -> Result<Submitted> {
        let document = match document {
            Document::Draft(id) => pb::submit_job_request::Document::DraftId(id.clone()),
            Document::File(id) => pb::submit_job_request::Document::FileId(id.clone()),
        };
        let message = pb::SubmitJobRequest {
            document: Some(document),
            copies: i32::try_from(options.copies).unwrap_or(i32::MAX),
            sides: Sides::wire(options.sides),
            color_mode: ColorMode::wire(options.color_mode),
            media: options.media.clone().unwrap_or_default(),
            fit_to_sheet: options.fit_to_sheet,
            request_id: request_id(),
        };
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Print, message, |ch, r| async move {
                PrintServiceClient::new(ch).submit_job(r).await
            })
            .await?;
        let job = response.job.ok_or_else(|| missing("SubmitJob", "job"))?;
        Ok(Submitted { job: job.into(), pull_url: response.pull_delivery.map(|p| p.document_url) })
    }

    /// How `submit_job` with these options would print (sheet, pieces per sheet, sheets,
    /// sides), and with `preview_width_px` > 0 images of the first sheet's front and back.
    pub async fn plan_job(
        &self,
        document: &Document,
        options: &PrintOptions,
        preview_width_px: u32,
    ) -> Result<JobPlan> {
        let document = match document {
            Document::Draft(id) => pb::plan_job_request::Document::DraftId(id.clone()),
            Document::File(id) => pb::plan_job_request::Document::FileId(id.clone()),
        };
        let message = pb::PlanJobRequest {
            document: Some(document),
            copies: i32::try_from(options.copies).unwrap_or(i32::MAX),
            sides: Sides::wire(options.sides),
            media: options.media.clone().unwrap_or_default(),
            fit_to_sheet: options.fit_to_sheet,
            preview_width_px: i32::try_from(preview_width_px).unwrap_or(i32::MAX),
        };
        let response = self
            .call(Retry::IdempotentRead, Auth::Session, CallKind::Render, message, |ch, r| async move {
                PrintServiceClient::new(ch).plan_job(r).await
            })
            .await?;
        let layout = response.layout.ok_or_else(|| missing("PlanJob", "layout"))?;
        let sheets = response.sheet_previews.into_iter().map(Image::from).collect();
        Ok(JobPlan { layout: layout.into(), sheets })
    }

    /// A job as it is now.
    pub async fn get_job(&self, job_id: &str) -> Result<Job> {
        let message = pb::GetJobRequest { job_id: job_id.into() };
        let response = self
            .call(Retry::IdempotentRead, Auth::Session, CallKind::Read, message, |ch, r| async move {
                PrintServiceClient::new(ch).get_job(r).await
            })
            .await?;
        Ok(response.job.ok_or_else(|| missing("GetJob", "job"))?.into())
    }

    /// Asks to cancel a job.
    pub async fn cancel_job(&self, job_id: &str) -> Result<Job> {
        let message = pb::CancelJobRequest { job_id: job_id.into() };
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Write, message, |ch, r| async move {
                PrintServiceClient::new(ch).cancel_job(r).await
            })
            .await?;
        Ok(response.job.ok_or_else(|| missing("CancelJob", "job"))?.into())
    }

    /// Follows a job until it ends, as a stream of its states that survives dropped connections
    /// (see [`crate::JobWatch`]).
    pub fn watch_job(&self, job_id: &str) -> crate::JobWatch {
        crate::watch::JobWatch::new(self.clone(), job_id.to_owned(), self.inner.watch_resumes)
    }

    // === DeviceService (operators) ===

    /// Registers a device.
    pub async fn register_device(&self, device: &Device) -> Result<Device> {
        let message = pb::RegisterDeviceRequest { device: Some(device.wire()) };
        let response = self
            .call(Retry::Never, Auth::Operator, CallKind::Write, message, |ch, r| async move {
                DeviceServiceClient::new(ch).register_device(r).await
            })
            .await?;
        Ok(response.device.ok_or_else(|| missing("RegisterDevice", "device"))?.into())
    }

    /// One device.
    pub async fn get_device(&self, device_id: &str) -> Result<Device> {
        let message = pb::GetDeviceRequest { device_id: device_id.into() };
        let response = self
            .call(Retry::IdempotentRead, Auth::Operator, CallKind::Read, message, |ch, r| async move {
                DeviceServiceClient::new(ch).get_device(r).await
            })
            .await?;
        Ok(response.device.ok_or_else(|| missing("GetDevice", "device"))?.into())
    }

    /// Every registered device, ordered by id (all pages).
    pub async fn list_devices(&self) -> Result<Vec<Device>> {
        let mut devices = Vec::new();
        let mut page_token = String::new();
        loop {
            let message = pb::ListDevicesRequest { page_size: 500, page_token };
            let response = self
                .call(Retry::IdempotentRead, Auth::Operator, CallKind::Read, message, |ch, r| async move {
                    DeviceServiceClient::new(ch).list_devices(r).await
                })
                .await?;
            devices.extend(response.devices.into_iter().map(Device::from));
            if response.next_page_token.is_empty() {
                return Ok(devices);
            }
            page_token = response.next_page_token;
        }
    }

    /// Replaces every field of a registered device but its capabilities.
    pub async fn update_device(&self, device: &Device) -> Result<Device> {
        let message = pb::UpdateDeviceRequest {
            device: Some(device.wire()),
            update_mask: Some(prost_types::FieldMask {
                paths: Device::UPDATE_MASK.iter().map(|p| p.to_string()).collect(),
            }),
        };
        let response = self
            .call(Retry::Never, Auth::Operator, CallKind::Write, message, |ch, r| async move {
                DeviceServiceClient::new(ch).update_device(r).await
            })
            .await?;
        Ok(response.device.ok_or_else(|| missing("UpdateDevice", "device"))?.into())
    }

    /// Removes a device from the registry.
    pub async fn delete_device(&self, device_id: &str) -> Result<()> {
        let message = pb::DeleteDeviceRequest { device_id: device_id.into() };
        self.call(Retry::Never, Auth::Operator, CallKind::Write, message, |ch, r| async move {
            DeviceServiceClient::new(ch).delete_device(r).await
        })
        .await?;
        Ok(())
    }

    // === UsageService (operators) ===

    /// Counts usage events.
    pub async fn count_usage(&self, query: &UsageQuery) -> Result<UsageReport> {
        let message = pb::CountUsageEventsRequest {
            start_time: query.start.map(timestamp),
            end_time: query.end.map(timestamp),
            kinds: query.kinds.iter().map(|k| k.wire()).collect(),
            group_by: query.group_by.iter().map(|g| g.wire()).collect(),
        };
        let response = self
            .call(Retry::IdempotentRead, Auth::Operator, CallKind::Read, message, |ch, r| async move {
                UsageServiceClient::new(ch).count_usage_events(r).await
            })
            .await?;
        Ok(UsageReport::from_wire(response, &query.group_by))
    }

    // === SsoService ===

    /// Gets a one-time vault key for the session's device user (single sign-on).
    pub async fn vault_key(&self) -> Result<Secret> {
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Write, pb::GetVaultKeyRequest {}, |ch, r| async move {
                SsoServiceClient::new(ch).get_vault_key(r).await
            })
            .await?;
        Ok(Secret::new(response.vault_key))
    }

    /// Logs in with the stored credentials; the session token rotates and the client keeps the
    /// new one. Returns the account's display name.
    pub async fn silent_login(&self, vault_key: &Secret) -> Result<String> {
        let message = pb::SilentLoginRequest { vault_key: vault_key.expose().into() };
        let response = self
            .call(Retry::Never, Auth::Session, CallKind::Write, message, |ch, r| async move {
                SsoServiceClient::new(ch).silent_login(r).await
            })
            .await?;
        self.set_session_token(Secret::new(response.session_token));
        Ok(response.display_name)
    }

    /// Operators: makes a new key-encryption key version the one that seals.
    pub async fn rotate_sso_key(&self) -> Result<KeyVersion> {
        let response = self
            .call(Retry::Never, Auth::Operator, CallKind::Write, pb::RotateKeyRequest {}, |ch, r| async move {
                SsoServiceClient::new(ch).rotate_key(r).await
            })
            .await?;
        Ok(KeyVersion { key_version: response.key_version, create_time: time(response.create_time.as_ref()) })
    }

    /// Operators: seals every stored credential again under the newest key version.
    pub async fn rewrap_sso(&self) -> Result<RewrapReport> {
        let response = self
            .call(Retry::Never, Auth::Operator, CallKind::Render, pb::RewrapRequest {}, |ch, r| async move {
                SsoServiceClient::new(ch).rewrap(r).await
            })
            .await?;
        Ok(RewrapReport {
            key_version: response.key_version,
            rewrapped: response.rewrapped,
            already_current: response.already_current,
            failed: response.failed,
        })
    }

    // === Health ===

    /// Whether the core serves (gRPC health, the whole server). Retried like a read.
    pub async fn health(&self) -> Result<bool> {
        let message = tonic_health::pb::HealthCheckRequest { service: String::new() };
        let response = self
            .call(Retry::IdempotentRead, Auth::None, CallKind::Read, message, |ch, r| async move {
                HealthClient::new(ch).check(r).await
            })
            .await?;
        Ok(response.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
    }

    pub(crate) fn channel(&self) -> Channel {
        self.inner.channel.clone()
    }
}

fn draft_with_errors(rpc: &str, draft: Option<pb::Draft>, errors: Vec<pb::FieldError>) -> Result<DraftWithErrors> {
    let draft = draft.ok_or_else(|| missing(rpc, "draft"))?;
    Ok(DraftWithErrors { draft: draft.into(), field_errors: errors.into_iter().map(FieldError::from).collect() })
}

/// A response without a field the contract promises: the core broke the contract.
fn missing(rpc: &str, field: &str) -> Error {
    Error::Status { code: Code::Internal, message: format!("the core's {rpc} answer has no {field}") }
}

/// A random UUID (version 4) in its hyphenated form, for SubmitJob's `request_id`.
fn request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, request_id());
    }

    #[tokio::test]
    async fn debug_of_a_client_hides_its_tokens() {
        let client =
            Client::builder("http://127.0.0.1:1").operator_token(Secret::new("op-token-xyz")).connect_lazy().unwrap();
        client.set_session_token(Secret::new("session-token-abc"));
        let shown = format!("{client:?}");
        assert!(!shown.contains("op-token-xyz") && !shown.contains("session-token-abc"), "{shown}");
    }
}
