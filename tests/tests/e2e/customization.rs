//! Customization end to end: typed forms, drafts validated field by field, copy fitting, previews
//! that match golden images, and print-ready PDFs checked with poppler's own tools.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proto::v1 as pb;
use tests::client::{authed, create_draft, customize, start_session, update_draft, values};
use tests::core::TestCore;
use tests::pdf::poppler;
use tonic::Code;
use tonic::transport::Channel;

fn errors(list: &[pb::FieldError]) -> Vec<(String, pb::FieldErrorCode)> {
    list.iter().map(|e| (e.field_id.clone(), e.code())).collect()
}

/// Values that make the classic business card valid.
const CARD: &[(&str, &str)] = tests::client::VALID_CARD;

#[tokio::test]
async fn forms_carry_types_sections_options_and_conditions() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let form = |product: &str| {
        let request = authed(&token, pb::GetFormRequest { product_id: product.into() });
        let mut client = customize(&channel);
        async move { client.get_form(request).await.unwrap().into_inner().form.unwrap() }
    };

    let card = form("classic-business-card").await;
    let sections: Vec<&str> = card.sections.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(sections, ["front", "person", "contact"]);
    let field = |id: &str| card.fields.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("{id}")).clone();
    assert_eq!(field("initials").r#type(), pb::FieldType::Text);
    assert!(field("initials").required);
    assert!(!field("initials").pattern.is_empty());
    assert_eq!(field("phone").r#type(), pb::FieldType::Phone);
    assert_eq!(field("email").r#type(), pb::FieldType::Email);
    assert_eq!(field("address").r#type(), pb::FieldType::MultilineText);
    let colour = field("card_colour");
    assert_eq!(colour.r#type(), pb::FieldType::Choice);
    assert_eq!(colour.default_value, "navy");
    assert!(colour.options.len() >= 2 && colour.options.iter().all(|o| o.swatch_color.starts_with('#')));
    let orders: Vec<i32> = card.fields.iter().map(|f| f.display_order).collect();
    assert!(orders.windows(2).all(|w| w[0] < w[1]), "fields come in display order");

    let flyer = form("a4-flyer").await;
    let offer = flyer.fields.iter().find(|f| f.id == "offer_text").unwrap();
    let condition = offer.visible_when.as_ref().expect("a conditional field");
    assert_eq!((condition.field_id.as_str(), condition.values.as_slice()), ("show_offer", &["yes".to_string()][..]));
    let price = flyer.fields.iter().find(|f| f.id == "price").unwrap();
    assert_eq!(price.r#type(), pb::FieldType::Number);
    assert_eq!((price.min_value, price.max_value, price.step), (Some(0.5), Some(9999.0), Some(0.01)));
    assert!(flyer.fields.iter().any(|f| f.r#type() == pb::FieldType::Date));

    let kraft = form("kraft-eco-business-card").await;
    let logo = kraft.fields.iter().find(|f| f.r#type() == pb::FieldType::Choice).unwrap();
    let image = logo.options[0].image.as_ref().expect("image options carry their picture");
    assert_eq!(image.content_type, "image/png");
    assert_eq!(&image.data[..4], b"\x89PNG");

    assert!(form("fire-action-notice").await.fields.is_empty(), "static products have an empty form");
    let err = customize(&channel)
        .get_form(authed(&token, pb::GetFormRequest { product_id: "no-such-product".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn every_rule_is_checked_and_invalid_values_are_kept_not_dropped() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    use pb::FieldErrorCode as E;

    let created = create_draft(&channel, &token, "classic-business-card", &[]).await;
    let draft = created.draft.unwrap();
    assert_eq!(draft.state(), pb::DraftState::Editing);
    assert_eq!(draft.values.get("card_colour").map(String::as_str), Some("navy"), "defaults are filled in");
    assert_eq!(draft.quantity, 100, "the product's default quantity");
    let missing = errors(&created.field_errors);
    for id in ["initials", "company", "name"] {
        assert!(missing.contains(&(id.into(), E::Required)), "{id} is required: {missing:?}");
    }
    assert!(created.field_errors.iter().all(|e| !e.message.is_empty()));

    let card_errors = [
        ("initials", "A B", E::PatternMismatch),
        ("company", "An Unreasonably Long Company Name GmbH", E::TooLong),
        ("phone", "call me maybe", E::InvalidFormat),
        ("email", "anna@", E::InvalidFormat),
        ("card_colour", "pink", E::NotAnOption),
    ];
    for (id, bad, code) in card_errors {
        let mut pairs = CARD.to_vec();
        pairs.push((id, bad));
        let updated = update_draft(&channel, &token, &draft.id, &pairs).await;
        assert_eq!(errors(&updated.field_errors), vec![(id.to_string(), code)], "{id} = {bad:?}");
        let kept = updated.draft.unwrap();
        assert_eq!(kept.values.get(id).map(String::as_str), Some(bad), "the invalid value is kept as typed");
        assert_eq!(kept.state(), pb::DraftState::Editing);
    }
    let valid = update_draft(&channel, &token, &draft.id, CARD).await;
    assert!(valid.field_errors.is_empty(), "{:?}", valid.field_errors);
    assert_eq!(valid.draft.unwrap().state(), pb::DraftState::Valid);

    let flyer_base =
        [("headline", "Grand Opening"), ("price", "12.50"), ("event_date", "2027-03-14"), ("venue", "Market Hall")];
    let flyer = create_draft(&channel, &token, "a4-flyer", &flyer_base).await;
    let flyer_id = flyer.draft.unwrap().id;
    assert!(flyer.field_errors.is_empty(), "{:?}", flyer.field_errors);
    for (id, bad, code) in [
        ("price", "0.10", E::OutOfRange),
        ("price", "10000", E::OutOfRange),
        ("price", "12.505", E::StepMismatch),
        ("price", "twelve", E::InvalidFormat),
        ("event_date", "2027-02-30", E::InvalidFormat),
        ("event_date", "14.03.2027", E::InvalidFormat),
    ] {
        let updated = update_draft(&channel, &token, &flyer_id, &[(id, bad)]).await;
        assert_eq!(errors(&updated.field_errors), vec![(id.to_string(), code)], "{id} = {bad:?}");
        update_draft(&channel, &token, &flyer_id, &flyer_base).await;
    }

    // Quantities follow the product's rule; the error has no field id.
    let request = pb::UpdateDraftRequest { draft_id: flyer_id.clone(), quantity: Some(3), ..Default::default() };
    let updated = customize(&channel).update_draft(authed(&token, request)).await.unwrap().into_inner();
    assert_eq!(updated.field_errors.len(), 1);
    assert_eq!(updated.field_errors[0].field_id, "");
    assert!(updated.field_errors[0].message.contains("quantity"));

    // Control characters are the person's to fix: kept as typed and named by field (a pasted TAB
    // simply becomes a space).
    for bad in ["Grand\0Opening", "Line\nbreak"] {
        let updated = update_draft(&channel, &token, &flyer_id, &[("headline", bad)]).await;
        let headline = updated.field_errors.iter().find(|e| e.field_id == "headline").expect("an error on headline");
        assert_eq!(headline.code(), E::UnsupportedCharacter, "{bad:?}");
        assert_eq!(updated.draft.unwrap().values["headline"], bad, "kept as typed");
    }
    let updated = update_draft(&channel, &token, &flyer_id, &[("headline", "Grand\tOpening")]).await;
    assert_eq!(updated.draft.unwrap().values["headline"], "Grand Opening");
    assert!(updated.field_errors.iter().all(|e| e.field_id != "headline"), "{:?}", updated.field_errors);

    // Requests no form could accept are refused whole, and the draft is unchanged.
    let refused = [
        values(&[("no_such_field", "x")]),
        HashMap::from([("body".to_string(), "x".repeat(8 * 1024 + 1))]),
        HashMap::from([("body".to_string(), "x".repeat(1 << 20))]),
    ];
    for bad in refused {
        let request = pb::UpdateDraftRequest { draft_id: flyer_id.clone(), values: bad, ..Default::default() };
        let err = customize(&channel).update_draft(authed(&token, request)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    }
    let request = pb::UpdateDraftRequest { draft_id: flyer_id.clone(), ..Default::default() };
    let unchanged = customize(&channel).update_draft(authed(&token, request)).await.unwrap().into_inner();
    assert_eq!(unchanged.draft.unwrap().values.get("headline").map(String::as_str), Some("Grand Opening"));

    for (draft_id, code) in [("", Code::InvalidArgument), ("not-an-id", Code::NotFound)] {
        let request = pb::UpdateDraftRequest { draft_id: draft_id.into(), ..Default::default() };
        assert_eq!(customize(&channel).update_draft(authed(&token, request)).await.unwrap_err().code(), code);
    }
    let err = customize(&channel)
        .create_draft(authed(
            &token,
            pb::CreateDraftRequest { product_id: "a4-flyer".into(), quantity: -1, ..Default::default() },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn copy_fitting_fits_shrinks_or_says_how_much_to_cut() {
    let core = TestCore::builder().in_process().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let draft = create_draft(&channel, &token, "classic-business-card", CARD).await.draft.unwrap();

    // Fits at full size, and shrinks when longer: both valid and printed whole.
    for company in ["Keller", "Keller Architects & Partners"] {
        let mut pairs: Vec<(&str, &str)> = CARD.iter().copied().filter(|(k, _)| *k != "company").collect();
        pairs.push(("company", company));
        let created = create_draft(&channel, &token, "classic-business-card", &pairs).await;
        assert!(created.field_errors.is_empty(), "{company}: {:?}", created.field_errors);
        let pdf = finalize_pdf(&core, &channel, &token, &created.draft.unwrap().id).await;
        // The template prints the company in capitals.
        assert!(pdf_text(&pdf).contains(&company.to_uppercase()), "{company} is printed whole");
    }

    // Within the field's 36 characters, but too wide for the box even at the smallest size: a
    // field error that says how much to cut.
    let wide = "W".repeat(36);
    let updated = update_draft(&channel, &token, &draft.id, &[("name", &wide)]).await;
    assert_eq!(errors(&updated.field_errors), vec![("name".to_string(), pb::FieldErrorCode::DoesNotFit)]);
    let message = &updated.field_errors[0].message;
    assert!(message.contains("too long to fit, shorten it by about"), "{message}");
    let cut: usize = message.split_whitespace().filter_map(|w| w.parse().ok()).next().expect("a number");
    assert!(cut > 0 && cut < wide.len(), "{message}");
    assert_eq!(updated.draft.unwrap().state(), pb::DraftState::Editing);
    let err = customize(&channel)
        .finalize_draft(authed(&token, pb::FinalizeDraftRequest { draft_id: draft.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("name"), "{}", err.message());
    update_draft(&channel, &token, &draft.id, &[("name", "Anna Keller")]).await;

    // Characters no shipped font has are refused by name; scripts the fonts cover are printed.
    let updated = update_draft(&channel, &token, &draft.id, &[("company", "Keller \u{1F600}")]).await;
    assert_eq!(errors(&updated.field_errors), vec![("company".to_string(), pb::FieldErrorCode::UnsupportedCharacter)]);
    assert!(updated.field_errors[0].message.contains("U+1F600"), "{}", updated.field_errors[0].message);
    for script in ["Zoë Ångström-Çelik", "\u{5e9}\u{5dc}\u{5d5}\u{5dd} Keller", "\u{645}\u{631}\u{62d}\u{628}\u{627}"]
    {
        let updated = update_draft(&channel, &token, &draft.id, &[("company", script)]).await;
        assert!(updated.field_errors.is_empty(), "{script}: {:?}", updated.field_errors);
    }
}

/// Finalizes a draft and returns the PDF bytes the printer will get, checking the reported digest.
async fn finalize_pdf(core: &TestCore, channel: &Channel, token: &str, draft_id: &str) -> Vec<u8> {
    let finalized = customize(channel)
        .finalize_draft(authed(token, pb::FinalizeDraftRequest { draft_id: draft_id.into() }))
        .await
        .expect("FinalizeDraft succeeds")
        .into_inner();
    let file = finalized.print_file.unwrap();
    assert_eq!(finalized.draft.unwrap().state(), pb::DraftState::Finalized);
    let services = core.services();
    let session = services.sessions.authenticate(token).await.unwrap();
    let bytes = services.customization.print_file_bytes(&session, &file.file_id).await.unwrap();
    assert_eq!(bytes.len() as i64, file.size_bytes);
    assert_eq!(sha256_hex(&bytes), file.sha256, "the reported SHA-256 is the file's");
    assert_eq!(file.content_type, "application/pdf");
    bytes.to_vec()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a poppler tool on a PDF and returns its standard output.
fn pdf_text(pdf: &[u8]) -> String {
    poppler("pdftotext", &["-layout"], pdf)
}

/// A box from `pdfinfo -box` ("TrimBox: x0 y0 x1 y1") as width and height in millimetres.
fn pdf_box_mm(info: &str, name: &str) -> (f64, f64) {
    let line = info.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing:\n{info}"));
    let n: Vec<f64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let mm = |pt: f64| pt * 25.4 / 72.0;
    (mm(n[2] - n[0]), mm(n[3] - n[1]))
}

fn close(a: (f64, f64), b: (f64, f64)) -> bool {
    (a.0 - b.0).abs() < 0.2 && (a.1 - b.1).abs() < 0.2
}

#[tokio::test]
async fn previews_and_print_ready_pdfs_come_from_the_same_document() {
    let core = TestCore::builder().in_process().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let draft = create_draft(&channel, &token, "classic-business-card", CARD).await.draft.unwrap();

    let preview = customize(&channel)
        .render_preview(authed(
            &token,
            pb::RenderPreviewRequest { draft_id: draft.id.clone(), width_px: 600, page_numbers: vec![] },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.page_count, 2);
    assert_eq!(preview.pages.iter().map(|p| p.page_number).collect::<Vec<_>>(), [1, 2]);
    for page in &preview.pages {
        assert_eq!(page.content_type, "image/png");
        let size = imagesize::blob_size(&page.data).unwrap();
        assert_eq!((size.width as i32, size.height as i32), (page.width_px, page.height_px));
        assert_eq!(page.width_px, 600);
        // The preview shows the finished piece: 85 x 55 mm, trimmed.
        let expected = 600.0 * 55.0 / 85.0;
        assert!((page.height_px as f64 - expected).abs() <= 1.0, "height {}", page.height_px);
    }
    let one = customize(&channel)
        .render_preview(authed(
            &token,
            pb::RenderPreviewRequest { draft_id: draft.id.clone(), width_px: 5000, page_numbers: vec![2] },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.pages.len(), 1);
    assert_eq!((one.pages[0].page_number, one.pages[0].width_px), (2, 2000), "width is capped");
    let err = customize(&channel)
        .render_preview(authed(
            &token,
            pb::RenderPreviewRequest { draft_id: draft.id.clone(), width_px: 300, page_numbers: vec![3] },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let pdf = finalize_pdf(&core, &channel, &token, &draft.id).await;
    assert!(pdf.starts_with(b"%PDF-"));
    let info = poppler("pdfinfo", &["-box"], &pdf);
    assert!(info.lines().any(|l| l.starts_with("Pages:") && l.ends_with(" 2")), "{info}");
    assert!(close(pdf_box_mm(&info, "TrimBox:"), (85.0, 55.0)), "trim size:\n{info}");
    assert!(close(pdf_box_mm(&info, "BleedBox:"), (91.0, 61.0)), "bleed:\n{info}");
    let media = pdf_box_mm(&info, "MediaBox:");
    assert!(media.0 > 91.0 && media.1 > 61.0, "crop marks need room outside the bleed:\n{info}");

    let fonts = poppler("pdffonts", &[], &pdf);
    let rows: Vec<&str> = fonts.lines().skip(2).collect();
    assert!(!rows.is_empty(), "{fonts}");
    for row in rows {
        let columns: Vec<&str> = row.split_whitespace().collect();
        let n = columns.len();
        assert_eq!(
            &columns[n - 5..n - 2],
            ["yes", "yes", "yes"],
            "every font embedded, subset, with unicode map: {row}"
        );
    }
    let text = pdf_text(&pdf);
    for (id, value) in CARD.iter().filter(|(id, _)| !["address", "card_colour"].contains(id)) {
        let printed = if *id == "company" { value.to_uppercase() } else { value.to_string() };
        assert!(text.contains(&printed), "{printed:?} missing from the PDF text:\n{text}");
    }
    assert!(!text.contains("PREVIEW"), "the watermark is for previews only");

    // Finalizing again without changes hands out the same file.
    let again = finalize_pdf(&core, &channel, &token, &draft.id).await;
    assert_eq!(again, pdf);
}

#[tokio::test]
async fn static_products_print_their_shipped_pdf_through_a_draft() {
    let core = TestCore::builder().in_process().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let created = create_draft(&channel, &token, "open-closed-door-sign", &[]).await;
    assert!(created.field_errors.is_empty());
    let draft = created.draft.unwrap();
    assert_eq!(draft.state(), pb::DraftState::Valid);
    let preview = customize(&channel)
        .render_preview(authed(
            &token,
            pb::RenderPreviewRequest { draft_id: draft.id.clone(), width_px: 300, page_numbers: vec![] },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.pages.len(), 2);
    let pdf = finalize_pdf(&core, &channel, &token, &draft.id).await;
    let shipped = std::fs::read(storefront().join("products/open-closed-door-sign/document.pdf")).unwrap();
    assert_eq!(pdf, shipped, "a static product prints exactly its shipped file");
}

#[tokio::test]
async fn values_are_data_never_markup() {
    let core = TestCore::builder().in_process().await.unwrap();
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let injection = r#"</text><image href="file:///etc/passwd"/>"#;
    let flyer = [
        ("headline", "Grand Opening"),
        ("price", "12.50"),
        ("event_date", "2027-03-14"),
        ("venue", "Market Hall"),
        ("body", injection),
        ("contact", "{{theme}} &amp; <b>"),
    ];
    let created = create_draft(&channel, &token, "a4-flyer", &flyer).await;
    assert!(created.field_errors.is_empty(), "{:?}", created.field_errors);
    let draft = created.draft.unwrap();
    let preview = customize(&channel)
        .render_preview(authed(
            &token,
            pb::RenderPreviewRequest { draft_id: draft.id.clone(), width_px: 200, page_numbers: vec![] },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(preview.pages.len(), 1);
    let pdf = finalize_pdf(&core, &channel, &token, &draft.id).await;
    let text: String = pdf_text(&pdf).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains(injection), "the markup is printed literally:\n{text}");
    assert!(text.contains("{{theme}} &amp; <b>"), "placeholders in values are not substituted:\n{text}");
    assert!(!text.contains("root:"), "no file was read");
}

#[tokio::test]
async fn one_session_never_reaches_another_sessions_drafts() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let alice = start_session(&channel, "mfd-lobby").await;
    let bob = start_session(&channel, "mfd-lobby").await;
    let draft = create_draft(&channel, &alice, "classic-business-card", CARD).await.draft.unwrap();

    let err = customize(&channel)
        .update_draft(authed(&bob, pb::UpdateDraftRequest { draft_id: draft.id.clone(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = customize(&channel)
        .render_preview(authed(&bob, pb::RenderPreviewRequest { draft_id: draft.id.clone(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = customize(&channel)
        .finalize_draft(authed(&bob, pb::FinalizeDraftRequest { draft_id: draft.id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Alice still has it.
    let request = pb::UpdateDraftRequest { draft_id: draft.id.clone(), ..Default::default() };
    customize(&channel).update_draft(authed(&alice, request)).await.unwrap();
}

fn storefront() -> PathBuf {
    server::config::default_storefront_dir()
}

/// Golden previews: `UPDATE_GOLDENS=1 cargo test -p tests --test e2e golden` rewrites them.
#[tokio::test]
async fn previews_match_their_golden_images() {
    let core = TestCore::start().await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-lobby").await;
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("classic-business-card", CARD),
        (
            "a6-postcard",
            &[
                ("picture", "seaside"),
                ("greeting", "Greetings from"),
                ("place", "Lake Constance"),
                ("message", "Dear Grandma,\nthe lake is beautiful.\nSee you soon!"),
                ("sender", "Mia"),
            ],
        ),
        (
            "a4-flyer",
            &[
                ("headline", "Grand Opening"),
                ("subheadline", "Bakery & Café"),
                ("price", "12.50"),
                ("event_date", "2027-03-14"),
                ("venue", "Market Hall"),
                ("show_offer", "yes"),
                ("offer_text", "Free coffee all day"),
            ],
        ),
    ];
    let update = std::env::var_os("UPDATE_GOLDENS").is_some();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("goldens");
    for (product, pairs) in cases {
        let created = create_draft(&channel, &token, product, pairs).await;
        assert!(created.field_errors.is_empty(), "{product}: {:?}", created.field_errors);
        let draft = created.draft.unwrap();
        let preview = customize(&channel)
            .render_preview(authed(
                &token,
                pb::RenderPreviewRequest { draft_id: draft.id, width_px: 400, page_numbers: vec![] },
            ))
            .await
            .unwrap()
            .into_inner();
        for page in preview.pages {
            let path = dir.join(format!("{product}-page-{}.png", page.page_number));
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &page.data).unwrap();
                continue;
            }
            let golden = std::fs::read(&path)
                .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_GOLDENS=1 to create it", path.display()));
            let (expected, actual) = (decode(&golden), decode(&page.data));
            assert_eq!((expected.0, expected.1), (actual.0, actual.1), "{product} page {} size", page.page_number);
            let diff = difference(&expected.2, &actual.2);
            if diff.mean > 1.0 || diff.changed > 0.005 {
                let out = artifacts().join(format!("{product}-page-{}.actual.png", page.page_number));
                std::fs::write(&out, &page.data).unwrap();
                panic!(
                    "{product} page {} differs from its golden (mean {:.2}, {:.2}% of pixels); actual saved to {}",
                    page.page_number,
                    diff.mean,
                    diff.changed * 100.0,
                    out.display()
                );
            }
        }
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Width, height and RGBA pixels of a PNG.
fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(png_bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

struct Difference {
    /// Mean absolute difference per channel, 0 to 255.
    mean: f64,
    /// Share of pixels where some channel differs by more than 16.
    changed: f64,
}

fn difference(a: &[u8], b: &[u8]) -> Difference {
    let total: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    let changed =
        a.chunks(4).zip(b.chunks(4)).filter(|(p, q)| p.iter().zip(*q).any(|(x, y)| x.abs_diff(*y) > 16)).count();
    Difference { mean: total as f64 / a.len() as f64, changed: changed as f64 / (a.len() / 4) as f64 }
}
