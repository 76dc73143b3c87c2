//! Fuzz target: the embedded storefront's files as an operator could get them wrong, loaded by
//! `server::storefront`. Input pieces separated by 0xFF become files in a scratch storefront:
//! with the first byte even, `template.toml` and the pages of one 85 x 55 mm product, loaded by
//! `template::load` with the shipped fonts; with it odd, also `storefront.toml` and `product.toml`,
//! loaded by `EmbeddedStorefront::load`. A broken file must be refused with an error naming the
//! file, never a panic.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use server::domain::ids::ProductId;
use server::render::{Fonts, PageGeometry};
use server::storefront::embedded::EmbeddedStorefront;
use server::storefront::files::StorefrontFiles;
use server::storefront::template;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/storefront/sample");

/// A scratch storefront: `<root>/fonts` (one small font), `<root>/products/card/` with a
/// thumbnail and the option pictures of the sample's kraft card.
struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
    card: PathBuf,
}

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a scratch folder");
    let root = dir.path().join("shop");
    let card = root.join("products").join("card");
    std::fs::create_dir_all(root.join("fonts")).expect("fonts folder");
    std::fs::create_dir_all(card.join("pages")).expect("pages folder");
    std::fs::create_dir_all(card.join("images")).expect("images folder");
    let sample = Path::new(SAMPLE);
    // One small font keeps a whole-storefront load cheap; templates get the real fonts below.
    std::fs::copy(sample.join("fonts/NotoSansHebrew-Regular.ttf"), root.join("fonts/NotoSansHebrew-Regular.ttf"))
        .expect("copy a font");
    let kraft = sample.join("products/kraft-eco-business-card");
    std::fs::copy(kraft.join("thumbnail.png"), card.join("thumbnail.png")).expect("copy the thumbnail");
    for entry in std::fs::read_dir(kraft.join("images")).expect("kraft images") {
        let path = entry.expect("an image").path();
        std::fs::copy(&path, card.join("images").join(path.file_name().expect("a name"))).expect("copy an image");
    }
    Scratch { _dir: dir, root, card }
});

static FONTS: LazyLock<Fonts> = LazyLock::new(|| Fonts::load(&Path::new(SAMPLE).join("fonts")).expect("shipped fonts"));

/// Writes `pages` as page-1.svg, page-2.svg … and removes any page left from the last input.
fn write_pages(card: &Path, pages: &[&[u8]]) -> u32 {
    const ONE_EMPTY_PAGE: &[&[u8]] = &[b""];
    let pages = if pages.is_empty() { ONE_EMPTY_PAGE } else { pages };
    for n in 1..=3 {
        let path = card.join("pages").join(format!("page-{n}.svg"));
        match pages.get(n - 1) {
            Some(svg) => std::fs::write(&path, svg).expect("write a page"),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    pages.len() as u32
}

fn names_a_file(err: &anyhow::Error, root: &Path) {
    let text = format!("{err:#}");
    assert!(text.contains(&*root.to_string_lossy()), "the error does not name the file at fault: {text}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let pieces: Vec<&[u8]> = rest.split(|&b| b == 0xFF).collect();
    let scratch = &*SCRATCH;
    if mode % 2 == 0 {
        // template.toml, then up to three pages.
        std::fs::write(scratch.card.join("template.toml"), pieces[0]).expect("write template.toml");
        let pages = write_pages(&scratch.card, &pieces[1..pieces.len().min(4)]);
        let geometry = PageGeometry { trim_width_mm: 85.0, trim_height_mm: 55.0, bleed_mm: 0.0, crop_marks: false };
        let id = ProductId::parse("card").expect("a valid id");
        let files = StorefrontFiles::Folder(scratch.root.clone());
        if let Err(err) = template::load(&files, "products/card", &id, geometry, pages, &FONTS) {
            names_a_file(&err, &scratch.card);
        }
    } else {
        // storefront.toml, product.toml, template.toml, then up to three pages.
        let piece = |i: usize| pieces.get(i).copied().unwrap_or_default();
        std::fs::write(scratch.root.join("storefront.toml"), piece(0)).expect("write storefront.toml");
        std::fs::write(scratch.card.join("product.toml"), piece(1)).expect("write product.toml");
        std::fs::write(scratch.card.join("template.toml"), piece(2)).expect("write template.toml");
        write_pages(&scratch.card, pieces.get(3..pieces.len().min(6)).unwrap_or_default());
        if let Err(err) = EmbeddedStorefront::load(&scratch.root) {
            names_a_file(&err, &scratch.root);
        }
    }
});
