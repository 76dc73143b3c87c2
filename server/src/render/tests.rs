//! Tests of the rendering engine on a small business-card fixture with the DejaVu fonts in testdata/.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::check::walk;
use super::*;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/render/testdata")
}

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| Fonts::load(&testdata().join("fonts")).expect("test fonts load"))
}

const FRONT: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="91mm" height="61mm" viewBox="0 0 91 61">
  <!-- {{accent}} is replaced by the chosen accent colour -->
  <style>text { font-size: 20px; fill: red; }</style>
  <rect x="0" y="0" width="91" height="61" fill="#ffffff"/>
  <rect x="0" y="0" width="91" height="9" fill="{{accent}}"/>
  <text x="8" y="56" font-family="DejaVu Sans" style="font-size:2.2px;fill:#555555">ACME Corporation</text>
</svg>
"##;

const BACK: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="91mm" height="61mm" viewBox="0 0 91 61">
  <rect x="0" y="0" width="91" height="61" style="fill:{{accent}}"/>
</svg>
"##;

fn text_box(field: &str, page: usize, rect: [f64; 4], size: f64, min: f64) -> TextBox {
    TextBox {
        field: field.into(),
        page,
        x_mm: rect[0],
        y_mm: rect[1],
        width_mm: rect[2],
        height_mm: rect[3],
        font_family: "DejaVu Sans".into(),
        weight: 400,
        italic: false,
        size_pt: size,
        min_size_pt: min,
        color: BoxColor::Fixed("#111111".into()),
        align: Align::Left,
        valign: VAlign::Top,
        line_height: 1.25,
        multiline: false,
        prefix: String::new(),
        uppercase: false,
    }
}

fn card() -> Template {
    let mut name = text_box("name", 0, [8.0, 14.0, 60.0, 7.0], 12.0, 8.0);
    name.weight = 700;
    let title = text_box("title", 0, [8.0, 21.0, 60.0, 5.0], 9.0, 6.0);
    let mut address = text_box("address", 0, [8.0, 28.0, 45.0, 16.0], 8.0, 6.0);
    address.multiline = true;
    let mut phone = text_box("phone", 0, [8.0, 46.0, 50.0, 5.0], 8.0, 6.0);
    phone.prefix = "Tel. ".into();
    let mut slogan = text_box("slogan", 1, [6.0, 25.0, 79.0, 11.0], 14.0, 8.0);
    slogan.align = Align::Center;
    slogan.valign = VAlign::Middle;
    slogan.uppercase = true;
    slogan.color = BoxColor::FromChoice("ink".into());
    Template {
        geometry: PageGeometry { trim_width_mm: 85.0, trim_height_mm: 55.0, bleed_mm: 3.0, crop_marks: false },
        pages: vec![FRONT.into(), BACK.into()],
        boxes: vec![name, title, address, phone, slogan],
    }
}

fn input(texts: &[(&str, &str)]) -> RenderInput {
    let mut choices = HashMap::new();
    choices.insert("accent".to_string(), ChoiceAsset { color: Some("#1f4e9c".into()), image: None });
    choices.insert("ink".to_string(), ChoiceAsset { color: Some("#ffffff".into()), image: None });
    RenderInput { texts: texts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), choices }
}

fn full_input() -> RenderInput {
    input(&[
        ("name", "Jane Doe"),
        ("title", "Head of Printing"),
        ("address", "Hauptstraße 12\n8001 Zürich"),
        ("phone", "+41 44 123 45 67"),
        ("slogan", "We print what you think"),
    ])
}

fn fitted<'a>(document: &'a Document, field: &str) -> &'a FittedText {
    document.fitted().iter().find(|f| f.field == field).expect("field was printed")
}

fn problems(result: Result<Document, ComposeError>) -> Vec<FitProblem> {
    match result {
        Err(ComposeError::Fit(problems)) => problems,
        Err(e) => panic!("internal error: {e}"),
        Ok(d) => panic!("expected fit problems, got {:?}", d.fitted()),
    }
}

