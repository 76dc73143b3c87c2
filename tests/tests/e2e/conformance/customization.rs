//! CustomizationService as customization.proto documents it: forms, drafts and their argument
//! checks and limits, field kinds (TAB and control characters), previews in every draft state,
//! and print files (what FinalizeDraft reports is what the printer gets, page boxes included;
//! an uploaded PDF printed byte for byte, and every upload rule).

use std::time::{SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use sha2::Digest as _;

use proto::v1 as pb;
use tonic::Code;

use super::*;

use pb::FieldErrorCode as E;

fn errors(list: &[pb::FieldError]) -> Vec<(String, E)> {
    list.iter().map(|e| (e.field_id.clone(), e.code())).collect()
}

fn update(draft_id: &str, pairs: &[(&str, &str)]) -> pb::UpdateDraftRequest {
    pb::UpdateDraftRequest { draft_id: draft_id.into(), values: values(pairs), ..Default::default() }
}

fn preview(draft_id: &str, width_px: i32, page_numbers: &[i32]) -> pb::RenderPreviewRequest {
    pb::RenderPreviewRequest { draft_id: draft_id.into(), width_px, page_numbers: page_numbers.to_vec() }
}

async fn try_preview(
    conf: &Conf,
    request: pb::RenderPreviewRequest,
) -> Result<pb::RenderPreviewResponse, tonic::Status> {
    conf.customize().render_preview(conf.req(request)).await.map(tonic::Response::into_inner)
}

async fn form(conf: &Conf, product: &str) -> pb::Form {
    let response = conf.customize().get_form(conf.req(pb::GetFormRequest { product_id: product.into() })).await;
    response.expect("GetForm succeeds").into_inner().form.expect("a form")
}

fn now_seconds() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn every_form_is_consistent_with_its_own_references() {
    let conf = Conf::start().await;
    let page = conf
        .catalog()
        .list_products(conf.req(pb::ListProductsRequest { page_size: 100, ..Default::default() }))
        .await
        .expect("ListProducts")
        .into_inner();
    for summary in page.products {
        let form = form(&conf, &summary.id).await;
        let id = &summary.id;
        assert_eq!(&form.product_id, id);
        if summary.kind() == pb::ProductKind::Static {
            assert!(form.fields.is_empty(), "{id}: a static product's form has no fields");
        }
        let section_ids: Vec<&str> = form.sections.iter().map(|s| s.id.as_str()).collect();
        let field_ids: Vec<&str> = form.fields.iter().map(|f| f.id.as_str()).collect();
        let mut unique = field_ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), field_ids.len(), "{id}: field ids are unique");
        for field in &form.fields {
            let f = &field.id;
            assert!(!f.is_empty() && f.len() <= 128, "{id}.{f}: an opaque id of at most 128 characters");
            assert_ne!(field.r#type(), pb::FieldType::Unspecified, "{id}.{f}");
            assert!(field.section_id.is_empty() || section_ids.contains(&field.section_id.as_str()), "{id}.{f}");
            if let Some(condition) = &field.visible_when {
                assert!(field_ids.contains(&condition.field_id.as_str()), "{id}.{f}: visible_when names a field");
            }
            if field.r#type() == pb::FieldType::Choice {
                let options: Vec<&str> = field.options.iter().map(|o| o.value.as_str()).collect();
                assert!(!options.is_empty(), "{id}.{f}: a CHOICE has options");
                let mut distinct = options.clone();
                distinct.sort();
                distinct.dedup();
                assert_eq!(distinct.len(), options.len(), "{id}.{f}: option values are unique");
                assert!(
                    field.default_value.is_empty() || options.contains(&field.default_value.as_str()),
                    "{id}.{f}: the default is an option"
                );
                for option in &field.options {
                    let swatch = &option.swatch_color;
                    assert!(
                        swatch.is_empty()
                            || (swatch.len() == 7
                                && swatch.starts_with('#')
                                && swatch[1..].chars().all(|c| c.is_ascii_hexdigit())),
                        "{id}.{f}: swatch {swatch:?} is #RRGGBB"
                    );
                }
            }
            assert!(field.min_length >= 0 && field.max_length >= 0 && field.max_lines >= 0, "{id}.{f}");
        }
    }
}

#[tokio::test]
async fn a_new_draft_carries_its_product_times_and_the_price_of_its_quantity() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    assert!(!draft.id.is_empty() && draft.id.len() <= 128);
    assert_eq!(draft.product_id, CARD_PRODUCT);
    assert_eq!(draft.state(), pb::DraftState::Valid);
    let (created, updated, expires) =
        (draft.create_time.unwrap(), draft.update_time.unwrap(), draft.expire_time.expect("expire_time"));
    assert!(updated.seconds >= created.seconds);
    assert!(expires.seconds > now_seconds(), "expire_time is in the future");
    // The card shows a price, so its draft has one: for the draft's quantity, never a lower bound.
    let shown = product(&conf, CARD_PRODUCT).await.price.expect("the sample card shows a price");
    let price = draft.price.expect("a draft of a priced product has a price");
    assert_eq!(price.per_quantity, draft.quantity, "the price is for the draft's quantity");
    assert_eq!(price.currency_code, shown.currency_code);
    let expected = shown.amount_minor * i64::from(draft.quantity) / i64::from(shown.per_quantity);
    assert!((price.amount_minor - expected).abs() <= 1, "{} for {} units", price.amount_minor, draft.quantity);
    assert!(!draft.price_is_minimum);
}

#[tokio::test]
async fn create_draft_with_a_negative_quantity_is_invalid_argument() {
    let conf = Conf::start().await;
    expect_status(conf.try_create(CARD_PRODUCT, -1, CARD).await, Code::InvalidArgument, &["quantity"]);
}

