//! A printer's capabilities from its Get-Printer-Attributes answer, and media names: PWG 5101.1
//! self-describing names read as sizes, with the names people know for common ones.

use ipp::request::IppRequestResponse;
use ipp::value::IppValue;

use super::answer::{each, printer_value, text};
use crate::domain::devices::{Capabilities, ColorMode, Media, ReadyMedia, Sides};

pub(super) fn read_capabilities(answer: &IppRequestResponse) -> Capabilities {
    let strings = |name: &str| -> Vec<String> {
        printer_value(answer, name).map(|value| each(value).filter_map(text).collect()).unwrap_or_default()
    };
    let media: Vec<Media> = strings("media-supported").iter().filter_map(|keyword| parse_media(keyword)).collect();
    let media_ready = read_media_ready(answer, &media, &strings("media-ready"));
    let default_media = strings("media-default").into_iter().next().filter(|media| media != "none");
    let sides: Vec<Sides> =
        strings("sides-supported").iter().filter_map(|keyword| Sides::from_keyword(keyword)).collect();
    let mut color_modes: Vec<ColorMode> = Vec::new();
    for mode in strings("print-color-mode-supported") {
        let Some(mode) = ColorMode::from_keyword(&mode) else { continue };
        if !color_modes.contains(&mode) {
            color_modes.push(mode);
        }
    }
    // Printers older than print-color-mode (PWG 5100.13) only say whether they print colour.
    if color_modes.is_empty() {
        color_modes.push(ColorMode::Monochrome);
        if let Some(IppValue::Boolean(true)) = printer_value(answer, "color-supported") {
            color_modes.push(ColorMode::Color);
        }
    }
    // RFC 8011: a printer without copies-supported prints exactly one copy.
    let copies_max = match printer_value(answer, "copies-supported") {
        Some(IppValue::RangeOfInteger { max, .. }) => u32::try_from(*max).unwrap_or(1).max(1),
        Some(IppValue::Integer(max)) => u32::try_from(*max).unwrap_or(1).max(1),
        _ => 1,
    };
    let accepting_jobs = !matches!(printer_value(answer, "printer-is-accepting-jobs"), Some(IppValue::Boolean(false)));
    let state_reasons = strings("printer-state-reasons").into_iter().filter(|reason| reason != "none").collect();
    let default_sides = strings("sides-default").into_iter().next().and_then(|keyword| Sides::from_keyword(&keyword));
    let default_color =
        strings("print-color-mode-default").into_iter().next().and_then(|keyword| ColorMode::from_keyword(&keyword));
    Capabilities {
        default_sides: default_sides.filter(|s| sides.contains(s)),
        default_color: default_color.filter(|c| color_modes.contains(c)),
        media,
        default_media,
        sides,
        color_modes,
        copies_max,
        document_formats: strings("document-format-supported"),
        accepting_jobs,
        state_reasons,
        media_ready,
    }
}

