//! The shipped fonts: one shared fontdb database for usvg/svg2pdf, plus per-face coverage and metrics
//! for measuring, and the face-choice rules (primary face, fallback) that measuring and rendering share.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use fontdb::{Database, Family, Query, Source, Stretch, Style, Weight};

/// The shipped fonts, loaded once at start-up and shared by every render.
pub struct Fonts {
    db: Arc<Database>,
    faces: Vec<FaceEntry>,
    by_id: HashMap<fontdb::ID, usize>,
    /// Face used for the PREVIEW watermark.
    watermark: usize,
}

/// One face of a font file, with what measuring needs precomputed.
pub(super) struct FaceEntry {
    pub(super) id: fontdb::ID,
    data: Arc<Vec<u8>>,
    index: u32,
    /// The family name usvg matches on (fontdb's first family name).
    pub(super) family: String,
    pub(super) weight: u16,
    pub(super) style: Style,
    pub(super) stretch: Stretch,
    /// Sorted, disjoint inclusive ranges of code points that map to a real glyph.
    coverage: Vec<(u32, u32)>,
    /// Ascender and descender (positive, below the baseline) in ems.
    pub(super) ascender: f64,
    pub(super) descender: f64,
    /// usvg resolves this face's own family/weight/style/stretch back to it, so a tspan naming those
    /// attributes renders with exactly this face. Only such faces are used as fallbacks.
    reachable: bool,
}

