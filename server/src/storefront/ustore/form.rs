//! Maps an XMPie uStore "PropertiesForm" (react-jsonschema-form style: `JSONSchema`, `UISchema`,
//! `formData`, `errors`) onto podconnect's typed `Form`, and builds what goes back to uStore: the
//! form-state / form-save body and our `FieldError`s from uStore's `errors`. Pure: no I/O.
//!
//! Choices the caller should know:
//! - A field's id is the uStore form key when that key is a usable id (1 to 128 of
//!   `A-Z a-z 0-9 . _ -`); otherwise a derived one (slug + 8 hex digits of the key's SHA-256).
//!   Values always go back to uStore by dial id (`custom.id`), never by key or our id.
//! - Dials with `ui:options.visible == false` are uStore's business: not in the form, never sent.
//!   A condition on such a hidden dial is decided once, on its current value.
//! - Widgets we do not know (uStore DUCs) become text fields, listed in `degraded`; a `pattern`
//!   our regex engine cannot compile is dropped and listed there too. Neither fails the form.
//! - `___JSON___:`-prefixed values (how DUCs carry structured values) are kept verbatim, so they
//!   go back to uStore byte for byte; we never unwrap or re-encode them.

use std::collections::{BTreeMap, BTreeSet};

use regex::RegexBuilder;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::domain::form::{
    ChoiceOption, Condition, Field, FieldError, FieldErrorCode, FieldKind, Form, MAX_VALUES, Section, Values,
};
use crate::domain::ids::ProductId;

/// uStore's pseudo dial for the order item's quantity (in state bodies and in `errors`).
const QUANTITY_KEY: &str = "uStoreOrderItemQuantity";
/// The contract's bound on a field id (FormField.id: "opaque, at most 128 characters").
const MAX_ID_CHARS: usize = 128;
/// `$ref` → `$ref` → … at most this many hops; a cycle is caught by the same bound.
const MAX_REF_HOPS: usize = 4;
/// Dials (hidden ones included) read at all; bounds the work before the field count is known.
const MAX_DIALS: usize = 4 * MAX_VALUES;
/// A hostile or careless pattern must not cost unbounded memory to compile.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// A uStore property form mapped onto ours, with what is needed to talk back to uStore.
#[derive(Debug)]
pub(crate) struct MappedForm {
    pub form: Form,
    /// our field id (the uStore form key) → uStore dial id (`custom.id`), for sending values back
    pub dial_ids: BTreeMap<String, String>,
    /// widgets we could not map (field id, widget name); the caller logs each once per product.
    /// A dropped pattern is listed here too, as (field id, `pattern "…": why`).
    pub degraded: Vec<(String, String)>,
    /// current values from formData (as strings), for fields we know
    pub current: Values,
}

/// What is wrong with a PropertiesForm; the caller turns it into an INTERNAL error and logs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormMapError {
    #[error("the property form is not a JSON object")]
    NotAnObject,
    #[error("the property form has no JSONSchema")]
    MissingSchema,
    #[error("{at}: \"{member}\" must be {expected}")]
    WrongType { at: String, member: String, expected: &'static str },
    #[error("the definition of \"{0}\" is not an object")]
    DefinitionNotAnObject(String),
    #[error("\"{key}\": $ref {reference:?} does not lead to a definition within a few hops")]
    BadRef { key: String, reference: String },
    #[error("\"{0}\" has no dial id (custom.id), so its value could not be sent back")]
    MissingDialId(String),
    #[error("dependencies of \"{parent}\": {why}")]
    BadDependency { parent: String, why: String },
    #[error("the visibility conditions of \"{0}\" form a cycle")]
    ConditionCycle(String),
    #[error("the field ids of \"{0}\" and \"{1}\" collide")]
    DuplicateId(String, String),
    #[error("the form has {count} fields; at most {limit} are supported")]
    TooManyFields { count: usize, limit: usize },
}

fn wrong(at: &str, member: &str, expected: &'static str) -> FormMapError {
    FormMapError::WrongType { at: at.to_owned(), member: member.to_owned(), expected }
}

/// Maps a PropertiesForm (the body of `GET …/properties/form`) onto our form.
pub(crate) fn map_form(product: &ProductId, raw: &Value) -> Result<MappedForm, FormMapError> {
    let root = raw.as_object().ok_or(FormMapError::NotAnObject)?;
    let schema = match root.get("JSONSchema") {
        None | Some(Value::Null) => return Err(FormMapError::MissingSchema),
        Some(Value::Object(schema)) => schema,
        Some(_) => return Err(wrong("form", "JSONSchema", "an object")),
    };
    let definitions = object(schema, "definitions", "JSONSchema")?;
    let properties = object(schema, "properties", "JSONSchema")?;
    let required = strings(schema, "required", "JSONSchema")?;
    let dependencies = object(schema, "dependencies", "JSONSchema")?;
    let ui = object(root, "UISchema", "form")?;
    let data = object(root, "formData", "form")?;

    let entries = collect_entries(properties, &required, dependencies)?;
    let mut dials = BTreeMap::new();
    for (&key, entry) in &entries {
        dials.insert(key, read_dial(key, entry.schema, definitions, ui, data)?);
    }

    // Which dials become fields, and under which condition.
    let mut resolved: BTreeMap<&str, Resolution> = BTreeMap::new();
    for &key in entries.keys() {
        resolve(key, &entries, &dials, &mut resolved, &mut BTreeSet::new())?;
    }
    let shown: Vec<&str> = entries.keys().copied().filter(|k| matches!(resolved[k], Resolution::Shown(_))).collect();
    if shown.len() > MAX_VALUES {
        return Err(FormMapError::TooManyFields { count: shown.len(), limit: MAX_VALUES });
    }

    let mut mapped = MappedForm {
        form: Form { product: product.clone(), sections: Vec::new(), fields: Vec::new() },
        dial_ids: BTreeMap::new(),
        degraded: Vec::new(),
        current: Values::new(),
    };
    let mut keys_by_id: BTreeMap<String, &str> = BTreeMap::new();
    let mut placed = Vec::new();
    for key in shown {
        let Resolution::Shown(visible_when) = &resolved[key] else { continue };
        let dial = &dials[key];
        let id = field_id(key);
        if let Some(other) = keys_by_id.insert(id.clone(), key) {
            return Err(FormMapError::DuplicateId(other.to_owned(), key.to_owned()));
        }
        let dial_id = dial.dial_id.clone().ok_or_else(|| FormMapError::MissingDialId(key.to_owned()))?;
        let field = build_field(&id, key, dial, entries[key].required, visible_when.clone(), &mut mapped.degraded)?;
        mapped.dial_ids.insert(id.clone(), dial_id);
        if let Some(current) = &dial.current {
            mapped.current.insert(id, current.clone());
        }
        placed.push((dial.order, key, field, dial.section.clone()));
    }
    // Display order: custom.displayOrder (dials without one last), ties by key; stable.
    placed.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    for (_, _, field, section) in placed {
        if let Some(section) = section
            && mapped.form.sections.iter().all(|s| s.id != section.id)
        {
            mapped.form.sections.push(section);
        }
        mapped.form.fields.push(field);
    }
    Ok(mapped)
}

