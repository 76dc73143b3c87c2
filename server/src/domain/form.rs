//! Product forms: typed fields with their rules, shaped to carry both the embedded storefront's
//! template forms and an XMPie uStore property form; and `Form::check`, which applies every rule a
//! form states to a set of values and names each problem by field.

use std::collections::BTreeMap;

use regex::Regex;

use crate::domain::catalog::{Image, QuantityRule};
use crate::domain::ids::ProductId;

/// Field values as the person typed them, by field id.
pub type Values = BTreeMap<String, String>;

/// What kind of value a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Multiline,
    Choice,
    Number,
    Email,
    Phone,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
}

/// One answer of a choice field.
#[derive(Debug, Clone)]
pub struct ChoiceOption {
    pub value: String,
    pub label: String,
    /// `#rrggbb` when the option is a colour.
    pub swatch_color: Option<String>,
    /// A small picture of the option, when it swaps an image.
    pub image: Option<Image>,
}

/// Show a field only while another field has one of these values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub field: String,
    pub values: Vec<String>,
}

/// A group of fields shown together.
#[derive(Debug, Clone)]
pub struct Section {
    pub id: String,
    pub title: String,
    pub description: String,
}

/// One field of a form and its rules.
#[derive(Debug, Clone)]
pub struct Field {
    pub id: String,
    /// The backend's name for the field (a uStore dial name; the id for embedded templates).
    pub code: String,
    pub label: String,
    pub help: String,
    pub kind: FieldKind,
    pub required: bool,
    pub default: String,
    pub placeholder: String,
    /// In characters; 0 means no minimum.
    pub min_length: usize,
    /// In characters; 0 means no maximum beyond the server's hard limit.
    pub max_length: usize,
    /// Matched anywhere in the value (not implicitly anchored), as JSON Schema does.
    pub pattern: Option<Regex>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: Option<f64>,
    /// Multi-line fields: at most this many lines (0 = no limit).
    pub max_lines: usize,
    pub options: Vec<ChoiceOption>,
    pub section: Option<String>,
    pub visible_when: Option<Condition>,
    pub affects_preview: bool,
    pub affects_price: bool,
    pub read_only: bool,
}

/// A product's form: sections and fields in display order.
#[derive(Debug, Clone)]
pub struct Form {
    pub product: ProductId,
    pub sections: Vec<Section>,
    pub fields: Vec<Field>,
}

/// Why a value is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorCode {
    Required,
    TooShort,
    TooLong,
    PatternMismatch,
    OutOfRange,
    NotAnOption,
    InvalidFormat,
    DoesNotFit,
    UnsupportedCharacter,
    StepMismatch,
    Rejected,
}

/// A problem with one field's value (or the quantity, when `field` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub code: FieldErrorCode,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, code: FieldErrorCode, message: impl Into<String>) -> Self {
        FieldError { field: field.to_owned(), code, message: message.into() }
    }
}

/// No value may be longer than this many bytes (8 KiB of UTF-8, as the contract says), whatever the
/// form says; longer input is refused as a whole request rather than stored.
pub const HARD_VALUE_LIMIT: usize = 8 * 1024;
/// No request may carry more values than this.
pub const MAX_VALUES: usize = 256;

/// Why a set of values cannot even be considered (the whole request is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputProblem {
    TooMany(usize),
    UnknownField(String),
    ReadOnly(String),
    TooLarge { field: String, bytes: usize },
}

impl InputProblem {
    pub fn message(&self) -> String {
        match self {
            InputProblem::TooMany(n) => format!("values has {n} entries; a request may carry at most {MAX_VALUES}"),
            InputProblem::UnknownField(field) => {
                format!("values names \"{field}\", which is not a field of this product; GetForm lists the fields")
            }
            InputProblem::ReadOnly(field) => {
                format!("\"{field}\" is read-only: its value is the form's default and cannot be set")
            }
            InputProblem::TooLarge { field, bytes } => {
                format!("the value of \"{field}\" is {bytes} bytes; no value may exceed {HARD_VALUE_LIMIT} bytes")
            }
        }
    }
}