#[tokio::test]
async fn create_draft_with_a_quantity_outside_the_rule_is_a_quantity_field_error() {
    let conf = Conf::start().await;
    // The card's quantities are options (50, 100, 250, ...): 75 is none of them.
    let rule = product(&conf, CARD_PRODUCT).await.quantity.expect("a quantity rule");
    assert!(!rule.options.is_empty() && !rule.options.contains(&75));
    let created = conf.try_create(CARD_PRODUCT, 75, CARD).await.expect("not an error of the call");
    assert_eq!(errors(&created.field_errors), vec![(String::new(), E::NotAnOption)]);
    assert!(!created.field_errors[0].message.is_empty());
    let draft = created.draft.unwrap();
    assert_eq!((draft.quantity, draft.state()), (75, pb::DraftState::Editing), "kept, so it can be corrected");
}

#[tokio::test]
async fn create_draft_with_a_key_that_is_no_field_of_the_form_is_invalid_argument() {
    let conf = Conf::start().await;
    let mut pairs = CARD.to_vec();
    pairs.push(("no_such_field", "x"));
    expect_status(conf.try_create(CARD_PRODUCT, 0, &pairs).await, Code::InvalidArgument, &["no_such_field"]);
}

#[tokio::test]
async fn create_draft_with_more_than_256_values_is_invalid_argument() {
    let conf = Conf::start().await;
    let keys: Vec<String> = (0..257).map(|i| format!("field_{i}")).collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "x")).collect();
    expect_status(conf.try_create(CARD_PRODUCT, 0, &pairs).await, Code::InvalidArgument, &[]);
}

#[tokio::test]
async fn a_value_longer_than_8_kib_is_invalid_argument_in_create_and_update_draft() {
    let conf = Conf::start().await;
    let at_limit = "a".repeat(8 * 1024);
    let over = "a".repeat(8 * 1024 + 1);
    // 8 KiB exactly is no error of the call (it breaks the field's own max_length instead).
    let created = conf.try_create(CARD_PRODUCT, 0, &[("address", &at_limit)]).await.expect("8,192 bytes are allowed");
    let draft = created.draft.unwrap();
    assert!(errors(&created.field_errors).contains(&("address".into(), E::TooLong)));
    expect_status(conf.try_create(CARD_PRODUCT, 0, &[("address", &over)]).await, Code::InvalidArgument, &["address"]);
    // In UTF-8 bytes, not characters: 2,731 three-byte characters are 8,193 bytes.
    let wide = "€".repeat(2731);
    expect_status(conf.try_create(CARD_PRODUCT, 0, &[("address", &wide)]).await, Code::InvalidArgument, &["address"]);
    expect_status(conf.try_update(update(&draft.id, &[("address", &over)])).await, Code::InvalidArgument, &["address"]);
}

#[tokio::test]
async fn create_draft_beyond_the_sessions_draft_limit_is_resource_exhausted() {
    // customization.proto: "at least 20; the embedded server allows 30".
    let conf = Conf::start().await;
    for n in 1..=30 {
        conf.try_create(STATIC_PRODUCT, 0, &[]).await.unwrap_or_else(|s| panic!("draft {n} of 30: {s:?}"));
    }
    expect_status(conf.try_create(STATIC_PRODUCT, 0, &[]).await, Code::ResourceExhausted, &[]);
    // The limit is per session.
    let other = conf.new_session().await;
    let request = pb::CreateDraftRequest { product_id: STATIC_PRODUCT.into(), ..Default::default() };
    conf.customize().create_draft(tests::client::authed(&other, request)).await.expect("another session may");
}

#[tokio::test]
async fn update_draft_changes_only_the_named_fields_and_keeps_the_quantity() {
    let conf = Conf::start().await;
    let before = conf.valid_card().await;
    let after = conf.try_update(update(&before.id, &[("company", "Keller & Partner")])).await.expect("UpdateDraft");
    let after = after.draft.unwrap();
    let mut expected = before.values.clone();
    expected.insert("company".into(), "Keller & Partner".into());
    assert_eq!(after.values, expected);
    assert_eq!(after.quantity, before.quantity, "an unset quantity is unchanged");
}

#[tokio::test]
async fn update_draft_reports_every_error_of_the_draft_not_only_the_changed_fields() {
    let conf = Conf::start().await;
    let mut pairs = CARD.to_vec();
    pairs.retain(|(k, _)| *k != "email");
    pairs.push(("email", "anna@"));
    let draft = conf.create(CARD_PRODUCT, &pairs).await.draft.unwrap();
    let updated = conf.try_update(update(&draft.id, &[("company", "Keller Studio")])).await.expect("UpdateDraft");
    assert_eq!(errors(&updated.field_errors), vec![("email".to_string(), E::InvalidFormat)]);
    assert_eq!(updated.draft.unwrap().state(), pb::DraftState::Editing);
}

#[tokio::test]
async fn update_draft_with_quantity_zero_or_negative_is_invalid_argument() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    for quantity in [0, -1] {
        let request =
            pb::UpdateDraftRequest { draft_id: draft.id.clone(), quantity: Some(quantity), ..Default::default() };
        expect_status(conf.try_update(request).await, Code::InvalidArgument, &["quantity"]);
    }
}

#[tokio::test]
async fn update_draft_with_a_quantity_outside_the_rule_is_a_quantity_field_error() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let request = pb::UpdateDraftRequest { draft_id: draft.id.clone(), quantity: Some(75), ..Default::default() };
    let updated = conf.try_update(request).await.expect("not an error of the call");
    assert_eq!(errors(&updated.field_errors), vec![(String::new(), E::NotAnOption)]);
    let request = pb::UpdateDraftRequest { draft_id: draft.id.clone(), quantity: Some(250), ..Default::default() };
    let updated = conf.try_update(request).await.expect("UpdateDraft");
    assert!(updated.field_errors.is_empty(), "{:?}", updated.field_errors);
    assert_eq!(updated.draft.unwrap().quantity, 250);
}

