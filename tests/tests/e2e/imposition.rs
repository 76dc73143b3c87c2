//! Print production at the device, end to end: products step-and-repeated onto the sheets a
//! real IPP printer (`ippeveprinter`) says it has loaded, two-sided where it duplexes and with the
//! backs on sheets of their own where it does not; PlanJob's layout and sheet images; a poster
//! larger than every sheet printed only when the person asks to fit it. PlanJob's errors are in
//! `conformance::print`.

use std::time::Duration;

use proto::v1 as pb;
use proto::v1::customization_service_client::CustomizationServiceClient;
use proto::v1::print_service_client::PrintServiceClient;
use tests::client::{authed, start_session};
use tests::core::TestCore;
use tests::ipp::TestPrinter;
use tests::pdf::pdfinfo;
use tonic::Code;
use tonic::transport::Channel;

const CARD: &[(&str, &str)] =
    &[("initials", "AK"), ("company", "Keller Architects"), ("name", "Anna Keller"), ("email", "anna@keller.de")];
const POSTER: &[(&str, &str)] = &[("headline", "Summer Fair"), ("event_date", "2027-06-12"), ("venue", "Town Hall")];
const MM_PER_PT: f64 = 25.4 / 72.0;

/// A core whose device `mfd-ipp` is the printer at `uri`.
async fn core_for(uri: &str) -> (TestCore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("devices.toml");
    std::fs::write(
        &file,
        format!(
            "[[device]]\nid = \"mfd-ipp\"\ndisplay_name = \"Test printer\"\nmodel = \"ippeveprinter\"\n\
             delivery = \"ipp_push\"\nprinter_uri = \"{uri}\"\n"
        ),
    )
    .unwrap();
    let core = TestCore::builder().devices_file(&file).job_poll(Duration::from_millis(100)).spawn().await.unwrap();
    (core, dir)
}

fn print(channel: &Channel) -> PrintServiceClient<Channel> {
    PrintServiceClient::new(channel.clone())
}

/// A draft of `product` (with the card's values when it has fields of that name).
async fn draft(channel: &Channel, token: &str, product: &str, values: &[(&str, &str)]) -> String {
    let mut customize = CustomizationServiceClient::new(channel.clone());
    let values = values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let request = pb::CreateDraftRequest { product_id: product.into(), quantity: 0, values };
    customize.create_draft(authed(token, request)).await.unwrap().into_inner().draft.unwrap().id
}

async fn finalize(channel: &Channel, token: &str, draft_id: &str) {
    let request = authed(token, pb::FinalizeDraftRequest { draft_id: draft_id.into() });
    CustomizationServiceClient::new(channel.clone()).finalize_draft(request).await.unwrap();
}

fn plan_request(draft_id: &str, copies: i32) -> pb::PlanJobRequest {
    pb::PlanJobRequest {
        document: Some(pb::plan_job_request::Document::DraftId(draft_id.into())),
        copies,
        ..Default::default()
    }
}

fn submit(draft_id: &str, copies: i32) -> pb::SubmitJobRequest {
    pb::SubmitJobRequest {
        document: Some(pb::submit_job_request::Document::DraftId(draft_id.into())),
        copies,
        ..Default::default()
    }
}

/// Submits, follows the job to its end, and returns it with the document the printer kept.
async fn print_and_fetch(
    channel: &Channel,
    token: &str,
    printer: &TestPrinter,
    request: pb::SubmitJobRequest,
) -> (pb::Job, Vec<u8>) {
    let job = print(channel).submit_job(authed(token, request)).await.unwrap().into_inner().job.unwrap();
    let watch = authed(token, pb::WatchJobRequest { job_id: job.id.clone() });
    let mut stream = print(channel).watch_job(watch).await.unwrap().into_inner();
    let mut last = job.clone();
    while let Some(message) =
        tokio::time::timeout(Duration::from_secs(60), stream.message()).await.expect("the job ends").unwrap()
    {
        last = message.job.unwrap();
    }
    assert_eq!(last.state(), pb::JobState::Completed, "{last:?}\n{}", printer.log());
    let kept = printer.wait_for_job_file(&job.device_job_id, 1, Duration::from_secs(10)).await.unwrap();
    (last, kept.bytes)
}

