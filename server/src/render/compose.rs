//! Composes the document: substitutes choice placeholders in the template pages, writes the fitted text
//! as an SVG layer with xmlwriter, and parses each page once with usvg.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use regex::Regex;

use super::fit::{self, FitError, FitMode, Fitted, Shapers};
use super::fonts::Fonts;
use super::{
    Align, BoxColor, ChoiceAsset, ComposeError, Document, FitProblem, FittedText, RenderInput, Template, TextBox,
    VAlign, pt_to_mm,
};

/// An attribute and its quoted value (templates are trusted SVG; this only locates placeholders).
pub(super) static ATTRIBUTE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"([A-Za-z_:][-A-Za-z0-9_:.]*)(\s*=\s*)("[^"]*"|'[^']*')"#).expect("valid regex"));
pub(super) static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}").expect("valid regex"));
pub(super) static COMMENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<!--.*?-->").expect("valid regex"));
pub(super) static HEX_COLOR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^#[0-9A-Fa-f]{6}$").expect("valid regex"));
pub(super) static TEMPLATE_COLOR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6}|[A-Za-z]{3,20})$").expect("valid regex"));

/// Lays out every text box and builds one usvg tree per page, for print: a value that cannot be
/// printed as it is is a `ComposeError::Fit` problem.
pub fn compose(template: &Template, fonts: &Fonts, input: &RenderInput) -> Result<Document, ComposeError> {
    compose_with(template, fonts, input, FitMode::Strict)
}

/// Lays out the document for a preview: values that cannot be printed are shown as they are
/// (the part that fits, with an overflow mark; replacement glyphs), never a `Fit` error.
pub fn compose_preview(template: &Template, fonts: &Fonts, input: &RenderInput) -> Result<Document, ComposeError> {
    compose_with(template, fonts, input, FitMode::Preview)
}

fn compose_with(
    template: &Template,
    fonts: &Fonts,
    input: &RenderInput,
    mode: FitMode,
) -> Result<Document, ComposeError> {
    let mut shapers = Shapers::new(fonts);
    let mut problems: Vec<FitProblem> = Vec::new();
    let mut placed: Vec<(&TextBox, Fitted)> = Vec::new();
    for text_box in &template.boxes {
        // A blank value prints nothing, not even the box's prefix.
        let Some(value) = input.texts.get(&text_box.field).filter(|v| !v.trim().is_empty()) else { continue };
        match fit::fit_box(text_box, value, fonts, &mut shapers, mode) {
            Ok(fitted) => placed.push((text_box, fitted)),
            Err(FitError::Problem(problem)) => merge_problem(&mut problems, problem),
            Err(FitError::Internal(message)) => return Err(ComposeError::Internal(message)),
        }
    }
    if !problems.is_empty() {
        return Err(ComposeError::Fit(problems));
    }

    let options = fonts.usvg_options();
    let indexed: Vec<(usize, &String)> = template.pages.iter().enumerate().collect();
    let built = super::par_map(&indexed, |&(index, page)| {
        let svg = page_svg(page, index, fonts, input, &placed).map_err(ComposeError::Internal)?;
        let tree = usvg::Tree::from_str(&svg, &options)
            .map_err(|e| ComposeError::Internal(format!("page {}: {e}", index + 1)))?;
        Ok::<_, ComposeError>((tree, svg))
    });
    let mut pages = Vec::with_capacity(built.len());
    let mut sources = Vec::with_capacity(built.len());
    for page in built {
        let (tree, svg) = page?;
        pages.push(tree);
        sources.push(svg);
    }
    let fitted = placed
        .iter()
        .map(|(b, f)| FittedText {
            field: b.field.clone(),
            page: b.page,
            size_pt: f.size_pt,
            lines: f.lines.iter().map(|l| l.text()).collect(),
        })
        .collect();
    Ok(Document { pages, geometry: template.geometry, fitted, sources })
}