#[tokio::test]
async fn update_draft_with_an_unknown_field_in_values_or_clear_field_ids_is_invalid_argument() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    expect_status(
        conf.try_update(update(&draft.id, &[("no_such_field", "x")])).await,
        Code::InvalidArgument,
        &["no_such_field"],
    );
    let clear = pb::UpdateDraftRequest {
        draft_id: draft.id.clone(),
        clear_field_ids: vec!["no_such_field".into()],
        ..Default::default()
    };
    expect_status(conf.try_update(clear).await, Code::InvalidArgument, &["no_such_field"]);
}

#[tokio::test]
async fn update_draft_with_the_same_field_in_values_and_clear_field_ids_is_invalid_argument() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let request = pb::UpdateDraftRequest {
        draft_id: draft.id.clone(),
        values: values(&[("company", "Keller Studio")]),
        clear_field_ids: vec!["company".into()],
        ..Default::default()
    };
    expect_status(conf.try_update(request).await, Code::InvalidArgument, &["company"]);
}

#[tokio::test]
async fn update_draft_with_more_than_256_values_is_invalid_argument() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let keys: Vec<String> = (0..257).map(|i| format!("field_{i}")).collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "x")).collect();
    expect_status(conf.try_update(update(&draft.id, &pairs)).await, Code::InvalidArgument, &[]);
}

#[tokio::test]
async fn clear_field_ids_empties_a_field_instead_of_restoring_its_default() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let form = form(&conf, CARD_PRODUCT).await;
    let colour = form.fields.iter().find(|f| f.id == "card_colour").expect("the card has a colour");
    assert!(!colour.default_value.is_empty(), "a field with a default");
    let request = pb::UpdateDraftRequest {
        draft_id: draft.id.clone(),
        clear_field_ids: vec!["card_colour".into()],
        ..Default::default()
    };
    let updated = conf.try_update(request).await.expect("UpdateDraft");
    let value = updated.draft.unwrap().values.get("card_colour").cloned().unwrap_or_default();
    assert!(value.is_empty(), "no value, not the default {:?}: {value:?}", colour.default_value);
}

#[tokio::test]
async fn update_draft_on_a_finalized_draft_is_failed_precondition() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let finalized = conf.finalize(&draft.id).await;
    let file = finalized.print_file.unwrap();
    let status = expect_status(
        conf.try_update(update(&draft.id, &[("company", "Somebody Else")])).await,
        Code::FailedPrecondition,
        &[],
    );
    assert!(status.message().to_lowercase().contains("draft"), "says what to do: {}", status.message());
    let quantity = pb::UpdateDraftRequest { draft_id: draft.id.clone(), quantity: Some(250), ..Default::default() };
    expect_status(conf.try_update(quantity).await, Code::FailedPrecondition, &[]);
    // Nothing changed: the draft is still FINALIZED with its values, and its file is the same.
    let again = conf.finalize(&draft.id).await;
    let kept = again.draft.unwrap();
    assert_eq!(kept.state(), pb::DraftState::Finalized);
    assert_eq!(kept.values.get("company").map(String::as_str), Some("Keller Architects"));
    assert_eq!(kept.quantity, draft.quantity);
    assert_eq!(again.print_file.unwrap().sha256, file.sha256);
}

#[tokio::test]
async fn a_tab_in_a_one_line_field_is_stored_as_a_space() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let updated = conf
        .try_update(update(&draft.id, &[("company", "Keller\tArchitects")]))
        .await
        .expect("not an error of the call");
    assert!(updated.field_errors.is_empty(), "{:?}", updated.field_errors);
    assert_eq!(updated.draft.unwrap().values.get("company").map(String::as_str), Some("Keller Architects"));
    let created = conf.try_create(CARD_PRODUCT, 0, &[("company", "Keller\tArchitects")]).await.expect("CreateDraft");
    assert_eq!(created.draft.unwrap().values.get("company").map(String::as_str), Some("Keller Architects"));
}

#[tokio::test]
async fn a_tab_in_a_multiline_field_is_stored_as_a_space() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let updated = conf
        .try_update(update(&draft.id, &[("address", "Lindenstrasse\t12\n10969 Berlin")]))
        .await
        .expect("not an error of the call");
    assert!(updated.field_errors.is_empty(), "{:?}", updated.field_errors);
    let kept = updated.draft.unwrap().values.get("address").cloned();
    assert_eq!(kept.as_deref(), Some("Lindenstrasse 12\n10969 Berlin"));
}

#[tokio::test]
async fn a_control_character_is_kept_and_reported_as_unsupported_character() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    // Other control characters, and line breaks in a one-line field, are field errors.
    let cases = [
        ("company", "Keller\u{7}Architects"),
        ("company", "Keller\u{0}"),
        ("company", "Keller\nArchitects"),
        ("phone", "+49 30\r5550"),
        ("address", "Lindenstrasse 12\u{1b}[31m"),
    ];
    for (field, value) in cases {
        let updated = conf.try_update(update(&draft.id, &[(field, value)])).await;
        let updated = updated.unwrap_or_else(|s| panic!("{field} = {value:?} is no error of the call: {s:?}"));
        assert!(
            errors(&updated.field_errors).contains(&(field.to_string(), E::UnsupportedCharacter)),
            "{field} = {value:?}: {:?}",
            updated.field_errors
        );
        let kept = updated.draft.unwrap();
        assert_eq!(kept.values.get(field).map(String::as_str), Some(value), "kept as typed");
        assert_eq!(kept.state(), pb::DraftState::Editing);
        conf.try_update(update(&draft.id, CARD)).await.expect("back to valid");
    }
    // Line breaks are what a multi-line field is for.
    let updated = conf.try_update(update(&draft.id, &[("address", "Lindenstrasse 12\r\n10969 Berlin")])).await;
    assert!(updated.expect("UpdateDraft").field_errors.is_empty());
}

