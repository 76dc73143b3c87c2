//! Tiny PDFs made by hand for upload tests (a valid one with `n` pages, one without pages and
//! one that declares encryption, each with a correct cross-reference table), and what poppler's
//! tools say of a PDF.

/// What `pdfinfo` says of a PDF: its page count and its first page's size in points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PdfInfo {
    pub pages: u32,
    pub width_pt: f64,
    pub height_pt: f64,
}

/// Runs a poppler tool (`pdfinfo`, `pdftotext`, …) on the PDF and returns what it printed.
/// Panics with the install hint when poppler is missing or the tool fails.
pub fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("file.pdf");
    std::fs::write(&path, pdf).expect("the PDF is written");
    let output = std::process::Command::new(tool)
        .args(args)
        .arg(&path)
        .args(if tool == "pdftotext" { &["-"][..] } else { &[][..] })
        .output()
        .unwrap_or_else(|e| panic!("{tool} runs (the test command installs poppler-utils): {e}"));
    assert!(output.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `pdfinfo`'s page count and page size.
pub fn pdfinfo(pdf: &[u8]) -> PdfInfo {
    let info = poppler("pdfinfo", &[], pdf);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("pdfinfo has no {name}:\n{info}"))
            .to_owned()
    };
    let pages = field("Pages:").parse().expect("a page count");
    // "Page size:      595.276 x 841.89 pts (A4)"
    let size = field("Page size:");
    let mut numbers = size.split_whitespace().filter_map(|w| w.parse::<f64>().ok());
    let (width_pt, height_pt) = (numbers.next().expect("a width"), numbers.next().expect("a height"));
    PdfInfo { pages, width_pt, height_pt }
}

/// A valid PDF with `pages` blank A4 pages (0 makes a PDF without pages).
pub fn pdf(pages: usize) -> Vec<u8> {
    build(pages, false)
}

/// A one-page PDF whose trailer declares it encrypted (standard security handler, RC4 40-bit).
pub fn encrypted_pdf() -> Vec<u8> {
    build(1, true)
}

fn build(pages: usize, encrypted: bool) -> Vec<u8> {
    // Objects: 1 catalog, 2 page tree, then the pages, then the encryption dictionary.
    let page_ids: Vec<usize> = (0..pages).map(|n| 3 + n).collect();
    let kids: Vec<String> = page_ids.iter().map(|id| format!("{id} 0 R")).collect();
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")),
    ];
    for _ in &page_ids {
        objects.push("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>".to_owned());
    }
    let encrypt_id = objects.len() + 1;
    if encrypted {
        objects.push(format!(
            "<< /Filter /Standard /V 1 /R 2 /Length 40 /P -44 /O <{}> /U <{}> >>",
            "ab".repeat(32),
            "cd".repeat(32)
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (index, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", index + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let encrypt = if encrypted {
        format!(" /Encrypt {encrypt_id} 0 R /ID [<{0}> <{0}>]", "0123456789abcdef0123456789abcdef")
    } else {
        String::new()
    };
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R{encrypt} >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    out
}