/// One problem per field and kind, even when a field is printed in several boxes.
fn merge_problem(problems: &mut Vec<FitProblem>, problem: FitProblem) {
    for existing in problems.iter_mut() {
        match (existing, &problem) {
            (FitProblem::TooLong { field, shorten_by }, FitProblem::TooLong { field: f, shorten_by: n })
                if field == f =>
            {
                *shorten_by = (*shorten_by).max(*n);
                return;
            }
            (FitProblem::Unsupported { field, chars }, FitProblem::Unsupported { field: f, chars: new })
                if field == f =>
            {
                for c in new {
                    if !chars.contains(c) {
                        chars.push(*c);
                    }
                }
                return;
            }
            _ => {}
        }
    }
    problems.push(problem);
}

/// The final SVG of one page: the template with placeholders filled, plus the text layer on top.
fn page_svg(
    page: &str,
    index: usize,
    fonts: &Fonts,
    input: &RenderInput,
    placed: &[(&TextBox, Fitted)],
) -> Result<String, String> {
    let page_no = index + 1;
    let artwork = substitute(page, &input.choices).map_err(|e| format!("page {page_no}: {e}"))?;
    let on_page: Vec<&(&TextBox, Fitted)> = placed.iter().filter(|(b, _)| b.page == index).collect();
    if on_page.is_empty() {
        return Ok(artwork.into_owned());
    }
    let layer = text_layer(&on_page, fonts, &input.choices)?;
    // The layer goes last inside the root element so that it is drawn over the artwork.
    let close = root_close(&artwork).ok_or_else(|| format!("page {page_no}: no closing </svg> tag"))?;
    let mut svg = String::with_capacity(artwork.len() + layer.len());
    svg.push_str(&artwork[..close]);
    svg.push_str(&layer);
    svg.push_str(&artwork[close..]);
    Ok(svg)
}

/// Where the root element closes: the last `</svg>` that is not inside a comment.
fn root_close(svg: &str) -> Option<usize> {
    let comments: Vec<(usize, usize)> = COMMENT.find_iter(svg).map(|m| (m.start(), m.end())).collect();
    svg.match_indices("</svg").map(|(i, _)| i).filter(|i| !comments.iter().any(|(s, e)| s <= i && i < e)).last()
}

/// Replaces `{{field}}` inside attribute values: an image data URI in `href`s, a colour elsewhere.
/// Substituted values are a validated `#rrggbb` or base64, so they can not change the markup.
pub(super) fn substitute<'a>(page: &'a str, choices: &HashMap<String, ChoiceAsset>) -> Result<Cow<'a, str>, String> {
    if !page.contains("{{") {
        return Ok(Cow::Borrowed(page));
    }
    let mut out = String::with_capacity(page.len());
    let mut last = 0;
    for caps in ATTRIBUTE.captures_iter(page) {
        let value = caps.get(3).expect("group 3 always matches");
        if !value.as_str().contains("{{") {
            continue;
        }
        let name = &caps[1];
        let mut error = None;
        let replaced =
            PLACEHOLDER.replace_all(value.as_str(), |p: &regex::Captures<'_>| match resolve(name, &p[1], choices) {
                Ok(v) => v,
                Err(e) => {
                    error.get_or_insert(e);
                    String::new()
                }
            });
        if let Some(e) = error {
            return Err(e);
        }
        out.push_str(&page[last..value.start()]);
        out.push_str(&replaced);
        last = value.end();
    }
    out.push_str(&page[last..]);
    Ok(Cow::Owned(out))
}

fn resolve(attribute: &str, field: &str, choices: &HashMap<String, ChoiceAsset>) -> Result<String, String> {
    let is_href = attribute == "href" || attribute.ends_with(":href");
    match choices.get(field) {
        Some(asset) if is_href => match &asset.image {
            Some(image) if is_image_uri(image) => Ok(image.to_string()),
            Some(_) => Err(format!("choice {field:?} has an image that is not a PNG or JPEG data URI")),
            None => Err(format!("choice {field:?} has no image for {attribute}")),
        },
        Some(asset) => match &asset.color {
            Some(color) if HEX_COLOR.is_match(color) => Ok(color.clone()),
            Some(color) => Err(format!("choice {field:?} has an invalid colour {color:?} (want #rrggbb)")),
            None => Err(format!("choice {field:?} has no colour for {attribute}")),
        },
        // A hidden choice prints nothing.
        None if is_href => Ok(String::new()),
        None if attribute == "fill" || attribute == "stroke" => Ok("none".into()),
        None => Ok("transparent".into()),
    }
}