#[tokio::test]
async fn an_unsupported_character_message_does_not_say_shorten() {
    // issue 10, item 4: the fix for a character the fonts lack is another character, not a
    // shorter text.
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let updated = conf.try_update(update(&draft.id, &[("company", "Keller \u{1F600}")])).await.expect("UpdateDraft");
    let error = updated.field_errors.iter().find(|e| e.field_id == "company").expect("an error on company");
    assert_eq!(error.code(), E::UnsupportedCharacter);
    assert!(!error.message.to_lowercase().contains("shorten"), "{}", error.message);
}

/// Renders every page of `draft_id` and checks each page is a real image of the size it says.
async fn renders(conf: &Conf, draft_id: &str, what: &str) -> pb::RenderPreviewResponse {
    let response = try_preview(conf, preview(draft_id, 300, &[])).await;
    let response = response.unwrap_or_else(|s| panic!("a preview of {what} renders: {s:?}"));
    assert!(!response.pages.is_empty() && response.pages.len() as i32 == response.page_count, "{what}");
    for page in &response.pages {
        assert!(["image/png", "image/jpeg"].contains(&page.content_type.as_str()), "{what}: {}", page.content_type);
        let size = imagesize::blob_size(&page.data).expect("an image");
        assert_eq!((size.width as i32, size.height as i32), (page.width_px, page.height_px), "{what}");
    }
    response
}

#[tokio::test]
async fn render_preview_works_for_an_editing_draft_with_missing_values() {
    let conf = Conf::start().await;
    let created = conf.create(CARD_PRODUCT, &[]).await;
    let draft = created.draft.unwrap();
    assert_eq!(draft.state(), pb::DraftState::Editing);
    renders(&conf, &draft.id, "a draft with required fields missing").await;
}

#[tokio::test]
async fn render_preview_works_for_a_value_too_long_for_its_box() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    // Within the field's max_length, too wide for its box even at the smallest size.
    let wide = "W".repeat(36);
    let updated = conf.try_update(update(&draft.id, &[("name", &wide)])).await.expect("UpdateDraft");
    assert_eq!(errors(&updated.field_errors), vec![("name".to_string(), E::DoesNotFit)]);
    renders(&conf, &draft.id, "a value that does not fit").await;
}

#[tokio::test]
async fn render_preview_works_for_characters_the_fonts_lack_and_control_characters() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    for value in ["Keller \u{1F600}", "Keller\u{7}"] {
        let updated = conf.try_update(update(&draft.id, &[("company", value)])).await.expect("UpdateDraft");
        assert_eq!(errors(&updated.field_errors), vec![("company".to_string(), E::UnsupportedCharacter)]);
        renders(&conf, &draft.id, &format!("company = {value:?}")).await;
    }
}

#[tokio::test]
async fn render_preview_works_for_a_finalized_draft() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    conf.finalize(&draft.id).await;
    renders(&conf, &draft.id, "a FINALIZED draft").await;
}

#[tokio::test]
async fn render_preview_with_a_negative_width_is_invalid_argument() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    expect_status(try_preview(&conf, preview(&draft.id, -1, &[])).await, Code::InvalidArgument, &["width_px"]);
}

#[tokio::test]
async fn render_preview_width_zero_is_800_and_below_64_is_64() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    for (asked, expected) in [(0, 800), (1, 64), (63, 64)] {
        let response = try_preview(&conf, preview(&draft.id, asked, &[1])).await.expect("RenderPreview");
        assert_eq!(response.pages[0].width_px, expected, "width_px {asked}");
        let size = imagesize::blob_size(&response.pages[0].data).expect("an image");
        assert_eq!(size.width as i32, expected, "the image is as wide as it says");
    }
}

#[tokio::test]
async fn render_preview_with_a_page_number_out_of_range_is_invalid_argument() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    for pages in [&[0][..], &[-1], &[3], &[1, 3]] {
        let result = try_preview(&conf, preview(&draft.id, 100, pages)).await;
        expect_status(result, Code::InvalidArgument, &["page"]);
    }
}

#[tokio::test]
async fn render_preview_returns_the_pages_asked_in_the_order_asked() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let response = try_preview(&conf, preview(&draft.id, 100, &[2, 1])).await.expect("RenderPreview");
    assert_eq!(response.pages.iter().map(|p| p.page_number).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(response.page_count, 2, "the document's page count, whichever were rendered");
    let one = try_preview(&conf, preview(&draft.id, 100, &[2])).await.expect("RenderPreview");
    assert_eq!((one.pages.len(), one.page_count), (1, 2));
}

#[tokio::test]
async fn finalize_draft_reports_the_draft_finalized_and_a_print_file_as_documented() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let card = product(&conf, CARD_PRODUCT).await;
    let finalized = conf.finalize(&draft.id).await;
    assert_eq!(finalized.draft.unwrap().state(), pb::DraftState::Finalized);
    let file = finalized.print_file.unwrap();
    assert!(!file.file_id.is_empty() && file.file_id.len() <= 128);
    assert_eq!(file.draft_id, draft.id);
    assert_eq!(file.content_type, "application/pdf");
    assert!(file.size_bytes > 0);
    assert_eq!(file.page_count, card.page_count);
    assert!(
        file.sha256.len() == 64 && file.sha256.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "64 lowercase hex digits: {}",
        file.sha256
    );
    assert_eq!(file.trim_size, card.trim_size, "the product's trim size and bleed");
    assert!(file.suggested_copies >= 1);
    assert!(file.expire_time.expect("expire_time").seconds > now_seconds());
}