/// Every `<text>` of a page: its characters and its box in millimetres (x0, y0, x1, y1).
fn texts(document: &Document, page: usize) -> Vec<(String, [f64; 4])> {
    let tree = &document.pages[page];
    let per_mm = f64::from(tree.size().width()) / document.geometry.page_width_mm();
    let mut out = Vec::new();
    walk(tree.root(), &mut |node| {
        if let usvg::Node::Text(text) = node {
            let s: String = text.chunks().iter().map(|c| c.text()).collect();
            let b = text.abs_bounding_box();
            let r = [b.left(), b.top(), b.right(), b.bottom()].map(|v| f64::from(v) / per_mm);
            out.push((s, r));
        }
    });
    out
}

fn has_image(tree: &usvg::Tree) -> bool {
    let mut found = false;
    walk(tree.root(), &mut |node| found |= matches!(node, usvg::Node::Image(_)));
    found
}

#[test]
fn document_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Document>();
    assert_send_sync::<Fonts>();
}

#[test]
fn fonts_load_only_from_the_folder() {
    assert!(fonts().has_family("DejaVu Sans"));
    assert!(!fonts().has_family("Times New Roman"));
    let empty = tempfile::tempdir().unwrap();
    assert!(Fonts::load(empty.path()).is_err());
}

#[test]
fn short_text_fits_at_full_size() {
    let template = card();
    let document = compose(&template, fonts(), &full_input()).unwrap();
    assert_eq!(document.page_count(), 2);
    assert_eq!(fitted(&document, "name").size_pt, 12.0);
    assert_eq!(fitted(&document, "name").lines, vec!["Jane Doe"]);
    assert_eq!(fitted(&document, "phone").lines, vec!["Tel. +41 44 123 45 67"]);
    assert_eq!(fitted(&document, "slogan").lines, vec!["WE PRINT WHAT YOU THINK"]);
    // The template's stylesheet must not restyle our text: drawn where it was measured.
    for (text, r) in texts(&document, 0) {
        if text.contains("Jane") {
            assert!(r[0] >= 8.0 - 0.05 && r[2] <= 68.0 + 0.05, "{text} at {r:?}");
            assert!(r[1] >= 14.0 - 0.2 && r[3] <= 21.0 + 0.2, "{text} at {r:?}");
        }
    }
}

#[test]
fn blank_values_print_nothing_and_trailing_space_is_dropped() {
    let template = card();
    let mut values = full_input();
    values.texts.insert("title".into(), " \n ".into());
    values.texts.insert("phone".into(), "+41 44 123 45 67 \n".into());
    let document = compose(&template, fonts(), &values).unwrap();
    assert!(document.fitted().iter().all(|f| f.field != "title"));
    assert_eq!(fitted(&document, "phone").lines, vec!["Tel. +41 44 123 45 67"]);
}

#[test]
fn long_text_is_shrunk_in_half_points() {
    let template = card();
    let mut values = full_input();
    values.texts.insert("name".into(), "Maximiliane von Hohenberg".into());
    let document = compose(&template, fonts(), &values).unwrap();
    let size = fitted(&document, "name").size_pt;
    assert!((8.0..12.0).contains(&size), "size {size}");
    assert_eq!((size * 2.0).fract(), 0.0, "0.5 pt steps: {size}");
    // It really fits: the drawn line stays inside the box.
    let (_, r) = texts(&document, 0).into_iter().find(|(t, _)| t.contains("Maximiliane")).unwrap();
    assert!(r[0] >= 7.95 && r[2] <= 68.05, "{r:?}");
    // And one step larger would not have fitted (it is the largest size that fits).
    let mut bigger = template.clone();
    bigger.boxes[0].min_size_pt = size + 0.5;
    assert!(matches!(problems(compose(&bigger, fonts(), &values))[0], FitProblem::TooLong { .. }));
}

#[test]
fn too_long_reports_an_honest_estimate() {
    let template = card();
    let value = "Maximiliane Alexandra Konstanze Friederike von und zu Hohenberg-Wittelsbach";
    let mut values = full_input();
    values.texts.insert("name".into(), value.into());
    let found = problems(compose(&template, fonts(), &values));
    let FitProblem::TooLong { field, shorten_by } = &found[0] else { panic!("{found:?}") };
    assert_eq!(field, "name");
    let n = value.chars().count();
    assert!(*shorten_by > 0 && *shorten_by < n, "{shorten_by}");
    // Cutting that many characters fits; cutting two fewer does not.
    let cut = |k: usize| value.chars().take(n - k).collect::<String>();
    values.texts.insert("name".into(), cut(*shorten_by));
    assert!(compose(&template, fonts(), &values).is_ok());
    values.texts.insert("name".into(), cut(shorten_by - 2));
    assert!(compose(&template, fonts(), &values).is_err());
    assert_eq!(found[0].to_string(), format!("too long to fit, shorten by about {shorten_by} characters"));
}