/// A PNG or JPEG as a `data:` URI, for a choice option's image.
pub fn data_uri(content_type: &str, data: &[u8]) -> Arc<str> {
    format!("data:{content_type};base64,{}", base64::engine::general_purpose::STANDARD.encode(data)).into()
}

/// Whether an option's image is what `data_uri` makes of a PNG or JPEG: base64 after the prefix,
/// so it can not change the markup it is substituted into.
pub(super) fn is_image_uri(image: &str) -> bool {
    ["data:image/png;base64,", "data:image/jpeg;base64,"].iter().any(|prefix| {
        image
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='))
    })
}

/// The text colour of a box, checked so that it can only ever be a colour.
fn box_color(text_box: &TextBox, choices: &HashMap<String, ChoiceAsset>) -> Result<String, String> {
    match &text_box.color {
        BoxColor::Fixed(color) if TEMPLATE_COLOR.is_match(color) => Ok(color.clone()),
        BoxColor::Fixed(color) => Err(format!("box {}: invalid colour {color:?}", text_box.field)),
        BoxColor::FromChoice(field) => match choices.get(field).and_then(|c| c.color.as_ref()) {
            Some(color) if HEX_COLOR.is_match(color) => Ok(color.clone()),
            Some(color) => Err(format!("choice {field:?} has an invalid colour {color:?} (want #rrggbb)")),
            // The choice is hidden or has no colour: print in black rather than not at all.
            None => Ok("#000000".into()),
        },
    }
}

/// Escapes text for XML: xmlwriter itself only escapes `<` in text and the quote in attributes.
fn xml_escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>']) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"))
}

/// First-strong-isolate marks: make usvg (which always lays out left to right) order an RTL line as RTL.
const RLI: char = '\u{2067}';
const PDI: char = '\u{2069}';