#[tokio::test]
async fn finalize_draft_again_returns_the_same_print_file() {
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let first = conf.finalize(&draft.id).await.print_file.unwrap();
    let second = conf.finalize(&draft.id).await;
    assert_eq!(second.draft.unwrap().state(), pb::DraftState::Finalized);
    let second = second.print_file.unwrap();
    assert_eq!((second.file_id, second.sha256), (first.file_id, first.sha256));
}

#[tokio::test]
async fn the_printer_gets_exactly_the_document_the_job_reports() {
    // print.proto, Job.document_sha256: a card's imposed sheets; the print file itself for a
    // product whose page is the sheet (PrintLayout.imposed false).
    let conf = Conf::start().await;
    let draft = conf.valid_card().await;
    let file = conf.finalize(&draft.id).await.print_file.unwrap();
    let job = conf.submit(submit_draft(&draft.id)).await;
    assert_eq!(job.file_id, file.file_id);
    let (states, _) = conf.watch(&conf.token, &job.id).await;
    let done = states.last().expect("the job").clone();
    assert_eq!(done.state(), pb::JobState::Completed);
    let spooled = conf.spooled();
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    let bytes = std::fs::read(&spooled[0]).unwrap();
    assert_eq!(sha256_hex(&bytes), done.document_sha256);
    assert!(done.layout.as_ref().is_some_and(|l| l.imposed), "a card is laid out on the sheet: {done:?}");
    assert_ne!(done.document_sha256, file.sha256);

    let (draft, file) = conf.finalized_static().await;
    let job = conf.submit(submit_draft(&draft.id)).await;
    let (states, _) = conf.watch(&conf.token, &job.id).await;
    let done = states.last().expect("the job").clone();
    assert_eq!(done.state(), pb::JobState::Completed);
    assert!(done.layout.as_ref().is_some_and(|l| !l.imposed), "an A4 notice on A4 prints as it is: {done:?}");
    let new: Vec<_> = conf.spooled().into_iter().filter(|p| !spooled.contains(p)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    let bytes = std::fs::read(&new[0]).unwrap();
    assert_eq!((bytes.len() as i64, sha256_hex(&bytes)), (file.size_bytes, file.sha256.clone()));
    assert_eq!(done.document_sha256, file.sha256);
}

/// Values that make a product's draft VALID, from its form only: the example values a person
/// would type for each kind. Products where these are not enough get their own values.
fn values_for(form: &pb::Form) -> Vec<(String, String)> {
    if form.product_id == CARD_PRODUCT {
        return CARD.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }
    let mut out = Vec::new();
    for field in form.fields.iter().filter(|f| f.required && f.default_value.is_empty()) {
        let value = match field.r#type() {
            pb::FieldType::Choice => field.options[0].value.clone(),
            pb::FieldType::Number => field.min_value.unwrap_or(1.0).to_string(),
            pb::FieldType::Email => "ana@example.com".into(),
            pb::FieldType::Phone => "+41 44 123 45 67".into(),
            pb::FieldType::Date => "2027-03-14".into(),
            _ => "Ana".into(),
        };
        out.push((field.id.clone(), value));
    }
    out
}

/// A box from `pdfinfo -box` ("TrimBox: x0 y0 x1 y1") as width and height in millimetres.
fn pdf_box_mm(info: &str, name: &str) -> (f64, f64) {
    let line = info.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} missing:\n{info}"));
    let n: Vec<f64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let mm = |pt: f64| pt * 25.4 / 72.0;
    (mm(n[2] - n[0]), mm(n[3] - n[1]))
}

fn near(a: (f64, f64), b: (f64, f64)) -> bool {
    (a.0 - b.0).abs() < 0.3 && (a.1 - b.1).abs() < 0.3
}

#[tokio::test]
async fn every_print_file_has_the_documented_trim_bleed_and_media_boxes() {
    // customization.proto, PrintFile.trim_size: TrimBox = trim size, BleedBox = trim + bleed on
    // every side, MediaBox = BleedBox or BleedBox + a 10 mm slug on every side. What the
    // printer receives (the spool folder) is checked with poppler's pdfinfo.
    // The file is read in process; what the printer receives is the sheets of the job's layout.
    let conf = Conf::in_process_printing(Duration::from_millis(10)).await;
    let page = conf
        .catalog()
        .list_products(conf.req(pb::ListProductsRequest { page_size: 100, ..Default::default() }))
        .await
        .expect("ListProducts")
        .into_inner();
    let mut checked = Vec::new();
    let mut wrong = Vec::new();
    for summary in page.products {
        let form = form(&conf, &summary.id).await;
        let pairs = values_for(&form);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let created = conf.create(&summary.id, &pairs).await;
        if !created.field_errors.is_empty() {
            continue;
        }
        let draft = created.draft.unwrap();
        let file = conf.finalize(&draft.id).await.print_file.unwrap();
        let session = conf.core.services().sessions.authenticate(&conf.token).await.expect("the session");
        let pdf = conf.core.services().customization.print_file_bytes(&session, &file.file_id).await.expect("the file");
        let before = conf.spooled();
        let job = conf.submit(submit_file(&file.file_id)).await;
        let (states, _) = conf.watch(&conf.token, &job.id).await;
        assert_eq!(states.last().map(|j| j.state()), Some(pb::JobState::Completed), "{}", summary.id);
        let new: Vec<_> = conf.spooled().into_iter().filter(|p| !before.contains(p)).collect();
        assert_eq!(new.len(), 1, "one job, one file: {new:?}");
        let sheet = job.layout.as_ref().and_then(|l| l.sheet.clone()).expect("the job's sheet");
        let printed = tests::pdf::poppler("pdfinfo", &["-box"], &std::fs::read(&new[0]).unwrap());
        if !near(pdf_box_mm(&printed, "MediaBox:"), (sheet.width_mm, sheet.height_mm)) {
            wrong.push(format!("{}: the printer got {printed} instead of {} sheets", summary.id, sheet.display_name));
        }
        let info = tests::pdf::poppler("pdfinfo", &["-box"], &pdf);
        let trim = file.trim_size.expect("trim_size is set");
        let bleed = (trim.width_mm + 2.0 * trim.bleed_mm, trim.height_mm + 2.0 * trim.bleed_mm);
        let slug = (bleed.0 + 20.0, bleed.1 + 20.0);
        let (t, b, m) = (pdf_box_mm(&info, "TrimBox:"), pdf_box_mm(&info, "BleedBox:"), pdf_box_mm(&info, "MediaBox:"));
        if !near(t, (trim.width_mm, trim.height_mm)) || !near(b, bleed) || !(near(m, bleed) || near(m, slug)) {
            wrong.push(format!(
                "{}: trim {trim:?}; TrimBox {t:.1?}, BleedBox {b:.1?} (want {bleed:.1?}), MediaBox {m:.1?} (want {bleed:.1?} or {slug:.1?})",
                summary.id
            ));
        }
        checked.push(summary.id);
    }
    for must in [CARD_PRODUCT, "a3-event-poster", "open-closed-door-sign", STATIC_PRODUCT] {
        assert!(checked.iter().any(|c| c == must), "{must} was checked: {checked:?}");
    }
    assert!(
        wrong.is_empty(),
        "page boxes differ from PrintFile.trim_size (of {} products checked):\n{}",
        checked.len(),
        wrong.join("\n")
    );
}