/// Input as it is stored: a TAB (which pasted text brings) becomes a space in every kind of field.
/// Every other character is kept as typed; control characters are reported by `Form::check`.
pub fn normalize(values: &mut Values) {
    for value in values.values_mut() {
        if value.contains('\t') {
            *value = value.replace('\t', " ");
        }
    }
}

impl Form {
    pub fn field(&self, id: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// The values a new draft starts with: every field's default.
    pub fn defaults(&self) -> Values {
        self.fields.iter().filter(|f| !f.default.is_empty()).map(|f| (f.id.clone(), f.default.clone())).collect()
    }

    /// Refuses input no form could accept: too many values, unknown or read-only fields,
    /// oversized values. Everything else is kept, and `check` reports its problems by field.
    pub fn screen(&self, values: &Values) -> Result<(), InputProblem> {
        if values.len() > MAX_VALUES {
            return Err(InputProblem::TooMany(values.len()));
        }
        for (id, value) in values {
            let Some(field) = self.field(id) else { return Err(InputProblem::UnknownField(id.clone())) };
            if field.read_only {
                return Err(InputProblem::ReadOnly(id.clone()));
            }
            if value.len() > HARD_VALUE_LIMIT {
                return Err(InputProblem::TooLarge { field: id.clone(), bytes: value.len() });
            }
        }
        Ok(())
    }

    /// Whether a field is shown with these values (hidden fields are neither checked nor printed).
    pub fn is_visible(&self, field: &Field, values: &Values) -> bool {
        let Some(condition) = &field.visible_when else { return true };
        let Some(parent) = self.field(&condition.field) else { return false };
        if !self.is_visible(parent, values) {
            return false;
        }
        let current = values.get(&parent.id).map_or(parent.default.as_str(), String::as_str);
        condition.values.iter().any(|v| v == current)
    }

    /// Every rule of every visible field, applied to `values`; in display order.
    pub fn check(&self, values: &Values) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for field in &self.fields {
            if !self.is_visible(field, values) {
                continue;
            }
            let value = values.get(&field.id).map_or("", String::as_str);
            if let Some(error) = check_field(field, value) {
                errors.push(error);
            }
        }
        errors
    }
}

/// Checks a quantity against a product's rule; the error's field is empty, as the contract says.
pub fn check_quantity(rule: &QuantityRule, quantity: u32) -> Option<FieldError> {
    if !rule.options.is_empty() && !rule.options.contains(&quantity) {
        let options = rule.options.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        return Some(FieldError::new("", FieldErrorCode::NotAnOption, format!("choose a quantity of {options}")));
    }
    if quantity < rule.minimum || quantity > rule.maximum {
        return Some(FieldError::new(
            "",
            FieldErrorCode::OutOfRange,
            format!("the quantity must be between {} and {}", rule.minimum, rule.maximum),
        ));
    }
    None
}

