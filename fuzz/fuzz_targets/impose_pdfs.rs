//! Fuzz target: a print-ready PDF as a shop ships it or uStore proofs it (seeded with the sample
//! door sign: 210 × 148 mm, 3 mm bleed, two pages), imposed onto A3 sheets with long-edge duplex
//! and pictured by the sheet preview.
//! Whatever the bytes, `impose` answers with a sheet PDF or an error: never a panic, a hang or
//! unbounded memory.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use server::render::impose::{self, Duplex, Piece, Plan, PlanOptions, Sheet};

static PLAN: LazyLock<Plan> = LazyLock::new(|| {
    let sign = Piece { trim_width_mm: 210.0, trim_height_mm: 148.0, bleed_mm: 3.0, pages: 2 };
    let a3 = Sheet { width_mm: 297.0, height_mm: 420.0, margin_mm: 4.2 };
    let options = PlanOptions { duplex: Duplex::LongEdge, quantity: 5, fit: false, gutter_mm: 0.0 };
    impose::plan(&sign, &a3, &options).expect("door signs fit on A3")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(sheets) = impose::impose(data, &PLAN) {
        assert!(sheets.starts_with(b"%PDF-"), "an imposed document is a PDF");
    }
    // The same bytes as a piece's page image: the preview refuses what is not a PNG.
    let _ = impose::sheet_preview(&PLAN, false, &[data.to_vec()], 128);
});