#[test]
fn too_long_in_a_multiline_box_counts_the_lines_that_do_not_fit() {
    let template = card();
    let value = "Printing Department, Building C, Floor 3, Room 12\nHauptstraße 12\nPostfach 1234\n8001 Zürich\nSwitzerland\nEurope";
    let mut values = full_input();
    values.texts.insert("address".into(), value.into());
    let found = problems(compose(&template, fonts(), &values));
    let FitProblem::TooLong { shorten_by, .. } = found[0] else { panic!("{found:?}") };
    let n = value.chars().count();
    let cut = |k: usize| value.chars().take(n - k).collect::<String>();
    values.texts.insert("address".into(), cut(shorten_by));
    let document = compose(&template, fonts(), &values).unwrap();
    assert_eq!(fitted(&document, "address").size_pt, 6.0);
    values.texts.insert("address".into(), cut(shorten_by - 1));
    assert!(compose(&template, fonts(), &values).is_err());
}

#[test]
fn multiline_boxes_wrap_and_honour_newlines() {
    let template = card();
    let mut values = full_input();
    values
        .texts
        .insert("address".into(), "Printing Department, Building C, Floor 3\nHauptstraße 12\n8001 Zürich".into());
    let document = compose(&template, fonts(), &values).unwrap();
    let address = fitted(&document, "address");
    assert!(address.lines.len() >= 4, "{:?}", address.lines);
    assert_eq!(address.lines[address.lines.len() - 2..], ["Hauptstraße 12", "8001 Zürich"]);
    // Every line lies inside the box.
    let lines: Vec<_> = texts(&document, 0).into_iter().filter(|(t, _)| address.lines.contains(t)).collect();
    assert_eq!(lines.len(), address.lines.len());
    for (t, r) in lines {
        assert!(r[0] >= 7.95 && r[2] <= 53.05 && r[1] >= 27.95 && r[3] <= 44.05, "{t}: {r:?}");
    }
    // Single-line boxes never wrap.
    values.texts.insert("title".into(), "Head of\nPrinting".into());
    let document = compose(&template, fonts(), &values).unwrap();
    assert_eq!(fitted(&document, "title").lines, vec!["Head of Printing"]);
}

#[test]
fn characters_without_a_font_are_reported() {
    let template = card();
    let mut values = full_input();
    values.texts.insert("name".into(), "Jane 🦀 Doe 漢🦀".into());
    let found = problems(compose(&template, fonts(), &values));
    assert_eq!(found, vec![FitProblem::Unsupported { field: "name".into(), chars: vec!['🦀', '漢'] }]);
    // Accents, Greek and Cyrillic are covered by the shipped font.
    values.texts.insert("name".into(), "Ærøskøbing Ελλάδα Москва".into());
    assert!(compose(&template, fonts(), &values).is_ok());
}

#[test]
fn control_characters_never_reach_the_output() {
    let template = card();
    let mut values = full_input();
    values.texts.insert("name".into(), "Jane\0Doe\u{1b}".into());
    let found = problems(compose(&template, fonts(), &values));
    assert_eq!(found, vec![FitProblem::Unsupported { field: "name".into(), chars: vec!['\0', '\u{1b}'] }]);
    assert!(found[0].to_string().contains("U+0000"));
}

