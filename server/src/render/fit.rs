//! Copy fitting: measures a box's text with rustybuzz on the shipped faces, wraps it, and finds the
//! largest size (in 0.5 pt steps down to the template's minimum) at which it fits; else says how much
//! to cut. Also picks the face of every character, which the text layer then names explicitly.

use std::collections::HashMap;

use unicode_bidi::BidiClass;

use super::fonts::Fonts;
use super::{FitProblem, MAX_TEXT_CHARS, TextBox, pt_to_mm};

/// Copy fitting shrinks by this much per step.
const SIZE_STEP_PT: f64 = 0.5;
/// At most this many distinct unprintable characters are reported (enough to show the customer).
const MAX_REPORTED_CHARS: usize = 20;
/// Rounding slack when comparing measured widths and heights with a box (mm).
const EPSILON_MM: f64 = 1e-3;

/// Why a box could not be fitted.
#[derive(Debug)]
pub(super) enum FitError {
    Problem(FitProblem),
    /// A template or engine fault, e.g. a font family that is not shipped.
    Internal(String),
}

/// A box's text as it will be printed.
#[derive(Debug, Clone)]
pub(super) struct Fitted {
    pub(super) size_pt: f64,
    pub(super) lines: Vec<Line>,
    /// The primary face, whose ascender and descender place the lines.
    pub(super) primary: usize,
    /// Preview only: the value did not fit and `lines` hold the part that does.
    pub(super) overflow: bool,
}

/// How a value that cannot be printed as it is gets treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FitMode {
    /// Print: any problem is reported, nothing is changed.
    Strict,
    /// Preview: show the value as it is. Unprintable characters become a replacement glyph, and
    /// a value too long for its box shows the part that fits at the minimum size.
    Preview,
}

#[derive(Debug, Clone)]
pub(super) struct Line {
    /// Consecutive characters printed with the same face, in logical order.
    pub(super) runs: Vec<Run>,
    /// The paragraph reads right to left (first strong character).
    pub(super) rtl: bool,
}

impl Line {
    pub(super) fn text(&self) -> String {
        self.runs.iter().map(|r| r.text.as_str()).collect()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Run {
    pub(super) face: usize,
    pub(super) text: String,
}

/// rustybuzz faces for the faces in use, created once per compose.
pub(super) struct Shapers<'a> {
    fonts: &'a Fonts,
    faces: HashMap<usize, Option<rustybuzz::Face<'a>>>,
}

impl<'a> Shapers<'a> {
    pub(super) fn new(fonts: &'a Fonts) -> Self {
        Shapers { fonts, faces: HashMap::new() }
    }

    fn get(&mut self, face: usize) -> Option<&rustybuzz::Face<'a>> {
        let fonts = self.fonts;
        self.faces.entry(face).or_insert_with(|| fonts.face(face).shaper()).as_ref()
    }
}

/// One character of a paragraph with its face and advance.
#[derive(Debug, Clone, Copy)]
struct Char {
    ch: char,
    face: usize,
    /// Advance in ems (font-size independent).
    advance: f64,
}

#[derive(Debug)]
struct Paragraph {
    chars: Vec<Char>,
    rtl: bool,
    /// Index of this paragraph's first character in the whole text (for truncation).
    offset: usize,
}

/// A laid-out line: a character range of one paragraph.
#[derive(Debug, Clone, Copy)]
struct Span {
    paragraph: usize,
    start: usize,
    /// Exclusive; trailing break spaces are not part of the line.
    end: usize,
    width_em: f64,
}

