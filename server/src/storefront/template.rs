//! Loading a customizable product's `template.toml` and `pages/` into the two things the embedded
//! storefront needs: the `Form` people fill in and the renderer's `Template` that prints it. Every
//! rule is checked at start-up, and an error names the file and the entry at fault.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, bail, ensure};
use regex::Regex;
use serde::Deserialize;

use crate::domain::catalog::{Image, ProductId};
use crate::domain::form::{ChoiceOption, Condition, Field, FieldKind, Form, Section};
use crate::render::{self, Align, BoxColor, ChoiceAsset, Fonts, PageGeometry, TextBox, VAlign};
use crate::storefront::embedded::read_toml;
use crate::storefront::files::StorefrontFiles;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    #[serde(default)]
    crop_marks: bool,
    #[serde(default, rename = "section")]
    sections: Vec<SectionFile>,
    #[serde(default, rename = "field")]
    fields: Vec<FieldFile>,
    #[serde(default, rename = "box")]
    boxes: Vec<BoxFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionFile {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum KindFile {
    Text,
    Multiline,
    Choice,
    Number,
    Email,
    Phone,
    Date,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    id: String,
    label: String,
    #[serde(rename = "type")]
    kind: KindFile,
    section: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    default: String,
    #[serde(default)]
    placeholder: String,
    #[serde(default)]
    help: String,
    #[serde(default)]
    min_length: usize,
    #[serde(default)]
    max_length: usize,
    #[serde(default)]
    pattern: String,
    min: Option<f64>,
    max: Option<f64>,
    step: Option<f64>,
    #[serde(default)]
    max_lines: usize,
    #[serde(default)]
    options: Vec<OptionFile>,
    visible_when: Option<ConditionFile>,
    #[serde(default)]
    affects_price: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionFile {
    value: String,
    label: String,
    color: Option<String>,
    image: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionFile {
    field: String,
    values: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum AlignFile {
    Left,
    Center,
    Right,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum VAlignFile {
    Top,
    Middle,
    Bottom,
}

fn default_weight() -> u16 {
    400
}

fn default_line_height() -> f64 {
    1.2
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoxFile {
    field: String,
    page: usize,
    x_mm: f64,
    y_mm: f64,
    width_mm: f64,
    height_mm: f64,
    font: String,
    #[serde(default = "default_weight")]
    weight: u16,
    #[serde(default)]
    italic: bool,
    size_pt: f64,
    min_size_pt: f64,
    color: String,
    align: AlignFile,
    valign: VAlignFile,
    #[serde(default = "default_line_height")]
    line_height: f64,
    #[serde(default)]
    multiline: bool,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    uppercase: bool,
}

/// A customizable product's form and print template, ready to use.
pub struct LoadedTemplate {
    pub form: Form,
    pub template: render::Template,
    /// For each choice field, the assets of each option, by option value.
    pub choices: HashMap<String, HashMap<String, ChoiceAsset>>,
}

impl LoadedTemplate {
    /// What the renderer gets for the product filled in with its placeholders (or defaults) and
    /// default choices: how benchmarks and tests render a realistic sample.
    pub fn placeholder_input(&self) -> render::RenderInput {
        let mut input = render::RenderInput::default();
        for field in &self.form.fields {
            if field.kind == crate::domain::form::FieldKind::Choice {
                if let Some(asset) = self.choices.get(&field.id).and_then(|o| o.get(&field.default)) {
                    input.choices.insert(field.id.clone(), asset.clone());
                }
            } else {
                let value = if field.placeholder.is_empty() { &field.default } else { &field.placeholder };
                if !value.is_empty() {
                    input.texts.insert(field.id.clone(), value.replace("\\n", "\n"));
                }
            }
        }
        input
    }
}

/// Reads `pages/page-1.svg` … `pages/page-N.svg` of a product folder.
pub fn load_pages(files: &StorefrontFiles, folder: &str, pages: u32) -> anyhow::Result<Vec<String>> {
    let mut sources = Vec::with_capacity(pages as usize);
    for n in 1..=pages {
        let name = format!("page-{n}.svg");
        let (path, _) = crate::storefront::files::inside(files, &format!("{folder}/pages"), &name)
            .with_context(|| files.shown(&format!("{folder}/pages/{name}")))?;
        let bytes = files.read(&path).with_context(|| format!("{}: unreadable", files.shown(&path)))?;
        let text =
            String::from_utf8(bytes.into_owned()).with_context(|| format!("{}: unreadable", files.shown(&path)))?;
        sources.push(text);
    }
    let extra = format!("{folder}/pages/page-{}.svg", pages + 1);
    ensure!(
        !files.exists(&extra),
        "{}: the product declares {pages} pages but has more page files",
        files.shown(&extra)
    );
    Ok(sources)
}

/// Loads and checks `template.toml` and the pages of a customizable product.
pub fn load(
    files: &StorefrontFiles,
    folder: &str,
    product: &ProductId,
    geometry: PageGeometry,
    pages: u32,
    fonts: &Fonts,
) -> anyhow::Result<LoadedTemplate> {
    let file: TemplateFile = read_toml(files, &format!("{folder}/template.toml"))?;
    let path = files.shown(&format!("{folder}/template.toml"));
    let at = |what: String| format!("{path}: {what}");

    let mut section_ids = HashSet::new();
    let mut sections = Vec::new();
    for section in &file.sections {
        ensure!(
            check_name(&section.id),
            "{}",
            at(format!("section id \"{}\" must be 1 to 32 of a-z 0-9 _", section.id))
        );
        ensure!(
            section_ids.insert(section.id.clone()),
            "{}",
            at(format!("section \"{}\" is declared twice", section.id))
        );
        sections.push(Section {
            id: section.id.clone(),
            title: section.title.clone(),
            description: section.description.clone(),
        });
    }

    let mut fields: Vec<Field> = Vec::new();
    let mut choices = HashMap::new();
    for spec in &file.fields {
        let field =
            load_field(files, folder, spec, &section_ids).with_context(|| at(format!("field \"{}\"", spec.id)))?;
        ensure!(fields.iter().all(|f| f.id != field.id), "{}", at(format!("field \"{}\" is declared twice", field.id)));
        if field.kind == FieldKind::Choice {
            // The option's picture, loaded above for the form, is what prints: no file is read later.
            let assets = field
                .options
                .iter()
                .map(|o| {
                    let image = o.image.as_ref().map(|image| render::data_uri(&image.info.content_type, &image.data));
                    (o.value.clone(), ChoiceAsset { color: o.swatch_color.clone(), image })
                })
                .collect();
            choices.insert(field.id.clone(), assets);
        }
        fields.push(field);
    }
    for field in &fields {
        if let Some(condition) = &field.visible_when {
            let parent = fields.iter().find(|f| f.id == condition.field);
            let Some(parent) = parent.filter(|p| p.kind == FieldKind::Choice) else {
                bail!("{}", at(format!("field \"{}\": visible_when must name a choice field", field.id)));
            };
            for value in &condition.values {
                ensure!(
                    parent.options.iter().any(|o| &o.value == value),
                    "{}",
                    at(format!(
                        "field \"{}\": visible_when value \"{value}\" is not an option of \"{}\"",
                        field.id, parent.id
                    ))
                );
            }
        }
    }
    let form = Form { product: product.clone(), sections, fields };
    let defaults = form.defaults();
    let problems = form.check(&defaults);
    ensure!(
        problems.iter().all(|p| p.code == crate::domain::form::FieldErrorCode::Required),
        "{}",
        at(format!("default values break their own rules: {problems:?}"))
    );

    let mut boxes = Vec::new();
    for spec in &file.boxes {
        let text_box = load_box(spec, &form, pages).with_context(|| at(format!("box for \"{}\"", spec.field)))?;
        boxes.push(text_box);
    }

    let template = render::Template {
        geometry: PageGeometry { crop_marks: file.crop_marks, ..geometry },
        pages: load_pages(files, folder, pages)?,
        boxes,
    };
    let options: HashMap<String, Vec<ChoiceAsset>> = choices
        .iter()
        .map(|(field, assets): (&String, &HashMap<String, ChoiceAsset>)| {
            (field.clone(), assets.values().cloned().collect())
        })
        .collect();
    render::check_template(&template, fonts, &options).with_context(|| at("template".into()))?;
    Ok(LoadedTemplate { form, template, choices })
}

fn check_name(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_color(color: &str) -> bool {
    color.len() == 7 && color.starts_with('#') && color[1..].chars().all(|c| c.is_ascii_hexdigit())
}

fn load_field(
    files: &StorefrontFiles,
    folder: &str,
    spec: &FieldFile,
    sections: &HashSet<String>,
) -> anyhow::Result<Field> {
    ensure!(check_name(&spec.id), "the id must be 1 to 32 of a-z 0-9 _");
    ensure!(!spec.label.trim().is_empty(), "the label must not be empty");
    if let Some(section) = &spec.section {
        ensure!(sections.contains(section), "section \"{section}\" does not exist");
    }
    let kind = match spec.kind {
        KindFile::Text => FieldKind::Text,
        KindFile::Multiline => FieldKind::Multiline,
        KindFile::Choice => FieldKind::Choice,
        KindFile::Number => FieldKind::Number,
        KindFile::Email => FieldKind::Email,
        KindFile::Phone => FieldKind::Phone,
        KindFile::Date => FieldKind::Date,
    };
    ensure!(spec.max_length == 0 || spec.min_length <= spec.max_length, "min_length is above max_length");
    ensure!(
        spec.max_length <= crate::domain::form::HARD_VALUE_LIMIT,
        "max_length is above the server's limit of {}",
        crate::domain::form::HARD_VALUE_LIMIT
    );
    let numeric = spec.min.is_some() || spec.max.is_some() || spec.step.is_some();
    ensure!(!numeric || kind == FieldKind::Number, "min, max and step are for number fields");
    if let (Some(min), Some(max)) = (spec.min, spec.max) {
        ensure!(min <= max, "min is above max");
    }
    ensure!(spec.step.is_none_or(|s| s > 0.0), "step must be positive");
    ensure!(spec.max_lines == 0 || kind == FieldKind::Multiline, "max_lines is for multiline fields");
    ensure!(
        spec.options.is_empty() == (kind != FieldKind::Choice),
        "options are required for choice fields, and only for them"
    );
    let pattern = match spec.pattern.as_str() {
        "" => None,
        pattern => Some(
            Regex::new(pattern).with_context(|| format!("pattern {pattern:?} is not a valid regular expression"))?,
        ),
    };
    let mut options = Vec::new();
    let mut values = HashSet::new();
    for option in &spec.options {
        let ok = !option.value.is_empty()
            && option.value.len() <= 64
            && option.value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        ensure!(ok, "option value \"{}\" must be 1 to 64 of a-z 0-9 _ -", option.value);
        ensure!(values.insert(option.value.clone()), "option \"{}\" is declared twice", option.value);
        if let Some(color) = &option.color {
            ensure!(check_color(color), "option \"{}\": color must be #rrggbb", option.value);
        }
        let image = match &option.image {
            Some(name) => {
                Some(option_image(files, folder, name).with_context(|| format!("option \"{}\"", option.value))?)
            }
            None => None,
        };
        options.push(ChoiceOption {
            value: option.value.clone(),
            label: option.label.clone(),
            swatch_color: option.color.clone(),
            image,
        });
    }
    let visible_when =
        spec.visible_when.as_ref().map(|c| Condition { field: c.field.clone(), values: c.values.clone() });
    Ok(Field {
        id: spec.id.clone(),
        code: spec.id.clone(),
        label: spec.label.clone(),
        help: spec.help.clone(),
        kind,
        required: spec.required,
        default: spec.default.clone(),
        placeholder: spec.placeholder.clone(),
        min_length: spec.min_length,
        max_length: spec.max_length,
        pattern,
        min: spec.min,
        max: spec.max,
        step: spec.step,
        max_lines: spec.max_lines,
        options,
        section: spec.section.clone(),
        visible_when,
        affects_preview: true,
        affects_price: spec.affects_price,
        read_only: false,
    })
}

/// The option's picture, shown in the form: a PNG or JPEG of at most 512 KiB in the product folder.
fn option_image(files: &StorefrontFiles, folder: &str, name: &str) -> anyhow::Result<Image> {
    crate::storefront::embedded::load_image(files, folder, name, 512 * 1024)
        .with_context(|| format!("image \"{name}\""))
}

fn load_box(spec: &BoxFile, form: &Form, pages: u32) -> anyhow::Result<TextBox> {
    let Some(field) = form.field(&spec.field) else { bail!("field \"{}\" does not exist", spec.field) };
    ensure!(field.kind != FieldKind::Choice, "a choice field is printed through placeholders, not a box");
    ensure!(spec.page >= 1 && spec.page <= pages as usize, "page {} does not exist (1 to {pages})", spec.page);
    ensure!(
        spec.multiline == (field.kind == FieldKind::Multiline),
        "multiline boxes are for multiline fields, and only them"
    );
    let positive = [spec.width_mm, spec.height_mm, spec.size_pt, spec.min_size_pt, spec.line_height];
    ensure!(positive.iter().all(|v| v.is_finite() && *v > 0.0), "sizes must be positive numbers");
    ensure!(spec.min_size_pt <= spec.size_pt, "min_size_pt is above size_pt");
    ensure!(spec.weight == 400 || spec.weight == 700, "weight must be 400 or 700");
    let color = match spec.color.strip_prefix("{{").and_then(|c| c.strip_suffix("}}")) {
        Some(choice) => {
            let ok = form
                .field(choice)
                .is_some_and(|f| f.kind == FieldKind::Choice && f.options.iter().all(|o| o.swatch_color.is_some()));
            ensure!(ok, "color \"{}\" must name a choice field whose options all have a color", spec.color);
            BoxColor::FromChoice(choice.to_owned())
        }
        None => {
            ensure!(check_color(&spec.color), "color must be #rrggbb or {{{{choice_field}}}}");
            BoxColor::Fixed(spec.color.clone())
        }
    };
    Ok(TextBox {
        field: spec.field.clone(),
        page: spec.page - 1,
        x_mm: spec.x_mm,
        y_mm: spec.y_mm,
        width_mm: spec.width_mm,
        height_mm: spec.height_mm,
        font_family: spec.font.clone(),
        weight: spec.weight,
        italic: spec.italic,
        size_pt: spec.size_pt,
        min_size_pt: spec.min_size_pt,
        color,
        align: match spec.align {
            AlignFile::Left => Align::Left,
            AlignFile::Center => Align::Center,
            AlignFile::Right => Align::Right,
        },
        valign: match spec.valign {
            VAlignFile::Top => VAlign::Top,
            VAlignFile::Middle => VAlign::Middle,
            VAlignFile::Bottom => VAlign::Bottom,
        },
        line_height: spec.line_height,
        multiline: spec.multiline,
        prefix: spec.prefix.clone(),
        uppercase: spec.uppercase,
    })
}