impl FaceEntry {
    pub(super) fn covers(&self, c: char) -> bool {
        let c = c as u32;
        self.coverage
            .binary_search_by(|&(lo, hi)| {
                if hi < c {
                    std::cmp::Ordering::Less
                } else if lo > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    /// A rustybuzz face over the shared font bytes (cheap: tables are parsed lazily).
    pub(super) fn shaper(&self) -> Option<rustybuzz::Face<'_>> {
        rustybuzz::Face::from_slice(&self.data, self.index)
    }

    pub(super) fn italic(&self) -> bool {
        self.style != Style::Normal
    }

    /// The family name as a CSS string, or None when it can not be written safely.
    pub(super) fn css_family(&self) -> Option<String> {
        css_family(&self.family)
    }

    /// CSS declarations naming exactly this face's family, weight, style and stretch, so that usvg's font
    /// query lands on this very face.
    pub(super) fn css_font(&self) -> Option<String> {
        let style = match self.style {
            Style::Normal => "normal",
            Style::Italic => "italic",
            Style::Oblique => "oblique",
        };
        let stretch = match self.stretch {
            Stretch::UltraCondensed => "ultra-condensed",
            Stretch::ExtraCondensed => "extra-condensed",
            Stretch::Condensed => "condensed",
            Stretch::SemiCondensed => "semi-condensed",
            Stretch::Normal => "normal",
            Stretch::SemiExpanded => "semi-expanded",
            Stretch::Expanded => "expanded",
            Stretch::ExtraExpanded => "extra-expanded",
            Stretch::UltraExpanded => "ultra-expanded",
        };
        let family = self.css_family()?;
        Some(format!("font-family:{family};font-weight:{};font-style:{style};font-stretch:{stretch}", self.weight))
    }
}

/// Quotes a family name for a `font-family` declaration; refuses names that would need CSS escapes.
pub(super) fn css_family(family: &str) -> Option<String> {
    let safe = !family.is_empty() && family.chars().all(|c| !c.is_control() && !"'\"\\;<>&{}".contains(c));
    safe.then(|| format!("'{family}'"))
}

impl Fonts {
    /// Every .ttf/.otf/.ttc under `dir`; no system fonts. Error if none.
    pub fn load(dir: &Path) -> anyhow::Result<Fonts> {
        let mut paths = Vec::new();
        collect_font_files(dir, &mut paths, 0).with_context(|| format!("reading fonts in {}", dir.display()))?;
        // Sorted so that fallback order (and so output) does not depend on directory order.
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in &paths {
            let bytes = std::fs::read(path).with_context(|| format!("reading font {}", path.display()))?;
            files.push((path.display().to_string(), bytes));
        }
        Fonts::from_files(files).with_context(|| format!("fonts in {}", dir.display()))
    }

    /// Fonts from files already read, as (name for errors, bytes), in the order given: that order
    /// is the fallback order, so callers sort it.
    pub fn from_files(files: Vec<(String, Vec<u8>)>) -> anyhow::Result<Fonts> {
        let mut db = Database::new();
        let mut datas: HashMap<fontdb::ID, Arc<Vec<u8>>> = HashMap::new();
        for (name, bytes) in files {
            let data = Arc::new(bytes);
            let ids = db.load_font_source(Source::Binary(data.clone()));
            if ids.is_empty() {
                bail!("{name} is not a usable font file");
            }
            for id in ids {
                datas.insert(id, data.clone());
            }
        }
        if db.is_empty() {
            bail!("no fonts (.ttf, .otf, .ttc) found");
        }
        // fontdb's generic families default to system names that are not shipped; point them at ours.
        let first_family = db.faces().next().and_then(|f| f.families.first()).map(|f| f.0.clone());
        if let Some(family) = first_family {
            db.set_serif_family(family.clone());
            db.set_sans_serif_family(family.clone());
            db.set_monospace_family(family.clone());
            db.set_cursive_family(family.clone());
            db.set_fantasy_family(family);
        }

        let mut faces = Vec::new();
        for info in db.faces() {
            let Some(data) = datas.get(&info.id).cloned() else { continue };
            let Some(family) = info.families.first().map(|f| f.0.clone()) else { continue };
            let Ok(face) = ttf_parser::Face::parse(&data, info.index) else { continue };
            let upem = f64::from(face.units_per_em().max(1));
            faces.push(FaceEntry {
                id: info.id,
                index: info.index,
                family,
                weight: info.weight.0,
                style: info.style,
                stretch: info.stretch,
                coverage: coverage(&face),
                ascender: f64::from(face.ascender()) / upem,
                descender: -f64::from(face.descender()) / upem,
                reachable: false,
                data,
            });
        }
        let by_id: HashMap<fontdb::ID, usize> = faces.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
        for f in &mut faces {
            let query = Query {
                families: &[Family::Name(&f.family)],
                weight: Weight(f.weight),
                stretch: f.stretch,
                style: f.style,
            };
            f.reachable = db.query(&query) == Some(f.id) && f.css_family().is_some();
        }
        let watermark = pick_watermark_face(&faces).context("no shipped font can print the PREVIEW watermark")?;
        Ok(Fonts { db: Arc::new(db), faces, by_id, watermark })
    }

    pub fn has_family(&self, family: &str) -> bool {
        self.db.faces().any(|f| f.families.iter().any(|(name, _)| name == family))
    }

    /// The families of all shipped faces, without repeats (for error messages).
    pub fn families(&self) -> Vec<String> {
        let mut names: Vec<String> = self.faces.iter().map(|f| f.family.clone()).collect();
        names.sort();
        names.dedup();
        names
    }

    pub(super) fn face(&self, index: usize) -> &FaceEntry {
        &self.faces[index]
    }

    pub(super) fn watermark_face(&self) -> &FaceEntry {
        &self.faces[self.watermark]
    }

    /// The face usvg picks for this family/weight/style (same query as usvg's default selector).
    pub(super) fn primary_face(&self, family: &str, weight: u16, italic: bool) -> Option<usize> {
        let query = Query {
            families: &[Family::Name(family)],
            weight: Weight(weight),
            stretch: Stretch::Normal,
            style: if italic { Style::Italic } else { Style::Normal },
        };
        let id = self.db.query(&query)?;
        self.by_id.get(&id).copied()
    }

    /// The face that prints `c` when the primary face can not: the closest style and weight among shipped
    /// faces that cover it; ties go to file order. None means no shipped font has the character.
    pub(super) fn fallback_face(&self, primary: usize, c: char) -> Option<usize> {
        let base = &self.faces[primary];
        self.faces
            .iter()
            .enumerate()
            .filter(|(_, f)| f.reachable && f.covers(c))
            .min_by_key(|(i, f)| {
                (
                    f.italic() != base.italic(),
                    f.stretch != base.stretch,
                    (i32::from(f.weight) - i32::from(base.weight)).abs(),
                    *i,
                )
            })
            .map(|(i, _)| i)
    }

    /// usvg options that only ever see the shipped fonts and never read a file or URL.
    pub(super) fn usvg_options(&self) -> usvg::Options<'static> {
        let mut options = usvg::Options {
            resources_dir: None,
            fontdb: self.db.clone(),
            font_family: self.faces[self.watermark].family.clone(),
            ..usvg::Options::default()
        };
        options.image_href_resolver = usvg::ImageHrefResolver {
            // Only embedded raster images; no nested SVG documents.
            resolve_data: Box::new(|mime, data, _| match mime {
                "image/png" => Some(usvg::ImageKind::PNG(data)),
                "image/jpeg" | "image/jpg" => Some(usvg::ImageKind::JPEG(data)),
                _ => None,
            }),
            // Paths and URLs resolve to nothing: no file is ever read while parsing.
            resolve_string: Box::new(|_, _| None),
        };
        // Our text layer names the face of every run itself (see `fit`), so usvg's own fallback, which can
        // switch a whole line to another font, is turned off. Missing glyphs in template artwork text are
        // caught by `check_template`.
        options.font_resolver = usvg::FontResolver {
            select_font: usvg::FontResolver::default_font_selector(),
            select_fallback: Box::new(|_, _, _| None),
        };
        options
    }
}

fn collect_font_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    // Font folders are shallow; the limit guards against symlink loops.
    if depth > 8 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_font_files(&path, out, depth + 1)?;
        } else {
            let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if matches!(ext.as_deref(), Some("ttf" | "otf" | "ttc")) {
                out.push(path);
            }
        }
    }
    Ok(())
}

/// Code points with a real glyph, as sorted inclusive ranges.
fn coverage(face: &ttf_parser::Face<'_>) -> Vec<(u32, u32)> {
    let mut points = Vec::new();
    if let Some(cmap) = face.tables().cmap {
        for sub in cmap.subtables {
            if sub.is_unicode() {
                sub.codepoints(|cp| {
                    if sub.glyph_index(cp).is_some_and(|g| g.0 != 0) {
                        points.push(cp);
                    }
                });
            }
        }
    }
    points.sort_unstable();
    points.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for cp in points {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == cp => *hi = cp,
            _ => ranges.push((cp, cp)),
        }
    }
    ranges
}

/// A bold, upright face that has the letters of "PREVIEW", else any face that has them.
fn pick_watermark_face(faces: &[FaceEntry]) -> Option<usize> {
    let usable = |f: &FaceEntry| f.reachable && "PREVIEW".chars().all(|c| f.covers(c));
    faces
        .iter()
        .enumerate()
        .filter(|(_, f)| usable(f))
        .min_by_key(|(i, f)| (f.italic(), (i32::from(f.weight) - 700).abs(), *i))
        .map(|(i, _)| i)
}