/// Fits `value` into `text_box`, or explains why it can not be printed.
pub(super) fn fit_box(
    text_box: &TextBox,
    value: &str,
    fonts: &Fonts,
    shapers: &mut Shapers<'_>,
    mode: FitMode,
) -> Result<Fitted, FitError> {
    let field = &text_box.field;
    let primary = fonts.primary_face(&text_box.font_family, text_box.weight, text_box.italic).ok_or_else(|| {
        FitError::Internal(format!("box {field}: font family {:?} is not shipped", text_box.font_family))
    })?;

    // Never shape an oversized value: look at a bounded head only, to estimate the cut.
    let total_chars = value.chars().count();
    let over_limit = total_chars > MAX_TEXT_CHARS;
    let head = match value.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => &value[..end],
        None => value,
    };

    let (prefix, _) = normalize(&text_box.prefix, text_box.multiline);
    let shown;
    let head = match mode {
        // Control characters and non-characters would be dropped: show them replaced instead.
        FitMode::Preview if head.chars().any(|c| (c.is_control() && !"\t\r\n".contains(c)) || is_noncharacter(c)) => {
            let replacement = replacement_glyph(primary, fonts);
            shown = head
                .chars()
                .map(|c| if (c.is_control() && !"\t\r\n".contains(c)) || is_noncharacter(c) { replacement } else { c })
                .collect::<String>();
            shown.as_str()
        }
        _ => head,
    };
    let (mut body, mut bad) = normalize(head, text_box.multiline);
    if text_box.uppercase {
        body = body.to_uppercase();
    }
    // Trailing spaces and newlines print nothing but would take room (and shift centred text).
    body.truncate(body.trim_end().len());
    let prefix_chars = prefix.chars().count();
    let mut text = format!("{prefix}{body}");
    let (mut faces, mut missing) = assign_faces(&text, primary, fonts);
    if mode == FitMode::Preview && !(bad.is_empty() && missing.is_empty()) {
        // Shown, not dropped: each unprintable character takes the place of one glyph.
        let replacement = replacement_glyph(primary, fonts);
        body = replace_unprintable(&body, &missing, replacement);
        text = format!("{prefix}{body}");
        (faces, missing) = assign_faces(&text, primary, fonts);
        bad.clear();
    }
    if !over_limit {
        for c in missing {
            if !bad.contains(&c) && bad.len() < MAX_REPORTED_CHARS {
                bad.push(c);
            }
        }
        if !bad.is_empty() {
            return Err(FitError::Problem(FitProblem::Unsupported { field: field.clone(), chars: bad }));
        }
    }

    let paragraphs = measure(&text, &faces, prefix_chars, shapers)
        .ok_or_else(|| FitError::Internal(format!("box {field}: a font could not be read")))?;
    let body_chars = text.chars().count() - prefix_chars;
    let all = usize::MAX;

    if !over_limit {
        for size_pt in sizes(text_box.size_pt, text_box.min_size_pt) {
            if let Some(spans) = layout(&paragraphs, text_box, size_pt, all) {
                let lines = spans.iter().map(|s| to_line(&paragraphs[s.paragraph], s)).collect();
                return Ok(Fitted { size_pt, lines, primary, overflow: false });
            }
        }
    }

    // Too long even at the minimum size: find how many characters of the value still fit.
    let min = text_box.min_size_pt;
    let (mut lo, mut hi) = (0usize, body_chars);
    if layout(&paragraphs, text_box, min, prefix_chars + hi).is_some() {
        lo = hi;
    }
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if layout(&paragraphs, text_box, min, prefix_chars + mid).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    if mode == FitMode::Preview {
        let spans = layout(&paragraphs, text_box, min, prefix_chars + lo).unwrap_or_default();
        let lines = spans.iter().map(|s| to_line(&paragraphs[s.paragraph], s)).collect();
        return Ok(Fitted { size_pt: min, lines, primary, overflow: true });
    }
    let shorten_by = total_chars.saturating_sub(lo).max(1);
    Err(FitError::Problem(FitProblem::TooLong { field: field.clone(), shorten_by }))
}

/// The glyph a preview shows for a character nothing can print: U+FFFD where a shipped face has
/// it, else "?".
fn replacement_glyph(primary: usize, fonts: &Fonts) -> char {
    let has = |c| fonts.face(primary).covers(c) || fonts.fallback_face(primary, c).is_some();
    if has('\u{FFFD}') { '\u{FFFD}' } else { '?' }
}

/// `text` (already normalized) with every character of `missing` replaced; control characters
/// and non-characters were replaced by `normalize_shown` before.
fn replace_unprintable(text: &str, missing: &[char], replacement: char) -> String {
    text.chars().map(|c| if missing.contains(&c) { replacement } else { c }).collect()
}

/// Characters of `text` that no shipped face can print, and control characters (for template checks).
pub(super) fn unprintable(text: &str, primary: usize, fonts: &Fonts) -> Vec<char> {
    let (clean, mut bad) = normalize(text, true);
    for c in assign_faces(&clean, primary, fonts).1 {
        if !bad.contains(&c) {
            bad.push(c);
        }
    }
    bad
}