/// The body of uStore's form-state / form-save calls: `[{"id": dialId, "value": v}, …]` for the
/// visible, writable fields, plus `{"id":"uStoreOrderItemQuantity","value": quantity}` when
/// `quantity` is Some. A visible field missing from `values` is sent as "" — a cleared field must
/// clear uStore's value too, or the print would keep what the person removed; pass the draft's
/// full values (defaults included). Read-only fields are uStore's to set and are not sent.
pub(crate) fn state_body(mapped: &MappedForm, values: &Values, quantity: Option<u32>) -> Value {
    let form = &mapped.form;
    let mut body: Vec<Value> = form
        .fields
        .iter()
        .filter(|field| !field.read_only && form.is_visible(field, values))
        .filter_map(|field| {
            let dial = mapped.dial_ids.get(&field.id)?;
            let value = values.get(&field.id).map_or("", String::as_str);
            Some(json!({ "id": dial, "value": value }))
        })
        .collect();
    if let Some(quantity) = quantity {
        body.push(json!({ "id": QUANTITY_KEY, "value": quantity }));
    }
    Value::Array(body)
}

/// uStore's `errors` object (keys = form keys, arrays of messages) → our FieldErrors (code
/// `Rejected`, message = uStore's text, several joined by "; "), in display order, then the
/// quantity's, then those of keys we do not know; "uStoreOrderItemQuantity" → field "" (the
/// quantity, as our contract says); unknown keys (e.g. hidden dials) go on field "" too, never
/// dropped. Missing/empty errors → empty vec.
pub(crate) fn field_errors(mapped: &MappedForm, raw_state: &Value) -> Vec<FieldError> {
    let errors = match raw_state.get("errors") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Object(errors)) => errors,
        // Dropping what uStore said would let a refused draft look fine.
        Some(_) => {
            return vec![FieldError::new(
                "",
                FieldErrorCode::Rejected,
                "uStore refused the values (unreadable errors)",
            )];
        }
    };
    let mut ranked: Vec<((u8, usize), FieldError)> = Vec::new();
    for (key, messages) in errors {
        let Some(message) = messages_text(messages) else { continue };
        let id = field_id(key);
        let position = mapped.form.fields.iter().position(|f| f.id == id && mapped.dial_ids.contains_key(&f.id));
        let (rank, field) = match position {
            _ if key == QUANTITY_KEY => ((1, 0), ""),
            Some(index) => ((0, index), id.as_str()),
            None => ((2, ranked.len()), ""),
        };
        ranked.push((rank, FieldError::new(field, FieldErrorCode::Rejected, message)));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, error)| error).collect()
}

/// One error entry's messages as one text; None when there is none (an empty list means fine).
fn messages_text(messages: &Value) -> Option<String> {
    let parts: Vec<String> = match messages {
        Value::Null => return None,
        Value::Array(items) if items.is_empty() => return None,
        Value::Array(items) => items.iter().map(text_of).collect(),
        other => vec![text_of(other)],
    };
    let parts: Vec<String> = parts.into_iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
    // Our contract: a message is never empty.
    Some(if parts.is_empty() { "uStore refused this value".to_owned() } else { parts.join("; ") })
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Our id for a uStore form key: the key itself when usable, else a stable derived one.
fn field_id(key: &str) -> String {
    let usable = !key.is_empty()
        && key.len() <= MAX_ID_CHARS
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if usable {
        return key.to_owned();
    }
    let slug: String = key.chars().take(48).map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let hash = Sha256::digest(key.as_bytes());
    format!("{slug}-{}", hex::encode(&hash[..4]))
}

/// A dial as the form lists it: where its schema is and whether it shows under a condition.
struct Entry<'a> {
    schema: &'a Value,
    required: bool,
    /// (parent key, parent values that show it), for dials of `dependencies.<parent>.oneOf`.
    parent: Option<(&'a str, Vec<String>)>,
}

fn collect_entries<'a>(
    properties: Option<&'a Map<String, Value>>,
    required: &BTreeSet<&str>,
    dependencies: Option<&'a Map<String, Value>>,
) -> Result<BTreeMap<&'a str, Entry<'a>>, FormMapError> {
    let too_many = |count| FormMapError::TooManyFields { count, limit: MAX_VALUES };
    let mut entries = BTreeMap::new();
    for (key, schema) in properties.into_iter().flatten() {
        entries.insert(key.as_str(), Entry { schema, required: required.contains(key.as_str()), parent: None });
    }
    if entries.len() > MAX_DIALS {
        return Err(too_many(entries.len()));
    }
    for (parent, dependency) in dependencies.into_iter().flatten() {
        let at = format!("JSONSchema.dependencies.{parent}");
        let dependency = dependency.as_object().ok_or_else(|| wrong("JSONSchema.dependencies", parent, "an object"))?;
        let Some(branches) = array(dependency, "oneOf", &at)? else { continue };
        for branch in branches {
            let branch = branch.as_object().ok_or_else(|| wrong(&at, "oneOf", "a list of objects"))?;
            let Some(branch_properties) = object(branch, "properties", &at)? else { continue };
            let branch_required = strings(branch, "required", &at)?;
            let Some(parent_schema) = branch_properties.get(parent) else {
                return Err(FormMapError::BadDependency {
                    parent: parent.clone(),
                    why: "a oneOf branch does not give the parent's values".into(),
                });
            };
            let values = parent_values(parent, parent_schema)?;
            for (child, schema) in branch_properties {
                let in_properties = properties.is_some_and(|p| p.contains_key(child));
                if child == parent || in_properties {
                    continue;
                }
                let child_required = branch_required.contains(child.as_str());
                match entries.get_mut(child.as_str()) {
                    None => {
                        let parent = Some((parent.as_str(), values.clone()));
                        entries.insert(child.as_str(), Entry { schema, required: child_required, parent });
                    }
                    Some(entry) => {
                        // Shown for any branch that lists it; required only if every such branch
                        // says so (uStore still checks per branch on its side).
                        if let Some((first_parent, shown_for)) = &mut entry.parent
                            && *first_parent == parent.as_str()
                        {
                            for value in &values {
                                if !shown_for.contains(value) {
                                    shown_for.push(value.clone());
                                }
                            }
                            entry.required &= child_required;
                        }
                        // A dial under two parents keeps the first (our conditions have one parent).
                    }
                }
            }
            if entries.len() > MAX_DIALS {
                return Err(too_many(entries.len()));
            }
        }
    }
    Ok(entries)
}

