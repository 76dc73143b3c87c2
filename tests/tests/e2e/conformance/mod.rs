//! Conformance: every documented rule of `proto/podconnect/v1/*.proto`, one test per rule, written
//! from the proto files' documentation only, the way an outside client would read them. Each file
//! covers one service (`sso` also SessionService's Login and Logout); the cross-cutting rules at
//! the top of session.proto are in `auth`.

mod auth;
mod catalog;
mod customization;
mod device;
mod print;
mod session;
mod sso;
mod usage;

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use proto::v1 as pb;
use proto::v1::catalog_service_client::CatalogServiceClient;
use proto::v1::customization_service_client::CustomizationServiceClient;
use proto::v1::device_service_client::DeviceServiceClient;
use proto::v1::print_service_client::PrintServiceClient;
use proto::v1::session_service_client::SessionServiceClient;
use proto::v1::sso_service_client::SsoServiceClient;
use proto::v1::usage_service_client::UsageServiceClient;
use tests::client::{authed, start_session};
use tests::core::{CoreBuilder, TestCore};
use tests::wait::eventually;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

/// The operator token every conformance core is started with (at least 32 characters).
const OPERATOR_TOKEN: &str = "conformance-operator-token-5d1c8e2a9f3b7a60";

/// The device the sessions here start on (unregistered: the server's spool folder default).
const DEVICE: &str = "mfd-conformance";

/// A customizable product with a two-page, bleed and crop-marked document.
const CARD_PRODUCT: &str = "classic-business-card";

/// A static product: valid at once, one page, printed as shipped.
const STATIC_PRODUCT: &str = "fire-action-notice";

/// Values that make the classic business card valid.
const CARD: &[(&str, &str)] = tests::client::VALID_CARD;

/// A UUID in its hyphenated form, for `SubmitJobRequest.request_id`.
const REQUEST_ID: &str = "0b6f0b0e-4c2a-4f1e-9a55-2c7f4f0e8d11";

/// The bound on every wait in this module: far above what any step takes on a loaded machine.
const POLL_BOUND: Duration = Duration::from_secs(20);

/// One running core, a channel to it and a session on it; the spool folder is the core's printer.
struct Conf {
    core: TestCore,
    channel: Channel,
    token: String,
    spool: tempfile::TempDir,
    /// Holds files the core reads (a devices file) for as long as it runs.
    _files: tempfile::TempDir,
}

/// GetProduct of the conformance session, which must succeed.
async fn product(conf: &Conf, id: &str) -> pb::Product {
    let response = conf.catalog().get_product(conf.req(pb::GetProductRequest { product_id: id.into() })).await;
    response.expect("GetProduct succeeds").into_inner().product.expect("a product")
}

impl Conf {
    /// The options every conformance core gets: an operator token, a spool folder to look into
    /// (what the printer receives) and a spool printer that takes 200 ms per job.
    fn builder() -> (CoreBuilder, tempfile::TempDir) {
        Conf::builder_printing(Duration::from_millis(200))
    }

    /// The common options with a spool printer that takes `print_time` per job.
    fn builder_printing(print_time: Duration) -> (CoreBuilder, tempfile::TempDir) {
        let spool = tempfile::tempdir().expect("a temp folder");
        let builder = TestCore::builder()
            .operator_token(OPERATOR_TOKEN)
            .spool_dir(spool.path())
            .spool_print_time(print_time)
            .job_poll(Duration::from_millis(50));
        (builder, spool)
    }

    async fn start() -> Conf {
        let (builder, spool) = Conf::builder();
        Conf::from(builder, spool).await
    }

    /// Starts a core with the common options plus those `more` adds.
    async fn with(more: impl FnOnce(CoreBuilder) -> CoreBuilder) -> Conf {
        let (builder, spool) = Conf::builder();
        Conf::from(more(builder), spool).await
    }

    /// A core whose spool printer takes `print_time` per job.
    async fn printing(print_time: Duration) -> Conf {
        let (builder, spool) = Conf::builder_printing(print_time);
        Conf::from(builder, spool).await
    }

    /// As `printing`, with the core in this process (its services at hand).
    async fn in_process_printing(print_time: Duration) -> Conf {
        let (builder, spool) = Conf::builder_printing(print_time);
        let core = builder.in_process().await.expect("the core starts");
        let channel = core.channel().await;
        let token = start_session(&channel, DEVICE).await;
        Conf { core, channel, token, spool, _files: tempfile::tempdir().expect("a temp folder") }
    }

    async fn from(builder: CoreBuilder, spool: tempfile::TempDir) -> Conf {
        let files = tempfile::tempdir().expect("a temp folder");
        Conf::on_device(builder, spool, files, DEVICE).await
    }