fn assert_sheet(info: tests::pdf::PdfInfo, width_mm: f64, height_mm: f64) {
    let (w, h) = (info.width_pt * MM_PER_PT, info.height_pt * MM_PER_PT);
    assert!((w - width_mm).abs() < 0.5 && (h - height_mm).abs() < 0.5, "a {width_mm} × {height_mm} mm sheet: {info:?}");
}

#[tokio::test]
async fn business_cards_print_imposed_two_sided_on_an_a4_duplex_printer() {
    let printer = TestPrinter::builder().loaded(&[("iso_a4_210x297mm", "tray-1")]).start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri).await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;

    let caps = print(&channel).get_printer_capabilities(authed(&token, pb::GetPrinterCapabilitiesRequest {})).await;
    let ready = caps.unwrap().into_inner().capabilities.unwrap().media_ready;
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!((ready[0].keyword.as_str(), ready[0].source.as_str()), ("iso_a4_210x297mm", "tray-1"));
    assert!((ready[0].margin_mm - 5.0).abs() < 0.01, "the printer's margins are read: {ready:?}");

    let card = draft(&channel, &token, "classic-business-card", CARD).await;
    let mut request = plan_request(&card, 100);
    request.preview_width_px = 300;
    let plan = print(&channel).plan_job(authed(&token, request)).await.unwrap().into_inner();
    let layout = plan.layout.unwrap();
    let sheet = layout.sheet.clone().unwrap();
    assert!(layout.imposed);
    assert_eq!((sheet.display_name.as_str(), sheet.source.as_str()), ("A4", "tray-1"), "{layout:?}");
    assert!(layout.pieces_per_sheet >= 8, "85 × 55 mm cards with bleed fill an A4 sheet: {layout:?}");
    let sheets = 100_u32.div_ceil(layout.pieces_per_sheet as u32) as i32;
    assert_eq!((layout.pieces, layout.sheet_count), (100, sheets), "{layout:?}");
    let expected_sides = if layout.rotated { pb::Sides::TwoSidedShortEdge } else { pb::Sides::TwoSidedLongEdge };
    assert_eq!(layout.sides(), expected_sides, "two-sided, turned so the backs stay upright: {layout:?}");
    assert!(!layout.backs_on_separate_sheets);
    assert_eq!(layout.sheets_one_per_sheet, 100, "one card per sheet would take a sheet per card");
    assert_eq!(layout.scale, 1.0);

    // The sheet images: front and back of the first sheet, as wide as asked, A4-shaped.
    assert_eq!(plan.sheet_previews.len(), 2, "front and back");
    for (n, image) in plan.sheet_previews.iter().enumerate() {
        assert_eq!((image.page_number, image.content_type.as_str()), (n as i32 + 1, "image/png"));
        assert_eq!(image.width_px, 300);
        let ratio = f64::from(image.height_px) / f64::from(image.width_px);
        assert!((ratio - 297.0 / 210.0).abs() < 0.02, "A4-shaped: {}×{}", image.width_px, image.height_px);
        let decoded = image::load_from_memory(&image.data).expect("a PNG").to_rgb8();
        assert_eq!((decoded.width(), decoded.height()), (image.width_px as u32, image.height_px as u32));
        let inked = decoded.pixels().filter(|p| p.0.iter().any(|&c| c < 245)).count();
        let share = inked as f64 / decoded.pixels().len() as f64;
        assert!(share > 0.02, "the sheet shows its cards, not blank paper ({:.1}% inked)", share * 100.0);
    }

    // Printed: the printer gets the imposed sheets once, front and back of each.
    finalize(&channel, &token, &card).await;
    let (job, document) = print_and_fetch(&channel, &token, &printer, submit(&card, 100)).await;
    assert_eq!(job.copies, 100, "copies are the cards the person ordered");
    assert_eq!(job.layout.as_ref(), Some(&layout), "the job prints as planned");
    assert_eq!(job.media, "iso_a4_210x297mm");
    let info = pdfinfo(&document);
    assert_eq!(info.pages, 2 * sheets as u32, "front and back of {sheets} sheets");
    // Progress counts printed sides of sheets: 100 two-page cards are 2 × {sheets}, not 200.
    assert_eq!(job.pages_total, 2 * sheets, "what pages_printed counts up to");
    assert_sheet(info, 210.0, 297.0);
}