#[test]
fn previews_show_what_fits_and_mark_the_overflow() {
    let template = card();
    let value = "Maximiliane Alexandra Konstanze Friederike von und zu Hohenberg-Wittelsbach";
    let mut values = full_input();
    values.texts.insert("name".into(), value.into());
    assert!(compose(&template, fonts(), &values).is_err(), "print refuses it");
    let document = compose_preview(&template, fonts(), &values).unwrap();
    let name = fitted(&document, "name");
    assert_eq!(name.size_pt, 8.0, "the minimum size");
    let shown: String = name.lines.concat();
    assert!(value.starts_with(&shown) && shown.len() < value.len() && !shown.is_empty(), "{shown:?}");
    let svg = document.page_svg(0).unwrap();
    assert_eq!(svg.matches("podconnect-overflow").count(), 1, "one box overflows");
    // Within the box, as printed text would be.
    let (_, r) = texts(&document, 0).into_iter().find(|(t, _)| t.starts_with("Maximiliane")).unwrap();
    assert!(r[0] >= 7.95 && r[2] <= 68.05, "{r:?}");
    // Values that fit get no mark.
    let fine = compose_preview(&template, fonts(), &full_input()).unwrap();
    assert!(!fine.page_svg(0).unwrap().contains("podconnect-overflow"));
}

#[test]
fn previews_show_unprintable_characters_as_a_replacement_glyph() {
    let template = card();
    let mut values = full_input();
    values.texts.insert("name".into(), "Jane \u{1F980} Doe\u{1b}".into());
    assert!(compose(&template, fonts(), &values).is_err(), "print refuses it");
    let document = compose_preview(&template, fonts(), &values).unwrap();
    let line = fitted(&document, "name").lines.concat();
    let replacement = if line.contains('\u{FFFD}') { '\u{FFFD}' } else { '?' };
    assert_eq!(line, format!("Jane {replacement} Doe{replacement}"));
    let svg = document.page_svg(0).unwrap();
    assert!(!svg.contains('\u{1b}') && !svg.contains('\u{1F980}'), "never reaches the SVG");
}

#[test]
fn markup_in_values_is_printed_literally() {
    let template = card();
    let attack = r#"</text><image href="file:///etc/passwd"/>"#;
    let mut values = full_input();
    values.texts.insert("title".into(), attack.into());
    values.texts.insert("phone".into(), "AT&T &amp; &lt;b&gt; ]]> &#0;".into());
    values.texts.insert("address".into(), "<![CDATA[x]]>\n<!-- c --> <?pi?>".into());
    let document = compose(&template, fonts(), &values).unwrap();
    assert!(!has_image(&document.pages[0]));
    let printed: Vec<String> = texts(&document, 0).into_iter().map(|(t, _)| t).collect();
    // Single-line titles are shrunk, not wrapped, so the whole value is one text element.
    assert!(printed.iter().any(|t| t == attack), "{printed:?}");
    assert!(printed.iter().any(|t| t == "Tel. AT&T &amp; &lt;b&gt; ]]> &#0;"), "{printed:?}");
    assert!(printed.iter().any(|t| t == "<![CDATA[x]]>"), "{printed:?}");
    // The composed SVG has exactly the elements we wrote: no <image>, and the value appears escaped.
    let svg = document.page_svg(0).unwrap();
    assert!(!svg.contains("<image"));
    // The text layer goes before the root's end tag, not into a comment that mentions one.
    let mut template = card();
    template.pages[0] = format!("{FRONT}<!-- was: </svg> -->");
    let document = compose(&template, fonts(), &values).unwrap();
    assert!(texts(&document, 0).iter().any(|(t, _)| t == attack));
    assert!(svg.contains("&lt;/text&gt;&lt;image href=\"file:///etc/passwd\"/&gt;"));
}

#[test]
fn a_megabyte_value_is_refused_quickly() {
    let template = card();
    let mut values = full_input();
    let huge = "x".repeat(1 << 20);
    values.texts.insert("address".into(), huge.clone());
    values.texts.insert("name".into(), format!("{huge}\0"));
    let start = Instant::now();
    let found = problems(compose(&template, fonts(), &values));
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    assert_eq!(found.len(), 2);
    for problem in found {
        let FitProblem::TooLong { shorten_by, .. } = problem else { panic!("{problem:?}") };
        assert!(shorten_by > (1 << 20) - 1000 && shorten_by <= (1 << 20) + 1, "{shorten_by}");
    }
}

