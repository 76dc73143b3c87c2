//! What the core checks of a PDF it did not make before printing it: that it is a readable,
//! unencrypted PDF with pages (a printer cannot open a locked file, and a pageless one prints
//! nothing). Used for uploaded print files and for uStore's proofs.

use std::fmt;

/// Why bytes cannot be printed as a PDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdfProblem {
    /// The bytes do not start with `%PDF-`.
    NotPdf,
    /// It claims to be a PDF but cannot be read.
    Unreadable(String),
    /// It is encrypted (password-protected); printers cannot open it.
    Encrypted,
    /// It has no pages.
    NoPages,
}

impl fmt::Display for PdfProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PdfProblem::NotPdf => f.write_str("not a PDF"),
            PdfProblem::Unreadable(detail) => write!(f, "an unreadable PDF ({detail})"),
            PdfProblem::Encrypted => f.write_str("an encrypted (password-protected) PDF"),
            PdfProblem::NoPages => f.write_str("a PDF without pages"),
        }
    }
}

/// The page count of a printable PDF. CPU-bound: call it on the blocking pool for large files.
pub fn page_count(pdf: &[u8]) -> Result<u32, PdfProblem> {
    if !pdf.starts_with(b"%PDF-") {
        return Err(PdfProblem::NotPdf);
    }
    let document = match lopdf::Document::load_mem(pdf) {
        Ok(document) => document,
        Err(lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword) => return Err(PdfProblem::Encrypted),
        Err(err) => return Err(PdfProblem::Unreadable(err.to_string())),
    };
    // lopdf opens files locked with an empty password; printers may not, so both are refused.
    if document.was_encrypted() || document.is_encrypted() {
        return Err(PdfProblem::Encrypted);
    }
    match document.get_pages().len() {
        0 => Err(PdfProblem::NoPages),
        n => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_readable_pdfs_are_counted() {
        assert_eq!(page_count(b"<html>not a pdf</html>"), Err(PdfProblem::NotPdf));
        assert!(matches!(page_count(b"%PDF-1.7\ngarbage"), Err(PdfProblem::Unreadable(_))));
    }
}