/// The parent's values of one oneOf branch: `{"enum": [...]}` or `{"const": v}`.
fn parent_values(parent: &str, schema: &Value) -> Result<Vec<String>, FormMapError> {
    let bad = |why: &str| FormMapError::BadDependency { parent: parent.to_owned(), why: why.to_owned() };
    let schema = schema.as_object().ok_or_else(|| bad("the parent's entry in a branch is not an object"))?;
    let values: Vec<&Value> = match (schema.get("enum"), schema.get("const")) {
        (Some(Value::Array(values)), _) => values.iter().collect(),
        (Some(_), _) => return Err(bad("the parent's enum in a branch is not a list")),
        (None, Some(value)) => vec![value],
        (None, None) => return Err(bad("a branch gives neither enum nor const for the parent")),
    };
    values.into_iter().map(|v| scalar(v).ok_or_else(|| bad("a parent value is not a string, number or bool"))).collect()
}

/// What a dial says about itself (schema resolved, UI options read).
struct Dial<'a> {
    schema: &'a Map<String, Value>,
    ui: Option<&'a Map<String, Value>>,
    dial_id: Option<String>,
    visible: bool,
    /// formData's value, if any.
    current: Option<String>,
    /// formData's value, else the schema's default, else "".
    value: String,
    order: f64,
    section: Option<Section>,
}

fn read_dial<'a>(
    key: &str,
    schema: &'a Value,
    definitions: Option<&'a Map<String, Value>>,
    ui: Option<&'a Map<String, Value>>,
    data: Option<&'a Map<String, Value>>,
) -> Result<Dial<'a>, FormMapError> {
    let schema = resolve_ref(key, schema, definitions)?;
    let at = format!("JSONSchema.definitions.{key}");
    let custom = object(schema, "custom", &at)?;
    let custom_at = format!("{at}.custom");
    let dial_id = match custom {
        Some(custom) => string(custom, "id", &custom_at)?.filter(|id| !id.is_empty()).map(str::to_owned),
        None => None,
    };
    let order = match custom {
        Some(custom) => number(custom, "displayOrder", &custom_at)?,
        None => None,
    };

    let ui_at = format!("UISchema.{key}");
    let ui = match ui.and_then(|ui| ui.get(key)) {
        None | Some(Value::Null) => None,
        Some(Value::Object(entry)) => Some(entry),
        Some(_) => return Err(wrong("UISchema", key, "an object")),
    };
    let options = match ui {
        Some(ui) => object(ui, "ui:options", &ui_at)?,
        None => None,
    };
    let options_at = format!("{ui_at}.ui:options");
    let (visible, section) = match options {
        Some(options) => {
            let visible = boolean(options, "visible", &options_at)?.unwrap_or(true);
            let title = string(options, "section", &options_at)?.filter(|s| !s.is_empty());
            let id = string(options, "sectionId", &options_at)?.filter(|s| !s.is_empty());
            let section = id.or(title).map(|id| Section {
                id: id.to_owned(),
                title: title.unwrap_or(id).to_owned(),
                description: String::new(),
            });
            (visible, section)
        }
        None => (true, None),
    };

    let current = match data.and_then(|data| data.get(key)) {
        None => None,
        Some(value) => Some(scalar(value).ok_or_else(|| wrong("formData", key, "a string, number, bool or null"))?),
    };
    let default = match schema.get("default") {
        None => None,
        Some(value) => Some(scalar(value).ok_or_else(|| wrong(&at, "default", "a string, number, bool or null"))?),
    };
    let value = current.clone().or(default).unwrap_or_default();
    Ok(Dial { schema, ui, dial_id, visible, current, value, order: order.unwrap_or(f64::INFINITY), section })
}

/// Follows `{"$ref":"#/definitions/KEY"}` (a few hops at most); an inline schema is taken as is.
fn resolve_ref<'a>(
    key: &str,
    schema: &'a Value,
    definitions: Option<&'a Map<String, Value>>,
) -> Result<&'a Map<String, Value>, FormMapError> {
    let mut schema = schema;
    for _ in 0..=MAX_REF_HOPS {
        let object = schema.as_object().ok_or_else(|| FormMapError::DefinitionNotAnObject(key.to_owned()))?;
        let Some(reference) = object.get("$ref") else { return Ok(object) };
        let reference = reference.as_str().ok_or_else(|| wrong(key, "$ref", "a string"))?;
        let bad = || FormMapError::BadRef { key: key.to_owned(), reference: reference.to_owned() };
        let name = reference.strip_prefix("#/definitions/").ok_or_else(bad)?;
        // A JSON pointer in a URI fragment: ~1 is '/', ~0 is '~', and it may be percent-encoded.
        let name = name.replace("~1", "/").replace("~0", "~");
        let definitions = definitions.ok_or_else(bad)?;
        schema = match definitions.get(&name) {
            Some(found) => found,
            None => percent_decode(&name).and_then(|n| definitions.get(&n)).ok_or_else(bad)?,
        };
    }
    Err(FormMapError::BadRef { key: key.to_owned(), reference: "(too many hops)".into() })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Whether and how a dial is shown to the person.
#[derive(Clone)]
enum Resolution {
    /// A field of our form, under this condition.
    Shown(Option<Condition>),
    /// A hidden dial with a fixed value, shown by uStore's logic under this condition.
    Fixed(Option<Condition>, String),
    /// Never shown (its condition can never hold).
    Never,
}