    /// A core with the common options plus those `more` adds, and no session yet (`token` is
    /// empty), for servers where the default device may not start one.
    async fn bare(more: impl FnOnce(CoreBuilder) -> CoreBuilder) -> Conf {
        let (builder, spool) = Conf::builder();
        let files = tempfile::tempdir().expect("a temp folder");
        let core = more(builder).spawn().await.expect("the core starts");
        let channel = core.channel().await;
        Conf { core, channel, token: String::new(), spool, _files: files }
    }

    async fn on_device(builder: CoreBuilder, spool: tempfile::TempDir, files: tempfile::TempDir, device: &str) -> Conf {
        let core = builder.spawn().await.expect("the core starts");
        let channel = core.channel().await;
        let token = start_session(&channel, device).await;
        Conf { core, channel, token, spool, _files: files }
    }

    /// A core whose session is on a pulling device (`PULL_DEVICE`), with plaintext pull links
    /// that work for `link_ttl`, plus the options `more` adds.
    async fn pull(link_ttl: Duration, more: impl FnOnce(CoreBuilder) -> CoreBuilder) -> Conf {
        let (builder, spool) = Conf::builder();
        let files = tempfile::tempdir().expect("a temp folder");
        let builder = builder.devices_file(&pull_devices_file(files.path())).pull_plaintext().pull_link_ttl(link_ttl);
        Conf::on_device(more(builder), spool, files, PULL_DEVICE).await
    }

    /// Another session on `device`.
    async fn new_session_on(&self, device: &str) -> String {
        start_session(&self.channel, device).await
    }

    /// Another session on the default device.
    async fn new_session(&self) -> String {
        self.new_session_on(DEVICE).await
    }

    fn catalog(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(self.channel.clone())
    }

    fn customize(&self) -> CustomizationServiceClient<Channel> {
        CustomizationServiceClient::new(self.channel.clone()).max_decoding_message_size(16 * 1024 * 1024)
    }

    fn print(&self) -> PrintServiceClient<Channel> {
        PrintServiceClient::new(self.channel.clone())
    }

    fn sessions(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel.clone())
    }

    fn devices(&self) -> DeviceServiceClient<Channel> {
        DeviceServiceClient::new(self.channel.clone())
    }

    fn usage(&self) -> UsageServiceClient<Channel> {
        UsageServiceClient::new(self.channel.clone())
    }

    fn sso(&self) -> SsoServiceClient<Channel> {
        SsoServiceClient::new(self.channel.clone())
    }

    /// `message` with this session's token.
    fn req<T>(&self, message: T) -> Request<T> {
        authed(&self.token, message)
    }

    /// CreateDraft as this session; the call's own result.
    async fn try_create(
        &self,
        product: &str,
        quantity: i32,
        pairs: &[(&str, &str)],
    ) -> Result<pb::CreateDraftResponse, Status> {
        let request = pb::CreateDraftRequest { product_id: product.into(), quantity, values: values(pairs) };
        self.customize().create_draft(self.req(request)).await.map(tonic::Response::into_inner)
    }

    /// CreateDraft as this session, which must succeed.
    async fn create(&self, product: &str, pairs: &[(&str, &str)]) -> pb::CreateDraftResponse {
        self.try_create(product, 0, pairs).await.expect("CreateDraft succeeds")
    }

    /// A VALID classic business card draft.
    async fn valid_card(&self) -> pb::Draft {
        let created = self.create(CARD_PRODUCT, CARD).await;
        assert!(created.field_errors.is_empty(), "{:?}", created.field_errors);
        created.draft.expect("a draft")
    }

    /// UpdateDraft as this session; the call's own result.
    async fn try_update(&self, request: pb::UpdateDraftRequest) -> Result<pb::UpdateDraftResponse, Status> {
        self.customize().update_draft(self.req(request)).await.map(tonic::Response::into_inner)
    }

    /// FinalizeDraft as this session, which must succeed.
    async fn finalize(&self, draft_id: &str) -> pb::FinalizeDraftResponse {
        self.customize()
            .finalize_draft(self.req(pb::FinalizeDraftRequest { draft_id: draft_id.into() }))
            .await
            .expect("FinalizeDraft succeeds")
            .into_inner()
    }

    /// A FINALIZED draft of the static product and its print file.
    async fn finalized_static(&self) -> (pb::Draft, pb::PrintFile) {
        let draft = self.create(STATIC_PRODUCT, &[]).await.draft.expect("a draft");
        let finalized = self.finalize(&draft.id).await;
        (finalized.draft.expect("the draft"), finalized.print_file.expect("a print file"))
    }

    /// UploadPrintFile of this session with these messages.
    async fn try_upload(&self, messages: Vec<pb::UploadPrintFileRequest>) -> Result<pb::PrintFile, Status> {
        let response = self.customize().upload_print_file(self.req(upload_stream(messages))).await?;
        Ok(response.into_inner().print_file.expect("a print file"))
    }

    async fn try_submit(&self, request: pb::SubmitJobRequest) -> Result<pb::SubmitJobResponse, Status> {
        self.print().submit_job(self.req(request)).await.map(tonic::Response::into_inner)
    }

    /// SubmitJob as this session, which must succeed; the job.
    async fn submit(&self, request: pb::SubmitJobRequest) -> pb::Job {
        self.try_submit(request).await.expect("SubmitJob succeeds").job.expect("a job")
    }

    async fn get_job(&self, job_id: &str) -> pb::Job {
        let response = self.print().get_job(self.req(pb::GetJobRequest { job_id: job_id.into() })).await;
        response.expect("GetJob succeeds").into_inner().job.expect("a job")
    }

    /// Every message WatchJob sends until its stream ends by itself, and how it ended.
    async fn watch(&self, token: &str, job_id: &str) -> (Vec<pb::Job>, Result<(), Status>) {
        let request = authed(token, pb::WatchJobRequest { job_id: job_id.into() });
        let mut stream = match self.print().watch_job(request).await {
            Ok(stream) => stream.into_inner(),
            Err(status) => return (Vec::new(), Err(status)),
        };
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + POLL_BOUND;
        loop {
            match tokio::time::timeout_at(deadline, stream.message()).await.expect("the stream ends by itself") {
                Ok(Some(message)) => seen.push(message.job.expect("a job")),
                Ok(None) => return (seen, Ok(())),
                Err(status) => return (seen, Err(status)),
            }
        }
    }

    /// The files the spool printer received.
    fn spooled(&self) -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(self.spool.path())
            .expect("the spool folder exists")
            .map(|e| e.expect("a folder entry").path())
            .collect();
        files.sort();
        files
    }
}