/// The media loaded now: `media-col-ready` names each tray's size and source (PWG 5100.7);
/// `media-ready` keywords add what it does not cover. A size is named by the supported keyword
/// of that size (within a millimetre), or by its own keyword when it has one.
fn read_media_ready(answer: &IppRequestResponse, supported: &[Media], keywords: &[String]) -> Vec<ReadyMedia> {
    let mut ready: Vec<ReadyMedia> = Vec::new();
    let close = |a: f64, b: f64| (a - b).abs() <= 1.0;
    for value in printer_value(answer, "media-col-ready").map(each).into_iter().flatten() {
        let IppValue::Collection(members) = value else { continue };
        let source = members.get("media-source").and_then(text).filter(|s| !s.is_empty());
        let named = members.get("media-size-name").or(members.get("media-key")).and_then(text);
        let margins = ["media-top-margin", "media-bottom-margin", "media-left-margin", "media-right-margin"]
            .iter()
            .filter_map(|name| match members.get(*name) {
                Some(IppValue::Integer(hundredths)) if (0..=10_000).contains(hundredths) => {
                    Some(f64::from(*hundredths) / 100.0)
                }
                _ => None,
            })
            .fold(None, |max: Option<f64>, m| Some(max.map_or(m, |max| max.max(m))));
        let size = match members.get("media-size") {
            Some(IppValue::Collection(size)) => match (size.get("x-dimension"), size.get("y-dimension")) {
                (Some(IppValue::Integer(x)), Some(IppValue::Integer(y))) if *x > 0 && *y > 0 => {
                    Some((f64::from(*x) / 100.0, f64::from(*y) / 100.0))
                }
                _ => None,
            },
            _ => None,
        };
        let media = match size {
            Some((w, h)) => supported
                .iter()
                .find(|m| close(m.width_mm, w) && close(m.height_mm, h))
                .cloned()
                .or_else(|| named.as_deref().and_then(parse_media).filter(|m| close(m.width_mm, w))),
            None => named.as_deref().and_then(parse_media),
        };
        if let Some(media) = media {
            ready.push(ReadyMedia { media, source, margin_mm: margins });
        }
    }
    for keyword in keywords {
        if ready.iter().any(|r| &r.media.keyword == keyword) {
            continue;
        }
        if let Some(media) = parse_media(keyword) {
            ready.push(ReadyMedia { media, source: None, margin_mm: None });
        }
    }
    ready
}

/// A PWG 5101.1 self-describing media name (`class_name_WxHunit`, e.g. `iso_a4_210x297mm`,
/// `na_letter_8.5x11in`) as a `Media`; `None` for size ranges (`custom_min_…`) and names
/// without a size.
pub fn parse_media(keyword: &str) -> Option<Media> {
    let parts: Vec<&str> = keyword.split('_').collect();
    if parts.len() < 3 || parts[0] == "custom" || parts.iter().any(|part| part.is_empty()) {
        return None;
    }
    let size = parts[parts.len() - 1];
    let (dimensions, unit, per_unit_mm) = if let Some(d) = size.strip_suffix("mm") {
        (d, "mm", 1.0)
    } else if let Some(d) = size.strip_suffix("in") {
        (d, "in", 25.4)
    } else {
        return None;
    };
    let (width, height) = dimensions.split_once('x')?;
    let parse = |n: &str| n.parse::<f64>().ok().filter(|n| n.is_finite() && *n > 0.0);
    let (width, height) = (parse(width)?, parse(height)?);
    let to_mm = |n: f64| (n * per_unit_mm * 10.0).round() / 10.0;

    let class_and_name = parts[..parts.len() - 1].join("_");
    let display_name = match known_media_name(&class_and_name) {
        Some(name) => name.to_string(),
        None => {
            let name = parts[1..parts.len() - 1].join(" ").replace('-', " ");
            let mut chars = name.chars();
            let name = match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => name,
            };
            format!("{name} ({} × {} {unit})", trim_number(width), trim_number(height))
        }
    };
    Some(Media { keyword: keyword.to_string(), display_name, width_mm: to_mm(width), height_mm: to_mm(height) })
}

fn known_media_name(class_and_name: &str) -> Option<&'static str> {
    Some(match class_and_name {
        "iso_a3" => "A3",
        "iso_a4" => "A4",
        "iso_a5" => "A5",
        "iso_a6" => "A6",
        "iso_b4" => "B4",
        "iso_b5" => "B5",
        "jis_b4" => "B4 (JIS)",
        "jis_b5" => "B5 (JIS)",
        "iso_c5" => "Envelope C5",
        "iso_c6" => "Envelope C6",
        "iso_dl" => "Envelope DL",
        "na_letter" => "US Letter",
        "na_legal" => "US Legal",
        "na_ledger" => "Ledger",
        "na_executive" => "Executive",
        "na_invoice" => "Statement",
        "na_number-10" => "Envelope #10",
        "na_monarch" => "Envelope Monarch",
        "na_index-4x6" => "Index card 4 × 6 in",
        "na_5x7" => "5 × 7 in",
        _ => return None,
    })
}

fn trim_number(n: f64) -> String {
    let s = format!("{n:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