/// The `<g>` holding every fitted box of a page: one `<text>` per line, one `<tspan>` per font run.
fn text_layer(
    boxes: &[&(&TextBox, Fitted)],
    fonts: &Fonts,
    choices: &HashMap<String, ChoiceAsset>,
) -> Result<String, String> {
    let mut w = xmlwriter::XmlWriter::new(xmlwriter::Options {
        use_single_quote: false,
        indent: xmlwriter::Indent::None,
        attributes_indent: xmlwriter::Indent::None,
    });
    w.set_preserve_whitespaces(true);
    w.start_element("g");
    w.write_attribute("id", "podconnect-text");
    for (text_box, fitted) in boxes {
        let color = box_color(text_box, choices)?;
        let size_mm = pt_to_mm(fitted.size_pt);
        let primary = fonts.face(fitted.primary);
        let pitch = text_box.line_height * size_mm;
        let block = pitch * fitted.lines.len() as f64;
        let top = text_box.y_mm
            + match text_box.valign {
                VAlign::Top => 0.0,
                VAlign::Middle => (text_box.height_mm - block) / 2.0,
                VAlign::Bottom => text_box.height_mm - block,
            };
        // Each line box is `pitch` high with the glyphs centred in it (CSS half-leading).
        let half_leading = (pitch - (primary.ascender + primary.descender) * size_mm) / 2.0;
        for (i, line) in fitted.lines.iter().enumerate() {
            if line.runs.is_empty() {
                continue;
            }
            let baseline = top + i as f64 * pitch + half_leading + primary.ascender * size_mm;
            // Alignment is logical: a left-aligned box starts RTL text at its right edge.
            let align = match (text_box.align, line.rtl) {
                (Align::Left, true) => Align::Right,
                (Align::Right, true) => Align::Left,
                (a, _) => a,
            };
            let (x, anchor) = match align {
                Align::Left => (text_box.x_mm, "start"),
                Align::Center => (text_box.x_mm + text_box.width_mm / 2.0, "middle"),
                Align::Right => (text_box.x_mm + text_box.width_mm, "end"),
            };
            w.start_element("text");
            w.write_attribute_fmt("x", format_args!("{x:.4}"));
            w.write_attribute_fmt("y", format_args!("{baseline:.4}"));
            w.write_attribute("xml:space", "preserve");
            // Inline style wins over any stylesheet in the template, so measuring and drawing agree.
            w.write_attribute_fmt(
                "style",
                format_args!(
                    "font-size:{size_mm:.4};fill:{};text-anchor:{anchor};letter-spacing:0;word-spacing:0;\
                     font-variant:normal;text-decoration:none;baseline-shift:0",
                    xml_escape(&color)
                ),
            );
            let last = line.runs.len() - 1;
            for (r, run) in line.runs.iter().enumerate() {
                let face = fonts.face(run.face);
                let font =
                    face.css_font().ok_or_else(|| format!("font family {:?} can not be named in SVG", face.family))?;
                w.start_element("tspan");
                w.write_attribute("style", &xml_escape(&font));
                let mut text = String::with_capacity(run.text.len() + 6);
                if line.rtl && r == 0 {
                    text.push(RLI);
                }
                text.push_str(&run.text);
                if line.rtl && r == last {
                    text.push(PDI);
                }
                w.write_text(&xml_escape(&text));
                w.end_element();
            }
            w.end_element();
        }
        if fitted.overflow {
            overflow_mark(&mut w, text_box);
        }
    }
    w.end_element();
    Ok(w.end_document())
}

/// Marks a box whose value does not fit (previews only), as layout programs mark overset text:
/// the box outlined in red, and a red square with a white "+" at its end.
fn overflow_mark(w: &mut xmlwriter::XmlWriter, text_box: &TextBox) {
    const RED: &str = "#d0021b";
    const SQUARE_MM: f64 = 2.4;
    let (x, y, width, height) = (text_box.x_mm, text_box.y_mm, text_box.width_mm, text_box.height_mm);
    w.start_element("rect");
    w.write_attribute("class", "podconnect-overflow");
    w.write_attribute_fmt("x", format_args!("{x:.4}"));
    w.write_attribute_fmt("y", format_args!("{y:.4}"));
    w.write_attribute_fmt("width", format_args!("{width:.4}"));
    w.write_attribute_fmt("height", format_args!("{height:.4}"));
    w.write_attribute("style", &format!("fill:none;stroke:{RED};stroke-width:0.3;stroke-dasharray:1.2 0.6"));
    w.end_element();
    let (sx, sy) = (x + width - SQUARE_MM / 2.0, y + height - SQUARE_MM / 2.0);
    w.start_element("rect");
    w.write_attribute_fmt("x", format_args!("{sx:.4}"));
    w.write_attribute_fmt("y", format_args!("{sy:.4}"));
    w.write_attribute_fmt("width", format_args!("{SQUARE_MM:.4}"));
    w.write_attribute_fmt("height", format_args!("{SQUARE_MM:.4}"));
    w.write_attribute("style", &format!("fill:{RED};stroke:none"));
    w.end_element();
    let (cx, cy, arm) = (sx + SQUARE_MM / 2.0, sy + SQUARE_MM / 2.0, SQUARE_MM * 0.3);
    w.start_element("path");
    w.write_attribute_fmt(
        "d",
        format_args!("M{:.4} {cy:.4}H{:.4}M{cx:.4} {:.4}V{:.4}", cx - arm, cx + arm, cy - arm, cy + arm),
    );
    w.write_attribute("style", "fill:none;stroke:#ffffff;stroke-width:0.4");
    w.end_element();
}