/// The messages of an UploadPrintFile call for `pdf`: its metadata, then chunks of 1 MiB.
fn upload(pdf: &[u8]) -> Vec<pb::UploadPrintFileRequest> {
    let mut messages = vec![metadata(pdf.len() as i64, "")];
    messages.extend(pdf.chunks(1024 * 1024).map(|c| chunk(c.to_vec())));
    messages
}

/// The metadata message of an upload.
fn metadata(size_bytes: i64, display_name: &str) -> pb::UploadPrintFileRequest {
    let metadata = pb::UploadPrintFileMetadata { size_bytes, display_name: display_name.into() };
    pb::UploadPrintFileRequest { part: Some(pb::upload_print_file_request::Part::Metadata(metadata)) }
}

/// A chunk message of an upload.
fn chunk(bytes: Vec<u8>) -> pb::UploadPrintFileRequest {
    pb::UploadPrintFileRequest { part: Some(pb::upload_print_file_request::Part::Chunk(bytes)) }
}

/// Messages as the caller's stream of an UploadPrintFile call.
fn upload_stream(
    messages: Vec<pb::UploadPrintFileRequest>,
) -> futures::stream::Iter<std::vec::IntoIter<pb::UploadPrintFileRequest>> {
    futures::stream::iter(messages)
}

/// A SubmitJob request for a draft with one copy.
fn submit_draft(draft_id: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::DraftId(draft_id.into())),
        copies: 1,
        ..Default::default()
    }
}

/// A SubmitJob request for a print file with one copy.
fn submit_file(file_id: &str) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::FileId(file_id.into())),
        copies: 1,
        ..Default::default()
    }
}

fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Checks that a call failed with `code` and a message a person can act on: non-empty, and
/// naming each of `hints` (compared case-insensitively). Returns the status.
#[track_caller]
fn expect_status<T: Debug>(result: Result<T, Status>, code: Code, hints: &[&str]) -> Status {
    let status = match result {
        Ok(value) => panic!("expected {code:?}, the call succeeded: {value:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "wrong status: {:?}", status.message());
    assert!(!status.message().trim().is_empty(), "{code:?} needs a message");
    let message = status.message().to_lowercase();
    for hint in hints {
        assert!(message.contains(&hint.to_lowercase()), "the message should mention {hint:?}: {:?}", status.message());
    }
    status
}

/// A GET of a plaintext pull link (cores started with --pull-plaintext): status and body.
async fn fetch(url: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url.strip_prefix("http://").expect("a plaintext pull link");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("the pull listener accepts");
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("request sent");
    let mut response = Vec::new();
    tokio::time::timeout(POLL_BOUND, stream.read_to_end(&mut response))
        .await
        .expect("the pull listener answers")
        .expect("a response");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    (status, response[split + 4..].to_vec())
}

/// The pulling device of `pull_devices_file`.
const PULL_DEVICE: &str = "mfd-pull";

/// A devices file with one pulling device, `PULL_DEVICE`.
fn pull_devices_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("devices.toml");
    std::fs::write(
        &path,
        format!(
            "[[device]]\nid = \"{PULL_DEVICE}\"\ndisplay_name = \"Pulling MFD\"\nmodel = \"Xerox VersaLink C7130\"\ndelivery = \"device_pull\"\n"
        ),
    )
    .expect("devices file written");
    path
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