#[test]
fn right_to_left_text_starts_at_the_right_edge() {
    let template = card();
    let mut values = full_input();
    values.texts.insert("title".into(), "שלום עולם!".into());
    values.texts.insert("address".into(), "مرحبا بالعالم".into());
    let document = compose(&template, fonts(), &values).unwrap();
    let page = texts(&document, 0);
    let (_, title) = page.iter().find(|(t, _)| t.contains("שלום")).unwrap();
    // usvg's box counts the (invisible, zero-advance) isolate marks at full space width.
    assert!(title[0] > 40.0 && title[2] > 67.7 && title[2] < 69.2, "right-aligned: {title:?}");
    let (_, address) = page.iter().find(|(t, _)| t.contains("مرحبا")).unwrap();
    assert!(address[0] > 20.0 && address[2] > 52.7 && address[2] < 54.2, "right-aligned: {address:?}");
}

#[test]
fn preview_has_the_requested_width_and_the_trim_aspect_ratio() {
    let template = card();
    let document = compose(&template, fonts(), &full_input()).unwrap();
    let images = preview(&document, fonts(), 600, &[]).unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!((images[0].page_number, images[1].page_number), (1, 2));
    for image in &images {
        assert_eq!((image.width_px, image.height_px), (600, 388)); // 600 * 55 / 85 = 388.2
        let decoded = tiny_skia::Pixmap::decode_png(&image.png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (600, 388));
    }
    let only_back = preview(&document, fonts(), 10, &[1]).unwrap();
    assert_eq!((only_back.len(), only_back[0].page_number, only_back[0].width_px), (1, 2, MIN_PREVIEW_WIDTH));
    let huge = preview(&document, fonts(), 100_000, &[0]).unwrap();
    assert_eq!(huge[0].width_px, MAX_PREVIEW_WIDTH);
    assert!(preview(&document, fonts(), 600, &[2]).is_err());
}

#[test]
fn preview_shows_the_trimmed_page_and_a_watermark() {
    let template = card();
    let document = compose(&template, fonts(), &full_input()).unwrap();
    let (w, h) = preview::preview_size(&document, 600);
    let plain = preview::rasterize(&document.pages[1], document.geometry, w, h).unwrap();
    let marked = tiny_skia::Pixmap::decode_png(&preview(&document, fonts(), 600, &[1]).unwrap()[0].png).unwrap();
    let differing = plain.pixels().iter().zip(marked.pixels()).filter(|(a, b)| a != b).count();
    let share = differing as f64 / plain.pixels().len() as f64;
    assert!(share > 0.03 && share < 0.6, "watermark covers {share}");
    // The back is the accent colour edge to edge: the bleed is cut off, no white margin.
    let corner = plain.pixel(0, 0).unwrap();
    assert_eq!((corner.red(), corner.green(), corner.blue()), (0x1f, 0x4e, 0x9c));
}

