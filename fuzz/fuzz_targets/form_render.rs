//! Fuzz target: what a person types into a sample product's form, through the same steps a draft
//! takes (screening, the form's rules, copy fitting, composing the SVG pages) with the sample
//! storefront and fonts built into the server. The typed text must never escape the SVG text layer: the artwork
//! keeps exactly its own elements, the layer holds only `<text>`/`<tspan>` with the attributes the
//! renderer writes, and the text it draws is exactly the fitted lines.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use server::domain::customization::DraftRef;
use server::domain::form::{FieldKind, Values};
use server::domain::ids::ProductId;
use server::render::{self, ComposeError};
use server::storefront::customizer::render_input;
use server::storefront::embedded::{EmbeddedStorefront, Printable};
use server::storefront::template::LoadedTemplate;

static STORE: LazyLock<EmbeddedStorefront> =
    LazyLock::new(|| EmbeddedStorefront::built_in_sample().expect("the sample storefront loads"));

/// The sample's customizable products, in a fixed order.
static PRODUCTS: LazyLock<Vec<(ProductId, &'static LoadedTemplate)>> = LazyLock::new(|| {
    let mut ids: Vec<&str> = vec![
        "classic-business-card",
        "kraft-eco-business-card",
        "us-standard-business-card",
        "a6-postcard",
        "us-postcard-4x6",
        "a5-flyer",
        "a4-flyer",
        "us-letter-flyer",
        "a3-event-poster",
        "newsletter-a4",
        "trifold-brochure",
    ];
    ids.sort();
    ids.into_iter()
        .filter_map(|id| {
            let id = ProductId::parse(id).expect("a valid id");
            match STORE.printable(&id).ok()? {
                Printable::Customizable(loaded) => Some((id, loaded)),
                Printable::Static { .. } => None,
            }
        })
        .collect()
});

const RLI: char = '\u{2067}';
const PDI: char = '\u{2069}';

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let products = &*PRODUCTS;
    let (product, loaded) = &products[pick as usize % products.len()];
    let form = &loaded.form;

    // Pieces separated by 0xFF (never in UTF-8) fill the fields in order; a choice field takes
    // its option by index so that conditions and colours vary too.
    let mut values = Values::new();
    for (field, piece) in form.fields.iter().zip(rest.split(|&b| b == 0xFF)) {
        let value = match field.kind {
            FieldKind::Choice if !field.options.is_empty() => {
                let index = piece.first().copied().unwrap_or(0) as usize % (field.options.len() + 1);
                match field.options.get(index) {
                    Some(option) => option.value.clone(),
                    // Past the options: a value no option has.
                    None => String::from_utf8_lossy(piece.get(1..).unwrap_or_default()).into_owned(),
                }
            }
            _ => String::from_utf8_lossy(piece).into_owned(),
        };
        values.insert(field.id.clone(), value);
    }
    // What CreateDraft/UpdateDraft refuse outright never reaches the renderer.
    if form.screen(&values).is_err() {
        return;
    }
    let _ = form.check(&values);

    let draft = DraftRef { product, backend_ref: None, values: &values, quantity: 1 };
    let input = render_input(form, &loaded.choices, &draft);
    let document = match render::compose(&loaded.template, STORE.fonts(), &input) {
        Ok(document) => document,
        Err(ComposeError::Fit(problems)) => {
            assert!(!problems.is_empty(), "a fit refusal names its problems");
            return;
        }
        Err(err @ ComposeError::Internal(_)) => panic!("typed values made an internal error: {err}"),
    };

    for (page, artwork) in loaded.template.pages.iter().enumerate() {
        let svg = document.page_svg(page).expect("every template page is composed");
        let tree = roxmltree::Document::parse_with_options(
            svg,
            roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() },
        )
        .expect("the composed page is XML");
        let original = roxmltree::Document::parse_with_options(
            artwork,
            roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() },
        )
        .expect("the template page is XML");

        let is_layer =
            |n: &roxmltree::Node<'_, '_>| n.has_tag_name("g") && n.attribute("id") == Some("podconnect-text");
        assert_eq!(original.descendants().filter(is_layer).count(), 0, "page {page}: the sample names its own layer");
        let layers: Vec<_> = tree.descendants().filter(is_layer).collect();
        assert!(layers.len() <= 1, "page {page}: more than one text layer");

        // The artwork keeps exactly its elements and attributes.
        let outside = |doc: &roxmltree::Document<'_>| -> (usize, usize) {
            doc.descendants()
                .filter(|n| n.is_element() && !n.ancestors().any(|a| is_layer(&a)))
                .fold((0, 0), |(e, a), n| (e + 1, a + n.attributes().len()))
        };
        assert_eq!(outside(&tree), outside(&original), "page {page}: the artwork's markup changed");

        // Inside the layer: text > tspan > characters, with the renderer's attributes only.
        let mut drawn: Vec<String> = Vec::new();
        for layer in &layers {
            assert_eq!(layer.attributes().len(), 1, "page {page}: the layer gained attributes");
            for text in layer.children().filter(|n| !n.is_text()) {
                assert!(text.has_tag_name("text"), "page {page}: {:?} inside the text layer", text.tag_name());
                for attribute in text.attributes() {
                    let allowed = matches!(attribute.name(), "x" | "y" | "style" | "space");
                    assert!(allowed, "page {page}: <text> gained attribute {:?}", attribute.name());
                }
                let mut line = String::new();
                for span in text.children() {
                    assert!(span.has_tag_name("tspan"), "page {page}: {:?} inside <text>", span.tag_name());
                    let names: Vec<&str> = span.attributes().map(|a| a.name()).collect();
                    assert_eq!(names, ["style"], "page {page}: <tspan> attributes");
                    for part in span.children() {
                        assert!(part.is_text(), "page {page}: markup inside <tspan>: {:?}", part.tag_name());
                        line.push_str(part.text().unwrap_or_default());
                    }
                }
                drawn.push(line.chars().filter(|c| *c != RLI && *c != PDI).collect());
            }
        }
        let mut fitted: Vec<String> = document
            .fitted()
            .iter()
            .filter(|f| f.page == page)
            .flat_map(|f| f.lines.iter().map(|l| l.chars().filter(|c| *c != RLI && *c != PDI).collect::<String>()))
            .filter(|l| !l.is_empty())
            .collect();
        drawn.retain(|l| !l.is_empty());
        let mut sorted_drawn = drawn.clone();
        sorted_drawn.sort();
        fitted.sort();
        assert_eq!(sorted_drawn, fitted, "page {page}: the layer draws other text than was fitted");
    }
});