/// The form's field `id`, which must exist.
fn field<'a>(form: &'a pb::Form, id: &str) -> &'a pb::FormField {
    form.fields.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("{} has no field {id}", form.product_id))
}

#[tokio::test]
async fn a_required_value_of_only_white_space_counts_as_none() {
    let conf = Conf::start().await;
    assert!(field(&form(&conf, CARD_PRODUCT).await, "company").required);
    let draft = conf.valid_card().await;
    let updated = conf.try_update(update(&draft.id, &[("company", "  \u{a0} ")])).await.expect("UpdateDraft");
    assert_eq!(errors(&updated.field_errors), vec![("company".to_string(), E::Required)]);
}

#[tokio::test]
async fn pattern_is_not_checked_on_an_empty_value() {
    let conf = Conf::start().await;
    let website = field(&form(&conf, CARD_PRODUCT).await, "website").clone();
    assert!(!website.pattern.is_empty() && !website.required, "an optional field with a pattern");
    let draft = conf.valid_card().await;
    let updated = conf.try_update(update(&draft.id, &[("website", "")])).await.expect("UpdateDraft");
    assert!(updated.field_errors.is_empty(), "{:?}", updated.field_errors);
    let updated = conf.try_update(update(&draft.id, &[("website", "not a site")])).await.expect("UpdateDraft");
    assert_eq!(errors(&updated.field_errors), vec![("website".to_string(), E::PatternMismatch)]);
}

#[tokio::test]
async fn max_length_counts_characters_not_bytes() {
    let conf = Conf::start().await;
    let max = field(&form(&conf, CARD_PRODUCT).await, "company").max_length as usize;
    assert!(max > 0);
    let draft = conf.valid_card().await;
    // "é" is two bytes in UTF-8: `max` of them are within the limit, one more is not.
    let at_max = "é".repeat(max);
    let updated = conf.try_update(update(&draft.id, &[("company", &at_max)])).await.expect("UpdateDraft");
    assert!(!errors(&updated.field_errors).contains(&("company".into(), E::TooLong)), "{:?}", updated.field_errors);
    let over = "é".repeat(max + 1);
    let updated = conf.try_update(update(&draft.id, &[("company", &over)])).await.expect("UpdateDraft");
    assert!(errors(&updated.field_errors).contains(&("company".into(), E::TooLong)), "{:?}", updated.field_errors);
}

#[tokio::test]
async fn more_lines_than_max_lines_is_too_long() {
    let conf = Conf::start().await;
    let max_lines = field(&form(&conf, CARD_PRODUCT).await, "address").max_lines as usize;
    assert!(max_lines > 0);
    let draft = conf.valid_card().await;
    let lines = vec!["Berlin"; max_lines + 1].join("\n");
    let updated = conf.try_update(update(&draft.id, &[("address", &lines)])).await.expect("UpdateDraft");
    assert_eq!(errors(&updated.field_errors), vec![("address".to_string(), E::TooLong)]);
}

#[tokio::test]
async fn a_field_hidden_by_visible_when_is_not_validated_and_keeps_its_value() {
    let conf = Conf::start().await;
    let flyer = form(&conf, "a4-flyer").await;
    let offer = field(&flyer, "offer_text").clone();
    let condition = offer.visible_when.clone().expect("offer_text is conditional");
    let shown = condition.values[0].clone();
    let base =
        [("headline", "Grand Opening"), ("price", "12.50"), ("event_date", "2027-03-14"), ("venue", "Market Hall")];
    let draft = conf.create("a4-flyer", &base).await.draft.unwrap();
    let too_long = "x".repeat(offer.max_length as usize + 1);
    // Hidden (the controlling field has no showing value): not validated, but kept.
    let hidden =
        conf.try_update(update(&draft.id, &[(&condition.field_id, "no"), ("offer_text", &too_long)])).await.unwrap();
    assert!(hidden.field_errors.is_empty(), "{:?}", hidden.field_errors);
    assert_eq!(hidden.draft.unwrap().values.get("offer_text"), Some(&too_long), "hidden fields keep their values");
    // Shown: validated.
    let visible = conf.try_update(update(&draft.id, &[(&condition.field_id, &shown)])).await.unwrap();
    assert_eq!(errors(&visible.field_errors), vec![("offer_text".to_string(), E::TooLong)]);
}