fn resolve<'a>(
    key: &'a str,
    entries: &BTreeMap<&'a str, Entry<'a>>,
    dials: &BTreeMap<&'a str, Dial<'a>>,
    resolved: &mut BTreeMap<&'a str, Resolution>,
    visiting: &mut BTreeSet<&'a str>,
) -> Result<Resolution, FormMapError> {
    if let Some(done) = resolved.get(key) {
        return Ok(done.clone());
    }
    if !visiting.insert(key) {
        return Err(FormMapError::ConditionCycle(key.to_owned()));
    }
    let entry = &entries[key];
    // `None` = never shown; `Some(condition)` = shown under it (None: always).
    let when: Option<Option<Condition>> = match &entry.parent {
        None => Some(None),
        Some((parent, values)) => {
            if !entries.contains_key(parent) {
                return Err(FormMapError::BadDependency {
                    parent: (*parent).to_owned(),
                    why: "the parent is not a property of the form".into(),
                });
            }
            match resolve(parent, entries, dials, resolved, visiting)? {
                Resolution::Never => None,
                Resolution::Shown(_) => Some(Some(Condition { field: field_id(parent), values: values.clone() })),
                // A hidden parent's value cannot change: decide now, and inherit when it is shown.
                Resolution::Fixed(parent_when, value) => values.contains(&value).then_some(parent_when),
            }
        }
    };
    let dial = &dials[key];
    let resolution = match when {
        None => Resolution::Never,
        Some(when) if !dial.visible => Resolution::Fixed(when, dial.value.clone()),
        Some(when) => Resolution::Shown(when),
    };
    visiting.remove(key);
    resolved.insert(key, resolution.clone());
    Ok(resolution)
}

/// The widgets we know, by `ui:widget` (compared without case).
enum Widget {
    Plain,
    Textarea,
    Choice,
    Date,
    Checkbox,
    Other,
}

fn widget(name: &str) -> Widget {
    match name.to_ascii_lowercase().as_str() {
        "" | "textbox" | "text" => Widget::Plain,
        "textarea" => Widget::Textarea,
        "dropdown" | "select" | "radio" => Widget::Choice,
        "datetimepicker" => Widget::Date,
        "checkbox" => Widget::Checkbox,
        _ => Widget::Other,
    }
}

fn yes_no() -> Vec<ChoiceOption> {
    [("true", "Yes"), ("false", "No")].into_iter().map(|(value, label)| option(value, label)).collect()
}

fn option(value: &str, label: &str) -> ChoiceOption {
    ChoiceOption { value: value.to_owned(), label: label.to_owned(), swatch_color: None, image: None }
}

fn build_field(
    id: &str,
    key: &str,
    dial: &Dial<'_>,
    required: bool,
    visible_when: Option<Condition>,
    degraded: &mut Vec<(String, String)>,
) -> Result<Field, FormMapError> {
    let schema = dial.schema;
    let at = format!("JSONSchema.definitions.{key}");
    let ui_at = format!("UISchema.{key}");
    let custom_at = format!("{at}.custom");
    let custom = object(schema, "custom", &at)?;
    let custom_str = |member| match custom {
        Some(custom) => string(custom, member, &custom_at),
        None => Ok(None),
    };
    let custom_bool = |member| match custom {
        Some(custom) => boolean(custom, member, &custom_at),
        None => Ok(None),
    };
    let ui_str = |member| match dial.ui {
        Some(ui) => string(ui, member, &ui_at),
        None => Ok(None),
    };

    let code = custom_str("code")?.filter(|c| !c.is_empty()).unwrap_or(key);
    let label = string(schema, "title", &at)?.filter(|t| !t.trim().is_empty()).unwrap_or(key);
    let description = string(schema, "description", &at)?.filter(|d| !d.is_empty());
    let help = match description {
        Some(description) => description,
        None => custom_str("info")?.unwrap_or(""),
    };
    let read_only = match dial.ui {
        Some(ui) => boolean(ui, "ui:readonly", &ui_at)?.unwrap_or(false),
        None => false,
    };
    let placeholder = ui_str("ui:placeholder")?.unwrap_or("");
    let types = schema_types(schema, &at)?;
    let format = string(schema, "format", &at)?.unwrap_or("");
    let min_length = length(schema, "minLength", &at)?;
    let max_length = length(schema, "maxLength", &at)?;
    let minimum = number(schema, "minimum", &at)?;
    let maximum = number(schema, "maximum", &at)?;
    let multiple_of = number(schema, "multipleOf", &at)?;
    let options = choice_options(schema, &at)?;

    let widget_name = ui_str("ui:widget")?.unwrap_or("");
    let is_type = |name: &str| types.iter().any(|t| t == name);
    let kind = match widget(widget_name) {
        Widget::Other => {
            degraded.push((id.to_owned(), widget_name.to_owned()));
            FieldKind::Text
        }
        Widget::Choice if options.is_empty() => {
            degraded.push((id.to_owned(), format!("{widget_name} without options")));
            FieldKind::Text
        }
        Widget::Checkbox => FieldKind::Choice,
        _ if !options.is_empty() || is_type("boolean") => FieldKind::Choice,
        Widget::Textarea => FieldKind::Multiline,
        Widget::Date => FieldKind::Date,
        _ if format == "date" => FieldKind::Date,
        _ if is_type("number") || is_type("integer") => FieldKind::Number,
        _ if format == "email" => FieldKind::Email,
        _ => FieldKind::Text,
    };
    let options = match kind {
        FieldKind::Choice if options.is_empty() => yes_no(),
        FieldKind::Choice => options,
        _ => Vec::new(),
    };
    let number = kind == FieldKind::Number;
    // Our step counts from the minimum, JSON Schema's multipleOf from zero: the same when the
    // minimum is a multiple of it (or absent), which is how forms are written.
    let step = match multiple_of.filter(|s| *s > 0.0) {
        Some(step) => Some(step),
        None if is_type("integer") && minimum.is_none_or(|m| m.fract() == 0.0) => Some(1.0),
        None => None,
    };

    let pattern = match string(schema, "pattern", &at)?.filter(|p| !p.is_empty()) {
        None => None,
        Some(pattern) => match RegexBuilder::new(pattern).size_limit(PATTERN_SIZE_LIMIT).build() {
            Ok(regex) => Some(regex),
            // uStore patterns are ECMAScript; one we cannot run is left to uStore's own check.
            Err(error) => {
                let why = error.to_string().lines().next_back().unwrap_or("invalid").trim().to_owned();
                degraded.push((id.to_owned(), format!("pattern {pattern:?}: {why}")));
                None
            }
        },
    };

    Ok(Field {
        id: id.to_owned(),
        code: code.to_owned(),
        label: label.to_owned(),
        help: help.to_owned(),
        kind,
        required,
        default: dial.value.clone(),
        placeholder: placeholder.to_owned(),
        min_length,
        max_length,
        pattern,
        min: minimum.filter(|_| number),
        max: maximum.filter(|_| number),
        step: step.filter(|_| number),
        max_lines: 0,
        options,
        section: dial.section.as_ref().map(|s| s.id.clone()),
        visible_when,
        affects_preview: custom_bool("affectProof")?.unwrap_or(true),
        affects_price: custom_bool("affectPrice")?.unwrap_or(false),
        read_only,
    })
}