/// The sizes to try, largest first: `size`, then 0.5 pt smaller each step, ending at `min` exactly.
fn sizes(size: f64, min: f64) -> impl Iterator<Item = f64> {
    let min = min.min(size);
    // Bounded so that a template with absurd sizes can not make this loop long.
    let steps = (((size - min) / SIZE_STEP_PT).ceil() as usize).min(2_000);
    (0..steps).map(move |i| size - i as f64 * SIZE_STEP_PT).filter(move |s| *s > min + 1e-9).chain(std::iter::once(min))
}

/// Line breaks become `\n` (spaces in single-line boxes), tabs spaces; other control characters are
/// dropped and returned, to be reported: they must never reach the SVG.
fn normalize(value: &str, multiline: bool) -> (String, Vec<char>) {
    let mut out = String::with_capacity(value.len());
    let mut bad = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                '\n'
            }
            '\u{2028}' | '\u{2029}' => '\n',
            '\t' => ' ',
            c => c,
        };
        if c == '\n' {
            out.push(if multiline { '\n' } else { ' ' });
        } else if c.is_control() || is_noncharacter(c) {
            if !bad.contains(&c) && bad.len() < MAX_REPORTED_CHARS {
                bad.push(c);
            }
        } else {
            out.push(c);
        }
    }
    (out, bad)
}

/// U+FDD0..U+FDEF and U+xFFFE/U+xFFFF are not characters; U+FFFE/U+FFFF are not even allowed in XML.
fn is_noncharacter(c: char) -> bool {
    let c = c as u32;
    (0xFDD0..=0xFDEF).contains(&c) || (c & 0xFFFE) == 0xFFFE
}

/// Format characters that shapers hide when a font has no glyph for them (ZWJ, ZWNJ, bidi marks, ...).
pub(super) fn is_default_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF
        | 0xFFA0 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF)
}

/// Picks the face of every character (primary when it has the glyph, else the closest shipped fallback),
/// and lists the characters no shipped face has. Marks stay with their base character's face.
fn assign_faces(text: &str, primary: usize, fonts: &Fonts) -> (Vec<usize>, Vec<char>) {
    let mut faces = Vec::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut current = primary;
    for c in text.chars() {
        let stays = c == '\n'
            || is_default_ignorable(c)
            || (unicode_bidi::bidi_class(c) == BidiClass::NSM && fonts.face(current).covers(c));
        let face = if stays {
            current
        } else if fonts.face(primary).covers(c) {
            primary
        } else if fonts.face(current).covers(c) {
            current
        } else if let Some(face) = fonts.fallback_face(primary, c) {
            face
        } else {
            if !missing.contains(&c) && missing.len() < MAX_REPORTED_CHARS {
                missing.push(c);
            }
            current
        };
        faces.push(face);
        current = face;
    }
    (faces, missing)
}

/// Splits the text into paragraphs and measures every character's advance. Each paragraph is shaped
/// whole with each face it uses (as usvg shapes a whole line), and a character takes the advance of the
/// glyphs its own face gives its cluster.
fn measure(text: &str, faces: &[usize], prefix_chars: usize, shapers: &mut Shapers<'_>) -> Option<Vec<Paragraph>> {
    let mut paragraphs = Vec::new();
    let mut char_index = 0;
    for paragraph in text.split('\n') {
        let starts: Vec<usize> = paragraph.char_indices().map(|(i, _)| i).collect();
        let mut chars: Vec<Char> = paragraph
            .chars()
            .enumerate()
            .map(|(i, ch)| Char { ch, face: faces[char_index + i], advance: 0.0 })
            .collect();
        let mut used: Vec<usize> = chars.iter().map(|c| c.face).collect();
        used.sort_unstable();
        used.dedup();
        for face in used {
            let shaper = shapers.get(face)?;
            let upem = f64::from(shaper.units_per_em().max(1));
            let mut buffer = rustybuzz::UnicodeBuffer::new();
            buffer.push_str(paragraph);
            buffer.guess_segment_properties();
            let output = rustybuzz::shape(shaper, &[], buffer);
            for (info, pos) in output.glyph_infos().iter().zip(output.glyph_positions()) {
                if let Ok(i) = starts.binary_search(&(info.cluster as usize))
                    && chars[i].face == face
                {
                    chars[i].advance += f64::from(pos.x_advance) / upem;
                }
            }
        }
        // Direction from the value's first strong character; the prefix decides only if the value has none.
        let value_from = prefix_chars.saturating_sub(char_index).min(chars.len());
        let rtl = first_strong_rtl(&chars[value_from..]).or_else(|| first_strong_rtl(&chars[..value_from]));
        let len = chars.len();
        paragraphs.push(Paragraph { chars, rtl: rtl.unwrap_or(false), offset: char_index });
        char_index += len + 1; // the newline
    }
    Some(paragraphs)
}

