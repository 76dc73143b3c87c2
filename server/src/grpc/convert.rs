//! Conversions between prost wire types and domain types, all in one place. Wire input is
//! validated here (`TryFrom`-style functions return `CoreError::InvalidArgument` naming the field).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::v1 as pb;

use crate::domain::catalog::{
    Category, ImageInfo, ListProducts, Price, Product, ProductKind, ProductPage, ProductSummary, QuantityRule, TrimSize,
};
use crate::domain::customization::{Draft, DraftChanges, DraftState, PageImage, PrintFile};
use crate::domain::devices::{
    Capabilities, ColorMode, DeliveryMode, Device, Media, PrinterUri, ReadyMedia, Sides, existing_device_id, parse_pin,
};
use crate::domain::error::{CoreError, CoreResult};
use crate::domain::form::{ChoiceOption, Field, FieldError, FieldErrorCode, FieldKind, Form, Values};
use crate::domain::ids::DeviceId;
use crate::domain::ids::{CategoryId, ProductId};
use crate::domain::imposition::Layout;
use crate::domain::jobs::{DocumentRef, Job, PlanRequest, SubmitRequest};
use crate::domain::printing::{JobState, PrinterJobStatus};
use crate::domain::records::check_opaque_id;
use crate::domain::usage::{UsageGrouping, UsageKind, UsageQuery, UsageReport};

pub fn timestamp(at: SystemTime) -> prost_types::Timestamp {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: since.as_secs() as i64, nanos: since.subsec_nanos() as i32 }
}

pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn system_time(field: &str, ts: &prost_types::Timestamp) -> CoreResult<SystemTime> {
    let invalid = || CoreError::InvalidArgument(format!("{field} is not a valid timestamp"));
    if ts.seconds < 0 || !(0..1_000_000_000).contains(&ts.nanos) {
        return Err(invalid());
    }
    UNIX_EPOCH.checked_add(Duration::new(ts.seconds as u64, ts.nanos as u32)).ok_or_else(invalid)
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A count for an `int64` field.
pub fn count64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A product id from the wire: required and at most 128 characters (INVALID_ARGUMENT); an id no
/// storefront could have issued names no product (NOT_FOUND), like any unknown id.
pub fn product_id(raw: &str) -> CoreResult<ProductId> {
    check_opaque_id("product_id", raw)?;
    ProductId::parse(raw)
        .map_err(|_| CoreError::NotFound(format!("product \"{raw}\" does not exist in this storefront")))
}

pub fn list_products(req: pb::ListProductsRequest) -> CoreResult<ListProducts> {
    let category =
        match req.category_id.as_str() {
            "" => None,
            raw => {
                check_opaque_id("category_id", raw)?;
                Some(CategoryId::parse(raw).map_err(|_| {
                    CoreError::NotFound(format!("category \"{raw}\" does not exist in this storefront"))
                })?)
            }
        };
    let page_size = u32::try_from(req.page_size)
        .map_err(|_| CoreError::InvalidArgument("page_size must not be negative".into()))?;
    Ok(ListProducts { category, query: req.query, page_size, page_token: req.page_token })
}

/// The most bytes a device-user assertion may have (the contract's 16 KiB).
const MAX_ASSERTION_BYTES: usize = 16 * 1024;
/// The longest locale tag accepted.
const MAX_LOCALE_CHARS: usize = 64;

/// What StartSession asks for, checked: the device, and whether a device-user assertion came.
/// The device and the device-user assertion (empty for none) of a StartSession request.
pub fn start_session(req: &pb::StartSessionRequest) -> CoreResult<(DeviceId, &str)> {
    let device = DeviceId::parse(&req.device_id)?;
    if !req.locale.is_empty()
        && (req.locale.len() > MAX_LOCALE_CHARS || language_tags::LanguageTag::parse(&req.locale).is_err())
    {
        return Err(CoreError::InvalidArgument(format!(
            "locale \"{}\" is not a BCP-47 language tag such as \"de-CH\" or \"en\"; leave it empty for the \
             storefront's default language",
            req.locale.chars().take(MAX_LOCALE_CHARS).collect::<String>()
        )));
    }
    if req.device_user_assertion.len() > MAX_ASSERTION_BYTES {
        return Err(CoreError::InvalidArgument(format!(
            "device_user_assertion is {} bytes; at most {MAX_ASSERTION_BYTES} are accepted",
            req.device_user_assertion.len()
        )));
    }
    Ok((device, &req.device_user_assertion))
}

pub fn category(c: Category) -> pb::Category {
    pb::Category {
        id: c.id.as_str().to_owned(),
        display_name: c.name,
        description: c.description,
        subcategories: c.children.into_iter().map(category).collect(),
        product_count: count(c.product_count),
    }
}

fn kind(k: ProductKind) -> i32 {
    match k {
        ProductKind::Static => pb::ProductKind::Static as i32,
        ProductKind::Customizable => pb::ProductKind::Customizable as i32,
    }
}

fn price(p: Price) -> pb::Price {
    pb::Price { currency_code: p.currency, amount_minor: p.amount_minor, per_quantity: count(p.per_quantity) }
}

fn thumbnail_info(i: ImageInfo) -> pb::ThumbnailInfo {
    pb::ThumbnailInfo { content_type: i.content_type, width_px: count(i.width_px), height_px: count(i.height_px) }
}

pub fn product_summary(p: ProductSummary) -> pb::ProductSummary {
    pb::ProductSummary {
        id: p.id.as_str().to_owned(),
        display_name: p.name,
        short_description: p.short_description,
        kind: kind(p.kind),
        category_id: p.category.as_str().to_owned(),
        price: p.price.map(price),
        thumbnail: p.thumbnail.map(thumbnail_info),
    }
}

pub fn product_page(page: ProductPage) -> pb::ListProductsResponse {
    pb::ListProductsResponse {
        products: page.items.into_iter().map(product_summary).collect(),
        next_page_token: page.next_page_token,
        total_size: count(page.total),
    }
}

fn trim(t: TrimSize) -> pb::TrimSize {
    pb::TrimSize { width_mm: t.width_mm, height_mm: t.height_mm, bleed_mm: t.bleed_mm }
}

fn quantity(q: QuantityRule) -> pb::QuantityRule {
    pb::QuantityRule {
        minimum: count(q.minimum),
        maximum: count(q.maximum),
        default_quantity: count(q.default),
        options: q.options.into_iter().map(count).collect(),
    }
}

pub fn product(p: Product) -> pb::Product {
    let s = p.summary;
    pb::Product {
        id: s.id.as_str().to_owned(),
        display_name: s.name,
        short_description: s.short_description,
        description: p.description,
        kind: kind(s.kind),
        category_id: s.category.as_str().to_owned(),
        price: s.price.map(price),
        thumbnail: s.thumbnail.map(thumbnail_info),
        // A storefront that does not say (uStore without trim attributes) leaves it unset.
        trim_size: (p.trim.width_mm > 0.0 && p.trim.height_mm > 0.0).then(|| trim(p.trim)),
        page_count: count(p.page_count),
        quantity: Some(quantity(p.quantity)),
    }
}

fn usage_kind_from_wire(raw: i32) -> CoreResult<UsageKind> {
    use pb::UsageEventKind as K;
    let kind = match K::try_from(raw) {
        Ok(K::SessionStarted) => UsageKind::SessionStarted,
        Ok(K::SessionClosed) => UsageKind::SessionClosed,
        Ok(K::ProductViewed) => UsageKind::ProductViewed,
        Ok(K::LoginSucceeded) => UsageKind::LoginSucceeded,
        Ok(K::LoginFailed) => UsageKind::LoginFailed,
        Ok(K::DraftCreated) => UsageKind::DraftCreated,
        Ok(K::PreviewRendered) => UsageKind::PreviewRendered,
        Ok(K::DraftFinalized) => UsageKind::DraftFinalized,
        Ok(K::JobSubmitted) => UsageKind::JobSubmitted,
        Ok(K::JobEnded) => UsageKind::JobEnded,
        Ok(K::SsoEnrolled) => UsageKind::SsoEnrolled,
        Ok(K::SsoUsed) => UsageKind::SsoUsed,
        Ok(K::SsoForgotten) => UsageKind::SsoForgotten,
        Ok(K::Unspecified) | Err(_) => {
            return Err(CoreError::InvalidArgument(format!("kinds contains {raw}, which is not a usage event kind")));
        }
    };
    Ok(kind)
}

fn usage_kind_to_wire(kind: UsageKind) -> i32 {
    use pb::UsageEventKind as K;
    let wire = match kind {
        UsageKind::SessionStarted => K::SessionStarted,
        UsageKind::SessionClosed => K::SessionClosed,
        UsageKind::ProductViewed => K::ProductViewed,
        UsageKind::LoginSucceeded => K::LoginSucceeded,
        UsageKind::LoginFailed => K::LoginFailed,
        UsageKind::DraftCreated => K::DraftCreated,
        UsageKind::PreviewRendered => K::PreviewRendered,
        UsageKind::DraftFinalized => K::DraftFinalized,
        UsageKind::JobSubmitted => K::JobSubmitted,
        UsageKind::JobEnded => K::JobEnded,
        UsageKind::SsoEnrolled => K::SsoEnrolled,
        UsageKind::SsoUsed => K::SsoUsed,
        UsageKind::SsoForgotten => K::SsoForgotten,
    };
    wire as i32
}

pub fn usage_query(req: pb::CountUsageEventsRequest) -> CoreResult<UsageQuery> {
    let start = req.start_time.as_ref().map(|t| system_time("start_time", t)).transpose()?;
    let end = req.end_time.as_ref().map(|t| system_time("end_time", t)).transpose()?;
    if let (Some(start), Some(end)) = (start, end)
        && end <= start
    {
        return Err(CoreError::InvalidArgument("start_time must be before end_time".into()));
    }
    let kinds = req.kinds.iter().map(|&k| usage_kind_from_wire(k)).collect::<CoreResult<_>>()?;
    let group_by = req
        .group_by
        .iter()
        .map(|&g| match pb::UsageGrouping::try_from(g) {
            Ok(pb::UsageGrouping::Kind) => Ok(UsageGrouping::Kind),
            Ok(pb::UsageGrouping::Product) => Ok(UsageGrouping::Product),
            Ok(pb::UsageGrouping::Day) => Ok(UsageGrouping::Day),
            Ok(pb::UsageGrouping::DeviceModel) => Ok(UsageGrouping::DeviceModel),
            _ => Err(CoreError::InvalidArgument(format!("group_by contains {g}, which is not a grouping"))),
        })
        .collect::<CoreResult<_>>()?;
    Ok(UsageQuery { start, end, kinds, group_by })
}

pub fn usage_counts(report: UsageReport) -> pb::CountUsageEventsResponse {
    let total = report.total;
    pb::CountUsageEventsResponse {
        counts: report
            .groups
            .into_iter()
            .map(|c| pb::UsageCount {
                kind: c.kind.map_or(0, usage_kind_to_wire),
                product_id: c.product.unwrap_or_default(),
                day: c.day.unwrap_or_default(),
                device_model: c.device_model.unwrap_or_default(),
                count: c.count as i64,
            })
            .collect(),
        total: total as i64,
    }
}

fn form_field(field: &Field, order: usize) -> pb::FormField {
    let kind = match field.kind {
        FieldKind::Text => pb::FieldType::Text,
        FieldKind::Multiline => pb::FieldType::MultilineText,
        FieldKind::Choice => pb::FieldType::Choice,
        FieldKind::Number => pb::FieldType::Number,
        FieldKind::Email => pb::FieldType::Email,
        FieldKind::Phone => pb::FieldType::Phone,
        FieldKind::Date => pb::FieldType::Date,
    };
    pb::FormField {
        id: field.id.clone(),
        code: field.code.clone(),
        label: field.label.clone(),
        help: field.help.clone(),
        r#type: kind as i32,
        required: field.required,
        default_value: field.default.clone(),
        min_length: count(field.min_length as u32),
        max_length: count(field.max_length as u32),
        pattern: field.pattern.as_ref().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        min_value: field.min,
        max_value: field.max,
        step: field.step,
        options: field.options.iter().map(choice_option).collect(),
        display_order: count(order as u32),
        section_id: field.section.clone().unwrap_or_default(),
        visible_when: field
            .visible_when
            .as_ref()
            .map(|c| pb::VisibilityCondition { field_id: c.field.clone(), values: c.values.clone() }),
        affects_preview: field.affects_preview,
        affects_price: field.affects_price,
        read_only: field.read_only,
        placeholder: field.placeholder.clone(),
        max_lines: count(field.max_lines as u32),
        widget_hint: String::new(),
    }
}

fn choice_option(option: &ChoiceOption) -> pb::ChoiceOption {
    pb::ChoiceOption {
        value: option.value.clone(),
        label: option.label.clone(),
        swatch_color: option.swatch_color.clone().unwrap_or_default(),
        image: option.image.as_ref().map(|image| pb::OptionImage {
            content_type: image.info.content_type.clone(),
            data: image.data.to_vec(),
            width_px: count(image.info.width_px),
            height_px: count(image.info.height_px),
        }),
    }
}

pub fn form(form: &Form) -> pb::Form {
    pb::Form {
        product_id: form.product.as_str().to_owned(),
        sections: form
            .sections
            .iter()
            .enumerate()
            .map(|(i, s)| pb::FormSection {
                id: s.id.clone(),
                title: s.title.clone(),
                description: s.description.clone(),
                display_order: count(i as u32),
            })
            .collect(),
        fields: form.fields.iter().enumerate().map(|(i, f)| form_field(f, i)).collect(),
    }
}

pub fn draft(draft: Draft) -> pb::Draft {
    let state = match draft.state {
        DraftState::Editing => pb::DraftState::Editing,
        DraftState::Valid => pb::DraftState::Valid,
        DraftState::Finalized => pb::DraftState::Finalized,
    };
    pb::Draft {
        id: draft.id,
        product_id: draft.product.as_str().to_owned(),
        quantity: count(draft.quantity),
        values: draft.values.into_iter().collect(),
        state: state as i32,
        create_time: Some(timestamp(draft.created_at)),
        update_time: Some(timestamp(draft.updated_at)),
        expire_time: Some(timestamp(draft.expires_at)),
        price: draft.price.map(price),
        price_is_minimum: false,
    }
}

pub fn field_errors(errors: Vec<FieldError>) -> Vec<pb::FieldError> {
    errors
        .into_iter()
        .map(|e| {
            let code = match e.code {
                FieldErrorCode::Required => pb::FieldErrorCode::Required,
                FieldErrorCode::TooShort => pb::FieldErrorCode::TooShort,
                FieldErrorCode::TooLong => pb::FieldErrorCode::TooLong,
                FieldErrorCode::PatternMismatch => pb::FieldErrorCode::PatternMismatch,
                FieldErrorCode::OutOfRange => pb::FieldErrorCode::OutOfRange,
                FieldErrorCode::NotAnOption => pb::FieldErrorCode::NotAnOption,
                FieldErrorCode::InvalidFormat => pb::FieldErrorCode::InvalidFormat,
                FieldErrorCode::DoesNotFit => pb::FieldErrorCode::DoesNotFit,
                FieldErrorCode::UnsupportedCharacter => pb::FieldErrorCode::UnsupportedCharacter,
                FieldErrorCode::StepMismatch => pb::FieldErrorCode::StepMismatch,
                FieldErrorCode::Rejected => pb::FieldErrorCode::Rejected,
            };
            pb::FieldError { field_id: e.field, code: code as i32, message: e.message }
        })
        .collect()
}

/// CreateDraft's quantity: 0 means the product's default; negative is refused.
pub fn create_quantity(quantity: i32) -> CoreResult<Option<u32>> {
    let quantity =
        u32::try_from(quantity).map_err(|_| CoreError::InvalidArgument("quantity must not be negative".into()))?;
    Ok(Some(quantity).filter(|q| *q > 0))
}

/// UpdateDraft's changes. A quantity, when set, is at least 1; a field is either set or cleared.
pub fn draft_changes(req: pb::UpdateDraftRequest) -> CoreResult<DraftChanges> {
    let quantity = req
        .quantity
        .map(|q| {
            u32::try_from(q).ok().filter(|q| *q >= 1).ok_or_else(|| {
                CoreError::InvalidArgument(format!(
                    "quantity is {q}; set it to 1 or more, or leave it unset to keep the draft's quantity"
                ))
            })
        })
        .transpose()?;
    if let Some(both) = req.clear_field_ids.iter().find(|id| req.values.contains_key(*id)) {
        return Err(CoreError::InvalidArgument(format!(
            "\"{both}\" is both in values and in clear_field_ids; set it or clear it, not both"
        )));
    }
    Ok(DraftChanges { values: req.values.into_iter().collect::<Values>(), quantity, clear: req.clear_field_ids })
}

/// RenderPreview's width: 0 means the default; negative is refused (clamping is the domain's).
pub fn preview_width(width_px: i32) -> CoreResult<u32> {
    u32::try_from(width_px).map_err(|_| {
        CoreError::InvalidArgument(format!("width_px is {width_px}; use 0 for the default width or a positive width"))
    })
}

pub fn page_numbers(pages: &[i32]) -> CoreResult<Vec<u32>> {
    pages
        .iter()
        .map(|&p| u32::try_from(p).map_err(|_| CoreError::InvalidArgument(format!("page_numbers contains {p}"))))
        .collect()
}

pub fn preview_pages(images: Vec<PageImage>, page_count: u32) -> pb::RenderPreviewResponse {
    pb::RenderPreviewResponse { pages: images.iter().map(preview_page).collect(), page_count: count(page_count) }
}

pub fn preview_page(p: &PageImage) -> pb::PreviewPage {
    pb::PreviewPage {
        page_number: count(p.page_number),
        content_type: p.content_type.clone(),
        data: p.data.to_vec(),
        width_px: count(p.width_px),
        height_px: count(p.height_px),
    }
}

/// The first message of an upload: its declared size and display name.
pub fn upload_metadata(first: Option<pb::UploadPrintFileRequest>) -> CoreResult<(i64, String)> {
    match first.and_then(|m| m.part) {
        Some(pb::upload_print_file_request::Part::Metadata(m)) => Ok((m.size_bytes, m.display_name)),
        _ => Err(CoreError::InvalidArgument(
            "the first message of UploadPrintFile must carry metadata (size_bytes), before any chunk".into(),
        )),
    }
}

/// A later message of an upload: a chunk of the file.
pub fn upload_chunk(message: pb::UploadPrintFileRequest) -> CoreResult<Vec<u8>> {
    match message.part {
        Some(pb::upload_print_file_request::Part::Chunk(chunk)) => Ok(chunk),
        _ => Err(CoreError::InvalidArgument(
            "after the first message, every UploadPrintFile message must carry a chunk; metadata comes once".into(),
        )),
    }
}

pub fn print_file(file: PrintFile) -> pb::PrintFile {
    pb::PrintFile {
        file_id: file.id,
        draft_id: file.draft_id,
        display_name: file.display_name,
        content_type: "application/pdf".into(),
        size_bytes: file.size_bytes as i64,
        page_count: count(file.page_count),
        sha256: file.sha256,
        trim_size: file.trim.map(trim),
        suggested_copies: count(file.suggested_copies),
        expire_time: Some(timestamp(file.expires_at)),
    }
}

fn wire_sides(sides: Sides) -> i32 {
    (match sides {
        Sides::OneSided => pb::Sides::OneSided,
        Sides::TwoSidedLongEdge => pb::Sides::TwoSidedLongEdge,
        Sides::TwoSidedShortEdge => pb::Sides::TwoSidedShortEdge,
    }) as i32
}

fn wire_color(color: ColorMode) -> i32 {
    (match color {
        ColorMode::Color => pb::ColorMode::Color,
        ColorMode::Monochrome => pb::ColorMode::Monochrome,
    }) as i32
}

fn wire_delivery(mode: DeliveryMode) -> i32 {
    (match mode {
        DeliveryMode::IppPush => pb::DeliveryMode::IppPush,
        DeliveryMode::DevicePull => pb::DeliveryMode::DevicePull,
        DeliveryMode::SpoolFolder => pb::DeliveryMode::SpoolFolder,
    }) as i32
}

/// An optional enum field: unspecified means "the default".
fn sides_from_wire(raw: i32) -> CoreResult<Option<Sides>> {
    Ok(match pb::Sides::try_from(raw) {
        Ok(pb::Sides::Unspecified) => None,
        Ok(pb::Sides::OneSided) => Some(Sides::OneSided),
        Ok(pb::Sides::TwoSidedLongEdge) => Some(Sides::TwoSidedLongEdge),
        Ok(pb::Sides::TwoSidedShortEdge) => Some(Sides::TwoSidedShortEdge),
        Err(_) => return Err(CoreError::InvalidArgument(format!("sides {raw} is not a sides value"))),
    })
}

fn color_from_wire(raw: i32) -> CoreResult<Option<ColorMode>> {
    Ok(match pb::ColorMode::try_from(raw) {
        Ok(pb::ColorMode::Unspecified) => None,
        Ok(pb::ColorMode::Color) => Some(ColorMode::Color),
        Ok(pb::ColorMode::Monochrome) => Some(ColorMode::Monochrome),
        Err(_) => return Err(CoreError::InvalidArgument(format!("color_mode {raw} is not a colour mode"))),
    })
}

fn wire_job_state(state: JobState) -> i32 {
    (match state {
        JobState::Pending => pb::JobState::Pending,
        JobState::Held => pb::JobState::Held,
        JobState::Processing => pb::JobState::Processing,
        JobState::Stopped => pb::JobState::Stopped,
        JobState::Canceled => pb::JobState::Canceled,
        JobState::Aborted => pb::JobState::Aborted,
        JobState::Completed => pb::JobState::Completed,
    }) as i32
}

fn media(m: &Media, source: Option<&str>, margin_mm: Option<f64>) -> pb::Media {
    pb::Media {
        keyword: m.keyword.clone(),
        display_name: m.display_name.clone(),
        width_mm: m.width_mm,
        height_mm: m.height_mm,
        source: source.unwrap_or_default().to_owned(),
        margin_mm: margin_mm.unwrap_or_default(),
    }
}

fn media_from_wire(m: pb::Media) -> Media {
    Media { keyword: m.keyword, display_name: m.display_name, width_mm: m.width_mm, height_mm: m.height_mm }
}

pub fn capabilities(c: &Capabilities) -> pb::PrinterCapabilities {
    pb::PrinterCapabilities {
        media_supported: c.media.iter().map(|m| media(m, None, None)).collect(),
        media_ready: c.media_ready.iter().map(|r| media(&r.media, r.source.as_deref(), r.margin_mm)).collect(),
        media_default: c.default_media.clone().unwrap_or_default(),
        sides_supported: c.sides.iter().map(|s| wire_sides(*s)).collect(),
        sides_default: wire_sides(c.sides_default()),
        color_modes_supported: c.color_modes.iter().map(|m| wire_color(*m)).collect(),
        color_mode_default: wire_color(c.color_default()),
        copies_max: count(c.copies_max),
        document_formats_supported: c.document_formats.clone(),
    }
}

fn capabilities_from_wire(c: pb::PrinterCapabilities) -> CoreResult<Capabilities> {
    let sides = c.sides_supported.iter().map(|s| sides_from_wire(*s)).collect::<CoreResult<Vec<_>>>()?;
    let colors = c.color_modes_supported.iter().map(|m| color_from_wire(*m)).collect::<CoreResult<Vec<_>>>()?;
    let copies_max = u32::try_from(c.copies_max).unwrap_or(0);
    let capabilities = Capabilities {
        media: c.media_supported.into_iter().map(media_from_wire).collect(),
        media_ready: c
            .media_ready
            .into_iter()
            .map(|m| {
                let source = Some(m.source.clone()).filter(|s| !s.is_empty());
                let margin_mm = Some(m.margin_mm).filter(|m| *m > 0.0);
                ReadyMedia { media: media_from_wire(m), source, margin_mm }
            })
            .collect(),
        default_media: Some(c.media_default).filter(|m| !m.is_empty()),
        sides: sides.into_iter().flatten().collect(),
        color_modes: colors.into_iter().flatten().collect(),
        copies_max,
        document_formats: c.document_formats_supported,
        accepting_jobs: true,
        state_reasons: vec!["none".into()],
        default_sides: sides_from_wire(c.sides_default)?,
        default_color: color_from_wire(c.color_mode_default)?,
    };
    capabilities.check()?;
    Ok(capabilities)
}

pub fn job(job: &Job) -> pb::Job {
    pb::Job {
        id: job.id.clone(),
        state: wire_job_state(job.state),
        state_reasons: job.reasons.clone(),
        state_message: job.message.clone(),
        file_id: job.file_id.clone(),
        draft_id: job.draft_id.clone(),
        product_id: job.product_id.as_ref().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        device_id: job.device_id.as_str().to_owned(),
        delivery_mode: wire_delivery(job.delivery),
        copies: count(job.copies),
        sides: wire_sides(job.sides),
        color_mode: wire_color(job.color_mode),
        media: job.media.clone(),
        page_count: count(job.page_count),
        pages_printed: job.pages_printed.map(count),
        device_job_id: job.device_job_id.clone(),
        create_time: Some(timestamp(job.created_at())),
        update_time: Some(timestamp(job.updated_at())),
        end_time: job.ended_at().map(timestamp),
        layout: Some(layout(&job.layout)),
        document_sha256: job.document_sha256.clone(),
        pages_total: count(job.pages_total()),
    }
}

pub fn layout(l: &Layout) -> pb::PrintLayout {
    pb::PrintLayout {
        imposed: l.imposed,
        sheet: Some(media(&l.sheet, l.source.as_deref(), None)),
        pieces: count(l.pieces),
        pieces_per_sheet: count(l.per_sheet),
        sheet_count: count(l.sheet_count),
        sides: wire_sides(l.sides),
        backs_on_separate_sheets: l.backs_separate,
        rotated: l.rotated,
        scale: l.scale,
        sheets_one_per_sheet: count(l.sheets_one_per_sheet),
    }
}

pub fn plan_request(req: pb::PlanJobRequest) -> CoreResult<PlanRequest> {
    let document = match req.document {
        Some(pb::plan_job_request::Document::FileId(id)) => DocumentRef::File(id),
        Some(pb::plan_job_request::Document::DraftId(id)) => DocumentRef::Draft(id),
        None => return Err(CoreError::InvalidArgument("set file_id or draft_id: which document to plan".into())),
    };
    Ok(PlanRequest {
        document,
        copies: u32::try_from(req.copies)
            .map_err(|_| CoreError::InvalidArgument("copies must not be negative".into()))?,
        sides: sides_from_wire(req.sides)?,
        media: Some(req.media).filter(|m| !m.is_empty()),
        fit: req.fit_to_sheet,
        preview_width_px: u32::try_from(req.preview_width_px)
            .map_err(|_| CoreError::InvalidArgument("preview_width_px must not be negative".into()))?,
    })
}

pub fn submit_request(req: pb::SubmitJobRequest) -> CoreResult<SubmitRequest> {
    let document = match req.document {
        Some(pb::submit_job_request::Document::FileId(id)) => DocumentRef::File(id),
        Some(pb::submit_job_request::Document::DraftId(id)) => DocumentRef::Draft(id),
        None => return Err(CoreError::InvalidArgument("set file_id or draft_id: which document to print".into())),
    };
    let copies =
        u32::try_from(req.copies).map_err(|_| CoreError::InvalidArgument("copies must not be negative".into()))?;
    Ok(SubmitRequest {
        document,
        copies,
        sides: sides_from_wire(req.sides)?,
        color_mode: color_from_wire(req.color_mode)?,
        media: Some(req.media).filter(|m| !m.is_empty()),
        fit: req.fit_to_sheet,
        request_id: Some(req.request_id).filter(|r| !r.is_empty()),
    })
}

/// The most reasons one ReportDeviceJobState may carry.
const MAX_REPORTED_REASONS: usize = 16;

/// A device-reported state: it must name a real state, and reasons are IPP-style keywords.
pub fn reported_status(req: &pb::ReportDeviceJobStateRequest) -> CoreResult<PrinterJobStatus> {
    let state = JobState::from_ipp(req.state)
        .ok_or_else(|| CoreError::InvalidArgument(format!("state {} is not a job state", req.state)))?;
    if req.state_reasons.len() > MAX_REPORTED_REASONS {
        return Err(CoreError::InvalidArgument(format!(
            "state_reasons has {} entries; at most {MAX_REPORTED_REASONS} are accepted",
            req.state_reasons.len()
        )));
    }
    for reason in &req.state_reasons {
        let keyword = (1..=64).contains(&reason.len())
            && reason.starts_with(|c: char| c.is_ascii_lowercase())
            && reason.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
        if !keyword {
            return Err(CoreError::InvalidArgument(format!(
                "state_reasons must be IPP keywords like \"job-printing\" (1 to 64 of a-z 0-9 . _ -, starting with a \
                 letter), not \"{}\"",
                reason.chars().take(64).collect::<String>()
            )));
        }
    }
    if req.device_job_id.chars().count() > 128 {
        return Err(CoreError::InvalidArgument("device_job_id is longer than 128 characters".into()));
    }
    let pages = req
        .pages_printed
        .map(|p| u32::try_from(p).map_err(|_| CoreError::InvalidArgument("pages_printed must not be negative".into())))
        .transpose()?;
    Ok(PrinterJobStatus { state, reasons: req.state_reasons.clone(), message: None, pages_printed: pages })
}

pub fn device(d: &Device) -> pb::Device {
    pb::Device {
        id: d.id.as_str().to_owned(),
        display_name: d.display_name.clone(),
        model: d.model.clone(),
        delivery_mode: wire_delivery(d.delivery),
        printer_uri: d.printer_uri.as_ref().map(|uri| uri.as_str().to_owned()).unwrap_or_default(),
        pinned_certificate_sha256: d.pinned_certificate_sha256.map(hex::encode).unwrap_or_default(),
        location: d.location.clone(),
        capabilities: d.capabilities.as_ref().map(capabilities),
        create_time: d.registered_at.map(timestamp),
        update_time: d.updated_at.map(timestamp),
    }
}

/// A device from the wire, its fields parsed (the registry, `domain::devices::Devices`, checks
/// the whole device before storing it).
pub fn device_from_wire(d: pb::Device) -> CoreResult<Device> {
    let delivery = match pb::DeliveryMode::try_from(d.delivery_mode) {
        Ok(pb::DeliveryMode::IppPush) => DeliveryMode::IppPush,
        Ok(pb::DeliveryMode::DevicePull) => DeliveryMode::DevicePull,
        Ok(pb::DeliveryMode::SpoolFolder) => DeliveryMode::SpoolFolder,
        _ => return Err(CoreError::InvalidArgument("device.delivery_mode must be set".into())),
    };
    let pin = match d.pinned_certificate_sha256.as_str() {
        "" => None,
        raw => Some(parse_pin(raw)?),
    };
    let device = Device {
        id: DeviceId::parse(&d.id)?,
        display_name: d.display_name,
        model: d.model,
        delivery,
        printer_uri: match d.printer_uri.as_str() {
            "" => None,
            raw => Some(PrinterUri::parse(raw)?),
        },
        pinned_certificate_sha256: pin,
        location: d.location,
        capabilities: d.capabilities.map(capabilities_from_wire).transpose()?,
        registered_at: None,
        updated_at: None,
    };
    Ok(device)
}

/// RegisterDevice's device.
pub fn register_device(req: pb::RegisterDeviceRequest) -> CoreResult<Device> {
    device_from_wire(req.device.ok_or_else(|| CoreError::InvalidArgument("device is required".into()))?)
}

/// ListDevices' page size (0: the default) and page token.
pub fn device_page(req: &pb::ListDevicesRequest) -> CoreResult<(u32, &str)> {
    let size = u32::try_from(req.page_size)
        .map_err(|_| CoreError::InvalidArgument("page_size must not be negative".into()))?;
    Ok((size, req.page_token.as_str()))
}

/// UpdateDevice's request, checked in the contract's order: the device and the mask are
/// required, the id must name a device, and the mask must name a field.
pub fn device_update(req: pb::UpdateDeviceRequest) -> CoreResult<(DeviceId, pb::Device, Vec<String>)> {
    let wire = req.device.ok_or_else(|| CoreError::InvalidArgument("device is required".into()))?;
    let mask = req.update_mask.ok_or_else(|| CoreError::InvalidArgument("update_mask is required".into()))?;
    let id = existing_device_id(&wire.id)?;
    if mask.paths.is_empty() {
        return Err(CoreError::InvalidArgument(
            "update_mask names no field; name the fields to change, e.g. \"location\", or \"*\" for all".into(),
        ));
    }
    Ok((id, wire, mask.paths))
}

/// The registered device with the fields `paths` names taken from `wire`.
pub fn merge_device(current: &Device, wire: pb::Device, paths: &[String]) -> CoreResult<Device> {
    let mut merged = device(current);
    for path in paths {
        match path.as_str() {
            "*" => merged = wire.clone(),
            "display_name" => merged.display_name = wire.display_name.clone(),
            "model" => merged.model = wire.model.clone(),
            "delivery_mode" => merged.delivery_mode = wire.delivery_mode,
            "printer_uri" => merged.printer_uri = wire.printer_uri.clone(),
            "pinned_certificate_sha256" => merged.pinned_certificate_sha256 = wire.pinned_certificate_sha256.clone(),
            "location" => merged.location = wire.location.clone(),
            "capabilities" => merged.capabilities = wire.capabilities.clone(),
            other => {
                return Err(CoreError::InvalidArgument(format!(
                    "update_mask names \"{other}\", which cannot be changed"
                )));
            }
        }
    }
    merged.id = current.id.as_str().to_owned();
    device_from_wire(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_usage_kind_round_trips_through_the_wire() {
        for kind in UsageKind::ALL {
            assert_eq!(usage_kind_from_wire(usage_kind_to_wire(kind)).unwrap(), kind);
        }
        assert!(usage_kind_from_wire(0).is_err());
        assert!(usage_kind_from_wire(999).is_err());
    }

    #[test]
    fn bad_times_and_sizes_are_invalid_arguments() {
        let bad = pb::CountUsageEventsRequest {
            start_time: Some(prost_types::Timestamp { seconds: 10, nanos: 0 }),
            end_time: Some(prost_types::Timestamp { seconds: 5, nanos: 0 }),
            ..Default::default()
        };
        assert!(matches!(usage_query(bad), Err(CoreError::InvalidArgument(_))));
        let negative = pb::ListProductsRequest { page_size: -1, ..Default::default() };
        assert!(matches!(list_products(negative), Err(CoreError::InvalidArgument(_))));
    }
}
