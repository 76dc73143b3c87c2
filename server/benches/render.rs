//! Rendering benchmarks: compose + 600 px preview and compose + print PDF, for the sample two-page
//! business card and the four-page A4 newsletter (`cargo bench -p server --bench render`).
//!
//! Products load through the embedded storefront, exactly as the server loads them; the values are
//! the fields' placeholders (what a person would plausibly type) and each choice's default.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, criterion_group, criterion_main};
use server::domain::ids::ProductId;
use server::render::{self, Fonts, RenderInput, Template};
use server::storefront::embedded::{EmbeddedStorefront, Printable};

/// A product as the renderer sees it, with plausible customer values.
struct Sample<'a> {
    template: &'a Template,
    input: RenderInput,
}

fn sample<'a>(store: &'a EmbeddedStorefront, id: &str) -> Sample<'a> {
    let product = ProductId::parse(id).expect("a product id");
    let Ok(Printable::Customizable(loaded)) = store.printable(&product) else {
        panic!("{id} is not a customizable product of the sample storefront");
    };
    let input = loaded.placeholder_input();
    Sample { template: &loaded.template, input }
}

fn bench(c: &mut Criterion, name: &str, sample: &Sample<'_>, fonts: &Fonts) {
    let (template, input) = (sample.template, &sample.input);
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("storefront/sample");
    let store = EmbeddedStorefront::load(&root).expect("the sample storefront loads");
    bench(c, "business-card-2p", &sample(&store, "classic-business-card"), store.fonts());
    bench(c, "a4-4p", &sample(&store, "newsletter-a4"), store.fonts());
}

criterion_group!(render_benches, benches);
criterion_main!(render_benches);