/// `type` as a string or a list of strings (`["string", "null"]`).
fn schema_types(schema: &Map<String, Value>, at: &str) -> Result<Vec<String>, FormMapError> {
    match schema.get("type") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(name)) => Ok(vec![name.clone()]),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| n.as_str().map(str::to_owned).ok_or_else(|| wrong(at, "type", "a string or a list of strings")))
            .collect(),
        Some(_) => Err(wrong(at, "type", "a string or a list of strings")),
    }
}

/// `enum` + `enumNames`, or `oneOf`/`anyOf` of `{const, title}`; empty when the dial has none.
fn choice_options(schema: &Map<String, Value>, at: &str) -> Result<Vec<ChoiceOption>, FormMapError> {
    let mut options: Vec<ChoiceOption> = Vec::new();
    if let Some(values) = array(schema, "enum", at)? {
        let names = array(schema, "enumNames", at)?;
        for (index, value) in values.iter().enumerate() {
            let value = scalar(value).ok_or_else(|| wrong(at, "enum", "a list of strings, numbers or bools"))?;
            let name = match names.and_then(|n| n.get(index)) {
                None | Some(Value::Null) => None,
                Some(name) => Some(scalar(name).ok_or_else(|| wrong(at, "enumNames", "a list of strings"))?),
            };
            add_option(&mut options, value, name);
        }
        return Ok(options);
    }
    for member in ["oneOf", "anyOf"] {
        let Some(alternatives) = array(schema, member, at)? else { continue };
        for alternative in alternatives {
            let alternative = alternative.as_object().ok_or_else(|| wrong(at, member, "a list of objects"))?;
            let value = match (alternative.get("const"), alternative.get("enum")) {
                (Some(value), _) => value,
                (None, Some(Value::Array(values))) if values.len() == 1 => &values[0],
                // Not an option (e.g. a type alternative): nothing to offer.
                _ => continue,
            };
            let value =
                scalar(value).ok_or_else(|| wrong(at, member, "options with a string, number or bool const"))?;
            let title = string(alternative, "title", at)?.map(str::to_owned);
            add_option(&mut options, value, title);
        }
        if !options.is_empty() {
            break;
        }
    }
    Ok(options)
}

/// Adds an option once (uStore lists may repeat a value); an empty label shows the value.
fn add_option(options: &mut Vec<ChoiceOption>, value: String, label: Option<String>) {
    if options.iter().all(|o| o.value != value) {
        let label = label.filter(|l| !l.trim().is_empty()).unwrap_or_else(|| value.clone());
        options.push(ChoiceOption { value, label, swatch_color: None, image: None });
    }
}

/// A formData or schema value as our values carry it: strings as they are (`___JSON___:` ones
/// included), numbers and bools in JSON notation, null as "". Lists and objects are not values.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

// Typed readers of optional members: absent or null is None, a wrong type names the member.

fn object<'a>(
    map: &'a Map<String, Value>,
    member: &str,
    at: &str,
) -> Result<Option<&'a Map<String, Value>>, FormMapError> {
    match map.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err(wrong(at, member, "an object")),
    }
}

fn array<'a>(map: &'a Map<String, Value>, member: &str, at: &str) -> Result<Option<&'a Vec<Value>>, FormMapError> {
    match map.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(array)) => Ok(Some(array)),
        Some(_) => Err(wrong(at, member, "a list")),
    }
}

fn string<'a>(map: &'a Map<String, Value>, member: &str, at: &str) -> Result<Option<&'a str>, FormMapError> {
    match map.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong(at, member, "a string")),
    }
}

fn boolean(map: &Map<String, Value>, member: &str, at: &str) -> Result<Option<bool>, FormMapError> {
    match map.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong(at, member, "true or false")),
    }
}

fn number(map: &Map<String, Value>, member: &str, at: &str) -> Result<Option<f64>, FormMapError> {
    match map.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_f64().filter(|f| f.is_finite()).map(Some).ok_or_else(|| wrong(at, member, "a number"))
        }
        Some(_) => Err(wrong(at, member, "a number")),
    }
}

/// A length (`minLength`, `maxLength`): a whole number ≥ 0; 0 when absent.
fn length(map: &Map<String, Value>, member: &str, at: &str) -> Result<usize, FormMapError> {
    let bad = || wrong(at, member, "a whole number of characters");
    match number(map, member, at).map_err(|_| bad())? {
        None => Ok(0),
        Some(n) if n >= 0.0 && n.fract() == 0.0 => Ok(n.min(usize::MAX as f64) as usize),
        Some(_) => Err(bad()),
    }
}