fn check_field(field: &Field, value: &str) -> Option<FieldError> {
    let err = |code, message: String| Some(FieldError::new(&field.id, code, message));
    let label = &field.label;
    if value.trim().is_empty() {
        return if field.required { err(FieldErrorCode::Required, format!("{label} is required")) } else { None };
    }
    if let Some(error) = check_characters(field, value) {
        return Some(error);
    }
    let chars = value.chars().count();
    if field.min_length > 0 && chars < field.min_length {
        return err(FieldErrorCode::TooShort, format!("{label} needs at least {} characters", field.min_length));
    }
    if field.max_length > 0 && chars > field.max_length {
        return err(
            FieldErrorCode::TooLong,
            format!(
                "{label} can have at most {} characters; shorten it by {}",
                field.max_length,
                chars - field.max_length
            ),
        );
    }
    match field.kind {
        FieldKind::Text | FieldKind::Multiline => {}
        FieldKind::Choice => {
            if !field.options.iter().any(|o| o.value == value) {
                let labels = field.options.iter().map(|o| o.label.as_str()).collect::<Vec<_>>().join(", ");
                return err(FieldErrorCode::NotAnOption, format!("choose one of: {labels}"));
            }
        }
        FieldKind::Number => return check_number(field, value),
        FieldKind::Email => {
            if !looks_like_email(value) {
                return err(
                    FieldErrorCode::InvalidFormat,
                    format!("{label} must be an email address like name@example.com"),
                );
            }
        }
        FieldKind::Phone => {
            if !looks_like_phone(value) {
                return err(
                    FieldErrorCode::InvalidFormat,
                    format!("{label} must be a phone number: digits, spaces and + ( ) - . only, 5 to 20 digits"),
                );
            }
        }
        FieldKind::Date => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            if time::Date::parse(value, &format).is_err() {
                return err(FieldErrorCode::InvalidFormat, format!("{label} must be a date written YYYY-MM-DD"));
            }
        }
    }
    if field.kind == FieldKind::Multiline && field.max_lines > 0 {
        let lines = value.lines().count();
        if lines > field.max_lines {
            return err(
                FieldErrorCode::TooLong,
                format!("{label} can have at most {} lines; it has {lines}", field.max_lines),
            );
        }
    }
    if let Some(pattern) = &field.pattern
        && !pattern.is_match(value)
    {
        return err(FieldErrorCode::PatternMismatch, format!("{label} is not in the expected form"));
    }
    None
}

/// Control characters cannot be printed: line breaks only in multi-line fields (CR, LF, CRLF and
/// the Unicode separators), nothing else. The value is kept; the person removes the character.
fn check_characters(field: &Field, value: &str) -> Option<FieldError> {
    let label = &field.label;
    let is_break = |c: char| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}');
    if field.kind != FieldKind::Multiline && value.chars().any(is_break) {
        return Some(FieldError::new(
            &field.id,
            FieldErrorCode::UnsupportedCharacter,
            format!("{label} must be one line: remove the line break"),
        ));
    }
    let bad = value.chars().find(|&c| c.is_control() && !is_break(c))?;
    Some(FieldError::new(
        &field.id,
        FieldErrorCode::UnsupportedCharacter,
        format!(
            "{label} contains an invisible control character (U+{:04X}) that cannot be printed: remove it",
            u32::from(bad)
        ),
    ))
}

fn check_number(field: &Field, value: &str) -> Option<FieldError> {
    let label = &field.label;
    let err = |code, message: String| Some(FieldError::new(&field.id, code, message));
    let Ok(number) = value.trim().parse::<f64>() else {
        return err(FieldErrorCode::InvalidFormat, format!("{label} must be a number"));
    };
    if !number.is_finite() {
        return err(FieldErrorCode::InvalidFormat, format!("{label} must be a number"));
    }
    let below = field.min.is_some_and(|min| number < min);
    let above = field.max.is_some_and(|max| number > max);
    if below || above {
        let range = match (field.min, field.max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!("at least {min}"),
            (None, Some(max)) => format!("at most {max}"),
            (None, None) => unreachable!("out of range needs a bound"),
        };
        return err(FieldErrorCode::OutOfRange, format!("{label} must be {range}"));
    }
    if let Some(step) = field.step.filter(|s| *s > 0.0) {
        let steps = (number - field.min.unwrap_or(0.0)) / step;
        if (steps - steps.round()).abs() > 1e-9 {
            return err(FieldErrorCode::StepMismatch, format!("{label} must be in steps of {step}"));
        }
    }
    None
}

/// A plain structural check (one `@`, a dotted domain, no spaces): enough to catch typos on a
/// touch screen without rejecting real addresses.
fn looks_like_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else { return false };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.len() <= 64
        && !value.chars().any(char::is_whitespace)
        && !domain.contains('@')
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
}

