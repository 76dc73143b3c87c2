//! TEMPORARY placeholder until the form mapping lands.
use std::collections::BTreeMap;

use crate::domain::form::{FieldError, Form, Values};
use crate::domain::ids::ProductId;

pub(crate) struct MappedForm {
    pub form: Form,
    pub dial_ids: BTreeMap<String, String>,
    pub degraded: Vec<(String, String)>,
    pub current: Values,
}

#[derive(Debug, thiserror::Error)]
#[error("x")]
pub(crate) struct FormMapError;

pub(crate) fn map_form(product: &ProductId, _raw: &serde_json::Value) -> Result<MappedForm, FormMapError> {
    Ok(MappedForm {
        form: Form { product: product.clone(), sections: vec![], fields: vec![] },
        dial_ids: BTreeMap::new(),
        degraded: vec![],
        current: Values::new(),
    })
}
pub(crate) fn state_body(_m: &MappedForm, _v: &Values, _q: Option<u32>) -> serde_json::Value {
    serde_json::json!([])
}
pub(crate) fn field_errors(_m: &MappedForm, _r: &serde_json::Value) -> Vec<FieldError> {
    vec![]
}
