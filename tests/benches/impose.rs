//! Imposition benchmark: `plan` + `impose` of 100 and 1,000 classic business cards (85×55 mm, 3 mm
//! bleed, two pages) on A4, long-edge duplex, from the print-ready PDF the real renderer makes of the
//! sample card (`cargo bench -p tests --bench impose`). Prints each output's size next to the input's,
//! and for every sample product the sheets its default quantity takes on A4 against one per sheet.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use server::domain::ids::ProductId;
use server::render;
use server::render::impose::{self, Duplex, Piece, PlanOptions, Sheet};
use server::storefront::embedded::{EmbeddedStorefront, Printable};

const CARD: Piece = Piece { trim_width_mm: 85.0, trim_height_mm: 55.0, bleed_mm: 3.0, pages: 2 };
const A4: Sheet = Sheet { width_mm: 210.0, height_mm: 297.0, margin_mm: 4.2 };

/// The sample business card rendered with its fields' placeholders and default choices.
fn rendered_card() -> Vec<u8> {
    let store = EmbeddedStorefront::built_in_sample().expect("the built-in sample storefront");
    let id = ProductId::parse("classic-business-card").expect("a product id");
    let Ok(Printable::Customizable(loaded)) = store.printable(&id) else {
        panic!("the classic business card is not a customizable product");
    };
    let input = loaded.placeholder_input();
    let document = render::compose(&loaded.template, store.fonts(), &input).expect("the card composes");
    render::pdf(&document).expect("the card's PDF")
}

/// Every sample product's default quantity on A4 (two-sided where it has a back): the sheets it
/// takes imposed against printing one piece per sheet.
fn sheets_saved() {
    let products = server::config::default_storefront_dir().join("products");
    let mut entries: Vec<_> = std::fs::read_dir(&products).expect("the sample products").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    let (mut imposed_total, mut single_total) = (0, 0);
    for entry in entries {
        let Ok(text) = std::fs::read_to_string(entry.path().join("product.toml")) else { continue };
        let product: toml::Value = toml::from_str(&text).expect("a product.toml");
        let number = |table: &str, key: &str| {
            product[table][key].as_float().or(product[table][key].as_integer().map(|i| i as f64))
        };
        let piece = Piece {
            trim_width_mm: number("trim", "width_mm").expect("a width"),
            trim_height_mm: number("trim", "height_mm").expect("a height"),
            bleed_mm: number("trim", "bleed_mm").unwrap_or(0.0),
            pages: number("trim", "pages").unwrap_or(1.0) as u32,
        };
        let quantity = number("quantity", "default").unwrap_or(1.0) as u32;
        let duplex = if piece.pages >= 2 { Duplex::LongEdge } else { Duplex::OneSided };
        let options = PlanOptions { duplex, quantity, fit: true, gutter_mm: 0.0 };
        let plan = impose::plan(&piece, &A4, &options).expect("plan");
        let single = quantity * if piece.pages >= 2 { piece.pages.div_ceil(2) } else { 1 };
        imposed_total += plan.sheet_count;
        single_total += single;
        println!(
            "{:<28} {:>4} × {:>5.1}×{:<5.1} mm: {:>2} per A4 sheet, {:>4} sheets instead of {:>4}{}",
            entry.file_name().to_string_lossy(),
            quantity,
            piece.trim_width_mm,
            piece.trim_height_mm,
            plan.per_sheet,
            plan.sheet_count,
            single,
            if plan.scale < 1.0 { format!(" (scaled to {:.0}% to fit)", plan.scale * 100.0) } else { String::new() }
        );
    }
    println!("all sample products at their default quantity: {imposed_total} sheets instead of {single_total}");
}

fn benches(c: &mut Criterion) {
    sheets_saved();
    let source = rendered_card();
    let mut group = c.benchmark_group("impose-business-cards-a4-duplex");
    for quantity in [100, 1_000] {
        let options = PlanOptions { duplex: Duplex::LongEdge, quantity, fit: false, gutter_mm: 0.0 };
        // Fail loudly (not in the timing loop) if it does not impose, and say what it makes.
        let plan = impose::plan(&CARD, &A4, &options).expect("plan");
        let sheets = impose::impose(&source, &plan).expect("impose");
        println!(
            "{quantity} cards: {} per sheet, {} sheets, {} pages; input {} bytes, output {} bytes",
            plan.per_sheet,
            plan.sheet_count,
            plan.page_count,
            source.len(),
            sheets.len()
        );
        group.bench_function(format!("{quantity}-cards"), |b| {
            b.iter(|| {
                let plan = impose::plan(&CARD, &A4, &options).expect("plan");
                black_box(impose::impose(&source, &plan).expect("impose"))
            })
        });
    }
    group.finish();
}

criterion_group!(impose_benches, benches);
criterion_main!(impose_benches);
