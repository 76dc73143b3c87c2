//! Rendering benchmarks: compose + 600 px preview and compose + print PDF, for the sample two-page
//! business card and a four-page A4 product (`cargo bench -p server --bench render`).
//!
//! Templates come from server/storefront/sample/products; this file reads their `template.toml` itself
//! (only what rendering needs) so the bench does not depend on the storefront loader. Sample values are
//! the fields' placeholders, choices their default option.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use server::render::{self, Align, BoxColor, ChoiceAsset, Fonts, PageGeometry, RenderInput, Template, TextBox, VAlign};
use toml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn fonts() -> Fonts {
    let shipped = root().join("storefront/sample/fonts");
    let dir = if shipped.is_dir() { shipped } else { root().join("src/render/testdata/fonts") };
    Fonts::load(&dir).expect("fonts load")
}

fn read_toml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// A sample product as the renderer sees it, with plausible customer values.
struct Sample {
    template: Template,
    input: RenderInput,
}

fn load_sample(id: &str) -> Option<Sample> {
    let folder = root().join("storefront/sample/products").join(id);
    if !folder.join("template.toml").is_file() {
        return None;
    }
    let product = read_toml(&folder.join("product.toml"));
    let trim = product.get("trim")?;
    let pages = trim.get("pages")?.as_integer()? as usize;
    let file = read_toml(&folder.join("template.toml"));
    let geometry = PageGeometry {
        trim_width_mm: num(trim, "width_mm")?,
        trim_height_mm: num(trim, "height_mm")?,
        bleed_mm: num(trim, "bleed_mm")?,
        crop_marks: flag(&file, "crop_marks"),
    };
    let sources = (1..=pages)
        .map(|n| std::fs::read_to_string(folder.join(format!("pages/page-{n}.svg"))).ok())
        .collect::<Option<Vec<_>>>()?;

    let mut input = RenderInput::default();
    for field in file.get("field").and_then(Value::as_array).into_iter().flatten() {
        let id = str_of(field, "id")?.to_string();
        if str_of(field, "type") == Some("choice") {
            let options = field.get("options")?.as_array()?;
            let default = str_of(field, "default");
            let option = options.iter().find(|o| str_of(o, "value") == default).or(options.first())?;
            let asset = ChoiceAsset {
                color: str_of(option, "color").map(String::from),
                image: str_of(option, "image").map(PathBuf::from),
            };
            input.choices.insert(id, asset);
        } else {
            let value = str_of(field, "placeholder").filter(|s| !s.is_empty()).or(str_of(field, "default"));
            if let Some(value) = value.filter(|s| !s.is_empty()) {
                input.texts.insert(id, value.to_string());
            }
        }
    }
    let mut boxes = Vec::new();
    for b in file.get("box").and_then(Value::as_array).into_iter().flatten() {
        let color = str_of(b, "color").unwrap_or("#000000");
        let color = match color.strip_prefix("{{").and_then(|c| c.strip_suffix("}}")) {
            Some(choice) => BoxColor::FromChoice(choice.to_string()),
            None => BoxColor::Fixed(color.to_string()),
        };
        boxes.push(TextBox {
            field: str_of(b, "field")?.to_string(),
            page: b.get("page")?.as_integer()? as usize - 1,
            x_mm: num(b, "x_mm")?,
            y_mm: num(b, "y_mm")?,
            width_mm: num(b, "width_mm")?,
            height_mm: num(b, "height_mm")?,
            font_family: str_of(b, "font")?.to_string(),
            weight: num(b, "weight").unwrap_or(400.0) as u16,
            italic: flag(b, "italic"),
            size_pt: num(b, "size_pt")?,
            min_size_pt: num(b, "min_size_pt")?,
            color,
            align: match str_of(b, "align") {
                Some("center") => Align::Center,
                Some("right") => Align::Right,
                _ => Align::Left,
            },
            valign: match str_of(b, "valign") {
                Some("middle") => VAlign::Middle,
                Some("bottom") => VAlign::Bottom,
                _ => VAlign::Top,
            },
            line_height: num(b, "line_height").unwrap_or(1.2),
            multiline: flag(b, "multiline"),
            prefix: str_of(b, "prefix").unwrap_or("").to_string(),
            uppercase: flag(b, "uppercase"),
        });
    }
    Some(Sample { template: Template { geometry, pages: sources, boxes, base_dir: folder }, input })
}

/// A four-page A4 sample: a 4-page A4 product if the catalog has one, else the A4 flyer's page repeated
/// four times (same artwork and boxes on every page).
fn a4_four_pages() -> Option<(String, Sample)> {
    let products = root().join("storefront/sample/products");
    let mut ids: Vec<String> =
        std::fs::read_dir(&products).ok()?.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    ids.sort();
    for id in &ids {
        if let Some(sample) = load_sample(id) {
            let g = sample.template.geometry;
            let a4 = (g.trim_width_mm - 210.0).abs() < 0.5 && (g.trim_height_mm - 297.0).abs() < 0.5;
            if a4 && sample.template.pages.len() == 4 {
                return Some((id.clone(), sample));
            }
        }
    }
    let mut sample = load_sample("a4-flyer")?;
    let page = sample.template.pages.first()?.clone();
    let boxes: Vec<TextBox> = sample.template.boxes.iter().filter(|b| b.page == 0).cloned().collect();
    sample.template.pages = vec![page; 4];
    sample.template.boxes = (0..4).flat_map(|p| boxes.iter().cloned().map(move |b| TextBox { page: p, ..b })).collect();
    Some(("a4-flyer (page 1 x 4)".into(), sample))
}

fn bench(c: &mut Criterion, name: &str, sample: &Sample, fonts: &Fonts) {
    let (template, input) = (&sample.template, &sample.input);
    // Fail loudly (not in the timing loop) if the sample does not render.
    let document = render::compose(template, fonts, input).unwrap_or_else(|e| panic!("{name}: {e}"));
    let previews = render::preview(&document, fonts, 600, &[]).expect("preview");
    let pdf = render::pdf(&document).expect("pdf");
    // RENDER_BENCH_DUMP=<dir> keeps what was rendered, to look at.
    if let Some(dir) = std::env::var_os("RENDER_BENCH_DUMP") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("dump folder");
        for image in &previews {
            std::fs::write(dir.join(format!("{name}-{}.png", image.page_number)), &image.png).expect("dump");
        }
        std::fs::write(dir.join(format!("{name}.pdf")), &pdf).expect("dump");
    }

    let mut group = c.benchmark_group(name);
    group.bench_function("compose+preview-600px", |b| {
        b.iter(|| {
            let document = render::compose(template, fonts, input).expect("compose");
            black_box(render::preview(&document, fonts, 600, &[]).expect("preview"))
        })
    });
    group.bench_function("compose+pdf", |b| {
        b.iter(|| {
            let document = render::compose(template, fonts, input).expect("compose");
            black_box(render::pdf(&document).expect("pdf"))
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let fonts = fonts();
    match load_sample("classic-business-card") {
        Some(card) => bench(c, "business-card-2p", &card, &fonts),
        None => eprintln!("classic-business-card has no template yet: skipped"),
    }
    match a4_four_pages() {
        Some((source, a4)) => {
            eprintln!("four-page A4 sample: {source}");
            bench(c, "a4-4p", &a4, &fonts);
        }
        None => eprintln!("no A4 template yet: skipped"),
    }
}

criterion_group!(render_benches, benches);
criterion_main!(render_benches);