fn first_strong_rtl(chars: &[Char]) -> Option<bool> {
    chars.iter().find_map(|c| match unicode_bidi::bidi_class(c.ch) {
        BidiClass::L => Some(false),
        BidiClass::R | BidiClass::AL => Some(true),
        _ => None,
    })
}

/// Lays out the first `limit` characters of the text at `size_pt`; None if they do not fit the box.
fn layout(paragraphs: &[Paragraph], text_box: &TextBox, size_pt: f64, limit: usize) -> Option<Vec<Span>> {
    let size_mm = pt_to_mm(size_pt);
    let max_em = (text_box.width_mm + EPSILON_MM) / size_mm;
    let mut spans = Vec::new();
    if !text_box.multiline {
        // Normalization made it one paragraph; it never wraps.
        let p = &paragraphs[0];
        let end = p.chars.len().min(limit);
        let width_em: f64 = p.chars[..end].iter().map(|c| c.advance).sum();
        if width_em > max_em {
            return None;
        }
        spans.push(Span { paragraph: 0, start: 0, end, width_em });
        return Some(spans);
    }
    let pitch_mm = text_box.line_height * size_mm;
    // At least one line always "fits" vertically: the box height only limits how many lines there are.
    let max_lines = (((text_box.height_mm + EPSILON_MM) / pitch_mm).floor() as usize).max(1);
    for (index, p) in paragraphs.iter().enumerate() {
        // A value cut right after a newline ends there: its trimming drops the empty paragraph too.
        if index > 0 && p.offset >= limit {
            break;
        }
        let end = p.chars.len().min(limit - p.offset);
        wrap(index, &p.chars[..end], max_em, &mut spans, max_lines)?;
    }
    Some(spans)
}

/// Greedy line breaking of one paragraph: breaks after spaces, after hyphens and around CJK characters;
/// a word wider than the box is broken between characters. None once `max_lines` is exceeded or a
/// single character is wider than the box.
fn wrap(paragraph: usize, chars: &[Char], max_em: f64, spans: &mut Vec<Span>, max_lines: usize) -> Option<()> {
    let push = |span: Span, spans: &mut Vec<Span>| {
        spans.push(span);
        (spans.len() <= max_lines && span.width_em <= max_em).then_some(())
    };
    if chars.is_empty() {
        return push(Span { paragraph, start: 0, end: 0, width_em: 0.0 }, spans);
    }
    let mut start = 0;
    while start < chars.len() {
        // (end of the line's text, its width, where the next line starts)
        let mut last_break: Option<(usize, f64, usize)> = None;
        let mut width = 0.0;
        let mut i = start;
        let mut line = None;
        while i < chars.len() {
            let c = chars[i];
            if is_break_space(c.ch) {
                // Spaces hang past the edge; the break goes after the last of them.
                match &mut last_break {
                    Some((end, _, next)) if *next == i && *end < i => *next = i + 1,
                    _ => last_break = Some((i, width, i + 1)),
                }
                width += c.advance;
                i += 1;
                continue;
            }
            if width + c.advance > max_em && i > start {
                line = Some(match last_break {
                    Some((end, w, next)) if next > start && end > start => (end, w, next),
                    _ => {
                        // No break opportunity: cut the word, but not in front of a mark.
                        let mut cut = i;
                        while cut > start + 1 && chars[cut].advance == 0.0 {
                            cut -= 1;
                        }
                        let w = chars[start..cut].iter().map(|c| c.advance).sum();
                        (cut, w, cut)
                    }
                });
                break;
            }
            width += c.advance;
            i += 1;
            if i < chars.len() && is_break_after(c.ch, chars[i].ch) {
                last_break = Some((i, width, i));
            }
        }
        let (end, w, next) = line.unwrap_or_else(|| {
            // The rest of the paragraph fits; drop trailing spaces from the measured line.
            let mut end = chars.len();
            while end > start && is_break_space(chars[end - 1].ch) {
                end -= 1;
            }
            (end, chars[start..end].iter().map(|c| c.advance).sum(), chars.len())
        });
        push(Span { paragraph, start, end, width_em: w }, spans)?;
        start = next;
    }
    Some(())
}

