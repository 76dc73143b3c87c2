//! The core against an XMPie uStore storefront (the test double over HTTPS): the whole flow
//! through gRPC (anonymous browse, login, a conditional field, uStore's own validation on its
//! field, preview, proof, print to the spool printer and to ippeveprinter), token expiry, throttled
//! previews, an upstream outage with the circuit breaker, malformed, huge and slow answers, order
//! items kept apart, and a closed session leaving nothing behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use proto::v1 as pb;
use server::domain::ephemeral::EphemeralStore as _;
use tests::client::{
    ANA, BEN, authed, catalog, create_draft, customize, print, sessions, start_session, update_draft, values,
};
use tests::core::{CoreBuilder, TestCore};
use tests::gateway::{Http, TestGateway, full};
use tests::ipp::TestPrinter;
use tests::ustore::fixtures::{
    CAT_BUSINESS_CARDS, CAT_MARKETING, CAT_STATIONERY, CAT_TRADE, PROD_BUSINESS_CARD, PROD_FLYER, PROD_LETTERHEAD,
};
use tests::ustore::{FailMode, UstoreDouble};
use tests::wait::eventually;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A double and a core that uses it, with a short breaker cooldown so recovery is quick to see.
struct Shop {
    double: UstoreDouble,
    core: TestCore,
    channel: Channel,
    _dir: tempfile::TempDir,
}

async fn shop_with(double: UstoreDouble, configure: impl FnOnce(CoreBuilder) -> CoreBuilder) -> Shop {
    shop_configured(double, "", configure).await
}

/// `settings`: more `[storefront.ustore]` lines.
async fn shop_configured(
    double: UstoreDouble,
    settings: &str,
    configure: impl FnOnce(CoreBuilder) -> CoreBuilder,
) -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ustore-ca.pem");
    double.write_ca(&ca).unwrap();
    let config = dir.path().join("core.toml");
    let settings = format!("[storefront.ustore]\nbreaker_failures = 3\nbreaker_cooldown = \"700ms\"\n{settings}");
    std::fs::write(&config, settings).unwrap();
    let builder = TestCore::builder()
        .config_file(&config)
        .ustore(&double.base_url(), double.store_id(), &double.storefront_url(), &ca)
        .job_poll(Duration::from_millis(100))
        .spool_print_time(Duration::from_millis(200));
    let core = configure(builder).in_process().await.unwrap();
    let channel = core.channel().await;
    Shop { double, core, channel, _dir: dir }
}

async fn shop() -> Shop {
    shop_with(UstoreDouble::start().await.unwrap(), |b| b).await
}

async fn login(channel: &Channel, token: &str, (user, password, _): (&str, &str, &str)) -> pb::LoginResponse {
    let request = pb::LoginRequest { username: user.into(), password: password.into(), ..Default::default() };
    sessions(channel).login(authed(token, request)).await.expect("Login succeeds").into_inner()
}

async fn list(
    channel: &Channel,
    token: &str,
    category: &str,
    query: &str,
    size: i32,
    page: &str,
) -> pb::ListProductsResponse {
    let request = pb::ListProductsRequest {
        category_id: category.into(),
        query: query.into(),
        page_size: size,
        page_token: page.into(),
    };
    catalog(channel).list_products(authed(token, request)).await.expect("ListProducts succeeds").into_inner()
}

fn ids(categories: &[pb::Category]) -> Vec<String> {
    categories.iter().flat_map(|c| std::iter::once(c.id.clone()).chain(ids(&c.subcategories))).collect()
}

async fn watch_to_end(channel: &Channel, token: &str, job_id: &str) -> Vec<pb::JobState> {
    let request = authed(token, pb::WatchJobRequest { job_id: job_id.into() });
    let mut stream = print(channel).watch_job(request).await.unwrap().into_inner();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Some(message) = tokio::time::timeout_at(deadline, stream.message()).await.expect("the job ends").unwrap()
    {
        seen.push(message.job.unwrap().state());
    }
    seen
}