#[tokio::test]
async fn a_letter_simplex_printer_gets_the_backs_on_separate_sheets() {
    let printer = TestPrinter::builder().loaded(&[("na_letter_8.5x11in", "main")]).duplex(false).start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri).await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;

    let postcard = draft(&channel, &token, "a6-postcard", &[("place", "Lake Constance")]).await;
    let plan = print(&channel).plan_job(authed(&token, plan_request(&postcard, 25))).await.unwrap().into_inner();
    let layout = plan.layout.unwrap();
    assert_eq!(layout.sheet.as_ref().unwrap().keyword, "na_letter_8.5x11in");
    assert_eq!(layout.sides(), pb::Sides::OneSided, "the printer cannot print two-sided");
    assert!(layout.backs_on_separate_sheets);
    assert!(plan.sheet_previews.is_empty(), "no images unless asked for");
    let batches = 25_u32.div_ceil(layout.pieces_per_sheet as u32) as i32;
    assert_eq!(layout.sheet_count, 2 * batches, "a sheet of fronts and a sheet of backs per batch: {layout:?}");

    let finalized = CustomizationServiceClient::new(channel.clone())
        .finalize_draft(authed(&token, pb::FinalizeDraftRequest { draft_id: postcard.clone() }))
        .await;
    if let Err(err) = finalized {
        panic!("the sample postcard finalizes with its defaults: {err:?}");
    }
    let (job, document) = print_and_fetch(&channel, &token, &printer, submit(&postcard, 25)).await;
    assert_eq!(job.sides(), pb::Sides::OneSided);
    let info = pdfinfo(&document);
    assert_eq!(info.pages, layout.sheet_count as u32);
    assert_eq!(job.pages_total, layout.sheet_count, "one side of every sheet, backs on sheets of their own");
    assert_sheet(info, 215.9, 279.4);
}

#[tokio::test]
async fn a_poster_larger_than_every_sheet_prints_only_when_fitted() {
    let printer = TestPrinter::builder().loaded(&[("iso_a4_210x297mm", "tray-1")]).start().await.unwrap();
    let (core, _dir) = core_for(&printer.uri).await;
    let channel = core.channel().await;
    let token = start_session(&channel, "mfd-ipp").await;
    let poster = draft(&channel, &token, "a3-event-poster", POSTER).await;

    let err = print(&channel).plan_job(authed(&token, plan_request(&poster, 2))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("297") && err.message().contains("fit"), "names the sizes and the way out: {err:?}");
    finalize(&channel, &token, &poster).await;
    let err = print(&channel).submit_job(authed(&token, submit(&poster, 2))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "nothing is printed scaled unless asked: {err:?}");

    let fitted = pb::PlanJobRequest { fit_to_sheet: true, ..plan_request(&poster, 2) };
    let layout = print(&channel).plan_job(authed(&token, fitted)).await.unwrap().into_inner().layout.unwrap();
    assert!(layout.scale < 1.0 && layout.scale > 0.5, "scaled down to A4: {layout:?}");
    assert_eq!((layout.pieces_per_sheet, layout.sheet_count), (1, 2));
    let request = pb::SubmitJobRequest { fit_to_sheet: true, ..submit(&poster, 2) };
    let (_, document) = print_and_fetch(&channel, &token, &printer, request).await;
    let info = pdfinfo(&document);
    assert_eq!(info.pages, 2);
    assert_sheet(info, 210.0, 297.0);
}