/// The numbers of a `/Name [a b c d]` entry, for each occurrence.
fn pdf_boxes(pdf: &[u8], name: &str) -> Vec<[f64; 4]> {
    let text = String::from_utf8_lossy(pdf);
    let key = format!("/{name} [");
    text.match_indices(&key)
        .map(|(i, _)| {
            let rest = &text[i + key.len()..];
            let inner = &rest[..rest.find(']').unwrap()];
            let v: Vec<f64> = inner.split_whitespace().map(|n| n.parse().unwrap()).collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect()
}

fn close(a: [f64; 4], b: [f64; 4]) -> bool {
    a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.01)
}

#[test]
fn pdf_has_one_page_per_template_page_at_the_exact_size() {
    let template = card();
    let document = compose(&template, fonts(), &full_input()).unwrap();
    let bytes = pdf(&document).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(text.matches("/Type /Page\n").count() + text.matches("/Type /Page ").count(), 2);
    assert!(text.contains("/Count 2"));
    let mm = |v: f64| v * 72.0 / 25.4;
    let media = [0.0, 0.0, mm(91.0), mm(61.0)];
    let trim = [mm(3.0), mm(3.0), mm(88.0), mm(58.0)];
    assert!(pdf_boxes(&bytes, "MediaBox").iter().filter(|b| close(**b, media)).count() == 2);
    assert!(pdf_boxes(&bytes, "TrimBox").iter().all(|b| close(*b, trim)));
    assert!(pdf_boxes(&bytes, "BleedBox").iter().all(|b| close(*b, media)));
    // Embedded subset fonts, no watermark, our producer.
    assert!(text.contains("/FontFile2"));
    assert!(text.contains("+DejaVuSans-Bold"));
    assert!(!text.contains("PREVIEW"));
    assert!(text.contains("(podconnect)"));
}

#[test]
fn pdf_crop_marks_add_a_slug() {
    let mut template = card();
    template.geometry.crop_marks = true;
    let document = compose(&template, fonts(), &full_input()).unwrap();
    let bytes = pdf(&document).unwrap();
    let mm = |v: f64| v * 72.0 / 25.4;
    let media = pdf_boxes(&bytes, "MediaBox");
    assert!(media.iter().any(|b| close(*b, [0.0, 0.0, mm(111.0), mm(81.0)])), "{media:?}");
    assert!(pdf_boxes(&bytes, "TrimBox").iter().all(|b| close(*b, [mm(13.0), mm(13.0), mm(98.0), mm(68.0)])));
    assert!(pdf_boxes(&bytes, "BleedBox").iter().all(|b| close(*b, [mm(10.0), mm(10.0), mm(101.0), mm(71.0)])));
}

#[test]
fn pdf_text_is_extractable_when_poppler_is_installed() {
    let template = card();
    let document = compose(&template, fonts(), &full_input()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.pdf");
    std::fs::write(&path, pdf(&document).unwrap()).unwrap();
    let Ok(out) = std::process::Command::new("pdftotext").arg(&path).arg("-").output() else { return };
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in ["Jane Doe", "Head of Printing", "Hauptstraße 12", "Tel. +41 44 123 45 67", "WE PRINT WHAT"] {
        assert!(text.contains(expected), "{expected:?} not in {text:?}");
    }
}

/// A small red PNG as the storefront hands it over.
fn red_png() -> std::sync::Arc<str> {
    let mut pixmap = tiny_skia::Pixmap::new(4, 4).unwrap();
    pixmap.fill(tiny_skia::Color::from_rgba8(200, 30, 30, 255));
    super::data_uri("image/png", &pixmap.encode_png().unwrap())
}

fn logo_template() -> Template {
    let mut template = card();
    template.pages[1] = r##"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
        width="91mm" height="61mm" viewBox="0 0 91 61">
      <image x="10" y="10" width="20" height="20" xlink:href="{{logo}}"/>
    </svg>"##
        .into();
    template
}

#[test]
fn choice_images_are_embedded_as_loaded_and_no_file_is_read() {
    // The storefront loads option images from inside the product folder at start-up
    // (`storefront::files::inside`); the renderer only embeds what it was handed.
    let template = logo_template();
    let mut values = full_input();
    values.choices.insert("logo".into(), ChoiceAsset { color: None, image: Some(red_png()) });
    let document = compose(&template, fonts(), &values).unwrap();
    assert!(has_image(&document.pages[1]));
    for not_an_image in
        ["../outside.png", "/etc/passwd", "data:image/svg+xml;base64,PHN2Zz4=", "data:image/png;base64,\"/>"]
    {
        values.choices.insert("logo".into(), ChoiceAsset { color: None, image: Some(not_an_image.into()) });
        let composed = compose(&template, fonts(), &values);
        assert!(matches!(composed, Err(ComposeError::Internal(_))), "{not_an_image}");
    }
    // Hrefs written in a template never read files either.
    let mut template = card();
    template.pages[1] = BACK.replace(
        "</svg>",
        r#"<image width="9" height="9" href="file:///etc/passwd"/><image width="9" height="9" href="tests.rs"/></svg>"#,
    );
    let document = compose(&template, fonts(), &full_input()).unwrap();
    assert!(!has_image(&document.pages[1]));
}

fn choice_options() -> HashMap<String, Vec<ChoiceAsset>> {
    let colour = |c: &str| ChoiceAsset { color: Some(c.into()), image: None };
    HashMap::from([
        ("accent".to_string(), vec![colour("#1f4e9c"), colour("#c0392b")]),
        ("ink".to_string(), vec![colour("#ffffff"), colour("#000000")]),
    ])
}

#[test]
fn check_template_accepts_a_good_template() {
    check_template(&card(), fonts(), &choice_options()).unwrap();
    let mut options = choice_options();
    options.insert("logo".into(), vec![ChoiceAsset { color: None, image: Some(red_png()) }]);
    check_template(&logo_template(), fonts(), &options).unwrap();
    options.insert("logo".into(), vec![ChoiceAsset { color: None, image: Some("b.png".into()) }]);
    assert!(check_template(&logo_template(), fonts(), &options).is_err());
}

#[test]
fn check_template_names_what_is_wrong() {
    let options = choice_options();
    let error = |template: &Template| format!("{:#}", check_template(template, fonts(), &options).unwrap_err());

    let mut t = card();
    t.boxes[0].font_family = "Comic Sans".into();
    assert!(error(&t).contains("Comic Sans"), "{}", error(&t));
    let mut t = card();
    t.boxes[1].min_size_pt = 10.0;
    assert!(error(&t).contains("min size"), "{}", error(&t));
    let mut t = card();
    t.boxes[2].x_mm = 80.0;
    assert!(error(&t).contains("within"), "{}", error(&t));
    let mut t = card();
    t.boxes[3].page = 5;
    assert!(error(&t).contains("page 6 does not exist"), "{}", error(&t));
    let mut t = card();
    t.boxes[4].color = BoxColor::FromChoice("nope".into());
    assert!(error(&t).contains("nope"), "{}", error(&t));
    let mut t = card();
    t.boxes[3].prefix = "☎ 漢".into();
    assert!(error(&t).contains("prefix"), "{}", error(&t));
    let mut t = card();
    t.pages[1] = BACK.replace("{{accent}}", "{{missing}}");
    assert!(error(&t).contains("missing"), "{}", error(&t));
    let mut t = card();
    t.pages[1] = BACK.replace("viewBox=\"0 0 91 61\"", "viewBox=\"0 0 85 55\"");
    assert!(error(&t).contains("viewBox"), "{}", error(&t));
    let mut t = card();
    t.pages[0] = FRONT.replace("</svg>", "<image href=\"logo.png\" width=\"5\" height=\"5\"/></svg>");
    assert!(error(&t).contains("logo.png"), "{}", error(&t));
    let mut t = card();
    t.pages[0] = FRONT.replace("ACME Corporation", "ACME 漢字");
    assert!(error(&t).contains("漢"), "{}", error(&t));
    let mut t = card();
    t.pages[0] = FRONT.replace("</svg>", "<p>{{accent}}</p></svg>");
    assert!(error(&t).contains("outside an attribute"), "{}", error(&t));
    let mut bad = choice_options();
    bad.insert("accent".into(), vec![ChoiceAsset { color: Some("red; x".into()), image: None }]);
    assert!(check_template(&card(), fonts(), &bad).is_err());
}

/// Font fallback among shipped fonts, with the shipped storefront fonts (skipped until they exist): a
/// character the box's font lacks is printed with another shipped face, never as a missing glyph.
#[test]
fn fallback_uses_another_shipped_font() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("storefront/sample/fonts");
    let Ok(fonts) = Fonts::load(&dir) else { return };
    let mut template = card();
    let family = fonts.families().into_iter().find(|f| {
        let face = fonts.primary_face(f, 400, false).unwrap();
        let face = fonts.face(face);
        face.covers('A') && (!face.covers('ש') || !face.covers('ب'))
    });
    let Some(family) = family else { return };
    for b in &mut template.boxes {
        b.font_family = family.clone();
    }
    let mut values = full_input();
    values.texts.insert("title".into(), "Dr. שלום Levi".into());
    values.texts.insert("address".into(), "مرحبا بالعالم\nשלום עולם".into());
    let document = match compose(&template, &fonts, &values) {
        Ok(d) => d,
        // The shipped set has no face for these scripts: then they must be reported, not printed.
        Err(ComposeError::Fit(p)) => return assert!(p.iter().all(|p| matches!(p, FitProblem::Unsupported { .. }))),
        Err(e) => panic!("{e}"),
    };
    let mut faces = Vec::new();
    walk(document.pages[0].root(), &mut |node| {
        if let usvg::Node::Text(text) = node {
            for span in text.layouted() {
                for glyph in &span.positioned_glyphs {
                    assert_ne!(glyph.id.0, 0, "missing glyph for {:?}", glyph.text);
                    if !faces.contains(&glyph.font) {
                        faces.push(glyph.font);
                    }
                }
            }
        }
    });
    assert!(faces.len() > 1, "the fallback face was used");
}