// UploadPrintFile: a local PDF becomes a print file of the session.

#[tokio::test]
async fn upload_print_file_returns_a_print_file_that_submit_job_prints_byte_for_byte() {
    let conf = Conf::start().await;
    // Three chunks: 2 MiB of padding after a valid PDF's end is still a valid PDF.
    let mut pdf = tests::pdf::pdf(2);
    pdf.extend(std::iter::repeat_n(b'\n', 2 * 1024 * 1024 + 17));
    let mut messages = upload(&pdf);
    messages[0] = metadata(pdf.len() as i64, "flyer.pdf");
    let file = conf.try_upload(messages).await.expect("UploadPrintFile succeeds");
    assert_eq!(file.size_bytes, pdf.len() as i64);
    assert_eq!(file.page_count, 2);
    assert_eq!(file.content_type, "application/pdf");
    assert_eq!(file.display_name, "flyer.pdf");
    assert!(file.draft_id.is_empty() && file.trim_size.is_none(), "an uploaded file has no draft or trim size");
    assert_eq!(file.suggested_copies, 1);
    let sha = sha2::Sha256::digest(&pdf);
    assert_eq!(file.sha256, sha.iter().map(|b| format!("{b:02x}")).collect::<String>());

    let job = conf.submit(submit_file(&file.file_id)).await;
    assert!(job.product_id.is_empty() && job.draft_id.is_empty());
    assert_eq!(job.page_count, 2);
    let (states, _) = conf.watch(&conf.token, &job.id).await;
    assert_eq!(states.last().map(|j| j.state()), Some(pb::JobState::Completed));
    let spooled = conf.spooled();
    assert_eq!(spooled.len(), 1);
    assert_eq!(std::fs::read(&spooled[0]).unwrap(), pdf, "the printer gets the uploaded bytes");
}

#[tokio::test]
async fn upload_print_file_whose_first_message_carries_no_metadata_is_invalid_argument() {
    let conf = Conf::start().await;
    let pdf = tests::pdf::pdf(1);
    expect_status(conf.try_upload(vec![chunk(pdf)]).await, Code::InvalidArgument, &["metadata"]);
    expect_status(conf.try_upload(Vec::new()).await, Code::InvalidArgument, &["metadata"]);
}

#[tokio::test]
async fn upload_print_file_with_metadata_in_a_later_message_is_invalid_argument() {
    let conf = Conf::start().await;
    let pdf = tests::pdf::pdf(1);
    let mut messages = upload(&pdf);
    messages.push(metadata(pdf.len() as i64, ""));
    expect_status(conf.try_upload(messages).await, Code::InvalidArgument, &["metadata"]);
}

#[tokio::test]
async fn upload_print_file_with_size_bytes_below_1_or_above_64_mib_is_invalid_argument() {
    let conf = Conf::start().await;
    for size in [0, -1] {
        expect_status(conf.try_upload(vec![metadata(size, "")]).await, Code::InvalidArgument, &["size_bytes"]);
    }
    let too_big = 64 * 1024 * 1024 + 1;
    expect_status(conf.try_upload(vec![metadata(too_big, "")]).await, Code::InvalidArgument, &["64 MiB"]);
}

#[tokio::test]
async fn upload_print_file_with_a_long_or_control_character_display_name_is_invalid_argument() {
    let conf = Conf::start().await;
    let pdf = tests::pdf::pdf(1);
    for name in ["x".repeat(257), "bad\nname.pdf".to_owned()] {
        let mut messages = upload(&pdf);
        messages[0] = metadata(pdf.len() as i64, &name);
        expect_status(conf.try_upload(messages).await, Code::InvalidArgument, &["display_name"]);
    }
    let mut messages = upload(&pdf);
    messages[0] = metadata(pdf.len() as i64, &"é".repeat(256));
    conf.try_upload(messages).await.expect("256 characters are allowed");
}

#[tokio::test]
async fn upload_print_file_with_a_chunk_above_1_mib_is_invalid_argument() {
    let conf = Conf::start().await;
    let mut pdf = tests::pdf::pdf(1);
    pdf.resize(1024 * 1024 + 1, b'\n');
    let messages = vec![metadata(pdf.len() as i64, ""), chunk(pdf)];
    expect_status(conf.try_upload(messages).await, Code::InvalidArgument, &["chunk"]);
}

#[tokio::test]
async fn upload_print_file_bringing_more_or_fewer_bytes_than_size_bytes_is_invalid_argument() {
    let conf = Conf::start().await;
    let pdf = tests::pdf::pdf(1);
    let mut more = upload(&pdf);
    more[0] = metadata(pdf.len() as i64 - 1, "");
    expect_status(conf.try_upload(more).await, Code::InvalidArgument, &["size_bytes"]);
    let mut fewer = upload(&pdf);
    fewer[0] = metadata(pdf.len() as i64 + 1, "");
    expect_status(conf.try_upload(fewer).await, Code::InvalidArgument, &["size_bytes"]);
}

#[tokio::test]
async fn upload_print_file_of_a_file_that_is_not_a_printable_pdf_is_invalid_argument_saying_why() {
    let conf = Conf::start().await;
    let cases: [(&[u8], &str); 4] = [
        (b"<html>not a pdf</html>", "not a PDF"),
        (b"%PDF-1.7\nthe rest is missing", "unreadable"),
        (&tests::pdf::encrypted_pdf(), "encrypted"),
        (&tests::pdf::pdf(0), "without pages"),
    ];
    for (bytes, why) in cases {
        expect_status(conf.try_upload(upload(bytes)).await, Code::InvalidArgument, &[why]);
    }
}

