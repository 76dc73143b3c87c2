//! Start-up validation of a template: geometry, boxes, fonts, colours and placeholders, and every page
//! parsed with every choice option substituted, so a broken template stops the server instead of an order.

use std::collections::HashMap;
use std::sync::LazyLock;

use anyhow::{Context, ensure};
use regex::Regex;

use super::compose::{ATTRIBUTE, COMMENT, HEX_COLOR, PLACEHOLDER, TEMPLATE_COLOR, is_image_uri, substitute};
use super::fit;
use super::fonts::Fonts;
use super::{BoxColor, ChoiceAsset, Template, TextBox};

/// Tolerance when comparing sizes in millimetres.
const SLACK_MM: f64 = 0.05;

static HREF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?:^|[\s<])((?:[A-Za-z_]+:)?href)\s*=\s*("[^"]*"|'[^']*')"#).expect("valid regex"));
static ROOT_SVG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"<svg[\s>][^>]*>").expect("valid regex"));
static VIEW_BOX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"viewBox\s*=\s*["']([^"']*)["']"#).expect("valid regex"));

/// For start-up validation: every page parses with every choice option substituted, every box's page and
/// font family exist, min_size_pt <= size_pt, boxes lie within the page. Error names what is wrong.
pub fn check_template(
    template: &Template,
    fonts: &Fonts,
    choice_options: &HashMap<String, Vec<ChoiceAsset>>,
) -> anyhow::Result<()> {
    let g = template.geometry;
    ensure!(
        g.trim_width_mm.is_finite() && g.trim_width_mm > 0.0 && g.trim_height_mm.is_finite() && g.trim_height_mm > 0.0,
        "trim size {} x {} mm must be positive",
        g.trim_width_mm,
        g.trim_height_mm
    );
    ensure!(g.bleed_mm.is_finite() && g.bleed_mm >= 0.0, "bleed {} mm must be 0 or more", g.bleed_mm);
    ensure!(!template.pages.is_empty(), "the template has no pages");
    for (field, options) in choice_options {
        for (i, option) in options.iter().enumerate() {
            if let Some(color) = &option.color {
                ensure!(
                    HEX_COLOR.is_match(color),
                    "choice {field:?} option {}: colour {color:?} is not #rrggbb",
                    i + 1
                );
            }
            if let Some(image) = &option.image {
                ensure!(is_image_uri(image), "choice {field:?} option {}: the image is not a PNG or JPEG", i + 1);
            }
        }
    }
    for (i, text_box) in template.boxes.iter().enumerate() {
        check_box(text_box, template, fonts, choice_options)
            .with_context(|| format!("text box {} (field {:?})", i + 1, text_box.field))?;
    }
    for (i, page) in template.pages.iter().enumerate() {
        check_page(page, template, fonts, choice_options).with_context(|| format!("page {}", i + 1))?;
    }
    Ok(())
}

fn check_box(
    b: &TextBox,
    template: &Template,
    fonts: &Fonts,
    choice_options: &HashMap<String, Vec<ChoiceAsset>>,
) -> anyhow::Result<()> {
    let g = template.geometry;
    ensure!(
        b.page < template.pages.len(),
        "page {} does not exist (the template has {})",
        b.page + 1,
        template.pages.len()
    );
    ensure!(
        fonts.has_family(&b.font_family),
        "font family {:?} is not shipped (shipped: {})",
        b.font_family,
        fonts.families().join(", ")
    );
    let primary = fonts
        .primary_face(&b.font_family, b.weight, b.italic)
        .with_context(|| format!("no face of {:?} matches weight {}", b.font_family, b.weight))?;
    ensure!(
        fonts.face(primary).css_family().is_some(),
        "font family {:?} contains characters that can not be used in SVG",
        b.font_family
    );
    ensure!((1..=1000).contains(&b.weight), "weight {} must be 1 to 1000", b.weight);
    ensure!(b.size_pt.is_finite() && b.size_pt > 0.0 && b.size_pt <= 1000.0, "size {} pt must be 0 to 1000", b.size_pt);
    ensure!(b.min_size_pt.is_finite() && b.min_size_pt > 0.0, "min size {} pt must be positive", b.min_size_pt);
    ensure!(b.min_size_pt <= b.size_pt, "min size {} pt is larger than size {} pt", b.min_size_pt, b.size_pt);
    ensure!(
        b.line_height.is_finite() && b.line_height > 0.0 && b.line_height <= 10.0,
        "line height {} must be above 0 and at most 10",
        b.line_height
    );
    let values = [b.x_mm, b.y_mm, b.width_mm, b.height_mm];
    ensure!(values.iter().all(|v| v.is_finite()), "position and size must be numbers");
    ensure!(b.width_mm > 0.0 && b.height_mm > 0.0, "width and height must be positive");
    let (page_w, page_h) = (g.page_width_mm(), g.page_height_mm());
    ensure!(
        b.x_mm >= -SLACK_MM
            && b.y_mm >= -SLACK_MM
            && b.x_mm + b.width_mm <= page_w + SLACK_MM
            && b.y_mm + b.height_mm <= page_h + SLACK_MM,
        "the box ({}, {}) {} x {} mm does not lie within the {page_w} x {page_h} mm page",
        b.x_mm,
        b.y_mm,
        b.width_mm,
        b.height_mm
    );
    match &b.color {
        BoxColor::Fixed(color) => {
            ensure!(TEMPLATE_COLOR.is_match(color), "colour {color:?} is not #rgb, #rrggbb or a name")
        }
        BoxColor::FromChoice(field) => {
            let options =
                choice_options.get(field).with_context(|| format!("colour choice {field:?} does not exist"))?;
            ensure!(!options.is_empty(), "colour choice {field:?} has no options");
            ensure!(options.iter().all(|o| o.color.is_some()), "an option of colour choice {field:?} has no colour");
        }
    }
    let bad = fit::unprintable(&b.prefix, primary, fonts);
    ensure!(bad.is_empty(), "the prefix has characters no shipped font can print: {bad:?}");
    Ok(())
}

fn check_page(
    page: &str,
    template: &Template,
    fonts: &Fonts,
    choice_options: &HashMap<String, Vec<ChoiceAsset>>,
) -> anyhow::Result<()> {
    let g = template.geometry;
    // Comments may mention placeholders (and attributes); they are not part of the drawing.
    let page = &*COMMENT.replace_all(page, "");
    // The text layer is written in millimetres: the page's user unit must be one millimetre.
    let root = ROOT_SVG.find(page).context("no <svg> element")?.as_str();
    let view_box = VIEW_BOX.captures(root).context("the <svg> element has no viewBox")?;
    let numbers: Vec<f64> = view_box[1]
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f64>())
        .collect::<Result<_, _>>()
        .context("viewBox is not four numbers")?;
    let expected = [0.0, 0.0, g.page_width_mm(), g.page_height_mm()];
    ensure!(
        numbers.len() == 4 && numbers.iter().zip(expected).all(|(a, b)| (a - b).abs() <= SLACK_MM),
        "viewBox {:?} should be \"0 0 {} {}\" (trim + 2 x bleed, in mm)",
        &view_box[1],
        expected[2],
        expected[3]
    );

    // Placeholders only in attribute values, naming known choices.
    let total = PLACEHOLDER.find_iter(page).count();
    let mut in_attributes = 0;
    let mut used: Vec<String> = Vec::new();
    for caps in ATTRIBUTE.captures_iter(page) {
        for p in PLACEHOLDER.captures_iter(&caps[3]) {
            in_attributes += 1;
            if !used.iter().any(|u| u == &p[1]) {
                used.push(p[1].to_string());
            }
        }
    }
    ensure!(total == in_attributes, "a {{{{placeholder}}}} is outside an attribute value");
    for field in &used {
        let options =
            choice_options.get(field).with_context(|| format!("placeholder {{{{{field}}}}} names no choice field"))?;
        ensure!(!options.is_empty(), "choice {field:?} has no options");
    }
    for caps in HREF.captures_iter(page) {
        let value = caps[2].trim_matches(|c| c == '"' || c == '\'').trim();
        let only_placeholder = PLACEHOLDER.find(value).is_some_and(|m| m.start() == 0 && m.end() == value.len());
        if only_placeholder {
            let field = &PLACEHOLDER.captures(value).expect("matched")[1];
            let options = &choice_options[field];
            ensure!(
                options.iter().all(|o| o.image.is_some()),
                "an option of choice {field:?} used as an image has no image"
            );
        } else {
            let embedded = ["data:image/png", "data:image/jpeg", "data:image/jpg"].iter().any(|p| value.starts_with(p));
            ensure!(
                value.starts_with('#') || embedded,
                "{} {:.60?} is not drawn: only #fragments, PNG/JPEG data: URIs and {{{{choice}}}} images work",
                &caps[1],
                value
            );
        }
    }
    for field in &used {
        let in_colour = ATTRIBUTE
            .captures_iter(page)
            .filter(|c| !c[1].ends_with("href"))
            .any(|c| PLACEHOLDER.captures_iter(&c[3]).any(|p| &p[1] == field.as_str()));
        if in_colour {
            ensure!(
                choice_options[field].iter().all(|o| o.color.is_some()),
                "an option of choice {field:?} used as a colour has no colour"
            );
        }
    }

    // Parse once per option index (every field at its i-th option, or its last), so every option is seen.
    let rounds = used.iter().map(|f| choice_options[f].len()).max().unwrap_or(1).max(1);
    let options = fonts.usvg_options();
    for round in 0..rounds {
        let choices: HashMap<String, ChoiceAsset> = used
            .iter()
            .map(|f| {
                let opts = &choice_options[f];
                (f.clone(), opts[round.min(opts.len() - 1)].clone())
            })
            .collect();
        let svg = substitute(page, &choices).map_err(anyhow::Error::msg)?;
        let tree =
            usvg::Tree::from_str(&svg, &options).with_context(|| format!("parsing with option {}", round + 1))?;
        let (w, h) = (f64::from(tree.size().width()) * 25.4 / 96.0, f64::from(tree.size().height()) * 25.4 / 96.0);
        ensure!(
            (w - g.page_width_mm()).abs() <= SLACK_MM && (h - g.page_height_mm()).abs() <= SLACK_MM,
            "the page is {w:.2} x {h:.2} mm, the product needs {} x {} mm (trim + 2 x bleed)",
            g.page_width_mm(),
            g.page_height_mm()
        );
        let mut missing: Vec<String> = Vec::new();
        walk(tree.root(), &mut |node| {
            if let usvg::Node::Text(text) = node {
                for span in text.layouted() {
                    for glyph in &span.positioned_glyphs {
                        if glyph.id.0 == 0 && !missing.contains(&glyph.text) {
                            missing.push(glyph.text.clone());
                        }
                    }
                }
            }
        });
        ensure!(missing.is_empty(), "artwork text has characters the named fonts can not print: {missing:?}");
    }
    Ok(())
}

/// Visits every node of a tree, including those inside clip paths, masks and patterns.
pub(super) fn walk(group: &usvg::Group, f: &mut dyn FnMut(&usvg::Node)) {
    for node in group.children() {
        f(node);
        if let usvg::Node::Group(g) = node {
            walk(g, f);
        }
        node.subroots(|g| walk(g, f));
    }
}