fn looks_like_phone(value: &str) -> bool {
    let digits = value.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits) && value.chars().all(|c| c.is_ascii_digit() || " +()-./".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(id: &str, kind: FieldKind) -> Field {
        Field {
            id: id.into(),
            code: id.into(),
            label: id.to_uppercase(),
            help: String::new(),
            kind,
            required: false,
            default: String::new(),
            placeholder: String::new(),
            min_length: 0,
            max_length: 0,
            pattern: None,
            min: None,
            max: None,
            step: None,
            max_lines: 0,
            options: Vec::new(),
            section: None,
            visible_when: None,
            affects_preview: true,
            affects_price: false,
            read_only: false,
        }
    }

    fn form(fields: Vec<Field>) -> Form {
        Form { product: ProductId::parse("p").unwrap(), sections: Vec::new(), fields }
    }

    fn codes(form: &Form, values: &[(&str, &str)]) -> Vec<(String, FieldErrorCode)> {
        let values = values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        form.check(&values).into_iter().map(|e| (e.field, e.code)).collect()
    }

    fn option(value: &str) -> ChoiceOption {
        ChoiceOption { value: value.into(), label: value.into(), swatch_color: None, image: None }
    }

    #[test]
    fn every_rule_names_its_field() {
        let mut name = field("name", FieldKind::Text);
        name.required = true;
        name.min_length = 2;
        name.max_length = 5;
        let mut code = field("code", FieldKind::Text);
        code.pattern = Some(Regex::new("^[A-Z]{3}$").unwrap());
        let mut colour = field("colour", FieldKind::Choice);
        colour.options = vec![option("red"), option("blue")];
        let mut price = field("price", FieldKind::Number);
        (price.min, price.max, price.step) = (Some(1.0), Some(10.0), Some(0.5));
        let mut body = field("body", FieldKind::Multiline);
        body.max_lines = 2;
        let form = form(vec![
            name,
            code,
            colour,
            price,
            field("email", FieldKind::Email),
            field("phone", FieldKind::Phone),
            field("date", FieldKind::Date),
            body,
        ]);

        use FieldErrorCode::*;
        assert_eq!(codes(&form, &[]), vec![("name".into(), Required)]);
        assert_eq!(codes(&form, &[("name", "   ")]), vec![("name".into(), Required)]);
        assert_eq!(codes(&form, &[("name", "J")]), vec![("name".into(), TooShort)]);
        assert_eq!(codes(&form, &[("name", "Jéröme")]), vec![("name".into(), TooLong)]);
        assert_eq!(codes(&form, &[("name", "Zoë")]), vec![]);
        let bad = [
            ("code", "abc", PatternMismatch),
            ("colour", "green", NotAnOption),
            ("price", "ten", InvalidFormat),
            ("price", "NaN", InvalidFormat),
            ("price", "0.5", OutOfRange),
            ("price", "11", OutOfRange),
            ("price", "2.25", StepMismatch),
            ("email", "jane.example.com", InvalidFormat),
            ("email", "jane@example", InvalidFormat),
            ("email", "ja ne@example.com", InvalidFormat),
            ("phone", "call me", InvalidFormat),
            ("phone", "123", InvalidFormat),
            ("date", "2026-02-30", InvalidFormat),
            ("date", "30.01.2026", InvalidFormat),
            ("body", "one\ntwo\nthree", TooLong),
        ];
        for (id, value, code) in bad {
            assert_eq!(codes(&form, &[("name", "Zoë"), (id, value)]), vec![(id.to_string(), code)], "{id} = {value:?}");
        }
        let good = [
            ("code", "ABC"),
            ("colour", "blue"),
            ("price", "9.5"),
            ("email", "jane.doe+print@example.co.uk"),
            ("phone", "+49 (30) 123-456.78"),
            ("date", "2026-02-28"),
            ("body", "one\ntwo"),
        ];
        for (id, value) in good {
            assert_eq!(codes(&form, &[("name", "Zoë"), (id, value)]), vec![], "{id} = {value:?}");
        }
    }

    #[test]
    fn hidden_fields_are_not_checked_and_conditions_follow_defaults() {
        let mut show = field("show_offer", FieldKind::Choice);
        show.options = vec![option("yes"), option("no")];
        show.default = "no".into();
        let mut offer = field("offer", FieldKind::Text);
        offer.required = true;
        offer.visible_when = Some(Condition { field: "show_offer".into(), values: vec!["yes".into()] });
        let form = form(vec![show, offer]);
        assert_eq!(codes(&form, &[]), vec![]);
        assert_eq!(codes(&form, &[("show_offer", "yes")]), vec![("offer".into(), FieldErrorCode::Required)]);
    }

    #[test]
    fn screening_refuses_what_no_form_accepts() {
        let mut fixed = field("fixed", FieldKind::Text);
        fixed.read_only = true;
        let form = form(vec![field("name", FieldKind::Text), field("body", FieldKind::Multiline), fixed]);
        let values = |k: &str, v: String| Values::from([(k.to_string(), v)]);
        assert_eq!(form.screen(&values("nope", "x".into())), Err(InputProblem::UnknownField("nope".into())));
        assert_eq!(form.screen(&values("fixed", "x".into())), Err(InputProblem::ReadOnly("fixed".into())));
        assert_eq!(form.screen(&values("name", "x".repeat(HARD_VALUE_LIMIT))), Ok(()));
        assert!(matches!(
            form.screen(&values("name", "x".repeat(HARD_VALUE_LIMIT + 1))),
            Err(InputProblem::TooLarge { bytes: 8193, .. })
        ));
        let many: Values = (0..=MAX_VALUES).map(|i| (format!("f{i}"), String::new())).collect();
        assert_eq!(form.screen(&many), Err(InputProblem::TooMany(MAX_VALUES + 1)));
        // Control characters are the person's to fix: kept, then reported by field.
        assert_eq!(form.screen(&values("name", "a\0b".into())), Ok(()));
        assert_eq!(form.screen(&values("name", "</text><image href=\"file:///etc/passwd\"/>".into())), Ok(()));
    }

    #[test]
    fn control_characters_are_field_errors_and_tabs_become_spaces() {
        let form = form(vec![field("name", FieldKind::Text), field("body", FieldKind::Multiline)]);
        use FieldErrorCode::UnsupportedCharacter;
        assert_eq!(codes(&form, &[("name", "a\0b")]), vec![("name".into(), UnsupportedCharacter)]);
        assert_eq!(codes(&form, &[("name", "a\nb")]), vec![("name".into(), UnsupportedCharacter)]);
        assert_eq!(codes(&form, &[("body", "a\u{1b}[31m")]), vec![("body".into(), UnsupportedCharacter)]);
        assert_eq!(codes(&form, &[("body", "a\r\nb\nc")]), vec![]);
        let message = &form.check(&Values::from([("name".into(), "a\nb".into())]))[0].message;
        assert!(message.contains("line break") && !message.contains("shorten"), "{message}");

        let mut values = Values::from([("name".to_string(), "Anna\tKeller".to_string())]);
        normalize(&mut values);
        assert_eq!(values["name"], "Anna Keller");
        assert_eq!(codes(&form, &[("name", &values["name"])]), vec![]);
    }

    #[test]
    fn quantities_follow_the_rule() {
        let rule = QuantityRule { minimum: 50, maximum: 1000, default: 100, options: vec![50, 100, 250] };
        assert_eq!(check_quantity(&rule, 100), None);
        assert_eq!(check_quantity(&rule, 75).unwrap().code, FieldErrorCode::NotAnOption);
        let free = QuantityRule { options: vec![], ..rule };
        assert_eq!(check_quantity(&free, 75), None);
        assert_eq!(check_quantity(&free, 2000).unwrap().code, FieldErrorCode::OutOfRange);
    }
}