#[tokio::test]
async fn upload_print_file_beyond_four_files_held_is_resource_exhausted_until_one_is_printed() {
    let conf = Conf::start().await;
    let pdf = tests::pdf::pdf(1);
    let mut files = Vec::new();
    for n in 1..=4 {
        files.push(conf.try_upload(upload(&pdf)).await.unwrap_or_else(|s| panic!("upload {n} of 4: {s:?}")));
    }
    expect_status(conf.try_upload(upload(&pdf)).await, Code::ResourceExhausted, &["uploaded files"]);
    // Printing one releases it when its job ends, which makes room for another.
    let job = conf.submit(submit_file(&files[0].file_id)).await;
    let (states, _) = conf.watch(&conf.token, &job.id).await;
    assert_eq!(states.last().map(|j| j.state()), Some(pb::JobState::Completed));
    conf.try_upload(upload(&pdf)).await.expect("room again after a job ended");
}

#[tokio::test]
async fn upload_print_file_that_does_not_arrive_within_the_request_time_limit_is_deadline_exceeded() {
    let conf = Conf::with(|b| b.request_timeout(Duration::from_millis(500))).await;
    // The stream sends its metadata, then never ends.
    let stalled = futures::stream::iter(vec![metadata(1000, "")]).chain(futures::stream::pending());
    let result = conf.customize().upload_print_file(conf.req(stalled)).await;
    expect_status(result, Code::DeadlineExceeded, &[]);
}

/// An upload of `pdf` on the session `token` that has sent its metadata and waits for the
/// caller to send the bytes; `finish` sends them and returns the answer.
struct UploadInProgress {
    bytes: tokio::sync::mpsc::Sender<pb::UploadPrintFileRequest>,
    answer: tokio::task::JoinHandle<Result<tonic::Response<pb::UploadPrintFileResponse>, Status>>,
}

impl UploadInProgress {
    async fn start(conf: &Conf, token: &str, pdf: &[u8]) -> UploadInProgress {
        let (bytes, rx) = tokio::sync::mpsc::channel(4);
        bytes.send(metadata(pdf.len() as i64, "")).await.unwrap();
        let request = authed(token, tokio_stream::wrappers::ReceiverStream::new(rx));
        let mut client = conf.customize();
        let answer = tokio::spawn(async move { client.upload_print_file(request).await });
        UploadInProgress { bytes, answer }
    }

    async fn finish(self, pdf: &[u8]) -> Result<pb::PrintFile, Status> {
        self.bytes.send(chunk(pdf.to_vec())).await.unwrap();
        drop(self.bytes);
        Ok(self.answer.await.unwrap()?.into_inner().print_file.expect("a print file"))
    }
}

/// Starts an upload on each of `tokens` and probes from `probe` until an upload is refused as
/// busy, which shows that they all hold their slots; returns them and the refusal's message. A
/// probe that gets in fails at once on its oversized chunk and keeps nothing, but holds a slot for
/// that moment: an upload refused meanwhile is started again.
async fn uploads_in_progress(
    conf: &Conf,
    tokens: &[String],
    probe: &str,
    pdf: &[u8],
) -> (Vec<UploadInProgress>, String) {
    let mut uploads = Vec::new();
    for token in tokens {
        uploads.push(UploadInProgress::start(conf, token, pdf).await);
    }
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        for (upload, token) in uploads.iter_mut().zip(tokens) {
            if upload.answer.is_finished() {
                *upload = UploadInProgress::start(conf, token, pdf).await;
            }
        }
        let attempt = vec![metadata(10, ""), chunk(vec![0; 1024 * 1024 + 1])];
        match conf.customize().upload_print_file(authed(probe, upload_stream(attempt))).await {
            Err(status) if status.code() == Code::ResourceExhausted => return (uploads, status.message().to_owned()),
            other => assert!(std::time::Instant::now() < until, "never refused as busy: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn upload_print_file_while_the_session_is_uploading_is_resource_exhausted_until_that_upload_ends() {
    let conf = Conf::start().await;
    let pdf = tests::pdf::pdf(1);
    let (mut first, message) = uploads_in_progress(&conf, std::slice::from_ref(&conf.token), &conf.token, &pdf).await;
    let first = first.pop().unwrap();
    assert!(message.contains("already uploading"), "{message}");
    // Another session is not held up by this one.
    let other = conf.new_session().await;
    let file = conf.customize().upload_print_file(authed(&other, upload_stream(upload(&pdf)))).await;
    file.expect("another session uploads meanwhile");
    first.finish(&pdf).await.expect("the first upload ends well");
    conf.try_upload(upload(&pdf)).await.expect("the session uploads again once its upload ended");
}

#[tokio::test]
async fn upload_print_file_beyond_eight_uploads_in_progress_on_the_server_is_resource_exhausted() {
    let conf = Conf::start().await;
    let pdf = tests::pdf::pdf(1);
    let mut tokens = Vec::new();
    for _ in 0..8 {
        tokens.push(conf.new_session().await);
    }
    let ninth = conf.new_session().await;
    let (mut uploads, message) = uploads_in_progress(&conf, &tokens, &ninth, &pdf).await;
    assert!(message.contains("8 uploads are in progress"), "{message}");
    uploads.pop().unwrap().finish(&pdf).await.expect("an upload in progress ends well");
    let file = conf.customize().upload_print_file(authed(&ninth, upload_stream(upload(&pdf)))).await;
    file.expect("a slot is free again");
    for upload in uploads {
        upload.finish(&pdf).await.expect("every upload in progress ends well");
    }
}