/// Prints a finalized file, one copy, and watches the job to its end.
async fn print_to_end(channel: &Channel, token: &str, file_id: String) -> (pb::Job, Vec<pb::JobState>) {
    let request = pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::FileId(file_id)),
        copies: 1,
        ..Default::default()
    };
    let job = print(channel).submit_job(authed(token, request)).await.unwrap().into_inner().job.unwrap();
    let states = watch_to_end(channel, token, &job.id).await;
    (job, states)
}

fn pdf_text(pdf: &[u8], dir: &Path) -> String {
    let file = dir.join("proof.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = Command::new("pdftotext").arg(&file).arg("-").output().expect("pdftotext runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CARD: &[(&str, &str)] = &[("Name", "Anna Keller"), ("JobTitle", "Architect"), ("Email", "anna@keller.de")];

#[tokio::test]
async fn a_person_browses_customizes_previews_and_prints_a_ustore_product() {
    let spool = tempfile::tempdir().unwrap();
    let shop = shop_with(UstoreDouble::start().await.unwrap(), |b| b.spool_dir(spool.path())).await;
    let (channel, controls) = (&shop.channel, shop.double.controls());
    let token = start_session(channel, "mfd-lobby").await;

    // Anonymous browsing: the tree with counts, pages behind opaque tokens, search, details.
    let tree = catalog(channel).list_categories(authed(&token, pb::ListCategoriesRequest {})).await.unwrap();
    let tree = tree.into_inner().categories;
    let all = ids(&tree);
    for id in [CAT_STATIONERY, CAT_BUSINESS_CARDS, CAT_MARKETING] {
        assert!(all.contains(&id.to_string()), "{id} in {all:?}");
    }
    assert!(!all.contains(&CAT_TRADE.to_string()), "the trade counter is private");
    let stationery = tree.iter().find(|c| c.id == CAT_STATIONERY).unwrap();
    assert_eq!(stationery.subcategories[0].id, CAT_BUSINESS_CARDS, "subcategories nest");
    let marketing = tree.iter().find(|c| c.id == CAT_MARKETING).unwrap();
    let first = list(channel, &token, CAT_MARKETING, "", 2, "").await;
    assert_eq!(first.total_size, marketing.product_count, "counts match the listing");
    assert_eq!(first.products.len(), 2);
    let second = list(channel, &token, CAT_MARKETING, "", 2, &first.next_page_token).await;
    assert!(second.products.iter().all(|p| first.products.iter().all(|q| q.id != p.id)), "pages do not overlap");
    let found = list(channel, &token, "", "flyer", 10, "").await;
    assert!(found.products.iter().any(|p| p.id == PROD_FLYER), "{:?}", found.products);
    let product = catalog(channel)
        .get_product(authed(&token, pb::GetProductRequest { product_id: PROD_BUSINESS_CARD.into() }))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    let trim = product.trim_size.unwrap();
    assert_eq!((trim.width_mm, trim.height_mm, product.page_count), (85.0, 55.0, 2));
    assert!(!product.description.contains('<'), "HTML becomes plain text: {}", product.description);
    let thumbnail = catalog(channel)
        .get_thumbnail(authed(&token, pb::GetThumbnailRequest { product_id: PROD_BUSINESS_CARD.into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((thumbnail.content_type.as_str(), thumbnail.width_px, thumbnail.height_px), ("image/png", 320, 240));
    assert_eq!(imagesize::blob_size(&thumbnail.data).unwrap().width, 320, "re-encoded by the core");

    // Logging in shows the account's private category; the login went to uStore.
    let logged_in = login(channel, &token, BEN).await;
    assert_eq!(logged_in.display_name, "Ben Okafor");
    let token = logged_in.session_token;
    assert_eq!(controls.count("login"), 1);
    let tree = catalog(channel).list_categories(authed(&token, pb::ListCategoriesRequest {})).await.unwrap();
    assert!(ids(&tree.into_inner().categories).contains(&CAT_TRADE.to_string()), "ben sees the trade counter");

    // The form: a conditional field, sections, and an unknown widget shown as text.
    let form = customize(channel)
        .get_form(authed(&token, pb::GetFormRequest { product_id: PROD_BUSINESS_CARD.into() }))
        .await
        .unwrap()
        .into_inner()
        .form
        .unwrap();
    let field = |id: &str| form.fields.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("{id}")).clone();
    let phone = field("Phone").visible_when.expect("Phone shows only with ShowPhone");
    assert_eq!((phone.field_id.as_str(), phone.values.as_slice()), ("ShowPhone", &["Yes".to_string()][..]));
    assert_eq!(field("ShowPhone").r#type(), pb::FieldType::Choice);
    assert_eq!(field("PaperTint").r#type(), pb::FieldType::Text, "an unknown widget degrades to text");
    assert!(form.sections.iter().any(|s| s.id == "back"));

    // uStore's own rule reaches the person on its field; the conditional field is checked when shown.
    let draft = create_draft(channel, &token, PROD_BUSINESS_CARD, &[("Name", "Forbidden Name")]).await;
    let errors: Vec<(String, String)> =
        draft.field_errors.iter().map(|e| (e.field_id.clone(), e.message.clone())).collect();
    assert!(errors.iter().any(|(f, m)| f == "Name" && m.contains("reserved")), "{errors:?}");
    let id = draft.draft.unwrap().id;
    let shown =
        update_draft(channel, &token, &id, &[("Name", "Anna Keller"), ("ShowPhone", "Yes"), ("Phone", "abc")]).await;
    assert!(shown.field_errors.iter().any(|e| e.field_id == "Phone"), "{:?}", shown.field_errors);
    let fixed = update_draft(channel, &token, &id, &[("ShowPhone", "No"), ("JobTitle", "Architect")]).await;
    assert!(fixed.field_errors.is_empty(), "{:?}", fixed.field_errors);
    assert_eq!(fixed.draft.unwrap().state(), pb::DraftState::Valid);

    // Preview: one PNG per page, as wide as asked, from uStore's preview.
    let previews = customize(channel)
        .render_preview(authed(
            &token,
            pb::RenderPreviewRequest { draft_id: id.clone(), width_px: 400, ..Default::default() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(previews.pages.len(), 2);
    assert!(previews.pages.iter().all(|p| p.width_px == 400 && p.content_type == "image/png"));
    assert!(controls.count("preview-create") >= 1);

    // The proof is the print-ready file, and the spool printer prints it.
    let finalized = customize(channel)
        .finalize_draft(authed(&token, pb::FinalizeDraftRequest { draft_id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    let file = finalized.print_file.unwrap();
    assert_eq!(file.page_count, 2);
    let (_, states) = print_to_end(channel, &token, file.file_id).await;
    assert_eq!(states.last(), Some(&pb::JobState::Completed), "{states:?}");
    let spooled: Vec<_> = std::fs::read_dir(spool.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    let pdf = std::fs::read(&spooled[0]).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(pdf_text(&pdf, spool.path()).contains("Anna Keller"), "the printed proof carries the person's values");
    let items = controls.order_items();
    let item = items.iter().find(|i| i.product_id == PROD_BUSINESS_CARD && i.email.is_some()).unwrap();
    assert_eq!(item.email.as_deref(), Some(BEN.0), "the draft is an order item of the logged-in account");
    assert_eq!(item.values.get("Name").map(String::as_str), Some("Anna Keller"), "values were saved in uStore");
}

#[tokio::test]
async fn a_static_ustore_product_prints_on_a_real_ipp_printer() {
    let printer = TestPrinter::builder().loaded(&[("iso_a4_210x297mm", "main")]).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let devices = dir.path().join("devices.toml");
    std::fs::write(
        &devices,
        format!(
            "[[device]]\nid = \"mfd-ipp\"\ndisplay_name = \"Test printer\"\nmodel = \"ippeveprinter\"\ndelivery = \"ipp_push\"\nprinter_uri = \"{}\"\n",
            printer.uri
        ),
    )
    .unwrap();
    let shop = shop_with(UstoreDouble::start().await.unwrap(), |b| b.devices_file(&devices)).await;
    let channel = &shop.channel;
    let token = start_session(channel, "mfd-ipp").await;
    let draft = create_draft(channel, &token, PROD_LETTERHEAD, &[]).await.draft.unwrap();
    assert_eq!(draft.state(), pb::DraftState::Valid, "a static product has nothing to fill in");
    let file = customize(channel)
        .finalize_draft(authed(&token, pb::FinalizeDraftRequest { draft_id: draft.id }))
        .await
        .unwrap()
        .into_inner()
        .print_file
        .unwrap();
    let session = shop.core.services().sessions.authenticate(&token).await.unwrap();
    let pdf = shop.core.services().customization.print_file_bytes(&session, &file.file_id).await.unwrap();
    let (job, states) = print_to_end(channel, &token, file.file_id).await;
    assert_eq!(states.last(), Some(&pb::JobState::Completed), "{states:?}");
    // A4 is loaded: the letterhead prints on it, its proof placed on the sheet at true size.
    let kept = printer.wait_for_job_document(&job.device_job_id, &job.document_sha256, Duration::from_secs(10)).await;
    let kept = kept.unwrap();
    assert_eq!(job.media, "iso_a4_210x297mm");
    let texts = tempfile::tempdir().unwrap();
    let proof_text = pdf_text(&pdf, texts.path());
    assert!(!proof_text.trim().is_empty());
    assert_eq!(pdf_text(&kept.bytes, texts.path()), proof_text, "the printer received uStore's proof");
}

#[tokio::test]
async fn an_expired_token_is_renewed_by_one_login_and_a_second_refusal_is_an_error() {
    let shop = shop().await;
    let (channel, controls) = (&shop.channel, shop.double.controls());
    let token = start_session(channel, "mfd-lobby").await;
    let draft = create_draft(channel, &token, PROD_BUSINESS_CARD, CARD).await.draft.unwrap();
    let logins = controls.count("loginByUrl");

    controls.expire_tokens();
    let after = update_draft(channel, &token, &draft.id, &[("JobTitle", "Partner")]).await;
    assert!(after.field_errors.is_empty(), "{:?}", after.field_errors);
    assert_eq!(controls.count("loginByUrl"), logins + 1, "exactly one new login for the session's uStore user");
    let items = controls.order_items();
    assert_eq!(items.iter().filter(|i| i.product_id == PROD_BUSINESS_CARD).count(), 1, "the same user kept its item");

    // Tokens that die at once: the one re-login is refused too, and the call ends with an error.
    controls.set_token_ttl(Duration::ZERO);
    controls.expire_tokens();
    let before = controls.count("loginByUrl");
    let request = pb::UpdateDraftRequest {
        draft_id: draft.id.clone(),
        values: values(&[("JobTitle", "CEO")]),
        ..Default::default()
    };
    let err = customize(channel).update_draft(authed(&token, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("refuses"), "{}", err.message());
    assert_eq!(controls.count("loginByUrl"), before + 1, "one re-login, not a loop");
}

#[tokio::test]
async fn tokens_and_passwords_never_reach_the_log() {
    let double = UstoreDouble::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ustore-ca.pem");
    double.write_ca(&ca).unwrap();
    let core = TestCore::builder()
        .ustore(&double.base_url(), double.store_id(), &double.storefront_url(), &ca)
        .log_filter("debug")
        .spawn()
        .await
        .unwrap();
    let channel = core.channel().await;
    let controls = double.controls();
    let token = login(&channel, &start_session(&channel, "mfd-lobby").await, BEN).await.session_token;
    let draft = create_draft(&channel, &token, PROD_BUSINESS_CARD, CARD).await.draft.unwrap();
    let first = controls.live_tokens_of(BEN.0);
    assert_eq!(first.len(), 1, "the core logged in as ben once");
    controls.expire_tokens();
    update_draft(&channel, &token, &draft.id, &[("JobTitle", "Partner")]).await;
    let second = controls.live_tokens_of(BEN.0);
    assert_eq!(second.len(), 1, "and once more after the token expired");
    let log = core.log();
    assert!(log.contains("logging in again"), "the re-login is logged: {log}");
    for secret in [BEN.1, first[0].as_str(), second[0].as_str(), "Anna Keller"] {
        assert!(!log.contains(secret), "{secret:?} is in the core's log");
    }
}

#[tokio::test]
async fn tokens_are_renewed_before_they_go_stale() {
    let shop = shop_configured(UstoreDouble::start().await.unwrap(), "renew_after = \"1ms\"\n", |b| b).await;
    let (channel, controls) = (&shop.channel, shop.double.controls());
    let token = start_session(channel, "mfd-lobby").await;
    let draft = create_draft(channel, &token, PROD_BUSINESS_CARD, CARD).await.draft.unwrap();
    let (logins, renewals) = (controls.count("loginByUrl"), controls.count("renew"));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let after = update_draft(channel, &token, &draft.id, &[("JobTitle", "Partner")]).await;
    assert!(after.field_errors.is_empty(), "{:?}", after.field_errors);
    assert!(controls.count("renew") > renewals, "an old token is renewed: {:?}", controls.counts());
    assert_eq!(controls.count("loginByUrl"), logins, "renewed, not logged in again");
}

#[tokio::test]
async fn throttled_previews_back_off_and_finish() {
    let shop = shop().await;
    let (channel, controls) = (&shop.channel, shop.double.controls());
    let token = start_session(channel, "mfd-lobby").await;
    let draft = create_draft(channel, &token, PROD_BUSINESS_CARD, CARD).await.draft.unwrap();
    controls.throttle_next(2);
    let started = Instant::now();
    let previews = customize(channel)
        .render_preview(authed(
            &token,
            pb::RenderPreviewRequest { draft_id: draft.id, width_px: 300, ..Default::default() },
        ))
        .await
        .expect("the preview finishes once uStore lets it")
        .into_inner();
    assert_eq!(previews.pages.len(), 2);
    assert!(started.elapsed() >= Duration::from_secs(2), "it waited (1 s, then 2 s) before asking again");
    assert!(controls.count("preview-create") >= 3, "{:?}", controls.counts());
}

#[tokio::test]
async fn previews_asked_while_one_renders_share_it_and_a_change_renders_anew() {
    let shop = shop().await;
    let (channel, controls) = (&shop.channel, shop.double.controls());
    let token = start_session(channel, "mfd-lobby").await;
    let draft = create_draft(channel, &token, PROD_BUSINESS_CARD, CARD).await.draft.unwrap();
    let preview = || {
        let request = pb::RenderPreviewRequest { draft_id: draft.id.clone(), width_px: 300, ..Default::default() };
        let mut client = customize(channel);
        let token = token.clone();
        async move { client.render_preview(authed(&token, request)).await.expect("the preview renders").into_inner() }
    };
    // The first waits a second on uStore's throttling; three more taps arrive meanwhile.
    controls.throttle_next(1);
    let before = controls.count("preview-create");
    let all = futures::future::join_all((0..4).map(|_| preview())).await;
    assert_eq!(
        controls.count("preview-create") - before,
        2,
        "one preview asked for (and once again after the throttle): {:?}",
        controls.counts()
    );
    assert!(all.iter().all(|p| p.pages.len() == 2 && p.pages == all[0].pages), "every tap got the same preview");

    update_draft(channel, &token, &draft.id, &[("JobTitle", "Partner")]).await;
    let changed = preview().await;
    assert_eq!(controls.count("preview-create") - before, 3, "new values render anew");
    assert_ne!(changed.pages[0].data, all[0].pages[0].data, "showing the change");
}

#[tokio::test]
async fn an_upstream_outage_is_unavailable_in_time_opens_the_breaker_and_recovery_closes_it() {
    let shop = shop().await;
    let (channel, controls) = (&shop.channel, shop.double.controls());
    let token = start_session(channel, "mfd-lobby").await;
    controls.set_fail(Some(FailMode::Down));

    let mut request = authed(&token, pb::ListProductsRequest { query: "card".into(), ..Default::default() });
    request.set_timeout(Duration::from_secs(8));
    let started = Instant::now();
    let err = catalog(channel).list_products(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("cannot be reached"), "{}", err.message());
    assert!(started.elapsed() < Duration::from_secs(8), "within the caller's deadline");

    // Three failures in a row open the breaker: calls fail at once without reaching uStore.
    for query in ["a", "b", "c"] {
        let request = authed(&token, pb::ListProductsRequest { query: query.into(), ..Default::default() });
        let _ = catalog(channel).list_products(request).await;
    }
    controls.reset_counts();
    let request = authed(&token, pb::ListProductsRequest { query: "d".into(), ..Default::default() });
    assert_eq!(catalog(channel).list_products(request).await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(controls.counts().values().sum::<u64>(), 0, "the open breaker held the call back");
    let mut health = HealthClient::new(channel.clone());
    let catalog_health = || HealthCheckRequest { service: "podconnect.v1.CatalogService".into() };
    eventually("health to say the catalog cannot serve", Duration::from_secs(20), || {
        let mut health = health.clone();
        async move { health.check(catalog_health()).await.is_ok_and(|r| r.into_inner().status == 2).then_some(()) }
    })
    .await;
    let overall = health.check(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(overall.status, 1, "the core itself still serves");
    let gateway = TestGateway::start(&shop.core).await;
    let mut web = gateway.client(Http::H2).await;
    let healthz = |web: &tests::gateway::WebClient| {
        web.request(http::Method::GET, "/healthz").body(full(bytes::Bytes::new())).unwrap()
    };
    let (status, _, body) = web.fetch(healthz(&web)).await.unwrap();
    assert_eq!(status, http::StatusCode::OK, "a storefront outage does not take the gateway out of a balancer");
    assert_eq!(&body[..], &b"DEGRADED: the storefront cannot be reached\n"[..]);

    controls.set_fail(None);
    eventually("the breaker to close once uStore answers again", Duration::from_secs(20), || {
        let mut client = catalog(channel);
        let request = authed(&token, pb::ListProductsRequest { query: "card".into(), ..Default::default() });
        async move { client.list_products(request).await.map(|_| ()) }
    })
    .await;
    eventually("health to say the catalog serves again", Duration::from_secs(20), || {
        let mut health = health.clone();
        async move { health.check(catalog_health()).await.is_ok_and(|r| r.into_inner().status == 1).then_some(()) }
    })
    .await;
    let (_, _, body) = web.fetch(healthz(&web)).await.unwrap();
    assert_eq!(&body[..], &b"SERVING\n"[..]);
}

#[tokio::test]
async fn malformed_huge_and_slow_answers_end_in_clear_errors_in_bounded_time() {
    let shop = shop_with(UstoreDouble::start().await.unwrap(), |b| b.ustore_timeout(Duration::from_secs(2))).await;
    let (channel, controls) = (&shop.channel, shop.double.controls());
    let token = start_session(channel, "mfd-lobby").await;
    let ask = |query: &'static str| {
        let request = authed(&token, pb::ListProductsRequest { query: query.into(), ..Default::default() });
        let mut client = catalog(channel);
        async move { client.list_products(request).await }
    };

    controls.set_malformed_catalog(true);
    let err = ask("malformed").await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(err.message().contains("cannot be used") && !err.message().contains("JSON"), "{}", err.message());
    controls.set_malformed_catalog(false);

    controls.set_oversized_catalog(Some(64 * 1024 * 1024));
    let started = Instant::now();
    let err = ask("huge").await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "refused before 64 MiB were read");
    controls.set_oversized_catalog(None);

    controls.set_slow_catalog(Some(4));
    let started = Instant::now();
    let err = ask("slow").await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "ended by the 2 s limit: {:?}", started.elapsed());
    controls.set_slow_catalog(None);
    assert!(ask("card").await.is_ok(), "and the next call works");

    // A slow uStore and a caller with a shorter deadline: the storefront's own message, in time.
    controls.set_latency(Duration::from_secs(3));
    let mut request = authed(&token, pb::ListProductsRequest { query: "late".into(), ..Default::default() });
    request.set_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let err = catalog(channel).list_products(request).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("storefront"), "says what was slow: {}", err.message());
    assert!(started.elapsed() < Duration::from_millis(2500), "not after the 3 s upstream: {:?}", started.elapsed());
}

#[tokio::test]
async fn two_sessions_never_see_each_others_order_items() {
    let shop = shop().await;
    let (channel, controls) = (&shop.channel, shop.double.controls());
    let ana = login(channel, &start_session(channel, "mfd-lobby").await, ANA).await.session_token;
    let ben = login(channel, &start_session(channel, "mfd-lobby").await, BEN).await.session_token;
    // Ben's private view (the trade counter) never reaches Ana or an anonymous shopper, cache or not.
    let categories = |token: String| {
        let mut client = catalog(channel);
        async move {
            ids(&client
                .list_categories(authed(&token, pb::ListCategoriesRequest {}))
                .await
                .unwrap()
                .into_inner()
                .categories)
        }
    };
    assert!(categories(ben.clone()).await.contains(&CAT_TRADE.to_string()));
    assert!(!categories(ana.clone()).await.contains(&CAT_TRADE.to_string()), "ana does not see ben's view");
    let anonymous = start_session(channel, "mfd-lobby").await;
    assert!(!categories(anonymous).await.contains(&CAT_TRADE.to_string()), "nor does an anonymous shopper");
    let ana_draft = create_draft(channel, &ana, PROD_BUSINESS_CARD, CARD).await.draft.unwrap();
    let ben_draft = create_draft(channel, &ben, PROD_BUSINESS_CARD, CARD).await.draft.unwrap();

    // At the core, another session's draft does not exist.
    let request = pb::UpdateDraftRequest { draft_id: ben_draft.id.clone(), values: values(CARD), ..Default::default() };
    let err = customize(channel).update_draft(authed(&ana, request)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // At uStore, the order items belong to different users, and one cannot read the other's.
    let items = controls.order_items();
    let ana_item = items.iter().find(|i| i.email.as_deref() == Some(ANA.0)).expect("ana's order item");
    let ben_item = items.iter().find(|i| i.email.as_deref() == Some(BEN.0)).expect("ben's order item");
    assert_ne!(ana_item.user_id, ben_item.user_id);
    let ana_token = controls.token_for(ANA.0).expect("ana holds a token");
    let target = format!("/uStoreRestAPI/v1/store/login/user/orders/unsubmitted/items/{}", ben_item.item_id);
    let reply = shop.double.call(http::Method::GET, &target, Some(&ana_token), None).await.unwrap();
    assert_eq!(reply.status, http::StatusCode::NOT_FOUND, "guessing another user's order item finds nothing");
    let _ = ana_draft;
}

#[tokio::test]
async fn closing_the_session_deletes_everything_the_core_kept_for_it() {
    let shop = shop().await;
    let channel = &shop.channel;
    let token = start_session(channel, "mfd-lobby").await;
    let token = login(channel, &token, ANA).await.session_token;
    let draft = create_draft(channel, &token, PROD_BUSINESS_CARD, CARD).await.draft.unwrap();
    customize(channel)
        .render_preview(authed(&token, pb::RenderPreviewRequest { draft_id: draft.id.clone(), ..Default::default() }))
        .await
        .unwrap();
    let _ = list(channel, &token, CAT_STATIONERY, "", 5, "").await;
    let session = shop.core.services().sessions.authenticate(&token).await.unwrap();
    let scope = session.scope();
    let kept = shop.core.store().names(&scope).await.unwrap();
    assert!(kept.iter().any(|n| n.starts_with("ustore/")), "the uStore login is kept in the session: {kept:?}");

    sessions(channel).close_session(authed(&token, pb::CloseSessionRequest {})).await.unwrap();
    assert!(shop.core.store().names(&scope).await.unwrap().is_empty(), "nothing of the session is left");
    assert!(!shop.core.store().scopes().await.unwrap().contains(&scope));
}