/// A list of keys (`required`); absent is empty.
fn strings<'a>(map: &'a Map<String, Value>, member: &str, at: &str) -> Result<BTreeSet<&'a str>, FormMapError> {
    let Some(items) = array(map, member, at)? else { return Ok(BTreeSet::new()) };
    items.iter().map(|item| item.as_str().ok_or_else(|| wrong(at, member, "a list of strings"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> ProductId {
        ProductId::parse("0b0c6a9e-2f1d-4c57-9d1e-3f3a1c2b4d5e").unwrap()
    }

    fn reference(key: &str) -> Value {
        json!({ "$ref": format!("#/definitions/{key}") })
    }

    /// A business card as uStore would send it: keys in another order than displayOrder, a
    /// conditional phone, a back-side section, a community DUC and a hidden dial.
    fn business_card() -> Value {
        json!({
            "JSONSchema": {
                "type": "object",
                "definitions": {
                    "Accent": {
                        "type": "string", "title": "Accent colour",
                        "enum": ["navy", "teal"], "enumNames": ["Navy blue", "Teal"],
                        "custom": { "id": "dial-accent", "code": "AccentColor", "displayOrder": 5,
                                    "affectPrice": true, "affectProof": true, "info": "" }
                    },
                    "JobRef": {
                        "type": "string", "title": "Job reference",
                        "custom": { "id": "dial-jobref", "code": "JobRef", "displayOrder": 0 }
                    },
                    "LogoColour": {
                        "type": "string", "title": "Logo colour", "maxLength": 30, "pattern": "^[0-9,]+$",
                        "custom": { "id": "dial-logo", "code": "LogoCMYK", "displayOrder": 6, "affectProof": true }
                    },
                    "Name": {
                        "type": "string", "title": "Full name", "description": "As it should be printed",
                        "maxLength": 40,
                        "custom": { "id": "dial-name", "code": "FullName", "displayOrder": 1,
                                    "affectPrice": false, "affectProof": true, "info": "ignored: description wins" }
                    },
                    "Phone": {
                        "type": "string", "title": "Phone", "pattern": "^\\+?[0-9 ]{6,20}$",
                        "custom": { "id": "dial-phone", "code": "Phone", "displayOrder": 4, "info": "With country code" }
                    },
                    "ShowPhone": {
                        "type": "string", "title": "Show a phone number?", "enum": ["Yes", "No"], "default": "No",
                        "custom": { "id": "dial-showphone", "code": "ShowPhone", "displayOrder": 3, "affectProof": false }
                    },
                    "Title": {
                        "type": "string", "title": "Job title",
                        "custom": { "id": "dial-title", "code": "JobTitle", "displayOrder": 2 }
                    }
                },
                "properties": {
                    "Accent": reference("Accent"), "JobRef": reference("JobRef"), "LogoColour": reference("LogoColour"),
                    "Name": reference("Name"), "ShowPhone": reference("ShowPhone"), "Title": reference("Title")
                },
                "required": ["Name"],
                "dependencies": {
                    "ShowPhone": { "oneOf": [
                        { "properties": { "ShowPhone": { "enum": ["Yes"] }, "Phone": reference("Phone") },
                          "required": ["Phone"] },
                        { "properties": { "ShowPhone": { "enum": ["No"] } } }
                    ] }
                }
            },
            "UISchema": {
                "Name": { "ui:widget": "textbox", "ui:options": { "visible": true, "section": "Front", "sectionId": "front" } },
                "Title": { "ui:widget": "textarea", "ui:options": { "section": "Front", "sectionId": "front" } },
                "ShowPhone": { "ui:widget": "dropdown", "ui:options": { "section": "Front", "sectionId": "front" } },
                "Phone": { "ui:options": { "section": "Front", "sectionId": "front" } },
                "Accent": { "ui:widget": "dropdown", "ui:options": { "section": "Back", "sectionId": "back" } },
                "LogoColour": { "ui:widget": "CmykColorPicker", "ui:options": { "section": "Back", "sectionId": "back" } },
                "JobRef": { "ui:readonly": true, "ui:options": { "visible": false } }
            },
            "formData": {
                "Accent": "navy", "JobRef": "JR-2291", "LogoColour": "0,60,100,0",
                "Name": "", "Phone": "", "ShowPhone": "No", "Title": null
            }
        })
    }

    fn map(raw: &Value) -> MappedForm {
        map_form(&product(), raw).unwrap()
    }

    fn values(pairs: &[(&str, &str)]) -> Values {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn errors(form: &Form, pairs: &[(&str, &str)]) -> Vec<(String, FieldErrorCode)> {
        form.check(&values(pairs)).into_iter().map(|e| (e.field, e.code)).collect()
    }

    #[test]
    fn a_business_card_maps_to_fields_in_display_order() {
        let mapped = map(&business_card());
        let form = &mapped.form;
        let ids: Vec<&str> = form.fields.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["Name", "Title", "ShowPhone", "Phone", "Accent", "LogoColour"]);
        let sections: Vec<(&str, &str)> = form.sections.iter().map(|s| (s.id.as_str(), s.title.as_str())).collect();
        assert_eq!(sections, [("front", "Front"), ("back", "Back")]);

        let name = form.field("Name").unwrap();
        assert_eq!((name.code.as_str(), name.label.as_str()), ("FullName", "Full name"));
        assert_eq!(name.help, "As it should be printed");
        assert!(name.required && name.max_length == 40 && name.kind == FieldKind::Text);
        assert_eq!(name.section.as_deref(), Some("front"));
        assert!(name.affects_preview && !name.affects_price && !name.read_only);

        assert_eq!(form.field("Title").unwrap().kind, FieldKind::Multiline);
        assert!(!form.field("Title").unwrap().required);

        let show = form.field("ShowPhone").unwrap();
        assert_eq!(show.kind, FieldKind::Choice);
        let show_options: Vec<(&str, &str)> =
            show.options.iter().map(|o| (o.value.as_str(), o.label.as_str())).collect();
        assert_eq!(show_options, [("Yes", "Yes"), ("No", "No")]);
        assert_eq!(show.default, "No");
        assert!(!show.affects_preview);

        let phone = form.field("Phone").unwrap();
        assert_eq!(phone.visible_when, Some(Condition { field: "ShowPhone".into(), values: vec!["Yes".into()] }));
        assert!(phone.required, "required by its oneOf branch");
        assert_eq!(phone.help, "With country code");
        assert!(phone.pattern.is_some());

        let accent = form.field("Accent").unwrap();
        let accent_options: Vec<(&str, &str)> =
            accent.options.iter().map(|o| (o.value.as_str(), o.label.as_str())).collect();
        assert_eq!(accent_options, [("navy", "Navy blue"), ("teal", "Teal")]);
        assert_eq!(accent.section.as_deref(), Some("back"));
        assert!(accent.affects_price);

        // The colour picker DUC is a text field keeping its rules, and reported.
        let logo = form.field("LogoColour").unwrap();
        assert_eq!(logo.kind, FieldKind::Text);
        assert_eq!((logo.max_length, logo.pattern.is_some()), (30, true));
        assert_eq!(mapped.degraded, [("LogoColour".to_string(), "CmykColorPicker".to_string())]);

        // The hidden dial is uStore's business: not a field, never sent.
        assert!(form.field("JobRef").is_none());
        assert!(!mapped.dial_ids.contains_key("JobRef") && !mapped.current.contains_key("JobRef"));
        assert_eq!(mapped.dial_ids["Name"], "dial-name");
        assert_eq!(mapped.dial_ids.len(), 6);

        // Current values as strings; null is empty.
        assert_eq!(mapped.current["Title"], "");
        assert_eq!(mapped.current["Accent"], "navy");
        assert_eq!(mapped.current["LogoColour"], "0,60,100,0");
    }

    #[test]
    fn the_mapped_form_checks_name_and_phone_only_when_shown() {
        let mapped = map(&business_card());
        let form = &mapped.form;
        use FieldErrorCode::*;
        assert_eq!(errors(form, &[("ShowPhone", "No")]), [("Name".to_string(), Required)]);
        assert_eq!(errors(form, &[("Name", "Anna Keller"), ("ShowPhone", "No"), ("Phone", "call me")]), Vec::new());
        assert_eq!(
            errors(form, &[("Name", "Anna Keller"), ("ShowPhone", "Yes"), ("Phone", "call me")]),
            [("Phone".to_string(), PatternMismatch)]
        );
        assert_eq!(errors(form, &[("Name", "Anna Keller"), ("ShowPhone", "Yes")]), [("Phone".to_string(), Required)]);
        assert_eq!(
            errors(form, &[("Name", "Anna Keller"), ("ShowPhone", "Yes"), ("Phone", "+41 44 123 45 67")]),
            Vec::new()
        );
        assert_eq!(errors(form, &[("Name", "x".repeat(41).as_str())]), [("Name".to_string(), TooLong)]);
        assert_eq!(errors(form, &[("Name", "Anna"), ("Accent", "red")]), [("Accent".to_string(), NotAnOption)]);
        // The form's defaults leave only the required name to fill in.
        assert_eq!(form.check(&form.defaults()).iter().map(|e| e.code).collect::<Vec<_>>(), [Required]);
    }

    #[test]
    fn the_state_body_sends_dial_ids_and_the_quantity_and_skips_hidden_fields() {
        let mapped = map(&business_card());
        let draft = values(&[("Name", "Anna"), ("ShowPhone", "No"), ("Phone", "+41 44 123 45 67"), ("Accent", "teal")]);
        let body = state_body(&mapped, &draft, Some(250));
        assert_eq!(
            body,
            json!([
                { "id": "dial-name", "value": "Anna" },
                { "id": "dial-title", "value": "" },
                { "id": "dial-showphone", "value": "No" },
                { "id": "dial-accent", "value": "teal" },
                { "id": "dial-logo", "value": "" },
                { "id": "uStoreOrderItemQuantity", "value": 250 }
            ])
        );
        let shown = values(&[("Name", "Anna"), ("ShowPhone", "Yes"), ("Phone", "+41 44")]);
        let body = state_body(&mapped, &shown, None);
        let sent: Vec<&str> = body.as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(sent, ["dial-name", "dial-title", "dial-showphone", "dial-phone", "dial-accent", "dial-logo"]);
        assert_eq!(body[3]["value"], "+41 44");
    }

    #[test]
    fn server_errors_become_field_errors_in_display_order() {
        let mapped = map(&business_card());
        let state = json!({
            "errors": {
                "Accent": ["Teal is out of stock."],
                "JobRef": ["Job reference expired."],
                "Name": ["Name is required.", "Use letters only."],
                "Phone": [],
                "uStoreOrderItemQuantity": ["Minimum quantity is 100."]
            }
        });
        let got: Vec<(String, FieldErrorCode, String)> =
            field_errors(&mapped, &state).into_iter().map(|e| (e.field, e.code, e.message)).collect();
        let rejected = |field: &str, message: &str| (field.to_string(), FieldErrorCode::Rejected, message.to_string());
        assert_eq!(
            got,
            [
                rejected("Name", "Name is required.; Use letters only."),
                rejected("Accent", "Teal is out of stock."),
                rejected("", "Minimum quantity is 100."),
                rejected("", "Job reference expired."),
            ]
        );
        assert!(field_errors(&mapped, &json!({ "errors": {} })).is_empty());
        assert!(field_errors(&mapped, &json!({})).is_empty());
        assert!(field_errors(&mapped, &json!({ "errors": null })).is_empty());
        // An unreadable error list is still a refusal, never silence.
        assert_eq!(field_errors(&mapped, &json!({ "errors": ["boom"] })).len(), 1);
        assert_eq!(
            field_errors(&mapped, &json!({ "errors": { "Name": [""] } }))[0].message,
            "uStore refused this value"
        );
    }

    #[test]
    fn malformed_forms_are_errors_not_panics() {
        let p = product();
        assert_eq!(map_form(&p, &json!([])).unwrap_err(), FormMapError::NotAnObject);
        assert_eq!(map_form(&p, &json!({ "UISchema": {} })).unwrap_err(), FormMapError::MissingSchema);

        let mut raw = business_card();
        raw["JSONSchema"]["definitions"] = json!([]);
        assert!(matches!(
            map_form(&p, &raw).unwrap_err(),
            FormMapError::WrongType { ref member, .. } if member == "definitions"
        ));

        let mut raw = business_card();
        raw["JSONSchema"]["definitions"]["Name"]["maxLength"] = json!("40");
        let error = map_form(&p, &raw).unwrap_err();
        assert!(
            matches!(&error, FormMapError::WrongType { at, member, .. } if at.ends_with("Name") && member == "maxLength")
        );
        assert!(error.to_string().contains("maxLength"), "{error}");

        let mut raw = business_card();
        raw["JSONSchema"]["definitions"]["Title"] = json!("a string");
        assert_eq!(map_form(&p, &raw).unwrap_err(), FormMapError::DefinitionNotAnObject("Title".into()));

        let mut raw = business_card();
        raw["JSONSchema"]["properties"]["Title"] = reference("Nope");
        assert!(matches!(map_form(&p, &raw).unwrap_err(), FormMapError::BadRef { .. }));

        let mut raw = business_card();
        raw["JSONSchema"]["definitions"]["Loop"] = reference("Loop");
        raw["JSONSchema"]["properties"]["Loop"] = reference("Loop");
        assert!(matches!(map_form(&p, &raw).unwrap_err(), FormMapError::BadRef { .. }));

        let mut raw = business_card();
        raw["UISchema"]["Name"]["ui:options"]["visible"] = json!("yes");
        assert!(
            matches!(map_form(&p, &raw).unwrap_err(), FormMapError::WrongType { ref member, .. } if member == "visible")
        );

        let mut raw = business_card();
        raw["formData"]["Name"] = json!({ "first": "Anna" });
        assert!(matches!(map_form(&p, &raw).unwrap_err(), FormMapError::WrongType { .. }));

        let mut raw = business_card();
        raw["JSONSchema"]["definitions"]["Name"]["custom"] = json!({ "code": "FullName" });
        assert_eq!(map_form(&p, &raw).unwrap_err(), FormMapError::MissingDialId("Name".into()));

        let mut raw = business_card();
        raw["JSONSchema"]["dependencies"]["ShowPhone"]["oneOf"][0]["properties"]["ShowPhone"] = json!({});
        assert!(matches!(map_form(&p, &raw).unwrap_err(), FormMapError::BadDependency { .. }));

        // Whatever the junk, never a panic.
        for junk in [json!(null), json!(1), json!("x"), json!(true), json!([1]), json!({}), json!([[]])] {
            for member in ["JSONSchema", "UISchema", "formData"] {
                let mut raw = business_card();
                raw[member] = junk.clone();
                let _ = map_form(&p, &raw);
            }
            for member in ["definitions", "properties", "required", "dependencies"] {
                let mut raw = business_card();
                raw["JSONSchema"][member] = junk.clone();
                let _ = map_form(&p, &raw);
            }
            for member in ["type", "enum", "enumNames", "oneOf", "pattern", "minimum", "custom", "default", "$ref"] {
                let mut raw = business_card();
                raw["JSONSchema"]["definitions"]["Accent"][member] = junk.clone();
                let _ = map_form(&p, &raw);
            }
        }
    }

    #[test]
    fn forms_with_more_fields_than_a_request_may_carry_are_refused() {
        let mut properties = Map::new();
        for i in 0..300 {
            properties.insert(
                format!("F{i}"),
                json!({ "type": "string", "title": format!("Field {i}"), "custom": { "id": format!("dial-{i}") } }),
            );
        }
        let raw = json!({ "JSONSchema": { "properties": properties } });
        assert_eq!(
            map_form(&product(), &raw).unwrap_err(),
            FormMapError::TooManyFields { count: 300, limit: MAX_VALUES }
        );
    }

    #[test]
    fn inline_schemas_widgets_and_kinds() {
        let raw = json!({
            "JSONSchema": {
                "properties": {
                    "Qty per box": { "type": "integer", "minimum": 1, "maximum": 10,
                                     "custom": { "id": "d1", "displayOrder": 1 } },
                    "Email": { "type": "string", "format": "email", "custom": { "id": "d2", "displayOrder": 2 } },
                    "Event": { "type": "string", "custom": { "id": "d3", "displayOrder": 3 } },
                    "Gloss": { "type": "boolean", "default": false, "custom": { "id": "d4", "displayOrder": 4 } },
                    "Paper": { "type": "string", "oneOf": [ { "const": "matt", "title": "Matt" }, { "const": "silk", "title": "Silk" } ],
                               "custom": { "id": "d5", "displayOrder": 5 } },
                    "Code": { "type": "string", "pattern": "(a)\\1", "custom": { "id": "d6", "displayOrder": 6 } },
                    "Size": { "type": "string", "custom": { "id": "d7", "displayOrder": 7 } },
                    "Fixed": { "type": "string", "default": "ACME", "custom": { "id": "d8", "displayOrder": 8 } }
                }
            },
            "UISchema": {
                "Event": { "ui:widget": "dateTimePicker" },
                "Gloss": { "ui:widget": "checkbox" },
                "Size": { "ui:widget": "dropdown" },
                "Fixed": { "ui:readonly": true }
            },
            "formData": { "Qty per box": 5, "Gloss": true, "Size": "___JSON___:[\"A4\"]" }
        });
        let mapped = map(&raw);
        let form = &mapped.form;
        let kinds: Vec<FieldKind> = form.fields.iter().map(|f| f.kind).collect();
        use FieldKind::*;
        assert_eq!(kinds, [Number, Email, Date, Choice, Choice, Text, Text, Text]);

        // A key with spaces gets a safe id, still sent by its dial id.
        let qty = &form.fields[0];
        assert_ne!(qty.id, "Qty per box");
        assert!(qty.id.starts_with("Qty_per_box-") && qty.id.len() == "Qty_per_box-".len() + 8, "{}", qty.id);
        assert_eq!(qty.code, "Qty per box");
        assert_eq!(mapped.dial_ids[&qty.id], "d1");
        assert_eq!((qty.min, qty.max, qty.step), (Some(1.0), Some(10.0), Some(1.0)));
        assert_eq!(mapped.current[&qty.id], "5");
        assert_eq!(errors(form, &[(qty.id.as_str(), "11")]), [(qty.id.clone(), FieldErrorCode::OutOfRange)]);
        assert_eq!(field_errors(&mapped, &json!({ "errors": { "Qty per box": ["Too many."] } }))[0].field, qty.id);

        let gloss = form.field("Gloss").unwrap();
        let gloss_options: Vec<(&str, &str)> =
            gloss.options.iter().map(|o| (o.value.as_str(), o.label.as_str())).collect();
        assert_eq!(gloss_options, [("true", "Yes"), ("false", "No")]);
        assert_eq!(gloss.default, "true");
        assert_eq!(form.field("Paper").unwrap().options[1].label, "Silk");

        // An unusable pattern and a dropdown without options degrade, never fail.
        assert!(form.field("Code").unwrap().pattern.is_none());
        assert_eq!(mapped.degraded.len(), 2);
        assert_eq!(mapped.degraded[0].0, "Code");
        assert!(mapped.degraded[0].1.starts_with("pattern \"(a)\\\\1\""), "{:?}", mapped.degraded);
        assert_eq!(mapped.degraded[1], ("Size".to_string(), "dropdown without options".to_string()));
        // ___JSON___ values are kept verbatim, so they go back to uStore unchanged.
        assert_eq!(mapped.current["Size"], "___JSON___:[\"A4\"]");

        // Read-only fields keep uStore's value and are not sent back.
        let fixed = form.field("Fixed").unwrap();
        assert!(fixed.read_only && fixed.default == "ACME");
        let body = state_body(&mapped, &form.defaults(), None);
        assert!(body.as_array().unwrap().iter().all(|e| e["id"] != "d8"));
        assert_eq!(body[0], json!({ "id": "d1", "value": "5" }));
    }

    #[test]
    fn conditions_on_hidden_dials_are_decided_once_and_cycles_are_errors() {
        let dependency = |parent: &str, value: &str, child: &str| json!({ "oneOf": [ { "properties": { parent: { "enum": [value] }, child: { "type": "string", "custom": { "id": child } } } } ] });
        let raw = json!({
            "JSONSchema": {
                "properties": {
                    "Mode": { "type": "string", "custom": { "id": "mode" } },
                    "Other": { "type": "string", "custom": { "id": "other" } }
                },
                "dependencies": { "Mode": dependency("Mode", "pro", "Logo"), "Other": dependency("Other", "x", "Never") }
            },
            "UISchema": { "Mode": { "ui:options": { "visible": false } }, "Other": { "ui:options": { "visible": false } } },
            "formData": { "Mode": "pro", "Other": "y" }
        });
        let mapped = map(&raw);
        let ids: Vec<&str> = mapped.form.fields.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["Logo"]);
        assert_eq!(mapped.form.fields[0].visible_when, None);

        let cyclic = json!({
            "JSONSchema": {
                "dependencies": { "A": dependency("A", "1", "B"), "B": dependency("B", "1", "A") }
            }
        });
        assert!(matches!(map_form(&product(), &cyclic).unwrap_err(), FormMapError::ConditionCycle(_)));
    }
}