/// Spaces that allow a line break (not the no-break spaces).
fn is_break_space(c: char) -> bool {
    (c.is_whitespace() && !matches!(c, '\u{A0}' | '\u{2007}' | '\u{202F}')) || c == '\u{200B}'
}

/// A break is allowed between `a` and `b` (besides after spaces): after a hyphen or dash, and before
/// or after an ideograph/kana character.
fn is_break_after(a: char, b: char) -> bool {
    (matches!(a, '-' | '\u{2010}' | '\u{2013}' | '\u{2014}' | '/') && !is_break_space(b)) || is_cjk(a) || is_cjk(b)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FFF | 0x3040..=0x30FF | 0x3100..=0x312F | 0x3190..=0x31FF | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3FFFF)
}

fn to_line(paragraph: &Paragraph, span: &Span) -> Line {
    let mut runs: Vec<Run> = Vec::new();
    for c in &paragraph.chars[span.start..span.end] {
        match runs.last_mut() {
            Some(run) if run.face == c.face => run.text.push(c.ch),
            _ => runs.push(Run { face: c.face, text: c.ch.to_string() }),
        }
    }
    Line { runs, rtl: paragraph.rtl }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sizes_step_down_to_the_minimum() {
        let s: Vec<f64> = sizes(10.0, 8.5).collect();
        assert_eq!(s, vec![10.0, 9.5, 9.0, 8.5]);
        let s: Vec<f64> = sizes(10.0, 8.2).collect();
        assert_eq!(s, vec![10.0, 9.5, 9.0, 8.5, 8.2]);
        let s: Vec<f64> = sizes(9.0, 9.0).collect();
        assert_eq!(s, vec![9.0]);
    }

    #[test]
    fn normalize_drops_controls_and_unifies_newlines() {
        let (s, bad) = normalize("a\r\nb\rc\u{2028}d\te\0f\u{7}", true);
        assert_eq!(s, "a\nb\nc\nd ef");
        assert_eq!(bad, vec!['\0', '\u{7}']);
        let (s, _) = normalize("a\nb", false);
        assert_eq!(s, "a b");
        let (_, bad) = normalize("x\u{FFFF}", false);
        assert_eq!(bad, vec!['\u{FFFF}']);
    }

    fn chars(s: &str) -> Vec<Char> {
        s.chars().map(|ch| Char { ch, face: 0, advance: if ch == '\u{301}' { 0.0 } else { 1.0 } }).collect()
    }

    fn lines(s: &str, max_em: f64) -> Vec<String> {
        let cs = chars(s);
        let mut spans = Vec::new();
        wrap(0, &cs, max_em, &mut spans, 100).unwrap();
        spans.iter().map(|sp| cs[sp.start..sp.end].iter().map(|c| c.ch).collect()).collect()
    }

    #[test]
    fn wrap_breaks_at_spaces_hyphens_and_long_words() {
        assert_eq!(lines("aaa bbb ccc", 7.0), vec!["aaa bbb", "ccc"]);
        assert_eq!(lines("aaa   bbb", 4.0), vec!["aaa", "bbb"]);
        assert_eq!(lines("abcdefgh", 3.0), vec!["abc", "def", "gh"]);
        assert_eq!(lines("well-known x", 6.0), vec!["well-", "known", "x"]);
        assert_eq!(lines("ab\u{301}cd", 2.0), vec!["ab\u{301}", "cd"]);
        assert_eq!(lines("漢字漢字", 2.0), vec!["漢字", "漢字"]);
        assert_eq!(lines("", 2.0), vec![""]);
    }
}
